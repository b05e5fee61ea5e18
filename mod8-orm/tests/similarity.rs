//! The similarity conformance suite on SQLite (the in-process HNSW index), on PostgreSQL
//! with the exact scan (`MOD8_POSTGRES_URL`, pgvector turned off so the exact path runs
//! whatever that server has), and on real pgvector (`MOD8_PGVECTOR_URL`).

use mod8_orm::{SimilarityPath, SimilaritySettings};

mod sqlite {
    use super::*;
    mod8_orm::similarity_tests!(
        mod8_orm::testing::TestDb::sqlite_memory(),
        SimilarityPath::InProcessHnsw
    );
}

mod postgres_exact {
    use super::*;
    mod8_orm::similarity_tests!(
        mod8_orm::testing::similarity_postgres(
            "MOD8_POSTGRES_URL",
            "similarity on PostgreSQL (exact scan)",
            SimilaritySettings {
                use_vector_extension: false,
                ..SimilaritySettings::default()
            },
        ),
        SimilarityPath::ExactScan
    );
}

mod pgvector {
    use super::*;
    mod8_orm::similarity_tests!(
        mod8_orm::testing::similarity_postgres(
            "MOD8_PGVECTOR_URL",
            "similarity on pgvector",
            SimilaritySettings::default(),
        ),
        SimilarityPath::Pgvector
    );
}

/// The main PostgreSQL server, with pgvector allowed, uses it exactly when the extension is
/// available there (and otherwise says so and scans exactly).
#[tokio::test]
async fn postgres_path_follows_the_extension() {
    use mod8_orm::sqlx::Connection;
    let Some(test_db) = mod8_orm::testing::similarity_postgres(
        "MOD8_POSTGRES_URL",
        "similarity path on PostgreSQL",
        SimilaritySettings::default(),
    )
    .await
    else {
        return;
    };
    let mut conn = mod8_orm::sqlx::PgConnection::connect(test_db.url())
        .await
        .unwrap();
    let available: i64 = mod8_orm::sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_available_extensions WHERE name = 'vector'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    let expected = if available > 0 {
        SimilarityPath::Pgvector
    } else {
        SimilarityPath::ExactScan
    };
    test_db
        .run(|db| Box::pin(mod8_orm::testing::case_similarity_path(db, expected)))
        .await;
}
