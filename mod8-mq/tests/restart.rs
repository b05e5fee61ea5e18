//! A RabbitMQ restart (`rabbitmqctl stop_app` / `start_app`) in the middle of a stream of
//! confirmed publishes and consumption: nothing published is lost, and every publish either
//! waits and succeeds or returns an error the publisher retries.
//!
//! In a file of its own so it runs alone (cargo runs test binaries one after another): it
//! stops the broker every other suite uses. A guard starts it again even when the test
//! fails, and the test returns only once the broker answers again.
#![cfg(feature = "amqp")]
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use mod8_mq::domain::UserData;
use mod8_mq::testing::{run_case, test_topology_with_prefix, wait_until, MqFixture};
use mod8_mq::{handler_fn, AmqpBroker, AmqpOptions, DynBroker, Envelope, Outcome, Producer};
use mod8_testkit::rabbitmq::BrokerGuard;
use tokio::time::Instant;
use uuid::Uuid;

fn user(i: usize) -> UserData {
    UserData {
        username: format!("user{i}"),
        email: format!("user{i}@example.com"),
        registration_date: NaiveDate::from_ymd_opt(2026, 11, 22).expect("a valid date"),
    }
}

/// Messages published before the restart is triggered; the publisher keeps going through
/// the outage until at least [`MIN_MESSAGES`] are confirmed and the broker is back.
const MIN_MESSAGES: usize = 3_000;
/// Publishing stops here whatever happens (bounds the runtime).
const MAX_MESSAGES: usize = 6_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq broker restart on RabbitMQ")
    else {
        return;
    };
    let name = mod8_testkit::unique_name("mod8mq_restart");
    let topology = test_topology_with_prefix(&name);
    let options = AmqpOptions {
        connection_name: name.clone(),
        // Shorter than the outage (stop, 1 s, start: several seconds), so publishes both wait
        // through part of it and fail with errors the publisher retries.
        publish_timeout: Duration::from_secs(3),
        reconnect_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let broker: DynBroker = Arc::new(
        AmqpBroker::connect_with(&url, topology.declarations(), options)
            .await
            .expect("RabbitMQ is set but not reachable"),
    );
    let started = Instant::now();
    run_case(MqFixture::new(broker, topology), move |fx| {
        Box::pin(async move {
            let (broker, topology) = (fx.broker.clone(), fx.topology.clone());
            // Dropped when this case ends, also by a panic: before `run_case` cleans up.
            let guard = Arc::new(BrokerGuard::new());
            let seen: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
            let s = seen.clone();
            let consumer = fx
                .consumer(
                    topology.user_data_queue.clone(),
                    handler_fn(move |env: Envelope<UserData>| {
                        let s = s.clone();
                        async move {
                            s.lock().unwrap().insert(env.id);
                            Outcome::Ack
                        }
                    }),
                )
                .with_prefetch(100)
                .with_concurrency(8)
                .start()
                .await
                .unwrap();

            // The publisher: small confirmed batches at a steady pace, so it is mid-stream
            // when the broker goes away; every failed publish is retried until confirmed.
            let back = Arc::new(AtomicBool::new(false));
            let publisher = {
                let producer = Producer::new(broker.clone());
                let back = back.clone();
                let route = topology.user_data_route();
                tokio::spawn(async move {
                    let mut confirmed: Vec<Uuid> = Vec::new();
                    let (mut errors, mut slowest) = (0usize, Duration::ZERO);
                    let mut i = 0;
                    while i < MAX_MESSAGES && (i < MIN_MESSAGES || !back.load(Ordering::SeqCst)) {
                        let batch: Vec<_> = (i..i + 20).map(|n| Envelope::new(user(n))).collect();
                        i += batch.len();
                        let t = Instant::now();
                        let results = producer.send_batch(&batch, &route).await.unwrap();
                        slowest = slowest.max(t.elapsed());
                        for (envelope, result) in batch.iter().zip(results) {
                            let mut result = result;
                            while let Err(e) = result {
                                assert!(e.is_transient(), "a permanent publish error: {e}");
                                errors += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                result = producer.send(envelope, &route).await;
                            }
                            confirmed.push(envelope.id);
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    (confirmed, errors, slowest)
                })
            };

            wait_until("consumption progresses", || async {
                seen.lock().unwrap().len() >= 500
            })
            .await;
            let down = Instant::now();
            let g = guard.clone();
            tokio::task::spawn_blocking(move || {
                g.stop();
                std::thread::sleep(Duration::from_secs(1));
                g.start();
            })
            .await
            .unwrap();
            let outage = down.elapsed();
            back.store(true, Ordering::SeqCst);

            let (confirmed, errors, slowest) = publisher.await.unwrap();
            eprintln!(
                "restart test: broker away {outage:?}; {} messages confirmed, {errors} publish \
                 errors retried, slowest batch {slowest:?}",
                confirmed.len()
            );
            // The outage was noticed: publishes waited through it or failed and were retried.
            assert!(
                errors > 0 || slowest >= Duration::from_millis(500),
                "the publisher never noticed the restart; the test proved nothing"
            );
            let all: HashSet<Uuid> = confirmed.into_iter().collect();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !all.is_subset(&seen.lock().unwrap()) {
                assert!(Instant::now() < deadline, "consumption did not catch up");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(consumer.stats().resubscribed() >= 1);
            consumer.shutdown().await.unwrap();
            let missing = all.difference(&seen.lock().unwrap()).count();
            assert_eq!(
                missing, 0,
                "{missing} confirmed message ids were never processed"
            );
        })
    })
    .await;
    eprintln!("restart test: {:?} in all", started.elapsed());
}
