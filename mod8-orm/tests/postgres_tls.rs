//! PostgreSQL over TLS (`MOD8_POSTGRES_TLS_URL`, a `sslmode=verify-full&sslrootcert=...` URL):
//! the conformance suite over a verified connection, a server certificate from a CA the client
//! does not trust refused with an error naming TLS, and no password in `Debug` output or in
//! connection errors.
#![cfg(feature = "postgres")]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mod8_orm::{Database, Error, OrmConfig};

mod8_orm::conformance_tests!(mod8_orm::testing::TestDb::postgres_from_var(
    "MOD8_POSTGRES_TLS_URL",
    "orm postgres conformance over TLS"
));

/// Upper bound on a connection attempt that must fail: a failure, not a hang.
const BOUND: Duration = Duration::from_secs(30);

/// The error of a connection that must fail (the store itself has no `Debug`).
fn refused<T>(result: Result<T, Error>, what: &str) -> Error {
    match result {
        Ok(_) => panic!("{what}"),
        Err(e) => e,
    }
}

fn tls_url(suite: &str) -> Option<String> {
    mod8_testkit::service_url("MOD8_POSTGRES_TLS_URL", suite)
}

/// The TLS session really is encrypted: PostgreSQL reports it for our own backend.
#[tokio::test]
async fn the_tls_url_gives_an_encrypted_session() {
    let Some(url) = tls_url("orm postgres TLS session") else {
        return;
    };
    let store = mod8_orm::postgres::PostgresStore::connect(
        &OrmConfig::new(&url)
            .with_max_connections(1)
            .with_migrations(false),
    )
    .await
    .unwrap();
    let ssl: bool =
        mod8_orm::sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(ssl, "the session is not encrypted");
    store.close().await;
}

/// A CA that did not sign the server's certificate: a typed error that says TLS, promptly.
#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let Some(url) = tls_url("orm postgres TLS untrusted CA") else {
        return;
    };
    let untrusted = mod8_testkit::service_url("MOD8_TLS_UNTRUSTED_CA_FILE", "orm postgres TLS")
        .expect("MOD8_TLS_UNTRUSTED_CA_FILE names a CA that signed nothing");
    let ca = std::env::var("MOD8_TLS_CA_FILE").unwrap();
    let url = url.replace(
        &format!("sslrootcert={ca}"),
        &format!("sslrootcert={untrusted}"),
    );
    assert!(
        url.contains(&untrusted),
        "the TLS URL names MOD8_TLS_CA_FILE: {url}"
    );
    let config = OrmConfig::new(&url)
        .with_max_connections(1)
        .with_acquire_timeout(Duration::from_secs(5));
    let err = refused(
        tokio::time::timeout(BOUND, config.connect())
            .await
            .expect("a refused certificate fails instead of hanging"),
        "a certificate from an untrusted CA is refused",
    );
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("TLS") && message.contains("certificate"),
        "the error names TLS and the certificate: {message}"
    );
    assert!(!message.contains(":mod8@"), "no password in {message}");
}

/// The password is never in `Debug` output nor in the error of a failed connection.
#[tokio::test]
async fn passwords_stay_out_of_debug_output_and_errors() {
    let secret = "s3cret-pw";
    let config = OrmConfig::new(format!(
        "postgres://mod8:{secret}@127.0.0.1:5432/mod8?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ));
    let debug = format!("{config:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(
        debug.contains("postgres://mod8:***@127.0.0.1:5432/mod8"),
        "{debug}"
    );
    assert_eq!(
        config.redacted_url(),
        "postgres://mod8:***@127.0.0.1:5432/mod8?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    );

    // An unreachable host and a wrong password: neither error repeats the password.
    let unreachable = OrmConfig::new(format!("postgres://mod8:{secret}@127.0.0.1:1/mod8"))
        .with_acquire_timeout(Duration::from_secs(2));
    let err = refused(
        tokio::time::timeout(BOUND, unreachable.connect())
            .await
            .unwrap(),
        "the connection fails",
    );
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");

    let Some(url) = mod8_testkit::service_url(mod8_testkit::POSTGRES, "orm postgres bad password")
    else {
        return;
    };
    let wrong = url.replacen(":mod8@", &format!(":{secret}@"), 1);
    assert!(
        wrong.contains(secret),
        "MOD8_POSTGRES_URL has the password mod8: {url}"
    );
    let err = refused(
        tokio::time::timeout(BOUND, OrmConfig::new(wrong).connect())
            .await
            .unwrap(),
        "the connection fails",
    );
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
}
