//! The conformance suite over the in-process backends and a tier made of two of them.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod lru {
    use mod8_cache::{testing::CacheFixture, MemoryStore};
    mod8_cache::conformance_tests!(async {
        Some(CacheFixture::new(MemoryStore::lru(64)).with_lru_capacity(64))
    });
}

mod ttl_bounded {
    use mod8_cache::{testing::CacheFixture, MemoryStore};
    use std::time::Duration;
    mod8_cache::conformance_tests!(async {
        Some(
            CacheFixture::new(MemoryStore::ttl(64, Duration::from_secs(600))).with_lru_capacity(64),
        )
    });
}

mod tiered_over_memory {
    use mod8_cache::{testing::CacheFixture, MemoryStore, TierOptions, TieredStore};
    use std::time::Duration;
    mod8_cache::conformance_tests!(async {
        Some(CacheFixture::new(TieredStore::new(
            MemoryStore::lru(16),
            MemoryStore::lru(10_000),
            TierOptions::default().with_l1_ttl(Duration::from_secs(30)),
        )))
    });
}

use mod8_cache::{CacheStore, EntryOptions, MemoryStore, TierOptions, TieredStore};
use std::time::Duration;

#[tokio::test]
async fn ttl_store_bounds_age_below_the_entry_ttl() {
    let store = MemoryStore::ttl(10, Duration::from_millis(200));
    store
        .set(
            "k",
            b"v".as_slice().into(),
            &EntryOptions::ttl(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    assert!(store.get("k").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn tiered_fills_l1_from_l2_and_invalidates_both() {
    let (l1, l2) = (MemoryStore::lru(10), MemoryStore::lru(10));
    let tiered = TieredStore::new(
        l1.clone(),
        l2.clone(),
        TierOptions::default().with_l1_ttl(Duration::from_secs(5)),
    );
    l2.set(
        "k",
        b"v".as_slice().into(),
        &EntryOptions::default().with_tag("t"),
    )
    .await
    .unwrap();
    assert!(l1.get_now("k").is_none());
    assert!(tiered.get("k").await.unwrap().is_some());
    assert!(l1.get_now("k").is_some(), "an L2 hit must fill L1");
    // The L1 copy carries no tag, yet tag invalidation must drop it.
    assert_eq!(
        tiered.invalidate_tag("t").await.unwrap(),
        vec!["k".to_string()]
    );
    assert!(l1.get_now("k").is_none());
    assert!(l2.get_now("k").is_none());
}

#[tokio::test]
async fn tiered_l1_copy_lives_at_most_the_l1_ttl() {
    let (l1, l2) = (MemoryStore::lru(10), MemoryStore::lru(10));
    let tiered = TieredStore::new(
        l1.clone(),
        l2.clone(),
        TierOptions::default().with_l1_ttl(Duration::from_millis(200)),
    );
    tiered
        .set(
            "k",
            b"v".as_slice().into(),
            &EntryOptions::ttl(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        l1.get_now("k").is_none(),
        "L1 kept the entry past its own TTL"
    );
    assert!(
        l2.get_now("k").is_some(),
        "L2 lost the entry before its TTL"
    );
}

#[tokio::test]
async fn tiered_l1_copies_of_l2_hits_are_bounded_even_without_an_l1_ttl() {
    // An L2 hit is copied into L1 without knowing L2's TTL: with no bound, the copy could
    // outlive the entry in L2. `None` therefore means the default bound, not "for ever".
    let tiered = TieredStore::new(
        MemoryStore::lru(10),
        MemoryStore::lru(10),
        TierOptions::default(),
    );
    assert_eq!(tiered.l1_ttl(), TieredStore::DEFAULT_L1_TTL);
    assert!(TieredStore::DEFAULT_L1_TTL <= Duration::from_secs(60));

    // The bound applies to copies filled by get and get_many.
    let (l1, l2) = (MemoryStore::lru(10), MemoryStore::lru(10));
    let tiered = TieredStore::new(
        l1.clone(),
        l2.clone(),
        TierOptions::default().with_l1_ttl(Duration::from_millis(200)),
    );
    for key in ["one", "many"] {
        l2.set(key, b"v".as_slice().into(), &EntryOptions::default())
            .await
            .unwrap();
    }
    assert!(tiered.get("one").await.unwrap().is_some());
    assert!(tiered.get_many(&["many"]).await.unwrap()[0].is_some());
    assert!(l1.get_now("one").is_some() && l1.get_now("many").is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        l1.get_now("one").is_none(),
        "L1 kept a get fill past the L1 TTL"
    );
    assert!(
        l1.get_now("many").is_none(),
        "L1 kept a get_many fill past the L1 TTL"
    );
    // Leave no entry without TTL behind in L2 (memory here, but the habit holds).
    l2.clear().await.unwrap();
}

#[tokio::test]
async fn tiered_counters_live_in_l2_only() {
    use mod8_cache::{Cache, CounterOptions};
    let (l1, l2) = (MemoryStore::lru(10), MemoryStore::lru(10));
    let tiered = TieredStore::new(l1.clone(), l2.clone(), TierOptions::default());
    let cache = Cache::new(tiered.clone());
    let update = cache
        .increment("c", &[("n", 2)], &CounterOptions::default())
        .await
        .unwrap();
    assert_eq!(update.values, vec![2]);
    // Another process's increment, straight into the shared tier, is seen at once.
    l2.increment("c", &[("n", 1)], &CounterOptions::default())
        .await
        .unwrap();
    assert_eq!(cache.counter("c").await.unwrap().get("n"), Some(&3));
    assert!(
        l1.counter("c").await.unwrap().is_empty(),
        "a counter reached L1"
    );
    assert!(l1.is_empty());
    assert!(tiered.delete_counter("c").await.unwrap());
    assert!(l2.counter("c").await.unwrap().is_empty());
}
