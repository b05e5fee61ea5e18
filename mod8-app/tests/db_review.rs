//! `mod8 db review` on a seeded database with `orders_user_idx` dropped: the review names
//! `orders_of_user`'s statement, flags its scan, proposes the index and (PostgreSQL, through
//! hypopg) shows the cost fall; with the index back it reports nothing for that statement.

#![allow(clippy::unwrap_used)]

use mod8_app::commands::review::{
    review, FindingKind, ProposalKind, Review, ReviewOptions, ReviewedStatement,
};
use mod8_orm::sqlx;
use mod8_orm::{OrderRepository, OrmConfig};

/// The statement of `OrderRepository::orders_of_user`.
const ORDERS_OF_USER: &str = "FROM orders WHERE user_id = $1";

const OPTIONS: ReviewOptions = ReviewOptions {
    limit: 100,
    large_rows: 1_000,
};

fn orders_of_user(review: &Review) -> &ReviewedStatement {
    review
        .statements
        .iter()
        .find(|s| s.sql.contains(ORDERS_OF_USER))
        .unwrap_or_else(|| panic!("orders_of_user is not in the review: {review:#?}"))
}

/// The flags and the index proposal the dropped index leaves.
fn assert_flagged(s: &ReviewedStatement) {
    let kinds: Vec<FindingKind> = s.findings.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FindingKind::SeqScanLargeTable), "{s:#?}");
    let filter = s
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::UnindexedFilter)
        .unwrap_or_else(|| panic!("{s:#?}"));
    assert_eq!(filter.table.as_deref(), Some("orders"));
    assert_eq!(filter.columns, vec!["user_id".to_owned()]);
    let index = s
        .proposals
        .iter()
        .find(|p| p.kind == ProposalKind::Index)
        .unwrap_or_else(|| panic!("{s:#?}"));
    assert!(index.sql.starts_with("CREATE INDEX"), "{}", index.sql);
    assert!(index.sql.contains("ON orders (user_id"), "{}", index.sql);
    assert_eq!(index.uses_index, Some(true), "{index:#?}");
}

#[tokio::test]
async fn review_on_postgres_proposes_the_dropped_index_and_hypopg_lowers_the_cost() {
    let Some(admin) = mod8_testkit::service_url(mod8_testkit::POSTGRES, "app db review") else {
        return;
    };
    // A database of this run's own, cloned from the template that has pg_stat_statements and
    // hypopg (scripts/services.sh makes it; mod8 may not create those extensions itself).
    let run = mod8_testkit::unique_name("mod8_review");
    let mut conn = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&admin).await.unwrap()
    };
    sqlx::query(&format!(
        "CREATE DATABASE {run} TEMPLATE mod8_review_template"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{run}");
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(postgres_case(url.clone())))
            .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {run} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn postgres_case(url: String) {
    let db = OrmConfig::new(&url).connect().await.unwrap();
    let pool =
        mod8_orm::postgres::PostgresStore::connect(&OrmConfig::new(&url).with_migrations(false))
            .await
            .unwrap();
    let pool = pool.pool().clone();
    sqlx::raw_sql(
        "INSERT INTO users (id, email, username, username_key, profile_score, is_verified, \
             created_at, last_active_at) \
         SELECT gen_random_uuid(), 'u' || g || '@example.org', 'u' || g, 'u' || g, 1, false, \
             now(), now() FROM generate_series(1, 500) g; \
         INSERT INTO orders (id, user_id, created_at, status, total_cents) \
         SELECT gen_random_uuid(), u.id, now() - g * interval '1 hour', 'paid', 100 \
         FROM users u, generate_series(1, 10) g; \
         DROP INDEX orders_user_idx; \
         ANALYZE users; ANALYZE orders",
    )
    .execute(&pool)
    .await
    .unwrap();
    let users: Vec<mod8_orm::uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users LIMIT 5")
        .fetch_all(&pool)
        .await
        .unwrap();
    for &user in &users {
        assert_eq!(db.orders_of_user(user).await.unwrap().len(), 10);
    }

    let before = review(&url, OPTIONS).await.unwrap();
    assert_eq!(before.source, "pg_stat_statements");
    assert!(before.notes.is_empty(), "{:?}", before.notes);
    let s = orders_of_user(&before);
    assert!(s.calls >= 5, "{s:#?}");
    // Named as the slow-statement log names it.
    let timings = db.statement_log().unwrap().timings();
    let ours = timings
        .iter()
        .find(|t| t.sql.contains(ORDERS_OF_USER))
        .unwrap();
    assert_eq!(s.name, ours.name);
    assert_flagged(s);
    let index = s
        .proposals
        .iter()
        .find(|p| p.kind == ProposalKind::Index)
        .unwrap();
    let (cost_before, cost_after) = (index.cost_before.unwrap(), index.cost_after.unwrap());
    assert!(cost_after < cost_before, "{index:#?}");
    assert_eq!(Some(cost_before), s.plan_cost);
    sqlx::raw_sql("CREATE INDEX orders_user_idx ON orders (user_id, created_at); ANALYZE orders")
        .execute(&pool)
        .await
        .unwrap();
    let after = review(&url, OPTIONS).await.unwrap();
    let s = orders_of_user(&after);
    assert!(s.findings.is_empty(), "{s:#?}");
    assert!(s.proposals.is_empty(), "{s:#?}");
    let text = mod8_app::commands::review::render(&after);
    assert!(text.contains(&s.name), "{text}");
    pool.close().await;
    db.close().await;
}

#[tokio::test]
async fn review_on_sqlite_proposes_the_dropped_index_and_tries_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("review.db").display());
    let db = OrmConfig::new(&url).connect().await.unwrap();
    let users: Vec<mod8_orm::NewUser> = (0..300)
        .map(|i| mod8_orm::NewUser::new(format!("user{i}@example.org"), format!("user{i}")))
        .collect();
    db.create_users(users).await.unwrap();
    let store =
        mod8_orm::sqlite::SqliteStore::connect(&OrmConfig::new(&url).with_migrations(false))
            .await
            .unwrap();
    let pool = store.pool().clone();
    sqlx::raw_sql(
        "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < 10) \
         INSERT INTO orders (id, user_id, created_at, status, total_cents) \
         SELECT randomblob(16), u.id, '2024-01-01T00:00:00Z', 'paid', 100 FROM users u, n; \
         DROP INDEX orders_user_idx; ANALYZE",
    )
    .execute(&pool)
    .await
    .unwrap();

    let before = review(&url, OPTIONS).await.unwrap();
    assert_eq!(before.source, "probe workload");
    let s = orders_of_user(&before);
    assert!(s.calls >= 1, "{s:#?}");
    assert_flagged(s);

    sqlx::raw_sql("CREATE INDEX orders_user_idx ON orders (user_id, created_at)")
        .execute(&pool)
        .await
        .unwrap();
    let after = review(&url, OPTIONS).await.unwrap();
    let s = orders_of_user(&after);
    assert!(s.findings.is_empty(), "{s:#?}");
    assert!(s.proposals.is_empty(), "{s:#?}");
    pool.close().await;
    db.close().await;
}
