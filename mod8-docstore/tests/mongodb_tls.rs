//! The MongoDB backend over TLS (`MOD8_MONGODB_TLS_URL`, a `tls=true&tlsCAFile=...` URL): the
//! conformance suite over a verified connection, a server certificate from a CA the client does
//! not trust refused with an error naming TLS, and no password in `Debug` output or in
//! connection errors.
#![cfg(feature = "mongodb")]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use mod8_docstore::testing::{DocStoreCapabilities, DocStoreFixture};
use mod8_docstore::{DocStoreConfig, Error, MongoDocStore};

/// Upper bound on a connection attempt that must fail: a failure, not a hang.
const BOUND: Duration = Duration::from_secs(60);

fn tls_url(suite: &str) -> Option<String> {
    mod8_testkit::service_url("MOD8_MONGODB_TLS_URL", suite)
}

async fn mongodb_over_tls() -> Option<DocStoreFixture> {
    let url = tls_url("docstore mongodb conformance over TLS")?;
    let db = mod8_testkit::unique_name("mod8_docstore_tls");
    let store = MongoDocStore::connect(&DocStoreConfig::new(url).with_database(db))
        .await
        .expect("MOD8_MONGODB_TLS_URL is set but the server is not reachable over TLS");
    let caps = if store.is_ferretdb() {
        DocStoreCapabilities::ferretdb_1()
    } else {
        DocStoreCapabilities::all()
    };
    let dropper = store.clone();
    Some(
        DocStoreFixture::new(Arc::new(store), caps).with_teardown(Box::pin(async move {
            dropper.drop_database().await.expect("drop test database");
        })),
    )
}

mod8_docstore::conformance_tests!(mongodb_over_tls());

/// A CA that did not sign the server's certificate: a typed error that says TLS, promptly.
#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let Some(url) = tls_url("docstore mongodb TLS untrusted CA") else {
        return;
    };
    let untrusted = mod8_testkit::service_url("MOD8_TLS_UNTRUSTED_CA_FILE", "docstore TLS")
        .expect("MOD8_TLS_UNTRUSTED_CA_FILE names a CA that signed nothing");
    let ca = std::env::var("MOD8_TLS_CA_FILE").unwrap();
    let url = url.replace(
        &format!("tlsCAFile={ca}"),
        &format!("tlsCAFile={untrusted}"),
    );
    assert!(
        url.contains(&untrusted),
        "the TLS URL names MOD8_TLS_CA_FILE: {url}"
    );
    // A bounded server selection: the driver retries the handshake until then.
    let url = format!("{url}&serverSelectionTimeoutMS=3000");
    let err = tokio::time::timeout(BOUND, MongoDocStore::connect(&DocStoreConfig::new(url)))
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

/// The password is never in `Debug` output nor in the error of a failed connection.
#[tokio::test]
async fn passwords_stay_out_of_debug_output_and_errors() {
    let secret = "s3cret-pw";
    let config = DocStoreConfig::new(format!(
        "mongodb://mod8:{secret}@127.0.0.1:1/?tls=true&serverSelectionTimeoutMS=500&connectTimeoutMS=500"
    ));
    let debug = format!("{config:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("mongodb://mod8:***@127.0.0.1:1/"), "{debug}");
    let err = tokio::time::timeout(BOUND, MongoDocStore::connect(&config))
        .await
        .unwrap()
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");

    // A server that answers, and a password it rejects (FerretDB checks it against
    // PostgreSQL: `mod8` is the only valid one).
    let Some(url) = tls_url("docstore mongodb TLS bad password") else {
        return;
    };
    let url = url.replacen("mongodb://", &format!("mongodb://mod8:{secret}@"), 1)
        + "&serverSelectionTimeoutMS=3000&authSource=ferretdb";
    let config = DocStoreConfig::new(url);
    // A server without authentication lets the connection through: nothing to leak then.
    if let Err(err) = tokio::time::timeout(BOUND, MongoDocStore::connect(&config))
        .await
        .unwrap()
    {
        assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
    }
}
