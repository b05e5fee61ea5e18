//! Per-customer purchase summaries for customer-value models (BG/NBD, Gamma-Gamma), as
//! [`crate::AnalyticsRepository::customer_rfm`] streams them.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Days per model time unit: the summaries are in weeks.
const DAYS_PER_WEEK: f64 = 7.0;

/// One customer's recency-frequency-monetary summary up to a calibration end, in the
/// conventions of the lifetimes package's `summary_data_from_transaction_data` with daily
/// periods and weeks as the time unit (`freq="D"`, `freq_multiplier=7`).
///
/// How it is computed from the `orders` table:
///
/// - only purchases count: orders whose status [`is_purchase`](crate::OrderStatus::is_purchase)
///   (`paid`, `shipped`); `placed` and `cancelled` orders are left out;
/// - orders are bucketed by their UTC calendar day (`created_at`), and only days on or before
///   the calibration end are kept: an order on the calibration end itself counts, later ones
///   do not;
/// - all purchases of one customer on one day are one purchase of their summed `total_cents`;
/// - `frequency` is the number of purchase days after the first, `recency` the weeks from the
///   first to the last purchase day, `t` the weeks from the first purchase day to the
///   calibration end, and the monetary value the mean of the repeat purchase days (the first
///   day is left out, as Gamma-Gamma expects; 0 without repeats).
///
/// Customers without a purchase on or before the calibration end have no summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRfm {
    /// The customer (user) id.
    pub user_id: Uuid,
    /// UTC day of the first purchase.
    pub first_purchase: NaiveDate,
    /// UTC day of the last purchase on or before the calibration end.
    pub last_purchase: NaiveDate,
    /// Repeat purchases x: purchase days after the first.
    pub frequency: u32,
    /// Weeks from the first to the last purchase day, tₓ (0 when `frequency` is 0).
    pub recency: f64,
    /// Weeks from the first purchase day to the calibration end, T.
    #[serde(rename = "T")]
    pub t: f64,
    /// Sum of the repeat purchase days' `total_cents` (exact; the first day left out).
    pub repeat_spend_cents: i64,
    /// Mean value of a repeat purchase day in cents, `repeat_spend_cents / frequency` (0 when
    /// `frequency` is 0). Divide by 100 for currency units.
    pub monetary_value_cents: f64,
}

impl CustomerRfm {
    /// The one SQL statement [`crate::AnalyticsRepository::customer_rfm`] runs on `backend`
    /// (`$1` is the calibration end, a date), for `EXPLAIN` and capacity planning: it reads
    /// every order once, sorts the purchases by customer (marking each customer's first day
    /// with a window aggregate), and returns one row per customer, in user-id order.
    pub fn statement(backend: crate::Backend) -> String {
        crate::sql::customer_summary::statement(backend)
    }
}

/// What the summary statement returns per customer; the rest is arithmetic on it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CustomerRfmRow {
    pub(crate) user_id: Uuid,
    pub(crate) first_purchase: NaiveDate,
    pub(crate) last_purchase: NaiveDate,
    pub(crate) purchase_days: i64,
    pub(crate) repeat_spend_cents: i64,
}

impl CustomerRfmRow {
    /// The summary in weeks as of `calibration_end`.
    pub(crate) fn into_rfm(
        self,
        calibration_end: NaiveDate,
        backend: &'static str,
    ) -> Result<CustomerRfm> {
        let frequency = self
            .purchase_days
            .checked_sub(1)
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| {
                Error::backend(
                    backend,
                    format!(
                        "customer {} has {} purchase days, outside 1..=2^32",
                        self.user_id, self.purchase_days
                    ),
                )
            })?;
        let weeks = |from: NaiveDate, to: NaiveDate| (to - from).num_days() as f64 / DAYS_PER_WEEK;
        let monetary_value_cents = if frequency == 0 {
            0.0
        } else {
            self.repeat_spend_cents as f64 / f64::from(frequency)
        };
        Ok(CustomerRfm {
            user_id: self.user_id,
            first_purchase: self.first_purchase,
            last_purchase: self.last_purchase,
            frequency,
            recency: weeks(self.first_purchase, self.last_purchase),
            t: weeks(self.first_purchase, calibration_end),
            repeat_spend_cents: self.repeat_spend_cents,
            monetary_value_cents,
        })
    }
}

/// Checks that the statement can handle `calibration_end`: SQLite compares days as
/// `YYYY-MM-DD` text, which orders correctly for four-digit years only.
pub(crate) fn check_calibration_end(calibration_end: NaiveDate) -> Result<()> {
    use chrono::Datelike;
    if (1..=9999).contains(&calibration_end.year()) {
        Ok(())
    } else {
        Err(Error::validation(
            "calibration_end",
            format!("{calibration_end} is not between the years 1 and 9999"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    #[test]
    fn weeks_and_mean_from_a_row() {
        let row = CustomerRfmRow {
            user_id: Uuid::nil(),
            first_purchase: d(1, 1),
            last_purchase: d(1, 22),
            purchase_days: 3,
            repeat_spend_cents: 1_001,
        };
        let rfm = row.into_rfm(d(1, 29), "test").unwrap();
        assert_eq!(rfm.frequency, 2);
        assert_eq!(rfm.recency, 3.0);
        assert_eq!(rfm.t, 4.0);
        assert_eq!(rfm.monetary_value_cents, 500.5);
        let single = CustomerRfmRow {
            user_id: Uuid::nil(),
            first_purchase: d(1, 3),
            last_purchase: d(1, 3),
            purchase_days: 1,
            repeat_spend_cents: 0,
        };
        let rfm = single.into_rfm(d(1, 3), "test").unwrap();
        assert_eq!(
            (rfm.frequency, rfm.recency, rfm.t, rfm.monetary_value_cents),
            (0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn a_row_without_purchase_days_is_a_backend_error() {
        let row = CustomerRfmRow {
            user_id: Uuid::nil(),
            first_purchase: d(1, 1),
            last_purchase: d(1, 1),
            purchase_days: 0,
            repeat_spend_cents: 0,
        };
        assert!(matches!(
            row.into_rfm(d(1, 1), "test"),
            Err(Error::Backend {
                backend: "test",
                ..
            })
        ));
    }

    #[test]
    fn calibration_ends_outside_four_digit_years_are_rejected() {
        assert!(check_calibration_end(d(6, 30)).is_ok());
        let far = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        assert!(matches!(
            check_calibration_end(far),
            Err(Error::Validation { field, .. }) if field == "calibration_end"
        ));
    }
}
