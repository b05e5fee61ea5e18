//! The heuristic tier: closed-form rules for small data.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{CustomerValueModel, ValueAssessment};
use crate::activity::{days_between, CustomerActivity};
use crate::error::Result;

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
    fn value_given_churn(&self, user: &CustomerActivity, as_of: NaiveDate, churn_risk: f64) -> f64 {
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

    fn churn_risk(&self, user: &CustomerActivity, as_of: NaiveDate) -> f64 {
        let last = user.purchases.last.or(user.last_active);
        match last {
            Some(day) => heuristic_churn(days_between(day, as_of) as f64),
            None => 1.0,
        }
    }

    fn lifetime_value(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<f64> {
        Ok(self.value_given_churn(user, as_of, self.churn_risk(user, as_of)))
    }

    fn assess(&self, user: &CustomerActivity, as_of: NaiveDate) -> Result<ValueAssessment> {
        let churn_risk = self.churn_risk(user, as_of);
        Ok(ValueAssessment {
            churn_risk,
            lifetime_value: self.value_given_churn(user, as_of, churn_risk),
            next_purchase: self.next_purchase(user, as_of),
        })
    }

    fn next_purchase(&self, user: &CustomerActivity, _as_of: NaiveDate) -> Option<NaiveDate> {
        let stats = &user.purchases;
        let (first, last) = (stats.first?, stats.last?);
        if stats.count < 2 {
            return None;
        }
        let gap = (days_between(first, last) as f64 / (stats.count - 1) as f64).round() as u64;
        last.checked_add_days(Days::new(gap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::PurchaseStats;

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
        let user = CustomerActivity {
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
}
