//! The search conformance suite (`mod8_orm::testing::search`) on SQLite (in memory and in a
//! file), on PostgreSQL (`MOD8_POSTGRES_URL`; skipped when unset) and through the read-replica
//! router (`MOD8_POSTGRES_URL` and `MOD8_POSTGRES_READ_URL`: searches are reads, routed like
//! the others), each case on a fresh database loaded with the checked-in corpus: the same
//! queries give the same results on every backend.

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
