//! How to reach Redis and how to lay out keys in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to reach Redis and how to lay out keys.
///
/// Every key is stored as `{prefix}:v{schema_version}:k:{key}` and every tag set as
/// `{prefix}:v{schema_version}:t:{tag}`: bumping the schema version when a cached type changes
/// shape makes old bytes unreachable instead of misread (they expire on their own).
///
/// TLS: a `rediss://` (or `rediss-cluster://`) URL connects over TLS (rustls) and checks the
/// server's certificate against the CA file in [`RedisConfig::tls_ca_file`] and its name
/// against the host. `Debug` output shows the URL with its password masked.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://host:port/db`, or for a Redis Cluster
    /// `redis-cluster://host:port?node=host:port&node=host:port` (one seed node in the
    /// authority, others as `node` parameters; fred reads the rest of the topology from the
    /// cluster). These are fred's URL forms; `rediss://` and `rediss-cluster://` are the same
    /// over TLS. [`CacheConfig::from_env`](crate::CacheConfig::from_env) reads it from
    /// `MOD8_REDIS_URL`.
    pub url: String,
    /// The PEM file of the CA certificates a TLS server's certificate must chain to (required
    /// by `rediss://`; for a server with a public certificate, the system bundle such as
    /// `/etc/ssl/certs/ca-certificates.crt`). Ignored by a plain `redis://` URL.
    pub tls_ca_file: Option<PathBuf>,
    /// The namespace prefix (default `mod8:cache`).
    pub prefix: String,
    /// The schema version in the namespace (default 1).
    pub schema_version: u32,
    /// Per-command timeout; a slower answer is a miss (default 500 ms).
    #[serde(with = "millis")]
    pub command_timeout: Duration,
    /// How long [`RedisStore::connect`](super::RedisStore::connect) waits for the first
    /// connection (default 2 s).
    #[serde(with = "millis")]
    pub connect_timeout: Duration,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("tls_ca_file", &self.tls_ca_file)
            .field("prefix", &self.prefix)
            .field("schema_version", &self.schema_version)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/".into(),
            tls_ca_file: None,
            prefix: "mod8:cache".into(),
            schema_version: 1,
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl RedisConfig {
    /// Defaults with the given URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
    }

    /// The URL with its password masked (`redis://:***@host:6379/`), for logs and errors.
    pub fn redacted_url(&self) -> String {
        mod8_rules::redact::redact_url(&self.url)
    }

    /// Sets the CA file a `rediss://` server's certificate must chain to.
    #[must_use]
    pub fn with_tls_ca(mut self, ca_file: impl AsRef<Path>) -> Self {
        self.tls_ca_file = Some(ca_file.as_ref().to_path_buf());
        self
    }

    /// Sets how long [`RedisStore::connect`](super::RedisStore::connect) waits for the first
    /// connection.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the namespace prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the schema version.
    #[must_use]
    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Sets the per-command timeout.
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The key prefix, `{prefix}:v{schema_version}:`.
    pub(super) fn namespace(&self) -> String {
        format!("{}:v{}:", self.prefix, self.schema_version)
    }
}
