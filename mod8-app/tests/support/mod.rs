//! Shared by the app's integration tests: an in-process server on a random port, the
//! real-services configuration (isolated per run) and its clean-up, and small helpers.
// Not every test binary uses every helper.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mod8_app::{App, AppConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub struct Server {
    pub app: Arc<App>,
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// An admin token, sent by [`Server::get`] and [`Server::post`].
    pub admin: String,
}

impl Server {
    /// The app on `config` with rate limits no test reaches, served by the real server
    /// ([`mod8_app::http::serve_listener`]) on a random port.
    pub async fn start(mut config: AppConfig) -> Self {
        config.http = mod8_app::config::HttpLimits {
            max_connections: config.http.max_connections,
            header_read_timeout: config.http.header_read_timeout,
            idle_timeout: config.http.idle_timeout,
            ..mod8_app::config::HttpLimits::generous()
        };
        Self::start_with_limits(config).await
    }

    /// Like [`Server::start`], with `config`'s own rate limits.
    pub async fn start_with_limits(config: AppConfig) -> Self {
        let app = App::build(config).await.expect("app builds");
        app.start().await.expect("consumers start");
        mod8_app::commands::seed::catalogue(&app)
            .await
            .expect("catalogue");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let served = app.clone();
        tokio::spawn(async move {
            mod8_app::http::serve_listener(served, listener, std::future::pending()).await
        });
        let admin = app
            .auth
            .issue(mod8_app::http::auth::Scope::Admin, "tests")
            .unwrap()
            .token;
        Self {
            app,
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            admin,
        }
    }

    /// POST with the admin token.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(Some(&self.admin), path, body).await
    }

    /// GET with the admin token.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(Some(&self.admin), path).await
    }

    /// POST with `token` (none: no Authorization header).
    pub async fn post_as(
        &self,
        token: Option<&str>,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET with `token` (none: no Authorization header).
    pub async fn get_as(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Any method with `token` (none: no Authorization header) and an optional JSON body.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers `name` (without a token, as any client would); the body carries its token.
    pub async fn register(&self, name: &str) -> Value {
        let (status, body) = self
            .post_as(
                None,
                "/api/users",
                json!({
                    "username": name,
                    "email": format!("{name}@example.com"),
                    "address": {"street": "1 Test St", "postal_code": "10115", "city": "Berlin", "country_code": "DE"}
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

/// Places an order for `user` (HTTP has no order route; orders go through the library API,
/// which invalidates what depends on the user).
pub async fn buy(s: &Server, user: uuid::Uuid, products: &[uuid::Uuid]) {
    s.app
        .place_order(mod8_orm::NewOrder {
            user_id: user,
            lines: products
                .iter()
                .map(|p| mod8_orm::OrderLine {
                    product_id: *p,
                    quantity: 1,
                })
                .collect(),
            created_at: None,
        })
        .await
        .unwrap();
}

/// The user token a registration answered.
pub fn token_of(registered: &Value) -> String {
    registered["token"].as_str().unwrap().to_owned()
}

pub fn id_of(registered: &Value) -> uuid::Uuid {
    registered["user"]["id"].as_str().unwrap().parse().unwrap()
}

pub fn error_of(body: &Value) -> (&str, Option<&str>) {
    (
        body["error"]["code"].as_str().unwrap_or("<no code>"),
        body["error"]["field"].as_str(),
    )
}

pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, Duration::from_secs(30), check).await;
}

/// Polls `check` every 50 ms until it is true; fails the test after `timeout`.
pub async fn eventually_within<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn name(prefix: &str) -> String {
    mod8_testkit::unique_name(prefix)
}

// ---- backends ---------------------------------------------------------------------------

/// Real services, each isolated for this run; `None` (after one skip line) when unset.
pub async fn real_config(suite: &str) -> Option<AppConfig> {
    let pg = mod8_testkit::service_url(mod8_testkit::POSTGRES, suite)?;
    let mongo = mod8_testkit::service_url(mod8_testkit::MONGODB, suite)?;
    let redis = mod8_testkit::service_url(mod8_testkit::REDIS, suite)?;
    let amqp = mod8_testkit::service_url(mod8_testkit::AMQP, suite)?;
    let run = mod8_testkit::unique_name("mod8_app");
    // A database of its own on PostgreSQL.
    {
        use mod8_orm::sqlx::{self, Connection};
        let mut admin = sqlx::PgConnection::connect(&pg)
            .await
            .expect("PostgreSQL is set but unreachable");
        sqlx::query(&format!("CREATE DATABASE {run}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let (base, _) = pg.rsplit_once('/').unwrap();
    let mut config = AppConfig::embedded();
    config.sql = mod8_orm::OrmConfig::new(format!("{base}/{run}"));
    config.docs = mod8_docstore::DocStoreConfig::new(mongo).with_database(run.clone());
    config.cache = mod8_cache::CacheConfig {
        redis_url: Some(redis),
        prefix: format!("{run}:cache"),
        ..config.cache
    };
    config.mq = mod8_mq::MqConfig::new(amqp);
    config.topology = mod8_mq::domain::Topology::with_prefix(&run);
    config.live_queue = format!("{run}.live_dashboard_queue");
    Some(config)
}

/// Whether every one of `usernames` has its profile document (registration's async leg done).
pub async fn profiles_stored(s: &Server, usernames: &[String]) -> bool {
    for n in usernames {
        if !matches!(s.app.docs.profile_by_username(n).await, Ok(Some(_))) {
            return false;
        }
    }
    true
}

/// Runs `body` on `config`, then [`remove_real`] whether it passed or panicked, then re-raises
/// the panic: a failing test leaves no databases or queues behind.
pub async fn with_real<F, Fut>(config: AppConfig, body: F)
where
    F: FnOnce(AppConfig) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(body(config.clone()))
        .catch_unwind()
        .await;
    remove_real(&config).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Removes what a real-services run created: its queues and exchanges, its document
/// database's collections, its PostgreSQL database. (Cache keys expire by TTL under the run's
/// own prefix.)
pub async fn remove_real(config: &AppConfig) {
    let broker = config.mq.connect().await.unwrap();
    let topology = &config.topology;
    let mut queues: Vec<String> = topology.queues().into_iter().map(|q| q.name).collect();
    queues.push(config.live_queue.clone());
    for queue in queues.clone() {
        queues.extend(
            topology
                .retry
                .retry_queues(&queue, 8)
                .into_iter()
                .map(|q| q.name),
        );
    }
    for queue in queues {
        let _ = broker.delete_queue(&queue).await;
    }
    for exchange in topology.exchanges() {
        let _ = broker.delete_exchange(&exchange.name).await;
    }
    let _ = broker.close().await;
    let docs = mod8_docstore::MongoDocStore::connect(&config.docs)
        .await
        .unwrap();
    docs.drop_database().await.unwrap();
    let url = config.sql.url.clone();
    let (base, db) = url.rsplit_once('/').unwrap();
    use mod8_orm::sqlx::{self, Connection};
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .unwrap();
    // FORCE cannot end an autovacuum worker that happens to be in the database (only a
    // superuser may): that one finishes soon, so the drop is tried again a few times.
    let drop = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
    for attempt in 1.. {
        match sqlx::query(&drop).execute(&mut admin).await {
            Ok(_) => break,
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42501") && attempt < 20 =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{drop}: {e}"),
        }
    }
}

/// Emits each named case `async fn case(&Server)` twice, as `embedded::case` (on the embedded
/// defaults) and `real_services::case` (on the real services, isolated per run by
/// [`with_real`]; `$suite` names the suite in the skip or failure line of [`real_config`]).
#[allow(unused_macros)]
macro_rules! both_backends {
    ($suite:literal; $($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::Server::start(mod8_app::AppConfig::embedded()).await;
                    super::$case(&server).await;
                    server.app.shutdown().await;
                }
            )*
        }
        mod real_services {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(config) = super::real_config($suite).await else { return };
                    super::with_real(config, |config| async move {
                        let server = super::Server::start(config).await;
                        super::$case(&server).await;
                        server.app.shutdown().await;
                    })
                    .await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_backends;
