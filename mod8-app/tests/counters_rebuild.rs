//! Engagement counters rebuilt from the event log: after the cache lost them (a flush, which
//! takes the idempotency markers too, or a deleted counter) a read or a count rebuilds them
//! exactly; a redelivered message already in the rebuilt counters is not counted twice; an
//! event counted before it was logged is not lost; concurrent events during a rebuild give
//! exact totals; `mod8 rebuild-counters` on a seeded store — each on the embedded backends and
//! on the real services (Redis, FerretDB).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::process::{Command, Output};

use mod8_app::commands::counters::{rebuild_all, rebuild_user};
use mod8_app::flows::analytics::{count_once, EventInput};
use mod8_app::ConsumerCounts;
use mod8_datasci::ActivityCounts;
use mod8_mq::domain::Analytics;
use mod8_mq::Envelope;
use support::*;
use uuid::Uuid;

/// Handled messages of the analytics consumer (acknowledged or dead-lettered).
async fn analytics_finished(s: &Server) -> u64 {
    s.app
        .consumer_stats()
        .await
        .iter()
        .find(|c| c.name == ConsumerCounts::ANALYTICS)
        .map(|c| c.finished())
        .unwrap_or(0)
}

/// Waits until the analytics consumer handled `n` more messages than `before`.
async fn handled(s: &Server, before: u64, n: u64) {
    eventually("the analytics consumer", || async {
        analytics_finished(s).await >= before + n
    })
    .await;
}

/// Sends the analytics message `id` (of `event_type`, by `user`) to the fanout again, as the
/// broker would redeliver it.
async fn deliver(s: &Server, user: Uuid, event_type: &str, id: Uuid) {
    let mut envelope = Envelope::new(Analytics {
        event_type: event_type.into(),
        user_id: user.to_string(),
        properties: HashMap::new(),
    });
    envelope.id = id;
    let route = s.app.pipeline.topology().analytics_route();
    s.app
        .pipeline
        .producer()
        .send(&envelope, &route)
        .await
        .unwrap();
}

fn event(user: Uuid, t: &str) -> EventInput {
    EventInput {
        user_id: user,
        event_type: t.into(),
        properties: HashMap::new(),
    }
}

const MIX: [&str; 8] = [
    "page_view",
    "page_view",
    "click",
    "search",
    "purchase",
    "page_view",
    "cart_add",
    "review",
];

/// What `types` count to.
fn expected(types: &[&str]) -> ActivityCounts {
    let mut c = ActivityCounts::default();
    for t in types {
        mod8_app::activity::count_event(&mut c, t);
    }
    c
}

/// Records `types` for `user` through the API and waits until each is logged; returns the
/// message ids.
async fn record_logged(s: &Server, user: Uuid, types: &[&str]) -> Vec<Uuid> {
    let before = analytics_finished(s).await;
    let mut ids = Vec::new();
    for t in types {
        ids.push(s.app.record_event(event(user, t)).await.unwrap().message_id);
    }
    handled(s, before, types.len() as u64).await;
    ids
}

/// The raw counter in the cache (the `events` total included).
async fn raw(s: &Server, user: Uuid) -> std::collections::BTreeMap<String, i64> {
    s.app
        .cache
        .counter(&mod8_app::keys::counters(user))
        .await
        .unwrap()
}

async fn counters_come_back_after_a_flush(s: &Server) {
    let user = id_of(&s.register(&name("flush")).await);
    record_logged(s, user, &MIX).await;
    let want = expected(&MIX);
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    // A Redis restart or flush: counters and idempotency markers gone.
    s.app.cache.clear().await.unwrap();
    assert!(raw(s, user).await.is_empty());
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    assert_eq!(raw(s, user).await.get("events"), Some(&(MIX.len() as i64)));
    // The counter alone deleted (its markers kept): the same.
    assert!(s
        .app
        .cache
        .delete_counter(&mod8_app::keys::counters(user))
        .await
        .unwrap());
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    // Counting goes on from the rebuilt counters.
    let accepted = s.app.record_event(event(user, "click")).await.unwrap();
    assert_eq!(accepted.counters.clicks, want.clicks + 1);
    // A user without events (one the API does not know): zeros, and no counter created by
    // the read.
    let quiet = Uuid::new_v4();
    assert_eq!(
        s.app.engagement_counters(quiet).await.unwrap(),
        ActivityCounts::default()
    );
    assert!(raw(s, quiet).await.is_empty());
}

async fn a_redelivery_after_a_rebuild_counts_once(s: &Server) {
    let user = id_of(&s.register(&name("redel")).await);
    let ids = record_logged(s, user, &MIX).await;
    let want = expected(&MIX);
    s.app.cache.clear().await.unwrap();
    // Rebuilt by a read, then a logged message comes again: its marker was lost with the
    // flush, the rebuild marked it.
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    let before = analytics_finished(s).await;
    deliver(s, user, MIX[0], ids[0]).await;
    deliver(s, user, MIX[2], ids[2]).await;
    handled(s, before, 2).await;
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    // Rebuilt by the redelivery's own count (no read first): counted once as well.
    s.app.cache.clear().await.unwrap();
    let before = analytics_finished(s).await;
    deliver(s, user, MIX[3], ids[3]).await;
    handled(s, before, 1).await;
    assert_eq!(raw(s, user).await.get("events"), Some(&(MIX.len() as i64)));
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    // And by hand.
    let again = count_once(&s.app.cache, s.app.docs.as_ref(), user, MIX[1], ids[1])
        .await
        .unwrap();
    assert_eq!(again, want);
}

async fn an_event_counted_before_it_is_logged_is_not_lost(s: &Server) {
    let user = id_of(&s.register(&name("early")).await);
    record_logged(s, user, &MIX).await;
    s.app.cache.clear().await.unwrap();
    // The API counts a message the log does not hold yet (its consumer has not run): the
    // counter is rebuilt from the log, then the event counted on top.
    let early = Uuid::new_v4();
    let counted = count_once(&s.app.cache, s.app.docs.as_ref(), user, "click", early)
        .await
        .unwrap();
    let mut want = expected(&MIX);
    want.clicks += 1;
    assert_eq!(counted, want);
    // Its consumer logs it and counts it again: a repeat.
    let before = analytics_finished(s).await;
    deliver(s, user, "click", early).await;
    handled(s, before, 1).await;
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    // Lost again: the log has it now.
    s.app.cache.clear().await.unwrap();
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
}

async fn concurrent_events_during_a_rebuild_count_exactly(s: &Server) {
    let user = id_of(&s.register(&name("race")).await);
    let ids = record_logged(s, user, &MIX).await;
    s.app.cache.clear().await.unwrap();
    let before = analytics_finished(s).await;
    const NEW: usize = 24;
    // New events, reads and redeliveries of logged messages, all at once on a lost counter.
    let mut tasks = Vec::new();
    for i in 0..NEW {
        let app = s.app.clone();
        let t = if i % 3 == 0 { "click" } else { "page_view" };
        tasks.push(tokio::spawn(async move {
            app.record_event(event(user, t)).await.unwrap();
        }));
    }
    for _ in 0..6 {
        let app = s.app.clone();
        tasks.push(tokio::spawn(async move {
            app.engagement_counters(user).await.unwrap();
        }));
    }
    let redeliveries = async {
        for (t, id) in MIX.iter().zip(&ids) {
            deliver(s, user, t, *id).await;
        }
    };
    redeliveries.await;
    for t in tasks {
        t.await.unwrap();
    }
    handled(s, before, (NEW + MIX.len()) as u64).await;
    let mut want = expected(&MIX);
    want.clicks += 8;
    want.page_views += 16;
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
    assert_eq!(
        raw(s, user).await.get("events"),
        Some(&((MIX.len() + NEW) as i64))
    );
    // The log agrees.
    s.app.cache.clear().await.unwrap();
    assert_eq!(s.app.engagement_counters(user).await.unwrap(), want);
}

async fn the_command_rebuilds_a_seeded_store(s: &Server) {
    let summary = mod8_app::commands::seed::seed(&s.app, 12, 0).await.unwrap();
    assert!(summary.contains("seeded 12 users"), "{summary}");
    // Seeded events are logged, never counted: every seeded user's counter is missing.
    let first = rebuild_all(&s.app, false).await.unwrap();
    assert_eq!(first.users, 12, "{first:?}");
    assert_eq!(first.rebuilt, 12, "{first:?}");
    assert_eq!(first.present + first.without_events, 0, "{first:?}");
    let mut events = 0;
    let mut page = mod8_orm::PageRequest::first(100);
    loop {
        let users = s.app.sql.list_users(page).await.unwrap();
        for u in &users.items {
            let log = s
                .app
                .docs
                .user_event_counts(&u.id.to_string(), chrono::Utc::now())
                .await
                .unwrap();
            events += log.total();
            let fields = raw(s, u.id).await;
            assert_eq!(fields.get("events"), Some(&(log.total() as i64)));
            let mut want = ActivityCounts::default();
            for c in &log.counts {
                mod8_app::activity::count_events(&mut want, &c.event_type, c.count);
            }
            assert_eq!(s.app.engagement_counters(u.id).await.unwrap(), want);
        }
        if !users.has_more() {
            break;
        }
        page = page.next();
    }
    assert_eq!(first.events, events);
    // Idempotent: a second run leaves every counter alone.
    let second = rebuild_all(&s.app, false).await.unwrap();
    assert_eq!((second.users, second.rebuilt, second.present), (12, 0, 12));
    assert!(second
        .line()
        .contains("rebuilt the engagement counters of 0 users"));
    // One user: rebuilt when missing, left alone when present, nothing for no events.
    let one = s
        .app
        .sql
        .list_users(mod8_orm::PageRequest::first(1))
        .await
        .unwrap()
        .items[0]
        .id;
    let before = raw(s, one).await;
    s.app.cache.clear().await.unwrap();
    let rebuilt = rebuild_user(&s.app, one).await.unwrap();
    assert_eq!((rebuilt.users, rebuilt.rebuilt), (1, 1));
    assert_eq!(raw(s, one).await, before);
    assert_eq!(rebuild_user(&s.app, one).await.unwrap().present, 1);
    assert_eq!(
        rebuild_user(&s.app, Uuid::new_v4())
            .await
            .unwrap()
            .without_events,
        1
    );
}

both_backends!(
    "app counters rebuild on real services";
    counters_come_back_after_a_flush,
    a_redelivery_after_a_rebuild_counts_once,
    an_event_counted_before_it_is_logged_is_not_lost,
    concurrent_events_during_a_rebuild_count_exactly,
    the_command_rebuilds_a_seeded_store,
);

fn mod8(args: &[&str], sqlite: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mod8"));
    command
        .args(args)
        .env("MOD8_POSTGRES_URL", sqlite)
        // The CI primary's replica does not replicate the database named here.
        .env_remove("MOD8_POSTGRES_READ_URL");
    for var in [
        "MOD8_MONGODB_URL",
        "MOD8_REDIS_URL",
        "MOD8_AMQP_URL",
        "MOD8_AMQP_CLUSTER_URLS",
    ] {
        command.env_remove(var);
    }
    command.output().expect("the mod8 binary runs")
}

/// The subcommand itself: parses its arguments, rebuilds and prints its summary line. (Each
/// run is a new process over embedded stores: the exact figures are checked above.)
#[test]
fn the_subcommand_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let out = mod8(&["rebuild-counters"], &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with("rebuilt the engagement counters of 0 users from 0 logged events"),
        "{line}"
    );
    let user = Uuid::new_v4().to_string();
    let out = mod8(&["rebuild-counters", "--user", &user], &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.contains("1 without events (1 users looked at)"),
        "{line}"
    );
    let out = mod8(&["rebuild-counters", "--user", "not-a-uuid"], &url);
    assert!(!out.status.success());
}
