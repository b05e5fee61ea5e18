//! Conformance cases of [`CatalogRepository`]: the category tree, product pages, versioned
//! updates and archiving, and the cursor-paginated category listing.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use crate::testing::{seed_world, user_in};
use crate::*;

fn category(parent: Option<&Category>, slug: &str) -> NewCategory {
    NewCategory {
        parent_id: parent.map(|c| c.id),
        slug: slug.into(),
        name: slug.replace('-', " "),
    }
}

fn variant(sku: &str, price_cents: i64, stock: i64) -> NewVariant {
    NewVariant {
        sku: sku.into(),
        options: BTreeMap::new(),
        price_cents,
        currency: "EUR".into(),
        initial_stock: stock,
    }
}

fn product(sku: &str, category: &Category, variants: Vec<NewVariant>) -> NewCatalogProduct {
    NewCatalogProduct {
        sku: sku.into(),
        name: format!("Product {sku}"),
        category_id: category.id,
        brand: None,
        description: String::new(),
        attributes: serde_json::json!({}),
        variants,
        images: Vec::new(),
    }
}

fn field_of(err: Error) -> String {
    match err {
        Error::Validation { field, .. } => field,
        Error::Conflict { field, .. } => format!("conflict:{field}"),
        Error::NotFound { entity, .. } => format!("not found:{entity}"),
        other => panic!("unexpected error {other:?}"),
    }
}

/// The category tree: creation under a parent, breadcrumbs, subtree counts, moves, and the
/// moves that would make a cycle refused.
pub async fn case_category_tree(db: &dyn Database) {
    let garden = db.create_category(category(None, "garden")).await.unwrap();
    let tools = db
        .create_category(category(Some(&garden), "garden-tools"))
        .await
        .unwrap();
    let rakes = db
        .create_category(category(Some(&tools), "rakes"))
        .await
        .unwrap();
    let seeds = db
        .create_category(category(Some(&garden), "seeds"))
        .await
        .unwrap();
    assert_eq!(rakes.parent_id, Some(tools.id));
    assert_eq!(db.get_category(rakes.id).await.unwrap(), rakes);

    let path: Vec<String> = db
        .category_path(rakes.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.slug)
        .collect();
    assert_eq!(path, ["garden", "garden-tools", "rakes"]);

    for (sku, cat) in [
        ("R1", &rakes),
        ("R2", &rakes),
        ("T1", &tools),
        ("S1", &seeds),
    ] {
        db.create_catalog_product(product(sku, cat, vec![variant(sku, 100, 1)]))
            .await
            .unwrap();
    }
    let counts: Vec<(String, u32, u64)> = db
        .category_tree_counts(garden.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.category.slug, c.depth, c.products))
        .collect();
    assert_eq!(
        counts,
        [
            ("garden".to_string(), 0, 4),
            ("garden-tools".to_string(), 1, 3),
            ("seeds".to_string(), 1, 1),
            ("rakes".to_string(), 2, 2),
        ]
    );

    // Cycles: under itself, under a descendant.
    for parent in [&rakes, &tools] {
        let err = db
            .move_category(tools.id, Some(parent.id))
            .await
            .unwrap_err();
        assert_eq!(field_of(err), "parent_id");
    }
    let err = db
        .move_category(tools.id, Some(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "not found:category");
    let err = db.move_category(Uuid::new_v4(), None).await.unwrap_err();
    assert_eq!(field_of(err), "not found:category");
    // A legal move, and the counts follow.
    let moved = db.move_category(rakes.id, Some(seeds.id)).await.unwrap();
    assert_eq!(moved.parent_id, Some(seeds.id));
    let seeds_count = db.category_tree_counts(seeds.id).await.unwrap();
    assert_eq!(seeds_count[0].products, 3);
    let moved_root = db.move_category(seeds.id, None).await.unwrap();
    assert_eq!(moved_root.parent_id, None);
    assert_eq!(db.category_path(rakes.id).await.unwrap().len(), 2);

    // Concurrent crossing moves never make a cycle: one of each pair is refused.
    let a = db.create_category(category(None, "a")).await.unwrap();
    let b = db.create_category(category(None, "b")).await.unwrap();
    let (x, y) = futures::join!(
        db.move_category(a.id, Some(b.id)),
        db.move_category(b.id, Some(a.id))
    );
    assert!(
        x.is_ok() != y.is_ok(),
        "exactly one crossing move succeeds: {x:?} {y:?}"
    );
    assert!(db.category_path(a.id).await.unwrap().len() <= 2);

    // Bad input and conflicts.
    let err = db
        .create_category(category(None, "Garden Tools"))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "slug");
    let err = db
        .create_category(category(None, "garden"))
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "conflict:slug");
    let orphan = NewCategory {
        parent_id: Some(Uuid::new_v4()),
        slug: "orphan".into(),
        name: "Orphan".into(),
    };
    let err = db.create_category(orphan).await.unwrap_err();
    assert_eq!(field_of(err), "not found:category");
    assert!(db.categories().await.unwrap().len() >= 6);
}

/// A product with variants, stock and images: its page in four statements, and the input
/// the catalog refuses, each error naming its field.
pub async fn case_catalog_product_page(db: &dyn Database) {
    let shirts = db.create_category(category(None, "shirts")).await.unwrap();
    let mut input = product(
        "TS-1",
        &shirts,
        vec![
            NewVariant {
                options: BTreeMap::from([("size".into(), "S".into())]),
                ..variant("TS-1-S", 1_500, 3)
            },
            NewVariant {
                options: BTreeMap::from([("size".into(), "M".into())]),
                ..variant("TS-1-M", 1_600, 0)
            },
            variant("TS-1-L", 1_700, 7),
        ],
    );
    input.brand = Some("Acme".into());
    input.attributes = serde_json::json!({"material": "cotton"});
    input.images = vec![
        NewImage {
            url: "https://img.example.org/ts1-front.jpg".into(),
            alt_text: "front".into(),
        },
        NewImage {
            url: "https://img.example.org/ts1-back.jpg".into(),
            alt_text: String::new(),
        },
    ];
    let created = db.create_catalog_product(input.clone()).await.unwrap();
    assert_eq!(created.product.version, 1);
    assert_eq!(created.category, shirts);

    let before = db.statements_executed();
    let page = db.product_page(created.product.id).await.unwrap();
    assert_eq!(
        db.statements_executed() - before,
        4,
        "a fixed number of statements"
    );
    assert_eq!(page, created);
    let skus: Vec<(&str, i64, i64)> = page
        .variants
        .iter()
        .map(|v| (v.variant.sku.as_str(), v.variant.price_cents, v.available()))
        .collect();
    assert_eq!(
        skus,
        [
            ("TS-1-S", 1_500, 3),
            ("TS-1-M", 1_600, 0),
            ("TS-1-L", 1_700, 7)
        ]
    );
    assert_eq!(page.variants[0].variant.options["size"], "S");
    assert_eq!(page.images.len(), 2);
    assert_eq!(page.images[0].alt_text, "front");
    assert_eq!(page.product.attributes["material"], "cotton");
    assert_eq!(page.product.brand.as_deref(), Some("Acme"));
    assert_eq!(page.rating, Rating::default());
    // The simple view shows the default (first) variant.
    let simple = db.get_product(created.product.id).await.unwrap();
    assert_eq!((simple.price_cents, simple.stock), (1_500, 3));
    assert_eq!(simple.category, "shirts");

    // Bad input, each naming its field; nothing is written.
    let cases: Vec<(NewCatalogProduct, &str)> = vec![
        (
            NewCatalogProduct {
                variants: vec![],
                ..input.clone()
            },
            "variants",
        ),
        (
            NewCatalogProduct {
                sku: "X".into(),
                variants: vec![NewVariant {
                    currency: "eur".into(),
                    ..variant("X-1", 1, 0)
                }],
                ..input.clone()
            },
            "currency",
        ),
        (
            NewCatalogProduct {
                sku: "X".into(),
                variants: vec![variant("X-1", -1, 0)],
                ..input.clone()
            },
            "price_cents",
        ),
        (
            NewCatalogProduct {
                sku: "X".into(),
                variants: vec![variant("X-1", 1, 0), variant("X-1", 2, 0)],
                ..input.clone()
            },
            "sku",
        ),
        (
            NewCatalogProduct {
                sku: "X".into(),
                variants: vec![variant("X-1", 1, -5)],
                ..input.clone()
            },
            "initial_stock",
        ),
        (
            NewCatalogProduct {
                sku: "X".into(),
                variants: vec![variant("X-1", 1, 0)],
                images: vec![NewImage {
                    url: "javascript:alert(1)".into(),
                    alt_text: String::new(),
                }],
                ..input.clone()
            },
            "url",
        ),
        (
            NewCatalogProduct {
                sku: "X".into(),
                variants: vec![variant("X-1", 1, 0)],
                attributes: serde_json::json!([1, 2]),
                ..input.clone()
            },
            "attributes",
        ),
        (
            NewCatalogProduct {
                sku: "X".into(),
                variants: vec![variant("X-1", 1, 0)],
                category_id: Uuid::new_v4(),
                ..input.clone()
            },
            "not found:category",
        ),
        (input.clone(), "conflict:sku"),
        (
            NewCatalogProduct {
                sku: "TS-2".into(),
                variants: vec![variant("TS-1-S", 1, 0)],
                ..input.clone()
            },
            "conflict:sku",
        ),
    ];
    for (bad, field) in cases {
        let err = db.create_catalog_product(bad).await.unwrap_err();
        assert_eq!(field_of(err), field);
    }
    assert_eq!(
        db.products(None).await.unwrap().len(),
        1,
        "nothing half-written"
    );
    let err = db.product_page(Uuid::new_v4()).await.unwrap_err();
    assert_eq!(field_of(err), "not found:product");
}

/// Updates name the version they expect; a stale one is refused. Price changes never alter
/// placed orders; archived products leave listings but orders still read them.
pub async fn case_product_versions_and_archive(db: &dyn Database) {
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let lamps = db.create_category(category(None, "lamps")).await.unwrap();
    let page = db
        .create_catalog_product(product(
            "LMP",
            &lamps,
            vec![variant("LMP-1", 4_000, 5), variant("LMP-2", 4_500, 5)],
        ))
        .await
        .unwrap();
    let id = page.product.id;
    let order = db
        .place_order(NewOrder {
            user_id: ada.id,
            lines: vec![OrderLine {
                product_id: id,
                quantity: 2,
            }],
            created_at: None,
        })
        .await
        .unwrap();
    assert_eq!(order.items[0].unit_price_cents, 4_000);
    assert_eq!(order.items[0].variant_id, page.variants[0].variant.id);

    let changes = ProductChanges {
        name: Some("Desk lamp".into()),
        brand: Some(Some("Lumen".into())),
        prices: BTreeMap::from([(page.variants[0].variant.id, 3_500)]),
        ..ProductChanges::default()
    };
    let updated = db.update_product(id, 1, changes.clone()).await.unwrap();
    assert_eq!((updated.version, updated.name.as_str()), (2, "Desk lamp"));
    assert_eq!(updated.brand.as_deref(), Some("Lumen"));
    let err = db.update_product(id, 1, changes).await.unwrap_err();
    assert_eq!(field_of(err), "conflict:version");
    let page = db.product_page(id).await.unwrap();
    assert_eq!(page.variants[0].variant.price_cents, 3_500);
    assert_eq!(page.product.version, 2);
    let placed = db.get_order(order.order.id).await.unwrap();
    assert_eq!(
        placed.items[0].unit_price_cents, 4_000,
        "orders keep their price"
    );
    assert_eq!(placed.order.total_cents, 8_000);

    // A price for another product's variant, a bad price, an unknown category: refused,
    // and nothing of the update is kept.
    let other = &world.products[0];
    let foreign = ProductChanges {
        name: Some("Renamed".into()),
        prices: BTreeMap::from([(other.id, 1)]),
        ..ProductChanges::default()
    };
    let err = db.update_product(id, 2, foreign).await.unwrap_err();
    assert_eq!(field_of(err), "prices");
    assert_eq!(db.product_page(id).await.unwrap().product.name, "Desk lamp");
    let negative = ProductChanges {
        prices: BTreeMap::from([(page.variants[1].variant.id, -1)]),
        ..ProductChanges::default()
    };
    assert_eq!(
        field_of(db.update_product(id, 2, negative).await.unwrap_err()),
        "price_cents"
    );
    let nowhere = ProductChanges {
        category_id: Some(Uuid::new_v4()),
        ..ProductChanges::default()
    };
    assert_eq!(
        field_of(db.update_product(id, 2, nowhere).await.unwrap_err()),
        "not found:category"
    );
    assert_eq!(
        field_of(
            db.update_product(Uuid::new_v4(), 1, ProductChanges::default())
                .await
                .unwrap_err()
        ),
        "not found:product"
    );
    // Clearing the brand.
    let cleared = db
        .update_product(
            id,
            2,
            ProductChanges {
                brand: Some(None),
                ..ProductChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((cleared.brand, cleared.version), (None, 3));

    // Archive: stale version refused; then gone from listings, still readable.
    assert_eq!(
        field_of(db.archive_product(id, 1).await.unwrap_err()),
        "conflict:version"
    );
    let archived = db.archive_product(id, 3).await.unwrap();
    assert!(archived.archived_at.is_some());
    assert_eq!(db.archive_product(id, 3).await.unwrap(), archived, "no-op");
    let listed = db
        .list_category_products(lamps.id, ListingQuery::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert!(db.products(Some("lamps")).await.unwrap().is_empty());
    assert!(db
        .product_page(id)
        .await
        .unwrap()
        .product
        .archived_at
        .is_some());
    assert_eq!(db.get_order(order.order.id).await.unwrap().items.len(), 1);
    assert_eq!(
        db.purchase_history(ada.id).await.unwrap()[0].name,
        "Desk lamp"
    );
}

/// The listing of a category subtree: every sort pages through every product exactly once
/// in one statement per page, keeps its place when products are added before the cursor,
/// and filters by price, stock and brand; bad queries name the field.
pub async fn case_category_listing(db: &dyn Database) {
    let home = db.create_category(category(None, "home")).await.unwrap();
    let kitchen = db
        .create_category(category(Some(&home), "kitchen"))
        .await
        .unwrap();
    let bath = db
        .create_category(category(Some(&home), "bath"))
        .await
        .unwrap();
    let elsewhere = db
        .create_category(category(None, "elsewhere"))
        .await
        .unwrap();
    let mut ids = HashSet::new();
    for i in 0..23_i64 {
        let cat = if i % 2 == 0 { &kitchen } else { &bath };
        let mut p = product(
            &format!("H{i:02}"),
            cat,
            vec![variant(&format!("H{i:02}-a"), 100 * (i % 7) + 50, i % 3)],
        );
        p.brand = Some(if i % 4 == 0 { "Nord" } else { "Sud" }.into());
        ids.insert(db.create_catalog_product(p).await.unwrap().product.id);
    }
    db.create_catalog_product(product("E1", &elsewhere, vec![variant("E1-a", 1, 1)]))
        .await
        .unwrap();

    for sort in [
        ListingSort::Newest,
        ListingSort::PriceAsc,
        ListingSort::PriceDesc,
        ListingSort::Rating,
    ] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let before = db.statements_executed();
            let page = db
                .list_category_products(
                    home.id,
                    ListingQuery {
                        sort,
                        limit: 5,
                        cursor: cursor.clone(),
                        ..ListingQuery::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(db.statements_executed() - before, 1, "one statement a page");
            seen.extend(page.items.iter().map(|p| (p.id, p.price_cents)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{sort:?}: every product once");
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<HashSet<_>>(),
            ids,
            "{sort:?}"
        );
        let prices: Vec<i64> = seen.iter().map(|s| s.1).collect();
        match sort {
            ListingSort::PriceAsc => assert!(prices.windows(2).all(|w| w[0] <= w[1])),
            ListingSort::PriceDesc => assert!(prices.windows(2).all(|w| w[0] >= w[1])),
            _ => {}
        }
    }

    // Stable while rows are inserted: a product added after the first page was read does
    // not shift the second page (newest first: it sorts before the cursor).
    let first = db
        .list_category_products(
            home.id,
            ListingQuery {
                limit: 10,
                ..ListingQuery::default()
            },
        )
        .await
        .unwrap();
    let expected_second = db
        .list_category_products(
            home.id,
            ListingQuery {
                limit: 10,
                cursor: first.next_cursor.clone(),
                ..ListingQuery::default()
            },
        )
        .await
        .unwrap();
    db.create_catalog_product(product("H99", &kitchen, vec![variant("H99-a", 10, 1)]))
        .await
        .unwrap();
    let second = db
        .list_category_products(
            home.id,
            ListingQuery {
                limit: 10,
                cursor: first.next_cursor.clone(),
                ..ListingQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items, expected_second.items);

    // Filters.
    let filtered = |q: ListingQuery| async move {
        db.list_category_products(home.id, ListingQuery { limit: 100, ..q })
            .await
            .unwrap()
            .items
    };
    let cheap = filtered(ListingQuery {
        min_price_cents: Some(150),
        max_price_cents: Some(350),
        ..ListingQuery::default()
    })
    .await;
    assert!(!cheap.is_empty());
    assert!(cheap.iter().all(|p| (150..=350).contains(&p.price_cents)));
    let stocked = filtered(ListingQuery {
        in_stock: true,
        ..ListingQuery::default()
    })
    .await;
    assert!(!stocked.is_empty() && stocked.iter().all(|p| p.available > 0));
    assert!(stocked.len() < 24);
    let nord = filtered(ListingQuery {
        brand: Some("Nord".into()),
        ..ListingQuery::default()
    })
    .await;
    assert_eq!(nord.len(), 6);
    let kitchen_only = db
        .list_category_products(kitchen.id, ListingQuery::default())
        .await
        .unwrap();
    assert!(kitchen_only
        .items
        .iter()
        .all(|p| p.category_id == kitchen.id));

    // Bad queries.
    let bad = |q: ListingQuery| async move {
        field_of(db.list_category_products(home.id, q).await.unwrap_err())
    };
    assert_eq!(
        bad(ListingQuery {
            limit: 101,
            ..ListingQuery::default()
        })
        .await,
        "limit"
    );
    assert_eq!(
        bad(ListingQuery {
            cursor: Some("not a cursor".into()),
            ..ListingQuery::default()
        })
        .await,
        "cursor"
    );
    assert_eq!(
        bad(ListingQuery {
            sort: ListingSort::PriceAsc,
            cursor: first.next_cursor.clone(),
            ..ListingQuery::default()
        })
        .await,
        "cursor"
    );
    assert_eq!(
        bad(ListingQuery {
            min_price_cents: Some(10),
            max_price_cents: Some(5),
            ..ListingQuery::default()
        })
        .await,
        "min_price_cents"
    );
    let err = db
        .list_category_products(Uuid::new_v4(), ListingQuery::default())
        .await
        .unwrap_err();
    assert_eq!(field_of(err), "not found:category");
}

/// A product of one variant with `stock` units, in a fresh category; its variant's id.
async fn one_variant(db: &dyn Database, slug: &str, price: i64, stock: i64) -> (Uuid, Uuid) {
    let cat = db.create_category(category(None, slug)).await.unwrap();
    let page = db
        .create_catalog_product(product(
            &slug.to_uppercase(),
            &cat,
            vec![variant(&format!("{}-V", slug.to_uppercase()), price, stock)],
        ))
        .await
        .unwrap();
    (page.product.id, page.variants[0].variant.id)
}

/// Inventory moves only with its ledger: receipts, returns, adjustments (never below what is
/// reserved), reservations, sales and releases each write a movement, and the books balance.
pub async fn case_inventory_ledger(db: &dyn Database) {
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let (product_id, v) = one_variant(db, "mugs", 900, 5).await;
    assert_eq!(db.inventory(v).await.unwrap().available(), 5);
    assert_eq!(
        db.receive_stock(v, 10, "delivery 42")
            .await
            .unwrap()
            .on_hand,
        15
    );
    let order = db
        .checkout(Checkout {
            user_id: ada.id,
            lines: Some(vec![VariantLine {
                variant_id: v,
                quantity: 4,
            }]),
            shipping_address_id: None,
            billing_address_id: None,
        })
        .await
        .unwrap();
    let level = db.inventory(v).await.unwrap();
    assert_eq!((level.on_hand, level.reserved), (15, 4));
    // An adjustment may not take on hand below what is reserved.
    let err = db.adjust_stock(v, -12, "count").await.unwrap_err();
    assert_eq!(field_of(err), "conflict:stock");
    assert_eq!(db.adjust_stock(v, -11, "count").await.unwrap().on_hand, 4);
    assert_eq!(
        field_of(db.adjust_stock(v, 0, "x").await.unwrap_err()),
        "delta"
    );
    assert_eq!(
        field_of(db.receive_stock(v, 0, "x").await.unwrap_err()),
        "quantity"
    );
    assert_eq!(
        field_of(db.receive_stock(Uuid::new_v4(), 1, "x").await.unwrap_err()),
        "not found:variant"
    );
    db.set_order_status(order.order.id, OrderStatus::Shipped)
        .await
        .unwrap();
    let level = db.inventory(v).await.unwrap();
    assert_eq!((level.on_hand, level.reserved), (0, 0));
    db.return_stock(v, 1, Some(order.order.id)).await.unwrap();
    let kinds: Vec<MovementKind> = db
        .stock_movements(v, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.kind)
        .rev()
        .collect();
    assert_eq!(
        kinds,
        [
            MovementKind::Receipt,
            MovementKind::Receipt,
            MovementKind::Reservation,
            MovementKind::Adjustment,
            MovementKind::Sale,
            MovementKind::Return
        ]
    );
    assert!(db.ledger_mismatches().await.unwrap().is_empty());
    assert_eq!(db.get_product(product_id).await.unwrap().stock, 1);
}

/// Orders move along their life cycle only: paid, shipped (selling the reservation) or
/// cancelled (releasing it); anything else is a conflict on `status`.
pub async fn case_order_life_cycle(db: &dyn Database) {
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let (_, v) = one_variant(db, "pens", 150, 10).await;
    let buy = |quantity| Checkout {
        user_id: ada.id,
        lines: Some(vec![VariantLine {
            variant_id: v,
            quantity,
        }]),
        shipping_address_id: None,
        billing_address_id: None,
    };
    let a = db.checkout(buy(2)).await.unwrap();
    let b = db.checkout(buy(3)).await.unwrap();
    assert_eq!(db.inventory(v).await.unwrap().reserved, 5);
    db.set_order_status(a.order.id, OrderStatus::Paid)
        .await
        .unwrap();
    db.set_order_status(a.order.id, OrderStatus::Shipped)
        .await
        .unwrap();
    db.set_order_status(b.order.id, OrderStatus::Cancelled)
        .await
        .unwrap();
    let level = db.inventory(v).await.unwrap();
    assert_eq!((level.on_hand, level.reserved), (8, 0));
    for (order, to) in [
        (&a, OrderStatus::Cancelled),
        (&a, OrderStatus::Paid),
        (&a, OrderStatus::Placed),
        (&b, OrderStatus::Shipped),
        (&b, OrderStatus::Paid),
    ] {
        let err = db.set_order_status(order.order.id, to).await.unwrap_err();
        assert_eq!(field_of(err), "conflict:status", "{to}");
    }
    // Asking again for the status it has is a no-op.
    db.set_order_status(a.order.id, OrderStatus::Shipped)
        .await
        .unwrap();
    assert_eq!(db.inventory(v).await.unwrap().on_hand, 8);
    assert!(db.ledger_mismatches().await.unwrap().is_empty());
    assert_eq!(
        field_of(
            db.set_order_status(Uuid::new_v4(), OrderStatus::Paid)
                .await
                .unwrap_err()
        ),
        "not found:order"
    );
}

/// Reviews: one per user and product, verified only after a paid or shipped order of the
/// product, the rating aggregate kept current; bad ratings refused.
pub async fn case_reviews(db: &dyn Database) {
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let bob = user_in(db, world.city("Paris"), "bob", 50.0).await;
    let (product_id, v) = one_variant(db, "teas", 500, 10).await;
    let review = |user: &User, rating| NewReview {
        product_id,
        user_id: user.id,
        rating,
        title: "Nice".into(),
        body: "Would buy again".into(),
    };
    // Placed but not paid: not verified yet.
    let order = db
        .checkout(Checkout {
            user_id: ada.id,
            lines: Some(vec![VariantLine {
                variant_id: v,
                quantity: 1,
            }]),
            shipping_address_id: None,
            billing_address_id: None,
        })
        .await
        .unwrap();
    let bobs = db.create_review(review(&bob, 2)).await.unwrap();
    assert!(!bobs.verified_purchase);
    db.set_order_status(order.order.id, OrderStatus::Paid)
        .await
        .unwrap();
    let adas = db.create_review(review(&ada, 5)).await.unwrap();
    assert!(adas.verified_purchase);
    let err = db.create_review(review(&ada, 4)).await.unwrap_err();
    assert_eq!(field_of(err), "conflict:user_id");
    for bad in [0, 6, -1] {
        assert_eq!(
            field_of(db.create_review(review(&bob, bad)).await.unwrap_err()),
            "rating"
        );
    }
    let mut nameless = review(&bob, 3);
    nameless.title = "  ".into();
    assert_eq!(
        field_of(db.create_review(nameless).await.unwrap_err()),
        "title"
    );
    let mut ghost = review(&bob, 3);
    ghost.product_id = Uuid::new_v4();
    assert_eq!(
        field_of(db.create_review(ghost).await.unwrap_err()),
        "not found:product"
    );
    let mut stranger = review(&bob, 3);
    stranger.user_id = Uuid::new_v4();
    assert_eq!(
        field_of(db.create_review(stranger).await.unwrap_err()),
        "not found:user"
    );
    let rating = db.product_rating(product_id).await.unwrap();
    assert_eq!(rating.review_count, 2);
    assert_eq!(rating.average, Some(3.5));
    assert_eq!(db.product_page(product_id).await.unwrap().rating, rating);
    let listed = db
        .reviews_of(product_id, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, adas.id, "newest first");
    let top = db
        .list_category_products(
            db.product_page(product_id).await.unwrap().category.id,
            ListingQuery {
                sort: ListingSort::Rating,
                ..ListingQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(top.items[0].rating, 3.5);
    assert_eq!(top.items[0].review_count, 2);
}

/// Carts merge quantities per variant and price lines at current prices; checkout from the
/// cart empties it in the same transaction, and a failed checkout leaves no reservation, no
/// order and the cart as it was.
pub async fn case_cart_and_checkout(db: &dyn Database) {
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let home = db
        .create_address(NewAddress {
            street: "Unter den Linden 1".into(),
            postal_code: "10117".into(),
            city_id: world.city("Berlin").id,
        })
        .await
        .unwrap();
    let (_, socks) = one_variant(db, "socks", 300, 10).await;
    let (_, hats) = one_variant(db, "hats", 2_000, 1).await;
    db.add_to_cart(ada.id, socks, 2).await.unwrap();
    let cart = db.add_to_cart(ada.id, socks, 3).await.unwrap();
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(cart.lines[0].quantity, 5, "merged");
    let cart = db.add_to_cart(ada.id, hats, 2).await.unwrap();
    assert_eq!(cart.total_cents, 5 * 300 + 2 * 2_000);
    assert_eq!(
        field_of(db.add_to_cart(ada.id, socks, 0).await.unwrap_err()),
        "quantity"
    );
    assert_eq!(
        field_of(db.add_to_cart(ada.id, socks, 10_000).await.unwrap_err()),
        "quantity",
        "the merged line would pass the bound"
    );
    assert!(matches!(
        db.add_to_cart(ada.id, Uuid::new_v4(), 1).await.unwrap_err(),
        Error::NotFound { .. }
    ));

    // Two hats wanted, one in stock: nothing is written.
    let from_cart = Checkout {
        user_id: ada.id,
        lines: None,
        shipping_address_id: Some(home.id),
        billing_address_id: Some(home.id),
    };
    let err = db.checkout(from_cart.clone()).await.unwrap_err();
    match &err {
        Error::Conflict { field, message, .. } => {
            assert_eq!(field, "stock");
            assert!(
                message.contains(&hats.to_string()) && message.contains("1 available"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.cart(ada.id).await.unwrap(), cart, "cart unchanged");
    assert_eq!(
        db.inventory(socks).await.unwrap().reserved,
        0,
        "no reservation"
    );
    assert!(
        db.orders_of_user(ada.id).await.unwrap().is_empty(),
        "no order"
    );

    let cart = db.set_cart_quantity(ada.id, hats, 1).await.unwrap();
    assert_eq!(cart.total_cents, 5 * 300 + 2_000);
    let order = db.checkout(from_cart.clone()).await.unwrap();
    assert_eq!(order.order.total_cents, 5 * 300 + 2_000);
    assert_eq!(order.order.shipping_address_id, Some(home.id));
    assert_eq!(order.items.len(), 2);
    assert!(
        db.cart(ada.id).await.unwrap().lines.is_empty(),
        "cart emptied"
    );
    assert_eq!(
        field_of(db.checkout(from_cart).await.unwrap_err()),
        "lines",
        "an empty cart"
    );
    assert_eq!(db.inventory(hats).await.unwrap().available(), 0);

    // Unknown address or variant; bad lines.
    let lines = |variant_id, quantity| Checkout {
        user_id: ada.id,
        lines: Some(vec![VariantLine {
            variant_id,
            quantity,
        }]),
        shipping_address_id: None,
        billing_address_id: None,
    };
    let mut nowhere = lines(socks, 1);
    nowhere.shipping_address_id = Some(Uuid::new_v4());
    assert_eq!(
        field_of(db.checkout(nowhere).await.unwrap_err()),
        "not found:shipping address"
    );
    assert_eq!(
        field_of(db.checkout(lines(Uuid::new_v4(), 1)).await.unwrap_err()),
        "not found:variant"
    );
    assert_eq!(
        field_of(db.checkout(lines(socks, 0)).await.unwrap_err()),
        "quantity"
    );
    db.add_to_cart(ada.id, socks, 1).await.unwrap();
    assert!(db.remove_from_cart(ada.id, socks).await.unwrap());
    assert!(!db.remove_from_cart(ada.id, socks).await.unwrap());
    assert_eq!(
        field_of(db.set_cart_quantity(ada.id, socks, 2).await.unwrap_err()),
        "not found:cart item"
    );
    db.add_to_cart(ada.id, socks, 1).await.unwrap();
    assert_eq!(db.clear_cart(ada.id).await.unwrap(), 1);
    assert!(db.ledger_mismatches().await.unwrap().is_empty());
}

/// Fifty concurrent checkouts of the last ten units of one variant: exactly ten succeed, the
/// rest are conflicts on `stock`, and the ledger still balances.
pub async fn case_concurrent_checkouts_sell_exactly_the_stock(db: &dyn Database) {
    let world = seed_world(db).await;
    let mut buyers = Vec::new();
    for i in 0..50 {
        buyers.push(user_in(db, world.city("Lyon"), &format!("buyer{i}"), 10.0).await);
    }
    let (_, v) = one_variant(db, "tickets", 5_000, 10).await;
    let checkouts = buyers.iter().map(|b| {
        db.checkout(Checkout {
            user_id: b.id,
            lines: Some(vec![VariantLine {
                variant_id: v,
                quantity: 1,
            }]),
            shipping_address_id: None,
            billing_address_id: None,
        })
    });
    let results = futures::future::join_all(checkouts).await;
    let sold = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(sold, 10);
    for r in results.into_iter().filter_map(|r| r.err()) {
        assert_eq!(field_of(r), "conflict:stock");
    }
    let level = db.inventory(v).await.unwrap();
    assert_eq!((level.on_hand, level.reserved), (10, 10));
    assert!(db.ledger_mismatches().await.unwrap().is_empty());
}

/// Best sellers of a category subtree over a period, top rated with a minimum number of
/// reviews, and "customers who bought this also bought".
pub async fn case_catalog_queries(db: &dyn Database) {
    let world = seed_world(db).await;
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(user_in(db, world.city("Munich"), &format!("user{i}"), 20.0).await);
    }
    let root = db.create_category(category(None, "outdoor")).await.unwrap();
    let child = db
        .create_category(category(Some(&root), "tents"))
        .await
        .unwrap();
    let other = db.create_category(category(None, "indoor")).await.unwrap();
    let mut variants = Vec::new();
    for (sku, cat) in [("TENT", &child), ("STOVE", &root), ("LAMP", &other)] {
        let page = db
            .create_catalog_product(product(
                sku,
                cat,
                vec![variant(&format!("{sku}-v"), 1_000, 100)],
            ))
            .await
            .unwrap();
        variants.push((page.product.id, page.variants[0].variant.id));
    }
    let buy = |user: &User, lines: Vec<(Uuid, i64)>| Checkout {
        user_id: user.id,
        lines: Some(
            lines
                .into_iter()
                .map(|(variant_id, quantity)| VariantLine {
                    variant_id,
                    quantity,
                })
                .collect(),
        ),
        shipping_address_id: None,
        billing_address_id: None,
    };
    let (tent, stove, lamp) = (variants[0], variants[1], variants[2]);
    db.checkout(buy(&users[0], vec![(tent.1, 1), (stove.1, 1)]))
        .await
        .unwrap();
    db.checkout(buy(&users[1], vec![(tent.1, 2), (lamp.1, 1)]))
        .await
        .unwrap();
    db.checkout(buy(&users[2], vec![(stove.1, 5)]))
        .await
        .unwrap();
    let cancelled = db
        .checkout(buy(&users[3], vec![(tent.1, 50)]))
        .await
        .unwrap();
    db.set_order_status(cancelled.order.id, OrderStatus::Cancelled)
        .await
        .unwrap();

    let best: Vec<(String, i64)> = db
        .best_sellers(root.id, 30, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.sku, s.units))
        .collect();
    assert_eq!(best, [("STOVE".to_string(), 6), ("TENT".to_string(), 3)]);
    let tents: Vec<String> = db
        .best_sellers(child.id, 30, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sku)
        .collect();
    assert_eq!(tents, ["TENT"]);
    assert_eq!(
        field_of(db.best_sellers(root.id, 0, 10).await.unwrap_err()),
        "days"
    );

    let also: Vec<(String, i64)> = db
        .also_bought(tent.0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.sku, a.buyers))
        .collect();
    assert_eq!(also, [("LAMP".to_string(), 1), ("STOVE".to_string(), 1)]);

    for (i, (product_id, rating)) in [(tent.0, 5), (tent.0, 4), (stove.0, 5), (lamp.0, 1)]
        .into_iter()
        .enumerate()
    {
        db.create_review(NewReview {
            product_id,
            user_id: users[i % 4].id,
            rating,
            title: "t".into(),
            body: String::new(),
        })
        .await
        .unwrap();
    }
    let top: Vec<(String, i64)> = db
        .top_rated(1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.sku, r.review_count))
        .collect();
    assert_eq!(
        top,
        [
            ("STOVE".to_string(), 1),
            ("TENT".to_string(), 2),
            ("LAMP".to_string(), 1)
        ]
    );
    let top2: Vec<String> = db
        .top_rated(2, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.sku)
        .collect();
    assert_eq!(top2, ["TENT"]);
}
