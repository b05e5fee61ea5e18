//! Authentication, authorisation, rate limits and connection limits of the HTTP API, over real
//! HTTP and real TCP against the real server ([`mod8_app::http::serve_listener`]). The
//! ownership cases run on the embedded defaults and again on the real services when the
//! `MOD8_*_URL` variables are set.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use mod8_app::config::{AuthKey, HttpLimits};
use mod8_app::AppConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn keyed(keys: &[(&str, char)]) -> AppConfig {
    let mut config = AppConfig::embedded();
    config.auth.keys = keys
        .iter()
        .map(|(kid, c)| AuthKey {
            kid: (*kid).to_owned(),
            secret: c.to_string().repeat(32).into_bytes(),
        })
        .collect();
    config
}

fn assert_401(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(error_of(body).0, "unauthorized", "{what}: {body}");
}

fn assert_403(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
    assert_eq!(error_of(body).0, "forbidden", "{what}: {body}");
}

// ---- ownership: a user token reaches only its own user's data ----------------------------

async fn another_users_data_is_forbidden(s: &Server) {
    let alice = s.register(&name("alice")).await;
    let bob = s.register(&name("bob")).await;
    let (alice_id, bob_token) = (id_of(&alice), token_of(&bob));
    let bob_token = Some(bob_token.as_str());
    for path in ["recommendations", "profile"] {
        let (status, body) = s
            .get_as(bob_token, &format!("/api/users/{alice_id}/{path}"))
            .await;
        assert_403(status, &body, path);
    }
    // A forged event for the victim: refused, and nothing counted for her.
    let (status, body) = s
        .post_as(
            bob_token,
            "/api/events",
            json!({"user_id": alice_id, "event_type": "page_view"}),
        )
        .await;
    assert_403(status, &body, "forged event");
    let (status, body) = s
        .post_as(
            Some(&token_of(&alice)),
            "/api/events",
            json!({"user_id": alice_id, "event_type": "page_view"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["counters"]["page_views"], 1, "{body}");
    // Her own token reads her own data.
    let (status, body) = s
        .get_as(
            Some(&token_of(&alice)),
            &format!("/api/users/{alice_id}/profile"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_users_data_is_forbidden() {
        let server = super::Server::start(mod8_app::AppConfig::embedded()).await;
        super::another_users_data_is_forbidden(&server).await;
        server.app.shutdown().await;
    }
}

mod real_services {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_users_data_is_forbidden() {
        let Some(config) = super::real_config("app http security on real services").await else {
            return;
        };
        super::with_real(config, |config| async move {
            let server = super::Server::start(config).await;
            super::another_users_data_is_forbidden(&server).await;
            server.app.shutdown().await;
        })
        .await;
    }
}

// ---- authentication -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_every_protected_route_is_401() {
    let s = Server::start(AppConfig::embedded()).await;
    let user = id_of(&s.register(&name("nobody")).await);
    let gets = [
        format!("/api/users/{user}/recommendations"),
        format!("/api/users/{user}/profile"),
        "/api/insights".to_owned(),
        "/metrics".to_owned(),
    ];
    let posts = [
        (
            "/api/events",
            json!({"user_id": user, "event_type": "click"}),
        ),
        ("/api/tokens", json!({"scope": "admin"})),
    ];
    for token in [None, Some("not-a-jwt"), Some("a.b.c")] {
        for path in &gets {
            let mut request = s.http.get(format!("{}{path}", s.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let r = request.send().await.unwrap();
            let status = r.status();
            let challenge = r.headers().get("www-authenticate").cloned();
            let body: Value = r.json().await.unwrap();
            assert_401(status, &body, path);
            assert!(
                challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Bearer")),
                "{path}: no WWW-Authenticate: Bearer"
            );
        }
        for (path, body) in &posts {
            let (status, answer) = s.post_as(token, path, body.clone()).await;
            assert_401(status, &answer, path);
        }
    }
    // Health stays public.
    let (status, body) = s.get_as(None, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_401() {
    let s = Server::start(keyed(&[("k1", 'a')])).await;
    let now = chrono::Utc::now().timestamp() as u64;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let claims = json!({"sub": "admin", "scope": "admin", "iat": now - 7200, "exp": now - 3600});
    let expired = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret("a".repeat(32).as_bytes()),
    )
    .unwrap();
    let (status, body) = s.get_as(Some(&expired), "/api/insights").await;
    assert_401(status, &body, "expired");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    // The same claims, still valid, are accepted: it was the expiry.
    let fresh = json!({"sub": "admin", "scope": "admin", "iat": now, "exp": now + 3600});
    let fresh = jsonwebtoken::encode(
        &header,
        &fresh,
        &jsonwebtoken::EncodingKey::from_secret("a".repeat(32).as_bytes()),
    )
    .unwrap();
    let (status, body) = s.get_as(Some(&fresh), "/api/insights").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_verifies_while_listed_and_fails_once_removed() {
    let old = Server::start(keyed(&[("old", 'a')])).await;
    let token = old.admin.clone();
    old.app.shutdown().await;

    let rotated = Server::start(keyed(&[("new", 'b'), ("old", 'a')])).await;
    let (status, body) = rotated.get_as(Some(&token), "/api/insights").await;
    assert_eq!(status, StatusCode::OK, "old kid still listed: {body}");
    // New tokens are signed with the first key.
    let header = jsonwebtoken::decode_header(&rotated.admin).unwrap();
    assert_eq!(header.kid.as_deref(), Some("new"));
    rotated.app.shutdown().await;

    let retired = Server::start(keyed(&[("new", 'b')])).await;
    let (status, body) = retired.get_as(Some(&token), "/api/insights").await;
    assert_401(status, &body, "old kid removed");
    retired.app.shutdown().await;
}

// ---- authorisation by scope ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_metrics_and_tokens_need_admin() {
    let s = Server::start(AppConfig::embedded()).await;
    let user = s.register(&name("plain")).await;
    let user_token = token_of(&user);
    let (status, body) = s
        .post(
            "/api/tokens",
            json!({"scope": "service", "subject": "ingest"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["scope"].as_str(), body["sub"].as_str()),
        (Some("service"), Some("ingest"))
    );
    let service_token = body["token"].as_str().unwrap().to_owned();
    for token in [&user_token, &service_token] {
        for path in ["/api/insights", "/metrics"] {
            let (status, body) = s.get_as(Some(token), path).await;
            assert_403(status, &body, path);
        }
        let (status, body) = s
            .post_as(Some(token), "/api/tokens", json!({"scope": "admin"}))
            .await;
        assert_403(status, &body, "/api/tokens");
    }
    for path in ["/api/insights", "/metrics"] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_records_for_anyone_but_reads_nobody() {
    let s = Server::start(AppConfig::embedded()).await;
    let id = id_of(&s.register(&name("served")).await);
    let (_, issued) = s.post("/api/tokens", json!({"scope": "service"})).await;
    let service = issued["token"].as_str().unwrap().to_owned();
    let (status, body) = s
        .post_as(
            Some(&service),
            "/api/events",
            json!({"user_id": id, "event_type": "click"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = s
        .get_as(Some(&service), &format!("/api/users/{id}/profile"))
        .await;
    assert_403(status, &body, "service reading a profile");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_issues_a_user_token_again() {
    let s = Server::start(AppConfig::embedded()).await;
    let id = id_of(&s.register(&name("again")).await);
    let (status, issued) = s
        .post("/api/tokens", json!({"scope": "user", "user_id": id}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["token_type"], "Bearer");
    let token = issued["token"].as_str().unwrap();
    let (status, body) = s
        .get_as(Some(token), &format!("/api/users/{id}/recommendations"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = s
        .post(
            "/api/tokens",
            json!({"scope": "user", "user_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s.post("/api/tokens", json!({"scope": "user"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("user_id")));
    let (status, body) = s
        .post(
            "/api/tokens",
            json!({"scope": "service", "subject": "Bad Name"}),
        )
        .await;
    assert_eq!(error_of(&body), ("validation", Some("subject")), "{status}");
    s.app.shutdown().await;
}

// ---- rate limits --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_flood_is_answered_429_with_retry_after() {
    let mut config = AppConfig::embedded();
    config.http = HttpLimits {
        registrations_per_minute: 2,
        registration_burst: 2,
        ..HttpLimits::generous()
    };
    let s = Server::start_with_limits(config).await;
    let first = s.register(&name("flood")).await;
    s.register(&name("flood")).await;
    let r = s
        .http
        .post(format!("{}/api/users", s.base))
        .json(&json!({"username": name("flood"), "email": format!("{}@example.com", name("f"))}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_of(&body).0, "rate_limited", "{body}");
    assert_eq!(s.app.metrics.rate_limited_count("/api/users"), 1);

    // Other routes, and callers with a token, are counted apart.
    let id = id_of(&first);
    let (status, body) = s
        .get_as(Some(&token_of(&first)), &format!("/api/users/{id}/profile"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains("mod8_http_rate_limited_total{route=\"/api/users\"} 1\n"),
        "{text}"
    );
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_has_its_own_rate_limit() {
    let mut config = AppConfig::embedded();
    config.http = HttpLimits {
        requests_per_second: 1,
        request_burst: 2,
        ..HttpLimits::generous()
    };
    let s = Server::start_with_limits(config).await;
    let greedy = s.register(&name("greedy")).await;
    let other = s.register(&name("other")).await;
    let (id, token) = (id_of(&greedy), token_of(&greedy));
    let path = format!("/api/users/{id}/profile");
    let mut limited = None;
    for _ in 0..20 {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    let limited = limited.expect("20 requests at once go over 1/s with a burst of 2");
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(error_of(&body).0, "rate_limited", "{body}");
    // Another user's token is not held back by the first one's.
    let other_id = id_of(&other);
    let (status, body) = s
        .get_as(
            Some(&token_of(&other)),
            &format!("/api/users/{other_id}/profile"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(s.app.metrics.rate_limited_count("/api/users/{id}/profile") >= 1);
    s.app.shutdown().await;
}

// ---- connection limits --------------------------------------------------------------------

/// Reads until the server closes the connection (EOF or reset); what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_one_header_byte_per_second_is_disconnected() {
    let mut config = AppConfig::embedded();
    config.http.header_read_timeout = Duration::from_secs(1);
    let s = Server::start(config).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: mod8\r\nX-Slow: {}",
        "a".repeat(120)
    );
    let mut closed = false;
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => panic!("the server answered a request whose head never ended"),
            Err(_) => {} // still open: send the next byte
        }
    }
    assert!(
        closed,
        "the connection stayed open through a {}-byte trickle",
        head.len()
    );
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed() {
    let mut config = AppConfig::embedded();
    config.http.idle_timeout = Duration::from_secs(1);
    config.http.header_read_timeout = Duration::from_secs(600);
    let s = Server::start(config).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: mod8\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Kept alive, then left idle: the server closes it (the header timeout is far away).
    let rest = tokio::time::timeout(Duration::from_secs(300), read_until_closed(&mut stream))
        .await
        .expect("the idle connection is closed");
    let _ = rest;
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_with_the_error_body() {
    let mut config = AppConfig::embedded();
    config.http.max_connections = 1;
    let s = Server::start(config).await;
    // The first connection is served and kept alive: it holds the only slot.
    let mut first = TcpStream::connect(s.addr).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: mod8\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = first.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let mut second = TcpStream::connect(s.addr).await.unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: mod8\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut second).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(error_of(&body).0, "unavailable", "{body}");
    assert_eq!(s.app.metrics.connections_refused(), 1);

    // Once the first one goes, the slot is free again.
    drop(first);
    eventually("a connection served again", || async {
        s.http
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    s.app.shutdown().await;
}

/// What hyper answers below the router (documented in `mod8_app::http`): a status with an
/// empty body, then the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_line_gets_hypers_400_and_a_close() {
    let s = Server::start(AppConfig::embedded()).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(b"NOT A REQUEST\r\n\r\n").await.unwrap();
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    s.app.shutdown().await;
}
