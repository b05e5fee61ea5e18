//! The production backend: PostgreSQL (feature `postgres`).
//!
//! [`PostgresStore`] is the crate's [`SqlStore`] on a PostgreSQL pool:
//! connect it with [`PostgresStore::connect`], or type-erased with
//! [`OrmConfig::connect`](crate::OrmConfig::connect) and a `postgres://` URL. Bulk inserts
//! use `UNNEST` over one array per column, outbox claims `FOR UPDATE SKIP LOCKED`, and
//! processes starting together migrate once (under an advisory lock).

use std::str::FromStr;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, Postgres};

use crate::config::OrmConfig;
use crate::error::{Error, Result};
use crate::model::{NewUser, User, UserWithLocation};
use crate::repository::Backend;
use crate::sql::dialect::Dialect;
use crate::sql::{LocationCols, LOCATION_COLS, USER_COLS_U, USER_INSERT_COLS};
use crate::store::{SqlDriver, SqlStore};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The repositories on PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlDriver for Postgres {
    const DIALECT: Dialect = Dialect {
        backend: Backend::Postgres,
        // The wire protocol counts parameters in an i16.
        max_bind_params: 65_535,
        skip_locked: " FOR UPDATE SKIP LOCKED",
        month_of,
        anonymous_params: false,
        begin: "BEGIN",
    };

    fn insert_users<'c>(
        conn: &'c mut Self::Connection,
        users: &'c [NewUser],
    ) -> BoxFuture<'c, std::result::Result<(u64, u64), sqlx::Error>> {
        Box::pin(async move {
            // One array per column and UNNEST: eight parameters whatever the row count, far
            // faster than multi-row VALUES. Chunks bound the size of one message.
            const ROWS: usize = 20_000;
            let sql = format!(
                "INSERT INTO users ({USER_INSERT_COLS}) SELECT * FROM UNNEST($1::uuid[], \
                 $2::text[], $3::text[], $4::uuid[], $5::float8[], $6::bool[], \
                 $7::timestamptz[], $8::timestamptz[], $9::text[])"
            );
            let (mut rows, mut statements) = (0, 0);
            for chunk in users.chunks(ROWS) {
                let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::new_v4()).collect();
                let emails: Vec<&str> = chunk.iter().map(|u| u.email.as_str()).collect();
                let names: Vec<&str> = chunk.iter().map(|u| u.username.as_str()).collect();
                let keys: Vec<String> = chunk
                    .iter()
                    .map(|u| crate::validate::username_key(&u.username))
                    .collect();
                let addresses: Vec<Option<Uuid>> = chunk.iter().map(|u| u.address_id).collect();
                let scores: Vec<f64> = chunk.iter().map(|u| u.profile_score).collect();
                let verified: Vec<bool> = chunk.iter().map(|u| u.is_verified).collect();
                let created: Vec<Option<DateTime<Utc>>> =
                    chunk.iter().map(|u| u.created_at).collect();
                let active: Vec<Option<DateTime<Utc>>> =
                    chunk.iter().map(|u| u.last_active_at).collect();
                rows += sqlx::query::<Postgres>(&sql)
                    .bind(ids)
                    .bind(emails)
                    .bind(names)
                    .bind(addresses)
                    .bind(scores)
                    .bind(verified)
                    .bind(created)
                    .bind(active)
                    .bind(keys)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
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
        Box::pin(async move {
            let rows = sqlx::query_as::<Postgres, UserLocationRow>(&format!(
                "{} ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2",
                users_with_location_sql()
            ))
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| UserWithLocation {
                    user: r.user,
                    location: r.location.into_location(),
                })
                .collect())
        })
    }

    fn run_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> BoxFuture<'c, std::result::Result<(), sqlx::Error>> {
        Box::pin(async move { conn.execute(sql).await.map(|_| ()) })
    }
}

/// A user row joined with its location.
#[derive(Debug, sqlx::FromRow)]
struct UserLocationRow {
    #[sqlx(flatten)]
    user: User,
    #[sqlx(flatten)]
    location: LocationCols,
}

/// `SELECT` of users with their location chain; append `WHERE` / `ORDER BY` as needed.
fn users_with_location_sql() -> String {
    format!(
        "SELECT {USER_COLS_U}, {LOCATION_COLS} FROM users u \
         LEFT JOIN addresses a ON a.id = u.address_id \
         LEFT JOIN cities ci ON ci.id = a.city_id \
         LEFT JOIN countries co ON co.id = ci.country_id"
    )
}

fn month_of(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')")
}

crate::store::impl_backend!(
    Postgres,
    &crate::sql::migrate::POSTGRES_MIGRATIONS,
    // Any constant works; it only has to be the same for every process migrating this crate.
    Some("SELECT pg_advisory_xact_lock(80080001)")
);

impl PostgresStore {
    /// Connects as `config` says (and migrates unless that was turned off).
    pub async fn connect(config: &OrmConfig) -> Result<Self> {
        config.validate()?;
        let backend = Backend::Postgres.name();
        let options =
            PgConnectOptions::from_str(&config.url).map_err(|e| Error::from_sqlx(backend, e))?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .test_before_acquire(config.test_before_acquire)
            .connect_with(options)
            .await
            .map_err(|e| Error::from_sqlx(backend, e))?;
        // One connection stays checked out between calls on the pool: sqlx pings every
        // connection it takes back, a second round trip to the server for each call; the kept
        // connection saves it (see `SqlStore::pool`). A call that finds it busy uses the pool.
        let store = SqlStore::from_pool(pool)
            .with_pinned_connection(config.max_connections == 1)
            .with_slow_statements(config.slow_statements)
            .with_similarity_settings(config.similarity.clone());
        if config.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}

/// Bulk loading on PostgreSQL: one `COPY ... FROM STDIN (FORMAT csv)` per table, streamed in
/// pieces of about a megabyte, all in one transaction.
#[async_trait::async_trait]
impl crate::bulk::CatalogBulkLoad for SqlStore<Postgres> {
    async fn load_catalog(
        &self,
        products: Vec<crate::catalog::NewCatalogProduct>,
    ) -> Result<Vec<crate::bulk::LoadedProduct>> {
        use crate::bulk::csv_text;
        use std::fmt::Write as _;
        let prepared = crate::bulk::prepare(products)?;
        if prepared.products.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend_name();
        let now = crate::sql::now().to_rfc3339();
        let pairs: Vec<_> = prepared.products.iter().zip(&prepared.ids).collect();
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction(backend).await?;
        // Each table: its COPY statement and a writer of its CSV rows.
        let products_csv = |out: &mut String, i: usize| {
            let (p, ids) = pairs[i];
            let _ = write!(out, "{},", ids.product_id);
            csv_text(out, &p.sku);
            out.push(',');
            csv_text(out, &p.name);
            let _ = write!(out, ",{},", p.category_id);
            if let Some(brand) = &p.brand {
                csv_text(out, brand);
            }
            out.push(',');
            csv_text(out, &p.description);
            out.push(',');
            csv_text(out, &p.attributes.to_string());
            let _ = writeln!(out, ",{now},{now},1,");
        };
        copy_rows(
            self,
            &mut tx,
            "COPY products (id, sku, name, category_id, brand, description, attributes, \
             created_at, updated_at, version, archived_at) FROM STDIN (FORMAT csv)",
            pairs.len(),
            products_csv,
        )
        .await?;
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
        copy_rows(
            self,
            &mut tx,
            "COPY product_variants (id, product_id, sku, options, price_cents, currency, \
             position, created_at) FROM STDIN (FORMAT csv)",
            variants.len(),
            |out, i| {
                let (product_id, position, v, vid) = variants[i];
                let _ = write!(out, "{vid},{product_id},");
                csv_text(out, &v.sku);
                out.push(',');
                csv_text(
                    out,
                    &serde_json::to_string(&v.options).unwrap_or_else(|_| "{}".to_owned()),
                );
                let _ = write!(out, ",{},", v.price_cents);
                csv_text(out, &v.currency);
                let _ = writeln!(out, ",{position},{now}");
            },
        )
        .await?;
        copy_rows(
            self,
            &mut tx,
            "COPY inventory (variant_id, on_hand, reserved, updated_at) FROM STDIN (FORMAT csv)",
            variants.len(),
            |out, i| {
                let (_, _, v, vid) = variants[i];
                let _ = writeln!(out, "{vid},{},0,{now}", v.initial_stock);
            },
        )
        .await?;
        let receipts: Vec<_> = variants
            .iter()
            .filter(|(_, _, v, _)| v.initial_stock > 0)
            .collect();
        copy_rows(
            self,
            &mut tx,
            "COPY stock_movements (id, variant_id, kind, on_hand_delta, reserved_delta, \
             reason, order_id, created_at) FROM STDIN (FORMAT csv)",
            receipts.len(),
            |out, i| {
                let (_, _, v, vid) = receipts[i];
                let _ = writeln!(
                    out,
                    "{},{vid},receipt,{},0,\"{}\",,{now}",
                    Uuid::new_v4(),
                    v.initial_stock,
                    crate::bulk::OPENING_REASON
                );
            },
        )
        .await?;
        let images: Vec<_> = pairs
            .iter()
            .flat_map(|(p, ids)| {
                p.images
                    .iter()
                    .enumerate()
                    .map(move |(position, image)| (ids.product_id, position, image))
            })
            .collect();
        copy_rows(
            self,
            &mut tx,
            "COPY product_images (id, product_id, position, url, alt_text) \
             FROM STDIN (FORMAT csv)",
            images.len(),
            |out, i| {
                let (product_id, position, image) = images[i];
                let _ = write!(out, "{},{product_id},{position},", Uuid::new_v4());
                csv_text(out, &image.url);
                out.push(',');
                csv_text(out, &image.alt_text);
                out.push('\n');
            },
        )
        .await?;
        tx.commit(backend).await?;
        Ok(prepared.ids)
    }
}

/// Streams `rows` CSV rows (written by `row`) into `statement`, a `COPY ... FROM STDIN`.
async fn copy_rows(
    store: &PostgresStore,
    tx: &mut crate::store::Tx<'_, Postgres>,
    statement: &str,
    rows: usize,
    mut row: impl FnMut(&mut String, usize),
) -> Result<u64> {
    const PIECE: usize = 1 << 20;
    if rows == 0 {
        return Ok(0);
    }
    let mut copy = tx
        .exec_untimed()
        .0
        .copy_in_raw(statement)
        .await
        .map_err(|e| store.err(e))?;
    let mut buffer = String::with_capacity(PIECE + 4096);
    for i in 0..rows {
        row(&mut buffer, i);
        if buffer.len() >= PIECE {
            if let Err(e) = copy.send(buffer.as_bytes()).await {
                let _ = copy.abort("send failed").await;
                return Err(store.err(e));
            }
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        if let Err(e) = copy.send(buffer.as_bytes()).await {
            let _ = copy.abort("send failed").await;
            return Err(store.err(e));
        }
    }
    copy.finish().await.map_err(|e| store.err(e))
}
