//! Fault tests on the real services. Each test routes one dependency through a local TCP proxy
//! and cuts it — every open connection reset, new ones refused — then restores it: a real
//! connection loss as the app sees it, without stopping servers other suites share.
//!
//! - broker down: registrations still succeed; their events arrive once it is back (outbox);
//! - Redis down: recommendations are still served (computed) and `/healthz` reports the cache
//!   down while staying 200 (the cache is not required);
//! - document store down: registration succeeds and profile storage catches up by retry;
//! - PostgreSQL down: `/healthz` answers 503 with SQL down (it is required), 200 once it is back.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to one server that can be cut and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // refused: closed at once
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Self { port, up, links }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host:port replaced by this proxy's.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (userinfo, _) = authority
            .rsplit_once('@')
            .map_or(("", authority), |(u, h)| (u, h));
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("{scheme}://{userinfo}{at}127.0.0.1:{}/{path}", self.port)
    }
}

fn target_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_delays_registrations_events_but_never_loses_them() {
    let Some(mut config) = real_config("app fault test: broker outage").await else {
        return;
    };
    let amqp = config.mq.url.clone();
    let proxy = Proxy::start(target_of(&amqp)).await;
    config.mq.url = proxy.url(&amqp);
    config.mq.publish_timeout = Some(Duration::from_secs(5));
    config.outbox_lease = Duration::from_secs(1);
    config.outbox_poll = Duration::from_millis(200);
    with_real(config, |config| async move {
        let s = Server::start(config).await;

        proxy.cut();
        let mut names = Vec::new();
        for _ in 0..5 {
            let n = name("outage");
            s.register(&n).await; // asserts 201
            names.push(n);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            s.app.outbox.backlog() > 0,
            "events cannot have been confirmed while cut"
        );
        for n in &names {
            assert!(s.app.docs.profile_by_username(n).await.unwrap().is_none());
        }

        proxy.restore();
        eventually_within(
            "every registration's event to arrive",
            Duration::from_secs(90),
            || profiles_stored(&s, &names),
        )
        .await;
        eventually("the outbox to drain", || async {
            s.app.outbox.backlog() == 0
        })
        .await;
        s.app.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_still_serves_recommendations_and_health_says_so() {
    let Some(mut config) = real_config("app fault test: redis outage").await else {
        return;
    };
    let redis = config.cache.redis_url.clone().unwrap();
    let proxy = Proxy::start(target_of(&redis)).await;
    config.cache.redis_url = Some(proxy.url(&redis));
    with_real(config, |config| async move {
        let s = Server::start(config).await;
        let (_, health) = s.get("/healthz").await;
        assert_eq!(health["dependencies"]["cache"]["status"], "up", "{health}");

        proxy.cut();
        // A registration (which caches) and a cold personalisation both work without Redis.
        let user = id_of(&s.register(&name("noredis")).await);
        s.app
            .cache
            .invalidate_tag(&mod8_app::keys::user_tag(user))
            .await
            .ok();
        let (status, body) = s.get(&format!("/api/users/{user}/recommendations")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["cached"], false, "computed, not from a cache: {body}");
        // A committed order is not failed by the cache: the invalidation that follows it fails
        // (counted in /metrics), the order stands.
        let books = s.app.sql.products(Some("books")).await.unwrap();
        let before = s.app.metrics.cache_invalidation_failures();
        buy(&s, user, &[books[0].id]).await; // asserts the order succeeded
        assert_eq!(s.app.metrics.cache_invalidation_failures(), before + 1);
        let (status, health) = s.get("/healthz").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the cache is not required: {health}"
        );
        assert_eq!(
            health["dependencies"]["cache"]["status"], "down",
            "{health}"
        );
        assert_eq!(health["dependencies"]["sql"]["status"], "up", "{health}");

        proxy.restore();
        eventually("the cache to report up again", || async {
            let (_, health) = s.get("/healthz").await;
            health["dependencies"]["cache"]["status"] == "up"
        })
        .await;
        s.app.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_outage_makes_health_503_until_it_is_back() {
    let Some(config) = real_config("app fault test: PostgreSQL outage").await else {
        return;
    };
    let pg = config.sql.url.clone();
    let proxy = Proxy::start(target_of(&pg)).await;
    // The run's database is created and removed directly; only the app goes through the proxy.
    with_real(config, |mut config| async move {
        config.sql.url = proxy.url(&pg);
        let s = Server::start(config).await;
        let (status, health) = s.get("/healthz").await;
        assert_eq!(status, StatusCode::OK, "{health}");
        assert_eq!(health["status"], "ok", "{health}");

        proxy.cut();
        let started = std::time::Instant::now();
        let (status, health) = s.get("/healthz").await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "SQL is required: {health}"
        );
        assert!(
            started.elapsed() < mod8_app::http::REQUEST_TIMEOUT,
            "answered within the request timeout"
        );
        assert_eq!(health["status"], "unavailable", "{health}");
        assert_eq!(health["dependencies"]["sql"]["status"], "down", "{health}");
        assert_eq!(health["dependencies"]["sql"]["required"], true, "{health}");
        assert!(
            health["dependencies"]["sql"]["error"].is_string(),
            "{health}"
        );
        for dep in ["docs", "cache", "broker"] {
            assert_eq!(
                health["dependencies"][dep]["status"], "up",
                "{dep}: {health}"
            );
        }

        proxy.restore();
        eventually("/healthz to answer 200 again", || async {
            let (status, health) = s.get("/healthz").await;
            status == StatusCode::OK && health["dependencies"]["sql"]["status"] == "up"
        })
        .await;
        s.app.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_store_outage_registration_succeeds_and_profiles_catch_up() {
    let Some(mut config) = real_config("app fault test: document store outage").await else {
        return;
    };
    let mongo = config.docs.url.clone();
    let proxy = Proxy::start(target_of(&mongo)).await;
    let proxied = proxy.url(&mongo);
    // Short server selection, so a cut is noticed quickly and the message retried.
    let sep = if proxied.contains('?') { '&' } else { '?' };
    config.docs.url = format!("{proxied}{sep}serverSelectionTimeoutMS=1000&connectTimeoutMS=1000");
    config.topology = config.topology.with_retry(mod8_mq::RetryPolicy {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(2),
    });
    with_real(config, |config| async move {
        let s = Server::start(config).await;

        proxy.cut();
        let n = name("nodocs");
        s.register(&n).await; // asserts 201: SQL and the outbox do not need the document store
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.restore();
        eventually_within(
            "the profile to be stored by a retry",
            Duration::from_secs(60),
            || async { matches!(s.app.docs.profile_by_username(&n).await, Ok(Some(_))) },
        )
        .await;
        s.app.shutdown().await;
    })
    .await;
}
