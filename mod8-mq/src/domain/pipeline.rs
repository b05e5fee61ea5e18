//! Publishing mod8's messages: [`Pipeline`] sends user data, notifications and analytics
//! events along a [`Topology`]'s routes, one at a time or as the flow of a signup or a
//! purchase.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::handlers::validate_user;
use crate::domain::messages::{Analytics, Notification, NotificationChannel, UserData};
use crate::domain::topology::Topology;
use crate::envelope::{Envelope, Payload};
use crate::error::{Error, Result};
use crate::producer::{Producer, Route};

/// Priority of urgent messages (queues honour up to their `x-max-priority`, 10 by default).
pub const URGENT: u8 = 9;

/// How soon a message should be handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Urgency {
    /// In turn (no priority).
    #[default]
    Normal,
    /// Ahead of normal messages waiting in the same queue (priority [`URGENT`]).
    Urgent,
}

/// How to publish one message: its urgency and the correlation id tying it to others.
///
/// ```
/// use mod8_mq::domain::{PublishOptions, Urgency};
/// let id = uuid::Uuid::new_v4();
/// let options = PublishOptions::new()
///     .with_urgency(Urgency::Urgent)
///     .with_correlation_id(id);
/// assert_eq!(options, PublishOptions { urgency: Urgency::Urgent, correlation_id: Some(id) });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// How soon it should be handled (default [`Urgency::Normal`]).
    pub urgency: Urgency,
    /// The envelope's correlation id (default none).
    pub correlation_id: Option<Uuid>,
}

impl PublishOptions {
    /// Normal urgency, no correlation id.
    pub fn new() -> Self {
        PublishOptions::default()
    }

    /// Sets the urgency.
    pub fn with_urgency(mut self, urgency: Urgency) -> Self {
        self.urgency = urgency;
        self
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    fn envelope<T: Payload>(&self, payload: T) -> Envelope<T> {
        let envelope = Envelope::new(payload);
        match self.correlation_id {
            Some(id) => envelope.with_correlation_id(id),
            None => envelope,
        }
    }

    fn route(&self, route: Route) -> Route {
        match self.urgency {
            Urgency::Normal => route,
            Urgency::Urgent => route.with_priority(URGENT),
        }
    }
}

/// The message ids a pipeline step published, all sharing one correlation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The correlation id of every message of this step.
    pub correlation_id: Uuid,
    /// Ids of the published messages, in publishing order.
    pub message_ids: Vec<Uuid>,
}

/// Publishes mod8's messages along a [`Topology`]'s routes: one user data event,
/// notification or analytics event at a time, or the registration flow — a signup sends the
/// user data, a welcome email and a `signup` analytics event; a purchase sends a `purchase`
/// event and a receipt. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pipeline {
    producer: Producer,
    topology: Topology,
}

impl Pipeline {
    /// A pipeline publishing through `producer` along `topology`'s routes.
    pub fn new(producer: Producer, topology: Topology) -> Self {
        Pipeline { producer, topology }
    }

    /// The producer underneath.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The topology whose routes it publishes along.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Publishes a user data event; returns the message id once the broker confirmed it.
    pub async fn publish_user_data(&self, data: UserData, options: PublishOptions) -> Result<Uuid> {
        let envelope = options.envelope(data);
        let route = options.route(self.topology.user_data_route());
        self.producer.send(&envelope, &route).await?;
        Ok(envelope.id)
    }

    /// Publishes a notification (routing key `notification.<channel>`); urgent ones jump the
    /// queue. Returns the message id once the broker confirmed it.
    pub async fn publish_notification(
        &self,
        notification: Notification,
        options: PublishOptions,
    ) -> Result<Uuid> {
        let route = options.route(self.topology.notification_route(&notification));
        let envelope = options.envelope(notification);
        self.producer.send(&envelope, &route).await?;
        Ok(envelope.id)
    }

    /// Publishes an analytics event to every analytics subscriber. Returns the message id
    /// once the broker confirmed it.
    pub async fn publish_analytics(
        &self,
        event: Analytics,
        options: PublishOptions,
    ) -> Result<Uuid> {
        let envelope = options.envelope(event);
        let route = options.route(self.topology.analytics_route());
        self.producer.send(&envelope, &route).await?;
        Ok(envelope.id)
    }

    /// Publishes a signup. Validates first, so bad input never reaches the broker.
    pub async fn signup(&self, user: UserData) -> Result<Published> {
        validate_user(&user, Uuid::nil())?;
        let correlation = Uuid::new_v4();
        let options = PublishOptions::new().with_correlation_id(correlation);
        let welcome = Notification {
            recipient: user.email.clone(),
            subject: "Welcome".into(),
            content: format!("Welcome, {}!", user.username),
            channel: NotificationChannel::Email,
        };
        let event = Analytics {
            event_type: "signup".into(),
            user_id: user.username.clone(),
            properties: HashMap::from([(
                "registration_date".to_owned(),
                serde_json::Value::String(user.registration_date.to_string()),
            )]),
        };
        let ids = vec![
            self.publish_user_data(user, options).await?,
            self.publish_notification(welcome, options).await?,
            self.publish_analytics(event, options).await?,
        ];
        Ok(Published {
            correlation_id: correlation,
            message_ids: ids,
        })
    }

    /// Publishes a purchase of `product_id` for `amount` by `user_id`, with a receipt to
    /// `email`.
    pub async fn purchase(
        &self,
        user_id: &str,
        email: &str,
        product_id: &str,
        amount: f64,
    ) -> Result<Published> {
        if !amount.is_finite() || amount < 0.0 {
            return Err(Error::validation("amount", "must be a non-negative number"));
        }
        let correlation = Uuid::new_v4();
        let options = PublishOptions::new().with_correlation_id(correlation);
        let event = Analytics {
            event_type: "purchase".into(),
            user_id: user_id.to_owned(),
            properties: HashMap::from([
                ("product_id".to_owned(), serde_json::json!(product_id)),
                ("amount".to_owned(), serde_json::json!(amount)),
            ]),
        };
        let receipt = Notification {
            recipient: email.to_owned(),
            subject: "Your receipt".into(),
            content: format!("You bought {product_id} for {amount:.2}"),
            channel: NotificationChannel::Email,
        };
        let ids = vec![
            self.publish_analytics(event, options).await?,
            self.publish_notification(receipt, options).await?,
        ];
        Ok(Published {
            correlation_id: correlation,
            message_ids: ids,
        })
    }
}
