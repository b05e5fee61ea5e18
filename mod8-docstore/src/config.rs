//! Choosing and building a backend: by URL scheme, from the environment, or with setters.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{DocStore, Error, MemoryDocStore, Result};

/// A shared, type-erased document store, as [`DocStoreConfig::connect`] returns it.
pub type DynDocStore = Arc<dyn DocStore>;

/// The database used when neither the configuration nor the URL names one.
pub const DEFAULT_DATABASE: &str = "mod8";

/// The embedded default: the in-memory store.
const MEMORY_URL: &str = "memory://";

/// The environment variable naming the MongoDB server; unset means in memory.
const URL_VAR: &str = "MOD8_MONGODB_URL";
/// The environment variable overriding the database name.
const DATABASE_VAR: &str = "MOD8_MONGODB_DATABASE";
/// The environment variable bounding the in-memory backend's event count.
const MAX_EVENTS_VAR: &str = "MOD8_DOCSTORE_MAX_EVENTS";
/// The environment variable bounding the in-memory backend's event bytes.
const MAX_EVENT_BYTES_VAR: &str = "MOD8_DOCSTORE_MAX_EVENT_BYTES";
/// The environment variable setting the in-memory backend's event retention, in seconds.
const EVENT_RETENTION_VAR: &str = "MOD8_DOCSTORE_EVENT_RETENTION_SECS";

/// Events the in-memory backend keeps by default ([`MemoryLimits::max_events`]).
pub const DEFAULT_MAX_EVENTS: usize = 100_000;
/// The in-memory backend's default event budget in bytes ([`MemoryLimits::max_event_bytes`]):
/// 64 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;

/// The bounds of the in-memory backend's event log ([`MemoryDocStore`]), so no client can
/// exhaust the process's memory by logging events: once a bound is reached the oldest events
/// (in the order they were stored) are evicted to make room, and each eviction is counted
/// ([`crate::MemoryStats::evictions`]). The MongoDB backend ignores them (the server's disk
/// and its own TTL indexes bound it).
///
/// The defaults suit a development or embedded process: [`DEFAULT_MAX_EVENTS`] events,
/// [`DEFAULT_MAX_EVENT_BYTES`] bytes, no age limit.
///
/// ```
/// use mod8_docstore::{DocStoreConfig, MemoryLimits};
/// use std::time::Duration;
/// let config = DocStoreConfig::default()
///     .with_max_events(10_000)
///     .with_max_event_bytes(8 << 20)
///     .with_event_retention(Duration::from_secs(3_600));
/// assert_eq!(config.memory.max_events, 10_000);
/// assert_eq!(MemoryLimits::default().max_events, 100_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryLimits {
    /// The most events kept (at least 1; default [`DEFAULT_MAX_EVENTS`],
    /// `MOD8_DOCSTORE_MAX_EVENTS`).
    pub max_events: usize,
    /// The most bytes the kept events may take, as the store estimates their in-memory size
    /// (strings and JSON values at what they occupy in memory, not their serialized length,
    /// which is several times smaller for small values). Default [`DEFAULT_MAX_EVENT_BYTES`]
    /// (`MOD8_DOCSTORE_MAX_EVENT_BYTES`). One event larger than the whole budget is refused
    /// with [`Error::Validation`] naming `event`.
    pub max_event_bytes: usize,
    /// How long an event is kept after it was stored (not after its own `timestamp`, which
    /// the caller may back-date); `None` (the default) keeps events until the other bounds
    /// evict them (`MOD8_DOCSTORE_EVENT_RETENTION_SECS`). Applied as events are logged.
    pub event_retention: Option<Duration>,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_events: DEFAULT_MAX_EVENTS,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            event_retention: None,
        }
    }
}

/// Where the document store lives.
///
/// ```
/// use mod8_docstore::DocStoreConfig;
/// let config = DocStoreConfig::default().with_database("analytics");
/// assert_eq!(config.url, "memory://"); // the embedded default
/// let config = DocStoreConfig::new("mongodb://127.0.0.1:27017/").with_database("analytics");
/// assert_eq!(config.database.as_deref(), Some("analytics"));
/// ```
///
/// Its `Debug` output shows the URL with the password masked (`mongodb://user:***@...`).
///
/// TLS is set in the URL (rustls, no OpenSSL): `mongodb://host:port/?tls=true&tlsCAFile=/path/to/ca.pem`
/// checks the server's certificate against the CA file and its name against the host.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DocStoreConfig {
    /// `mongodb://...` / `mongodb+srv://...` for MongoDB, `memory://` (the default) or an
    /// empty string for in memory.
    pub url: String,
    /// Database name; when `None`, the URL's path, else [`DEFAULT_DATABASE`].
    pub database: Option<String>,
    /// The bounds of the in-memory backend (ignored by MongoDB).
    pub memory: MemoryLimits,
}

impl std::fmt::Debug for DocStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocStoreConfig")
            .field("url", &self.redacted_url())
            .field("database", &self.database)
            .field("memory", &self.memory)
            .finish()
    }
}

impl Default for DocStoreConfig {
    fn default() -> Self {
        DocStoreConfig::new(MEMORY_URL)
    }
}

impl DocStoreConfig {
    /// The store at `url` (`mongodb://...`, `mongodb+srv://...` or `memory://`), with the
    /// database named by the URL's path, else [`DEFAULT_DATABASE`].
    pub fn new(url: impl Into<String>) -> Self {
        DocStoreConfig {
            url: url.into(),
            database: None,
            memory: MemoryLimits::default(),
        }
    }

    /// `MOD8_MONGODB_URL` (unset or empty: in memory) and `MOD8_MONGODB_DATABASE` (unset or
    /// empty: from the URL), and the in-memory backend's bounds ([`MemoryLimits`]):
    /// `MOD8_DOCSTORE_MAX_EVENTS`, `MOD8_DOCSTORE_MAX_EVENT_BYTES` and
    /// `MOD8_DOCSTORE_EVENT_RETENTION_SECS` (unset or empty: the defaults).
    /// [`Error::Validation`] naming the variable for a URL of an unknown scheme, a database
    /// name MongoDB would refuse, or a bound that is not a whole number above 0.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`DocStoreConfig::from_env`] reading the variables through `var`.
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut config = DocStoreConfig::default();
        if let Some(url) = var(URL_VAR) {
            if backend_of(&url).is_none() {
                return Err(Error::validation(URL_VAR, unknown_scheme(&url)));
            }
            config.url = url;
        }
        if let Some(name) = var(DATABASE_VAR) {
            check_database_name(&name)
                .map_err(|message| Error::validation(DATABASE_VAR, message))?;
            config.database = Some(name);
        }
        let positive = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|raw| match raw.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(Error::validation(
                        name,
                        format!("{raw:?} is not a whole number above 0"),
                    )),
                })
                .transpose()
        };
        if let Some(n) = positive(MAX_EVENTS_VAR)? {
            config.memory.max_events = n;
        }
        if let Some(n) = positive(MAX_EVENT_BYTES_VAR)? {
            config.memory.max_event_bytes = n;
        }
        if let Some(secs) = positive(EVENT_RETENTION_VAR)? {
            config.memory.event_retention = Some(Duration::from_secs(secs as u64));
        }
        Ok(config)
    }

    /// These settings with the in-memory backend bounded by `limits`.
    pub fn with_memory_limits(mut self, limits: MemoryLimits) -> Self {
        self.memory = limits;
        self
    }

    /// These settings with the in-memory backend keeping at most `max` events (at least 1).
    pub fn with_max_events(mut self, max: usize) -> Self {
        self.memory.max_events = max;
        self
    }

    /// These settings with the in-memory backend's events taking at most about `bytes`
    /// ([`MemoryLimits::max_event_bytes`]).
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.memory.max_event_bytes = bytes;
        self
    }

    /// These settings with the in-memory backend keeping an event at most `retention` after
    /// it was stored.
    pub fn with_event_retention(mut self, retention: Duration) -> Self {
        self.memory.event_retention = Some(retention);
        self
    }

    /// The URL with its password masked (`mongodb://user:***@host/`), for logs and startup
    /// lines.
    pub fn redacted_url(&self) -> String {
        mod8_rules::redact::redact_url(&self.url)
    }

    /// These settings with the database `name` instead of the URL's.
    pub fn with_database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// Connects to the backend named by the URL's scheme. [`Error::Validation`] naming `url`
    /// for an unknown scheme; [`Error::Unsupported`] for `mongodb://` when the crate was built
    /// without its `mongodb` feature.
    pub async fn connect(&self) -> Result<DynDocStore> {
        match backend_of(&self.url) {
            Some(Backend::Memory) => Ok(Arc::new(MemoryDocStore::with_limits(self.memory))),
            Some(Backend::Mongodb) => connect_mongodb(self).await,
            None => Err(Error::validation("url", unknown_scheme(&self.url))),
        }
    }
}

/// The backends a URL can name.
enum Backend {
    Memory,
    Mongodb,
}

fn backend_of(url: &str) -> Option<Backend> {
    match url.trim() {
        "" | "memory://" | "memory:" => Some(Backend::Memory),
        url if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") => {
            Some(Backend::Mongodb)
        }
        _ => None,
    }
}

fn unknown_scheme(url: &str) -> String {
    let url = url.trim();
    format!(
        "unknown scheme in {:?}: expected mongodb://, mongodb+srv:// or memory://",
        url.split("://").next().unwrap_or(url)
    )
}

/// The rules MongoDB applies to database names (on every platform).
fn check_database_name(name: &str) -> std::result::Result<(), String> {
    const FORBIDDEN: &[char] = &[
        '/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0',
    ];
    if name.len() > 63 {
        return Err(format!("database name {name:?} is longer than 63 bytes"));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(format!("database name {name:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(feature = "mongodb")]
async fn connect_mongodb(config: &DocStoreConfig) -> Result<DynDocStore> {
    Ok(Arc::new(crate::MongoDocStore::connect(config).await?))
}

#[cfg(not(feature = "mongodb"))]
async fn connect_mongodb(_config: &DocStoreConfig) -> Result<DynDocStore> {
    Err(Error::unsupported(
        "connect to mongodb:// (mod8-docstore was built without its `mongodb` feature)",
        "mongodb",
    ))
}

/// Connects to the backend named by `url`'s scheme: `mongodb://` or `mongodb+srv://` for
/// MongoDB (database from the URL path, else [`DEFAULT_DATABASE`]), `memory://` or an empty
/// string for the in-memory store. The same as `DocStoreConfig::new(url).connect()`.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = mod8_docstore::connect("memory://").await?;
/// assert_eq!(store.backend(), "memory");
/// assert!(mod8_docstore::connect("ftp://x").await.is_err());
/// # Ok::<(), mod8_docstore::Error>(()) }).unwrap();
/// ```
pub async fn connect(url: &str) -> Result<DynDocStore> {
    DocStoreConfig::new(url).connect().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_mongodb_refuses_are_caught() {
        assert!(check_database_name("mod8_docstore_0a1b").is_ok());
        for bad in ["a.b", "a/b", "a b", "$x", &"x".repeat(64)] {
            assert!(check_database_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemes_pick_backends() {
        assert!(matches!(backend_of(""), Some(Backend::Memory)));
        assert!(matches!(backend_of("memory://"), Some(Backend::Memory)));
        assert!(matches!(
            backend_of("mongodb+srv://x/"),
            Some(Backend::Mongodb)
        ));
        assert!(backend_of("postgres://x").is_none());
    }

    #[test]
    fn the_environment_is_read_and_checked() {
        let vars = |url: &'static str, db: &'static str| {
            move |name: &str| match name {
                URL_VAR => Some(url.to_owned()),
                DATABASE_VAR => Some(db.to_owned()),
                _ => None,
            }
        };
        // Unset (or blank) is the embedded default, not an error.
        let config = DocStoreConfig::from_vars(|_| None).unwrap();
        assert_eq!(config, DocStoreConfig::default());
        assert_eq!(
            DocStoreConfig::from_vars(vars(" ", "")).unwrap().url,
            "memory://"
        );
        let config = DocStoreConfig::from_vars(vars(" mongodb://h:27017/ ", "m8")).unwrap();
        assert_eq!(
            config,
            DocStoreConfig::new("mongodb://h:27017/").with_database("m8")
        );
        let err = DocStoreConfig::from_vars(vars("postgres://h/", "")).unwrap_err();
        assert_eq!(err.field(), Some(URL_VAR));
        let err = DocStoreConfig::from_vars(vars("", "a.b")).unwrap_err();
        assert_eq!(err.field(), Some(DATABASE_VAR));
    }

    #[test]
    fn memory_bounds_come_from_their_variables() {
        let config = DocStoreConfig::from_vars(|name| match name {
            MAX_EVENTS_VAR => Some("500".into()),
            MAX_EVENT_BYTES_VAR => Some(" 1048576 ".into()),
            EVENT_RETENTION_VAR => Some("60".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            config.memory,
            MemoryLimits {
                max_events: 500,
                max_event_bytes: 1 << 20,
                event_retention: Some(Duration::from_secs(60)),
            }
        );
        for var in [MAX_EVENTS_VAR, MAX_EVENT_BYTES_VAR, EVENT_RETENTION_VAR] {
            for bad in ["0", "-1", "lots"] {
                let err = DocStoreConfig::from_vars(|name| (name == var).then(|| bad.into()))
                    .unwrap_err();
                assert_eq!(err.field(), Some(var), "{var}={bad}");
            }
        }
    }
}
