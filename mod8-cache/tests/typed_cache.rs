//! The typed front and the decorator: fail-open behaviour over a failing store, codecs,
//! configuration, and a repository wrapped by `CacheLayer`.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mod8_cache::{
    Bytes, Cache, CacheConfig, CacheLayer, CacheStore, Cached, Codec, EntryOptions, Error,
    MemoryStore, TierOptions, TieredStore, WritePolicy,
};

/// A backend that is always down, as Redis is when unreachable.
struct Down;

#[async_trait]
impl CacheStore for Down {
    fn backend(&self) -> &'static str {
        "down"
    }
    async fn get(&self, _: &str) -> mod8_cache::Result<Option<Bytes>> {
        Err(Error::unavailable("down", "down"))
    }
    async fn get_many(&self, _: &[&str]) -> mod8_cache::Result<Vec<Option<Bytes>>> {
        Err(Error::unavailable("down", "down"))
    }
    async fn set(&self, _: &str, _: Bytes, _: &EntryOptions) -> mod8_cache::Result<()> {
        Err(Error::unavailable("down", "down"))
    }
    async fn set_many(&self, _: &[(&str, Bytes)], _: &EntryOptions) -> mod8_cache::Result<()> {
        Err(Error::unavailable("down", "down"))
    }
    async fn delete(&self, _: &str) -> mod8_cache::Result<bool> {
        Err(Error::unavailable("down", "down"))
    }
    async fn invalidate_pattern(&self, _: &str) -> mod8_cache::Result<u64> {
        Err(Error::unavailable("down", "down"))
    }
    async fn invalidate_tag(&self, _: &str) -> mod8_cache::Result<Vec<String>> {
        Err(Error::unavailable("down", "down"))
    }
    async fn clear(&self) -> mod8_cache::Result<()> {
        Err(Error::unavailable("down", "down"))
    }
    fn evictions(&self) -> u64 {
        0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_never_fails_the_caller() {
    let cache = Cache::new(Down);
    let options = EntryOptions::ttl(Duration::from_secs(60));
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    cache.set("k", &1u32, &options).await.unwrap();
    assert_eq!(
        cache.get_many::<u32>(&["a", "b"]).await.unwrap(),
        vec![None, None]
    );
    let v = cache
        .get_or_load("k", &options, || async { Ok::<_, std::io::Error>(7u32) })
        .await
        .unwrap();
    assert_eq!(v, 7);
    // Stampede protection still holds while the backend is down, for the callers that arrive
    // while the load runs (with nowhere to keep the value, a later caller loads again).
    let loads = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::watch::channel(false);
    let misses_before = cache.stats().misses;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, loads, options, mut released) = (
                cache.clone(),
                loads.clone(),
                options.clone(),
                released.clone(),
            );
            tokio::spawn(async move {
                cache
                    .get_or_load("hot", &options, || async move {
                        loads.fetch_add(1, SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                        Ok::<_, std::io::Error>(3u32)
                    })
                    .await
            })
        })
        .collect();
    // Every caller has missed (it joins the flight right after, without yielding).
    while cache.stats().misses < misses_before + 20 {
        tokio::task::yield_now().await;
    }
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    release.send(true).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 3);
    }
    assert_eq!(loads.load(SeqCst), 1);
    // Invalidation reports the failure: skipping it silently would serve stale data.
    assert!(cache.delete("k").await.unwrap_err().is_transient());
    assert!(cache.stats().backend_errors >= 4);
}

#[tokio::test]
async fn bad_input_is_a_validation_error_and_get_or_load_still_answers() {
    let cache = Cache::in_process(10);
    assert!(matches!(
        cache.get::<u32>("").await,
        Err(Error::Validation { field, .. }) if field == "key"
    ));
    assert!(matches!(
        cache
            .set("k", &1u32, &EntryOptions::ttl(Duration::ZERO))
            .await,
        Err(Error::Validation { field, .. }) if field == "ttl"
    ));
    let v = cache
        .get_or_load("", &EntryOptions::default(), || async {
            Ok::<_, std::io::Error>(1u8)
        })
        .await
        .unwrap();
    assert_eq!(v, 1);
}

#[tokio::test]
async fn messagepack_codec_round_trips_and_json_bytes_are_misses_for_it() {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Profile {
        id: u64,
        segments: Vec<String>,
        score: f64,
    }
    let store = MemoryStore::lru(10);
    let json = Cache::new(store.clone());
    let msgpack = Cache::builder(store.clone())
        .with_codec(Codec::MessagePack)
        .build();
    let p = Profile {
        id: 9,
        segments: vec!["vip".into()],
        score: 0.5,
    };
    msgpack
        .set("p", &p, &EntryOptions::default())
        .await
        .unwrap();
    assert_eq!(msgpack.get::<Profile>("p").await.unwrap(), Some(p.clone()));
    let packed = store.get_now("p").unwrap().len();
    json.set("p", &p, &EntryOptions::default()).await.unwrap();
    assert!(
        packed < store.get_now("p").unwrap().len(),
        "MessagePack should be smaller"
    );
    // Bytes in the other format are a miss (and counted), not an error.
    assert_eq!(msgpack.get::<Profile>("p").await.unwrap(), None);
    assert_eq!(msgpack.stats().decode_errors, 1);
    assert_eq!("msgpack".parse::<Codec>().unwrap(), Codec::MessagePack);
    assert!("xml".parse::<Codec>().is_err());
}

#[tokio::test]
async fn config_without_redis_builds_an_in_process_cache_with_the_default_ttl() {
    let config = CacheConfig {
        default_ttl_secs: Some(1),
        ..CacheConfig::default()
    }
    .with_redis_url(None)
    .with_name("recs");
    let cache = config.connect().await.unwrap();
    assert_eq!(cache.backend(), "memory");
    assert_eq!(cache.name(), "recs");
    cache
        .set("k", &1u8, &EntryOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        cache.get::<u8>("k").await.unwrap(),
        None,
        "default TTL not applied"
    );
    assert!(cache
        .stats()
        .to_prometheus(cache.name())
        .contains("mod8_cache_misses_total{cache=\"recs\"} 1"));
}

#[tokio::test]
async fn tiered_get_many_keeps_l1_hits_when_l2_fails() {
    let l1 = MemoryStore::lru(10);
    let tiered = TieredStore::new(
        l1.clone(),
        Down,
        TierOptions::default().with_l1_ttl(Duration::from_secs(5)),
    );
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
    let cache = Cache::new(tiered.clone());
    let typed: Vec<Option<u8>> = cache.get_many(&["a", "b", "c"]).await.unwrap();
    assert_eq!(typed, vec![Some(1), None, Some(3)]);
    // Bad input is still refused, not swallowed.
    assert!(tiered.get_many(&["a", ""]).await.is_err());
}

// ---- the decorator over a repository trait ----

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
    email: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
struct RepoError(String);

impl From<Arc<RepoError>> for RepoError {
    fn from(e: Arc<RepoError>) -> Self {
        (*e).clone()
    }
}

#[async_trait]
trait UserRepository: Send + Sync {
    async fn find(&self, id: u64) -> Result<Option<User>, RepoError>;
    async fn update_email(&self, id: u64, email: &str) -> Result<User, RepoError>;
}

#[derive(Default)]
struct InMemoryUsers {
    users: std::sync::Mutex<std::collections::HashMap<u64, User>>,
    reads: AtomicUsize,
}

#[async_trait]
impl UserRepository for InMemoryUsers {
    async fn find(&self, id: u64) -> Result<Option<User>, RepoError> {
        self.reads.fetch_add(1, SeqCst);
        if id == 0 {
            return Err(RepoError("database unavailable".into()));
        }
        Ok(self.users.lock().unwrap().get(&id).cloned())
    }
    async fn update_email(&self, id: u64, email: &str) -> Result<User, RepoError> {
        let mut users = self.users.lock().unwrap();
        let user = users
            .get_mut(&id)
            .ok_or_else(|| RepoError(format!("no user {id}")))?;
        user.email = email.to_owned();
        Ok(user.clone())
    }
}

#[async_trait]
impl<R: UserRepository> UserRepository for Cached<R> {
    async fn find(&self, id: u64) -> Result<Option<User>, RepoError> {
        Ok(self.read_optional(&self.key(id), |r| r.find(id)).await?)
    }
    async fn update_email(&self, id: u64, email: &str) -> Result<User, RepoError> {
        self.write(&self.key(id), |r| r.update_email(id, email))
            .await
    }
}

fn repo() -> InMemoryUsers {
    let repo = InMemoryUsers::default();
    repo.users.lock().unwrap().insert(
        1,
        User {
            id: 1,
            email: "a@x".into(),
        },
    );
    repo
}

#[tokio::test]
async fn decorator_reads_aside_and_invalidates_on_write() {
    let layer = CacheLayer::new(Cache::in_process(100), "user").with_ttl(Duration::from_secs(60));
    let cached = Arc::new(layer.layer(repo()));
    let users: Arc<dyn UserRepository> = cached.clone();
    assert_eq!(users.find(1).await.unwrap().unwrap().email, "a@x");
    assert_eq!(users.find(1).await.unwrap().unwrap().email, "a@x");
    assert_eq!(
        cached.inner().reads.load(SeqCst),
        1,
        "second read was not cached"
    );
    users.update_email(1, "b@x").await.unwrap();
    assert_eq!(
        users.find(1).await.unwrap().unwrap().email,
        "b@x",
        "stale after write"
    );
    assert_eq!(cached.inner().reads.load(SeqCst), 2);
    // Errors pass through and are not cached; "not found" is not cached by default.
    assert_eq!(
        users.find(0).await,
        Err(RepoError("database unavailable".into()))
    );
    assert!(users.find(0).await.is_err());
    assert_eq!(users.find(404).await.unwrap(), None);
    assert_eq!(users.find(404).await.unwrap(), None);
    assert_eq!(cached.inner().reads.load(SeqCst), 6);
    assert!(users.update_email(404, "c@x").await.is_err());
}

#[tokio::test]
async fn decorator_write_through_and_negative_caching() {
    let layer = CacheLayer::new(Cache::in_process(100), "user")
        .with_write_policy(WritePolicy::WriteThrough)
        .with_negative_ttl(Duration::from_secs(60));
    let cached = layer.layer(repo());
    cached.update_email(1, "w@x").await.unwrap();
    assert_eq!(cached.find(1).await.unwrap().unwrap().email, "w@x");
    assert_eq!(
        cached.inner().reads.load(SeqCst),
        0,
        "write-through should make the read a hit"
    );
    assert_eq!(cached.find(404).await.unwrap(), None);
    assert_eq!(cached.find(404).await.unwrap(), None);
    assert_eq!(
        cached.inner().reads.load(SeqCst),
        1,
        "None was not negatively cached"
    );
    cached.invalidate(&cached.key(404)).await;
    assert_eq!(cached.find(404).await.unwrap(), None);
    assert_eq!(cached.inner().reads.load(SeqCst), 2);
}

/// A repository whose next read takes its snapshot, then waits for the test to release it:
/// a slow query that returns the row as it was when it ran.
struct SlowUsers {
    inner: InMemoryUsers,
    hold: std::sync::atomic::AtomicBool,
    started: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait]
impl UserRepository for SlowUsers {
    async fn find(&self, id: u64) -> Result<Option<User>, RepoError> {
        let snapshot = self.inner.find(id).await;
        if self.hold.swap(false, SeqCst) {
            self.started.notify_one();
            self.release.notified().await;
        }
        snapshot
    }
    async fn update_email(&self, id: u64, email: &str) -> Result<User, RepoError> {
        self.inner.update_email(id, email).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decorator_write_during_a_slow_read_is_not_undone_by_its_write_back() {
    for policy in [WritePolicy::Invalidate, WritePolicy::WriteThrough] {
        let layer = CacheLayer::new(Cache::in_process(100), "user")
            .with_ttl(Duration::from_secs(60))
            .with_write_policy(policy);
        let users = Arc::new(layer.layer(SlowUsers {
            inner: repo(),
            hold: true.into(),
            started: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        }));
        let reader = {
            let users = users.clone();
            tokio::spawn(async move { users.find(1).await })
        };
        users.inner().started.notified().await;
        users.update_email(1, "new@x").await.unwrap();
        users.inner().release.notify_one();
        // The slow read answers with what it read...
        assert_eq!(reader.await.unwrap().unwrap().unwrap().email, "a@x");
        // ...but does not put it back in the cache over the write.
        assert_eq!(
            users.find(1).await.unwrap().unwrap().email,
            "new@x",
            "{policy:?}: the slow read's old row was cached after the write"
        );
    }
}
