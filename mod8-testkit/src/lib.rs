//! Test support shared by the mod8 crates (a dev-dependency only; never published).
//!
//! Server-backed suites ask [`service_url`] for their server's URL:
//!
//! - the variable is set → the URL is returned and the suite must connect; a reachable but
//!   failing service is then a test failure, never a skip;
//! - the variable is unset and `MOD8_REQUIRE_SERVICES=1` → the test fails (CI sets this, so no
//!   service-backed suite can skip silently);
//! - otherwise one line `skipping <suite>: <VAR> not set` is printed and `None` returned.
//!
//! ```
//! // In a test: `let Some(url) = mod8_testkit::service_url("MOD8_REDIS_URL", "redis cache") else { return };`
//! # std::env::remove_var("MOD8_REQUIRE_SERVICES");
//! let url = mod8_testkit::service_url("MOD8_DOES_NOT_EXIST_URL", "doc example");
//! assert!(url.is_none());
//! ```
#![deny(missing_docs)]

use std::io::Write;

pub mod rabbitmq;

/// PostgreSQL URL variable.
pub const POSTGRES: &str = "MOD8_POSTGRES_URL";
/// MongoDB (or wire-compatible server) URL variable.
pub const MONGODB: &str = "MOD8_MONGODB_URL";
/// Redis URL variable.
pub const REDIS: &str = "MOD8_REDIS_URL";
/// Redis Cluster URL variable, in fred's form:
/// `redis-cluster://host:port?node=host:port&node=host:port` (one seed node in the authority,
/// any others as `node` parameters). `scripts/services.sh up` starts a 3-primary cluster on
/// 127.0.0.1:7000-7002 and exports it.
pub const REDIS_CLUSTER: &str = "MOD8_REDIS_CLUSTER_URL";
/// RabbitMQ (AMQP 0-9-1) URL variable.
pub const AMQP: &str = "MOD8_AMQP_URL";
/// When `1` (or `true`), a missing service URL fails the test instead of skipping it.
pub const REQUIRE_SERVICES: &str = "MOD8_REQUIRE_SERVICES";

/// Whether `MOD8_REQUIRE_SERVICES` asks for every service-backed suite to run.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES)
        .map(|v| matches!(v.trim(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

/// The URL in `var` for the suite named `suite`, or `None` after printing one skip line.
///
/// # Panics
///
/// When `var` is unset (or empty) and [`services_required`] is true: in CI a missing service
/// is a failure, never a silent skip.
pub fn service_url(var: &str, suite: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => {
            // Visible in CI output (not captured by libtest): which suites met a real server.
            let _ = writeln!(
                std::io::stderr(),
                "{suite}: using the real service at {var}"
            );
            Some(url.trim().to_owned())
        }
        _ if services_required() => {
            panic!("{suite}: {var} is not set but {REQUIRE_SERVICES}=1 requires the service")
        }
        _ => {
            // Written to the real stderr, not through `eprintln!`, so the libtest harness does
            // not capture it: the skip must be visible in a normal `cargo test` run.
            let _ = writeln!(std::io::stderr(), "skipping {suite}: {var} not set");
            None
        }
    }
}

/// A name unique to this test run, `<prefix>_<12 hex chars>`, for databases, key prefixes,
/// queues and collections, so concurrent or repeated runs never see each other's data.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_prefix() {
        let a = unique_name("mod8_test");
        let b = unique_name("mod8_test");
        assert_ne!(a, b);
        assert!(a.starts_with("mod8_test_"));
        assert_eq!(a.len(), "mod8_test_".len() + 12);
    }
}
