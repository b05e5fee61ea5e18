//! Property tests of the request parsers through the whole router (the embedded app): whatever
//! the body of `POST /api/users` and `POST /api/events` — arbitrary bytes, arbitrary JSON,
//! objects with the right keys and arbitrary values — and whatever the id in a user path,
//! the answer is never a 5xx, and every 4xx carries the JSON error body.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use mod8_app::http::openapi::ErrorBody;
use mod8_app::{App, AppConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use tower::ServiceExt;

/// Cases per property: enough to meet every parser branch, few enough for seconds.
const CASES: u32 = 96;

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: Arc<App>,
    router: Router,
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(App::build(AppConfig::embedded())).unwrap();
        runtime.block_on(app.start()).unwrap();
        let router = mod8_app::http::router(app.clone());
        Self {
            runtime,
            app,
            router,
        }
    }

    /// Sends `request`; fails the case on a 5xx, or a 4xx without the error body.
    fn check(&self, request: Request<Body>) -> Result<(), TestCaseError> {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, content_type, body) = self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, content_type, body)
        });
        let text = String::from_utf8_lossy(&body);
        prop_assert!(!status.is_server_error(), "{what}: {status} {text}");
        if status.is_client_error() {
            prop_assert!(
                content_type.starts_with("application/json"),
                "{what}: {status} with content type {content_type:?}: {text}"
            );
            let parsed = serde_json::from_slice::<ErrorBody>(&body);
            prop_assert!(
                parsed.is_ok(),
                "{what}: {status} without the error body ({parsed:?}): {text}"
            );
        }
        Ok(())
    }

    fn run<S: Strategy>(&self, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, test) {
            panic!("{e}");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.runtime.block_on(self.app.shutdown());
    }
}

fn post(uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with some of `keys` (and perhaps an unknown one), each with any JSON value, and
/// sometimes a plausible value instead: the shapes that get past the JSON parser to the
/// typed extractor and the validators.
fn object_with(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        json_value(),
        Just(Value::from(uuid::Uuid::new_v4().to_string())),
        "[a-z0-9_.@-]{0,70}".prop_map(Value::String),
        prop::collection::btree_map("[$.a-z]{0,4}", json_value(), 0..40)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ];
    let key = prop_oneof![prop::sample::select(keys).prop_map(str::to_owned), ".{0,6}"];
    prop::collection::vec((key, value), 0..6).prop_map(|pairs| {
        let mut object = Map::new();
        for (k, v) in pairs {
            object.insert(k, v);
        }
        Value::Object(object)
    })
}

/// Percent-encodes everything but unreserved characters, so any bytes (UTF-8 or not) are one
/// path segment.
fn encode_segment(raw: &[u8]) -> String {
    raw.iter()
        .copied()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn arbitrary_bodies_never_get_a_server_error() {
    let h = Harness::new();
    for uri in ["/api/users", "/api/events"] {
        h.run(prop::collection::vec(any::<u8>(), 0..256), |bytes| {
            h.check(post(uri, bytes))
        });
        h.run(json_value(), |value| {
            h.check(post(uri, serde_json::to_vec(&value).unwrap()))
        });
    }
}

#[test]
fn registrations_of_any_shape_never_get_a_server_error() {
    let h = Harness::new();
    let keys: &'static [&'static str] = &["username", "email", "address"];
    let address: &'static [&'static str] = &["street", "postal_code", "city", "country_code"];
    let strategy = (object_with(keys), object_with(address), any::<bool>());
    h.run(strategy, |(mut registration, address, with_address)| {
        if with_address {
            registration["address"] = address;
        }
        h.check(post(
            "/api/users",
            serde_json::to_vec(&registration).unwrap(),
        ))
    });
}

#[test]
fn events_of_any_shape_never_get_a_server_error() {
    let h = Harness::new();
    // A real user, so that some events get past the user check to the broker and the cache.
    let user = h
        .runtime
        .block_on(h.app.register(mod8_app::flows::registration::Registration {
            username: "prop_user".into(),
            email: "prop_user@example.com".into(),
            address: None,
        }))
        .unwrap()
        .user
        .id;
    let keys: &'static [&'static str] = &["user_id", "event_type", "properties"];
    h.run(
        (object_with(keys), any::<bool>()),
        |(mut event, real_user)| {
            if real_user {
                event["user_id"] = Value::from(user.to_string());
            }
            h.check(post("/api/events", serde_json::to_vec(&event).unwrap()))
        },
    );
}

#[test]
fn any_path_id_never_gets_a_server_error() {
    let h = Harness::new();
    let id = prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    h.run(id, |raw| {
        let id = encode_segment(&raw);
        for tail in ["recommendations", "profile"] {
            let request = Request::get(format!("/api/users/{id}/{tail}"))
                .body(Body::empty())
                .unwrap();
            h.check(request)?;
        }
        Ok(())
    });
    // An empty or dotted id, too.
    for id in ["", ".", "..", "%00", "%2F", "%FF", "%C3%28"] {
        let request = Request::get(format!("/api/users/{id}/profile"))
            .body(Body::empty())
            .unwrap();
        h.check(request).unwrap();
    }
}
