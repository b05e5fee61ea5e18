//! Publishing typed messages: [`Producer`] wraps any [`Broker`](crate::Broker) with
//! envelopes and [`Route`]s, and returns once the broker has confirmed.

use crate::broker::{DynBroker, Publication};
use crate::envelope::{Envelope, Payload, CONTENT_TYPE};
use crate::error::Result;
use crate::published::{PublishedCount, PublishedCounts};

/// Publishes typed messages with confirmation. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Producer {
    broker: DynBroker,
    published: std::sync::Arc<PublishedCounts>,
}

/// Where and how to publish one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Exchange.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Priority (`None`: normal).
    pub priority: Option<u8>,
    /// Whether a message no queue receives is an [`Error::Unroutable`](crate::Error::Unroutable)
    /// (AMQP `mandatory`). True by default, so nothing is dropped silently; turn it off (with
    /// [`Route::with_unroutable_dropped`]) only where losing a message nobody subscribed to is
    /// intended.
    pub mandatory: bool,
}

impl Route {
    /// To `exchange` with `routing_key`, normal priority, mandatory.
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        Route {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            priority: None,
            mandatory: true,
        }
    }

    /// With a priority.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Not mandatory: a message no queue takes is confirmed and dropped instead of being an
    /// [`Error::Unroutable`](crate::Error::Unroutable) (see [`Route::mandatory`]).
    pub fn with_unroutable_dropped(mut self) -> Self {
        self.mandatory = false;
        self
    }
}

impl Publication {
    /// The publication carrying `envelope` along `route`: JSON body; message id, correlation
    /// id, timestamp and content type from the envelope; priority and `mandatory` from the
    /// route.
    pub fn from_envelope<T: Payload>(envelope: &Envelope<T>, route: &Route) -> Result<Self> {
        let mut p = Publication::new(
            route.exchange.clone(),
            route.routing_key.clone(),
            envelope.to_bytes()?,
        );
        envelope_properties(&mut p, envelope);
        p.priority = route.priority;
        p.mandatory = route.mandatory;
        Ok(p)
    }
}

impl Producer {
    /// A producer on `broker`.
    pub fn new(broker: DynBroker) -> Self {
        Producer {
            broker,
            published: Default::default(),
        }
    }

    /// Confirmed publishes through this producer (and its clones) so far, per route, in
    /// route order; at most [`crate::published::MAX_COUNTED_ROUTES`] routes apart, the rest
    /// together under [`PublishedCount::OTHER`].
    pub fn published(&self) -> Vec<PublishedCount> {
        self.published.snapshot()
    }

    /// The broker underneath.
    pub fn broker(&self) -> &DynBroker {
        &self.broker
    }

    /// Publishes `envelope` along `route`; returns once the broker confirmed it.
    pub async fn send<T: Payload>(&self, envelope: &Envelope<T>, route: &Route) -> Result<()> {
        self.broker
            .publish(Publication::from_envelope(envelope, route)?)
            .await?;
        self.published.add(&route.exchange, &route.routing_key, 1);
        Ok(())
    }

    /// Publishes many envelopes along one route with every confirm in flight at once.
    pub async fn send_batch<T: Payload>(
        &self,
        envelopes: &[Envelope<T>],
        route: &Route,
    ) -> Result<Vec<Result<()>>> {
        let publications = envelopes
            .iter()
            .map(|e| Publication::from_envelope(e, route))
            .collect::<Result<Vec<_>>>()?;
        let results = self.broker.publish_batch(publications).await;
        let confirmed = results.iter().filter(|r| r.is_ok()).count();
        self.published.add(
            &route.exchange,
            &route.routing_key,
            u64::try_from(confirmed).unwrap_or(u64::MAX),
        );
        Ok(results)
    }
}

/// Sets the AMQP properties that describe `envelope`: message id, correlation id, timestamp
/// and content type.
pub(crate) fn envelope_properties<T: Payload>(p: &mut Publication, envelope: &Envelope<T>) {
    p.message_id = Some(envelope.id.to_string());
    p.correlation_id = envelope.correlation_id.map(|id| id.to_string());
    // AMQP timestamps are unsigned seconds; a date before 1970 has none.
    p.timestamp = u64::try_from(envelope.timestamp.timestamp()).ok();
    p.content_type = Some(CONTENT_TYPE.into());
}
