//! One function per route; each parses, calls the flow on [`App`], and maps the result.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use super::auth::{Caller, IssuedToken, Scope, TokenRequest};
use super::ApiJson;
use crate::error::{AppError, AppResult};
use crate::flows::analytics::EventInput;
use crate::flows::registration::{Registered, Registration};
use crate::App;

fn user_id(raw: &str) -> AppResult<Uuid> {
    raw.parse()
        .map_err(|_| AppError::validation("id", format!("{raw:?} is not a user id (UUID)")))
}

/// The 201 body of a registration: the registration and the new user's token.
#[derive(Debug, Serialize)]
pub struct RegisteredWithToken {
    /// The user and initial recommendations.
    #[serde(flatten)]
    pub registered: Registered,
    /// A `user` token for the new user (`Authorization: Bearer <token>`).
    pub token: String,
    /// When that token expires.
    pub token_expires_at: chrono::DateTime<chrono::Utc>,
}

/// Public (rate-limited per address): the new user gets its own token.
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

/// The user itself, a service or an admin.
pub(super) async fn record_event(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiJson(event): ApiJson<EventInput>,
) -> AppResult<Response> {
    caller.may_record_for(event.user_id)?;
    let accepted = app.record_event(event).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// The user itself or an admin.
pub(super) async fn recommendations(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = user_id(&id)?;
    caller.may_read_user(id)?;
    Ok(Json(app.recommendations(id).await?).into_response())
}

/// The user itself or an admin.
pub(super) async fn profile(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = user_id(&id)?;
    caller.may_read_user(id)?;
    Ok(Json(app.profile(id).await?).into_response())
}

/// Admin only.
pub(super) async fn insights(State(app): State<Arc<App>>, caller: Caller) -> AppResult<Response> {
    caller.require_admin()?;
    Ok(Json(app.insights().await?).into_response())
}

/// Admin only.
pub(super) async fn metrics(State(app): State<Arc<App>>, caller: Caller) -> AppResult<Response> {
    caller.require_admin()?;
    let snapshot = app.metrics_snapshot().await;
    let text = app.metrics.render(&snapshot);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Admin only: a token for a user (which must exist), a service or another admin; 201 with
/// the token, its scope, subject and expiry.
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

/// One dependency's state in `/healthz`.
#[derive(Debug, Serialize)]
pub struct DependencyHealth {
    /// `up` or `down`.
    pub status: &'static str,
    /// Backend in use (`postgres`, `sqlite`, `redis`, `memory`, ...).
    pub backend: &'static str,
    /// Whether the service cannot work without it (503 when a required one is down).
    pub required: bool,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
        status: if error.is_none() { "up" } else { "down" },
        backend,
        required,
        error,
    }
}

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
        .all(|d| !d.required || d.status == "up");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "dependencies": { "sql": sql, "docs": docs, "cache": cache, "broker": broker },
    });
    (status, Json(body)).into_response()
}
