//! One validation from the API to the consumers, on the embedded defaults: every class of
//! input the consumers behind the API reject is answered 422 naming the field (and moves no
//! counter), what the API accepts is stored and never dead-lettered, look-alike identities
//! are conflicts, and 4xx messages neither echo unbounded input nor name Rust types.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use chrono::NaiveDate;
use mod8_app::{AppConfig, ConsumerCounts};
use mod8_mq::domain::{validate_analytics, validate_user, Analytics, UserData};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

/// What the consumers behind `POST /api/users` say about a user: the user-data consumer's
/// check (the document store's profile check runs on what it accepts).
fn consumer_accepts_user(username: &str, email: &str) -> bool {
    let data = UserData {
        username: username.into(),
        email: email.into(),
        registration_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
    };
    validate_user(&data, Uuid::nil()).is_ok()
}

/// What the consumers behind `POST /api/events` say about an event: the analytics
/// consumer's check, then the document store's on the document the event-log sink stores.
fn consumer_accepts_event(event_type: &str, properties: &Value) -> bool {
    let message = Analytics {
        event_type: event_type.into(),
        user_id: Uuid::new_v4().to_string(),
        properties: properties
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>(),
    };
    validate_analytics(&message).is_ok()
        && mod8_docstore::check_event(&mod8_app::sinks::to_document_event(
            &message,
            chrono::Utc::now(),
        ))
        .is_ok()
}

fn deep(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({ "k": inner }))
}

async fn dead_lettered(s: &Server) -> u64 {
    s.app
        .consumer_stats()
        .await
        .iter()
        .map(|c| c.dead_lettered)
        .sum()
}

async fn acked(s: &Server, name: &str) -> u64 {
    s.app
        .consumer_stats()
        .await
        .iter()
        .filter(|c| c.name == name)
        .map(|c| c.acked)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_the_consumers_reject_are_422_naming_the_field() {
    let s = Server::start(AppConfig::embedded()).await;
    let ok_email = |n: &str| format!("{n}@example.com");
    let long_name = "é".repeat(33); // 33 characters, 66 bytes
    let cases: Vec<(String, String, &str)> = vec![
        ("ab".into(), ok_email("ab1"), "username"),
        ("x".into(), ok_email("x1"), "username"),
        (long_name, ok_email("long1"), "username"),
        ("x".repeat(65), ok_email("long2"), "username"),
        ("gr\u{430}ce_ru".into(), ok_email("mixed"), "username"),
        ("ada\u{200B}zw".into(), ok_email("zw1"), "username"),
        ("\u{202E}ecarg".into(), ok_email("bidi1"), "username"),
        ("$where".into(), ok_email("op1"), "username"),
        ("dollar_mail".into(), "$ada@example.com".into(), "email"),
        ("zw_mail".into(), "ada\u{200B}@example.com".into(), "email"),
        (
            "bidi_mail".into(),
            "\u{202E}ada@example.com".into(),
            "email",
        ),
        ("lri_mail".into(), "ada@exa\u{2066}mple.com".into(), "email"),
        ("bom_mail".into(), "\u{FEFF}ada@example.com".into(), "email"),
    ];
    for (username, email, field) in &cases {
        assert!(
            !consumer_accepts_user(username, email),
            "{username:?} / {email:?}: the consumer accepts it; not a class it rejects"
        );
        let (status, body) = s
            .post("/api/users", json!({"username": username, "email": email}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{username:?} / {email:?}: {body}"
        );
        assert_eq!(error_of(&body), ("validation", Some(*field)), "{body}");
    }
    assert_eq!(s.app.sql.user_stats().await.unwrap().count, 0);

    // What the API accepts, the consumer stores: registrations at the edges of the rule.
    let accepted = ["abc", "Σωκράτης", "Иван_1", "Jose\u{301}", &"x".repeat(50)];
    for (i, username) in accepted.iter().enumerate() {
        assert!(consumer_accepts_user(
            username,
            &format!("edge{i}@example.com")
        ));
        let (status, body) = s
            .post(
                "/api/users",
                json!({"username": username, "email": format!("Edge{i}@Example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{username:?}: {body}");
    }
    eventually(
        "the user-data consumer to handle every registration",
        || async { acked(&s, ConsumerCounts::USER_DATA).await == accepted.len() as u64 },
    )
    .await;
    assert_eq!(
        dead_lettered(&s).await,
        0,
        "{:?}",
        s.app.consumer_stats().await
    );
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_consumers_reject_are_422_and_count_nothing() {
    let s = Server::start(AppConfig::embedded()).await;
    let user = id_of(&s.register(&name("eve")).await);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("Page View", json!({}), "event_type"),
        ("", json!({}), "event_type"),
        ("click", json!({"$where": 1}), "properties"),
        ("click", json!({"a.b": 1}), "properties"),
        ("click", json!({"a\u{0}b": 1}), "properties"),
        ("click", json!({"nested": {"$gt": 1}}), "properties"),
        ("click", json!({"list": [{"x.y": 1}]}), "properties"),
        ("purchase", json!({"product": "$gt"}), "properties.product"),
        (
            "purchase",
            json!({"product_id": "$ne"}),
            "properties.product",
        ),
        (
            "purchase",
            json!({"category": "$where"}),
            "properties.category",
        ),
        ("purchase", json!({"price": -1.5}), "properties.price"),
        ("purchase", json!({"amount": -3}), "properties.price"),
        // Bounded: items (every key and element, at every depth), depth, bytes, keys.
        ("click", json!({"big": vec![0; 7_000]}), "properties"),
        (
            "click",
            json!({"big": vec![0; mod8_rules::MAX_PROPERTIES_ITEMS]}),
            "properties",
        ),
        (
            "click",
            json!({"long": "x".repeat(mod8_rules::MAX_PROPERTIES_BYTES)}),
            "properties",
        ),
        (
            "click",
            deep(mod8_rules::MAX_PROPERTIES_DEPTH + 1),
            "properties",
        ),
        (
            "click",
            Value::Object(
                (0..=mod8_rules::MAX_PROPERTIES)
                    .map(|i| (format!("k{i}"), json!(i)))
                    .collect(),
            ),
            "properties",
        ),
    ];
    for (event_type, properties, field) in &cases {
        assert!(
            !consumer_accepts_event(event_type, properties),
            "{event_type:?} {properties}: the consumers accept it; not a class they reject"
        );
        let (status, body) = s
            .post(
                "/api/events",
                json!({"user_id": user, "event_type": event_type, "properties": properties}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{event_type:?} {properties}: {body}"
        );
        assert_eq!(error_of(&body), ("validation", Some(*field)), "{body}");
    }
    // Nothing was counted (not even in the total), published or stored.
    let raw = s
        .app
        .cache
        .counter(&mod8_app::keys::counters(user))
        .await
        .unwrap();
    assert!(raw.values().all(|&v| v == 0), "{raw:?}");
    assert_eq!(acked(&s, ConsumerCounts::ANALYTICS).await, 0);

    // At the edges of the rules: accepted, stored, counted, never dead-lettered.
    let accepted: Vec<(&str, Value)> = vec![
        (
            "purchase",
            json!({"product": "p$1", "price": 0, "category": "books"}),
        ),
        (
            "click",
            json!({"big": vec![0; mod8_rules::MAX_PROPERTIES_ITEMS - 1]}),
        ),
        ("click", deep(mod8_rules::MAX_PROPERTIES_DEPTH)),
        (
            "click",
            json!({"long": "x".repeat(mod8_rules::MAX_PROPERTIES_BYTES - 11)}),
        ),
        ("page_view", json!({"price": "free", "product": 7})),
    ];
    for (event_type, properties) in &accepted {
        assert!(
            consumer_accepts_event(event_type, properties),
            "{properties}"
        );
        let (status, body) = s
            .post(
                "/api/events",
                json!({"user_id": user, "event_type": event_type, "properties": properties}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{properties}: {body}");
    }
    eventually(
        "the analytics consumer to handle every accepted event",
        || async { acked(&s, ConsumerCounts::ANALYTICS).await == accepted.len() as u64 },
    )
    .await;
    assert_eq!(
        dead_lettered(&s).await,
        0,
        "{:?}",
        s.app.consumer_stats().await
    );
    let counters = s.app.engagement_counters(user).await.unwrap();
    assert_eq!(counters.clicks, 3, "{counters:?}");
    assert_eq!(counters.page_views, 1, "{counters:?}");
    let raw = s
        .app
        .cache
        .counter(&mod8_app::keys::counters(user))
        .await
        .unwrap();
    assert_eq!(
        raw.get(mod8_app::activity::TOTAL_FIELD),
        Some(&(accepted.len() as i64)),
        "{raw:?}"
    );
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_identities_are_conflicts() {
    let s = Server::start(AppConfig::embedded()).await;
    let register = |username: &str, email: &str| {
        s.post("/api/users", json!({"username": username, "email": email}))
    };
    let (status, body) = register("Grace", "grace@example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["user"]["username"], "Grace",
        "the display form is kept"
    );
    for look_alike in ["grace", "GRACE", "\u{FF27}race"] {
        let (status, body) = register(look_alike, "other@example.com").await;
        assert_eq!(status, StatusCode::CONFLICT, "{look_alike:?}: {body}");
        assert_eq!(error_of(&body), ("conflict", Some("username")));
    }
    let (status, body) = register("Jos\u{E9}", "jose@example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = register("Jose\u{301}", "jose2@example.com").await;
    assert_eq!(status, StatusCode::CONFLICT, "NFD after NFC: {body}");
    assert_eq!(error_of(&body), ("conflict", Some("username")));
    let (status, body) = register("someone", "GRACE@Example.COM").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_of(&body), ("conflict", Some("email")));
    assert_eq!(s.app.sql.user_stats().await.unwrap().count, 2);
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_do_not_echo_unbounded_input_or_name_rust_types() {
    let s = Server::start(AppConfig::embedded()).await;
    let message = |body: &Value| body["error"]["message"].as_str().unwrap().to_owned();

    // A validation message quotes at most 64 characters of the input.
    let long_email = format!("{}@example.com", "a".repeat(5_000));
    let (status, body) = s
        .post(
            "/api/users",
            json!({"username": "long_mail", "email": long_email}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let m = message(&body);
    assert!(m.contains(&format!("\"{}\"…", "a".repeat(64))), "{m}");
    assert!(!m.contains(&"a".repeat(65)), "{m}");

    // A data error quotes at most 64 characters too, whatever the decoder echoed.
    let (status, body) = s
        .post(
            "/api/events",
            json!({"user_id": "x".repeat(5_000), "event_type": "click"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let m = message(&body);
    assert!(!m.contains(&"x".repeat(65)), "{m}");
    assert!(
        m.chars().count() <= mod8_app::error::MAX_MESSAGE_CHARS + 1,
        "{m}"
    );
    let (status, body) = s.post("/api/events", json!({ "x".repeat(3_000): 1 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let m = message(&body);
    assert!(!m.contains(&"x".repeat(65)), "{m}");

    // Data errors say what JSON was expected, not which Rust type.
    for (path, bad, expected) in [
        ("/api/events", json!(5), "expected an object"),
        ("/api/users", json!("text"), "expected an object"),
        (
            "/api/users",
            json!({"username": 5, "email": "a@b.co"}),
            "expected a string",
        ),
        (
            "/api/events",
            json!({"user_id": Uuid::new_v4(), "event_type": "x", "properties": 5}),
            "expected a map",
        ),
    ] {
        let (status, body) = s.post(path, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        let m = message(&body);
        assert!(m.contains(expected), "{bad}: {m}");
        for rust in ["EventInput", "Registration", "struct", "HashMap", "String"] {
            assert!(!m.contains(rust), "{bad}: {m} names {rust}");
        }
    }
    s.app.shutdown().await;
}
