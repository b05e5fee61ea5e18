//! Customer-value models (the two tiers) and the [`AnalyticsEngine`] that turns activity into a
//! profile: segment, engagement, churn risk, lifetime value.

use std::sync::Arc;

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::clv::{ClvModel, ClvOptions};
use crate::error::Result;
use crate::rfm::{Rfm, DAYS_PER_WEEK};
use crate::segment::{days_between, CustomerRecord, Segment, SegmentThresholds, UserActivity};

/// A model of what a customer is worth and whether they will stay.
///
/// Two implementations ship: [`HeuristicModel`] (closed-form rules, for small data) and
/// [`ProbabilisticModel`] (a fitted BG/NBD + Gamma-Gamma [`ClvModel`]). Both pass the
/// conformance suite in `mod8_datasci::testing` (feature `testing`).
pub trait CustomerValueModel: Send + Sync {
    /// Short name for reports (`"heuristic"`, `"bgnbd-gamma-gamma"`).
    fn name(&self) -> &'static str;

    /// Probability in [0, 1] that the customer has churned.
    fn churn_risk(&self, user: &UserActivity, as_of: NaiveDate) -> f64;

    /// Expected value (≥ 0) of the customer over the model's horizon.
    ///
    /// # Errors
    ///
    /// When the model cannot evaluate (a probabilistic model's series not converging).
    fn lifetime_value(&self, user: &UserActivity, as_of: NaiveDate) -> Result<f64>;

    /// Expected day of the next purchase, `None` when the model has no basis for one.
    fn next_purchase(&self, user: &UserActivity, as_of: NaiveDate) -> Option<NaiveDate>;

    /// All three at once. The default calls the three methods; a model overrides it to share
    /// work between them, and must return the same numbers.
    ///
    /// # Errors
    ///
    /// As [`CustomerValueModel::lifetime_value`].
    fn assess(&self, user: &UserActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
        Ok(ValueAssessment {
            churn_risk: self.churn_risk(user, as_of),
            lifetime_value: self.lifetime_value(user, as_of)?,
            next_purchase: self.next_purchase(user, as_of),
        })
    }
}

/// What a [`CustomerValueModel`] says about one customer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValueAssessment {
    /// Probability in [0, 1] that the customer has churned.
    pub churn_risk: f64,
    /// Expected value over the model's horizon.
    pub lifetime_value: f64,
    /// Expected next purchase day.
    pub next_purchase: Option<NaiveDate>,
}

impl<T: CustomerValueModel + ?Sized> CustomerValueModel for Arc<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn churn_risk(&self, user: &UserActivity, as_of: NaiveDate) -> f64 {
        (**self).churn_risk(user, as_of)
    }
    fn lifetime_value(&self, user: &UserActivity, as_of: NaiveDate) -> Result<f64> {
        (**self).lifetime_value(user, as_of)
    }
    fn next_purchase(&self, user: &UserActivity, as_of: NaiveDate) -> Option<NaiveDate> {
        (**self).next_purchase(user, as_of)
    }
    fn assess(&self, user: &UserActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
        (**self).assess(user, as_of)
    }
}

/// The heuristic churn curve: 1 / (1 + exp(−(days − 30) / 20)).
pub fn heuristic_churn(days_since_last_purchase: f64) -> f64 {
    1.0 / (1.0 + (-(days_since_last_purchase - 30.0) / 20.0).exp())
}

/// Closed-form rules for small data.
///
/// - churn = 1 / (1 + exp(−(d − 30) / 20)) with d = days since the last purchase (days since
///   the last activity for a customer who never bought; 1 for a customer never seen);
/// - lifetime value = purchase rate × `horizon_days` × average purchase × (1 − churn), where the
///   rate is purchase days per day since the first purchase (at least `min_window_days`);
/// - next purchase = last purchase + mean gap between purchase days (two purchase days needed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeuristicModel {
    /// Lifetime-value horizon in days. Default 365.
    pub horizon_days: f64,
    /// Shortest observation window for the purchase rate, so a first-week customer is not
    /// extrapolated from a few days. Default 30.
    pub min_window_days: f64,
}

impl Default for HeuristicModel {
    fn default() -> Self {
        HeuristicModel {
            horizon_days: 365.0,
            min_window_days: 30.0,
        }
    }
}

impl HeuristicModel {
    fn value_given_churn(&self, user: &UserActivity, as_of: NaiveDate, churn_risk: f64) -> f64 {
        let stats = &user.purchases;
        let Some(first) = stats.first else {
            return 0.0;
        };
        let window = (days_between(first, as_of) as f64).max(self.min_window_days);
        let rate = stats.count as f64 / window;
        let value = rate * self.horizon_days * stats.average_amount() * (1.0 - churn_risk);
        if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        }
    }
}

impl CustomerValueModel for HeuristicModel {
    fn name(&self) -> &'static str {
        "heuristic"
    }

    fn churn_risk(&self, user: &UserActivity, as_of: NaiveDate) -> f64 {
        let last = user.purchases.last.or(user.last_active);
        match last {
            Some(day) => heuristic_churn(days_between(day, as_of) as f64),
            None => 1.0,
        }
    }

    fn lifetime_value(&self, user: &UserActivity, as_of: NaiveDate) -> Result<f64> {
        Ok(self.value_given_churn(user, as_of, self.churn_risk(user, as_of)))
    }

    fn assess(&self, user: &UserActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
        let churn_risk = self.churn_risk(user, as_of);
        Ok(ValueAssessment {
            churn_risk,
            lifetime_value: self.value_given_churn(user, as_of, churn_risk),
            next_purchase: self.next_purchase(user, as_of),
        })
    }

    fn next_purchase(&self, user: &UserActivity, _as_of: NaiveDate) -> Option<NaiveDate> {
        let stats = &user.purchases;
        let (first, last) = (stats.first?, stats.last?);
        if stats.count < 2 {
            return None;
        }
        let gap = (days_between(first, last) as f64 / (stats.count - 1) as f64).round() as u64;
        last.checked_add_days(Days::new(gap))
    }
}

/// The fitted tier: BG/NBD + Gamma-Gamma.
///
/// - churn = 1 − P(alive) for customers with a repeat purchase; BG/NBD says nothing about
///   dropout before the first repeat purchase (P(alive) = 1), so one-time buyers get the
///   heuristic curve instead;
/// - lifetime value = discounted CLV by [`ClvOptions`]; monetary value = average of the repeat
///   purchase days (total minus the first day's amount);
/// - next purchase = `as_of` + 1 / E[λ | alive] weeks while P(alive) ≥ 0.5, else `None`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbabilisticModel {
    /// The fitted models.
    pub model: ClvModel,
    /// Horizon and discounting of the lifetime value.
    pub options: ClvOptions,
}

impl ProbabilisticModel {
    /// A probabilistic tier with the default CLV options (12 × 4.345 weeks, 1 % per period).
    pub fn new(model: ClvModel) -> Self {
        ProbabilisticModel {
            model,
            options: ClvOptions::default(),
        }
    }

    /// The BG/NBD summary of a user at `as_of`, `None` without purchases.
    pub fn rfm(user: &UserActivity, as_of: NaiveDate) -> Option<Rfm> {
        let stats = &user.purchases;
        let (first, last) = (stats.first?, stats.last?);
        let frequency = stats.count.saturating_sub(1);
        let t = days_between(first, as_of) as f64 / DAYS_PER_WEEK;
        let recency = if frequency == 0 {
            0.0
        } else {
            (days_between(first, last) as f64 / DAYS_PER_WEEK).min(t)
        };
        let monetary_value = if frequency == 0 {
            0.0
        } else {
            ((stats.total_amount - stats.first_amount) / frequency as f64).max(0.0)
        };
        Some(Rfm {
            frequency,
            recency,
            t,
            monetary_value,
        })
    }
}

impl CustomerValueModel for ProbabilisticModel {
    fn name(&self) -> &'static str {
        "bgnbd-gamma-gamma"
    }

    fn churn_risk(&self, user: &UserActivity, as_of: NaiveDate) -> f64 {
        match Self::rfm(user, as_of) {
            Some(rfm) if rfm.frequency > 0 => {
                (1.0 - self.model.bgnbd.p_alive(&rfm)).clamp(0.0, 1.0)
            }
            _ => HeuristicModel::default().churn_risk(user, as_of),
        }
    }

    fn lifetime_value(&self, user: &UserActivity, as_of: NaiveDate) -> Result<f64> {
        match Self::rfm(user, as_of) {
            Some(rfm) => self.model.clv(&rfm, &self.options),
            None => Ok(0.0),
        }
    }

    fn next_purchase(&self, user: &UserActivity, as_of: NaiveDate) -> Option<NaiveDate> {
        let rfm = Self::rfm(user, as_of)?;
        self.next_purchase_of(&rfm, self.model.bgnbd.p_alive(&rfm), as_of)
    }

    fn assess(&self, user: &UserActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
        let Some(rfm) = Self::rfm(user, as_of) else {
            return Ok(ValueAssessment {
                churn_risk: HeuristicModel::default().churn_risk(user, as_of),
                lifetime_value: 0.0,
                next_purchase: None,
            });
        };
        let p_alive = self.model.bgnbd.p_alive(&rfm);
        Ok(ValueAssessment {
            churn_risk: if rfm.frequency > 0 {
                (1.0 - p_alive).clamp(0.0, 1.0)
            } else {
                HeuristicModel::default().churn_risk(user, as_of)
            },
            lifetime_value: self.model.clv(&rfm, &self.options)?,
            next_purchase: self.next_purchase_of(&rfm, p_alive, as_of),
        })
    }
}

impl ProbabilisticModel {
    fn next_purchase_of(&self, rfm: &Rfm, p_alive: f64, as_of: NaiveDate) -> Option<NaiveDate> {
        if p_alive < 0.5 {
            return None;
        }
        let weeks = 1.0 / self.model.bgnbd.expected_rate(rfm);
        let days = (weeks * DAYS_PER_WEEK).round();
        if !(0.0..36_500.0).contains(&days) {
            return None;
        }
        as_of.checked_add_days(Days::new(days as u64))
    }
}

/// Weights of the engagement score: score = 100 · (1 − exp(−Σ wᵢ·countᵢ / `saturation`)), so
/// it rises quickly for the first actions and approaches 100 for heavy users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngagementWeights {
    /// Per session. Default 1.
    pub sessions: f64,
    /// Per page view. Default 0.2.
    pub page_views: f64,
    /// Per click. Default 0.5.
    pub clicks: f64,
    /// Per search. Default 0.5.
    pub searches: f64,
    /// Per cart add. Default 2.
    pub cart_adds: f64,
    /// Per review. Default 3.
    pub reviews: f64,
    /// Per purchase day. Default 5.
    pub purchases: f64,
    /// Weighted activity at which the score reaches 63. Default 50.
    pub saturation: f64,
}

impl Default for EngagementWeights {
    fn default() -> Self {
        EngagementWeights {
            sessions: 1.0,
            page_views: 0.2,
            clicks: 0.5,
            searches: 0.5,
            cart_adds: 2.0,
            reviews: 3.0,
            purchases: 5.0,
            saturation: 50.0,
        }
    }
}

impl EngagementWeights {
    /// The engagement score in [0, 100].
    pub fn score(&self, user: &UserActivity) -> f64 {
        let a = &user.activity;
        let weighted = self.sessions * a.sessions as f64
            + self.page_views * a.page_views as f64
            + self.clicks * a.clicks as f64
            + self.searches * a.searches as f64
            + self.cart_adds * a.cart_adds as f64
            + self.reviews * a.reviews as f64
            + self.purchases * user.purchases.count as f64;
        let score = 100.0 * (1.0 - (-weighted / self.saturation).exp());
        if score.is_finite() {
            score.clamp(0.0, 100.0)
        } else {
            0.0
        }
    }
}

/// A customer's profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
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
/// use mod8_datasci::{AnalyticsEngine, CustomerRecord, Purchase, Segment};
/// let today = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
/// let engine = AnalyticsEngine::heuristic();
/// let customer = CustomerRecord {
///     user_id: "u1".into(),
///     last_active: Some(today),
///     purchases: vec![Purchase { product_id: "p1".into(), amount: 40.0, date: today }],
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
    pub fn profile(&self, user: &UserActivity, as_of: NaiveDate) -> Result<UserProfile> {
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
        Ok(UserProfile {
            segment: self
                .thresholds
                .classify(days_inactive, churn_risk, total_spend),
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
    ) -> Result<UserProfile> {
        self.profile(&customer.summary(), as_of)
    }

    /// Profiles of many users, in order.
    ///
    /// # Errors
    ///
    /// The first error of [`AnalyticsEngine::profile`].
    pub fn profile_all(
        &self,
        users: &[UserActivity],
        as_of: NaiveDate,
    ) -> Result<Vec<UserProfile>> {
        users.iter().map(|u| self.profile(u, as_of)).collect()
    }

    /// Just the segment (skips the lifetime value).
    pub fn segment(&self, user: &UserActivity, as_of: NaiveDate) -> Segment {
        let churn = self.model.churn_risk(user, as_of);
        self.thresholds.classify(
            user.days_inactive(as_of),
            churn,
            user.purchases.total_amount,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::PurchaseStats;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    #[test]
    fn churn_curve_by_hand() {
        assert!((heuristic_churn(30.0) - 0.5).abs() < 1e-15);
        assert!((heuristic_churn(50.0) - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
        assert!((heuristic_churn(0.0) - 1.0 / (1.0 + 1.5f64.exp())).abs() < 1e-15);
    }

    #[test]
    fn heuristic_ltv_and_next_purchase_by_hand() {
        // 4 purchase days over 60 days, 200 in total, last purchase 30 days ago.
        let user = UserActivity {
            last_active: Some(d(3, 1)),
            purchases: PurchaseStats {
                count: 4,
                total_amount: 200.0,
                first_amount: 50.0,
                first: Some(d(1, 1)),
                last: Some(d(1, 31)),
            },
            ..Default::default()
        };
        let as_of = d(3, 1); // 60 days after Jan 1 (2024 is a leap year).
        let m = HeuristicModel::default();
        let churn = m.churn_risk(&user, as_of);
        assert!((churn - heuristic_churn(30.0)).abs() < 1e-15);
        let expected = 4.0 / 60.0 * 365.0 * 50.0 * (1.0 - churn);
        assert!((m.lifetime_value(&user, as_of).unwrap() - expected).abs() < 1e-9);
        assert_eq!(m.next_purchase(&user, as_of), Some(d(2, 10)));
    }

    #[test]
    fn engagement_is_bounded() {
        let w = EngagementWeights::default();
        let mut u = UserActivity::default();
        assert_eq!(w.score(&u), 0.0);
        u.activity.sessions = 50;
        assert!((w.score(&u) - 100.0 * (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        u.activity.page_views = u32::MAX;
        assert!(w.score(&u) <= 100.0);
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
        fn churn_risk(&self, _: &UserActivity, _: NaiveDate) -> f64 {
            self.separate
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            0.25
        }
        fn lifetime_value(&self, _: &UserActivity, _: NaiveDate) -> Result<f64> {
            self.separate
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(10.0)
        }
        fn next_purchase(&self, _: &UserActivity, _: NaiveDate) -> Option<NaiveDate> {
            self.separate
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        }
        fn assess(&self, _: &UserActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
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
        let p = engine.profile(&UserActivity::default(), d(6, 1)).unwrap();
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
        let never = UserActivity::default();
        assert_eq!(
            e.profile(&never, d(6, 1)).unwrap().segment,
            Segment::Dormant
        );
        let mut vip = UserActivity {
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
