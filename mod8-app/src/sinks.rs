//! Where the message consumers put their results: the document store, the welcome
//! notification that follows a stored profile, and the ledger of notifications sent.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mod8_cache::Cache;
use mod8_docstore::{ActivityUpdate, DocStore, Event, EventMetadata};
use mod8_mq::domain::{
    Analytics, EnrichedUser, EventSink, Notification, NotificationChannel, Pipeline, ProfileSink,
    PublishOptions, SentLedger,
};
use mod8_orm::DynDatabase;
use uuid::Uuid;

use crate::activity::{engagement_weight, shows_interest};
use crate::flows::analytics::count_once;

/// Stores each enriched user as a profile document, then publishes the welcome notification,
/// once per user.
///
/// Idempotent: a redelivered message finds the profile already stored (a conflict, treated as
/// done). The welcome is published only by the delivery that claims the user's
/// `welcome:{user id}` marker in the document store ([`DocStore::claim_marker`]): the marker
/// is durable and shared, so neither a redelivery, another instance nor a restart sends a
/// second welcome (a marker in the cache would vanish with a Redis restart or eviction, and
/// one in memory with the process). A failed publish releases the marker, so the retry
/// publishes. If the process stops between the claim and the publish, the welcome is not
/// sent: a welcome is sent at most once, never twice. A user unknown to SQL is a permanent
/// failure (dead-lettered); a document store that is down is transient (retried).
#[derive(Clone)]
pub struct DocProfileSink {
    /// Where users are looked up by email.
    pub sql: DynDatabase,
    /// Where profiles go.
    pub docs: Arc<dyn DocStore>,
    /// Where the welcome notification is published.
    pub pipeline: Pipeline,
}

fn transient_or_permanent(e: mod8_docstore::Error) -> mod8_mq::Error {
    if e.is_transient() {
        mod8_mq::Error::unavailable("docs", e)
    } else {
        mod8_mq::Error::validation("profile", e.to_string())
    }
}

#[async_trait]
impl ProfileSink for DocProfileSink {
    async fn store_profile(&self, user: EnrichedUser) -> mod8_mq::Result<()> {
        let sql_user = match self.sql.find_user_by_email(&user.email).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                return Err(mod8_mq::Error::validation(
                    "email",
                    format!("no registered user with email {}", user.email),
                ))
            }
            Err(e) if e.is_transient() => return Err(mod8_mq::Error::unavailable("sql", e)),
            Err(e) => return Err(mod8_mq::Error::validation("email", e.to_string())),
        };
        let profile = mod8_docstore::ProfileDocument::new(
            sql_user.id.to_string(),
            &user.username,
            &user.email,
        )
        .created_at(sql_user.created_at);
        match self.docs.insert_profile(profile).await {
            Ok(_) => {}
            Err(mod8_docstore::Error::Conflict { .. }) => {
                tracing::debug!(username = %user.username, "profile already stored (redelivery)");
            }
            Err(e) => return Err(transient_or_permanent(e)),
        }
        let marker = welcome_marker(&sql_user.id.to_string());
        if !self
            .docs
            .claim_marker(&marker)
            .await
            .map_err(transient_or_permanent)?
        {
            tracing::debug!(username = %user.username, "welcome already sent (redelivery)");
            return Ok(());
        }
        let welcome = Notification {
            recipient: user.email.clone(),
            subject: "Welcome to mod8".into(),
            content: format!("Welcome, {}! Your profile is ready.", user.username),
            channel: NotificationChannel::Email,
        };
        let published = self
            .pipeline
            .publish_notification(
                welcome,
                PublishOptions::new().with_correlation_id(user.source_message),
            )
            .await;
        if let Err(e) = published {
            // Not sent: free the marker so the retry of this message sends it.
            if let Err(release) = self.docs.release_marker(&marker).await {
                tracing::warn!(%marker, error = %release, "could not release the welcome marker; no welcome will be sent");
            }
            return Err(e);
        }
        Ok(())
    }
}

/// The document-store marker claimed before a user's welcome is published:
/// `welcome:{user id}`.
pub fn welcome_marker(user_id: &str) -> String {
    format!("welcome:{user_id}")
}

/// The notification consumer's [`SentLedger`] on the document store's markers: the id of a
/// notification message is claimed as the marker `notification:{message id}`
/// ([`notification_marker`], [`DocStore::claim_marker`]) before it is sent, and released if
/// the send fails.
///
/// On MongoDB (FerretDB) the markers are durable and shared, so a notification redelivered
/// after a restart, or to another instance, is not sent again. On the in-memory document store
/// they are as durable as the process: a restart forgets them (as it forgets everything else
/// that backend holds). At most once, like the welcome: a process stopping between the claim
/// and the send leaves the marker and the notification unsent (see [`SentLedger`]); the
/// marker's `at` time dates the claim. A document store that is down is transient (the
/// message retries without sending).
#[derive(Clone)]
pub struct DocSentLedger {
    /// Where the markers are.
    pub docs: Arc<dyn DocStore>,
}

fn ledger_error(e: mod8_docstore::Error) -> mod8_mq::Error {
    if e.is_transient() {
        mod8_mq::Error::unavailable("docs", e)
    } else {
        mod8_mq::Error::validation("sent_ledger", e.to_string())
    }
}

#[async_trait]
impl SentLedger for DocSentLedger {
    async fn claim(&self, message_id: Uuid) -> mod8_mq::Result<bool> {
        self.docs
            .claim_marker(&notification_marker(message_id))
            .await
            .map_err(ledger_error)
    }

    async fn release(&self, message_id: Uuid) -> mod8_mq::Result<()> {
        self.docs
            .release_marker(&notification_marker(message_id))
            .await
            .map(|_| ())
            .map_err(ledger_error)
    }
}

/// How long a notification's marker is kept: far longer than any redelivery of its message
/// (retries back off for minutes; a broker redelivers unacknowledged messages when a
/// consumer's connection drops), after which the insights worker purges it, so the markers
/// stay bounded by the notifications of one week.
pub const NOTIFICATION_MARKER_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// The prefix of [`notification_marker`]s.
pub const NOTIFICATION_MARKER_PREFIX: &str = "notification:";

/// The document-store marker claimed before a notification message is sent:
/// `notification:{message id}`.
pub fn notification_marker(message_id: Uuid) -> String {
    format!("{NOTIFICATION_MARKER_PREFIX}{message_id}")
}

/// Stores each analytics event in the document store's event log, counts it in the user's
/// engagement counters and applies it to the user's profile document (engagement score,
/// count per event type, content views, interest in the category viewed or bought) — each
/// once per message id.
///
/// Each of the three effects is idempotent by the message id on its own (the event is keyed
/// by it, the counter increment and the profile update remember it), and they run in that
/// order on every delivery, also a redelivery. So whichever step a crash or failure
/// interrupts, the retry completes the missing ones and repeats the done ones as no-ops:
/// nothing is counted twice and nothing is skipped (no step is conditional on an earlier one
/// having been new). An event of a user without a profile document (yet) is not applied to a
/// profile. The API counts the message first ([`count_once`] after
/// the confirmed publish); the count here lands only when that one was lost.
#[derive(Clone)]
pub struct DocEventSink {
    /// The event log.
    pub docs: Arc<dyn DocStore>,
    /// Where the engagement counters are.
    pub cache: Cache,
}

/// The document-store event for an analytics message: the `product` (else `product_id`),
/// `price` (else `amount`) and `category` properties become metadata, the rest extras.
///
/// Deterministic: which property wins does not depend on the map's iteration order, so the
/// API (which checks this document before accepting the event) and the consumer (which stores
/// it, after a round trip through JSON) build the same document.
pub fn to_document_event(event: &Analytics, at: DateTime<Utc>) -> Event {
    let props = &event.properties;
    let either = |a: &str, b: &str| props.get(a).or_else(|| props.get(b));
    let metadata = EventMetadata {
        product: either("product", "product_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        price: either("price", "amount").and_then(|v| v.as_f64()),
        category: props
            .get("category")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        extras: props
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "product" | "product_id" | "price" | "amount" | "category"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Event::new(&event.user_id, &event.event_type)
        .at(at)
        .with_metadata(metadata)
}

#[async_trait]
impl EventSink for DocEventSink {
    async fn store_event(
        &self,
        message_id: Uuid,
        event: &Analytics,
        at: DateTime<Utc>,
    ) -> mod8_mq::Result<()> {
        let logged = self
            .docs
            .log_event_once(&message_id.to_string(), to_document_event(event, at))
            .await
            .map_err(transient_or_permanent)?;
        if !logged.inserted {
            tracing::debug!(%message_id, "event already logged (redelivery)");
        }
        // Events of users that are not UUIDs (not from the API) have no engagement counter.
        if let Ok(user_id) = event.user_id.parse::<Uuid>() {
            count_once(
                &self.cache,
                self.docs.as_ref(),
                user_id,
                &event.event_type,
                message_id,
            )
            .await
            .map_err(|e| match e {
                crate::AppError::Validation { field, message } => {
                    mod8_mq::Error::validation(field, message)
                }
                e => mod8_mq::Error::unavailable("cache", e),
            })?;
        }
        let interest = event
            .properties
            .get("category")
            .and_then(|c| c.as_str())
            .filter(|_| shows_interest(&event.event_type))
            .map(str::to_owned);
        let activity = ActivityUpdate {
            event_id: message_id.to_string(),
            event_type: event.event_type.clone(),
            score: engagement_weight(&event.event_type),
            content_views: i64::from(matches!(event.event_type.as_str(), "page_view" | "view")),
            interest,
        };
        match self.docs.apply_activity(&event.user_id, activity).await {
            Ok(_) => {}
            Err(mod8_docstore::Error::NotFound { .. }) => {
                tracing::debug!(user_id = %event.user_id, "no profile document to apply the event to");
            }
            Err(e) => return Err(transient_or_permanent(e)),
        }
        Ok(())
    }
}
