//! The conformance suite and the fault tests on a real RabbitMQ (`MOD8_AMQP_URL`).
#![cfg(feature = "amqp")]
// The proxy helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use futures::StreamExt;
use mod8_mq::domain::{PublishOptions, UserData};
use mod8_mq::testing::{run_case, test_topology_with_prefix, wait_until, MqFixture};
use mod8_mq::{
    handler_fn, AmqpBroker, AmqpOptions, Broker, BrokerExt, DynBroker, Envelope, Error, Outcome,
    Producer, QueueSpec, Route,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

async fn rabbitmq(suite: &str) -> Option<MqFixture> {
    let url = mod8_testkit::service_url(mod8_testkit::AMQP, suite)?;
    let topology = test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq"));
    let broker = AmqpBroker::connect(&url, topology.declarations())
        .await
        .expect("MOD8_AMQP_URL is set but RabbitMQ is not reachable");
    Some(MqFixture::new(Arc::new(broker), topology))
}

mod8_mq::conformance_tests!(rabbitmq("mq conformance on RabbitMQ"));

/// Closing one broker handle (its own connection) ends the consumer running on it with
/// `Error::Closed`; a second connection on the same topology tears down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_consumer_ends_when_its_broker_is_closed() {
    let Some(fixture) = rabbitmq("mq closed broker on RabbitMQ").await else {
        return;
    };
    let url = std::env::var(mod8_testkit::AMQP).unwrap();
    let closing: DynBroker = Arc::new(
        AmqpBroker::connect(&url, fixture.topology.declarations())
            .await
            .unwrap(),
    );
    run_case(fixture, move |fx| {
        Box::pin(async move {
            mod8_mq::testing::case_consumer_ends_when_its_broker_is_closed(&fx, closing).await
        })
    })
    .await;
}

/// What `rabbitmqctl` prints for `args` (the tests that use it run as root next to the
/// broker).
fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (this test needs it, as root, next to the broker)");
    assert!(out.status.success(), "rabbitmqctl failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pids of the RabbitMQ connections whose client name is `name`.
fn connections_named(name: &str) -> Vec<String> {
    rabbitmqctl(&[
        "list_connections",
        "pid",
        "client_properties",
        "--quiet",
        "--no-table-headers",
    ])
    .lines()
    .filter(|l| l.contains(name))
    .filter_map(|l| l.split('\t').next().map(str::to_owned))
    .collect()
}

/// A broker whose connection is named `name` (so `rabbitmqctl` can find it), with `topology`.
async fn named_broker(
    url: &str,
    name: &str,
    topology: &mod8_mq::domain::Topology,
    options: AmqpOptions,
) -> DynBroker {
    let options = AmqpOptions {
        connection_name: name.to_owned(),
        ..options
    };
    Arc::new(
        AmqpBroker::connect_with(url, topology.declarations(), options)
            .await
            .expect("RabbitMQ is set but not reachable"),
    )
}

/// Force-closes every RabbitMQ connection whose client name is `name`; returns how many.
fn close_connections_named(name: &str) -> usize {
    let pids = connections_named(name);
    for pid in &pids {
        rabbitmqctl(&["close_connection", pid, "mod8 fault test"]);
    }
    pids.len()
}

fn user(i: usize) -> UserData {
    UserData {
        username: format!("user{i}"),
        email: format!("user{i}@example.com"),
        registration_date: NaiveDate::from_ymd_opt(2026, 11, 22).expect("a valid date"),
    }
}

/// 10,000 messages published and consumed while the connections are force-closed twice:
/// every publish succeeds (after reconnecting) and every message id is processed at least
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_connections_closed_mid_stream_lose_nothing() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq fault test on RabbitMQ")
    else {
        return;
    };
    let name = mod8_testkit::unique_name("mod8mq_fault");
    let topology = test_topology_with_prefix(&name);
    let options = AmqpOptions {
        publish_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let broker = named_broker(&url, &name, &topology, options).await;
    run_case(MqFixture::new(broker, topology), move |fx| {
        Box::pin(async move {
            let (broker, topology) = (fx.broker.clone(), fx.topology.clone());
            let seen: Arc<Mutex<HashSet<uuid::Uuid>>> = Arc::default();
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
                .with_prefetch(200)
                .with_concurrency(16)
                .start()
                .await
                .unwrap();

            let envelopes: Vec<_> = (0..10_000).map(|i| Envelope::new(user(i))).collect();
            let all: HashSet<_> = envelopes.iter().map(|e| e.id).collect();
            let producer = Producer::new(broker.clone());
            let published = Arc::new(AtomicUsize::new(0));
            let publisher = {
                let producer = producer.clone();
                let envelopes = envelopes.clone();
                let published = published.clone();
                let route = topology.user_data_route();
                tokio::spawn(async move {
                    for chunk in envelopes.chunks(250) {
                        for result in producer.send_batch(chunk, &route).await.unwrap() {
                            result.expect("a publish during the outage waits and succeeds");
                            published.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            };

            let mut kills = 0;
            for threshold in [2_000, 6_000] {
                // Says which side stalled if progress stops: the publisher (confirms) or the
                // consumer (resubscribing).
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while seen.lock().unwrap().len() < threshold {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "consumption stalled: {} confirmed, {} consumed, {} resubscribes",
                        published.load(Ordering::Relaxed),
                        seen.lock().unwrap().len(),
                        consumer.stats().resubscribed()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                kills += close_connections_named(&name);
            }
            assert!(
                kills >= 1,
                "no connection was closed; the test proved nothing"
            );
            publisher.await.unwrap();
            wait_until("every message processed", || async {
                seen.lock().unwrap().len() >= all.len()
            })
            .await;
            assert!(consumer.stats().resubscribed() >= 1);
            consumer.shutdown().await.unwrap();
            let seen = seen.lock().unwrap().clone();
            let missing = all.difference(&seen).count();
            assert_eq!(missing, 0, "{missing} message ids were never processed");
        })
    })
    .await;
}

/// A conflicting declaration on a real broker does not close the connection other work
/// uses: a consumer started before keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_leaves_running_consumer_alone() {
    let Some(fixture) = rabbitmq("mq conflict isolation on RabbitMQ").await else {
        return;
    };
    run_case(fixture, |fx| {
        Box::pin(async move {
            let (broker, topology) = (fx.broker.clone(), fx.topology.clone());
            let seen = Arc::new(Mutex::new(0usize));
            let s = seen.clone();
            let consumer = fx
                .consumer(
                    topology.user_data_queue.clone(),
                    handler_fn(move |_env: Envelope<UserData>| {
                        let s = s.clone();
                        async move {
                            *s.lock().unwrap() += 1;
                            Outcome::Ack
                        }
                    }),
                )
                .start()
                .await
                .unwrap();
            let pipeline = fx.pipeline();
            pipeline
                .publish_user_data(user(1), PublishOptions::new())
                .await
                .unwrap();
            wait_until("first", || async { *seen.lock().unwrap() == 1 }).await;
            let err = broker
                .declare_queue(&mod8_mq::QueueSpec::named(topology.user_data_queue.clone()))
                .await
                .unwrap_err();
            assert!(matches!(err, mod8_mq::Error::Conflict { .. }), "{err:?}");
            pipeline
                .publish_user_data(user(2), PublishOptions::new())
                .await
                .unwrap();
            wait_until("second", || async { *seen.lock().unwrap() == 2 }).await;
            assert_eq!(consumer.stats().resubscribed(), 0);
            consumer.shutdown().await.unwrap();
        })
    })
    .await;
}

/// A publish to a missing exchange is `NotFound` (RabbitMQ closes the publish channel for
/// it), and the broker opens a new publish channel for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_errors_are_typed_and_do_not_stick() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq publish errors on RabbitMQ")
    else {
        return;
    };
    let topology = test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq_err"));

    let broker: DynBroker = Arc::new(
        AmqpBroker::connect(&url, topology.declarations())
            .await
            .unwrap(),
    );
    run_case(MqFixture::new(broker, topology.clone()), move |fx| {
        Box::pin(async move {
            let broker = fx.broker.clone();
            let missing = mod8_testkit::unique_name("mod8mq_missing_exchange");
            let err = broker
                .publish(mod8_mq::Publication::new(
                missing.clone(),
                "key",
                b"{}".to_vec(),
            ))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, mod8_mq::Error::NotFound { entity: "exchange", key } if *key == missing),
                "{err:?}"
            );
            fx.pipeline()
                .publish_user_data(user(2), PublishOptions::new())
                .await
                .unwrap();
            let mut names = Vec::new();
            // Stop at the later publish (bounded by `receive`'s wait).
            while let Some(d) = broker
                .receive(&topology.user_data_queue, Duration::from_secs(5))
                .await
                .unwrap()
            {
                names.push(
                    Envelope::<UserData>::from_bytes(&d.body)
                        .unwrap()
                        .payload
                        .username,
                );
                d.ack().await.unwrap();
                if names.iter().any(|n| n == "user2") {
                    break;
                }
            }
            assert!(names.iter().any(|n| n == "user2"), "{names:?}");
        })
    })
    .await;
}

/// A loopback TCP proxy to RabbitMQ that can hold back everything the broker sends (the
/// client's frames still reach the broker) and cut every connection.
struct SilenceableProxy {
    port: u16,
    silent: watch::Sender<bool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// While set, new connections are accepted and held open but never answered.
    mute_new: Arc<std::sync::atomic::AtomicBool>,
}

impl SilenceableProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (silent, _) = watch::channel(false);
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (silent2, links2) = (silent.clone(), links.clone());
        let mute_new = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mute_new2 = mute_new.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((client, _)) = listener.accept().await {
                if mute_new2.load(std::sync::atomic::Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let mut gate = silent2.subscribe();
                let link = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_rx, mut client_tx) = client.into_split();
                    let (mut server_rx, mut server_tx) = server.into_split();
                    let upstream = tokio::io::copy(&mut client_rx, &mut server_tx);
                    let downstream = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = server_rx.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<(), std::io::Error>(());
                            }
                            // Hold the bytes (already read) while silenced.
                            if gate.wait_for(|silent| !*silent).await.is_err() {
                                return Ok(());
                            }
                            client_tx.write_all(&buf[..n]).await?;
                        }
                    };
                    // Either direction ending ends the link (both sockets close).
                    tokio::select! {
                        _ = upstream => {}
                        _ = downstream => {}
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        SilenceableProxy {
            port,
            silent,
            links,
            mute_new,
        }
    }

    /// Cuts every open connection and, until [`SilenceableProxy::answer_new`], accepts new
    /// ones without ever answering (a host that takes TCP but does not speak AMQP).
    fn cut_and_mute_new(&self) {
        self.mute_new
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
    }

    /// New connections reach the broker again.
    fn answer_new(&self) {
        self.mute_new
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops forwarding broker → client bytes (held, not lost).
    fn silence(&self) {
        self.silent.send_replace(true);
    }

    /// Forwards again, held bytes first.
    fn resume(&self) {
        self.silent.send_replace(false);
    }

    /// Closes every open connection (new ones are accepted, not silenced).
    fn cut(&self) {
        self.resume();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// `url` with its host:port replaced by this proxy's.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let userinfo = authority.rsplit_once('@').map_or("", |(u, _)| u);
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("{scheme}://{userinfo}{at}127.0.0.1:{}/{path}", self.port)
    }
}

fn target_of(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.replace("localhost", "127.0.0.1").parse().unwrap()
}

/// A broker that takes the message but never confirms it: the publish is a
/// `ConfirmTimeout` after the publish timeout (not sooner, not much later), transient, and
/// not a loss (the message is queued). When the broker speaks again the late confirm is
/// ignored and the same connection carries on; when the silent connection is cut instead,
/// the next publish reconnects and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_broker_is_a_confirm_timeout() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq confirm timeout on RabbitMQ")
    else {
        return;
    };
    let proxy = SilenceableProxy::start(target_of(&url)).await;
    let timeout = Duration::from_millis(1500);
    let options = AmqpOptions {
        publish_timeout: timeout,
        ..Default::default()
    };
    let fixture = through_proxy(&proxy, &url, "mod8mq_silent", options).await;
    run_case(fixture, move |fx| {
        Box::pin(async move {
            let broker = fx.broker.clone();
            let queue = fx.topology.user_data_queue.clone();
            let pipeline = fx.pipeline();
            pipeline
                .publish_user_data(user(1), PublishOptions::new())
                .await
                .unwrap();

            proxy.silence();
            let started = tokio::time::Instant::now();
            let err = pipeline
                .publish_user_data(user(2), PublishOptions::new())
                .await
                .unwrap_err();
            let waited = started.elapsed();
            assert!(
                matches!(err, Error::ConfirmTimeout { timeout: t } if t == timeout),
                "{err:?}"
            );
            assert!(err.is_transient());
            assert!(
                waited >= timeout && waited < timeout + Duration::from_secs(5),
                "gave up after {waited:?}"
            );

            proxy.resume();
            pipeline
                .publish_user_data(user(3), PublishOptions::new())
                .await
                .unwrap();
            // The unconfirmed message reached the broker all the same: a timeout means
            // "unknown", never "dropped".
            wait_until("3 messages queued", || async {
                broker.queue_depth(&queue).await.ok() == Some(3)
            })
            .await;

            proxy.silence();
            let err = pipeline
                .publish_user_data(user(4), PublishOptions::new())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::ConfirmTimeout { .. }), "{err:?}");
            proxy.cut();
            pipeline
                .publish_user_data(user(5), PublishOptions::new())
                .await
                .unwrap();
            wait_until("5 messages queued", || async {
                broker.queue_depth(&queue).await.ok() == Some(5)
            })
            .await;
        })
    })
    .await;
}

/// A broker (with its own topology) connected through `proxy`.
async fn through_proxy(
    proxy: &SilenceableProxy,
    url: &str,
    prefix: &str,
    options: AmqpOptions,
) -> MqFixture {
    let topology = test_topology_with_prefix(&mod8_testkit::unique_name(prefix));
    let broker = AmqpBroker::connect_with(&proxy.url(url), topology.declarations(), options)
        .await
        .expect("RabbitMQ through the proxy");
    MqFixture::new(Arc::new(broker), topology)
}

/// An ack on a delivery whose channel died is an error (transient), not a quiet success:
/// lapin reports "not sent" as `Ok(false)`. The broker still has the message and
/// redelivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_on_a_dead_channel_is_an_error() {
    let Some(url) =
        mod8_testkit::service_url(mod8_testkit::AMQP, "mq dead-channel ack on RabbitMQ")
    else {
        return;
    };
    let proxy = SilenceableProxy::start(target_of(&url)).await;
    let fixture = through_proxy(&proxy, &url, "mod8mq_deadack", AmqpOptions::default()).await;
    run_case(fixture, move |fx| {
        Box::pin(async move {
            let broker = fx.broker.clone();
            let queue = fx.topology.user_data_queue.clone();
            fx.pipeline()
                .publish_user_data(user(1), PublishOptions::new())
                .await
                .unwrap();
            let mut stream = broker.subscribe(&queue, 1).await.unwrap();
            let delivery = tokio::time::timeout(Duration::from_secs(20), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            proxy.cut();
            // The subscription ends with its channel; by then the delivery's acker is dead.
            let ended = tokio::time::timeout(Duration::from_secs(20), async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
            assert!(ended.is_ok(), "the subscription did not end after the cut");
            let err = delivery.ack().await.unwrap_err();
            assert!(err.is_transient(), "{err:?}");
            let again = broker
                .receive(&queue, Duration::from_secs(20))
                .await
                .unwrap()
                .expect("the unacknowledged message is delivered again");
            assert!(again.redelivered);
            again.ack().await.unwrap();
        })
    })
    .await;
}

/// A consumer whose ack is lost with its channel does not count the message as acked: the
/// broker redelivers it, it is handled again, and only that second, settled ack counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_counts_only_settled_acks() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq settled acks on RabbitMQ")
    else {
        return;
    };
    let proxy = SilenceableProxy::start(target_of(&url)).await;
    let fixture = through_proxy(&proxy, &url, "mod8mq_settled", AmqpOptions::default()).await;
    run_case(fixture, move |fx| {
        Box::pin(async move {
            let queue = fx.topology.user_data_queue.clone();
            let calls = Arc::new(Mutex::new(0u32));
            let (release, released) = watch::channel(false);
            let c = calls.clone();
            let consumer = fx
                .consumer(
                    queue,
                    handler_fn(move |_env: Envelope<UserData>| {
                        let c = c.clone();
                        let mut released = released.clone();
                        async move {
                            let first = {
                                let mut calls = c.lock().unwrap();
                                *calls += 1;
                                *calls == 1
                            };
                            if first {
                                // Hold the first delivery until its channel is gone.
                                let _ = released.wait_for(|r| *r).await;
                            }
                            Outcome::Ack
                        }
                    }),
                )
                .start()
                .await
                .unwrap();
            fx.pipeline()
                .publish_user_data(user(1), PublishOptions::new())
                .await
                .unwrap();
            wait_until("first handling started", || async {
                *calls.lock().unwrap() == 1
            })
            .await;
            proxy.cut();
            wait_until("resubscribed", || async {
                consumer.stats().resubscribed() >= 1
            })
            .await;
            release.send_replace(true);
            wait_until("handled again and acked", || async {
                *calls.lock().unwrap() == 2 && consumer.stats().acked() >= 1
            })
            .await;
            // Give a wrongly counted first ack time to show.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(consumer.stats().acked(), 1);
            consumer.shutdown().await.unwrap();
        })
    })
    .await;
}

/// A loopback port that accepts TCP connections and never sends a byte.
async fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// Connecting to a host that accepts TCP but never speaks AMQP gives up after the reconnect
/// timeout with a typed, transient error instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_silent_host_is_bounded() {
    let port = silent_port().await;
    let options = AmqpOptions {
        reconnect_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    // 10x the timeout: a bound on hanging, not a timing assertion.
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        AmqpBroker::connect_with(
            &url,
            test_topology_with_prefix("mod8mq_silent_host").declarations(),
            options,
        ),
    )
    .await
    .expect("connect_with returns although the host never answers");
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
}

/// A publish whose connection is lost while the broker's host keeps accepting TCP but never
/// answers (so every reconnect attempt hangs) returns a typed, transient error within about
/// the publish timeout; once the host answers again the broker reconnects and publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_while_reconnect_hangs_is_bounded_by_publish_timeout() {
    let Some(url) =
        mod8_testkit::service_url(mod8_testkit::AMQP, "mq silent reconnect on RabbitMQ")
    else {
        return;
    };
    let proxy = SilenceableProxy::start(target_of(&url)).await;
    let timeout = Duration::from_secs(1);
    let options = AmqpOptions {
        publish_timeout: timeout,
        ..Default::default()
    };
    let fixture = through_proxy(&proxy, &url, "mod8mq_hang", options).await;
    run_case(fixture, move |fx| {
        Box::pin(async move {
            let pipeline = fx.pipeline();
            pipeline
                .publish_user_data(user(1), PublishOptions::new())
                .await
                .unwrap();
            proxy.cut_and_mute_new();
            // Let the client notice the cut, so the publish has to reconnect.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let result = tokio::time::timeout(
                timeout * 10,
                pipeline.publish_user_data(user(2), PublishOptions::new()),
            )
            .await
            .expect("the publish returns although every reconnect hangs");
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Unavailable { .. } | Error::ConfirmTimeout { .. }
                ),
                "{err:?}"
            );
            assert!(err.is_transient());
            proxy.answer_new();
            pipeline
                .publish_user_data(user(3), PublishOptions::new())
                .await
                .unwrap();
        })
    })
    .await;
}

/// The envelope's correlation id and creation time travel as the AMQP `correlation_id` and
/// `timestamp` properties, so tools that read only properties (tracing, the management UI)
/// see them. Read with a plain lapin `basic.get`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_id_and_timestamp_are_amqp_properties() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq AMQP properties on RabbitMQ")
    else {
        return;
    };
    let topology = test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq_props"));
    let broker: DynBroker = Arc::new(
        AmqpBroker::connect(&url, topology.declarations())
            .await
            .unwrap(),
    );
    run_case(MqFixture::new(broker, topology.clone()), move |fx| {
        Box::pin(async move {
            let correlation = uuid::Uuid::new_v4();
            let envelope = Envelope::new(user(1)).with_correlation_id(correlation);
            let producer = Producer::new(fx.broker.clone());
            producer
                .send(&envelope, &topology.user_data_route())
                .await
                .unwrap();

            let connection =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                    .await
                    .unwrap();
            let channel = connection.create_channel().await.unwrap();
            let message = channel
                .basic_get(
                    topology.user_data_queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap()
                .expect("the confirmed message is in the queue");
            let properties = &message.delivery.properties;
            assert_eq!(
                properties.correlation_id().as_ref().map(|s| s.as_str()),
                Some(correlation.to_string().as_str())
            );
            assert_eq!(
                *properties.timestamp(),
                Some(u64::try_from(envelope.timestamp.timestamp()).unwrap())
            );
            assert_eq!(
                properties.message_id().as_ref().map(|s| s.as_str()),
                Some(envelope.id.to_string().as_str())
            );
            connection.close(200, "done".into()).await.unwrap();
        })
    })
    .await;
}

/// The confirm-mode channels (their numbers) of the connection named `name`, as RabbitMQ
/// lists them.
fn confirm_channels(name: &str) -> Vec<u16> {
    let pids = connections_named(name);
    let channels = rabbitmqctl(&[
        "list_channels",
        "connection",
        "number",
        "confirm",
        "--quiet",
        "--no-table-headers",
    ]);
    let mut numbers: Vec<u16> = channels
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let [connection, number, confirm] = cols[..] else {
                return None;
            };
            (pids.iter().any(|p| p == connection) && confirm == "true")
                .then(|| number.trim().parse().expect("a channel number"))
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

/// A nacked publish moves later publishes to a new channel, and the nacked one is closed
/// once the confirms in flight on it had time to arrive: the broker's state for a channel can
/// keep refusing (a quorum queue's publisher session after its leader moved), while a new
/// channel costs one round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_publish_moves_publishing_to_a_new_channel() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq nack test on RabbitMQ")
    else {
        return;
    };
    let name = mod8_testkit::unique_name("mod8mq_nack");
    let topology = test_topology_with_prefix(&name);
    let broker = named_broker(&url, &name, &topology, AmqpOptions::default()).await;
    run_case(MqFixture::new(broker, topology), move |fx| {
        Box::pin(async move {
            let broker = fx.broker.clone();
            let (full, open) = (format!("{name}.full"), format!("{name}.open"));
            broker
                .declare_queue(&QueueSpec::named(full.as_str()).with_max_length(1))
                .await
                .unwrap();
            broker
                .declare_queue(&QueueSpec::named(open.as_str()))
                .await
                .unwrap();
            let producer = Producer::new(broker.clone());
            let (to_full, to_open) = (Route::new("", full.clone()), Route::new("", open.clone()));

            producer
                .send(&Envelope::new(user(1)), &to_full)
                .await
                .unwrap();
            let before = confirm_channels(&name);
            assert_eq!(before.len(), 1, "one publish channel: {before:?}");
            let err = producer
                .send(&Envelope::new(user(2)), &to_full)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Nacked { .. }), "{err:?}");

            // The next publish is confirmed, on a new channel; the old one closes.
            producer
                .send(&Envelope::new(user(3)), &to_open)
                .await
                .unwrap();
            let now = confirm_channels(&name);
            assert!(
                now.iter().any(|n| !before.contains(n)),
                "no new publish channel after the nack: {before:?} then {now:?}"
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let now = confirm_channels(&name);
                if now.len() == 1 && now != before {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the nacked channel {before:?} stayed open: {now:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            broker.delete_queue(&full).await.unwrap();
            broker.delete_queue(&open).await.unwrap();
        })
    })
    .await;
}
