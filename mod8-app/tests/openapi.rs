//! The published contract (`GET /openapi.json`) against the code: every route of the router
//! is documented and every documented operation is routed; the document is well-formed
//! OpenAPI 3.1 with the `bearer` scheme on the protected operations; and real responses of
//! the embedded app — successes and errors — have a documented status and content type and
//! validate against the documented JSON schema.
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use mod8_app::AppError;
use serde_json::{json, Value};
use support::*;
use tower::ServiceExt;

const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// The `(METHOD, path)` pairs the router in `src/http/mod.rs` registers, read from its
/// source: each `.route("path", get(..).post(..))` call of `router()`.
fn router_routes() -> BTreeSet<(String, String)> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).unwrap();
    let start = source
        .find("pub fn router(")
        .expect("`router()` in src/http/mod.rs");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let mut routes = BTreeSet::new();
    let mut rest = body;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The call's arguments, up to its matching parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .unwrap()
            .0;
        let args = &rest[..end];
        let open = args.find('"').unwrap() + 1;
        let close = open + args[open..].find('"').unwrap();
        let path = &args[open..close];
        // The method routers: `get(`, `.post(`, ... outside any nested call.
        let mut depth = 0;
        let mut word = String::new();
        for c in args[close + 1..].chars() {
            match c {
                '(' => {
                    if depth == 0 && METHODS.contains(&word.as_str()) {
                        routes.insert((word.to_uppercase(), path.to_owned()));
                    }
                    depth += 1;
                }
                ')' => depth -= 1,
                _ => {}
            }
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                word.clear();
            }
        }
    }
    routes
}

/// The `(METHOD, path)` pairs the document describes.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    // An event stream (`GET /api/live`) never ends: its first chunk is its answer here.
    if essence(&content_type) == "text/event-stream" {
        use futures::StreamExt;
        let first = response.into_body().into_data_stream().next().await;
        let body = first
            .map(|chunk| chunk.unwrap().to_vec())
            .unwrap_or_default();
        return (status, content_type, body);
    }
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, content_type, body.to_vec())
}

/// `router` sending `token` as the bearer token of every request that carries none.
fn with_token(router: Router, token: &str) -> Router {
    let value = header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    router.layer(axum::middleware::map_request(
        move |mut request: Request<Body>| {
            let value = value.clone();
            async move {
                request
                    .headers_mut()
                    .entry(header::AUTHORIZATION)
                    .or_insert(value);
                request
            }
        },
    ))
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

async fn served_document(router: &Router) -> Value {
    let (status, content_type, body) = send(router, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    serde_json::from_slice(&body).unwrap()
}

/// The value at a local reference (`#/components/...`).
fn resolve<'d>(doc: &'d Value, reference: &str) -> &'d Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{reference}: not a local reference"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} does not resolve"))
}

/// The JSON pointer of the schema documented for `method path` answering `status` with
/// `media_type`, following a reusable response's `$ref`.
fn response_schema_pointer(
    doc: &Value,
    method: &Method,
    path: &str,
    status: StatusCode,
    media_type: &str,
) -> Result<String, String> {
    let escape = |s: &str| s.replace('~', "~0").replace('/', "~1");
    let mut pointer = format!(
        "/paths/{}/{}/responses/{}",
        escape(path),
        method.as_str().to_lowercase(),
        status.as_u16()
    );
    let mut response = doc
        .pointer(&pointer)
        .ok_or_else(|| format!("{method} {path}: status {status} is not documented"))?;
    if let Some(reference) = response["$ref"].as_str() {
        pointer = reference.trim_start_matches('#').to_owned();
        response = resolve(doc, reference);
    }
    let content = response["content"].as_object().unwrap();
    let documented = content
        .keys()
        .find(|k| essence(k) == essence(media_type))
        .ok_or_else(|| {
            format!(
                "{method} {path} {status}: content type {media_type} is not documented ({:?})",
                content.keys().collect::<Vec<_>>()
            )
        })?;
    Ok(format!("{pointer}/content/{}/schema", escape(documented)))
}

/// `type/subtype` of a media type, without parameters.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

/// A validator for the schema at `pointer` in `doc`: the document itself as the root schema
/// (its other members are not keywords) with a `$ref` to the schema, so that the schema's own
/// references into `#/components/schemas` resolve.
fn validator(doc: &Value, pointer: &str) -> jsonschema::Validator {
    // A URI fragment: `{` and `}` of path templates are percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    let mut root = doc.clone();
    root["$ref"] = json!(format!("#{fragment}"));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"))
}

/// Asserts a response is documented for its operation (status and content type) and, for
/// JSON, that its body validates against the documented schema. Returns the body as JSON
/// (`Null` for other content types).
fn assert_conforms(
    doc: &Value,
    method: Method,
    path: &str,
    (status, content_type, body): &(StatusCode, String, Vec<u8>),
) -> Value {
    let pointer = response_schema_pointer(doc, &method, path, *status, content_type)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    if essence(content_type) != "application/json" {
        return Value::Null;
    }
    let instance: Value = serde_json::from_slice(body).unwrap();
    let validator = validator(doc, &pointer);
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: the body does not match {pointer}: {errors:#?}\n{instance:#}"
    );
    instance
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let server = Server::start(mod8_app::AppConfig::embedded()).await;
    let router = with_token(mod8_app::http::router(server.app.clone()), &server.admin);
    let doc = served_document(&router).await;

    let routed = router_routes();
    assert!(
        routed.len() >= 8,
        "the route list could not be read from the router: {routed:?}"
    );
    let documented = documented_operations(&doc);
    assert_eq!(
        routed, documented,
        "the router's routes (left) and the document's operations (right) differ"
    );

    // And each documented operation reaches a route of the router, not the fallback or a 405.
    for (method, path) in &documented {
        let uri = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let request = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (status, _, body) = send(&router, request).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_ne!(
            body["error"]["message"], "route not found",
            "{method} {path} is documented but not routed"
        );
    }
    server.app.shutdown().await;
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_bearer_scheme_on_protected_operations() {
    let server = Server::start(mod8_app::AppConfig::embedded()).await;
    let router = with_token(mod8_app::http::router(server.app.clone()), &server.admin);
    let doc = served_document(&router).await;

    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::to_value(mod8_app::http::openapi::document()).unwrap(),
        "the served document is the generated one"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );
    assert!(doc.get("security").is_none(), "no document-wide security");
    let public: BTreeSet<(String, String)> = [
        ("GET", "/healthz"),
        ("GET", "/openapi.json"),
        ("POST", "/api/users"),
        ("GET", "/api/products/{id}/reviews"),
        // The catalog reads (a CDN caches them).
        ("GET", "/api/products/{id}"),
        ("GET", "/api/categories"),
        ("GET", "/api/categories/{id}/products"),
        // The live dashboard page (it holds no data; it asks for a token to read the stream).
        ("GET", "/dashboard"),
        ("GET", "/api/products/search"),
        ("GET", "/api/products/{id}/similar"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    for (method, path) in documented_operations(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        if public.contains(&(method.clone(), path.clone())) {
            assert!(
                operation.get("security").is_none(),
                "{method} {path} is public: {operation}"
            );
            assert!(!responses.contains_key("401"), "{method} {path}");
        } else {
            assert_eq!(
                operation["security"],
                json!([{"bearer": []}]),
                "{method} {path} needs a token"
            );
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
        }
        // Every error response is the error body.
        for (status, response) in responses {
            if status.starts_with('4') || (status.starts_with('5') && path != "/healthz") {
                let response = match response["$ref"].as_str() {
                    Some(r) => resolve(&doc, r),
                    None => response,
                };
                assert_eq!(
                    response["content"]["application/json"]["schema"],
                    json!({"$ref": "#/components/schemas/ErrorBody"}),
                    "{method} {path} {status}"
                );
            }
        }
    }
    // Registration is rate-limited: 429 with Retry-After.
    let limited = resolve(&doc, "#/components/responses/RateLimited");
    assert!(limited["headers"]["Retry-After"].is_object(), "{limited}");
    assert_eq!(
        doc["paths"]["/api/users"]["post"]["responses"]["429"]["$ref"],
        "#/components/responses/RateLimited"
    );

    // Every local reference resolves, and every component schema compiles.
    fn walk(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    resolve(doc, reference);
                }
                map.values().for_each(|v| walk(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
            _ => {}
        }
    }
    walk(&doc, &doc);
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        validator(&doc, &format!("/components/schemas/{name}"));
    }
    server.app.shutdown().await;
}

#[tokio::test]
async fn real_responses_match_the_documented_schemas() {
    let server = Server::start(mod8_app::AppConfig::embedded()).await;
    let router = with_token(mod8_app::http::router(server.app.clone()), &server.admin);
    let doc = served_document(&router).await;
    let users = "/api/users";
    let events = "/api/events";
    let recs = "/api/users/{id}/recommendations";
    let profile = "/api/users/{id}/profile";

    // Somebody has bought something, so recommendations are not empty.
    let buyer = id_of(&server.register(&name("buyer")).await);
    let books = server.app.sql.products(Some("books")).await.unwrap();
    buy(&server, buyer, &[books[0].id]).await;
    server.app.invalidate_model().await;

    // Registration: 201, then its errors.
    let ada = name("ada");
    let registration = json!({
        "username": ada, "email": format!("{ada}@example.com"),
        "address": {"street": "1 Test St", "postal_code": "10115", "city": "Berlin", "country_code": "DE"},
    });
    let answer = send(&router, post_json(users, registration.to_string())).await;
    assert_eq!(answer.0, StatusCode::CREATED);
    let registered = assert_conforms(&doc, Method::POST, users, &answer);
    let _: mod8_app::flows::registration::Registered =
        serde_json::from_value(registered.clone()).unwrap();
    assert!(
        !registered["recommendations"]["recommendations"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{registered}"
    );
    let id = registered["user"]["id"].as_str().unwrap().to_owned();

    let cases = [
        (registration.to_string(), StatusCode::CONFLICT),
        (
            json!({"username": name("x"), "email": "not-an-email"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": name("x"), "email": "x@example.com", "extra": 1}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("{not json".to_owned(), StatusCode::BAD_REQUEST),
        (
            format!("\"{}\"", "x".repeat(mod8_app::http::BODY_LIMIT)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (body, status) in cases {
        let answer = send(&router, post_json(users, body)).await;
        assert_eq!(answer.0, status, "{}", String::from_utf8_lossy(&answer.2));
        assert_conforms(&doc, Method::POST, users, &answer);
    }
    // Not JSON at all: 400.
    let answer = send(
        &router,
        Request::post(users)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("ada"))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST);
    assert_conforms(&doc, Method::POST, users, &answer);

    // Events: 202, then unknown user (404) and invalid input (422).
    let event =
        json!({"user_id": id, "event_type": "page_view", "properties": {"page": "/", "n": 1.5}});
    let answer = send(&router, post_json(events, event.to_string())).await;
    assert_eq!(answer.0, StatusCode::ACCEPTED);
    let accepted = assert_conforms(&doc, Method::POST, events, &answer);
    assert_eq!(accepted["counters"]["page_views"], 1, "{accepted}");
    let stranger = uuid::Uuid::new_v4().to_string();
    for (body, status) in [
        (
            json!({"user_id": stranger, "event_type": "click"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"user_id": id, "event_type": "Not Valid"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"user_id": "nope", "event_type": "click"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let answer = send(&router, post_json(events, body.to_string())).await;
        assert_eq!(answer.0, status, "{}", String::from_utf8_lossy(&answer.2));
        assert_conforms(&doc, Method::POST, events, &answer);
    }

    // Recommendations and profile: 200 (twice: from the cache the second time), 404, 422.
    for template in [recs, profile] {
        for _ in 0..2 {
            let answer = send(&router, get(&template.replace("{id}", &id))).await;
            assert_eq!(answer.0, StatusCode::OK);
            let body = assert_conforms(&doc, Method::GET, template, &answer);
            assert!(body["cached"].is_boolean(), "{body}");
        }
        for (raw, status) in [
            (stranger.as_str(), StatusCode::NOT_FOUND),
            ("not-a-uuid", StatusCode::UNPROCESSABLE_ENTITY),
            // Not UTF-8 once decoded.
            ("%FF", StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let answer = send(&router, get(&template.replace("{id}", raw))).await;
            assert_eq!(answer.0, status);
            assert_conforms(&doc, Method::GET, template, &answer);
        }
        // Without a valid token: 401; with another user's: 403.
        let own = &template.replace("{id}", &id);
        let forged = Request::get(own.as_str())
            .header(header::AUTHORIZATION, "Bearer not-a-token")
            .body(Body::empty())
            .unwrap();
        let answer = send(&router, forged).await;
        assert_eq!(answer.0, StatusCode::UNAUTHORIZED);
        assert_conforms(&doc, Method::GET, template, &answer);
        let other = server
            .app
            .auth
            .issue(mod8_app::http::auth::Scope::User, &stranger)
            .unwrap()
            .token;
        let foreign = Request::get(own.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {other}"))
            .body(Body::empty())
            .unwrap();
        let answer = send(&router, foreign).await;
        assert_eq!(answer.0, StatusCode::FORBIDDEN);
        assert_conforms(&doc, Method::GET, template, &answer);
    }

    // A token issued by an admin: 201.
    let tokens = "/api/tokens";
    let answer = send(
        &router,
        post_json(tokens, json!({"scope": "user", "user_id": id}).to_string()),
    )
    .await;
    assert_eq!(
        answer.0,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&answer.2)
    );
    assert_conforms(&doc, Method::POST, tokens, &answer);

    // Insights, health, metrics, the document itself.
    for (path, status) in [
        ("/api/insights", StatusCode::OK),
        ("/healthz", StatusCode::OK),
        ("/metrics", StatusCode::OK),
        ("/openapi.json", StatusCode::OK),
        // The live dashboard: the stream (its first event) and the page.
        ("/api/live", StatusCode::OK),
        ("/dashboard", StatusCode::OK),
    ] {
        let answer = send(&router, get(path)).await;
        assert_eq!(answer.0, status, "{path}");
        assert_conforms(&doc, Method::GET, path, &answer);
    }
    server.app.shutdown().await;
}

#[tokio::test]
async fn catalog_responses_match_the_documented_schemas() {
    let server = Server::start(mod8_app::AppConfig::embedded()).await;
    let router = with_token(mod8_app::http::router(server.app.clone()), &server.admin);
    let doc = served_document(&router).await;
    let request = |method: Method, uri: &str, if_match: Option<&str>, body: Option<Value>| {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(tag) = if_match {
            builder = builder.header(header::IF_MATCH, tag);
        }
        match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        }
    };

    let answer = send(
        &router,
        request(
            Method::POST,
            "/api/categories",
            None,
            Some(json!({"slug": name("doc").replace('_', "-"), "name": "Doc"})),
        ),
    )
    .await;
    assert_eq!(answer.0, StatusCode::CREATED);
    let category = assert_conforms(&doc, Method::POST, "/api/categories", &answer);
    let category_id = category["id"].as_str().unwrap().to_owned();
    let answer = send(
        &router,
        request(
            Method::POST,
            "/api/products",
            None,
            Some(
                json!({"sku": name("doc"), "name": "Doc", "category_id": category_id,
                "attributes": {"a": 1},
                "variants": [{"sku": name("docv"), "options": {"size": "S"}, "price_cents": 100,
                              "currency": "EUR", "initial_stock": 2}],
                "images": [{"url": "https://example.com/a.png"}]}),
            ),
        ),
    )
    .await;
    assert_eq!(answer.0, StatusCode::CREATED);
    let page = assert_conforms(&doc, Method::POST, "/api/products", &answer);
    let _: mod8_app::flows::catalog::ProductView = serde_json::from_value(page.clone()).unwrap();
    let id = page["product"]["id"].as_str().unwrap().to_owned();
    let product = format!("/api/products/{id}");

    for _ in 0..2 {
        let answer = send(&router, request(Method::GET, &product, None, None)).await;
        assert_eq!(answer.0, StatusCode::OK);
        assert_conforms(&doc, Method::GET, "/api/products/{id}", &answer);
    }
    let listing = format!("/api/categories/{category_id}/products?limit=1");
    let answer = send(&router, request(Method::GET, &listing, None, None)).await;
    assert_eq!(answer.0, StatusCode::OK);
    assert_conforms(&doc, Method::GET, "/api/categories/{id}/products", &answer);
    let answer = send(
        &router,
        request(Method::GET, "/api/categories?counts=true", None, None),
    )
    .await;
    assert_eq!(answer.0, StatusCode::OK);
    assert_conforms(&doc, Method::GET, "/api/categories", &answer);
    // Search: a page, any text, a bad query and an unknown category, each as documented.
    for (query, status) in [
        ("q=doc&limit=5", StatusCode::OK),
        ("q=%22%28%28%28+-", StatusCode::OK),
        ("q=", StatusCode::UNPROCESSABLE_ENTITY),
        ("q=doc&mode=hybrid", StatusCode::OK),
        ("q=doc&mode=vector", StatusCode::UNPROCESSABLE_ENTITY),
        ("q=doc&category=no-such-category", StatusCode::NOT_FOUND),
    ] {
        let path = format!("/api/products/search?{query}");
        let answer = send(&router, request(Method::GET, &path, None, None)).await;
        assert_eq!(answer.0, status, "{query}");
        let body = assert_conforms(&doc, Method::GET, "/api/products/search", &answer);
        if status == StatusCode::OK {
            let _: mod8_app::flows::search::SearchResults = serde_json::from_value(body).unwrap();
        }
    }

    for (method, tag, body, status) in [
        (
            Method::PATCH,
            None,
            json!({"name": "x"}),
            StatusCode::PRECONDITION_REQUIRED,
        ),
        (
            Method::PATCH,
            Some("\"9\""),
            json!({"name": "x"}),
            StatusCode::PRECONDITION_FAILED,
        ),
        (
            Method::PATCH,
            Some("\"1\""),
            json!({"prices": {}, "name": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PATCH,
            Some("\"1\""),
            json!({"name": "Patched"}),
            StatusCode::OK,
        ),
        (
            Method::PUT,
            Some("\"2\""),
            json!({"name": "Put", "category_id": category_id}),
            StatusCode::OK,
        ),
    ] {
        let answer = send(&router, request(method.clone(), &product, tag, Some(body))).await;
        assert_eq!(answer.0, status, "{}", String::from_utf8_lossy(&answer.2));
        assert_conforms(&doc, method, "/api/products/{id}", &answer);
    }
    server.app.shutdown().await;
}

#[tokio::test]
async fn every_error_the_app_answers_is_the_documented_error_body() {
    let server = Server::start(mod8_app::AppConfig::embedded()).await;
    let router = with_token(mod8_app::http::router(server.app.clone()), &server.admin);
    let doc = served_document(&router).await;
    let error_body = validator(&doc, "/components/schemas/ErrorBody");
    let mut bodies = Vec::new();
    for error in [
        AppError::BadRequest("x".into()),
        AppError::validation("email", "bad"),
        AppError::NotFound("user 1".into()),
        AppError::Conflict {
            field: "email".into(),
        },
        AppError::PreconditionFailed("stale".into()),
        AppError::PreconditionRequired("no If-Match".into()),
        AppError::Unsupported("$geoNear".into()),
        AppError::Unavailable {
            dependency: "sql",
            message: "down".into(),
        },
        AppError::Internal(anyhow::anyhow!("boom")),
    ] {
        let response = error.into_response();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        bodies.push(serde_json::from_slice::<Value>(&body).unwrap());
    }
    // What the edges answer: an unknown route, a method a route does not take.
    for request in [
        get("/nowhere"),
        Request::delete("/healthz").body(Body::empty()).unwrap(),
    ] {
        let (status, content_type, body) = send(&router, request).await;
        assert!(status.is_client_error(), "{status}");
        assert_eq!(essence(&content_type), "application/json");
        bodies.push(serde_json::from_slice(&body).unwrap());
    }
    // The shape an internal error gets once the request id is added.
    bodies.push(
        json!({"error": {"code": "internal", "message": "internal error", "request_id": "req-1"}}),
    );
    for body in bodies {
        let errors: Vec<String> = error_body
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{body}: {errors:?}");
        let _: mod8_app::http::openapi::ErrorBody = serde_json::from_value(body).unwrap();
    }
    // And the schema is strict: an unknown code or member is not the error body.
    for wrong in [
        json!({"error": {"code": "oops", "message": "m"}}),
        json!({"error": {"code": "internal", "message": "m", "cause": "x"}}),
        json!({"error": {"code": "internal"}}),
    ] {
        assert!(!error_body.is_valid(&wrong), "{wrong}");
    }
    server.app.shutdown().await;
}
