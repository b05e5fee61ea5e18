//! `GET /api/live` over a real connection (reqwest, reading the stream as it arrives) and
//! `GET /dashboard`: the first event is a snapshot, updates follow posted events (embedded
//! defaults and real services), a client that stops reading gets a `lagged` snapshot, the
//! subscriber bound answers 503 with `Retry-After`, quiet streams carry keepalive comments,
//! only admins may watch, and streams end when the server shuts down.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use mod8_app::live_feed::LiveFeedConfig;
use mod8_app::AppConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

/// One Server-Sent Event block: its fields, or the comments of a comment-only block.
#[derive(Debug, Default)]
struct SseEvent {
    event: Option<String>,
    id: Option<String>,
    data: String,
    comments: Vec<String>,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// An open `GET /api/live` response, read block by block.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(s: &Server, token: &str) -> Result<Self, (StatusCode, Value, Option<String>)> {
        let response = s
            .http
            .get(format!("{}/api/live", s.base))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.json().await.unwrap_or(Value::Null);
            return Err((status, body, retry_after));
        }
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next block (event or comment); `None` when the stream ended. Fails the test after
    /// 30 s without one.
    async fn next(&mut self) -> Option<SseEvent> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(comment) = line.strip_prefix(':') {
                        event.comments.push(comment.trim().to_owned());
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event.event = Some(value.to_owned()),
                        "id" => event.id = Some(value.to_owned()),
                        "data" => data.push(value),
                        _ => {}
                    }
                }
                event.data = data.join("\n");
                return Some(event);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no event within 30 s");
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => panic!("no event within 30 s"),
            }
        }
    }

    /// The next event that is not a comment.
    async fn next_event(&mut self) -> SseEvent {
        loop {
            let block = self.next().await.expect("the stream ended");
            if block.event.is_some() {
                return block;
            }
        }
    }
}

fn live_config(config: AppConfig, live: LiveFeedConfig) -> AppConfig {
    AppConfig {
        live_feed: live,
        ..config
    }
}

/// The first event is a snapshot of the state now; posted events show up in later updates,
/// counted per type, with rates.
async fn snapshot_first_then_updates(s: &Server) {
    let mut stream = Stream::open(s, &s.admin).await.unwrap();
    let first = stream.next_event().await;
    assert_eq!(first.event.as_deref(), Some("snapshot"), "{first:?}");
    let frame = first.json();
    assert_eq!(frame["reason"], "connected", "{frame}");
    assert_eq!(first.id.as_deref(), Some(frame["seq"].to_string().as_str()));
    assert_eq!(frame["events"]["total"], 0, "{frame}");
    let first_seq = frame["seq"].as_u64().unwrap();

    let registered = s.register(&name("live")).await;
    let (id, token) = (id_of(&registered), token_of(&registered));
    for kind in ["page_view", "page_view", "page_view", "add_to_cart"] {
        let (status, body) = s
            .post_as(
                Some(&token),
                "/api/events",
                json!({"user_id": id, "event_type": kind}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let mut last_seq = first_seq;
    let frame = loop {
        let event = stream.next_event().await;
        assert_eq!(event.event.as_deref(), Some("update"), "{event:?}");
        let frame = event.json();
        let seq = frame["seq"].as_u64().unwrap();
        assert!(
            seq > last_seq,
            "frame numbers increase: {seq} after {last_seq}"
        );
        last_seq = seq;
        assert!(frame.get("reason").is_none(), "{frame}");
        if frame["events"]["total"] == 4 {
            break frame;
        }
    };
    let by_type = frame["events"]["by_type"].as_array().unwrap();
    assert_eq!(by_type[0]["event_type"], "page_view", "{frame}");
    assert_eq!(by_type[0]["count"], 3, "{frame}");
    assert_eq!(by_type[1]["event_type"], "add_to_cart", "{frame}");
    assert_eq!(by_type[1]["count"], 1, "{frame}");
    assert!(frame["cache"]["name"].is_string(), "{frame}");
    assert_eq!(frame["role"], "all", "{frame}");
    // The queue depths arrive once the background read answered (never holding a frame up).
    let mut frame = frame;
    while frame["dependencies"]["status"] == "pending" {
        frame = stream.next_event().await.json();
    }
    assert_eq!(frame["dependencies"]["status"], "fresh", "{frame}");
    let queues: Vec<&str> = frame["dependencies"]["queue_depths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert!(
        queues.contains(&s.app.config.live_queue.as_str()),
        "{frame}"
    );
    assert!(frame["dependencies"]["outbox_backlog"].is_u64(), "{frame}");
}

both_backends!("live dashboard stream on real services"; snapshot_first_then_updates);

/// A client that stops reading falls behind the feed; when it reads again it is sent the
/// latest state as a `lagged` snapshot (with the number of updates it missed), not the stale
/// frames and not a disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_gets_a_fresh_snapshot() {
    let s = Server::start(live_config(
        AppConfig::embedded(),
        LiveFeedConfig {
            interval: Duration::from_millis(1),
            buffer: 4,
            ..LiveFeedConfig::default()
        },
    ))
    .await;
    // Something changes every millisecond, so every tick makes a frame.
    let live = s.app.live.clone();
    let busy = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for _ in 0..120_000 {
            tick.tick().await;
            live.record(uuid::Uuid::new_v4(), "busy", "page_view", Instant::now());
        }
    });
    let mut stream = Stream::open(&s, &s.admin).await.unwrap();
    let first = stream.next_event().await;
    assert_eq!(first.event.as_deref(), Some("snapshot"));
    let mut last_seq = first.json()["seq"].as_u64().unwrap();
    // Stop reading until the socket buffers are full and the feed's buffer overflows; then
    // read on. The buffers fill at frames' pace, so pause again while no lag shows.
    let deadline = Instant::now() + Duration::from_secs(90);
    let lagged = 'outer: loop {
        assert!(Instant::now() < deadline, "no lagged snapshot in 90 s");
        tokio::time::sleep(Duration::from_secs(3)).await;
        for _ in 0..300 {
            let event = stream.next_event().await;
            let frame = event.json();
            let seq = frame["seq"].as_u64().unwrap();
            assert!(seq > last_seq, "no stale frame: {seq} after {last_seq}");
            if event.event.as_deref() == Some("snapshot") {
                assert_eq!(frame["reason"], "lagged", "{frame}");
                break 'outer (frame, last_seq);
            }
            assert_eq!(
                seq,
                last_seq + 1,
                "updates are consecutive until a snapshot"
            );
            last_seq = seq;
        }
    };
    let (frame, before) = lagged;
    let missed = frame["missed"].as_u64().unwrap();
    assert!(missed > 0, "{frame}");
    assert!(frame["seq"].as_u64().unwrap() > before + 1, "{frame}");
    // It goes on with updates after the snapshot.
    let next = stream.next_event().await;
    assert!(next.json()["seq"].as_u64().unwrap() > frame["seq"].as_u64().unwrap());
    busy.abort();
    drop(stream);
    s.app.shutdown().await;
}

/// Past the bound, 503 with the error body and `Retry-After`; a closed stream frees its
/// place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_beyond_the_bound_get_503_with_retry_after() {
    let s = Server::start(live_config(
        AppConfig::embedded(),
        LiveFeedConfig {
            max_subscribers: 2,
            keepalive: Duration::from_millis(100),
            ..LiveFeedConfig::default()
        },
    ))
    .await;
    let mut a = Stream::open(&s, &s.admin).await.unwrap();
    let mut b = Stream::open(&s, &s.admin).await.unwrap();
    a.next_event().await;
    b.next_event().await;
    let Err((status, body, retry_after)) = Stream::open(&s, &s.admin).await else {
        panic!("a third subscriber was admitted");
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_of(&body).0, "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 2"),
        "{body}"
    );
    assert_eq!(retry_after.as_deref(), Some("5"));
    // The first one leaves; the server notices at its next write (a keepalive at the latest).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = loop {
        match Stream::open(&s, &s.admin).await {
            Ok(stream) => break stream,
            Err((status, ..)) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert!(Instant::now() < deadline, "no place freed up in 30 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first = c.next_event().await;
    assert_eq!(first.event.as_deref(), Some("snapshot"));
    drop(b);
    s.app.shutdown().await;
}

/// While nothing changes, the stream carries keepalive comments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_carries_keepalive_comments() {
    let s = Server::start(live_config(
        AppConfig::embedded(),
        LiveFeedConfig {
            keepalive: Duration::from_millis(100),
            ..LiveFeedConfig::default()
        },
    ))
    .await;
    let mut stream = Stream::open(&s, &s.admin).await.unwrap();
    assert_eq!(stream.next_event().await.event.as_deref(), Some("snapshot"));
    let mut seen = 0;
    while seen < 3 {
        let block = stream.next().await.expect("the stream ended");
        if block.event.is_none() {
            assert_eq!(block.comments, ["keepalive"], "{block:?}");
            seen += 1;
        }
    }
    s.app.shutdown().await;
}

/// Admin only: no token 401, a user's or a service's token 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_may_watch() {
    let s = Server::start(AppConfig::embedded()).await;
    let (status, body) = s.get_as(None, "/api/live").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_of(&body).0, "unauthorized");
    let user = token_of(&s.register(&name("viewer")).await);
    let service = s
        .app
        .auth
        .issue(mod8_app::http::auth::Scope::Service, "ingest")
        .unwrap()
        .token;
    for token in [user, service] {
        let Err((status, body, _)) = Stream::open(&s, &token).await else {
            panic!("a non-admin token was admitted");
        };
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(error_of(&body).0, "forbidden");
    }
    s.app.shutdown().await;
}

/// Shutting the server down ends open streams, so the drain completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_server_shuts_down() {
    let app = mod8_app::App::build(AppConfig::embedded()).await.unwrap();
    app.start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mod8_app::http::serve_listener(
        app.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let admin = app
        .auth
        .issue(mod8_app::http::auth::Scope::Admin, "tests")
        .unwrap()
        .token;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/api/live"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = Stream {
        response,
        buffer: String::new(),
    };
    assert_eq!(stream.next_event().await.event.as_deref(), Some("snapshot"));
    let _ = stop.send(());
    // The stream ends (rather than waiting for the next frame forever) ...
    while stream.next().await.is_some() {}
    // ... and the server has drained.
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server drained")
        .unwrap()
        .unwrap();
    app.shutdown().await;
}

/// The page: HTML from the binary, public, with a policy that lets nothing else in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_served_self_contained() {
    let s = Server::start(AppConfig::embedded()).await;
    let response = s
        .http
        .get(format!("{}/dashboard", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let page = response.text().await.unwrap();
    for id in [
        "total-events",
        "event-rate",
        "cache-hit-ratio",
        "outbox-backlog",
        "queues",
        "alerts",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "#{id} missing");
    }
    assert!(page.contains("fetch(\"/api/live\""), "reads the stream");
    s.app.shutdown().await;
}
