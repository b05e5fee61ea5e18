//! mod8-mq: topology, producer, the three built-in consumers, and a failing handler whose
//! message is retried with growing delays and then parked in the dead-letter queue.
//!
//! Runs on the in-process broker, or on RabbitMQ when `MOD8_AMQP_URL` is set (with its own
//! `mod8_example.*` names, deleted at the end).
//!
//! `cargo run -p mod8-examples --example mq`

use std::time::Duration;

use mod8_mq::domain::{
    AnalyticsConsumer, LoggingNotifier, MemoryEventSink, MemoryProfileSink, NotificationChannel,
    NotificationConsumer, Pipeline, PublishOptions, Topology, UserData, UserDataConsumer,
};
use mod8_mq::{
    handler_fn, BrokerExt, Envelope, MqConfig, Outcome, Producer, RetryPolicy, HEADER_ATTEMPTS,
    HEADER_REASON,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Topology: names with a prefix, and short retry delays so the demo is quick.
    let topology = Topology::with_prefix("mod8_example").with_retry(RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(2),
    });
    let broker = MqConfig::from_env()?
        .with_declarations(topology.declarations())
        .connect()
        .await?;
    println!("broker: {}", broker.backend());

    // The three built-in consumers.
    let profiles = MemoryProfileSink::default();
    let events = MemoryEventSink::default();
    let notifier = LoggingNotifier::default();
    let consumers = vec![
        UserDataConsumer::new(profiles.clone())
            .start(broker.clone(), &topology)
            .await?,
        NotificationConsumer::new(notifier.clone())
            .start(broker.clone(), &topology)
            .await?,
        AnalyticsConsumer::new(events.clone())
            .start(broker.clone(), &topology)
            .await?,
    ];

    // The producer side: a signup and a purchase, each a few confirmed messages.
    let pipeline = Pipeline::new(Producer::new(broker.clone()), topology.clone());
    let signup = pipeline
        .signup(UserData {
            username: "ada".into(),
            email: "ada@example.com".into(),
            registration_date: "2026-11-22".parse()?,
        })
        .await?;
    println!(
        "signup published {} messages, correlation {}",
        signup.message_ids.len(),
        signup.correlation_id
    );
    pipeline
        .purchase("ada", "ada@example.com", "book-42", 19.90)
        .await?;

    while profiles.profiles().is_empty()
        || events.events().len() < 2
        || notifier.sent(NotificationChannel::Email) < 2
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "processed: {} profile(s), {} event(s), {} email(s)",
        profiles.profiles().len(),
        events.events().len(),
        notifier.sent(NotificationChannel::Email)
    );
    for consumer in consumers {
        consumer.shutdown().await?;
    }

    // A handler that always fails transiently: retried after 200 ms, 400 ms, 800 ms, then
    // dead-lettered with the reason and the number of attempts.
    let failing = topology
        .consumer(
            broker.clone(),
            topology.user_data_queue.clone(),
            handler_fn(|m: Envelope<UserData>| async move {
                println!(
                    "  attempt {} for {}: failing",
                    m.retry_count + 1,
                    m.payload.username
                );
                Outcome::retry("the CRM is down")
            }),
        )
        .start()
        .await?;
    pipeline
        .publish_user_data(
            UserData {
                username: "grace".into(),
                email: "grace@example.com".into(),
                registration_date: "2026-11-22".parse()?,
            },
            PublishOptions::new(),
        )
        .await?;
    while topology.dead_letter_count(broker.as_ref()).await? == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "retried {} times, then dead-lettered; dlq holds {}",
        failing.stats().retried(),
        topology.dead_letter_count(broker.as_ref()).await?
    );
    failing.shutdown().await?;
    if let Some(dead) = broker
        .receive(&topology.dead_letter_queue, Duration::from_secs(5))
        .await?
    {
        println!(
            "dead letter: reason={:?} attempts={:?}",
            dead.headers.get(HEADER_REASON),
            dead.headers.get(HEADER_ATTEMPTS)
        );
        dead.ack().await?;
    }

    broker.delete_all(&topology.teardown(5)).await?;
    broker.close().await?;
    Ok(())
}
