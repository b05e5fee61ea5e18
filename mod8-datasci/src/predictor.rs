//! One entry point for every prediction kind, with a confidence.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::activity::CustomerRecord;
use crate::engine::AnalyticsEngine;
use crate::error::{Error, Result};
use crate::recommend::{Recommendation, RecommendationEngine};

/// What [`Predictor::predict`] can predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PredictionKind {
    /// Probability the customer has churned (or will).
    Churn,
    /// Expected value of the customer over the model's horizon.
    LifetimeValue,
    /// Expected date of the next purchase.
    NextPurchase,
    /// Products to show.
    Recommendation,
}

/// The value of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PredictionValue {
    /// A probability in [0, 1] (churn).
    Probability(f64),
    /// A money amount (lifetime value).
    Amount(f64),
    /// A day, or `None` when there is no basis for one (next purchase).
    Date(Option<NaiveDate>),
    /// Products (recommendations).
    Products(Vec<Recommendation>),
}

impl std::fmt::Display for PredictionValue {
    /// `0.123`, `123.45`, `2024-07-01` / `none`, or `p1 (0.92), p2 (0.80)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PredictionValue::Probability(p) => write!(f, "{p:.3}"),
            PredictionValue::Amount(a) => write!(f, "{a:.2}"),
            PredictionValue::Date(Some(d)) => write!(f, "{d}"),
            PredictionValue::Date(None) => f.write_str("none"),
            PredictionValue::Products(list) => {
                for (i, r) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} ({:.2})", r.product_id, r.score)?;
                }
                Ok(())
            }
        }
    }
}

/// A prediction with its confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// What was predicted.
    pub kind: PredictionKind,
    /// The prediction.
    pub value: PredictionValue,
    /// Confidence in [0, 1]: how much data the prediction rests on. With n purchase days it
    /// is n/(n+3) for the heuristic tier; a fitted model borrows strength from the whole base,
    /// so there it is 0.5 + 0.5·n/(n+3). Next purchase needs two purchase days (0 otherwise);
    /// recommendations use the top score times the data factor.
    pub confidence: f64,
    /// Which model answered (`"heuristic"`, `"bgnbd-gamma-gamma"`, `"item-cf"`).
    pub model: &'static str,
}

/// Dispatches [`PredictionKind`]s to the analytics and recommendation engines.
///
/// ```
/// use chrono::NaiveDate;
/// use mod8_datasci::{AnalyticsEngine, CustomerRecord, PredictionKind, PredictionValue, Predictor};
/// let today = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
/// let predictor = Predictor::new(AnalyticsEngine::heuristic());
/// let customer = CustomerRecord { user_id: "u".into(), last_active: Some(today), ..Default::default() };
/// let churn = predictor.predict(PredictionKind::Churn, &customer, today)?;
/// assert!(matches!(churn.value, PredictionValue::Probability(p) if (0.0..=1.0).contains(&p)));
/// // No recommendation engine configured: a typed error, not a guess.
/// assert!(predictor.predict(PredictionKind::Recommendation, &customer, today).is_err());
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Predictor {
    analytics: AnalyticsEngine,
    recommendations: Option<RecommendationEngine>,
    recommendation_limit: usize,
}

impl Predictor {
    /// A predictor over an analytics engine (choose its tier there).
    pub fn new(analytics: AnalyticsEngine) -> Self {
        Predictor {
            analytics,
            recommendations: None,
            recommendation_limit: 10,
        }
    }

    /// Adds a recommendation engine; `limit` products per recommendation prediction.
    pub fn with_recommendations(mut self, engine: RecommendationEngine, limit: usize) -> Self {
        self.recommendations = Some(engine);
        self.recommendation_limit = limit;
        self
    }

    /// The analytics engine.
    pub fn analytics(&self) -> &AnalyticsEngine {
        &self.analytics
    }

    /// Predicts `kind` for `customer` as of `as_of`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for [`PredictionKind::Recommendation`] without a recommendation
    /// engine; otherwise as [`AnalyticsEngine::profile`].
    pub fn predict(
        &self,
        kind: PredictionKind,
        customer: &CustomerRecord,
        as_of: NaiveDate,
    ) -> Result<Prediction> {
        let user = customer.summary();
        let model = self.analytics.model();
        let n = user.purchases.count as f64;
        let data = n / (n + 3.0);
        let fitted = model.name() != "heuristic";
        let confidence = if fitted { 0.5 + 0.5 * data } else { data };
        let (value, confidence, name) = match kind {
            PredictionKind::Churn => (
                PredictionValue::Probability(model.churn_risk(&user, as_of)),
                confidence,
                model.name(),
            ),
            PredictionKind::LifetimeValue => (
                PredictionValue::Amount(model.lifetime_value(&user, as_of)?),
                confidence,
                model.name(),
            ),
            PredictionKind::NextPurchase => {
                let next = model.next_purchase(&user, as_of);
                let c = if next.is_some() && (fitted || n >= 2.0) {
                    confidence
                } else {
                    0.0
                };
                (PredictionValue::Date(next), c, model.name())
            }
            PredictionKind::Recommendation => {
                let engine = self.recommendations.as_ref().ok_or_else(|| {
                    Error::unsupported(
                        "predict(PredictionKind::Recommendation) without a RecommendationEngine",
                        "Predictor",
                    )
                })?;
                let segment = self.analytics.segment(&user, as_of);
                let recs =
                    engine.recommend(&customer.purchases, segment, self.recommendation_limit);
                let top = recs.first().map_or(0.0, |r| r.score);
                (
                    PredictionValue::Products(recs),
                    top * data.max(0.25),
                    "item-cf",
                )
            }
        };
        Ok(Prediction {
            kind,
            value,
            confidence: confidence.clamp(0.0, 1.0),
            model: name,
        })
    }
}
