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

/// The first whole block of `buffer` (taken out of it), parsed.
fn take_block(buffer: &mut String) -> Option<SseEvent> {
    let end = buffer.find("\n\n")?;
    let block: String = buffer.drain(..end + 2).collect();
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
    Some(event)
}

/// `GET /api/live` over a plain socket with a small receive buffer, so that a client that
/// stops reading stops the server's writes soon (rather than after megabytes of kernel
/// buffers); the chunked body is decoded by hand.
struct SlowReader {
    tcp: tokio::net::TcpStream,
    raw: Vec<u8>,
    body: String,
    in_body: bool,
}

impl SlowReader {
    async fn open(s: &Server) -> Self {
        use tokio::io::AsyncWriteExt;
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(s.addr).await.unwrap();
        let request = format!(
            "GET /api/live HTTP/1.1\r\nHost: mod8\r\nAuthorization: Bearer {}\r\n\
             Accept: text/event-stream\r\n\r\n",
            s.admin
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        Self {
            tcp,
            raw: Vec::new(),
            body: String::new(),
            in_body: false,
        }
    }

    /// Moves what can be decoded from `raw` (the head, whole chunks) into `body`.
    fn decode(&mut self) {
        if !self.in_body {
            let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("transfer-encoding: chunked"),
                "{head}"
            );
            self.raw.drain(..end + 4);
            self.in_body = true;
        }
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_line = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("chunk size {size_line:?}"));
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            let chunk = self.raw[start..start + size].to_vec();
            self.body.push_str(std::str::from_utf8(&chunk).unwrap());
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next event that is not a comment; fails the test after 30 s without one.
    async fn next_event(&mut self) -> SseEvent {
        use tokio::io::AsyncReadExt;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 8192];
        loop {
            self.decode();
            while let Some(block) = take_block(&mut self.body) {
                if block.event.is_some() {
                    return block;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no event within 30 s");
            match tokio::time::timeout(left, self.tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.raw.extend_from_slice(&buf[..n]),
                Ok(_) => panic!("the stream ended"),
                Err(_) => panic!("no event within 30 s"),
            }
        }
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
            if let Some(event) = take_block(&mut self.buffer) {
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
    // A second subscriber that keeps reading tells how far the feed has got.
    let mut watcher = Stream::open(&s, &s.admin).await.unwrap();
    let newest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let newest2 = newest.clone();
    let watching = tokio::spawn(async move {
        while let Some(block) = watcher.next().await {
            if block.event.is_some() {
                let seq = block.json()["seq"].as_u64().unwrap();
                newest2.store(seq, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let mut stream = SlowReader::open(&s).await;
    let first = stream.next_event().await;
    assert_eq!(first.event.as_deref(), Some("snapshot"));
    let mut last_seq = first.json()["seq"].as_u64().unwrap();
    // Stop reading while the feed makes 10,000 frames (about 7 MB: more than the server's
    // socket send buffer holds once autotuned to its 4 MB ceiling, plus the reader's 4 KB, so
    // the feed's own buffer of 4 overflows); then read on.
    let deadline = Instant::now() + Duration::from_secs(120);
    while newest.load(std::sync::atomic::Ordering::SeqCst) < last_seq + 10_000 {
        assert!(
            Instant::now() < deadline,
            "the feed made no 10,000 frames in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything the kernel buffered while the reader paused comes first, consecutive; how
    // much that is depends on the socket buffers (autotuned up to megabytes on loopback), so
    // the bound is time, not a frame count.
    let mut lagged = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let event = stream.next_event().await;
        let frame = event.json();
        let seq = frame["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "no stale frame: {seq} after {last_seq}");
        if event.event.as_deref() == Some("snapshot") {
            assert_eq!(frame["reason"], "lagged", "{frame}");
            lagged = Some((frame, last_seq));
            break;
        }
        assert_eq!(
            seq,
            last_seq + 1,
            "updates are consecutive until a snapshot"
        );
        last_seq = seq;
    }
    let lagged = lagged.expect("no lagged snapshot within 60 s of reading the buffered frames");
    let (frame, before) = lagged;
    let missed = frame["missed"].as_u64().unwrap();
    assert!(missed > 0, "{frame}");
    assert!(frame["seq"].as_u64().unwrap() > before + 1, "{frame}");
    // It goes on with updates after the snapshot.
    let next = stream.next_event().await;
    assert!(next.json()["seq"].as_u64().unwrap() > frame["seq"].as_u64().unwrap());
    busy.abort();
    watching.abort();
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

/// A TCP proxy to one server that can be frozen: connections stay open but no byte moves, the
/// way a hung server looks to its clients.
struct FreezingProxy {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FreezingProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        async fn pump(
            mut from: tokio::net::tcp::OwnedReadHalf,
            mut to: tokio::net::tcp::OwnedWriteHalf,
            frozen: Arc<AtomicBool>,
        ) {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                while frozen.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // Bytes read just as it froze are held until it thaws.
                while frozen.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let frozen2 = frozen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pump(in_read, out_write, frozen2.clone()));
                tokio::spawn(pump(out_read, in_write, frozen2.clone()));
            }
        });
        Self { port, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` with its host:port replaced by this proxy's.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let userinfo = authority.rsplit_once('@').map_or("", |(u, _)| u);
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("{scheme}://{userinfo}{at}127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.freeze(false);
    }
}

/// The broker hangs (connections open, nothing answers): the queue depths stop being read and
/// turn `stale`, while the stream keeps sending the figures that need no round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_broker_leaves_queue_depths_stale_and_the_stream_moving() {
    let Some(config) = real_config("live dashboard with a hung broker").await else {
        return;
    };
    with_real(config, |config| async move {
        let amqp = config.mq.url.clone();
        let target = {
            let rest = amqp.split_once("://").unwrap().1;
            let authority = rest.split('/').next().unwrap();
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            host_port.replace("localhost", "127.0.0.1").parse().unwrap()
        };
        let proxy = FreezingProxy::start(target).await;
        let config = live_config(
            AppConfig {
                mq: mod8_mq::MqConfig::new(proxy.url(&amqp)),
                ..config
            },
            LiveFeedConfig {
                interval: Duration::from_millis(100),
                round_trip_timeout: Duration::from_millis(500),
                ..LiveFeedConfig::default()
            },
        );
        let s = Server::start(config).await;
        let mut stream = Stream::open(&s, &s.admin).await.unwrap();
        let mut frame = stream.next_event().await.json();
        while frame["dependencies"]["status"] != "fresh" {
            frame = stream.next_event().await.json();
        }
        proxy.freeze(true);
        // Events counted while the broker hangs (straight on the dashboard: publishing would
        // hang too) still reach the stream, every one, until the depths are reported stale.
        let mut counted = frame["events"]["total"].as_u64().unwrap();
        let mut seen_stale = false;
        for _ in 0..200 {
            s.app
                .live
                .record(uuid::Uuid::new_v4(), "hung", "page_view", Instant::now());
            counted += 1;
            loop {
                let frame = stream.next_event().await.json();
                if frame["dependencies"]["status"] == "stale" {
                    seen_stale = true;
                }
                if frame["events"]["total"] == counted {
                    break;
                }
            }
            if seen_stale {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(seen_stale, "the depths were never reported stale");
        proxy.freeze(false);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let frame = stream.next_event().await.json();
            if frame["dependencies"]["status"] == "fresh" {
                break;
            }
            assert!(Instant::now() < deadline, "the depths never came back");
        }
        drop(stream);
        s.app.shutdown().await;
    })
    .await;
}
