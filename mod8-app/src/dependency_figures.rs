//! The figures `/metrics` needs a round trip for — queue depths, dead letters, the outbox's
//! backlog, size and oldest unsent row, the cache server's memory — and whether each
//! dependency answered, collected by a background task on an interval, each dependency's reads
//! bounded by a timeout. `/metrics` renders the last collection and never waits on a
//! dependency: one that hangs or is gone shows as `mod8_dependency_up 0` while every other
//! family is still rendered.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mod8_cache::ServerMemory;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::App;

/// How often and how patiently the dependency figures are collected
/// ([`AppConfig::metrics`](crate::AppConfig::metrics)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Time between two collections (`MOD8_METRICS_INTERVAL_SECS`, default 5 s). A figure
    /// on `/metrics` is at most this old plus [`MetricsSettings::timeout`].
    pub interval: Duration,
    /// Longest one dependency's reads may take in one collection (default 1 s); a dependency
    /// that has not answered by then counts as down until the next collection.
    pub timeout: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        }
    }
}

impl MetricsSettings {
    /// Applies a `MOD8_METRICS_INTERVAL_SECS` value (unset keeps the default).
    ///
    /// # Errors
    ///
    /// A value that is not a whole number of seconds above 0.
    pub fn with_interval_secs(mut self, secs: Option<&str>) -> anyhow::Result<Self> {
        if let Some(raw) = secs {
            self.interval = match raw.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => anyhow::bail!(
                    "MOD8_METRICS_INTERVAL_SECS={raw:?}: expected a whole number of seconds above 0"
                ),
            };
        }
        Ok(self)
    }
}

/// What the app depends on, each with the backend in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DependencyRole {
    /// The relational store.
    Sql,
    /// The document store.
    Docs,
    /// The cache.
    Cache,
    /// The message broker.
    Broker,
}

impl DependencyRole {
    /// `sql`, `docs`, `cache` or `broker` (the `role` label).
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyRole::Sql => "sql",
            DependencyRole::Docs => "docs",
            DependencyRole::Cache => "cache",
            DependencyRole::Broker => "broker",
        }
    }
}

/// Whether one dependency answered the last collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyState {
    /// What it is to the app.
    pub role: DependencyRole,
    /// The backend (`postgres`, `sqlite`, `mongodb`, `redis`, `amqp`, `memory`): the
    /// `dependency` label.
    pub backend: &'static str,
    /// Whether every read of this collection answered within the timeout.
    pub up: bool,
}

/// One collection's results. A figure of a dependency that did not answer is `None`.
#[derive(Debug, Clone, Default)]
pub struct DependencyFigures {
    /// Each dependency's state, in [`DependencyRole`] order.
    pub dependencies: Vec<DependencyState>,
    /// Messages ready per queue (queues whose depth could not be read are left out).
    pub queue_depths: Vec<(String, u64)>,
    /// Messages in the dead-letter queue.
    pub dead_letters: Option<u64>,
    /// Unsent outbox rows (every process's).
    pub outbox_backlog: Option<u64>,
    /// Rows in the outbox table, sent or not.
    pub outbox_rows: Option<u64>,
    /// When the oldest unsent outbox row was written: `Some(None)` when nothing is unsent.
    pub outbox_oldest_pending: Option<Option<DateTime<Utc>>>,
    /// The cache server's memory: `Some(None)` for an in-process cache.
    pub cache_memory: Option<Option<ServerMemory>>,
    /// How long the collection took.
    pub took: Duration,
}

impl DependencyFigures {
    /// Reads every figure from `app`'s dependencies now, all at once, each dependency's reads
    /// bounded by `timeout`: the whole collection takes at most about `timeout`.
    pub async fn collect(app: &App, timeout: Duration) -> Self {
        let started = Instant::now();
        let topology = &app.config.topology;
        let queues = [
            topology.user_data_queue.clone(),
            topology.notification_queue.clone(),
            topology.analytics_queue.clone(),
            app.config.live_queue.clone(),
            topology.product_events_queue.clone(),
        ];
        let broker = async {
            let depths = futures::future::join_all(queues.into_iter().map(|queue| async move {
                let depth = app.broker.queue_depth(&queue).await;
                (queue, depth)
            }));
            let dead = topology.dead_letter_count(app.broker.as_ref());
            tokio::join!(depths, dead)
        };
        let sql = async {
            tokio::join!(
                app.sql.count_pending(),
                app.sql.count_outbox_rows(),
                app.sql.oldest_pending()
            )
        };
        // A read by `_id` (one activity bucket), as `/healthz` does: cheap on every server.
        let today = Utc::now().date_naive();
        let docs = app
            .docs
            .activity_summary("metrics", mod8_docstore::DayRange::new(today, today));
        let cache = app.cache.server_memory();
        let (broker, sql, docs, cache) = tokio::join!(
            tokio::time::timeout(timeout, broker),
            tokio::time::timeout(timeout, sql),
            tokio::time::timeout(timeout, docs),
            tokio::time::timeout(timeout, cache),
        );

        let mut figures = DependencyFigures::default();
        let (sql_up, broker_up);
        match sql {
            Ok((Ok(backlog), Ok(rows), Ok(oldest))) => {
                sql_up = true;
                figures.outbox_backlog = Some(backlog);
                figures.outbox_rows = Some(rows);
                figures.outbox_oldest_pending = Some(oldest.map(|m| m.created_at));
            }
            Ok((backlog, rows, oldest)) => {
                sql_up = false;
                figures.outbox_backlog = backlog.ok();
                figures.outbox_rows = rows.ok();
                figures.outbox_oldest_pending = oldest.ok().map(|o| o.map(|m| m.created_at));
            }
            Err(_) => sql_up = false,
        }
        match broker {
            Ok((depths, dead)) => {
                broker_up = dead.is_ok() && depths.iter().all(|(_, d)| d.is_ok());
                figures.queue_depths = depths
                    .into_iter()
                    .filter_map(|(queue, depth)| depth.ok().map(|d| (queue, d)))
                    .collect();
                figures.dead_letters = dead.ok();
            }
            Err(_) => broker_up = false,
        }
        let docs_up = matches!(docs, Ok(Ok(_)));
        let cache_up = match cache {
            Ok(Ok(memory)) => {
                figures.cache_memory = Some(memory);
                true
            }
            _ => false,
        };
        figures.dependencies = vec![
            DependencyState {
                role: DependencyRole::Sql,
                backend: app.sql.backend().name(),
                up: sql_up,
            },
            DependencyState {
                role: DependencyRole::Docs,
                backend: app.docs.backend(),
                up: docs_up,
            },
            DependencyState {
                role: DependencyRole::Cache,
                backend: cache_backend(app.cache.backend()),
                up: cache_up,
            },
            DependencyState {
                role: DependencyRole::Broker,
                backend: app.broker.backend(),
                up: broker_up,
            },
        ];
        figures.took = started.elapsed();
        figures
    }
}

/// The cache's server: an in-process L1 in front of Redis is Redis to an operator.
fn cache_backend(backend: &'static str) -> &'static str {
    match backend {
        "tiered" => "redis",
        other => other,
    }
}

/// The last collection, and the task making them ([`LatestFigures::start`]).
#[derive(Debug, Default)]
pub struct LatestFigures {
    latest: RwLock<Option<Arc<DependencyFigures>>>,
    task: std::sync::Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl LatestFigures {
    /// The last collection; `None` before the first one ended.
    pub fn get(&self) -> Option<Arc<DependencyFigures>> {
        self.latest.read().ok().and_then(|l| l.clone())
    }

    /// Stores a collection as the latest.
    pub fn set(&self, figures: DependencyFigures) {
        if let Ok(mut latest) = self.latest.write() {
            *latest = Some(Arc::new(figures));
        }
    }

    /// Starts collecting from `app` every `settings.interval` (the first collection at once),
    /// until [`LatestFigures::stop`] or the app is dropped. A second call while running is a
    /// no-op.
    pub fn start(&self, app: Weak<App>, settings: MetricsSettings) {
        let Ok(mut task) = self.task.lock() else {
            return;
        };
        if task.is_some() {
            return;
        }
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(settings.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = ticks.tick() => {}
                }
                let Some(app) = app.upgrade() else { break };
                let figures = DependencyFigures::collect(&app, settings.timeout).await;
                for d in figures.dependencies.iter().filter(|d| !d.up) {
                    tracing::debug!(
                        dependency = d.backend,
                        role = d.role.as_str(),
                        "metrics: dependency did not answer"
                    );
                }
                app.figures.set(figures);
            }
        });
        *task = Some((stop, handle));
    }

    /// Stops the collecting task and waits for it (the last collection stays).
    pub async fn stop(&self) {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some((stop, handle)) = task {
            let _ = stop.send(true);
            let _ = handle.await;
        }
    }
}
