//! The search conformance suite (`mod8_orm::testing::search`) on SQLite (in memory and in a
//! file), on PostgreSQL (`MOD8_POSTGRES_URL`; skipped when unset) and through the read-replica
//! router (`MOD8_POSTGRES_URL` and `MOD8_POSTGRES_READ_URL`: searches are reads, routed like
//! the others), each case on a fresh database loaded with the checked-in corpus: the same
//! queries give the same results on every backend. The hybrid cases run on the PostgreSQL
//! with pgvector (`MOD8_PGVECTOR_URL`) too.

mod sqlite_memory {
    mod8_orm::search_conformance_tests!(mod8_orm::testing::TestDb::sqlite_memory());
}

mod sqlite_file {
    use std::sync::LazyLock;

    static DIR: LazyLock<tempfile::TempDir> =
        LazyLock::new(|| tempfile::tempdir().expect("temporary directory"));

    mod8_orm::search_conformance_tests!(mod8_orm::testing::TestDb::sqlite_file(DIR.path()));
}

#[cfg(feature = "postgres")]
mod postgres {
    mod8_orm::search_conformance_tests!(mod8_orm::testing::TestDb::postgres_from_env(
        "orm search postgres"
    ));
}

#[cfg(feature = "postgres")]
mod postgres_replica {
    mod8_orm::search_conformance_tests!(mod8_orm::testing::TestDb::postgres_replica_from_env(
        "orm search postgres replica"
    ));
}

/// The PostgreSQL with pgvector (`MOD8_PGVECTOR_URL`): hybrid search there fuses with the
/// HNSW index's ranking. (That server has no unaccent dictionary, so full-text search folds
/// accents only in its typo fallback there, as the search migration says: the full-text
/// cases run on the main server.)
#[cfg(feature = "postgres")]
mod pgvector {
    mod8_orm::search_conformance_tests!(@cases mod8_orm::testing::similarity_postgres(
        "MOD8_PGVECTOR_URL",
        "orm hybrid search pgvector",
        mod8_orm::SimilaritySettings::default(),
    );
        case_hybrid_beats_either_ranking,
        case_hybrid_search_semantics
    );
}
