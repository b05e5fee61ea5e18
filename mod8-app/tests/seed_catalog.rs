//! `mod8 seed`'s catalog on SQLite (embedded) and on real PostgreSQL (`MOD8_POSTGRES_URL`):
//! the counts are right, every product has 1–5 variants and 1–3 images, the stock ledger
//! balances, and every review is a verified purchase.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use mod8_app::{App, AppConfig};
use mod8_orm::{ListingQuery, NewUser};

const PRODUCTS: usize = 2_500;
const BUYERS: usize = 12;

async fn seed_and_check(config: AppConfig) {
    let app = App::build(config).await.unwrap();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let user = app
            .sql
            .create_user(NewUser::new(
                format!("seedcat.{tag}.{i}@example.com"),
                format!("seedcat_{tag}_{i}"),
            ))
            .await
            .unwrap();
        buyers.push(user.id);
    }
    let seeded = mod8_app::commands::seed::seed_catalog(&app, PRODUCTS, &buyers, tag)
        .await
        .unwrap();
    assert_eq!(seeded.products, PRODUCTS, "{seeded}");
    assert_eq!(seeded.categories, 5 + 5 * 4 + 5 * 4 * 3, "{seeded}");
    assert!(seeded.orders > 0, "{seeded}");

    // What the database holds under this run's three-level tree.
    let categories: Vec<_> = app
        .sql
        .categories()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.slug.starts_with(&format!("{tag}-")))
        .collect();
    assert_eq!(categories.len(), seeded.categories);
    let roots: Vec<_> = categories
        .iter()
        .filter(|c| c.parent_id.is_none())
        .collect();
    assert_eq!(roots.len(), 5);
    let mut products = HashSet::new();
    for root in &roots {
        let counts = app.sql.category_tree_counts(root.id).await.unwrap();
        assert_eq!(counts.iter().map(|c| c.depth).max(), Some(2));
        let mut query = ListingQuery {
            limit: ListingQuery::MAX_LIMIT,
            ..Default::default()
        };
        loop {
            let page = app
                .sql
                .list_category_products(root.id, query.clone())
                .await
                .unwrap();
            products.extend(page.items.iter().map(|p| p.id));
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
    }
    assert_eq!(products.len(), PRODUCTS);
    let (mut variants, mut images) = (0, 0);
    for id in &products {
        let page = app.sql.product_page(*id).await.unwrap();
        assert!(
            (1..=5).contains(&page.variants.len()),
            "{} variants",
            page.variants.len()
        );
        assert!((1..=3).contains(&page.images.len()));
        variants += page.variants.len();
        images += page.images.len();
    }
    assert_eq!(variants, seeded.variants);
    assert_eq!(images, seeded.images);
    let mismatches = app.sql.ledger_mismatches().await.unwrap();
    assert!(mismatches.is_empty(), "{mismatches:?}");
    // Reviews follow purchases: every one of this run's buyers' reviews is verified.
    let mut reviews = 0;
    for id in &products {
        for review in app
            .sql
            .reviews_of(*id, mod8_orm::PageRequest::first(100))
            .await
            .unwrap()
        {
            assert!(buyers.contains(&review.user_id));
            assert!(review.verified_purchase);
            reviews += 1;
        }
    }
    assert_eq!(reviews, seeded.reviews);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_the_catalog_on_sqlite() {
    seed_and_check(AppConfig::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_the_catalog_on_postgres() {
    let Ok(url) = std::env::var("MOD8_POSTGRES_URL") else {
        assert!(
            std::env::var_os("MOD8_REQUIRE_SERVICES").is_none(),
            "MOD8_POSTGRES_URL is required"
        );
        eprintln!("MOD8_POSTGRES_URL unset: skipped");
        return;
    };
    let mut config = AppConfig::embedded();
    config.sql = mod8_orm::OrmConfig::new(url);
    seed_and_check(config).await;
}
