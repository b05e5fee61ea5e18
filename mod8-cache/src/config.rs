//! Building a [`Cache`] from configuration: in-process alone, or tiered over Redis.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Cache, Codec, Error, MemoryStore, Result};

/// Everything needed to build the application's [`Cache`].
///
/// With `redis_url` unset (or `memory://`) the cache is in-process only (one process, lost on
/// restart); with a Redis URL, an in-process L1 sits in front of Redis
/// ([`TieredStore`](crate::TieredStore)).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use mod8_cache::CacheConfig;
///
/// let cache = CacheConfig::new("memory://")
///     .with_name("recommendations")
///     .with_l1_capacity(1_000)
///     .connect()
///     .await?;
/// assert_eq!((cache.name(), cache.backend()), ("recommendations", "memory"));
/// # Ok::<(), mod8_cache::Error>(()) }).unwrap();
/// ```
///
/// `Debug` output shows the Redis URL with its password masked.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// Redis URL (`MOD8_REDIS_URL`); `None` for in-process only. `rediss://` connects over
    /// TLS, verifying the server against [`CacheConfig::tls_ca_file`].
    pub redis_url: Option<String>,
    /// The PEM file of the CA certificates a `rediss://` server's certificate must chain to
    /// (`MOD8_TLS_CA_FILE`).
    pub tls_ca_file: Option<PathBuf>,
    /// The name in logs and metrics labels.
    pub name: String,
    /// L1 capacity in entries (`MOD8_CACHE_L1_CAPACITY`, default 10 000).
    pub l1_capacity: usize,
    /// L1 time to live in seconds, shorter than Redis's (`MOD8_CACHE_L1_TTL_SECS`, default 30).
    /// In front of Redis, `None` or 0 still bounds L1 copies by
    /// [`TieredStore::DEFAULT_L1_TTL`](crate::TieredStore::DEFAULT_L1_TTL); in-process only,
    /// they leave entries without an age bound.
    pub l1_ttl_secs: Option<u64>,
    /// TTL for entries stored without one, in seconds (`MOD8_CACHE_TTL_SECS`, default 300).
    pub default_ttl_secs: Option<u64>,
    /// Value format (`MOD8_CACHE_CODEC`: `json` or `msgpack`).
    pub codec: Codec,
    /// Redis key prefix (`MOD8_CACHE_PREFIX`, default `mod8:cache`).
    pub prefix: String,
    /// Redis schema version (`MOD8_CACHE_SCHEMA_VERSION`, default 1).
    pub schema_version: u32,
    /// Publish and apply invalidations across processes over Redis pub/sub (default true).
    pub pubsub: bool,
}

impl std::fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheConfig")
            .field("redis_url", &self.redacted_url())
            .field("tls_ca_file", &self.tls_ca_file)
            .field("name", &self.name)
            .field("l1_capacity", &self.l1_capacity)
            .field("l1_ttl_secs", &self.l1_ttl_secs)
            .field("default_ttl_secs", &self.default_ttl_secs)
            .field("codec", &self.codec)
            .field("prefix", &self.prefix)
            .field("schema_version", &self.schema_version)
            .field("pubsub", &self.pubsub)
            .finish()
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: None,
            tls_ca_file: None,
            name: "default".into(),
            l1_capacity: 10_000,
            l1_ttl_secs: Some(30),
            default_ttl_secs: Some(300),
            codec: Codec::Json,
            prefix: "mod8:cache".into(),
            schema_version: 1,
            pubsub: true,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    env(name)
        .map(|v| {
            v.parse()
                .map_err(|_| Error::validation(name, format!("{v:?} is not valid")))
        })
        .transpose()
}

impl CacheConfig {
    /// Defaults with the given URL: `memory://` (or empty) for in-process only; `redis://`,
    /// `rediss://` or `redis-cluster://` for an in-process L1 in front of Redis.
    pub fn new(url: impl Into<String>) -> Self {
        CacheConfig::default().with_redis_url(Some(url.into()))
    }

    /// Defaults overridden by the `MOD8_REDIS_URL` and `MOD8_CACHE_*` variables. An unset
    /// `MOD8_REDIS_URL` means in-process only; a malformed value is [`Error::Validation`]
    /// naming the variable.
    pub fn from_env() -> Result<Self> {
        let redis_url = env("MOD8_REDIS_URL");
        if let Some(url) = redis_url.as_deref().filter(|u| !is_memory_url(u)) {
            check_scheme(url).map_err(|e| match e {
                Error::Validation { message, .. } => Error::validation("MOD8_REDIS_URL", message),
                other => other,
            })?;
        }
        let mut config = CacheConfig {
            redis_url,
            tls_ca_file: env("MOD8_TLS_CA_FILE").map(PathBuf::from),
            ..CacheConfig::default()
        };
        if let Some(n) = env_parse("MOD8_CACHE_L1_CAPACITY")? {
            config.l1_capacity = n;
        }
        if let Some(n) = env_parse("MOD8_CACHE_L1_TTL_SECS")? {
            config.l1_ttl_secs = Some(n);
        }
        if let Some(n) = env_parse("MOD8_CACHE_TTL_SECS")? {
            config.default_ttl_secs = Some(n);
        }
        if let Some(codec) = env("MOD8_CACHE_CODEC") {
            config.codec = codec.parse().map_err(|e| match e {
                Error::Validation { message, .. } => Error::validation("MOD8_CACHE_CODEC", message),
                other => other,
            })?;
        }
        if let Some(prefix) = env("MOD8_CACHE_PREFIX") {
            config.prefix = prefix;
        }
        if let Some(v) = env_parse("MOD8_CACHE_SCHEMA_VERSION")? {
            config.schema_version = v;
        }
        Ok(config)
    }

    /// Sets (or clears) the Redis URL.
    #[must_use]
    pub fn with_redis_url(mut self, url: Option<String>) -> Self {
        self.redis_url = url.filter(|u| !u.trim().is_empty());
        self
    }

    /// The Redis URL with its password masked (`redis://:***@host:6379/`), for logs and
    /// startup lines; `None` for in-process only.
    pub fn redacted_url(&self) -> Option<String> {
        self.redis_url
            .as_deref()
            .map(mod8_rules::redact::redact_url)
    }

    /// Sets the CA file a `rediss://` server's certificate must chain to.
    #[must_use]
    pub fn with_tls_ca(mut self, ca_file: impl AsRef<Path>) -> Self {
        self.tls_ca_file = Some(ca_file.as_ref().to_path_buf());
        self
    }

    /// Sets the name used in logs and metrics.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the L1 capacity in entries.
    #[must_use]
    pub fn with_l1_capacity(mut self, capacity: usize) -> Self {
        self.l1_capacity = capacity;
        self
    }

    /// Sets the L1 time to live in seconds (0: see [`CacheConfig::l1_ttl_secs`]).
    #[must_use]
    pub fn with_l1_ttl_secs(mut self, secs: u64) -> Self {
        self.l1_ttl_secs = Some(secs);
        self
    }

    /// Sets the TTL of entries stored without one, in seconds (0: none).
    #[must_use]
    pub fn with_default_ttl_secs(mut self, secs: u64) -> Self {
        self.default_ttl_secs = Some(secs);
        self
    }

    /// Sets the value format.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets the Redis key prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the Redis schema version.
    #[must_use]
    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Sets whether invalidations go to other processes over Redis pub/sub.
    #[must_use]
    pub fn with_pubsub(mut self, pubsub: bool) -> Self {
        self.pubsub = pubsub;
        self
    }

    /// Connects and returns the cache: tiered over Redis when a Redis URL is set (connecting
    /// first), in-process otherwise. A Redis URL with the `redis` feature off is
    /// [`Error::Unsupported`]; another scheme is [`Error::Validation`].
    pub async fn connect(&self) -> Result<Cache> {
        let secs = |s: Option<u64>| s.filter(|s| *s > 0).map(Duration::from_secs);
        let l1 = match secs(self.l1_ttl_secs) {
            Some(ttl) => MemoryStore::ttl(self.l1_capacity, ttl),
            None => MemoryStore::lru(self.l1_capacity),
        };
        let builder = match self.redis_url.as_deref().filter(|u| !is_memory_url(u)) {
            None => Cache::builder(l1),
            Some(url) => self.tiered(url, l1).await?,
        };
        Ok(builder
            .with_name(self.name.clone())
            .with_codec(self.codec)
            .with_default_ttl(secs(self.default_ttl_secs))
            .build())
    }

    #[cfg(feature = "redis")]
    async fn tiered(&self, url: &str, l1: MemoryStore) -> Result<crate::CacheBuilder> {
        check_scheme(url)?;
        let mut redis_config = crate::RedisConfig::new(url)
            .with_prefix(self.prefix.clone())
            .with_schema_version(self.schema_version);
        redis_config.tls_ca_file = self.tls_ca_file.clone();
        let redis = crate::RedisStore::connect(redis_config).await?;
        // No (or a zero) L1 TTL leaves the tier's default bound in place.
        let l1_ttl = Duration::from_secs(self.l1_ttl_secs.unwrap_or(0));
        let options = crate::TierOptions::default()
            .with_l1_ttl(l1_ttl)
            .with_pubsub(self.pubsub);
        let tiered = crate::TieredStore::with_redis(l1, redis, options).await?;
        Ok(Cache::builder(tiered))
    }

    #[cfg(not(feature = "redis"))]
    async fn tiered(&self, url: &str, _l1: MemoryStore) -> Result<crate::CacheBuilder> {
        check_scheme(url)?;
        Err(Error::unsupported(
            "redis (enable the `redis` feature of mod8-cache)",
            "memory",
        ))
    }
}

fn is_memory_url(url: &str) -> bool {
    let url = url.trim();
    url.is_empty() || url.starts_with("memory:")
}

fn check_scheme(url: &str) -> Result<()> {
    let scheme = url.split("://").next().unwrap_or_default();
    match scheme {
        "redis" | "rediss" | "redis-cluster" | "rediss-cluster" | "redis-sentinel"
        | "rediss-sentinel" => Ok(()),
        _ => Err(Error::validation(
            "url",
            format!(
                "unsupported cache URL scheme in {:?} (expected memory://, redis:// or rediss://)",
                mod8_rules::redact::redact_url(url)
            ),
        )),
    }
}

/// Builds a cache from a URL, choosing the backend by scheme: `memory://` (or empty) for
/// in-process only, `redis://`, `rediss://` or `redis-cluster://` for L1 + Redis, with the
/// other settings at their defaults.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cache = mod8_cache::connect("memory://").await?;
/// assert_eq!(cache.backend(), "memory");
/// assert!(mod8_cache::connect("ftp://nope").await.is_err());
/// # Ok::<(), mod8_cache::Error>(()) }).unwrap();
/// ```
pub async fn connect(url: &str) -> Result<Cache> {
    CacheConfig::new(url).connect().await
}
