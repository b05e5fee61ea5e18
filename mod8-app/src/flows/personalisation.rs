//! Flow 3, personalisation: a cache hit is returned as is (marked cached); a miss loads the
//! user and purchase history from SQL and events from the document store, profiles the user
//! (AnalyticsEngine), predicts churn, lifetime value and next purchase (Predictor,
//! cached), picks products (RecommendationEngine, segment-aware) and caches the result for an
//! hour. Also the profile and insights endpoints, which share the loading code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use mod8_cache::EntryOptions;
use mod8_datasci::{
    ActivityCounts, AnalyticsEngine, CustomerProfile, CustomerRecord, InsightsGenerator,
    ItemPurchase, Prediction, PredictionKind, PredictionValue, Predictor, Recommendation,
    RecommendationConfig, RecommendationEngine, SegmentReport,
};
use mod8_docstore::DayRange;
use mod8_orm::PageRequest;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::analytics::{count_events, counters_key};
use super::registration::shared;
use super::user_tag;
use crate::error::{AppError, AppResult};
use crate::App;

/// How many recommendations a response carries.
pub const RECOMMENDATIONS: usize = 10;
/// Days of activity a profile counts (today included).
const ACTIVITY_DAYS: u32 = 90;
/// Purchase histories (biggest spenders first) the co-occurrence model is built from (the
/// repository's page limit).
const MODEL_CUSTOMERS: u32 = 1_000;
/// Users profiled for the insights report (most active first).
const INSIGHT_USERS: u32 = 500;
/// How long the insights report stays cached.
const INSIGHTS_TTL: Duration = Duration::from_secs(60);

/// Personalised recommendations (`GET /api/users/{id}/recommendations`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recommendations {
    /// The user.
    pub user_id: Uuid,
    /// The user's segment when computed.
    pub segment: mod8_datasci::Segment,
    /// Products, best first, scores in [0, 1].
    pub recommendations: Vec<Recommendation>,
    /// Whether this answer came from the cache.
    pub cached: bool,
}

/// A user's analytics profile (`GET /api/users/{id}/profile`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProfileView {
    /// The user.
    pub user_id: Uuid,
    /// Segment, engagement (0–100), churn risk, lifetime value, next purchase, spend.
    pub profile: CustomerProfile,
    /// Churn, lifetime value and next purchase with their confidence.
    pub predictions: Vec<PredictionView>,
    /// Whether this answer came from the cache.
    pub cached: bool,
}

/// One prediction of [`Predictor`], in a shape that can be cached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PredictionView {
    /// What was predicted.
    pub kind: PredictionKind,
    /// The value.
    pub value: PredictionValue,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// Which model produced it.
    pub model: String,
}

impl From<Prediction> for PredictionView {
    fn from(p: Prediction) -> Self {
        Self {
            kind: p.kind,
            value: p.value,
            confidence: p.confidence,
            model: p.model.to_owned(),
        }
    }
}

/// The co-occurrence model and when it was built.
pub(crate) struct ModelState {
    built_at: Instant,
    engine: Option<Arc<RecommendationEngine>>,
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn manager() -> Predictor {
    Predictor::new(AnalyticsEngine::heuristic())
}

fn purchases_of(history: &[mod8_orm::Purchase]) -> Vec<ItemPurchase> {
    history
        .iter()
        .map(|p| ItemPurchase {
            product_id: p.product_id.to_string(),
            amount: (p.quantity * p.unit_price_cents) as f64 / 100.0,
            date: p.ordered_at.date_naive(),
        })
        .collect()
}

fn elementwise_max(a: ActivityCounts, b: ActivityCounts) -> ActivityCounts {
    ActivityCounts {
        sessions: a.sessions.max(b.sessions),
        page_views: a.page_views.max(b.page_views),
        clicks: a.clicks.max(b.clicks),
        searches: a.searches.max(b.searches),
        cart_adds: a.cart_adds.max(b.cart_adds),
        reviews: a.reviews.max(b.reviews),
    }
}

impl App {
    /// Everything the engines need about one user: purchases from SQL, activity from the
    /// event log (last 90 days) merged with the live counters in the cache (which may be ahead
    /// of the log while consumers catch up).
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or a store failing.
    pub async fn customer_record(&self, user_id: Uuid) -> AppResult<CustomerRecord> {
        let user = self.user(user_id).await?;
        let history = self
            .call(
                "sql.purchase_history",
                "sql",
                self.sql.purchase_history(user_id),
            )
            .await?;
        // Per-user counts the document store keeps as events are logged: a few reads by
        // `_id`, not a scan of the log (which is what a `user_id` filter costs on servers
        // without filter pushdown, such as FerretDB 1.x).
        let days = DayRange::ending(today(), ACTIVITY_DAYS);
        let summary = self
            .call(
                "docs.activity_summary",
                "docs",
                self.docs.activity_summary(&user_id.to_string(), days),
            )
            .await?;
        let mut logged = ActivityCounts::default();
        for (event_type, n) in &summary.counts {
            count_events(&mut logged, event_type, *n);
        }
        let live: ActivityCounts = self
            .cache
            .get(&counters_key(user_id))
            .await?
            .unwrap_or_default();
        let last_active = summary
            .last_event_at
            .map_or(user.last_active_at, |t| t.max(user.last_active_at));
        Ok(CustomerRecord {
            user_id: user_id.to_string(),
            activity: elementwise_max(logged, live),
            last_active: Some(last_active.date_naive()),
            purchases: purchases_of(&history),
        })
    }

    /// The recommendation model, rebuilt when older than the configured refresh interval or
    /// after [`App::invalidate_model`]. `None` while the catalogue is empty.
    async fn recommendation_model(&self) -> AppResult<Option<Arc<RecommendationEngine>>> {
        if let Some(state) = self.model.read().await.as_ref() {
            if state.built_at.elapsed() < self.config.model_refresh {
                return Ok(state.engine.clone());
            }
        }
        let mut slot = self.model.write().await;
        if let Some(state) = slot.as_ref() {
            // Another request rebuilt it while this one waited for the lock.
            if state.built_at.elapsed() < self.config.model_refresh {
                return Ok(state.engine.clone());
            }
        }
        let products = self
            .call("sql.products", "sql", self.sql.products(None))
            .await?;
        let catalog: Vec<mod8_datasci::CatalogItem> = products
            .iter()
            .map(|p| mod8_datasci::CatalogItem {
                id: p.id.to_string(),
                category: p.category.clone(),
                price: p.price_cents as f64 / 100.0,
            })
            .collect();
        let engine = if catalog.is_empty() {
            None
        } else {
            let buyers = self
                .call(
                    "sql.top_spenders",
                    "sql",
                    self.sql.top_spenders(1, MODEL_CUSTOMERS),
                )
                .await?;
            let mut customers = Vec::with_capacity(buyers.len());
            for buyer in buyers {
                let history = self
                    .call(
                        "sql.purchase_history",
                        "sql",
                        self.sql.purchase_history(buyer.user_id),
                    )
                    .await?;
                customers.push(CustomerRecord {
                    user_id: buyer.user_id.to_string(),
                    activity: ActivityCounts::default(),
                    last_active: None,
                    purchases: purchases_of(&history),
                });
            }
            let engine = RecommendationEngine::build(
                &catalog,
                &customers,
                today(),
                RecommendationConfig::default(),
            )?;
            Some(Arc::new(engine))
        };
        *slot = Some(ModelState {
            built_at: Instant::now(),
            engine: engine.clone(),
        });
        Ok(engine)
    }

    /// Forget the recommendation model (new products or many new orders); the next request
    /// rebuilds it.
    pub async fn invalidate_model(&self) {
        *self.model.write().await = None;
    }

    /// Churn, lifetime value and next-purchase predictions for a user, cached with the
    /// profile TTL.
    async fn predictions(
        &self,
        id: Uuid,
        record: &CustomerRecord,
    ) -> AppResult<Vec<PredictionView>> {
        let options = EntryOptions::ttl(self.config.profile_ttl).tag(user_tag(id));
        let key = format!("predictions:{id}");
        self.cache
            .get_or_load(&key, &options, || async {
                let manager = manager();
                [
                    PredictionKind::Churn,
                    PredictionKind::LifetimeValue,
                    PredictionKind::NextPurchase,
                ]
                .into_iter()
                .map(|kind| {
                    manager
                        .predict(kind, record, today())
                        .map(PredictionView::from)
                        .map_err(AppError::from)
                })
                .collect::<AppResult<Vec<_>>>()
            })
            .await
            .map_err(shared)
    }

    /// Personalised recommendations for a user (flow 3).
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or a store failing. A cache failure is never
    /// an error: the recommendations are computed instead.
    pub async fn recommendations(&self, user_id: Uuid) -> AppResult<Recommendations> {
        let key = format!("recommendations:{user_id}");
        if let Some(mut hit) = self.cache.get::<Recommendations>(&key).await? {
            hit.cached = true;
            return Ok(hit);
        }
        let options = EntryOptions::ttl(self.config.recommendations_ttl).tag(user_tag(user_id));
        self.cache
            .get_or_load(&key, &options, || async {
                let record = self.customer_record(user_id).await?;
                let predictions = self.predictions(user_id, &record).await?;
                let profile = manager().analytics().profile_customer(&record, today())?;
                let recommendations = match self.recommendation_model().await? {
                    Some(engine) => {
                        engine.recommend(&record.purchases, profile.segment, RECOMMENDATIONS)
                    }
                    None => Vec::new(),
                };
                tracing::debug!(%user_id, predictions = predictions.len(), "recommendations computed");
                Ok::<_, AppError>(Recommendations {
                    user_id,
                    segment: profile.segment,
                    recommendations,
                    cached: false,
                })
            })
            .await
            .map_err(shared)
    }

    /// A user's analytics profile with predictions.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or a store failing.
    pub async fn profile(&self, user_id: Uuid) -> AppResult<ProfileView> {
        let key = format!("profile:{user_id}");
        if let Some(mut hit) = self.cache.get::<ProfileView>(&key).await? {
            hit.cached = true;
            return Ok(hit);
        }
        let options = EntryOptions::ttl(self.config.profile_ttl).tag(user_tag(user_id));
        self.cache
            .get_or_load(&key, &options, || async {
                let record = self.customer_record(user_id).await?;
                let predictions = self.predictions(user_id, &record).await?;
                let profile = manager().analytics().profile_customer(&record, today())?;
                Ok::<_, AppError>(ProfileView {
                    user_id,
                    profile,
                    predictions,
                    cached: false,
                })
            })
            .await
            .map_err(shared)
    }

    /// The segment report over the most active users, cached for a minute.
    ///
    /// # Errors
    ///
    /// A store failing.
    pub async fn insights(&self) -> AppResult<SegmentReport> {
        let options = EntryOptions::ttl(INSIGHTS_TTL);
        self.cache
            .get_or_load("insights", &options, || async {
                let page = self
                    .call(
                        "sql.list_users",
                        "sql",
                        self.sql.list_users(PageRequest::first(INSIGHT_USERS)),
                    )
                    .await?;
                let engine = manager();
                let mut profiles = Vec::with_capacity(page.items.len());
                for user in &page.items {
                    let record = self.customer_record(user.id).await?;
                    profiles.push(engine.analytics().profile_customer(&record, today())?);
                }
                Ok::<_, AppError>(InsightsGenerator::default().report(&profiles))
            })
            .await
            .map_err(shared)
    }

    /// Places an order and drops everything cached about the user that it changes (profile,
    /// predictions, recommendations).
    ///
    /// # Errors
    ///
    /// As the order repository: validation, unknown product or user, insufficient stock. The
    /// cache never fails it: the order is committed, so an invalidation that fails (cache
    /// backend down) is logged and counted, and the stale answers expire by their TTL.
    pub async fn place_order(
        &self,
        order: mod8_orm::NewOrder,
    ) -> AppResult<mod8_orm::OrderWithItems> {
        let user_id = order.user_id;
        let placed = self
            .call("sql.place_order", "sql", self.sql.place_order(order))
            .await?;
        self.invalidate_user(user_id).await;
        Ok(placed)
    }

    /// Drops what is cached about a user after a committed write. Never an error: the write
    /// has happened, so a failing cache is logged and counted (`/metrics`) instead.
    pub(crate) async fn invalidate_user(&self, user_id: Uuid) {
        if let Err(e) = self.cache.invalidate_tag(&user_tag(user_id)).await {
            self.metrics.cache_invalidation_failed();
            tracing::warn!(%user_id, error = %e, "could not invalidate the user's cached answers; they expire by TTL");
        }
    }
}
