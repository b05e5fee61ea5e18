//! Catalog bulk load into PostgreSQL: `CatalogBulkLoad::load_catalog` (`COPY ... FROM STDIN`)
//! against the reference, `psql -c "\copy ..."` of the same rows from CSV files.
//!
//! Loads `MOD8_BENCH_VARIANTS` variants (default 1,000,000; 3 per product, each with its
//! inventory row and opening receipt, one image per product) into a scratch database created
//! on the server of `MOD8_POSTGRES_URL` (the role needs CREATEDB) and dropped afterwards, and
//! prints rows per second for both. Run it with
//! `cargo bench -p mod8-orm --bench catalog_load`; a quick functional check runs in debug with
//! `MOD8_BENCH_VARIANTS=20000 cargo test -p mod8-orm --bench catalog_load`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

use mod8_orm::{CatalogRepository, NewCatalogProduct, NewCategory, NewImage, NewVariant};
use uuid::Uuid;

const VARIANTS_PER_PRODUCT: usize = 3;
const BATCH_PRODUCTS: usize = 10_000;

fn product(tag: &str, i: usize, category_id: Uuid) -> NewCatalogProduct {
    let sku = format!("{tag}-{i:08}");
    NewCatalogProduct {
        sku: sku.clone(),
        name: format!("Bench product {i}"),
        category_id,
        brand: Some("Bench".to_owned()),
        description: String::new(),
        attributes: serde_json::json!({}),
        variants: (0..VARIANTS_PER_PRODUCT)
            .map(|v| NewVariant {
                sku: format!("{sku}-{v}"),
                options: BTreeMap::from([("size".to_owned(), v.to_string())]),
                price_cents: 1_000 + v as i64,
                currency: "EUR".to_owned(),
                initial_stock: 100,
            })
            .collect(),
        images: vec![NewImage {
            url: format!("https://images.example.com/{sku}.jpg"),
            alt_text: String::new(),
        }],
    }
}

/// Writes the CSV files of `products` products (fresh ids and SKUs) for the five tables, in
/// the order they must be loaded; returns (table with columns, file) pairs.
fn write_csv(
    dir: &std::path::Path,
    tag: &str,
    products: usize,
    category_id: Uuid,
) -> Vec<(String, std::path::PathBuf)> {
    let now = chrono::Utc::now().to_rfc3339();
    let mut tables: Vec<(String, String)> = vec![
        ("products (id, sku, name, category_id, brand, description, attributes, created_at, updated_at, version)".into(), String::new()),
        ("product_variants (id, product_id, sku, options, price_cents, currency, position, created_at)".into(), String::new()),
        ("inventory (variant_id, on_hand, reserved, updated_at)".into(), String::new()),
        ("stock_movements (id, variant_id, kind, on_hand_delta, reserved_delta, reason, order_id, created_at)".into(), String::new()),
        ("product_images (id, product_id, position, url, alt_text)".into(), String::new()),
    ];
    for i in 0..products {
        let p = Uuid::new_v4();
        let sku = format!("{tag}-{i:08}");
        let _ = writeln!(
            tables[0].1,
            "{p},{sku},\"Bench product {i}\",{category_id},Bench,\"\",{{}},{now},{now},1"
        );
        for v in 0..VARIANTS_PER_PRODUCT {
            let id = Uuid::new_v4();
            let _ = writeln!(
                tables[1].1,
                "{id},{p},{sku}-{v},\"{{\"\"size\"\":\"\"{v}\"\"}}\",{},EUR,{v},{now}",
                1_000 + v
            );
            let _ = writeln!(tables[2].1, "{id},100,0,{now}");
            let _ = writeln!(
                tables[3].1,
                "{},{id},receipt,100,0,opening balance,,{now}",
                Uuid::new_v4()
            );
        }
        let _ = writeln!(
            tables[4].1,
            "{},{p},0,https://images.example.com/{sku}.jpg,\"\"",
            Uuid::new_v4()
        );
    }
    tables
        .into_iter()
        .enumerate()
        .map(|(n, (table, csv))| {
            let file = dir.join(format!("{n}.csv"));
            std::fs::write(&file, csv).unwrap();
            (table, file)
        })
        .collect()
}

fn psql(url: &str, command: &str) {
    let status = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", command])
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql -c {command:?} failed");
}

fn main() {
    let Ok(url) = std::env::var("MOD8_POSTGRES_URL") else {
        eprintln!("catalog_load: MOD8_POSTGRES_URL unset, skipped");
        return;
    };
    let variants: usize = std::env::var("MOD8_BENCH_VARIANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let products = variants.div_ceil(VARIANTS_PER_PRODUCT);
    let rows_per_product = 1 + 3 * VARIANTS_PER_PRODUCT + 1;
    let rows = products * rows_per_product;
    let plain = url.split('?').next().unwrap_or(&url).to_owned();
    let base = plain
        .rsplit_once('/')
        .map_or(plain.as_str(), |(b, _)| b)
        .to_owned();
    let db = format!("mod8_catalog_load_{}", std::process::id());
    let scratch = format!("{base}/{db}");
    psql(&plain, &format!("CREATE DATABASE {db}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let store = mod8_orm::connect(&scratch).await.expect("scratch database");
            let category = store
                .create_category(NewCategory {
                    parent_id: None,
                    slug: "bench".to_owned(),
                    name: "Bench".to_owned(),
                })
                .await
                .unwrap();
            let loader = store.catalog_bulk_load().expect("a bulk loader");
            let started = Instant::now();
            for start in (0..products).step_by(BATCH_PRODUCTS) {
                let end = (start + BATCH_PRODUCTS).min(products);
                let batch = (start..end).map(|i| product("copy", i, category.id)).collect();
                loader.load_catalog(batch).await.unwrap();
            }
            let ours = started.elapsed();
            let dir = tempfile::tempdir().unwrap();
            let files = write_csv(dir.path(), "psql", products, category.id);
            let started = Instant::now();
            for (table, file) in &files {
                psql(
                    &scratch,
                    &format!("\\copy {table} FROM '{}' (FORMAT csv)", file.display()),
                );
            }
            let reference = started.elapsed();
            let mismatches = store.ledger_mismatches().await.unwrap();
            assert!(mismatches.is_empty(), "{mismatches:?}");
            store.close().await;
            println!(
                "catalog load: {products} products, {variants} variants, {rows} rows \
                 (products, variants, inventory, receipts, images)"
            );
            println!(
                "  CatalogBulkLoad::load_catalog (COPY, {BATCH_PRODUCTS} products per call): {:>8.2} s  {:>10.0} rows/s",
                ours.as_secs_f64(),
                rows as f64 / ours.as_secs_f64()
            );
            println!(
                "  psql \\copy of the same rows from CSV (reference):               {:>8.2} s  {:>10.0} rows/s",
                reference.as_secs_f64(),
                rows as f64 / reference.as_secs_f64()
            );
        })
    }));
    psql(&plain, &format!("DROP DATABASE IF EXISTS {db}"));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
