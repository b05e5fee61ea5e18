//! The conformance suite on PostgreSQL (`MOD8_POSTGRES_URL`), each case in its own database.
#![cfg(feature = "postgres")]

mod8_orm::conformance_tests!(mod8_orm::testing::TestDb::postgres_from_env(
    "orm postgres conformance"
));

use mod8_orm::postgres::PostgresStore;
use mod8_orm::testing::TestDb;
use mod8_orm::{Database, Error, NewUser, OrmConfig};

/// PostgreSQL aborts a transaction at its first failed statement: committing such a unit of
/// work says so and saves nothing.
#[tokio::test]
async fn commit_after_a_failed_statement_reports_the_abort() {
    let Some(test_db) = TestDb::postgres_from_env("orm postgres aborted unit of work").await else {
        return;
    };
    test_db
        .run(|db| {
            Box::pin(async move {
                let uow = db.begin().await.unwrap();
                uow.create_user(NewUser::new("a@example.org", "ann"))
                    .await
                    .unwrap();
                let dup = uow.create_user(NewUser::new("a@example.org", "bob")).await;
                assert!(matches!(
                    dup,
                    Err(Error::Conflict { field, .. }) if field == "email"
                ));
                assert!(matches!(uow.commit().await, Err(Error::TransactionAborted)));
                assert_eq!(db.user_stats().await.unwrap().count, 0);
            })
        })
        .await;
}

/// Migrations are recorded in the crate's own table, not sqlx's, and re-running them is a
/// no-op.
#[tokio::test]
async fn postgres_migrations_keep_their_own_history() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::POSTGRES, "orm postgres migrations")
    else {
        return;
    };
    let Some(test_db) = TestDb::postgres(&url).await else {
        return;
    };
    let url = test_db.url().to_owned();
    test_db
        .run(|_db| {
            Box::pin(async move {
                let store = PostgresStore::connect(&OrmConfig::new(&url)).await.unwrap();
                store.migrate().await.unwrap();
                let versions: Vec<i64> = mod8_orm::sqlx::query_scalar(&format!(
                    "SELECT version FROM {} ORDER BY version",
                    mod8_orm::HISTORY_TABLE
                ))
                .fetch_all(store.pool())
                .await
                .unwrap();
                let embedded: Vec<i64> = mod8_orm::migrations(mod8_orm::Backend::Postgres)
                    .iter()
                    .map(|m| m.version)
                    .collect();
                assert_eq!(versions, embedded);
                let sqlx_table: Option<String> =
                    mod8_orm::sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                        .fetch_one(store.pool())
                        .await
                        .unwrap();
                assert_eq!(sqlx_table, None);
                store.close().await;
            })
        })
        .await;
}

/// The database itself keeps e-mail addresses unique case-insensitively and usernames unique
/// by their normalised key: a writer that skips the crate's validation (a hand-written
/// statement, another service) meets the same conflicts, named like the crate's own.
#[tokio::test]
async fn postgres_schema_enforces_case_insensitive_identities() {
    let Some(test_db) = TestDb::postgres_from_env("orm postgres identities").await else {
        return;
    };
    let url = test_db.url().to_owned();
    test_db
        .run(|db| {
            Box::pin(async move {
                db.create_user(NewUser::new("ada@x.org", "Ada"))
                    .await
                    .unwrap();
                let store = PostgresStore::connect(&OrmConfig::new(&url)).await.unwrap();
                let raw = |email: &'static str, username: &'static str, key: &'static str| {
                    let pool = store.pool().clone();
                    async move {
                        mod8_orm::sqlx::query(
                            "INSERT INTO users (id, email, username, profile_score, \
                             is_verified, created_at, last_active_at, username_key) \
                             VALUES ($1, $2, $3, 0, false, now(), now(), $4)",
                        )
                        .bind(uuid::Uuid::new_v4())
                        .bind(email)
                        .bind(username)
                        .bind(key)
                        .execute(&pool)
                        .await
                        .map_err(|e| Error::from_sqlx("postgres", e))
                    }
                };
                let conflict = |r: Result<_, Error>| match r {
                    Err(Error::Conflict { field, .. }) => field,
                    other => panic!("expected a conflict, got {other:?}"),
                };
                assert_eq!(conflict(raw("ADA@x.org", "other", "other").await), "email");
                assert_eq!(conflict(raw("new@x.org", "ADA", "ada").await), "username");
                raw("new@x.org", "new", "new").await.unwrap();
                store.close().await;
            })
        })
        .await;
}

/// Products, stock and orders written under the flat product schema are carried into the
/// catalog by its migration.
#[tokio::test]
async fn catalog_migration_carries_data_forward_on_postgres() {
    use mod8_orm::futures::FutureExt;
    let Some(test_db) = TestDb::postgres_from_env("orm postgres catalog migration").await else {
        return;
    };
    let url = test_db.url().to_owned();
    test_db
        .run(|_db| {
            Box::pin(async move {
                // The test database comes migrated: start over from an empty schema.
                let store = PostgresStore::connect(&OrmConfig::new(&url).with_migrations(false))
                    .await
                    .unwrap();
                let pool = store.pool().clone();
                mod8_orm::sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
                    .execute(&pool)
                    .await
                    .unwrap();
                let (p1, p2, s1) = (pool.clone(), pool.clone(), store.clone());
                let raw = mod8_orm::testing::RawStore {
                    backend: mod8_orm::Backend::Postgres,
                    execute: Box::new(move |sql| {
                        let pool = p1.clone();
                        async move {
                            mod8_orm::sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
                        }
                        .boxed()
                    }),
                    scalar: Box::new(move |sql| {
                        let pool = p2.clone();
                        async move {
                            mod8_orm::sqlx::query_scalar::<_, i64>(&sql)
                                .fetch_one(&pool)
                                .await
                                .unwrap()
                        }
                        .boxed()
                    }),
                    migrate_to: Box::new(move |version| {
                        let store = s1.clone();
                        async move { store.migrate_to(version).await.unwrap() }.boxed()
                    }),
                };
                mod8_orm::testing::case_catalog_migration_carries_data_forward(raw, &store).await;
                store.close().await;
            })
        })
        .await;
}
