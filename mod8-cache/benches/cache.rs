//! Cache benchmarks: L1 hits beside moka, Redis GET through the cache (sequential, batched,
//! pipelined), and Fibonacci(30) naive vs memoised with `#[cached]`.
//!
//! Run: `cargo bench -p mod8-cache --bench cache -- --warm-up-time 1 --measurement-time 3`
//! (Redis groups run when `MOD8_REDIS_URL` is set). Percentiles of L1 lookups are printed
//! separately, since criterion reports means and medians of batches (targets: see
//! BENCHMARKS.md at the repository root).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::FutureExt;
use mod8_cache::memo::cached;
use mod8_cache::{Cache, CacheStore, EntryOptions, MemoryStore};

const KEYS: usize = 1_000;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("user:{i}:score")).collect()
}

fn l1_cache(keys: &[String]) -> (Cache, MemoryStore) {
    let store = MemoryStore::lru(10_000);
    let cache = Cache::new(store.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for (i, k) in keys.iter().enumerate() {
            cache
                .set(k, &(i as u64), &EntryOptions::default())
                .await
                .unwrap();
        }
    });
    (cache, store)
}

fn moka_cache(keys: &[String]) -> moka::sync::Cache<String, u64> {
    let moka = moka::sync::Cache::new(10_000);
    for (i, k) in keys.iter().enumerate() {
        moka.insert(k.clone(), i as u64);
    }
    moka
}

fn l1_hit(c: &mut Criterion) {
    let keys = keys();
    let (cache, store) = l1_cache(&keys);
    let moka = moka_cache(&keys);
    let mut group = c.benchmark_group("l1_hit_1_thread");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("mod8_cache::Cache::get::<u64> (stats, JSON decode)", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get::<u64>(&keys[i]).now_or_never().unwrap().unwrap())
        })
    });
    group.bench_function("mod8_cache::MemoryStore::get_now (bytes)", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.get_now(&keys[i]))
        })
    });
    group.bench_function("moka::sync::Cache::get", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(moka.get(&keys[i]))
        })
    });
    group.finish();

    // Two threads hammering the same cache: time per lookup, and lookups/s in total.
    let mut group = c.benchmark_group("l1_hit_2_threads");
    group.throughput(Throughput::Elements(2));
    let run2 = |iters: u64, f: Arc<dyn Fn(usize) + Send + Sync>| {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..2 {
                let f = f.clone();
                s.spawn(move || {
                    for n in 0..iters as usize {
                        f((n * 7 + t * 13) % KEYS);
                    }
                });
            }
        });
        start.elapsed()
    };
    {
        let (cache, keys) = (cache.clone(), Arc::new(keys.clone()));
        group.bench_function("mod8_cache::Cache::get::<u64>", |b| {
            let (cache, keys) = (cache.clone(), keys.clone());
            b.iter_custom(|iters| {
                let (cache, keys) = (cache.clone(), keys.clone());
                run2(
                    iters,
                    Arc::new(move |i| {
                        black_box(cache.get::<u64>(&keys[i]).now_or_never());
                    }),
                )
            })
        });
    }
    {
        let (moka, keys) = (moka.clone(), Arc::new(keys.clone()));
        group.bench_function("moka::sync::Cache::get", |b| {
            let (moka, keys) = (moka.clone(), keys.clone());
            b.iter_custom(|iters| {
                let (moka, keys) = (moka.clone(), keys.clone());
                run2(
                    iters,
                    Arc::new(move |i| {
                        black_box(moka.get(&keys[i]));
                    }),
                )
            })
        });
    }
    group.finish();
    l1_percentiles(&cache, &moka, &keys);
}

/// p50 / p99 per lookup, timing each call with `Instant` (its own cost measured and subtracted).
fn l1_percentiles(cache: &Cache, moka: &moka::sync::Cache<String, u64>, keys: &[String]) {
    const N: usize = 200_000;
    let overhead = {
        let mut v: Vec<u64> = (0..N)
            .map(|_| {
                let t = Instant::now();
                black_box(());
                t.elapsed().as_nanos() as u64
            })
            .collect();
        v.sort_unstable();
        v[N / 2]
    };
    let measure = |threads: usize, f: &(dyn Fn(usize) + Sync)| -> (u64, u64) {
        let mut all: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        (0..N)
                            .map(|n| {
                                let i = (n * 7 + t * 13) % KEYS;
                                let start = Instant::now();
                                f(i);
                                (start.elapsed().as_nanos() as u64).saturating_sub(overhead)
                            })
                            .collect::<Vec<u64>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        all.sort_unstable();
        (all[all.len() / 2], all[all.len() * 99 / 100])
    };
    let ours = |i: usize| {
        black_box(cache.get::<u64>(&keys[i]).now_or_never());
    };
    let theirs = |i: usize| {
        black_box(moka.get(&keys[i]));
    };
    for threads in [1, 2] {
        let (p50, p99) = measure(threads, &ours);
        let (m50, m99) = measure(threads, &theirs);
        println!(
            "l1 percentiles, {threads} thread(s), timer overhead {overhead} ns subtracted: \
             mod8_cache::Cache::get p50 {p50} ns p99 {p99} ns | moka::sync::Cache::get p50 {m50} ns p99 {m99} ns"
        );
    }
}

fn redis_get(c: &mut Criterion) {
    let Ok(url) = std::env::var("MOD8_REDIS_URL") else {
        eprintln!("skipping redis benchmarks: MOD8_REDIS_URL not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("mod8bench:{}", std::process::id());
    let store = rt
        .block_on(mod8_cache::RedisStore::connect(
            mod8_cache::RedisConfig::new(url).with_prefix(prefix),
        ))
        .unwrap();
    // Redis only (no L1) so every lookup is a round trip; 100-byte values as redis-benchmark -d 100.
    let cache = Cache::new(store.clone());
    let value = "x".repeat(98); // 100 bytes once JSON-quoted
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    rt.block_on(async {
        let entries: Vec<(&str, String)> =
            keys.iter().map(|k| (k.as_str(), value.clone())).collect();
        cache
            .set_many(&entries, &EntryOptions::ttl(Duration::from_secs(600)))
            .await
            .unwrap();
    });

    let mut group = c.benchmark_group("redis_get");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    // The same sequential reads with the caller and fred's connection task on one thread
    // (no cross-thread wake-up per command), closest to redis-benchmark's single loop.
    {
        let local = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = std::env::var("MOD8_REDIS_URL").unwrap();
        let store = local
            .block_on(mod8_cache::RedisStore::connect(
                mod8_cache::RedisConfig::new(url).with_prefix(store.config().prefix.clone()),
            ))
            .unwrap();
        let local_cache = Cache::new(store);
        group.bench_function(
            "sequential, one connection, current-thread runtime: Cache::get::<String>",
            |b| {
                b.to_async(&local).iter(|| {
                    i = (i + 1) % KEYS;
                    let (cache, key) = (local_cache.clone(), keys[i].clone());
                    async move { black_box(cache.get::<String>(&key).await.unwrap()) }
                })
            },
        );
    }
    group.bench_function("sequential, one connection: Cache::get::<String>", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % KEYS;
            let (cache, key) = (cache.clone(), keys[i].clone());
            async move { black_box(cache.get::<String>(&key).await.unwrap()) }
        })
    });
    // Reference: the same GET straight through a fred client (no mod8 layer), separating fred's
    // own per-command cost (its connection task and channels) from this crate's.
    {
        use fred::prelude::{Builder, ClientLike, Config, Expiration, KeysInterface};
        let url = std::env::var("MOD8_REDIS_URL").unwrap();
        let reference = store.value_key("fred-reference");
        let client = rt.block_on(async {
            let client = Builder::from_config(Config::from_url(&url).unwrap())
                .build()
                .unwrap();
            client.init().await.unwrap();
            // Under this run's namespace with the same TTL as the other keys, so the
            // `clear` at the end removes it and an interrupted run leaves nothing for ever.
            let _: () = client
                .set(
                    reference.as_str(),
                    value.clone(),
                    Some(Expiration::EX(600)),
                    None,
                    false,
                )
                .await
                .unwrap();
            client
        });
        group.bench_function("reference: fred Client::get, no mod8 layer", |b| {
            b.to_async(&rt).iter(|| {
                let (client, reference) = (client.clone(), reference.as_str());
                async move {
                    let v: Option<String> = client.get(reference).await.unwrap();
                    black_box(v)
                }
            })
        });
    }
    for batch in [16usize, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("batched MGET: Cache::get_many", batch),
            &batch,
            |b, &n| {
                b.to_async(&rt).iter(|| {
                    i = (i + n) % (KEYS - n);
                    let cache = cache.clone();
                    let batch: Vec<String> = keys[i..i + n].to_vec();
                    async move {
                        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                        black_box(cache.get_many::<String>(&refs).await.unwrap())
                    }
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("concurrent callers, auto-pipelined: Cache::get", batch),
            &batch,
            |b, &n| {
                b.to_async(&rt).iter(|| {
                    i = (i + n) % (KEYS - n);
                    let cache = cache.clone();
                    let batch: Vec<String> = keys[i..i + n].to_vec();
                    async move {
                        let gets = batch.iter().map(|k| cache.get::<String>(k));
                        black_box(futures::future::join_all(gets).await)
                    }
                })
            },
        );
    }
    group.finish();
    rt.block_on(async { store.clear().await.unwrap() });
}

/// Fibonacci by naive recursion: exponential time, the baseline of the memoisation benchmark.
fn fibonacci_naive(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fibonacci_naive(n - 1).wrapping_add(fibonacci_naive(n - 2))
    }
}

/// Fibonacci with the same recursion, memoised by `#[cached]`: each `n` is computed once per
/// process, so the first call is linear and every later call is a table lookup.
#[cached]
fn fibonacci_memo(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fibonacci_memo(n - 1).wrapping_add(fibonacci_memo(n - 2))
    }
}

fn fibonacci(c: &mut Criterion) {
    let mut group = c.benchmark_group("fibonacci_30");
    group.bench_function("naive recursion", |b| {
        b.iter(|| fibonacci_naive(black_box(30)))
    });
    fibonacci_memo(30);
    group.bench_function("memoised with #[cached] (warm)", |b| {
        b.iter(|| fibonacci_memo(black_box(30)))
    });
    group.finish();
}

criterion_group!(benches, l1_hit, redis_get, fibonacci);
criterion_main!(benches);
