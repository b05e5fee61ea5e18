//! The conformance suite on the in-process broker (always runs).

mod8_mq::conformance_tests!(async { Some(mod8_mq::testing::memory_broker()) });
