//! Product search over HTTP (`GET /api/products/search`): ranking, filters, the typo
//! fallback, cursor pages, the cache and its invalidation by a product write, and bad
//! queries — empty or too long is a 422 naming `q` with the JSON error body, anything else
//! (unbalanced quotes, lone operators) a 200; and `mode=hybrid`, the full-text and similarity
//! rankings fused. Every case runs on the embedded defaults, and
//! again on the real services when all four `MOD8_*_URL` variables are set.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// A public GET: status, `X-Cache`, body.
async fn search(s: &Server, query: &str) -> (StatusCode, Option<String>, Value) {
    let r = s
        .http
        .get(format!("{}/api/products/search?{query}", s.base))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cache = r
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, cache, r.json().await.unwrap_or(Value::Null))
}

fn skus(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {body}"))
        .iter()
        .map(|h| h["sku"].as_str().unwrap().to_owned())
        .collect()
}

/// A unique slug (`a-z`, `0-9`, `-`).
fn slug(prefix: &str) -> String {
    name(prefix).replace('_', "-")
}

/// The SKU of a product page.
fn sku_of(page: &Value) -> String {
    page["product"]["sku"].as_str().unwrap().to_owned()
}

async fn category(s: &Server, parent: Option<Uuid>, slug: &str, name: &str) -> Uuid {
    let (status, body) = s
        .post(
            "/api/categories",
            json!({"parent_id": parent, "slug": slug, "name": name}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

async fn product(
    s: &Server,
    category: Uuid,
    sku: &str,
    name: &str,
    description: &str,
    stock: i64,
) -> Value {
    let (status, body) = s
        .post(
            "/api/products",
            json!({
                "sku": sku, "name": name, "category_id": category, "brand": "Hearth",
                "description": description,
                "variants": [{"sku": format!("{sku}-v"), "price_cents": 1000, "currency": "EUR",
                              "initial_stock": stock}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Waits until the product-events consumer has handled `n` events (each product write
/// enqueues one, and consuming it drops every cached search page: a case that asserts a
/// cache hit waits for the events of its own writes first).
async fn events_consumed(s: &Server, n: u64) {
    eventually(&format!("{n} product events consumed"), || async {
        s.app
            .consumer_stats()
            .await
            .iter()
            .find(|c| c.name == mod8_app::ConsumerCounts::PRODUCT_EVENTS)
            .is_some_and(|c| c.acked >= n)
    })
    .await;
}

/// A small catalog with unique words per run (the real services share one cache server).
struct Shelf {
    word: String,
    kettle: Value,
}

async fn shelf(s: &Server) -> Shelf {
    // Letters only, so the word is one search word.
    let word: String = name("w")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| {
            if c.is_ascii_digit() {
                (b'a' + c as u8 - b'0') as char
            } else {
                c
            }
        })
        .collect::<String>()
        .to_lowercase();
    let home = category(s, None, &slug("home"), "Home").await;
    let kitchen = category(s, Some(home), &slug("kitchen"), "Kitchen").await;
    let garden = category(s, None, &slug("garden"), "Garden").await;
    let kettle = product(
        s,
        kitchen,
        &name("k1"),
        &format!("Electric Kettle {word}"),
        "Boils water fast.",
        3,
    )
    .await;
    product(
        s,
        kitchen,
        &name("k2"),
        &format!("Stovetop Espresso {word}"),
        "Pairs well with a kettle.",
        0,
    )
    .await;
    product(
        s,
        kitchen,
        &name("k3"),
        &format!("Café Crème Beans {word}"),
        "Medium roast.",
        4,
    )
    .await;
    product(
        s,
        garden,
        &name("g1"),
        &format!("Watering Can {word}"),
        "A green can for the garden, not a kettle.",
        2,
    )
    .await;
    events_consumed(s, 4).await;
    Shelf { word, kettle }
}

async fn search_ranks_filters_and_pages(s: &Server) {
    let shelf = shelf(s).await;
    let w = &shelf.word;
    let (status, cache, body) = search(s, &format!("q=kettle+{w}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(body["matched"], "full_text");
    let found = skus(&body);
    assert_eq!(found.len(), 3, "{body}");
    assert_eq!(found[0], sku_of(&shelf.kettle), "the name match first");
    // The second read of the same page comes from the cache.
    let (_, cache, again) = search(s, &format!("q=kettle+{w}")).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(skus(&again), found);
    assert_eq!(again["cached"], true);
    // Filters: the category's subtree (by slug or id), stock.
    let kitchen = shelf.kettle["category"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, body) = search(s, &format!("q=kettle+{w}&category={kitchen}")).await;
    assert_eq!(skus(&body).len(), 2, "{body}");
    let (_, _, body) = search(s, &format!("q=kettle+{w}&in_stock=true")).await;
    assert_eq!(skus(&body).len(), 2, "{body}");
    // Diacritics, stemming, the typo fallback.
    let (_, _, body) = search(s, &format!("q=cafe+{w}")).await;
    assert_eq!(skus(&body).len(), 1, "{body}");
    let (_, _, body) = search(s, &format!("q=boiling+{w}")).await;
    assert_eq!(skus(&body), [sku_of(&shelf.kettle)]);
    let (_, _, body) = search(s, &format!("q=kettel+{w}")).await;
    assert_eq!(body["matched"], "fuzzy", "{body}");
    assert!(skus(&body).contains(&sku_of(&shelf.kettle)));
    // Cursor pages: every product of the shelf once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let after = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (status, _, body) = search(s, &format!("q={w}&limit=1{after}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(skus(&body));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(unique.len(), 4, "{seen:?}");
}

async fn search_rejects_bad_queries_and_takes_any_text(s: &Server) {
    let long = "x".repeat(300);
    for (query, field) in [
        ("", "q"),
        ("q=", "q"),
        ("q=+++", "q"),
        (&*format!("q={long}"), "q"),
        ("q=usb&limit=0", "limit"),
        ("q=usb&limit=1000", "limit"),
        ("q=usb&mode=vector", "mode"),
        ("q=usb&in_stock=maybe", "in_stock"),
        ("q=usb&cursor=zz", "cursor"),
        ("q=usb&sort=price", "sort"),
    ] {
        let (status, _, body) = search(s, query).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(
            error_of(&body),
            ("validation", Some(field)),
            "{query}: {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, _, body) = search(s, "q=usb&category=no-such-category").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for garbage in [
        "%22",
        "-",
        "*",
        "or",
        "%22usb",
        "usb%22)",
        "(((",
        "a+%26+b+%7C+!c",
        "NEAR(a+b)",
        "%27%3B+DROP+TABLE+products%3B+--",
        "%00",
        "%E2%9C%93",
        "-%22",
        "usb+or",
        "**",
    ] {
        let (status, _, body) = search(s, &format!("q={garbage}")).await;
        assert_eq!(status, StatusCode::OK, "{garbage}: {body}");
        assert!(body["hits"].is_array(), "{garbage}: {body}");
    }
    // mode=text is the default, said explicitly.
    let (status, _, _) = search(s, "q=usb&mode=text").await;
    assert_eq!(status, StatusCode::OK);
}

async fn a_product_write_drops_cached_search_pages(s: &Server) {
    let shelf = shelf(s).await;
    let w = &shelf.word;
    let q = format!("q=kettle+{w}");
    search(s, &q).await;
    let (_, cache, _) = search(s, &q).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    let id = shelf.kettle["product"]["id"].as_str().unwrap();
    let version = shelf.kettle["product"]["version"].as_i64().unwrap();
    let r = s
        .http
        .patch(format!("{}/api/products/{id}", s.base))
        .bearer_auth(&s.admin)
        .header("if-match", format!("\"{version}\""))
        .json(&json!({"name": format!("Samovar {w}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, cache, body) = search(s, &q).await;
    assert_eq!(cache.as_deref(), Some("miss"), "the write dropped the page");
    assert_eq!(skus(&body).len(), 2, "{body}");
    let (_, _, body) = search(s, &format!("q=samovar+{w}")).await;
    assert_eq!(skus(&body), [sku_of(&shelf.kettle)]);
}

async fn selling_out_and_cancelling_drop_cached_in_stock_searches(s: &Server) {
    let shelf = shelf(s).await;
    let w = &shelf.word;
    let q = format!("q=kettle+{w}&in_stock=true");
    let (_, _, before) = search(s, &q).await;
    assert_eq!(skus(&before).len(), 2, "{before}");
    let (_, cache, _) = search(s, &q).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    // The kettle's last three units.
    let ada = s.register(&name("ada")).await;
    let home = ada["user"]["address_id"].as_str().unwrap().to_owned();
    let variant = shelf.kettle["variants"][0]["variant"]["id"]
        .as_str()
        .unwrap();
    let (status, body) = s
        .post_as(
            Some(&token_of(&ada)),
            &format!("/api/users/{}/orders", id_of(&ada)),
            json!({"lines": [{"variant_id": variant, "quantity": 3}], "shipping_address": home}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let order = body["id"].as_str().unwrap().to_owned();
    let (_, cache, after) = search(s, &q).await;
    assert_eq!(cache.as_deref(), Some("miss"), "the sale dropped the page");
    assert!(!skus(&after).contains(&sku_of(&shelf.kettle)), "{after}");
    assert_eq!(skus(&after).len(), 1, "{after}");
    let (_, cache, _) = search(s, &q).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    // Cancelling gives the kettle its units back: the cached page goes again.
    let (status, body) = s
        .post_as(
            Some(&token_of(&ada)),
            &format!("/api/orders/{order}/cancel"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, cache, back) = search(s, &q).await;
    assert_eq!(
        cache.as_deref(),
        Some("miss"),
        "the cancellation dropped the page"
    );
    assert!(skus(&back).contains(&sku_of(&shelf.kettle)), "{back}");
}

async fn hybrid_search_fuses_text_and_similarity(s: &Server) {
    let shelf = shelf(s).await;
    let w = &shelf.word;
    // A text page is cached first: the hybrid page is a different entry.
    let (_, _, text) = search(s, &format!("q=kettle+{w}&limit=100")).await;
    let text_hits = skus(&text);
    assert_eq!(text_hits.len(), 3, "{text}");
    let q = format!("q=kettle+{w}&mode=hybrid&limit=100");
    let (status, cache, body) = search(s, &q).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.as_deref(), Some("miss"));
    assert_eq!(body["matched"], "hybrid");
    let found = skus(&body);
    assert_eq!(found[0], sku_of(&shelf.kettle), "{body}");
    for hit in &text_hits {
        assert!(found.contains(hit), "{hit} missing from {found:?}");
    }
    let scores: Vec<f64> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|p| p[0] >= p[1]), "{scores:?}");
    let (_, cache, again) = search(s, &q).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(skus(&again), found);
    // A word no product has: full text finds nothing, similarity still ranks the shelf.
    let (_, _, body) = search(s, &format!("q=samovar+{w}&mode=hybrid")).await;
    assert_eq!(body["matched"], "hybrid");
    assert!(!skus(&body).is_empty(), "{body}");
    // Negations and filters hold for products found by similarity alone.
    let (_, _, body) = search(s, &format!("q=kettle+{w}+-espresso&mode=hybrid&limit=100")).await;
    let found = skus(&body);
    assert!(found.contains(&sku_of(&shelf.kettle)), "{found:?}");
    assert!(
        body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| !h["name"].as_str().unwrap().contains("Espresso")),
        "{body}"
    );
    let garden_id = {
        let (_, _, body) = search(s, &format!("q=watering+{w}")).await;
        body["hits"][0]["category_id"].as_str().unwrap().to_owned()
    };
    let (_, _, body) = search(
        s,
        &format!("q=kettle+{w}&mode=hybrid&category={garden_id}&limit=100"),
    )
    .await;
    let hits = body["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{body}");
    assert!(
        hits.iter().all(|h| h["category_id"] == garden_id.as_str()),
        "{body}"
    );
    // A cursor of one mode is refused by the other.
    let (_, _, first) = search(s, &format!("q=kettle+{w}&limit=1")).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, _, body) = search(
        s,
        &format!("q=kettle+{w}&limit=1&mode=hybrid&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("cursor")));
}

both_backends!("app search";
    hybrid_search_fuses_text_and_similarity,
    selling_out_and_cancelling_drop_cached_in_stock_searches,
    search_ranks_filters_and_pages,
    search_rejects_bad_queries_and_takes_any_text,
    a_product_write_drops_cached_search_pages,
);
