//! The built-in consumers and the pipeline, end to end on the in-process broker.

use mod8_mq::consumers::{
    AnalyticsConsumer, LoggingNotifier, MemoryEventSink, MemoryProfileSink, NotificationConsumer,
    Pipeline, UserDataConsumer,
};
use mod8_mq::testing::{memory_broker, take_one, wait_until};
use mod8_mq::topology::HEADER_REASON;
use mod8_mq::{BrokerExt, NotificationChannel, Producer, UserData};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_and_purchase_flow_through_the_three_consumers() {
    let broker = memory_broker();
    let profiles = MemoryProfileSink::default();
    let events = MemoryEventSink::default();
    let notifier = LoggingNotifier::default();
    let users = UserDataConsumer::new(profiles.clone())
        .start(broker.clone())
        .await
        .unwrap();
    let notes = NotificationConsumer::new(notifier.clone())
        .start(broker.clone())
        .await
        .unwrap();
    let analytics = AnalyticsConsumer::new(events.clone())
        .start(broker.clone())
        .await
        .unwrap();
    let pipeline = Pipeline::new(Producer::new(broker.clone()));
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
    let broker = memory_broker();
    let profiles = MemoryProfileSink::default();
    let users = UserDataConsumer::new(profiles.clone())
        .start(broker.clone())
        .await
        .unwrap();
    Producer::new(broker.clone())
        .publish_user_data(
            UserData {
                username: "x".into(),
                email: "not-an-email".into(),
                registration_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            },
            None,
        )
        .await
        .unwrap();
    wait_until("dead-lettered", || async {
        broker.dead_letter_count().await.unwrap() == 1
    })
    .await;
    users.shutdown().await.unwrap();
    assert!(profiles.profiles().is_empty());
    let dlq = broker.topology().dead_letter_queue.clone();
    let (headers, _) = take_one(&broker, &dlq).await;
    assert!(headers[HEADER_REASON].starts_with("rejected: invalid input"));
    // The pipeline refuses the same input before publishing anything.
    let err = Pipeline::new(Producer::new(broker.clone()))
        .signup(UserData {
            username: "x".into(),
            email: "nope".into(),
            registration_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, mod8_mq::Error::Validation(_)));
}
