//! Connection settings and [`connect`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repository::DynDatabase;

/// The embedded default: an in-memory SQLite database.
pub const DEFAULT_URL: &str = "sqlite::memory:";

/// Where to connect and how to size the pool. Build it with [`OrmConfig::new`] or
/// [`OrmConfig::from_env`] and the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// let config = mod8_orm::OrmConfig::new("sqlite::memory:")
///     .with_max_connections(4)
///     .with_acquire_timeout(Duration::from_secs(2))
///     .with_migrations(true);
/// assert_eq!(config.max_connections, 4);
/// ```
///
/// Its `Debug` output shows the URL with the password masked (`postgres://mod8:***@...`).
///
/// TLS to PostgreSQL is set in the URL (rustls, no OpenSSL):
/// `postgres://user:password@host/db?sslmode=verify-full&sslrootcert=/path/to/ca.pem` checks the
/// server's certificate against the CA file and its name against the host.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrmConfig {
    /// `postgres://…` / `postgresql://…` or `sqlite:…` (`sqlite::memory:`, `sqlite://path.db`).
    pub url: String,
    /// Most connections in the pool (default 10; an in-memory SQLite database always uses 1).
    pub max_connections: u32,
    /// Connections kept open when idle (default 0).
    pub min_connections: u32,
    /// How long a call waits for a free connection before failing as unavailable (default 10 s).
    pub acquire_timeout: Duration,
    /// Idle connections are closed after this long (default 10 min; `None` keeps them).
    pub idle_timeout: Option<Duration>,
    /// How long SQLite waits on a locked database before failing (default 5 s).
    pub sqlite_busy_timeout: Duration,
    /// SQLite: answer point lookups (a user by id or by e-mail) on the calling thread
    /// through SQLite's C API instead of sqlx's worker thread (default true; see
    /// [`crate::sqlite`]). Any lookup that would wait for a lock, or that reads a value the
    /// direct path does not decode, still goes through sqlx.
    pub sqlite_direct_reads: bool,
    /// Apply the crate's migrations on connect (default true).
    pub migrate: bool,
    /// Ping a pooled PostgreSQL connection before handing it out (default false). The ping
    /// is one more round trip per repository call, doubling the cost of a point lookup;
    /// without it a connection the server dropped fails its next call with
    /// [`Error::Unavailable`] (transient, so a retry gets a fresh connection).
    pub test_before_acquire: bool,
    /// A read replica of the PostgreSQL database at `url` (a streaming hot standby), or
    /// `None` (the default). When set, [`OrmConfig::connect`] returns a
    /// [`ReplicaRouter`](crate::replica::ReplicaRouter): writes and units of work go to `url`,
    /// read-only calls to this server, within the bounds of [`OrmConfig::replica`].
    /// `MOD8_POSTGRES_READ_URL` in [`OrmConfig::from_env`].
    pub read_url: Option<String>,
    /// When reads go to the replica and when they stay on the primary (used only with
    /// [`OrmConfig::read_url`]).
    pub replica: ReplicaSettings,
    /// When a statement counts as slow (default 100 ms) and how often each one is logged with
    /// its plan (see [`crate::StatementLog`]).
    pub slow_statements: crate::SlowStatementSettings,
    /// Vector similarity: embedding dimension, whether PostgreSQL may use pgvector, search
    /// breadth (see [`crate::similarity`]).
    pub similarity: crate::similarity::SimilaritySettings,
}

/// How a [`ReplicaRouter`](crate::replica::ReplicaRouter) decides between the replica and the
/// primary for a read (see the `replica` module for the rules).
///
/// A handle's reads see its own writes when `read_your_writes` is at least
/// `max_lag + lag_check_interval` (the defaults are): a write older than that window is on any
/// replica the router still reads from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaSettings {
    /// The most the replica may be behind the primary and still answer reads (default 1 s);
    /// a replica further behind (or whose lag is unknown) leaves every read to the primary.
    pub max_lag: Duration,
    /// How long one measurement of the lag is used before the next read measures it again
    /// (default 250 ms): the lag is measured on demand, by one caller at a time, not per call.
    pub lag_check_interval: Duration,
    /// After a handle writes (or commits a unit of work), its reads go to the primary for
    /// this long (default 2 s): read-your-writes.
    pub read_your_writes: Duration,
    /// How long a read waits for a replica connection, and a lag measurement for its
    /// answer, before the read goes to the primary (default 2 s).
    pub timeout: Duration,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            max_lag: Duration::from_secs(1),
            lag_check_interval: Duration::from_millis(250),
            read_your_writes: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for OrmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrmConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("sqlite_busy_timeout", &self.sqlite_busy_timeout)
            .field("sqlite_direct_reads", &self.sqlite_direct_reads)
            .field("migrate", &self.migrate)
            .field("test_before_acquire", &self.test_before_acquire)
            .field("read_url", &self.redacted_read_url())
            .field("replica", &self.replica)
            .field("slow_statements", &self.slow_statements)
            .field("similarity", &self.similarity)
            .finish()
    }
}

impl Default for OrmConfig {
    fn default() -> Self {
        OrmConfig {
            url: DEFAULT_URL.to_owned(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            sqlite_busy_timeout: Duration::from_secs(5),
            sqlite_direct_reads: true,
            migrate: true,
            test_before_acquire: false,
            read_url: None,
            replica: ReplicaSettings::default(),
            slow_statements: crate::SlowStatementSettings::default(),
            similarity: crate::similarity::SimilaritySettings::default(),
        }
    }
}

impl OrmConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        OrmConfig {
            url: url.into(),
            ..OrmConfig::default()
        }
    }

    /// `MOD8_POSTGRES_URL` when set (else in-memory SQLite, [`DEFAULT_URL`]), with the pool
    /// size from `MOD8_ORM_MAX_CONNECTIONS` and the read replica from
    /// `MOD8_POSTGRES_READ_URL` when set. A value that is not a URL this crate can connect to
    /// (a read URL that is not `postgres://`), or a pool size below 1, is an
    /// [`Error::Validation`] naming the variable.
    pub fn from_env() -> Result<Self> {
        let url = match std::env::var("MOD8_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => url_var(&url)?,
            _ => DEFAULT_URL.to_owned(),
        };
        let mut config = OrmConfig::new(url);
        if let Ok(n) = std::env::var("MOD8_ORM_MAX_CONNECTIONS") {
            config.max_connections = max_connections_var(&n)?;
        }
        if let Ok(url) = std::env::var(READ_URL_VAR) {
            if !url.trim().is_empty() {
                config.read_url = Some(read_url_var(&url)?);
            }
        }
        if let Ok(ms) = std::env::var(SLOW_THRESHOLD_VAR) {
            config.slow_statements.threshold = slow_threshold_var(&ms)?;
        }
        Ok(config)
    }

    /// Reads go to the PostgreSQL replica at `url` (see [`OrmConfig::read_url`]).
    pub fn with_read_url(mut self, url: impl Into<String>) -> Self {
        self.read_url = Some(url.into());
        self
    }

    /// Sets the replica routing bounds (see [`ReplicaSettings`]).
    pub fn with_replica_settings(mut self, settings: ReplicaSettings) -> Self {
        self.replica = settings;
        self
    }

    /// Sets when a statement counts as slow and how often it is logged (see
    /// [`crate::SlowStatementSettings`]).
    pub fn with_slow_statements(mut self, settings: crate::SlowStatementSettings) -> Self {
        self.slow_statements = settings;
        self
    }

    /// The read URL with its password masked, if one is set.
    pub fn redacted_read_url(&self) -> Option<String> {
        self.read_url.as_deref().map(mod8_rules::redact::redact_url)
    }

    /// The URL with its password masked (`postgres://mod8:***@host/db`), for logs and
    /// startup lines.
    pub fn redacted_url(&self) -> String {
        mod8_rules::redact::redact_url(&self.url)
    }

    /// Sets the most connections in the pool (at least 1: [`OrmConfig::connect`] rejects 0
    /// with a validation error on `max_connections`).
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Checks the settings before anything is connected: a pool of zero connections could
    /// never serve a call (every call would wait out the acquire timeout).
    pub fn validate(&self) -> Result<()> {
        if self.max_connections == 0 {
            return Err(Error::validation(
                "max_connections",
                "the pool needs at least 1 connection",
            ));
        }
        if let Some(read_url) = &self.read_url {
            if !is_postgres(read_url.trim()) {
                return Err(Error::validation(
                    "read_url",
                    "a read replica is a PostgreSQL server: expected a postgres:// or \
                     postgresql:// URL",
                ));
            }
            if !is_postgres(self.url.trim()) {
                return Err(Error::validation(
                    "read_url",
                    "a read replica needs a PostgreSQL primary (url is not postgres://)",
                ));
            }
        }
        Ok(())
    }

    /// Sets the connections kept open when idle.
    pub fn with_min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// Sets how long a call waits for a free connection.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets the vector-similarity settings (see [`crate::similarity`]).
    pub fn with_similarity_settings(mut self, settings: crate::SimilaritySettings) -> Self {
        self.similarity = settings;
        self
    }

    /// Sets when idle connections are closed (`None`: never).
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets how long SQLite waits on a locked database.
    pub fn with_sqlite_busy_timeout(mut self, timeout: Duration) -> Self {
        self.sqlite_busy_timeout = timeout;
        self
    }

    /// Whether SQLite answers point lookups on the calling thread (see
    /// [`OrmConfig::sqlite_direct_reads`]).
    pub fn with_sqlite_direct_reads(mut self, direct: bool) -> Self {
        self.sqlite_direct_reads = direct;
        self
    }

    /// Whether to apply the crate's migrations on connect.
    pub fn with_migrations(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Whether to ping pooled PostgreSQL connections before use.
    pub fn with_test_before_acquire(mut self, test: bool) -> Self {
        self.test_before_acquire = test;
        self
    }

    /// Connects to the backend the URL's scheme names (after [`OrmConfig::validate`]).
    pub async fn connect(&self) -> Result<DynDatabase> {
        self.validate()?;
        let url = self.url.trim();
        if is_postgres(url) {
            #[cfg(feature = "postgres")]
            {
                if self.read_url.is_some() {
                    return Ok(Arc::new(
                        crate::replica::ReplicaRouter::connect(self).await?,
                    ));
                }
                return Ok(Arc::new(
                    crate::postgres::PostgresStore::connect(self).await?,
                ));
            }
            #[cfg(not(feature = "postgres"))]
            {
                return Err(Error::unsupported(
                    "connecting to PostgreSQL (build mod8-orm with the `postgres` feature)",
                    "postgres",
                ));
            }
        }
        if is_sqlite(url) {
            return Ok(Arc::new(crate::sqlite::SqliteStore::connect(self).await?));
        }
        Err(Error::validation("url", EXPECTED_SCHEMES))
    }
}

/// What [`OrmConfig::connect`] accepts.
const EXPECTED_SCHEMES: &str = "expected a postgres://, postgresql:// or sqlite: URL";

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// `MOD8_POSTGRES_URL`: a URL with a scheme [`OrmConfig::connect`] knows, trimmed.
fn url_var(value: &str) -> Result<String> {
    let url = value.trim();
    if is_postgres(url) || is_sqlite(url) {
        Ok(url.to_owned())
    } else {
        Err(Error::validation("MOD8_POSTGRES_URL", EXPECTED_SCHEMES))
    }
}

/// The variable [`OrmConfig::from_env`] reads the replica's URL from.
const READ_URL_VAR: &str = "MOD8_POSTGRES_READ_URL";

/// `MOD8_POSTGRES_READ_URL`: a PostgreSQL URL, trimmed.
fn read_url_var(value: &str) -> Result<String> {
    let url = value.trim();
    if is_postgres(url) {
        Ok(url.to_owned())
    } else {
        Err(Error::validation(
            READ_URL_VAR,
            "expected a postgres:// or postgresql:// URL (the read replica)",
        ))
    }
}

/// The slow-statement threshold in milliseconds.
const SLOW_THRESHOLD_VAR: &str = "MOD8_SQL_SLOW_THRESHOLD_MS";

/// `MOD8_SQL_SLOW_THRESHOLD_MS`: a whole number of milliseconds.
fn slow_threshold_var(value: &str) -> Result<Duration> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            Error::validation(
                SLOW_THRESHOLD_VAR,
                format!("{value:?} is not a whole number of milliseconds"),
            )
        })
}

/// `MOD8_ORM_MAX_CONNECTIONS`: a number of at least 1.
fn max_connections_var(value: &str) -> Result<u32> {
    const VAR: &str = "MOD8_ORM_MAX_CONNECTIONS";
    match value.trim().parse::<u32>() {
        Ok(0) => Err(Error::validation(
            VAR,
            "0: the pool needs at least 1 connection",
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(Error::validation(VAR, format!("{value:?} is not a number"))),
    }
}

/// Connects to `url` with default pool settings, migrating on connect.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let db = mod8_orm::connect("sqlite::memory:").await?;
/// assert_eq!(db.backend(), mod8_orm::Backend::Sqlite);
/// assert!(mod8_orm::connect("mysql://nope").await.is_err());
/// # Ok::<(), mod8_orm::Error>(())
/// # }).unwrap();
/// ```
pub async fn connect(url: &str) -> Result<DynDatabase> {
    OrmConfig::new(url).connect().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_from_the_environment() {
        assert_eq!(max_connections_var(" 12 ").unwrap(), 12);
        for bad in ["0", "-1", "many", ""] {
            assert!(
                matches!(
                    max_connections_var(bad),
                    Err(Error::Validation { field, .. }) if field == "MOD8_ORM_MAX_CONNECTIONS"
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn url_from_the_environment() {
        assert_eq!(
            url_var(" postgres://u:p@host/db ").unwrap(),
            "postgres://u:p@host/db"
        );
        assert_eq!(url_var("sqlite::memory:").unwrap(), "sqlite::memory:");
        for bad in ["mysql://nope", "localhost:5432", "postgres:/x"] {
            assert!(
                matches!(
                    url_var(bad),
                    Err(Error::Validation { field, .. }) if field == "MOD8_POSTGRES_URL"
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn read_url_from_the_environment() {
        assert_eq!(
            read_url_var(" postgres://u:p@replica/db ").unwrap(),
            "postgres://u:p@replica/db"
        );
        for bad in ["sqlite::memory:", "mysql://nope", "replica:5433"] {
            assert!(
                matches!(
                    read_url_var(bad),
                    Err(Error::Validation { field, .. }) if field == "MOD8_POSTGRES_READ_URL"
                ),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_read_replica_needs_postgres_on_both_sides() {
        for config in [
            OrmConfig::new("sqlite::memory:").with_read_url("postgres://u:p@replica/db"),
            OrmConfig::new("postgres://u:p@primary/db").with_read_url("sqlite::memory:"),
        ] {
            assert!(matches!(
                config.connect().await,
                Err(Error::Validation { field, .. }) if field == "read_url"
            ));
        }
    }

    #[test]
    fn the_read_url_password_is_masked() {
        let config = OrmConfig::new("postgres://u:pw1@primary/db")
            .with_read_url("postgres://u:pw2@replica/db");
        let debug = format!("{config:?}");
        assert!(!debug.contains("pw1") && !debug.contains("pw2"), "{debug}");
        assert!(debug.contains("replica/db"), "{debug}");
    }

    #[tokio::test]
    async fn a_pool_of_zero_connections_is_rejected() {
        let config = OrmConfig::new("sqlite::memory:").with_max_connections(0);
        assert!(matches!(
            config.validate(),
            Err(Error::Validation { field, .. }) if field == "max_connections"
        ));
        assert!(matches!(
            config.connect().await,
            Err(Error::Validation { field, .. }) if field == "max_connections"
        ));
        assert!(matches!(
            crate::sqlite::SqliteStore::connect(&config).await,
            Err(Error::Validation { field, .. }) if field == "max_connections"
        ));
        assert!(OrmConfig::new("sqlite::memory:")
            .with_max_connections(1)
            .connect()
            .await
            .is_ok());
    }
}
