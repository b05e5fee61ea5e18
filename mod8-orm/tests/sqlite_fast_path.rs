//! What the embedded backend does for speed must not show: the connection a SQLite store keeps
//! checked out between calls on its pool, and the users-with-location page read as one row of
//! JSON, behave exactly like the plain pool and the plain rows.
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::time::Duration;

use mod8_orm::chrono::{TimeZone, Utc};
use mod8_orm::sqlite::SqliteStore;
use mod8_orm::testing::{seed_world, user_in};
use mod8_orm::{
    Database, DynDatabase, Error, LocationRepository, NewAddress, NewUser, OrmConfig, PageRequest,
    UserRepository, UserWithLocation,
};

const MEMORY: &str = "sqlite::memory:";
/// Escapes and non-ASCII within the 20 characters a postal code may have.
const POSTAL: &str = "\"\\\t\u{1}é日🦀";

async fn memory_store(acquire_timeout: Duration) -> SqliteStore {
    SqliteStore::connect(&OrmConfig::new(MEMORY).with_acquire_timeout(acquire_timeout))
        .await
        .unwrap()
}

/// A host that reaches the pool after the store's own calls gets connections from it (the
/// in-memory pool has a single connection, which the store holds between its calls), and the
/// store keeps working beside the host.
#[tokio::test]
async fn the_pool_serves_the_host_after_the_store_used_it() {
    let store = memory_store(Duration::from_secs(2)).await;
    let user = store
        .create_user(NewUser::new("a@example.org", "ann"))
        .await
        .unwrap();
    assert_eq!(store.get_user(user.id).await.unwrap(), user);
    let count: i64 = mod8_orm::sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
    // A pool handle kept by the host and the store's calls take turns.
    let pool = store.pool().clone();
    for i in 0..3 {
        store
            .create_user(NewUser::new(format!("b{i}@example.org"), format!("bb{i}")))
            .await
            .unwrap();
        let count: i64 = mod8_orm::sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(count, 2 + i);
    }
}

/// Units of work, migrations and the store's own calls share the in-memory database's one
/// connection in any order; a call on the pool while a unit of work is open still waits for
/// it and fails as unavailable after the acquire timeout, as with the plain pool.
#[tokio::test]
async fn units_of_work_and_migrations_take_the_connection_in_turn() {
    let store = memory_store(Duration::from_millis(300)).await;
    let world = seed_world(&store).await;
    let ada = user_in(&store, world.city("Berlin"), "ada", 50.0).await;
    for round in 0..3 {
        let uow = store.begin().await.unwrap();
        uow.create_user(NewUser::new(
            format!("u{round}@example.org"),
            format!("uu{round}"),
        ))
        .await
        .unwrap();
        let waiting = store.get_user(ada.id).await;
        assert!(
            matches!(&waiting, Err(e @ Error::Unavailable { .. }) if e.is_transient()),
            "{waiting:?}"
        );
        uow.commit().await.unwrap();
        assert_eq!(store.get_user(ada.id).await.unwrap(), ada);
        store.migrate().await.unwrap();
        assert_eq!(
            store
                .list_users(PageRequest::first(10))
                .await
                .unwrap()
                .total,
            2 + round
        );
    }
}

/// Many tasks calling one in-memory store at once all get their turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_memory_store_queue() {
    let db: DynDatabase = OrmConfig::new(MEMORY).connect().await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let user = db
                    .create_user(NewUser::new(
                        format!("t{t}x{i}@example.org"),
                        format!("t{t}x{i}"),
                    ))
                    .await
                    .unwrap();
                assert_eq!(db.get_user(user.id).await.unwrap(), user);
                if i % 5 == 0 {
                    let uow = db.begin().await.unwrap();
                    uow.get_user(user.id).await.unwrap();
                    uow.commit().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(db.user_stats().await.unwrap().count, 8 * 20);
}

/// On a file with several connections, concurrent readers do not wait for the one the store
/// keeps: they take other connections from the pool. With a pool of one, they queue for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    for (name, connections) in [("many.db", 4), ("one.db", 1)] {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        let db = OrmConfig::new(&url)
            .with_max_connections(connections)
            .connect()
            .await
            .unwrap();
        let user = db
            .create_user(NewUser::new("r@example.org", "rob"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (db, user) = (db.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..30 {
                    // (Another task may have updated the score already.)
                    let read = db.get_user(user.id).await.unwrap();
                    assert_eq!((read.id, &read.email), (user.id, &user.email));
                }
                let uow = db.begin().await.unwrap();
                uow.update_user(
                    user.id,
                    mod8_orm::UserUpdate {
                        profile_score: Some(1.0),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
                uow.commit().await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(db.get_user(user.id).await.unwrap().profile_score, 1.0);
        db.close().await;
    }
}

/// A call abandoned half-way (its future dropped at any of its steps: before or after its
/// transaction began, mid-statement, during the commit) leaves the kept connection usable and
/// the data consistent: the next calls are not stuck behind it or inside its transaction, and
/// its address and user exist together or not at all.
#[tokio::test]
async fn an_abandoned_call_leaves_the_connection_usable() {
    let store = memory_store(Duration::from_secs(2)).await;
    let world = seed_world(&store).await;
    let berlin = world.city("Berlin").clone();
    for attempt in 0..60_usize {
        let call = store.create_user_with_address(
            NewAddress {
                street: format!("Abandoned {attempt}"),
                postal_code: "10115".into(),
                city_id: berlin.id,
            },
            NewUser::new(
                format!("gone{attempt}@example.org"),
                format!("gone{attempt}"),
            ),
        );
        let mut call = Box::pin(call);
        // Polled a different number of times before it is dropped, letting the worker thread
        // run in between, so it is cut off at different steps.
        let mut finished = None;
        for _ in 0..attempt % 12 {
            if let std::task::Poll::Ready(result) = futures::poll!(call.as_mut()) {
                finished = Some(result);
                break;
            }
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        drop(call);
        let kept = store
            .create_user(NewUser::new(
                format!("kept{attempt}@example.org"),
                format!("kept{attempt}"),
            ))
            .await
            .unwrap();
        assert_eq!(store.get_user(kept.id).await.unwrap(), kept);
        let page = store.list_users(PageRequest::first(1000)).await.unwrap();
        let addresses = store.addresses_in_city(berlin.id).await.unwrap();
        // A call cut off during its COMMIT may still have committed, as on any pool.
        let user_written = page
            .items
            .iter()
            .any(|u| u.username == format!("gone{attempt}"));
        let address_written = addresses
            .iter()
            .any(|a| a.street == format!("Abandoned {attempt}"));
        assert_eq!(user_written, address_written, "attempt {attempt}");
        if let Some(result) = finished {
            assert!(result.is_ok() && user_written, "attempt {attempt}");
        }
        // Nothing is left open: a unit of work can begin and commit.
        let uow = store.begin().await.unwrap();
        uow.commit().await.unwrap();
    }
}

/// Closing a store the caller used hands its connection back and closes the pool (it does not
/// wait forever for a connection the store itself holds); calls afterwards are unavailable.
#[tokio::test]
async fn closing_a_used_store_completes() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite://{}", dir.path().join("close.db").display());
    for url in [MEMORY, &file] {
        let db = OrmConfig::new(url).connect().await.unwrap();
        let user = db
            .create_user(NewUser::new("c@example.org", "cid"))
            .await
            .unwrap();
        db.get_user(user.id).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), db.close())
            .await
            .expect("close returns");
        assert!(matches!(
            db.get_user(user.id).await,
            Err(Error::Unavailable { .. })
        ));
    }
}

/// A store dropped outside any Tokio runtime (after its runtime is gone) does not panic.
#[test]
fn a_store_dropped_outside_a_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(memory_store(Duration::from_secs(2)));
    let user = runtime
        .block_on(store.create_user(NewUser::new("d@example.org", "dan")))
        .unwrap();
    assert_eq!(runtime.block_on(store.get_user(user.id)).unwrap(), user);
    drop(runtime);
    drop(store);
}

/// The page of users with their locations carries every value exactly, read on the calling
/// thread's side (direct reads) and as rows of JSON through sqlx: text with quotes, escapes,
/// control characters and non-ASCII; doubles that need all 17 digits; microseconds; booleans;
/// users without an address; ties on the registration time broken by id; offsets.
#[tokio::test]
async fn the_location_page_round_trips_every_value() {
    for direct in [true, false] {
        the_location_page_round_trips_every_value_with(direct).await;
    }
}

async fn the_location_page_round_trips_every_value_with(direct: bool) {
    let store = SqliteStore::connect(&OrmConfig::new(MEMORY).with_sqlite_direct_reads(direct))
        .await
        .unwrap();
    let world = seed_world(&store).await;
    let odd = "Quote \" back\\slash\ttab\nline \u{1} é 日本 🦀 '; --";
    let tied = Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap()
        + mod8_orm::chrono::Duration::microseconds(123_456);
    let scores = [
        0.1 + 0.2,
        1.0 / 3.0,
        99.999_999_999_999_99,
        0.0,
        100.0,
        5e-324,
    ];
    for (i, score) in scores.into_iter().enumerate() {
        let address = store
            .create_address(NewAddress {
                street: format!("{odd} {i}"),
                postal_code: POSTAL.into(),
                city_id: world.cities[i % world.cities.len()].id,
            })
            .await
            .unwrap();
        let mut user = NewUser::new(format!("s{i}@example.org"), format!("s.{i}-x_y"));
        user.profile_score = score;
        user.is_verified = i % 2 == 0;
        // Three share a registration time to the microsecond.
        user.created_at = Some(if i < 3 {
            tied
        } else {
            tied + mod8_orm::chrono::Duration::seconds(i as i64)
        });
        user.address_id = (i != 4).then_some(address.id);
        store.create_user(user).await.unwrap();
    }
    let total = scores.len();
    for (offset, limit) in [(0_u64, 1000_u32), (0, 2), (2, 3), (5, 10), (6, 1)] {
        let page = store
            .users_with_location(PageRequest { offset, limit })
            .await
            .unwrap();
        // The reference: the same page from the plain-row queries.
        let listed = store
            .list_users(PageRequest { offset, limit })
            .await
            .unwrap();
        let mut expected = Vec::new();
        for user in listed.items {
            let location = match user.address_id {
                Some(id) => Some(store.location(id).await.unwrap()),
                None => None,
            };
            assert_eq!(store.get_user(user.id).await.unwrap(), user);
            expected.push(UserWithLocation { user, location });
        }
        assert_eq!(page, expected, "offset {offset} limit {limit}");
        assert_eq!(
            page.len(),
            total.saturating_sub(offset as usize).min(limit as usize)
        );
    }
    let all = store
        .users_with_location(PageRequest::first(100))
        .await
        .unwrap();
    let by_score = |s: f64| {
        all.iter()
            .find(|u| u.user.profile_score.to_bits() == s.to_bits())
    };
    for score in scores {
        assert!(by_score(score).is_some(), "{score:e} read back exactly");
    }
    let nomad = by_score(100.0).unwrap();
    assert!(nomad.location.is_none());
    assert!(nomad.user.is_verified);
    let located = by_score(0.0).unwrap();
    let address = &located.location.as_ref().unwrap().address;
    assert_eq!(address.postal_code, POSTAL);
    assert_eq!(address.street, format!("{odd} 3"));
    assert!(!located.user.is_verified);
    // The three tied users come in id order.
    let tied_ids: Vec<_> = all
        .iter()
        .filter(|u| u.user.created_at == tied)
        .map(|u| u.user.id)
        .collect();
    assert_eq!(tied_ids.len(), 3);
    assert!(tied_ids.windows(2).all(|w| w[0] < w[1]));
    assert_direct(&store, direct);
}

/// Pages of more than 256 users (through sqlx, several JSON arrays of one statement; read
/// directly, one statement too) are exactly the plain-row page, at any offset.
#[tokio::test]
async fn large_pages_match_the_plain_rows() {
    for direct in [true, false] {
        large_pages_match_the_plain_rows_with(direct).await;
    }
}

async fn large_pages_match_the_plain_rows_with(direct: bool) {
    let store = SqliteStore::connect(&OrmConfig::new(MEMORY).with_sqlite_direct_reads(direct))
        .await
        .unwrap();
    let world = seed_world(&store).await;
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    for i in 0..700_i64 {
        let mut user = NewUser::new(format!("l{i}@example.org"), format!("ll{i}"));
        // Some share a registration time, out of insertion order.
        user.created_at = Some(start + mod8_orm::chrono::Duration::seconds((i * 7919) % 500));
        user.profile_score = (i % 101) as f64 / 3.0;
        if i % 3 != 0 {
            let address = store
                .create_address(NewAddress {
                    street: format!("Long street {i}"),
                    postal_code: format!("{i:05}"),
                    city_id: world.cities[i as usize % world.cities.len()].id,
                })
                .await
                .unwrap();
            user.address_id = Some(address.id);
        }
        store.create_user(user).await.unwrap();
    }
    for (offset, limit) in [
        (0_u64, 1000_u32),
        (0, 129),
        (100, 300),
        (650, 100),
        (699, 1000),
    ] {
        let before = store.statements_executed();
        let page = store
            .users_with_location(PageRequest { offset, limit })
            .await
            .unwrap();
        assert_eq!(store.statements_executed() - before, 1);
        let listed = store
            .list_users(PageRequest { offset, limit })
            .await
            .unwrap();
        let mut expected = Vec::new();
        for user in listed.items {
            let location = match user.address_id {
                Some(id) => Some(store.location(id).await.unwrap()),
                None => None,
            };
            expected.push(UserWithLocation { user, location });
        }
        assert_eq!(page.len(), expected.len(), "offset {offset} limit {limit}");
        assert!(page == expected, "offset {offset} limit {limit}");
    }
    assert_direct(&store, direct);
}

/// With direct reads on, every lookup was answered directly (none fell back); off, there are
/// none.
fn assert_direct(store: &SqliteStore, direct: bool) {
    let stats = store.direct_read_stats();
    if direct {
        let stats = stats.expect("direct reads");
        assert!(stats.answered > 0 && stats.fell_back == 0, "{stats:?}");
    } else {
        assert_eq!(stats, None);
    }
}

/// Users with every kind of value a user row holds: with and without an address, scores
/// that need all 17 digits, whole scores, both flags, microseconds, non-ASCII names.
async fn varied_users(store: &SqliteStore) -> Vec<mod8_orm::User> {
    let world = seed_world(store).await;
    let mut users = vec![
        user_in(store, world.city("Berlin"), "ada", 1.0 / 3.0).await,
        user_in(store, world.city("Berlin"), "bob", 100.0).await,
    ];
    let mut plain = NewUser::new("Zoë@Example.org", "zoë_ü");
    plain.profile_score = 0.0;
    plain.is_verified = true;
    plain.created_at = Some(Utc.with_ymd_and_hms(2021, 2, 3, 4, 5, 6).unwrap());
    plain.last_active_at = Some(
        Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 59).unwrap()
            + mod8_orm::chrono::Duration::microseconds(123_456),
    );
    users.push(store.create_user(plain).await.unwrap());
    users
}

/// Lookups answered on the calling thread (the default) give exactly what the same lookups
/// through sqlx give: inside a unit of work (always sqlx), and on a store with direct reads
/// off over the same file. Each counts as one statement, and the connections they hold show
/// as the `direct` pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_lookups_match_sqlx() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite://{}", dir.path().join("direct.db").display());
    for url in [MEMORY, &file] {
        let store = SqliteStore::connect(&OrmConfig::new(url)).await.unwrap();
        let users = varied_users(&store).await;
        let through_sqlx = if url == MEMORY {
            None
        } else {
            Some(
                SqliteStore::connect(&OrmConfig::new(url).with_sqlite_direct_reads(false))
                    .await
                    .unwrap(),
            )
        };
        for user in &users {
            let before = store.statements_executed();
            assert_eq!(&store.get_user(user.id).await.unwrap(), user, "{url}");
            assert_eq!(
                store
                    .find_user_by_email(&user.email)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(user),
                "{url}"
            );
            assert_eq!(store.statements_executed(), before + 2, "{url}");
            let uow = store.begin().await.unwrap();
            assert_eq!(&uow.get_user(user.id).await.unwrap(), user, "{url}");
            uow.commit().await.unwrap();
            if let Some(other) = &through_sqlx {
                assert_eq!(&other.get_user(user.id).await.unwrap(), user, "{url}");
            }
        }
        let missing = mod8_orm::uuid::Uuid::new_v4();
        assert!(
            matches!(store.get_user(missing).await, Err(Error::NotFound { .. })),
            "{url}"
        );
        assert_eq!(
            store
                .find_user_by_email("nobody@example.org")
                .await
                .unwrap(),
            None
        );
        // An update is seen by the next lookup.
        let update = mod8_orm::UserUpdate {
            profile_score: Some(42.5),
            ..Default::default()
        };
        let updated = store.update_user(users[0].id, update).await.unwrap();
        assert_eq!(store.get_user(users[0].id).await.unwrap(), updated);
        let usage = store.pool_usage();
        let direct = usage
            .iter()
            .find(|u| u.pool == "direct")
            .expect("direct pool");
        assert!(direct.size >= 1 && direct.size <= direct.max, "{direct:?}");
        assert_direct(&store, true);
        if let Some(other) = &through_sqlx {
            assert_direct(other, false);
            assert!(other.pool_usage().iter().all(|u| u.pool != "direct"));
        }
    }
}

/// A lookup on the calling thread does not wait for a unit of work that wrote other tables:
/// the in-memory database's one sqlx connection is the unit's, and a lookup through sqlx
/// waits for it (and fails after the acquire timeout), while the direct lookup reads the
/// committed users at once. A unit that wrote `users` makes the direct lookup fall back,
/// and it then waits as before.
#[tokio::test]
async fn direct_lookups_do_not_wait_for_a_unit_of_work_on_other_tables() {
    for direct in [true, false] {
        let store = SqliteStore::connect(
            &OrmConfig::new(MEMORY)
                .with_acquire_timeout(Duration::from_millis(300))
                .with_sqlite_direct_reads(direct),
        )
        .await
        .unwrap();
        let ada = store
            .create_user(NewUser::new("ada@example.org", "ada"))
            .await
            .unwrap();
        let uow = store.begin().await.unwrap();
        uow.create_country(mod8_orm::NewCountry {
            name: "Norway".into(),
            iso_code: "NO".into(),
            population: 5_500_000,
            gdp_per_capita_cents: 8_900_000,
        })
        .await
        .unwrap();
        let looked_up = store.get_user(ada.id).await;
        if direct {
            assert_eq!(looked_up.unwrap(), ada);
        } else {
            assert!(
                matches!(looked_up, Err(Error::Unavailable { .. })),
                "{looked_up:?}"
            );
        }
        uow.create_user(NewUser::new("bo@example.org", "bob"))
            .await
            .unwrap();
        let waiting = store.get_user(ada.id).await;
        assert!(
            matches!(waiting, Err(Error::Unavailable { .. })),
            "direct {direct}: {waiting:?}"
        );
        if direct {
            let stats = store.direct_read_stats().unwrap();
            assert_eq!(stats.fell_back, 1, "{stats:?}");
        }
        uow.commit().await.unwrap();
        assert_eq!(store.get_user(ada.id).await.unwrap(), ada);
    }
}

/// A row in a form sqlx reads but the direct path does not decode (a time written as
/// `YYYY-MM-DD HH:MM:SS`, a flag stored as 2) is answered by sqlx, as it always was.
#[tokio::test]
async fn values_the_direct_path_does_not_decode_fall_back_to_sqlx() {
    let store = memory_store(Duration::from_secs(2)).await;
    let id = mod8_orm::uuid::Uuid::new_v4();
    mod8_orm::sqlx::query(
        "INSERT INTO users (id, email, username, address_id, profile_score, is_verified, \
         created_at, last_active_at, username_key) \
         VALUES (?, 'raw@example.org', 'raw', NULL, 7, 2, '2024-01-02 03:04:05', \
         '2024-01-02T03:04:05Z', 'raw')",
    )
    .bind(id)
    .execute(store.pool())
    .await
    .unwrap();
    let user = store.get_user(id).await.unwrap();
    assert_eq!(
        user.created_at,
        Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
    );
    assert!(user.is_verified);
    assert_eq!(user.profile_score, 7.0);
    assert_eq!(store.direct_read_stats().unwrap().fell_back, 1);
    let uow = store.begin().await.unwrap();
    assert_eq!(uow.get_user(id).await.unwrap(), user);
    uow.commit().await.unwrap();
}
