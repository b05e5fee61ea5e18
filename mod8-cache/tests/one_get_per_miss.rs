//! One miss asks the shared store once: the typed front's lookup, its single-flight and the
//! tiered store must not repeat the GET (each repeat is a round trip to Redis).
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mod8_cache::{
    Bytes, Cache, CacheStore, EntryOptions, MemoryStore, Result, TierOptions, TieredStore,
};

/// A store that stands for a remote one (no in-process fast path) and counts its GETs.
#[derive(Clone)]
struct Counting {
    inner: MemoryStore,
    gets: Arc<AtomicUsize>,
}

impl Counting {
    fn new() -> Self {
        Counting {
            inner: MemoryStore::lru(1_000),
            gets: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn gets(&self) -> usize {
        self.gets.load(SeqCst)
    }
}

#[async_trait]
impl CacheStore for Counting {
    fn backend(&self) -> &'static str {
        "counting"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.gets.fetch_add(1, SeqCst);
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.gets.fetch_add(keys.len(), SeqCst);
        self.inner.get_many(keys).await
    }
    async fn set(&self, key: &str, value: Bytes, options: &EntryOptions) -> Result<()> {
        self.inner.set(key, value, options).await
    }
    async fn set_many(&self, entries: &[(&str, Bytes)], options: &EntryOptions) -> Result<()> {
        self.inner.set_many(entries, options).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.inner.invalidate_pattern(pattern).await
    }
    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>> {
        self.inner.invalidate_tag(tag).await
    }
    async fn clear(&self) -> Result<()> {
        self.inner.clear().await
    }
    fn evictions(&self) -> u64 {
        0
    }
}

fn options() -> EntryOptions {
    EntryOptions::ttl(Duration::from_secs(60))
}

async fn load_once(cache: &Cache, key: &str) -> u32 {
    cache
        .get_or_load(key, &options(), || async { Ok::<_, std::io::Error>(7u32) })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_miss_over_a_remote_store_sends_one_get() {
    let store = Counting::new();
    let cache = Cache::new(store.clone());
    assert_eq!(load_once(&cache, "k").await, 7);
    assert_eq!(store.gets(), 1, "one miss must reach the store once");
    // The hit that follows is one more GET (no in-process tier here), not two.
    assert_eq!(load_once(&cache, "k").await, 7);
    assert_eq!(store.gets(), 2);
}

#[tokio::test]
async fn a_miss_through_the_tiered_store_sends_one_get_to_l2() {
    let l2 = Counting::new();
    let tiered = TieredStore::new(MemoryStore::lru(100), l2.clone(), TierOptions::default());
    let cache = Cache::new(tiered);
    assert_eq!(load_once(&cache, "k").await, 7);
    assert_eq!(l2.gets(), 1, "one miss must reach L2 once");
    // Now an L1 hit: L2 is not asked.
    assert_eq!(load_once(&cache, "k").await, 7);
    assert_eq!(l2.gets(), 1);
}

#[tokio::test]
async fn an_l2_hit_through_the_tiered_store_sends_one_get() {
    let l2 = Counting::new();
    l2.set("k", Bytes::from(&b"5"[..]), &options())
        .await
        .unwrap();
    let tiered = TieredStore::new(MemoryStore::lru(100), l2.clone(), TierOptions::default());
    let cache = Cache::new(tiered);
    let v = cache
        .get_or_load("k", &options(), || async {
            Err::<u32, _>(std::io::Error::other("must not load on an L2 hit"))
        })
        .await
        .unwrap();
    assert_eq!(v, 5);
    assert_eq!(l2.gets(), 1);
}

/// Concurrent misses on one key share one GET as they share one load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_one_key_send_one_get() {
    for tiered in [false, true] {
        let l2 = Counting::new();
        let cache = if tiered {
            Cache::new(TieredStore::new(
                MemoryStore::lru(100),
                l2.clone(),
                TierOptions::default(),
            ))
        } else {
            Cache::new(l2.clone())
        };
        let before = cache.stats();
        let (release, released) = tokio::sync::watch::channel(false);
        let loads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, loads, mut released) = (cache.clone(), loads.clone(), released.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load("hot", &options(), || async move {
                            loads.fetch_add(1, SeqCst);
                            let _ = released.wait_for(|r| *r).await;
                            Ok::<_, std::io::Error>(3u32)
                        })
                        .await
                })
            })
            .collect();
        // Every caller has missed (it joins the flight right after, without yielding).
        while cache.stats().misses < before.misses + 20 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 3);
        }
        assert_eq!(loads.load(SeqCst), 1);
        assert_eq!(
            l2.gets(),
            1,
            "tiered: {tiered}: 20 concurrent misses, one GET"
        );
    }
}

/// A caller that arrives after a write through the cache does not wait for (nor get) the
/// result of a load that started before that write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_load_is_read_back_without_waiting_for_it() {
    let store = Counting::new();
    let cache = Cache::new(store.clone());
    let (release, released) = tokio::sync::watch::channel(false);
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let slow = {
        let (cache, mut released) = (cache.clone(), released.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("k", &options(), || async move {
                    let _ = started_tx.send(());
                    let _ = released.wait_for(|r| *r).await;
                    Ok::<_, std::io::Error>(1u32)
                })
                .await
        })
    };
    started.await.unwrap();
    cache.set("k", &9u32, &options()).await.unwrap();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        cache.get_or_load("k", &options(), || async {
            Err::<u32, _>(std::io::Error::other(
                "must not load: the value was just written",
            ))
        }),
    )
    .await
    .expect("waited for a load that predates the write")
    .unwrap();
    assert_eq!(read, 9);
    release.send(true).unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), 1);
    // The superseded load did not overwrite the newer value.
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(9));
}
