//! Vector similarity at scale: the approximate paths against the exact scan.
//!
//! Loads `MOD8_BENCH_SIMILARITY_PRODUCTS` products (default 100,000; synthetic names,
//! brands, descriptions and attributes over 50 categories, one of which holds 10 % of the
//! products) into the embedded backend (in-memory SQLite, the in-process HNSW index) and,
//! when `MOD8_PGVECTOR_URL` is set, into a scratch database on that pgvector server (dropped
//! afterwards), and prints for each:
//!
//! - preparation time (default embeddings computed and stored, index built) and the index
//!   build time alone (rebuilt from stored embeddings);
//! - memory per vector of the embedded index (estimated from its structures, and the
//!   process's resident-set growth while it was rebuilt);
//! - recall@10 of `similar` against `similar_exact` over `MOD8_BENCH_SIMILARITY_QUERIES`
//!   queries (default 200), unfiltered and with the 10 % category filter;
//! - latency p50 / p99 of the approximate and exact queries, each query timed alone;
//!
//! then criterion's own measurement of one approximate query on the embedded backend. Run it
//! with `cargo bench -p mod8-orm --bench similarity`; a quick check with
//! `MOD8_BENCH_SIMILARITY_PRODUCTS=2000`; one backend with
//! `MOD8_BENCH_SIMILARITY_BACKENDS=embedded` (or `pgvector`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mod8_orm::{
    CatalogBulkLoad, Database, NewCatalogProduct, NewCategory, NewVariant, OrmConfig,
    ProductSimilarity, SimilarQuery,
};
use uuid::Uuid;

const ADJECTIVES: [&str; 24] = [
    "blue",
    "compact",
    "deluxe",
    "rugged",
    "silent",
    "smart",
    "vintage",
    "wireless",
    "folding",
    "magnetic",
    "organic",
    "heavy",
    "light",
    "waterproof",
    "insulated",
    "electric",
    "manual",
    "portable",
    "classic",
    "modern",
    "ceramic",
    "steel",
    "bamboo",
    "leather",
];
const NOUNS: [&str; 40] = [
    "lamp", "speaker", "backpack", "umbrella", "notebook", "thermos", "blanket", "clock", "basket",
    "mirror", "kettle", "skillet", "grinder", "helmet", "shoe", "jacket", "tent", "bottle",
    "charger", "keyboard", "mouse", "monitor", "chair", "desk", "pillow", "towel", "razor",
    "brush", "candle", "vase", "knife", "board", "glove", "scarf", "watch", "wallet", "drill",
    "saw", "hammer", "ladder",
];
const MATERIALS: [&str; 8] = [
    "cotton",
    "wool",
    "aluminium",
    "oak",
    "glass",
    "rubber",
    "silicone",
    "linen",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A deterministic pseudo-random sequence (xorshift), so every run loads the same catalog.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn product(rng: &mut Rng, i: usize, category_id: Uuid) -> NewCatalogProduct {
    let (a, n, m) = (
        rng.pick(&ADJECTIVES),
        rng.pick(&NOUNS),
        rng.pick(&MATERIALS),
    );
    let a2 = rng.pick(&ADJECTIVES);
    NewCatalogProduct {
        sku: format!("SIM-{i:08}"),
        name: format!("{a} {m} {n}"),
        category_id,
        brand: Some(format!("Brand{}", rng.next() % 300)),
        description: format!("A {a2} {n} made of {m}, series {}", rng.next() % 1000),
        attributes: serde_json::json!({ "material": m, "style": a2 }),
        variants: vec![NewVariant {
            sku: format!("SIM-{i:08}-1"),
            options: BTreeMap::new(),
            price_cents: 100 + (rng.next() % 10_000) as i64,
            currency: "EUR".to_owned(),
            initial_stock: (rng.next() % 4) as i64,
        }],
        images: Vec::new(),
    }
}

/// Loads the catalog; returns (product ids, the 10 % category).
async fn load(db: &dyn Database, loader: &dyn CatalogBulkLoad, n: usize) -> (Vec<Uuid>, Uuid) {
    let mut categories = Vec::new();
    for c in 0..50 {
        let cat = db
            .create_category(NewCategory {
                parent_id: None,
                slug: format!("sim-cat-{c}"),
                name: format!("Category {c}"),
            })
            .await
            .unwrap();
        categories.push(cat.id);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ids = Vec::with_capacity(n);
    let mut batch = Vec::new();
    for i in 0..n {
        // Category 0 gets every tenth product (10 %); the rest spread over the others.
        let category = if i % 10 == 0 {
            categories[0]
        } else {
            categories[1 + i % 49]
        };
        batch.push(product(&mut rng, i, category));
        if batch.len() == 5_000 || i + 1 == n {
            let loaded = loader
                .load_catalog(std::mem::take(&mut batch))
                .await
                .unwrap();
            ids.extend(loaded.into_iter().map(|p| p.product_id));
        }
    }
    (ids, categories[0])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// Recall@10 and latencies of `similar` against `similar_exact`.
async fn measure(
    label: &str,
    sim: &dyn ProductSimilarity,
    queries: &[Uuid],
    category: Option<Uuid>,
) {
    let mut approx_times = Vec::new();
    let mut exact_times = Vec::new();
    let (mut found, mut wanted) = (0usize, 0usize);
    for id in queries {
        let mut q = SimilarQuery::product(*id, 10);
        q.category = category;
        let t = Instant::now();
        let approx = sim.similar(&q).await.unwrap();
        approx_times.push(t.elapsed());
        let t = Instant::now();
        let exact = sim.similar_exact(&q).await.unwrap();
        exact_times.push(t.elapsed());
        let truth: HashSet<Uuid> = exact.iter().map(|h| h.product_id).collect();
        found += approx
            .iter()
            .filter(|h| truth.contains(&h.product_id))
            .count();
        wanted += truth.len();
    }
    approx_times.sort();
    exact_times.sort();
    println!(
        "{label}: recall@10 {:.4} over {} queries; approximate p50 {:?} p99 {:?}; exact p50 {:?} p99 {:?}",
        found as f64 / wanted.max(1) as f64,
        queries.len(),
        percentile(&approx_times, 0.5),
        percentile(&approx_times, 0.99),
        percentile(&exact_times, 0.5),
        percentile(&exact_times, 0.99),
    );
}

fn queries_of(ids: &[Uuid], count: usize) -> Vec<Uuid> {
    let step = (ids.len() / count.max(1)).max(1);
    ids.iter().step_by(step).take(count).copied().collect()
}

async fn bench_sqlite(n: usize, queries: usize) -> (mod8_orm::sqlite::SqliteStore, Vec<Uuid>) {
    let store = mod8_orm::sqlite::SqliteStore::connect(&OrmConfig::new("sqlite::memory:"))
        .await
        .unwrap();
    let t = Instant::now();
    let (ids, tenth) = load(&store, &store, n).await;
    println!(
        "embedded (SQLite + in-process HNSW), {n} products: loaded in {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let path = store.prepare().await.unwrap();
    println!(
        "embedded: prepared ({}: embeddings computed and stored, index built) in {:?}",
        path.name(),
        t.elapsed()
    );
    let before = resident_bytes();
    let t = Instant::now();
    let indexed = store.rebuild_similarity_index().await.unwrap();
    let build = t.elapsed();
    let grown = resident_bytes().saturating_sub(before);
    let (len, estimate) = store.similarity_index_size().unwrap();
    println!(
        "embedded: index build {build:?} for {indexed} vectors; memory per vector ~{} bytes \
         (estimate from its structures; resident set grew {} bytes per vector while rebuilding, \
         the old index still held)",
        estimate / len.max(1),
        grown / len.max(1)
    );
    let qs = queries_of(&ids, queries);
    measure("embedded unfiltered", &store, &qs, None).await;
    measure("embedded 10% filter", &store, &qs, Some(tenth)).await;
    (store, qs)
}

async fn bench_pgvector(
    url: &str,
    n: usize,
    queries: usize,
) -> Option<(mod8_orm::testing::TestDb, Vec<Uuid>)> {
    let test_db = mod8_orm::testing::TestDb::postgres(url).await?;
    let store = mod8_orm::postgres::PostgresStore::connect(&OrmConfig::new(test_db.url()))
        .await
        .unwrap();
    let t = Instant::now();
    let (ids, tenth) = load(&store, &store, n).await;
    println!("pgvector, {n} products: loaded in {:?}", t.elapsed());
    let t = Instant::now();
    let path = store.prepare().await.unwrap();
    println!(
        "pgvector: prepared ({}: embeddings computed and stored, HNSW index built) in {:?}",
        path.name(),
        t.elapsed()
    );
    let t = Instant::now();
    store.rebuild_similarity_index().await.unwrap();
    println!("pgvector: HNSW index build (REINDEX) {:?}", t.elapsed());
    let qs = queries_of(&ids, queries);
    measure("pgvector unfiltered", &store, &qs, None).await;
    measure("pgvector 10% filter", &store, &qs, Some(tenth)).await;
    Database::close(&store).await;
    Some((test_db, qs))
}

fn similarity(c: &mut Criterion) {
    let n = env_usize("MOD8_BENCH_SIMILARITY_PRODUCTS", 100_000);
    let queries = env_usize("MOD8_BENCH_SIMILARITY_QUERIES", 200);
    let backends = std::env::var("MOD8_BENCH_SIMILARITY_BACKENDS")
        .unwrap_or_else(|_| "embedded,pgvector".to_owned());
    let rt = tokio::runtime::Runtime::new().unwrap();
    if backends.contains("embedded") {
        let (sqlite, qs) = rt.block_on(bench_sqlite(n, queries));
        let mut group = c.benchmark_group("similarity");
        group.sample_size(20);
        let mut i = 0usize;
        group.bench_function("embedded_hnsw_k10", |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % qs.len();
                let q = SimilarQuery::product(qs[i], 10);
                let store = &sqlite;
                async move { store.similar(&q).await.unwrap() }
            })
        });
        group.finish();
    }
    if !backends.contains("pgvector") {
        return;
    }
    if let Ok(url) = std::env::var("MOD8_PGVECTOR_URL") {
        if let Some((test_db, _)) = rt.block_on(bench_pgvector(url.trim(), n, queries)) {
            rt.block_on(test_db.teardown());
        }
    } else {
        println!("pgvector: skipped (MOD8_PGVECTOR_URL not set)");
    }
}

criterion_group!(benches, similarity);
criterion_main!(benches);
