//! The conformance suite over the repository traits (feature `testing`).
//!
//! Two parts:
//!
//! - **The whole-store cases** (`case_*` functions of this module): each takes a freshly
//!   migrated, empty database, or the narrowest part of one it exercises (a
//!   `&dyn OutboxRepository`, a `&dyn ProductRepository`, a store with the location and
//!   product repositories, ...), and panics when the backend misbehaves.
//! - **The user-repository suite** ([`UserRepositoryCase`], [`run_user_repository_cases`]):
//!   the cases about [`UserRepository`] alone, each taking a `&dyn UserRepository`, so they
//!   run against a decorator that implements nothing else (a cache in front of the
//!   database, say); the store behind it provides the reference data some of them need.
//!
//! [`conformance_tests!`](crate::conformance_tests) emits one named `#[tokio::test]` per case
//! of both parts for a backend, given an expression that yields `Option<TestDb>` (`None`
//! skips, for example when a server URL is unset):
//!
//! ```text
//! mod8_orm::conformance_tests!(mod8_orm::testing::TestDb::sqlite_memory());
//! ```
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use uuid::Uuid;

use crate::*;

mod cases;
mod catalog;
mod customer_rfm;
mod fixtures;
mod hybrid;
mod migration;
mod purchases;
mod search;
mod similarity;
mod users;

pub use cases::*;
pub use catalog::{
    case_cart_and_checkout, case_catalog_product_page, case_catalog_queries, case_category_listing,
    case_category_tree, case_concurrent_checkouts_sell_exactly_the_stock, case_inventory_ledger,
    case_order_life_cycle, case_product_versions_and_archive, case_reviews,
};
pub use customer_rfm::{
    case_customer_rfm, case_customer_rfm_in_a_unit_of_work, case_customer_rfm_matches_the_reference,
};
pub use fixtures::{seed_world, user_in, World};
pub use hybrid::*;
pub use migration::{case_catalog_migration_carries_data_forward, RawStore};
pub use purchases::{case_co_purchase_counts, case_customer_histories};
pub use search::*;
#[cfg(feature = "postgres")]
pub use similarity::similarity_postgres;
pub use similarity::{
    case_archived_never_returned, case_filtered_similarity_fills_k, case_own_embeddings,
    case_similar_honours_k, case_similar_products_are_sensible, case_similarity_path,
    case_updates_refresh_embeddings, load_similarity_corpus, LoadedCorpus,
};
pub use users::{
    case_activity_ranking, case_bulk_insert, case_look_alike_identities_conflict,
    case_missing_users_are_not_found, case_pagination, case_user_conflicts_name_the_field,
    case_user_crud, case_user_input_is_validated, case_user_stats, case_user_timestamps_round_trip,
    case_user_with_address_is_atomic, case_users_by_location, run_user_repository_cases,
    UserRepositoryCase, UserRepositoryFixture,
};

/// A database for one test, with what it takes to throw it away afterwards.
pub struct TestDb {
    /// The database under test.
    pub db: DynDatabase,
    url: String,
    cleanup: Option<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.db.backend())
            .field("url", &self.url)
            .field("dropped_afterwards", &self.cleanup.is_some())
            .finish()
    }
}

impl TestDb {
    /// A fresh in-memory SQLite database.
    pub async fn sqlite_memory() -> Option<TestDb> {
        Self::sqlite_memory_configured(|config| config).await
    }

    /// [`TestDb::sqlite_memory`] with the connection settings adjusted by `configure` (the
    /// URL is set already).
    pub async fn sqlite_memory_configured(
        configure: impl FnOnce(OrmConfig) -> OrmConfig,
    ) -> Option<TestDb> {
        let url = String::from("sqlite::memory:");
        let db = configure(OrmConfig::new(&url))
            .connect()
            .await
            .expect("in-memory SQLite");
        Some(TestDb {
            db,
            url,
            cleanup: None,
        })
    }

    /// A fresh SQLite file in a temporary directory (removed afterwards).
    pub async fn sqlite_file(dir: &std::path::Path) -> Option<TestDb> {
        let path = dir.join(format!("{}.db", Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", path.display());
        let db = connect(&url).await.expect("SQLite file");
        Some(TestDb {
            db,
            url,
            cleanup: None,
        })
    }

    /// A fresh PostgreSQL database created on the server at `admin_url` (the role needs
    /// `CREATEDB`), dropped again by [`TestDb::teardown`].
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres(admin_url: &str) -> Option<TestDb> {
        Self::postgres_configured(admin_url, |config| config).await
    }

    /// [`TestDb::postgres`] with the connection settings adjusted by `configure` (the URL
    /// and pool size are set already).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres_configured(
        admin_url: &str,
        configure: impl FnOnce(OrmConfig) -> OrmConfig,
    ) -> Option<TestDb> {
        use sqlx::Connection;
        let name = format!("mod8_orm_{}", &Uuid::new_v4().simple().to_string()[..12]);
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("MOD8_POSTGRES_URL is set but PostgreSQL is not reachable");
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("CREATE DATABASE (the role needs CREATEDB)");
        admin.close().await.ok();
        let url = replace_database(admin_url, &name);
        let db = configure(OrmConfig::new(&url).with_max_connections(4))
            .connect()
            .await
            .expect("connect to the test database");
        let admin_url = admin_url.to_owned();
        let closing = db.clone();
        Some(TestDb {
            db,
            url,
            cleanup: Some(Box::new(move || {
                async move {
                    closing.close().await;
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::Executor::execute(
                            &mut admin,
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                        )
                        .await;
                        admin.close().await.ok();
                    }
                }
                .boxed()
            })),
        })
    }

    /// Like [`TestDb::postgres`] with `MOD8_POSTGRES_URL`, or `None` (after one skip line) when
    /// it is unset; panics when unset and `MOD8_REQUIRE_SERVICES=1`.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres_from_env(suite: &str) -> Option<TestDb> {
        Self::postgres_from_var("MOD8_POSTGRES_URL", suite).await
    }

    /// Like [`TestDb::postgres_from_env`] with the admin URL in the variable `var` (for
    /// instance `MOD8_POSTGRES_TLS_URL`, a `sslmode=verify-full` URL: the test database is
    /// reached with the same query parameters).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres_from_var(var: &str, suite: &str) -> Option<TestDb> {
        match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => {
                use std::io::Write;
                // Visible in CI output: which suites met a real server.
                let _ = writeln!(
                    std::io::stderr(),
                    "{suite}: using the real service at {var}"
                );
                TestDb::postgres(url.trim()).await
            }
            _ if matches!(
                std::env::var("MOD8_REQUIRE_SERVICES")
                    .as_deref()
                    .map(str::trim),
                Ok("1" | "true" | "yes")
            ) =>
            {
                panic!("{suite}: {var} is not set but MOD8_REQUIRE_SERVICES=1 requires it")
            }
            _ => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "skipping {suite}: {var} not set");
                None
            }
        }
    }

    /// A fresh database on the PostgreSQL primary at `admin_url` (as [`TestDb::postgres`]),
    /// reached through a [`ReplicaRouter`](crate::replica::ReplicaRouter) whose replica is the
    /// same database on the standby at `read_admin_url` (only its database name is replaced).
    /// Waits until the standby has replayed the new database and its migrations (the router
    /// reports it current, zero behind), so reads go to it from the first call. [`TestDb::db`] is a clone
    /// of the returned router (same write history and counters).
    ///
    /// # Panics
    ///
    /// When either server cannot be reached, or the standby does not catch up within a
    /// minute.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres_replica(
        admin_url: &str,
        read_admin_url: &str,
        settings: ReplicaSettings,
    ) -> Option<(TestDb, crate::replica::ReplicaRouter)> {
        let primary = TestDb::postgres(admin_url).await?;
        let name = primary
            .url
            .rsplit_once('/')
            .map(|(_, db)| db.split('?').next().unwrap_or(db).to_owned())
            .expect("the test database's URL names it");
        let read_url = replace_database(read_admin_url, &name);
        let config = OrmConfig::new(primary.url.clone())
            .with_max_connections(4)
            .with_read_url(read_url)
            .with_replica_settings(settings);
        let router = crate::replica::ReplicaRouter::connect(&config)
            .await
            .expect("connect the replica router to the test database");
        use std::time::Duration;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            // Replayed everything (not merely within the lag bound): the migrations are there.
            let state = router.check_replica().await;
            if state
                == (crate::replica::ReplicaState::Current {
                    lag: Duration::ZERO,
                })
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the standby at {} did not catch up with the test database within a minute \
                 (last state {state:?})",
                crate::config::OrmConfig::new(read_admin_url).redacted_url()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let TestDb {
            db: plain,
            url,
            cleanup,
        } = primary;
        // The router's own primary store replaces the one `TestDb::postgres` connected.
        plain.close().await;
        let closing = router.clone();
        Some((
            TestDb {
                db: Arc::new(router.clone()),
                url,
                cleanup: Some(Box::new(move || {
                    async move {
                        closing.close().await;
                        if let Some(cleanup) = cleanup {
                            cleanup().await;
                        }
                    }
                    .boxed()
                })),
            },
            router,
        ))
    }

    /// Like [`TestDb::postgres_replica`] with `MOD8_POSTGRES_URL` and `MOD8_POSTGRES_READ_URL`
    /// and the default [`ReplicaSettings`], or `None` (after one skip line) when either is
    /// unset; panics when one is unset and `MOD8_REQUIRE_SERVICES=1`.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres_replica_from_env(suite: &str) -> Option<TestDb> {
        Self::postgres_replica_from_env_with(suite, ReplicaSettings::default())
            .await
            .map(|(db, _)| db)
    }

    /// [`TestDb::postgres_replica_from_env`] with these settings, returning the router too.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres_replica_from_env_with(
        suite: &str,
        settings: ReplicaSettings,
    ) -> Option<(TestDb, crate::replica::ReplicaRouter)> {
        let admin = service_var("MOD8_POSTGRES_URL", suite)?;
        let read = service_var("MOD8_POSTGRES_READ_URL", suite)?;
        TestDb::postgres_replica(&admin, &read, settings).await
    }

    /// The URL of the database under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs a case, then cleans up whether it passed or panicked.
    pub async fn run<F>(self, case: F)
    where
        F: for<'a> FnOnce(&'a dyn Database) -> BoxFuture<'a, ()>,
    {
        let outcome = std::panic::AssertUnwindSafe(case(&*self.db))
            .catch_unwind()
            .await;
        self.teardown().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// Closes the database and drops it when it was created for the test.
    pub async fn teardown(self) {
        match self.cleanup {
            Some(cleanup) => cleanup().await,
            None => self.db.close().await,
        }
    }
}

/// The URL in `var`, or `None` after one skip line; panics when unset and
/// `MOD8_REQUIRE_SERVICES=1`.
#[cfg(feature = "postgres")]
fn service_var(var: &str, suite: &str) -> Option<String> {
    use std::io::Write;
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => {
            let _ = writeln!(
                std::io::stderr(),
                "{suite}: using the real service at {var}"
            );
            Some(url.trim().to_owned())
        }
        _ if matches!(
            std::env::var("MOD8_REQUIRE_SERVICES")
                .as_deref()
                .map(str::trim),
            Ok("1" | "true" | "yes")
        ) =>
        {
            panic!("{suite}: {var} is not set but MOD8_REQUIRE_SERVICES=1 requires it")
        }
        _ => {
            let _ = writeln!(std::io::stderr(), "skipping {suite}: {var} not set");
            None
        }
    }
}

/// `url` with its database name replaced by `name`.
#[cfg(feature = "postgres")]
pub(crate) fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Emits one `#[tokio::test]` per conformance case, each on a database from `$setup`
/// (an expression of type `impl Future<Output = Option<TestDb>>`): the whole-store cases,
/// then the user-repository suite with the database's own user repository under test.
#[macro_export]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
macro_rules! conformance_tests {
    ($setup:expr) => {
        $crate::conformance_tests!(@store $setup;
            case_validation_before_database,
            case_catalogue_conflicts_name_the_field,
            case_missing_rows_are_not_found,
            case_eager_location_is_one_statement,
            case_unit_of_work,
            case_nested_unit_of_work,
            case_dropped_nested_units_roll_back,
            case_countries_and_stats,
            case_orders,
            case_concurrent_cancels_restock_once,
            case_concurrent_orders_in_opposite_line_order,
            case_order_rolls_back_on_failure,
            case_analytics,
            case_customer_rfm,
            case_customer_rfm_matches_the_reference,
            case_customer_rfm_in_a_unit_of_work,
            case_customer_histories,
            case_co_purchase_counts,
            case_injection_strings_stored_literally,
            case_bulk_insert_splits_statements,
            case_outbox,
            case_outbox_in_a_unit_of_work,
            case_money_stays_integral,
            case_category_tree,
            case_catalog_product_page,
            case_product_versions_and_archive,
            case_category_listing,
            case_inventory_ledger,
            case_order_life_cycle,
            case_reviews,
            case_cart_and_checkout,
            case_concurrent_checkouts_sell_exactly_the_stock,
            case_catalog_queries
        );
        $crate::conformance_tests!(@users $setup;
            case_user_crud => UserCrud,
            case_user_input_is_validated => UserInputIsValidated,
            case_user_conflicts_name_the_field => UserConflictsNameTheField,
            case_missing_users_are_not_found => MissingUsersAreNotFound,
            case_pagination => Pagination,
            case_users_by_location => UsersByLocation,
            case_user_stats => UserStats,
            case_activity_ranking => ActivityRanking,
            case_user_with_address_is_atomic => UserWithAddressIsAtomic,
            case_bulk_insert => BulkInsert,
            case_user_timestamps_round_trip => UserTimestampsRoundTrip,
            case_look_alike_identities_conflict => LookAlikeIdentitiesConflict
        );
    };
    (@store $setup:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(test_db) = $setup.await else { return };
                test_db
                    .run(|db| ::std::boxed::Box::pin($crate::testing::$case(db)))
                    .await;
            }
        )*
    };
    (@users $setup:expr; $($case:ident => $variant:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(test_db) = $setup.await else { return };
                $crate::testing::UserRepositoryFixture::of_database(test_db)
                    .run($crate::testing::UserRepositoryCase::$variant)
                    .await;
            }
        )*
    };
}
