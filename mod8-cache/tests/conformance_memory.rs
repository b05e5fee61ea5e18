//! The conformance suite over the in-process backends and a tier made of two of them.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod lru {
    use mod8_cache::{testing::Fixture, MemoryStore};
    mod8_cache::conformance_tests!(async {
        Some(Fixture::new(MemoryStore::lru(64)).with_lru_capacity(64))
    });
}

mod ttl_bounded {
    use mod8_cache::{testing::Fixture, MemoryStore};
    use std::time::Duration;
    mod8_cache::conformance_tests!(async {
        Some(Fixture::new(MemoryStore::ttl(64, Duration::from_secs(600))).with_lru_capacity(64))
    });
}

mod tiered_over_memory {
    use mod8_cache::{testing::Fixture, MemoryStore, TieredStore};
    use std::time::Duration;
    mod8_cache::conformance_tests!(async {
        Some(Fixture::new(TieredStore::new(
            MemoryStore::lru(16),
            MemoryStore::lru(10_000),
            Some(Duration::from_secs(30)),
        )))
    });
}

use mod8_cache::{CacheStore, EntryOptions, MemoryStore, TieredStore};
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
    let tiered = TieredStore::new(l1.clone(), l2.clone(), Some(Duration::from_secs(5)));
    l2.set(
        "k",
        b"v".as_slice().into(),
        &EntryOptions::default().tag("t"),
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
    let tiered = TieredStore::new(l1.clone(), l2.clone(), Some(Duration::from_millis(200)));
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

/// A shared tier that is down: every call fails like an unreachable Redis.
#[derive(Clone)]
struct DownStore;

#[mod8_cache::async_trait]
impl CacheStore for DownStore {
    fn backend(&self) -> &'static str {
        "down"
    }
    async fn get(&self, _: &str) -> mod8_cache::Result<Option<mod8_cache::Bytes>> {
        Err(down())
    }
    async fn get_many(&self, _: &[&str]) -> mod8_cache::Result<Vec<Option<mod8_cache::Bytes>>> {
        Err(down())
    }
    async fn set(&self, _: &str, _: mod8_cache::Bytes, _: &EntryOptions) -> mod8_cache::Result<()> {
        Err(down())
    }
    async fn set_many(
        &self,
        _: &[(&str, mod8_cache::Bytes)],
        _: &EntryOptions,
    ) -> mod8_cache::Result<()> {
        Err(down())
    }
    async fn delete(&self, _: &str) -> mod8_cache::Result<bool> {
        Err(down())
    }
    async fn invalidate_pattern(&self, _: &str) -> mod8_cache::Result<u64> {
        Err(down())
    }
    async fn invalidate_tag(&self, _: &str) -> mod8_cache::Result<Vec<String>> {
        Err(down())
    }
    async fn clear(&self) -> mod8_cache::Result<()> {
        Err(down())
    }
    fn evictions(&self) -> u64 {
        0
    }
}

fn down() -> mod8_cache::CacheError {
    mod8_cache::CacheError::Unavailable("l2 is down".into())
}

#[tokio::test]
async fn tiered_get_many_keeps_l1_hits_when_l2_fails() {
    let l1 = MemoryStore::lru(10);
    let tiered = TieredStore::new(l1.clone(), DownStore, Some(Duration::from_secs(5)));
    l1.set("a", b"1".as_slice().into(), &EntryOptions::default())
        .await
        .unwrap();
    l1.set("c", b"3".as_slice().into(), &EntryOptions::default())
        .await
        .unwrap();
    let got = tiered
        .get_many(&["a", "b", "c"])
        .await
        .expect("an L2 failure must not lose the L1 hits");
    assert_eq!(
        got,
        vec![
            Some(b"1".as_slice().into()),
            None,
            Some(b"3".as_slice().into())
        ]
    );
    // Through the typed front as well: the hits count, the rest are misses.
    let cache = mod8_cache::Cache::new(tiered.clone());
    let typed: Vec<Option<u8>> = cache.get_many(&["a", "b", "c"]).await.unwrap();
    assert_eq!(typed, vec![Some(1), None, Some(3)]);
    // Bad input is still refused, not swallowed.
    assert!(tiered.get_many(&["a", ""]).await.is_err());
}

#[tokio::test]
async fn tiered_l1_copies_of_l2_hits_are_bounded_even_without_an_l1_ttl() {
    // An L2 hit is copied into L1 without knowing L2's TTL: with no bound, the copy could
    // outlive the entry in L2. `None` therefore means the default bound, not "for ever".
    let tiered = TieredStore::new(MemoryStore::lru(10), MemoryStore::lru(10), None);
    assert_eq!(tiered.l1_ttl(), TieredStore::DEFAULT_L1_TTL);
    assert!(TieredStore::DEFAULT_L1_TTL <= Duration::from_secs(60));

    // The bound applies to copies filled by get and get_many.
    let (l1, l2) = (MemoryStore::lru(10), MemoryStore::lru(10));
    let tiered = TieredStore::new(l1.clone(), l2.clone(), Some(Duration::from_millis(200)));
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
