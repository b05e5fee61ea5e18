//! The registration flow with RabbitMQ really stopped (`rabbitmqctl stop_app`), not only cut
//! off by a proxy (tests/faults.rs): registrations still answer 201, their UserData events wait
//! in the outbox, and once the broker is started again every profile reaches the document
//! store.
//!
//! In a file of its own so it runs alone (cargo runs test binaries one after another): it stops
//! the broker every other suite uses. A guard starts it again even when the test fails.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use mod8_testkit::rabbitmq::BrokerGuard;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_succeed_while_the_broker_is_stopped_and_their_events_arrive_after() {
    let Some(mut config) = real_config("app fault test: broker stopped").await else {
        return;
    };
    config.mq.publish_timeout = Some(Duration::from_secs(3));
    config.outbox_lease = Duration::from_secs(1);
    config.outbox_poll = Duration::from_millis(200);
    with_real(config, |config| async move {
        let s = Server::start(config).await;
        let broker = std::sync::Arc::new(BrokerGuard::new());
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.stop()).await.unwrap();

        let mut names = Vec::new();
        for _ in 0..3 {
            let n = name("stopped");
            s.register(&n).await; // asserts 201
            names.push(n);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            s.app.outbox.backlog() > 0,
            "no event can have been confirmed by a stopped broker"
        );
        for n in &names {
            assert!(s.app.docs.profile_by_username(n).await.unwrap().is_none());
        }

        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.start())
            .await
            .unwrap();
        eventually_within(
            "every registration's profile once the broker is back",
            Duration::from_secs(120),
            || profiles_stored(&s, &names),
        )
        .await;
        eventually("the outbox to drain", || async {
            s.app.outbox.backlog() == 0
        })
        .await;
        s.app.shutdown().await;
        drop(broker);
    })
    .await;
}
