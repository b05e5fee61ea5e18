//! A real round trip to RabbitMQ: declare a queue, publish with a confirm, get it back.
#![cfg(feature = "amqp")]

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

#[tokio::test]
async fn amqp_round_trip() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq amqp round trip") else {
        return;
    };
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("RabbitMQ is set but not reachable");
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let queue = mod8_testkit::unique_name("mod8_roundtrip");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "broker did not ack: {confirm:?}");
    let message = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the published message is on the queue");
    assert_eq!(message.delivery.data, b"hello");
    conn.close(200, "done".into()).await.unwrap();
}
