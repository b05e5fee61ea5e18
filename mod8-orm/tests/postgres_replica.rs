//! Read-replica routing on the real streaming standby (`MOD8_POSTGRES_URL` for the primary,
//! `MOD8_POSTGRES_READ_URL` for the standby, both from `scripts/services.sh up`): where reads
//! and writes land, read-your-writes with replay paused, the lag bound, and a stopped standby.
//!
//! These tests pause replay on the standby and stop it, so they take one lock each and run one
//! at a time; whatever happens, a guard resumes replay and starts the standby again. (The
//! conformance suite through the router is `postgres_replica_conformance.rs`, another test
//! binary, so it never meets a paused or stopped standby.)
#![cfg(feature = "postgres")]

use std::process::Command;
use std::time::{Duration, Instant};

use mod8_orm::futures::TryStreamExt;
use mod8_orm::replica::{ReplicaRouter, ReplicaState, RouteStats};
use mod8_orm::sqlx::{self, Connection};
use mod8_orm::testing::TestDb;
use mod8_orm::{
    AnalyticsRepository, Database, Error, NewUser, OutboxRepository, ReplicaSettings,
    UserRepository, UserUpdate,
};

/// One test at a time disturbs (or relies on an undisturbed) standby.
static STANDBY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LONG: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(60);

fn services_script() -> String {
    format!("{}/../scripts/services.sh", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/services.sh pg-standby <action>`.
fn standby(action: &str) {
    let status = Command::new("bash")
        .arg(services_script())
        .args(["pg-standby", action])
        .status()
        .expect("run scripts/services.sh");
    assert!(
        status.success(),
        "scripts/services.sh pg-standby {action} failed"
    );
}

/// Resumes replay and starts the standby when dropped (a test that failed half-way included).
struct RestoreStandby;

impl Drop for RestoreStandby {
    fn drop(&mut self) {
        for action in ["start", "resume"] {
            let _ = Command::new("bash")
                .arg(services_script())
                .args(["pg-standby", action])
                .status();
        }
    }
}

/// SQL on the standby's `mod8` database as `mod8` (the role may pause and resume replay).
async fn on_standby(sql: &str) -> String {
    let url = std::env::var("MOD8_POSTGRES_READ_URL").expect("MOD8_POSTGRES_READ_URL");
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to the standby");
    let answer: Option<String> = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql} on the standby: {e}"));
    conn.close().await.ok();
    answer.unwrap_or_default()
}

/// Pauses replay and waits until the standby has actually paused (writing on the primary
/// meanwhile, so the standby has a record to stop at).
async fn pause_replay(router: &ReplicaRouter) {
    on_standby("SELECT pg_wal_replay_pause()::text").await;
    let start = Instant::now();
    while on_standby("SELECT pg_get_wal_replay_pause_state()").await != "paused" {
        assert!(start.elapsed() < DEADLINE, "replay did not pause");
        sqlx::query("SELECT txid_current()")
            .execute(router.primary().pool())
            .await
            .expect("a write on the primary");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn resume_replay() {
    on_standby("SELECT pg_wal_replay_resume()::text").await;
}

/// Checks the replica until the router reads from it again.
async fn until_current(router: &ReplicaRouter) {
    let start = Instant::now();
    loop {
        let state = router.check_replica().await;
        if state.serves_reads() {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the replica did not become current: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the server answering on this pool says about itself.
async fn in_recovery(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(pool)
        .await
        .expect("pg_is_in_recovery()")
}

async fn setup(suite: &str, settings: ReplicaSettings) -> Option<(TestDb, ReplicaRouter)> {
    TestDb::postgres_replica_from_env_with(suite, settings).await
}

fn settings(max_lag: Duration, interval: Duration, read_your_writes: Duration) -> ReplicaSettings {
    ReplicaSettings {
        max_lag,
        lag_check_interval: interval,
        read_your_writes,
        ..ReplicaSettings::default()
    }
}

fn delta(after: RouteStats, before: RouteStats) -> (u64, u64, u64) {
    (
        after.writes - before.writes,
        after.replica_reads - before.replica_reads,
        after.primary_reads - before.primary_reads,
    )
}

#[tokio::test]
async fn reads_land_on_the_replica_and_writes_on_the_primary() {
    let _one = STANDBY.lock().await;
    let Some((test_db, router)) = setup(
        "orm replica routing",
        settings(LONG, Duration::from_millis(100), Duration::from_millis(1)),
    )
    .await
    else {
        return;
    };
    test_db
        .run(|_db| {
            Box::pin(async move {
                // The pools behind the router are the servers they claim to be.
                assert!(in_recovery(router.replica().pool()).await, "replica pool");
                assert!(!in_recovery(router.primary().pool()).await, "primary pool");

                let before = router.stats();
                let ada = router
                    .create_user(NewUser::new("ada@example.org", "ada"))
                    .await
                    .unwrap();
                assert_eq!(
                    delta(router.stats(), before),
                    (1, 0, 0),
                    "{:?}",
                    router.stats()
                );

                // A session that never wrote reads from the replica: poll until the standby
                // has replayed the insert (every answer, found or not, is the replica's).
                let reader = router.session();
                let before = router.stats();
                let start = Instant::now();
                let mut reads = 0;
                let found = loop {
                    reads += 1;
                    match reader.get_user(ada.id).await {
                        Ok(user) => break user,
                        Err(Error::NotFound { .. }) if start.elapsed() < DEADLINE => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("reading from the replica: {other:?}"),
                    }
                };
                assert_eq!(found.email, "ada@example.org");
                assert_eq!(
                    delta(router.stats(), before),
                    (0, reads, 0),
                    "{:?}",
                    router.stats()
                );

                // Every kind of read, the streams included, goes there too.
                let before = router.stats();
                assert_eq!(reader.user_stats().await.unwrap().count, 1);
                let histories: Vec<_> = reader.customer_histories().try_collect().await.unwrap();
                assert_eq!(histories.len(), 1);
                assert_eq!(reader.count_pending().await.unwrap(), 0);
                assert_eq!(
                    delta(router.stats(), before),
                    (0, 3, 0),
                    "{:?}",
                    router.stats()
                );

                // Writes go to the primary even from the reading session.
                let before = router.stats();
                reader
                    .update_user(
                        ada.id,
                        UserUpdate {
                            is_verified: Some(true),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(
                    delta(router.stats(), before),
                    (1, 0, 0),
                    "{:?}",
                    router.stats()
                );
                let on_primary: bool =
                    sqlx::query_scalar("SELECT is_verified FROM users WHERE id = $1")
                        .bind(ada.id)
                        .fetch_one(router.primary().pool())
                        .await
                        .unwrap();
                assert!(on_primary);

                // The same figures through the database trait, as metrics read them.
                let routing = mod8_orm::Database::read_routing(&router);
                assert_eq!(routing, Some(router.stats()));
                assert!(routing.is_some_and(|r| r.replica_reads >= 4 && r.writes >= 2));
                assert_eq!(mod8_orm::Database::read_routing(router.primary()), None);
            })
        })
        .await;
}

#[tokio::test]
async fn a_handle_reads_its_own_writes_while_replay_is_paused() {
    let _one = STANDBY.lock().await;
    let Some((test_db, router)) = setup(
        "orm replica read-your-writes",
        settings(LONG, Duration::from_millis(100), LONG),
    )
    .await
    else {
        return;
    };
    let _restore = RestoreStandby;
    test_db
        .run(|_db| {
            Box::pin(async move {
                pause_replay(&router).await;
                let writer = router.session();
                let other = router.session();

                let before = router.stats();
                let ann = writer
                    .create_user(NewUser::new("ann@example.org", "ann"))
                    .await
                    .unwrap();
                // The writer sees its write at once (from the primary) ...
                assert_eq!(writer.get_user(ann.id).await.unwrap().id, ann.id);
                let after = router.stats();
                assert_eq!(after.read_your_writes - before.read_your_writes, 1);
                // ... a session that did not write reads the paused replica, which lacks it.
                assert!(matches!(
                    other.get_user(ann.id).await,
                    Err(Error::NotFound { .. })
                ));
                assert_eq!(router.stats().replica_reads - after.replica_reads, 1);

                // A committed unit of work counts as the session's write too.
                let uow = other.begin().await.unwrap();
                let bob = uow
                    .create_user(NewUser::new("bob@example.org", "bob"))
                    .await
                    .unwrap();
                uow.commit().await.unwrap();
                assert_eq!(other.get_user(bob.id).await.unwrap().id, bob.id);
                assert_eq!(other.user_stats().await.unwrap().count, 2);

                resume_replay().await;
            })
        })
        .await;
}

#[tokio::test]
async fn reads_leave_a_replica_behind_the_bound_and_come_back() {
    let _one = STANDBY.lock().await;
    let max_lag = Duration::from_millis(500);
    let Some((test_db, router)) = setup(
        "orm replica lag bound",
        settings(max_lag, Duration::from_millis(50), Duration::from_millis(1)),
    )
    .await
    else {
        return;
    };
    let _restore = RestoreStandby;
    test_db
        .run(|_db| {
            Box::pin(async move {
                until_current(&router).await;
                pause_replay(&router).await;
                let cara = router
                    .create_user(NewUser::new("cara@example.org", "cara"))
                    .await
                    .unwrap();
                // Past the bound: the last transaction the standby replayed committed before
                // the pause, so it is now more than `max_lag` behind.
                tokio::time::sleep(max_lag + Duration::from_millis(200)).await;
                let state = router.check_replica().await;
                assert!(
                    matches!(state, ReplicaState::Lagging { lag: Some(lag) } if lag > max_lag),
                    "{state:?}"
                );
                let reader = router.session();
                let before = router.stats();
                assert_eq!(reader.get_user(cara.id).await.unwrap().id, cara.id);
                let after = router.stats();
                assert_eq!(after.lagging - before.lagging, 1);
                assert_eq!(after.replica_reads, before.replica_reads);

                resume_replay().await;
                until_current(&router).await;
                let before = router.stats();
                assert_eq!(reader.get_user(cara.id).await.unwrap().id, cara.id);
                assert_eq!(router.stats().replica_reads - before.replica_reads, 1);
            })
        })
        .await;
}

#[tokio::test]
async fn reads_survive_a_stopped_replica() {
    let _one = STANDBY.lock().await;
    // The lag checks are far apart: the first read after the stop still tries the replica.
    let Some((test_db, router)) = setup(
        "orm replica down",
        settings(LONG, LONG, Duration::from_millis(1)),
    )
    .await
    else {
        return;
    };
    let _restore = RestoreStandby;
    test_db
        .run(|_db| {
            Box::pin(async move {
                let dan = router
                    .create_user(NewUser::new("dan@example.org", "dan"))
                    .await
                    .unwrap();
                let reader = router.session();
                // Until the standby has replayed the insert, then warm the replica's pool.
                let start = Instant::now();
                while reader.get_user(dan.id).await.is_err() {
                    assert!(
                        start.elapsed() < DEADLINE,
                        "the insert never reached the replica"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(router.stats().replica_reads > 0);

                standby("stop");
                let before = router.stats();
                // Tried on the replica, which is gone: retried on the primary.
                assert_eq!(reader.get_user(dan.id).await.unwrap().id, dan.id);
                let after = router.stats();
                assert_eq!(after.fallbacks - before.fallbacks, 1);
                assert_eq!(router.replica_state(), ReplicaState::Down);
                // From then on straight to the primary, without trying the replica.
                assert_eq!(reader.user_stats().await.unwrap().count, 1);
                let later = router.stats();
                assert_eq!(later.replica_down - after.replica_down, 1);
                assert_eq!(later.replica_reads, before.replica_reads);

                standby("start");
                until_current(&router).await;
                // Back on the replica (a pooled connection the restart broke may cost one
                // more fallback first; every read still succeeds).
                let start = Instant::now();
                let before = router.stats();
                while router.stats().replica_reads == before.replica_reads {
                    assert!(start.elapsed() < DEADLINE, "reads never went back");
                    assert_eq!(reader.get_user(dan.id).await.unwrap().id, dan.id);
                    if router.replica_state() == ReplicaState::Down {
                        until_current(&router).await;
                    }
                }
            })
        })
        .await;
}
