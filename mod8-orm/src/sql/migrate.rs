//! The crate's migrations and their own history table.
//!
//! sqlx's migrator records what it applied in `_sqlx_migrations`, a name every sqlx host
//! application uses too. So that a host can keep its own migration history in the same
//! database, this crate embeds its migrations with `sqlx::migrate!` but records them in
//! `mod8_orm_migrations`, applying them in one transaction (under an advisory lock on
//! PostgreSQL, so several processes starting together migrate once).

use sqlx::migrate::Migrator;

use crate::repository::Backend;

/// The PostgreSQL migrations (`migrations/postgres`).
pub(crate) static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
/// The SQLite migrations (`migrations/sqlite`).
pub(crate) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// The table recording which of this crate's migrations were applied.
pub const HISTORY_TABLE: &str = "mod8_orm_migrations";

/// The embedded migrations for `backend`, for hosts that apply them with their own tooling.
/// (Running them with `Migrator::run` records them in sqlx's shared `_sqlx_migrations`
/// table; [`crate::connect`] records them in `mod8_orm_migrations` instead.)
pub fn migrations(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Postgres => &POSTGRES_MIGRATIONS,
        Backend::Sqlite => &SQLITE_MIGRATIONS,
    }
}

/// Hex of a checksum, as stored in the history table.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Implements `SqlStore::<$db>::migrate`: applies `$migrator`, under the lock statement
/// `$lock` when there is one.
macro_rules! impl_migrate {
    ($db:ty, $migrator:expr, $lock:expr) => {
        impl $crate::store::SqlStore<$db> {
            /// Applies the crate's pending migrations (recorded in `mod8_orm_migrations`).
            pub async fn migrate(&self) -> $crate::error::Result<()> {
                self.migrate_to(i64::MAX).await
            }

            /// Applies the crate's pending migrations up to and including `version`, in one
            /// transaction (recorded in `mod8_orm_migrations`): for hosts that stage a schema
            /// change, and for tests of a migration on data written under the schema before
            /// it. The repositories expect every migration: call [`Self::migrate`] before
            /// using them.
            pub async fn migrate_to(&self, version: i64) -> $crate::error::Result<()> {
                use $crate::error::Error;
                use $crate::store::SqlDriver;
                let backend = <$db as SqlDriver>::DIALECT.backend.name();
                let err = |e| Error::from_sqlx(backend, e);
                let mut tx = self.begin_on_pool().await.map_err(err)?;
                let lock: Option<&str> = $lock;
                if let Some(lock) = lock {
                    ::sqlx::query::<$db>(lock).execute(&mut *tx).await.map_err(err)?;
                }
                ::sqlx::query::<$db>(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (version BIGINT PRIMARY KEY, \
                     description TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
                    $crate::sql::migrate::HISTORY_TABLE
                ))
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                let migrator: &::sqlx::migrate::Migrator = $migrator;
                for m in migrator.iter() {
                    if m.migration_type.is_down_migration() || m.version > version {
                        continue;
                    }
                    let checksum = $crate::sql::migrate::hex(&m.checksum);
                    let applied: Option<String> = ::sqlx::query_scalar::<$db, String>(&format!(
                        "SELECT checksum FROM {} WHERE version = $1",
                        $crate::sql::migrate::HISTORY_TABLE
                    ))
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
                    match applied {
                        Some(existing) if existing == checksum => continue,
                        Some(_) => {
                            return Err(Error::Migration {
                                backend,
                                version: m.version,
                                message: String::from(
                                    "applied with a different checksum (the migration file changed)",
                                ),
                            })
                        }
                        None => {}
                    }
                    ::sqlx::Executor::execute(&mut *tx, &*m.sql).await.map_err(|e| {
                        Error::Migration {
                            backend,
                            version: m.version,
                            message: e.to_string(),
                        }
                    })?;
                    ::sqlx::query::<$db>(&format!(
                        "INSERT INTO {} (version, description, checksum, applied_at) \
                         VALUES ($1, $2, $3, $4)",
                        $crate::sql::migrate::HISTORY_TABLE
                    ))
                    .bind(m.version)
                    .bind(m.description.as_ref())
                    .bind(checksum)
                    .bind($crate::sql::now().to_rfc3339())
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                }
                tx.commit().await.map_err(err)
            }
        }
    };
}

pub(crate) use impl_migrate;
