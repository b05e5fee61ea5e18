//! The embedded defaults hold bounded memory whatever a client sends: a flood of the largest
//! events the API accepts (properties of many small JSON values, which take many times their
//! size once parsed) leaves the in-memory document store within its configured bounds, with
//! the oldest events evicted and counted, and the in-process broker's queues within theirs
//! (a full queue refuses the publish: the client is answered 503 and keeps its event).
//!
//! The second case measures the process's resident memory around a flood of 6,000 maximal
//! events on the default bounds and prints it; its assertion is a generous ceiling
//! (256 MiB of growth), not a timing.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mod8_app::flows::analytics::EventInput;
use mod8_app::flows::registration::Registration;
use mod8_app::{App, AppConfig, AppError};
use uuid::Uuid;

/// One test at a time: the resident-memory figure is the whole process's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The largest event the API accepts: its properties take nearly all of
/// [`mod8_rules::MAX_PROPERTIES_BYTES`] of JSON, in as many values as
/// [`mod8_rules::MAX_PROPERTIES_ITEMS`] allows (small values take many times their JSON size
/// once parsed and stored).
fn maximal_event(user_id: Uuid) -> EventInput {
    let items = mod8_rules::MAX_PROPERTIES_ITEMS - 1; // the "values" key counts as one
                                                      // `"values":[...]` with `items` strings of `len` characters: 2 quotes and a comma each.
    let overhead = r#"{"values":[]}"#.len();
    let len = (mod8_rules::MAX_PROPERTIES_BYTES - overhead) / items - 3;
    let values: Vec<serde_json::Value> = (0..items)
        .map(|i| serde_json::Value::from(format!("{i:0len$}")))
        .collect();
    let mut event = EventInput {
        user_id,
        event_type: "flood".into(),
        properties: HashMap::new(),
    };
    event
        .properties
        .insert("values".into(), serde_json::Value::from(values));
    let size = serde_json::to_vec(&event.properties).unwrap().len();
    assert!(
        size <= mod8_rules::MAX_PROPERTIES_BYTES && size > mod8_rules::MAX_PROPERTIES_BYTES - 160,
        "{size} bytes"
    );
    event
}

async fn started(config: AppConfig) -> (Arc<App>, Uuid) {
    let app = App::build(config).await.unwrap();
    app.start().await.unwrap();
    let user = app
        .register(Registration {
            username: "flooder".into(),
            email: "flooder@example.com".into(),
            address: None,
        })
        .await
        .unwrap()
        .user
        .id;
    (app, user)
}

/// Records `n` maximal events one after another; how many were accepted and how many a full
/// queue refused (503, the client keeps the event). Anything else fails the test.
async fn flood(app: &App, user: Uuid, n: usize) -> (u64, u64) {
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..n {
        match app.record_event(maximal_event(user)).await {
            Ok(_) => accepted += 1,
            Err(AppError::Unavailable { .. }) => {
                refused += 1;
                // Let the consumers drain a little, as a client honouring 503 would.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(other) => panic!("event refused: {other:?}"),
        }
    }
    (accepted, refused)
}

/// Waits (bounded, never asserting speed) until the consumers stored what was accepted.
async fn drained(app: &App, accepted: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = app.docs.memory_stats().unwrap();
        let analytics = app
            .broker
            .queue_depth(&app.config.topology.analytics_queue)
            .await
            .unwrap();
        if stats.events + stats.evictions >= accepted && analytics == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for the consumers: {stats:?}, {analytics} queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    // 4 KiB pages on every platform this suite runs on (x86-64 and aarch64 Linux defaults).
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_maximal_events_stays_within_the_configured_bounds() {
    let _serial = SERIAL.lock().await;
    const MAX_EVENTS: usize = 1_000;
    // Far fewer bytes than MAX_EVENTS maximal events take: the byte budget binds.
    const MAX_BYTES: usize = 256 << 10;
    let mut config = AppConfig::embedded();
    config.docs = config
        .docs
        .with_max_events(MAX_EVENTS)
        .with_max_event_bytes(MAX_BYTES);
    config.mq = config
        .mq
        .with_memory_limits(mod8_mq::memory::MemoryQueueLimits {
            max_length: 50,
            max_bytes: 1 << 20,
        });
    let (app, user) = started(config).await;

    let (accepted, refused) = flood(&app, user, 300).await;
    drained(&app, accepted).await;
    let docs = app.docs.memory_stats().unwrap();
    let broker = app.broker.memory_stats().unwrap();
    eprintln!("accepted {accepted}, refused {refused}; {docs:?}");
    assert!(
        accepted > 0 && docs.events < accepted,
        "{accepted} accepted, {docs:?}"
    );
    assert!(docs.events <= MAX_EVENTS as u64, "{docs:?}");
    assert!(docs.event_bytes <= MAX_BYTES as u64, "{docs:?}");
    assert!(docs.evictions > 0, "{docs:?}");
    // A maximal event takes far more than its JSON once parsed: the byte budget, not the
    // count, is what bounds them.
    assert!(docs.events < MAX_EVENTS as u64, "{docs:?}");
    for q in &broker.queues {
        assert!(q.messages <= 50 && q.bytes <= 1 << 20, "{q:?}");
    }
    let rejected: u64 = broker.queues.iter().map(|q| q.rejected).sum();
    assert!(rejected >= refused, "{broker:?}");

    let text = app.metrics.render(&app.metrics_snapshot().await);
    for family in [
        "mod8_docstore_events ",
        "mod8_docstore_event_bytes ",
        "mod8_docstore_evictions_total ",
        "mod8_queue_rejected_total{",
        "mod8_queue_max_bytes{",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_bounded_on_the_default_bounds() {
    let _serial = SERIAL.lock().await;
    // About 15 KiB each once stored: enough to pass the default 64 MiB budget.
    const EVENTS: usize = 6_000;
    let (app, user) = started(AppConfig::embedded()).await;
    // Warm up (allocator arenas, the consumers' first batch) before the baseline.
    let (warm, _) = flood(&app, user, 20).await;
    drained(&app, warm).await;
    let before = resident_bytes();
    let (accepted, refused) = flood(&app, user, EVENTS).await;
    drained(&app, warm + accepted).await;
    let after = resident_bytes();
    let docs = app.docs.memory_stats().unwrap();
    let growth = after.saturating_sub(before);
    eprintln!(
        "resident memory: {} MiB before, {} MiB after {EVENTS} maximal events \
         ({accepted} accepted, {refused} refused by a full queue): growth {} MiB; \
         document store holds {} events, ~{} MiB estimated, {} evicted",
        before >> 20,
        after >> 20,
        growth >> 20,
        docs.events,
        docs.event_bytes >> 20,
        docs.evictions
    );
    assert!(docs.evictions > 0, "{docs:?}");
    assert!(docs.event_bytes <= docs.max_event_bytes, "{docs:?}");
    assert!(growth < 256 << 20, "resident memory grew {growth} bytes");
    app.shutdown().await;
}
