//! `GET /dashboard` in a real browser: headless Chromium, driven over WebDriver (chromedriver,
//! started here on a free loopback port) with `fantoccini`. The page takes the admin token from
//! its form, shows the live figures, and the figures change after events are posted over HTTP;
//! a screenshot is saved as a test artifact (the path is printed).
//!
//! Chromium and chromedriver come from `MOD8_CHROMIUM` and `MOD8_CHROMEDRIVER` (exported by
//! `scripts/browser.sh up`, which installs Debian's `chromium` and `chromium-driver`), or from
//! `PATH`. Without them the test prints one skip line — or fails under
//! `MOD8_REQUIRE_SERVICES=1`. Screenshots go to `MOD8_ARTIFACTS_DIR`, by default
//! `<target>/tmp/mod8-artifacts`.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use mod8_app::AppConfig;
use reqwest::StatusCode;
use serde_json::json;
use support::*;

const SUITE: &str = "dashboard browser test";

/// A program from `var`, else the first of `names` on `PATH`; `None` after one skip line, or a
/// panic under `MOD8_REQUIRE_SERVICES=1`.
fn program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{SUITE}: {var}={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let wanted = names.join(" or ");
        if mod8_testkit::services_required() {
            panic!("{SUITE}: {wanted} not found ({var} not set, none on PATH) but MOD8_REQUIRE_SERVICES=1 requires it; run scripts/browser.sh up");
        }
        let _ = writeln!(
            std::io::stderr(),
            "skipping {SUITE}: {wanted} not found ({var} not set, none on PATH)"
        );
    }
    found
}

/// chromedriver, killed (by its own id) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(program: &Path, log: &Path) -> Self {
        // A free port: the kernel picks one, released just before chromedriver binds it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{SUITE}: starting {}: {e}", program.display()));
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url);
        eventually("chromedriver to answer", || async {
            match http.get(&status).send().await {
                Ok(r) => r
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            }
        })
        .await;
        driver
    }

    async fn browser(&self, chromium: &Path, profile: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Root in CI and in containers: Chromium's sandbox needs user namespaces.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // Both of rustls' providers are in the tree: name one (a second install is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{SUITE}: a Chromium session: {e}"))
    }
}

/// The text of `#id` now.
async fn text_of(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until `#id`'s text satisfies `check`; fails after 30 s naming what it last saw.
async fn wait_text(browser: &Client, id: &str, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = text_of(browser, id).await;
        if check(&text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: #{id} shows {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("MOD8_ARTIFACTS_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || Path::new(env!("CARGO_TARGET_TMPDIR")).join("mod8-artifacts"),
            PathBuf::from,
        );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page in Chromium: token through the form, then the numbers move with posted events.
async fn dashboard_in_a_browser(s: &Server, backend: &str) {
    let Some(driver_program) = program("MOD8_CHROMEDRIVER", &["chromedriver"]) else {
        return;
    };
    let Some(chromium) = program("MOD8_CHROMIUM", &["chromium", "chromium-browser"]) else {
        return;
    };
    let artifacts = artifacts_dir();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start(
        &driver_program,
        &artifacts.join(format!("chromedriver-{backend}.log")),
    )
    .await;
    let browser = driver.browser(&chromium, profile.path()).await;

    browser
        .goto(&format!("{}/dashboard", s.base))
        .await
        .unwrap();
    assert_eq!(browser.title().await.unwrap(), "mod8 live dashboard");
    wait_text(&browser, "status", "the page asking for a token", |t| {
        t == "no token"
    })
    .await;
    browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(&s.admin)
        .await
        .unwrap();
    browser
        .find(Locator::Id("connect"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&browser, "status", "the stream to connect", |t| t == "live").await;
    wait_text(&browser, "total-events", "the first snapshot", |t| t == "0").await;
    assert_eq!(text_of(&browser, "role").await, "all");

    // Events over HTTP, as any client would post them, in two bursts: the page's figures
    // follow each.
    let registered = s.register(&name("watched")).await;
    let (id, token) = (id_of(&registered), token_of(&registered));
    let post = |kind: &'static str| {
        let token = token.clone();
        async move {
            let (status, body) = s
                .post_as(
                    Some(&token),
                    "/api/events",
                    json!({"user_id": id, "event_type": kind}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    };
    for kind in ["page_view", "page_view", "page_view"] {
        post(kind).await;
    }
    wait_text(&browser, "total-events", "3 events on the page", |t| {
        t == "3"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for kind in ["page_view", "add_to_cart", "purchase"] {
        post(kind).await;
    }
    wait_text(&browser, "total-events", "6 events on the page", |t| {
        t == "6"
    })
    .await;
    wait_text(&browser, "event-types", "the events by type", |t| {
        t.contains("page_view") && t.contains("add_to_cart") && t.contains("purchase")
    })
    .await;
    // The alert threshold (5) was crossed: the alert is listed with the user.
    wait_text(&browser, "alerts", "the activity alert", |t| {
        t.contains(&id.to_string())
    })
    .await;
    wait_text(&browser, "queues", "the queue depths", |t| {
        t.contains("live_dashboard_queue")
    })
    .await;
    wait_text(&browser, "outbox-backlog", "the outbox backlog", |t| {
        t.parse::<u64>().is_ok()
    })
    .await;
    // The charts have drawn the rate going up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser
        .find(Locator::Css("#chart-events polyline"))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no events chart drawn");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more seconds of chart for the picture.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let png = browser.screenshot().await.unwrap();
    let picture = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
    assert!(picture.width() >= 800 && picture.height() >= 600);
    let path = artifacts.join(format!("dashboard-{backend}.png"));
    std::fs::write(&path, &png).unwrap();
    let _ = writeln!(
        std::io::stderr(),
        "{SUITE}: screenshot saved to {}",
        path.display()
    );

    // "Forget token" disconnects and asks again; a token in the URL fragment (which browsers
    // never send to the server) connects, and the page takes it out of the address bar.
    browser
        .find(Locator::Id("forget"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&browser, "status", "the page to disconnect", |t| {
        t == "disconnected"
    })
    .await;
    assert!(browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());
    browser.goto("about:blank").await.unwrap();
    browser
        .goto(&format!("{}/dashboard#token={}", s.base, s.admin))
        .await
        .unwrap();
    wait_text(&browser, "status", "the stream to connect", |t| t == "live").await;
    wait_text(&browser, "total-events", "the same figures", |t| t == "6").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        url.fragment(),
        None,
        "the token left the address bar: {url}"
    );
    browser.close().await.unwrap();
    drop(driver);
}

fn with_alerts(config: AppConfig) -> AppConfig {
    AppConfig {
        alert_threshold: 5,
        alert_window: Duration::from_secs(60),
        ..config
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded() {
    let server = Server::start(with_alerts(AppConfig::embedded())).await;
    dashboard_in_a_browser(&server, "embedded").await;
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_services() {
    let Some(config) = real_config("dashboard browser test on real services").await else {
        return;
    };
    with_real(with_alerts(config), |config| async move {
        let server = Server::start(config).await;
        dashboard_in_a_browser(&server, "real-services").await;
        server.app.shutdown().await;
    })
    .await;
}
