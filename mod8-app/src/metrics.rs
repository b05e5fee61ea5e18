//! Prometheus metrics for `GET /metrics`, rendered as one OpenMetrics text exposition.
//!
//! Latencies are histograms recorded as requests and queries happen; what only a dependency
//! knows (queue depths, dead letters, the outbox's backlog and oldest row, the cache server's
//! memory) is collected in the background on an interval, each dependency's reads bounded by a
//! timeout ([`crate::dependency_figures`]), so a scrape never waits on a dependency: one that
//! does not answer shows `mod8_dependency_up 0`, its figures are left without samples, and
//! every family is still declared. In-process figures (cache counters, pools, consumers,
//! process resources) are read at scrape time. Everything goes through one registry and one
//! encoder, so the text has each family once and ends with a single `# EOF`; the classic text
//! format is served on request ([`crate::metrics_text`]).
//!
//! Label values are bounded: routes are the route table's templates (`unmatched` otherwise),
//! methods outside the standard set are `other`, queues and pools come from the
//! configuration, and published routes are capped by the producer.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use mod8_cache::{CacheStats, ServerMemory};
use mod8_docstore::MemoryStats;
use mod8_mq::memory::MemoryBrokerStats;
use mod8_mq::published::PublishedCount;
use mod8_orm::PoolUsage;

use crate::dependency_figures::DependencyState;
use crate::process_stats::ProcessStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output (OpenMetrics 1.0 text, which Prometheus
/// negotiates for and parses, `# EOF` included).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the HTTP request latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route (`/api/users/{id}/profile`), not the raw path, to bound cardinality.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status code.
    pub status: u16,
}

/// Label of the per-route counters: the matched route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The matched route (`/api/users`), or `unmatched`.
    pub route: String,
}

/// Labels of the per-dependency gauges and the query latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    /// Queue, cache or operation name.
    pub name: String,
}

/// Label of the cache's counters: which cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: String,
}

/// What the scrape reads from the dependencies at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The cache's name (the `cache` label of its counters).
    pub cache_name: String,
    /// The cache's counters since start.
    pub cache: CacheStats,
    /// Messages waiting per queue (queues whose depth could not be read are left out).
    pub queue_depths: Vec<(String, u64)>,
    /// Messages parked in the dead-letter queue; `None` when the broker did not answer.
    pub dead_letters: Option<u64>,
    /// Unsent rows in the outbox table (every process's); `None` when SQL did not answer.
    pub outbox_backlog: Option<u64>,
    /// Rows in the outbox table, sent or not (sent rows stay until the relay purges them after
    /// [`crate::AppConfig::outbox_retention`]); `None` when SQL did not answer.
    pub outbox_rows: Option<u64>,
    /// Outbox rows this process found unpublishable and skips.
    pub outbox_unpublishable: u64,
    /// The in-memory document store's occupancy, bounds and evictions; `None` on MongoDB.
    pub docstore: Option<MemoryStats>,
    /// The in-process broker's queues (occupancy, bounds, refused publishes); `None` on
    /// RabbitMQ.
    pub broker: Option<MemoryBrokerStats>,
    /// SQL statements that ran at or above the slow threshold, by statement name (bounded by
    /// the statement log); statements never slow are left out.
    pub slow_statements: Vec<(String, u64)>,
    /// Whether each dependency answered the last collection; empty before the first one.
    pub dependencies: Vec<DependencyState>,
    /// How long the last collection of the dependencies' figures took; `None` before the
    /// first one.
    pub collection_duration: Option<Duration>,
    /// How long the oldest unsent outbox row has waited (zero when none waits); `None` when
    /// SQL did not answer.
    pub outbox_oldest_pending_age: Option<Duration>,
    /// The cache server's memory; `None` for an in-process cache or when it did not answer.
    pub cache_memory: Option<ServerMemory>,
    /// The SQL connection pools.
    pub pools: Vec<PoolUsage>,
    /// Which server answered the SQL reads, when they are routed to a replica; `None`
    /// otherwise.
    pub read_routing: Option<mod8_orm::replica::RouteStats>,
    /// This process's consumers, per queue.
    pub consumers: Vec<QueueConsumerFigures>,
    /// Confirmed publishes per route.
    pub published: Vec<PublishedCount>,
    /// This process's resources.
    pub process: ProcessStats,
}

/// Label of the slow-statement counter: the statement's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabel {
    statement: String,
}

/// One consumer's counters, under the queue it consumes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueConsumerFigures {
    /// The queue.
    pub queue: String,
    /// Deliveries taken (redeliveries count again).
    pub received: u64,
    /// Messages handled and acknowledged.
    pub acked: u64,
    /// Messages sent to a retry queue.
    pub retried: u64,
    /// Messages sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Deliveries given back or left unsettled ([`mod8_mq::ConsumerStats::failed`]).
    pub failed: u64,
    /// Deliveries taken and not settled yet: unacknowledged.
    pub unacked: u64,
}

/// The app's metrics: what it records itself (latencies, counts of its own decisions); the
/// dependencies' figures come in a [`Snapshot`] at render time.
pub struct Metrics {
    requests: Family<RequestLabels, Histogram>,
    queries: Family<NameLabel, Histogram>,
    invalidation_failures: Counter<u64, AtomicU64>,
    rate_limited: Family<RouteLabel, Counter<u64, AtomicU64>>,
    connections_refused: Counter<u64, AtomicU64>,
}

/// The HTTP methods counted under their own name; any other is counted as `other`, so a
/// client inventing methods cannot grow `/metrics`.
pub const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The `method` label of `method`: itself when standard ([`STANDARD_METHODS`]), else `other`.
pub fn method_label(method: &str) -> &'static str {
    STANDARD_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~6.5 s in 18 doubling steps.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty latency histograms and counters.
    pub fn new() -> Self {
        Self {
            requests: Family::<RequestLabels, Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ),
            queries: Family::<NameLabel, Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ),
            invalidation_failures: Counter::default(),
            rate_limited: Family::default(),
            connections_refused: Counter::default(),
        }
    }

    /// Record one HTTP request. `route` must be a route template (or `unmatched`); a method
    /// outside [`STANDARD_METHODS`] is recorded as `other`.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method_label(method).to_owned(),
                status,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Record one data-layer operation (`sql.user_by_id`, `docs.log_event`, ...).
    pub fn observe_query(&self, name: &str, elapsed: Duration) {
        self.queries
            .get_or_create(&NameLabel {
                name: name.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Count one cache invalidation that failed after a committed write (the request still
    /// succeeded; the stale entries expire by TTL).
    pub fn cache_invalidation_failed(&self) {
        self.invalidation_failures.inc();
    }

    /// Count one request answered 429 on `route` (the matched route).
    pub fn rate_limited(&self, route: &str) {
        self.rate_limited
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .inc();
    }

    /// Requests answered 429 on `route` so far.
    pub fn rate_limited_count(&self, route: &str) -> u64 {
        self.rate_limited
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .get()
    }

    /// Count one connection answered 503 and closed because the server was at its connection
    /// cap.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Connections refused at the cap so far.
    pub fn connections_refused(&self) -> u64 {
        self.connections_refused.get()
    }

    /// Cache invalidations that failed so far.
    pub fn cache_invalidation_failures(&self) -> u64 {
        self.invalidation_failures.get()
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]): the recorded metrics and the
    /// dependencies' figures in `snapshot`, each family once, ending with `# EOF`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        // A registry per scrape: the families are shared handles (cheap clones), and the
        // snapshot is this scrape's alone, so concurrent scrapes never see each other's.
        let mut registry = Registry::with_prefix("mod8");
        // The registry leaves out a family without label sets yet; declare those here, so
        // every family is on every scrape. (Decided once: a family filling up meanwhile is
        // encoded by the next scrape.)
        let mut empty = Vec::new();
        let requests_help = "HTTP request latency by route, method and status";
        if EncodeMetric::is_empty(&self.requests) {
            empty.push((
                "http_request_duration_seconds",
                requests_help,
                MetricType::Histogram,
            ));
        } else {
            registry.register(
                "http_request_duration_seconds",
                requests_help,
                self.requests.clone(),
            );
        }
        let queries_help = "Data-layer operation latency by operation";
        if EncodeMetric::is_empty(&self.queries) {
            empty.push((
                "query_duration_seconds",
                queries_help,
                MetricType::Histogram,
            ));
        } else {
            registry.register("query_duration_seconds", queries_help, self.queries.clone());
        }
        let rate_limited_help = "Requests answered 429 (over the caller's rate limit) by route";
        if EncodeMetric::is_empty(&self.rate_limited) {
            empty.push(("http_rate_limited", rate_limited_help, MetricType::Counter));
        } else {
            registry.register(
                "http_rate_limited",
                rate_limited_help,
                self.rate_limited.clone(),
            );
        }
        registry.register_collector(Box::new(EmptyFamilies(empty)));
        registry.register(
            "cache_invalidation_failures",
            "Cache invalidations that failed after a committed write (served anyway)",
            self.invalidation_failures.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections answered 503 and closed at the connection cap",
            self.connections_refused.clone(),
        );
        registry.register_collector(Box::new(ScrapeCollector(snapshot.clone())));
        let mut out = String::new();
        // Encoding into a String cannot fail: fmt::Write for String is infallible, and the
        // collector only writes.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Declares families that have no samples yet.
#[derive(Debug)]
struct EmptyFamilies(Vec<(&'static str, &'static str, MetricType)>);

impl Collector for EmptyFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for (name, help, kind) in &self.0 {
            encoder.encode_descriptor(name, help, None, *kind)?;
        }
        Ok(())
    }
}

/// Encodes one scrape's [`Snapshot`].
#[derive(Debug)]
struct ScrapeCollector(Snapshot);

pub(crate) fn counter<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &L,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    let mut family = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(family.encode_family(labels)?)
}

/// A gauge family with one sample per label set.
pub(crate) fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue + Copy + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(L, V)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge without labels.
pub(crate) fn plain_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let cache = CacheLabel {
            cache: s.cache_name.clone(),
        };
        let counters = [
            (
                "cache_hits",
                "Cache lookups answered from the cache",
                s.cache.hits,
            ),
            (
                "cache_misses",
                "Cache lookups not answered from the cache",
                s.cache.misses,
            ),
            (
                "cache_loads",
                "Cache loader runs (one per stampede)",
                s.cache.loads,
            ),
            (
                "cache_load_errors",
                "Cache loader runs that failed",
                s.cache.load_errors,
            ),
            (
                "cache_evictions",
                "Entries the cache dropped for capacity or age",
                s.cache.evictions,
            ),
            (
                "cache_backend_errors",
                "Cache backend operations that failed (served as misses or skipped)",
                s.cache.backend_errors,
            ),
            (
                "cache_decode_errors",
                "Cached values that no longer decoded (served as misses)",
                s.cache.decode_errors,
            ),
        ];
        for (name, help, value) in counters {
            counter(&mut encoder, name, help, &cache, value)?;
        }
        gauge(
            &mut encoder,
            "cache_hit_ratio",
            "Cache hits / (hits + misses) since start",
            &[(cache, s.cache.hit_ratio())],
        )?;
        let depths: Vec<_> = s
            .queue_depths
            .iter()
            .map(|(queue, depth)| {
                (
                    NameLabel {
                        name: queue.clone(),
                    },
                    *depth,
                )
            })
            .collect();
        gauge(
            &mut encoder,
            "queue_depth",
            "Messages waiting per queue",
            &depths,
        )?;
        // Declared always; a figure the dependency did not give is left without a sample
        // rather than reported as zero.
        optional_gauge(
            &mut encoder,
            "dead_letters",
            "Messages in the dead-letter queue",
            s.dead_letters,
        )?;
        optional_gauge(
            &mut encoder,
            "outbox_backlog",
            "Unsent outbox rows (waiting for the relay or the broker)",
            s.outbox_backlog,
        )?;
        optional_gauge(
            &mut encoder,
            "outbox_rows",
            "Rows in the outbox table, sent or not (sent rows are purged after the retention)",
            s.outbox_rows,
        )?;
        plain_gauge(
            &mut encoder,
            "outbox_unpublishable",
            "Outbox rows that can never be published (unknown topic or payload), skipped",
            s.outbox_unpublishable,
        )?;
        if let Some(docs) = &s.docstore {
            encode_docstore(&mut encoder, docs)?;
        }
        if let Some(broker) = &s.broker {
            encode_broker(&mut encoder, broker)?;
        }
        encode_slow_statements(&mut encoder, &s.slow_statements)?;
        crate::ops_metrics::encode(&mut encoder, s)
    }
}

/// A gauge without labels, declared always, with a sample only when there is a value.
pub(crate) fn optional_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<u64>,
) -> std::fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    match value {
        Some(value) => ConstGauge::new(value).encode(family),
        None => Ok(()),
    }
}

/// `mod8_sql_slow_statements_total{statement}`: slow runs per SQL statement name.
fn encode_slow_statements(
    encoder: &mut DescriptorEncoder,
    counts: &[(String, u64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        "sql_slow_statements",
        "SQL statement runs at or above the slow threshold, by statement name",
        None,
        MetricType::Counter,
    )?;
    for (statement, n) in counts {
        let labels = StatementLabel {
            statement: statement.clone(),
        };
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter without labels.
fn plain_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The in-memory document store's figures (embedded default only).
fn encode_docstore(encoder: &mut DescriptorEncoder, docs: &MemoryStats) -> std::fmt::Result {
    let gauges = [
        (
            "docstore_events",
            "Events held by the in-memory document store",
            docs.events,
        ),
        (
            "docstore_event_bytes",
            "Estimated in-memory bytes of the events held by the in-memory document store",
            docs.event_bytes,
        ),
        (
            "docstore_max_events",
            "The in-memory document store's bound on events (oldest evicted past it)",
            docs.max_events,
        ),
        (
            "docstore_max_event_bytes",
            "The in-memory document store's bound on event bytes (oldest evicted past it)",
            docs.max_event_bytes,
        ),
        (
            "docstore_profiles",
            "Profiles held by the in-memory document store",
            docs.profiles,
        ),
        (
            "docstore_markers",
            "Once-markers held by the in-memory document store",
            docs.markers,
        ),
    ];
    for (name, help, value) in gauges {
        plain_gauge(encoder, name, help, value)?;
    }
    plain_counter(
        encoder,
        "docstore_evictions",
        "Events the in-memory document store evicted for its bounds (count, bytes, age)",
        docs.evictions,
    )
}

/// The in-process broker's per-queue figures (embedded default only).
fn encode_broker(encoder: &mut DescriptorEncoder, broker: &MemoryBrokerStats) -> std::fmt::Result {
    let per_queue =
        |value: fn(&mod8_mq::memory::MemoryQueueStats) -> u64| -> Vec<(NameLabel, u64)> {
            broker
                .queues
                .iter()
                .map(|q| {
                    (
                        NameLabel {
                            name: q.name.clone(),
                        },
                        value(q),
                    )
                })
                .collect()
        };
    gauge(
        encoder,
        "queue_bytes",
        "Bytes of the ready messages' bodies per in-process queue",
        &per_queue(|q| q.bytes),
    )?;
    gauge(
        encoder,
        "queue_max_length",
        "The in-process broker's bound on ready messages per queue",
        &per_queue(|q| q.max_length),
    )?;
    gauge(
        encoder,
        "queue_max_bytes",
        "The in-process broker's bound on ready bytes per queue",
        &per_queue(|q| q.max_bytes),
    )?;
    let mut family = encoder.encode_descriptor(
        "queue_rejected",
        "Publishes a full in-process queue refused (reject-publish: the publisher keeps the message)",
        None,
        MetricType::Counter,
    )?;
    for (labels, value) in per_queue(|q| q.rejected) {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    plain_counter(
        encoder,
        "queue_dead_letters_dropped",
        "Expired messages the in-process broker dropped: their dead-letter queue was full or missing",
        broker.dead_letters_dropped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router's figures: 40 replica reads, 11 on the primary for each reason in turn.
    fn route_stats() -> mod8_orm::replica::RouteStats {
        let mut r = mod8_orm::replica::RouteStats::default();
        r.writes = 9;
        r.replica_reads = 40;
        r.read_your_writes = 5;
        r.lagging = 3;
        r.replica_down = 2;
        r.fallbacks = 1;
        r.primary_reads = 11;
        r
    }

    #[test]
    fn renders_every_family_once_with_scrape_values() {
        let metrics = Metrics::new();
        metrics.observe_request("/api/users", "POST", 201, Duration::from_millis(3));
        metrics.observe_query("sql.create_user", Duration::from_micros(800));
        metrics.cache_invalidation_failed();
        metrics.rate_limited("/api/users");
        metrics.rate_limited("/api/users");
        metrics.connection_refused();
        let text = metrics.render(&Snapshot {
            cache_name: "app".into(),
            cache: CacheStats {
                hits: 3,
                misses: 1,
                ..CacheStats::default()
            },
            queue_depths: vec![("user_data_queue".into(), 7)],
            dead_letters: Some(2),
            outbox_backlog: Some(5),
            outbox_rows: Some(9),
            outbox_unpublishable: 1,
            docstore: None,
            broker: None,
            slow_statements: vec![("select_orders_0badcafe".into(), 4)],
            ..Snapshot::default()
        });
        assert!(
            text.contains(
                "mod8_sql_slow_statements_total{statement=\"select_orders_0badcafe\"} 4\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "mod8_http_request_duration_seconds_count{route=\"/api/users\",method=\"POST\",status=\"201\"} 1\n"
        ), "{text}");
        assert!(text.contains("mod8_query_duration_seconds_count{name=\"sql.create_user\"} 1\n"));
        assert!(text.contains("# TYPE mod8_cache_hits counter\n"), "{text}");
        assert!(
            text.contains("mod8_cache_hits_total{cache=\"app\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("mod8_cache_hit_ratio{cache=\"app\"} 0.75\n"),
            "{text}"
        );
        assert!(
            text.contains("mod8_queue_depth{name=\"user_data_queue\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("mod8_dead_letters 2\n"), "{text}");
        assert!(text.contains("mod8_outbox_backlog 5\n"), "{text}");
        assert!(text.contains("mod8_outbox_rows 9\n"), "{text}");
        assert!(text.contains("mod8_outbox_unpublishable 1\n"), "{text}");
        assert!(
            text.contains("mod8_cache_invalidation_failures_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mod8_http_rate_limited_total{route=\"/api/users\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("mod8_http_connections_refused_total 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert_eq!(text.matches("# TYPE mod8_cache_hit_ratio ").count(), 1);
    }

    #[tokio::test]
    async fn the_embedded_stores_bounds_and_evictions_are_rendered() {
        use mod8_docstore::{DocStore, EventStore, MemoryDocStore, MemoryLimits};
        use mod8_mq::memory::{MemoryBroker, MemoryQueueLimits};
        use mod8_mq::{Broker, Publication, QueueSpec};

        let docs = MemoryDocStore::with_limits(MemoryLimits {
            max_events: 2,
            ..MemoryLimits::default()
        });
        for user in ["a", "b", "c"] {
            docs.log_event(mod8_docstore::Event::new(user, "click"))
                .await
                .unwrap();
        }
        let broker = MemoryBroker::with_limits(
            mod8_mq::Declarations::default(),
            MemoryQueueLimits {
                max_length: 1,
                max_bytes: 1024,
            },
        )
        .unwrap();
        broker.declare_queue(&QueueSpec::named("q")).await.unwrap();
        broker
            .publish(Publication::new("", "q", b"x".to_vec()))
            .await
            .unwrap();
        assert!(broker
            .publish(Publication::new("", "q", b"y".to_vec()))
            .await
            .is_err());
        let text = Metrics::new().render(&Snapshot {
            docstore: docs.memory_stats(),
            broker: broker.memory_stats(),
            ..Snapshot::default()
        });
        for line in [
            "mod8_docstore_events 2\n",
            "mod8_docstore_max_events 2\n",
            "mod8_docstore_evictions_total 1\n",
            "mod8_queue_rejected_total{name=\"q\"} 1\n",
            "mod8_queue_max_length{name=\"q\"} 1\n",
            "mod8_queue_bytes{name=\"q\"} 1\n",
            "mod8_queue_dead_letters_dropped_total 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            text.contains("# TYPE mod8_docstore_evictions counter\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn invented_methods_share_one_label() {
        let metrics = Metrics::new();
        metrics.observe_request("/api/users", "GET", 200, Duration::from_millis(1));
        let before = metrics.render(&Snapshot::default()).len();
        for i in 0..500 {
            let method = format!("MADEUP{i}");
            metrics.observe_request("/api/users", &method, 405, Duration::from_millis(1));
        }
        let once = metrics.render(&Snapshot::default());
        metrics.observe_request("/api/users", "BREW", 405, Duration::from_millis(1));
        let text = metrics.render(&Snapshot::default());
        assert_eq!(
            once.len(),
            text.len(),
            "a further invented method grew /metrics"
        );
        assert!(!text.contains("MADEUP"), "{text}");
        assert!(
            text.contains("mod8_http_request_duration_seconds_count{route=\"/api/users\",method=\"other\",status=\"405\"} 501\n"),
            "{text}"
        );
        // One more label set (the `other` one) than before, not 500.
        assert!(text.len() < before * 2, "{} -> {}", before, text.len());
    }

    #[test]
    fn the_operations_families_are_rendered() {
        use crate::dependency_figures::{DependencyRole, DependencyState};
        let metrics = Metrics::new();
        let text = metrics.render(&Snapshot {
            slow_statements: vec![("select_users_12345678".into(), 2)],
            dependencies: vec![
                DependencyState {
                    role: DependencyRole::Sql,
                    backend: "postgres",
                    up: true,
                },
                DependencyState {
                    role: DependencyRole::Broker,
                    backend: "amqp",
                    up: false,
                },
            ],
            outbox_oldest_pending_age: Some(Duration::from_secs(90)),
            cache_memory: Some(ServerMemory {
                used_bytes: 100,
                max_bytes: 400,
            }),
            pools: vec![PoolUsage {
                pool: "primary",
                size: 4,
                idle: 1,
                max: 10,
            }],
            read_routing: Some(route_stats()),
            consumers: vec![QueueConsumerFigures {
                queue: "q".into(),
                received: 5,
                acked: 3,
                retried: 1,
                dead_lettered: 1,
                failed: 0,
                unacked: 2,
            }],
            published: vec![PublishedCount {
                exchange: "x".into(),
                routing_key: "k".into(),
                messages: 7,
            }],
            process: ProcessStats {
                resident_memory_bytes: Some(1 << 20),
                cpu_seconds: Some(1.5),
                ..ProcessStats::default()
            },
            ..Snapshot::default()
        });
        for line in [
            "mod8_dependency_up{dependency=\"postgres\",role=\"sql\"} 1\n",
            "mod8_dependency_up{dependency=\"amqp\",role=\"broker\"} 0\n",
            "mod8_outbox_oldest_pending_age_seconds 90.0\n",
            "mod8_redis_memory_used_bytes 100\n",
            "mod8_redis_memory_max_bytes 400\n",
            "mod8_sql_pool_connections{pool=\"primary\"} 4\n",
            "mod8_sql_pool_idle_connections{pool=\"primary\"} 1\n",
            "mod8_sql_pool_max_connections{pool=\"primary\"} 10\n",
            "mod8_sql_reads_total{server=\"replica\",reason=\"replica_current\"} 40\n",
            "mod8_sql_reads_total{server=\"primary\",reason=\"read_your_writes\"} 5\n",
            "mod8_sql_reads_total{server=\"primary\",reason=\"replica_lagging\"} 3\n",
            "mod8_sql_reads_total{server=\"primary\",reason=\"replica_down\"} 2\n",
            "mod8_sql_reads_total{server=\"primary\",reason=\"replica_failed\"} 1\n",
            "mod8_sql_routed_writes_total 9\n",
            "mod8_queue_unacked_messages{queue=\"q\"} 2\n",
            "mod8_queue_acked_total{queue=\"q\"} 3\n",
            "mod8_queue_dead_lettered_total{queue=\"q\"} 1\n",
            "mod8_queue_failed_total{queue=\"q\"} 0\n",
            "mod8_messages_published_total{exchange=\"x\",routing_key=\"k\"} 7\n",
            "mod8_process_resident_memory_bytes 1048576\n",
            "mod8_process_cpu_seconds_total 1.5\n",
            "mod8_sql_slow_statements_total{statement=\"select_users_12345678\"} 2\n",
            "mod8_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn unread_figures_are_left_out_not_reported_as_zero() {
        // Without a replica router, no read routing samples, but the families are declared.
        let text = Metrics::new().render(&Snapshot::default());
        for family in ["mod8_sql_reads", "mod8_sql_routed_writes"] {
            assert!(
                text.contains(&format!("# TYPE {family} counter\n")),
                "{family}: {text}"
            );
            assert!(
                !text.contains(&format!("{family}_total")),
                "{family}: {text}"
            );
        }

        let text = Metrics::new().render(&Snapshot::default());
        // No sample (a figure nobody read is not a zero); the family is still declared, so
        // a scrape while a dependency is down has every family.
        let sample = |family: &str| text.lines().any(|l| l.starts_with(family));
        for family in [
            "mod8_dead_letters",
            "mod8_outbox_backlog",
            "mod8_outbox_rows",
            "mod8_outbox_oldest_pending_age_seconds",
            "mod8_redis_memory_used_bytes",
            "mod8_dependency_up",
        ] {
            assert!(!sample(family), "{family}: {text}");
            assert!(
                text.contains(&format!("# TYPE {family} gauge\n")),
                "{family}: {text}"
            );
        }
        // MongoDB and RabbitMQ keep their own figures: no in-memory families then.
        assert!(!text.contains("mod8_docstore_"), "{text}");
        assert!(!text.contains("mod8_queue_rejected"), "{text}");
    }
}
