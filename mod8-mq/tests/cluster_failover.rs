//! A RabbitMQ cluster node failing mid-stream (`MOD8_AMQP_CLUSTER_URLS`, the three-node
//! cluster `scripts/services.sh up` starts): 10,000 messages published with publisher confirms
//! to a quorum queue while a consumer consumes; the node the clients are connected to is
//! stopped part-way. Every confirmed message must be consumed at least once (the consumer is
//! idempotent by id: duplicates are allowed, counted and reported), and the publisher and
//! the consumer must carry on on a surviving node.
//!
//! The node is stopped and started through `scripts/services.sh rabbitmq-cluster-node`
//! (needs root next to the cluster, as CI has); a guard starts it again even when the test
//! fails. The single broker on 5672 is not touched, so this file may run beside the others.
#![cfg(feature = "amqp")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use mod8_mq::domain::UserData;
use mod8_mq::{
    handler_fn, AmqpBroker, AmqpOptions, Broker, Consumer, Declarations, DynBroker, Envelope,
    Outcome, Producer, QueueSpec, Route, AMQP_CLUSTER_URLS_VAR,
};
use tokio::time::Instant;
use uuid::Uuid;

/// Messages published in all.
const MESSAGES: usize = 10_000;
/// Consumed before the node is stopped (so the stop is mid-flow).
const CONSUMED_BEFORE_STOP: usize = 2_000;
/// Publish batch size (their confirms are in flight together).
const BATCH: usize = 50;
/// The bound on the whole scenario (its waits are bounded one by one within it).
const SCENARIO_LIMIT: Duration = Duration::from_secs(720);
/// The bound on each cleanup step.
const CLEANUP_LIMIT: Duration = Duration::from_secs(60);

fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh")
}

/// Runs `services.sh rabbitmq-cluster-node <action> <node>`; whether it succeeded.
fn cluster_node(action: &str, node: u16) -> bool {
    let status = Command::new(services_script())
        .args(["rabbitmq-cluster-node", action, &node.to_string()])
        .status();
    match status {
        Ok(s) if s.success() => true,
        other => {
            eprintln!("services.sh rabbitmq-cluster-node {action} {node}: {other:?}");
            false
        }
    }
}

/// Starts the node again when dropped while stopped (a failed assertion unwinding, say).
struct NodeGuard {
    node: u16,
    stopped: AtomicBool,
}

impl NodeGuard {
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        assert!(
            cluster_node("stop", self.node),
            "could not stop cluster node {}",
            self.node
        );
    }

    /// Starts the node and waits until it serves again; whether it did.
    fn start(&self) -> bool {
        let ok = cluster_node("start", self.node);
        if ok {
            self.stopped.store(false, Ordering::SeqCst);
        }
        ok
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if self.stopped.load(Ordering::SeqCst) {
            eprintln!("starting RabbitMQ cluster node {} again (guard)", self.node);
            if !self.start() && !std::thread::panicking() {
                panic!("could not start RabbitMQ cluster node {} again", self.node);
            }
        }
    }
}

/// The cluster node number of a URL on the script's ports (5681 → 1, …).
fn node_of(url: &str) -> u16 {
    let port: u16 = url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"));
    assert!(
        (5681..=5683).contains(&port),
        "{url} is not one of services.sh's cluster nodes (ports 5681-5683)"
    );
    port - 5680
}

fn user(i: usize) -> UserData {
    UserData {
        username: format!("user{i}"),
        email: format!("user{i}@example.com"),
        registration_date: NaiveDate::from_ymd_opt(2026, 11, 22).expect("a valid date"),
    }
}

/// What the consumer saw: times each message id was handled.
type Seen = Arc<Mutex<HashMap<Uuid, u32>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_stopped_mid_stream_loses_no_confirmed_message() {
    let Some(urls) =
        mod8_testkit::service_url(AMQP_CLUSTER_URLS_VAR, "mq cluster failover on RabbitMQ")
    else {
        return;
    };
    // `RUST_LOG=mod8_mq=info` shows the reconnects and which node they reached.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let started = Instant::now();
    let name = mod8_testkit::unique_name("mod8mq_failover");
    let queue = format!("{name}.work");
    let declarations = Declarations::new().with_queue(QueueSpec::named(&queue).quorum());
    let options = AmqpOptions {
        connection_name: name.clone(),
        publish_timeout: Duration::from_secs(60),
        reconnect_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let amqp = Arc::new(
        AmqpBroker::connect_with(&urls, declarations, options)
            .await
            .expect("MOD8_AMQP_CLUSTER_URLS is set but no cluster node is reachable"),
    );
    let first_url = amqp.connected_url().expect("connected");
    let guard = Arc::new(NodeGuard {
        node: node_of(&first_url),
        stopped: AtomicBool::new(false),
    });
    let broker: DynBroker = amqp.clone();

    let body = {
        let (amqp, broker, queue, guard) =
            (amqp.clone(), broker.clone(), queue.clone(), guard.clone());
        tokio::spawn(async move { scenario(amqp, broker, queue, guard).await })
    };
    // Every wait inside has its own bound; this one covers any await without one, so a
    // stalled client fails the test instead of holding the run.
    let abort = body.abort_handle();
    let result = tokio::time::timeout(SCENARIO_LIMIT, body).await;
    if result.is_err() {
        abort.abort();
    }
    // The node again, then the queue gone, whatever happened.
    let restarted = tokio::task::spawn_blocking({
        let guard = guard.clone();
        move || !guard.stopped.load(Ordering::SeqCst) || guard.start()
    })
    .await
    .unwrap();
    let deleted = tokio::time::timeout(CLEANUP_LIMIT, broker.delete_queue(&queue)).await;
    let _ = tokio::time::timeout(CLEANUP_LIMIT, broker.close()).await;
    match result {
        Err(_) => panic!("the scenario did not finish within {SCENARIO_LIMIT:?}"),
        Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        Ok(Ok(())) => {}
    }
    assert!(restarted, "cluster node {} did not start again", guard.node);
    deleted
        .unwrap_or_else(|_| panic!("deleting the queue took over {CLEANUP_LIMIT:?}"))
        .unwrap();
    eprintln!("cluster failover test: {:?} in all", started.elapsed());
}

async fn scenario(amqp: Arc<AmqpBroker>, broker: DynBroker, queue: String, guard: Arc<NodeGuard>) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let consumer = Consumer::new(
        broker.clone(),
        queue.clone(),
        handler_fn(move |env: Envelope<UserData>| {
            let s = s.clone();
            async move {
                *s.lock().unwrap().entry(env.id).or_default() += 1;
                Outcome::Ack
            }
        }),
    )
    .with_prefetch(200)
    .with_concurrency(8)
    .start()
    .await
    .unwrap();

    // The publisher: confirmed batches; a failed publish is retried until confirmed (a
    // transient error only), so every id it returns was confirmed by the broker.
    let published = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let producer = Producer::new(broker.clone());
        let route = Route::new("", queue.clone());
        let published = published.clone();
        tokio::spawn(async move {
            let mut confirmed: Vec<Uuid> = Vec::with_capacity(MESSAGES);
            let mut retried = 0usize;
            for start in (0..MESSAGES).step_by(BATCH) {
                let batch: Vec<_> = (start..(start + BATCH).min(MESSAGES))
                    .map(|n| Envelope::new(user(n)))
                    .collect();
                let results = producer.send_batch(&batch, &route).await.unwrap();
                for (envelope, result) in batch.iter().zip(results) {
                    let mut result = result;
                    while let Err(e) = result {
                        assert!(e.is_transient(), "a permanent publish error: {e}");
                        retried += 1;
                        assert!(retried < 1_000, "publishes keep failing: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        result = producer.send(envelope, &route).await;
                    }
                    confirmed.push(envelope.id);
                }
                published.fetch_add(batch.len(), Ordering::SeqCst);
                // Paced, so the stream is still flowing when the node stops.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (confirmed, retried)
        })
    };

    wait_for(
        "consumption to pass the stop point",
        Duration::from_secs(120),
        || seen.lock().unwrap().len() >= CONSUMED_BEFORE_STOP,
    )
    .await;
    let stopped_node = guard.node;
    assert_eq!(
        node_of(&amqp.connected_url().expect("connected before the stop")),
        stopped_node,
        "the clients moved before the node was stopped"
    );
    let (published_at_stop, consumed_at_stop) =
        (published.load(Ordering::SeqCst), seen.lock().unwrap().len());
    let down = Instant::now();
    let g = guard.clone();
    tokio::task::spawn_blocking(move || g.stop()).await.unwrap();
    eprintln!(
        "cluster failover test: node {stopped_node} stopped after {published_at_stop} published, \
         {consumed_at_stop} consumed (stop took {:?})",
        down.elapsed()
    );

    // Progress lines while the stream recovers (not assertions).
    let progress = {
        let (published, seen) = (published.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                eprintln!(
                    "cluster failover test: {} published, {} consumed",
                    published.load(Ordering::SeqCst),
                    seen.lock().unwrap().len()
                );
            }
        })
    };
    let publishing = tokio::time::timeout(Duration::from_secs(300), publisher).await;
    progress.abort();
    let (confirmed, retried) = publishing
        .unwrap_or_else(|_| {
            panic!(
                "the publisher did not finish within 300 s of the stop ({} of {MESSAGES} \
                 confirmed)",
                published.load(Ordering::SeqCst)
            )
        })
        .unwrap();
    assert_eq!(confirmed.len(), MESSAGES);
    let published_after = MESSAGES - published_at_stop;
    assert!(
        published_after > 0,
        "every message was published before the node stopped; the test proved nothing"
    );
    let wanted: Vec<Uuid> = confirmed.clone();
    wait_for(
        "every confirmed message to be consumed",
        Duration::from_secs(180),
        || {
            let seen = seen.lock().unwrap();
            wanted.iter().all(|id| seen.contains_key(id))
        },
    )
    .await;
    // Both now on a surviving node.
    let now = amqp.connected_url().expect("connected to a surviving node");
    assert_ne!(
        node_of(&now),
        stopped_node,
        "still connected to the stopped node"
    );
    assert!(
        consumer.stats().resubscribed() >= 1,
        "the consumer never resubscribed"
    );
    consumer.shutdown().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let missing = confirmed.iter().filter(|id| !seen.contains_key(id)).count();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    let unknown = seen.len() - confirmed.iter().filter(|id| seen.contains_key(id)).count();
    eprintln!(
        "cluster failover test: {} confirmed, {} distinct consumed, {duplicates} duplicate \
         deliveries, {retried} publishes retried; moved from node {stopped_node} to {}",
        confirmed.len(),
        seen.len(),
        node_of(&now)
    );
    assert_eq!(
        missing, 0,
        "{missing} confirmed messages were never consumed"
    );
    // A publish that failed and was retried may have reached the queue both times, which the
    // duplicate count covers; a message nobody published would be a bug of the test.
    assert_eq!(
        unknown, 0,
        "consumed {unknown} ids that were never published"
    );
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after `limit` (a bound on
/// waiting, not an assertion about speed).
async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
