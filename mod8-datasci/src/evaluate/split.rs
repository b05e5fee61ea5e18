//! Deterministic train/test splits of order history.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::activity::{CustomerRecord, ItemPurchase};
use crate::error::{Error, Result};

/// How order history is divided into training purchases and held-out (test) purchases.
///
/// Both splits are deterministic: the same customers give the same split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvaluationSplit {
    /// Leave-last-k-out: per customer, the last `k` purchases by date are held out. Purchases on
    /// the same day keep their input order (the later one in the input counts as later).
    /// Customers with fewer than `k + 1` purchases stay in training only, whole.
    LeaveLastOut {
        /// Purchases held out per customer (at least 1).
        k: usize,
    },
    /// Time split: purchases dated after `cutoff` are held out, those on or before it train.
    /// A customer whose purchases all come after the cut-off has no training history: their
    /// purchases are dropped (neither trained on nor evaluated), as a model built at the
    /// cut-off could not have known them.
    Time {
        /// Last day of the training period.
        cutoff: NaiveDate,
    },
}

impl EvaluationSplit {
    /// [`EvaluationSplit::LeaveLastOut`] holding out the last `k` purchases.
    pub fn leave_last_out(k: usize) -> Self {
        EvaluationSplit::LeaveLastOut { k }
    }

    /// [`EvaluationSplit::Time`] at `cutoff`.
    pub fn time(cutoff: NaiveDate) -> Self {
        EvaluationSplit::Time { cutoff }
    }

    /// Splits `customers`.
    ///
    /// [`TrainTestSplit::train`] has one record per input customer, in input order, with only
    /// its training purchases (sorted by date); its `last_active` is kept only when it is not
    /// later than the training period (the cut-off, or the customer's last training purchase
    /// for a held-out customer), so activity after the held-out purchases does not leak into
    /// training. [`TrainTestSplit::held_out`] lists the customers with at least one training
    /// purchase and at least one held-out purchase.
    ///
    /// ```
    /// use mod8_datasci::{CustomerRecord, EvaluationSplit, ItemPurchase, NaiveDate};
    /// let day = |d| NaiveDate::from_ymd_opt(2024, 5, d).unwrap();
    /// let buy = |id: &str, d| ItemPurchase { product_id: id.into(), amount: 1.0, date: day(d) };
    /// let customers = vec![
    ///     CustomerRecord { user_id: "u1".into(), purchases: vec![buy("c", 9), buy("a", 1), buy("b", 5)], ..Default::default() },
    ///     CustomerRecord { user_id: "u2".into(), purchases: vec![buy("a", 2)], ..Default::default() },
    /// ];
    /// let split = EvaluationSplit::leave_last_out(1).apply(&customers)?;
    /// assert_eq!(split.train[0].purchases.len(), 2); // a, b
    /// assert_eq!(split.train[1].purchases.len(), 1); // u2 has too few purchases: training only
    /// assert_eq!(split.held_out.len(), 1);
    /// assert_eq!(split.held_out[0].purchases[0].product_id, "c");
    ///
    /// let split = EvaluationSplit::time(day(4)).apply(&customers)?;
    /// assert_eq!(split.held_out[0].purchases.len(), 2); // b and c come after the 4th
    /// # Ok::<(), mod8_datasci::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] (`field` `"split.k"`) for a leave-last-out split with `k = 0`.
    pub fn apply(&self, customers: &[CustomerRecord]) -> Result<TrainTestSplit> {
        if let EvaluationSplit::LeaveLastOut { k: 0 } = self {
            return Err(Error::validation(
                "split.k",
                "a leave-last-k-out split must hold out at least 1 purchase per customer",
            ));
        }
        let mut train = Vec::with_capacity(customers.len());
        let mut held_out = Vec::new();
        for (customer, record) in customers.iter().enumerate() {
            let mut purchases = record.purchases.clone();
            // Stable: same-day purchases keep their input order.
            purchases.sort_by_key(|p| p.date);
            let (train_len, boundary) = match *self {
                EvaluationSplit::LeaveLastOut { k } => {
                    if purchases.len() > k {
                        let n = purchases.len() - k;
                        (n, Some(purchases[n - 1].date))
                    } else {
                        (purchases.len(), None)
                    }
                }
                EvaluationSplit::Time { cutoff } => (
                    purchases.partition_point(|p| p.date <= cutoff),
                    Some(cutoff),
                ),
            };
            let test = purchases.split_off(train_len);
            if !purchases.is_empty() && !test.is_empty() {
                held_out.push(HeldOut {
                    customer,
                    user_id: record.user_id.clone(),
                    purchases: test,
                });
            }
            train.push(CustomerRecord {
                user_id: record.user_id.clone(),
                activity: record.activity,
                last_active: match boundary {
                    Some(b) => record.last_active.filter(|d| *d <= b),
                    None => record.last_active,
                },
                purchases,
            });
        }
        Ok(TrainTestSplit { train, held_out })
    }
}

impl std::fmt::Display for EvaluationSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvaluationSplit::LeaveLastOut { k } => write!(f, "leave-last-{k}-out"),
            EvaluationSplit::Time { cutoff } => write!(f, "time split at {cutoff}"),
        }
    }
}

/// One customer's held-out purchases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// Position of the customer in the input (and in [`TrainTestSplit::train`]).
    pub customer: usize,
    /// The customer's id.
    pub user_id: String,
    /// The held-out purchases, by date.
    pub purchases: Vec<ItemPurchase>,
}

/// The result of [`EvaluationSplit::apply`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainTestSplit {
    /// Every input customer, in input order, with its training purchases only.
    pub train: Vec<CustomerRecord>,
    /// Customers with both training and held-out purchases, in input order.
    pub held_out: Vec<HeldOut>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 5, d).unwrap()
    }

    fn customer(id: &str, purchases: &[(&str, u32)]) -> CustomerRecord {
        CustomerRecord {
            user_id: id.into(),
            last_active: Some(day(30)),
            purchases: purchases
                .iter()
                .map(|&(p, d)| ItemPurchase {
                    product_id: p.into(),
                    amount: 1.0,
                    date: day(d),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn ids(purchases: &[ItemPurchase]) -> Vec<&str> {
        purchases.iter().map(|p| p.product_id.as_str()).collect()
    }

    #[test]
    fn leave_last_k_out() {
        let customers = vec![
            customer("u1", &[("d", 20), ("a", 1), ("c", 10), ("b", 5)]),
            customer("u2", &[("a", 3), ("b", 4)]), // exactly k: training only
            customer("u3", &[]),
            // Same day: input order decides which is later.
            customer("u4", &[("x", 7), ("y", 7), ("z", 7)]),
        ];
        let split = EvaluationSplit::leave_last_out(2)
            .apply(&customers)
            .unwrap();
        assert_eq!(split.train.len(), 4);
        assert_eq!(ids(&split.train[0].purchases), ["a", "b"]);
        assert_eq!(ids(&split.train[1].purchases), ["a", "b"]);
        assert!(split.train[2].purchases.is_empty());
        assert_eq!(ids(&split.train[3].purchases), ["x"]);
        assert_eq!(split.held_out.len(), 2);
        assert_eq!(
            (
                split.held_out[0].customer,
                split.held_out[0].user_id.as_str()
            ),
            (0, "u1")
        );
        assert_eq!(ids(&split.held_out[0].purchases), ["c", "d"]);
        assert_eq!(split.held_out[1].customer, 3);
        assert_eq!(ids(&split.held_out[1].purchases), ["y", "z"]);
        // Activity after the training period is not kept for held-out customers only.
        assert_eq!(split.train[0].last_active, None);
        assert_eq!(split.train[1].last_active, Some(day(30)));
        // Deterministic.
        assert_eq!(
            split,
            EvaluationSplit::leave_last_out(2)
                .apply(&customers)
                .unwrap()
        );
    }

    #[test]
    fn time_split() {
        let customers = vec![
            customer("u1", &[("c", 20), ("a", 1), ("b", 10)]),
            customer("u2", &[("a", 3)]), // all before: training only
            customer("u3", &[("a", 11), ("b", 12)]), // all after: dropped
        ];
        let split = EvaluationSplit::time(day(10)).apply(&customers).unwrap();
        assert_eq!(ids(&split.train[0].purchases), ["a", "b"]); // the cut-off day trains
        assert_eq!(ids(&split.train[1].purchases), ["a"]);
        assert!(split.train[2].purchases.is_empty());
        assert_eq!(split.held_out.len(), 1);
        assert_eq!(ids(&split.held_out[0].purchases), ["c"]);
        assert!(split.train.iter().all(|c| c.last_active.is_none()));
        let early = EvaluationSplit::time(day(25)).apply(&customers).unwrap();
        assert!(early.held_out.is_empty());
    }

    #[test]
    fn zero_k_is_refused() {
        let e = EvaluationSplit::leave_last_out(0).apply(&[]).unwrap_err();
        assert!(matches!(e, Error::Validation { ref field, .. } if field == "split.k"));
    }

    #[test]
    fn display_and_json() {
        assert_eq!(
            EvaluationSplit::leave_last_out(1).to_string(),
            "leave-last-1-out"
        );
        assert_eq!(
            EvaluationSplit::time(day(1)).to_string(),
            "time split at 2024-05-01"
        );
        assert_eq!(
            serde_json::to_string(&EvaluationSplit::leave_last_out(3)).unwrap(),
            r#"{"kind":"leave_last_out","k":3}"#
        );
        assert_eq!(
            serde_json::to_string(&EvaluationSplit::time(day(2))).unwrap(),
            r#"{"kind":"time","cutoff":"2024-05-02"}"#
        );
    }
}
