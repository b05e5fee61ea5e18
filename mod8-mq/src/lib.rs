#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod broker;
pub mod config;
pub mod consumer;
pub mod consumers;
pub mod error;
pub mod memory;
pub mod message;
pub mod producer;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;

#[cfg(feature = "amqp")]
pub use amqp::{AmqpBroker, AmqpOptions};
pub use broker::{Broker, BrokerExt, Delivery, DeliveryStream, DynBroker, Publication};
pub use config::{connect, from_env, MqConfig};
pub use consumer::{handler_fn, Consumer, ConsumerHandle, ConsumerOptions, Handler, Outcome};
pub use error::{Error, Result};
pub use memory::MemoryBroker;
pub use message::{Analytics, Envelope, Notification, NotificationChannel, Payload, UserData};
pub use producer::{Producer, Route};
pub use topology::{RetryPolicy, Topology};
