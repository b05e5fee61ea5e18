//! Full-text search latency on SQLite (in memory) and PostgreSQL: p50 and p99 of
//! `ProductSearch::search` over `MOD8_BENCH_SEARCH_PRODUCTS` products (default 2,000, so
//! `cargo bench` stays quick; the reference figure is taken at 100,000), for a mix of
//! queries — one word, two words, a phrase, a prefix, a negation, a category filter and a
//! typo (the trigram fallback) — then criterion's own timing of the two-word query.
//!
//! PostgreSQL runs when `MOD8_POSTGRES_URL` is set, in a scratch database created there (the
//! role needs CREATEDB) and dropped afterwards. Run it with
//! `MOD8_BENCH_SEARCH_PRODUCTS=100000 cargo bench -p mod8-orm --bench search`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::Criterion;
use mod8_orm::testing::TestDb;
use mod8_orm::{CategoryFilter, Database, NewCatalogProduct, NewCategory, NewVariant, SearchQuery};

/// Timed runs of each query for the percentiles.
const RUNS_PER_QUERY: usize = 50;
/// Products per bulk load.
const BATCH: usize = 10_000;

/// A deterministic pseudo-random sequence (a linear congruential generator).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 33) as usize
    }
}

/// A vocabulary of pronounceable words, the same every run.
fn vocabulary() -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ra", "ten", "vo", "shu", "pel", "dar", "qui", "nor", "bex", "tal", "ri",
        "som", "gue", "fa", "zin", "ho", "lum",
    ];
    let mut out = Vec::new();
    for a in SYLLABLES {
        for b in SYLLABLES {
            for c in ["", "ne", "st", "ro"] {
                out.push(format!("{a}{b}{c}"));
            }
        }
    }
    out
}

fn products(n: usize, categories: &[uuid::Uuid], words: &[String]) -> Vec<NewCatalogProduct> {
    let mut rng = Lcg(42);
    // Zipf-like: low word indexes are much more frequent.
    let word = |rng: &mut Lcg| {
        let r = rng.next() % words.len();
        words[(r * r) / words.len()].clone()
    };
    (0..n)
        .map(|i| {
            let name = (0..3).map(|_| word(&mut rng)).collect::<Vec<_>>().join(" ");
            let description = (0..24)
                .map(|_| word(&mut rng))
                .collect::<Vec<_>>()
                .join(" ");
            NewCatalogProduct {
                sku: format!("S-{i:08}"),
                name,
                category_id: categories[rng.next() % categories.len()],
                brand: Some(format!("Brand{}", rng.next() % 50)),
                description,
                attributes: serde_json::json!({}),
                variants: vec![NewVariant {
                    sku: format!("S-{i:08}-V"),
                    options: Default::default(),
                    price_cents: 1_000,
                    currency: "EUR".into(),
                    initial_stock: (rng.next() % 3) as i64,
                }],
                images: vec![],
            }
        })
        .collect()
}

async fn load(db: &dyn Database, n: usize) -> Vec<uuid::Uuid> {
    let mut categories = Vec::new();
    for i in 0..20 {
        let parent = if i < 4 { None } else { Some(categories[i % 4]) };
        let c = db
            .create_category(NewCategory {
                parent_id: parent,
                slug: format!("c{i}"),
                name: format!("Category{i}"),
            })
            .await
            .unwrap();
        categories.push(c.id);
    }
    let words = vocabulary();
    let all = products(n, &categories, &words);
    let loader = db.catalog_bulk_load().expect("a bulk loader");
    for chunk in all.chunks(BATCH) {
        loader.load_catalog(chunk.to_vec()).await.unwrap();
    }
    categories
}

fn queries(words: &[String], category: uuid::Uuid) -> Vec<(&'static str, SearchQuery)> {
    let w = |i: usize| words[i].clone();
    vec![
        ("one word", SearchQuery::new(w(3))),
        ("two words", SearchQuery::new(format!("{} {}", w(5), w(9)))),
        ("phrase", SearchQuery::new(format!("\"{} {}\"", w(2), w(4)))),
        ("prefix", SearchQuery::new(format!("{}*", &w(7)[..3]))),
        ("negation", SearchQuery::new(format!("{} -{}", w(1), w(2)))),
        (
            "category",
            SearchQuery::new(w(6)).in_category(CategoryFilter::Id(category)),
        ),
        ("typo", SearchQuery::new(format!("{}x", w(11)))),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn bench_backend(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    db: &dyn Database,
    n: usize,
) {
    let started = Instant::now();
    let categories = rt.block_on(load(db, n));
    println!("{name}: loaded {n} products in {:.1?}", started.elapsed());
    let search = db.product_search().expect("a search");
    let words = vocabulary();
    let mut all = Vec::new();
    for (label, query) in queries(&words, categories[0]) {
        let mut times = Vec::with_capacity(RUNS_PER_QUERY);
        let mut hits = 0;
        for _ in 0..RUNS_PER_QUERY {
            let t = Instant::now();
            let page = rt.block_on(search.search(&query)).unwrap();
            times.push(t.elapsed());
            hits = page.hits.len();
        }
        times.sort();
        println!(
            "{name} {label:>9}: p50 {:>9.2?}  p99 {:>9.2?}  ({hits} hits on the first page)",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "{name} all queries: p50 {:.2?}  p99 {:.2?} over {} searches of {n} products",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len()
    );
    let two_words = SearchQuery::new(format!("{} {}", words[5], words[9]));
    c.bench_function(&format!("search/{name}/two_words/{n}"), |b| {
        b.iter(|| rt.block_on(search.search(&two_words)).unwrap())
    });
}

fn main() {
    let n: usize = std::env::var("MOD8_BENCH_SEARCH_PRODUCTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let sqlite = rt.block_on(TestDb::sqlite_memory()).unwrap();
    bench_backend(&mut c, &rt, "sqlite", &*sqlite.db, n);
    rt.block_on(sqlite.teardown());
    match std::env::var("MOD8_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => {
            let pg = rt.block_on(TestDb::postgres(url.trim())).unwrap();
            bench_backend(&mut c, &rt, "postgres", &*pg.db, n);
            rt.block_on(pg.teardown());
        }
        _ => println!("postgres: skipped (MOD8_POSTGRES_URL not set)"),
    }
    c.final_summary();
}
