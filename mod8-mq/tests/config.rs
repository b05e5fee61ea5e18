//! Backend selection by URL, and the configuration from the environment.

use mod8_mq::domain::Topology;
use mod8_mq::{Broker, BrokerExt, Error, MqConfig, AMQP_CLUSTER_URLS_VAR, AMQP_URL_VAR};

#[tokio::test]
async fn memory_url_selects_the_in_process_broker() {
    let broker = mod8_mq::connect("memory://").await.unwrap();
    assert_eq!(broker.backend(), "memory");
    let topology = Topology::default();
    let broker = MqConfig::default()
        .with_declarations(topology.declarations())
        .connect()
        .await
        .unwrap();
    assert_eq!(broker.backend(), "memory");
    assert_eq!(topology.dead_letter_queue, "dlq");
    // The default topology was declared: its dead-letter queue exists.
    assert_eq!(broker.queue_depth("dlq").await.unwrap(), 0);
}

#[tokio::test]
async fn unknown_scheme_is_a_validation_error() {
    let err = mod8_mq::connect("kafka://localhost").await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field, .. } if field == "url"),
        "{err:?}"
    );
}

/// `from_env` reads `MOD8_AMQP_URL` (read here, never changed: other tests of this binary
/// use it), without it `MOD8_AMQP_CLUSTER_URLS`, and without either is the embedded
/// in-process broker.
#[test]
fn from_env_reads_the_amqp_url() {
    let config = MqConfig::from_env().unwrap();
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (set(AMQP_URL_VAR), set(AMQP_CLUSTER_URLS_VAR)) {
        (Some(url), _) => assert_eq!(config.url, url.trim()),
        (None, Some(urls)) => {
            let nodes: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
            assert_eq!(config.urls(), nodes);
        }
        (None, None) => assert_eq!(config, MqConfig::default()),
    }
    assert!(config.declarations.is_empty());
    assert_eq!(MqConfig::default().url, "memory://");
}

#[tokio::test]
async fn amqp_url_selects_rabbitmq() {
    let Some(url) = mod8_testkit::service_url(mod8_testkit::AMQP, "mq connect(url)") else {
        return;
    };
    let topology =
        mod8_mq::testing::test_topology_with_prefix(&mod8_testkit::unique_name("mod8mq_cfg"));
    let broker = MqConfig::new(url)
        .with_declarations(topology.declarations())
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
    broker.delete_all(&topology.teardown(0)).await.unwrap();
    broker.close().await.unwrap();
}
