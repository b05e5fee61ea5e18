//! The catalog over HTTP: product pages with ETags (304, 412, 428), the category tree and
//! listings with their cursor pages and filters, admin writes, and the invalidation chain —
//! a write drops the product's page and every listing at once, and the product event the
//! outbox relay publishes drops cached recommendations through the product-events consumer.
//! Every case runs on the embedded defaults, and again on the real services when all four
//! `MOD8_*_URL` variables are set.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::header::{HeaderMap, CACHE_CONTROL, ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// An answer: status, headers, JSON body (`Null` when empty).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    raw_len: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `method path` with `token` (none: anonymous), extra headers and an optional JSON body.
async fn call(
    s: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(reqwest::header::HeaderName, &str)],
    body: Option<Value>,
) -> Answer {
    let mut request = s.http.request(method, format!("{}{path}", s.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        raw_len: bytes.len(),
    }
}

async fn public_get(s: &Server, path: &str) -> Answer {
    call(s, Method::GET, path, None, &[], None).await
}

async fn create_category(s: &Server, parent: Option<Uuid>, slug: &str) -> Uuid {
    let a = call(
        s,
        Method::POST,
        "/api/categories",
        Some(&s.admin),
        &[],
        Some(json!({"parent_id": parent, "slug": slug, "name": slug})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["id"].as_str().unwrap().parse().unwrap()
}

/// Creates a product of one variant at `price` with `stock` units; its id and variant id.
async fn create_product(
    s: &Server,
    category: Uuid,
    sku: &str,
    price: i64,
    stock: i64,
) -> (Uuid, Uuid) {
    let a = call(
        s,
        Method::POST,
        "/api/products",
        Some(&s.admin),
        &[],
        Some(json!({
            "sku": sku, "name": format!("Product {sku}"), "category_id": category,
            "brand": "Acme", "description": "A thing",
            "attributes": {"material": "wood"},
            "variants": [{"sku": format!("{sku}-v"), "options": {"size": "M"},
                          "price_cents": price, "currency": "EUR", "initial_stock": stock}],
            "images": [{"url": "https://img.example.com/1.jpg", "alt_text": "front"}],
        })),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(
        a.header("etag"),
        Some("\"1\""),
        "a new product is at version 1"
    );
    let page = &a.body;
    assert_eq!(page["product"]["version"], 1);
    assert_eq!(page["cached"], false);
    (
        page["product"]["id"].as_str().unwrap().parse().unwrap(),
        page["variants"][0]["variant"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    )
}

/// A unique slug (`a-z`, `0-9`, `-`).
fn slug(prefix: &str) -> String {
    name(prefix).replace('_', "-")
}

fn listed(body: &Value) -> Vec<Uuid> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn price_in_listing(body: &Value, id: Uuid) -> Option<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.to_string().as_str())
        .map(|i| i["price_cents"].as_i64().unwrap())
}

/// Waits until the product-events consumer has handled `n` events (every catalog write
/// enqueues one; consuming it drops cached entries, so a case that asserts a cache hit waits
/// for the events of its own writes first).
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

// ---- the cases, each written once -------------------------------------------------------

async fn product_reads_are_cached_with_etags(s: &Server) {
    let root = create_category(s, None, &slug("root")).await;
    let (id, _) = create_product(s, root, &name("sku"), 1999, 3).await;
    events_consumed(s, 1).await;
    let path = format!("/api/products/{id}");

    // First read: a miss, loaded and cached; public caching headers and the version tag.
    let first = public_get(s, &path).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(first.body["cached"], false);
    assert_eq!(
        first.header(CACHE_CONTROL.as_str()),
        Some("public, max-age=60")
    );
    assert_eq!(first.header(ETAG.as_str()), Some("\"1\""));
    assert_eq!(first.body["product"]["id"], id.to_string().as_str());
    assert_eq!(first.body["variants"][0]["variant"]["price_cents"], 1999);
    assert_eq!(first.body["variants"][0]["on_hand"], 3);
    assert_eq!(first.body["category"]["id"], root.to_string().as_str());
    assert_eq!(first.body["images"][0]["alt_text"], "front");
    assert_eq!(first.body["rating"]["review_count"], 0);

    // Second read: the cache answers, and says so.
    let second = public_get(s, &path).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.body["cached"], true);
    assert_eq!(second.body["product"], first.body["product"]);

    // If-None-Match naming the version: 304, no body; another version: the page.
    for tag in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
        let a = call(s, Method::GET, &path, None, &[(IF_NONE_MATCH, tag)], None).await;
        assert_eq!(a.status, StatusCode::NOT_MODIFIED, "If-None-Match: {tag}");
        assert_eq!(a.raw_len, 0, "a 304 has no body");
        assert_eq!(a.header(ETAG.as_str()), Some("\"1\""));
    }
    let a = call(
        s,
        Method::GET,
        &path,
        None,
        &[(IF_NONE_MATCH, "\"0\"")],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);

    // Unknown product 404, a malformed id 422 naming `id`.
    let a = public_get(s, &format!("/api/products/{}", Uuid::new_v4())).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert_eq!(error_of(&a.body).0, "not_found");
    let a = public_get(s, "/api/products/not-a-uuid").await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_of(&a.body), ("validation", Some("id")));
}

async fn categories_and_listings(s: &Server) {
    let root = create_category(s, None, &slug("home")).await;
    let child = create_category(s, Some(root), &slug("garden")).await;
    let other = create_category(s, None, &slug("other")).await;
    let (cheap, _) = create_product(s, child, &name("cheap"), 500, 0).await;
    let (mid, _) = create_product(s, root, &name("mid"), 1500, 2).await;
    let (dear, _) = create_product(s, child, &name("dear"), 9000, 1).await;
    create_product(s, other, &name("elsewhere"), 100, 1).await;
    events_consumed(s, 4).await;

    // The tree: every category, public, with counts when asked.
    let a = public_get(s, "/api/categories").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header(CACHE_CONTROL.as_str()), Some("public, max-age=60"));
    let categories = a.body["categories"].as_array().unwrap();
    let find = |body: &Value, id: Uuid| {
        body["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.to_string().as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {body}"))
    };
    assert!(categories.len() >= 3);
    assert_eq!(find(&a.body, child)["parent_id"], root.to_string().as_str());
    assert!(
        find(&a.body, root).get("products").is_none(),
        "no counts unless asked"
    );
    let a = public_get(s, "/api/categories?counts=true").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(find(&a.body, root)["products"], 3, "the subtree's products");
    assert_eq!(find(&a.body, child)["products"], 2);
    let a = public_get(s, "/api/categories?counts=maybe").await;
    assert_eq!(error_of(&a.body), ("validation", Some("counts")));

    // The listing covers the subtree, newest first by default; cached per query.
    let path = format!("/api/categories/{root}/products");
    let a = public_get(s, &path).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header("x-cache"), Some("miss"));
    assert_eq!(a.header(CACHE_CONTROL.as_str()), Some("public, max-age=60"));
    assert_eq!(listed(&a.body), [dear, mid, cheap]);
    assert_eq!(a.body["cached"], false);
    let again = public_get(s, &path).await;
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(again.body["cached"], true);
    assert_eq!(again.body["items"], a.body["items"]);

    // Sorts and filters.
    let a = public_get(s, &format!("{path}?sort=price_asc")).await;
    assert_eq!(listed(&a.body), [cheap, mid, dear]);
    let a = public_get(s, &format!("{path}?sort=price_desc")).await;
    assert_eq!(listed(&a.body), [dear, mid, cheap]);
    let a = public_get(
        s,
        &format!("{path}?sort=price_asc&min_price_cents=1000&max_price_cents=9000"),
    )
    .await;
    assert_eq!(listed(&a.body), [mid, dear]);
    let a = public_get(s, &format!("{path}?sort=price_asc&in_stock=true")).await;
    assert_eq!(listed(&a.body), [mid, dear], "cheap has no stock");
    let a = public_get(s, &format!("{path}?brand=Nobody")).await;
    assert!(listed(&a.body).is_empty());
    let a = public_get(s, &format!("{path}?sort=rating")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(listed(&a.body).len(), 3);

    // Cursor pages: every product once.
    let a = public_get(s, &format!("{path}?sort=price_asc&limit=2")).await;
    assert_eq!(listed(&a.body), [cheap, mid]);
    let cursor = a.body["next_cursor"].as_str().unwrap().to_owned();
    let a = public_get(
        s,
        &format!(
            "{path}?sort=price_asc&limit=2&cursor={}",
            urlencode(&cursor)
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(listed(&a.body), [dear]);
    assert!(a.body["next_cursor"].is_null(), "the last page");

    // Bad input: 422 naming the parameter; unknown category 404.
    for (query, field) in [
        ("sort=cheapest", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("min_price_cents=-1", "min_price_cents"),
        ("max_price_cents=x", "max_price_cents"),
        ("min_price_cents=10&max_price_cents=5", "min_price_cents"),
        ("in_stock=perhaps", "in_stock"),
        ("colour=red", "colour"),
    ] {
        let a = public_get(s, &format!("{path}?{query}")).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            a.body
        );
        assert_eq!(error_of(&a.body), ("validation", Some(field)), "{query}");
    }
    let a = public_get(s, &format!("/api/categories/{}/products", Uuid::new_v4())).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let a = public_get(s, "/api/categories/nope/products").await;
    assert_eq!(error_of(&a.body), ("validation", Some("id")));
}

async fn writes_need_admin_and_valid_input(s: &Server) {
    let root = create_category(s, None, &slug("w")).await;
    let user = s.register(&name("shopper")).await;
    let user_token = token_of(&user);
    let category = json!({"slug": slug("c"), "name": "C"});
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(user_token.as_str()), StatusCode::FORBIDDEN),
    ] {
        let a = call(
            s,
            Method::POST,
            "/api/categories",
            token,
            &[],
            Some(category.clone()),
        )
        .await;
        assert_eq!(a.status, status, "{}", a.body);
        let a = call(
            s,
            Method::POST,
            "/api/products",
            token,
            &[],
            Some(json!({})),
        )
        .await;
        assert_eq!(a.status, status, "{}", a.body);
    }
    // A taken slug 409, an unknown parent 404, a bad slug 422.
    let taken = slug("taken");
    create_category(s, None, &taken).await;
    let a = call(
        s,
        Method::POST,
        "/api/categories",
        Some(&s.admin),
        &[],
        Some(json!({"slug": taken, "name": "again"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(error_of(&a.body), ("conflict", Some("slug")));
    let a = call(
        s,
        Method::POST,
        "/api/categories",
        Some(&s.admin),
        &[],
        Some(json!({"parent_id": Uuid::new_v4(), "slug": slug("orphan"), "name": "o"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let a = call(
        s,
        Method::POST,
        "/api/categories",
        Some(&s.admin),
        &[],
        Some(json!({"slug": "Not A Slug!", "name": "x"})),
    )
    .await;
    assert_eq!(error_of(&a.body), ("validation", Some("slug")));

    // Products: bad price, currency, options → 422 naming the field.
    let product = |variant: Value| json!({"sku": name("p"), "name": "P", "category_id": root, "variants": [variant]});
    for (variant, field) in [
        (
            json!({"sku": name("v"), "price_cents": -1, "currency": "EUR"}),
            "price_cents",
        ),
        (
            json!({"sku": name("v"), "price_cents": 1, "currency": "eur"}),
            "currency",
        ),
        (
            json!({"sku": name("v"), "price_cents": 1, "currency": "EURO"}),
            "currency",
        ),
        (
            json!({"sku": name("v"), "price_cents": 1, "currency": "EUR", "options": {"size": ""}}),
            "options",
        ),
    ] {
        let a = call(
            s,
            Method::POST,
            "/api/products",
            Some(&s.admin),
            &[],
            Some(product(variant.clone())),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{variant}: {}",
            a.body
        );
        assert_eq!(error_of(&a.body), ("validation", Some(field)), "{variant}");
    }
    let a = call(
        s,
        Method::POST,
        "/api/products",
        Some(&s.admin),
        &[],
        Some(
            json!({"sku": name("p"), "name": "P", "category_id": Uuid::new_v4(),
                    "variants": [{"sku": name("v"), "price_cents": 1, "currency": "EUR"}]}),
        ),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "unknown category: {}",
        a.body
    );

    // Updates: admin only, If-Match required (428) and current (412).
    let (id, variant) = create_product(s, root, &name("u"), 1000, 1).await;
    let path = format!("/api/products/{id}");
    let patch = json!({"prices": {variant.to_string(): 1200}});
    let a = call(
        s,
        Method::PATCH,
        &path,
        None,
        &[(IF_MATCH, "\"1\"")],
        Some(patch.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = call(
        s,
        Method::PATCH,
        &path,
        Some(&user_token),
        &[(IF_MATCH, "\"1\"")],
        Some(patch.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    for method in [Method::PATCH, Method::PUT] {
        let body = if method == Method::PUT {
            json!({"name": "N", "category_id": root})
        } else {
            patch.clone()
        };
        let a = call(
            s,
            method.clone(),
            &path,
            Some(&s.admin),
            &[],
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::PRECONDITION_REQUIRED,
            "{method}: {}",
            a.body
        );
        assert_eq!(error_of(&a.body).0, "precondition_required");
        let a = call(
            s,
            method.clone(),
            &path,
            Some(&s.admin),
            &[(IF_MATCH, "\"0\"")],
            Some(body),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::PRECONDITION_FAILED,
            "{method}: {}",
            a.body
        );
        assert_eq!(error_of(&a.body).0, "precondition_failed");
    }
    let admin = s.admin.clone();
    let patch_with = |body: Value, tag: &'static str| {
        let admin = admin.clone();
        let path = path.clone();
        async move {
            call(
                s,
                Method::PATCH,
                &path,
                Some(&admin),
                &[(IF_MATCH, tag)],
                Some(body),
            )
            .await
        }
    };
    for (body, field) in [
        (json!({"prices": {variant.to_string(): -5}}), "price_cents"),
        (json!({"prices": {Uuid::new_v4().to_string(): 5}}), "prices"),
        (json!({}), "body"),
        (json!({"colour": "red"}), "body"),
        (json!({"name": ""}), "name"),
    ] {
        let a = patch_with(body.clone(), "\"1\"").await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            a.body
        );
        assert_eq!(error_of(&a.body), ("validation", Some(field)), "{body}");
    }
    let a = call(
        s,
        Method::PATCH,
        &format!("/api/products/{}", Uuid::new_v4()),
        Some(&s.admin),
        &[(IF_MATCH, "\"1\"")],
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let a = call(
        s,
        Method::PUT,
        &path,
        Some(&s.admin),
        &[(IF_MATCH, "\"1\"")],
        Some(json!({"name": "x", "category_id": Uuid::new_v4()})),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "unknown category: {}",
        a.body
    );

    // Nothing above changed the product.
    let a = public_get(s, &path).await;
    assert_eq!(a.header(ETAG.as_str()), Some("\"1\""), "{}", a.body);

    // PUT replaces the document: the absent brand is cleared, the version moves on.
    let a = call(s, Method::PUT, &path, Some(&s.admin), &[(IF_MATCH, "\"1\"")],
        Some(json!({"name": "Renamed", "description": "new", "attributes": {"k": "v"}, "category_id": root}))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header(ETAG.as_str()), Some("\"2\""));
    assert_eq!(a.body["product"]["name"], "Renamed");
    assert!(a.body["product"]["brand"].is_null());
    assert_eq!(a.body["product"]["attributes"], json!({"k": "v"}));
    assert_eq!(
        a.body["variants"][0]["variant"]["price_cents"], 1000,
        "PUT leaves prices"
    );
    // The same stale tag again: 412.
    let a = call(
        s,
        Method::PUT,
        &path,
        Some(&s.admin),
        &[(IF_MATCH, "\"1\"")],
        Some(json!({"name": "Again", "category_id": root})),
    )
    .await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED, "{}", a.body);
}

async fn a_price_change_invalidates_the_page_and_the_listing(s: &Server) {
    let root = create_category(s, None, &slug("inv")).await;
    let (id, variant) = create_product(s, root, &name("i"), 2500, 4).await;
    events_consumed(s, 1).await;
    let path = format!("/api/products/{id}");
    let listing = format!("/api/categories/{root}/products");

    // Both cached.
    public_get(s, &path).await;
    assert_eq!(public_get(s, &path).await.header("x-cache"), Some("hit"));
    public_get(s, &listing).await;
    let a = public_get(s, &listing).await;
    assert_eq!(a.header("x-cache"), Some("hit"));
    assert_eq!(price_in_listing(&a.body, id), Some(2500));

    // A new price, under the ETag read.
    let a = call(
        s,
        Method::PATCH,
        &path,
        Some(&s.admin),
        &[(IF_MATCH, "\"1\"")],
        Some(json!({"prices": {variant.to_string(): 1999}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header(ETAG.as_str()), Some("\"2\""));
    assert_eq!(a.body["variants"][0]["variant"]["price_cents"], 1999);
    assert_eq!(a.body["cached"], false);

    // The next read is a miss with the new price and tag; the listing shows it too.
    let a = public_get(s, &path).await;
    assert_eq!(a.header("x-cache"), Some("miss"), "{}", a.body);
    assert_eq!(a.header(ETAG.as_str()), Some("\"2\""));
    assert_eq!(a.body["variants"][0]["variant"]["price_cents"], 1999);
    let a = call(
        s,
        Method::GET,
        &path,
        None,
        &[(IF_NONE_MATCH, "\"1\"")],
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "the old tag no longer matches");
    let a = public_get(s, &listing).await;
    assert_eq!(a.header("x-cache"), Some("miss"));
    assert_eq!(price_in_listing(&a.body, id), Some(1999));

    // Archiving under a stale version: 412, nothing changes.
    let err = s.app.archive_product(id, 1).await.unwrap_err();
    assert_eq!(
        err.status(),
        axum::http::StatusCode::PRECONDITION_FAILED,
        "{err}"
    );
    // Archived: it leaves the listing, its page still answers with archived_at.
    let archived = s.app.archive_product(id, 2).await.unwrap();
    assert!(archived.page.product.archived_at.is_some());
    let a = public_get(s, &listing).await;
    assert!(!listed(&a.body).contains(&id), "{}", a.body);
    let a = public_get(s, &path).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(ETAG.as_str()), Some("\"3\""));
    assert!(a.body["product"]["archived_at"].is_string(), "{}", a.body);
}

async fn product_events_reach_the_consumer_and_drop_recommendations(s: &Server) {
    let root = create_category(s, None, &slug("ev")).await;
    let (id, variant) = create_product(s, root, &name("e"), 700, 1).await;
    let user = s.register(&name("recs")).await;
    let user_id = id_of(&user);
    let recs = format!("/api/users/{user_id}/recommendations");
    let token = token_of(&user);
    let consumed = || async {
        s.app
            .consumer_stats()
            .await
            .iter()
            .find(|c| c.name == mod8_app::ConsumerCounts::PRODUCT_EVENTS)
            .map_or(0, |c| c.acked)
    };
    // The creation's event, published by the relay and consumed.
    eventually("the creation's product event consumed", || async {
        consumed().await >= 1
    })
    .await;
    let before = consumed().await;
    // Cached by this first read (or by the registration).
    s.get_as(Some(&token), &recs).await;
    let (status, body) = s.get_as(Some(&token), &recs).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cached"], true);

    let a = call(
        s,
        Method::PATCH,
        &format!("/api/products/{id}"),
        Some(&s.admin),
        &[(IF_MATCH, "\"1\"")],
        Some(json!({"prices": {variant.to_string(): 650}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    eventually("the update's product event consumed", || async {
        consumed().await > before
    })
    .await;
    let (status, body) = s.get_as(Some(&token), &recs).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["cached"], false,
        "the consumer dropped the cached recommendations"
    );
    // The relay marks a row sent after the broker confirms it, which may come after the
    // consumer has already seen the message.
    eventually("every product row marked sent", || async {
        s.app.outbox.backlog() == 0
    })
    .await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

both_backends!(
    "app catalog http on real services";
    product_reads_are_cached_with_etags,
    categories_and_listings,
    writes_need_admin_and_valid_input,
    a_price_change_invalidates_the_page_and_the_listing,
    product_events_reach_the_consumer_and_drop_recommendations,
);
