//! Cache benchmarks: in-process (L1) hits beside moka, Redis GET through the cache beside a
//! plain fred client and `redis-benchmark`, and Fibonacci(30) naive vs memoised.
//!
//! Run: `cargo bench -p mod8-cache --bench cache -- --warm-up-time 1 --measurement-time 3`
//! (the Redis groups run when `MOD8_REDIS_URL` is set; `benches/compare.sh` runs the Python
//! peers first and passes their figures in). Besides criterion's means, the bench prints
//! percentile tables (p50/p99), each with the load average and the references measured in the
//! same run; their rows are measured in turns (10 rounds), so a busy spell on a shared machine
//! falls on every row alike. A criterion filter that matches nothing prints the tables only.
//!
//! - **L1 hit**, 1 and 2 threads, 1,000 keys: `Cache::get::<u64>` (statistics on) called from
//!   sync code (`now_or_never`) and awaited in async code, with and without a TTL on the
//!   entries, `Cache::get_shared`, `MemoryStore::get_now` (bytes), moka; with
//!   `MOD8_PEERS_JSON` (the Python peers' JSON output) also CPython's `functools.lru_cache`
//!   hit. p50 from per-call means of batches of 100 calls; p99 also from single calls. Two
//!   rows hit one key over and over instead, the shape of the CPython figure (`timeit` of
//!   `f(1)`): every other row walks all 1,000 keys.
//! - **Redis GET**, sequential on one connection, 100-byte values: this crate and a plain fred
//!   client on a current-thread runtime, on a multi-thread runtime from a task on it (as a
//!   request handler calls it), and from a thread outside it (every GET then crosses threads
//!   twice: to fred's connection task on a worker and back); `redis-benchmark -c 1 -n 50000
//!   -t get -d 100` (3 runs) when it is on the `PATH`; redis-py from `MOD8_PEERS_JSON`.
//!
//! Targets: see BENCHMARKS.md at the repository root.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

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

/// The load average, printed beside every table: the machine may be shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A figure from the Python peers' JSON (`MOD8_PEERS_JSON`): `bench.figure.value`.
fn peer_figure(bench: &str, figure: &str) -> Option<f64> {
    let path = std::env::var("MOD8_PEERS_JSON").ok()?;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json.get(bench)?.get(figure)?.get("value")?.as_f64()
}

/// Appends one figure to the file named by `MOD8_BENCH_FIGURES`, if set, as a JSON line
/// (`{"bench", "figure", "value", "unit"}`): what `scripts/compare-peers.sh` reads to print
/// mod8's figures beside the Python peers' and the server tools'.
fn record_figure(figure: &str, value: f64, unit: &str) {
    use std::io::Write;
    let Ok(path) = std::env::var("MOD8_BENCH_FIGURES") else {
        return;
    };
    let line = serde_json::json!({
        "bench": "mod8-cache",
        "figure": figure,
        "value": value,
        "unit": unit,
    });
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("cannot append to MOD8_BENCH_FIGURES={path}: {e}");
    }
}

/// p50 and p99 (nearest rank) of unsorted samples.
fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_unstable_by(f64::total_cmp);
    let rank =
        |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    (rank(0.50), rank(0.99))
}

/// A cache over an in-process store holding `KEYS` `u64` values (and the same under `str:`
/// as strings), with or without a TTL on the entries.
fn l1_cache(keys: &[String], ttl: Option<Duration>) -> (Cache, MemoryStore) {
    let store = MemoryStore::lru(10_000);
    let cache = Cache::new(store.clone());
    let options = EntryOptions::default().with_ttl(ttl);
    futures::executor::block_on(async {
        for (i, k) in keys.iter().enumerate() {
            cache.set(k, &(i as u64), &options).await.unwrap();
            let text = format!("value number {i}, long enough to be worth sharing");
            cache
                .set(&format!("str:{k}"), &text, &options)
                .await
                .unwrap();
        }
        // The first typed hit decodes and keeps the value; the bench measures the later ones.
        for k in keys {
            cache.get::<u64>(k).await.unwrap().unwrap();
            cache
                .get_shared::<String>(&format!("str:{k}"))
                .await
                .unwrap()
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

fn typed_get(cache: &Cache, key: &str) -> Option<u64> {
    cache.get::<u64>(key).now_or_never().unwrap().unwrap()
}

fn l1_hit(c: &mut Criterion) {
    let keys = keys();
    let str_keys: Vec<String> = keys.iter().map(|k| format!("str:{k}")).collect();
    let (cache, store) = l1_cache(&keys, None);
    let (ttl_cache, _) = l1_cache(&keys, Some(Duration::from_secs(3_600)));
    let moka = moka_cache(&keys);
    let mut group = c.benchmark_group("l1_hit_1_thread");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("mod8_cache::Cache::get::<u64> (stats on)", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(typed_get(&cache, &keys[i]))
        })
    });
    group.bench_function("mod8_cache::Cache::get::<u64>, entries with a TTL", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(typed_get(&ttl_cache, &keys[i]))
        })
    });
    group.bench_function("mod8_cache::Cache::get_shared::<String>", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(cache.get_shared::<String>(&str_keys[i]).now_or_never())
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
            b.iter_custom(|iters| {
                let (cache, keys) = (cache.clone(), keys.clone());
                run2(
                    iters,
                    Arc::new(move |i| {
                        black_box(typed_get(&cache, &keys[i]));
                    }),
                )
            })
        });
    }
    {
        let (moka, keys) = (moka.clone(), Arc::new(keys.clone()));
        group.bench_function("moka::sync::Cache::get", |b| {
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

    // Each lookup runs over a run of key indices: the `.await` row runs its run inside one
    // async block, as an async caller does (a hit's future is ready, so `.await` costs next to
    // nothing); the others call once per key, `get` through `now_or_never` as sync code would.
    let lookups: [(&str, &Lookup<'_>); 8] = [
        (
            "mod8_cache Cache::get::<u64> (stats on), now_or_never",
            &|run| {
                for &i in run {
                    black_box(typed_get(&cache, &keys[i]));
                }
            },
        ),
        ("mod8_cache Cache::get::<u64> (stats on), .await", &|run| {
            async {
                for &i in run {
                    black_box(cache.get::<u64>(&keys[i]).await.ok());
                }
            }
            .now_or_never()
            .unwrap()
        }),
        // The peer's shape: CPython's `timeit` calls `f(1)`, one key hit over and over.
        (
            "mod8_cache Cache::get::<u64> (stats on), .await, 1 key",
            &|run| {
                let key = &keys[0];
                async {
                    for _ in run {
                        black_box(cache.get::<u64>(key).await.ok());
                    }
                }
                .now_or_never()
                .unwrap()
            },
        ),
        ("moka::sync::Cache::get, 1 key", &|run| {
            let key = &keys[0];
            for _ in run {
                black_box(moka.get(key));
            }
        }),
        ("mod8_cache Cache::get::<u64>, entries with a TTL", &|run| {
            for &i in run {
                black_box(typed_get(&ttl_cache, &keys[i]));
            }
        }),
        ("mod8_cache Cache::get_shared::<String>", &|run| {
            for &i in run {
                black_box(cache.get_shared::<String>(&str_keys[i]).now_or_never());
            }
        }),
        ("mod8_cache MemoryStore::get_now (bytes)", &|run| {
            for &i in run {
                black_box(store.get_now(&keys[i]));
            }
        }),
        ("moka::sync::Cache::get", &|run| {
            for &i in run {
                black_box(moka.get(&keys[i]));
            }
        }),
    ];
    l1_table(&lookups);
}

/// A lookup of the L1 tables: looks up the keys of a run of indices.
type Lookup<'a> = dyn Fn(&[usize]) + Sync + 'a;

/// Calls timed per sample in the L1 tables: batches of this many calls, timed together.
const BATCH: usize = 100;
/// The L1 and Redis tables measure their rows in turns, this many, so that a busy spell on a
/// shared machine falls on every row alike rather than on one.
const ROUNDS: usize = 10;
/// Batches per lookup, thread and round in the L1 tables.
const BATCHES: usize = 2_000;

/// Prints p50/p99 of each lookup on 1 and 2 threads, two ways: per-call means of batches of
/// `BATCH` calls (the clock read costs about as much as a hit, so it is read once per batch;
/// this is the p50 to compare with CPython's `timeit` figure, itself a mean over calls), and
/// single calls timed one by one, the clock's own median cost subtracted (what the p99 of one
/// call is).
fn l1_table(lookups: &[(&str, &Lookup<'_>)]) {
    let clock = {
        let mut v: Vec<f64> = (0..BATCHES * 10)
            .map(|_| {
                let t = Instant::now();
                black_box(());
                t.elapsed().as_nanos() as f64
            })
            .collect();
        percentiles(&mut v).0
    };
    for threads in [1usize, 2] {
        let load = load_average();
        let mut samples = vec![(Vec::new(), Vec::new()); lookups.len()];
        for _ in 0..ROUNDS {
            for ((_, lookup), (batched, single)) in lookups.iter().zip(&mut samples) {
                let (b, s) = l1_samples(threads, *lookup, clock);
                batched.extend(b);
                single.extend(s);
            }
        }
        println!(
            "\nL1 hit latency, {threads} thread(s), {KEYS} keys, ns per call (load average {load} before, {} after):",
            load_average()
        );
        println!(
            "  {:<50} {:>11} {:>11} {:>12} {:>12}",
            "lookup", "batch p50", "batch p99", "single p50", "single p99"
        );
        for ((name, _), (batched, single)) in lookups.iter().zip(&mut samples) {
            let ((b50, b99), (s50, s99)) = (percentiles(batched), percentiles(single));
            println!("  {name:<50} {b50:>11.1} {b99:>11.1} {s50:>12.1} {s99:>12.1}");
            record_figure(&format!("l1 {threads}t {name}: batch p50"), b50, "ns");
            record_figure(&format!("l1 {threads}t {name}: single p99"), s99, "ns");
        }
        if threads == 1 {
            match peer_figure("lru_hit", "lru_hit_maxsize128") {
                Some(ns) => println!(
                    "  {:<50} {ns:>11.1}   (timeit: median of 9 means of 1,000,000 calls, MOD8_PEERS_JSON)",
                    "CPython functools.lru_cache(maxsize=128) hit"
                ),
                None => println!("  (CPython lru_cache: set MOD8_PEERS_JSON to the peers' JSON)"),
            }
        }
    }
    println!("  (single calls: the clock's median cost, {clock:.0} ns, subtracted)");
}

/// One round of samples of `lookup` on `threads` threads at once: per-call means of batches,
/// and single calls (ns).
fn l1_samples(threads: usize, lookup: &Lookup<'_>, clock: f64) -> (Vec<f64>, Vec<f64>) {
    let per_thread: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    // Every thread walks all keys, in its own order.
                    let order: Vec<usize> =
                        (0..KEYS * BATCH).map(|n| (n * 7 + t * 13) % KEYS).collect();
                    lookup(&order); // warm-up
                    let batched = order
                        .chunks(BATCH)
                        .cycle()
                        .take(BATCHES)
                        .map(|run| {
                            let start = Instant::now();
                            lookup(run);
                            start.elapsed().as_nanos() as f64 / BATCH as f64
                        })
                        .collect();
                    let single = order
                        .chunks(1)
                        .cycle()
                        .take(BATCHES * 10)
                        .map(|run| {
                            let start = Instant::now();
                            lookup(run);
                            (start.elapsed().as_nanos() as f64 - clock).max(0.0)
                        })
                        .collect();
                    (batched, single)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (mut batched, mut single) = (Vec::new(), Vec::new());
    for (b, s) in per_thread {
        batched.extend(b);
        single.extend(s);
    }
    (batched, single)
}

/// Sequential GETs per row and round in the Redis table (20,000 per row in all, as redis-py's
/// figure), after a warm-up of a tenth.
const REDIS_CHUNK: usize = 2_000;

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
    let connect = |rt: &tokio::runtime::Runtime| {
        rt.block_on(mod8_cache::RedisStore::connect(
            mod8_cache::RedisConfig::new(url.clone()).with_prefix(prefix.clone()),
        ))
        .unwrap()
    };
    let store = connect(&rt);
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
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local_cache = Cache::new(connect(&local));
    let fred_reference = store.value_key(&keys[0]);
    let fred_client = |rt: &tokio::runtime::Runtime| {
        use fred::prelude::{Builder, ClientLike, Config};
        rt.block_on(async {
            let client = Builder::from_config(Config::from_url(&url).unwrap())
                .build()
                .unwrap();
            client.init().await.unwrap();
            client
        })
    };
    let (fred_multi, fred_local) = (fred_client(&rt), fred_client(&local));

    let mut group = c.benchmark_group("redis_get");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
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
    group.bench_function(
        "sequential, one connection, multi-thread runtime, caller outside it: Cache::get::<String>",
        |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % KEYS;
                let (cache, key) = (cache.clone(), keys[i].clone());
                async move { black_box(cache.get::<String>(&key).await.unwrap()) }
            })
        },
    );
    // Reference: the same GET straight through a fred client (no mod8 layer), separating fred's
    // own per-command cost (its connection task and channels) from this crate's.
    group.bench_function(
        "reference: fred Client::get, no mod8 layer, current-thread runtime",
        |b| {
            use fred::prelude::KeysInterface;
            b.to_async(&local).iter(|| {
                let (client, key) = (fred_local.clone(), fred_reference.as_str());
                async move {
                    let v: Option<String> = client.get(key).await.unwrap();
                    black_box(v)
                }
            })
        },
    );
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

    redis_table(&RedisSetup {
        rt: &rt,
        local: &local,
        cache: &cache,
        local_cache: &local_cache,
        fred_multi: &fred_multi,
        fred_local: &fred_local,
        fred_key: &fred_reference,
        keys: &keys,
        url: &url,
    });
    rt.block_on(async { store.clear().await.unwrap() });
}

struct RedisSetup<'a> {
    rt: &'a tokio::runtime::Runtime,
    local: &'a tokio::runtime::Runtime,
    /// Connected on `rt` / on `local`.
    cache: &'a Cache,
    local_cache: &'a Cache,
    fred_multi: &'a fred::clients::Client,
    fred_local: &'a fred::clients::Client,
    fred_key: &'a str,
    keys: &'a [String],
    url: &'a str,
}

/// `REDIS_CHUNK` sequential calls of `get(n)` after a warm-up, each timed, in µs.
async fn timed_gets<F, Fut>(get: F) -> Vec<f64>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for n in 0..REDIS_CHUNK / 10 {
        get(n).await;
    }
    let mut samples = Vec::with_capacity(REDIS_CHUNK);
    for n in 0..REDIS_CHUNK {
        let start = Instant::now();
        get(n).await;
        samples.push(start.elapsed().as_nanos() as f64 / 1_000.0);
    }
    samples
}

/// Prints p50/p99 of sequential GETs on one connection, each driver beside the others and
/// `redis-benchmark`, measured in turns in this sitting.
fn redis_table(s: &RedisSetup<'_>) {
    use fred::prelude::KeysInterface;
    let mod8 = |cache: Cache, keys: Vec<String>| {
        timed_gets(move |n| {
            let (cache, key) = (cache.clone(), keys[n % KEYS].clone());
            async move {
                assert!(cache.get::<String>(&key).await.unwrap().is_some());
            }
        })
    };
    let fred = |client: fred::clients::Client, key: String| {
        timed_gets(move |_| {
            let (client, key) = (client.clone(), key.clone());
            async move {
                let v: Option<String> = client.get(key).await.unwrap();
                assert!(v.is_some());
            }
        })
    };
    let keys = s.keys.to_vec();
    let key = s.fred_key.to_owned();
    type Driver<'a> = Box<dyn Fn() -> Vec<f64> + 'a>;
    let drivers: Vec<(&str, Driver<'_>)> = vec![
        (
            "mod8 Cache::get, current-thread runtime",
            Box::new(|| s.local.block_on(mod8(s.local_cache.clone(), keys.clone()))),
        ),
        (
            "mod8 Cache::get, multi-thread runtime, from a task",
            Box::new(|| {
                let task = s.rt.spawn(mod8(s.cache.clone(), keys.clone()));
                s.rt.block_on(task).unwrap()
            }),
        ),
        (
            "mod8 Cache::get, multi-thread runtime, from outside",
            Box::new(|| s.rt.block_on(mod8(s.cache.clone(), keys.clone()))),
        ),
        (
            "fred Client::get, current-thread runtime",
            Box::new(|| s.local.block_on(fred(s.fred_local.clone(), key.clone()))),
        ),
        (
            "fred Client::get, multi-thread runtime, from a task",
            Box::new(|| {
                let task = s.rt.spawn(fred(s.fred_multi.clone(), key.clone()));
                s.rt.block_on(task).unwrap()
            }),
        ),
        (
            "fred Client::get, multi-thread runtime, from outside",
            Box::new(|| s.rt.block_on(fred(s.fred_multi.clone(), key.clone()))),
        ),
    ];
    let load = load_average();
    let mut samples = vec![Vec::new(); drivers.len()];
    let mut benchmark = Vec::new();
    for round in 0..ROUNDS {
        for ((_, driver), samples) in drivers.iter().zip(&mut samples) {
            samples.extend(driver());
        }
        // redis-benchmark's three runs: at the start, middle and end of the rounds.
        if [0, ROUNDS / 2, ROUNDS - 1].contains(&round) {
            benchmark.extend(redis_benchmark(s));
        }
    }
    println!(
        "\nRedis GET, sequential, one connection, 100-byte values, {} calls each, µs (load average {load} before, {} after):",
        REDIS_CHUNK * ROUNDS,
        load_average()
    );
    println!("  {:<56} {:>8} {:>8} {:>8}", "client", "p50", "p99", "mean");
    for ((name, _), mut samples) in drivers.iter().zip(samples) {
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let (p50, p99) = percentiles(&mut samples);
        println!("  {name:<56} {p50:>8.1} {p99:>8.1} {mean:>8.1}");
        record_figure(&format!("redis get {name}: p50"), p50, "us");
        record_figure(&format!("redis get {name}: p99"), p99, "us");
    }
    if benchmark.is_empty() {
        println!("  (redis-benchmark: not on the PATH or failed)");
    } else {
        let mut p50s: Vec<f64> = benchmark.iter().map(|r| r.0).collect();
        let mut p99s: Vec<f64> = benchmark.iter().map(|r| r.1).collect();
        let runs = benchmark.len();
        record_figure(
            "redis get redis-benchmark: p50",
            percentiles(&mut p50s).0,
            "us",
        );
        record_figure(
            "redis get redis-benchmark: p99",
            percentiles(&mut p99s).0,
            "us",
        );
        println!(
            "  {:<56} {:>8.1} {:>8.1}   (median of {runs} runs)",
            "redis-benchmark -c 1 -n 50000 -t get -d 100",
            percentiles(&mut p50s).0,
            percentiles(&mut p99s).0,
        );
    }
    match (
        peer_figure("redis_get", "get_p50"),
        peer_figure("redis_get", "get_p99"),
    ) {
        (Some(p50), Some(p99)) => println!(
            "  {:<56} {p50:>8.1} {p99:>8.1}   (median of 3 rounds, MOD8_PEERS_JSON)",
            "redis-py + hiredis"
        ),
        _ => println!("  (redis-py: set MOD8_PEERS_JSON to the peers' JSON)"),
    }
}

/// One `redis-benchmark -c 1 -n 50000 -t get -d 100` against the bench's server, after a
/// 5,000-request warm-up, its GET key holding a 100-byte value as ours do (without one, every
/// GET would answer nil): its p50 and p99 in µs (it reports them in steps of 8 µs here).
fn redis_benchmark(s: &RedisSetup<'_>) -> Option<(f64, f64)> {
    use fred::prelude::{Expiration, KeysInterface};
    let config = fred::prelude::Config::from_url(s.url).ok()?;
    let fred::types::config::ServerConfig::Centralized { server } = &config.server else {
        return None;
    };
    let (host, port) = (server.host.to_string(), server.port.to_string());
    // The one key redis-benchmark's GET reads without -r; left as found.
    const KEY: &str = "key:__rand_int__";
    let existed: bool = s.rt.block_on(s.fred_multi.exists(KEY)).ok()?;
    if !existed {
        let _: () =
            s.rt.block_on(s.fred_multi.set(
                KEY,
                "x".repeat(100),
                Some(Expiration::EX(600)),
                None,
                false,
            ))
            .ok()?;
    }
    let run = |n: &str| -> Option<(f64, f64)> {
        let out = std::process::Command::new("redis-benchmark")
            .args([
                "-h", &host, "-p", &port, "-c", "1", "-n", n, "-t", "get", "-d", "100", "--csv",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.starts_with("\"GET\""))?;
        let fields: Vec<f64> = line
            .split(',')
            .skip(1)
            .filter_map(|f| f.trim_matches('"').parse().ok())
            .collect();
        // rps, avg, min, p50, p95, p99, max (ms)
        Some((*fields.get(3)? * 1_000.0, *fields.get(5)? * 1_000.0))
    };
    let result = run("5000").and_then(|_| run("50000"));
    if !existed {
        let _: Result<i64, _> = s.rt.block_on(s.fred_multi.del(KEY));
    }
    result
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
