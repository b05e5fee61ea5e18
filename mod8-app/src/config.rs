//! Configuration: one section per library, each read from the `MOD8_*` variables and falling
//! back to its embedded default (SQLite in memory, in-memory documents, in-process cache,
//! in-process broker).

use std::time::Duration;

use mod8_cache::CacheConfig;
use mod8_docstore::DocStoreConfig;
use mod8_mq::domain::Topology;
use mod8_mq::MqConfig;
use mod8_orm::OrmConfig;

/// Analytics queue the live-dashboard consumer reads (a second subscriber of the `analytics`
/// fanout, beside the one that stores raw events).
pub const LIVE_QUEUE: &str = "live_dashboard_queue";

/// In-process cache entries the app keeps by default: about four per active user (user row,
/// engagement counters, predictions, recommendations), so 25,000 users' answers stay warm.
/// `MOD8_CACHE_L1_CAPACITY` overrides it.
pub const DEFAULT_L1_CAPACITY: usize = 100_000;

/// Default lifetime of the bearer tokens the API issues (`MOD8_TOKEN_TTL_SECS`): 24 hours.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Shortest HS256 secret accepted in `MOD8_AUTH_KEYS` (bytes): the hash's own 256 bits.
pub const MIN_SECRET_LEN: usize = 32;

/// One HS256 signing key and its key id (`kid`, carried in every token it signs).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey {
    /// The key id: names the key in the token header, so a rotated-out key can be retired.
    pub kid: String,
    /// The shared secret (at least [`MIN_SECRET_LEN`] bytes).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret: configurations are logged and printed in test failures.
        f.debug_struct("AuthKey")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Bearer-token authentication of the HTTP API (see [`crate::http::auth`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Keys from `MOD8_AUTH_KEYS="kid1:secret1,kid2:secret2"`: the first signs new tokens,
    /// every one listed verifies (rotation: put the new key first, keep the old one listed
    /// until its tokens have expired, then remove it). Empty: [`crate::App::build`] generates a
    /// random development key that lives as long as the process.
    pub keys: Vec<AuthKey>,
    /// Lifetime of issued tokens (`MOD8_TOKEN_TTL_SECS`, default [`DEFAULT_TOKEN_TTL`]).
    pub token_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            token_ttl: DEFAULT_TOKEN_TTL,
        }
    }
}

impl AuthConfig {
    /// Parses a `MOD8_AUTH_KEYS` value: comma-separated `kid:secret` pairs, key ids unique and
    /// without `:` or `,`, secrets at least [`MIN_SECRET_LEN`] bytes.
    ///
    /// # Errors
    ///
    /// A malformed pair, an empty or repeated key id, or a short secret — naming the key id,
    /// never the secret.
    pub fn parse_keys(raw: &str) -> anyhow::Result<Vec<AuthKey>> {
        let mut keys: Vec<AuthKey> = Vec::new();
        for (i, pair) in raw.split(',').map(str::trim).enumerate() {
            if pair.is_empty() {
                continue;
            }
            let Some((kid, secret)) = pair.split_once(':') else {
                anyhow::bail!(
                    "MOD8_AUTH_KEYS: entry {} is not `kid:secret` (no `:`)",
                    i + 1
                );
            };
            let kid = kid.trim();
            if kid.is_empty() {
                anyhow::bail!("MOD8_AUTH_KEYS: entry {} has an empty key id", i + 1);
            }
            if secret.len() < MIN_SECRET_LEN {
                anyhow::bail!(
                    "MOD8_AUTH_KEYS: the secret of key {kid:?} is {} bytes; HS256 needs at least {MIN_SECRET_LEN}",
                    secret.len()
                );
            }
            if keys.iter().any(|k| k.kid == kid) {
                anyhow::bail!("MOD8_AUTH_KEYS: key id {kid:?} is listed twice");
            }
            keys.push(AuthKey {
                kid: kid.to_owned(),
                secret: secret.as_bytes().to_vec(),
            });
        }
        if keys.is_empty() {
            anyhow::bail!("MOD8_AUTH_KEYS is set but lists no `kid:secret` pair");
        }
        Ok(keys)
    }
}

/// Rate and connection limits of the HTTP server (see [`crate::http`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests per second one caller may make: per token subject when the request carries a
    /// valid token, per client address otherwise (`MOD8_RATE_LIMIT_PER_SEC`, default 50).
    pub requests_per_second: u32,
    /// How many requests a caller may make at once above the steady rate
    /// (`MOD8_RATE_LIMIT_BURST`, default 100).
    pub request_burst: u32,
    /// Registrations (`POST /api/users`) per minute from one client address
    /// (`MOD8_REGISTRATIONS_PER_MIN`, default 10).
    pub registrations_per_minute: u32,
    /// Registrations from one address at once above that rate
    /// (`MOD8_REGISTRATION_BURST`, default 10).
    pub registration_burst: u32,
    /// Most callers (keys) the rate limiters track; beyond it, callers not yet tracked share
    /// one bucket until idle ones are forgotten (default 100,000).
    pub max_tracked_callers: usize,
    /// Most connections served at once; a connection beyond it is answered 503 and closed
    /// (`MOD8_MAX_CONNECTIONS`, default 1024).
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, and the longest an HTTP/1.1
    /// connection waits for its next request (`MOD8_HEADER_READ_TIMEOUT_SECS`, default 10 s).
    pub header_read_timeout: Duration,
    /// Longest a connection (HTTP/1.1 or HTTP/2) may stay without any byte read or written
    /// before it is shut down (`MOD8_IDLE_TIMEOUT_SECS`, default 60 s).
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            requests_per_second: 50,
            request_burst: 100,
            registrations_per_minute: 10,
            registration_burst: 10,
            max_tracked_callers: 100_000,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl HttpLimits {
    /// Limits no test suite reaches (the rate limiters still run): for tests that make many
    /// requests from one address.
    pub fn generous() -> Self {
        Self {
            requests_per_second: 100_000,
            request_burst: 100_000,
            registrations_per_minute: 100_000,
            registration_burst: 100_000,
            ..Self::default()
        }
    }
}

/// Everything [`crate::App::build`] needs.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Relational store (`MOD8_POSTGRES_URL`; SQLite in memory when unset). With
    /// `MOD8_POSTGRES_READ_URL` (a streaming replica of that PostgreSQL database) reads go to
    /// the replica and writes to the primary: [`OrmConfig::connect`] then returns a
    /// [`mod8_orm::replica::ReplicaRouter`], the app's one handle (its reads follow its own
    /// writes from the primary for `read_your_writes`, see [`mod8_orm::ReplicaSettings`]).
    pub sql: OrmConfig,
    /// Document store (`MOD8_MONGODB_URL`; in memory when unset). In memory its event log is
    /// bounded, evicting the oldest events: `MOD8_DOCSTORE_MAX_EVENTS` (default 100,000),
    /// `MOD8_DOCSTORE_MAX_EVENT_BYTES` (default 64 MiB), `MOD8_DOCSTORE_EVENT_RETENTION_SECS`
    /// (default none) — see [`mod8_docstore::MemoryLimits`].
    pub docs: DocStoreConfig,
    /// Cache (`MOD8_REDIS_URL`; in-process only when unset).
    pub cache: CacheConfig,
    /// Broker (`MOD8_AMQP_URL`; in-process when unset). [`App::build`](crate::App::build)
    /// declares [`AppConfig::topology`] on it. In-process, every queue is bounded and a full
    /// one refuses publishes (the publisher keeps the message): `MOD8_MQ_MAX_QUEUE_LENGTH`
    /// (default 10,000) and `MOD8_MQ_MAX_QUEUE_BYTES` (default 16 MiB) — see
    /// [`mod8_mq::memory::MemoryQueueLimits`].
    pub mq: MqConfig,
    /// The app's exchanges, queues and retry policy on the broker: declared when connecting,
    /// and what the consumers, the publishers and the metrics name.
    pub topology: Topology,
    /// Queue of the live-dashboard consumer.
    pub live_queue: String,
    /// How long personalised recommendations stay cached.
    pub recommendations_ttl: Duration,
    /// How long profiles and predictions stay cached.
    pub profile_ttl: Duration,
    /// Events by one user within [`AppConfig::alert_window`] that raise an alert
    /// (`MOD8_ALERT_THRESHOLD`, default 100).
    pub alert_threshold: u64,
    /// The sliding window of the alert threshold (`MOD8_ALERT_WINDOW_SECS`, default 60 s).
    pub alert_window: Duration,
    /// Longest any single call to a dependency may take.
    pub call_timeout: Duration,
    /// How often the outbox relay looks for unsent rows when nothing woke it.
    pub outbox_poll: Duration,
    /// How long a claimed outbox row is reserved for one relay before another pass (or
    /// process) may claim it again; a failed publish is retried after this.
    pub outbox_lease: Duration,
    /// How long sent outbox rows are kept before the relay deletes them (default 7 days).
    pub outbox_retention: Duration,
    /// How old the recommendation model may get before a request rebuilds it.
    pub model_refresh: Duration,
    /// How often the insights worker recomputes the segment report over every user and
    /// rebuilds the recommendation model (`MOD8_INSIGHTS_REFRESH_SECS`, default 300 s); the
    /// model is also rebuilt after orders.
    pub insights_refresh: Duration,
    /// Bearer-token keys and lifetime (`MOD8_AUTH_KEYS`, `MOD8_TOKEN_TTL_SECS`).
    pub auth: AuthConfig,
    /// Rate and connection limits of the HTTP server.
    pub http: HttpLimits,
    /// The live dashboard feed behind `GET /api/live` (`MOD8_LIVE_MAX_SUBSCRIBERS`; see
    /// [`crate::live_feed`]).
    pub live_feed: crate::live_feed::LiveFeedConfig,
    /// How often and how patiently `/metrics`' dependency figures are collected in the
    /// background (`MOD8_METRICS_INTERVAL_SECS`).
    pub metrics: crate::dependency_figures::MetricsSettings,
}

impl AppConfig {
    /// From the `MOD8_*` variables; every part falls back to its embedded default.
    ///
    /// # Errors
    ///
    /// A variable that is set but not valid (for example a malformed cache setting).
    pub fn from_env() -> anyhow::Result<Self> {
        Self {
            sql: OrmConfig::from_env()?,
            docs: DocStoreConfig::from_env()?,
            cache: {
                let cache = CacheConfig::from_env()?.with_name("app");
                if std::env::var_os("MOD8_CACHE_L1_CAPACITY").is_none() {
                    cache.with_l1_capacity(DEFAULT_L1_CAPACITY)
                } else {
                    cache
                }
            },
            mq: MqConfig::from_env()?,
            ..Self::embedded()
        }
        .with_alert_settings(
            std::env::var("MOD8_ALERT_THRESHOLD").ok().as_deref(),
            std::env::var("MOD8_ALERT_WINDOW_SECS").ok().as_deref(),
        )?
        .with_insights_refresh(std::env::var("MOD8_INSIGHTS_REFRESH_SECS").ok().as_deref())?
        .with_queue_prefix(std::env::var("MOD8_QUEUE_PREFIX").ok().as_deref())?
        .with_metrics_interval(std::env::var("MOD8_METRICS_INTERVAL_SECS").ok().as_deref())?
        .with_security(|name| std::env::var(name).ok())?
        .with_live_feed(std::env::var("MOD8_LIVE_MAX_SUBSCRIBERS").ok().as_deref())
    }

    /// Applies a `MOD8_LIVE_MAX_SUBSCRIBERS` value (unset keeps the default).
    fn with_live_feed(mut self, max_subscribers: Option<&str>) -> anyhow::Result<Self> {
        if let Some(raw) = max_subscribers {
            self.live_feed.max_subscribers = match raw.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => anyhow::bail!(
                    "MOD8_LIVE_MAX_SUBSCRIBERS={raw:?}: expected a whole number of subscribers above 0"
                ),
            };
        }
        Ok(self)
    }

    /// Applies the auth and HTTP-limit variables, read through `var` (unset keeps the default);
    /// separate from [`AppConfig::from_env`] so it is testable without the process environment.
    fn with_security(mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        fn number<T: std::str::FromStr + PartialOrd + Default>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
            what: &str,
        ) -> anyhow::Result<Option<T>> {
            let Some(raw) = var(name) else {
                return Ok(None);
            };
            match raw.trim().parse::<T>() {
                Ok(n) if n > T::default() => Ok(Some(n)),
                _ => anyhow::bail!("{name}={raw:?}: expected a whole number of {what} above 0"),
            }
        }
        if let Some(raw) = var("MOD8_AUTH_KEYS") {
            self.auth.keys = AuthConfig::parse_keys(&raw)?;
        }
        if let Some(n) = number::<u64>(&var, "MOD8_TOKEN_TTL_SECS", "seconds")? {
            self.auth.token_ttl = Duration::from_secs(n);
        }
        let limits = &mut self.http;
        if let Some(n) = number(&var, "MOD8_RATE_LIMIT_PER_SEC", "requests")? {
            limits.requests_per_second = n;
        }
        if let Some(n) = number(&var, "MOD8_RATE_LIMIT_BURST", "requests")? {
            limits.request_burst = n;
        }
        if let Some(n) = number(&var, "MOD8_REGISTRATIONS_PER_MIN", "registrations")? {
            limits.registrations_per_minute = n;
        }
        if let Some(n) = number(&var, "MOD8_REGISTRATION_BURST", "registrations")? {
            limits.registration_burst = n;
        }
        if let Some(n) = number(&var, "MOD8_MAX_CONNECTIONS", "connections")? {
            limits.max_connections = n;
        }
        if let Some(n) = number::<u64>(&var, "MOD8_HEADER_READ_TIMEOUT_SECS", "seconds")? {
            limits.header_read_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number::<u64>(&var, "MOD8_IDLE_TIMEOUT_SECS", "seconds")? {
            limits.idle_timeout = Duration::from_secs(n);
        }
        Ok(self)
    }

    /// Applies a `MOD8_QUEUE_PREFIX` value (unset or blank keeps the default names): every
    /// exchange and queue of [`AppConfig::topology`] and the live-dashboard queue are named
    /// `<prefix>.<name>`, so several deployments (or test runs) can share one broker. Every
    /// process of one deployment must use the same prefix.
    fn with_queue_prefix(mut self, prefix: Option<&str>) -> anyhow::Result<Self> {
        let Some(prefix) = prefix.map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(self);
        };
        let valid = prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            anyhow::bail!(
                "MOD8_QUEUE_PREFIX={prefix:?}: expected 1-64 characters a-z, A-Z, 0-9, `_`, `-`, `.`"
            );
        }
        self.topology = Topology::with_prefix(prefix);
        self.live_queue = format!("{prefix}.{LIVE_QUEUE}");
        Ok(self)
    }

    /// Applies a `MOD8_METRICS_INTERVAL_SECS` value (unset keeps the default).
    fn with_metrics_interval(mut self, secs: Option<&str>) -> anyhow::Result<Self> {
        self.metrics = self.metrics.with_interval_secs(secs)?;
        Ok(self)
    }

    /// Applies a `MOD8_INSIGHTS_REFRESH_SECS` value (unset keeps the default).
    fn with_insights_refresh(mut self, secs: Option<&str>) -> anyhow::Result<Self> {
        if let Some(raw) = secs {
            self.insights_refresh = match raw.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => anyhow::bail!(
                    "MOD8_INSIGHTS_REFRESH_SECS={raw:?}: expected a whole number of seconds above 0"
                ),
            };
        }
        Ok(self)
    }

    /// Applies `MOD8_ALERT_THRESHOLD` / `MOD8_ALERT_WINDOW_SECS` values (unset keeps the
    /// default); separate from [`AppConfig::from_env`] so it is testable without touching the
    /// process environment.
    fn with_alert_settings(
        mut self,
        threshold: Option<&str>,
        window_secs: Option<&str>,
    ) -> anyhow::Result<Self> {
        if let Some(raw) = threshold {
            self.alert_threshold = match raw.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => anyhow::bail!(
                    "MOD8_ALERT_THRESHOLD={raw:?}: expected a whole number of events above 0"
                ),
            };
        }
        if let Some(raw) = window_secs {
            self.alert_window = match raw.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => anyhow::bail!(
                    "MOD8_ALERT_WINDOW_SECS={raw:?}: expected a whole number of seconds above 0"
                ),
            };
        }
        Ok(self)
    }

    /// Every part on its embedded default, whatever the environment says.
    pub fn embedded() -> Self {
        Self {
            sql: OrmConfig::new(mod8_orm::DEFAULT_URL),
            docs: DocStoreConfig::default(),
            cache: CacheConfig::default()
                .with_name("app")
                .with_l1_capacity(DEFAULT_L1_CAPACITY),
            mq: MqConfig::default(),
            topology: Topology::default(),
            live_queue: LIVE_QUEUE.to_owned(),
            recommendations_ttl: Duration::from_secs(3600),
            profile_ttl: Duration::from_secs(600),
            alert_threshold: 100,
            alert_window: Duration::from_secs(60),
            call_timeout: Duration::from_secs(5),
            outbox_poll: Duration::from_millis(500),
            outbox_lease: Duration::from_secs(10),
            outbox_retention: Duration::from_secs(7 * 24 * 3600),
            model_refresh: Duration::from_secs(300),
            insights_refresh: Duration::from_secs(300),
            auth: AuthConfig::default(),
            http: HttpLimits::default(),
            live_feed: crate::live_feed::LiveFeedConfig::default(),
            metrics: crate::dependency_figures::MetricsSettings::default(),
        }
    }

    /// One line per part saying which backend it uses, for the startup log and the demo.
    /// URLs are shown with their passwords masked (`postgres://mod8:***@host/db`), and a
    /// backend reached over TLS says so.
    pub fn describe(&self) -> Vec<String> {
        let tls = |on: bool| if on { ", TLS" } else { "" };
        let sql = if self.sql.url.starts_with("postgres") {
            let verified = self.sql.url.contains("sslmode=verify-full")
                || self.sql.url.contains("sslmode=verify-ca");
            format!(
                "PostgreSQL `{}` (MOD8_POSTGRES_URL{})",
                self.sql.redacted_url(),
                tls(verified)
            )
        } else {
            format!(
                "SQLite `{}` (embedded; set MOD8_POSTGRES_URL for PostgreSQL)",
                self.sql.redacted_url()
            )
        };
        let docs = if self.docs.url.starts_with("mongodb") {
            let on = self.docs.url.contains("tls=true") || self.docs.url.contains("ssl=true");
            format!(
                "MongoDB wire protocol `{}` (MOD8_MONGODB_URL{})",
                self.docs.redacted_url(),
                tls(on)
            )
        } else {
            "in-memory document store (embedded; set MOD8_MONGODB_URL for MongoDB)".to_owned()
        };
        let cache = match self.cache.redacted_url() {
            Some(url) => format!(
                "in-process L1 + Redis L2 `{url}` (MOD8_REDIS_URL{})",
                tls(url.starts_with("rediss"))
            ),
            None => "in-process cache (embedded; set MOD8_REDIS_URL for Redis)".to_owned(),
        };
        let mq = if self.mq.url.starts_with("amqp") {
            format!(
                "RabbitMQ `{}` (MOD8_AMQP_URL{})",
                self.mq.redacted_url(),
                tls(self.mq.url.starts_with("amqps"))
            )
        } else {
            "in-process broker (embedded; set MOD8_AMQP_URL for RabbitMQ)".to_owned()
        };
        let mut lines = vec![
            format!("sql:      {sql}"),
            format!("docs:     {docs}"),
            format!("cache:    {cache}"),
            format!("messages: {mq}"),
        ];
        lines.extend(self.describe_read_replica());
        lines
    }

    /// The startup line for the SQL read replica, when `MOD8_POSTGRES_READ_URL` set one.
    fn describe_read_replica(&self) -> Option<String> {
        let url = self.sql.redacted_read_url()?;
        Some(format!(
            "sql read: PostgreSQL replica `{url}` (MOD8_POSTGRES_READ_URL; reads within {} ms of \
             the primary, writes and a handle's reads after its own writes on the primary)",
            self.sql.replica.max_lag.as_millis()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn auth_keys_and_limits_come_from_their_variables() {
        let a = "a".repeat(32);
        let b = "b".repeat(40);
        let config = AppConfig::embedded()
            .with_security(vars(&[
                ("MOD8_AUTH_KEYS", &format!("new:{a}, old:{b}")),
                ("MOD8_TOKEN_TTL_SECS", "60"),
                ("MOD8_REGISTRATIONS_PER_MIN", "3"),
                ("MOD8_MAX_CONNECTIONS", "7"),
                ("MOD8_HEADER_READ_TIMEOUT_SECS", "2"),
            ]))
            .unwrap();
        let kids: Vec<_> = config.auth.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["new", "old"]);
        assert_eq!(config.auth.keys[1].secret, b.as_bytes());
        assert_eq!(config.auth.token_ttl, Duration::from_secs(60));
        assert_eq!(config.http.registrations_per_minute, 3);
        assert_eq!(config.http.max_connections, 7);
        assert_eq!(config.http.header_read_timeout, Duration::from_secs(2));
        assert_eq!(
            config.http.requests_per_second,
            HttpLimits::default().requests_per_second
        );
        assert!(!format!("{config:?}").contains(&a), "a secret in Debug");

        let defaults = AppConfig::embedded().with_security(vars(&[])).unwrap();
        assert!(defaults.auth.keys.is_empty());
        assert_eq!(defaults.auth.token_ttl, DEFAULT_TOKEN_TTL);
    }

    #[test]
    fn bad_auth_keys_are_refused_naming_the_key_not_the_secret() {
        let long = "s".repeat(32);
        for (raw, expected) in [
            ("short:tooshort".to_owned(), "\"short\""),
            ("nocolon".to_owned(), "entry 1"),
            (format!(":{long}"), "empty key id"),
            (format!("k:{long},k:{long}"), "twice"),
            (" , ".to_owned(), "lists no"),
        ] {
            let err = AppConfig::embedded()
                .with_security(vars(&[("MOD8_AUTH_KEYS", &raw)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{raw}: {err}");
            assert!(!err.contains("tooshort") && !err.contains(&long), "{err}");
        }
        let err = AppConfig::embedded()
            .with_security(vars(&[("MOD8_RATE_LIMIT_PER_SEC", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MOD8_RATE_LIMIT_PER_SEC"), "{err}");
    }

    #[test]
    fn the_startup_lines_and_debug_output_mask_every_password() {
        let secret = "s3cret-pw";
        let mut config = AppConfig::embedded();
        config.sql = OrmConfig::new(format!(
            "postgres://mod8:{secret}@db:5432/mod8?sslmode=verify-full&sslrootcert=/ca.pem"
        ));
        config.docs = DocStoreConfig::new(format!(
            "mongodb://mod8:{secret}@docs:27017/?tls=true&tlsCAFile=/ca.pem"
        ));
        config.cache = config
            .cache
            .with_redis_url(Some(format!("rediss://:{secret}@cache:6380/")));
        config.mq = MqConfig::new(format!("amqps://guest:{secret}@mq:5671/%2f"));
        let lines = config.describe().join("\n");
        assert!(!lines.contains(secret), "{lines}");
        for expected in [
            "postgres://mod8:***@db:5432/mod8?sslmode=verify-full&sslrootcert=/ca.pem",
            "mongodb://mod8:***@docs:27017/",
            "rediss://:***@cache:6380/",
            "amqps://guest:***@mq:5671/%2f",
        ] {
            assert!(lines.contains(expected), "{expected} in {lines}");
        }
        assert_eq!(lines.matches(", TLS)").count(), 4, "{lines}");
        let debug = format!("{config:?}");
        assert!(!debug.contains(secret), "{debug}");
    }

    #[test]
    fn the_queue_prefix_names_every_queue_and_exchange() {
        let config = AppConfig::embedded()
            .with_queue_prefix(Some(" run_1 "))
            .unwrap();
        assert_eq!(config.topology, Topology::with_prefix("run_1"));
        assert_eq!(config.live_queue, "run_1.live_dashboard_queue");
        for unset in [None, Some(""), Some("  ")] {
            let config = AppConfig::embedded().with_queue_prefix(unset).unwrap();
            assert_eq!(config.topology, Topology::default());
            assert_eq!(config.live_queue, LIVE_QUEUE);
        }
        let err = AppConfig::embedded()
            .with_queue_prefix(Some("a b"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MOD8_QUEUE_PREFIX"), "{err}");
    }

    #[test]
    fn a_read_replica_gets_its_own_startup_line_with_the_password_masked() {
        let mut config = AppConfig::embedded();
        assert_eq!(config.describe().len(), 4);
        config.sql = OrmConfig::new("postgres://mod8:pw1@db:5432/mod8")
            .with_read_url("postgres://mod8:pw2@replica:5433/mod8");
        let lines = config.describe();
        assert_eq!(lines.len(), 5);
        assert!(
            lines[4].starts_with(
                "sql read: PostgreSQL replica `postgres://mod8:***@replica:5433/mod8`"
            ),
            "{lines:?}"
        );
        assert!(!lines.join("\n").contains("pw2"), "{lines:?}");
    }

    #[test]
    fn alert_settings_come_from_their_variables() {
        let config = AppConfig::embedded()
            .with_alert_settings(Some("3"), Some(" 15 "))
            .unwrap();
        assert_eq!(config.alert_threshold, 3);
        assert_eq!(config.alert_window, Duration::from_secs(15));
        let defaults = AppConfig::embedded()
            .with_alert_settings(None, None)
            .unwrap();
        assert_eq!(defaults.alert_threshold, 100);
        assert_eq!(defaults.alert_window, Duration::from_secs(60));
        for (threshold, window) in [(Some("0"), None), (Some("many"), None), (None, Some("-1"))] {
            let err = AppConfig::embedded()
                .with_alert_settings(threshold, window)
                .unwrap_err()
                .to_string();
            assert!(err.contains("MOD8_ALERT_"), "{err}");
        }
    }

    #[test]
    fn the_live_subscriber_bound_comes_from_its_variable() {
        let config = AppConfig::embedded().with_live_feed(Some(" 3 ")).unwrap();
        assert_eq!(config.live_feed.max_subscribers, 3);
        let defaults = AppConfig::embedded().with_live_feed(None).unwrap();
        assert_eq!(defaults.live_feed.max_subscribers, 64);
        for bad in ["0", "lots", "-2"] {
            let err = AppConfig::embedded()
                .with_live_feed(Some(bad))
                .unwrap_err()
                .to_string();
            assert!(err.contains("MOD8_LIVE_MAX_SUBSCRIBERS"), "{err}");
        }
    }
}
