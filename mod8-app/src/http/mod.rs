//! The HTTP API (axum): routes, authentication, rate limits, the JSON error body, request ids,
//! latency metrics, connection limits and graceful shutdown.
//!
//! | route | who may call it | what |
//! |---|---|---|
//! | `POST /api/users` | anyone (rate-limited per address) | register; 201 with the user, initial recommendations and the user's `token` |
//! | `POST /api/events` | the user itself, `service`, `admin` | record an event; 202 |
//! | `GET /api/users/{id}/recommendations` | the user itself, `admin` | personalised recommendations, `cached` says whether they came from cache |
//! | `GET /api/users/{id}/profile` | the user itself, `admin` | segment, engagement, churn risk, lifetime value |
//! | `GET /api/insights` | `admin` | segment report over every user, as last computed by the insights worker, with `computed_at` (see [`crate::flows::personalisation::InsightsReport`]) |
//! | `GET /api/products/{id}` | anyone | a product page with `ETag`; 304 on a matching `If-None-Match`; `cached` / `X-Cache` say whether the cache answered ([`catalog`]) |
//! | `PUT`, `PATCH /api/products/{id}` | `admin`, with `If-Match` | replace / change a product (428 without `If-Match`, 412 when stale) |
//! | `POST /api/products` | `admin` | create a product with its variants and images; 201 |
//! | `GET /api/categories` | anyone | the category tree (`?counts=true`: with product counts) |
//! | `POST /api/categories` | `admin` | create a category; 201 |
//! | `GET /api/categories/{id}/products` | anyone | one cursor page of a category's products, filtered and sorted |
//! | `GET /api/products/search` | anyone | one cursor page of a full-text product search, with a typo fallback ([`search`]) |
//! | `POST /api/tokens` | `admin` | issue a token: `{"scope": "user", "user_id": ...}`, `{"scope": "service", "subject": ...}` or `{"scope": "admin"}`; 201 |
//! | `GET /metrics` | `admin` | Prometheus text |
//! | `GET /api/live` | `admin` | the live dashboard as Server-Sent Events ([`live`]) |
//! | `GET /dashboard` | anyone | the live dashboard page (it asks for an admin token to read `/api/live`) |
//! | carts, orders, reviews | see [`shop`] | the shop: cart lines, checkout, pay / ship / cancel, product reviews |
//! | `GET /healthz` | anyone | each dependency's state; 503 when a required one is down |
//! | `GET /openapi.json` | anyone | the OpenAPI 3.1 document of all of the above ([`openapi`]) |
//!
//! A process of [`Role::Worker`] serves only `/healthz`, `/metrics` and the live dashboard
//! (`/api/live`, `/dashboard`: its consumers are what feed it) ([`router_for`]).
//!
//! Authentication and scopes: see [`auth`]. Every route counts against the caller's rate limit
//! ([`rate_limit`]). Error answers carry `{"error": {"code", "message", "field"?,
//! "request_id"?}}`: 401 `unauthorized` (with `WWW-Authenticate: Bearer`), 403 `forbidden`,
//! 429 `rate_limited` (with `Retry-After`), and so on.
//!
//! Connections (see [`serve_listener`]): a header-read timeout, an idle timeout and a cap on
//! concurrent connections (503 with the error body beyond it).
//!
//! What hyper answers below the router does **not** carry the JSON error body, because hyper
//! writes those answers itself before any service sees a request and offers no hook to change
//! them, on HTTP/1.1: a malformed method, URI, header or HTTP version (400), a URI too long
//! (414) and a request head larger than hyper's buffer (431) are answered with an empty body
//! and the connection closed; a header-read timeout closes the connection without an answer.
//! On HTTP/2 the same faults reset the stream or the connection (no HTTP answer at all). Everything the router
//! sees — unknown routes, wrong methods, bodies too large, timeouts of handlers — is answered
//! with the error body.

pub mod auth;
pub mod catalog;
mod handlers;
pub mod live;
mod path;
pub mod rate_limit;
pub mod search;
mod server;
pub mod shop;
pub mod similar;

pub use server::{serve_listener, TOO_MANY_CONNECTIONS};
pub mod openapi;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use crate::error::{AppError, InternalErrorCause};
use crate::{App, Role};

/// Largest request body accepted (bytes); larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_ID: &str = "x-request-id";

/// The router for the whole API, over one shared [`App`], with rate limiters of its own
/// ([`crate::AppConfig::http`]'s quotas).
pub fn router(app: Arc<App>) -> Router {
    let limits = Arc::new(rate_limit::RateLimits::new(&app.config.http));
    let live_feed = crate::live_feed::LiveFeed::new(app.clone());
    let routes = Router::new()
        .route("/api/users", post(handlers::register))
        .route("/api/events", post(handlers::record_event))
        .route(
            "/api/users/{id}/recommendations",
            get(handlers::recommendations),
        )
        .route("/api/users/{id}/profile", get(handlers::profile))
        .route("/api/insights", get(handlers::insights))
        .route("/api/tokens", post(handlers::issue_token))
        // The shop (see `shop`): carts, checkout and orders, the order life cycle, reviews.
        .route(
            "/api/users/{id}/cart",
            get(shop::get_cart).delete(shop::clear_cart),
        )
        .route("/api/users/{id}/cart/items", post(shop::add_cart_item))
        .route(
            "/api/users/{id}/cart/items/{variant_id}",
            put(shop::set_cart_item).delete(shop::remove_cart_item),
        )
        .route(
            "/api/users/{id}/orders",
            get(shop::list_orders).post(shop::place_order),
        )
        .route("/api/orders/{id}/pay", post(shop::pay_order))
        .route("/api/orders/{id}/ship", post(shop::ship_order))
        .route("/api/orders/{id}/cancel", post(shop::cancel_order))
        .route(
            "/api/products/{id}/reviews",
            get(shop::list_reviews).post(shop::create_review),
        )
        // The catalog (`catalog`): public reads, admin writes.
        .route(
            "/api/categories",
            get(catalog::list_categories).post(catalog::create_category),
        )
        .route(
            "/api/categories/{id}/products",
            get(catalog::list_category_products),
        )
        .route("/api/products", post(catalog::create_product))
        .route("/api/products/search", get(search::search_products))
        .route(
            "/api/products/{id}",
            get(catalog::get_product)
                .put(catalog::replace_product)
                .patch(catalog::patch_product),
        )
        // Similarity (`similar`): public like the other product reads.
        .route("/api/products/{id}/similar", get(similar::similar_products))
        .route("/metrics", get(handlers::metrics))
        .route("/healthz", get(handlers::healthz))
        .route("/openapi.json", get(handlers::openapi))
        // The live dashboard (`live`): the stream and its page.
        .route("/api/live", get(live::live))
        .route("/dashboard", get(live::dashboard))
        .fallback(|| async { AppError::NotFound("route".into()) })
        .layer(Extension(live_feed))
        .layer(middleware::from_fn_with_state(
            (app.clone(), limits),
            rate_limit::limit,
        ));
    with_edges(routes, app, REQUEST_TIMEOUT)
}

/// The router of a process of `role`: the whole API for [`Role::Api`] and [`Role::All`]
/// ([`router`]); for [`Role::Worker`] only `GET /healthz`, `GET /metrics` (admin) and the live
/// dashboard (`GET /api/live`, admin, and `GET /dashboard`), with the same rate limits, error
/// body and layers, every other path answered 404.
pub fn router_for(app: Arc<App>, role: Role) -> Router {
    if role.runs_api() {
        return router(app);
    }
    let limits = Arc::new(rate_limit::RateLimits::new(&app.config.http));
    let live_feed = crate::live_feed::LiveFeed::new(app.clone());
    let routes = Router::new()
        .route("/metrics", get(handlers::metrics))
        .route("/healthz", get(handlers::healthz))
        .route("/api/live", get(live::live))
        .route("/dashboard", get(live::dashboard))
        .fallback(|| async { AppError::NotFound("route".into()) })
        .layer(Extension(live_feed))
        .layer(middleware::from_fn_with_state(
            (app.clone(), limits),
            rate_limit::limit,
        ));
    with_edges(routes, app, REQUEST_TIMEOUT)
}

/// The layers around every route (first added = innermost): body limit, timeout (408), a
/// panic caught and answered 500, and outermost [`observe`] — request id, metrics, and the
/// error body for every error response, including those the inner layers produce.
fn with_edges(routes: Router<Arc<App>>, app: Arc<App>, timeout: Duration) -> Router {
    routes
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// A handler that panicked: an internal error whose cause (the panic message) is logged under
/// the request id by [`observe`], never sent.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    AppError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// Serve the API on `addr` until SIGINT/SIGTERM, then drain in-flight requests (see
/// [`serve_listener`]).
///
/// # Errors
///
/// The address cannot be bound.
pub async fn serve(app: Arc<App>, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(app, listener, shutdown_signal()).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}

/// Request id, latency metric, and the 500 body: an internal error's cause is logged under the
/// request id and the client gets only the id.
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!("request", %request_id, %method, %route);
    let mut response = next.run(request).instrument(span).await;
    if let Some(InternalErrorCause(cause)) =
        response.extensions_mut().remove::<InternalErrorCause>()
    {
        tracing::error!(%request_id, %method, %route, error = %cause, "internal error");
        let body = json!({ "error": {
            "code": "internal",
            "message": "internal error",
            "request_id": request_id,
        }});
        response = (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
    }
    // Errors answered by axum or a layer rather than a handler come with an empty or plain
    // body; give them the error body every other error has (headers such as `allow` stay).
    if let Some((code, message)) = match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => Some((
            "method_not_allowed",
            format!("{method} is not allowed on this route"),
        )),
        StatusCode::REQUEST_TIMEOUT => Some((
            "timeout",
            "the request took too long and was abandoned".to_owned(),
        )),
        _ => None,
    } {
        if !is_json(&response) {
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = Json(json!({ "error": { "code": code, "message": message } }));
            response = (parts, body).into_response();
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    app.metrics
        .observe_request(&route, &method, status, started.elapsed());
    tracing::debug!(%request_id, %method, %route, status, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request");
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `Json<T>` whose rejections become [`AppError`]: unreadable JSON is 400, JSON of the wrong
/// shape 422, a body over [`BODY_LIMIT`] 413 — always with the error body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(AppError::validation("body", e.body_text()).into_response())
            }
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                let body = json!({ "error": {
                    "code": "payload_too_large",
                    "message": format!("request body is larger than {BODY_LIMIT} bytes"),
                }});
                Err((StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response())
            }
            Err(rejection) => Err(AppError::BadRequest(rejection.body_text()).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn call(router: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let request = axum::http::Request::builder()
            .uri(uri)
            .header(REQUEST_ID, "req-7")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        assert_eq!(response.headers()[REQUEST_ID], "req-7");
        // The OpenAPI document is well over 64 KiB since the catalog and shop routes.
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_worker_serves_health_and_metrics_only_and_health_names_the_role() {
        let app = App::build(crate::AppConfig::embedded()).await.unwrap();
        let (_, health) = call(router_for(app.clone(), Role::Worker), "/healthz").await;
        assert_eq!(health["role"], serde_json::Value::Null, "not started");
        app.start_with(Role::Worker).await.unwrap();
        let (status, health) = call(router_for(app.clone(), Role::Worker), "/healthz").await;
        assert_eq!(status, StatusCode::OK, "{health}");
        assert_eq!(health["role"], "worker", "{health}");
        let (status, body) = call(router_for(app.clone(), Role::Worker), "/metrics").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "admin only, as on the API: {body}"
        );
        for path in ["/api/insights", "/openapi.json", "/api/users/x/profile"] {
            let (status, body) = call(router_for(app.clone(), Role::Worker), path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
        let (status, _) = call(router_for(app.clone(), Role::Api), "/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        app.shutdown().await;
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_only_the_request_id() {
        let app = App::build(crate::AppConfig::embedded()).await.unwrap();
        let routes = Router::new().route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret=hunter2");
                }
                "unreachable"
            }),
        );
        let router = with_edges(routes, app.clone(), REQUEST_TIMEOUT);
        let (status, body) = call(router, "/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": {"code": "internal", "message": "internal error", "request_id": "req-7"}})
        );
        app.shutdown().await;
    }

    #[tokio::test]
    async fn a_request_over_the_timeout_answers_408_with_the_error_body() {
        let app = App::build(crate::AppConfig::embedded()).await.unwrap();
        let routes = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let router = with_edges(routes, app.clone(), Duration::from_millis(50));
        let (status, body) = call(router, "/slow").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], "timeout", "{body}");
        app.shutdown().await;
    }

    #[tokio::test]
    async fn an_internal_error_answers_500_with_only_the_request_id() {
        let app = App::build(crate::AppConfig::embedded()).await.unwrap();
        let router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    AppError::Internal(anyhow::anyhow!("connection string with password=hunter2"))
                }),
            )
            .layer(middleware::from_fn_with_state(app.clone(), observe))
            .with_state(app.clone());
        let request = axum::http::Request::builder()
            .uri("/boom")
            .header(REQUEST_ID, "req-42")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[REQUEST_ID], "req-42");
        // The OpenAPI document is well over 64 KiB since the catalog and shop routes.
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "internal", "message": "internal error", "request_id": "req-42"}})
        );
        app.shutdown().await;
    }
}
