//! mod8's handlers of its three queues (user data, notifications, analytics) and the sinks
//! they hand their results to. Each runs on the generic [`Consumer`] runner.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::broker::DynBroker;
use crate::domain::ledger::{MemorySentLedger, SentLedger};
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

#[async_trait]
impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    async fn send(&self, notification: &Notification) -> Result<()> {
        (**self).send(notification).await
    }
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

/// Sends notifications through a [`Notifier`] ([`LoggingNotifier`] by default), each once per
/// message id: a [`SentLedger`] ([`MemorySentLedger`] by default) remembers the ids sent.
///
/// For each delivery: a notification without a recipient is rejected (dead-lettered); then
/// the message id is [claimed](SentLedger::claim) in the ledger — an id claimed before
/// (sent already, or by a copy being handled now) is acknowledged without sending; then the
/// notifier sends. If it fails, the claim is [released](SentLedger::release) so the retry
/// sends it, and the error decides retry (transient) or dead-letter (permanent). So a
/// notifier error must mean "not sent". A crash or a panic between the claim and the send
/// loses that notification rather than sending it twice: at most once, see [`SentLedger`].
///
/// The default ledger lives in memory, so the de-duplication holds for redeliveries within
/// this process only; give a durable one with [`NotificationConsumer::with_ledger`] to have it
/// hold across restarts and instances.
#[derive(Debug, Clone, Default)]
pub struct NotificationConsumer<N = LoggingNotifier, L = MemorySentLedger> {
    notifier: N,
    ledger: L,
}

impl<N: Notifier> NotificationConsumer<N> {
    /// A consumer sending through `notifier`, remembering sent ids in a new
    /// [`MemorySentLedger`] (as durable as the process).
    pub fn new(notifier: N) -> Self {
        NotificationConsumer {
            notifier,
            ledger: MemorySentLedger::default(),
        }
    }
}

impl<N: Notifier, L: SentLedger> NotificationConsumer<N, L> {
    /// The same consumer remembering sent ids in `ledger` instead (a durable one makes a
    /// notification redelivered after a restart, or to another instance, not sent again).
    pub fn with_ledger<M: SentLedger>(self, ledger: M) -> NotificationConsumer<N, M> {
        NotificationConsumer {
            notifier: self.notifier,
            ledger,
        }
    }

    /// The ledger of sent ids.
    pub fn ledger(&self) -> &L {
        &self.ledger
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
impl<N: Notifier, L: SentLedger> Handler<Notification> for NotificationConsumer<N, L> {
    async fn handle(&self, message: &Envelope<Notification>) -> Outcome {
        if message.payload.recipient.trim().is_empty() {
            return Outcome::reject("notification without a recipient");
        }
        match self.ledger.claim(message.id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(message_id = %message.id, "notification already sent (redelivery)");
                return Outcome::Ack;
            }
            Err(e) => return Outcome::from_error(&e),
        }
        match self.notifier.send(&message.payload).await {
            Ok(()) => Outcome::Ack,
            Err(e) => {
                // Not sent: free the id so the retry of this message sends it.
                if let Err(release) = self.ledger.release(message.id).await {
                    tracing::warn!(message_id = %message.id, error = %release, "could not release the sent-ledger claim; this notification will not be sent");
                }
                Outcome::from_error(&e)
            }
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

    fn note(recipient: &str) -> Notification {
        Notification {
            recipient: recipient.into(),
            subject: "hello".into(),
            content: "there".into(),
            channel: NotificationChannel::Email,
        }
    }

    #[tokio::test]
    async fn notification_redelivery_is_sent_once() {
        let notifier = LoggingNotifier::default();
        let consumer = NotificationConsumer::new(notifier.clone());
        let envelope = Envelope::new(note("ada@example.com"));
        for _ in 0..3 {
            assert_eq!(consumer.handle(&envelope).await, Outcome::Ack);
        }
        assert_eq!(notifier.sent(NotificationChannel::Email), 1);
        // Another message with the same content is another notification.
        let other = Envelope::new(envelope.payload.clone());
        assert_eq!(consumer.handle(&other).await, Outcome::Ack);
        assert_eq!(notifier.sent(NotificationChannel::Email), 2);
    }

    /// A notifier whose first `failures` sends fail transiently (a provider outage); counts
    /// the sends that went through.
    #[derive(Default)]
    struct Flaky {
        failures: Mutex<u32>,
        sent: Mutex<u32>,
    }

    #[async_trait]
    impl Notifier for Flaky {
        async fn send(&self, _: &Notification) -> Result<()> {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(Error::unavailable("provider", "down"));
            }
            *self.sent.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_send_is_sent_by_its_retry_once() {
        let notifier = Arc::new(Flaky {
            failures: Mutex::new(2),
            ..Flaky::default()
        });
        let consumer = NotificationConsumer::new(notifier.clone());
        let envelope = Envelope::new(note("ada@example.com"));
        for _ in 0..2 {
            assert!(matches!(
                consumer.handle(&envelope).await,
                Outcome::Retry { .. }
            ));
            assert!(!consumer.ledger().contains(envelope.id), "released");
        }
        assert_eq!(consumer.handle(&envelope).await, Outcome::Ack);
        assert_eq!(consumer.handle(&envelope).await, Outcome::Ack);
        assert_eq!(*notifier.sent.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_new_consumer_on_the_same_ledger_does_not_send_again() {
        let ledger = MemorySentLedger::default();
        let envelope = Envelope::new(note("ada@example.com"));
        let first = LoggingNotifier::default();
        let consumer = NotificationConsumer::new(first.clone()).with_ledger(ledger.clone());
        assert_eq!(consumer.handle(&envelope).await, Outcome::Ack);
        drop(consumer);
        // The "restarted" consumer: a new notifier, the same ledger.
        let second = LoggingNotifier::default();
        let restarted = NotificationConsumer::new(second.clone()).with_ledger(ledger);
        assert_eq!(restarted.handle(&envelope).await, Outcome::Ack);
        assert_eq!(first.sent(NotificationChannel::Email), 1);
        assert_eq!(second.sent(NotificationChannel::Email), 0);
    }

    #[tokio::test]
    async fn concurrent_copies_send_once() {
        let notifier = LoggingNotifier::default();
        let consumer = Arc::new(NotificationConsumer::new(notifier.clone()));
        let envelope = Envelope::new(note("ada@example.com"));
        let copies: Vec<_> = (0..8)
            .map(|_| {
                let (consumer, envelope) = (consumer.clone(), envelope.clone());
                tokio::spawn(async move { consumer.handle(&envelope).await })
            })
            .collect();
        for copy in copies {
            assert_eq!(copy.await.unwrap(), Outcome::Ack);
        }
        assert_eq!(notifier.sent(NotificationChannel::Email), 1);
    }

    /// A ledger whose database is down.
    struct Down;

    #[async_trait]
    impl SentLedger for Down {
        async fn claim(&self, _: Uuid) -> Result<bool> {
            Err(Error::unavailable("ledger", "down"))
        }
        async fn release(&self, _: Uuid) -> Result<()> {
            Err(Error::unavailable("ledger", "down"))
        }
    }

    #[tokio::test]
    async fn a_ledger_that_is_down_retries_without_sending() {
        let notifier = LoggingNotifier::default();
        let consumer = NotificationConsumer::new(notifier.clone()).with_ledger(Down);
        let envelope = Envelope::new(note("ada@example.com"));
        assert!(matches!(
            consumer.handle(&envelope).await,
            Outcome::Retry { .. }
        ));
        assert_eq!(notifier.sent(NotificationChannel::Email), 0);
        // Without a recipient it is rejected before the ledger is asked.
        let nobody = Envelope::new(note(" "));
        assert!(matches!(
            consumer.handle(&nobody).await,
            Outcome::Reject { .. }
        ));
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
