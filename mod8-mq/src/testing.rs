//! The conformance suite every [`Broker`] must pass (behind the `testing` feature).
//!
//! Each `case_*` function takes an [`MqFixture`] — a broker and the [`Topology`] it declared,
//! with names private to the test (see [`test_topology`]) — and panics when the broker
//! misbehaves. [`conformance_tests!`] emits one `#[tokio::test]` per case from a setup
//! expression:
//!
//! ```ignore
//! mod8_mq::conformance_tests!(async {
//!     Some(mod8_mq::testing::memory_fixture())
//! });
//! ```
//!
//! [`conformance_tests!`]: crate::conformance_tests

// A test suite reports failure by panicking, so unwrapping is its way of asserting.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use futures::StreamExt;
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::{Broker, BrokerExt, DynBroker, Publication};
use crate::declarations::{BindingSpec, ExchangeKind, ExchangeSpec, QueueSpec, RetryPolicy};
use crate::domain::{
    Analytics, Notification, NotificationChannel, Pipeline, PublishOptions, Topology, Urgency,
    UserData,
};
use crate::envelope::{Envelope, Payload};
use crate::error::Error;
use crate::memory::MemoryBroker;
use crate::producer::{Producer, Route};
use crate::runner::{
    handler_fn, Consumer, ConsumerHandle, Handler, Outcome, HEADER_ATTEMPTS, HEADER_ORIGINAL_QUEUE,
    HEADER_REASON,
};

/// Retries the suite's topologies allow for (teardown deletes their retry queues).
pub const MAX_TEST_RETRIES: u32 = 5;

/// A topology with names unique to this run and short retry delays (100 ms doubling to
/// 400 ms).
pub fn test_topology() -> Topology {
    let id = Uuid::new_v4().simple().to_string();
    test_topology_with_prefix(&format!("mod8test_{}", &id[..12]))
}

/// Like [`test_topology`], with the given (unique) prefix.
pub fn test_topology_with_prefix(prefix: &str) -> Topology {
    Topology::with_prefix(prefix).with_retry(RetryPolicy {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(400),
    })
}

/// A broker under test and the topology it declared on connect.
#[derive(Debug, Clone)]
pub struct MqFixture {
    /// The broker.
    pub broker: DynBroker,
    /// What it declared ([`Topology::declarations`]); names private to the test.
    pub topology: Topology,
}

impl MqFixture {
    /// A fixture of `broker`, which declared `topology`.
    pub fn new(broker: DynBroker, topology: Topology) -> Self {
        MqFixture { broker, topology }
    }

    /// A [`Pipeline`] publishing on the broker along the topology's routes.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(Producer::new(self.broker.clone()), self.topology.clone())
    }

    /// A consumer of `queue` with the topology's retry policy and dead-letter route.
    pub fn consumer<T: Payload>(
        &self,
        queue: impl Into<String>,
        handler: impl Handler<T>,
    ) -> Consumer<T> {
        self.topology.consumer(self.broker.clone(), queue, handler)
    }
}

/// An in-process broker with a [`test_topology`] declared.
pub fn memory_fixture() -> MqFixture {
    let topology = test_topology();
    let broker = MemoryBroker::new(topology.declarations())
        .expect("a test topology declares on a fresh in-process broker");
    MqFixture::new(Arc::new(broker), topology)
}

/// Runs `case` on `fixture`, then deletes the fixture's topology (also when the case
/// panics) and re-raises the case's panic.
pub async fn run_case<F>(fixture: MqFixture, case: F)
where
    F: FnOnce(MqFixture) -> Pin<Box<dyn Future<Output = ()> + Send>>,
{
    let result = tokio::spawn(case(fixture.clone())).await;
    let MqFixture { broker, topology } = fixture;
    let cleanup = broker
        .delete_all(&topology.teardown(MAX_TEST_RETRIES))
        .await;
    let _ = broker.close().await;
    if let Err(e) = result {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("case task failed: {e}");
    }
    if let Err(e) = cleanup {
        panic!("teardown failed: {e}");
    }
}

/// Emits one `#[tokio::test]` per conformance case. `$setup` is an expression of type
/// `impl Future<Output = Option<MqFixture>>`; `None` skips (a server-backed suite without
/// its URL).
#[macro_export]
macro_rules! conformance_tests {
    ($setup:expr) => {
        $crate::conformance_tests!(@cases $setup;
            case_direct_routing,
            case_topic_routing,
            case_fanout_routing,
            case_priority_order,
            case_retry_with_growing_delay,
            case_dead_letter_after_max_retries,
            case_reject_goes_to_dead_letter,
            case_malformed_messages_are_dead_lettered,
            case_graceful_shutdown_loses_nothing,
            case_unacked_is_redelivered,
            case_declare_conflict_is_typed,
            case_dedup_by_message_id,
            case_pipelined_batch,
            case_consumer_ends_when_its_queue_is_deleted,
            case_full_queue_nacks,
            case_unroutable_in_batch_is_per_message,
            case_dead_letter_failure_stops_the_consumer,
            case_dedup_copies_in_flight_at_once,
            case_retry_queues_declared_on_connect,
            case_exchange_type_conflict_is_typed,
            case_delivery_limit_dead_letters
        );
    };
    (@cases $setup:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $setup.await else { return };
                $crate::testing::run_case(fixture, |fx| {
                    ::std::boxed::Box::pin(async move { $crate::testing::$case(&fx).await })
                })
                .await;
            }
        )*
    };
}

/// Polls `check` every 20 ms until it is true; panics with `what` after 20 s. Only a bound
/// on waiting, never an assertion about speed.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_depth(broker: &DynBroker, queue: &str, expected: u64) {
    wait_until(&format!("{expected} messages in {queue}"), || async {
        broker.queue_depth(queue).await.ok() == Some(expected)
    })
    .await;
}

fn user(n: usize) -> UserData {
    UserData {
        username: format!("user{n}"),
        email: format!("user{n}@example.com"),
        registration_date: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default(),
    }
}

fn note(channel: NotificationChannel, subject: &str) -> Notification {
    Notification {
        recipient: "someone@example.com".into(),
        subject: subject.into(),
        content: "hello".into(),
        channel,
    }
}

/// Takes one message from `queue` through a raw subscription, acknowledges it and returns
/// its headers and body.
pub async fn take_one(
    broker: &DynBroker,
    queue: &str,
) -> (std::collections::BTreeMap<String, String>, Vec<u8>) {
    let mut stream = broker.subscribe(queue, 1).await.expect("subscribe");
    let delivery = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a message arrives")
        .expect("the stream is open")
        .expect("a delivery");
    let out = (delivery.headers.clone(), delivery.body.clone());
    delivery.ack().await.expect("ack");
    out
}

/// Direct exchange: user data reaches `user_data_queue`; a key nobody binds is an
/// [`Error::Unroutable`].
pub async fn case_direct_routing(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let pipeline = fx.pipeline();
    let producer = pipeline.producer();
    pipeline
        .publish_user_data(user(1), PublishOptions::new())
        .await
        .unwrap();
    wait_depth(broker, &t.user_data_queue, 1).await;
    let env = Envelope::new(user(2));
    let err = producer
        .send(
            &env,
            &Route::new(t.data_exchange.clone(), "nobody_binds_this"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unroutable { .. }), "got {err:?}");
    assert_eq!(broker.queue_depth(&t.user_data_queue).await.unwrap(), 1);
    // The connection survives an unroutable message.
    pipeline
        .publish_user_data(user(3), PublishOptions::new())
        .await
        .unwrap();
    wait_depth(broker, &t.user_data_queue, 2).await;
}

/// Topic exchange: `notification.#` gets everything, `*.sms` only SMS, `notification.email`
/// only email.
pub async fn case_topic_routing(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let sms_q = format!("{}.sms_only", t.notification_queue);
    let email_q = format!("{}.email_only", t.notification_queue);
    for (q, key) in [(&sms_q, "*.sms"), (&email_q, "notification.email")] {
        broker
            .declare_queue(&QueueSpec::named(q.as_str()))
            .await
            .unwrap();
        broker
            .bind(&BindingSpec {
                queue: q.clone(),
                exchange: t.notifications_exchange.clone(),
                key: key.into(),
            })
            .await
            .unwrap();
    }
    let pipeline = fx.pipeline();
    pipeline
        .publish_notification(note(NotificationChannel::Email, "e"), PublishOptions::new())
        .await
        .unwrap();
    pipeline
        .publish_notification(note(NotificationChannel::Sms, "s1"), PublishOptions::new())
        .await
        .unwrap();
    pipeline
        .publish_notification(note(NotificationChannel::Sms, "s2"), PublishOptions::new())
        .await
        .unwrap();
    wait_depth(broker, &t.notification_queue, 3).await;
    wait_depth(broker, &sms_q, 2).await;
    wait_depth(broker, &email_q, 1).await;
    broker.delete_queue(&sms_q).await.unwrap();
    broker.delete_queue(&email_q).await.unwrap();
}

/// Fanout exchange: every analytics subscriber queue gets a copy.
pub async fn case_fanout_routing(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let extra = format!("{}.second_subscriber", t.analytics_queue);
    t.declare_analytics_subscriber(broker.as_ref(), &extra)
        .await
        .unwrap();
    let pipeline = fx.pipeline();
    for i in 0..3 {
        pipeline
            .publish_analytics(
                Analytics {
                    event_type: "page_view".into(),
                    user_id: format!("u{i}"),
                    properties: Default::default(),
                },
                PublishOptions::new(),
            )
            .await
            .unwrap();
    }
    wait_depth(broker, &t.analytics_queue, 3).await;
    wait_depth(broker, &extra, 3).await;
    broker.delete_queue(&extra).await.unwrap();
}

/// Urgent (high-priority) messages waiting in a queue are delivered before normal ones.
pub async fn case_priority_order(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let pipeline = fx.pipeline();
    for i in 0..3 {
        pipeline
            .publish_notification(
                note(NotificationChannel::Email, &format!("normal{i}")),
                PublishOptions::new(),
            )
            .await
            .unwrap();
    }
    pipeline
        .publish_notification(
            note(NotificationChannel::Sms, "urgent"),
            PublishOptions::new().with_urgency(Urgency::Urgent),
        )
        .await
        .unwrap();
    wait_depth(broker, &t.notification_queue, 4).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let consumer = fx
        .consumer(
            t.notification_queue.clone(),
            handler_fn(move |env: Envelope<Notification>| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(env.payload.subject);
                    Outcome::Ack
                }
            }),
        )
        .with_prefetch(1)
        .with_concurrency(1)
        .start()
        .await
        .unwrap();
    wait_until("4 handled", || async { seen.lock().unwrap().len() == 4 }).await;
    consumer.shutdown().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["urgent", "normal0", "normal1", "normal2"]);
}

/// `Retry` redelivers through the delay queues, each wait at least the policy's delay, and
/// the envelope's retry count grows.
pub async fn case_retry_with_growing_delay(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let attempts: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::default();
    let a = attempts.clone();
    let consumer = fx
        .consumer(
            t.user_data_queue.clone(),
            handler_fn(move |env: Envelope<UserData>| {
                let a = a.clone();
                async move {
                    a.lock().unwrap().push((env.retry_count, Instant::now()));
                    if env.retry_count < 2 {
                        Outcome::retry("not yet")
                    } else {
                        Outcome::Ack
                    }
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
    wait_until("3 attempts", || async {
        attempts.lock().unwrap().len() == 3
    })
    .await;
    wait_until("acked", || async { consumer.stats().acked() == 1 }).await;
    assert_eq!(consumer.stats().retried(), 2);
    consumer.shutdown().await.unwrap();
    let attempts = attempts.lock().unwrap().clone();
    let counts: Vec<u32> = attempts.iter().map(|(c, _)| *c).collect();
    assert_eq!(counts, vec![0, 1, 2]);
    for n in 0..2 {
        let gap = attempts[n + 1].1 - attempts[n].1;
        let delay = t.retry.delay(n as u32);
        assert!(
            gap + Duration::from_millis(5) >= delay,
            "retry {n} came after {gap:?}, before its delay {delay:?}"
        );
    }
    assert_eq!(t.dead_letter_count(broker.as_ref()).await.unwrap(), 0);
}

/// A message that keeps failing ends in the dead-letter queue after `max_retries`, with
/// headers saying why, after how many attempts, and from which queue.
pub async fn case_dead_letter_after_max_retries(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let consumer = fx
        .consumer(
            t.user_data_queue.clone(),
            handler_fn(|_env: Envelope<UserData>| async { Outcome::retry("downstream is down") }),
        )
        .start()
        .await
        .unwrap();
    let env = Envelope::new(user(1)).with_max_retries(2);
    Producer::new(broker.clone())
        .send(
            &env,
            &Route::new(t.data_exchange.clone(), t.user_data_key.clone()),
        )
        .await
        .unwrap();
    wait_depth(broker, &t.dead_letter_queue, 1).await;
    consumer.shutdown().await.unwrap();
    let (headers, body) = take_one(broker, &t.dead_letter_queue).await;
    assert_eq!(headers.get(HEADER_ATTEMPTS).map(String::as_str), Some("3"));
    assert_eq!(headers.get(HEADER_ORIGINAL_QUEUE), Some(&t.user_data_queue));
    let reason = headers.get(HEADER_REASON).cloned().unwrap_or_default();
    assert!(
        reason.contains("retries exhausted") && reason.contains("downstream is down"),
        "{reason}"
    );
    let back = Envelope::<UserData>::from_bytes(&body).unwrap();
    assert_eq!(back.id, env.id);
    assert_eq!(back.retry_count, 2);
}

/// `Reject` dead-letters at once, after one attempt.
pub async fn case_reject_goes_to_dead_letter(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let (handler, calls) = counting_handler::<Analytics>(Outcome::reject("bad event"));
    let consumer = fx
        .consumer(t.analytics_queue.clone(), handler)
        .start()
        .await
        .unwrap();
    fx.pipeline()
        .publish_analytics(
            Analytics {
                event_type: "x".into(),
                user_id: "u".into(),
                properties: Default::default(),
            },
            PublishOptions::new(),
        )
        .await
        .unwrap();
    wait_depth(broker, &t.dead_letter_queue, 1).await;
    consumer.shutdown().await.unwrap();
    assert_eq!(*calls.lock().unwrap(), 1);
    let (headers, _) = take_one(broker, &t.dead_letter_queue).await;
    assert_eq!(headers.get(HEADER_ATTEMPTS).map(String::as_str), Some("1"));
    assert_eq!(
        headers.get(HEADER_REASON).map(String::as_str),
        Some("rejected: bad event")
    );
}

/// Bytes that are not JSON, and an envelope of the wrong type, go to the dead-letter queue
/// with a parse-error reason; the consumer keeps running and handles the next good message.
pub async fn case_malformed_messages_are_dead_lettered(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let handled = Arc::new(Mutex::new(Vec::new()));
    let h = handled.clone();
    let consumer = fx
        .consumer(
            t.user_data_queue.clone(),
            handler_fn(move |env: Envelope<UserData>| {
                let h = h.clone();
                async move {
                    h.lock().unwrap().push(env.payload.username);
                    Outcome::Ack
                }
            }),
        )
        .with_concurrency(1)
        .start()
        .await
        .unwrap();
    broker
        .publish(Publication::new(
            "",
            t.user_data_queue.clone(),
            b"\xffnot json".to_vec(),
        ))
        .await
        .unwrap();
    let wrong = Envelope::new(note(NotificationChannel::Sms, "wrong type"));
    broker
        .publish(
            Publication::from_envelope(&wrong, &Route::new("", t.user_data_queue.clone())).unwrap(),
        )
        .await
        .unwrap();
    fx.pipeline()
        .publish_user_data(user(7), PublishOptions::new())
        .await
        .unwrap();
    wait_until("the good message", || async {
        handled.lock().unwrap().len() == 1
    })
    .await;
    wait_depth(broker, &t.dead_letter_queue, 2).await;
    assert!(!consumer.is_finished());
    consumer.shutdown().await.unwrap();
    assert_eq!(handled.lock().unwrap().clone(), vec!["user7".to_owned()]);
    for _ in 0..2 {
        let (headers, _) = take_one(broker, &t.dead_letter_queue).await;
        let reason = headers.get(HEADER_REASON).cloned().unwrap_or_default();
        assert!(reason.contains("parse error"), "{reason}");
        assert_eq!(headers.get(HEADER_ORIGINAL_QUEUE), Some(&t.user_data_queue));
    }
}

/// Shutting down while messages are being handled finishes and acknowledges them; nothing is
/// lost: what was not handled is still in the queue for the next consumer.
pub async fn case_graceful_shutdown_loses_nothing(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let producer = Producer::new(broker.clone());
    let envelopes: Vec<_> = (0..200).map(|i| Envelope::new(user(i))).collect();
    let all: HashSet<Uuid> = envelopes.iter().map(|e| e.id).collect();
    for r in producer
        .send_batch(&envelopes, &t.user_data_route())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let handled: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let slow = |handled: Arc<Mutex<HashSet<Uuid>>>| {
        handler_fn(move |env: Envelope<UserData>| {
            let handled = handled.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                handled.lock().unwrap().insert(env.id);
                Outcome::Ack
            }
        })
    };
    let first = fx
        .consumer(t.user_data_queue.clone(), slow(handled.clone()))
        .with_prefetch(20)
        .with_concurrency(4)
        .start()
        .await
        .unwrap();
    wait_until("some handled", || async {
        handled.lock().unwrap().len() >= 40
    })
    .await;
    first.shutdown().await.unwrap();
    let after_first = handled.lock().unwrap().len();
    assert!(after_first < 200, "shutdown came too late to test anything");
    // Every handled message was acknowledged; the rest is back in the queue.
    wait_depth(broker, &t.user_data_queue, (200 - after_first) as u64).await;
    let second = fx
        .consumer(t.user_data_queue.clone(), slow(handled.clone()))
        .with_concurrency(8)
        .start()
        .await
        .unwrap();
    wait_until("all handled", || async {
        handled.lock().unwrap().len() == 200
    })
    .await;
    second.shutdown().await.unwrap();
    assert_eq!(*handled.lock().unwrap(), all);
    assert_eq!(broker.queue_depth(&t.user_data_queue).await.unwrap(), 0);
}

/// A delivery that is dropped without an acknowledgement comes back, marked redelivered.
pub async fn case_unacked_is_redelivered(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    fx.pipeline()
        .publish_user_data(user(1), PublishOptions::new())
        .await
        .unwrap();
    {
        let mut stream = broker.subscribe(&t.user_data_queue, 1).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!first.redelivered);
        drop(first);
        drop(stream);
    }
    let mut stream = broker.subscribe(&t.user_data_queue, 1).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(again.redelivered);
    again.ack().await.unwrap();
}

/// Declaring an existing queue with other arguments is a typed conflict naming the queue and
/// the argument, and the broker keeps working.
pub async fn case_declare_conflict_is_typed(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    // A quorum queue has no priorities to disagree about: its delivery limit, then.
    let (conflicting, argument) = match t.queue_type {
        crate::declarations::QueueType::Classic => (
            QueueSpec::named(t.user_data_queue.clone()).with_max_priority(3),
            "x-max-priority",
        ),
        crate::declarations::QueueType::Quorum => (
            t.work_queue(&t.user_data_queue)
                .with_delivery_limit(t.delivery_limit + 1),
            "x-delivery-limit",
        ),
    };
    let err = broker.declare_queue(&conflicting).await.unwrap_err();
    match &err {
        Error::Conflict {
            entity,
            field,
            message,
        } => {
            assert_eq!(*entity, "queue");
            assert!(message.contains(&t.user_data_queue), "{message}");
            assert_eq!(field, argument);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!err.is_transient());
    // Re-declaring identically is fine, and publishing still works.
    broker
        .declare_queue(&t.work_queue(&t.user_data_queue))
        .await
        .unwrap();
    fx.pipeline()
        .publish_user_data(user(1), PublishOptions::new())
        .await
        .unwrap();
    wait_depth(broker, &t.user_data_queue, 1).await;
}

/// A handler that counts the messages it was given and answers each with `outcome`.
fn counting_handler<T: Payload + Clone>(outcome: Outcome) -> (impl Handler<T>, Arc<Mutex<u32>>) {
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    let handler = handler_fn(move |_env: Envelope<T>| {
        let (c, outcome) = (c.clone(), outcome.clone());
        async move {
            *c.lock().unwrap() += 1;
            outcome
        }
    });
    (handler, calls)
}

/// A consumer of user-data messages on `queue` of `broker` (with `topology`'s retry policy
/// and dead-letter route) that acks everything and counts what it handled.
async fn counting_user_data_consumer(
    topology: &Topology,
    broker: DynBroker,
    queue: String,
) -> (ConsumerHandle, Arc<Mutex<u32>>) {
    let (handler, handled) = counting_handler::<UserData>(Outcome::Ack);
    let consumer = topology
        .consumer(broker, queue, handler)
        .start()
        .await
        .unwrap();
    (consumer, handled)
}

/// Redeclaring an existing exchange with another type is a typed, permanent conflict naming
/// the exchange and the argument `type`; a consumer running on the same broker keeps
/// receiving, and publishing still works.
pub async fn case_exchange_type_conflict_is_typed(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let (consumer, handled) =
        counting_user_data_consumer(&t, broker.clone(), t.user_data_queue.clone()).await;
    let pipeline = fx.pipeline();
    pipeline
        .publish_user_data(user(1), PublishOptions::new())
        .await
        .unwrap();
    wait_until("first handled", || async { *handled.lock().unwrap() == 1 }).await;
    let err = broker
        .declare_exchange(&ExchangeSpec {
            name: t.data_exchange.clone(),
            kind: ExchangeKind::Topic,
        })
        .await
        .unwrap_err();
    match &err {
        Error::Conflict {
            entity,
            field,
            message,
        } => {
            assert_eq!(*entity, "exchange");
            assert!(message.contains(&t.data_exchange), "{message}");
            assert_eq!(field, "type");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!err.is_transient());
    // Same type again is fine; the consumer and the publisher carry on.
    broker
        .declare_exchange(&ExchangeSpec {
            name: t.data_exchange.clone(),
            kind: ExchangeKind::Direct,
        })
        .await
        .unwrap();
    pipeline
        .publish_user_data(user(2), PublishOptions::new())
        .await
        .unwrap();
    wait_until("second handled", || async { *handled.lock().unwrap() == 2 }).await;
    assert_eq!(consumer.stats().resubscribed(), 0);
    consumer.shutdown().await.unwrap();
}

/// With de-duplication on, a message id seen before is acknowledged without handling.
pub async fn case_dedup_by_message_id(fx: &MqFixture) {
    let t = fx.topology.clone();
    let (handler, calls) = counting_handler::<UserData>(Outcome::Ack);
    let consumer = fx
        .consumer(t.user_data_queue.clone(), handler)
        .with_concurrency(1)
        .with_dedup(100)
        .start()
        .await
        .unwrap();
    let producer = Producer::new(fx.broker.clone());
    let env = Envelope::new(user(1));
    producer.send(&env, &t.user_data_route()).await.unwrap();
    wait_until("first handled", || async { consumer.stats().acked() == 1 }).await;
    producer.send(&env, &t.user_data_route()).await.unwrap();
    wait_until("duplicate skipped", || async {
        consumer.stats().duplicates() == 1
    })
    .await;
    consumer.shutdown().await.unwrap();
    assert_eq!(*calls.lock().unwrap(), 1);
}

/// With de-duplication on and several messages handled at once, two copies of one message
/// delivered together are not both handled: the second waits for the first and is skipped.
pub async fn case_dedup_copies_in_flight_at_once(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let producer = Producer::new(broker.clone());
    let env = Envelope::new(user(1));
    for _ in 0..2 {
        producer.send(&env, &t.user_data_route()).await.unwrap();
    }
    wait_depth(broker, &t.user_data_queue, 2).await;
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    let consumer = fx
        .consumer(
            t.user_data_queue.clone(),
            handler_fn(move |_env: Envelope<UserData>| {
                let c = c.clone();
                async move {
                    *c.lock().unwrap() += 1;
                    // Slow, so the second copy arrives while the first is being handled.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Outcome::Ack
                }
            }),
        )
        .with_concurrency(4)
        .with_dedup(100)
        .start()
        .await
        .unwrap();
    wait_until("both copies settled", || async {
        consumer.stats().acked() + consumer.stats().duplicates() == 2
    })
    .await;
    consumer.shutdown().await.unwrap();
    assert_eq!(*calls.lock().unwrap(), 1, "both copies were handled");
    assert_eq!(broker.queue_depth(&t.user_data_queue).await.unwrap(), 0);
}

/// The retry delay queues of every work queue, for the topology's `max_retries`, exist as
/// soon as the broker is connected (not only after a first retry).
pub async fn case_retry_queues_declared_on_connect(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    assert!(t.max_retries > 0);
    for queue in [
        &t.user_data_queue,
        &t.notification_queue,
        &t.analytics_queue,
    ] {
        for retry in 0..t.max_retries {
            let name = t.retry.retry_queue(queue, retry).name;
            let depth = broker.queue_depth(&name).await;
            assert!(matches!(depth, Ok(0)), "{name}: {depth:?}");
        }
    }
}

/// A batch keeps many confirms in flight; every message is confirmed and queued.
pub async fn case_pipelined_batch(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let pipeline = fx.pipeline();
    let producer = pipeline.producer();
    let envelopes: Vec<_> = (0..500).map(|i| Envelope::new(user(i))).collect();
    let results = producer
        .send_batch(&envelopes, &t.user_data_route())
        .await
        .unwrap();
    assert_eq!(results.len(), 500);
    assert!(results.iter().all(Result::is_ok));
    wait_depth(broker, &t.user_data_queue, 500).await;
}

/// A consumer never hangs: when its queue is deleted the subscription ends, subscribing
/// again fails permanently, and the consumer stops with that error.
pub async fn case_consumer_ends_when_its_queue_is_deleted(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let queue = format!("{}.doomed", t.user_data_queue);
    broker.declare_queue(&t.work_queue(&queue)).await.unwrap();
    let consumer = fx
        .consumer(
            queue.clone(),
            handler_fn(|_env: Envelope<UserData>| async { Outcome::Ack }),
        )
        .start()
        .await
        .unwrap();
    broker.delete_queue(&queue).await.unwrap();
    wait_until("the consumer stops", || async { consumer.is_finished() }).await;
    let err = consumer.shutdown().await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// A consumer whose broker handle is closed by its owner ends promptly with
/// [`Error::Closed`] (not transient, so a supervisor can act on it) instead of resubscribing
/// forever; publishing on the closed handle fails the same way.
///
/// Not part of [`conformance_tests!`](crate::conformance_tests): `closing` is the handle that
/// gets closed, while `fx.broker` (same topology) stays usable for teardown. On a backend
/// whose handles share one connection (the in-process broker) pass a clone of `fx.broker`.
pub async fn case_consumer_ends_when_its_broker_is_closed(fx: &MqFixture, closing: DynBroker) {
    let t = &fx.topology;
    let queue = t.user_data_queue.clone();
    let (consumer, handled) = counting_user_data_consumer(t, closing.clone(), queue).await;
    let pipeline = Pipeline::new(Producer::new(closing.clone()), t.clone());
    pipeline
        .publish_user_data(user(1), PublishOptions::new())
        .await
        .unwrap();
    wait_until("first handled", || async { *handled.lock().unwrap() == 1 }).await;
    closing.close().await.unwrap();
    wait_until("the consumer stops", || async { consumer.is_finished() }).await;
    let err = consumer.shutdown().await.unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    assert!(!err.is_transient());
    let err = pipeline
        .publish_user_data(user(2), PublishOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
}

/// When dead-lettering fails for a permanent reason (here the dead-letter exchange is
/// gone), the message is not lost and does not spin through the consumer: it goes back to
/// its queue and the consumer stops with the (non-transient) error.
pub async fn case_dead_letter_failure_stops_the_consumer(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    broker
        .delete_exchange(&t.dead_letter_exchange)
        .await
        .unwrap();
    // Published (and confirmed) before the consumer starts: on RabbitMQ the consumer's failed
    // dead-letter publish closes the shared publish channel, which would fail a confirm
    // still in flight.
    fx.pipeline()
        .publish_user_data(user(1), PublishOptions::new())
        .await
        .unwrap();
    let (handler, calls) = counting_handler::<UserData>(Outcome::reject("poison"));
    let consumer = fx
        .consumer(t.user_data_queue.clone(), handler)
        .start()
        .await
        .unwrap();
    wait_until("the consumer stops", || async { consumer.is_finished() }).await;
    let err = consumer.shutdown().await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let calls = *calls.lock().unwrap();
    assert!(
        (1..=2).contains(&calls),
        "handled {calls} times: the message spun through the consumer"
    );
    // Back in its queue, not lost.
    wait_depth(broker, &t.user_data_queue, 1).await;
}

/// A queue bounded with [`QueueSpec::max_length`] (`x-overflow: reject-publish`) refuses a
/// publish once full: the confirmed publish is [`Error::Nacked`] naming its exchange and key
/// (transient), the queue keeps only what it had, and once a message is taken the next
/// publish on the same broker is confirmed again.
pub async fn case_full_queue_nacks(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let queue = format!("{}.bounded", t.user_data_queue);
    let key = "bounded";
    broker
        .declare_queue(&QueueSpec::named(queue.as_str()).with_max_length(1))
        .await
        .unwrap();
    broker
        .bind(&BindingSpec {
            queue: queue.clone(),
            exchange: t.data_exchange.clone(),
            key: key.into(),
        })
        .await
        .unwrap();
    let producer = Producer::new(broker.clone());
    let route = Route::new(t.data_exchange.clone(), key);
    let first = Envelope::new(user(1));
    producer.send(&first, &route).await.unwrap();
    let err = producer
        .send(&Envelope::new(user(2)), &route)
        .await
        .unwrap_err();
    match &err {
        Error::Nacked {
            exchange,
            routing_key,
        } => {
            assert_eq!(exchange, &t.data_exchange);
            assert_eq!(routing_key, key);
        }
        other => panic!("expected a nack, got {other:?}"),
    }
    assert!(err.is_transient());
    wait_depth(broker, &queue, 1).await;
    let (_, body) = take_one(broker, &queue).await;
    assert_eq!(
        Envelope::<UserData>::from_bytes(&body).unwrap().id,
        first.id
    );
    let third = Envelope::new(user(3));
    producer.send(&third, &route).await.unwrap();
    let (_, body) = take_one(broker, &queue).await;
    assert_eq!(
        Envelope::<UserData>::from_bytes(&body).unwrap().id,
        third.id
    );
    broker.delete_queue(&queue).await.unwrap();
}

/// Unroutable messages inside a pipelined batch: each result belongs to its own message —
/// exactly the unroutable ones are [`Error::Unroutable`] with their exchange, key and
/// `NO_ROUTE`, every other one is confirmed and queued. A route with `mandatory` off is
/// confirmed even though no queue takes the message.
pub async fn case_unroutable_in_batch_is_per_message(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    let nowhere = "nobody_binds_this";
    let publications: Vec<Publication> = (0..300)
        .map(|i| {
            let key = if i % 7 == 3 {
                nowhere
            } else {
                t.user_data_key.as_str()
            };
            let envelope = Envelope::new(user(i));
            Publication::from_envelope(&envelope, &Route::new(t.data_exchange.clone(), key))
                .unwrap()
        })
        .collect();
    let results = broker.publish_batch(publications).await;
    assert_eq!(results.len(), 300);
    let mut routed = 0;
    for (i, result) in results.iter().enumerate() {
        if i % 7 == 3 {
            match result {
                Err(Error::Unroutable {
                    exchange,
                    routing_key,
                    reply,
                }) => {
                    assert_eq!(exchange, &t.data_exchange);
                    assert_eq!(routing_key, nowhere);
                    assert_eq!(reply, "NO_ROUTE");
                }
                other => panic!("message {i} is unroutable, got {other:?}"),
            }
        } else {
            assert!(result.is_ok(), "message {i} is routable, got {result:?}");
            routed += 1;
        }
    }
    wait_depth(broker, &t.user_data_queue, routed).await;
    let producer = Producer::new(broker.clone());
    producer
        .send(
            &Envelope::new(user(1)),
            &Route::new(t.data_exchange.clone(), nowhere).with_unroutable_dropped(),
        )
        .await
        .unwrap();
    assert_eq!(
        broker.queue_depth(&t.user_data_queue).await.unwrap(),
        routed
    );
}

/// With quorum queues ([`Topology::with_quorum_queues`]), the broker counts deliveries: a
/// message handed back (requeued) more than [`Topology::delivery_limit`] times is
/// dead-lettered to the dead-letter queue by the broker itself, after `limit + 1` deliveries,
/// each redelivery saying its count in the `x-delivery-count` header. With classic queues
/// there is nothing to check (classic queues count no deliveries) and the case passes.
pub async fn case_delivery_limit_dead_letters(fx: &MqFixture) {
    let (broker, t) = (&fx.broker, fx.topology.clone());
    if t.queue_type != crate::declarations::QueueType::Quorum {
        return;
    }
    let limit = t.delivery_limit;
    let id = fx
        .pipeline()
        .publish_user_data(user(1), PublishOptions::new())
        .await
        .unwrap();
    let mut stream = broker.subscribe(&t.user_data_queue, 1).await.unwrap();
    let mut counts = Vec::new();
    for n in 0..=limit {
        let delivery = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap_or_else(|_| panic!("delivery {} of {} did not come", n + 1, limit + 1))
            .expect("the stream is open")
            .expect("a delivery");
        assert_eq!(
            delivery.message_id.as_deref(),
            Some(id.to_string().as_str())
        );
        counts.push(delivery.headers.get("x-delivery-count").cloned());
        delivery.requeue().await.unwrap();
    }
    // The last hand-back went past the limit: the broker dead-letters instead of delivering.
    wait_depth(broker, &t.dead_letter_queue, 1).await;
    drop(stream);
    assert_eq!(broker.queue_depth(&t.user_data_queue).await.unwrap(), 0);
    let expected: Vec<Option<String>> = (0..=limit)
        .map(|n| (n > 0).then(|| n.to_string()))
        .collect();
    assert_eq!(counts, expected, "x-delivery-count of each delivery");
    let (_, body) = take_one(broker, &t.dead_letter_queue).await;
    assert_eq!(Envelope::<UserData>::from_bytes(&body).unwrap().id, id);
}
