//! The built-in consumers (user data, notifications, analytics), the sinks they hand their
//! results to, and [`Pipeline`], which publishes the messages of a signup or a purchase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::broker::DynBroker;
use crate::consumer::{Consumer, ConsumerHandle, Handler, Outcome};
use crate::error::{Error, Result};
use crate::message::{Analytics, Envelope, Notification, NotificationChannel, UserData};
use crate::producer::Producer;

/// A validated, enriched user profile, as handed to a [`ProfileSink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    /// Login name, trimmed.
    pub username: String,
    /// Email address, trimmed and lower-cased.
    pub email: String,
    /// The part of the email after `@`.
    pub email_domain: String,
    /// Day of registration.
    pub registration_date: NaiveDate,
    /// The message this profile came from.
    pub source_message: Uuid,
    /// When the consumer processed it.
    pub processed_at: DateTime<Utc>,
}

/// Where [`UserDataConsumer`] puts profiles (a database, a cache…).
#[async_trait]
pub trait ProfileSink: Send + Sync + 'static {
    /// Stores a profile. A transient error makes the message retry, others dead-letter it.
    async fn store_profile(&self, profile: UserProfile) -> Result<()>;
}

/// Sends notifications (email gateway, SMS provider…).
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Sends one notification. A transient error makes the message retry.
    async fn send(&self, notification: &Notification) -> Result<()>;
}

/// Where [`AnalyticsConsumer`] stores events.
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Stores one event with the time it happened.
    async fn store_event(&self, event: &Analytics, at: DateTime<Utc>) -> Result<()>;
}

/// A [`ProfileSink`] keeping profiles in memory (tests, examples, the embedded setup).
#[derive(Debug, Clone, Default)]
pub struct MemoryProfileSink {
    profiles: Arc<Mutex<Vec<UserProfile>>>,
}

impl MemoryProfileSink {
    /// The stored profiles, oldest first.
    pub fn profiles(&self) -> Vec<UserProfile> {
        self.profiles.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ProfileSink for MemoryProfileSink {
    async fn store_profile(&self, profile: UserProfile) -> Result<()> {
        if let Ok(mut p) = self.profiles.lock() {
            p.push(profile);
        }
        Ok(())
    }
}

/// An analytics event with the time it happened.
pub type TimedEvent = (Analytics, DateTime<Utc>);

/// An [`EventSink`] keeping events in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryEventSink {
    events: Arc<Mutex<Vec<TimedEvent>>>,
}

impl MemoryEventSink {
    /// The stored events, oldest first.
    pub fn events(&self) -> Vec<TimedEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl EventSink for MemoryEventSink {
    async fn store_event(&self, event: &Analytics, at: DateTime<Utc>) -> Result<()> {
        if let Ok(mut e) = self.events.lock() {
            e.push((event.clone(), at));
        }
        Ok(())
    }
}

/// The default [`Notifier`]: writes each notification to the log (`tracing`, info level)
/// and counts them.
#[derive(Debug, Clone, Default)]
pub struct LoggingNotifier {
    sent: Arc<Mutex<HashMap<NotificationChannel, u64>>>,
}

impl LoggingNotifier {
    /// Notifications "sent" through `channel`.
    pub fn sent(&self, channel: NotificationChannel) -> u64 {
        self.sent
            .lock()
            .map(|s| s.get(&channel).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[async_trait]
impl Notifier for LoggingNotifier {
    async fn send(&self, n: &Notification) -> Result<()> {
        tracing::info!(channel = n.channel.as_str(), recipient = %n.recipient, subject = %n.subject, "notification");
        if let Ok(mut s) = self.sent.lock() {
            *s.entry(n.channel).or_default() += 1;
        }
        Ok(())
    }
}

/// Checks a user data payload and builds the profile, or says what is wrong.
pub fn validate_user(data: &UserData, source: Uuid) -> Result<UserProfile> {
    let username = data.username.trim();
    if username.len() < 3 || username.len() > 64 {
        return Err(Error::validation("username must be 3 to 64 characters"));
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(Error::validation(
            "username may hold letters, digits, '_', '-' and '.' only",
        ));
    }
    let email = data.email.trim().to_lowercase();
    let domain = match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => domain.to_owned(),
        _ => return Err(Error::validation(format!("invalid email '{email}'"))),
    };
    Ok(UserProfile {
        username: username.to_owned(),
        email,
        email_domain: domain,
        registration_date: data.registration_date,
        source_message: source,
        processed_at: Utc::now(),
    })
}

/// Validates user data, enriches it into a [`UserProfile`] and hands it to a
/// [`ProfileSink`]. Invalid data is rejected to the dead-letter queue.
#[derive(Debug, Clone)]
pub struct UserDataConsumer<S> {
    sink: S,
}

impl<S: ProfileSink> UserDataConsumer<S> {
    /// A consumer storing into `sink`.
    pub fn new(sink: S) -> Self {
        UserDataConsumer { sink }
    }

    /// Starts consuming the topology's user data queue.
    pub async fn start(self, broker: DynBroker) -> Result<ConsumerHandle> {
        let queue = broker.topology().user_data_queue.clone();
        Consumer::new(broker, queue, self).start().await
    }
}

#[async_trait]
impl<S: ProfileSink> Handler<UserData> for UserDataConsumer<S> {
    async fn handle(&self, message: &Envelope<UserData>) -> Outcome {
        match validate_user(&message.payload, message.id) {
            Ok(profile) => match self.sink.store_profile(profile).await {
                Ok(()) => Outcome::Ack,
                Err(e) => Outcome::from_error(&e),
            },
            Err(e) => Outcome::reject(e.to_string()),
        }
    }
}

/// Sends notifications through a [`Notifier`] ([`LoggingNotifier`] by default).
#[derive(Debug, Clone, Default)]
pub struct NotificationConsumer<N = LoggingNotifier> {
    notifier: N,
}

impl<N: Notifier> NotificationConsumer<N> {
    /// A consumer sending through `notifier`.
    pub fn new(notifier: N) -> Self {
        NotificationConsumer { notifier }
    }

    /// Starts consuming the topology's notification queue.
    pub async fn start(self, broker: DynBroker) -> Result<ConsumerHandle> {
        let queue = broker.topology().notification_queue.clone();
        Consumer::new(broker, queue, self).start().await
    }
}

#[async_trait]
impl<N: Notifier> Handler<Notification> for NotificationConsumer<N> {
    async fn handle(&self, message: &Envelope<Notification>) -> Outcome {
        if message.payload.recipient.trim().is_empty() {
            return Outcome::reject("notification without a recipient");
        }
        match self.notifier.send(&message.payload).await {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::from_error(&e),
        }
    }
}

/// Stores analytics events through an [`EventSink`].
#[derive(Debug, Clone)]
pub struct AnalyticsConsumer<S> {
    sink: S,
}

impl<S: EventSink> AnalyticsConsumer<S> {
    /// A consumer storing into `sink`.
    pub fn new(sink: S) -> Self {
        AnalyticsConsumer { sink }
    }

    /// Starts consuming the topology's analytics queue.
    pub async fn start(self, broker: DynBroker) -> Result<ConsumerHandle> {
        let queue = broker.topology().analytics_queue.clone();
        Consumer::new(broker, queue, self).start().await
    }
}

#[async_trait]
impl<S: EventSink> Handler<Analytics> for AnalyticsConsumer<S> {
    async fn handle(&self, message: &Envelope<Analytics>) -> Outcome {
        if message.payload.event_type.trim().is_empty() {
            return Outcome::reject("analytics event without a type");
        }
        match self
            .sink
            .store_event(&message.payload, message.timestamp)
            .await
        {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::from_error(&e),
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

/// Publishes the messages of the registration flow: a signup sends the user data, a welcome
/// email and a `signup` analytics event; a purchase sends a `purchase` event and a receipt.
#[derive(Debug, Clone)]
pub struct Pipeline {
    producer: Producer,
}

impl Pipeline {
    /// A pipeline publishing through `producer`.
    pub fn new(producer: Producer) -> Self {
        Pipeline { producer }
    }

    /// Publishes a signup. Validates first, so bad input never reaches the broker.
    pub async fn signup(&self, user: UserData) -> Result<Published> {
        validate_user(&user, Uuid::nil())?;
        let correlation = Uuid::new_v4();
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
            self.producer
                .publish_user_data(user, Some(correlation))
                .await?,
            self.producer
                .publish_notification(welcome, false, Some(correlation))
                .await?,
            self.producer
                .publish_analytics(event, Some(correlation))
                .await?,
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
            return Err(Error::validation("amount must be a non-negative number"));
        }
        let correlation = Uuid::new_v4();
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
            self.producer
                .publish_analytics(event, Some(correlation))
                .await?,
            self.producer
                .publish_notification(receipt, false, Some(correlation))
                .await?,
        ];
        Ok(Published {
            correlation_id: correlation,
            message_ids: ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, email: &str) -> UserData {
        UserData {
            username: name.into(),
            email: email.into(),
            registration_date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        }
    }

    #[test]
    fn validation_and_enrichment() {
        let p = validate_user(&user(" ada ", "Ada@Example.COM"), Uuid::nil()).unwrap();
        assert_eq!(p.username, "ada");
        assert_eq!(p.email, "ada@example.com");
        assert_eq!(p.email_domain, "example.com");
        assert!(validate_user(&user("ab", "a@b.c"), Uuid::nil()).is_err());
        assert!(validate_user(&user("ada lovelace", "a@b.c"), Uuid::nil()).is_err());
        assert!(validate_user(&user("ada", "nope"), Uuid::nil()).is_err());
        assert!(validate_user(&user("ada", "@b.c"), Uuid::nil()).is_err());
    }
}
