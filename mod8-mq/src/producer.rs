//! Publishing typed messages: [`Producer`] wraps any [`Broker`](crate::Broker) with
//! envelopes, routing and the three convenience methods.

use uuid::Uuid;

use crate::broker::{DynBroker, Publication};
use crate::error::Result;
use crate::message::{Analytics, Envelope, Notification, Payload, UserData, CONTENT_TYPE};
use crate::topology::Topology;

/// Priority for urgent work (queues honour up to their `x-max-priority`, 10 by default).
pub const URGENT: u8 = 9;

/// Publishes typed messages with confirmation. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Producer {
    broker: DynBroker,
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
    /// (AMQP `mandatory`). True by default, so nothing is dropped silently; set it to false
    /// only where losing a message nobody subscribed to is intended.
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

    /// With the `mandatory` flag set as given (see [`Route::mandatory`]).
    pub fn with_mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }
}

/// The publication carrying `envelope` along `route` (JSON body; message id, correlation id,
/// timestamp and content type from the envelope; priority and `mandatory` from the route).
pub fn publication<T: Payload>(envelope: &Envelope<T>, route: &Route) -> Result<Publication> {
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

impl Producer {
    /// A producer on `broker`.
    pub fn new(broker: DynBroker) -> Self {
        Producer { broker }
    }

    /// The broker underneath.
    pub fn broker(&self) -> &DynBroker {
        &self.broker
    }

    fn topology(&self) -> &Topology {
        self.broker.topology()
    }

    /// Publishes `envelope` along `route`; returns once the broker confirmed it.
    pub async fn send<T: Payload>(&self, envelope: &Envelope<T>, route: &Route) -> Result<()> {
        self.broker.publish(publication(envelope, route)?).await
    }

    /// Publishes many envelopes along one route with every confirm in flight at once.
    pub async fn send_batch<T: Payload>(
        &self,
        envelopes: &[Envelope<T>],
        route: &Route,
    ) -> Result<Vec<Result<()>>> {
        let publications = envelopes
            .iter()
            .map(|e| publication(e, route))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.broker.publish_batch(publications).await)
    }

    /// The route of user data events.
    pub fn user_data_route(&self) -> Route {
        let t = self.topology();
        Route::new(t.data_exchange.clone(), t.user_data_key.clone())
    }

    /// The route of a notification (`notification.<channel>`).
    pub fn notification_route(&self, notification: &Notification) -> Route {
        Route::new(
            self.topology().notifications_exchange.clone(),
            Topology::notification_key(notification.channel),
        )
    }

    /// The route of analytics events (fanout).
    pub fn analytics_route(&self) -> Route {
        Route::new(self.topology().analytics_exchange.clone(), "")
    }

    /// Publishes a user data event; returns the message id.
    pub async fn publish_user_data(
        &self,
        data: UserData,
        correlation: Option<Uuid>,
    ) -> Result<Uuid> {
        let envelope = with_correlation(Envelope::new(data), correlation);
        self.send(&envelope, &self.user_data_route()).await?;
        Ok(envelope.id)
    }

    /// Publishes a notification; `urgent` ones jump the queue. Returns the message id.
    pub async fn publish_notification(
        &self,
        notification: Notification,
        urgent: bool,
        correlation: Option<Uuid>,
    ) -> Result<Uuid> {
        let mut route = self.notification_route(&notification);
        if urgent {
            route = route.with_priority(URGENT);
        }
        let envelope = with_correlation(Envelope::new(notification), correlation);
        self.send(&envelope, &route).await?;
        Ok(envelope.id)
    }

    /// Publishes an analytics event to every analytics subscriber. Returns the message id.
    pub async fn publish_analytics(
        &self,
        event: Analytics,
        correlation: Option<Uuid>,
    ) -> Result<Uuid> {
        let envelope = with_correlation(Envelope::new(event), correlation);
        self.send(&envelope, &self.analytics_route()).await?;
        Ok(envelope.id)
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

fn with_correlation<T: Payload>(envelope: Envelope<T>, correlation: Option<Uuid>) -> Envelope<T> {
    match correlation {
        Some(id) => envelope.with_correlation_id(id),
        None => envelope,
    }
}
