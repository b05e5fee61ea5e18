//! One function per route; each parses, calls the flow on [`App`], and maps the result.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Caller, IssuedToken, Scope, TokenRequest};
use super::openapi::{
    BadRequest, Conflict, Forbidden, Internal, PayloadTooLarge, ProtectedReadErrors,
    ProtectedWriteErrors, RateLimited, Timeout, Unauthorized, Unavailable, Unprocessable,
};
use super::ApiJson;
use crate::error::AppResult;
use crate::flows::analytics::{EventAccepted, EventInput};
use crate::flows::personalisation::{InsightsReport, ProfileView};
use crate::flows::registration::{Registered, Registration};
use crate::flows::Recommendations;
use crate::App;

/// The 201 body of a registration: the registration and the new user's token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredWithToken {
    /// The user and initial recommendations.
    #[serde(flatten)]
    pub registered: Registered,
    /// A `user` token for the new user (`Authorization: Bearer <token>`).
    pub token: String,
    /// When that token expires.
    pub token_expires_at: chrono::DateTime<chrono::Utc>,
}

/// Register a user.
///
/// Public (no token). The user, its address and its UserData event are stored together; the
/// answer carries the stored user and its initial recommendations.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    operation_id = "register",
    request_body(content = Registration, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = RegisteredWithToken, content_type = "application/json"),
        (status = 400, response = BadRequest),
        (status = 408, response = Timeout),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn register(
    State(app): State<Arc<App>>,
    ApiJson(registration): ApiJson<Registration>,
) -> AppResult<Response> {
    let registered = app.register(registration).await?;
    let issued = app
        .auth
        .issue(Scope::User, &registered.user.id.to_string())?;
    let body = RegisteredWithToken {
        registered,
        token: issued.token,
        token_expires_at: issued.expires_at,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Record an event.
///
/// Published to the analytics fanout and counted once in the user's engagement counters.
#[utoipa::path(
    post,
    path = "/api/events",
    tag = "events",
    operation_id = "record_event",
    request_body(content = EventInput, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted", body = EventAccepted, content_type = "application/json"),
        ProtectedWriteErrors,
    )
)]
pub(super) async fn record_event(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(event): ApiJson<EventInput>,
) -> AppResult<Response> {
    caller.may_record_for(event.user_id)?;
    let accepted = app.record_event(event).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// A user's personalised recommendations.
///
/// `cached` says whether they came from the cache.
#[utoipa::path(
    get,
    path = "/api/users/{id}/recommendations",
    tag = "users",
    operation_id = "recommendations",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recommendations, best first", body = Recommendations, content_type = "application/json"),
        ProtectedReadErrors,
    )
)]
pub(super) async fn recommendations(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    let id = super::path::id(id, "user")?;
    caller.may_read_user(id)?;
    Ok(Json(app.recommendations(id).await?).into_response())
}

/// A user's analytics profile.
///
/// Segment, engagement, churn risk, lifetime value and the predictions behind them.
#[utoipa::path(
    get,
    path = "/api/users/{id}/profile",
    tag = "users",
    operation_id = "profile",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = ProfileView, content_type = "application/json"),
        ProtectedReadErrors,
    )
)]
pub(super) async fn profile(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    let id = super::path::id(id, "user")?;
    caller.may_read_user(id)?;
    Ok(Json(app.profile(id).await?).into_response())
}

/// The segment report over every user.
///
/// As last computed by the insights worker; `computed_at` says when.
#[utoipa::path(
    get,
    path = "/api/insights",
    tag = "insights",
    operation_id = "insights",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The segment report", body = InsightsReport, content_type = "application/json"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = Timeout),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn insights(State(app): State<Arc<App>>, caller: Caller) -> AppResult<Response> {
    caller.require_admin()?;
    Ok(Json(app.insights().await?).into_response())
}

/// The metrics, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "OpenMetrics text exposition (the classic Prometheus text format when `Accept` names `text/plain` and not `application/openmetrics-text`)", content(
            (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
            (String = "text/plain; version=0.0.4; charset=utf-8"),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = Timeout),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn metrics(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> AppResult<Response> {
    caller.require_admin()?;
    // The last background collection: a scrape never waits on a dependency.
    let text = app.metrics.render(&app.latest_metrics_snapshot());
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if crate::metrics_text::wants_classic(accept) {
        let text = crate::metrics_text::to_classic(&text);
        let content_type = crate::metrics_text::CLASSIC_CONTENT_TYPE;
        return Ok(([(header::CONTENT_TYPE, content_type)], text).into_response());
    }
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Issue a token.
///
/// Admin only: a token for a user (which must exist), a service or another admin.
#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "operations",
    operation_id = "issue_token",
    request_body(content = TokenRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The token, its scope, subject and expiry", body = IssuedToken, content_type = "application/json"),
        ProtectedWriteErrors,
    )
)]
pub(super) async fn issue_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(request): ApiJson<TokenRequest>,
) -> AppResult<Response> {
    caller.require_admin()?;
    let subject = request.subject()?;
    if let Some(id) = request.user_id {
        app.sql.get_user(id).await?;
    }
    let issued: IssuedToken = app.auth.issue(request.scope, &subject)?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// The `/healthz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// `ok` when every required dependency is up (200), else `unavailable` (503).
    pub status: Health,
    /// What this process runs (`api`, `worker` or `all`); null when its background work is
    /// not started.
    pub role: Option<crate::Role>,
    /// Each dependency's state.
    pub dependencies: Dependencies,
}

/// The service's overall state in [`HealthReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every required dependency is up.
    Ok,
    /// A required dependency is down.
    Unavailable,
}

/// The dependencies `/healthz` probes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dependencies {
    /// The relational store (required).
    pub sql: DependencyHealth,
    /// The document store.
    pub docs: DependencyHealth,
    /// The cache.
    pub cache: DependencyHealth,
    /// The message broker.
    pub broker: DependencyHealth,
}

/// One dependency's state in `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyHealth {
    /// `up` or `down`.
    pub status: DependencyStatus,
    /// Backend in use (`postgres`, `sqlite`, `redis`, `memory`, ...).
    #[schema(value_type = String)]
    pub backend: &'static str,
    /// Whether the service cannot work without it (503 when a required one is down).
    pub required: bool,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether one dependency answered its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DependencyStatus {
    /// It answered.
    Up,
    /// It failed or did not answer in time (`error` says which).
    Down,
}

const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe<T, E: std::fmt::Display>(
    backend: &'static str,
    required: bool,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> DependencyHealth {
    let error = match tokio::time::timeout(HEALTH_TIMEOUT, fut).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {HEALTH_TIMEOUT:?}")),
    };
    DependencyHealth {
        status: if error.is_none() {
            DependencyStatus::Up
        } else {
            DependencyStatus::Down
        },
        backend,
        required,
        error,
    }
}

/// Each dependency's state.
///
/// Public. 503 when a required dependency (the relational store) is down.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses(
        (status = 200, description = "Every required dependency is up", body = HealthReport, content_type = "application/json"),
        (status = 503, description = "A required dependency is down", body = HealthReport, content_type = "application/json"),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn healthz(State(app): State<Arc<App>>) -> Response {
    // SQL is required (registration cannot work without it). The broker is not (the outbox
    // holds events), nor the document store (profiles catch up by retry), nor the cache (it
    // fails open).
    let sql = probe(app.sql.backend().name(), true, async {
        match app.sql.get_user(Uuid::nil()).await {
            Ok(_) | Err(mod8_orm::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    });
    // A read by `_id` (one activity bucket): cheap on every server, whatever the data size.
    let today = chrono::Utc::now().date_naive();
    let docs = probe(
        app.docs.backend(),
        false,
        app.docs
            .activity_summary("healthz", mod8_docstore::DayRange::new(today, today)),
    );
    let cache = probe(app.cache.backend(), false, app.cache.store().get("healthz"));
    let queue = &app.config.topology.user_data_queue;
    let broker = probe(app.broker.backend(), false, app.broker.queue_depth(queue));
    let (sql, docs, cache, broker) = tokio::join!(sql, docs, cache, broker);
    let healthy = [&sql, &docs, &cache, &broker]
        .iter()
        .all(|d| !d.required || d.status == DependencyStatus::Up);
    let (status, health) = if healthy {
        (StatusCode::OK, Health::Ok)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Health::Unavailable)
    };
    let body = HealthReport {
        status: health,
        role: app.role(),
        dependencies: Dependencies {
            sql,
            docs,
            cache,
            broker,
        },
    };
    (status, Json(body)).into_response()
}

/// This document: the API's OpenAPI 3.1 description.
///
/// Public.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document_json(),
    )
        .into_response()
}
