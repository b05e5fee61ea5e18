//! Effects exactly once: engagement counters exact under concurrency and counted once per
//! message, events stored once per message id, one welcome per registration, profile metrics
//! counted once, a notification sent once per message id — each on the embedded backends and
//! on the real services. On the real services also: a message whose AMQP connection is closed
//! by the broker between its handling and its acknowledgement (redelivered by the broker),
//! and messages redelivered to a restarted app on the same stores, each of every type.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeSet, HashMap};

use mod8_app::flows::analytics::EventInput;
use mod8_app::ConsumerCounts;
use mod8_mq::domain::Analytics;
use mod8_mq::Envelope;
use support::*;
use uuid::Uuid;

/// Handled messages of the consumer `name` (acknowledged or dead-lettered).
async fn finished(s: &Server, name: &str) -> u64 {
    s.app
        .consumer_stats()
        .await
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.finished())
        .unwrap_or(0)
}

/// Sends `envelope` to the analytics fanout again, as the broker would redeliver it.
async fn redeliver(s: &Server, envelope: &Envelope<Analytics>) {
    let route = s.app.pipeline.topology().analytics_route();
    s.app
        .pipeline
        .producer()
        .send(envelope, &route)
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

async fn concurrent_events_count_exactly(s: &Server) {
    let user = id_of(&s.register(&name("conc")).await);
    const N: usize = 40;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let app = s.app.clone();
            let t = if i % 4 == 0 { "click" } else { "page_view" };
            tokio::spawn(async move { (t, app.record_event(event(user, t)).await.unwrap()) })
        })
        .collect();
    let mut views_seen = BTreeSet::new();
    for t in tasks {
        let (kind, accepted) = t.await.unwrap();
        if kind == "page_view" {
            // A page view's answer includes its own increment, whether the request counted
            // it or the analytics consumer did so first (then the request answers the
            // counters of that moment, which may include other events too).
            assert!(
                (1..=30).contains(&accepted.counters.page_views),
                "{accepted:?}"
            );
        }
        views_seen.insert(accepted.counters.page_views);
    }
    let counters = s.app.engagement_counters(user).await.unwrap();
    assert_eq!(counters.page_views, 30, "{counters:?}");
    assert_eq!(counters.clicks, 10, "{counters:?}");
    // The event counted last answers with every page view counted.
    assert_eq!(views_seen.last(), Some(&30), "{views_seen:?}");
}

async fn a_message_handled_twice_counts_once(s: &Server) {
    let user = id_of(&s.register(&name("twice")).await);
    let before = finished(s, ConsumerCounts::ANALYTICS).await;
    let accepted = s.app.record_event(event(user, "search")).await.unwrap();
    assert_eq!(accepted.counters.searches, 1);
    // The same message (same id) delivered twice more.
    let mut envelope = Envelope::new(Analytics {
        event_type: "search".into(),
        user_id: user.to_string(),
        properties: HashMap::new(),
    });
    envelope.id = accepted.message_id;
    redeliver(s, &envelope).await;
    redeliver(s, &envelope).await;
    eventually("three deliveries handled", || async {
        finished(s, ConsumerCounts::ANALYTICS).await >= before + 3
    })
    .await;
    let counters = s.app.engagement_counters(user).await.unwrap();
    assert_eq!(counters.searches, 1, "{counters:?}");
    // Counting the same message again by hand is a no-op as well.
    let again = mod8_app::flows::analytics::count_once(
        &s.app.cache,
        s.app.docs.as_ref(),
        user,
        "search",
        accepted.message_id,
    )
    .await
    .unwrap();
    assert_eq!(again.searches, 1);
}

/// Events of `user` in the event log.
async fn logged_events(s: &Server, user: Uuid) -> Vec<mod8_docstore::Event> {
    logged_events_of(&s.app, user).await
}

/// Events of `user` in `app`'s event log.
async fn logged_events_of(app: &mod8_app::App, user: Uuid) -> Vec<mod8_docstore::Event> {
    use futures::TryStreamExt;
    let filter = mod8_docstore::EventFilter {
        user_id: Some(user.to_string()),
        ..Default::default()
    };
    let stream = app.docs.export_events(filter, 100).await.unwrap();
    let batches: Vec<Vec<_>> = stream.try_collect().await.unwrap();
    batches.into_iter().flatten().collect()
}

async fn a_redelivered_event_is_stored_once(s: &Server) {
    let user = id_of(&s.register(&name("redel")).await);
    let before = finished(s, ConsumerCounts::ANALYTICS).await;
    let accepted = s.app.record_event(event(user, "click")).await.unwrap();
    let mut envelope = Envelope::new(Analytics {
        event_type: "click".into(),
        user_id: user.to_string(),
        properties: HashMap::new(),
    });
    envelope.id = accepted.message_id;
    redeliver(s, &envelope).await;
    // A message the API never counted (its count was lost): the consumer counts it, once.
    let lost = Envelope::new(Analytics {
        event_type: "click".into(),
        user_id: user.to_string(),
        properties: HashMap::new(),
    });
    redeliver(s, &lost).await;
    redeliver(s, &lost).await;
    eventually("four deliveries handled", || async {
        finished(s, ConsumerCounts::ANALYTICS).await >= before + 4
    })
    .await;
    let events = logged_events(s, user).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let mut ids: Vec<_> = events.iter().filter_map(|e| e.message_id.clone()).collect();
    ids.sort();
    let mut expected = vec![accepted.message_id.to_string(), lost.id.to_string()];
    expected.sort();
    assert_eq!(ids, expected);
    let counters = s.app.engagement_counters(user).await.unwrap();
    assert_eq!(counters.clicks, 2, "{counters:?}");
    let today = chrono::Utc::now().date_naive();
    let days = mod8_docstore::DayRange::ending(today, 2);
    let summary = s
        .app
        .docs
        .activity_summary(&user.to_string(), days)
        .await
        .unwrap();
    assert_eq!(summary.count("click"), 2, "{summary:?}");
}

async fn a_redelivered_registration_sends_one_welcome(s: &Server) {
    use mod8_mq::domain::{Notification, NotificationChannel, PublishOptions, UserData};
    let username = name("welc");
    let before_sent = s.app.notifier.sent(NotificationChannel::Email);
    let before_users = finished(s, ConsumerCounts::USER_DATA).await;
    let before_notes = finished(s, ConsumerCounts::NOTIFICATIONS).await;
    s.register(&username).await;
    eventually("the welcome", || async {
        s.app.notifier.sent(NotificationChannel::Email) == before_sent + 1
    })
    .await;
    // The registration's message delivered twice more (same payload, as a redelivery).
    let data = UserData {
        username: username.clone(),
        email: format!("{username}@example.com"),
        registration_date: chrono::Utc::now().date_naive(),
    };
    let envelope = Envelope::new(data);
    let route = s.app.pipeline.topology().user_data_route();
    for _ in 0..2 {
        s.app
            .pipeline
            .producer()
            .send(&envelope, &route)
            .await
            .unwrap();
    }
    eventually("the redeliveries handled", || async {
        finished(s, ConsumerCounts::USER_DATA).await >= before_users + 3
    })
    .await;
    // A later notification on the same queue: once it is sent, a second welcome published
    // before it would have been handled too.
    s.app
        .pipeline
        .publish_notification(
            Notification {
                recipient: "ops@example.com".into(),
                subject: "sentinel".into(),
                content: "after the redeliveries".into(),
                channel: NotificationChannel::Sms,
            },
            PublishOptions::new(),
        )
        .await
        .unwrap();
    eventually("the sentinel", || async {
        s.app.notifier.sent(NotificationChannel::Sms) == 1
    })
    .await;
    eventually("the notifications settled", || async {
        finished(s, ConsumerCounts::NOTIFICATIONS).await >= before_notes + 2
    })
    .await;
    assert_eq!(
        s.app.notifier.sent(NotificationChannel::Email),
        before_sent + 1,
        "one welcome"
    );
    assert_eq!(
        finished(s, ConsumerCounts::NOTIFICATIONS).await,
        before_notes + 2
    );
    assert!(matches!(
        s.app.docs.profile_by_username(&username).await,
        Ok(Some(_))
    ));
}

async fn profile_metrics_follow_events_once(s: &Server) {
    let username = name("prof");
    let user = id_of(&s.register(&username).await);
    let names = [username.clone()];
    eventually("the profile document", || profiles_stored(s, &names)).await;
    let before = finished(s, ConsumerCounts::ANALYTICS).await;
    let with_category = |t: &str, category: &str| {
        let mut e = event(user, t);
        e.properties
            .insert("category".into(), serde_json::json!(category));
        e
    };
    let mut last = None;
    for e in [
        with_category("page_view", "books"),
        with_category("page_view", "books"),
        with_category("page_view", "games"),
        with_category("purchase", "garden"),
        with_category("search", "ignored"),
    ] {
        last = Some(s.app.record_event(e).await.unwrap());
    }
    // The last message again.
    let mut envelope = Envelope::new(Analytics {
        event_type: "search".into(),
        user_id: user.to_string(),
        properties: HashMap::from([("category".into(), serde_json::json!("ignored"))]),
    });
    envelope.id = last.unwrap().message_id;
    redeliver(s, &envelope).await;
    eventually("six deliveries handled", || async {
        finished(s, ConsumerCounts::ANALYTICS).await >= before + 6
    })
    .await;
    let p = s
        .app
        .docs
        .profile_by_username(&username)
        .await
        .unwrap()
        .unwrap();
    let m = &p.metrics;
    assert_eq!(m.event_counts.get("page_view"), Some(&3), "{m:?}");
    assert_eq!(m.event_counts.get("purchase"), Some(&1), "{m:?}");
    assert_eq!(m.event_counts.get("search"), Some(&1), "{m:?}");
    assert_eq!(m.content_views, 3, "{m:?}");
    assert_eq!(m.engagement_score, 3.0 + 10.0 + 2.0, "{m:?}");
    let mut interests = p.profile.interests.clone();
    interests.sort();
    assert_eq!(interests, ["books", "games", "garden"]);
}

async fn a_redelivered_notification_is_sent_once(s: &Server) {
    use mod8_mq::domain::{Notification, NotificationChannel, PublishOptions};
    let before = finished(s, ConsumerCounts::NOTIFICATIONS).await;
    let envelope = Envelope::new(Notification {
        recipient: "ada@example.com".into(),
        subject: "your order".into(),
        content: "is on its way".into(),
        channel: NotificationChannel::Push,
    });
    let route = s
        .app
        .pipeline
        .topology()
        .notification_route(&envelope.payload);
    // The message and two redeliveries of it (same envelope, same id).
    for _ in 0..3 {
        s.app
            .pipeline
            .producer()
            .send(&envelope, &route)
            .await
            .unwrap();
    }
    // A later notification: once it is handled, so are the three copies before it.
    s.app
        .pipeline
        .publish_notification(
            Notification {
                recipient: "ops@example.com".into(),
                subject: "sentinel".into(),
                content: "after the copies".into(),
                channel: NotificationChannel::Sms,
            },
            PublishOptions::new(),
        )
        .await
        .unwrap();
    eventually("the copies and the sentinel handled", || async {
        finished(s, ConsumerCounts::NOTIFICATIONS).await >= before + 4
    })
    .await;
    assert_eq!(s.app.notifier.sent(NotificationChannel::Sms), 1);
    assert_eq!(
        s.app.notifier.sent(NotificationChannel::Push),
        1,
        "sent once"
    );
    assert_eq!(
        finished(s, ConsumerCounts::NOTIFICATIONS).await,
        before + 4,
        "every copy acknowledged"
    );
}

both_backends!(
    "app exactly once on real services";
    concurrent_events_count_exactly,
    a_message_handled_twice_counts_once,
    a_redelivered_event_is_stored_once,
    a_redelivered_registration_sends_one_welcome,
    profile_metrics_follow_events_once,
    a_redelivered_notification_is_sent_once,
);

#[path = "exactly_once/killed_before_ack.rs"]
mod killed_before_ack;
#[path = "exactly_once/restarted.rs"]
mod restarted;
