//! The conformance suite on SQLite: in memory (the embedded default), in memory with every
//! lookup through sqlx's worker (direct reads off), and in a WAL file.

mod memory {
    mod8_orm::conformance_tests!(mod8_orm::testing::TestDb::sqlite_memory());
}

mod memory_through_sqlx {
    mod8_orm::conformance_tests!(mod8_orm::testing::TestDb::sqlite_memory_configured(
        |config| config.with_sqlite_direct_reads(false)
    ));
}

mod file {
    use std::sync::LazyLock;

    static DIR: LazyLock<tempfile::TempDir> =
        LazyLock::new(|| tempfile::tempdir().expect("temporary directory"));

    mod8_orm::conformance_tests!(mod8_orm::testing::TestDb::sqlite_file(DIR.path()));
}

use mod8_orm::{NewUser, OrmConfig, UserRepository};

/// Concurrent writers on one SQLite file wait for each other (WAL + busy timeout) instead of
/// failing with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_a_file_wait_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let db = OrmConfig::new(&url)
        .with_max_connections(8)
        .connect()
        .await
        .unwrap();
    let journal: String = {
        let other = OrmConfig::new(&url)
            .with_migrations(false)
            .connect()
            .await
            .unwrap();
        drop(other);
        let store = mod8_orm::sqlite::SqliteStore::connect(&OrmConfig::new(&url))
            .await
            .unwrap();
        mod8_orm::sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    assert_eq!(journal, "wal");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let uow = db.begin().await.unwrap();
                uow.create_user(NewUser::new(
                    format!("w{t}_{i}@example.org"),
                    format!("w{t}_{i}"),
                ))
                .await
                .unwrap();
                uow.commit().await.unwrap();
                db.create_user(NewUser::new(
                    format!("p{t}_{i}@example.org"),
                    format!("p{t}_{i}"),
                ))
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(db.user_stats().await.unwrap().count, 8 * 25 * 2);
}

/// Transactions that read before they write (placing an order, a unit of work that looks
/// something up first) do not fail with SQLITE_BUSY under concurrency: SQLite transactions
/// start with `BEGIN IMMEDIATE`, so they queue for the write lock up front (where the busy
/// timeout applies) instead of failing when upgrading a read snapshot that went stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_on_a_file_all_succeed() {
    use mod8_orm::{NewOrder, NewProduct, OrderLine};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("orders.db").display());
    let db = OrmConfig::new(&url)
        .with_max_connections(8)
        .connect()
        .await
        .unwrap();
    let mut products = Vec::new();
    for sku in ["A", "B", "C"] {
        let p = db
            .create_product(NewProduct {
                sku: sku.into(),
                name: format!("product {sku}"),
                category: "test".into(),
                price_cents: 100,
                stock: 10_000,
            })
            .await
            .unwrap();
        products.push(p.id);
    }
    const TASKS: usize = 8;
    const ROUNDS: usize = 10;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        let products = products.clone();
        tasks.push(tokio::spawn(async move {
            let user = db
                .create_user(NewUser::new(
                    format!("buyer{t}@example.org"),
                    format!("buyer{t}"),
                ))
                .await
                .unwrap();
            for round in 0..ROUNDS {
                let mut lines: Vec<OrderLine> = products
                    .iter()
                    .map(|&product_id| OrderLine {
                        product_id,
                        quantity: 1,
                    })
                    .collect();
                lines.rotate_left((t + round) % products.len());
                db.place_order(NewOrder {
                    user_id: user.id,
                    lines: lines.clone(),
                    created_at: None,
                })
                .await
                .unwrap();
                // A unit of work that reads, then writes.
                let uow = db.begin().await.unwrap();
                uow.get_product(products[0]).await.unwrap();
                let placed = uow
                    .place_order(NewOrder {
                        user_id: user.id,
                        lines,
                        created_at: None,
                    })
                    .await
                    .unwrap();
                uow.commit().await.unwrap();
                db.set_order_status(placed.order.id, mod8_orm::OrderStatus::Paid)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for id in products {
        let stock = db.get_product(id).await.unwrap().stock;
        assert_eq!(stock, 10_000 - (TASKS * ROUNDS * 2) as i64);
    }
}

/// Foreign keys are enforced on SQLite too.
#[tokio::test]
async fn sqlite_enforces_foreign_keys() {
    let store = mod8_orm::sqlite::SqliteStore::connect(&OrmConfig::new("sqlite::memory:"))
        .await
        .unwrap();
    let on: i64 = mod8_orm::sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(on, 1);
    let mut user = NewUser::new("a@example.org", "ann");
    user.address_id = Some(uuid::Uuid::new_v4());
    assert!(matches!(
        store.create_user(user).await,
        Err(mod8_orm::Error::NotFound {
            entity: "address",
            ..
        })
    ));
}

/// Migrations are recorded in the crate's own history table, leave sqlx's table to the host,
/// and applying them twice is a no-op.
#[tokio::test]
async fn migrations_keep_their_own_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = mod8_orm::sqlite::SqliteStore::connect(&OrmConfig::new(&url))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let versions: Vec<i64> = mod8_orm::sqlx::query_scalar(&format!(
        "SELECT version FROM {} ORDER BY version",
        mod8_orm::HISTORY_TABLE
    ))
    .fetch_all(store.pool())
    .await
    .unwrap();
    let embedded: Vec<i64> = mod8_orm::migrations(mod8_orm::Backend::Sqlite)
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, embedded);
    let sqlx_table: Option<String> = mod8_orm::sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE name = '_sqlx_migrations'",
    )
    .fetch_optional(store.pool())
    .await
    .unwrap();
    assert_eq!(sqlx_table, None);
    // A host's own sqlx migrator can use `_sqlx_migrations` in the same database.
    let host =
        mod8_orm::sqlx::migrate::Migrator::new(std::path::Path::new("tests/host_migrations"))
            .await
            .unwrap();
    host.run(store.pool()).await.unwrap();
    store.migrate().await.unwrap();
}

/// Opting out of migrations leaves the database untouched.
#[tokio::test]
async fn migrations_can_be_turned_off() {
    let store = mod8_orm::sqlite::SqliteStore::connect(
        &OrmConfig::new("sqlite::memory:").with_migrations(false),
    )
    .await
    .unwrap();
    let tables: i64 = mod8_orm::sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(tables, 0);
    assert!(store.user_stats().await.is_err());
}

/// The database itself keeps e-mail addresses unique case-insensitively and usernames unique
/// by their normalised key: a writer that skips the crate's validation (a hand-written
/// statement, another service) meets the same conflicts, named like the crate's own.
#[tokio::test]
async fn sqlite_schema_enforces_case_insensitive_identities() {
    let store = mod8_orm::sqlite::SqliteStore::connect(&OrmConfig::new("sqlite::memory:"))
        .await
        .unwrap();
    store
        .create_user(NewUser::new("ada@x.org", "Ada"))
        .await
        .unwrap();
    let raw = |email: &'static str, username: &'static str, key: &'static str| {
        let pool = store.pool().clone();
        async move {
            mod8_orm::sqlx::query(
                "INSERT INTO users (id, email, username, profile_score, is_verified, \
                 created_at, last_active_at, username_key) \
                 VALUES (?, ?, ?, 0, 0, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', ?)",
            )
            .bind(uuid::Uuid::new_v4())
            .bind(email)
            .bind(username)
            .bind(key)
            .execute(&pool)
            .await
            .map_err(|e| mod8_orm::Error::from_sqlx("sqlite", e))
        }
    };
    let conflict = |r: Result<_, mod8_orm::Error>| match r {
        Err(mod8_orm::Error::Conflict { field, .. }) => field,
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert_eq!(conflict(raw("ADA@x.org", "other", "other").await), "email");
    assert_eq!(conflict(raw("new@x.org", "ADA", "ada").await), "username");
    raw("new@x.org", "new", "new").await.unwrap();
}

/// Products, stock and orders written under the flat product schema are carried into the
/// catalog by its migration (in a file, as a real upgrade would find them).
#[tokio::test]
async fn catalog_migration_carries_data_forward_on_sqlite() {
    use mod8_orm::futures::FutureExt;
    use mod8_orm::sqlite::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("upgrade.db").display());
    let store = SqliteStore::connect(&OrmConfig::new(&url).with_migrations(false))
        .await
        .unwrap();
    let pool = store.pool().clone();
    let (p1, p2, s1) = (pool.clone(), pool.clone(), store.clone());
    let raw = mod8_orm::testing::RawStore {
        backend: mod8_orm::Backend::Sqlite,
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
}
