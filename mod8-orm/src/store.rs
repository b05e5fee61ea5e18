//! The store every backend shares: a pool, or a transaction borrowed from it, behind one
//! connection handle that counts the statements the repositories issue.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::pinned::{Pinned, PinnedConn};
use crate::slow::{SlowStatementSettings, StatementLog};
use crate::sql::dialect::Dialect;
use crate::timed::Timed;

/// What this crate needs from a sqlx database beyond sqlx itself: its dialect and the
/// statements that differ in more than placeholders. Crate-internal: it cannot be named
/// outside the crate, which also seals [`SqlBackend`].
pub trait SqlDriver: sqlx::Database {
    /// The backend's dialect.
    const DIALECT: Dialect;

    /// Inserts validated users (timestamps already defaulted) in as few statements as the
    /// backend allows; returns (rows inserted, statements issued).
    fn insert_users<'c>(
        conn: &'c mut Self::Connection,
        users: &'c [crate::model::NewUser],
    ) -> BoxFuture<'c, std::result::Result<(u64, u64), sqlx::Error>>;

    /// A page of users with their location chain, ordered by registration (`limit` and
    /// `offset` already validated), in one statement.
    fn users_with_location(
        conn: &mut Self::Connection,
        limit: i64,
        offset: i64,
    ) -> BoxFuture<'_, std::result::Result<Vec<crate::model::UserWithLocation>, sqlx::Error>>;

    /// Runs `sql` (one or more statements without parameters) on `conn`.
    fn run_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> BoxFuture<'c, std::result::Result<(), sqlx::Error>>;
}

/// A sqlx database this crate has a backend for: [`sqlx::Sqlite`] and, with the `postgres`
/// feature, `sqlx::Postgres`. Sealed: the crate's stores are the only implementations.
pub trait SqlBackend: SqlDriver {}

impl<DB: SqlDriver> SqlBackend for DB {}

/// Shared by a top-level unit of work and the savepoints nested in it.
struct TxShared<DB: sqlx::Database> {
    tx: Mutex<Option<Transaction<'static, DB>>>,
    /// The open savepoints, outermost first. SQL savepoints nest strictly: ending one ends
    /// every savepoint opened after it, and rolling one back undoes their work too.
    savepoints: StdMutex<Vec<OpenSavepoint>>,
    next_savepoint: AtomicU32,
}

/// One entry of [`TxShared::savepoints`].
struct OpenSavepoint {
    name: String,
    /// Its handle was dropped unfinished: it is rolled back before the transaction is used
    /// again (a `Drop` cannot run SQL).
    abandoned: bool,
}

impl<DB: sqlx::Database> TxShared<DB> {
    /// The savepoint stack. A panic while it was locked cannot leave it half-updated (every
    /// update is one push, flag or truncate), so a poisoned lock is still usable.
    fn savepoints(&self) -> std::sync::MutexGuard<'_, Vec<OpenSavepoint>> {
        match self.savepoints.lock() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Where `name` sits in the stack, if it is still open.
    fn position(&self, name: &str) -> Option<usize> {
        self.savepoints().iter().position(|s| s.name == name)
    }

    /// Rolls back the outermost abandoned savepoint, which undoes it and everything nested
    /// after it; the handles of live savepoints above it then report that they ended. Call
    /// with the transaction locked, before every use of it.
    async fn settle(&self, tx: &mut Transaction<'static, DB>, backend: &'static str) -> Result<()>
    where
        DB: SqlBackend,
    {
        let lowest = {
            let list = self.savepoints();
            list.iter()
                .position(|s| s.abandoned)
                .map(|i| (i, list[i].name.clone()))
        };
        if let Some((index, name)) = lowest {
            let sql = format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}");
            DB::run_script(&mut **tx, &sql)
                .await
                .map_err(|e| Error::from_sqlx(backend, e))?;
            self.savepoints().truncate(index);
        }
        Ok(())
    }
}

/// The error for a handle whose savepoint (or transaction) is gone.
fn ended(what: &str) -> Error {
    Error::validation(
        "unit_of_work",
        format!("the {what} was already committed or rolled back"),
    )
}

/// The error for a nested handle whose savepoint ended with an enclosing one.
fn ended_with_enclosing() -> Error {
    Error::validation(
        "unit_of_work",
        "this nested unit of work ended with a savepoint it was opened inside \
         (committed, rolled back or dropped); its work went with that one",
    )
}

enum Scope<DB: sqlx::Database> {
    Pool,
    Tx {
        shared: Arc<TxShared<DB>>,
        /// `None` for the outermost unit; otherwise this handle's savepoint.
        savepoint: Option<String>,
        /// Whether commit / rollback already ran (so drop must not roll back).
        finished: bool,
    },
}

/// The repositories of one backend, on a pool or inside a unit of work.
///
/// `postgres::PostgresStore` and [`crate::sqlite::SqliteStore`] are this type; it is cheap to clone and
/// implements every repository trait plus [`crate::Database`] (on the pool) or
/// [`crate::UnitOfWork`] (inside a transaction).
pub struct SqlStore<DB: SqlBackend> {
    pub(crate) pool: Pool<DB>,
    scope: Scope<DB>,
    counter: Arc<AtomicU64>,
    /// Every statement's timings and the slow-statement log (see `slow`).
    statements: Arc<StatementLog>,
    /// SQLite: the connection kept checked out for calls on the pool (see `pinned`).
    pinned: Option<Arc<Pinned<DB>>>,
    /// Vector similarity: settings, chosen path, in-process index (see `similarity`).
    pub(crate) similarity: Arc<crate::similarity::SimilarityState>,
    /// SQLite: point lookups on the calling thread (see `sqlite::direct`).
    direct: Option<Arc<crate::sqlite::direct::DirectReads>>,
}

impl<DB: SqlBackend> std::fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &DB::DIALECT.backend)
            .field("in_transaction", &matches!(self.scope, Scope::Tx { .. }))
            .finish()
    }
}

impl<DB: SqlBackend> Clone for SqlStore<DB> {
    /// Clones the pool handle. Cloning a unit of work is not offered (it has one owner); a
    /// clone of one is a plain pool handle.
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            scope: Scope::Pool,
            counter: self.counter.clone(),
            statements: self.statements.clone(),
            pinned: self.pinned.clone(),
            similarity: self.similarity.clone(),
            direct: self.direct.clone(),
        }
    }
}

/// A connection for one repository call: pooled, or the transaction's.
pub(crate) enum Conn<'a, DB: sqlx::Database> {
    Pool(PoolConnection<DB>, &'a AtomicU64, &'a Arc<StatementLog>),
    Pinned(PinnedConn<DB>, &'a AtomicU64, &'a Arc<StatementLog>),
    Tx(
        MappedMutexGuard<'a, Transaction<'static, DB>>,
        &'a AtomicU64,
        &'a Arc<StatementLog>,
    ),
}

impl<DB: SqlBackend> Conn<'_, DB> {
    /// The connection for the next statement, timed (see `slow`); every call counts one
    /// statement.
    pub(crate) fn exec(&mut self) -> Timed<'_, DB> {
        let (conn, log) = self.exec_untimed();
        Timed::new(conn, log)
    }

    /// The connection for the next statement and the log to time it in, for the few callers
    /// that hand the connection to a function; every call counts one statement.
    pub(crate) fn exec_untimed(&mut self) -> (&mut DB::Connection, &Arc<StatementLog>) {
        match self {
            Conn::Pool(c, n, log) => {
                n.fetch_add(1, Ordering::Relaxed);
                (c, log)
            }
            Conn::Pinned(c, n, log) => {
                n.fetch_add(1, Ordering::Relaxed);
                (c.connection(), log)
            }
            Conn::Tx(t, n, log) => {
                n.fetch_add(1, Ordering::Relaxed);
                (t, log)
            }
        }
    }

    /// A transaction (or, inside a unit of work, a savepoint) for a multi-statement call.
    pub(crate) async fn transaction(&mut self, backend: &'static str) -> Result<Tx<'_, DB>> {
        let mut pinned = None;
        let (tx, counter, log) = match self {
            Conn::Pool(c, n, log) => (
                sqlx::Connection::begin_with(&mut **c, DB::DIALECT.begin).await,
                *n,
                *log,
            ),
            Conn::Pinned(c, n, log) => {
                let pin = c.pin();
                // Until the commit succeeds, the kept connection goes back to the pool after
                // the call: a transaction dropped uncommitted (an early return, an error, a
                // cancelled call) only queues its ROLLBACK for the connection's next use, and
                // a kept connection may not be used again for a while — its open transaction
                // would hold its row locks meanwhile. The pool's check on taking it back
                // sends the queued ROLLBACK at once.
                pin.mark_suspect();
                let tx = sqlx::Connection::begin_with(c.connection(), DB::DIALECT.begin).await;
                if let Err(e) = &tx {
                    pin.note(e);
                }
                pinned = Some(pin);
                (tx, *n, *log)
            }
            // Inside a unit of work: a savepoint.
            Conn::Tx(t, n, log) => (sqlx::Connection::begin(&mut ***t).await, *n, *log),
        };
        let tx = tx.map_err(|e| Error::from_sqlx(backend, e))?;
        Ok(Tx {
            tx,
            counter,
            log,
            pinned,
        })
    }
}

/// A transaction opened for one repository call.
pub(crate) struct Tx<'c, DB: sqlx::Database> {
    tx: Transaction<'c, DB>,
    counter: &'c AtomicU64,
    log: &'c Arc<StatementLog>,
    /// The pin whose kept connection this transaction runs on, if it does.
    pinned: Option<Arc<Pinned<DB>>>,
}

impl<DB: sqlx::Database> Tx<'_, DB> {
    /// The connection for the next statement, timed (see `slow`); every call counts one
    /// statement.
    pub(crate) fn exec(&mut self) -> Timed<'_, DB> {
        self.counter.fetch_add(1, Ordering::Relaxed);
        Timed::new(&mut *self.tx, self.log)
    }

    /// The connection for the next statement and the log to time it in, for the few callers
    /// that hand the connection to a function; every call counts one statement.
    pub(crate) fn exec_untimed(&mut self) -> (&mut DB::Connection, &Arc<StatementLog>) {
        self.counter.fetch_add(1, Ordering::Relaxed);
        (&mut *self.tx, self.log)
    }

    /// Counts statements issued on a connection taken with one [`Tx::exec`] call.
    pub(crate) fn count_more(&self, statements: u64) {
        self.counter.fetch_add(statements, Ordering::Relaxed);
    }

    /// Commits (or releases the savepoint).
    pub(crate) async fn commit(self, backend: &'static str) -> Result<()> {
        self.tx
            .commit()
            .await
            .map_err(|e| Error::from_sqlx(backend, e))?;
        if let Some(pin) = &self.pinned {
            // Committed: nothing is left queued, the connection can stay kept.
            pin.clear_suspect();
        }
        Ok(())
    }
}

impl<DB: SqlBackend> SqlStore<DB> {
    /// A store on `pool`.
    pub(crate) fn from_pool(pool: Pool<DB>) -> Self {
        SqlStore {
            pool,
            scope: Scope::Pool,
            counter: Arc::new(AtomicU64::new(0)),
            statements: Arc::new(StatementLog::new(SlowStatementSettings::default())),
            pinned: None,
            similarity: Arc::default(),
            direct: None,
        }
    }

    /// Calls on the pool keep one connection checked out between them (see `pinned`);
    /// `exclusive` when the pool has exactly one connection.
    pub(crate) fn with_pinned_connection(mut self, exclusive: bool) -> Self {
        self.pinned = Some(Pinned::new(exclusive));
        self
    }

    /// Point lookups on the calling thread through `direct` (SQLite).
    pub(crate) fn with_direct_reads(mut self, direct: crate::sqlite::direct::DirectReads) -> Self {
        self.direct = Some(Arc::new(direct));
        self
    }

    /// Answers the lookup `sql` with `read` on the calling thread, when this store has direct
    /// reads, is not a unit of work and its pool is open; `None` to run it through sqlx. An
    /// answer counts and is timed as one statement.
    pub(crate) fn read_directly<T>(
        &self,
        sql: &str,
        read: impl FnOnce(&crate::sqlite::direct::DirectReads) -> Option<T>,
    ) -> Option<T> {
        let direct = self.direct_for_this_call()?;
        let started = std::time::Instant::now();
        let answer = read(direct)?;
        self.count_direct_read(sql, started);
        Some(answer)
    }

    /// [`SqlStore::read_directly`] for a read too long to hold the caller's thread (a page of
    /// rows): run on Tokio's blocking pool, one hand-over there and back instead of one per
    /// batch of rows.
    pub(crate) async fn read_directly_off_thread<T: Send + 'static>(
        &self,
        sql: &'static str,
        read: impl FnOnce(&crate::sqlite::direct::DirectReads) -> Option<T> + Send + 'static,
    ) -> Option<T> {
        let direct = self.direct_for_this_call()?.clone();
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let started = std::time::Instant::now();
        // A failed task (a panic, a runtime shutting down) falls back to sqlx like any other
        // failure of a direct read.
        let answer = runtime.spawn_blocking(move || read(&direct)).await.ok()??;
        self.count_direct_read(sql, started);
        Some(answer)
    }

    /// The direct reads a call may use: this store has them, is not a unit of work (whose
    /// reads go through its transaction) and its pool is open.
    fn direct_for_this_call(&self) -> Option<&Arc<crate::sqlite::direct::DirectReads>> {
        match (&self.scope, &self.direct) {
            (Scope::Pool, Some(direct)) if !self.pool.is_closed() => Some(direct),
            _ => None,
        }
    }

    /// Counts and times a direct read that answered, as one statement.
    fn count_direct_read(&self, sql: &str, started: std::time::Instant) {
        self.counter.fetch_add(1, Ordering::Relaxed);
        self.statements.observe(sql, started.elapsed());
    }

    /// Direct reads (SQLite), if this store has them.
    pub(crate) fn direct_reads(&self) -> Option<&crate::sqlite::direct::DirectReads> {
        self.direct.as_deref()
    }

    /// The connections direct reads hold, as a pool's figures (SQLite with direct reads).
    pub(crate) fn direct_usage(&self) -> Option<crate::PoolUsage> {
        self.direct.as_ref().map(|d| d.usage())
    }

    /// The same store with other vector-similarity settings (embedding dimension, whether
    /// PostgreSQL may use pgvector, search breadth); set them before the first similarity
    /// call. Clones made before keep the old settings.
    pub fn with_similarity_settings(mut self, settings: crate::SimilaritySettings) -> Self {
        self.similarity = Arc::new(crate::similarity::SimilarityState::new(settings));
        self
    }

    /// The backend's name, for errors.
    pub(crate) fn backend_name(&self) -> &'static str {
        DB::DIALECT.backend.name()
    }

    /// Maps a driver error (and notes it for the pinned connection).
    pub(crate) fn err(&self, e: sqlx::Error) -> Error {
        if let Some(pinned) = &self.pinned {
            pinned.note(&e);
        }
        Error::from_sqlx(self.backend_name(), e)
    }

    /// The pool underneath (for host applications that run their own queries).
    ///
    /// The store keeps one pooled connection checked out between its own calls: sqlx pings a
    /// connection each time the pool takes it back, one more round trip per call (to the
    /// server on PostgreSQL, to sqlx's worker thread on SQLite), which the kept connection
    /// saves; a call that finds it busy takes another from the pool. The first call
    /// of `pool()` hands that connection back, and from then on the store takes every
    /// connection from the pool like any other user of it, so a host's queries never wait
    /// for a connection the store holds.
    pub fn pool(&self) -> &Pool<DB> {
        if let Some(pinned) = &self.pinned {
            pinned.retire();
        }
        &self.pool
    }

    /// A transaction on a connection from the pool, for a unit of work or a migration (the
    /// pinned connection of a one-connection pool goes back to the pool first).
    pub(crate) async fn begin_on_pool(
        &self,
    ) -> std::result::Result<Transaction<'static, DB>, sqlx::Error> {
        // The pin stays locked (and empty) until the transaction has its connection.
        let _unpinned = match &self.pinned {
            Some(pinned) => pinned.unpin(&self.pool).await?,
            None => None,
        };
        self.pool.begin_with(DB::DIALECT.begin).await
    }

    /// Hands the pinned connection back and closes the pool.
    pub(crate) async fn close_pool(&self) {
        if let Some(direct) = &self.direct {
            direct.close();
        }
        if let Some(pinned) = &self.pinned {
            pinned.retire_and_wait().await;
        }
        self.pool.close().await
    }

    /// Statements issued through this store's repositories (shared with its units of work).
    pub fn statements_executed(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    /// Every statement's timings and the slow-statement log (shared with its clones and
    /// units of work).
    pub fn statement_log(&self) -> &Arc<StatementLog> {
        &self.statements
    }

    /// Times this store's statements into `log` (another store's).
    pub(crate) fn with_statement_log(mut self, log: Arc<StatementLog>) -> Self {
        self.statements = log;
        self
    }

    /// A fresh statement log with `settings`, whose slow statements are logged with the plan
    /// taken on a connection of this store's pool (call after the pin is set up).
    pub(crate) fn with_slow_statements(mut self, settings: SlowStatementSettings) -> Self
    where
        DB: crate::explain::Explain,
    {
        self.statements = Arc::new(StatementLog::new(settings));
        // The store that takes plans has a log of its own that records nothing, so the log
        // does not own a handle back to itself.
        let planner = SqlStore {
            pool: self.pool.clone(),
            scope: Scope::Pool,
            counter: Arc::new(AtomicU64::new(0)),
            statements: Arc::new(StatementLog::disabled()),
            pinned: self.pinned.clone(),
            similarity: self.similarity.clone(),
            direct: self.direct.clone(),
        };
        self.statements.arm(Arc::new(move |sql: String| {
            let planner = planner.clone();
            Box::pin(async move {
                let mut conn = planner.conn().await.map_err(|e| e.to_string())?;
                let (conn, _) = conn.exec_untimed();
                DB::plan_text(conn, &sql).await
            })
        }));
        self
    }

    /// A connection for one repository call.
    pub(crate) async fn conn(&self) -> Result<Conn<'_, DB>> {
        match &self.scope {
            Scope::Pool => {
                if let Some(pinned) = &self.pinned {
                    if let Some(c) = pinned.checkout(&self.pool).await.map_err(|e| self.err(e))? {
                        return Ok(Conn::Pinned(c, &self.counter, &self.statements));
                    }
                }
                let c = self.pool.acquire().await.map_err(|e| self.err(e))?;
                Ok(Conn::Pool(c, &self.counter, &self.statements))
            }
            Scope::Tx {
                shared, savepoint, ..
            } => {
                let mut guard = shared.tx.lock().await;
                let Some(tx) = guard.as_mut() else {
                    return Err(ended("unit of work"));
                };
                shared.settle(tx, self.backend_name()).await?;
                if let Some(name) = savepoint {
                    if shared.position(name).is_none() {
                        return Err(ended_with_enclosing());
                    }
                }
                match MutexGuard::try_map(guard, |t| t.as_mut()) {
                    Ok(tx) => Ok(Conn::Tx(tx, &self.counter, &self.statements)),
                    Err(_) => Err(ended("unit of work")),
                }
            }
        }
    }

    /// Starts a top-level unit of work on the pool.
    pub(crate) async fn begin_unit(&self) -> Result<Self> {
        let tx = self.begin_on_pool().await.map_err(|e| self.err(e))?;
        Ok(SqlStore {
            pool: self.pool.clone(),
            scope: Scope::Tx {
                shared: Arc::new(TxShared {
                    tx: Mutex::new(Some(tx)),
                    savepoints: StdMutex::new(Vec::new()),
                    next_savepoint: AtomicU32::new(1),
                }),
                savepoint: None,
                finished: false,
            },
            counter: self.counter.clone(),
            statements: self.statements.clone(),
            pinned: self.pinned.clone(),
            similarity: self.similarity.clone(),
            direct: self.direct.clone(),
        })
    }

    /// Starts a savepoint inside this unit of work (or a new unit on a pool handle).
    pub(crate) async fn begin_nested_unit(&self) -> Result<Self> {
        let Scope::Tx { shared, .. } = &self.scope else {
            return self.begin_unit().await;
        };
        let name = format!(
            "mod8_sp_{}",
            shared.next_savepoint.fetch_add(1, Ordering::Relaxed)
        );
        {
            let mut conn = self.conn().await?;
            let Conn::Tx(tx, _, _) = &mut conn else {
                // `conn()` on a transaction scope always yields the transaction.
                return Err(Error::validation("unit_of_work", "not in a transaction"));
            };
            DB::run_script(&mut ***tx, &format!("SAVEPOINT {name}"))
                .await
                .map_err(|e| self.err(e))?;
            // Still under the transaction lock, so the stack order is the SQL order.
            shared.savepoints().push(OpenSavepoint {
                name: name.clone(),
                abandoned: false,
            });
        }
        Ok(SqlStore {
            pool: self.pool.clone(),
            scope: Scope::Tx {
                shared: shared.clone(),
                savepoint: Some(name),
                finished: false,
            },
            counter: self.counter.clone(),
            statements: self.statements.clone(),
            pinned: self.pinned.clone(),
            similarity: self.similarity.clone(),
            direct: self.direct.clone(),
        })
    }

    /// Commits the unit of work (or releases its savepoint).
    pub(crate) async fn finish(mut self, commit: bool) -> Result<()> {
        let Scope::Tx {
            shared,
            savepoint,
            finished,
        } = &mut self.scope
        else {
            return Ok(());
        };
        *finished = true;
        let backend = DB::DIALECT.backend.name();
        let mut guard = shared.tx.lock().await;
        let Some(tx) = guard.as_mut() else {
            return Err(ended(if savepoint.is_some() {
                "enclosing unit of work"
            } else {
                "unit of work"
            }));
        };
        // Dropped nested units are undone before anything is committed or released.
        let settled = shared.settle(tx, backend).await;
        match savepoint {
            None => {
                let Some(mut tx) = guard.take() else {
                    return Err(ended("unit of work"));
                };
                drop(guard);
                shared.savepoints().clear();
                if let Err(e) = settled {
                    let _ = tx.rollback().await;
                    return Err(e);
                }
                if !commit {
                    return tx
                        .rollback()
                        .await
                        .map_err(|e| Error::from_sqlx(backend, e));
                }
                // PostgreSQL answers COMMIT on an aborted transaction with a silent rollback;
                // a probe statement tells the two apart so the caller learns nothing was saved.
                if let Err(e) = DB::run_script(&mut tx, "SELECT 1").await {
                    let aborted = matches!(
                        &e,
                        sqlx::Error::Database(db) if db.code().as_deref() == Some("25P02")
                    );
                    let _ = tx.rollback().await;
                    return Err(if aborted {
                        Error::TransactionAborted
                    } else {
                        Error::from_sqlx(backend, e)
                    });
                }
                tx.commit().await.map_err(|e| Error::from_sqlx(backend, e))
            }
            Some(name) => {
                settled?;
                let Some(index) = shared.position(name) else {
                    return Err(ended_with_enclosing());
                };
                let sql = if commit {
                    format!("RELEASE SAVEPOINT {name}")
                } else {
                    format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")
                };
                DB::run_script(&mut **tx, &sql)
                    .await
                    .map_err(|e| Error::from_sqlx(backend, e))?;
                // Savepoints opened after this one ended with it.
                shared.savepoints().truncate(index);
                Ok(())
            }
        }
    }
}

impl<DB: SqlBackend> Drop for SqlStore<DB> {
    fn drop(&mut self) {
        // An unfinished savepoint is rolled back before the transaction is next used (by any
        // handle, including the outer commit); an unfinished top-level transaction is rolled
        // back by sqlx when its last handle drops.
        if let Scope::Tx {
            shared,
            savepoint: Some(name),
            finished: false,
        } = &self.scope
        {
            if let Some(open) = shared.savepoints().iter_mut().find(|s| &s.name == name) {
                open.abandoned = true;
            }
        }
    }
}

/// Implements [`crate::Database`] (on the pool) and [`crate::UnitOfWork`] (inside a
/// transaction) for `SqlStore<$db>`, whose repository traits are implemented already.
macro_rules! impl_store {
    ($db:ty) => {
        #[::async_trait::async_trait]
        impl $crate::repository::Database for $crate::store::SqlStore<$db> {
            fn backend(&self) -> $crate::repository::Backend {
                <$db as $crate::store::SqlDriver>::DIALECT.backend
            }

            async fn begin(
                &self,
            ) -> $crate::error::Result<Box<dyn $crate::repository::UnitOfWork>> {
                Ok(Box::new(self.begin_unit().await?))
            }

            fn statements_executed(&self) -> u64 {
                $crate::store::SqlStore::<$db>::statements_executed(self)
            }

            async fn close(&self) {
                self.close_pool().await
            }

            fn catalog_bulk_load(&self) -> Option<&dyn $crate::bulk::CatalogBulkLoad> {
                Some(self)
            }

            fn statement_log(&self) -> Option<&std::sync::Arc<$crate::StatementLog>> {
                Some($crate::store::SqlStore::<$db>::statement_log(self))
            }

            fn product_search(&self) -> Option<&dyn $crate::search::ProductSearch> {
                Some(self)
            }

            fn pool_usage(&self) -> Vec<$crate::PoolUsage> {
                let mut usage = vec![$crate::PoolUsage::of(&self.pool, "primary")];
                usage.extend(self.direct_usage());
                usage
            }

            fn product_similarity(&self) -> Option<&dyn $crate::similarity::ProductSimilarity> {
                Some(self)
            }
        }

        #[::async_trait::async_trait]
        impl $crate::repository::UnitOfWork for $crate::store::SqlStore<$db> {
            async fn begin_nested(
                &self,
            ) -> $crate::error::Result<Box<dyn $crate::repository::UnitOfWork>> {
                Ok(Box::new(self.begin_nested_unit().await?))
            }

            async fn commit(self: Box<Self>) -> $crate::error::Result<()> {
                (*self).finish(true).await
            }

            async fn rollback(self: Box<Self>) -> $crate::error::Result<()> {
                (*self).finish(false).await
            }
        }
    };
}

pub(crate) use impl_store;

/// Implements every repository trait, migration, `Database` and `UnitOfWork` for a backend:
/// `$migrator` holds its migrations, `$lock` is the statement (if any) that serialises
/// processes migrating the same database.
macro_rules! impl_backend {
    ($db:ty, $migrator:expr, $lock:expr) => {
        $crate::sql::users::impl_user_repository!($db);
        $crate::sql::locations::impl_location_repository!($db);
        $crate::sql::products::impl_product_repository!($db);
        $crate::sql::catalog::impl_catalog_repository!($db);
        $crate::sql::inventory::impl_inventory_repositories!($db);
        $crate::sql::orders::impl_order_repository!($db);
        $crate::sql::analytics::impl_analytics_repository!($db);
        $crate::sql::outbox::impl_outbox_repository!($db);
        $crate::sql::search::impl_product_search!($db);
        $crate::sql::migrate::impl_migrate!($db, $migrator, $lock);
        $crate::store::impl_store!($db);
    };
}

pub(crate) use impl_backend;
