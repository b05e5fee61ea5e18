//! The fitted tier: BG/NBD + Gamma-Gamma.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{CustomerValueModel, HeuristicModel, ValueAssessment};
use crate::activity::{days_between, CustomerActivity};
use crate::clv::{ClvModel, ClvOptions};
use crate::error::Result;
use crate::rfm::{Rfm, DAYS_PER_WEEK};

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
    pub fn rfm(user: &CustomerActivity, as_of: NaiveDate) -> Option<Rfm> {
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

    fn churn_risk(&self, user: &CustomerActivity, as_of: NaiveDate) -> f64 {
        match Self::rfm(user, as_of) {
            Some(rfm) if rfm.frequency > 0 => {
                (1.0 - self.model.bgnbd.p_alive(&rfm)).clamp(0.0, 1.0)
            }
            _ => HeuristicModel::default().churn_risk(user, as_of),
        }
    }

    fn lifetime_value(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<f64> {
        match Self::rfm(user, as_of) {
            Some(rfm) => self.model.clv(&rfm, &self.options),
            None => Ok(0.0),
        }
    }

    fn next_purchase(&self, user: &CustomerActivity, as_of: NaiveDate) -> Option<NaiveDate> {
        let rfm = Self::rfm(user, as_of)?;
        self.next_purchase_of(&rfm, self.model.bgnbd.p_alive(&rfm), as_of)
    }

    fn assess(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
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
