//! The conformance suite on the in-memory backend (always runs).

use std::sync::Arc;

use mod8_docstore::testing::{DocStoreCapabilities, DocStoreFixture};
use mod8_docstore::MemoryDocStore;

async fn memory() -> Option<DocStoreFixture> {
    Some(DocStoreFixture::new(
        Arc::new(MemoryDocStore::new()),
        DocStoreCapabilities::all(),
    ))
}

mod8_docstore::conformance_tests!(memory());

#[tokio::test]
async fn connect_picks_the_backend_by_scheme() {
    assert_eq!(
        mod8_docstore::connect("memory://").await.unwrap().backend(),
        "memory"
    );
    match mod8_docstore::connect("postgres://x").await {
        Err(err) => assert_eq!(err.field(), Some("url")),
        Ok(store) => panic!("postgres:// picked {}", store.backend()),
    }
}

/// The suite through the forwarding impls: `Box<DynDocStore>` (`Box<Arc<dyn DocStore>>`) is a
/// store too.
mod forwarded {
    use std::sync::Arc;

    use mod8_docstore::testing::{DocStoreCapabilities, DocStoreFixture};
    use mod8_docstore::{DynDocStore, MemoryDocStore};

    async fn boxed_arc() -> Option<DocStoreFixture> {
        let inner: DynDocStore = Arc::new(MemoryDocStore::new());
        Some(DocStoreFixture::new(
            Arc::new(Box::new(inner)),
            DocStoreCapabilities::all(),
        ))
    }

    mod8_docstore::conformance_tests!(boxed_arc());
}

/// The in-memory backend's bounds: oldest events evicted first, each eviction counted.
mod bounds {
    use std::time::Duration;

    use mod8_docstore::futures::StreamExt;
    use mod8_docstore::serde_json;
    use mod8_docstore::{
        DataProcessing, DocStore, DocStoreConfig, Error, Event, EventFilter, EventMetadata,
        EventStore, MemoryDocStore, MemoryLimits, ProfileStore, TimeWindow,
    };

    fn limits(max_events: usize, max_event_bytes: usize) -> MemoryLimits {
        MemoryLimits {
            max_events,
            max_event_bytes,
            event_retention: None,
        }
    }

    /// An event whose `extras` hold an array of `n` numbers (32 bytes each in memory).
    fn heavy(user: &str, n: usize) -> Event {
        let mut metadata = EventMetadata::default();
        metadata
            .extras
            .insert("values".into(), serde_json::Value::from(vec![1; n]));
        Event::new(user, "heavy").with_metadata(metadata)
    }

    async fn users_held(store: &MemoryDocStore) -> Vec<String> {
        let mut out = Vec::new();
        let mut batches = store
            .export_events(EventFilter::default(), 100)
            .await
            .expect("export");
        while let Some(batch) = batches.next().await {
            out.extend(batch.expect("batch").into_iter().map(|e| e.user_id));
        }
        out
    }

    #[tokio::test]
    async fn the_oldest_events_are_evicted_first_and_counted() {
        let store = MemoryDocStore::with_limits(limits(3, usize::MAX));
        for i in 0..5 {
            store
                .log_event(Event::new(format!("u{i}"), "click"))
                .await
                .unwrap();
        }
        // Stored order, not timestamp order: the first two stored are gone.
        assert_eq!(users_held(&store).await, ["u2", "u3", "u4"]);
        let stats = store.stats();
        assert_eq!(stats.events, 3);
        assert_eq!(stats.evictions, 2);
        assert_eq!(stats.max_events, 3);
        let counted = store.event_distribution(TimeWindow::all()).await.unwrap();
        assert_eq!(counted[0].count, 3);

        // A bulk write past the bound keeps the newest of the batch.
        let batch = (5..12)
            .map(|i| Event::new(format!("u{i}"), "click"))
            .collect();
        let result = store.log_events(batch).await.unwrap();
        assert_eq!(result.inserted_ids.len(), 7);
        assert_eq!(users_held(&store).await, ["u9", "u10", "u11"]);
        assert_eq!(store.stats().evictions, 9);
        // The same figures through the trait, as a shared handle sees them.
        let shared: mod8_docstore::DynDocStore = std::sync::Arc::new(store.clone());
        assert_eq!(shared.memory_stats(), Some(store.stats()));
    }

    /// The most values an event's extras may hold under the shared property rules.
    const HEAVY: usize = mod8_rules::MAX_PROPERTIES_ITEMS - 1;

    /// What one [`heavy`] event of [`HEAVY`] values takes by the store's own estimate.
    async fn heavy_bytes() -> u64 {
        let store = MemoryDocStore::with_limits(limits(1_000, 64 << 20));
        store
            .log_event(heavy("u", HEAVY))
            .await
            .expect("a heavy event within the rules");
        store.stats().event_bytes
    }

    #[tokio::test]
    async fn the_byte_budget_bounds_large_events() {
        // A budget of three and a half heavy events holds 3.
        let each = heavy_bytes().await;
        let budget = (3 * each + each / 2) as usize;
        let store = MemoryDocStore::with_limits(limits(1_000, budget));
        for i in 0..10 {
            store
                .log_event(heavy(&format!("u{i}"), HEAVY))
                .await
                .unwrap();
        }
        let stats = store.stats();
        assert!(stats.event_bytes <= budget as u64, "{stats:?}");
        assert!(stats.event_bytes >= 3 * each, "{stats:?}");
        assert_eq!(stats.events, 3, "{stats:?}");
        assert_eq!(stats.evictions, 7, "{stats:?}");
        assert_eq!(users_held(&store).await, ["u7", "u8", "u9"]);
    }

    #[tokio::test]
    async fn an_event_larger_than_the_whole_budget_is_refused() {
        let budget = (heavy_bytes().await / 2) as usize;
        let store = MemoryDocStore::with_limits(limits(1_000, budget));
        store.log_event(Event::new("u0", "click")).await.unwrap();
        let err = store.log_event(heavy("u1", HEAVY)).await.unwrap_err();
        assert!(matches!(err, Error::Validation { .. }), "{err}");
        assert_eq!(err.field(), Some("event"));
        // Nothing was evicted for it.
        assert_eq!(users_held(&store).await, ["u0"]);
        assert_eq!(store.stats().evictions, 0);
    }

    #[tokio::test]
    async fn events_older_than_the_retention_are_evicted() {
        let store = MemoryDocStore::with_limits(MemoryLimits {
            event_retention: Some(Duration::from_millis(50)),
            ..MemoryLimits::default()
        });
        store.log_event(Event::new("old", "click")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        store.log_event(Event::new("new", "click")).await.unwrap();
        assert_eq!(users_held(&store).await, ["new"]);
        assert_eq!(store.stats().evictions, 1);
    }

    #[tokio::test]
    async fn an_export_skips_what_was_evicted_while_it_ran() {
        let store = MemoryDocStore::with_limits(limits(4, usize::MAX));
        for i in 0..4 {
            store
                .log_event(Event::new(format!("u{i}"), "click"))
                .await
                .unwrap();
        }
        let mut batches = store
            .export_events(EventFilter::default(), 2)
            .await
            .unwrap();
        let first: Vec<String> = batches
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.user_id)
            .collect();
        assert_eq!(first, ["u0", "u1"]);
        // Two more evict u0..u2's slots from the front; the second batch reads u3 only (u2 was
        // evicted), never an event it did not match.
        for i in 4..7 {
            store
                .log_event(Event::new(format!("u{i}"), "click"))
                .await
                .unwrap();
        }
        let second: Vec<String> = batches
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.user_id)
            .collect();
        assert_eq!(second, ["u3"]);
        assert!(batches.next().await.is_none());
    }

    #[tokio::test]
    async fn markers_and_profiles_are_counted() {
        let store = MemoryDocStore::new();
        assert!(store.claim_marker("welcome:1").await.unwrap());
        assert!(store.claim_marker("welcome:2").await.unwrap());
        assert!(store.release_marker("welcome:1").await.unwrap());
        store
            .insert_profile(mod8_docstore::ProfileDocument::new(
                "1",
                "ada",
                "ada@example.com",
            ))
            .await
            .unwrap();
        let stats = store.stats();
        assert_eq!((stats.markers, stats.profiles), (1, 1));
        assert_eq!(stats.max_events, mod8_docstore::DEFAULT_MAX_EVENTS as u64);
    }

    #[tokio::test]
    async fn the_config_builds_a_bounded_store() {
        let store = DocStoreConfig::default()
            .with_max_events(2)
            .connect()
            .await
            .unwrap();
        for i in 0..3 {
            store
                .log_event(Event::new(format!("u{i}"), "click"))
                .await
                .unwrap();
        }
        let stats = store.memory_stats().expect("the in-memory backend");
        assert_eq!((stats.events, stats.evictions), (2, 1));
    }
}

/// The in-memory backend has no server: no transactions, no change streams, and
/// `watch_events` is a typed `Unsupported`, also through `Arc`/`Box` forwarding.
#[tokio::test]
async fn memory_reports_no_transactions_nor_change_streams() {
    use mod8_docstore::{Capabilities, DocStore, DynDocStore, Error};
    let store = MemoryDocStore::new();
    assert_eq!(store.capabilities(), Capabilities::none());
    let shared: DynDocStore = Arc::new(MemoryDocStore::new());
    let boxed: Box<DynDocStore> = Box::new(shared.clone());
    assert_eq!(boxed.capabilities(), Capabilities::none());
    for result in [store.watch_events().await, boxed.watch_events().await] {
        match result {
            Err(Error::Unsupported { operation, backend }) => {
                assert_eq!(backend, "memory");
                assert!(operation.contains("watch_events"), "{operation}");
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a change stream from the memory backend"),
        }
    }
}
