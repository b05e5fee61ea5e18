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
        let store = SqlStore::from_pool(pool).with_pinned_connection(config.max_connections == 1);
        if config.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}
