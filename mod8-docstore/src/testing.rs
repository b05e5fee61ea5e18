//! The conformance suite every backend passes (feature `testing`).
//!
//! Each case is a plain `pub async fn case_x(store: &dyn DocStore, caps: &DocStoreCapabilities)`;
//! the [`conformance_tests!`](crate::conformance_tests) macro emits one named `#[tokio::test]`
//! per case around a setup expression that yields an `Option<DocStoreFixture>` (`None` skips,
//! for a server whose URL is unset). A case that needs a feature the backend declares
//! unsupported in its [`DocStoreCapabilities`] checks that the call fails with
//! [`Error::Unsupported`] (and prints the server's message) instead of checking results.
//!
//! ```text
//! mod8_docstore::conformance_tests!(async {
//!     Some(mod8_docstore::testing::DocStoreFixture::new(
//!         std::sync::Arc::new(mod8_docstore::MemoryDocStore::new()),
//!         mod8_docstore::testing::DocStoreCapabilities::all(),
//!     ))
//! });
//! ```

// This module is test code (the shared suite), where a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::{
    export_ndjson, DayRange, DocStore, DocumentId, DynDocStore, Error, Event, EventFilter,
    EventMetadata, Geo, GeoPoint, LogEntry, MetricsUpdate, OnUnsupported, ProfileDocument,
    SetupOptions, SetupOutcome, Subscription, SubscriptionStatus, TimeWindow,
};

/// What a backend (or the server behind it) supports beyond the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocStoreCapabilities {
    /// `$jsonSchema` validators (and `collMod` to update them).
    pub validators: bool,
    /// TTL indexes (and `collMod` to change their retention).
    pub ttl_indexes: bool,
    /// `2dsphere` indexes and `$geoNear`.
    pub geo: bool,
    /// `$min` / `$max` accumulators (user activity).
    pub min_max: bool,
    /// `$lookup` and date operators (cohorts).
    pub lookup: bool,
}

impl DocStoreCapabilities {
    /// Everything (the memory backend, MongoDB itself).
    pub fn all() -> Self {
        DocStoreCapabilities {
            validators: true,
            ttl_indexes: true,
            geo: true,
            min_max: true,
            lookup: true,
        }
    }

    /// FerretDB 1.x (probed on v1.24, SQLite and PostgreSQL backends): none of the above.
    pub fn ferretdb_1() -> Self {
        DocStoreCapabilities {
            validators: false,
            ttl_indexes: false,
            geo: false,
            min_max: false,
            lookup: false,
        }
    }
}

/// A store under test, its capabilities and how to clean up after it.
pub struct DocStoreFixture {
    /// The store, already set up with [`SetupOptions::default`].
    pub store: DynDocStore,
    /// What it supports.
    pub caps: DocStoreCapabilities,
    teardown: Option<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for DocStoreFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocStoreFixture")
            .field("backend", &self.store.backend())
            .field("caps", &self.caps)
            .field("teardown", &self.teardown.is_some())
            .finish()
    }
}

impl DocStoreFixture {
    /// A fixture without cleanup.
    pub fn new(store: DynDocStore, caps: DocStoreCapabilities) -> Self {
        DocStoreFixture {
            store,
            caps,
            teardown: None,
        }
    }

    /// Runs `teardown` after the case (also when it fails), for example to drop a database.
    pub fn with_teardown(mut self, teardown: BoxFuture<'static, ()>) -> Self {
        self.teardown = Some(teardown);
        self
    }

    /// Sets the store up, runs `case`, tears down, then re-raises a failure of the case.
    pub async fn run<F>(self, case: F)
    where
        F: for<'a> FnOnce(&'a dyn DocStore, &'a DocStoreCapabilities) -> BoxFuture<'a, ()>,
    {
        let outcome = AssertUnwindSafe(async {
            self.store
                .setup(&SetupOptions::default())
                .await
                .expect("setup failed");
            case(&*self.store, &self.caps).await;
        })
        .catch_unwind()
        .await;
        if let Some(teardown) = self.teardown {
            teardown.await;
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Emits one `#[tokio::test]` per conformance case, each with a fresh fixture from `$setup`
/// (an expression evaluating to a future of `Option<DocStoreFixture>`).
#[macro_export]
macro_rules! conformance_tests {
    ($setup:expr) => {
        $crate::conformance_tests!(@cases $setup;
            case_profile_round_trip,
            case_duplicate_profile_is_conflict,
            case_bulk_profiles_partial_failure,
            case_interests_subscriptions_metrics,
            case_operator_input_is_rejected,
            case_event_distribution,
            case_bulk_events_partial_failure,
            case_duplicate_event_id_is_conflict,
            case_event_logged_once_per_message,
            case_user_event_counts,
            case_user_event_counts_concurrent,
            case_markers_claim_once,
            case_markers_purge,
            case_apply_activity_once,
            case_profile_growth_is_bounded,
            case_user_activity,
            case_activity_summary,
            case_activity_summary_concurrent,
            case_purchase_analytics,
            case_events_near,
            case_cohort_metrics,
            case_export_in_batches_and_ndjson,
            case_setup_is_idempotent,
            case_setup_applies_changed_retention,
            case_setup_rejects_bad_log_retention,
            case_logs_expire,
            case_analytics_snapshots,
            case_capabilities_and_fallbacks,
        );
    };
    (@cases $setup:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(fixture) = $setup.await else { return };
                fixture
                    .run(|store, caps| ::std::boxed::Box::pin($crate::testing::$case(store, caps)))
                    .await;
            }
        )*
    };
}

fn day(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0)
        .single()
        .expect("valid date")
}

/// Asserts `result` is [`Error::Unsupported`] and prints the server's message.
pub fn expect_unsupported<T: std::fmt::Debug>(what: &str, result: crate::Result<T>) {
    match result {
        Err(e @ Error::Unsupported { .. }) => {
            eprintln!("{what}: unsupported as declared, server said: {e}");
        }
        other => panic!("{what}: expected Error::Unsupported, got {other:?}"),
    }
}

fn profile(n: u32) -> ProfileDocument {
    ProfileDocument::new(
        format!("u{n}"),
        format!("user{n}"),
        format!("user{n}@example.com"),
    )
}

/// Insert a profile, read it back by username; unknown usernames are `None`.
pub async fn case_profile_round_trip(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let p = profile(1)
        .with_interests(["rust", "chess"])
        .created_at(day(1, 9));
    let id = store.insert_profile(p.clone()).await.unwrap();
    let got = store.profile_by_username("user1").await.unwrap().unwrap();
    assert_eq!(got.id, Some(id));
    assert_eq!(got.user_id, "u1");
    assert_eq!(got.email, "user1@example.com");
    assert_eq!(got.created_at, day(1, 9));
    assert_eq!(got.profile.interests, vec!["rust", "chess"]);
    assert!(store.profile_by_username("nobody").await.unwrap().is_none());
}

/// A taken username, e-mail or user id is a typed conflict naming the key.
pub async fn case_duplicate_profile_is_conflict(
    store: &dyn DocStore,
    _caps: &DocStoreCapabilities,
) {
    store.insert_profile(profile(1)).await.unwrap();
    let same_name = ProfileDocument::new("u2", "user1", "other@example.com");
    let same_email = ProfileDocument::new("u3", "other", "user1@example.com");
    let same_user = ProfileDocument::new("u1", "third", "third@example.com");
    for (p, key) in [
        (same_name, "username"),
        (same_email, "email"),
        (same_user, "user_id"),
    ] {
        let err = store.insert_profile(p.clone()).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{p:?}: {err:?}");
        assert!(
            matches!(&err, Error::Conflict { entity: "user profile", field, .. } if field == key),
            "{p:?}: {err:?}"
        );
    }
}

/// Unordered bulk insert: the good ones land, the bad ones are listed by index and reason.
pub async fn case_bulk_profiles_partial_failure(
    store: &dyn DocStore,
    _caps: &DocStoreCapabilities,
) {
    store.insert_profile(profile(1)).await.unwrap();
    let batch = vec![
        profile(2),
        ProfileDocument::new("u9", "user1", "dup@example.com"), // username taken
        ProfileDocument::new("u3", "user3", "not-an-email"),    // invalid
        profile(4),
    ];
    let r = store.insert_profiles(batch).await.unwrap();
    assert_eq!(r.inserted_ids.len(), 2);
    let indexes: Vec<usize> = r.failures.iter().map(|f| f.index).collect();
    assert_eq!(indexes, vec![1, 2]);
    assert!(matches!(r.failures[0].error, Error::Conflict { .. }));
    assert!(
        matches!(&r.failures[0].error, Error::Conflict { field, .. } if field == "username"),
        "{:?}",
        r.failures[0].error
    );
    assert_eq!(r.failures[1].error.field(), Some("email"));
    for name in ["user2", "user4"] {
        let p = store.profile_by_username(name).await.unwrap().unwrap();
        assert!(r.inserted_ids.contains(&p.id.unwrap()));
    }
    assert!(store.profile_by_username("user3").await.unwrap().is_none());
}

/// Find by interest (sorted, limited), push subscriptions, update metrics.
pub async fn case_interests_subscriptions_metrics(
    store: &dyn DocStore,
    _caps: &DocStoreCapabilities,
) {
    let profiles = vec![
        profile(3).with_interests(["rust", "go"]),
        profile(1).with_interests(["rust"]),
        profile(2).with_interests(["python"]),
    ];
    assert!(store
        .insert_profiles(profiles)
        .await
        .unwrap()
        .failures
        .is_empty());
    let rust: Vec<String> = store
        .find_profiles_by_interest("rust", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.username)
        .collect();
    assert_eq!(rust, vec!["user1", "user3"]);
    assert_eq!(
        store
            .find_profiles_by_interest("rust", 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .find_profiles_by_interest("cobol", 10)
        .await
        .unwrap()
        .is_empty());

    for (plan, status) in [
        ("trial", SubscriptionStatus::Trial),
        ("pro", SubscriptionStatus::Active),
    ] {
        let sub = Subscription {
            plan: plan.into(),
            started_at: day(2, 10),
            status,
        };
        store.add_subscription("user1", sub).await.unwrap();
    }
    let subs = store
        .profile_by_username("user1")
        .await
        .unwrap()
        .unwrap()
        .subscriptions;
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[1].plan, "pro");
    assert_eq!(subs[1].status, SubscriptionStatus::Active);
    assert_eq!(subs[1].started_at, day(2, 10));
    let missing = Subscription {
        plan: "pro".into(),
        started_at: day(2, 10),
        status: SubscriptionStatus::Active,
    };
    let err = store.add_subscription("ghost", missing).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        matches!(&err, Error::NotFound { entity: "user profile", key } if key == "ghost"),
        "{err:?}"
    );

    let update = MetricsUpdate {
        engagement_score: Some(0.75),
        profile_views: 2,
        content_views: 5,
    };
    store.update_metrics("user1", update.clone()).await.unwrap();
    store
        .update_metrics(
            "user1",
            MetricsUpdate {
                profile_views: 1,
                ..MetricsUpdate::default()
            },
        )
        .await
        .unwrap();
    let m = store
        .profile_by_username("user1")
        .await
        .unwrap()
        .unwrap()
        .metrics;
    assert_eq!(m.engagement_score, 0.75);
    assert_eq!((m.profile_views, m.content_views), (3, 5));
    let err = store.update_metrics("ghost", update).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        matches!(&err, Error::NotFound { entity: "user profile", key } if key == "ghost"),
        "{err:?}"
    );
}

/// Keys and values that would become operators, and off-globe coordinates, are rejected.
pub async fn case_operator_input_is_rejected(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let mut meta = EventMetadata::default();
    meta.extras
        .insert("$where".into(), serde_json::json!("sleep(1000)"));
    let err = store
        .log_event(Event::new("u1", "click").with_metadata(meta))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("metadata.extras.$where"));

    let mut meta = EventMetadata::default();
    meta.extras
        .insert("filter".into(), serde_json::json!({"user.name": 1}));
    let err = store
        .log_event(Event::new("u1", "click").with_metadata(meta))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("metadata.extras.filter.user.name"));

    let err = store.profile_by_username("$ne").await.unwrap_err();
    assert_eq!(err.field(), Some("username"));
    let err = store
        .find_profiles_by_interest("$gt", 10)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("interest"));

    let off_globe = Geo {
        location: Some(GeoPoint::new(200.0, 10.0)),
        ..Geo::default()
    };
    let err = store
        .log_event(Event::new("u1", "click").with_geo(off_globe))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("geo.location"));
    let err = store
        .events_near(GeoPoint::new(0.0, 95.0), 10.0, 5)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("point"));

    let nothing = store
        .export_events(EventFilter::default(), 10)
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    assert!(nothing.is_empty(), "rejected events must not be stored");
}

/// Counts per type, most frequent first, inside the window only.
pub async fn case_event_distribution(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let mut events = Vec::new();
    for (t, n) in [("view", 5), ("click", 3), ("search", 3), ("purchase", 1)] {
        for i in 0..n {
            events.push(Event::new(format!("u{i}"), t).at(day(10, i)));
        }
    }
    events.push(Event::new("u1", "view").at(day(20, 0))); // outside the window
    assert!(store.log_events(events).await.unwrap().failures.is_empty());
    let id = store.log_event(Event::new("u1", "logout")).await.unwrap(); // now
    let d = store
        .event_distribution(TimeWindow::between(day(10, 0), day(11, 0)))
        .await
        .unwrap();
    let got: Vec<(&str, u64)> = d.iter().map(|c| (c.event_type.as_str(), c.count)).collect();
    assert_eq!(
        got,
        vec![("view", 5), ("click", 3), ("search", 3), ("purchase", 1)]
    );
    let all = store.event_distribution(TimeWindow::all()).await.unwrap();
    assert_eq!(all[0].event_type, "view");
    assert_eq!(all[0].count, 6);
    assert!(all.iter().any(|c| c.event_type == "logout" && c.count == 1));
    // The defaulted timestamp is "now".
    let recent = TimeWindow::since(Utc::now() - chrono::Duration::minutes(5));
    let mut exported = store
        .export_events(
            EventFilter {
                window: recent,
                ..EventFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    let batch = exported.next().await.unwrap().unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].id, Some(id));
}

/// Unordered bulk log: invalid events are listed, the rest land.
pub async fn case_bulk_events_partial_failure(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let r = store
        .log_events(vec![
            Event::new("u1", "view").at(day(1, 1)),
            Event::new("", "view"),
            Event::new("u2", "view").at(day(1, 2)),
        ])
        .await
        .unwrap();
    assert_eq!(r.inserted_ids.len(), 2);
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].index, 1);
    assert_eq!(r.failures[0].error.field(), Some("user_id"));
    let d = store.event_distribution(TimeWindow::all()).await.unwrap();
    assert_eq!(d[0].count, 2);
}

/// A caller-chosen event `_id` that is taken is a conflict, alone and in a bulk log (where the
/// other events still land); the stored event is left as it was.
pub async fn case_duplicate_event_id_is_conflict(
    store: &dyn DocStore,
    _caps: &DocStoreCapabilities,
) {
    let with_id = |user: &str, kind: &str, id: DocumentId| {
        let mut e = Event::new(user, kind).at(day(2, 1));
        e.id = Some(id);
        e
    };
    let id = store
        .log_event(Event::new("ann", "view").at(day(2, 1)))
        .await
        .unwrap();
    let err = store
        .log_event(with_id("bob", "click", id))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(
        matches!(&err, Error::Conflict { entity: "event", field, .. } if field == "_id"),
        "{err:?}"
    );

    let chosen = DocumentId::new();
    let r = store
        .log_events(vec![
            Event::new("ann", "view").at(day(2, 2)),
            with_id("bob", "click", id),      // taken before
            with_id("cid", "search", chosen), // new
            with_id("dan", "share", chosen),  // taken earlier in this batch
        ])
        .await
        .unwrap();
    assert_eq!(r.inserted_ids.len(), 2, "{r:?}");
    assert_eq!(r.inserted_ids[1], chosen);
    let failed: Vec<usize> = r.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, vec![1, 3]);
    for f in &r.failures {
        assert!(matches!(f.error, Error::Conflict { .. }), "{f:?}");
        assert!(
            matches!(&f.error, Error::Conflict { entity: "event", field, .. } if field == "_id"),
            "{f:?}"
        );
    }

    let d = store.event_distribution(TimeWindow::all()).await.unwrap();
    let got: Vec<(&str, u64)> = d.iter().map(|c| (c.event_type.as_str(), c.count)).collect();
    assert_eq!(got, vec![("view", 2), ("search", 1)]);
    let first = store
        .export_events(EventFilter::default(), 10)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    let original = first.iter().find(|e| e.id == Some(id)).unwrap();
    assert_eq!(
        (original.user_id.as_str(), original.event_type.as_str()),
        ("ann", "view")
    );
    // Rejected events are not counted in activity either.
    let days = DayRange::new(day(2, 0).date_naive(), day(2, 0).date_naive());
    for user in ["bob", "dan"] {
        let s = store.activity_summary(user, days).await.unwrap();
        assert_eq!(s.total(), 0, "{user}: {s:?}");
    }
}

/// An event logged once per message id: a second log of the same message is success and
/// stores (and counts) nothing; another message id is another event; a taken id of another
/// message is a conflict.
pub async fn case_event_logged_once_per_message(
    store: &dyn DocStore,
    _caps: &DocStoreCapabilities,
) {
    let event = || Event::new("once", "view").at(day(4, 1));
    let first = store.log_event_once("msg-1", event()).await.unwrap();
    assert!(first.inserted);
    assert_eq!(first.id, crate::event_id_for_message("msg-1"));
    let again = store.log_event_once("msg-1", event()).await.unwrap();
    assert_eq!(
        again,
        crate::EventLogged {
            id: first.id,
            inserted: false
        }
    );
    let other = store.log_event_once("msg-2", event()).await.unwrap();
    assert!(other.inserted);
    assert_ne!(other.id, first.id);
    // Concurrent redeliveries of one message: exactly one stores it.
    let racing: Vec<_> = (0..8)
        .map(|_| store.log_event_once("msg-3", event()))
        .collect();
    let results = futures::future::join_all(racing).await;
    let inserted = results
        .iter()
        .filter(|r| matches!(r, Ok(l) if l.inserted))
        .count();
    assert_eq!(inserted, 1, "{results:?}");
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let stored: Vec<Event> = store
        .export_events(EventFilter::default(), 100)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
    let logged = stored.iter().find(|e| e.id == Some(first.id)).unwrap();
    assert_eq!(logged.message_id.as_deref(), Some("msg-1"));
    let days = DayRange::new(day(4, 0).date_naive(), day(4, 0).date_naive());
    let summary = store.activity_summary("once", days).await.unwrap();
    assert_eq!(summary.count("view"), 3, "{summary:?}");

    // An id held by an event of another message (or none) is a conflict, not a repeat.
    let mut squatter = Event::new("squat", "view").at(day(4, 2));
    squatter.id = Some(crate::event_id_for_message("msg-4"));
    store.log_event(squatter).await.unwrap();
    let err = store.log_event_once("msg-4", event()).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let err = store.log_event_once("", event()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field, .. } if field == "message_id"),
        "{err:?}"
    );
}

/// One user's events per type over the whole log, and the message ids of exactly the counted
/// events at or after the cut-off (logged once, by message); other users' events apart.
pub async fn case_user_event_counts(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let cut = day(10, 12);
    // Before the cut-off: counted, ids not listed.
    store
        .log_event_once("old-1", Event::new("uc", "view").at(day(10, 1)))
        .await
        .unwrap();
    store
        .log_event(Event::new("uc", "click").at(day(9, 1)))
        .await
        .unwrap();
    // At and after the cut-off: counted, ids listed when logged by message.
    for (id, t, at) in [
        ("new-2", "view", cut),
        ("new-1", "view", day(11, 0)),
        ("new-3", "purchase", day(12, 0)),
    ] {
        store
            .log_event_once(id, Event::new("uc", t).at(at))
            .await
            .unwrap();
    }
    store
        .log_event(Event::new("uc", "search").at(day(11, 3)))
        .await
        .unwrap();
    // A redelivery is one event.
    store
        .log_event_once("new-1", Event::new("uc", "view").at(day(11, 0)))
        .await
        .unwrap();
    // Another user's events are not counted.
    store
        .log_event_once("other-1", Event::new("uc2", "view").at(day(11, 0)))
        .await
        .unwrap();

    let got = store.user_event_counts("uc", cut).await.unwrap();
    let counts: Vec<(&str, u64)> = got
        .counts
        .iter()
        .map(|c| (c.event_type.as_str(), c.count))
        .collect();
    assert_eq!(
        counts,
        vec![("view", 3), ("click", 1), ("purchase", 1), ("search", 1)]
    );
    assert_eq!(got.total(), 6);
    assert_eq!((got.count("view"), got.count("review")), (3, 0));
    assert_eq!(got.recent_message_ids, vec!["new-1", "new-2", "new-3"]);
    // Everything recent: every id.
    let all = store.user_event_counts("uc", day(1, 0)).await.unwrap();
    assert_eq!(all.total(), 6);
    assert_eq!(
        all.recent_message_ids,
        vec!["new-1", "new-2", "new-3", "old-1"]
    );
    // A user without events.
    let none = store.user_event_counts("nobody", cut).await.unwrap();
    assert_eq!(none, crate::UserEventCounts::default());
    for bad in ["", "$where"] {
        let err = store.user_event_counts(bad, cut).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, .. } if field == "user_id"),
            "{bad:?}: {err:?}"
        );
    }
}

/// While events are logged concurrently, every answer lists the ids of exactly the events it
/// counted (here all recent and logged by message: as many ids as events).
pub async fn case_user_event_counts_concurrent(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let since = day(1, 0);
    let writer = async {
        for i in 0..40 {
            store
                .log_event_once(&format!("c-{i}"), Event::new("ucc", "view").at(day(2, 0)))
                .await
                .unwrap();
        }
    };
    let reader = async {
        let mut answers = Vec::new();
        for _ in 0..20 {
            answers.push(store.user_event_counts("ucc", since).await.unwrap());
        }
        answers
    };
    let ((), answers) = futures::join!(writer, reader);
    for got in answers {
        assert_eq!(got.total(), got.recent_message_ids.len() as u64, "{got:?}");
    }
    let last = store.user_event_counts("ucc", since).await.unwrap();
    assert_eq!(last.count("view"), 40);
    assert_eq!(last.recent_message_ids.len(), 40);
}

/// A marker is claimed once, also by concurrent claims; released, it can be claimed again.
pub async fn case_markers_claim_once(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let claims: Vec<_> = (0..8).map(|_| store.claim_marker("welcome:42")).collect();
    let results = futures::future::join_all(claims).await;
    let won = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(!store.claim_marker("welcome:42").await.unwrap());
    assert!(store.claim_marker("welcome:43").await.unwrap());
    assert!(store.release_marker("welcome:42").await.unwrap());
    assert!(!store.release_marker("welcome:42").await.unwrap());
    assert!(store.claim_marker("welcome:42").await.unwrap());
    for bad in ["", "$where"] {
        let err = store.claim_marker(bad).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, .. } if field == "key"),
            "{bad:?}: {err:?}"
        );
    }
}

/// Markers of one kind claimed before a time are purged, others stay; a purged marker can be
/// claimed again.
pub async fn case_markers_purge(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    for key in ["note:1", "note:2", "note:3", "keep:1"] {
        assert!(store.claim_marker(key).await.unwrap());
    }
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(store.purge_markers("note:", past).await.unwrap(), 0);
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.purge_markers("note:", later).await.unwrap(), 3);
    assert!(
        store.claim_marker("note:1").await.unwrap(),
        "purged: claimable again"
    );
    assert!(
        !store.claim_marker("keep:1").await.unwrap(),
        "another prefix stays"
    );
    // Regular-expression metacharacters in a prefix are literal.
    assert!(store.claim_marker("a.b:1").await.unwrap());
    assert!(store.claim_marker("axb:1").await.unwrap());
    assert_eq!(store.purge_markers("a.b:", later).await.unwrap(), 1);
    assert!(!store.claim_marker("axb:1").await.unwrap());
    for bad in ["", "$where"] {
        let err = store.purge_markers(bad, later).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation { field, .. } if field == "prefix"),
            "{bad:?}: {err:?}"
        );
    }
}

/// Activity applied to a profile's metrics once per event id, also under concurrency.
pub async fn case_apply_activity_once(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    store
        .insert_profile(ProfileDocument::new("act-1", "actor", "actor@example.com"))
        .await
        .unwrap();
    let update = |id: &str, t: &str, interest: Option<&str>| crate::ActivityUpdate {
        event_id: id.into(),
        event_type: t.into(),
        score: 2.0,
        content_views: i64::from(t == "page_view"),
        interest: interest.map(str::to_owned),
    };
    // 20 distinct events, each applied from 3 tasks at once.
    let calls: Vec<_> = (0..60)
        .map(|i| {
            let t = if i % 20 < 15 { "page_view" } else { "purchase" };
            let interest = if i % 20 == 19 { Some("books") } else { None };
            store.apply_activity("act-1", update(&format!("e{}", i % 20), t, interest))
        })
        .collect();
    let results = futures::future::join_all(calls).await;
    let applied = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(applied, 20, "{results:?}");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(!store
        .apply_activity("act-1", update("e3", "page_view", None))
        .await
        .unwrap());
    let p = store.profile_by_username("actor").await.unwrap().unwrap();
    assert_eq!(p.metrics.engagement_score, 40.0);
    assert_eq!(p.metrics.content_views, 15);
    assert_eq!(p.metrics.event_counts.get("page_view"), Some(&15));
    assert_eq!(p.metrics.event_counts.get("purchase"), Some(&5));
    assert_eq!(p.profile.interests, vec!["books".to_owned()]);
    assert_eq!(p.metrics.applied_events.len(), 20);
    let found = store.find_profiles_by_interest("books", 10).await.unwrap();
    assert_eq!(found.len(), 1);

    let err = store
        .apply_activity("nobody", update("e1", "click", None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store
        .apply_activity("act-1", update("e99", "a.b", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field, .. } if field.starts_with("event_type")),
        "{err:?}"
    );
}

/// However many event types and interests a user's events bring, a profile keeps at most
/// [`crate::MAX_EVENT_TYPES`] named counts (the rest under [`crate::OTHER_EVENT_TYPE`]) and
/// the last [`crate::MAX_PROFILE_INTERESTS`] interests.
pub async fn case_profile_growth_is_bounded(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    store
        .insert_profile(ProfileDocument::new(
            "grow-1",
            "grower",
            "grower@example.com",
        ))
        .await
        .unwrap();
    let extra = 5;
    let n = crate::MAX_EVENT_TYPES.max(crate::MAX_PROFILE_INTERESTS) + extra;
    for i in 0..n {
        let update = crate::ActivityUpdate {
            event_id: format!("g{i}"),
            event_type: format!("type_{i:03}"),
            score: 1.0,
            content_views: 0,
            interest: Some(format!("topic-{i:03}")),
        };
        assert!(store.apply_activity("grow-1", update).await.unwrap());
    }
    // A type counted by name keeps counting by name once the bound is reached.
    let again = crate::ActivityUpdate {
        event_id: "g-again".into(),
        event_type: "type_000".into(),
        score: 1.0,
        content_views: 0,
        interest: None,
    };
    assert!(store.apply_activity("grow-1", again).await.unwrap());
    let p = store.profile_by_username("grower").await.unwrap().unwrap();
    let counts = &p.metrics.event_counts;
    assert_eq!(counts.len(), crate::MAX_EVENT_TYPES + 1, "{counts:?}");
    assert_eq!(counts.get("type_000"), Some(&2), "{counts:?}");
    assert_eq!(
        counts.get(crate::OTHER_EVENT_TYPE),
        Some(&((n - crate::MAX_EVENT_TYPES) as i64)),
        "{counts:?}"
    );
    assert_eq!(counts.values().sum::<i64>(), n as i64 + 1);
    let interests = &p.profile.interests;
    assert_eq!(
        interests.len(),
        crate::MAX_PROFILE_INTERESTS,
        "{interests:?}"
    );
    assert_eq!(interests.last(), Some(&format!("topic-{:03}", n - 1)));
    assert!(
        !interests.contains(&"topic-000".to_owned()),
        "{interests:?}"
    );
}

/// Events per user with first and last seen, top N.
pub async fn case_user_activity(store: &dyn DocStore, caps: &DocStoreCapabilities) {
    let events = vec![
        Event::new("ann", "view").at(day(5, 1)),
        Event::new("ann", "view").at(day(5, 9)),
        Event::new("ann", "click").at(day(5, 4)),
        Event::new("bob", "view").at(day(5, 2)),
        Event::new("bob", "view").at(day(5, 3)),
        Event::new("cid", "view").at(day(5, 5)),
        Event::new("ann", "view").at(day(9, 0)), // outside
    ];
    store.log_events(events).await.unwrap();
    let window = TimeWindow::between(day(5, 0), day(6, 0));
    let result = store.user_activity(window, 2).await;
    if !caps.min_max {
        return expect_unsupported("user activity", result);
    }
    let a = result.unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(
        (
            a[0].user_id.as_str(),
            a[0].events,
            a[0].first_seen,
            a[0].last_seen
        ),
        ("ann", 3, day(5, 1), day(5, 9))
    );
    assert_eq!((a[1].user_id.as_str(), a[1].events), ("bob", 2));
}

/// Per-user counts by type over a day range, from single and bulk logs, across a month
/// boundary; types with dots; other users and other days not counted; bad ranges refused.
pub async fn case_activity_summary(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let at = |m: u32, d: u32, h: u32| {
        Utc.with_ymd_and_hms(2026, m, d, h, 0, 0)
            .single()
            .expect("valid date")
    };
    let date = |m: u32, d: u32| NaiveDate::from_ymd_opt(2026, m, d).expect("valid date");
    let r = store
        .log_events(vec![
            Event::new("ann", "view").at(at(3, 30, 1)),
            Event::new("ann", "view").at(at(3, 31, 23)),
            Event::new("ann", "cart.add").at(at(4, 1, 2)),
            Event::new("", "view").at(at(4, 1, 2)), // invalid: not counted
            Event::new("bob", "view").at(at(4, 1, 3)),
            Event::new("ann", "view").at(at(4, 20, 0)), // after the range
            Event::new("ann", "view").at(at(3, 1, 0)),  // before the range
        ])
        .await
        .unwrap();
    assert_eq!(r.failures.len(), 1);
    store
        .log_event(Event::new("ann", "click").at(at(4, 2, 8)))
        .await
        .unwrap();

    let range = DayRange::new(date(3, 30), date(4, 10));
    let ann = store.activity_summary("ann", range).await.unwrap();
    assert_eq!(ann.user_id, "ann");
    assert_eq!(
        ann.counts,
        [("cart.add", 1), ("click", 1), ("view", 2)]
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n))
            .collect()
    );
    assert_eq!(ann.total(), 4);
    assert_eq!(ann.last_event_at, Some(at(4, 2, 8)));
    // One day, inclusive at both ends.
    let day = store
        .activity_summary("ann", DayRange::new(date(3, 31), date(3, 31)))
        .await
        .unwrap();
    assert_eq!((day.count("view"), day.total()), (1, 1));
    assert_eq!(day.last_event_at, Some(at(3, 31, 23)));
    // Other users and unknown users.
    let bob = store.activity_summary("bob", range).await.unwrap();
    assert_eq!((bob.count("view"), bob.total()), (1, 1));
    let nobody = store.activity_summary("nobody", range).await.unwrap();
    assert_eq!(nobody.total(), 0);
    assert_eq!(nobody.last_event_at, None);
    // Bad queries name what is wrong.
    let reversed = store
        .activity_summary("ann", DayRange::new(date(4, 10), date(3, 30)))
        .await;
    assert_eq!(reversed.unwrap_err().field(), Some("days"));
    let long = store
        .activity_summary(
            "ann",
            DayRange::new(
                date(1, 1),
                date(12, 31).succ_opt().unwrap().succ_opt().unwrap(),
            ),
        )
        .await;
    assert_eq!(long.unwrap_err().field(), Some("days"));
    let empty = store.activity_summary("", range).await;
    assert_eq!(empty.unwrap_err().field(), Some("user_id"));
}

/// Concurrent logs for one user (one bucket) are all counted.
pub async fn case_activity_summary_concurrent(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let logs = (0..40).map(|i| {
        let t = if i % 2 == 0 { "view" } else { "click" };
        store.log_event(Event::new("ann", t))
    });
    for r in futures::future::join_all(logs).await {
        r.unwrap();
    }
    let today = Utc::now().date_naive();
    let s = store
        .activity_summary("ann", DayRange::ending(today, 2))
        .await
        .unwrap();
    assert_eq!((s.count("view"), s.count("click")), (20, 20), "{s:?}");
}

/// Priced purchases per category: count, revenue, average; highest revenue first.
pub async fn case_purchase_analytics(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let events = vec![
        Event::purchase("u1", "p1", "books", 10.0).at(day(3, 1)),
        Event::purchase("u2", "p2", "books", 20.0).at(day(3, 2)),
        Event::purchase("u1", "p3", "games", 60.0).at(day(3, 3)),
        Event::purchase("u3", "p4", "music", 5.5).at(day(3, 4)),
        Event::purchase("u3", "p5", "music", 4.5).at(day(3, 5)),
        Event::purchase("u1", "p6", "games", 99.0).at(day(8, 1)), // outside
        Event::new("u1", "view").with_metadata(EventMetadata {
            price: Some(1000.0),
            category: Some("books".into()),
            ..EventMetadata::default()
        }),
        Event::new("u1", "purchase").at(day(3, 6)), // no price: not counted
    ];
    store.log_events(events).await.unwrap();
    let p = store
        .purchase_analytics(TimeWindow::between(day(3, 0), day(4, 0)))
        .await
        .unwrap();
    let got: Vec<(Option<&str>, u64, f64, f64)> = p
        .iter()
        .map(|c| {
            (
                c.category.as_deref(),
                c.purchases,
                c.revenue,
                c.average_price,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("games"), 1, 60.0, 60.0),
            (Some("books"), 2, 30.0, 15.0),
            (Some("music"), 2, 10.0, 5.0),
        ]
    );
}

/// Events within a distance of a point, nearest first.
pub async fn case_events_near(store: &dyn DocStore, caps: &DocStoreCapabilities) {
    let at = |city: &str, lon: f64, lat: f64| {
        Event::new("u1", "checkin").with_geo(Geo {
            country: Some("DE".into()),
            city: Some(city.into()),
            location: Some(GeoPoint::new(lon, lat)),
        })
    };
    store
        .log_events(vec![
            at("Potsdam", 13.0645, 52.3906), // ~27 km from Berlin
            at("Berlin", 13.4050, 52.5200),
            at("Hamburg", 9.9937, 53.5511), // ~255 km
            Event::new("u1", "view"),       // no location
        ])
        .await
        .unwrap();
    let berlin = GeoPoint::new(13.4049, 52.5201);
    let result = store.events_near(berlin, 50_000.0, 10).await;
    if !caps.geo {
        return expect_unsupported("events near", result);
    }
    let near = result.unwrap();
    let cities: Vec<&str> = near
        .iter()
        .map(|n| n.event.geo.as_ref().unwrap().city.as_deref().unwrap())
        .collect();
    assert_eq!(cities, vec!["Berlin", "Potsdam"]);
    assert!(near[0].distance_m < 100.0);
    assert!((20_000.0..35_000.0).contains(&near[1].distance_m));
    assert_eq!(
        store.events_near(berlin, 50_000.0, 1).await.unwrap().len(),
        1
    );
}

/// Cohorts by sign-up month: users, active users, events per user.
pub async fn case_cohort_metrics(store: &dyn DocStore, caps: &DocStoreCapabilities) {
    let jan = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
    let feb = Utc.with_ymd_and_hms(2026, 2, 3, 12, 0, 0).unwrap();
    store
        .insert_profiles(vec![
            profile(1).created_at(jan),
            profile(2).created_at(jan),
            profile(3).created_at(feb),
        ])
        .await
        .unwrap();
    store
        .log_events(vec![
            Event::new("u1", "view").at(day(1, 1)),
            Event::new("u1", "view").at(day(1, 2)),
            Event::new("u1", "view").at(day(1, 3)),
            Event::new("u3", "view").at(day(1, 4)),
            Event::new("u2", "view").at(day(20, 1)), // outside the activity window
        ])
        .await
        .unwrap();
    let result = store
        .cohort_metrics(TimeWindow::between(day(1, 0), day(2, 0)))
        .await;
    if !caps.lookup {
        return expect_unsupported("cohort metrics", result);
    }
    let c = result.unwrap();
    let got: Vec<(&str, u64, u64, u64, f64)> = c
        .iter()
        .map(|c| {
            (
                c.month.as_str(),
                c.users,
                c.active_users,
                c.events,
                c.events_per_user,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("2026-01", 2, 1, 3, 1.5), ("2026-02", 1, 1, 1, 1.0)]
    );
}

/// A filtered export streams in batches, oldest first; NDJSON writes one line per event.
pub async fn case_export_in_batches_and_ndjson(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let mut events = Vec::new();
    for i in (0..25).rev() {
        events.push(Event::new("ann", "view").at(day(1, 0) + chrono::Duration::minutes(i)));
        events.push(Event::new("bob", "view").at(day(1, 0) + chrono::Duration::minutes(i)));
    }
    store.log_events(events).await.unwrap();
    let filter = EventFilter {
        user_id: Some("ann".into()),
        ..EventFilter::default()
    };
    let batches: Vec<Vec<Event>> = store
        .export_events(filter.clone(), 10)
        .await
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
        .await;
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    let all: Vec<&Event> = batches.iter().flatten().collect();
    assert!(all.iter().all(|e| e.user_id == "ann"));
    assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert_eq!(all[0].timestamp, day(1, 0));

    let mut out = Vec::new();
    let n = export_ndjson(store, filter, &mut out).await.unwrap();
    assert_eq!(n, 25);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25);
    let first: Event = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first.timestamp, day(1, 0));
    assert_eq!(first.user_id, "ann");
}

/// A second setup changes nothing; steps are unsupported only where declared.
pub async fn case_setup_is_idempotent(store: &dyn DocStore, caps: &DocStoreCapabilities) {
    let report = store.setup(&SetupOptions::default()).await.unwrap();
    assert!(
        !report.changed(),
        "second setup changed something: {report:?}"
    );
    assert_eq!(report.steps.len(), 15, "{report:?}");
    for step in report.unsupported() {
        let allowed = (step.target.ends_with("validator") && !caps.validators)
            || (step.target.contains("ttl") && !caps.ttl_indexes)
            || (step.target.contains("2dsphere") && !caps.geo);
        assert!(allowed, "unexpectedly unsupported: {step:?}");
        eprintln!(
            "setup: {} unsupported as declared: {:?}",
            step.target, step.outcome
        );
    }
    let unique = report.outcome("user_profiles index username_unique");
    assert_eq!(unique, Some(&SetupOutcome::Unchanged));
}

/// A changed log retention is applied to the existing TTL index.
pub async fn case_setup_applies_changed_retention(
    store: &dyn DocStore,
    caps: &DocStoreCapabilities,
) {
    let options = SetupOptions::default().with_log_retention(Duration::from_secs(3600));
    let report = store.setup(&options).await.unwrap();
    let ttl = report.outcome("logs index created_at_ttl").cloned();
    if caps.ttl_indexes {
        assert_eq!(ttl, Some(SetupOutcome::Updated));
        let again = store.setup(&options).await.unwrap();
        assert!(!again.changed(), "{again:?}");
        store
            .setup(&options.clone().with_on_unsupported(OnUnsupported::Fail))
            .await
            .unwrap();
    } else {
        assert!(
            matches!(ttl, Some(SetupOutcome::Unsupported { .. })),
            "{ttl:?}"
        );
        let strict = options.with_on_unsupported(OnUnsupported::Fail);
        expect_unsupported("strict setup", store.setup(&strict).await);
    }
}

/// A log retention that is not whole seconds in [1 s, `i32::MAX` s] is a validation error naming
/// `log_retention` (never a panic, nor a TTL of 0 on one backend only) and changes nothing;
/// the longest allowed retention is applied and logs still read.
pub async fn case_setup_rejects_bad_log_retention(
    store: &dyn DocStore,
    caps: &DocStoreCapabilities,
) {
    for bad in [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_millis(1500),
        Duration::from_secs(i32::MAX as u64 + 1),
        Duration::MAX,
    ] {
        let options = SetupOptions::default().with_log_retention(bad);
        let err = store.setup(&options).await.unwrap_err();
        assert_eq!(err.field(), Some("log_retention"), "{bad:?}: {err:?}");
    }
    // The fixture's 7-day retention still applies: a 2-day-old entry is listed.
    let mut two_days = LogEntry::new("info", "two days old");
    two_days.created_at = Utc::now() - chrono::Duration::days(2);
    store.append_log(two_days).await.unwrap();
    let logs = store.recent_logs(10).await.unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");

    let longest = SetupOptions::default().with_log_retention(Duration::from_secs(i32::MAX as u64));
    let report = store.setup(&longest).await.unwrap();
    let ttl = report.outcome("logs index created_at_ttl").cloned();
    if caps.ttl_indexes {
        assert_eq!(ttl, Some(SetupOutcome::Updated));
    } else {
        assert!(
            matches!(ttl, Some(SetupOutcome::Unsupported { .. })),
            "{ttl:?}"
        );
    }
    let mut ten_years = LogEntry::new("info", "ten years old");
    ten_years.created_at = Utc::now() - chrono::Duration::days(3650);
    store.append_log(ten_years).await.unwrap();
    let messages: Vec<String> = store
        .recent_logs(10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(messages, vec!["two days old", "ten years old"]);
}

/// Logs older than the retention are not returned; newest first.
pub async fn case_logs_expire(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let retention = Duration::from_secs(3600);
    store
        .setup(&SetupOptions::default().with_log_retention(retention))
        .await
        .unwrap();
    let mut old = LogEntry::new("info", "too old");
    old.created_at = Utc::now() - chrono::Duration::hours(2);
    store.append_log(old).await.unwrap();
    for (i, msg) in ["first", "second", "third"].into_iter().enumerate() {
        let mut e = LogEntry::new("info", msg);
        e.created_at = Utc::now() - chrono::Duration::seconds(30 - i as i64);
        store.append_log(e).await.unwrap();
    }
    let logs = store.recent_logs(10).await.unwrap();
    let messages: Vec<&str> = logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, vec!["third", "second", "first"]);
    assert_eq!(store.recent_logs(1).await.unwrap().len(), 1);
    assert!(store
        .append_log(LogEntry::new("$bad", "x"))
        .await
        .unwrap_err()
        .field()
        .is_some());
}

/// Aggregated results are stored by name; the newest is returned.
pub async fn case_analytics_snapshots(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    assert!(store.latest_analytics("daily").await.unwrap().is_none());
    store
        .save_analytics("daily", serde_json::json!({"views": 1}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let id = store
        .save_analytics(
            "daily",
            serde_json::json!({"views": 2, "by_type": [{"t": "a"}]}),
        )
        .await
        .unwrap();
    store
        .save_analytics("weekly", serde_json::json!({"views": 9}))
        .await
        .unwrap();
    let latest = store.latest_analytics("daily").await.unwrap().unwrap();
    assert_eq!(latest.id, Some(id));
    assert_eq!(latest.result["views"], 2);
    assert_eq!(latest.result["by_type"][0]["t"], "a");
    let err = store
        .save_analytics("daily", serde_json::json!({"$set": 1}))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("result.$set"));
}

/// The events of the export passing `filter` (one batch).
async fn exported(store: &dyn DocStore, filter: EventFilter) -> Vec<Event> {
    let mut batches = store.export_events(filter, 1_000).await.unwrap();
    let mut out = Vec::new();
    while let Some(batch) = batches.next().await {
        out.extend(batch.unwrap());
    }
    out
}

/// The store's declared [`Capabilities`](crate::Capabilities) agree with what it does.
///
/// Without change streams, [`DocStore::watch_events`] is [`Error::Unsupported`] naming it, and
/// the fallback a caller uses instead works: polling [`DataProcessing::export_events`](crate::DataProcessing::export_events)
/// from a checkpoint sees the events logged after it, oldest first, the checkpoint moving to
/// the last one read (events at the checkpoint's own timestamp come again, told apart by id).
/// With change streams, a watch opened before an event is logged yields that event. With or
/// without transactions, an event logged once per message is stored and counted once.
pub async fn case_capabilities_and_fallbacks(store: &dyn DocStore, _caps: &DocStoreCapabilities) {
    let capabilities = store.capabilities();
    eprintln!("{}: {capabilities:?}", store.backend());
    store
        .log_event(Event::new("poller", "view").at(day(5, 10)))
        .await
        .unwrap();

    if capabilities.change_streams {
        let mut watch = store.watch_events().await.unwrap();
        let id = store
            .log_event(Event::new("watched", "view").at(day(5, 11)))
            .await
            .unwrap();
        // A guard against a hang, not a timing assertion.
        let seen = tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await
            .expect("the change stream yielded nothing for a minute")
            .expect("the change stream ended")
            .unwrap();
        assert_eq!(seen.id, Some(id));
        assert_eq!(seen.user_id, "watched");
    } else {
        match store.watch_events().await {
            Err(Error::Unsupported { operation, backend }) => {
                assert!(operation.contains("watch_events"), "{operation}");
                assert_eq!(backend, store.backend());
            }
            Err(other) => panic!("watch_events without change streams: {other:?}"),
            Ok(_) => panic!("watch_events gave a stream where change streams are declared absent"),
        }
    }

    // The polling fallback.
    let poll = |since: DateTime<Utc>| EventFilter {
        user_id: Some("poller".to_owned()),
        window: TimeWindow::since(since),
        ..EventFilter::default()
    };
    let checkpoint = day(5, 11);
    assert!(exported(store, poll(checkpoint)).await.is_empty());
    let b = store
        .log_event(Event::new("poller", "click").at(day(5, 12)))
        .await
        .unwrap();
    let c = store
        .log_event(Event::new("poller", "view").at(day(5, 13)))
        .await
        .unwrap();
    let seen = exported(store, poll(checkpoint)).await;
    assert_eq!(
        seen.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![Some(b), Some(c)]
    );
    let checkpoint = seen.last().unwrap().timestamp;
    let d = store
        .log_event_once("poll-msg-1", Event::new("poller", "buy").at(day(5, 13)))
        .await
        .unwrap();
    assert!(d.inserted);
    let again = store
        .log_event_once("poll-msg-1", Event::new("poller", "buy").at(day(5, 13)))
        .await
        .unwrap();
    assert!(!again.inserted);
    let mut ids: Vec<_> = exported(store, poll(checkpoint))
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    let mut expected = vec![Some(c), Some(d.id)];
    expected.sort();
    assert_eq!(
        ids, expected,
        "a poll from the checkpoint missed or repeated events"
    );
    let days = DayRange::new(day(5, 0).date_naive(), day(5, 0).date_naive());
    let summary = store.activity_summary("poller", days).await.unwrap();
    assert_eq!(
        (
            summary.count("view"),
            summary.count("click"),
            summary.count("buy")
        ),
        (2, 1, 1),
        "{summary:?}"
    );
}
