//! Similarity over HTTP: `GET /api/products/{id}/similar` — public, cached (`X-Cache`),
//! bounded `k`, filters, 404 for unknown products and categories, 422 naming the bad
//! parameter — and a product change reaching the similarity index through the product-event
//! consumer. Every case runs on the embedded defaults (the in-process index), and again on the
//! real services (PostgreSQL's similarity path) when all four `MOD8_*_URL` variables are set.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::header::{CACHE_CONTROL, IF_MATCH};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

async fn get(s: &Server, path: &str) -> (StatusCode, Option<String>, Option<String>, Value) {
    let response = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (cache_control, x_cache) = (header(CACHE_CONTROL.as_str()), header("x-cache"));
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, cache_control, x_cache, body)
}

async fn admin_post(s: &Server, path: &str, body: Value) -> Value {
    let response = s
        .http
        .post(format!("{}{path}", s.base))
        .bearer_auth(&s.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn category(s: &Server, parent: Option<Uuid>) -> Uuid {
    let slug = name("sim").replace('_', "-");
    let body = admin_post(
        s,
        "/api/categories",
        json!({"parent_id": parent, "slug": slug, "name": slug}),
    )
    .await;
    body["id"].as_str().unwrap().parse().unwrap()
}

async fn product(s: &Server, category: Uuid, title: &str, description: &str, stock: i64) -> Uuid {
    let sku = name("SIM");
    let body = admin_post(
        s,
        "/api/products",
        json!({
            "sku": sku, "name": title, "category_id": category, "brand": null,
            "description": description, "attributes": {},
            "variants": [{"sku": format!("{sku}-v"), "options": {}, "price_cents": 1000,
                          "currency": "EUR", "initial_stock": stock}],
            "images": [],
        }),
    )
    .await;
    body["product"]["id"].as_str().unwrap().parse().unwrap()
}

fn items(body: &Value) -> Vec<Uuid> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["product_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// A small catalog of its own (a root with two sub-categories), so the shared database of the
/// real services does not matter: every query is filtered to this root.
struct Catalog {
    root: Uuid,
    running: Uuid,
    trail: Uuid,
    road: Uuid,
    espresso: Uuid,
    grinder: Uuid,
    skillet: Uuid,
}

async fn catalog(s: &Server) -> Catalog {
    let root = category(s, None).await;
    let running = category(s, Some(root)).await;
    let kitchen = category(s, Some(root)).await;
    let c = Catalog {
        root,
        running,
        trail: product(
            s,
            running,
            "Trail running shoe",
            "Grippy shoe for trail runs",
            5,
        )
        .await,
        road: product(
            s,
            running,
            "Road running shoe",
            "Cushioned shoe for road runs",
            0,
        )
        .await,
        espresso: product(
            s,
            kitchen,
            "Espresso coffee machine",
            "Pump espresso machine",
            2,
        )
        .await,
        grinder: product(
            s,
            kitchen,
            "Coffee bean grinder",
            "Burr grinder for coffee",
            3,
        )
        .await,
        skillet: product(s, kitchen, "Cast iron skillet", "Seasoned iron pan", 4).await,
    };
    // New products reach the index through their product events (the relay, then the
    // consumer): wait until all five are there.
    let path = format!(
        "/api/products/{}/similar?k=10&category={}",
        c.espresso, c.root
    );
    eventually("the new products in the similarity index", || async {
        let (_, _, _, body) = get(s, &path).await;
        body["items"].as_array().map_or(0, Vec::len) == 4
    })
    .await;
    c
}

async fn similar_products_are_public_cached_and_filtered(s: &Server) {
    let c = catalog(s).await;
    let path = format!("/api/products/{}/similar?k=3&category={}", c.trail, c.root);
    let (status, cache_control, x_cache, body) = get(s, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache_control.as_deref(), Some("public, max-age=60"));
    assert_eq!(x_cache.as_deref(), Some("miss"));
    assert_eq!(body["cached"], false);
    assert_eq!(body["product_id"], c.trail.to_string().as_str());
    let got = items(&body);
    assert_eq!(got.len(), 3, "{body}");
    assert_eq!(got[0], c.road, "the other running shoe first: {body}");
    assert!(!got.contains(&c.trail), "never the product itself");
    let distances: Vec<f64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["distance"].as_f64().unwrap())
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1] + 1e-6), "{body}");
    assert!(body["items"][0]["name"]
        .as_str()
        .unwrap()
        .contains("running"));
    // Asked again: from the cache (once the product events of the creations above, which
    // drop every cached answer, have gone through).
    eventually("a cached answer", || async {
        let (_, _, x_cache, again) = get(s, &path).await;
        x_cache.as_deref() == Some("hit") && again["cached"] == true && items(&again) == got
    })
    .await;
    // Filters still fill k: in stock drops the road shoe; the category is a subtree.
    let (status, _, _, body) = get(
        s,
        &format!(
            "/api/products/{}/similar?k=4&category={}&in_stock=true",
            c.trail, c.root
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = items(&body);
    assert_eq!(got.len(), 3, "espresso, grinder, skillet: {body}");
    assert!(!got.contains(&c.road));
    let (_, _, _, body) = get(
        s,
        &format!(
            "/api/products/{}/similar?category={}",
            c.espresso, c.running
        ),
    )
    .await;
    let got = items(&body);
    assert_eq!(got.len(), 2, "both running shoes: {body}");
    assert!(got.contains(&c.trail) && got.contains(&c.road));
    // The coffee machine's nearest in its root is the grinder.
    let (_, _, _, body) = get(
        s,
        &format!(
            "/api/products/{}/similar?k=1&category={}",
            c.espresso, c.root
        ),
    )
    .await;
    assert_eq!(items(&body), vec![c.grinder], "{body}");
}

async fn bad_similarity_queries_are_refused(s: &Server) {
    let c = catalog(s).await;
    for (query, field) in [
        ("k=0", "k"),
        ("k=101", "k"),
        ("k=ten", "k"),
        ("category=shoes", "category"),
        ("in_stock=maybe", "in_stock"),
        ("limit=3", "limit"),
    ] {
        let (status, _, _, body) =
            get(s, &format!("/api/products/{}/similar?{query}", c.trail)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(error_of(&body), ("validation", Some(field)), "{query}");
    }
    let (status, _, _, body) = get(s, "/api/products/not-a-uuid/similar").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("id")));
    let (status, _, _, body) = get(s, &format!("/api/products/{}/similar", Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, _, body) = get(
        s,
        &format!(
            "/api/products/{}/similar?category={}",
            c.trail,
            Uuid::new_v4()
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

async fn product_events_update_the_similarity_index(s: &Server) {
    let c = catalog(s).await;
    let path = format!("/api/products/{}/similar?k=1&category={}", c.trail, c.root);
    let (_, _, _, body) = get(s, &path).await;
    assert_eq!(items(&body), vec![c.road]);
    // The skillet becomes a copy of the trail running shoe; the product event refreshes its embedding
    // and drops the cached answers.
    let response = s
        .http
        .patch(format!("{}/api/products/{}", s.base, c.skillet))
        .bearer_auth(&s.admin)
        .header(IF_MATCH, "\"1\"")
        .json(&json!({
            "name": "Trail running shoe",
            "description": "Grippy shoe for trail runs",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    eventually(
        "the changed product is the trail shoe's nearest",
        || async {
            let (_, _, _, body) = get(s, &path).await;
            items(&body) == vec![c.skillet]
        },
    )
    .await;
}

both_backends!(
    "app similarity http on real services";
    similar_products_are_public_cached_and_filtered,
    bad_similarity_queries_are_refused,
    product_events_update_the_similarity_index,
);
