//! The [`Broker`] trait every backend implements, and the values that cross it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::declarations::{BindingSpec, Declarations, ExchangeSpec, QueueSpec};
use crate::error::Result;
use crate::memory::MemoryBrokerStats;

/// String headers carried with a message (AMQP `headers` table).
pub type Headers = BTreeMap<String, String>;

/// A message ready to be published: raw bytes plus the properties the broker looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Exchange (`""` is the default exchange, which routes by queue name).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Body.
    pub body: Vec<u8>,
    /// AMQP `message_id` (the envelope id).
    pub message_id: Option<String>,
    /// AMQP `content_type`.
    pub content_type: Option<String>,
    /// AMQP priority (0 lowest); honoured by queues with `x-max-priority`.
    pub priority: Option<u8>,
    /// AMQP `correlation_id`: ties related messages together (the envelope's correlation id).
    pub correlation_id: Option<String>,
    /// AMQP `timestamp`: when the message was created, in seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// Extra headers.
    pub headers: Headers,
    /// When true, a message no queue receives is an [`Error::Unroutable`](crate::Error::Unroutable).
    pub mandatory: bool,
}

impl Publication {
    /// A mandatory publication of `body` to `exchange` with `routing_key`.
    pub fn new(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> Self {
        Publication {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body: body.into(),
            message_id: None,
            content_type: None,
            priority: None,
            correlation_id: None,
            timestamp: None,
            headers: Headers::new(),
            mandatory: true,
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets the message id.
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the creation time (seconds since the Unix epoch).
    pub fn with_timestamp(mut self, seconds: u64) -> Self {
        self.timestamp = Some(seconds);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }
}

/// Settles one delivery with the broker. Implemented by each backend.
///
/// `Ok` only when the broker was told; when the delivery's channel or connection is gone the
/// result is a transient error (the broker redelivers the message), never a quiet `Ok`.
#[async_trait]
pub trait Acknowledge: Send + Sync + 'static {
    /// The message is done; the broker forgets it.
    async fn ack(self: Box<Self>) -> Result<()>;
    /// Give the message back to its queue for redelivery (marked redelivered).
    async fn requeue(self: Box<Self>) -> Result<()>;
}

/// A message handed to a subscriber. Dropping it without [`Delivery::ack`] leaves it unacked:
/// the broker redelivers it when the subscription ends.
pub struct Delivery {
    /// Body.
    pub body: Vec<u8>,
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// AMQP `message_id`.
    pub message_id: Option<String>,
    /// AMQP priority.
    pub priority: Option<u8>,
    /// Headers.
    pub headers: Headers,
    /// Whether this message was delivered before and not acknowledged.
    pub redelivered: bool,
    acker: Box<dyn Acknowledge>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("message_id", &self.message_id)
            .field("priority", &self.priority)
            .field("headers", &self.headers)
            .field("redelivered", &self.redelivered)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl Delivery {
    /// A delivery of `body` settled through `acker` (for backend implementers), with no
    /// exchange, routing key, message id, priority or headers and not redelivered; set the
    /// public fields the backend knows.
    pub fn new(body: Vec<u8>, acker: Box<dyn Acknowledge>) -> Self {
        Delivery {
            body,
            exchange: String::new(),
            routing_key: String::new(),
            message_id: None,
            priority: None,
            headers: Headers::new(),
            redelivered: false,
            acker,
        }
    }

    /// Acknowledges the message. An error means the broker was not told (its channel is
    /// gone, for example) and will deliver the message again.
    pub async fn ack(self) -> Result<()> {
        self.acker.ack().await
    }

    /// Returns the message to its queue for redelivery.
    pub async fn requeue(self) -> Result<()> {
        self.acker.requeue().await
    }
}

/// Deliveries from one queue. Ends (or yields an error) when the subscription is lost, for
/// example with its connection; the consumer's supervisor then subscribes again.
pub type DeliveryStream = BoxStream<'static, Result<Delivery>>;

/// A message broker: declares exchanges and queues, publishes with confirmation, hands out
/// deliveries. It knows no application's names: what it declares on connect (and again after
/// a reconnect) is the [`Declarations`] it was built with.
///
/// Object safe; use it as `Arc<dyn Broker>` ([`DynBroker`]). Conveniences that build on
/// these methods live in [`BrokerExt`].
#[async_trait]
pub trait Broker: fmt::Debug + Send + Sync + 'static {
    /// The backend's name (`amqp`, `memory`).
    fn backend(&self) -> &'static str;
    /// Declares an exchange; idempotent, a [`Error::Conflict`](crate::Error::Conflict) when it
    /// exists with another type.
    async fn declare_exchange(&self, spec: &ExchangeSpec) -> Result<()>;
    /// Declares a queue; idempotent, a [`Error::Conflict`](crate::Error::Conflict) naming the
    /// argument when it exists with other arguments.
    async fn declare_queue(&self, spec: &QueueSpec) -> Result<()>;
    /// Binds a queue to an exchange.
    async fn bind(&self, binding: &BindingSpec) -> Result<()>;
    /// Deletes a queue and its messages (no error when it does not exist).
    async fn delete_queue(&self, name: &str) -> Result<()>;
    /// Deletes an exchange (no error when it does not exist).
    async fn delete_exchange(&self, name: &str) -> Result<()>;
    /// Publishes one message and returns once the broker has confirmed it. A nack, an
    /// unroutable mandatory message and a missing confirm each have their own error.
    async fn publish(&self, publication: Publication) -> Result<()>;
    /// Publishes many messages with all their confirms in flight at once; one result per
    /// message, in order.
    async fn publish_batch(&self, publications: Vec<Publication>) -> Vec<Result<()>>;
    /// Starts receiving from `queue`, with at most `prefetch` unacknowledged deliveries.
    async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<DeliveryStream>;
    /// Messages ready in `queue` (not counting unacknowledged ones).
    async fn queue_depth(&self, queue: &str) -> Result<u64>;
    /// Closes the broker connection; later calls fail with [`Error::Closed`](crate::Error::Closed)
    /// (not transient), and consumers on it end with that error.
    async fn close(&self) -> Result<()>;
    /// For the in-process broker, every queue's occupancy, bounds and refused publishes
    /// ([`MemoryBrokerStats`]); `None` for a broker that keeps its own figures (RabbitMQ's
    /// management API reports its queues). The default is `None`.
    fn memory_stats(&self) -> Option<MemoryBrokerStats> {
        None
    }
}

/// A shared, type-erased broker.
pub type DynBroker = Arc<dyn Broker>;

macro_rules! forward_broker {
    ($ty:ty) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<B: Broker + ?Sized> Broker for $ty {
            fn backend(&self) -> &'static str {
                (**self).backend()
            }
            async fn declare_exchange(&self, spec: &ExchangeSpec) -> Result<()> {
                (**self).declare_exchange(spec).await
            }
            async fn declare_queue(&self, spec: &QueueSpec) -> Result<()> {
                (**self).declare_queue(spec).await
            }
            async fn bind(&self, binding: &BindingSpec) -> Result<()> {
                (**self).bind(binding).await
            }
            async fn delete_queue(&self, name: &str) -> Result<()> {
                (**self).delete_queue(name).await
            }
            async fn delete_exchange(&self, name: &str) -> Result<()> {
                (**self).delete_exchange(name).await
            }
            async fn publish(&self, publication: Publication) -> Result<()> {
                (**self).publish(publication).await
            }
            async fn publish_batch(&self, publications: Vec<Publication>) -> Vec<Result<()>> {
                (**self).publish_batch(publications).await
            }
            async fn subscribe(&self, queue: &str, prefetch: u16) -> Result<DeliveryStream> {
                (**self).subscribe(queue, prefetch).await
            }
            async fn queue_depth(&self, queue: &str) -> Result<u64> {
                (**self).queue_depth(queue).await
            }
            async fn close(&self) -> Result<()> {
                (**self).close().await
            }
            fn memory_stats(&self) -> Option<MemoryBrokerStats> {
                (**self).memory_stats()
            }
        }
    };
}

forward_broker!(Arc<B>);
forward_broker!(Box<B>);

/// Conveniences for every [`Broker`].
#[async_trait]
pub trait BrokerExt: Broker {
    /// Declares every exchange, then every queue, then every binding of `declarations`
    /// (idempotent).
    async fn declare_all(&self, declarations: &Declarations) -> Result<()> {
        for exchange in &declarations.exchanges {
            self.declare_exchange(exchange).await?;
        }
        for queue in &declarations.queues {
            self.declare_queue(queue).await?;
        }
        for binding in &declarations.bindings {
            self.bind(binding).await?;
        }
        Ok(())
    }

    /// Deletes every queue, then every exchange of `declarations` (missing ones are no
    /// error; a queue's bindings go with it). For tests and teardown.
    async fn delete_all(&self, declarations: &Declarations) -> Result<()> {
        for queue in &declarations.queues {
            self.delete_queue(&queue.name).await?;
        }
        for exchange in &declarations.exchanges {
            self.delete_exchange(&exchange.name).await?;
        }
        Ok(())
    }

    /// Takes one message from `queue`, waiting up to `wait`; `None` when none arrived. Settle
    /// it with [`Delivery::ack`] or [`Delivery::requeue`]. Meant for inspection (for example
    /// reading the dead-letter queue), not for throughput.
    async fn receive(&self, queue: &str, wait: std::time::Duration) -> Result<Option<Delivery>> {
        let mut stream = self.subscribe(queue, 1).await?;
        match tokio::time::timeout(wait, futures::StreamExt::next(&mut stream)).await {
            Ok(Some(delivery)) => delivery.map(Some),
            Ok(None) | Err(_) => Ok(None),
        }
    }
}

impl<B: Broker + ?Sized> BrokerExt for B {}
