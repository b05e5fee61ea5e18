//! Throughput and latency of confirmed publishing, consuming and the round trip, on the
//! in-process broker and (with `MOD8_AMQP_URL`) on RabbitMQ, each measured beside raw `lapin`
//! doing the same work on the same broker, durable queue and persistent 200-byte messages.
//!
//! `cargo bench -p mod8-mq --bench mq -- --warm-up-time 1 --measurement-time 3`

// A benchmark reports failure by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mod8_mq::domain::Topology;
use mod8_mq::{
    handler_fn, AmqpBroker, Broker, BrokerExt, Consumer, DynBroker, Envelope, MemoryBroker,
    Outcome, Payload, Publication, QueueSpec,
};
use serde::{Deserialize, Serialize};

const BATCH: usize = 1000;

/// A payload whose envelope is about 200 bytes of JSON.
#[derive(Clone, Serialize, Deserialize)]
struct Blob {
    data: String,
}

impl Payload for Blob {
    const KIND: &'static str = "blob";
}

fn blob_envelope() -> Envelope<Blob> {
    Envelope::new(Blob {
        data: "x".repeat(40),
    })
}

fn body() -> Vec<u8> {
    let bytes = blob_envelope().to_bytes().unwrap();
    assert!((180..=240).contains(&bytes.len()), "{} bytes", bytes.len());
    bytes
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Rabbit {
    url: String,
    broker: DynBroker,
    /// What `broker` declared (deleted at the end).
    topology: Topology,
    raw: lapin::Channel,
    _raw_conn: Connection,
}

fn brokers(rt: &tokio::runtime::Runtime, prefix: &str) -> (DynBroker, Option<Rabbit>) {
    let topology = Topology::with_prefix(prefix);
    // Unbounded queues: the publish benches fill a queue nobody consumes, far past the
    // in-process broker's default bound (which would refuse the publish, as it should).
    let unbounded = mod8_mq::memory::MemoryQueueLimits {
        max_length: u32::MAX,
        max_bytes: usize::MAX,
    };
    let memory: DynBroker =
        Arc::new(MemoryBroker::with_limits(topology.declarations(), unbounded).unwrap());
    let rabbit = std::env::var("MOD8_AMQP_URL").ok().map(|url| {
        rt.block_on(async {
            let broker: DynBroker = Arc::new(
                AmqpBroker::connect(&url, topology.declarations())
                    .await
                    .unwrap(),
            );
            let conn = Connection::connect(&url, ConnectionProperties::default())
                .await
                .unwrap();
            let raw = conn.create_channel().await.unwrap();
            raw.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            Rabbit {
                url,
                broker,
                topology: topology.clone(),
                raw,
                _raw_conn: conn,
            }
        })
    });
    if rabbit.is_none() {
        eprintln!("MOD8_AMQP_URL not set: RabbitMQ benchmarks skipped");
    }
    (memory, rabbit)
}

async fn fresh_queue(broker: &DynBroker, name: &str) {
    broker.delete_queue(name).await.unwrap();
    broker.declare_queue(&QueueSpec::named(name)).await.unwrap();
}

async fn raw_publish(channel: &lapin::Channel, queue: &str, body: &[u8]) {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let (memory, rabbit) = brokers(&rt, &format!("mod8bench_{}", std::process::id()));
    let queue = format!("mod8bench_{}_publish", std::process::id());
    let body = body();

    let mut group = c.benchmark_group("confirmed_publish_sequential");
    group.throughput(Throughput::Elements(1));
    rt.block_on(fresh_queue(&memory, &queue));
    group.bench_function("mod8_memory", |b| {
        b.to_async(&rt).iter(|| {
            let (m, q, body) = (memory.clone(), queue.clone(), body.clone());
            async move { m.publish(Publication::new("", q, body)).await.unwrap() }
        })
    });
    rt.block_on(memory.delete_queue(&queue)).unwrap();
    if let Some(r) = &rabbit {
        rt.block_on(fresh_queue(&r.broker, &queue));
        group.bench_function("mod8_rabbitmq", |b| {
            b.to_async(&rt).iter(|| {
                let (m, q, body) = (r.broker.clone(), queue.clone(), body.clone());
                async move { m.publish(Publication::new("", q, body)).await.unwrap() }
            })
        });
        rt.block_on(fresh_queue(&r.broker, &queue));
        group.bench_function("lapin_rabbitmq_reference", |b| {
            b.to_async(&rt).iter(|| raw_publish(&r.raw, &queue, &body))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("confirmed_publish_pipelined");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    if let Some(r) = &rabbit {
        rt.block_on(fresh_queue(&r.broker, &queue));
        group.bench_function("mod8_rabbitmq_batch_1000", |b| {
            b.to_async(&rt).iter(|| {
                let (m, q, body) = (r.broker.clone(), queue.clone(), body.clone());
                async move {
                    let batch = (0..BATCH)
                        .map(|_| Publication::new("", q.clone(), body.clone()))
                        .collect();
                    for result in m.publish_batch(batch).await {
                        result.unwrap();
                    }
                }
            })
        });
        rt.block_on(fresh_queue(&r.broker, &queue));
        group.bench_function("lapin_rabbitmq_reference_batch_1000", |b| {
            b.to_async(&rt).iter(|| async {
                let mut confirms = Vec::with_capacity(BATCH);
                for _ in 0..BATCH {
                    confirms.push(
                        r.raw
                            .basic_publish(
                                "".into(),
                                queue.as_str().into(),
                                BasicPublishOptions::default(),
                                &body,
                                BasicProperties::default().with_delivery_mode(2),
                            )
                            .await
                            .unwrap(),
                    );
                }
                for confirm in futures::future::join_all(confirms).await {
                    assert!(confirm.unwrap().is_ack());
                }
            })
        });
        rt.block_on(r.broker.delete_queue(&queue)).unwrap();
    }
    group.finish();
    if let Some(r) = rabbit {
        rt.block_on(r.broker.delete_all(&r.topology.teardown(0)))
            .unwrap();
    }
}

/// Fills `queue` with `n` envelopes (not timed).
async fn fill(broker: &DynBroker, queue: &str, n: u64) {
    let body = body();
    let mut left = n as usize;
    while left > 0 {
        let chunk = left.min(BATCH);
        let batch = (0..chunk)
            .map(|_| Publication::new("", queue, body.clone()))
            .collect();
        for result in broker.publish_batch(batch).await {
            result.unwrap();
        }
        left -= chunk;
    }
}

async fn consume_with_mod8(broker: &DynBroker, queue: &str, n: u64) -> Duration {
    fill(broker, queue, n).await;
    let done = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let (d, w) = (done.clone(), notify.clone());
    let start = Instant::now();
    let consumer = Consumer::new(
        broker.clone(),
        queue,
        handler_fn(move |_m: Envelope<Blob>| {
            let (d, w) = (d.clone(), w.clone());
            async move {
                if d.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    w.notify_one();
                }
                Outcome::Ack
            }
        }),
    )
    .with_prefetch(500)
    .with_concurrency(64)
    .start()
    .await
    .unwrap();
    notify.notified().await;
    // Acks are sent once handlers return; shutdown waits for them.
    consumer.shutdown().await.unwrap();
    start.elapsed()
}

async fn consume_with_lapin(url: &str, broker: &DynBroker, queue: &str, n: u64) -> Duration {
    fill(broker, queue, n).await;
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_qos(500, BasicQosOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for _ in 0..n {
        let delivery = consumer.next().await.unwrap().unwrap();
        // Parse like mod8 does, so the reference does the same work.
        let _ = Envelope::<Blob>::from_bytes(&delivery.data).unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let elapsed = start.elapsed();
    conn.close(200, "done".into()).await.unwrap();
    elapsed
}

fn consume(c: &mut Criterion) {
    let rt = runtime();
    let (memory, rabbit) = brokers(&rt, &format!("mod8bench_{}_c", std::process::id()));
    let queue = format!("mod8bench_{}_consume", std::process::id());
    let mut group = c.benchmark_group("consume_and_ack");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    rt.block_on(fresh_queue(&memory, &queue));
    group.bench_function("mod8_memory", |b| {
        b.to_async(&rt)
            .iter_custom(|n| consume_with_mod8(&memory, &queue, n))
    });
    if let Some(r) = &rabbit {
        rt.block_on(fresh_queue(&r.broker, &queue));
        group.bench_function("mod8_rabbitmq", |b| {
            b.to_async(&rt)
                .iter_custom(|n| consume_with_mod8(&r.broker, &queue, n))
        });
        group.bench_function("lapin_rabbitmq_reference", |b| {
            b.to_async(&rt)
                .iter_custom(|n| consume_with_lapin(&r.url, &r.broker, &queue, n))
        });
        rt.block_on(r.broker.delete_queue(&queue)).unwrap();
        rt.block_on(r.broker.delete_all(&r.topology.teardown(0)))
            .unwrap();
    }
    group.finish();
}

fn percentiles(label: &str, samples: &Mutex<Vec<Duration>>) {
    let mut s = samples.lock().unwrap().clone();
    if s.is_empty() {
        return;
    }
    s.sort();
    let at = |p: f64| s[((s.len() as f64 * p) as usize).min(s.len() - 1)];
    println!(
        "{label}: {} round trips, p50 {:?}, p99 {:?}",
        s.len(),
        at(0.50),
        at(0.99)
    );
}

fn latency(c: &mut Criterion) {
    let rt = runtime();
    let Some(r) = brokers(&rt, &format!("mod8bench_{}_l", std::process::id())).1 else {
        return;
    };
    let queue = format!("mod8bench_{}_latency", std::process::id());
    rt.block_on(fresh_queue(&r.broker, &queue));
    let mut group = c.benchmark_group("end_to_end_latency");

    // mod8: confirmed publish, then the consumer's handler receives it (and acks).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let consumer = rt
        .block_on(
            Consumer::new(
                r.broker.clone(),
                queue.clone(),
                handler_fn(move |m: Envelope<Blob>| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(m.id);
                        Outcome::Ack
                    }
                }),
            )
            .with_prefetch(10)
            .start(),
        )
        .unwrap();
    let samples = Arc::new(Mutex::new(Vec::new()));
    group.bench_function("mod8_rabbitmq", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (broker, queue, rx, samples) =
                (r.broker.clone(), queue.clone(), rx.clone(), samples.clone());
            async move {
                let mut rx = rx.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let env = blob_envelope();
                    let p = Publication::new("", queue.clone(), env.to_bytes().unwrap())
                        .with_message_id(env.id.to_string());
                    let start = Instant::now();
                    broker.publish(p).await.unwrap();
                    let got = rx.recv().await.unwrap();
                    let took = start.elapsed();
                    assert_eq!(got, env.id);
                    total += took;
                    samples.lock().unwrap().push(took);
                }
                total
            }
        })
    });
    rt.block_on(consumer.shutdown()).unwrap();

    // Reference: the same round trip with raw lapin.
    let raw_samples = Arc::new(Mutex::new(Vec::new()));
    let conn = rt
        .block_on(Connection::connect(&r.url, ConnectionProperties::default()))
        .unwrap();
    let channel = rt.block_on(conn.create_channel()).unwrap();
    let consumer = Arc::new(tokio::sync::Mutex::new(
        rt.block_on(channel.basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .unwrap(),
    ));
    let body = body();
    group.bench_function("lapin_rabbitmq_reference", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let (consumer, samples, raw, queue, body) = (
                consumer.clone(),
                raw_samples.clone(),
                r.raw.clone(),
                queue.clone(),
                body.clone(),
            );
            async move {
                let mut consumer = consumer.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let start = Instant::now();
                    raw_publish(&raw, &queue, &body).await;
                    let d = consumer.next().await.unwrap().unwrap();
                    d.ack(BasicAckOptions::default()).await.unwrap();
                    let took = start.elapsed();
                    total += took;
                    samples.lock().unwrap().push(took);
                }
                total
            }
        })
    });
    group.finish();
    percentiles("end_to_end_latency/mod8_rabbitmq", &samples);
    percentiles("end_to_end_latency/lapin_rabbitmq_reference", &raw_samples);
    drop(consumer);
    rt.block_on(conn.close(200, "done".into())).unwrap();
    rt.block_on(r.broker.delete_queue(&queue)).unwrap();
    rt.block_on(r.broker.delete_all(&r.topology.teardown(0)))
        .unwrap();
}

criterion_group!(benches, publish, consume, latency);
criterion_main!(benches);
