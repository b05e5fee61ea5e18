//! Read-replica routing (feature `postgres`): [`ReplicaRouter`], a [`Database`] in front of a
//! PostgreSQL primary and one streaming hot standby of it.
//!
//! [`OrmConfig::connect`](crate::OrmConfig::connect) returns one when
//! [`OrmConfig::read_url`](crate::OrmConfig::read_url) is set (`MOD8_POSTGRES_READ_URL`).
//!
//! # Where a call goes
//!
//! - **Writes** (every method that inserts, updates, deletes or claims: `create_*`,
//!   `update_user`, `delete_user`, `restock`, `place_order`, `set_order_status`, `enqueue`,
//!   `claim_pending`, `mark_sent`, `purge_sent`) and **units of work** ([`Database::begin`],
//!   with every call inside them) go to the primary.
//! - **Reads** (every other method, the streams [`AnalyticsRepository::customer_rfm`] and
//!   [`AnalyticsRepository::customer_histories`] included) go to the replica, except:
//!   1. **read-your-writes**: for [`ReplicaSettings::read_your_writes`] after *this handle*
//!      wrote (a write call returned, or a unit of work it began committed), its reads go to
//!      the primary;
//!   2. **lag**: while the replica is more than [`ReplicaSettings::max_lag`] behind the
//!      primary, or its lag is unknown, reads go to the primary;
//!   3. **failure**: a read the replica fails with a connection error (or refuses because it
//!      is starting, shutting down, lacks the database yet, or cancelled the query for a
//!      recovery conflict) is retried once on the primary; after a connection error the replica
//!      counts as down until its next lag check answers.
//!
//! # Handles and read-your-writes
//!
//! A handle is a [`ReplicaRouter`] value. Its clones share one write history; each
//! [`ReplicaRouter::session`] starts a new one (same pools, same lag checks, same counters),
//! so a per-request (or per-user) session sees its own writes without sending every other
//! caller's reads to the primary. The guarantee holds when `read_your_writes` is at least
//! `max_lag + lag_check_interval`: a write older than that is on any replica the router still
//! reads from. Writes of *other* handles are seen on the replica once they have replayed there
//! (at most `max_lag + lag_check_interval` later).
//!
//! # Lag
//!
//! One caller at a time measures the lag, when the last measurement is older than
//! [`ReplicaSettings::lag_check_interval`] (others use the last answer meanwhile): the
//! primary's flushed WAL position, then on the replica whether it has replayed that far, and
//! if not, how long ago the last transaction it replayed committed (`clock_timestamp() -
//! pg_last_xact_replay_timestamp()`). A replica that has replayed everything is 0 behind
//! however old its last transaction is; one that is not a standby at all (a read URL naming
//! the primary) counts as current. The measurement is conservative: a replica a few
//! milliseconds behind an otherwise idle primary counts as behind by its last transaction's
//! age until the next check.
//!
//! # Counters
//!
//! [`ReplicaRouter::stats`] says which server answered how many calls (for tests and
//! metrics); [`ReplicaRouter::replica_state`] what the last lag check found.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::catalog::*;
use crate::config::{OrmConfig, ReplicaSettings};
use crate::customer_summary::CustomerRfm;
use crate::error::{Error, Result};
use crate::model::*;
use crate::postgres::PostgresStore;
use crate::purchases::{CoPurchaseCounts, CustomerHistory};
use crate::repository::{
    AnalyticsRepository, Backend, CartRepository, CatalogRepository, Database, InventoryRepository,
    LocationRepository, OrderRepository, OutboxRepository, ProductRepository, ReviewRepository,
    UnitOfWork, UserRepository,
};
use crate::store::SqlStore;

/// What the last lag check found about the replica.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ReplicaState {
    /// Not checked yet: reads go to the primary until a check answers.
    Unknown,
    /// Answering and at most [`ReplicaSettings::max_lag`] behind: reads go to it.
    Current {
        /// How far behind it was (zero when it had replayed everything the primary flushed).
        lag: Duration,
    },
    /// Answering but further behind than [`ReplicaSettings::max_lag`], or behind by an
    /// unknown amount (`lag: None`: nothing replayed since it started): reads go to the
    /// primary.
    Lagging {
        /// How far behind it was, when known.
        lag: Option<Duration>,
    },
    /// Not answering (a connection error, or no answer within [`ReplicaSettings::timeout`]):
    /// reads go to the primary.
    Down,
}

impl ReplicaState {
    /// Whether reads go to the replica in this state.
    pub fn serves_reads(self) -> bool {
        matches!(self, ReplicaState::Current { .. })
    }
}

/// Which server answered how many calls, since the router was connected (shared by every
/// handle of one router).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteStats {
    /// Write calls and units of work begun (all on the primary).
    pub writes: u64,
    /// Read calls the replica answered (successfully or with an error that was not retried).
    pub replica_reads: u64,
    /// Read calls the primary answered, for any of the reasons below.
    pub primary_reads: u64,
    /// Of `primary_reads`: sent there because the handle wrote recently (read-your-writes).
    pub read_your_writes: u64,
    /// Of `primary_reads`: sent there because the replica was lagging or not yet checked.
    pub lagging: u64,
    /// Of `primary_reads`: sent there because the replica was down.
    pub replica_down: u64,
    /// Of `primary_reads`: tried on the replica first, which failed, then retried there.
    pub fallbacks: u64,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    replica_reads: AtomicU64,
    read_your_writes: AtomicU64,
    lagging: AtomicU64,
    replica_down: AtomicU64,
    fallbacks: AtomicU64,
}

/// Why a read goes to the primary.
#[derive(Debug, Clone, Copy)]
enum Reason {
    ReadYourWrites,
    Lagging,
    Down,
}

/// Where a read goes.
#[derive(Debug, Clone, Copy)]
enum Route {
    Replica,
    Primary(Reason),
}

/// The last lag check.
struct Health {
    state: ReplicaState,
    checked: Option<Instant>,
}

/// What every handle of one router shares.
struct Shared {
    primary: PostgresStore,
    replica: PostgresStore,
    /// Pool handles for the lag checks (taken from the stores without retiring their kept
    /// connections).
    primary_pool: PgPool,
    replica_pool: PgPool,
    settings: ReplicaSettings,
    /// The origin of the handles' write marks.
    epoch: Instant,
    health: StdMutex<Health>,
    /// Held by the one caller measuring the lag.
    checking: tokio::sync::Mutex<()>,
    counters: Counters,
}

impl Shared {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // Every update is one assignment: a poisoned lock still holds a whole value.
        match self.health.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn set_state(&self, state: ReplicaState) {
        let mut health = self.health();
        let was = health.state;
        health.state = state;
        health.checked = Some(Instant::now());
        drop(health);
        if was.serves_reads() != state.serves_reads() {
            if state.serves_reads() {
                tracing::info!(?state, "read replica serves reads again");
            } else {
                tracing::warn!(
                    ?state,
                    "read replica does not serve reads; reading from the primary"
                );
            }
        }
    }

    /// The replica's state, measured again when the last check is older than the interval
    /// (by one caller; the others use the last answer).
    async fn state(&self) -> ReplicaState {
        let (state, fresh) = {
            let health = self.health();
            let fresh = health
                .checked
                .is_some_and(|t| t.elapsed() < self.settings.lag_check_interval);
            (health.state, fresh)
        };
        if fresh {
            return state;
        }
        match self.checking.try_lock() {
            Ok(_checking) => self.check().await,
            Err(_) => state,
        }
    }

    /// Measures the replica's lag now and records it.
    async fn check(&self) -> ReplicaState {
        let state = match tokio::time::timeout(self.settings.timeout, self.measure()).await {
            Ok(Ok(state)) => state,
            Ok(Err(MeasureError::Primary(e))) => {
                // Nothing to compare with: keep the last answer (the primary's own calls
                // report its failure), but do not measure again before the interval.
                tracing::debug!(error = %e, "replica lag check: the primary did not answer");
                let last = self.health().state;
                self.set_state(last);
                return last;
            }
            Ok(Err(MeasureError::Replica(e))) => {
                tracing::debug!(error = %e, "replica lag check: the replica did not answer");
                ReplicaState::Down
            }
            Err(_) => ReplicaState::Down,
        };
        self.set_state(state);
        state
    }

    async fn measure(&self) -> std::result::Result<ReplicaState, MeasureError> {
        let flushed: String = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
            .fetch_one(&self.primary_pool)
            .await
            .map_err(MeasureError::Primary)?;
        let (in_recovery, caught_up, behind_secs): (bool, Option<bool>, Option<f64>) =
            sqlx::query_as(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= $1::pg_lsn, \
                 EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8",
            )
            .bind(&flushed)
            .fetch_one(&self.replica_pool)
            .await
            .map_err(MeasureError::Replica)?;
        if !in_recovery || caught_up == Some(true) {
            return Ok(ReplicaState::Current {
                lag: Duration::ZERO,
            });
        }
        let lag = behind_secs.map(|s| Duration::from_secs_f64(s.max(0.0)));
        Ok(match lag {
            Some(lag) if lag <= self.settings.max_lag => ReplicaState::Current { lag },
            lag => ReplicaState::Lagging { lag },
        })
    }

    /// Records a replica failure of a read; says whether the read is to be retried on the
    /// primary.
    fn replica_failed(&self, error: &Error) -> bool {
        match failure_kind(error) {
            Some(Failure::Connection) => {
                self.set_state(ReplicaState::Down);
                true
            }
            Some(Failure::Refused) => true,
            None => false,
        }
    }
}

enum MeasureError {
    Primary(sqlx::Error),
    Replica(sqlx::Error),
}

/// How a replica failed a read.
enum Failure {
    /// Unreachable or going away: the replica is down until a check answers.
    Connection,
    /// Up, but refused this call: retry it on the primary.
    Refused,
}

/// Which replica errors send a read to the primary.
fn failure_kind(error: &Error) -> Option<Failure> {
    match error {
        Error::Unavailable { .. } => Some(Failure::Connection),
        Error::Backend { source, .. } => match source.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => {
                let code = db.code()?;
                match code.as_ref() {
                    // connection_exception (class 08), admin / crash shutdown, cannot connect
                    // now (starting up), too many connections.
                    c if c.starts_with("08") => Some(Failure::Connection),
                    "57P01" | "57P02" | "57P03" | "53300" => Some(Failure::Connection),
                    // The database is not on the replica yet (just created), or the standby
                    // cancelled the query for a conflict with recovery.
                    "3D000" | "40001" | "40P01" => Some(Failure::Refused),
                    _ => None,
                }
            }
            Some(sqlx::Error::Protocol(_)) => Some(Failure::Connection),
            _ => None,
        },
        _ => None,
    }
}

/// A [`Database`] that sends writes and units of work to a PostgreSQL primary and reads to a
/// read replica of it, as the [module documentation](self) describes.
///
/// Clones share the handle's write history (read-your-writes); [`ReplicaRouter::session`]
/// starts a handle with its own.
///
/// ```no_run
/// use mod8_orm::{OrmConfig, UserRepository};
/// use mod8_orm::replica::ReplicaRouter;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let config = OrmConfig::new("postgres://mod8:mod8@127.0.0.1:5432/mod8")
///     .with_read_url("postgres://mod8:mod8@127.0.0.1:5433/mod8");
/// let router = ReplicaRouter::connect(&config).await?;
/// // One session per request: it reads its own writes from the primary for a while.
/// let request = router.session();
/// let ada = request.create_user(mod8_orm::NewUser::new("ada@example.org", "ada")).await?;
/// assert_eq!(request.get_user(ada.id).await?.id, ada.id); // from the primary
/// println!("{:?}", router.stats());
/// # Ok::<(), mod8_orm::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ReplicaRouter {
    shared: Arc<Shared>,
    /// Nanoseconds after `shared.epoch` of this handle's last write, plus one (0: never).
    last_write: Arc<AtomicU64>,
}

impl std::fmt::Debug for ReplicaRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaRouter")
            .field("settings", &self.shared.settings)
            .field("replica_state", &self.replica_state())
            .field("stats", &self.stats())
            .finish()
    }
}

impl ReplicaRouter {
    /// Connects to the primary at `config.url` (migrating it unless that is turned off, which
    /// counts as a write of the returned handle) and, lazily, to the replica at
    /// `config.read_url`, then checks the replica once. An
    /// unreachable replica is not an error: reads go to the primary until it answers.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] on `read_url` when it is unset or either URL is not
    /// `postgres://`; the primary's connection or migration error.
    pub async fn connect(config: &OrmConfig) -> Result<Self> {
        config.validate()?;
        let Some(read_url) = &config.read_url else {
            return Err(Error::validation(
                "read_url",
                "a replica router needs the replica's URL",
            ));
        };
        let primary = PostgresStore::connect(config).await?;
        let backend = Backend::Postgres.name();
        let options = <PgConnectOptions as std::str::FromStr>::from_str(read_url)
            .map_err(|e| Error::from_sqlx(backend, e))?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(config.replica.timeout)
            .idle_timeout(config.idle_timeout)
            .test_before_acquire(config.test_before_acquire)
            .connect_lazy_with(options);
        let replica = SqlStore::from_pool(pool)
            .with_pinned_connection(config.max_connections == 1)
            // One log for the router: the replica's statements are timed beside the
            // primary's, and their plans taken on the primary (same schema).
            .with_statement_log(primary.statement_log().clone());
        let router = ReplicaRouter::new(primary, replica, config.replica);
        if config.migrate {
            // Migrations just committed may not be on the replica yet: this handle's reads
            // wait for them like for any write of its own.
            router.mark_write();
        }
        router.check_replica().await;
        Ok(router)
    }

    /// A router over stores already connected (the replica's need not be migrated: it is a
    /// copy of the primary). Nothing is checked until the first read.
    pub fn new(primary: PostgresStore, replica: PostgresStore, settings: ReplicaSettings) -> Self {
        ReplicaRouter {
            shared: Arc::new(Shared {
                primary_pool: primary.pool.clone(),
                replica_pool: replica.pool.clone(),
                primary,
                replica,
                settings,
                epoch: Instant::now(),
                health: StdMutex::new(Health {
                    state: ReplicaState::Unknown,
                    checked: None,
                }),
                checking: tokio::sync::Mutex::new(()),
                counters: Counters::default(),
            }),
            last_write: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A handle on the same pools, lag checks and counters, with its own write history: its
    /// reads go to the primary only after *its* writes.
    pub fn session(&self) -> ReplicaRouter {
        ReplicaRouter {
            shared: self.shared.clone(),
            last_write: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The primary's store.
    pub fn primary(&self) -> &PostgresStore {
        &self.shared.primary
    }

    /// The replica's store.
    pub fn replica(&self) -> &PostgresStore {
        &self.shared.replica
    }

    /// The routing bounds.
    pub fn settings(&self) -> ReplicaSettings {
        self.shared.settings
    }

    /// Which server answered how many calls so far (all handles of this router).
    pub fn stats(&self) -> RouteStats {
        let c = &self.shared.counters;
        let read_your_writes = c.read_your_writes.load(Ordering::Relaxed);
        let lagging = c.lagging.load(Ordering::Relaxed);
        let replica_down = c.replica_down.load(Ordering::Relaxed);
        let fallbacks = c.fallbacks.load(Ordering::Relaxed);
        RouteStats {
            writes: c.writes.load(Ordering::Relaxed),
            replica_reads: c.replica_reads.load(Ordering::Relaxed),
            primary_reads: read_your_writes + lagging + replica_down + fallbacks,
            read_your_writes,
            lagging,
            replica_down,
            fallbacks,
        }
    }

    /// What the last lag check found (without checking).
    pub fn replica_state(&self) -> ReplicaState {
        self.shared.health().state
    }

    /// Measures the replica's lag now (whatever the interval says) and returns what the next
    /// reads will go by.
    pub async fn check_replica(&self) -> ReplicaState {
        let _checking = self.shared.checking.lock().await;
        self.shared.check().await
    }

    /// When this handle last wrote, if it did.
    pub fn last_write(&self) -> Option<Instant> {
        match self.last_write.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.shared.epoch + Duration::from_nanos(n - 1)),
        }
    }

    fn mark_write(&self) {
        mark(&self.last_write, self.shared.epoch);
    }

    async fn route(&self) -> Route {
        if let Some(at) = self.last_write() {
            if at.elapsed() < self.shared.settings.read_your_writes {
                return Route::Primary(Reason::ReadYourWrites);
            }
        }
        match self.shared.state().await {
            ReplicaState::Current { .. } => Route::Replica,
            ReplicaState::Down => Route::Primary(Reason::Down),
            ReplicaState::Unknown | ReplicaState::Lagging { .. } => Route::Primary(Reason::Lagging),
        }
    }

    fn count_primary(&self, reason: Reason) {
        let c = &self.shared.counters;
        match reason {
            Reason::ReadYourWrites => &c.read_your_writes,
            Reason::Lagging => &c.lagging,
            Reason::Down => &c.replica_down,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self, counter: fn(&Counters) -> &AtomicU64) {
        counter(&self.shared.counters).fetch_add(1, Ordering::Relaxed);
    }

    /// A stream from the replica, or from the primary when the route says so or the replica
    /// fails before its first item.
    fn routed_stream<'a, T: Send + 'a>(
        &'a self,
        open: impl Fn(&'a PostgresStore) -> BoxStream<'a, Result<T>> + Send + 'a,
    ) -> BoxStream<'a, Result<T>> {
        async move {
            match self.route().await {
                Route::Primary(reason) => {
                    self.count_primary(reason);
                    open(&self.shared.primary)
                }
                Route::Replica => {
                    let mut stream = open(&self.shared.replica);
                    match stream.next().await {
                        Some(Err(e)) if self.shared.replica_failed(&e) => {
                            self.count(|c| &c.fallbacks);
                            open(&self.shared.primary)
                        }
                        first => {
                            self.count(|c| &c.replica_reads);
                            futures::stream::iter(first).chain(stream).boxed()
                        }
                    }
                }
            }
        }
        .into_stream()
        .flatten()
        .boxed()
    }
}

fn mark(last_write: &AtomicU64, epoch: Instant) {
    let nanos = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
    last_write.fetch_max(nanos.saturating_add(1), Ordering::Relaxed);
}

/// A unit of work on the primary begun through a [`ReplicaRouter`]: committing it counts as
/// a write of the handle that began it (read-your-writes).
struct RoutedUnit {
    inner: Box<dyn UnitOfWork>,
    last_write: Arc<AtomicU64>,
    epoch: Instant,
}

/// A read on the route's server; a replica failure is retried on the primary. The
/// arguments are used twice, so they are `Copy` (ids, `&str`, pages, numbers).
macro_rules! read_call {
    ($self:ident, $method:ident($($arg:expr),*)) => {{
        match $self.route().await {
            Route::Primary(reason) => {
                $self.count_primary(reason);
                $self.shared.primary.$method($($arg),*).await
            }
            Route::Replica => match $self.shared.replica.$method($($arg),*).await {
                Err(e) if $self.shared.replica_failed(&e) => {
                    $self.count(|c| &c.fallbacks);
                    $self.shared.primary.$method($($arg),*).await
                }
                answer => {
                    $self.count(|c| &c.replica_reads);
                    answer
                }
            },
        }
    }};
}

/// A write on the primary, then the handle's write mark.
macro_rules! write_call {
    ($self:ident, $method:ident($($arg:expr),*)) => {{
        $self.count(|c| &c.writes);
        let answer = $self.shared.primary.$method($($arg),*).await;
        $self.mark_write();
        answer
    }};
}

/// Implements `$trait` for [`ReplicaRouter`] (reads routed, writes to the primary) and for
/// [`RoutedUnit`] (everything forwarded to the unit), from one list of its methods, each
/// tagged `read` or `write`. `$extra_router` / `$extra_unit` hold methods written by hand.
macro_rules! routed {
    ($trait:ident {
        $( $kind:ident fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*
    } router { $($extra_router:tt)* } unit { $($extra_unit:tt)* }) => {
        #[async_trait]
        impl $trait for ReplicaRouter {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    routed!(@call $kind, self, $name($($arg),*))
                }
            )*
            $($extra_router)*
        }

        #[async_trait]
        impl $trait for RoutedUnit {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.inner.$name($($arg),*).await
                }
            )*
            $($extra_unit)*
        }
    };
    (@call read, $self:ident, $name:ident($($arg:ident),*)) => { read_call!($self, $name($($arg),*)) };
    (@call write, $self:ident, $name:ident($($arg:ident),*)) => { write_call!($self, $name($($arg),*)) };
}

routed!(UserRepository {
    read fn get_user(&self, id: Uuid) -> Result<User>;
    read fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    write fn create_user(&self, user: NewUser) -> Result<User>;
    write fn create_users(&self, users: Vec<NewUser>) -> Result<u64>;
    write fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User>;
    write fn delete_user(&self, id: Uuid) -> Result<()>;
    read fn list_users(&self, page: PageRequest) -> Result<Page<User>>;
    read fn users_in_country(&self, country_name: &str) -> Result<Vec<User>>;
    read fn users_in_city(&self, city_name: &str) -> Result<Vec<User>>;
    read fn users_with_location(&self, page: PageRequest) -> Result<Vec<UserWithLocation>>;
    read fn user_stats(&self) -> Result<UserStats>;
    read fn users_by_activity(&self, limit: u32) -> Result<Vec<UserActivityRank>>;
    write fn create_user_with_address(&self, address: NewAddress, user: NewUser) -> Result<(User, Address)>;
} router {} unit {});

routed!(LocationRepository {
    write fn create_country(&self, country: NewCountry) -> Result<Country>;
    read fn country_by_code(&self, iso_code: &str) -> Result<Country>;
    write fn create_city(&self, city: NewCity) -> Result<City>;
    read fn find_city(&self, name: &str, country_code: &str) -> Result<Option<City>>;
    write fn create_address(&self, address: NewAddress) -> Result<Address>;
    read fn addresses_in_city(&self, city_id: Uuid) -> Result<Vec<Address>>;
    read fn location(&self, address_id: Uuid) -> Result<Location>;
    read fn countries_with_cities(&self) -> Result<Vec<CountryWithCities>>;
    read fn country_stats(&self) -> Result<Vec<CountryStats>>;
} router {} unit {});

routed!(ProductRepository {
    write fn create_product(&self, product: NewProduct) -> Result<Product>;
    read fn get_product(&self, id: Uuid) -> Result<Product>;
    read fn products(&self, category: Option<&str>) -> Result<Vec<Product>>;
    write fn restock(&self, id: Uuid, quantity: i64) -> Result<Product>;
} router {} unit {});

routed!(OrderRepository {
    write fn place_order(&self, order: NewOrder) -> Result<OrderWithItems>;
    write fn checkout(&self, checkout: Checkout) -> Result<OrderWithItems>;
    read fn get_order(&self, id: Uuid) -> Result<OrderWithItems>;
    write fn set_order_status(&self, id: Uuid, status: OrderStatus) -> Result<Order>;
    read fn orders_of_user(&self, user_id: Uuid) -> Result<Vec<OrderWithItems>>;
    read fn purchase_history(&self, user_id: Uuid) -> Result<Vec<Purchase>>;
    read fn product_popularity(&self, limit: u32) -> Result<Vec<ProductPopularity>>;
} router {} unit {});

routed!(CatalogRepository {
    write fn create_category(&self, category: NewCategory) -> Result<Category>;
    read fn get_category(&self, id: Uuid) -> Result<Category>;
    read fn categories(&self) -> Result<Vec<Category>>;
    write fn move_category(&self, id: Uuid, parent_id: Option<Uuid>) -> Result<Category>;
    read fn category_path(&self, id: Uuid) -> Result<Vec<Category>>;
    read fn category_tree_counts(&self, id: Uuid) -> Result<Vec<CategoryCount>>;
    write fn create_catalog_product(&self, product: NewCatalogProduct) -> Result<ProductPage>;
    read fn product_page(&self, id: Uuid) -> Result<ProductPage>;
    write fn update_product(&self, id: Uuid, expected_version: i64, changes: ProductChanges) -> Result<CatalogProduct>;
    write fn archive_product(&self, id: Uuid, expected_version: i64) -> Result<CatalogProduct>;
    read fn best_sellers(&self, category_id: Uuid, days: u32, limit: u32) -> Result<Vec<ProductSales>>;
    read fn top_rated(&self, min_reviews: u32, limit: u32) -> Result<Vec<RatedProduct>>;
    read fn also_bought(&self, product_id: Uuid, limit: u32) -> Result<Vec<AlsoBought>>;
} router {
    // The query is not `Copy`: a replica failure retries with a clone of it.
    async fn list_category_products(
        &self,
        category_id: Uuid,
        query: ListingQuery,
    ) -> Result<CursorPage<ProductSummary>> {
        let retry = query.clone();
        match self.route().await {
            Route::Primary(reason) => {
                self.count_primary(reason);
                self.shared.primary.list_category_products(category_id, query).await
            }
            Route::Replica => match self
                .shared
                .replica
                .list_category_products(category_id, query)
                .await
            {
                Err(e) if self.shared.replica_failed(&e) => {
                    self.count(|c| &c.fallbacks);
                    self.shared.primary.list_category_products(category_id, retry).await
                }
                answer => {
                    self.count(|c| &c.replica_reads);
                    answer
                }
            },
        }
    }
} unit {
    async fn list_category_products(
        &self,
        category_id: Uuid,
        query: ListingQuery,
    ) -> Result<CursorPage<ProductSummary>> {
        self.inner.list_category_products(category_id, query).await
    }
});

routed!(InventoryRepository {
    read fn inventory(&self, variant_id: Uuid) -> Result<InventoryLevel>;
    write fn receive_stock(&self, variant_id: Uuid, quantity: i64, reason: &str) -> Result<InventoryLevel>;
    write fn return_stock(&self, variant_id: Uuid, quantity: i64, order_id: Option<Uuid>) -> Result<InventoryLevel>;
    write fn adjust_stock(&self, variant_id: Uuid, delta: i64, reason: &str) -> Result<InventoryLevel>;
    read fn stock_movements(&self, variant_id: Uuid, limit: u32) -> Result<Vec<StockMovement>>;
    read fn ledger_mismatches(&self) -> Result<Vec<LedgerMismatch>>;
} router {} unit {});

routed!(ReviewRepository {
    write fn create_review(&self, review: NewReview) -> Result<Review>;
    read fn reviews_of(&self, product_id: Uuid, page: PageRequest) -> Result<Vec<Review>>;
    read fn product_rating(&self, product_id: Uuid) -> Result<Rating>;
} router {} unit {});

routed!(CartRepository {
    write fn add_to_cart(&self, user_id: Uuid, variant_id: Uuid, quantity: i64) -> Result<Cart>;
    write fn set_cart_quantity(&self, user_id: Uuid, variant_id: Uuid, quantity: i64) -> Result<Cart>;
    write fn remove_from_cart(&self, user_id: Uuid, variant_id: Uuid) -> Result<bool>;
    read fn cart(&self, user_id: Uuid) -> Result<Cart>;
    write fn clear_cart(&self, user_id: Uuid) -> Result<u64>;
} router {} unit {});

routed!(AnalyticsRepository {
    read fn user_distribution(&self) -> Result<Vec<CountryDistribution>>;
    read fn registration_cohorts(&self, active_since: DateTime<Utc>) -> Result<Vec<Cohort>>;
    read fn top_spenders(&self, min_spent_cents: i64, limit: u32) -> Result<Vec<HighValueUser>>;
    read fn top_profiles(&self, min_score: f64, limit: u32) -> Result<Vec<HighValueUser>>;
    read fn co_purchase_counts(&self) -> Result<CoPurchaseCounts>;
} router {
    fn customer_rfm(&self, calibration_end: NaiveDate) -> BoxStream<'_, Result<CustomerRfm>> {
        self.routed_stream(move |db| db.customer_rfm(calibration_end))
    }
    fn customer_histories(&self) -> BoxStream<'_, Result<CustomerHistory>> {
        self.routed_stream(|db| db.customer_histories())
    }
} unit {
    fn customer_rfm(&self, calibration_end: NaiveDate) -> BoxStream<'_, Result<CustomerRfm>> {
        self.inner.customer_rfm(calibration_end)
    }
    fn customer_histories(&self) -> BoxStream<'_, Result<CustomerHistory>> {
        self.inner.customer_histories()
    }
});

routed!(OutboxRepository {
    write fn enqueue(&self, topic: &str, payload: serde_json::Value) -> Result<OutboxMessage>;
    write fn claim_pending(&self, limit: u32, lease: Duration) -> Result<Vec<OutboxMessage>>;
    write fn mark_sent(&self, ids: &[Uuid]) -> Result<u64>;
    read fn count_pending(&self) -> Result<u64>;
    write fn purge_sent(&self, retention: Duration) -> Result<u64>;
    read fn count_outbox_rows(&self) -> Result<u64>;
    read fn oldest_pending(&self) -> Result<Option<OutboxMessage>>;
} router {} unit {});

#[async_trait]
impl Database for ReplicaRouter {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    /// A unit of work on the primary; its commit counts as this handle's write.
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>> {
        self.count(|c| &c.writes);
        let inner = self.shared.primary.begin().await?;
        Ok(Box::new(RoutedUnit {
            inner,
            last_write: self.last_write.clone(),
            epoch: self.shared.epoch,
        }))
    }

    /// The primary's log, which the replica of a router from [`ReplicaRouter::connect`]
    /// shares.
    fn statement_log(&self) -> Option<&std::sync::Arc<crate::StatementLog>> {
        Some(self.shared.primary.statement_log())
    }

    /// Statements issued on the primary and on the replica.
    fn statements_executed(&self) -> u64 {
        self.shared.primary.statements_executed() + self.shared.replica.statements_executed()
    }

    /// The primary's bulk loader: bulk loads are writes. They do not mark this handle's
    /// read-your-writes window (the loader is reached by reference); read what was loaded
    /// through a handle that wrote since, or after the replica caught up.
    fn catalog_bulk_load(&self) -> Option<&dyn crate::bulk::CatalogBulkLoad> {
        self.shared.primary.catalog_bulk_load()
    }

    /// Searches are reads: routed like every other read (see [`ReplicaRouter`]).
    fn product_search(&self) -> Option<&dyn crate::search::ProductSearch> {
        Some(self)
    }

    /// [`ReplicaRouter::stats`].
    fn read_routing(&self) -> Option<RouteStats> {
        Some(self.stats())
    }

    /// The primary's pool, then the replica's, named so.
    fn pool_usage(&self) -> Vec<crate::PoolUsage> {
        let named = |store: &PostgresStore, name: &'static str| {
            Database::pool_usage(store)
                .into_iter()
                .map(move |usage| crate::PoolUsage {
                    pool: name,
                    ..usage
                })
        };
        named(&self.shared.primary, "primary")
            .chain(named(&self.shared.replica, "replica"))
            .collect()
    }

    // Similarity stays on the primary: a query may write (it computes a missing embedding),
    // and the path (pgvector or not) is the primary's.
    fn product_similarity(&self) -> Option<&dyn crate::similarity::ProductSimilarity> {
        self.shared.primary.product_similarity()
    }

    async fn close(&self) {
        futures::join!(self.shared.primary.close(), self.shared.replica.close());
    }
}

#[async_trait]
impl UnitOfWork for RoutedUnit {
    async fn begin_nested(&self) -> Result<Box<dyn UnitOfWork>> {
        Ok(Box::new(RoutedUnit {
            inner: self.inner.begin_nested().await?,
            last_write: self.last_write.clone(),
            epoch: self.epoch,
        }))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let RoutedUnit {
            inner,
            last_write,
            epoch,
        } = *self;
        let answer = inner.commit().await;
        mark(&last_write, epoch);
        answer
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback().await
    }
}

/// A search is a read: it goes where the route says, and a replica failure is retried on the
/// primary.
#[async_trait]
impl crate::search::ProductSearch for ReplicaRouter {
    async fn search(
        &self,
        query: &crate::search::SearchQuery,
    ) -> Result<crate::search::SearchPage> {
        // Hybrid ranking asks the similarity search, which stays on the primary (see
        // `product_similarity`), so the whole search runs there.
        if query.mode == crate::search::SearchMode::Hybrid {
            return crate::search::ProductSearch::search(&self.shared.primary, query).await;
        }
        read_call!(self, search(query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(code: &str) -> Error {
        #[derive(Debug)]
        struct Db(String);
        impl std::fmt::Display for Db {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "database error {}", self.0)
            }
        }
        impl std::error::Error for Db {}
        impl sqlx::error::DatabaseError for Db {
            fn message(&self) -> &str {
                &self.0
            }
            fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
                Some(std::borrow::Cow::Borrowed(&self.0))
            }
            fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
                self
            }
            fn kind(&self) -> sqlx::error::ErrorKind {
                sqlx::error::ErrorKind::Other
            }
        }
        Error::backend(
            "postgres",
            sqlx::Error::Database(Box::new(Db(code.to_owned()))),
        )
    }

    #[test]
    fn which_replica_errors_go_to_the_primary() {
        let connection = |e: &Error| matches!(failure_kind(e), Some(Failure::Connection));
        let refused = |e: &Error| matches!(failure_kind(e), Some(Failure::Refused));
        assert!(connection(&Error::unavailable(
            "postgres",
            sqlx::Error::PoolTimedOut
        )));
        for code in ["08006", "57P01", "57P03", "53300"] {
            assert!(connection(&database_error(code)), "{code}");
        }
        for code in ["3D000", "40001"] {
            assert!(refused(&database_error(code)), "{code}");
        }
        // Answers about the data stay answers: the primary would say the same.
        for error in [
            Error::not_found("user", "x"),
            Error::validation("email", "bad"),
            database_error("23505"),
            database_error("42P01"),
        ] {
            assert!(failure_kind(&error).is_none(), "{error}");
        }
    }

    #[test]
    fn only_a_current_replica_serves_reads() {
        assert!(ReplicaState::Current {
            lag: Duration::ZERO
        }
        .serves_reads());
        for state in [
            ReplicaState::Unknown,
            ReplicaState::Down,
            ReplicaState::Lagging { lag: None },
            ReplicaState::Lagging {
                lag: Some(Duration::from_secs(5)),
            },
        ] {
            assert!(!state.serves_reads(), "{state:?}");
        }
    }
}
