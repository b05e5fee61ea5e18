//! The [`AnalyticsEngine`]: turns a customer's activity into a profile (segment, engagement,
//! churn risk, lifetime value, next purchase) with one explicitly chosen value model.

use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::activity::{CustomerActivity, CustomerRecord};
use crate::clv::ClvModel;
use crate::engagement::EngagementWeights;
use crate::error::Result;
use crate::segment::{Segment, SegmentSignals, SegmentThresholds};
use crate::value::{CustomerValueModel, HeuristicModel, ProbabilisticModel, ValueAssessment};

/// A customer's profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerProfile {
    /// Segment by the engine's thresholds.
    pub segment: Segment,
    /// Engagement score 0–100.
    pub engagement: f64,
    /// Churn risk 0–1.
    pub churn_risk: f64,
    /// Lifetime value estimate.
    pub lifetime_value: f64,
    /// Expected next purchase day.
    pub next_purchase: Option<NaiveDate>,
    /// Total spend so far.
    pub total_spend: f64,
    /// Purchase days so far.
    pub purchase_count: u32,
    /// Days since the last activity or purchase (`None`: never active).
    pub days_inactive: Option<u32>,
}

/// Profiles customers with one explicitly chosen value model.
///
/// ```
/// use chrono::NaiveDate;
/// use mod8_datasci::{AnalyticsEngine, CustomerRecord, ItemPurchase, Segment};
/// let today = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
/// let engine = AnalyticsEngine::heuristic();
/// let customer = CustomerRecord {
///     user_id: "u1".into(),
///     last_active: Some(today),
///     purchases: vec![ItemPurchase { product_id: "p1".into(), amount: 40.0, date: today }],
///     ..Default::default()
/// };
/// let profile = engine.profile(&customer.summary(), today)?;
/// assert_eq!(profile.segment, Segment::Active);
/// assert!(profile.churn_risk < 0.2);
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
#[derive(Clone)]
pub struct AnalyticsEngine {
    thresholds: SegmentThresholds,
    weights: EngagementWeights,
    model: Arc<dyn CustomerValueModel>,
}

impl std::fmt::Debug for AnalyticsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsEngine")
            .field("thresholds", &self.thresholds)
            .field("weights", &self.weights)
            .field("model", &self.model.name())
            .finish()
    }
}

impl AnalyticsEngine {
    /// Tier 1: the [`HeuristicModel`] with default settings.
    pub fn heuristic() -> Self {
        Self::with_model(Arc::new(HeuristicModel::default()))
    }

    /// Tier 2: a fitted [`ClvModel`] (see [`crate::ClvFit::model`]).
    pub fn probabilistic(model: ClvModel) -> Self {
        Self::with_model(Arc::new(ProbabilisticModel::new(model)))
    }

    /// Any value model.
    pub fn with_model(model: Arc<dyn CustomerValueModel>) -> Self {
        AnalyticsEngine {
            thresholds: SegmentThresholds::default(),
            weights: EngagementWeights::default(),
            model,
        }
    }

    /// Replaces the segmentation thresholds.
    pub fn with_thresholds(mut self, thresholds: SegmentThresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Replaces the engagement weights.
    pub fn with_weights(mut self, weights: EngagementWeights) -> Self {
        self.weights = weights;
        self
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &SegmentThresholds {
        &self.thresholds
    }

    /// The value model in use.
    pub fn model(&self) -> &Arc<dyn CustomerValueModel> {
        &self.model
    }

    /// The profile of one user as of `as_of`.
    ///
    /// # Errors
    ///
    /// When the value model cannot compute the lifetime value.
    pub fn profile(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<CustomerProfile> {
        // One pass through the model: `assess` shares the work between churn, value and next
        // purchase (the probabilistic tier computes its summary and P(alive) once, not three
        // times), and models promise it returns what the three separate calls would.
        let ValueAssessment {
            churn_risk,
            lifetime_value,
            next_purchase,
        } = self.model.assess(user, as_of)?;
        let days_inactive = user.days_inactive(as_of);
        let total_spend = user.purchases.total_amount;
        Ok(CustomerProfile {
            segment: self.thresholds.classify(SegmentSignals {
                days_inactive,
                churn_risk,
                total_spend,
            }),
            engagement: self.weights.score(user),
            churn_risk,
            lifetime_value,
            next_purchase,
            total_spend,
            purchase_count: user.purchases.count,
            days_inactive,
        })
    }

    /// [`AnalyticsEngine::profile`] of a full customer record.
    ///
    /// # Errors
    ///
    /// As [`AnalyticsEngine::profile`].
    pub fn profile_customer(
        &self,
        customer: &CustomerRecord,
        as_of: NaiveDate,
    ) -> Result<CustomerProfile> {
        self.profile(&customer.summary(), as_of)
    }

    /// Profiles of many users, in order.
    ///
    /// # Errors
    ///
    /// The first error of [`AnalyticsEngine::profile`].
    pub fn profile_all(
        &self,
        users: &[CustomerActivity],
        as_of: NaiveDate,
    ) -> Result<Vec<CustomerProfile>> {
        users.iter().map(|u| self.profile(u, as_of)).collect()
    }

    /// Just the segment (skips the lifetime value).
    pub fn segment(&self, user: &CustomerActivity, as_of: NaiveDate) -> Segment {
        self.thresholds.classify(SegmentSignals {
            days_inactive: user.days_inactive(as_of),
            churn_risk: self.model.churn_risk(user, as_of),
            total_spend: user.purchases.total_amount,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::PurchaseStats;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    /// Counts how the engine calls its model.
    #[derive(Default)]
    struct CountingModel {
        separate: std::sync::atomic::AtomicUsize,
        assessed: std::sync::atomic::AtomicUsize,
    }

    impl CustomerValueModel for CountingModel {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn churn_risk(&self, _: &CustomerActivity, _: NaiveDate) -> f64 {
            self.separate
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            0.25
        }
        fn lifetime_value(&self, _: &CustomerActivity, _: NaiveDate) -> Result<f64> {
            self.separate
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(10.0)
        }
        fn next_purchase(&self, _: &CustomerActivity, _: NaiveDate) -> Option<NaiveDate> {
            self.separate
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        }
        fn assess(&self, _: &CustomerActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
            self.assessed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(ValueAssessment {
                churn_risk: 0.25,
                lifetime_value: 10.0,
                next_purchase: Some(as_of),
            })
        }
    }

    #[test]
    fn profile_asks_the_model_once() {
        let model = Arc::new(CountingModel::default());
        let engine = AnalyticsEngine::with_model(model.clone());
        let p = engine
            .profile(&CustomerActivity::default(), d(6, 1))
            .unwrap();
        assert_eq!((p.churn_risk, p.lifetime_value), (0.25, 10.0));
        assert_eq!(p.next_purchase, Some(d(6, 1)));
        let load =
            |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(load(&model.assessed), 1);
        assert_eq!(
            load(&model.separate),
            0,
            "profile bypassed the one-pass assess"
        );
    }

    #[test]
    fn engine_segments() {
        let e = AnalyticsEngine::heuristic();
        let never = CustomerActivity::default();
        assert_eq!(
            e.profile(&never, d(6, 1)).unwrap().segment,
            Segment::Dormant
        );
        let mut vip = CustomerActivity {
            last_active: Some(d(6, 1)),
            ..Default::default()
        };
        vip.purchases = PurchaseStats {
            count: 10,
            total_amount: 5000.0,
            first_amount: 500.0,
            first: Some(d(1, 1)),
            last: Some(d(5, 30)),
        };
        assert_eq!(e.segment(&vip, d(6, 1)), Segment::Vip);
        vip.purchases.last = Some(d(3, 1));
        assert_eq!(e.segment(&vip, d(6, 1)), Segment::AtRisk);
    }
}
