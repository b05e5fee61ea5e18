//! The segment report and the co-occurrence model cover every customer: more users than any
//! former cap (500 profiled users, 1,000 biggest spenders), on the embedded defaults and again
//! on the real services when their `MOD8_*_URL` variables are set.
#![allow(clippy::unwrap_used)]

mod support;

use mod8_orm::{NewOrder, NewProduct, NewUser, OrderLine};
use reqwest::StatusCode;
use support::*;
use uuid::Uuid;

/// Users with big orders (more than the old model's 1,000 biggest spenders).
const BIG_SPENDERS: usize = 1_000;
/// Users beyond them who bought the cheap pair together.
const PAIR_BUYERS: usize = 150;
/// Users who bought nothing.
const BROWSERS: usize = 50;

async fn product(s: &Server, sku: &str, price_cents: i64) -> Uuid {
    s.app
        .sql
        .create_product(NewProduct {
            sku: sku.into(),
            name: format!("{sku} for the whole-base test"),
            category: "whole-base".into(),
            price_cents,
            stock: 1_000_000,
        })
        .await
        .unwrap()
        .id
}

/// Places an order straight in SQL (no cache invalidation, no worker wake-up), as a
/// bulk load or another process would.
async fn order(s: &Server, user: Uuid, products: &[Uuid]) {
    s.app
        .sql
        .place_order(NewOrder {
            user_id: user,
            lines: products
                .iter()
                .map(|&product_id| OrderLine {
                    product_id,
                    quantity: 1,
                })
                .collect(),
            created_at: None,
        })
        .await
        .unwrap();
}

async fn every_customer_counts(s: &Server) {
    let big = product(s, &name("BIG"), 50_000).await;
    let cheap_x = product(s, &name("CHEAPX"), 100).await;
    let cheap_y = product(s, &name("CHEAPY"), 100).await;
    let total = BIG_SPENDERS + PAIR_BUYERS + BROWSERS;
    let run = name("wb");
    let new_users: Vec<NewUser> = (0..total)
        .map(|i| NewUser::new(format!("{run}_{i}@example.com"), format!("{run}_{i}")))
        .collect();
    assert_eq!(
        s.app.sql.create_users(new_users).await.unwrap(),
        total as u64
    );
    let mut ids = Vec::with_capacity(total);
    for offset in [0u64, 1_000] {
        let page = s
            .app
            .sql
            .list_users(mod8_orm::PageRequest {
                limit: 1_000,
                offset,
            })
            .await
            .unwrap();
        ids.extend(page.items.into_iter().map(|u| u.id));
    }
    assert_eq!(ids.len(), total);
    for (i, &user) in ids.iter().enumerate() {
        if i < BIG_SPENDERS {
            order(s, user, &[big]).await;
        } else if i < BIG_SPENDERS + PAIR_BUYERS {
            order(s, user, &[cheap_x, cheap_y]).await;
        }
    }
    // One more customer who bought only one of the pair: the model should offer the other.
    let probe = id_of(&s.register(&name("probe")).await);
    buy(s, probe, &[cheap_x]).await;
    let users = s.app.sql.user_stats().await.unwrap().count;
    assert_eq!(users, total as u64 + 1);

    // The report: every user, each in exactly one segment, with when it was computed.
    let computed = s.app.refresh_insights().await.unwrap();
    let (status, report) = s.get("/api/insights").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["total_users"].as_u64(), Some(users), "{report}");
    let in_segments: u64 = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["users"].as_u64().unwrap())
        .sum();
    assert_eq!(in_segments, users, "{report}");
    let computed_at: chrono::DateTime<chrono::Utc> =
        report["computed_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        computed_at, computed.computed_at,
        "the stored report is read"
    );
    let spend_cents = BIG_SPENDERS as f64 * 50_000.0 + (PAIR_BUYERS * 2 + 1) as f64 * 100.0;
    let revenue = report["total_revenue"].as_f64().unwrap();
    assert!(
        (revenue - spend_cents / 100.0).abs() < 1e-6,
        "{revenue} vs {}",
        spend_cents / 100.0
    );
    // Asked again: the same stored report, not a new pass.
    let (_, again) = s.get("/api/insights").await;
    assert_eq!(again["computed_at"], report["computed_at"]);

    // The model: the pair bought only by customers beyond the 1,000 biggest spenders is in it.
    s.app.refresh_model().await.unwrap();
    let (status, recs) = s.get(&format!("/api/users/{probe}/recommendations")).await;
    assert_eq!(status, StatusCode::OK, "{recs}");
    let first = &recs["recommendations"][0];
    assert_eq!(first["product_id"], cheap_y.to_string().as_str(), "{recs}");
    assert_eq!(first["reason"], "similar_items", "{recs}");
}

/// After an order the worker rebuilds the model on its own (no refresh call, no invalidation).
async fn the_worker_rebuilds_the_model_after_orders(s: &Server) {
    let a = product(s, &name("WA"), 1_000).await;
    let b = product(s, &name("WB"), 1_000).await;
    let buyer = id_of(&s.register(&name("pair")).await);
    s.app.refresh_model().await.unwrap();
    s.app
        .place_order(NewOrder {
            user_id: buyer,
            lines: vec![
                OrderLine {
                    product_id: a,
                    quantity: 1,
                },
                OrderLine {
                    product_id: b,
                    quantity: 1,
                },
            ],
            created_at: None,
        })
        .await
        .unwrap();
    let probe = id_of(&s.register(&name("probe")).await);
    buy(s, probe, &[a]).await;
    eventually("the worker rebuilds the model", || async {
        // Each look is a fresh answer: what the probe's order invalidated stays invalid, and
        // a cached answer without the pair is dropped before looking again.
        let _ = s
            .app
            .cache
            .invalidate_tag(&mod8_app::keys::user_tag(probe))
            .await;
        let recs = s.app.recommendations(probe).await.unwrap();
        recs.recommendations
            .first()
            .is_some_and(|r| r.product_id == b.to_string())
    })
    .await;
}

both_backends!(
    "app insights over every user";
    every_customer_counts,
    the_worker_rebuilds_the_model_after_orders
);
