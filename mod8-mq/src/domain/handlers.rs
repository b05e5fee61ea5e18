//! mod8's handlers of its three queues (user data, notifications, analytics) and the sinks
//! they hand their results to. Each runs on the generic [`Consumer`] runner.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::broker::DynBroker;
use crate::domain::messages::{Analytics, Notification, NotificationChannel, UserData};
use crate::domain::topology::Topology;
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::runner::{ConsumerHandle, Handler, Outcome};

/// A validated, enriched user, as the user-data handler hands it to a [`ProfileSink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrichedUser {
    /// Login name: its display form (trimmed, Unicode NFKC), see [`mod8_rules::username`].
    pub username: String,
    /// Email address: trimmed, NFC, lower-cased, see [`mod8_rules::email`].
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
    async fn store_profile(&self, profile: EnrichedUser) -> Result<()>;
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
    /// Stores one event with the time it happened, once per `message_id` (the envelope's id):
    /// a message is delivered at least once, so the same id may come again (a redelivery after
    /// a lost acknowledgement, a retry after a transient failure). A repeat must be success
    /// without a second effect — key what is stored by the message id.
    async fn store_event(
        &self,
        message_id: Uuid,
        event: &Analytics,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

/// A [`ProfileSink`] keeping profiles in memory (tests, examples, the embedded setup).
#[derive(Debug, Clone, Default)]
pub struct MemoryProfileSink {
    profiles: Arc<Mutex<Vec<EnrichedUser>>>,
}

impl MemoryProfileSink {
    /// The stored profiles, oldest first.
    pub fn profiles(&self) -> Vec<EnrichedUser> {
        self.profiles.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ProfileSink for MemoryProfileSink {
    async fn store_profile(&self, profile: EnrichedUser) -> Result<()> {
        if let Ok(mut p) = self.profiles.lock() {
            p.push(profile);
        }
        Ok(())
    }
}

/// An analytics event with the time it happened.
pub type TimedEvent = (Analytics, DateTime<Utc>);

/// An [`EventSink`] keeping events in memory, once per message id.
#[derive(Debug, Clone, Default)]
pub struct MemoryEventSink {
    events: Arc<Mutex<(Vec<TimedEvent>, HashSet<Uuid>)>>,
}

impl MemoryEventSink {
    /// The stored events, oldest first.
    pub fn events(&self) -> Vec<TimedEvent> {
        self.events.lock().map(|e| e.0.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl EventSink for MemoryEventSink {
    async fn store_event(
        &self,
        message_id: Uuid,
        event: &Analytics,
        at: DateTime<Utc>,
    ) -> Result<()> {
        if let Ok(mut e) = self.events.lock() {
            if e.1.insert(message_id) {
                e.0.push((event.clone(), at));
            }
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
///
/// The rules are [`mod8_rules::username`] and [`mod8_rules::email`]: the same functions the
/// relational store (`mod8_orm::validate`) and the registration API apply, so a user the API
/// registered is never dead-lettered here for its name or address.
///
/// # Errors
///
/// [`Error::Validation`] naming `username` or `email`.
pub fn validate_user(data: &UserData, source: Uuid) -> Result<EnrichedUser> {
    let username = mod8_rules::username(&data.username)?;
    let email = mod8_rules::email(&data.email)?;
    let Some((_, domain)) = email.split_once('@') else {
        return Err(Error::validation("email", "missing @"));
    };
    Ok(EnrichedUser {
        email_domain: domain.to_owned(),
        username,
        email,
        registration_date: data.registration_date,
        source_message: source,
        processed_at: Utc::now(),
    })
}

/// Checks an analytics event: its type ([`mod8_rules::event_type`]) and its properties
/// ([`mod8_rules::properties`]: document-safe keys at every depth, bounded size) — the same
/// functions the analytics API applies before it accepts an event, so an event the API
/// accepted is never dead-lettered here for its input.
///
/// # Errors
///
/// [`Error::Validation`] naming `event_type` or `properties`.
pub fn validate_analytics(event: &Analytics) -> Result<()> {
    mod8_rules::event_type(&event.event_type)?;
    mod8_rules::properties("properties", &event.properties)?;
    Ok(())
}

/// Validates user data, enriches it into a [`EnrichedUser`] and hands it to a
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

    /// Starts consuming `topology`'s user data queue on `broker` (with the topology's retry
    /// policy and dead-letter route, see [`Topology::consumer`]).
    pub async fn start(self, broker: DynBroker, topology: &Topology) -> Result<ConsumerHandle> {
        topology
            .consumer(broker, topology.user_data_queue.clone(), self)
            .start()
            .await
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

    /// Starts consuming `topology`'s notification queue on `broker` (with the topology's retry
    /// policy and dead-letter route, see [`Topology::consumer`]).
    pub async fn start(self, broker: DynBroker, topology: &Topology) -> Result<ConsumerHandle> {
        topology
            .consumer(broker, topology.notification_queue.clone(), self)
            .start()
            .await
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

/// Checks analytics events ([`validate_analytics`]; an invalid one is dead-lettered) and
/// stores the others through an [`EventSink`].
#[derive(Debug, Clone)]
pub struct AnalyticsConsumer<S> {
    sink: S,
}

impl<S: EventSink> AnalyticsConsumer<S> {
    /// A consumer storing into `sink`.
    pub fn new(sink: S) -> Self {
        AnalyticsConsumer { sink }
    }

    /// Starts consuming `topology`'s analytics queue on `broker` (with the topology's retry
    /// policy and dead-letter route, see [`Topology::consumer`]).
    pub async fn start(self, broker: DynBroker, topology: &Topology) -> Result<ConsumerHandle> {
        topology
            .consumer(broker, topology.analytics_queue.clone(), self)
            .start()
            .await
    }
}

#[async_trait]
impl<S: EventSink> Handler<Analytics> for AnalyticsConsumer<S> {
    async fn handle(&self, message: &Envelope<Analytics>) -> Outcome {
        if let Err(e) = validate_analytics(&message.payload) {
            return Outcome::reject(e.to_string());
        }
        match self
            .sink
            .store_event(message.id, &message.payload, message.timestamp)
            .await
        {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::from_error(&e),
        }
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

    #[tokio::test]
    async fn analytics_redelivery_is_stored_once() {
        let sink = MemoryEventSink::default();
        let consumer = AnalyticsConsumer::new(sink.clone());
        let envelope = Envelope::new(Analytics {
            event_type: "click".into(),
            user_id: "u1".into(),
            properties: HashMap::new(),
        });
        for _ in 0..2 {
            assert!(matches!(consumer.handle(&envelope).await, Outcome::Ack));
        }
        assert_eq!(sink.events().len(), 1);
        let other = Envelope::new(envelope.payload.clone());
        assert!(matches!(consumer.handle(&other).await, Outcome::Ack));
        assert_eq!(sink.events().len(), 2);
    }

    #[test]
    fn validation_and_enrichment() {
        let p = validate_user(&user(" ada ", "Ada@Example.COM"), Uuid::nil()).unwrap();
        assert_eq!(p.username, "ada");
        assert_eq!(p.email, "ada@example.com");
        assert_eq!(p.email_domain, "example.com");
        let field_of =
            |name: &str, email: &str| match validate_user(&user(name, email), Uuid::nil()) {
                Err(Error::Validation { field, .. }) => field,
                other => panic!("expected a validation error, got {other:?}"),
            };
        assert_eq!(field_of("ab", "a@b.c"), "username");
        assert_eq!(field_of("ada lovelace", "a@b.c"), "username");
        assert_eq!(field_of("ada", "nope"), "email");
        assert_eq!(field_of("ada", "@b.c"), "email");
    }
}
