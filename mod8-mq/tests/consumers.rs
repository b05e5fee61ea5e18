//! The built-in consumers and the pipeline, end to end on the in-process broker.

use mod8_mq::domain::{
    AnalyticsConsumer, LoggingNotifier, MemoryEventSink, MemoryProfileSink, NotificationChannel,
    NotificationConsumer, Pipeline, PublishOptions, Topology, UserData, UserDataConsumer,
};
use mod8_mq::testing::{memory_fixture, take_one, wait_until, MqFixture};
use mod8_mq::HEADER_REASON;
use std::time::Duration;

use mod8_mq::{
    handler_fn, BindingSpec, DeliveryStream, DynBroker, Envelope, ExchangeSpec, Outcome, Producer,
    Publication, QueueSpec,
};
use tokio::time::Instant;

/// Publishes one user's data (registered 2026-11-22) through the pipeline, with the default
/// publish options.
async fn publish_user(broker: &DynBroker, topology: &Topology, username: &str, email: &str) {
    Pipeline::new(Producer::new(broker.clone()), topology.clone())
        .publish_user_data(
            UserData {
                username: username.into(),
                email: email.into(),
                registration_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22)
                    .expect("a valid date"),
            },
            PublishOptions::new(),
        )
        .await
        .expect("published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_and_purchase_flow_through_the_three_consumers() {
    let MqFixture { broker, topology } = memory_fixture();
    let profiles = MemoryProfileSink::default();
    let events = MemoryEventSink::default();
    let notifier = LoggingNotifier::default();
    let users = UserDataConsumer::new(profiles.clone())
        .start(broker.clone(), &topology)
        .await
        .unwrap();
    let notes = NotificationConsumer::new(notifier.clone())
        .start(broker.clone(), &topology)
        .await
        .unwrap();
    let analytics = AnalyticsConsumer::new(events.clone())
        .start(broker.clone(), &topology)
        .await
        .unwrap();
    let pipeline = Pipeline::new(Producer::new(broker.clone()), topology.clone());
    let signup = pipeline
        .signup(UserData {
            username: "ada".into(),
            email: "Ada@Example.com".into(),
            registration_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(signup.message_ids.len(), 3);
    pipeline
        .purchase("ada", "ada@example.com", "p-1", 19.5)
        .await
        .unwrap();
    wait_until("the flow is processed", || async {
        profiles.profiles().len() == 1
            && events.events().len() == 2
            && notifier.sent(NotificationChannel::Email) == 2
    })
    .await;
    let profile = &profiles.profiles()[0];
    assert_eq!(profile.email_domain, "example.com");
    assert_eq!(profile.source_message, signup.message_ids[0]);
    let mut kinds: Vec<_> = events
        .events()
        .into_iter()
        .map(|(e, _)| e.event_type)
        .collect();
    kinds.sort();
    assert_eq!(kinds, vec!["purchase", "signup"]);
    for c in [users, notes, analytics] {
        c.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_user_data_is_rejected_to_the_dead_letter_queue() {
    let MqFixture { broker, topology } = memory_fixture();
    let profiles = MemoryProfileSink::default();
    let users = UserDataConsumer::new(profiles.clone())
        .start(broker.clone(), &topology)
        .await
        .unwrap();
    publish_user(&broker, &topology, "x", "not-an-email").await;
    wait_until("dead-lettered", || async {
        topology.dead_letter_count(broker.as_ref()).await.unwrap() == 1
    })
    .await;
    users.shutdown().await.unwrap();
    assert!(profiles.profiles().is_empty());
    let (headers, _) = take_one(&broker, &topology.dead_letter_queue).await;
    assert!(
        headers[HEADER_REASON].starts_with("rejected: invalid username"),
        "{}",
        headers[HEADER_REASON]
    );
    // The pipeline refuses the same input before publishing anything.
    let err = Pipeline::new(Producer::new(broker.clone()), topology.clone())
        .signup(UserData {
            username: "x".into(),
            email: "nope".into(),
            registration_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, mod8_mq::Error::Validation { field, .. } if field == "username"),
        "{err:?}"
    );
}

/// The in-process broker, except that the first `failures` publishes to the dead-letter
/// exchange fail as if the broker were briefly unreachable, and with `never_cancel` a
/// subscription does not end when its queue is deleted (the broker forgets to cancel it).
#[derive(Debug)]
struct FlakyDeadLetters {
    inner: mod8_mq::DynBroker,
    dead_letter_exchange: String,
    failures: std::sync::atomic::AtomicU32,
    never_cancel: bool,
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl mod8_mq::Broker for FlakyDeadLetters {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    async fn declare_exchange(&self, spec: &ExchangeSpec) -> mod8_mq::Result<()> {
        self.inner.declare_exchange(spec).await
    }
    async fn declare_queue(&self, spec: &QueueSpec) -> mod8_mq::Result<()> {
        self.inner.declare_queue(spec).await
    }
    async fn bind(&self, binding: &BindingSpec) -> mod8_mq::Result<()> {
        self.inner.bind(binding).await
    }
    async fn delete_queue(&self, name: &str) -> mod8_mq::Result<()> {
        self.inner.delete_queue(name).await
    }
    async fn delete_exchange(&self, name: &str) -> mod8_mq::Result<()> {
        self.inner.delete_exchange(name).await
    }
    async fn publish(&self, publication: Publication) -> mod8_mq::Result<()> {
        use std::sync::atomic::Ordering;
        let to_dlx = publication.exchange == self.dead_letter_exchange;
        if to_dlx
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(mod8_mq::Error::unavailable("flaky", "injected"));
        }
        self.inner.publish(publication).await
    }
    async fn publish_batch(&self, publications: Vec<Publication>) -> Vec<mod8_mq::Result<()>> {
        let mut results = Vec::new();
        for p in publications {
            results.push(self.publish(p).await);
        }
        results
    }
    async fn subscribe(&self, queue: &str, prefetch: u16) -> mod8_mq::Result<DeliveryStream> {
        use futures::StreamExt;
        let stream = self.inner.subscribe(queue, prefetch).await?;
        if self.never_cancel {
            return Ok(stream.chain(futures::stream::pending()).boxed());
        }
        Ok(stream)
    }
    async fn queue_depth(&self, queue: &str) -> mod8_mq::Result<u64> {
        self.inner.queue_depth(queue).await
    }
    async fn close(&self) -> mod8_mq::Result<()> {
        self.inner.close().await
    }
    fn memory_stats(&self) -> Option<mod8_mq::memory::MemoryBrokerStats> {
        self.inner.memory_stats()
    }
}

/// A dead-letter publish that fails for a transient reason gives the message back only after
/// a growing pause, instead of requeueing it at once and spinning it through the handler;
/// once the broker takes dead letters again the message lands in the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_dead_letter_failures_back_off() {
    let MqFixture {
        broker: inner,
        topology,
    } = memory_fixture();
    let broker: mod8_mq::DynBroker = std::sync::Arc::new(FlakyDeadLetters {
        inner,
        dead_letter_exchange: topology.dead_letter_exchange.clone(),
        failures: std::sync::atomic::AtomicU32::new(3),
        never_cancel: false,
    });
    let calls: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let c = calls.clone();
    let consumer = topology
        .consumer(
            broker.clone(),
            topology.user_data_queue.clone(),
            handler_fn(move |_env: Envelope<UserData>| {
                let c = c.clone();
                async move {
                    c.lock().unwrap().push(Instant::now());
                    Outcome::reject("poison")
                }
            }),
        )
        .start()
        .await
        .unwrap();
    publish_user(&broker, &topology, "ada", "ada@example.com").await;
    wait_until("dead-lettered", || async {
        topology.dead_letter_count(broker.as_ref()).await.unwrap() == 1
    })
    .await;
    assert_eq!(consumer.stats().dead_lettered(), 1);
    assert!(
        !consumer.is_finished(),
        "a transient failure must not stop the consumer"
    );
    consumer.shutdown().await.unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        4,
        "three failed dead-letterings, then one that worked"
    );
    for (n, pair) in calls.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // 100 ms, 200 ms, 400 ms (a little slack for timer granularity).
        let pause = Duration::from_millis(100 << n);
        assert!(
            gap + Duration::from_millis(10) >= pause,
            "handled again after {gap:?}, before its pause {pause:?}"
        );
    }
}

/// A consumer whose broker never cancels its subscription when the queue is deleted still
/// stops, with the broker's `NotFound`, once the idle check (at its default interval) finds
/// the queue gone: the conformance case, on a broker that forgets to cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_queue_ends_the_consumer_even_when_the_broker_does_not_cancel() {
    let MqFixture {
        broker: inner,
        topology,
    } = memory_fixture();
    let broker: mod8_mq::DynBroker = std::sync::Arc::new(FlakyDeadLetters {
        inner,
        dead_letter_exchange: topology.dead_letter_exchange.clone(),
        failures: std::sync::atomic::AtomicU32::new(0),
        never_cancel: true,
    });
    mod8_mq::testing::case_consumer_ends_when_its_queue_is_deleted(&MqFixture { broker, topology })
        .await;
}

/// The idle check leaves a live queue's consumer alone: it keeps consuming after several
/// checks found its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_queue_check_leaves_a_live_subscription_alone() {
    let MqFixture { broker, topology } = memory_fixture();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    let consumer = topology
        .consumer(
            broker.clone(),
            topology.user_data_queue.clone(),
            handler_fn(move |_env: Envelope<UserData>| {
                let s = s.clone();
                async move {
                    s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Outcome::Ack
                }
            }),
        )
        .with_idle_queue_check(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!consumer.is_finished());
    let before = consumer.stats().resubscribed();
    publish_user(&broker, &topology, "ada", "ada@example.com").await;
    wait_until("the message is handled", || async {
        seen.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(consumer.stats().resubscribed(), before);
    consumer.shutdown().await.unwrap();
}
