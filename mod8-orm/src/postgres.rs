//! The production backend: PostgreSQL (feature `postgres`).

use std::str::FromStr;

use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, Postgres};

use crate::config::OrmConfig;
use crate::error::{OrmError, Result};
use crate::repository::Backend;
use crate::session::{Dialect, SqlBackend, SqlStore};

/// The repositories on PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlBackend for Postgres {
    const DIALECT: Dialect = Dialect {
        backend: Backend::Postgres,
        // The wire protocol counts parameters in an i16.
        max_bind_params: 65_535,
        skip_locked: " FOR UPDATE SKIP LOCKED",
        month_of,
    };

    fn run_script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
    ) -> BoxFuture<'c, std::result::Result<(), sqlx::Error>> {
        Box::pin(async move { conn.execute(sql).await.map(|_| ()) })
    }
}

fn month_of(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')")
}

crate::sql::migrate::impl_backend!(
    Postgres,
    &crate::sql::migrate::POSTGRES_MIGRATIONS,
    // Any constant works; it only has to be the same for every process migrating this crate.
    Some("SELECT pg_advisory_xact_lock(80080001)")
);

impl PostgresStore {
    /// Connects as `config` says (and migrates unless that was turned off).
    pub async fn connect(config: &OrmConfig) -> Result<Self> {
        let backend = Backend::Postgres.name();
        let options =
            PgConnectOptions::from_str(&config.url).map_err(|e| OrmError::from_sqlx(backend, e))?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .connect_with(options)
            .await
            .map_err(|e| OrmError::from_sqlx(backend, e))?;
        let store = SqlStore::from_pool(pool);
        if config.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }
}
