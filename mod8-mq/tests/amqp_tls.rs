//! RabbitMQ over TLS (`MOD8_AMQP_TLS_URL`, an `amqps://` URL, with the CA in
//! `MOD8_TLS_CA_FILE`): the conformance suite over a verified connection, a server certificate
//! from a CA the client does not trust refused with an error naming TLS, and no password in
//! `Debug` output or in connection errors.
#![cfg(feature = "amqp")]
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;
use std::time::Duration;

use mod8_mq::testing::{test_topology_with_prefix, MqFixture};
use mod8_mq::{AmqpBroker, AmqpOptions, Declarations, Error, MqConfig};

/// Upper bound on a connection attempt that must fail: a failure, not a hang.
const BOUND: Duration = Duration::from_secs(60);

/// The TLS URL and CA file, or `None` (skip) when they are not configured.
fn tls(suite: &str) -> Option<(String, String)> {
    let url = mod8_testkit::service_url("MOD8_AMQP_TLS_URL", suite)?;
    let ca = mod8_testkit::service_url("MOD8_TLS_CA_FILE", suite)
        .expect("MOD8_AMQP_TLS_URL is set, so MOD8_TLS_CA_FILE must be too");
    Some((url, ca))
}

fn options(ca: &str) -> AmqpOptions {
    AmqpOptions {
        tls_ca_file: Some(ca.into()),
        ..AmqpOptions::default()
    }
}

async fn rabbitmq_over_tls(suite: &str) -> Option<MqFixture> {
    let (url, ca) = tls(suite)?;
    let topology = test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq_tls"));
    let broker = AmqpBroker::connect_with(&url, topology.declarations(), options(&ca))
        .await
        .expect("MOD8_AMQP_TLS_URL is set but RabbitMQ is not reachable over TLS");
    Some(MqFixture::new(Arc::new(broker), topology))
}

mod8_mq::conformance_tests!(rabbitmq_over_tls("mq conformance on RabbitMQ over TLS"));

/// `MqConfig` (what the application builds) takes the CA file and connects over TLS.
#[tokio::test]
async fn mq_config_connects_over_tls_with_its_ca_file() {
    let Some((url, ca)) = tls("mq config over TLS") else {
        return;
    };
    let broker = MqConfig::new(url).with_tls_ca(ca).connect().await.unwrap();
    broker.close().await.unwrap();
}

/// A CA that did not sign the server's certificate: a typed error that says TLS, promptly.
#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let Some((url, _)) = tls("mq RabbitMQ TLS untrusted CA") else {
        return;
    };
    let untrusted = mod8_testkit::service_url("MOD8_TLS_UNTRUSTED_CA_FILE", "mq RabbitMQ TLS")
        .expect("MOD8_TLS_UNTRUSTED_CA_FILE names a CA that signed nothing");
    let options = AmqpOptions {
        reconnect_timeout: Duration::from_secs(5),
        ..options(&untrusted)
    };
    let err = tokio::time::timeout(
        BOUND,
        AmqpBroker::connect_with(&url, Declarations::default(), options),
    )
    .await
    .expect("a refused certificate fails instead of hanging")
    .expect_err("a certificate from an untrusted CA is refused");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("TLS") && message.contains("certificate"),
        "the error names TLS and the certificate: {message}"
    );
}

/// `amqps://` without a CA file is refused before connecting, naming the setting.
#[tokio::test]
async fn a_tls_url_without_a_ca_file_is_a_validation_error() {
    let err = AmqpBroker::connect(
        "amqps://guest:guest@127.0.0.1:5671/%2f",
        Declarations::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field, .. } if field == "tls_ca_file"),
        "{err:?}"
    );
}

/// The password is never in `Debug` output nor in the error of a failed connection.
#[tokio::test]
async fn passwords_stay_out_of_debug_output_and_errors() {
    let secret = "s3cret-pw";
    let config = MqConfig::new(format!("amqp://guest:{secret}@127.0.0.1:1/%2f"));
    let debug = format!("{config:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(
        debug.contains("amqp://guest:***@127.0.0.1:1/%2f"),
        "{debug}"
    );
    let err = tokio::time::timeout(BOUND, config.connect())
        .await
        .unwrap()
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
    let err = MqConfig::new(format!("bogus://guest:{secret}@127.0.0.1:1/"))
        .connect()
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");

    // A broker that answers and refuses the password.
    let Some(plain) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq RabbitMQ bad password")
    else {
        return;
    };
    let wrong = plain.replacen("guest:guest@", &format!("guest:{secret}@"), 1);
    assert!(
        wrong.contains(secret),
        "MOD8_AMQP_URL is guest:guest: {plain}"
    );
    let err = tokio::time::timeout(BOUND, MqConfig::new(wrong).connect())
        .await
        .unwrap()
        .expect_err("a wrong password is refused");
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
}
