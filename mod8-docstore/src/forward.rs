//! The traits for `Arc<T>` and `Box<T>`, by forwarding, so shared and boxed stores (including
//! a [`crate::DynDocStore`]) can be passed wherever a store is expected.

use std::sync::Arc;

use async_trait::async_trait;
use bson::oid::ObjectId;
use futures::stream::BoxStream;

use crate::model::{
    ActivitySummary, ActivityWindow, AnalyticsSnapshot, BulkInsertResult, CategoryPurchases,
    CohortMetrics, DayRange, Event, EventFilter, EventLogged, EventTypeCount, GeoPoint,
    MetricsUpdate, NearbyEvent, ProfileDocument, Subscription, TimeWindow, UserEventCounts,
};
use crate::setup::{LogEntry, SetupOptions, SetupReport};
use crate::{DataProcessing, DocStore, EventStore, ProfileStore, Result};

macro_rules! forward {
    ($wrapper:ident) => {
        #[async_trait]
        impl<T: ProfileStore + ?Sized> ProfileStore for $wrapper<T> {
            async fn insert_profile(&self, profile: ProfileDocument) -> Result<ObjectId> {
                (**self).insert_profile(profile).await
            }
            async fn insert_profiles(
                &self,
                profiles: Vec<ProfileDocument>,
            ) -> Result<BulkInsertResult> {
                (**self).insert_profiles(profiles).await
            }
            async fn profile_by_username(&self, username: &str) -> Result<Option<ProfileDocument>> {
                (**self).profile_by_username(username).await
            }
            async fn find_profiles_by_interest(
                &self,
                interest: &str,
                limit: usize,
            ) -> Result<Vec<ProfileDocument>> {
                (**self).find_profiles_by_interest(interest, limit).await
            }
            async fn add_subscription(
                &self,
                username: &str,
                subscription: Subscription,
            ) -> Result<()> {
                (**self).add_subscription(username, subscription).await
            }
            async fn update_metrics(&self, username: &str, update: MetricsUpdate) -> Result<()> {
                (**self).update_metrics(username, update).await
            }
            async fn apply_activity(
                &self,
                user_id: &str,
                activity: crate::ActivityUpdate,
            ) -> Result<bool> {
                (**self).apply_activity(user_id, activity).await
            }
        }

        #[async_trait]
        impl<T: EventStore + ?Sized> EventStore for $wrapper<T> {
            async fn log_event(&self, event: Event) -> Result<ObjectId> {
                (**self).log_event(event).await
            }
            async fn log_event_once(&self, message_id: &str, event: Event) -> Result<EventLogged> {
                (**self).log_event_once(message_id, event).await
            }
            async fn log_events(&self, events: Vec<Event>) -> Result<BulkInsertResult> {
                (**self).log_events(events).await
            }
            async fn event_distribution(&self, window: TimeWindow) -> Result<Vec<EventTypeCount>> {
                (**self).event_distribution(window).await
            }
            async fn user_event_counts(
                &self,
                user_id: &str,
                recent_since: chrono::DateTime<chrono::Utc>,
            ) -> Result<UserEventCounts> {
                (**self).user_event_counts(user_id, recent_since).await
            }
            async fn user_activity(
                &self,
                window: TimeWindow,
                top: usize,
            ) -> Result<Vec<ActivityWindow>> {
                (**self).user_activity(window, top).await
            }
            async fn purchase_analytics(
                &self,
                window: TimeWindow,
            ) -> Result<Vec<CategoryPurchases>> {
                (**self).purchase_analytics(window).await
            }
            async fn activity_summary(
                &self,
                user_id: &str,
                days: DayRange,
            ) -> Result<ActivitySummary> {
                (**self).activity_summary(user_id, days).await
            }
            async fn events_near(
                &self,
                point: GeoPoint,
                max_distance_m: f64,
                limit: usize,
            ) -> Result<Vec<NearbyEvent>> {
                (**self).events_near(point, max_distance_m, limit).await
            }
        }

        #[async_trait]
        impl<T: DataProcessing + ?Sized> DataProcessing for $wrapper<T> {
            async fn cohort_metrics(&self, activity: TimeWindow) -> Result<Vec<CohortMetrics>> {
                (**self).cohort_metrics(activity).await
            }
            async fn export_events(
                &self,
                filter: EventFilter,
                batch_size: usize,
            ) -> Result<BoxStream<'static, Result<Vec<Event>>>> {
                (**self).export_events(filter, batch_size).await
            }
            async fn save_analytics(
                &self,
                name: &str,
                result: serde_json::Value,
            ) -> Result<ObjectId> {
                (**self).save_analytics(name, result).await
            }
            async fn latest_analytics(&self, name: &str) -> Result<Option<AnalyticsSnapshot>> {
                (**self).latest_analytics(name).await
            }
        }

        #[async_trait]
        impl<T: DocStore + ?Sized> DocStore for $wrapper<T> {
            fn backend(&self) -> &'static str {
                (**self).backend()
            }
            async fn setup(&self, options: &SetupOptions) -> Result<SetupReport> {
                (**self).setup(options).await
            }
            async fn append_log(&self, entry: LogEntry) -> Result<ObjectId> {
                (**self).append_log(entry).await
            }
            async fn recent_logs(&self, limit: usize) -> Result<Vec<LogEntry>> {
                (**self).recent_logs(limit).await
            }
            async fn claim_marker(&self, key: &str) -> Result<bool> {
                (**self).claim_marker(key).await
            }
            async fn release_marker(&self, key: &str) -> Result<bool> {
                (**self).release_marker(key).await
            }
            async fn purge_markers(
                &self,
                prefix: &str,
                claimed_before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64> {
                (**self).purge_markers(prefix, claimed_before).await
            }
            fn capabilities(&self) -> crate::Capabilities {
                (**self).capabilities()
            }
            async fn watch_events(&self) -> Result<BoxStream<'static, Result<Event>>> {
                (**self).watch_events().await
            }
            fn memory_stats(&self) -> Option<crate::MemoryStats> {
                (**self).memory_stats()
            }
        }
    };
}

forward!(Arc);
forward!(Box);
