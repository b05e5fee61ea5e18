//! [`App`]: the five libraries wired together once, shared by the HTTP handlers, the demo and
//! the benchmark harness. No globals: everything hangs off one `Arc<App>`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use anyhow::Context;
use mod8_cache::Cache;
use mod8_docstore::{DocStore, SetupOptions, SetupOutcome};
use mod8_mq::domain::{
    AnalyticsConsumer, LoggingNotifier, NotificationConsumer, Pipeline, UserDataConsumer,
};
use mod8_mq::{ConsumerHandle, DynBroker, Producer};
use mod8_orm::DynDatabase;
use serde::Serialize;
use tokio::sync::{watch, Mutex, RwLock};
use tokio::task::JoinHandle;

use crate::config::AppConfig;
use crate::dependency_figures::{DependencyFigures, LatestFigures};
use crate::flows::personalisation::ModelState;
use crate::live::{LiveDashboard, LiveDashboardHandler};
use crate::metrics::{Metrics, Snapshot};
use crate::outbox::{run_relay, Outbox};
use crate::sinks::{DocEventSink, DocProfileSink, DocSentLedger};
use crate::worker::{run_worker, InsightsWorker};

/// The running system: stores, cache, broker, engines state and metrics.
pub struct App {
    /// The configuration it was built from.
    pub config: AppConfig,
    /// Relational store (users, addresses, products, orders, outbox).
    pub sql: DynDatabase,
    /// Document store (profiles, events).
    pub docs: Arc<dyn DocStore>,
    /// Cache (in-process, or in-process L1 + Redis L2).
    pub cache: Cache,
    /// Message broker.
    pub broker: DynBroker,
    /// Typed publishing on [`App::broker`], along [`AppConfig::topology`]'s routes.
    pub pipeline: Pipeline,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The dependencies' figures for `/metrics`, as last collected in the background
    /// ([`crate::dependency_figures`]; collecting from [`App::start_with`] to
    /// [`App::shutdown`]).
    pub figures: LatestFigures,
    /// Signs and verifies the API's bearer tokens ([`AppConfig::auth`]'s keys, or a generated
    /// development key when none are configured).
    pub auth: crate::http::auth::Authenticator,
    /// Live dashboard fed by the analytics fanout.
    pub live: Arc<LiveDashboard>,
    /// The outbox relay's handle: its counters, and the wake-up a committed registration
    /// sends it.
    pub outbox: Outbox,
    /// The notifier the notification consumer sends through (logs and counts); each
    /// notification message reaches it once ([`App::notification_consumer`]).
    pub notifier: LoggingNotifier,
    pub(crate) model: RwLock<Option<ModelState>>,
    /// Wakes the insights worker (report over every user, recommendation model).
    pub worker: Arc<InsightsWorker>,
    background: Mutex<Option<Background>>,
    /// What [`App::start_with`] started, as [`Role::code`] (0: nothing runs).
    role: AtomicU8,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("sql", &self.sql.backend())
            .field("docs", &self.docs.backend())
            .field("cache", &self.cache.backend())
            .field("broker", &self.broker.backend())
            .finish_non_exhaustive()
    }
}

struct Background {
    consumers: Vec<(&'static str, ConsumerHandle)>,
    relay: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// What one `mod8` process runs ([`App::start_with`], `mod8 serve --role`). Any number of
/// processes of each role may run against the same backends.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The HTTP API and the outbox relay (the relay claims rows under a lease with
    /// `FOR UPDATE SKIP LOCKED`, so relays on many processes share the rows without
    /// publishing one twice, except after a lease ran out, when consumers de-duplicate by the
    /// message id).
    Api,
    /// The message consumers (user data, notifications, analytics, live dashboard) and the
    /// insights worker; over HTTP only `/healthz` and `/metrics`.
    Worker,
    /// Both: one process runs everything (the default).
    All,
}

impl Role {
    /// Whether this role serves the API and runs the outbox relay.
    pub fn runs_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    /// Whether this role runs the consumers and the insights worker.
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }

    /// The role's name: `api`, `worker` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::All => "all",
        }
    }

    fn code(self) -> u8 {
        match self {
            Role::Api => 1,
            Role::Worker => 2,
            Role::All => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Role::Api),
            2 => Some(Role::Worker),
            3 => Some(Role::All),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = anyhow::Error;

    /// `api`, `worker` or `all` (case-insensitive, surrounding blanks ignored).
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            _ => anyhow::bail!("role {s:?}: expected `api`, `worker` or `all`"),
        }
    }
}

impl App {
    /// Connects every backend the configuration names and prepares them (migrations, document
    /// collections and indexes, [`AppConfig::topology`] on the broker). Nothing runs in the background until
    /// [`App::start`].
    ///
    /// # Errors
    ///
    /// A backend that cannot be reached or prepared, with which one in the message.
    pub async fn build(config: AppConfig) -> anyhow::Result<Arc<Self>> {
        for line in config.describe() {
            tracing::info!("{line}");
        }
        let sql = config
            .sql
            .connect()
            .await
            .context("connecting the SQL store")?;
        // The embedded database starts empty: give it the reference data (countries, cities,
        // a starter catalog) the README's examples rely on. Idempotent.
        if sql.backend() == mod8_orm::Backend::Sqlite {
            crate::reference::ensure(&sql)
                .await
                .context("writing the reference data")?;
        }
        let docs = config
            .docs
            .connect()
            .await
            .context("connecting the document store")?;
        let report = docs
            .setup(&SetupOptions::default())
            .await
            .context("setting up document collections")?;
        for step in &report.steps {
            if let SetupOutcome::Unsupported { message } = &step.outcome {
                tracing::warn!(step = %step.target, %message, "document store lacks a feature; continuing without it");
            }
        }
        let cache = config.cache.connect().await.context("building the cache")?;
        let broker = config
            .mq
            .clone()
            .with_declarations(config.topology.declarations())
            .connect()
            .await
            .context("connecting the broker")?;
        config
            .topology
            .declare_analytics_subscriber(broker.as_ref(), &config.live_queue)
            .await
            .context("declaring the live dashboard queue")?;
        let pipeline = Pipeline::new(Producer::new(broker.clone()), config.topology.clone());
        let auth = crate::http::auth::Authenticator::new(&config.auth);
        Ok(Arc::new(Self {
            live: Arc::new(LiveDashboard::new(
                config.alert_threshold,
                config.alert_window,
            )),
            config,
            sql,
            docs,
            cache,
            broker,
            pipeline,
            metrics: Metrics::new(),
            figures: LatestFigures::default(),
            auth,
            outbox: Outbox::new(),
            notifier: LoggingNotifier::default(),
            model: RwLock::new(None),
            worker: Arc::new(InsightsWorker::new()),
            background: Mutex::new(None),
            role: AtomicU8::new(0),
        }))
    }

    /// Starts everything in the background ([`Role::All`], see [`App::start_with`]).
    ///
    /// # Errors
    ///
    /// A consumer that cannot subscribe to its queue.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        self.start_with(Role::All).await
    }

    /// Starts the background work of `role`:
    ///
    /// - [`Role::Api`] runs the outbox relay (what registrations wrote goes out).
    /// - [`Role::Worker`] runs the consumers (user data → profile document + welcome
    ///   notification; notifications; analytics → event log; live dashboard; product events →
    ///   cache invalidation) and the insights
    ///   worker ([`crate::worker`]).
    /// - [`Role::All`] runs both.
    ///
    /// A second call while started is a no-op (whatever its role).
    ///
    /// # Errors
    ///
    /// A consumer that cannot subscribe to its queue.
    pub async fn start_with(self: &Arc<Self>, role: Role) -> anyhow::Result<()> {
        let mut background = self.background.lock().await;
        if background.is_some() {
            return Ok(());
        }
        // The similarity index (or the pgvector check), built in the background.
        self.prepare_similarity();
        let consumers = if role.runs_workers() {
            self.start_consumers().await?
        } else {
            Vec::new()
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let relay = role.runs_api().then(|| {
            tokio::spawn(run_relay(
                self.outbox.relay(
                    self.sql.clone(),
                    self.pipeline.clone(),
                    self.config.outbox_poll,
                    self.config.outbox_lease,
                    self.config.outbox_retention,
                ),
                shutdown_rx.clone(),
            ))
        });
        let worker = role.runs_workers().then(|| {
            tokio::spawn(run_worker(
                Arc::downgrade(self),
                self.config.insights_refresh,
                shutdown_rx,
            ))
        });
        *background = Some(Background {
            consumers,
            relay,
            worker,
            shutdown,
        });
        self.role.store(role.code(), Ordering::Release);
        self.figures
            .start(Arc::downgrade(self), self.config.metrics);
        tracing::info!(%role, "background work started");
        Ok(())
    }

    /// What this app runs: the role [`App::start_with`] started, `None` before that and after
    /// [`App::shutdown`].
    pub fn role(&self) -> Option<Role> {
        Role::from_code(self.role.load(Ordering::Acquire))
    }

    /// Subscribes the five consumers, in [`ConsumerCounts`] order.
    async fn start_consumers(&self) -> anyhow::Result<Vec<(&'static str, ConsumerHandle)>> {
        let broker = self.broker.clone();
        let topology = &self.config.topology;
        let consumers = vec![
            (
                ConsumerCounts::USER_DATA,
                self.user_data_consumer()
                    .start(broker.clone(), topology)
                    .await?,
            ),
            (
                ConsumerCounts::NOTIFICATIONS,
                self.notification_consumer()
                    .start(broker.clone(), topology)
                    .await?,
            ),
            (
                ConsumerCounts::ANALYTICS,
                self.analytics_consumer()
                    .start(broker.clone(), topology)
                    .await?,
            ),
            (
                ConsumerCounts::LIVE_DASHBOARD,
                LiveDashboardHandler::new(self.live.clone(), self.pipeline.clone())
                    .start(broker.clone(), self.config.live_queue.clone())
                    .await?,
            ),
            (
                ConsumerCounts::PRODUCT_EVENTS,
                self.product_event_consumer()
                    .start(broker, topology)
                    .await?,
            ),
        ];
        Ok(consumers)
    }

    /// The handler [`App::start`] runs on the user-data queue: stores the profile document
    /// (once per user) and publishes the welcome (once per user, [`DocProfileSink`]). Public
    /// so the same handler can run under other supervision (a dedicated worker, a test).
    pub fn user_data_consumer(&self) -> UserDataConsumer<DocProfileSink> {
        UserDataConsumer::new(DocProfileSink {
            sql: self.sql.clone(),
            docs: self.docs.clone(),
            pipeline: self.pipeline.clone(),
        })
    }

    /// The handler [`App::start`] runs on the notification queue: sends through
    /// [`App::notifier`], once per message id by the durable ledger on the document store's
    /// markers ([`DocSentLedger`]), so neither a redelivery, a restart nor another instance
    /// sends a notification twice (at most once, see [`mod8_mq::domain::SentLedger`]).
    pub fn notification_consumer(&self) -> NotificationConsumer<LoggingNotifier, DocSentLedger> {
        NotificationConsumer::new(self.notifier.clone()).with_ledger(DocSentLedger {
            docs: self.docs.clone(),
        })
    }

    /// The handler [`App::start`] runs on the analytics queue: stores the event, counts it and
    /// applies it to the profile, each once per message id ([`DocEventSink`]).
    pub fn analytics_consumer(&self) -> AnalyticsConsumer<DocEventSink> {
        AnalyticsConsumer::new(DocEventSink {
            docs: self.docs.clone(),
            cache: self.cache.clone(),
        })
    }

    /// Deletes the notification markers ([`crate::sinks::notification_marker`]) claimed more
    /// than `older_than` ago; returns how many. The insights worker calls it on every full
    /// pass with [`crate::sinks::NOTIFICATION_MARKER_RETENTION`].
    ///
    /// # Errors
    ///
    /// The document store's error.
    pub async fn purge_notification_markers(
        &self,
        older_than: std::time::Duration,
    ) -> anyhow::Result<u64> {
        let older_than = chrono::Duration::from_std(older_than)
            .unwrap_or_else(|_| chrono::Duration::days(365 * 100));
        let cutoff = chrono::Utc::now() - older_than;
        Ok(self
            .docs
            .purge_markers(crate::sinks::NOTIFICATION_MARKER_PREFIX, cutoff)
            .await?)
    }

    /// Stops the background work: the relay makes a last pass, each consumer finishes and
    /// acknowledges its in-flight messages, then the broker connection closes.
    pub async fn shutdown(&self) {
        self.figures.stop().await;
        if let Some(background) = self.background.lock().await.take() {
            let _ = background.shutdown.send(true);
            if let Some(Err(e)) = option_await(background.relay).await {
                tracing::warn!(error = %e, "outbox relay ended abnormally");
            }
            if let Some(Err(e)) = option_await(background.worker).await {
                tracing::warn!(error = %e, "insights worker ended abnormally");
            }
            for (name, consumer) in background.consumers {
                if let Err(e) = consumer.shutdown().await {
                    tracing::warn!(consumer = name, error = %e, "consumer shutdown failed");
                }
            }
        }
        self.role.store(0, Ordering::Release);
        if let Err(e) = self.broker.close().await {
            tracing::warn!(error = %e, "closing the broker failed");
        }
        self.sql.close().await;
    }

    /// The metrics snapshot with the dependencies' figures read now (each dependency's
    /// reads bounded by [`AppConfig::call_timeout`]), for callers that want them current (the
    /// demo, tests). `/metrics` uses [`App::latest_metrics_snapshot`], which never waits.
    pub async fn metrics_snapshot(&self) -> Snapshot {
        let figures = DependencyFigures::collect(self, self.config.call_timeout).await;
        self.snapshot_with(Some(&figures))
    }

    /// The metrics snapshot with the dependencies' figures of the last background collection
    /// (none before the first one): no round trip, so it answers at once whatever the
    /// dependencies do.
    pub fn latest_metrics_snapshot(&self) -> Snapshot {
        self.snapshot_with(self.figures.get().as_deref())
    }

    /// In-process figures read now, with `figures` for the dependencies'.
    fn snapshot_with(&self, figures: Option<&DependencyFigures>) -> Snapshot {
        let mut snapshot = Snapshot {
            cache_name: self.cache.name().to_owned(),
            cache: self.cache.stats(),
            outbox_unpublishable: self.outbox.unpublishable(),
            docstore: self.docs.memory_stats(),
            broker: self.broker.memory_stats(),
            slow_statements: self
                .sql
                .statement_log()
                .map(|log| log.slow_counts())
                .unwrap_or_default(),
            pools: self.sql.pool_usage(),
            read_routing: self.sql.read_routing(),
            consumers: self.consumer_figures(),
            published: self.pipeline.producer().published(),
            process: crate::process_stats::ProcessStats::read(),
            ..Snapshot::default()
        };
        if let Some(f) = figures {
            snapshot.queue_depths = f.queue_depths.clone();
            snapshot.dead_letters = f.dead_letters;
            snapshot.outbox_backlog = f.outbox_backlog;
            snapshot.outbox_rows = f.outbox_rows;
            snapshot.outbox_oldest_pending_age = f.outbox_oldest_pending.map(|oldest| {
                oldest
                    .and_then(|at| (chrono::Utc::now() - at).to_std().ok())
                    .unwrap_or_default()
            });
            snapshot.cache_memory = f.cache_memory.flatten();
            snapshot.dependencies = f.dependencies.clone();
            snapshot.collection_duration = Some(f.took);
        }
        snapshot
    }

    /// Each running consumer's counters under its queue; empty when none runs, or while
    /// the consumers are being started or stopped (never waits for that).
    fn consumer_figures(&self) -> Vec<crate::metrics::QueueConsumerFigures> {
        let Ok(background) = self.background.try_lock() else {
            return Vec::new();
        };
        let topology = &self.config.topology;
        background
            .as_ref()
            .map(|b| {
                b.consumers
                    .iter()
                    .map(|&(name, ref c)| {
                        let queue = match name {
                            ConsumerCounts::USER_DATA => &topology.user_data_queue,
                            ConsumerCounts::NOTIFICATIONS => &topology.notification_queue,
                            ConsumerCounts::ANALYTICS => &topology.analytics_queue,
                            ConsumerCounts::LIVE_DASHBOARD => &self.config.live_queue,
                            _ => &topology.product_events_queue,
                        };
                        let s = c.stats();
                        crate::metrics::QueueConsumerFigures {
                            queue: queue.clone(),
                            received: s.received(),
                            acked: s.acked(),
                            retried: s.retried(),
                            dead_lettered: s.dead_lettered(),
                            failed: s.failed(),
                            unacked: s.in_flight(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Processed-message counters of each running consumer, in start order (empty before
    /// [`App::start`] and after [`App::shutdown`]).
    pub async fn consumer_stats(&self) -> Vec<ConsumerCounts> {
        let background = self.background.lock().await;
        background
            .as_ref()
            .map(|b| {
                b.consumers
                    .iter()
                    .map(|&(name, ref c)| {
                        let s = c.stats();
                        ConsumerCounts {
                            name,
                            acked: s.acked(),
                            retried: s.retried(),
                            dead_lettered: s.dead_lettered(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Awaits the task if there is one.
async fn option_await(task: Option<JoinHandle<()>>) -> Option<Result<(), tokio::task::JoinError>> {
    match task {
        Some(task) => Some(task.await),
        None => None,
    }
}

/// Processed-message counters of one of the app's consumers ([`App::consumer_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConsumerCounts {
    /// Which consumer: [`ConsumerCounts::USER_DATA`], [`ConsumerCounts::NOTIFICATIONS`],
    /// [`ConsumerCounts::ANALYTICS`], [`ConsumerCounts::LIVE_DASHBOARD`] or
    /// [`ConsumerCounts::PRODUCT_EVENTS`].
    pub name: &'static str,
    /// Messages handled and acknowledged.
    pub acked: u64,
    /// Deliveries that failed transiently and went to the retry queue (the message comes
    /// back, so one message may count here several times).
    pub retried: u64,
    /// Messages given up on and sent to the dead-letter queue.
    pub dead_lettered: u64,
}

impl ConsumerCounts {
    /// The user-data consumer: stores the profile document, publishes the welcome.
    pub const USER_DATA: &'static str = "user_data";
    /// The notification consumer: sends notifications through [`App::notifier`].
    pub const NOTIFICATIONS: &'static str = "notifications";
    /// The analytics consumer: stores each event in the document store's log.
    pub const ANALYTICS: &'static str = "analytics";
    /// The live-dashboard consumer: feeds [`App::live`] and publishes activity alerts.
    pub const LIVE_DASHBOARD: &'static str = "live_dashboard";
    /// The product-events consumer: drops what is cached about a changed product
    /// ([`crate::flows::catalog::ProductEventConsumer`]).
    pub const PRODUCT_EVENTS: &'static str = "product_events";

    /// Messages this consumer is done with: acknowledged or dead-lettered (a retried one is
    /// still to come back).
    pub fn finished(&self) -> u64 {
        self.acked + self.dead_lettered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notification_markers_are_purged_past_their_retention() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let id = uuid::Uuid::new_v4();
        let marker = crate::sinks::notification_marker(id);
        assert!(app.docs.claim_marker(&marker).await.unwrap());
        assert!(app.docs.claim_marker("welcome:someone").await.unwrap());
        let week = crate::sinks::NOTIFICATION_MARKER_RETENTION;
        assert_eq!(app.purge_notification_markers(week).await.unwrap(), 0);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let now = std::time::Duration::ZERO;
        assert_eq!(app.purge_notification_markers(now).await.unwrap(), 1);
        assert!(app.docs.claim_marker(&marker).await.unwrap(), "gone");
        assert!(
            !app.docs.claim_marker("welcome:someone").await.unwrap(),
            "other markers stay"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn consumer_stats_name_every_running_consumer() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        assert!(
            app.consumer_stats().await.is_empty(),
            "nothing runs before start"
        );
        app.start().await.unwrap();
        let stats = app.consumer_stats().await;
        let names: Vec<&str> = stats.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                ConsumerCounts::USER_DATA,
                ConsumerCounts::NOTIFICATIONS,
                ConsumerCounts::ANALYTICS,
                ConsumerCounts::LIVE_DASHBOARD,
                ConsumerCounts::PRODUCT_EVENTS,
            ]
        );
        assert!(stats.iter().all(|c| c.finished() == 0 && c.retried == 0));
        app.shutdown().await;
        assert!(
            app.consumer_stats().await.is_empty(),
            "nothing runs after shutdown"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_role_starts_only_its_own_work() {
        for (role, consumers) in [(Role::Api, 0), (Role::Worker, 5), (Role::All, 5)] {
            let app = App::build(AppConfig::embedded()).await.unwrap();
            assert_eq!(app.role(), None);
            app.start_with(role).await.unwrap();
            assert_eq!(app.role(), Some(role));
            assert_eq!(app.consumer_stats().await.len(), consumers, "{role}");
            {
                let background = app.background.lock().await;
                let b = background.as_ref().unwrap();
                assert_eq!(b.relay.is_some(), role.runs_api(), "{role}: relay");
                assert_eq!(b.worker.is_some(), role.runs_workers(), "{role}: worker");
            }
            // A second start, of another role, changes nothing.
            app.start_with(Role::All).await.unwrap();
            assert_eq!(app.role(), Some(role));
            app.shutdown().await;
            assert_eq!(app.role(), None);
        }
    }

    #[test]
    fn roles_parse_by_name() {
        for role in [Role::Api, Role::Worker, Role::All] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!(" Worker ".parse::<Role>().unwrap(), Role::Worker);
        let err = "both".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("\"both\"") && err.contains("`api`"), "{err}");
    }
}
