//! How to reach Redis and how to lay out keys in it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to reach Redis and how to lay out keys.
///
/// Every key is stored as `{prefix}:v{schema_version}:k:{key}` and every tag set as
/// `{prefix}:v{schema_version}:t:{tag}`: bumping the schema version when a cached type changes
/// shape makes old bytes unreachable instead of misread (they expire on their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://host:port/db`, or for a Redis Cluster
    /// `redis-cluster://host:port?node=host:port&node=host:port` (one seed node in the
    /// authority, others as `node` parameters; fred reads the rest of the topology from the
    /// cluster). These are fred's URL forms; `rediss://` needs TLS, which is not compiled in.
    /// [`CacheConfig::from_env`](crate::CacheConfig::from_env) reads it from `MOD8_REDIS_URL`.
    pub url: String,
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

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/".into(),
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
