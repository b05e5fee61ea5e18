//! Flow 3, personalisation: a cache hit is returned as is (marked cached); a miss loads the
//! user and purchase history from SQL and events from the document store, profiles the user
//! (AnalyticsEngine), predicts churn, lifetime value and next purchase (Predictor,
//! cached), picks products (RecommendationEngine, segment-aware) and caches the result for an
//! hour. Also the profile and insights endpoints, which share the loading code.
//!
//! The insights report and the recommendation model cover every customer, not a sample:
//!
//! - **The segment report** is computed by a batch that streams every user with their
//!   purchases from one SQL statement ([`mod8_orm::AnalyticsRepository::customer_histories`]),
//!   adds each user's activity from the document store and the cache, profiles them and folds
//!   the profile into running sums ([`mod8_datasci::SegmentReportBuilder`]): memory stays
//!   bounded whatever the number of users. The worker ([`crate::worker`]) runs it at start and
//!   every [`crate::AppConfig::insights_refresh`]; the result is stored in the cache with the
//!   time it was computed, and `GET /api/insights` reads it ([`App::insights`]), computing it
//!   only when nothing is stored yet. A batch rather than profiles maintained as activity
//!   arrives, because a segment depends on time as much as on activity: a user who does
//!   nothing drifts from active to at risk to dormant without any event that would update a
//!   maintained profile, so only a pass over everyone as of one day gives counts that are
//!   right for that day.
//! - **The co-occurrence model** is built from counts over every order line, aggregated in the
//!   database ([`mod8_orm::AnalyticsRepository::co_purchase_counts`]), so no purchase history
//!   is loaded. The worker rebuilds it with the report and after orders
//!   ([`App::place_order`] wakes it); a request rebuilds it only when it is missing or older
//!   than [`crate::AppConfig::model_refresh`].
//!
//! Placing an order, which invalidates what is cached here, is in [`super::orders`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use mod8_cache::EntryOptions;
use mod8_datasci::{
    ActivityCounts, AnalyticsEngine, CatalogItem, CustomerProfile, CustomerRecord,
    InsightsGenerator, ItemPurchase, Prediction, PredictionKind, PredictionValue, Predictor,
    PurchaseCounts, Recommendation, RecommendationConfig, RecommendationEngine,
    RecommendationReason, SegmentReport,
};
use mod8_docstore::DayRange;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::Recommendations;
use crate::activity::count_events;
use crate::error::{AppError, AppResult};
use crate::{keys, App};

/// How many recommendations a response carries.
pub const RECOMMENDATIONS: usize = 10;
/// Days of activity a profile counts (today included).
const ACTIVITY_DAYS: u32 = 90;
/// Users whose activity the insights batch reads from the document store and the cache at
/// once (the SQL side is one streamed statement).
const INSIGHTS_CONCURRENCY: usize = 16;
/// How long a stored insights report is kept when the worker stops refreshing it (a report
/// older than this is computed again by the next request).
const INSIGHTS_KEEP: Duration = Duration::from_secs(24 * 3600);

/// The segment report over every user and when it was computed (`GET /api/insights`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct InsightsReport {
    /// When the report was computed (RFC 3339, UTC): users registered, orders placed or
    /// events logged since then are not in it yet. The worker recomputes it every
    /// [`crate::AppConfig::insights_refresh`].
    pub computed_at: DateTime<Utc>,
    /// The report: `total_users` is every user registered when it was computed, and each
    /// segment's `users` add up to it.
    #[serde(flatten)]
    pub report: SegmentReport,
}

/// A user's analytics profile (`GET /api/users/{id}/profile`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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

/// The co-occurrence model, the catalog's popular products, and when they were built.
pub(crate) struct ModelState {
    built_at: Instant,
    model: Arc<Model>,
}

/// What recommendations are computed from: the co-occurrence engine over every order line
/// (`None` while the catalogue is empty) and the catalog's popular products, which fill a list
/// the engine leaves short (a new user when nothing has sold recently).
#[derive(Default)]
pub(crate) struct Model {
    engine: Option<RecommendationEngine>,
    /// Product ids: best sellers of each root category over [`POPULAR_DAYS`] (most units
    /// first), then the newest products of each root category, without repeats.
    popular: Vec<String>,
}

/// Days of sales the catalog's best sellers count.
const POPULAR_DAYS: u32 = 90;
/// Purchases (the most recent) whose "also bought" products fill a returning user's list.
const ALSO_BOUGHT_OF: usize = 3;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn predictor() -> Predictor {
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
        self.record_of(user_id, user.last_active_at, &history).await
    }

    /// The record of a user whose SQL side (last activity, purchases) is at hand: adds the
    /// activity from the document store and the cache (no SQL call, so it can run while a
    /// streamed statement holds the connection).
    async fn record_of(
        &self,
        user_id: Uuid,
        last_active_at: DateTime<Utc>,
        history: &[mod8_orm::Purchase],
    ) -> AppResult<CustomerRecord> {
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
        // The live counters are an addition to the event log's counts, not required: a cache
        // that is down leaves the log's figures.
        let live = match self.engagement_counters(user_id).await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "engagement counters unavailable; using the event log's counts");
                ActivityCounts::default()
            }
        };
        let last_active = summary
            .last_event_at
            .map_or(last_active_at, |t| t.max(last_active_at));
        Ok(CustomerRecord {
            user_id: user_id.to_string(),
            activity: elementwise_max(logged, live),
            last_active: Some(last_active.date_naive()),
            purchases: purchases_of(history),
        })
    }

    /// The recommendation model, rebuilt when older than the configured refresh interval or
    /// after [`App::invalidate_model`].
    async fn recommendation_model(&self) -> AppResult<Arc<Model>> {
        if let Some(state) = self.model.read().await.as_ref() {
            if state.built_at.elapsed() < self.config.model_refresh {
                return Ok(state.model.clone());
            }
        }
        let mut slot = self.model.write().await;
        if let Some(state) = slot.as_ref() {
            // Another request rebuilt it while this one waited for the lock.
            if state.built_at.elapsed() < self.config.model_refresh {
                return Ok(state.model.clone());
            }
        }
        let model = self.build_model().await?;
        *slot = Some(ModelState {
            built_at: Instant::now(),
            model: model.clone(),
        });
        Ok(model)
    }

    /// Rebuilds the recommendation model now, from every order line (what the worker does
    /// periodically and after orders). Requests keep the previous model until it is replaced.
    ///
    /// # Errors
    ///
    /// A store failing (the previous model is kept).
    pub async fn refresh_model(&self) -> AppResult<()> {
        let model = self.build_model().await?;
        *self.model.write().await = Some(ModelState {
            built_at: Instant::now(),
            model,
        });
        Ok(())
    }

    /// The catalogue and the co-purchase counts over every order line (one aggregate in the
    /// database), as a model, with the catalog's popular products.
    async fn build_model(&self) -> AppResult<Arc<Model>> {
        let products = self
            .call("sql.products", "sql", self.sql.products(None))
            .await?;
        if products.is_empty() {
            return Ok(Arc::new(Model::default()));
        }
        let popular = self.popular_products().await?;
        let catalog: Vec<CatalogItem> = products
            .iter()
            .map(|p| CatalogItem {
                id: p.id.to_string(),
                category: p.category.clone(),
                price: p.price_cents as f64 / 100.0,
            })
            .collect();
        let counts = self
            .call(
                "sql.co_purchase_counts",
                "sql",
                self.sql.co_purchase_counts(),
            )
            .await?;
        let counts = PurchaseCounts {
            buyers: counts
                .buyers
                .iter()
                .map(|b| (b.product_id.to_string(), b.buyers))
                .collect(),
            pairs: counts
                .pairs
                .iter()
                .map(|p| (p.product_a.to_string(), p.product_b.to_string(), p.buyers))
                .collect(),
            lines_by_day: counts
                .lines_by_day
                .iter()
                .map(|d| (d.product_id.to_string(), d.day, d.lines))
                .collect(),
        };
        let engine = RecommendationEngine::from_counts(
            &catalog,
            &counts,
            today(),
            RecommendationConfig::default(),
        )?;
        Ok(Arc::new(Model {
            engine: Some(engine),
            popular,
        }))
    }

    /// The catalog's popular products ([`Model::popular`]): per root category its best
    /// sellers ([`mod8_orm::CatalogRepository::best_sellers`] over the subtree), merged by
    /// units sold, then the newest products of each root (first listing page), so that a
    /// non-empty catalog always has some.
    async fn popular_products(&self) -> AppResult<Vec<String>> {
        let want = RECOMMENDATIONS as u32 * 2;
        let roots: Vec<_> = self
            .call("sql.categories", "sql", self.sql.categories())
            .await?
            .into_iter()
            .filter(|c| c.parent_id.is_none())
            .collect();
        let mut sellers = Vec::new();
        for root in &roots {
            sellers.extend(
                self.call(
                    "sql.best_sellers",
                    "sql",
                    self.sql.best_sellers(root.id, POPULAR_DAYS, want),
                )
                .await?,
            );
        }
        sellers.sort_by(|a, b| b.units.cmp(&a.units).then_with(|| a.sku.cmp(&b.sku)));
        let mut popular: Vec<String> = Vec::new();
        let push = |id: Uuid, popular: &mut Vec<String>| {
            let id = id.to_string();
            if !popular.contains(&id) {
                popular.push(id);
            }
        };
        for s in sellers {
            push(s.product_id, &mut popular);
        }
        if popular.len() < want as usize {
            let query = mod8_orm::ListingQuery {
                limit: want,
                in_stock: true,
                ..Default::default()
            };
            let mut newest = Vec::new();
            for root in &roots {
                newest.extend(
                    self.call(
                        "sql.list_category_products",
                        "sql",
                        self.sql.list_category_products(root.id, query.clone()),
                    )
                    .await?
                    .items,
                );
            }
            newest.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
            for p in newest {
                push(p.id, &mut popular);
            }
        }
        Ok(popular)
    }

    /// Fills `picks` up to `limit` for a user who bought `history`: first products bought by
    /// buyers of their most recent purchases ([`mod8_orm::CatalogRepository::also_bought`]),
    /// then in-stock products most like those purchases
    /// ([`mod8_orm::ProductSimilarity`]), then the catalog's popular products; never a product already picked or bought. Filled
    /// picks score below every engine pick.
    async fn fill_from_catalog(
        &self,
        model: &Model,
        history: &[ItemPurchase],
        picks: &mut Vec<Recommendation>,
        limit: usize,
    ) -> AppResult<()> {
        if picks.len() >= limit {
            return Ok(());
        }
        let mut recent: Vec<&ItemPurchase> = history.iter().collect();
        recent.sort_by_key(|p| std::cmp::Reverse(p.date));
        let mut sources: Vec<&str> = Vec::new();
        for p in recent {
            if !sources.contains(&p.product_id.as_str()) {
                sources.push(&p.product_id);
            }
            if sources.len() == ALSO_BOUGHT_OF {
                break;
            }
        }
        let mut candidates: Vec<(String, RecommendationReason)> = Vec::new();
        for source in sources.iter() {
            let Ok(id) = source.parse::<Uuid>() else {
                continue;
            };
            let also = self
                .call(
                    "sql.also_bought",
                    "sql",
                    self.sql.also_bought(id, limit as u32),
                )
                .await?;
            candidates.extend(
                also.into_iter()
                    .map(|a| (a.product_id.to_string(), RecommendationReason::SimilarItems)),
            );
        }
        // "More like what you bought": the in-stock nearest neighbours (by embedding) of the
        // same recent purchases.
        let parsed: Vec<Uuid> = sources.iter().filter_map(|s| s.parse().ok()).collect();
        candidates.extend(
            self.similar_candidates(&parsed, limit as u32)
                .await
                .into_iter()
                .map(|id| (id.to_string(), RecommendationReason::SimilarItems)),
        );
        candidates.extend(
            model
                .popular
                .iter()
                .map(|id| (id.clone(), RecommendationReason::Trending)),
        );
        let floor = picks.last().map_or(1.0, |p| p.score);
        let mut n = 0usize;
        for (product_id, reason) in candidates {
            if picks.len() >= limit {
                break;
            }
            if picks.iter().any(|p| p.product_id == product_id)
                || history.iter().any(|p| p.product_id == product_id)
            {
                continue;
            }
            n += 1;
            picks.push(Recommendation {
                product_id,
                score: floor * (1.0 - n as f64 / (limit as f64 + 1.0)),
                reason,
            });
        }
        Ok(())
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
        let options = EntryOptions::ttl(self.config.profile_ttl).with_tag(keys::user_tag(id));
        self.cache
            .get_or_load(&keys::predictions(id), &options, || async {
                let predictor = predictor();
                [
                    PredictionKind::Churn,
                    PredictionKind::LifetimeValue,
                    PredictionKind::NextPurchase,
                ]
                .into_iter()
                .map(|kind| {
                    predictor
                        .predict(kind, record, today())
                        .map(PredictionView::from)
                        .map_err(AppError::from)
                })
                .collect::<AppResult<Vec<_>>>()
            })
            .await
            .map_err(AppError::from)
    }

    /// Personalised recommendations for a user (flow 3).
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or a store failing. A cache failure is never
    /// an error: the recommendations are computed instead.
    pub async fn recommendations(&self, user_id: Uuid) -> AppResult<Recommendations> {
        let key = keys::recommendations(user_id);
        if let Some(mut hit) = self.cache.get::<Recommendations>(&key).await? {
            hit.cached = true;
            return Ok(hit);
        }
        // Also tagged as recommendations: a catalog change drops every list (any may name the
        // changed product), see `flows::catalog`.
        let options = EntryOptions::ttl(self.config.recommendations_ttl)
            .with_tag(keys::user_tag(user_id))
            .with_tag(keys::recommendations_tag());
        self.cache
            .get_or_load(&key, &options, || async {
                let record = self.customer_record(user_id).await?;
                let predictions = self.predictions(user_id, &record).await?;
                let profile = predictor().analytics().profile_customer(&record, today())?;
                let model = self.recommendation_model().await?;
                let mut recommendations = match &model.engine {
                    Some(engine) => {
                        engine.recommend(&record.purchases, profile.segment, RECOMMENDATIONS)
                    }
                    None => Vec::new(),
                };
                self.fill_from_catalog(
                    &model,
                    &record.purchases,
                    &mut recommendations,
                    RECOMMENDATIONS,
                )
                .await?;
                tracing::debug!(%user_id, predictions = predictions.len(), "recommendations computed");
                Ok::<_, AppError>(Recommendations {
                    user_id,
                    segment: profile.segment,
                    recommendations,
                    cached: false,
                })
            })
            .await
            .map_err(AppError::from)
    }

    /// A user's analytics profile with predictions.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or a store failing.
    pub async fn profile(&self, user_id: Uuid) -> AppResult<ProfileView> {
        let key = keys::profile(user_id);
        if let Some(mut hit) = self.cache.get::<ProfileView>(&key).await? {
            hit.cached = true;
            return Ok(hit);
        }
        let options = EntryOptions::ttl(self.config.profile_ttl).with_tag(keys::user_tag(user_id));
        self.cache
            .get_or_load(&key, &options, || async {
                let record = self.customer_record(user_id).await?;
                let predictions = self.predictions(user_id, &record).await?;
                let profile = predictor().analytics().profile_customer(&record, today())?;
                Ok::<_, AppError>(ProfileView {
                    user_id,
                    profile,
                    predictions,
                    cached: false,
                })
            })
            .await
            .map_err(AppError::from)
    }

    /// The segment report over every user, as last computed: read from the cache, where
    /// [`App::refresh_insights`] (run by the worker) stores it. Computed here only when none
    /// is stored (before the worker's first pass, or on an app whose worker is not started).
    ///
    /// # Errors
    ///
    /// A store failing while the report has to be computed.
    pub async fn insights(&self) -> AppResult<InsightsReport> {
        if let Some(stored) = self.cache.get::<InsightsReport>(keys::insights()).await? {
            return Ok(stored);
        }
        self.refresh_insights().await
    }

    /// Computes the segment report over every user now and stores it for [`App::insights`].
    ///
    /// One statement streams the users with their purchases; each user's activity comes
    /// from the document store and the cache, 16 users at a time; each
    /// profile is folded into running sums and dropped. Memory does not grow with the number
    /// of users. While the statement runs it holds a SQL connection (on the embedded
    /// single-connection SQLite, other SQL calls wait for the pass to finish).
    ///
    /// # Errors
    ///
    /// A store failing (the previously stored report stays).
    pub async fn refresh_insights(&self) -> AppResult<InsightsReport> {
        let started = Instant::now();
        let as_of = today();
        let engine = &predictor();
        let mut builder = InsightsGenerator::default().builder();
        let mut profiles = self
            .sql
            .customer_histories()
            .map_err(AppError::from)
            .map_ok(|history| async move {
                let record = self
                    .record_of(
                        history.user.id,
                        history.user.last_active_at,
                        &history.purchases,
                    )
                    .await?;
                Ok::<_, AppError>(engine.analytics().profile_customer(&record, as_of)?)
            })
            .try_buffered(INSIGHTS_CONCURRENCY);
        while let Some(profile) = profiles.try_next().await? {
            builder.add(&profile);
        }
        drop(profiles);
        self.metrics
            .observe_query("batch.insights", started.elapsed());
        let report = InsightsReport {
            computed_at: Utc::now(),
            report: builder.finish(),
        };
        // A cache that cannot keep it is not an error: the report is answered, and computed
        // again when asked for.
        if let Err(e) = self
            .cache
            .set(keys::insights(), &report, &EntryOptions::ttl(INSIGHTS_KEEP))
            .await
        {
            tracing::warn!(error = %e, "could not store the insights report");
        }
        tracing::info!(
            users = report.report.total_users,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "insights report computed over every user"
        );
        Ok(report)
    }
}
