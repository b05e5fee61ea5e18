//! Recency-frequency-monetary summaries of transaction histories, in weeks.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transactions::Transaction;

/// Days per model time unit: BG/NBD and Gamma-Gamma work in weeks.
pub const DAYS_PER_WEEK: f64 = 7.0;

/// One customer's history as the probabilistic models see it.
///
/// `frequency` is the number of *repeat* purchase days (x), `recency` the time of the last
/// purchase (tₓ) and `t` the customer's age (T), both in weeks from the first purchase;
/// `monetary_value` is the average value of the repeat purchases (0 when x = 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rfm {
    /// Repeat purchases x (purchase days after the first).
    pub frequency: u32,
    /// Weeks from the first to the last purchase, tₓ (0 when x = 0).
    pub recency: f64,
    /// Weeks from the first purchase to the end of the observation period, T.
    #[serde(rename = "T")]
    pub t: f64,
    /// Average repeat-purchase value m (0 when x = 0).
    pub monetary_value: f64,
}

impl Rfm {
    /// A checked summary: `0 ≤ recency ≤ t`, `recency = 0` when `frequency = 0`, all finite.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when the triple is inconsistent.
    pub fn new(frequency: u32, recency: f64, t: f64, monetary_value: f64) -> Result<Self> {
        let rfm = Rfm {
            frequency,
            recency,
            t,
            monetary_value,
        };
        rfm.validate()?;
        Ok(rfm)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let Rfm {
            frequency,
            recency,
            t,
            monetary_value,
        } = *self;
        if let Some((name, _)) = [
            ("recency", recency),
            ("t", t),
            ("monetary_value", monetary_value),
        ]
        .into_iter()
        .find(|(_, v)| !v.is_finite())
        {
            return Err(Error::validation(
                name,
                format!("non-finite summary {self:?}"),
            ));
        }
        if recency < 0.0 || t < recency - 1e-9 {
            return Err(Error::validation(
                "recency",
                format!("need 0 ≤ recency ≤ T, got recency {recency}, T {t}"),
            ));
        }
        if frequency == 0 && recency != 0.0 {
            return Err(Error::validation(
                "recency",
                format!("recency must be 0 when frequency is 0, got {recency}"),
            ));
        }
        Ok(())
    }
}

/// One customer's calibration-period summary, with the id it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerSummary {
    /// The customer's id as it appeared in the transactions or the summary file.
    pub customer_id: String,
    /// Day of the first purchase; `None` for a summary read from a summary file
    /// ([`crate::read_summary`]), which carries no dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_purchase: Option<NaiveDate>,
    /// Frequency, recency, T and monetary value.
    #[serde(flatten)]
    pub rfm: Rfm,
}

/// RFM summaries of every customer with a purchase up to the calibration end: built from
/// transactions ([`RfmSummary::from_transactions`]) or read from a summary file
/// ([`crate::read_summary`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfmSummary {
    /// Last day of the calibration period (inclusive); `None` for a summary file, which
    /// carries no dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_end: Option<NaiveDate>,
    /// One entry per customer: sorted by `customer_id` when built from transactions, in file
    /// order when read from a summary file.
    pub customers: Vec<CustomerSummary>,
}

impl RfmSummary {
    /// Summarises transactions up to and including `calibration_end`; later ones are ignored
    /// (use [`holdout_purchases`] for them).
    ///
    /// Several transactions of one customer on one day are one purchase of their summed amount.
    /// frequency = purchase days − 1; recency and T are in weeks (days / 7) from the first
    /// purchase; monetary value = mean of the repeat purchases (the first is left out, as
    /// Gamma-Gamma expects).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] when no transaction falls on or before `calibration_end`.
    ///
    /// ```
    /// use chrono::NaiveDate;
    /// use mod8_datasci::{RfmSummary, Transaction};
    /// let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap();
    /// let tx = vec![
    ///     Transaction::new("a", d(1, 1), 10.0)?,
    ///     Transaction::new("a", d(1, 1), 5.0)?,   // same day: one purchase of 15
    ///     Transaction::new("a", d(1, 15), 20.0)?,
    ///     Transaction::new("a", d(3, 1), 99.0)?,  // after the calibration end: ignored
    /// ];
    /// let s = RfmSummary::from_transactions(&tx, d(1, 29))?;
    /// let a = &s.customers[0].rfm;
    /// assert_eq!((a.frequency, a.recency, a.t, a.monetary_value), (1, 2.0, 4.0, 20.0));
    /// # Ok::<(), mod8_datasci::Error>(())
    /// ```
    pub fn from_transactions(
        transactions: &[Transaction],
        calibration_end: NaiveDate,
    ) -> Result<Self> {
        let mut by_customer: HashMap<&str, Vec<(NaiveDate, f64)>> = HashMap::new();
        for tx in transactions.iter().filter(|t| t.date <= calibration_end) {
            by_customer
                .entry(tx.customer_id.as_str())
                .or_default()
                .push((tx.date, tx.amount));
        }
        if by_customer.is_empty() {
            return Err(Error::EmptyInput {
                what: format!("no transactions on or before the calibration end {calibration_end}"),
            });
        }
        let mut customers: Vec<CustomerSummary> = by_customer
            .into_iter()
            .map(|(id, mut days)| {
                let days = merge_days(&mut days);
                summarise(id, &days, calibration_end)
            })
            .collect();
        customers.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        Ok(RfmSummary {
            calibration_end: Some(calibration_end),
            customers,
        })
    }

    /// A summary from per-customer summaries computed elsewhere — for example by a database
    /// (mod8-orm's `AnalyticsRepository::customer_rfm` streams them, grouped and aggregated in
    /// SQL, so a history of any number of orders is never loaded). The customers are checked
    /// ([`Rfm::new`]'s rules) and sorted by id, as [`RfmSummary::from_transactions`] leaves
    /// them; input already in id order is kept as it is in linear time.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] for no customers; [`Error::Validation`] for an inconsistent
    /// summary (naming the field) and, on `customer_id`, for an id that occurs twice.
    ///
    /// ```
    /// use chrono::NaiveDate;
    /// use mod8_datasci::{CustomerSummary, Rfm, RfmSummary};
    /// let end = NaiveDate::from_ymd_opt(2024, 1, 29).unwrap();
    /// let first = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    /// let s = RfmSummary::from_customers(end, vec![CustomerSummary {
    ///     customer_id: "a".into(),
    ///     first_purchase: Some(first),
    ///     rfm: Rfm::new(1, 2.0, 4.0, 20.0)?,
    /// }])?;
    /// assert_eq!(s.len(), 1);
    /// # Ok::<(), mod8_datasci::Error>(())
    /// ```
    pub fn from_customers(
        calibration_end: NaiveDate,
        mut customers: Vec<CustomerSummary>,
    ) -> Result<Self> {
        if customers.is_empty() {
            return Err(Error::EmptyInput {
                what: format!("no customers with a purchase on or before {calibration_end}"),
            });
        }
        for c in &customers {
            c.rfm.validate()?;
        }
        // Stable sort: linear on sorted input.
        customers.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        if let Some(w) = customers
            .windows(2)
            .find(|w| w[0].customer_id == w[1].customer_id)
        {
            return Err(Error::validation(
                "customer_id",
                format!("customer {:?} occurs more than once", w[0].customer_id),
            ));
        }
        Ok(RfmSummary {
            calibration_end: Some(calibration_end),
            customers,
        })
    }

    /// The summaries without ids, in the same order (what the fits take).
    pub fn points(&self) -> Vec<Rfm> {
        self.customers.iter().map(|c| c.rfm).collect()
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether there are no customers (never true for a summary built by
    /// [`RfmSummary::from_transactions`] or read by [`crate::read_summary`]).
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
}

/// Sorts by day and sums same-day amounts.
fn merge_days(days: &mut [(NaiveDate, f64)]) -> Vec<(NaiveDate, f64)> {
    days.sort_by_key(|d| d.0);
    let mut merged: Vec<(NaiveDate, f64)> = Vec::with_capacity(days.len());
    for &(day, amount) in days.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == day => last.1 += amount,
            _ => merged.push((day, amount)),
        }
    }
    merged
}

fn weeks_between(from: NaiveDate, to: NaiveDate) -> f64 {
    (to - from).num_days() as f64 / DAYS_PER_WEEK
}

fn summarise(id: &str, days: &[(NaiveDate, f64)], end: NaiveDate) -> CustomerSummary {
    // `days` is non-empty: every customer in the map got at least one entry.
    let first = days.first().map_or(end, |d| d.0);
    let last = days.last().map_or(end, |d| d.0);
    let frequency = days.len().saturating_sub(1) as u32;
    let monetary_value = if frequency > 0 {
        days[1..].iter().map(|d| d.1).sum::<f64>() / frequency as f64
    } else {
        0.0
    };
    CustomerSummary {
        customer_id: id.to_owned(),
        first_purchase: Some(first),
        rfm: Rfm {
            frequency,
            recency: weeks_between(first, last),
            t: weeks_between(first, end),
            monetary_value,
        },
    }
}

/// Purchase days in the holdout period `(calibration_end, holdout_end]` per customer whose
/// first purchase is on or before `calibration_end` (customers first seen in the holdout are not
/// part of the calibrated base). Customers without holdout purchases map to 0.
pub fn holdout_purchases(
    transactions: &[Transaction],
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
) -> HashMap<String, u32> {
    let mut days: HashMap<&str, (bool, Vec<NaiveDate>)> = HashMap::new();
    for tx in transactions {
        let entry = days.entry(tx.customer_id.as_str()).or_default();
        if tx.date <= calibration_end {
            entry.0 = true;
        } else if tx.date <= holdout_end {
            entry.1.push(tx.date);
        }
    }
    days.into_iter()
        .filter(|(_, (calibrated, _))| *calibrated)
        .map(|(id, (_, mut d))| {
            d.sort_unstable();
            d.dedup();
            (id.to_owned(), d.len() as u32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    #[test]
    fn summary_by_hand() {
        let tx = vec![
            Transaction::new("b", d(1, 8), 4.0).unwrap(),
            Transaction::new("a", d(1, 1), 10.0).unwrap(),
            Transaction::new("a", d(1, 15), 20.0).unwrap(),
            Transaction::new("a", d(1, 15), 10.0).unwrap(),
            Transaction::new("a", d(1, 22), 60.0).unwrap(),
            Transaction::new("a", d(2, 19), 1.0).unwrap(),
        ];
        let s = RfmSummary::from_transactions(&tx, d(1, 29)).unwrap();
        assert_eq!(s.len(), 2);
        let a = &s.customers[0];
        assert_eq!(a.customer_id, "a");
        assert_eq!(a.rfm.frequency, 2);
        assert_eq!(a.rfm.recency, 3.0);
        assert_eq!(a.rfm.t, 4.0);
        assert_eq!(a.rfm.monetary_value, 45.0);
        let b = &s.customers[1].rfm;
        assert_eq!(
            (b.frequency, b.recency, b.t, b.monetary_value),
            (0, 0.0, 3.0, 0.0)
        );

        let h = holdout_purchases(&tx, d(1, 29), d(3, 1));
        assert_eq!(h["a"], 1);
        assert_eq!(h["b"], 0);
    }

    #[test]
    fn nothing_before_calibration_end_is_empty_input() {
        let tx = vec![Transaction::new("a", d(5, 1), 1.0).unwrap()];
        assert!(matches!(
            RfmSummary::from_transactions(&tx, d(1, 1)),
            Err(Error::EmptyInput { .. })
        ));
    }

    #[test]
    fn from_customers_sorts_checks_and_refuses_duplicates() {
        let c = |id: &str, x: u32| CustomerSummary {
            customer_id: id.into(),
            first_purchase: Some(d(1, 1)),
            rfm: Rfm {
                frequency: x,
                recency: f64::from(x),
                t: 4.0,
                monetary_value: 1.0,
            },
        };
        let s = RfmSummary::from_customers(d(1, 29), vec![c("b", 1), c("a", 2)]).unwrap();
        let ids: Vec<&str> = s.customers.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(s.calibration_end, Some(d(1, 29)));
        assert!(matches!(
            RfmSummary::from_customers(d(1, 29), vec![c("a", 1), c("a", 2)]),
            Err(Error::Validation { field, .. }) if field == "customer_id"
        ));
        assert!(matches!(
            RfmSummary::from_customers(d(1, 29), vec![c("a", 5)]),
            Err(Error::Validation { field, .. }) if field == "recency"
        ));
        assert!(matches!(
            RfmSummary::from_customers(d(1, 29), Vec::new()),
            Err(Error::EmptyInput { .. })
        ));
    }

    #[test]
    fn rfm_validation() {
        assert!(Rfm::new(0, 0.0, 5.0, 0.0).is_ok());
        assert!(Rfm::new(0, 1.0, 5.0, 0.0).is_err());
        assert!(Rfm::new(2, 6.0, 5.0, 1.0).is_err());
        assert!(Rfm::new(2, f64::NAN, 5.0, 1.0).is_err());
    }
}
