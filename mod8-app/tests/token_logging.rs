//! The request log at its most verbose never holds a bearer token.
//!
//! This is its own test binary with a single test so that the subscriber can be the
//! process-wide default: a thread-scoped subscriber races with other tests' threads over
//! tracing's per-callsite interest cache and could miss the request spans it checks for.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use mod8_app::http::auth::Scope;
use mod8_app::{App, AppConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `MakeWriter` collecting everything logged into one buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every level, every span field, the server's and the router's own events: none of it
/// holds the token, a forged token, or the word "bearer".
#[tokio::test]
async fn tokens_are_never_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let app = App::build(AppConfig::embedded()).await.unwrap();
    let token = app.auth.issue(Scope::Admin, "admin").unwrap().token;
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
    for (path, token) in [
        ("/api/insights", token.as_str()),
        ("/metrics", "forged.not.valid"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: mod8\r\nAuthorization: Bearer {token}\r\n\
             x-request-id: req-logged\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 "), "{response}");
    }
    // The live dashboard stream with the token in its header: an endless answer, so read up to
    // its first event and hang up.
    {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /api/live HTTP/1.1\r\nHost: mod8\r\nAuthorization: Bearer {token}\r\n\
             Accept: text/event-stream\r\nx-request-id: req-logged-live\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("event: snapshot") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(
            seen.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&seen)
        );
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    app.shutdown().await;

    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("req-logged"),
        "the capture saw the requests: {logged}"
    );
    assert!(
        logged.contains("req-logged-live"),
        "the capture saw the live stream's request: {logged}"
    );
    assert!(!logged.contains(&token), "the token was logged:\n{logged}");
    assert!(!logged.contains("forged.not.valid"), "{logged}");
    assert!(!logged.to_ascii_lowercase().contains("bearer"), "{logged}");
}
