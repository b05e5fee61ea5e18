//! mod8's own messaging, built on the generic broker, producer and consumer runner: the
//! [`Topology`] (exchange and queue names, and the [`Declarations`](crate::Declarations) a
//! broker makes for them), the message payloads ([`UserData`], [`Notification`],
//! [`Analytics`], [`ProductEvent`]), their handlers ([`UserDataConsumer`], [`NotificationConsumer`],
//! [`AnalyticsConsumer`]) with the sinks they write to, the [`SentLedger`] that makes a
//! notification sent once per message id, and [`Pipeline`], which publishes
//! them.
//!
//! ```
//! use mod8_mq::domain::{LoggingNotifier, NotificationConsumer, Pipeline, PublishOptions, Topology};
//! use mod8_mq::domain::{Notification, NotificationChannel};
//! use mod8_mq::{MqConfig, Producer};
//!
//! # #[tokio::main] async fn main() -> Result<(), mod8_mq::Error> {
//! let topology = Topology::default();
//! let broker = MqConfig::new("memory://")
//!     .with_declarations(topology.declarations())
//!     .connect()
//!     .await?;
//! let notifier = LoggingNotifier::default();
//! let consumer = NotificationConsumer::new(notifier.clone())
//!     .start(broker.clone(), &topology)
//!     .await?;
//! let pipeline = Pipeline::new(Producer::new(broker.clone()), topology.clone());
//! pipeline
//!     .publish_notification(
//!         Notification {
//!             recipient: "ada@example.com".into(),
//!             subject: "Welcome".into(),
//!             content: "Glad you are here".into(),
//!             channel: NotificationChannel::Email,
//!         },
//!         PublishOptions::new(),
//!     )
//!     .await?;
//! while notifier.sent(NotificationChannel::Email) == 0 {
//!     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//! }
//! consumer.shutdown().await?;
//! # Ok(()) }
//! ```

mod handlers;
mod ledger;
mod messages;
mod pipeline;
mod topology;

pub use handlers::{
    validate_analytics, validate_user, AnalyticsConsumer, EnrichedUser, EventSink, LoggingNotifier,
    MemoryEventSink, MemoryProfileSink, NotificationConsumer, Notifier, ProfileSink, TimedEvent,
    UserDataConsumer,
};
pub use ledger::{MemorySentLedger, SentLedger};
pub use messages::{Analytics, Notification, NotificationChannel, ProductEvent, UserData};
pub use messages::{OrderPlaced, OrderPlacedLine};
pub use pipeline::{Pipeline, PublishOptions, Published, Urgency, URGENT};
pub use topology::{Topology, DEFAULT_DELIVERY_LIMIT};
