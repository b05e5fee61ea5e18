//! The embedded backend: SQLite, in memory or in a file.
//!
//! [`SqliteStore`] is the crate's [`SqlStore`] on a SQLite pool: connect it
//! with [`SqliteStore::connect`], or type-erased with
//! [`OrmConfig::connect`](crate::OrmConfig::connect) and a `sqlite:` URL.
//!
//! Files run in WAL mode with a busy timeout, so concurrent writers wait for each other
//! instead of failing with "database is locked"; transactions (units of work included) start
//! with `BEGIN IMMEDIATE`, so they hold the write lock from the start (other writers wait,
//! readers do not) and one that reads before it writes cannot fail upgrading a stale
//! snapshot. Foreign keys are enforced. An in-memory database lives in one connection
//! (every SQLite connection would otherwise open its own empty database), so its pool has
//! exactly one connection: while a unit of work is open, pool calls wait for it (up to the
//! acquire timeout). It does not survive the process and is not shared between processes;
//! use a file for that.
//!
//! # Speed
//!
//! sqlx runs every SQLite connection on a worker thread of its own: each command (a statement,
//! `BEGIN`, a ping) is a round trip between the caller's thread and that worker, and each row
//! of a result is handed over separately. Those hand-overs, not SQLite, are where a call's
//! time goes: two wake-ups across threads cost more than a lookup by primary key does. So
//! the store keeps them few, and avoids them where it can:
//!
//! - **Reads beside sqlx.** [`get_user`](crate::UserRepository::get_user) and
//!   [`find_user_by_email`](crate::UserRepository::find_user_by_email) on the pool are
//!   answered through SQLite's C API (`rusqlite`, on the SQLite sqlx links) on the calling
//!   thread, with no hand-over at all; a page of
//!   [`users_with_location`](crate::UserRepository::users_with_location) is read the same
//!   way on Tokio's blocking pool (one hand-over there and back for the whole page, since
//!   hundreds of rows would hold the caller's thread too long). They use connections of the
//!   store's own to the same database — the same file, or the shared-cache in-memory database
//!   sqlx opened. Such a read never waits: one that would wait for a lock, meets a value
//!   stored in a form sqlx did not write, or fails in any way is run through sqlx instead,
//!   which then waits, decodes or fails as it always did. Inside a unit of work every read
//!   goes through the transaction. The connections are bounded by
//!   [`OrmConfig::max_connections`](crate::OrmConfig::max_connections) and reported as the
//!   `direct` pool in [`Database::pool_usage`](crate::Database::pool_usage);
//!   [`SqliteStore::direct_read_stats`] counts the reads answered and left to sqlx, SQLite's
//!   report of each statement is a DEBUG event of `mod8_orm::sqlite::direct`, and
//!   [`OrmConfig::sqlite_direct_reads`](crate::OrmConfig::sqlite_direct_reads) turns it all
//!   off. A direct read sees the last committed state, as one on another pooled connection
//!   would; on an in-memory database it no longer queues behind an open unit of work unless
//!   that unit wrote a table it reads.
//! - **One round trip per statement.** A call through a sqlx pool pays for more than its
//!   statement: sqlx pings the worker before the pool takes the connection back (and, by
//!   default, before handing it out). The store keeps one pooled connection checked out
//!   between its calls on the pool and never pings a SQLite connection (no server can drop
//!   it), so every other call is one round trip. With the single connection of an in-memory
//!   database, calls queue for it as they queued for the pool, and units of work and
//!   migrations take it back from the pool in turn; on a file, a call that finds it busy
//!   takes another connection from the pool, so concurrent readers still run in parallel.
//!   The first call of [`SqlStore::pool`] hands it back for good, so a host's own queries
//!   never wait for a connection the store holds. A call that is dropped half-way leaves the
//!   connection usable (a transaction it left open is rolled back before the next call), and
//!   one that failed as if the connection broke hands it back to the pool, which tests it.
//! - **A few hand-overs per page.** `users_with_location` has SQLite aggregate the page into
//!   JSON arrays of about 256 users (ids as hex, the score with all 17 digits, timestamps as
//!   stored), still one statement: the worker builds the next array while the caller decodes
//!   the last, and the two threads no longer wake each other for every row; the per-column
//!   copies and lookups by name are gone too. It reads through indexes only: the page's
//!   rowids from the registration-order index, then each user by rowid and each link by
//!   primary key (every join column is indexed by the first migration). This is the path of
//!   a page that is not read directly.

mod batched;
pub(crate) mod direct;

use std::str::FromStr;

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, Sqlite};

use crate::config::OrmConfig;
use crate::error::{Error, Result};
use crate::model::{NewUser, UserWithLocation};
use crate::repository::Backend;
use crate::sql::dialect::{rows_per_statement, Dialect};
use crate::sql::USER_INSERT_COLS;
use crate::store::{SqlDriver, SqlStore};
use uuid::Uuid;

/// The repositories on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlDriver for Sqlite {
    const DIALECT: Dialect = Dialect {
        backend: Backend::Sqlite,
        // SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32.
        max_bind_params: 32_766,
        skip_locked: "",
        month_of,
        anonymous_params: true,
        begin: "BEGIN IMMEDIATE",
    };

    fn insert_users<'c>(
        conn: &'c mut Self::Connection,
        users: &'c [NewUser],
    ) -> BoxFuture<'c, std::result::Result<(u64, u64), sqlx::Error>> {
        Box::pin(async move {
            // Multi-row VALUES, as many rows per statement as the bind limit allows.
            const COLS: usize = 9;
            let per = rows_per_statement(COLS, Self::DIALECT.max_bind_params);
            let (mut rows, mut statements) = (0, 0);
            for chunk in users.chunks(per) {
                let sql = format!(
                    "INSERT INTO users ({USER_INSERT_COLS}) VALUES {}",
                    Self::DIALECT.values(chunk.len(), COLS, 1)
                );
                let mut q = sqlx::query::<Sqlite>(&sql);
                for u in chunk {
                    q = q
                        .bind(Uuid::new_v4())
                        .bind(&u.email)
                        .bind(&u.username)
                        .bind(u.address_id)
                        .bind(u.profile_score)
                        .bind(u.is_verified)
                        .bind(u.created_at)
                        .bind(u.last_active_at)
                        .bind(crate::validate::username_key(&u.username));
                }
                rows += q.execute(&mut *conn).await?.rows_affected();
                statements += 1;
            }
            Ok((rows, statements))
        })
    }

    fn users_with_location(
        conn: &mut Self::Connection,
        limit: i64,
        offset: i64,
    ) -> BoxFuture<'_, std::result::Result<Vec<UserWithLocation>, sqlx::Error>> {
        batched::users_with_location(conn, limit, offset)
    }

    fn run_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> BoxFuture<'c, std::result::Result<(), sqlx::Error>> {
        Box::pin(async move { conn.execute(sql).await.map(|_| ()) })
    }
}

/// Timestamps are RFC 3339 text in UTC, so the month is their first seven characters.
fn month_of(column: &str) -> String {
    format!("substr({column}, 1, 7)")
}

/// Whether the URL names an in-memory database.
fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

crate::store::impl_backend!(Sqlite, &crate::sql::migrate::SQLITE_MIGRATIONS, None);

/// How a SQLite store's point lookups went (see the module docs): answered on the calling
/// side through SQLite's C API, or left to sqlx.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectReadStats {
    /// Lookups answered directly.
    pub answered: u64,
    /// Lookups left to sqlx: every direct connection busy, a lock to wait for, a stored value
    /// in a form sqlx did not write, or an error.
    pub fell_back: u64,
}

impl SqliteStore {
    /// How this store's direct lookups went so far (shared with its clones); `None` when it
    /// has none ([`OrmConfig::sqlite_direct_reads`] off, or a database another connection
    /// cannot share, such as a private in-memory one).
    pub fn direct_read_stats(&self) -> Option<DirectReadStats> {
        self.direct_reads().map(direct::DirectReads::stats)
    }

    /// Connects as `config` says (and migrates unless that was turned off).
    pub async fn connect(config: &OrmConfig) -> Result<Self> {
        config.validate()?;
        let backend = Backend::Sqlite.name();
        let memory = is_memory(&config.url);
        let mut options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| Error::from_sqlx(backend, e))?
            .foreign_keys(true)
            .busy_timeout(config.sqlite_busy_timeout);
        if !memory {
            options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
        let max_connections = if memory { 1 } else { config.max_connections };
        let direct_options = config.sqlite_direct_reads.then(|| options.clone());
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .min_connections(config.min_connections)
                .idle_timeout(config.idle_timeout)
        }
        .acquire_timeout(config.acquire_timeout)
        // No peer can drop a SQLite connection; a ping would only check sqlx's worker
        // thread, one more round trip to it per acquire. A connection whose worker died
        // fails its call and is discarded when it goes back to the pool.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| Error::from_sqlx(backend, e))?;
        let mut store = SqlStore::from_pool(pool);
        // After the pool: a database file exists once sqlx has opened it.
        if let Some(direct) = direct_options
            .and_then(|o| direct::DirectReads::new(&o, &config.url, memory, config.max_connections))
        {
            store = store.with_direct_reads(direct);
        }
        let store = store
            .with_pinned_connection(max_connections == 1)
            .with_slow_statements(config.slow_statements)
            .with_similarity_settings(config.similarity.clone());
        if config.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}

/// Bulk loading on SQLite: multi-row `INSERT`s, each as many rows as the parameter limit
/// allows, all in one transaction.
#[async_trait::async_trait]
impl crate::bulk::CatalogBulkLoad for SqlStore<Sqlite> {
    async fn load_catalog(
        &self,
        products: Vec<crate::catalog::NewCatalogProduct>,
    ) -> Result<Vec<crate::bulk::LoadedProduct>> {
        use sqlx::types::Json;
        let prepared = crate::bulk::prepare(products)?;
        if prepared.products.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend_name();
        let dialect = <Sqlite as SqlDriver>::DIALECT;
        let now = crate::sql::now();
        let pairs: Vec<_> = prepared.products.iter().zip(&prepared.ids).collect();
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction(backend).await?;
        for chunk in pairs.chunks(rows_per_statement(9, dialect.max_bind_params)) {
            let statement = format!(
                "INSERT INTO products (id, sku, name, category_id, brand, description, \
                   attributes, created_at, updated_at, version, archived_at) VALUES {}",
                repeat_row(chunk.len(), "(?, ?, ?, ?, ?, ?, ?, ?, ?, 1, NULL)")
            );
            let mut q = sqlx::query::<Sqlite>(&statement);
            for (p, ids) in chunk {
                q = q
                    .bind(ids.product_id)
                    .bind(&p.sku)
                    .bind(&p.name)
                    .bind(p.category_id)
                    .bind(&p.brand)
                    .bind(&p.description)
                    .bind(Json(&p.attributes))
                    .bind(now)
                    .bind(now);
            }
            q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
        }
        let variants: Vec<_> = pairs
            .iter()
            .flat_map(|(p, ids)| {
                p.variants
                    .iter()
                    .zip(&ids.variant_ids)
                    .enumerate()
                    .map(move |(position, (v, vid))| (ids.product_id, position, v, *vid))
            })
            .collect();
        for chunk in variants.chunks(rows_per_statement(8, dialect.max_bind_params)) {
            let statement = format!(
                "INSERT INTO product_variants (id, product_id, sku, options, price_cents, \
                   currency, position, created_at) VALUES {}",
                repeat_row(chunk.len(), "(?, ?, ?, ?, ?, ?, ?, ?)")
            );
            let mut q = sqlx::query::<Sqlite>(&statement);
            for (product_id, position, v, vid) in chunk {
                q = q
                    .bind(*vid)
                    .bind(*product_id)
                    .bind(&v.sku)
                    .bind(Json(&v.options))
                    .bind(v.price_cents)
                    .bind(&v.currency)
                    .bind(i32::try_from(*position).unwrap_or(i32::MAX))
                    .bind(now);
            }
            q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
        }
        for chunk in variants.chunks(rows_per_statement(3, dialect.max_bind_params)) {
            let statement = format!(
                "INSERT INTO inventory (variant_id, on_hand, reserved, updated_at) VALUES {}",
                repeat_row(chunk.len(), "(?, ?, 0, ?)")
            );
            let mut q = sqlx::query::<Sqlite>(&statement);
            for (_, _, v, vid) in chunk {
                q = q.bind(*vid).bind(v.initial_stock).bind(now);
            }
            q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
        }
        let receipts: Vec<_> = variants
            .iter()
            .filter(|(_, _, v, _)| v.initial_stock > 0)
            .collect();
        for chunk in receipts.chunks(rows_per_statement(4, dialect.max_bind_params)) {
            let statement = format!(
                "INSERT INTO stock_movements (id, variant_id, kind, on_hand_delta, \
                   reserved_delta, reason, order_id, created_at) VALUES {}",
                repeat_row(
                    chunk.len(),
                    &format!(
                        "(?, ?, 'receipt', ?, 0, '{}', NULL, ?)",
                        crate::bulk::OPENING_REASON
                    )
                )
            );
            let mut q = sqlx::query::<Sqlite>(&statement);
            for (_, _, v, vid) in chunk {
                q = q
                    .bind(Uuid::new_v4())
                    .bind(*vid)
                    .bind(v.initial_stock)
                    .bind(now);
            }
            q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
        }
        let images: Vec<_> = pairs
            .iter()
            .flat_map(|(p, ids)| {
                p.images
                    .iter()
                    .enumerate()
                    .map(move |(position, image)| (ids.product_id, position, image))
            })
            .collect();
        for chunk in images.chunks(rows_per_statement(5, dialect.max_bind_params)) {
            let statement = format!(
                "INSERT INTO product_images (id, product_id, position, url, alt_text) VALUES {}",
                repeat_row(chunk.len(), "(?, ?, ?, ?, ?)")
            );
            let mut q = sqlx::query::<Sqlite>(&statement);
            for (product_id, position, image) in chunk {
                q = q
                    .bind(Uuid::new_v4())
                    .bind(*product_id)
                    .bind(i32::try_from(*position).unwrap_or(i32::MAX))
                    .bind(&image.url)
                    .bind(&image.alt_text);
            }
            q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
        }
        tx.commit(backend).await?;
        Ok(prepared.ids)
    }
}

/// `row` (a parenthesised list of anonymous parameters and literals) `rows` times.
fn repeat_row(rows: usize, row: &str) -> String {
    vec![row; rows].join(", ")
}
