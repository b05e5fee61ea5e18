//! Benchmarks (the targets are in BENCHMARKS.md at the repository root):
//! - bulk insert of 100,000 events, in memory and into the MongoDB-wire server (when
//!   `MOD8_MONGODB_URL` is set), beside the bare driver's `insert_many` of the same events as
//!   the reference;
//! - event distribution and purchase analytics over 1,000,000 in-memory events, beside a bare
//!   scan of the same events as the reference.
//!
//! `cargo bench -p mod8-docstore --bench docstore -- --warm-up-time 1 --measurement-time 3`

// A benchmark, like a test: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use mod8_docstore::{
    DocStore, DocStoreConfig, Event, EventMetadata, EventStore, Geo, GeoPoint, MemoryDocStore,
    MongoDocStore, SessionInfo, SetupOptions, TimeWindow,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TYPES: [&str; 8] = [
    "page_view",
    "click",
    "search",
    "add_to_cart",
    "purchase",
    "login",
    "logout",
    "share",
];
const CATEGORIES: [&str; 6] = ["books", "games", "music", "video", "software", "hardware"];

/// Realistic events: 10,000 users over 30 days, a fifth of them purchases with a price and
/// category, a third with a location and session information.
fn events(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    (0..n)
        .map(|_| {
            let user = format!("user-{:05}", rng.random_range(0..10_000));
            let at = start + chrono::Duration::seconds(rng.random_range(0..30 * 86_400));
            let mut e = if rng.random_bool(0.2) {
                Event::purchase(
                    user,
                    format!("sku-{}", rng.random_range(0..500)),
                    CATEGORIES[rng.random_range(0..CATEGORIES.len())],
                    (rng.random_range(100..20_000) as f64) / 100.0,
                )
            } else {
                Event::new(user, TYPES[rng.random_range(0..TYPES.len())]).with_metadata(
                    EventMetadata {
                        product: Some(format!("sku-{}", rng.random_range(0..500))),
                        ..EventMetadata::default()
                    },
                )
            }
            .at(at);
            if rng.random_bool(0.33) {
                e = e
                    .with_geo(Geo {
                        country: Some("DE".into()),
                        city: Some("Berlin".into()),
                        location: Some(GeoPoint::new(
                            13.4 + rng.random_range(-0.2..0.2),
                            52.5 + rng.random_range(-0.2..0.2),
                        )),
                    })
                    .with_session(SessionInfo {
                        device: Some("mobile".into()),
                        os: Some("android".into()),
                        app_version: Some("3.2.1".into()),
                    });
            }
            e
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An empty event log as setup leaves it, outside the timed part of an iteration: `events`
/// recreated with its indexes and validator (inserts pay for those, as in production), and the
/// `user_activity` buckets dropped too, since `log_events` upserts them and they would
/// otherwise grow from one iteration to the next.
async fn fresh_event_log(store: &MongoDocStore) {
    let db = store.database();
    for collection in ["events", "user_activity"] {
        db.collection::<mod8_docstore::bson::Document>(collection)
            .drop()
            .await
            .unwrap();
    }
    store.setup(&SetupOptions::default()).await.unwrap();
}

fn bulk_insert(c: &mut Criterion) {
    const N: usize = 100_000;
    let rt = runtime();
    let input = events(N, 1);
    let mut group = c.benchmark_group("bulk_insert_100k_events");
    group.throughput(Throughput::Elements(N as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);

    group.bench_function("memory", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let input = input.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = MemoryDocStore::new();
                    let batch = input.clone();
                    let t = Instant::now();
                    let r = store.log_events(batch).await.unwrap();
                    total += t.elapsed();
                    assert_eq!(r.inserted_ids.len(), N);
                }
                total
            }
        })
    });

    if let Ok(url) = std::env::var("MOD8_MONGODB_URL") {
        let db_name = format!("mod8_bench_{}", std::process::id());
        let store = rt
            .block_on(MongoDocStore::connect(
                &DocStoreConfig::new(url).with_database(db_name),
            ))
            .unwrap();
        let server = if store.is_ferretdb() {
            "ferretdb"
        } else {
            "mongodb"
        };
        let events = store.database().collection::<Event>("events");
        group.bench_function(BenchmarkId::new("mod8_log_events", server), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, input) = (store.clone(), input.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        fresh_event_log(&store).await;
                        let batch = input.clone();
                        let t = Instant::now();
                        let r = store.log_events(batch).await.unwrap();
                        total += t.elapsed();
                        assert_eq!(r.inserted_ids.len(), N);
                    }
                    total
                }
            })
        });
        // Reference: the bare driver inserting the same typed events, unordered.
        // Same collection state as above (indexes and validator from setup), so the two
        // differ only by what mod8 adds.
        group.bench_function(BenchmarkId::new("driver_insert_many", server), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, events, input) = (store.clone(), events.clone(), input.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        fresh_event_log(&store).await;
                        let batch = input.clone();
                        let t = Instant::now();
                        events.insert_many(batch).ordered(false).await.unwrap();
                        total += t.elapsed();
                    }
                    total
                }
            })
        });
        rt.block_on(store.drop_database()).unwrap();
    } else {
        eprintln!("skipping the MongoDB bulk insert: MOD8_MONGODB_URL not set");
    }
    group.finish();
}

fn analytics(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let rt = runtime();
    let store = MemoryDocStore::new();
    let input = events(N, 2);
    let reference = input.clone();
    rt.block_on(async {
        for chunk in input.chunks(100_000) {
            store.log_events(chunk.to_vec()).await.unwrap();
        }
        store.setup(&Default::default()).await.unwrap();
    });
    let window = TimeWindow::between(
        Utc.with_ymd_and_hms(2026, 10, 5, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 10, 25, 0, 0, 0).unwrap(),
    );
    let mut group = c.benchmark_group("analytics_1m_memory_events");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.bench_function("event_distribution", |b| {
        b.to_async(&rt)
            .iter(|| async { store.event_distribution(window).await.unwrap() })
    });
    group.bench_function("purchase_analytics", |b| {
        b.to_async(&rt)
            .iter(|| async { store.purchase_analytics(window).await.unwrap() })
    });
    // Reference: one bare pass over the same events counting those in the window (no lock,
    // no grouping) — the floor any in-memory aggregation pays.
    group.bench_function("reference_scan_count_in_window", |b| {
        b.iter(|| {
            reference
                .iter()
                .filter(|e| window.contains(e.timestamp))
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bulk_insert, analytics);
criterion_main!(benches);
