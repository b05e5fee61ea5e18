//! The conformance suite through the read-replica router: every case on a fresh database of
//! the primary (`MOD8_POSTGRES_URL`), reached through a `ReplicaRouter` whose replica is the
//! same database on the streaming standby (`MOD8_POSTGRES_READ_URL`), default settings. The
//! cases read their own writes (read-your-writes) and read from the standby once their writes
//! have aged past the window.
#![cfg(feature = "postgres")]

mod8_orm::conformance_tests!(mod8_orm::testing::TestDb::postgres_replica_from_env(
    "orm postgres replica conformance"
));
