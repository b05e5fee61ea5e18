//! The conformance suite on the in-process broker (always runs).

mod8_mq::conformance_tests!(async { Some(mod8_mq::testing::memory_fixture()) });

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
