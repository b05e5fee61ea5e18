#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod broker;
mod config;
mod declarations;
mod envelope;
mod error;
mod producer;
mod runner;

#[cfg(feature = "amqp")]
#[cfg_attr(docsrs, doc(cfg(feature = "amqp")))]
pub mod amqp;
pub mod domain;
pub mod memory;
pub mod published;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[cfg(feature = "amqp")]
#[cfg_attr(docsrs, doc(cfg(feature = "amqp")))]
pub use amqp::{AmqpBroker, AmqpOptions};
pub use broker::{
    Acknowledge, Broker, BrokerExt, Delivery, DeliveryStream, DynBroker, Headers, Publication,
};
pub use config::{
    connect, MqConfig, AMQP_CLUSTER_URLS_VAR, AMQP_URL_VAR, DEFAULT_URL, MAX_QUEUE_BYTES_VAR,
    MAX_QUEUE_LENGTH_VAR,
};
pub use declarations::{
    BindingSpec, DeadLetterRoute, DeadLetterStrategy, Declarations, ExchangeKind, ExchangeSpec,
    QueueSpec, QueueType, RetryPolicy,
};
pub use envelope::{Envelope, Payload, CONTENT_TYPE, DEFAULT_MAX_RETRIES};
pub use error::{BoxError, Error, Result};
pub use memory::MemoryBroker;
pub use producer::{Producer, Route};
pub use runner::{
    handler_fn, Consumer, ConsumerHandle, ConsumerOptions, ConsumerStats, FnHandler, Handler,
    Outcome, HEADER_ATTEMPTS, HEADER_ORIGINAL_QUEUE, HEADER_REASON, MIN_IDLE_QUEUE_CHECK,
};
