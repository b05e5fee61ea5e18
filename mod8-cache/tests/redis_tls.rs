//! Redis over TLS (`MOD8_REDIS_TLS_URL`, a `rediss://` URL, with the CA in `MOD8_TLS_CA_FILE`):
//! the conformance suite over a verified connection, alone and under the L1 tier; a server
//! certificate from a CA the client does not trust refused with an error naming TLS; no
//! password in `Debug` output or in connection errors.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::time::Duration;

use mod8_cache::{CacheConfig, Error, RedisConfig, RedisStore};

/// Upper bound on a connection attempt that must fail: a failure, not a hang.
const BOUND: Duration = Duration::from_secs(30);

/// The TLS URL and CA file, or `None` (skip) when they are not configured.
fn tls(suite: &str) -> Option<(String, String)> {
    let url = mod8_testkit::service_url("MOD8_REDIS_TLS_URL", suite)?;
    let ca = mod8_testkit::service_url("MOD8_TLS_CA_FILE", suite)
        .expect("MOD8_REDIS_TLS_URL is set, so MOD8_TLS_CA_FILE must be too");
    Some((url, ca))
}

/// A store over TLS in a namespace of its own.
async fn redis_tls(suite: &str) -> Option<RedisStore> {
    let (url, ca) = tls(suite)?;
    let config = RedisConfig::new(url)
        .with_tls_ca(ca)
        .with_prefix(mod8_testkit::unique_name("mod8test:cache:tls"));
    Some(
        RedisStore::connect(config)
            .await
            .expect("MOD8_REDIS_TLS_URL is set but Redis is not reachable over TLS"),
    )
}

mod redis_alone_over_tls {
    use mod8_cache::testing::CacheFixture;
    mod8_cache::conformance_tests!(async {
        super::redis_tls("cache conformance (redis over TLS)")
            .await
            .map(CacheFixture::new)
    });
}

mod tiered_over_redis_tls {
    use mod8_cache::{testing::CacheFixture, MemoryStore, TierOptions, TieredStore};
    use std::time::Duration;
    mod8_cache::conformance_tests!(async {
        let redis = super::redis_tls("cache conformance (memory + redis over TLS)").await?;
        let tiered = TieredStore::with_redis(
            MemoryStore::lru(1_000),
            redis,
            TierOptions::default()
                .with_l1_ttl(Duration::from_secs(30))
                .with_pubsub(true),
        )
        .await
        .expect("tiered store over TLS");
        Some(CacheFixture::new(tiered))
    });
}

/// `CacheConfig` (what the application builds) takes the CA file and connects over TLS.
#[tokio::test]
async fn cache_config_connects_over_tls_with_its_ca_file() {
    let Some((url, ca)) = tls("cache config over TLS") else {
        return;
    };
    let cache = CacheConfig::new(url)
        .with_tls_ca(ca)
        .with_name("tls")
        .connect()
        .await
        .unwrap();
    assert_eq!(cache.backend(), "tiered");
    cache
        .set("k", &7u32, &mod8_cache::EntryOptions::default())
        .await
        .unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(7));
}

/// A CA that did not sign the server's certificate: a typed error that says TLS, promptly.
#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let Some((url, _)) = tls("cache redis TLS untrusted CA") else {
        return;
    };
    let untrusted = mod8_testkit::service_url("MOD8_TLS_UNTRUSTED_CA_FILE", "cache redis TLS")
        .expect("MOD8_TLS_UNTRUSTED_CA_FILE names a CA that signed nothing");
    let config = RedisConfig::new(url)
        .with_tls_ca(untrusted)
        .with_connect_timeout(Duration::from_secs(5));
    let err = tokio::time::timeout(BOUND, RedisStore::connect(config))
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

/// `rediss://` without a CA file is refused before connecting, naming the setting.
#[tokio::test]
async fn a_tls_url_without_a_ca_file_is_a_validation_error() {
    let err = RedisStore::connect(RedisConfig::new("rediss://127.0.0.1:6380/"))
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
    let url = format!("rediss://user:{secret}@127.0.0.1:1/");
    let config = RedisConfig::new(&url)
        .with_tls_ca("/nonexistent/ca.pem")
        .with_connect_timeout(Duration::from_secs(2));
    let debug = format!("{config:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("rediss://user:***@127.0.0.1:1/"), "{debug}");
    let cache_config = CacheConfig::new(&url);
    assert!(!format!("{cache_config:?}").contains(secret));
    let err = RedisStore::connect(config).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
    let err = CacheConfig::new(format!("bogus://user:{secret}@127.0.0.1:1/"))
        .connect()
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");

    // A server that answers and refuses the password (Redis without ACL users: AUTH fails).
    let Some(plain) = mod8_testkit::service_url(mod8_testkit::REDIS, "cache redis bad password")
    else {
        return;
    };
    let wrong = plain.replacen("redis://", &format!("redis://nobody:{secret}@"), 1);
    let config = RedisConfig::new(wrong).with_connect_timeout(Duration::from_secs(5));
    let err = tokio::time::timeout(BOUND, RedisStore::connect(config))
        .await
        .unwrap()
        .expect_err("an unknown user is refused");
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
}
