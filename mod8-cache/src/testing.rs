//! The conformance suite every [`CacheStore`] must pass, written once (feature `testing`).
//!
//! Each `case_*` function panics on a failed expectation — that is how a test fails, so this
//! module uses `expect` on purpose. [`conformance_tests!`](crate::conformance_tests) emits one
//! named `#[tokio::test]` per case from a setup expression:
//!
//! ```ignore
//! mod8_cache::conformance_tests!(async {
//!     Some(mod8_cache::testing::CacheFixture::new(mod8_cache::MemoryStore::lru(3)).with_lru_capacity(3))
//! });
//! ```
//!
//! The setup returns `None` to skip (a server-backed backend whose URL is unset).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use crate::{
    Bytes, Cache, CacheStore, CounterInit, CounterOptions, DynCacheStore, EntryOptions, Error,
    NegativeCaching,
};

/// A backend under test: the raw store, a [`Cache`] over it, and what it supports.
#[derive(Clone)]
pub struct CacheFixture {
    /// The store.
    pub store: DynCacheStore,
    /// A cache over the same store (with the in-process fast path where it applies).
    pub cache: Cache,
    /// What the store can be tested for.
    pub capabilities: CacheCapabilities,
}

impl std::fmt::Debug for CacheFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheFixture")
            .field("backend", &self.store.backend())
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

/// Differences between backends that the suite must know about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCapabilities {
    /// The store evicts least-recently-used entries beyond this many.
    pub lru_capacity: Option<usize>,
}

impl CacheFixture {
    /// A fixture over `store` with no capacity bound.
    pub fn new<S: CacheStore + Clone>(store: S) -> Self {
        CacheFixture {
            cache: Cache::new(store.clone()),
            store: Arc::new(store),
            capabilities: CacheCapabilities::default(),
        }
    }

    /// Declares that the store is an LRU of `capacity` entries.
    #[must_use]
    pub fn with_lru_capacity(mut self, capacity: usize) -> Self {
        self.capabilities.lru_capacity = Some(capacity);
        self
    }
}

fn bytes(s: &str) -> Bytes {
    Bytes::from(s.as_bytes())
}

fn long() -> EntryOptions {
    EntryOptions::ttl(Duration::from_secs(300))
}

async fn get_str(store: &dyn CacheStore, key: &str) -> Option<String> {
    store
        .get(key)
        .await
        .expect("get failed")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A value set is read back unchanged; an absent key is `None`.
pub async fn case_set_get_roundtrip(store: &dyn CacheStore) {
    assert_eq!(get_str(store, "absent").await, None);
    store.set("a", bytes("1"), &long()).await.expect("set");
    assert_eq!(get_str(store, "a").await.as_deref(), Some("1"));
    // Binary values survive untouched.
    let raw: Bytes = Bytes::from(&[0u8, 255, 10, 13, 0][..]);
    store.set("bin", raw.clone(), &long()).await.expect("set");
    assert_eq!(store.get("bin").await.expect("get"), Some(raw));
    // Keys with separators and unicode are opaque.
    store
        .set("user:é:1 2", bytes("x"), &long())
        .await
        .expect("set");
    assert_eq!(get_str(store, "user:é:1 2").await.as_deref(), Some("x"));
}

/// A second set replaces the value; delete removes it and says whether it was there.
pub async fn case_overwrite_and_delete(store: &dyn CacheStore) {
    store.set("k", bytes("old"), &long()).await.expect("set");
    store.set("k", bytes("new"), &long()).await.expect("set");
    assert_eq!(get_str(store, "k").await.as_deref(), Some("new"));
    assert!(store.delete("k").await.expect("delete"));
    assert!(!store.delete("k").await.expect("delete"));
    assert_eq!(get_str(store, "k").await, None);
}

/// An entry disappears after its TTL; one without TTL and one with a long TTL stay.
pub async fn case_ttl_expiry(store: &dyn CacheStore) {
    let short = EntryOptions::ttl(Duration::from_millis(300));
    store.set("short", bytes("s"), &short).await.expect("set");
    store.set("long", bytes("l"), &long()).await.expect("set");
    store
        .set("forever", bytes("f"), &EntryOptions::default())
        .await
        .expect("set");
    assert_eq!(get_str(store, "short").await.as_deref(), Some("s"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        get_str(store, "short").await,
        None,
        "expired entry returned"
    );
    assert_eq!(get_str(store, "long").await.as_deref(), Some("l"));
    assert_eq!(get_str(store, "forever").await.as_deref(), Some("f"));
    // Servers are shared: leave nothing without a TTL behind.
    assert!(store.delete("forever").await.expect("delete"));
}

/// Batched get and set agree with single ones, in order, with `None` for misses.
pub async fn case_batch_get_set(store: &dyn CacheStore) {
    let entries: Vec<(String, Bytes)> = (0..20)
        .map(|i| (format!("batch:{i}"), bytes(&i.to_string())))
        .collect();
    let refs: Vec<(&str, Bytes)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    store.set_many(&refs, &long()).await.expect("set_many");
    let keys = ["batch:3", "nope", "batch:19", "batch:0"];
    let got = store.get_many(&keys).await.expect("get_many");
    assert_eq!(
        got,
        vec![Some(bytes("3")), None, Some(bytes("19")), Some(bytes("0"))]
    );
    assert_eq!(
        store.get_many(&[]).await.expect("get_many"),
        Vec::<Option<Bytes>>::new()
    );
    store.set_many(&[], &long()).await.expect("empty set_many");
}

/// Pattern invalidation removes exactly the matching keys; glob metacharacters other than
/// `*` and `?` are literal.
pub async fn case_pattern_invalidation(store: &dyn CacheStore) {
    for key in [
        "user:1:a",
        "user:1:b",
        "user:2:a",
        "user:10:a",
        "order:1",
        "odd[1]",
    ] {
        store.set(key, bytes(key), &long()).await.expect("set");
    }
    assert_eq!(
        store.invalidate_pattern("user:1:*").await.expect("pattern"),
        2
    );
    assert_eq!(get_str(store, "user:1:a").await, None);
    assert_eq!(get_str(store, "user:1:b").await, None);
    assert!(get_str(store, "user:10:a").await.is_some());
    assert!(get_str(store, "user:2:a").await.is_some());
    assert_eq!(
        store.invalidate_pattern("user:?:a").await.expect("pattern"),
        1
    );
    assert!(get_str(store, "user:10:a").await.is_some());
    assert_eq!(
        store.invalidate_pattern("odd[1]").await.expect("pattern"),
        1
    );
    assert_eq!(get_str(store, "odd[1]").await, None);
    assert_eq!(
        store
            .invalidate_pattern("nothing:*")
            .await
            .expect("pattern"),
        0
    );
    assert!(get_str(store, "order:1").await.is_some());
}

/// Tag invalidation removes every entry stored with the tag and nothing else.
pub async fn case_tag_invalidation(store: &dyn CacheStore) {
    let user7 = long().with_tag("user:7");
    store
        .set("profile:7", bytes("p"), &user7)
        .await
        .expect("set");
    store
        .set("recs:7", bytes("r"), &user7.clone().with_tag("recs"))
        .await
        .expect("set");
    store
        .set("recs:8", bytes("r8"), &long().with_tag("recs"))
        .await
        .expect("set");
    store
        .set("profile:8", bytes("p8"), &long())
        .await
        .expect("set");
    let removed = store.invalidate_tag("user:7").await.expect("tag");
    assert_eq!(removed, vec!["profile:7".to_string(), "recs:7".to_string()]);
    assert_eq!(get_str(store, "profile:7").await, None);
    assert_eq!(get_str(store, "recs:7").await, None);
    assert!(get_str(store, "recs:8").await.is_some());
    assert!(get_str(store, "profile:8").await.is_some());
    assert_eq!(
        store.invalidate_tag("recs").await.expect("tag"),
        vec!["recs:8".to_string()]
    );
    assert!(store
        .invalidate_tag("user:7")
        .await
        .expect("tag")
        .is_empty());
}

/// A tag keeps its members without a TTL after its short-lived members expired: invalidating
/// the tag still removes them (a tag set must not expire with its shortest-lived member).
pub async fn case_tag_outlives_its_short_lived_members(store: &dyn CacheStore) {
    store
        .set(
            "keep",
            bytes("k"),
            &EntryOptions::default().with_tag("mixed"),
        )
        .await
        .expect("set");
    store
        .set(
            "brief",
            bytes("b"),
            &EntryOptions::ttl(Duration::from_millis(300)).with_tag("mixed"),
        )
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        get_str(store, "brief").await,
        None,
        "expired entry returned"
    );
    let removed = store.invalidate_tag("mixed").await.expect("tag");
    assert!(
        removed.contains(&"keep".to_string()),
        "the tag lost its member without TTL when a short-lived one expired: {removed:?}"
    );
    assert_eq!(
        get_str(store, "keep").await,
        None,
        "an entry without TTL survived the invalidation of its tag"
    );
}

/// Entries tagged while the same tag is being invalidated are never orphaned: each one is
/// either removed by an invalidation or still reachable through the tag afterwards.
pub async fn case_tag_invalidation_keeps_concurrent_additions(store: &dyn CacheStore) {
    const WRITES: usize = 300;
    let done = std::sync::atomic::AtomicBool::new(false);
    let writer = async {
        for i in 0..WRITES {
            store
                .set(&format!("race:{i}"), bytes("v"), &long().with_tag("race"))
                .await
                .expect("set");
        }
        done.store(true, SeqCst);
    };
    let invalidator = async {
        while !done.load(SeqCst) {
            store.invalidate_tag("race").await.expect("tag");
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(writer, invalidator);
    store.invalidate_tag("race").await.expect("tag");
    let keys: Vec<String> = (0..WRITES).map(|i| format!("race:{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let left = store.get_many(&refs).await.expect("get_many");
    let orphans: Vec<&str> = refs
        .iter()
        .zip(&left)
        .filter_map(|(k, v)| v.as_ref().map(|_| *k))
        .collect();
    assert!(
        orphans.is_empty(),
        "{} entries lost their tag to a concurrent invalidation: {:?}",
        orphans.len(),
        &orphans[..orphans.len().min(5)]
    );
}

/// How many keys [`spread_keys`] names: enough that on a Redis Cluster they fall into well over
/// a hundred hash slots, on every primary.
pub const SPREAD_KEYS: usize = 200;

/// The keys of [`case_multi_key_across_slots`] and [`case_counter_idempotent_across_slots`]
/// (`spread:0` … `spread:199`), for a clustered backend's own test to check that they do
/// cover every node.
pub fn spread_keys() -> Vec<String> {
    (0..SPREAD_KEYS).map(|i| format!("spread:{i}")).collect()
}

/// How many of [`spread_keys`] [`case_multi_key_across_slots`] uses on a fixture: all of
/// them, or half the capacity of an LRU-bounded store (which would evict the rest).
pub fn spread_count(fixture: &CacheFixture) -> usize {
    fixture
        .capabilities
        .lru_capacity
        .map_or(SPREAD_KEYS, |capacity| (capacity / 2).min(SPREAD_KEYS))
}

/// Multi-key operations over the first `count` of [`spread_keys`], keys that a cluster
/// spreads over all its slots and nodes: batched set and get, one tag on every key (set one
/// by one and in batches), pattern invalidation and clear each reach every key, and tag
/// invalidation removes every one of them — no operation may need its keys in one slot.
pub async fn case_multi_key_across_slots(store: &dyn CacheStore, count: usize) {
    let mut keys = spread_keys();
    keys.truncate(count);
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let tagged = long().with_tag("spread-all");
    let half = count / 2;
    for key in &refs[..half] {
        store.set(key, bytes(key), &tagged).await.expect("set");
    }
    let batch: Vec<(&str, Bytes)> = refs[half..].iter().map(|k| (*k, bytes(k))).collect();
    store.set_many(&batch, &tagged).await.expect("set_many");

    let mut asked = refs.clone();
    asked.insert(half, "spread:absent");
    let got = store.get_many(&asked).await.expect("get_many");
    assert_eq!(got.len(), asked.len());
    for (key, value) in asked.iter().zip(&got) {
        let expected = (*key != "spread:absent").then(|| bytes(key));
        assert_eq!(value, &expected, "get_many answered wrong for {key}");
    }

    let mut removed = store.invalidate_tag("spread-all").await.expect("tag");
    removed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(removed, expected, "the tag did not reach every key");
    let left = store.get_many(&refs).await.expect("get_many");
    assert!(
        left.iter().all(Option::is_none),
        "{} entries survived their tag's invalidation",
        left.iter().filter(|v| v.is_some()).count()
    );
    assert!(store
        .invalidate_tag("spread-all")
        .await
        .expect("tag")
        .is_empty());

    let all: Vec<(&str, Bytes)> = refs.iter().map(|k| (*k, bytes(k))).collect();
    store.set_many(&all, &long()).await.expect("set_many");
    store.set("other", bytes("o"), &long()).await.expect("set");
    assert_eq!(
        store.invalidate_pattern("spread:*").await.expect("pattern"),
        count as u64
    );
    assert!(store
        .get_many(&refs)
        .await
        .expect("get_many")
        .iter()
        .all(Option::is_none));
    assert_eq!(get_str(store, "other").await.as_deref(), Some("o"));

    store.set_many(&all, &tagged).await.expect("set_many");
    store.clear().await.expect("clear");
    assert!(store
        .get_many(&refs)
        .await
        .expect("get_many")
        .iter()
        .all(Option::is_none));
    assert_eq!(get_str(store, "other").await, None);
    assert!(store
        .invalidate_tag("spread-all")
        .await
        .expect("tag")
        .is_empty());
}

/// `clear` empties the store.
pub async fn case_clear(store: &dyn CacheStore) {
    for i in 0..5 {
        store
            .set(&format!("c{i}"), bytes("v"), &long().with_tag("t"))
            .await
            .expect("set");
    }
    store.clear().await.expect("clear");
    for i in 0..5 {
        assert_eq!(get_str(store, &format!("c{i}")).await, None);
    }
    assert!(store.invalidate_tag("t").await.expect("tag").is_empty());
}

/// Bad input is a `Validation` error naming what was wrong on every backend, never a panic.
pub async fn case_rejects_bad_input(store: &dyn CacheStore) {
    let is_validation = |r: Result<(), Error>, what: &str| matches!(r, Err(Error::Validation { ref field, .. }) if field == what);
    assert!(is_validation(store.get("").await.map(|_| ()), "key"));
    assert!(is_validation(
        store.set("", bytes("v"), &long()).await,
        "key"
    ));
    assert!(is_validation(
        store
            .set("k", bytes("v"), &EntryOptions::ttl(Duration::ZERO))
            .await,
        "ttl"
    ));
    assert!(is_validation(
        store.set("k", bytes("v"), &long().with_tag("")).await,
        "tag"
    ));
    assert!(is_validation(store.delete("").await.map(|_| ()), "key"));
    assert!(is_validation(
        store.invalidate_pattern("").await.map(|_| ()),
        "pattern"
    ));
    assert!(is_validation(
        store.invalidate_tag("").await.map(|_| ()),
        "tag"
    ));
    assert!(is_validation(
        store.get_many(&["a", ""]).await.map(|_| ()),
        "key"
    ));
}

/// With an LRU bound, the least recently *used* entry goes first (a read refreshes).
pub async fn case_lru_eviction_order(store: &dyn CacheStore, capacity: usize) {
    for i in 0..capacity {
        store
            .set(&format!("e{i}"), bytes("v"), &long())
            .await
            .expect("set");
    }
    // Touch e0 so e1 becomes the least recently used.
    assert!(get_str(store, "e0").await.is_some());
    let before = store.evictions();
    store.set("extra", bytes("v"), &long()).await.expect("set");
    assert_eq!(
        get_str(store, "e1").await,
        None,
        "e1 should have been evicted"
    );
    assert!(
        get_str(store, "e0").await.is_some(),
        "recently read e0 was evicted"
    );
    assert!(get_str(store, "extra").await.is_some());
    assert!(store.evictions() > before, "eviction not counted");
}

/// Typed values round-trip through the cache and count hits and misses.
pub async fn case_cache_typed_roundtrip(cache: &Cache) {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: u64,
        name: String,
    }
    let ada = User {
        id: 1,
        name: "Ada".into(),
    };
    let before = cache.stats();
    assert_eq!(cache.get::<User>("typed:1").await.expect("get"), None);
    cache.set("typed:1", &ada, &long()).await.expect("set");
    assert_eq!(cache.get::<User>("typed:1").await.expect("get"), Some(ada));
    let after = cache.stats();
    assert_eq!(after.hits - before.hits, 1);
    assert_eq!(after.misses - before.misses, 1);
    assert!(after.hit_ratio() > 0.0);
    // Asking for another type is a miss (the value does not decode), never an error.
    assert_eq!(cache.get::<Vec<u8>>("typed:1").await.expect("get"), None);
    assert!(cache.stats().decode_errors > after.decode_errors);
}

/// 100 concurrent misses on one key run the loader once; every caller gets the value.
pub async fn case_stampede_single_load(cache: &Cache) {
    let loads = Arc::new(AtomicUsize::new(0));
    // A release flag rather than a one-shot notification: an extra load must fail the
    // assertion below, not hang the test.
    let (release, released) = tokio::sync::watch::channel(false);
    let before = cache.stats();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, loads, mut released) = (cache.clone(), loads.clone(), released.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load("stampede", &long(), || async move {
                    loads.fetch_add(1, SeqCst);
                    // Hold the load open until the test releases it, so every caller misses.
                    let _ = released.wait_for(|r| *r).await;
                    Ok::<_, std::io::Error>(4242u64)
                })
                .await
        }));
    }
    // Wait, without a timing assumption, until all 100 callers have missed: each joins the
    // flight right after its miss, without yielding.
    while cache.stats().misses < before.misses + 100 {
        tokio::task::yield_now().await;
    }
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    release.send(true).expect("release");
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("load"), 4242);
    }
    assert_eq!(loads.load(SeqCst), 1, "loader ran more than once");
    assert_eq!(cache.stats().loads - before.loads, 1);
}

/// A miss on another key, and a hit on the same key, never wait for a running loader.
pub async fn case_other_keys_and_hits_do_not_wait(cache: &Cache) {
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(tokio::sync::Notify::new());
    let slow = {
        let (cache, release, started) = (cache.clone(), release.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("slow", &long(), || async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, std::io::Error>(1u32)
                })
                .await
        })
    };
    started.notified().await;
    // While "slow" is loading: another key loads, and a value present under "slow"'s
    // neighbour is a hit. A hang here fails through the outer timeout.
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        cache.get_or_load("fast", &long(), || async { Ok::<_, std::io::Error>(2u32) }),
    )
    .await
    .expect("a miss on another key waited for an unrelated loader")
    .expect("load");
    assert_eq!(other, 2);
    let hit = tokio::time::timeout(
        Duration::from_secs(10),
        cache.get_or_load("fast", &long(), || async {
            Err::<u32, _>(std::io::Error::other("must not load on a hit"))
        }),
    )
    .await
    .expect("a hit waited")
    .expect("hit");
    assert_eq!(hit, 2);
    // A value written while the loader runs is served to readers of that key at once.
    cache.set("slow", &7u32, &long()).await.expect("set");
    let read = tokio::time::timeout(Duration::from_secs(10), cache.get::<u32>("slow"))
        .await
        .expect("a hit on a key being loaded waited for the loader")
        .expect("get");
    assert_eq!(read, Some(7));
    release.notify_one();
    slow.await.expect("join").expect("slow load");
}

/// Loader errors reach every waiter, are counted, and are not cached.
pub async fn case_loader_errors_not_cached(cache: &Cache) {
    let before = cache.stats();
    let err = cache
        .get_or_load("failing", &long(), || async {
            Err::<u32, _>(std::io::Error::other("db down"))
        })
        .await
        .expect_err("the error must reach the caller");
    assert_eq!(err.to_string(), "db down");
    let ok = cache
        .get_or_load("failing", &long(), || async {
            Ok::<_, std::io::Error>(5u32)
        })
        .await
        .expect("second load");
    assert_eq!(ok, 5);
    let after = cache.stats();
    assert_eq!(after.loads - before.loads, 2);
    assert_eq!(after.load_errors - before.load_errors, 1);
    // Not-found answers are cached only when asked for.
    let calls = AtomicUsize::new(0);
    for _ in 0..2 {
        let got = cache
            .get_or_load_optional::<u32, std::io::Error, _, _>(
                "maybe",
                &long(),
                NegativeCaching::Off,
                || async {
                    calls.fetch_add(1, SeqCst);
                    Ok(None)
                },
            )
            .await
            .expect("load");
        assert_eq!(got, None);
    }
    assert_eq!(
        calls.load(SeqCst),
        2,
        "None was cached without a negative TTL"
    );
    for _ in 0..2 {
        let got = cache
            .get_or_load_optional::<u32, std::io::Error, _, _>(
                "maybe-neg",
                &long(),
                NegativeCaching::Ttl(Duration::from_secs(60)),
                || async {
                    calls.fetch_add(1, SeqCst);
                    Ok(None)
                },
            )
            .await
            .expect("load");
        assert_eq!(got, None);
    }
    assert_eq!(
        calls.load(SeqCst),
        3,
        "None was not cached with a negative TTL"
    );
}

/// A stored value that no longer decodes is a miss, reloaded and overwritten.
pub async fn case_undecodable_value_is_overwritten(cache: &Cache) {
    cache
        .store()
        .set("legacy", bytes("{not json"), &long())
        .await
        .expect("raw set");
    let value = cache
        .get_or_load("legacy", &long(), || async {
            Ok::<_, std::io::Error>(99u64)
        })
        .await
        .expect("load");
    assert_eq!(value, 99);
    assert_eq!(cache.get::<u64>("legacy").await.expect("get"), Some(99));
}

/// A load that was running when its key was deleted, re-written or invalidated does not store
/// its (older) value afterwards: the write-back would undo the invalidation.
pub async fn case_invalidation_during_a_load_is_not_undone(cache: &Cache) {
    /// Starts a load of `key` returning `old` once released; returns when the loader runs.
    async fn slow_load(
        cache: &Cache,
        key: &'static str,
        options: EntryOptions,
    ) -> (
        Arc<tokio::sync::Notify>,
        tokio::task::JoinHandle<Result<u32, Arc<std::io::Error>>>,
    ) {
        let (started, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let task = {
            let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(key, &options, || async move {
                        started.notify_one();
                        release.notified().await;
                        Ok::<_, std::io::Error>(1u32)
                    })
                    .await
            })
        };
        started.notified().await;
        (release, task)
    }
    async fn finish(
        release: Arc<tokio::sync::Notify>,
        task: tokio::task::JoinHandle<Result<u32, Arc<std::io::Error>>>,
    ) {
        release.notify_one();
        // The leader's own caller still gets what it loaded.
        assert_eq!(task.await.expect("join").expect("load"), 1);
    }

    let (release, task) = slow_load(cache, "gen:deleted", long()).await;
    cache.delete("gen:deleted").await.expect("delete");
    finish(release, task).await;
    assert_eq!(
        cache.get::<u32>("gen:deleted").await.expect("get"),
        None,
        "a load started before a delete stored its stale value after it"
    );
    let fresh = cache
        .get_or_load("gen:deleted", &long(), || async {
            Ok::<_, std::io::Error>(2u32)
        })
        .await
        .expect("load");
    assert_eq!(fresh, 2);

    let (release, task) = slow_load(cache, "gen:written", long()).await;
    cache.set("gen:written", &2u32, &long()).await.expect("set");
    finish(release, task).await;
    assert_eq!(
        cache.get::<u32>("gen:written").await.expect("get"),
        Some(2),
        "a load started before a write overwrote the newer value"
    );

    let (release, task) = slow_load(cache, "gen:pattern", long()).await;
    cache
        .invalidate_pattern("gen:pat*")
        .await
        .expect("invalidate_pattern");
    finish(release, task).await;
    assert_eq!(cache.get::<u32>("gen:pattern").await.expect("get"), None);

    let (release, task) = slow_load(cache, "gen:tagged", long().with_tag("gen")).await;
    cache.invalidate_tag("gen").await.expect("invalidate_tag");
    finish(release, task).await;
    assert_eq!(cache.get::<u32>("gen:tagged").await.expect("get"), None);

    // An unrelated invalidation does not stop a load from being stored.
    let (release, task) = slow_load(cache, "gen:kept", long()).await;
    cache.delete("gen:other").await.expect("delete");
    finish(release, task).await;
    assert_eq!(cache.get::<u32>("gen:kept").await.expect("get"), Some(1));
}

/// If the loading caller is cancelled, a waiting caller takes over and gets a value.
pub async fn case_cancelled_loader_hands_over(cache: &Cache) {
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (cache, started) = (cache.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .get_or_load("handover", &long(), || async move {
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok::<_, std::io::Error>(0u32)
                })
                .await
        })
    };
    started.notified().await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("handover", &long(), || async {
                    Ok::<_, std::io::Error>(8u32)
                })
                .await
        })
    };
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter never took over")
        .expect("join")
        .expect("load");
    assert_eq!(got, 8);
}

fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(f, v)| ((*f).to_owned(), *v)).collect()
}

/// Counter keys for the concurrent cases: several, so that a cluster spreads them over slots.
const SPREAD: [&str; 4] = ["tally:alpha", "tally:bravo", "tally:charlie", "tally:delta"];

/// 32 tasks × 200 increments of three fields over four counters lose no update: the totals
/// are exact, and every answer's values are consistent with some order of the increments.
pub async fn case_counter_concurrent_increments(store: DynCacheStore) {
    const TASKS: i64 = 32;
    const ROUNDS: i64 = 200;
    let options = CounterOptions::ttl(Duration::from_secs(300));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, options) = (store.clone(), options.clone());
            tokio::spawn(async move {
                for r in 0..ROUNDS {
                    let key = SPREAD[((t + r) % 4) as usize];
                    let update = store
                        .increment(key, &[("a", 1), ("b", 2), ("c", -1)], &options)
                        .await
                        .expect("increment");
                    assert!(update.applied);
                    // One atomic step: the three fields moved together.
                    let [a, b, c] = update.values[..] else {
                        panic!("three values expected, got {:?}", update.values);
                    };
                    assert_eq!((b, c), (2 * a, -a), "a torn increment: {:?}", update.values);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join");
    }
    let per_key = TASKS * ROUNDS / 4;
    for key in SPREAD {
        assert_eq!(
            store.counter(key).await.expect("counter"),
            counts(&[("a", per_key), ("b", 2 * per_key), ("c", -per_key)]),
            "{key}"
        );
        assert!(store.delete_counter(key).await.expect("delete"));
    }
}

/// A multi-field increment is atomic: a concurrent reader never sees one field changed
/// without the other.
pub async fn case_counter_multi_field_atomic(store: DynCacheStore) {
    let options = CounterOptions::ttl(Duration::from_secs(300));
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut reads = 0u32;
            // At least a few reads, then until the writers are done.
            while reads < 20 || !*done.borrow() {
                let fields = store.counter("pair").await.expect("counter");
                let x = fields.get("x").copied().unwrap_or(0);
                let y = fields.get("y").copied().unwrap_or(0);
                assert_eq!(x * 3, y, "a reader saw half an increment: {fields:?}");
                reads += 1;
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (store, options) = (store.clone(), options.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    store
                        .increment("pair", &[("x", 1), ("y", 3)], &options)
                        .await
                        .expect("increment");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("join");
    }
    done_tx.send(true).expect("done");
    reader.await.expect("reader");
    assert_eq!(
        store.counter("pair").await.expect("counter"),
        counts(&[("x", 400), ("y", 1_200)])
    );
    store.delete_counter("pair").await.expect("delete");
}

/// A TTL is set on the counter and refreshed by later increments; an increment without one
/// keeps the counter's lifetime. Reading, deleting and an absent counter behave.
pub async fn case_counter_ttl_read_and_delete(store: DynCacheStore) {
    let short = CounterOptions::ttl(Duration::from_millis(300));
    let lasting = CounterOptions::ttl(Duration::from_secs(300));
    assert!(store.counter("never").await.expect("counter").is_empty());
    assert!(!store.delete_counter("never").await.expect("delete"));
    // "expires": a short TTL, then an increment without TTL that must not remove it.
    store
        .increment("expires", &[("n", 1)], &short)
        .await
        .expect("incr");
    let update = store
        .increment("expires", &[("n", 1)], &CounterOptions::default())
        .await
        .expect("incr");
    assert_eq!(update.values, vec![2]);
    // "persists": created with no TTL, then given a short one.
    store
        .increment("persists", &[("n", 5)], &CounterOptions::default())
        .await
        .expect("incr");
    store
        .increment("persists", &[("n", 1)], &short)
        .await
        .expect("incr");
    // "refreshed": a short TTL refreshed by a long one.
    store
        .increment("refreshed", &[("n", 1)], &short)
        .await
        .expect("incr");
    store
        .increment("refreshed", &[("m", 2)], &lasting)
        .await
        .expect("incr");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.counter("expires").await.expect("counter").is_empty());
    assert!(store.counter("persists").await.expect("counter").is_empty());
    assert_eq!(
        store.counter("refreshed").await.expect("counter"),
        counts(&[("m", 2), ("n", 1)])
    );
    // An expired counter starts again from zero.
    let update = store
        .increment("expires", &[("n", 4)], &lasting)
        .await
        .expect("incr");
    assert_eq!(update.values, vec![4]);
    assert!(store.delete_counter("refreshed").await.expect("delete"));
    assert!(!store.delete_counter("refreshed").await.expect("delete"));
    assert!(store
        .counter("refreshed")
        .await
        .expect("counter")
        .is_empty());
    // A counter is not a cached entry: value invalidation leaves it alone, clear does not.
    store
        .set("expires", bytes("v"), &long())
        .await
        .expect("set");
    assert_eq!(store.invalidate_pattern("*").await.expect("pattern"), 1);
    assert!(store.delete("expires").await.is_ok());
    assert_eq!(
        store.counter("expires").await.expect("counter"),
        counts(&[("n", 4)])
    );
    store.clear().await.expect("clear");
    assert!(store.counter("expires").await.expect("counter").is_empty());
}

/// The same idempotency id counts once per counter, also when many tasks send it at once;
/// other ids and other counters count.
pub async fn case_counter_idempotent(store: DynCacheStore) {
    let window = Duration::from_secs(300);
    let once =
        |id: &str| CounterOptions::ttl(Duration::from_secs(300)).with_idempotency(id, window);
    let first = store
        .increment("likes", &[("n", 1), ("score", 10)], &once("m-1"))
        .await
        .expect("incr");
    assert!(first.applied);
    assert_eq!(first.values, vec![1, 10]);
    let again = store
        .increment("likes", &[("n", 1), ("score", 10)], &once("m-1"))
        .await
        .expect("incr");
    assert!(!again.applied, "a repeated id was applied twice");
    assert_eq!(
        again.values,
        vec![1, 10],
        "a repeat answers the current values"
    );
    let other = store
        .increment("likes", &[("n", 1)], &once("m-2"))
        .await
        .expect("incr");
    assert!(other.applied);
    assert_eq!(other.values, vec![2]);
    // Ids are per counter: the same id on another counter counts there.
    let elsewhere = store
        .increment("shares", &[("n", 1)], &once("m-1"))
        .await
        .expect("incr");
    assert!(elsewhere.applied);
    // Deleting a counter keeps its markers: a redelivery after the delete still counts once.
    assert!(store.delete_counter("shares").await.expect("delete"));
    let replay = store
        .increment("shares", &[("n", 1)], &once("m-1"))
        .await
        .expect("incr");
    assert!(!replay.applied);
    assert_eq!(replay.values, vec![0]);

    // The same id from 32 tasks at once (on counters spread over slots): one applies.
    for key in SPREAD {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (store, options) = (store.clone(), once("burst"));
                tokio::spawn(async move {
                    store
                        .increment(key, &[("n", 1), ("m", 2)], &options)
                        .await
                        .expect("incr")
                })
            })
            .collect();
        let mut applied = 0;
        for task in tasks {
            let update = task.await.expect("join");
            applied += usize::from(update.applied);
            assert_eq!(update.values, vec![1, 2], "{key}: {update:?}");
        }
        assert_eq!(applied, 1, "{key}: one id from 32 tasks must count once");
        assert_eq!(
            store.counter(key).await.expect("counter"),
            counts(&[("m", 2), ("n", 1)])
        );
        store.delete_counter(key).await.expect("delete");
    }
    store.delete_counter("likes").await.expect("delete");
}

/// Counters over [`spread_keys`] (every slot and node of a cluster), each incremented
/// with idempotency ids: every counter counts an id once, the same id counts once on each
/// counter, and a redelivered batch changes nothing.
pub async fn case_counter_idempotent_across_slots(store: DynCacheStore) {
    let keys = spread_keys();
    let once = |id: &str| {
        CounterOptions::ttl(Duration::from_secs(300)).with_idempotency(id, Duration::from_secs(300))
    };
    for round in 0..2 {
        for key in &keys {
            for id in ["evt-1", "evt-2"] {
                let update = store
                    .increment(key, &[("n", 1), ("score", 10)], &once(id))
                    .await
                    .expect("increment");
                assert_eq!(update.applied, round == 0, "{key} {id} round {round}");
            }
        }
    }
    for key in &keys {
        assert_eq!(
            store.counter(key).await.expect("counter"),
            counts(&[("n", 2), ("score", 20)]),
            "{key}"
        );
        assert!(store.delete_counter(key).await.expect("delete"), "{key}");
    }
}

/// Bad counter input is a `Validation` error naming what was wrong, never a panic, and an
/// overflowing delta changes no field of its call.
pub async fn case_counter_rejects_bad_input(store: DynCacheStore) {
    fn field_of<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
        match r {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    let ok = CounterOptions::ttl(Duration::from_secs(300));
    let s = &*store;
    assert_eq!(field_of(s.increment("", &[("n", 1)], &ok).await), "key");
    assert_eq!(field_of(s.increment("k", &[], &ok).await), "deltas");
    assert_eq!(field_of(s.increment("k", &[("", 1)], &ok).await), "field");
    assert_eq!(
        field_of(s.increment("k", &[("n", 1), ("n", 2)], &ok).await),
        "field"
    );
    assert_eq!(
        field_of(
            s.increment("k", &[("n", 1)], &CounterOptions::ttl(Duration::ZERO))
                .await
        ),
        "ttl"
    );
    assert_eq!(
        field_of(
            s.increment(
                "k",
                &[("n", 1)],
                &ok.clone().with_idempotency("", Duration::from_secs(1))
            )
            .await
        ),
        "idempotency id"
    );
    assert_eq!(
        field_of(
            s.increment(
                "k",
                &[("n", 1)],
                &ok.clone().with_idempotency("m", Duration::ZERO)
            )
            .await
        ),
        "idempotency window"
    );
    assert_eq!(field_of(s.counter("").await), "key");
    assert_eq!(field_of(s.delete_counter("").await), "key");
    assert!(
        s.counter("k").await.expect("counter").is_empty(),
        "bad input changed something"
    );

    // Overflow, both ways, leaves every field of the call as it was.
    s.increment("big", &[("up", i64::MAX - 1), ("down", i64::MIN + 1)], &ok)
        .await
        .expect("incr");
    assert_eq!(
        field_of(s.increment("big", &[("other", 5), ("up", 2)], &ok).await),
        "delta"
    );
    assert_eq!(
        field_of(s.increment("big", &[("up", 1), ("down", -2)], &ok).await),
        "delta"
    );
    assert_eq!(
        s.counter("big").await.expect("counter"),
        counts(&[("down", i64::MIN + 1), ("up", i64::MAX - 1)]),
        "an overflowing increment changed fields"
    );
    // An idempotent increment that overflowed did not use up its id.
    let once = ok.clone().with_idempotency("o-1", Duration::from_secs(300));
    assert_eq!(
        field_of(s.increment("big", &[("up", 2)], &once).await),
        "delta"
    );
    let update = s.increment("big", &[("up", 1)], &once).await.expect("incr");
    assert!(update.applied);
    assert_eq!(update.values, vec![i64::MAX]);
    // Exact at the edges (no floating point on the way).
    let update = s
        .increment("big", &[("down", -1)], &ok)
        .await
        .expect("incr");
    assert_eq!(update.values, vec![i64::MIN]);
    assert!(s.delete_counter("big").await.expect("delete"));
}

/// `init_counter` creates a missing counter with its values and marks its ids, atomically,
/// and leaves an existing one (and every id) alone; an existing-only increment of a missing
/// counter changes nothing (no counter, no marker) and says so. On counters spread over
/// slots, with many ids (one script over the counter and its markers).
pub async fn case_counter_init_if_absent(store: DynCacheStore) {
    let window = Duration::from_secs(300);
    let once = |id: &str| {
        CounterOptions::ttl(Duration::from_secs(300))
            .with_idempotency(id, window)
            .existing_only()
    };
    let ids: Vec<String> = (0..200).map(|i| format!("log-{i}")).collect();
    for key in SPREAD {
        let missing = store
            .increment(key, &[("n", 1), ("m", 2)], &once("early"))
            .await
            .expect("incr");
        assert!(missing.missing, "{key}: {missing:?}");
        assert!(!missing.applied);
        assert_eq!(missing.values, vec![0, 0]);
        assert!(
            store.counter(key).await.expect("counter").is_empty(),
            "{key}: an existing-only increment created the counter"
        );

        let init = CounterInit::ttl(Duration::from_secs(300)).with_applied(ids.clone(), window);
        let created = store
            .init_counter(key, &[("n", 200), ("m", 400), ("zero", 0)], &init)
            .await
            .expect("init");
        assert!(created.applied, "{key}: {created:?}");
        assert_eq!(created.values, vec![200, 400, 0]);
        assert_eq!(
            store.counter(key).await.expect("counter"),
            counts(&[("m", 400), ("n", 200), ("zero", 0)])
        );
        // A second initialisation finds it: nothing changes, its ids are not marked.
        let second = CounterInit::ttl(Duration::from_secs(300)).with_applied(["late"], window);
        let again = store
            .init_counter(key, &[("n", 7), ("other", 1)], &second)
            .await
            .expect("init");
        assert!(!again.applied);
        assert_eq!(again.values, vec![200, 0]);
        // The marked ids are repeats; the id of the refused increment and the second
        // initialisation's id were never marked.
        for id in ["log-0", "log-199"] {
            let repeat = store
                .increment(key, &[("n", 1), ("m", 2)], &once(id))
                .await
                .expect("incr");
            assert!(!repeat.applied && !repeat.missing, "{key} {id}: {repeat:?}");
        }
        for id in ["early", "late"] {
            let new = store
                .increment(key, &[("n", 1), ("m", 2)], &once(id))
                .await
                .expect("incr");
            assert!(new.applied, "{key} {id}: {new:?}");
        }
        assert_eq!(
            store.counter(key).await.expect("counter"),
            counts(&[("m", 404), ("n", 202), ("zero", 0)])
        );
        assert!(store.delete_counter(key).await.expect("delete"));
    }
    // Without ids, and without a TTL.
    let plain = store
        .init_counter("plain-init", &[("n", 5)], &CounterInit::default())
        .await
        .expect("init");
    assert!(plain.applied);
    assert_eq!(
        store
            .increment(
                "plain-init",
                &[("n", 1)],
                &CounterOptions::default().existing_only()
            )
            .await
            .expect("incr")
            .values,
        vec![6]
    );
    assert!(store.delete_counter("plain-init").await.expect("delete"));

    fn field_of<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
        match r {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    let ok = CounterInit::default();
    let s = &*store;
    assert_eq!(field_of(s.init_counter("", &[("n", 1)], &ok).await), "key");
    assert_eq!(field_of(s.init_counter("k", &[], &ok).await), "fields");
    assert_eq!(
        field_of(s.init_counter("k", &[("", 1)], &ok).await),
        "field"
    );
    assert_eq!(
        field_of(s.init_counter("k", &[("n", 1), ("n", 2)], &ok).await),
        "field"
    );
    assert_eq!(
        field_of(
            s.init_counter("k", &[("n", 1)], &CounterInit::ttl(Duration::ZERO))
                .await
        ),
        "ttl"
    );
    assert_eq!(
        field_of(
            s.init_counter("k", &[("n", 1)], &ok.clone().with_applied([""], window))
                .await
        ),
        "idempotency id"
    );
    assert_eq!(
        field_of(
            s.init_counter(
                "k",
                &[("n", 1)],
                &ok.clone().with_applied(["a"], Duration::ZERO)
            )
            .await
        ),
        "idempotency window"
    );
    assert!(
        s.counter("k").await.expect("counter").is_empty(),
        "bad input changed something"
    );
}

/// Rebuilding races counting: 24 tasks count events, each an existing-only increment under
/// its id that, on a missing counter, initialises it from the source of truth (40 events
/// already there, all marked) and counts again. Half of the tasks count events of the source
/// again (a late count of an event the rebuild included), half count new ones: the counter
/// ends exact, whichever initialisation won.
pub async fn case_counter_init_races_increments(store: DynCacheStore) {
    let window = Duration::from_secs(300);
    let key = "raced-init";
    let source: Vec<String> = (0..40).map(|i| format!("src-{i}")).collect();
    let tasks: Vec<_> = (0..24)
        .map(|t| {
            let (store, source) = (store.clone(), source.clone());
            tokio::spawn(async move {
                let id = if t % 2 == 0 {
                    format!("src-{t}")
                } else {
                    format!("new-{t}")
                };
                let once = CounterOptions::ttl(Duration::from_secs(300))
                    .with_idempotency(id, window)
                    .existing_only();
                loop {
                    let update = store
                        .increment(key, &[("n", 1)], &once)
                        .await
                        .expect("incr");
                    if !update.missing {
                        return update.applied;
                    }
                    let init = CounterInit::ttl(Duration::from_secs(300))
                        .with_applied(source.clone(), window);
                    store
                        .init_counter(key, &[("n", 40)], &init)
                        .await
                        .expect("init");
                }
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        applied += usize::from(task.await.expect("join"));
    }
    assert_eq!(applied, 12, "only the new events count");
    assert_eq!(
        store.counter(key).await.expect("counter"),
        counts(&[("n", 52)])
    );
    assert!(store.delete_counter(key).await.expect("delete"));
}

/// The typed front passes counters through (no in-process copy) and counts them.
pub async fn case_cache_counters(cache: &Cache) {
    let before = cache.stats();
    let once = CounterOptions::ttl(Duration::from_secs(300))
        .with_idempotency("e-1", Duration::from_secs(300));
    let update = cache
        .increment("cache-counter", &[("n", 2)], &once)
        .await
        .expect("incr");
    assert!(update.applied);
    assert_eq!(update.values, vec![2]);
    assert!(
        !cache
            .increment("cache-counter", &[("n", 2)], &once)
            .await
            .expect("incr")
            .applied
    );
    // Another handle on the same store sees every increment at once.
    cache
        .store()
        .increment("cache-counter", &[("n", 1)], &CounterOptions::default())
        .await
        .expect("incr");
    assert_eq!(
        cache.counter("cache-counter").await.expect("counter"),
        counts(&[("n", 3)])
    );
    let after = cache.stats();
    assert_eq!(after.increments - before.increments, 1);
    assert_eq!(after.duplicate_increments - before.duplicate_increments, 1);
    assert!(matches!(
        cache.increment("", &[("n", 1)], &once).await,
        Err(Error::Validation { .. })
    ));
    assert!(cache.delete_counter("cache-counter").await.expect("delete"));
}

/// Emits one `#[tokio::test]` per conformance case for the backend `$setup` builds
/// (an `async` expression yielding `Option<CacheFixture>`; `None` skips).
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
#[macro_export]
macro_rules! conformance_tests {
    ($setup:expr) => {
        $crate::conformance_tests!(@store $setup;
            case_set_get_roundtrip, case_overwrite_and_delete, case_ttl_expiry,
            case_batch_get_set, case_pattern_invalidation, case_tag_invalidation,
            case_tag_outlives_its_short_lived_members,
            case_tag_invalidation_keeps_concurrent_additions, case_clear,
            case_rejects_bad_input);
        $crate::conformance_tests!(@cache $setup;
            case_cache_typed_roundtrip, case_stampede_single_load,
            case_other_keys_and_hits_do_not_wait, case_loader_errors_not_cached,
            case_undecodable_value_is_overwritten, case_cancelled_loader_hands_over,
            case_invalidation_during_a_load_is_not_undone, case_cache_counters);
        $crate::conformance_tests!(@shared $setup;
            case_counter_concurrent_increments, case_counter_multi_field_atomic,
            case_counter_ttl_read_and_delete, case_counter_idempotent,
            case_counter_rejects_bad_input, case_counter_idempotent_across_slots,
            case_counter_init_if_absent, case_counter_init_races_increments);
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn case_lru_eviction_order() {
            if let Some(fixture) = $setup.await {
                match fixture.capabilities.lru_capacity {
                    Some(capacity) => {
                        $crate::testing::case_lru_eviction_order(&*fixture.store, capacity).await
                    }
                    None => eprintln!("case_lru_eviction_order: not an LRU-bounded store"),
                }
            }
        }
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn case_multi_key_across_slots() {
            if let Some(fixture) = $setup.await {
                let count = $crate::testing::spread_count(&fixture);
                $crate::testing::case_multi_key_across_slots(&*fixture.store, count).await
            }
        }
    };
    (@store $setup:expr; $($case:ident),*) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if let Some(fixture) = $setup.await {
                $crate::testing::$case(&*fixture.store).await;
            }
        }
    )*};
    (@shared $setup:expr; $($case:ident),*) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if let Some(fixture) = $setup.await {
                $crate::testing::$case(fixture.store.clone()).await;
            }
        }
    )*};
    (@cache $setup:expr; $($case:ident),*) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            if let Some(fixture) = $setup.await {
                $crate::testing::$case(&fixture.cache).await;
            }
        }
    )*};
}
