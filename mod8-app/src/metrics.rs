//! Prometheus metrics for `GET /metrics`.
//!
//! Latencies are histograms recorded as requests and queries happen; everything owned by a
//! dependency (cache statistics, queue depths, dead letters, outbox backlog) is read from that
//! dependency when the endpoint is scraped, so the numbers are never stale copies.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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

/// Labels of the per-dependency gauges and the query latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    /// Queue, cache or operation name.
    pub name: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What the scrape reads from the dependencies at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Cache hits so far.
    pub cache_hits: u64,
    /// Cache misses so far.
    pub cache_misses: u64,
    /// Messages waiting per queue.
    pub queue_depths: Vec<(String, u64)>,
    /// Messages parked in the dead-letter queue.
    pub dead_letters: u64,
    /// Outbox rows not yet confirmed by the broker.
    pub outbox_backlog: u64,
}

/// The app's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram>,
    queries: Family<NameLabel, Histogram>,
    cache_hits: FloatGauge,
    cache_misses: FloatGauge,
    cache_hit_ratio: FloatGauge,
    queue_depth: Family<NameLabel, FloatGauge>,
    dead_letters: FloatGauge,
    outbox_backlog: FloatGauge,
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
    /// A registry with every mod8 metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mod8");
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let queries = Family::<NameLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let cache_hits = FloatGauge::default();
        let cache_misses = FloatGauge::default();
        let cache_hit_ratio = FloatGauge::default();
        let queue_depth = Family::<NameLabel, FloatGauge>::default();
        let dead_letters = FloatGauge::default();
        let outbox_backlog = FloatGauge::default();
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            requests.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Data-layer operation latency by operation",
            queries.clone(),
        );
        registry.register("cache_hits", "Cache hits since start", cache_hits.clone());
        registry.register(
            "cache_misses",
            "Cache misses since start",
            cache_misses.clone(),
        );
        registry.register(
            "cache_hit_ratio",
            "hits / (hits + misses)",
            cache_hit_ratio.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages waiting per queue",
            queue_depth.clone(),
        );
        registry.register(
            "dead_letters",
            "Messages in the dead-letter queue",
            dead_letters.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox rows not yet confirmed by the broker",
            outbox_backlog.clone(),
        );
        Self {
            registry,
            requests,
            queries,
            cache_hits,
            cache_misses,
            cache_hit_ratio,
            queue_depth,
            dead_letters,
            outbox_backlog,
        }
    }

    /// Record one HTTP request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
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

    /// Render the Prometheus text exposition after setting the scrape-time gauges.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.cache_hits.set(snapshot.cache_hits as f64);
        self.cache_misses.set(snapshot.cache_misses as f64);
        let lookups = snapshot.cache_hits + snapshot.cache_misses;
        let ratio = if lookups == 0 {
            0.0
        } else {
            snapshot.cache_hits as f64 / lookups as f64
        };
        self.cache_hit_ratio.set(ratio);
        for (queue, depth) in &snapshot.queue_depths {
            self.queue_depth
                .get_or_create(&NameLabel {
                    name: queue.clone(),
                })
                .set(*depth as f64);
        }
        self.dead_letters.set(snapshot.dead_letters as f64);
        self.outbox_backlog.set(snapshot.outbox_backlog as f64);
        let mut out = String::new();
        // Encoding into a String cannot fail: fmt::Write for String is infallible.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_scrape_values() {
        let metrics = Metrics::new();
        metrics.observe_request("/api/users", "POST", 201, Duration::from_millis(3));
        metrics.observe_query("sql.create_user", Duration::from_micros(800));
        let text = metrics.render(&Snapshot {
            cache_hits: 3,
            cache_misses: 1,
            queue_depths: vec![("user_data_queue".into(), 7)],
            dead_letters: 2,
            outbox_backlog: 5,
        });
        assert!(text.contains(
            "mod8_http_request_duration_seconds_count{route=\"/api/users\",method=\"POST\",status=\"201\"} 1"
        ));
        assert!(text.contains("mod8_query_duration_seconds_count{name=\"sql.create_user\"} 1"));
        assert!(text.contains("mod8_cache_hit_ratio 0.75"));
        assert!(text.contains("mod8_queue_depth{name=\"user_data_queue\"} 7"));
        assert!(text.contains("mod8_dead_letters 2"));
        assert!(text.contains("mod8_outbox_backlog 5"));
    }
}
