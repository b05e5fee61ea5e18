//! One function per route; each parses, calls the flow on [`App`], and maps the result.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use super::ApiJson;
use crate::error::{AppError, AppResult};
use crate::flows::analytics::EventInput;
use crate::flows::registration::Registration;
use crate::App;

fn user_id(raw: &str) -> AppResult<Uuid> {
    raw.parse()
        .map_err(|_| AppError::validation("id", format!("{raw:?} is not a user id (UUID)")))
}

pub(super) async fn register(
    State(app): State<Arc<App>>,
    ApiJson(registration): ApiJson<Registration>,
) -> AppResult<Response> {
    let registered = app.register(registration).await?;
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

pub(super) async fn record_event(
    State(app): State<Arc<App>>,
    ApiJson(event): ApiJson<EventInput>,
) -> AppResult<Response> {
    let accepted = app.record_event(event).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

pub(super) async fn recommendations(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    Ok(Json(app.recommendations(user_id(&id)?).await?).into_response())
}

pub(super) async fn profile(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    Ok(Json(app.profile(user_id(&id)?).await?).into_response())
}

pub(super) async fn insights(State(app): State<Arc<App>>) -> AppResult<Response> {
    Ok(Json(app.insights().await?).into_response())
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.metrics_snapshot().await;
    let text = app.metrics.render(&snapshot);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
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
