//! The conformance suite on a three-node RabbitMQ cluster with quorum queues
//! (`MOD8_AMQP_CLUSTER_URLS`, which `scripts/services.sh up` exports). Unset, the suite skips
//! with one line, or fails with `MOD8_REQUIRE_SERVICES=1`.
#![cfg(feature = "amqp")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use mod8_mq::testing::{test_topology_with_prefix, MqFixture};
use mod8_mq::{AmqpBroker, Broker, BrokerExt, MqConfig, AMQP_CLUSTER_URLS_VAR};

async fn cluster(suite: &str) -> Option<MqFixture> {
    let urls = mod8_testkit::service_url(AMQP_CLUSTER_URLS_VAR, suite)?;
    let topology = test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq_qq"))
        .with_quorum_queues()
        .with_delivery_limit(3);
    let broker = AmqpBroker::connect(&urls, topology.declarations())
        .await
        .expect("MOD8_AMQP_CLUSTER_URLS is set but no RabbitMQ cluster node is reachable");
    Some(MqFixture::new(Arc::new(broker), topology))
}

mod8_mq::conformance_tests!(cluster(
    "mq conformance on a RabbitMQ cluster (quorum queues)"
));

/// `MqConfig` takes the cluster's URL list like a single URL: the broker connects to the
/// first node, declares quorum queues there, and they are quorum queues (a classic
/// declaration of the same name is refused by the broker as a conflict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_connects_to_the_cluster() {
    let Some(urls) = mod8_testkit::service_url(AMQP_CLUSTER_URLS_VAR, "mq cluster config") else {
        return;
    };
    let nodes: Vec<&str> = urls.split(',').map(str::trim).collect();
    assert!(
        nodes.len() >= 2,
        "{AMQP_CLUSTER_URLS_VAR} lists one node only: {urls}"
    );
    let topology =
        test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq_qcfg")).with_quorum_queues();
    let config = MqConfig::cluster(&nodes).with_declarations(topology.declarations());
    let broker = config.connect().await.unwrap();
    assert_eq!(broker.backend(), "amqp");
    assert_eq!(
        broker.queue_depth(&topology.user_data_queue).await.unwrap(),
        0
    );
    let classic = mod8_mq::QueueSpec::named(topology.user_data_queue.clone());
    let err = broker
        .declare_queue(&classic.clone().with_max_length(5))
        .await;
    assert!(
        matches!(&err, Err(mod8_mq::Error::Conflict { .. })),
        "a classic redeclaration of a quorum queue: {err:?}"
    );
    broker.delete_all(&topology.teardown(0)).await.unwrap();
    broker.close().await.unwrap();
}
