//! `/metrics` for operations: it answers from the last background collection whatever the
//! dependencies do (each real service cut in turn behind a TCP proxy: connections dropped,
//! new ones black-holed), declares every family on every scrape, keeps label values bounded
//! (invented HTTP methods), passes `promtool check metrics`, and exposes every metric the
//! alert rules and the Grafana dashboards in `deploy/` refer to.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mod8_app::AppConfig;
use reqwest::StatusCode;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Families every scrape declares, whatever the backends and their state.
const FAMILIES: &[&str] = &[
    "mod8_http_request_duration_seconds",
    "mod8_query_duration_seconds",
    "mod8_cache_hits_total",
    "mod8_cache_misses_total",
    "mod8_cache_loads_total",
    "mod8_cache_load_errors_total",
    "mod8_cache_evictions_total",
    "mod8_cache_backend_errors_total",
    "mod8_cache_decode_errors_total",
    "mod8_cache_invalidation_failures_total",
    "mod8_cache_hit_ratio",
    "mod8_queue_depth",
    "mod8_dead_letters",
    "mod8_outbox_backlog",
    "mod8_outbox_rows",
    "mod8_outbox_oldest_pending_age_seconds",
    "mod8_outbox_unpublishable",
    "mod8_dependency_up",
    "mod8_metrics_collection_seconds",
    "mod8_redis_memory_used_bytes",
    "mod8_redis_memory_max_bytes",
    "mod8_sql_pool_connections",
    "mod8_sql_pool_idle_connections",
    "mod8_sql_pool_max_connections",
    "mod8_sql_slow_statements_total",
    "mod8_sql_reads_total",
    "mod8_sql_routed_writes_total",
    "mod8_queue_unacked_messages",
    "mod8_queue_received_total",
    "mod8_queue_acked_total",
    "mod8_queue_retried_total",
    "mod8_queue_dead_lettered_total",
    "mod8_queue_failed_total",
    "mod8_messages_published_total",
    "mod8_process_resident_memory_bytes",
    "mod8_process_virtual_memory_bytes",
    "mod8_process_cpu_seconds_total",
    "mod8_process_open_fds",
    "mod8_process_max_fds",
    "mod8_process_start_time_seconds",
    "mod8_process_threads",
    "mod8_build_info",
    "mod8_http_rate_limited_total",
    "mod8_http_connections_refused_total",
];

/// The generous bound on one scrape: a scrape that waited on a dependency would take the
/// dependency's timeout or longer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

fn fast_collection(mut config: AppConfig) -> AppConfig {
    config.metrics.interval = Duration::from_millis(200);
    config.metrics.timeout = Duration::from_millis(500);
    config
}

/// `/metrics` in the classic text format, within [`SCRAPE_TIMEOUT`].
async fn scrape_classic(s: &Server) -> String {
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.admin)
        .header("accept", "text/plain; version=0.0.4")
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .expect("/metrics answers within the scrape timeout");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.unwrap()
}

/// Family name -> samples `(name with labels, value)`, checking the classic text format:
/// `# HELP` and `# TYPE` once per family before its samples, every sample numeric and of a
/// declared family.
fn parse_classic(text: &str) -> std::collections::BTreeMap<String, Vec<(String, f64)>> {
    let mut families = std::collections::BTreeMap::<String, Vec<(String, f64)>>::new();
    let mut helps = BTreeSet::new();
    let mut kinds = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helps.insert(name.to_owned()), "HELP twice for {name}");
            assert!(rest.len() > name.len() + 1, "empty HELP for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helps.contains(name), "{name} has no HELP");
            assert!(kinds.insert(name.to_owned(), kind.to_owned()).is_none());
            families.insert(name.to_owned(), Vec::new());
            current = name.to_owned();
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        let (sample, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let name = sample.split('{').next().unwrap();
        let family_ok = name == current
            || (kinds[&current] == "histogram"
                && [
                    &format!("{current}_bucket"),
                    &format!("{current}_sum"),
                    &format!("{current}_count"),
                ]
                .contains(&&name.to_owned()));
        assert!(family_ok, "sample {name} outside its family {current}");
        families
            .get_mut(&current)
            .unwrap()
            .push((sample.to_owned(), value));
    }
    families
}

fn assert_every_family(
    families: &std::collections::BTreeMap<String, Vec<(String, f64)>>,
    text: &str,
) {
    for family in FAMILIES {
        assert!(families.contains_key(*family), "{family} missing:\n{text}");
    }
}

/// `mod8_dependency_up` per `dependency/role`.
fn dependency_up(
    families: &std::collections::BTreeMap<String, Vec<(String, f64)>>,
) -> Vec<(String, f64)> {
    families["mod8_dependency_up"].clone()
}

/// Runs `promtool check metrics` on `text` when promtool is installed (required under
/// `MOD8_REQUIRE_SERVICES=1`, where CI installs it).
fn promtool_check(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("MOD8_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "promtool is required (scripts/services.sh up installs it): {e}"
            );
            eprintln!("skipping promtool check metrics: promtool not found ({e})");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- input:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Scrapes every 50 ms until `done` says yes (at most 30 s); returns that scrape.
async fn scrape_until(s: &Server, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape_classic(s).await;
        if done(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- cases on both backends --------------------------------------------------------------

async fn every_family_is_declared_and_promtool_accepts_it(s: &Server) {
    s.register(&name("olga")).await;
    let text = scrape_until(s, "a first background collection", |text| {
        parse_classic(text)
            .get("mod8_dependency_up")
            .is_some_and(|up| up.len() == 4)
    })
    .await;
    let families = parse_classic(&text);
    assert_every_family(&families, &text);
    for (sample, value) in dependency_up(&families) {
        assert_eq!(value, 1.0, "{sample} is down:\n{text}");
    }
    assert!(
        !families["mod8_sql_pool_max_connections"].is_empty(),
        "{text}"
    );
    assert!(!families["mod8_queue_acked_total"].is_empty(), "{text}");
    assert!(
        !families["mod8_messages_published_total"].is_empty(),
        "{text}"
    );
    assert!(
        !families["mod8_outbox_oldest_pending_age_seconds"].is_empty(),
        "{text}"
    );
    promtool_check(&text);
    // The OpenMetrics exposition (the default) has the same families.
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let om = r.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(
        om.contains("# TYPE mod8_sql_slow_statements counter\n"),
        "{om}"
    );
}

async fn invented_methods_do_not_grow_metrics(s: &Server) {
    let url = format!("{}/api/users", s.base);
    let send = |method: String| {
        let http = s.http.clone();
        let url = url.clone();
        async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            http.request(method, &url).send().await.unwrap().status()
        }
    };
    send("BREW0".to_owned()).await;
    let before = scrape_classic(s).await;
    for i in 1..500 {
        let status = send(format!("BREW{i}")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = scrape_classic(s).await;
    assert!(!after.contains("BREW"), "{after}");
    let label_sets = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("mod8_http_request_duration_seconds_count{"))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect::<BTreeSet<_>>()
    };
    // The scrapes themselves add at most their own label set; 499 more invented methods
    // add none.
    let added: Vec<_> = label_sets(&after)
        .difference(&label_sets(&before))
        .cloned()
        .collect();
    assert!(
        added.iter().all(|l| l.contains("route=\"/metrics\"")),
        "{added:?}"
    );
    assert!(
        after.contains("method=\"other\",status=\"405\"} 500\n"),
        "{after}"
    );
}

both_backends!("metrics_ops";
    every_family_is_declared_and_promtool_accepts_it,
    invented_methods_do_not_grow_metrics,
);

// ---- the deploy files --------------------------------------------------------------------

/// Every `mod8_*` name in the alert rules, their tests and the dashboards is a family (or a
/// histogram's series) that `/metrics` of a real app declares; the dashboards are valid JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_files_refer_only_to_exposed_metrics() {
    let app = mod8_app::App::build(AppConfig::embedded()).await.unwrap();
    let text =
        mod8_app::metrics_text::to_classic(&app.metrics.render(&app.metrics_snapshot().await));
    let mut exposed = BTreeSet::new();
    for line in text.lines() {
        if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|l| l.split_once(' ')) {
            exposed.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exposed.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files = vec![
        root.join("prometheus/alerts.yml"),
        root.join("prometheus/alerts.test.yml"),
    ];
    let dashboards = root.join("grafana/dashboards");
    let mut dashboard_count = 0;
    for entry in std::fs::read_dir(&dashboards).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let raw = std::fs::read_to_string(&path).unwrap();
            let json: serde_json::Value = serde_json::from_str(&raw)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
            assert!(
                json["panels"].as_array().is_some_and(|p| !p.is_empty()),
                "{}",
                path.display()
            );
            dashboard_count += 1;
            files.push(path);
        }
    }
    assert!(
        dashboard_count > 0,
        "no dashboard in {}",
        dashboards.display()
    );
    for path in files {
        let raw = std::fs::read_to_string(&path).unwrap();
        let mut referenced = BTreeSet::new();
        let bytes = raw.as_bytes();
        let mut i = 0;
        while let Some(at) = raw[i..].find("mod8_") {
            let start = i + at;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            // A name, not part of a longer identifier.
            if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_')
            {
                referenced.insert(raw[start..end].to_owned());
            }
            i = end;
        }
        assert!(!referenced.is_empty(), "{} names no metric", path.display());
        let unknown: Vec<_> = referenced.difference(&exposed).collect();
        assert!(
            unknown.is_empty(),
            "{} refers to metrics /metrics does not expose: {unknown:?}",
            path.display()
        );
    }
    app.shutdown().await;
}

// ---- a cut dependency --------------------------------------------------------------------

/// A TCP proxy in front of one service. [`Proxy::cut`] drops every connection through it and
/// black-holes new ones (accepted, never answered), as a dead network path would;
/// [`Proxy::restore`] forwards again.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    if *cut_rx.borrow() {
                        // Black hole: hold the connection open, say nothing, until restored.
                        let _ = cut_rx.wait_for(|cut| !*cut).await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

/// `url` with its `host:port` replaced by `addr`, and the upstream address it had.
fn through(url: &str, addr: SocketAddr) -> (String, SocketAddr) {
    let scheme_end = url.find("://").unwrap() + 3;
    let authority_start = url[scheme_end..]
        .find('@')
        .map_or(scheme_end, |at| scheme_end + at + 1);
    let authority_end = url[authority_start..]
        .find(['/', '?'])
        .map_or(url.len(), |end| authority_start + end);
    let upstream: SocketAddr =
        std::net::ToSocketAddrs::to_socket_addrs(&url[authority_start..authority_end])
            .unwrap()
            .next()
            .unwrap();
    (
        format!("{}{addr}{}", &url[..authority_start], &url[authority_end..]),
        upstream,
    )
}

#[derive(Clone, Copy, Debug)]
enum Dependency {
    Postgres,
    Redis,
    Amqp,
    MongoDb,
}

impl Dependency {
    fn label(self) -> &'static str {
        match self {
            Dependency::Postgres => "dependency=\"postgres\",role=\"sql\"",
            Dependency::Redis => "dependency=\"redis\",role=\"cache\"",
            Dependency::Amqp => "dependency=\"amqp\",role=\"broker\"",
            Dependency::MongoDb => "dependency=\"mongodb\",role=\"docs\"",
        }
    }

    /// `config` with this dependency reached through a new proxy.
    async fn behind_proxy(self, mut config: AppConfig) -> (AppConfig, Arc<Proxy>) {
        let url = match self {
            Dependency::Postgres => config.sql.url.clone(),
            Dependency::Redis => config.cache.redis_url.clone().unwrap(),
            Dependency::Amqp => config.mq.url.clone(),
            Dependency::MongoDb => config.docs.url.clone(),
        };
        let (_, upstream) = through(&url, "127.0.0.1:1".parse().unwrap());
        let proxy = Arc::new(Proxy::start(upstream).await);
        let (proxied, _) = through(&url, proxy.addr);
        match self {
            Dependency::Postgres => config.sql.url = proxied,
            Dependency::Redis => config.cache.redis_url = Some(proxied),
            Dependency::Amqp => config.mq.url = proxied,
            Dependency::MongoDb => config.docs.url = proxied,
        }
        (config, proxy)
    }
}

async fn metrics_answer_with_one_dependency_cut(dependency: Dependency) {
    let Some(config) = real_config("metrics_ops").await else {
        return;
    };
    with_real(config, |config| async move {
        let (config, proxy) = dependency.behind_proxy(fast_collection(config)).await;
        let s = Server::start(config).await;
        let up_line = |value: u8| format!("mod8_dependency_up{{{}}} {value}\n", dependency.label());
        scrape_until(&s, "the dependency is seen up", |t| t.contains(&up_line(1))).await;

        proxy.cut();
        // Every scrape, before and after the collection notices, answers within
        // SCRAPE_TIMEOUT and parses.
        let down = up_line(0);
        let text = scrape_until(&s, "the cut dependency is seen down", |text| {
            parse_classic(text);
            text.contains(&down)
        })
        .await;
        let families = parse_classic(&text);
        assert_every_family(&families, &text);
        for (sample, value) in dependency_up(&families) {
            let cut = sample.contains(dependency.label());
            assert_eq!(value, if cut { 0.0 } else { 1.0 }, "{sample}:\n{text}");
        }
        // A few more scrapes while it stays cut: each still answers in time.
        for _ in 0..5 {
            let text = scrape_classic(&s).await;
            assert!(text.contains(&up_line(0)), "{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        promtool_check(&text);

        proxy.restore();
        scrape_until(&s, "the dependency is seen up again", |t| {
            t.contains(&up_line(1))
        })
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(20), s.app.shutdown()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_with_postgres_cut() {
    metrics_answer_with_one_dependency_cut(Dependency::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_with_redis_cut() {
    metrics_answer_with_one_dependency_cut(Dependency::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_with_rabbitmq_cut() {
    metrics_answer_with_one_dependency_cut(Dependency::Amqp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_with_mongodb_cut() {
    metrics_answer_with_one_dependency_cut(Dependency::MongoDb).await;
}
