//! Customer-value models: the [`CustomerValueModel`] trait and what it answers, with its two
//! implementations, [`HeuristicModel`] and [`ProbabilisticModel`].

use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::activity::CustomerActivity;
use crate::error::Result;

mod heuristic;
mod probabilistic;

pub use heuristic::{heuristic_churn, HeuristicModel};
pub use probabilistic::ProbabilisticModel;

/// A model of what a customer is worth and whether they will stay.
///
/// Two implementations ship: [`HeuristicModel`] (closed-form rules, for small data) and
/// [`ProbabilisticModel`] (a fitted BG/NBD + Gamma-Gamma [`ClvModel`](crate::ClvModel)). Both pass the
/// conformance suite in `mod8_datasci::testing` (feature `testing`).
pub trait CustomerValueModel: Send + Sync {
    /// Short name for reports (`"heuristic"`, `"bgnbd-gamma-gamma"`).
    fn name(&self) -> &'static str;

    /// Probability in [0, 1] that the customer has churned.
    fn churn_risk(&self, user: &CustomerActivity, as_of: NaiveDate) -> f64;

    /// Expected value (≥ 0) of the customer over the model's horizon.
    ///
    /// # Errors
    ///
    /// When the model cannot evaluate (a probabilistic model's series not converging).
    fn lifetime_value(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<f64>;

    /// Expected day of the next purchase, `None` when the model has no basis for one.
    fn next_purchase(&self, user: &CustomerActivity, as_of: NaiveDate) -> Option<NaiveDate>;

    /// All three at once. The default calls the three methods; a model overrides it to share
    /// work between them, and must return the same numbers.
    ///
    /// # Errors
    ///
    /// As [`CustomerValueModel::lifetime_value`].
    fn assess(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
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
    fn churn_risk(&self, user: &CustomerActivity, as_of: NaiveDate) -> f64 {
        (**self).churn_risk(user, as_of)
    }
    fn lifetime_value(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<f64> {
        (**self).lifetime_value(user, as_of)
    }
    fn next_purchase(&self, user: &CustomerActivity, as_of: NaiveDate) -> Option<NaiveDate> {
        (**self).next_purchase(user, as_of)
    }
    fn assess(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
        (**self).assess(user, as_of)
    }
}
