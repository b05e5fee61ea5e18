//! mod8's message payloads: user data, notifications, analytics events, order events and
//! catalog product events.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::envelope::Payload;

/// A user registered or changed their profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserData {
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Day of registration.
    pub registration_date: NaiveDate,
}

impl Payload for UserData {
    const KIND: &'static str = "user_data";
}

/// How a notification reaches its recipient; also the last word of its routing key
/// (`notification.email`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    /// Email.
    Email,
    /// Text message.
    Sms,
    /// Mobile push.
    Push,
}

impl NotificationChannel {
    /// The routing-key word: `email`, `sms`, `push`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationChannel::Email => "email",
            NotificationChannel::Sms => "sms",
            NotificationChannel::Push => "push",
        }
    }
}

/// A message to send to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Address (email, phone number, device) of the recipient.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub content: String,
    /// Delivery channel.
    pub channel: NotificationChannel,
}

impl Payload for Notification {
    const KIND: &'static str = "notification";
}

/// Something a user did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analytics {
    /// What happened, for example `signup` or `purchase`.
    pub event_type: String,
    /// Who did it.
    pub user_id: String,
    /// Free-form details.
    #[serde(default)]
    pub properties: HashMap<String, serde_json::Value>,
}

impl Payload for Analytics {
    const KIND: &'static str = "analytics";
}

/// An order was placed (checkout committed): published by the outbox relay to the data
/// exchange under [`Topology::order_placed_route`](crate::domain::Topology::order_placed_route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: uuid::Uuid,
    /// The buyer.
    pub user_id: uuid::Uuid,
    /// The order's total, in cents.
    pub total_cents: i64,
    /// What was bought.
    pub lines: Vec<OrderPlacedLine>,
}

/// One line of an [`OrderPlaced`] event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlacedLine {
    /// The product.
    pub product_id: uuid::Uuid,
    /// The variant of the product bought.
    pub variant_id: uuid::Uuid,
    /// Units.
    pub quantity: i64,
    /// Unit price when the order was placed, in cents.
    pub unit_price_cents: i64,
}

impl Payload for OrderPlaced {
    const KIND: &'static str = "order_placed";
}

/// A catalog product changed (published by the app's outbox relay after the change
/// committed): whatever is derived from the product is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductEvent {
    /// The product.
    pub product_id: uuid::Uuid,
    /// Its version after the change.
    pub version: i64,
    /// Its category after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<uuid::Uuid>,
    /// The variants whose price changed (empty when no price did).
    #[serde(default)]
    pub prices_changed: Vec<uuid::Uuid>,
}

impl Payload for ProductEvent {
    const KIND: &'static str = "product_event";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;

    #[test]
    fn envelope_round_trips_and_checks_type() {
        let env = Envelope::new(Notification {
            recipient: "a@example.com".into(),
            subject: "hi".into(),
            content: "hello".into(),
            channel: NotificationChannel::Email,
        })
        .with_max_retries(5);
        let bytes = env.to_bytes().unwrap();
        let back = Envelope::<Notification>::from_bytes(&bytes).unwrap();
        assert_eq!(back, env);
        let wrong = Envelope::<UserData>::from_bytes(&bytes).unwrap_err();
        assert!(wrong
            .to_string()
            .contains("expected message type 'user_data'"));
        assert!(Envelope::<UserData>::from_bytes(b"not json").is_err());
    }

    #[test]
    fn an_order_placed_envelope_round_trips_under_its_own_kind() {
        let line = OrderPlacedLine {
            product_id: uuid::Uuid::new_v4(),
            variant_id: uuid::Uuid::new_v4(),
            quantity: 2,
            unit_price_cents: 150,
        };
        let env = Envelope::new(OrderPlaced {
            order_id: uuid::Uuid::new_v4(),
            user_id: uuid::Uuid::new_v4(),
            total_cents: 300,
            lines: vec![line],
        });
        let bytes = env.to_bytes().unwrap();
        assert_eq!(Envelope::<OrderPlaced>::from_bytes(&bytes).unwrap(), env);
        assert!(Envelope::<UserData>::from_bytes(&bytes).is_err());
    }
}
