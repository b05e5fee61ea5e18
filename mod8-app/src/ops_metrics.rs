//! The operations families of `/metrics`: dependency up/down, connection pools, the cache
//! server's memory, consumers and publishes per queue and route, the outbox's oldest unsent
//! row, this process's resources and the build. Every family is declared on every scrape;
//! figures not known at the moment are left without samples.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::metrics::{gauge, optional_gauge, Snapshot};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadRouteLabels {
    server: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    exchange: String,
    routing_key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// A counter family with one sample per label set.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(L, u64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge family without labels whose value is a float, declared always.
fn optional_float_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<f64>,
) -> std::fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    match value {
        Some(value) => ConstGauge::new(value).encode(family),
        None => Ok(()),
    }
}

/// Encodes the operations families of `s`.
pub(crate) fn encode(encoder: &mut DescriptorEncoder, s: &Snapshot) -> std::fmt::Result {
    let up: Vec<_> = s
        .dependencies
        .iter()
        .map(|d| {
            (
                DependencyLabels {
                    dependency: d.backend.to_owned(),
                    role: d.role.as_str().to_owned(),
                },
                i64::from(d.up),
            )
        })
        .collect();
    gauge(
        encoder,
        "dependency_up",
        "Whether the dependency answered the last background collection within its timeout (1) or not (0)",
        &up,
    )?;
    optional_float_gauge(
        encoder,
        "metrics_collection_seconds",
        "How long the last background collection of the dependencies' figures took",
        s.collection_duration.map(|d| d.as_secs_f64()),
    )?;
    optional_float_gauge(
        encoder,
        "outbox_oldest_pending_age_seconds",
        "How long the oldest unsent outbox row has waited (0 when none waits)",
        s.outbox_oldest_pending_age.map(|d| d.as_secs_f64()),
    )?;
    optional_gauge(
        encoder,
        "redis_memory_used_bytes",
        "Memory the cache's Redis server uses (INFO memory used_memory)",
        s.cache_memory.map(|m| m.used_bytes),
    )?;
    optional_gauge(
        encoder,
        "redis_memory_max_bytes",
        "The cache's Redis server's memory limit (maxmemory; 0 when unlimited)",
        s.cache_memory.map(|m| m.max_bytes),
    )?;

    let pools = |value: fn(&mod8_orm::PoolUsage) -> u32| -> Vec<(PoolLabel, i64)> {
        s.pools
            .iter()
            .map(|p| {
                (
                    PoolLabel {
                        pool: p.pool.to_owned(),
                    },
                    i64::from(value(p)),
                )
            })
            .collect()
    };
    gauge(
        encoder,
        "sql_pool_connections",
        "Connections the SQL pool holds open, idle or in use",
        &pools(|p| p.size),
    )?;
    gauge(
        encoder,
        "sql_pool_idle_connections",
        "Open SQL pool connections waiting for a caller",
        &pools(|p| p.idle),
    )?;
    gauge(
        encoder,
        "sql_pool_max_connections",
        "The most connections the SQL pool opens",
        &pools(|p| p.max),
    )?;

    // Read routing (a replica router only): one sample per server and reason.
    let reads: Vec<(ReadRouteLabels, u64)> = s
        .read_routing
        .iter()
        .flat_map(|r| {
            [
                ("replica", "replica_current", r.replica_reads),
                ("primary", "read_your_writes", r.read_your_writes),
                ("primary", "replica_lagging", r.lagging),
                ("primary", "replica_down", r.replica_down),
                ("primary", "replica_failed", r.fallbacks),
            ]
        })
        .map(|(server, reason, n)| (ReadRouteLabels { server, reason }, n))
        .collect();
    counters(
        encoder,
        "sql_reads",
        "SQL read calls by the server that answered and why it was that one (replica routing only)",
        &reads,
    )?;
    {
        let family = encoder.encode_descriptor(
            "sql_routed_writes",
            "SQL write calls and units of work through the replica router (all on the primary)",
            None,
            MetricType::Counter,
        )?;
        if let Some(r) = &s.read_routing {
            ConstCounter::new(r.writes).encode(family)?;
        }
    }

    let per_queue =
        |value: fn(&crate::metrics::QueueConsumerFigures) -> u64| -> Vec<(QueueLabel, u64)> {
            s.consumers
                .iter()
                .map(|c| {
                    (
                        QueueLabel {
                            queue: c.queue.clone(),
                        },
                        value(c),
                    )
                })
                .collect()
        };
    gauge(
        encoder,
        "queue_unacked_messages",
        "Deliveries this process's consumer took from the queue and has not settled yet",
        &per_queue(|c| c.unacked),
    )?;
    for (name, help, value) in [
        (
            "queue_received",
            "Deliveries this process's consumer took from the queue (redeliveries count again)",
            (|c| c.received) as fn(&crate::metrics::QueueConsumerFigures) -> u64,
        ),
        (
            "queue_acked",
            "Messages this process's consumer handled and acknowledged",
            |c| c.acked,
        ),
        (
            "queue_retried",
            "Messages this process's consumer sent to a retry queue",
            |c| c.retried,
        ),
        (
            "queue_dead_lettered",
            "Messages this process's consumer sent to the dead-letter queue",
            |c| c.dead_lettered,
        ),
        (
            "queue_failed",
            "Deliveries this process's consumer could not pass on or settle (given back for redelivery)",
            |c| c.failed,
        ),
    ] {
        counters(encoder, name, help, &per_queue(value))?;
    }
    let published: Vec<_> = s
        .published
        .iter()
        .map(|p| {
            (
                RouteLabels {
                    exchange: p.exchange.clone(),
                    routing_key: p.routing_key.clone(),
                },
                p.messages,
            )
        })
        .collect();
    counters(
        encoder,
        "messages_published",
        "Messages this process published and the broker confirmed, per exchange and routing key",
        &published,
    )?;

    let p = &s.process;
    optional_gauge(
        encoder,
        "process_resident_memory_bytes",
        "Resident memory of this process",
        p.resident_memory_bytes,
    )?;
    optional_gauge(
        encoder,
        "process_virtual_memory_bytes",
        "Virtual memory of this process",
        p.virtual_memory_bytes,
    )?;
    {
        let family = encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time this process spent",
            None,
            MetricType::Counter,
        )?;
        if let Some(cpu) = p.cpu_seconds {
            ConstCounter::new(cpu).encode(family)?;
        }
    }
    optional_gauge(
        encoder,
        "process_open_fds",
        "File descriptors this process has open",
        p.open_fds,
    )?;
    optional_gauge(
        encoder,
        "process_max_fds",
        "The limit on this process's open file descriptors",
        p.max_fds,
    )?;
    optional_float_gauge(
        encoder,
        "process_start_time_seconds",
        "When this process started, in seconds since the Unix epoch",
        p.start_time_seconds,
    )?;
    optional_gauge(
        encoder,
        "process_threads",
        "OS threads of this process",
        p.threads,
    )?;
    gauge(
        encoder,
        "build_info",
        "The running build: always 1, with the version as a label",
        &[(
            VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            1i64,
        )],
    )
}
