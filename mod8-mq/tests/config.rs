//! Backend selection by URL.

use mod8_mq::{Broker, BrokerExt, Error, MqConfig};

#[tokio::test]
async fn memory_url_selects_the_in_process_broker() {
    let broker = mod8_mq::connect("memory://").await.unwrap();
    assert_eq!(broker.backend(), "memory");
    let broker = MqConfig::default().connect().await.unwrap();
    assert_eq!(broker.backend(), "memory");
    assert_eq!(broker.topology().dead_letter_queue, "dlq");
}

#[tokio::test]
async fn unknown_scheme_is_a_validation_error() {
    let err = mod8_mq::connect("kafka://localhost").await.unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
}

#[tokio::test]
async fn amqp_url_selects_rabbitmq() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq connect(url)") else {
        return;
    };
    let topology =
        mod8_mq::testing::test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq_cfg"));
    let broker = MqConfig::default()
        .with_url(url)
        .with_topology(topology.clone())
        .connect()
        .await
        .unwrap();
    assert_eq!(broker.backend(), "amqp");
    assert_eq!(
        broker
            .queue_depth(&topology.dead_letter_queue)
            .await
            .unwrap(),
        0
    );
    broker.delete_topology(&topology, 0).await.unwrap();
    broker.close().await.unwrap();
}
