//! Effects exactly once: engagement counters exact under concurrency and counted once per
//! message, events stored once per message id, one welcome per registration, profile metrics
//! counted once — each on the embedded backends and on the real services.
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
            tokio::spawn(async move { app.record_event(event(user, t)).await.unwrap() })
        })
        .collect();
    let mut views_seen = BTreeSet::new();
    for t in tasks {
        let accepted = t.await.unwrap();
        if accepted.counters.page_views > 0 {
            views_seen.insert(accepted.counters.page_views);
        }
    }
    let counters = s.app.engagement_counters(user).await.unwrap();
    assert_eq!(counters.page_views, 30, "{counters:?}");
    assert_eq!(counters.clicks, 10, "{counters:?}");
    // Each page view saw its own increment: 1..=30 (clicks answer the views of the moment).
    assert!(
        views_seen.contains(&30) && views_seen.contains(&1),
        "{views_seen:?}"
    );
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
    let again =
        mod8_app::flows::analytics::count_once(&s.app.cache, user, "search", accepted.message_id)
            .await
            .unwrap();
    assert_eq!(again.searches, 1);
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::Server::start(mod8_app::AppConfig::embedded()).await;
                    super::$case(&server).await;
                    server.app.shutdown().await;
                }
            )*
        }
        mod real_services {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(config) = super::real_config("app exactly once on real services").await else { return };
                    super::with_real(config, |config| async move {
                        let server = super::Server::start(config).await;
                        super::$case(&server).await;
                        server.app.shutdown().await;
                    })
                    .await;
                }
            )*
        }
    };
}

both_backends!(
    concurrent_events_count_exactly,
    a_message_handled_twice_counts_once,
);
