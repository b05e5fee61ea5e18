//! The live dashboard over HTTP: `GET /api/live` streams the process's [`LiveFeed`] as
//! Server-Sent Events, and `GET /dashboard` is a page, served from the binary, that draws it.
//!
//! **The stream.** Each event is `event: snapshot` or `event: update`, `id:` the frame number,
//! and `data:` one [`LiveFrame`] as JSON (the whole state every time, so a client needs no
//! merging). The first event is a snapshot (`"reason": "connected"`); an update follows
//! whenever a figure changed; a client that fell more than
//! [`LiveFeedConfig::buffer`](crate::live_feed::LiveFeedConfig::buffer) frames behind gets a
//! snapshot of the latest state (`"reason": "lagged"`, `"missed": N`) instead of the stale
//! ones. A quiet stream carries a `:keepalive` comment every
//! [`LiveFeedConfig::keepalive`](crate::live_feed::LiveFeedConfig::keepalive). Streams end
//! when the server shuts down (so the drain does not wait for them).
//!
//! **Who may watch.** An admin token, like `/api/insights` and `/metrics`, in the
//! `Authorization: Bearer` header — never in the URL, so no access log, proxy or browser history
//! ever holds it. The page therefore reads the stream with `fetch()` (which can send the header
//! and read the body as it arrives), not `EventSource` (which cannot send headers). The page
//! asks for the token (or takes it from the URL fragment, `/dashboard#token=…`, which browsers
//! never send to a server) and keeps it in the tab's `sessionStorage` only. The page itself is
//! public: it holds no data.
//!
//! **Bounded.** At most
//! [`LiveFeedConfig::max_subscribers`](crate::live_feed::LiveFeedConfig::max_subscribers)
//! streams at once per process; the next is answered 503 `unavailable` with the error body and
//! `Retry-After`.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::watch;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::Response as OpenApiResponse;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Type};

use super::auth::Caller;
use super::openapi::{Forbidden, RateLimited, Timeout, Unauthorized};
use crate::error::AppResult;
use crate::live_feed::{FeedFull, LiveFeed, LiveMessage, LiveMessageKind};

#[cfg(doc)]
use crate::live_feed::LiveFrame;

/// Seconds a client refused for the subscriber bound is asked to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 5;

/// How long an `EventSource`-style client waits before reconnecting (the first event's
/// `retry:` field).
const RECONNECT_AFTER: Duration = Duration::from_secs(3);

/// The page, served as is.
const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// Put in every request's extensions by [`super::serve_listener`]: turns `true` when the server
/// shuts down, which ends the live streams.
#[derive(Debug, Clone)]
pub struct StreamsEnd(pub watch::Receiver<bool>);

/// Stream the live dashboard.
///
/// Server-Sent Events; each event's `data` is a `LiveFrame` (see the schema of that name).
/// The first event is a `snapshot`; `update` events follow when a figure changes; a client that
/// falls behind gets a `snapshot` with `"reason": "lagged"`; quiet streams carry keepalive
/// comments. Admin only, with the bearer token in the `Authorization` header.
#[utoipa::path(
    get,
    path = "/api/live",
    tag = "operations",
    operation_id = "live",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream`: `event: snapshot` or `event: update`, `id: <frame number>`, `data: <LiveFrame as JSON>`; `:keepalive` comments while quiet", body = String, content_type = "text/event-stream"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = Timeout),
        (status = 429, response = RateLimited),
        (status = 503, response = LiveSubscribersFull),
    )
)]
pub(super) async fn live(
    Extension(feed): Extension<Arc<LiveFeed>>,
    caller: Caller,
    ends: Option<Extension<StreamsEnd>>,
) -> AppResult<Response> {
    caller.require_admin()?;
    let subscription = match feed.subscribe() {
        Ok(subscription) => subscription,
        Err(full) => return Ok(subscribers_full(full)),
    };
    let events = futures::stream::unfold(subscription, |mut subscription| async move {
        let message = subscription.next().await?;
        Some((Ok::<_, Infallible>(event(&message)), subscription))
    });
    let ends = async move {
        match ends {
            Some(Extension(StreamsEnd(mut stopping))) => {
                // A server gone (sender dropped) ends the stream as well.
                let _ = stopping.wait_for(|stop| *stop).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let sse = Sse::new(events.take_until(ends)).keep_alive(
        KeepAlive::new()
            .interval(feed.config().keepalive)
            .text("keepalive"),
    );
    // Reverse proxies that buffer responses (nginx) pass this one through as it comes.
    Ok((
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        sse,
    )
        .into_response())
}

/// One message as an SSE event.
fn event(message: &LiveMessage) -> Event {
    let mut event = Event::default()
        .event(message.kind.as_str())
        .id(message.frame.seq.to_string());
    if message.kind == LiveMessageKind::Snapshot {
        event = event.retry(RECONNECT_AFTER);
    }
    // Serializing plain numbers and strings does not fail; a comment rather than a panic if
    // it ever did.
    event
        .json_data(&*message.frame)
        .unwrap_or_else(|_| Event::default().comment("a frame could not be encoded"))
}

/// 503 for a subscriber over the bound, with the error body and `Retry-After`.
fn subscribers_full(full: FeedFull) -> Response {
    let body = json!({ "error": {
        "code": "unavailable",
        "message": format!("{full}; retry in {RETRY_AFTER_SECS} s"),
    }});
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS))],
        Json(body),
    )
        .into_response()
}

/// The live dashboard page.
///
/// Public (it holds no data: it asks for an admin token and reads `GET /api/live` with it). A
/// self-contained HTML page with its script and styles inline; no external resources.
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "operations",
    operation_id = "dashboard",
    responses(
        (status = 200, description = "The dashboard page", body = String, content_type = "text/html"),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn dashboard() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CONTENT_SECURITY_POLICY, content_security_policy()),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}

/// The page's Content-Security-Policy: nothing may load or run but its own inline script and
/// style (allowed by their hashes) and requests to this origin.
fn content_security_policy() -> HeaderValue {
    static POLICY: OnceLock<HeaderValue> = OnceLock::new();
    POLICY
        .get_or_init(|| {
            let hash = |open: &str, close: &str| {
                let text = DASHBOARD_HTML
                    .split_once(open)
                    .and_then(|(_, rest)| rest.split_once(close))
                    .map_or("", |(inner, _)| inner);
                use base64::Engine as _;
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(text.as_bytes());
                format!(
                    "'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                )
            };
            let policy = format!(
                "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
                 img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                hash("<script>", "</script>"),
                hash("<style>", "</style>"),
            );
            HeaderValue::from_str(&policy)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
        })
        .clone()
}

/// 503 `unavailable` on `GET /api/live` at the subscriber bound, with `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct LiveSubscribersFull;

impl<'r> utoipa::ToResponse<'r> for LiveSubscribersFull {
    fn response() -> (&'r str, RefOr<OpenApiResponse>) {
        let retry_after = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some("Seconds to wait before trying again."))
            .build();
        let response = utoipa::openapi::response::ResponseBuilder::new()
            .description(
                "The process streams to its maximum of live subscribers; retry after \
                 `Retry-After` seconds (code `unavailable`).",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .header("Retry-After", retry_after)
            .build();
        ("LiveSubscribersFull", response.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        let policy = content_security_policy();
        let policy = policy.to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'none'; script-src 'sha256-"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(DASHBOARD_HTML.matches("<script>").count(), 1);
        assert_eq!(DASHBOARD_HTML.matches("<style>").count(), 1);
        // Self-contained: nothing loaded from elsewhere (the SVG namespace is a name, not a
        // resource).
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!DASHBOARD_HTML.contains(external), "{external}");
        }
    }
}
