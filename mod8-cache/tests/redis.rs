//! The Redis backend against a real server (`MOD8_REDIS_URL`): the conformance suite for
//! Redis alone and for L1 + Redis, plus failure, reconnection and pub/sub behaviour.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::convert::Infallible;
use std::time::Duration;

use fred::prelude::{ClientInterface, ClientLike};
use fred::types::client::ClientKillFilter;
use mod8_cache::{
    Cache, CacheStore, EntryOptions, MemoryStore, RedisConfig, RedisStore, TierOptions, TieredStore,
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
    use mod8_cache::testing::CacheFixture;
    mod8_cache::conformance_tests!(async {
        super::redis("cache conformance (redis)")
            .await
            .map(CacheFixture::new)
    });
}

mod tiered_over_redis {
    use mod8_cache::{testing::CacheFixture, MemoryStore, TierOptions, TieredStore};
    use std::time::Duration;
    mod8_cache::conformance_tests!(async {
        let redis = super::redis("cache conformance (memory + redis)").await?;
        let tiered = TieredStore::with_redis(
            MemoryStore::lru(1_000),
            redis,
            TierOptions::default()
                .with_l1_ttl(Duration::from_secs(30))
                .with_pubsub(true),
        )
        .await
        .expect("tiered store");
        Some(CacheFixture::new(tiered))
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
    let tiered = TieredStore::with_redis(
        l1.clone(),
        store.clone(),
        TierOptions::default().with_pubsub(false),
    )
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
    let ttl = TierOptions::default().with_l1_ttl(Duration::from_secs(60));
    let tier_a = TieredStore::with_redis(l1_a, a.clone(), ttl.with_pubsub(true))
        .await
        .unwrap();
    let tier_b = TieredStore::with_redis(l1_b.clone(), b, ttl.with_pubsub(true))
        .await
        .unwrap();
    let options = EntryOptions::ttl(Duration::from_secs(60)).with_tag("user:1");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_without_pubsub_publishes_nothing() {
    let Some(store) = redis("cache: pubsub = false publishes nothing").await else {
        return;
    };
    let url = std::env::var(mod8_testkit::REDIS).unwrap();
    let listener =
        fred::types::Builder::from_config(fred::types::config::Config::from_url(&url).unwrap())
            .build()
            .unwrap();
    listener.init().await.unwrap();
    let mut messages = fred::prelude::EventInterface::message_rx(&listener);
    fred::prelude::PubsubInterface::subscribe(&listener, store.invalidation_channel())
        .await
        .unwrap();

    let ttl = TierOptions::default().with_l1_ttl(Duration::from_secs(60));
    let quiet =
        TieredStore::with_redis(MemoryStore::lru(10), store.clone(), ttl.with_pubsub(false))
            .await
            .unwrap();
    let options = EntryOptions::ttl(Duration::from_secs(60)).with_tag("t");
    quiet
        .set("k", b"v".as_slice().into(), &options)
        .await
        .unwrap();
    quiet.delete("k").await.unwrap();
    quiet.invalidate_pattern("k*").await.unwrap();
    quiet.invalidate_tag("t").await.unwrap();
    quiet.clear().await.unwrap();

    // A tier with pub/sub on the same connection publishes after the quiet one: its message
    // must be the first the listener sees (one connection keeps publish order).
    let loud = TieredStore::with_redis(MemoryStore::lru(10), store.clone(), ttl.with_pubsub(true))
        .await
        .unwrap();
    loud.delete("marker").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), messages.recv())
        .await
        .expect("the tier with pub/sub published nothing")
        .unwrap();
    let text = first.value.as_str().unwrap().to_string();
    assert!(
        text.contains("marker"),
        "a tier built with pubsub = false published {text}"
    );
    store.clear().await.unwrap();
    let _ = listener.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_set_lives_as_long_as_its_longest_lived_member() {
    let Some(store) = redis("cache: tag set lifetime").await else {
        return;
    };
    let tag_set = format!("{}t:t", store.namespace());
    let pttl = || async {
        let ms: i64 = fred::prelude::KeysInterface::pttl(store.client(), tag_set.as_str())
            .await
            .unwrap();
        ms
    };
    let set = |key: &'static str, ttl: Option<u64>| {
        let store = store.clone();
        async move {
            let options = EntryOptions::default()
                .with_ttl(ttl.map(Duration::from_secs))
                .with_tag("t");
            store
                .set(key, b"v".as_slice().into(), &options)
                .await
                .unwrap();
        }
    };
    set("a", Some(60)).await;
    assert!(
        (59_000..=60_000).contains(&pttl().await),
        "a new set takes its member's TTL"
    );
    set("b", Some(1)).await;
    assert!(
        pttl().await > 59_000,
        "a shorter-lived member shortened the set"
    );
    set("c", Some(120)).await;
    assert!(
        pttl().await > 119_000,
        "a longer-lived member did not extend the set"
    );
    set("d", None).await;
    assert_eq!(
        pttl().await,
        -1,
        "a member without TTL must make the set persistent"
    );
    set("e", Some(1)).await;
    assert_eq!(
        pttl().await,
        -1,
        "a member with a TTL gave a persistent set an expiry"
    );
    store.clear().await.unwrap();
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

/// `host:port` of a `redis://` URL, for the proxy to forward to.
fn proxy_target(url: &str) -> String {
    url.trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_string()
}

async fn wait_until_disconnected(store: &RedisStore) {
    for _ in 0..200 {
        if !store.is_connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the store still reports a connection after the proxy went down");
}

/// Runs `op`, asserting it fails with a transient error well before the command timeout.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    op: impl std::future::Future<Output = mod8_cache::Result<T>>,
) {
    let start = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), op)
        .await
        .unwrap_or_else(|_| panic!("{what} hung while Redis was down"));
    let took = start.elapsed();
    let err = outcome.expect_err(&format!("{what} succeeded while Redis was down"));
    assert!(err.is_transient(), "{what}: {err}");
    assert!(
        took < Duration::from_millis(500),
        "{what} took {took:?} while Redis was down: it waited instead of failing fast"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_fails_fast_while_redis_is_down_tagged_writes_included() {
    let Some(url) =
        mod8_testkit::service_url(mod8_testkit::REDIS, "cache: fail fast while redis is down")
    else {
        return;
    };
    let mut proxy = Proxy::start(proxy_target(&url)).await;
    // A long command timeout, so a path that waits for it instead of failing fast shows.
    let config = RedisConfig::new(format!("redis://127.0.0.1:{}/", proxy.port))
        .with_prefix(mod8_testkit::unique_name("mod8test:cache"))
        .with_command_timeout(Duration::from_secs(3));
    let store = RedisStore::connect(config).await.unwrap();
    let cache = Cache::new(store.clone());
    let tagged = EntryOptions::ttl(Duration::from_secs(60)).with_tag("user:1");
    cache.set("k", &1u32, &tagged).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));

    proxy.down().await;
    wait_until_disconnected(&store).await;

    // Requests through the cache: each answered by its loader, none waiting for Redis,
    // though every one of them tries a tagged write.
    let start = std::time::Instant::now();
    for i in 0..5u32 {
        let v = cache
            .get_or_load(&format!("k{i}"), &tagged, || async move {
                Ok::<_, Infallible>(i)
            })
            .await
            .unwrap();
        assert_eq!(v, i);
        cache.set(&format!("s{i}"), &i, &tagged).await.unwrap();
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "5 tagged get_or_load + set took {took:?} while Redis was down"
    );

    // Every store operation: a transient error, at once.
    let value: mod8_cache::Bytes = b"v".as_slice().into();
    fails_fast("get", store.get("k")).await;
    fails_fast("get_many", store.get_many(&["k", "k0"])).await;
    fails_fast(
        "set (untagged)",
        store.set("k", value.clone(), &EntryOptions::default()),
    )
    .await;
    fails_fast("set (tagged)", store.set("k", value.clone(), &tagged)).await;
    fails_fast(
        "set_many (tagged)",
        store.set_many(&[("a", value.clone()), ("b", value.clone())], &tagged),
    )
    .await;
    fails_fast("delete", store.delete("k")).await;
    fails_fast("invalidate_pattern", store.invalidate_pattern("k*")).await;
    fails_fast("invalidate_tag", store.invalidate_tag("user:1")).await;
    fails_fast("clear", store.clear()).await;

    proxy.up().await;
    wait_until_recovered(&store).await;
    // The value from before the outage is still tagged: invalidating the tag removes it.
    assert!(store
        .invalidate_tag("user:1")
        .await
        .unwrap()
        .contains(&"k".to_string()));
    store.clear().await.unwrap();
    proxy.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_and_redis_back_is_picked_up_alone() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::REDIS, "cache: redis down and back")
    else {
        return;
    };
    let mut proxy = Proxy::start(proxy_target(&url)).await;
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

/// The commands Redis receives for keys containing `needle`, seen through MONITOR on a raw
/// connection of its own (exact whatever other clients send meanwhile).
struct Monitor {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::TcpStream>>,
}

impl Monitor {
    async fn start(url: &str) -> Monitor {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(proxy_target(url))
            .await
            .unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = tokio::io::BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        Monitor { lines }
    }

    /// The commands (upper-cased names) on keys containing `needle`, up to the GET of
    /// `sentinel` the caller sends after its operations.
    async fn commands_until(&mut self, needle: &str, sentinel: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.lines.next_line().await.unwrap().unwrap();
            if line.contains(sentinel) {
                return seen;
            }
            if line.contains(needle) {
                // `+<time> [<db> <addr>] "GET" "key"`
                if let Some(command) = line.split('"').nth(1) {
                    seen.push(command.to_ascii_uppercase());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_miss_sends_one_get_to_redis() {
    let Some(store) = redis("cache: GETs per miss (MONITOR)").await else {
        return;
    };
    let url = std::env::var(mod8_testkit::REDIS).unwrap();
    let options = EntryOptions::ttl(Duration::from_secs(60));
    let tiered = TieredStore::with_redis(
        MemoryStore::lru(100),
        store.clone(),
        TierOptions::default().with_pubsub(false),
    )
    .await
    .unwrap();
    for (name, cache) in [
        ("redis", Cache::new(store.clone())),
        ("tiered", Cache::new(tiered)),
    ] {
        let key = format!("gets-per-miss-{name}");
        let mut monitor = Monitor::start(&url).await;
        let v = cache
            .get_or_load(&key, &options, || async { Ok::<_, Infallible>(11u32) })
            .await
            .unwrap();
        assert_eq!(v, 11);
        let sentinel = format!("{key}-sentinel");
        let _ = store.get(&sentinel).await.unwrap();
        let commands = monitor.commands_until(&key, &sentinel).await;
        let gets = commands.iter().filter(|c| *c == "GET").count();
        assert_eq!(
            gets, 1,
            "{name}: one miss must send one GET to Redis, saw {commands:?}"
        );
        assert_eq!(commands.iter().filter(|c| *c == "SET").count(), 1);
    }
}
