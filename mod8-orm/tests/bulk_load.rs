//! `CatalogBulkLoad` on SQLite and (with `MOD8_POSTGRES_URL`) on PostgreSQL, where it is
//! `COPY`: everything it writes reads back through the repositories, the stock ledger
//! balances, and a duplicate SKU fails the whole call with nothing written.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use mod8_orm::testing::TestDb;
use mod8_orm::{Database, Error, NewCatalogProduct, NewCategory, NewImage, NewVariant};

fn product(sku: &str, category_id: uuid::Uuid, variants: usize) -> NewCatalogProduct {
    NewCatalogProduct {
        sku: sku.to_owned(),
        // Quotes and commas: the CSV of COPY must carry them.
        name: format!("27\" monitor, \"{sku}\""),
        category_id,
        brand: variants.is_multiple_of(2).then(|| "Viewtek".to_owned()),
        description: "line one\nline two".to_owned(),
        attributes: serde_json::json!({"panel": "IPS, matte"}),
        variants: (0..variants)
            .map(|v| NewVariant {
                sku: format!("{sku}-{v}"),
                options: BTreeMap::from([("size".to_owned(), format!("\"{v}\""))]),
                price_cents: 1_000 + v as i64,
                currency: "EUR".to_owned(),
                initial_stock: if v == 0 { 0 } else { 10 * v as i64 },
            })
            .collect(),
        images: vec![NewImage {
            url: format!("https://images.example.com/{sku}.jpg"),
            alt_text: "front, \"hero\"".to_owned(),
        }],
    }
}

async fn bulk_load(db: &dyn Database) {
    let category = db
        .create_category(NewCategory {
            parent_id: None,
            slug: "bulk".to_owned(),
            name: "Bulk".to_owned(),
        })
        .await
        .unwrap();
    let loader = db.catalog_bulk_load().expect("a bulk loader");
    let products: Vec<_> = (0..300)
        .map(|i| product(&format!("BULK-{i}"), category.id, 1 + i % 5))
        .collect();
    let loaded = loader.load_catalog(products.clone()).await.unwrap();
    assert_eq!(loaded.len(), 300);
    for (given, ids) in products.iter().zip(&loaded) {
        let page = db.product_page(ids.product_id).await.unwrap();
        assert_eq!(page.product.sku, given.sku);
        assert_eq!(page.product.name, given.name);
        assert_eq!(page.product.brand, given.brand);
        assert_eq!(page.product.description, given.description);
        assert_eq!(page.product.attributes, given.attributes);
        assert_eq!(page.product.version, 1);
        let got: Vec<_> = page.variants.iter().map(|v| v.variant.id).collect();
        assert_eq!(got, ids.variant_ids);
        for (v, want) in page.variants.iter().zip(&given.variants) {
            assert_eq!(v.variant.sku, want.sku);
            assert_eq!(v.variant.options, want.options);
            assert_eq!(v.variant.price_cents, want.price_cents);
            assert_eq!((v.on_hand, v.reserved), (want.initial_stock, 0));
        }
        assert_eq!(page.images.len(), 1);
        assert_eq!(page.images[0].alt_text, "front, \"hero\"");
    }
    let first = &loaded[1].variant_ids[1];
    let movements = db.stock_movements(*first, 10).await.unwrap();
    assert_eq!(movements.len(), 1);
    assert_eq!(movements[0].reason, "opening balance");
    assert!(db.ledger_mismatches().await.unwrap().is_empty());

    // One duplicate SKU: the whole call fails and writes nothing.
    let again = vec![
        product("BULK-NEW", category.id, 2),
        product("BULK-7", category.id, 1),
    ];
    let err = loader.load_catalog(again).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let counts = db.category_tree_counts(category.id).await.unwrap();
    assert_eq!(counts[0].products, 300);
    // And an invalid product is refused before anything is sent.
    let mut bad = product("BULK-BAD", category.id, 1);
    bad.variants.clear();
    let err = loader.load_catalog(vec![bad]).await.unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_load_on_every_backend() {
    let sqlite = TestDb::sqlite_memory().await.unwrap();
    sqlite.run(|db| Box::pin(bulk_load(db))).await;

    #[cfg(feature = "postgres")]
    if let Some(pg) = TestDb::postgres_from_env("orm postgres bulk load").await {
        pg.run(|db| Box::pin(bulk_load(db))).await;
    }
}
