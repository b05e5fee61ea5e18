//! The conformance suite on the in-process broker (always runs).

mod8_mq::conformance_tests!(async { Some(mod8_mq::testing::memory_fixture()) });

/// The same suite on a quorum-queue topology: the in-process broker keeps quorum queues'
/// rules (delivery limit, no priorities) so an application configured for a cluster behaves
/// the same embedded.
mod quorum {
    use std::sync::Arc;

    use mod8_mq::testing::{test_topology, MqFixture};
    use mod8_mq::MemoryBroker;

    fn fixture() -> MqFixture {
        let topology = test_topology().with_quorum_queues().with_delivery_limit(3);
        let broker = MemoryBroker::new(topology.declarations())
            .expect("a quorum test topology declares on a fresh in-process broker");
        MqFixture::new(Arc::new(broker), topology)
    }

    mod8_mq::conformance_tests!(async { Some(fixture()) });
}

/// Closing the broker ends a running consumer with `Error::Closed` (the in-process broker
/// has one shared state, so the handle closed is the broker itself; its teardown still
/// works when closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_consumer_ends_when_its_broker_is_closed() {
    let fixture = mod8_mq::testing::memory_fixture();
    mod8_mq::testing::run_case(fixture, |fx| {
        Box::pin(async move {
            let closing = fx.broker.clone();
            mod8_mq::testing::case_consumer_ends_when_its_broker_is_closed(&fx, closing).await
        })
    })
    .await;
}

/// The in-process broker's own bounds: every queue is bounded even when declared without
/// `x-max-length`, a full queue refuses the publish (never drops it) and counts the refusal.
mod bounds {
    use std::time::Duration;

    use mod8_mq::memory::{MemoryBroker, MemoryQueueLimits};
    use mod8_mq::{Broker, BrokerExt, Declarations, Error, MqConfig, Publication, QueueSpec};

    fn to(queue: &str, body: &[u8]) -> Publication {
        Publication::new("", queue, body.to_vec())
    }

    fn limited(max_length: u32, max_bytes: usize) -> MemoryBroker {
        MemoryBroker::with_limits(
            Declarations::default(),
            MemoryQueueLimits {
                max_length,
                max_bytes,
            },
        )
        .expect("nothing to declare")
    }

    #[tokio::test]
    async fn a_queue_declared_unbounded_is_bounded_and_refusals_are_counted() {
        let broker = limited(2, usize::MAX);
        broker.declare_queue(&QueueSpec::named("q")).await.unwrap();
        broker.publish(to("q", b"1")).await.unwrap();
        broker.publish(to("q", b"2")).await.unwrap();
        let err = broker.publish(to("q", b"3")).await.unwrap_err();
        assert!(matches!(err, Error::Nacked { .. }), "{err:?}");
        assert!(err.is_transient());
        assert_eq!(broker.queue_depth("q").await.unwrap(), 2);
        let stats = broker.stats();
        assert_eq!(stats.queues.len(), 1);
        let q = &stats.queues[0];
        assert_eq!((q.name.as_str(), q.messages, q.rejected), ("q", 2, 1));
        assert_eq!((q.max_length, q.bytes), (2, 2));

        // What was queued is intact, oldest first; once one is taken the next publish lands.
        let first = broker
            .receive("q", Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.body, b"1");
        first.ack().await.unwrap();
        broker.publish(to("q", b"3")).await.unwrap();
        assert_eq!(broker.queue_depth("q").await.unwrap(), 2);
        // Through the trait too, as the app reads it.
        let shared: mod8_mq::DynBroker = std::sync::Arc::new(broker.clone());
        assert_eq!(shared.memory_stats(), Some(broker.stats()));
    }

    #[tokio::test]
    async fn the_byte_bound_refuses_large_messages() {
        let broker = limited(1_000, 10);
        broker.declare_queue(&QueueSpec::named("q")).await.unwrap();
        broker.publish(to("q", b"123456")).await.unwrap();
        let err = broker.publish(to("q", b"12345")).await.unwrap_err();
        assert!(matches!(err, Error::Nacked { .. }), "{err:?}");
        // A message alone over the bound is refused even by an empty queue.
        broker.declare_queue(&QueueSpec::named("r")).await.unwrap();
        let err = broker.publish(to("r", &[0; 11])).await.unwrap_err();
        assert!(matches!(err, Error::Nacked { .. }), "{err:?}");
        let stats = broker.stats();
        assert_eq!(
            stats
                .queues
                .iter()
                .map(|q| (q.name.as_str(), q.bytes, q.rejected))
                .collect::<Vec<_>>(),
            [("q", 6, 1), ("r", 0, 1)]
        );
    }

    #[tokio::test]
    async fn a_requeued_message_is_never_refused() {
        let broker = limited(1, usize::MAX);
        broker.declare_queue(&QueueSpec::named("q")).await.unwrap();
        broker.publish(to("q", b"1")).await.unwrap();
        let taken = broker
            .receive("q", Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        // While it is out, another fills the queue; the requeue still puts it back.
        broker.publish(to("q", b"2")).await.unwrap();
        taken.requeue().await.unwrap();
        assert_eq!(broker.queue_depth("q").await.unwrap(), 2);
        assert_eq!(broker.stats().queues[0].rejected, 0);
    }

    #[tokio::test]
    async fn expired_messages_a_full_dead_letter_queue_refuses_are_counted() {
        let broker = limited(1, usize::MAX);
        broker
            .declare_queue(&QueueSpec::named("dlq"))
            .await
            .unwrap();
        let delayed = QueueSpec {
            message_ttl: Some(Duration::from_millis(20)),
            dead_letter_exchange: Some(String::new()),
            dead_letter_routing_key: Some("dlq".into()),
            ..QueueSpec::named("delayed")
        };
        broker.declare_queue(&delayed).await.unwrap();
        broker.publish(to("dlq", b"parked")).await.unwrap();
        broker.publish(to("delayed", b"expires")).await.unwrap();
        mod8_mq::testing::wait_until("the expired message is dropped and counted", || {
            let broker = broker.clone();
            async move { broker.stats().dead_letters_dropped == 1 }
        })
        .await;
        assert_eq!(broker.queue_depth("dlq").await.unwrap(), 1);
        assert_eq!(broker.queue_depth("delayed").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_config_bounds_the_broker_it_connects() {
        let broker = MqConfig::default()
            .with_memory_limits(MemoryQueueLimits {
                max_length: 1,
                max_bytes: 1 << 20,
            })
            .connect()
            .await
            .unwrap();
        broker.declare_queue(&QueueSpec::named("q")).await.unwrap();
        broker.publish(to("q", b"1")).await.unwrap();
        assert!(broker.publish(to("q", b"2")).await.is_err());
        let stats = broker.memory_stats().expect("the in-process broker");
        assert_eq!(stats.queues[0].rejected, 1);
        assert_eq!(stats.queues[0].max_bytes, 1 << 20);
    }
}
