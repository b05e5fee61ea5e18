//! Fault tests with the real servers stopped, not only cut off by a proxy (tests/faults.rs):
//!
//! - Redis shut down: recommendations are still served (computed), `/healthz` reports the cache
//!   down and stays 200; once Redis is started again the cache reports up;
//! - the MongoDB-compatible server killed: registration succeeds and the profile is stored by a
//!   retry once it is started again.
//!
//! In a file of its own so it runs alone (cargo runs test binaries one after another), and the
//! two tests take turns. Servers come back through `scripts/services.sh up`, also from a guard
//! when a test fails.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use support::*;

/// The two tests stop servers the other one uses: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SERVICES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh");

/// A stopped server; `services.sh up` starts it again on [`Stopped::restart`] or on drop.
struct Stopped {
    down: AtomicBool,
}

impl Stopped {
    /// Runs `command` (which stops a server) and returns the guard.
    fn stop(command: &[&str]) -> Arc<Self> {
        let out = Command::new(command[0])
            .args(&command[1..])
            .output()
            .expect("the stop command runs");
        assert!(
            out.status.success(),
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Arc::new(Stopped {
            down: AtomicBool::new(true),
        })
    }

    fn restart(&self) {
        let out = Command::new(SERVICES).arg("up").output().unwrap();
        assert!(
            out.status.success(),
            "services.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.down.load(Ordering::SeqCst) {
            eprintln!("servers-stopped test: starting the services again (guard)");
            let _ = Command::new(SERVICES).arg("up").output();
        }
    }
}

/// Runs the blocking `f` on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn redis_port(url: &str) -> String {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    authority.rsplit(':').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shut_down_recommendations_still_served_and_health_says_so() {
    let _turn = SERIAL.lock().await;
    let Some(config) = real_config("app fault test: redis shut down").await else {
        return;
    };
    let port = redis_port(config.cache.redis_url.as_deref().unwrap());
    with_real(config, |config| async move {
        let s = Server::start(config).await;
        let (_, health) = s.get("/healthz").await;
        assert_eq!(health["dependencies"]["cache"]["status"], "up", "{health}");

        let redis = blocking(move || {
            // redis-cli may report the closed connection as an error; wait for the port instead.
            let script = format!(
                "redis-cli -p {port} shutdown nosave; \
                 for _ in $(seq 100); do redis-cli -p {port} ping >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1"
            );
            Stopped::stop(&["sh", "-c", &script])
        })
        .await;
        let user = id_of(&s.register(&name("redisoff")).await);
        s.app
            .cache
            .invalidate_tag(&mod8_app::keys::user_tag(user))
            .await
            .ok();
        let (status, body) = s.get(&format!("/api/users/{user}/recommendations")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, health) = s.get("/healthz").await;
        assert_eq!(status, StatusCode::OK, "the cache is not required: {health}");
        assert_eq!(health["dependencies"]["cache"]["status"], "down", "{health}");

        let r = redis.clone();
        blocking(move || r.restart()).await;
        eventually_within(
            "the cache to report up again",
            Duration::from_secs(60),
            || async {
                let (_, health) = s.get("/healthz").await;
                health["dependencies"]["cache"]["status"] == "up"
            },
        )
        .await;
        s.app.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_server_killed_registration_succeeds_and_profile_catches_up() {
    let _turn = SERIAL.lock().await;
    let Some(mut config) = real_config("app fault test: document server killed").await else {
        return;
    };
    let url = config.docs.url.clone();
    let sep = if url.contains('?') { '&' } else { '?' };
    config.docs.url = format!("{url}{sep}serverSelectionTimeoutMS=1000&connectTimeoutMS=1000");
    // Retries 4 s, 8 s and 16 s apart (plus a 1 s server selection each): about 31 s for the
    // document server to come back, which `services.sh up` needs ~4 s of after the 2 s pause
    // on a quiet machine — and several times that on a loaded CI machine, where a window of
    // 11 s (1, 2, 4 s) ran out and the message was dead-lettered.
    config.topology = config.topology.with_retry(mod8_mq::RetryPolicy {
        base: Duration::from_secs(4),
        cap: Duration::from_secs(16),
    });
    let state = std::env::var("MOD8_STATE_DIR").unwrap_or_else(|_| "/var/tmp/mod8-services".into());
    let pid = std::fs::read_to_string(format!("{state}/ferretdb/ferretdb.pid"))
        .expect("FerretDB started by scripts/services.sh (its pid file)")
        .trim()
        .to_owned();
    with_real(config, |config| async move {
        let s = Server::start(config).await;
        let docs = blocking(move || {
            let script = format!(
                "kill {pid}; for _ in $(seq 100); do kill -0 {pid} 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
            );
            Stopped::stop(&["sh", "-c", &script])
        })
        .await;
        let n = name("docsoff");
        s.register(&n).await; // asserts 201: SQL and the outbox do not need the document store
        tokio::time::sleep(Duration::from_secs(2)).await;
        let d = docs.clone();
        blocking(move || d.restart()).await;
        eventually_within(
            "the profile to be stored by a retry",
            Duration::from_secs(90),
            || async { matches!(s.app.docs.profile_by_username(&n).await, Ok(Some(_))) },
        )
        .await;
        s.app.shutdown().await;
    })
    .await;
}
