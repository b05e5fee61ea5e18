//! The user-repository suite: the cases that exercise [`UserRepository`] alone, runnable
//! against any implementation of it — a backend's own, or a decorator in front of one (a
//! cache, metrics, retries) that implements nothing else.
//!
//! Each case needs a fresh, empty store. A few need reference data first (countries, cities
//! and products to put users in and to order), and two look at what the user calls did to
//! the rest of the store (orders placed, addresses left behind); that is not the user
//! repository's business, so those cases reach it through the *store* behind the repository
//! under test: for a decorator, the database it wraps. [`UserRepositoryFixture`] pairs the
//! two; [`run_user_repository_cases`] runs every case, each on a fixture from a setup hook.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mod8_orm::testing::{run_user_repository_cases, TestDb, UserRepositoryFixture};
//! use mod8_orm::UserRepository;
//!
//! # fn wrap(db: mod8_orm::DynDatabase) -> Arc<dyn UserRepository> { db }
//! # async fn suite() {
//! // `wrap` builds the decorator under test around the database (here: `Arc<dyn Database>`
//! // itself, which is a user repository too).
//! run_user_repository_cases(|| async {
//!     let test_db = TestDb::sqlite_memory().await?;
//!     let users = wrap(test_db.db.clone());
//!     Some(UserRepositoryFixture::new(test_db, users))
//! })
//! .await;
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::future::Future;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use futures::FutureExt;
use uuid::Uuid;

use super::fixtures::{line, order, seed_world, user_in, World};
use super::TestDb;
use crate::*;

/// One fresh, empty store for a user-repository case: the repository under test and the
/// database behind it.
pub struct UserRepositoryFixture {
    /// The repository the cases call: the database's own, or a decorator in front of it.
    pub users: Arc<dyn UserRepository>,
    /// The database behind it, freshly migrated and empty. The cases use it only for what
    /// is not the user repository's business: seeding countries, cities and products,
    /// placing orders, and looking at the addresses a user call left behind. It is torn
    /// down after the case.
    pub db: TestDb,
}

impl std::fmt::Debug for UserRepositoryFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRepositoryFixture")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl UserRepositoryFixture {
    /// `users` (typically a decorator built around `db.db`) under test, on `db`.
    pub fn new(db: TestDb, users: Arc<dyn UserRepository>) -> Self {
        UserRepositoryFixture { users, db }
    }

    /// The database's own user repository under test.
    pub fn of_database(db: TestDb) -> Self {
        let users: Arc<dyn UserRepository> = db.db.clone();
        UserRepositoryFixture { users, db }
    }

    /// Runs `case`, then tears the database down whether the case passed or panicked.
    pub async fn run(self, case: UserRepositoryCase) {
        let UserRepositoryFixture { users, db } = self;
        let outcome = std::panic::AssertUnwindSafe(case.run(&*users, &*db.db))
            .catch_unwind()
            .await;
        drop(users);
        db.teardown().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Runs every case of the user-repository suite ([`UserRepositoryCase::ALL`]), each on a
/// fresh fixture from `setup`, in order; stops quietly when `setup` yields `None` (for
/// example when a server URL is unset). Each case's name goes to standard error before it
/// runs, so a failure names its case. Panics when a case fails.
pub async fn run_user_repository_cases<S, F>(mut setup: S)
where
    S: FnMut() -> F,
    F: Future<Output = Option<UserRepositoryFixture>>,
{
    for case in UserRepositoryCase::ALL {
        let Some(fixture) = setup().await else {
            return;
        };
        {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "user repository case: {}", case.name());
        }
        fixture.run(case).await;
    }
}

/// A case of the user-repository suite. Each is also a function of this module
/// ([`UserRepositoryCase::name`]) taking the narrowest arguments it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserRepositoryCase {
    /// [`case_user_crud`].
    UserCrud,
    /// [`case_user_input_is_validated`].
    UserInputIsValidated,
    /// [`case_user_conflicts_name_the_field`].
    UserConflictsNameTheField,
    /// [`case_missing_users_are_not_found`].
    MissingUsersAreNotFound,
    /// [`case_pagination`].
    Pagination,
    /// [`case_users_by_location`] (seeds the reference world first).
    UsersByLocation,
    /// [`case_user_stats`].
    UserStats,
    /// [`case_activity_ranking`] (seeds the reference world and places orders in the store).
    ActivityRanking,
    /// [`case_user_with_address_is_atomic`] (seeds the reference world, reads addresses from
    /// the store).
    UserWithAddressIsAtomic,
    /// [`case_bulk_insert`].
    BulkInsert,
    /// [`case_user_timestamps_round_trip`].
    UserTimestampsRoundTrip,
    /// [`case_look_alike_identities_conflict`].
    LookAlikeIdentitiesConflict,
}

impl UserRepositoryCase {
    /// Every case, in the order [`run_user_repository_cases`] runs them.
    pub const ALL: [UserRepositoryCase; 12] = [
        UserRepositoryCase::UserCrud,
        UserRepositoryCase::UserInputIsValidated,
        UserRepositoryCase::UserConflictsNameTheField,
        UserRepositoryCase::MissingUsersAreNotFound,
        UserRepositoryCase::Pagination,
        UserRepositoryCase::UsersByLocation,
        UserRepositoryCase::UserStats,
        UserRepositoryCase::ActivityRanking,
        UserRepositoryCase::UserWithAddressIsAtomic,
        UserRepositoryCase::BulkInsert,
        UserRepositoryCase::UserTimestampsRoundTrip,
        UserRepositoryCase::LookAlikeIdentitiesConflict,
    ];

    /// The name of the function the case runs (`case_user_crud`, ...).
    pub fn name(self) -> &'static str {
        match self {
            UserRepositoryCase::UserCrud => "case_user_crud",
            UserRepositoryCase::UserInputIsValidated => "case_user_input_is_validated",
            UserRepositoryCase::UserConflictsNameTheField => "case_user_conflicts_name_the_field",
            UserRepositoryCase::MissingUsersAreNotFound => "case_missing_users_are_not_found",
            UserRepositoryCase::Pagination => "case_pagination",
            UserRepositoryCase::UsersByLocation => "case_users_by_location",
            UserRepositoryCase::UserStats => "case_user_stats",
            UserRepositoryCase::ActivityRanking => "case_activity_ranking",
            UserRepositoryCase::UserWithAddressIsAtomic => "case_user_with_address_is_atomic",
            UserRepositoryCase::BulkInsert => "case_bulk_insert",
            UserRepositoryCase::UserTimestampsRoundTrip => "case_user_timestamps_round_trip",
            UserRepositoryCase::LookAlikeIdentitiesConflict => {
                "case_look_alike_identities_conflict"
            }
        }
    }

    /// Runs the case on `users`, the repository under test, with `store` the fresh, empty
    /// store behind it (seeded here first when the case needs reference data). Panics when
    /// the repository misbehaves. [`UserRepositoryFixture::run`] adds the teardown.
    pub async fn run(self, users: &dyn UserRepository, store: &dyn Repositories) {
        match self {
            UserRepositoryCase::UserCrud => case_user_crud(users).await,
            UserRepositoryCase::UserInputIsValidated => case_user_input_is_validated(users).await,
            UserRepositoryCase::UserConflictsNameTheField => {
                case_user_conflicts_name_the_field(users).await
            }
            UserRepositoryCase::MissingUsersAreNotFound => {
                case_missing_users_are_not_found(users).await
            }
            UserRepositoryCase::Pagination => case_pagination(users).await,
            UserRepositoryCase::UsersByLocation => {
                let world = seed_world(store).await;
                case_users_by_location(users, &world).await
            }
            UserRepositoryCase::UserStats => case_user_stats(users).await,
            UserRepositoryCase::ActivityRanking => {
                let world = seed_world(store).await;
                case_activity_ranking(users, store, &world).await
            }
            UserRepositoryCase::UserWithAddressIsAtomic => {
                let world = seed_world(store).await;
                case_user_with_address_is_atomic(users, store, &world).await
            }
            UserRepositoryCase::BulkInsert => case_bulk_insert(users).await,
            UserRepositoryCase::UserTimestampsRoundTrip => {
                case_user_timestamps_round_trip(users).await
            }
            UserRepositoryCase::LookAlikeIdentitiesConflict => {
                case_look_alike_identities_conflict(users).await
            }
        }
    }
}

/// Create, read, update, delete.
pub async fn case_user_crud(users: &dyn UserRepository) {
    let created = users
        .create_user(NewUser::new("Ada@Example.org", "ada"))
        .await
        .unwrap();
    assert_eq!(created.email, "ada@example.org");
    assert_eq!(users.get_user(created.id).await.unwrap(), created);
    assert_eq!(
        users.find_user_by_email("ADA@example.org").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        users.find_user_by_email("bob@example.org").await.unwrap(),
        None
    );

    let updated = users
        .update_user(
            created.id,
            UserUpdate {
                username: Some("ada_l".into()),
                profile_score: Some(72.5),
                is_verified: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.username, "ada_l");
    assert_eq!(updated.email, created.email);
    assert_eq!(updated.profile_score, 72.5);
    assert!(updated.is_verified);
    assert_eq!(users.get_user(created.id).await.unwrap(), updated);

    users.delete_user(created.id).await.unwrap();
    assert!(matches!(
        users.get_user(created.id).await,
        Err(Error::NotFound { entity: "user", .. })
    ));
    assert!(matches!(
        users.delete_user(created.id).await,
        Err(Error::NotFound { .. })
    ));
}

/// Bad user input is a validation error naming the field, and nothing is stored.
pub async fn case_user_input_is_validated(users: &dyn UserRepository) {
    expect_user_input_rejected(users).await;
    assert_eq!(users.user_stats().await.unwrap().count, 0);
}

/// Asserts `r` is a validation error on `field`.
pub(crate) fn expect_invalid<T: std::fmt::Debug>(r: Result<T>, field: &str) {
    match r {
        Err(Error::Validation { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected a validation error on {field}, got {other:?}"),
    }
}

/// The user calls that must fail validation (shared with the database's
/// `case_validation_before_database`, which also checks that no statement ran).
pub(crate) async fn expect_user_input_rejected(users: &dyn UserRepository) {
    for email in [
        "",
        "no-at-sign",
        "a@b",
        "two@@example.org",
        "sp ace@example.org",
    ] {
        expect_invalid(
            users.create_user(NewUser::new(email, "valid")).await,
            "email",
        );
    }
    expect_invalid(
        users.create_user(NewUser::new("ok@example.org", "")).await,
        "username",
    );
    expect_invalid(
        users
            .create_user(NewUser::new("ok@example.org", "x".repeat(51)))
            .await,
        "username",
    );
    expect_invalid(
        users
            .create_users(vec![
                NewUser::new("fine@example.org", "fine"),
                NewUser::new("broken", "broken"),
            ])
            .await,
        "email",
    );
    expect_invalid(users.list_users(PageRequest::first(0)).await, "limit");
}

/// Duplicate e-mail addresses and usernames are conflicts naming the entity and the field.
pub async fn case_user_conflicts_name_the_field(users: &dyn UserRepository) {
    users
        .create_user(NewUser::new("ada@example.org", "ada"))
        .await
        .unwrap();
    let conflict_field = |r: Result<User>| match r {
        Err(Error::Conflict { entity, field, .. }) => {
            assert_eq!(entity, "user");
            field
        }
        other => panic!("expected a conflict, got {other:?}"),
    };
    assert_eq!(
        conflict_field(
            users
                .create_user(NewUser::new("ADA@example.org", "other"))
                .await
        ),
        "email"
    );
    assert_eq!(
        conflict_field(
            users
                .create_user(NewUser::new("new@example.org", "ada"))
                .await
        ),
        "username"
    );
    let bob = users
        .create_user(NewUser::new("bob@example.org", "bob"))
        .await
        .unwrap();
    assert_eq!(
        conflict_field(
            users
                .update_user(
                    bob.id,
                    UserUpdate {
                        email: Some("ada@example.org".into()),
                        ..UserUpdate::default()
                    }
                )
                .await
        ),
        "email"
    );
    let err = users
        .create_user(NewUser::new("ada@example.org", "zed"))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("email"), "{err}");
}

/// Look-alike identities are one identity: e-mail addresses differing only in case, and
/// usernames differing only in case, in Unicode normalisation form (NFC, NFD, compatibility
/// forms) are conflicts naming the field — on insert, bulk insert and rename — while the
/// first user keeps the display form it registered with. Mixed-script names and invisible
/// characters are rejected as invalid.
pub async fn case_look_alike_identities_conflict(users: &dyn UserRepository) {
    let conflict_field = |r: Result<User>| match r {
        Err(Error::Conflict { entity, field, .. }) => {
            assert_eq!(entity, "user");
            field
        }
        other => panic!("expected a conflict, got {other:?}"),
    };
    let first = users
        .create_user(NewUser::new("A@x.org", "Grace"))
        .await
        .unwrap();
    assert_eq!(first.email, "a@x.org");
    assert_eq!(first.username, "Grace", "the display form is kept");
    assert_eq!(
        conflict_field(users.create_user(NewUser::new("a@x.org", "ada_l")).await),
        "email"
    );
    for look_alike in ["grace", "GRACE", "\u{FF27}race"] {
        assert_eq!(
            conflict_field(
                users
                    .create_user(NewUser::new("other@x.org", look_alike))
                    .await
            ),
            "username",
            "{look_alike:?}"
        );
    }

    // NFC `José` first, then its NFD spelling (`e` + combining acute).
    let jose = users
        .create_user(NewUser::new("jose@x.org", "Jos\u{E9}"))
        .await
        .unwrap();
    assert_eq!(
        conflict_field(
            users
                .create_user(NewUser::new("jose2@x.org", "jose\u{301}"))
                .await
        ),
        "username"
    );
    assert_eq!(
        jose.username, "Jos\u{E9}",
        "stored in NFC whatever form it came in"
    );

    // A rename to a look-alike of another user is a conflict too; to its own name in
    // another case is fine.
    assert_eq!(
        conflict_field(
            users
                .update_user(
                    jose.id,
                    UserUpdate {
                        username: Some("gRACE".into()),
                        ..UserUpdate::default()
                    }
                )
                .await
        ),
        "username"
    );
    let renamed = users
        .update_user(
            jose.id,
            UserUpdate {
                username: Some("JOSÉ".into()),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.username, "JOSÉ");

    // Bulk inserts meet the same keys.
    let bulk = users
        .create_users(vec![
            NewUser::new("fresh@x.org", "fresh"),
            NewUser::new("fresh2@x.org", "GRACE"),
        ])
        .await;
    assert!(
        matches!(&bulk, Err(Error::Conflict { field, .. }) if field == "username"),
        "{bulk:?}"
    );

    // Not look-alikes that could be told apart: rejected outright.
    expect_invalid(
        users
            .create_user(NewUser::new("c@x.org", "gr\u{430}ce"))
            .await,
        "username",
    );
    expect_invalid(
        users
            .create_user(NewUser::new("c@x.org", "gra\u{200B}ce"))
            .await,
        "username",
    );
    expect_invalid(
        users
            .create_user(NewUser::new("a\u{200B}@x.org", "zero_width"))
            .await,
        "email",
    );
    expect_invalid(
        users
            .create_user(NewUser::new("\u{202E}gro.x@a", "bidi"))
            .await,
        "email",
    );
    assert_eq!(users.user_stats().await.unwrap().count, 2);
}

/// Reading or updating a missing user is `NotFound` naming the user.
pub async fn case_missing_users_are_not_found(users: &dyn UserRepository) {
    let missing = Uuid::new_v4();
    let entity = |r: Result<User>| match r {
        Err(Error::NotFound { entity, .. }) => entity,
        other => panic!("expected not found, got {other:?}"),
    };
    assert_eq!(entity(users.get_user(missing).await), "user");
    assert_eq!(
        entity(users.update_user(missing, UserUpdate::default()).await),
        "user"
    );
}

/// Offset pagination in registration order.
pub async fn case_pagination(users: &dyn UserRepository) {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    for i in 0..7 {
        let mut u = NewUser::new(format!("u{i}@example.org"), format!("uu{i}"));
        u.created_at = Some(start + chrono::Duration::hours(i));
        users.create_user(u).await.unwrap();
    }
    let first = users.list_users(PageRequest::first(3)).await.unwrap();
    assert_eq!(first.total, 7);
    assert!(first.has_more());
    let names: Vec<_> = first.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["uu0", "uu1", "uu2"]);
    let second = users.list_users(first.request.next()).await.unwrap();
    assert_eq!(second.items[0].username, "uu3");
    let third = users.list_users(second.request.next()).await.unwrap();
    assert_eq!(third.items.len(), 1);
    assert!(!third.has_more());
}

/// Users found by country name and by city name (`world` seeded in the store).
pub async fn case_users_by_location(users: &dyn UserRepository, world: &World) {
    user_in(users, world.city("Berlin"), "berta", 50.0).await;
    user_in(users, world.city("Munich"), "max", 60.0).await;
    user_in(users, world.city("Paris"), "pierre", 70.0).await;
    users
        .create_user(NewUser::new("nomad@example.org", "nomad"))
        .await
        .unwrap();
    let german: Vec<_> = users
        .users_in_country("Germany")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(german, ["berta", "max"]);
    let berlin: Vec<_> = users
        .users_in_city("Berlin")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(berlin, ["berta"]);
    assert!(users.users_in_country("Japan").await.unwrap().is_empty());
    assert!(users.users_in_city("Atlantis").await.unwrap().is_empty());
}

/// Count, verified share and score range.
pub async fn case_user_stats(users: &dyn UserRepository) {
    let empty = users.user_stats().await.unwrap();
    assert_eq!(empty.count, 0);
    assert_eq!(empty.avg_profile_score, None);
    for (i, (score, verified)) in [(10.0, true), (20.0, false), (60.0, true), (90.0, true)]
        .into_iter()
        .enumerate()
    {
        let mut u = NewUser::new(format!("s{i}@example.org"), format!("ss{i}"));
        u.profile_score = score;
        u.is_verified = verified;
        users.create_user(u).await.unwrap();
    }
    let stats = users.user_stats().await.unwrap();
    assert_eq!(stats.count, 4);
    assert_eq!(stats.verified, 3);
    assert!((stats.verified_share - 0.75).abs() < 1e-9);
    assert_eq!(stats.min_profile_score, Some(10.0));
    assert_eq!(stats.max_profile_score, Some(90.0));
    assert!((stats.avg_profile_score.unwrap() - 45.0).abs() < 1e-9);
}

/// Ranking by orders, then recency, with ties sharing a rank (`world` seeded in the store,
/// orders placed through `orders`, the store's order repository).
pub async fn case_activity_ranking(
    users: &dyn UserRepository,
    orders: &dyn OrderRepository,
    world: &World,
) {
    let t = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    let mut made = Vec::new();
    for (name, hours) in [("busy", 0), ("some", 1), ("idle", 2), ("idle2", 2)] {
        let mut u = NewUser::new(format!("{name}@example.org"), name);
        u.last_active_at = Some(t - chrono::Duration::hours(hours));
        made.push(users.create_user(u).await.unwrap());
    }
    let trowel = &world.products[2];
    for _ in 0..3 {
        orders
            .place_order(order(&made[0], vec![line(trowel, 1)]))
            .await
            .unwrap();
    }
    orders
        .place_order(order(&made[1], vec![line(trowel, 1)]))
        .await
        .unwrap();
    let ranked = users.users_by_activity(10).await.unwrap();
    let view: Vec<_> = ranked
        .iter()
        .map(|r| (r.username.as_str(), r.orders, r.rank))
        .collect();
    assert_eq!(
        view,
        [
            ("busy", 3, 1),
            ("some", 1, 2),
            ("idle", 0, 3),
            ("idle2", 0, 3)
        ]
    );
    assert_eq!(ranked[0].percent_rank, 0.0);
    assert_eq!(users.users_by_activity(2).await.unwrap().len(), 2);
}

/// A user and their address are created together or not at all (`world` seeded in the
/// store, addresses read through `locations`, the store's location repository).
pub async fn case_user_with_address_is_atomic(
    users: &dyn UserRepository,
    locations: &dyn LocationRepository,
    world: &World,
) {
    let berlin = world.city("Berlin");
    let (user, address) = users
        .create_user_with_address(
            NewAddress {
                street: "Unter den Linden 1".into(),
                postal_code: "10117".into(),
                city_id: berlin.id,
            },
            NewUser::new("ada@example.org", "ada"),
        )
        .await
        .unwrap();
    assert_eq!(user.address_id, Some(address.id));
    assert_eq!(locations.location(address.id).await.unwrap().city, *berlin);

    // The user insert fails (duplicate email) after the address insert succeeded.
    let err = users
        .create_user_with_address(
            NewAddress {
                street: "Alexanderplatz 2".into(),
                postal_code: "10178".into(),
                city_id: berlin.id,
            },
            NewUser::new("ada@example.org", "someone_else"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { entity: "user", field, .. } if field == "email"),
        "{err:?}"
    );
    let streets: Vec<_> = locations
        .addresses_in_city(berlin.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.street)
        .collect();
    assert_eq!(streets, ["Unter den Linden 1"], "no orphan address is left");
    assert_eq!(users.user_stats().await.unwrap().count, 1);

    // An unknown city fails before a user exists.
    let err = users
        .create_user_with_address(
            NewAddress {
                street: "Nowhere 1".into(),
                postal_code: "0".into(),
                city_id: Uuid::new_v4(),
            },
            NewUser::new("new@example.org", "new"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "city", .. }),
        "{err:?}"
    );
    assert!(users
        .find_user_by_email("new@example.org")
        .await
        .unwrap()
        .is_none());
}

/// How many users [`case_bulk_insert`] inserts: more than one statement on both backends.
pub(crate) const BULK_USERS: usize = 21_000;

/// `n` valid new users named `{prefix}{i}`.
pub(crate) fn bulk_users(prefix: &str, n: usize) -> Vec<NewUser> {
    (0..n)
        .map(|i| {
            let mut u = NewUser::new(format!("{prefix}{i}@example.org"), format!("{prefix}{i}"));
            u.profile_score = (i % 101) as f64;
            u
        })
        .collect()
}

/// Bulk inserts are all-or-nothing, however many batches they take.
pub async fn case_bulk_insert(users: &dyn UserRepository) {
    let n = BULK_USERS;
    assert_eq!(
        users.create_users(bulk_users("bulk", n)).await.unwrap(),
        n as u64
    );
    assert_eq!(users.user_stats().await.unwrap().count, n as u64);
    assert_eq!(users.create_users(Vec::new()).await.unwrap(), 0);

    // A duplicate in the last batch undoes the whole call.
    let mut again: Vec<NewUser> = (0..n)
        .map(|i| NewUser::new(format!("more{i}@example.org"), format!("more{i}")))
        .collect();
    again.push(NewUser::new("bulk0@example.org", "fresh"));
    let err = users.create_users(again).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { entity: "user", field, .. } if field == "email"),
        "{err:?}"
    );
    assert_eq!(users.user_stats().await.unwrap().count, n as u64);
}

/// Timestamps round-trip exactly (microseconds, UTC).
pub async fn case_user_timestamps_round_trip(users: &dyn UserRepository) {
    let t = Utc.with_ymd_and_hms(2023, 12, 31, 23, 59, 58).unwrap()
        + chrono::Duration::microseconds(123_456);
    let mut u = NewUser::new("time@example.org", "time");
    u.created_at = Some(t);
    u.last_active_at = Some(t + chrono::Duration::nanoseconds(789));
    let user = users.create_user(u).await.unwrap();
    assert_eq!(user.created_at, t);
    assert_eq!(user.last_active_at, t, "sub-microsecond part is dropped");
    assert_eq!(users.get_user(user.id).await.unwrap().created_at, t);
}
