//! The shop over HTTP: carts, checkout, the order life cycle and reviews, with who may call
//! what, every documented status, a failed checkout that leaves nothing behind, and 50
//! concurrent checkouts of the last 10 units. Every case runs on the embedded defaults, and
//! again on the real services when the `MOD8_*_URL` variables are set.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use mod8_app::http::auth::Scope;
use mod8_orm::{InventoryRepository, NewProduct, NewUser};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

// ---- helpers ------------------------------------------------------------------------------

/// A new simple product with `stock` units; its one variant has the product's id.
async fn product(s: &Server, price_cents: i64, stock: i64) -> Uuid {
    s.app
        .sql
        .create_product(NewProduct {
            sku: name("SHOP").to_uppercase(),
            name: name("shop item"),
            category: "shop-tests".into(),
            price_cents,
            stock,
        })
        .await
        .unwrap()
        .id
}

/// A user created straight in SQL (no registration side effects) and its token.
async fn quick_user(s: &Server, prefix: &str) -> (Uuid, String) {
    let n = name(prefix);
    let user = s
        .app
        .sql
        .create_user(NewUser::new(format!("{n}@example.com"), n))
        .await
        .unwrap();
    let token = s
        .app
        .auth
        .issue(Scope::User, &user.id.to_string())
        .unwrap()
        .token;
    (user.id, token)
}

fn berlin() -> Value {
    json!({"street": "2 Shop St", "postal_code": "10115", "city": "Berlin", "country_code": "DE"})
}

async fn reserved(s: &Server, variant: Uuid) -> (i64, i64) {
    let level = s.app.sql.inventory(variant).await.unwrap();
    (level.on_hand, level.reserved)
}

async fn assert_ledger_balanced(s: &Server) {
    let mismatches = s.app.sql.ledger_mismatches().await.unwrap();
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

fn quantities(cart: &Value) -> Vec<(String, i64)> {
    let mut lines: Vec<(String, i64)> = cart["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["variant_id"].as_str().unwrap().to_owned(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    lines.sort();
    lines
}

// ---- the cases, each written once -------------------------------------------------------

async fn cart_routes_and_who_may_use_them(s: &Server) {
    let ada = s.register(&name("ada")).await;
    let (ada_id, ada_token) = (id_of(&ada), token_of(&ada));
    let (_, bob_token) = quick_user(s, "bob").await;
    let p1 = product(s, 250, 100).await;
    let p2 = product(s, 1_000, 100).await;
    let cart = format!("/api/users/{ada_id}/cart");
    let items = format!("{cart}/items");

    let (status, body) = s.get_as(Some(&ada_token), &cart).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lines"], json!([]));
    assert_eq!(body["total_cents"], 0);
    assert_eq!(body["user_id"], ada_id.to_string());

    // Who may: the user and an admin; not another user, not without a token.
    let (status, body) = s.get_as(None, &cart).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_of(&body).0, "unauthorized");
    let (status, body) = s.get_as(Some(&bob_token), &cart).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_of(&body).0, "forbidden");
    let (status, _) = s.get(&cart).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        (
            Method::POST,
            items.clone(),
            Some(json!({"variant_id": p1, "quantity": 1})),
        ),
        (
            Method::PUT,
            format!("{items}/{p1}"),
            Some(json!({"quantity": 1})),
        ),
        (Method::DELETE, format!("{items}/{p1}"), None),
        (Method::DELETE, cart.clone(), None),
    ] {
        let (status, answer) = s
            .send_as(method.clone(), Some(&bob_token), &path, body.clone())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        let (status, answer) = s.send_as(method.clone(), None, &path, body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
    }

    // Adding the same variant merges.
    let (status, body) = s
        .post_as(
            Some(&ada_token),
            &items,
            json!({"variant_id": p1, "quantity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(quantities(&body), [(p1.to_string(), 2)]);
    let (_, body) = s
        .post_as(
            Some(&ada_token),
            &items,
            json!({"variant_id": p1, "quantity": 3}),
        )
        .await;
    assert_eq!(quantities(&body), [(p1.to_string(), 5)]);
    assert_eq!(body["total_cents"], 5 * 250);
    let (_, body) = s
        .post(&items, json!({"variant_id": p2, "quantity": 1}))
        .await;
    assert_eq!(body["total_cents"], 5 * 250 + 1_000, "{body}");

    // Bad input: unknown variant 404, bad quantity and unknown fields 422.
    let (status, body) = s
        .post_as(
            Some(&ada_token),
            &items,
            json!({"variant_id": Uuid::new_v4(), "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s
        .post_as(
            Some(&ada_token),
            &items,
            json!({"variant_id": p1, "quantity": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("quantity")));
    let (status, body) = s
        .post_as(
            Some(&ada_token),
            &items,
            json!({"variant_id": p1, "quantity": 1, "price_cents": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("body")));

    // Set a quantity; a line not in the cart is 404.
    let (status, body) = s
        .send_as(
            Method::PUT,
            Some(&ada_token),
            &format!("{items}/{p1}"),
            Some(json!({"quantity": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(quantities(&body), {
        let mut want = vec![(p1.to_string(), 1), (p2.to_string(), 1)];
        want.sort();
        want
    });
    let absent = Uuid::new_v4();
    let (status, body) = s
        .send_as(
            Method::PUT,
            Some(&ada_token),
            &format!("{items}/{absent}"),
            Some(json!({"quantity": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s
        .send_as(
            Method::PUT,
            Some(&ada_token),
            &format!("{items}/{p1}"),
            Some(json!({"quantity": -1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Remove a line: 204, then 404.
    let (status, _) = s
        .send_as(
            Method::DELETE,
            Some(&ada_token),
            &format!("{items}/{p1}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s
        .send_as(
            Method::DELETE,
            Some(&ada_token),
            &format!("{items}/{p1}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_of(&body).0, "not_found");
    let (_, body) = s.get_as(Some(&ada_token), &cart).await;
    assert_eq!(quantities(&body), [(p2.to_string(), 1)]);

    // Empty the cart.
    let (status, body) = s
        .send_as(Method::DELETE, Some(&ada_token), &cart, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lines"], json!([]));
    let (_, body) = s.get_as(Some(&ada_token), &cart).await;
    assert_eq!(body["lines"], json!([]));

    // Unknown user 404, an id that is not a UUID 422.
    let (status, body) = s.get(&format!("/api/users/{}/cart", Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s.get("/api/users/nope/cart").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("id")));
    let (status, body) = s
        .send_as(Method::DELETE, None, &format!("{items}/not-a-uuid"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "token first: {body}");
}

async fn checkout_and_the_order_life_cycle(s: &Server) {
    let ada = s.register(&name("ada")).await;
    let (ada_id, ada_token) = (id_of(&ada), token_of(&ada));
    let home: Uuid = ada["user"]["address_id"].as_str().unwrap().parse().unwrap();
    let (_, bob_token) = quick_user(s, "bob").await;
    let variant = product(s, 400, 5).await;
    let other = product(s, 100, 50).await;
    let orders = format!("/api/users/{ada_id}/orders");
    let items = format!("/api/users/{ada_id}/cart/items");

    // Whoever subscribes to order events gets them: bind a queue to the data exchange.
    let topology = &s.app.config.topology;
    let events_queue = format!("{}.order_events_test", topology.data_exchange);
    s.app
        .broker
        .declare_queue(&mod8_mq::QueueSpec::named(&events_queue))
        .await
        .unwrap();
    s.app
        .broker
        .bind(&mod8_mq::BindingSpec::new(
            &events_queue,
            &topology.data_exchange,
            mod8_mq::domain::Topology::ORDER_PLACED_KEY,
        ))
        .await
        .unwrap();

    // From the cart, shipping to a new address, billed to the registered one.
    s.post_as(
        Some(&ada_token),
        &items,
        json!({"variant_id": variant, "quantity": 2}),
    )
    .await;
    let (status, first) = s
        .post_as(
            Some(&ada_token),
            &orders,
            json!({"shipping_address": berlin(), "billing_address": home}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "placed");
    assert_eq!(first["user_id"], ada_id.to_string());
    assert_eq!(first["total_cents"], 800);
    assert_eq!(first["items"][0]["variant_id"], variant.to_string());
    assert_eq!(first["items"][0]["quantity"], 2);
    assert_eq!(first["billing_address_id"], home.to_string());
    let shipped_to: Uuid = first["shipping_address_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(shipped_to, home, "a new address was created");
    let location = s.app.sql.location(shipped_to).await.unwrap();
    assert_eq!(location.address.street, "2 Shop St");
    let (_, cart) = s
        .get_as(Some(&ada_token), &format!("/api/users/{ada_id}/cart"))
        .await;
    assert_eq!(cart["lines"], json!([]), "the cart was bought");
    assert_eq!(reserved(s, variant).await, (5, 2));

    // The relay publishes order.placed: the event carries the order, and its message id
    // is the outbox event's id.
    eventually("the order.placed event", || async {
        s.app.broker.queue_depth(&events_queue).await.unwrap() == 1
    })
    .await;

    // From given lines: the cart is left alone. Billing defaults to shipping.
    s.post_as(
        Some(&ada_token),
        &items,
        json!({"variant_id": other, "quantity": 4}),
    )
    .await;
    let (status, second) = s
        .post_as(
            Some(&ada_token),
            &orders,
            json!({"lines": [{"variant_id": variant, "quantity": 1}], "shipping_address": home}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["billing_address_id"], home.to_string());
    let (_, cart) = s
        .get_as(Some(&ada_token), &format!("/api/users/{ada_id}/cart"))
        .await;
    assert_eq!(quantities(&cart), [(other.to_string(), 4)]);
    assert_eq!(reserved(s, variant).await, (5, 3));
    eventually("both order.placed events", || async {
        s.app.broker.queue_depth(&events_queue).await.unwrap() == 2
    })
    .await;
    let _ = s.app.broker.delete_queue(&events_queue).await;

    // Listing: the user and an admin; not another user, not without a token.
    let (status, list) = s.get_as(Some(&ada_token), &orders).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first["id"].as_str().unwrap()));
    assert!(ids.contains(&second["id"].as_str().unwrap()));
    assert_eq!(s.get(&orders).await.0, StatusCode::OK);
    assert_eq!(
        s.get_as(Some(&bob_token), &orders).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.get_as(None, &orders).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = s
        .post_as(Some(&bob_token), &orders, json!({"shipping_address": home}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .post_as(None, &orders, json!({"shipping_address": home}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Pay: the buyer or an admin; another user 403, no token 401.
    let first_id = first["id"].as_str().unwrap();
    let pay = format!("/api/orders/{first_id}/pay");
    assert_eq!(
        s.post_as(Some(&bob_token), &pay, json!(null)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.post_as(None, &pay, json!(null)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, paid) = s.post_as(Some(&ada_token), &pay, json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["items"][0]["quantity"], 2);
    // Ship: admin only; it sells the reserved units.
    let ship = format!("/api/orders/{first_id}/ship");
    let (status, body) = s.post_as(Some(&ada_token), &ship, json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, shipped) = s.post(&ship, json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(reserved(s, variant).await, (3, 1));
    // A shipped order is not cancelled, nor paid again.
    for action in ["cancel", "pay"] {
        let (status, body) = s
            .post_as(
                Some(&ada_token),
                &format!("/api/orders/{first_id}/{action}"),
                json!(null),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
        assert_eq!(error_of(&body), ("conflict", Some("status")), "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("shipped"),
            "{body}"
        );
    }

    // Cancel: the buyer; it releases the reservation. Then nothing moves it.
    let second_id = second["id"].as_str().unwrap();
    let cancel = format!("/api/orders/{second_id}/cancel");
    assert_eq!(
        s.post_as(Some(&bob_token), &cancel, json!(null)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, cancelled) = s.post_as(Some(&ada_token), &cancel, json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(reserved(s, variant).await, (3, 0), "released");
    for action in ["pay", "ship"] {
        let (status, body) = s
            .post(&format!("/api/orders/{second_id}/{action}"), json!(null))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
        assert_eq!(error_of(&body), ("conflict", Some("status")));
    }
    assert_eq!(reserved(s, variant).await, (3, 0));

    // Unknown orders: 404 for an admin; a user cannot tell (403).
    let nowhere = format!("/api/orders/{}/pay", Uuid::new_v4());
    assert_eq!(s.post(&nowhere, json!(null)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.post_as(Some(&ada_token), &nowhere, json!(null)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = s.post("/api/orders/x/pay", json!(null)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Bad checkouts: no shipping address, an unknown city, an unknown address id, an empty
    // cart, an unknown member — and none of them writes anything.
    let before = s.get_as(Some(&ada_token), &orders).await.1["orders"]
        .as_array()
        .unwrap()
        .len();
    let (status, body) = s.post_as(Some(&ada_token), &orders, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("shipping_address")));
    let mut nowhere_city = berlin();
    nowhere_city["city"] = json!("Atlantis");
    let (status, body) = s
        .post_as(
            Some(&ada_token),
            &orders,
            json!({"shipping_address": nowhere_city}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        error_of(&body),
        ("validation", Some("shipping_address.city"))
    );
    let (status, body) = s
        .post_as(
            Some(&ada_token),
            &orders,
            json!({"shipping_address": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s
        .post_as(
            Some(&ada_token),
            &orders,
            json!({"shipping_address": home, "coupon": "FREE"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    s.send_as(
        Method::DELETE,
        Some(&ada_token),
        &format!("/api/users/{ada_id}/cart"),
        None,
    )
    .await;
    let (status, body) = s
        .post_as(Some(&ada_token), &orders, json!({"shipping_address": home}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("lines")));
    let after = s.get_as(Some(&ada_token), &orders).await.1["orders"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
    assert_ledger_balanced(s).await;
}

async fn a_failed_checkout_leaves_nothing(s: &Server) {
    let (user, token) = quick_user(s, "short").await;
    let plenty = product(s, 100, 100).await;
    let scarce = product(s, 700, 3).await;
    let items = format!("/api/users/{user}/cart/items");
    for (variant, quantity) in [(plenty, 2), (scarce, 5)] {
        let (status, body) = s
            .post_as(
                Some(&token),
                &items,
                json!({"variant_id": variant, "quantity": quantity}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, cart_before) = s
        .get_as(Some(&token), &format!("/api/users/{user}/cart"))
        .await;
    let berlin_id = s
        .app
        .sql
        .find_city("Berlin", "DE")
        .await
        .unwrap()
        .unwrap()
        .id;
    let addresses_before = s.app.sql.addresses_in_city(berlin_id).await.unwrap().len();

    let (status, body) = s
        .post_as(
            Some(&token),
            &format!("/api/users/{user}/orders"),
            json!({"shipping_address": berlin(), "billing_address": berlin()}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_of(&body), ("conflict", Some("stock")));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&scarce.to_string()),
        "names the variant: {message}"
    );
    assert!(message.contains('3'), "says what is available: {message}");

    // Nothing written: no reservation, no order, no address, the cart as it was.
    assert_eq!(reserved(s, plenty).await, (100, 0));
    assert_eq!(reserved(s, scarce).await, (3, 0));
    let (_, orders) = s
        .get_as(Some(&token), &format!("/api/users/{user}/orders"))
        .await;
    assert_eq!(orders["orders"], json!([]));
    let (_, cart_after) = s
        .get_as(Some(&token), &format!("/api/users/{user}/cart"))
        .await;
    assert_eq!(cart_after, cart_before);
    assert_eq!(
        s.app.sql.addresses_in_city(berlin_id).await.unwrap().len(),
        addresses_before
    );
    // The same with given lines.
    let (status, body) = s
        .post_as(
            Some(&token),
            &format!("/api/users/{user}/orders"),
            json!({"lines": [{"variant_id": plenty, "quantity": 1}, {"variant_id": scarce, "quantity": 4}],
                   "shipping_address": berlin()}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(reserved(s, plenty).await, (100, 0));
    assert_eq!(reserved(s, scarce).await, (3, 0));
    assert_ledger_balanced(s).await;
}

async fn reviews_are_verified_only_after_payment(s: &Server) {
    let item = product(s, 1_500, 10).await;
    let reviews = format!("/api/products/{item}/reviews");
    let order_of = |user: Uuid| format!("/api/users/{user}/orders");
    let line =
        json!({"lines": [{"variant_id": item, "quantity": 1}], "shipping_address": berlin()});

    // Without any purchase: accepted, not verified.
    let (stranger, stranger_token) = quick_user(s, "stranger").await;
    let (status, review) = s
        .post_as(
            Some(&stranger_token),
            &reviews,
            json!({"rating": 2, "title": "Never bought it", "body": "but still"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    assert_eq!(review["verified_purchase"], false);
    assert_eq!(review["user_id"], stranger.to_string(), "the token's user");
    assert_eq!(review["product_id"], item.to_string());

    // Ordered, not paid: not verified.
    let (placer, placer_token) = quick_user(s, "placer").await;
    let (status, body) = s
        .post_as(Some(&placer_token), &order_of(placer), line.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, review) = s
        .post_as(
            Some(&placer_token),
            &reviews,
            json!({"rating": 4, "title": "Waiting"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    assert_eq!(review["verified_purchase"], false);

    // Paid: verified.
    let (payer, payer_token) = quick_user(s, "payer").await;
    let (_, order) = s
        .post_as(Some(&payer_token), &order_of(payer), line.clone())
        .await;
    let (status, body) = s
        .post_as(
            Some(&payer_token),
            &format!("/api/orders/{}/pay", order["id"].as_str().unwrap()),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A client cannot claim it: `verified_purchase` is an unknown member.
    let (status, body) = s
        .post_as(
            Some(&payer_token),
            &reviews,
            json!({"rating": 5, "title": "Great", "verified_purchase": false}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("body")));
    let (status, review) = s
        .post_as(
            Some(&payer_token),
            &reviews,
            json!({"rating": 5, "title": "Great", "body": "Works."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    assert_eq!(review["verified_purchase"], true);

    // One review per user and product; bad ratings; who may write.
    let (status, body) = s
        .post_as(
            Some(&payer_token),
            &reviews,
            json!({"rating": 1, "title": "Again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_of(&body), ("conflict", Some("user_id")));
    let (_, fresh_token) = quick_user(s, "fresh").await;
    let (status, body) = s
        .post_as(
            Some(&fresh_token),
            &reviews,
            json!({"rating": 6, "title": "Too good"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("rating")));
    let (status, _) = s
        .post_as(None, &reviews, json!({"rating": 3, "title": "Anon"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = s
        .post(&reviews, json!({"rating": 3, "title": "Admin"}))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "admin may not review: {body}"
    );
    let service = s.app.auth.issue(Scope::Service, "ingest").unwrap().token;
    let (status, _) = s
        .post_as(
            Some(&service),
            &reviews,
            json!({"rating": 3, "title": "Bot"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s
        .post_as(
            Some(&fresh_token),
            &format!("/api/products/{}/reviews", Uuid::new_v4()),
            json!({"rating": 3, "title": "Ghost"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Public, paged, newest first, with the rating.
    let (status, page) = s.get_as(None, &reviews).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["review_count"], 3);
    assert!((page["average_rating"].as_f64().unwrap() - 11.0 / 3.0).abs() < 1e-9);
    assert_eq!(page["reviews"].as_array().unwrap().len(), 3);
    let (_, first) = s.get_as(None, &format!("{reviews}?limit=2")).await;
    let (_, rest) = s.get_as(None, &format!("{reviews}?offset=2&limit=2")).await;
    assert_eq!(first["reviews"].as_array().unwrap().len(), 2);
    assert_eq!(rest["reviews"].as_array().unwrap().len(), 1);
    let mut seen: Vec<&str> = first["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["reviews"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 3, "pages do not overlap");
    let (status, body) = s.get_as(None, &format!("{reviews}?limit=0")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("limit")));
    let (status, body) = s.get_as(None, &format!("{reviews}?limit=abc")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = s
        .get_as(None, &format!("/api/products/{}/reviews", Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn fifty_checkouts_of_the_last_ten_units(s: &Server) {
    let variant = product(s, 999, 10).await;
    let mut buyers = Vec::new();
    for _ in 0..50 {
        buyers.push(quick_user(s, "rush").await);
    }
    let attempts = buyers.into_iter().map(|(user, token)| async move {
        s.post_as(
            Some(&token),
            &format!("/api/users/{user}/orders"),
            json!({"lines": [{"variant_id": variant, "quantity": 1}], "shipping_address": berlin()}),
        )
        .await
    });
    let answers = futures::future::join_all(attempts).await;
    let mut placed = 0;
    let mut refused = 0;
    for (status, body) in &answers {
        match *status {
            StatusCode::CREATED => placed += 1,
            StatusCode::CONFLICT => {
                assert_eq!(error_of(body), ("conflict", Some("stock")), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((placed, refused), (10, 40));
    assert_eq!(reserved(s, variant).await, (10, 10));
    assert_ledger_balanced(s).await;
}

both_backends!(
    "app shop http on real services";
    cart_routes_and_who_may_use_them,
    checkout_and_the_order_life_cycle,
    a_failed_checkout_leaves_nothing,
    reviews_are_verified_only_after_payment,
    fifty_checkouts_of_the_last_ten_units,
);
