//! The decoded values a typed `Cache` keeps in its in-process tier never outlive the bytes they
//! came from: every write and every kind of invalidation — through the cache, on the store
//! directly, or from another process over Redis pub/sub — is seen by the next typed read.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;
use std::time::Duration;

use mod8_cache::{Cache, CacheStore, EntryOptions, MemoryStore, TierOptions, TieredStore};

fn opts() -> EntryOptions {
    EntryOptions::ttl(Duration::from_secs(60)).with_tag("t")
}

/// Reads `key` typed four times (the second read is served by the kept value, the third and
/// fourth by this thread's front once the key was hit twice), then shared, and checks each.
async fn read_repeatedly(cache: &Cache, key: &str, want: Option<u64>) {
    assert_eq!(cache.get::<u64>(key).await.unwrap(), want, "{key}");
    assert_eq!(cache.get::<u64>(key).await.unwrap(), want, "{key}, kept");
    assert_eq!(cache.get::<u64>(key).await.unwrap(), want, "{key}, front");
    assert_eq!(
        cache.get::<u64>(key).await.unwrap(),
        want,
        "{key}, front again"
    );
    assert_eq!(
        cache.get_shared::<u64>(key).await.unwrap().as_deref(),
        want.as_ref(),
        "{key}, shared"
    );
}

async fn no_stale_value_after_writes_and_invalidations(cache: &Cache, store: &dyn CacheStore) {
    let cases = [
        "set",
        "store set",
        "delete",
        "pattern",
        "tag",
        "clear",
        "store delete",
    ];
    for (i, how) in cases.into_iter().enumerate() {
        let key = format!("decoded:{i}");
        cache.set(&key, &1u64, &opts()).await.unwrap();
        read_repeatedly(cache, &key, Some(1)).await;
        let after = match how {
            "set" => {
                cache.set(&key, &2u64, &opts()).await.unwrap();
                Some(2)
            }
            "store set" => {
                store
                    .set(&key, b"3".as_slice().into(), &opts())
                    .await
                    .unwrap();
                Some(3)
            }
            "delete" => {
                assert!(cache.delete(&key).await.unwrap());
                None
            }
            "pattern" => {
                assert_eq!(cache.invalidate_pattern("decoded:*").await.unwrap(), 1);
                None
            }
            "tag" => {
                assert_eq!(cache.invalidate_tag("t").await.unwrap(), 1);
                None
            }
            "clear" => {
                cache.clear().await.unwrap();
                None
            }
            _ => {
                assert!(store.delete(&key).await.unwrap());
                None
            }
        };
        read_repeatedly(cache, &key, after).await;
        cache.clear().await.unwrap();
    }
}

#[tokio::test]
async fn in_process_store() {
    let store = MemoryStore::lru(100);
    let cache = Cache::new(store.clone());
    no_stale_value_after_writes_and_invalidations(&cache, &store).await;
}

#[tokio::test]
async fn tiered_store() {
    let tiered = TieredStore::new(
        MemoryStore::lru(100),
        MemoryStore::lru(100),
        TierOptions::default(),
    );
    let cache = Cache::new(tiered.clone());
    no_stale_value_after_writes_and_invalidations(&cache, &tiered).await;
}

#[tokio::test]
async fn an_evicted_or_expired_entry_takes_its_decoded_value_along() {
    let store = MemoryStore::lru(1);
    let cache = Cache::new(store.clone());
    cache
        .set("a", &1u64, &EntryOptions::default())
        .await
        .unwrap();
    read_repeatedly(&cache, "a", Some(1)).await;
    cache
        .set("b", &2u64, &EntryOptions::default())
        .await
        .unwrap();
    read_repeatedly(&cache, "a", None).await;

    let brief = EntryOptions::ttl(Duration::from_millis(100));
    cache.set("c", &3u64, &brief).await.unwrap();
    read_repeatedly(&cache, "c", Some(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    read_repeatedly(&cache, "c", None).await;
}

#[tokio::test]
async fn another_type_or_codec_decodes_the_bytes_again() {
    let store = MemoryStore::lru(10);
    let json = Cache::new(store.clone());
    let msgpack = Cache::builder(store.clone())
        .with_codec(mod8_cache::Codec::MessagePack)
        .build();
    json.set("k", &7u8, &EntryOptions::default()).await.unwrap();
    assert_eq!(json.get::<u8>("k").await.unwrap(), Some(7));
    assert_eq!(json.get::<u64>("k").await.unwrap(), Some(7));
    assert_eq!(json.get::<String>("k").await.unwrap(), None);
    // JSON `7` is also MessagePack's positive fixint 0x37 = 55: decoded anew, not reused.
    assert_eq!(msgpack.get::<u8>("k").await.unwrap(), Some(b'7'));
    assert_eq!(json.get::<u8>("k").await.unwrap(), Some(7));
    let shared: Arc<u8> = json.get_shared("k").await.unwrap().unwrap();
    assert_eq!(*shared, 7);
}

/// With Redis: a typed value kept in another process's L1 goes with the invalidation it
/// receives over pub/sub.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_invalidation_drops_kept_values_in_another_process() {
    use mod8_cache::{RedisConfig, RedisStore};
    let Some(url) =
        mod8_testkit::service_url(mod8_testkit::REDIS, "cache: decoded values over pub/sub")
    else {
        return;
    };
    let config = RedisConfig::new(url).with_prefix(mod8_testkit::unique_name("mod8test:decoded"));
    let (a, b) = (
        RedisStore::connect(config.clone()).await.unwrap(),
        RedisStore::connect(config).await.unwrap(),
    );
    let tier = TierOptions::default().with_l1_ttl(Duration::from_secs(60));
    let cache_a = Cache::new(
        TieredStore::with_redis(MemoryStore::lru(100), a.clone(), tier)
            .await
            .unwrap(),
    );
    let l1_b = MemoryStore::lru(100);
    let cache_b = Cache::new(
        TieredStore::with_redis(l1_b.clone(), b, tier)
            .await
            .unwrap(),
    );
    for how in ["delete", "pattern", "tag", "clear"] {
        let key = format!("decoded:{how}");
        cache_a.set(&key, &1u64, &opts()).await.unwrap();
        read_repeatedly(&cache_b, &key, Some(1)).await;
        assert!(l1_b.get_now(&key).is_some(), "B's L1 was not filled");
        match how {
            "delete" => assert!(cache_a.delete(&key).await.unwrap()),
            "pattern" => assert_eq!(cache_a.invalidate_pattern(&key).await.unwrap(), 1),
            "tag" => assert_eq!(cache_a.invalidate_tag("t").await.unwrap(), 1),
            _ => cache_a.clear().await.unwrap(),
        }
        let mut dropped = false;
        for _ in 0..250 {
            if l1_b.get_now(&key).is_none() {
                dropped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(dropped, "B kept {key} after a {how} invalidation in A");
        read_repeatedly(&cache_b, &key, None).await;
    }
    a.clear().await.unwrap();
}

fn now<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// A value this thread keeps in its front is not served once another thread wrote the key:
/// the write moved its shard's epoch on, and the join makes the write visible here.
#[test]
fn a_write_on_another_thread_is_seen_by_the_next_read() {
    let cache = Cache::in_process(1_000);
    for round in 0..50u64 {
        now(cache.set("k", &round, &EntryOptions::default())).unwrap();
        for _ in 0..4 {
            assert_eq!(now(cache.get::<u64>("k")).unwrap(), Some(round));
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(now(cache.get::<u64>("k")).unwrap(), Some(round));
                now(cache.set("k", &(round + 1000), &EntryOptions::default())).unwrap();
            });
        });
        assert_eq!(now(cache.get::<u64>("k")).unwrap(), Some(round + 1000));
        std::thread::scope(|s| {
            s.spawn(|| assert!(now(cache.delete("k")).unwrap()));
        });
        assert_eq!(now(cache.get::<u64>("k")).unwrap(), None);
    }
}

/// A key read over and over (from this thread's front) is still seen as read by the
/// store's eviction: other keys go first. (Every insert moves the shard's epoch on, so the
/// next read of the hot key marks it in the shared table.)
#[test]
fn a_hot_key_served_by_the_front_is_not_evicted_first() {
    let store = MemoryStore::lru(8);
    let cache = Cache::new(store.clone());
    now(cache.set("hot", &1u64, &EntryOptions::default())).unwrap();
    for i in 0..200u64 {
        for _ in 0..100 {
            assert_eq!(
                now(cache.get::<u64>("hot")).unwrap(),
                Some(1),
                "after {i} others"
            );
        }
        now(cache.set(&format!("cold:{i}"), &i, &EntryOptions::default())).unwrap();
    }
    assert!(store.len() <= 8);
}

/// A type whose `Clone` reads the cache (the front hands values out while this thread's
/// table is borrowed) neither panics nor sees a wrong value.
#[test]
fn a_clone_that_reads_the_cache_again_is_served() {
    use serde::{Deserialize, Serialize};
    use std::cell::RefCell;

    thread_local! {
        static INNER: RefCell<Option<Cache>> = const { RefCell::new(None) };
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Nested(u64);
    impl Clone for Nested {
        fn clone(&self) -> Self {
            let cache = INNER.with(|c| c.borrow().clone()).unwrap();
            let inner = now(cache.get::<u64>("inner")).unwrap();
            assert_eq!(inner, Some(7));
            Nested(self.0)
        }
    }

    let cache = Cache::in_process(100);
    INNER.with(|c| *c.borrow_mut() = Some(cache.clone()));
    now(cache.set("inner", &7u64, &EntryOptions::default())).unwrap();
    now(cache.set("outer", &Nested(3), &EntryOptions::default())).unwrap();
    for _ in 0..10 {
        assert_eq!(now(cache.get::<u64>("inner")).unwrap(), Some(7));
        assert_eq!(now(cache.get::<Nested>("outer")).unwrap(), Some(Nested(3)));
    }
}

/// A hit's future is answered at once (ready on its first poll, with no waker needed); polled
/// again after it completed it answers a miss instead of panicking; a refused key still fails
/// with its validation error.
#[test]
fn a_hit_is_ready_at_once_and_a_bad_key_still_fails() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let cache = Cache::new(MemoryStore::lru(16));
    let mut cx = Context::from_waker(Waker::noop());
    let options = EntryOptions::default();
    let mut set = Box::pin(cache.set("k", &7_u64, &options));
    assert!(matches!(set.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    for _ in 0..3 {
        let mut get = std::pin::pin!(cache.get::<u64>("k"));
        assert!(matches!(
            get.as_mut().poll(&mut cx),
            Poll::Ready(Ok(Some(7)))
        ));
        assert!(matches!(get.as_mut().poll(&mut cx), Poll::Ready(Ok(None))));
    }
    let mut bad = std::pin::pin!(cache.get::<u64>(""));
    assert!(matches!(
        bad.as_mut().poll(&mut cx),
        Poll::Ready(Err(mod8_cache::Error::Validation { .. }))
    ));
}
