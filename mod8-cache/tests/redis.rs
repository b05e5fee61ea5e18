//! The Redis backend against a real server (`MOD8_REDIS_URL`): the conformance suite for
//! Redis alone and for L1 + Redis, plus failure, reconnection and pub/sub behaviour.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::convert::Infallible;
use std::time::Duration;

use fred::prelude::{ClientInterface, ClientLike};
use fred::types::client::ClientKillFilter;
use mod8_cache::{
    Cache, CacheStore, EntryOptions, MemoryStore, RedisConfig, RedisStore, TieredStore,
};

/// A store in a namespace of its own, or `None` (skip) when Redis is not configured.
async fn redis(suite: &str) -> Option<RedisStore> {
    let url = mod8_testkit::service_url(mod8_testkit::REDIS, suite)?;
    let config = RedisConfig::new(url).with_prefix(mod8_testkit::unique_name("mod8test:cache"));
    Some(
        RedisStore::connect(config)
            .await
            .expect("MOD8_REDIS_URL is set but Redis is not reachable"),
    )
}

mod redis_alone {
    use mod8_cache::testing::Fixture;
    mod8_cache::conformance_tests!(async {
        super::redis("cache conformance (redis)")
            .await
            .map(Fixture::new)
    });
}

mod tiered_over_redis {
    use mod8_cache::{testing::Fixture, MemoryStore, TieredStore};
    use std::time::Duration;
    mod8_cache::conformance_tests!(async {
        let redis = super::redis("cache conformance (memory + redis)").await?;
        let tiered = TieredStore::with_redis(
            MemoryStore::lru(1_000),
            redis,
            Some(Duration::from_secs(30)),
            true,
        )
        .await
        .expect("tiered store");
        Some(Fixture::new(tiered))
    });
}

/// A second connection, used only to kill our own connection by its CLIENT ID.
async fn killer(url: &str) -> fred::clients::Client {
    let client =
        fred::types::Builder::from_config(fred::types::config::Config::from_url(url).unwrap())
            .build()
            .unwrap();
    client.init().await.unwrap();
    client
}

async fn wait_until_recovered(store: &RedisStore) {
    for _ in 0..200 {
        if store.is_connected() && store.get("probe").await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the store did not reconnect after CLIENT KILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stay_correct_when_the_connection_is_killed_and_the_cache_recovers() {
    let Some(store) = redis("cache fault: CLIENT KILL mid-stream").await else {
        return;
    };
    let url = std::env::var(mod8_testkit::REDIS).unwrap();
    let cache = Cache::new(store.clone());
    let options = EntryOptions::ttl(Duration::from_secs(120));
    let value_of = |k: u64| k * 10 + 1;
    for k in 0..50u64 {
        cache
            .set(&format!("k{k}"), &value_of(k), &options)
            .await
            .unwrap();
    }
    let my_id: i64 = store.client().client_id().await.unwrap();
    let killer = killer(&url).await;

    // Four concurrent readers and one sequential stream; the kill lands in the middle.
    let mut readers = Vec::new();
    for r in 0..4u64 {
        let (cache, options) = (cache.clone(), options.clone());
        readers.push(tokio::spawn(async move {
            for i in 0..300u64 {
                let k = (i * 7 + r) % 50;
                let got = cache
                    .get_or_load(&format!("k{k}"), &options, || async move {
                        Ok::<_, Infallible>(value_of(k))
                    })
                    .await
                    .unwrap();
                assert_eq!(got, value_of(k), "wrong value for k{k}");
                tokio::task::yield_now().await;
            }
        }));
    }
    for i in 0..300u64 {
        if i == 100 {
            // Only our own connection, selected by its id: other suites share this server.
            let killed: i64 = killer
                .client_kill(vec![ClientKillFilter::ID(my_id.to_string())])
                .await
                .unwrap();
            assert_eq!(killed, 1, "CLIENT KILL ID did not find our connection");
        }
        let k = i % 50;
        let got = cache
            .get_or_load(&format!("k{k}"), &options, || async move {
                Ok::<_, Infallible>(value_of(k))
            })
            .await
            .unwrap();
        assert_eq!(got, value_of(k), "wrong value for k{k} at read {i}");
    }
    for reader in readers {
        reader.await.unwrap();
    }

    wait_until_recovered(&store).await;
    let new_id: i64 = store.client().client_id().await.unwrap();
    assert_ne!(new_id, my_id, "still on the killed connection");
    // Served from Redis again: a value written now is read back from the server.
    store
        .set("after", b"1".as_slice().into(), &options)
        .await
        .unwrap();
    assert_eq!(
        store.get("after").await.unwrap().as_deref(),
        Some(b"1".as_slice())
    );
    let stats = cache.stats();
    assert!(stats.hits > 0);
    store.clear().await.unwrap();
    let _ = killer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_flushed_when_the_redis_connection_is_re_established() {
    let Some(store) = redis("cache: L1 flush on reconnect").await else {
        return;
    };
    let url = std::env::var(mod8_testkit::REDIS).unwrap();
    let l1 = MemoryStore::lru(100);
    let tiered = TieredStore::with_redis(l1.clone(), store.clone(), None, false)
        .await
        .unwrap();
    tiered
        .set(
            "k",
            b"v".as_slice().into(),
            &EntryOptions::ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(l1.get_now("k").is_some());
    let my_id: i64 = store.client().client_id().await.unwrap();
    let killer = killer(&url).await;
    let _: i64 = killer
        .client_kill(vec![ClientKillFilter::ID(my_id.to_string())])
        .await
        .unwrap();
    wait_until_recovered(&store).await;
    for _ in 0..100 {
        if l1.get_now("k").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        l1.get_now("k").is_none(),
        "L1 kept entries across a reconnection"
    );
    // L2 still has it and refills L1.
    assert!(tiered.get("k").await.unwrap().is_some());
    store.clear().await.unwrap();
    let _ = killer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_in_one_process_drops_l1_copies_in_another() {
    let Some(a) = redis("cache: pub/sub invalidation").await else {
        return;
    };
    // A second "process": another connection to the same namespace, with its own L1.
    let b = RedisStore::connect(a.config().clone()).await.unwrap();
    let (l1_a, l1_b) = (MemoryStore::lru(100), MemoryStore::lru(100));
    let ttl = Some(Duration::from_secs(60));
    let tier_a = TieredStore::with_redis(l1_a, a.clone(), ttl, true)
        .await
        .unwrap();
    let tier_b = TieredStore::with_redis(l1_b.clone(), b, ttl, true)
        .await
        .unwrap();
    let options = EntryOptions::ttl(Duration::from_secs(60)).tag("user:1");

    async fn eventually(check: impl Fn() -> bool, what: &str) {
        for _ in 0..250 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}");
    }

    for (key, how) in [
        ("k1", "key"),
        ("k2", "pattern"),
        ("k3", "tag"),
        ("k4", "clear"),
    ] {
        tier_a
            .set(key, b"v1".as_slice().into(), &options)
            .await
            .unwrap();
        assert!(tier_b.get(key).await.unwrap().is_some());
        assert!(l1_b.get_now(key).is_some(), "B's L1 was not filled");
        match how {
            "key" => assert!(tier_a.delete(key).await.unwrap()),
            "pattern" => assert_eq!(tier_a.invalidate_pattern("k2*").await.unwrap(), 1),
            "tag" => assert!(tier_a
                .invalidate_tag("user:1")
                .await
                .unwrap()
                .contains(&key.to_string())),
            _ => tier_a.clear().await.unwrap(),
        }
        eventually(
            || l1_b.get_now(key).is_none(),
            &format!("B kept {key} after a {how} invalidation in A"),
        )
        .await;
        assert!(tier_b.get(key).await.unwrap().is_none());
    }
    a.clear().await.unwrap();
}

#[tokio::test]
async fn cache_fails_open_when_redis_is_unreachable() {
    // Nothing listens on port 1: connecting fails fast and clearly.
    let err = RedisStore::connect(
        RedisConfig::new("redis://127.0.0.1:1/").with_command_timeout(Duration::from_millis(100)),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn connect_picks_the_backend_by_url() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::REDIS, "cache: connect(url)") else {
        return;
    };
    let cache = mod8_cache::connect(&url).await.unwrap();
    assert_eq!(cache.backend(), "tiered");
    let key = mod8_testkit::unique_name("connect");
    let v: u32 = cache
        .get_or_load(
            &key,
            &EntryOptions::ttl(Duration::from_secs(30)),
            || async { Ok::<_, Infallible>(3) },
        )
        .await
        .unwrap();
    assert_eq!(v, 3);
    assert!(cache.delete(&key).await.unwrap());
    assert_eq!(
        mod8_cache::connect("memory://").await.unwrap().backend(),
        "memory"
    );
}

/// A TCP proxy in front of the real Redis that the test can take down and bring back, to play
/// "Redis is down" without touching the shared server.
struct Proxy {
    port: u16,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Proxy {
            port,
            target,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every proxied connection (the JoinSet aborts on drop).
    async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_and_redis_back_is_picked_up_alone() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::REDIS, "cache: redis down and back")
    else {
        return;
    };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_string();
    let mut proxy = Proxy::start(target).await;
    let config = RedisConfig::new(format!("redis://127.0.0.1:{}/", proxy.port))
        .with_prefix(mod8_testkit::unique_name("mod8test:cache"))
        .with_command_timeout(Duration::from_millis(300));
    let store = RedisStore::connect(config).await.unwrap();
    let cache = Cache::new(store.clone());
    let options = EntryOptions::ttl(Duration::from_secs(60));
    cache.set("k", &1u32, &options).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));

    proxy.down().await;
    // Every call still answers, from the loader; none is an error.
    for i in 0..20u32 {
        let v = cache
            .get_or_load(
                "k",
                &options,
                || async move { Ok::<_, Infallible>(100 + i) },
            )
            .await
            .unwrap();
        assert_eq!(
            v,
            100 + i,
            "expected the loader's value while Redis is down"
        );
        assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    }
    assert!(cache.stats().backend_errors > 0);

    proxy.up().await;
    let mut back = false;
    for _ in 0..200 {
        if let Ok(Some(_)) = store.get("k").await {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the store did not reconnect when Redis came back");
    assert_eq!(
        cache.get::<u32>("k").await.unwrap(),
        Some(1),
        "value from before the outage"
    );
    store.clear().await.unwrap();
    proxy.down().await;
}
