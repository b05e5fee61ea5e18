//! Counts statements two independent ways — the crate's own counter and the drivers'
//! statement logs (sqlx's `sqlx::query` tracing events, one per statement sent, and SQLite's
//! own report of each statement run on the SQLite store's direct connections) — and shows that listing N users
//! with their Address → City → Country chain is one statement for any N, while the naive loop
//! is N + 1, on SQLite and (when `MOD8_POSTGRES_URL` is set) on PostgreSQL.
//!
//! One test per binary: the tracing subscriber is process-global.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use mod8_orm::testing::{seed_world, user_in, TestDb};
use mod8_orm::{Database, PageRequest};
use tracing_subscriber::layer::SubscriberExt;

static SQLX_STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Counts sqlx's per-statement log events.
struct StatementLog;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementLog {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let metadata = event.metadata();
        // sqlx's statements, and those SQLite reports running on the SQLite store's direct
        // connections (point lookups and pages read beside sqlx).
        let direct = metadata.target() == "mod8_orm::sqlite::direct"
            && metadata.fields().field("statement").is_some();
        if metadata.target() == "sqlx::query" || direct {
            SQLX_STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Statements `f` issued, by (crate counter, sqlx log).
async fn measure<F: std::future::Future<Output = ()>>(db: &dyn Database, f: F) -> (u64, u64) {
    let ours = db.statements_executed();
    let logged = SQLX_STATEMENTS.load(Ordering::SeqCst);
    f.await;
    (
        db.statements_executed() - ours,
        SQLX_STATEMENTS.load(Ordering::SeqCst) - logged,
    )
}

async fn eager_is_one_statement_naive_is_n_plus_one(db: &dyn Database, backend: &str) {
    let world = seed_world(db).await;
    let mut have = 0;
    for n in [1_usize, 10, 100] {
        for i in have..n {
            let city = &world.cities[i % world.cities.len()];
            user_in(db, city, &format!("user{i}"), (i % 100) as f64).await;
        }
        have = n;
        let page = PageRequest::first(n as u32);
        let eager = measure(db, async {
            let users = db.users_with_location(page).await.unwrap();
            assert_eq!(users.len(), n);
            assert!(users.iter().all(|u| u.location.is_some()));
        })
        .await;
        assert_eq!(eager, (1, 1), "{backend}: eager load of {n} users");

        // The naive loop: one query for the users, then one location query per user.
        let naive_total = measure(db, async {
            let users = db
                .users_with_location(page)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.user)
                .collect::<Vec<_>>();
            for u in &users {
                db.location(u.address_id.unwrap()).await.unwrap();
            }
        })
        .await;
        assert_eq!(
            naive_total,
            (n as u64 + 1, n as u64 + 1),
            "{backend}: N + 1"
        );
        println!(
            "{backend}: {n} users -> eager 1 statement, naive {} statements",
            n + 1
        );
    }
}

#[tokio::test]
async fn listing_users_with_location_is_one_statement_on_every_backend() {
    let subscriber = tracing_subscriber::registry().with(StatementLog);
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let sqlite = TestDb::sqlite_memory().await.unwrap();
    sqlite
        .run(|db| Box::pin(eager_is_one_statement_naive_is_n_plus_one(db, "sqlite")))
        .await;

    #[cfg(feature = "postgres")]
    if let Some(pg) = TestDb::postgres_from_env("orm postgres statement count").await {
        pg.run(|db| Box::pin(eager_is_one_statement_naive_is_n_plus_one(db, "postgres")))
            .await;
    }
}
