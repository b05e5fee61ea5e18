//! Where the message consumers put their results: the document store, and the welcome
//! notification that follows a stored profile.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mod8_docstore::{DocStore, Event, EventMetadata};
use mod8_mq::domain::{
    Analytics, EnrichedUser, EventSink, Notification, NotificationChannel, Pipeline, ProfileSink,
    PublishOptions,
};
use mod8_orm::DynDatabase;

/// Stores each enriched user as a profile document, then publishes the welcome notification.
///
/// Idempotent: a redelivered message finds the profile already stored (a conflict, treated as
/// done) and publishes the welcome again at most once more. A user unknown to SQL is a
/// permanent failure (dead-lettered); a document store that is down is transient (retried).
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
        let welcome = Notification {
            recipient: user.email.clone(),
            subject: "Welcome to mod8".into(),
            content: format!("Welcome, {}! Your profile is ready.", user.username),
            channel: NotificationChannel::Email,
        };
        self.pipeline
            .publish_notification(
                welcome,
                PublishOptions::new().with_correlation_id(user.source_message),
            )
            .await?;
        Ok(())
    }
}

/// Stores each analytics event in the document store's event log.
#[derive(Clone)]
pub struct DocEventSink {
    /// The event log.
    pub docs: Arc<dyn DocStore>,
}

/// The document-store event for an analytics message: `product`, `price` and `category`
/// properties become metadata, the rest extras.
pub fn to_document_event(event: &Analytics, at: DateTime<Utc>) -> Event {
    let mut metadata = EventMetadata::default();
    for (key, value) in &event.properties {
        match key.as_str() {
            "product" | "product_id" => metadata.product = value.as_str().map(str::to_owned),
            "price" | "amount" => metadata.price = value.as_f64(),
            "category" => metadata.category = value.as_str().map(str::to_owned),
            _ => {
                metadata.extras.insert(key.clone(), value.clone());
            }
        }
    }
    Event::new(&event.user_id, &event.event_type)
        .at(at)
        .with_metadata(metadata)
}

#[async_trait]
impl EventSink for DocEventSink {
    async fn store_event(&self, event: &Analytics, at: DateTime<Utc>) -> mod8_mq::Result<()> {
        self.docs
            .log_event(to_document_event(event, at))
            .await
            .map(|_| ())
            .map_err(transient_or_permanent)
    }
}
