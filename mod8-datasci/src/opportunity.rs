//! BG/BB's input: one [`BgBbObservation`] per customer over discrete transaction
//! opportunities, from a transaction log cut into periods of a fixed number of days
//! ([`BgBbSummary::from_transactions`]) or from a CSV summary ([`read_bgbb_summary`]), and
//! per-customer predictions with a Gamma-Gamma spend model.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::bgbb::{BgBb, BgBbObservation};
use crate::clv::ClvOptions;
use crate::error::{Error, Result};
use crate::gamma_gamma::GammaGamma;
use crate::rfm::Rfm;
use crate::transactions::Transaction;

/// One customer of a [`BgBbSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgBbCustomer {
    /// The customer's id.
    pub customer_id: String,
    /// (x, tₓ, n) over the opportunities after the first transaction.
    pub observation: BgBbObservation,
    /// Average value per opportunity with a transaction, over the x counted ones (0 when x = 0).
    pub monetary_value: f64,
}

impl BgBbCustomer {
    /// The history as a [`Rfm`] for the Gamma-Gamma spend model, which uses only the
    /// frequency and the average value (recency and T in opportunities).
    pub fn spend_point(&self) -> Rfm {
        let o = self.observation;
        Rfm {
            frequency: o.frequency,
            recency: f64::from(o.recency),
            t: f64::from(o.n_periods),
            monetary_value: self.monetary_value,
        }
    }
}

/// Customers over discrete transaction opportunities, BG/BB's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgBbSummary {
    /// Days per opportunity, for a summary built from transactions.
    pub period_days: Option<u32>,
    /// Last calibration day, for a summary built from transactions.
    pub calibration_end: Option<NaiveDate>,
    /// The customers, by id (from transactions) or in file order (from CSV).
    pub customers: Vec<BgBbCustomer>,
}

impl BgBbSummary {
    /// Cuts each customer's time into opportunities of `period_days` days counted from their
    /// first transaction: opportunity 0 is days `[0, L)` after it (the one that made them a
    /// customer, not counted, as in BG/BB's data), opportunity j days `[jL, (j+1)L)`. Only
    /// opportunities that ended by the calibration end count: n = ⌊(D+1)/L⌋ − 1 with D the days
    /// from the first transaction to the calibration end (at least 0). x is the number of
    /// opportunities 1..=n with at least one transaction, tₓ the last of them (0 when x = 0),
    /// and the monetary value the mean of their totals. Later transactions (in the unfinished
    /// opportunity or after the calibration end) are not used.
    ///
    /// ```
    /// use mod8_datasci::{BgBbSummary, NaiveDate, Transaction};
    /// let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap();
    /// let tx = vec![
    ///     Transaction::new("a", d(1, 1), 10.0)?,  // opportunity 0: the first
    ///     Transaction::new("a", d(1, 9), 4.0)?,   // 1 (days 7..14)
    ///     Transaction::new("a", d(1, 10), 6.0)?,  // 1 again: one opportunity of 10
    ///     Transaction::new("a", d(1, 24), 20.0)?, // 3
    ///     Transaction::new("a", d(1, 30), 99.0)?, // 4: not finished by Jan 31
    /// ];
    /// let s = BgBbSummary::from_transactions(&tx, d(1, 31), 7)?;
    /// let a = &s.customers[0];
    /// assert_eq!((a.observation.frequency, a.observation.recency, a.observation.n_periods), (2, 3, 3));
    /// assert_eq!(a.monetary_value, 15.0);
    /// # Ok::<(), mod8_datasci::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] (`period_days`) for 0; [`Error::EmptyInput`] when no transaction
    /// is on or before the calibration end.
    pub fn from_transactions(
        transactions: &[Transaction],
        calibration_end: NaiveDate,
        period_days: u32,
    ) -> Result<Self> {
        if period_days == 0 {
            return Err(Error::validation(
                "period_days",
                "an opportunity must last at least 1 day",
            ));
        }
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
        let length = i64::from(period_days);
        let mut customers: Vec<BgBbCustomer> = by_customer
            .into_iter()
            .map(|(id, days)| {
                let first = days
                    .iter()
                    .map(|(d, _)| *d)
                    .min()
                    .unwrap_or(calibration_end);
                let span = (calibration_end - first).num_days();
                let n = ((span + 1) / length - 1).max(0);
                let mut totals: HashMap<i64, f64> = HashMap::new();
                for (date, amount) in days {
                    let j = (date - first).num_days() / length;
                    if (1..=n).contains(&j) {
                        *totals.entry(j).or_insert(0.0) += amount;
                    }
                }
                let x = totals.len();
                let last = totals.keys().copied().max().unwrap_or(0);
                let monetary_value = if x == 0 {
                    0.0
                } else {
                    totals.values().sum::<f64>() / x as f64
                };
                let clamp = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
                BgBbCustomer {
                    customer_id: id.to_owned(),
                    observation: BgBbObservation {
                        frequency: clamp(x as i64),
                        recency: clamp(last),
                        n_periods: clamp(n),
                    },
                    monetary_value,
                }
            })
            .collect();
        customers.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        Ok(BgBbSummary {
            period_days: Some(period_days),
            calibration_end: Some(calibration_end),
            customers,
        })
    }

    /// The observations, in the summary's order.
    pub fn observations(&self) -> Vec<BgBbObservation> {
        self.customers.iter().map(|c| c.observation).collect()
    }

    /// The histories for the Gamma-Gamma spend model ([`BgBbCustomer::spend_point`]).
    pub fn spend_points(&self) -> Vec<Rfm> {
        self.customers
            .iter()
            .map(BgBbCustomer::spend_point)
            .collect()
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// Whether there are no customers.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
}

const COLUMNS: [&str; 5] = [
    "customer_id",
    "frequency",
    "recency",
    "n_periods",
    "monetary_value",
];

/// Reads a BG/BB summary: CSV with a header naming exactly `customer_id`, `frequency`,
/// `recency`, `n_periods` and `monetary_value` (any order): x opportunities with a transaction
/// after the first one, the opportunity tₓ of the last (0 when x = 0), n opportunities
/// observed — whole numbers with x ≤ tₓ ≤ n — and the average value per counted opportunity
/// (≥ 0). Customers keep the file's order.
///
/// # Errors
///
/// [`Error::InvalidRecord`] with the 1-based line (header = 1) and the field: an unknown,
/// repeated or missing column, an empty or repeated id, a value that is not a whole number
/// (or a non-negative number for `monetary_value`), an inconsistent history;
/// [`Error::EmptyInput`] without a data row; [`Error::Backend`] (`"csv"`) when reading fails.
pub fn read_bgbb_summary<R: Read>(reader: R) -> Result<BgBbSummary> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv.headers().map_err(|e| Error::backend("csv", e))?.clone();
    let mut index = [usize::MAX; 5];
    for (i, name) in headers.iter().enumerate() {
        let header_error = |message: &str| Error::InvalidRecord {
            row: 1,
            field: name.to_owned(),
            message: message.to_owned(),
        };
        match COLUMNS.iter().position(|c| *c == name) {
            Some(k) if index[k] == usize::MAX => index[k] = i,
            Some(_) => return Err(header_error("column appears twice")),
            None => return Err(header_error(
                "unknown column (expected customer_id,frequency,recency,n_periods,monetary_value)",
            )),
        }
    }
    if let Some(k) = index.iter().position(|i| *i == usize::MAX) {
        return Err(Error::InvalidRecord {
            row: 1,
            field: COLUMNS[k].to_owned(),
            message: "missing column".to_owned(),
        });
    }
    let mut seen = HashSet::new();
    let mut customers = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| Error::backend("csv", e))?;
        let row = record.position().map_or(0, |p| p.line());
        let bad = |field: &str, message: String| Error::InvalidRecord {
            row,
            field: field.to_owned(),
            message,
        };
        let text = |k: usize| record.get(index[k]).unwrap_or("");
        let whole = |k: usize| -> Result<u32> {
            let v = text(k);
            v.parse::<u32>()
                .map_err(|_| bad(COLUMNS[k], format!("`{v}` is not a whole number ≥ 0")))
        };
        let id = text(0);
        if id.is_empty() {
            return Err(bad("customer_id", "empty customer id".into()));
        }
        if !seen.insert(id.to_owned()) {
            return Err(bad("customer_id", format!("customer `{id}` appears twice")));
        }
        let (frequency, recency, n_periods) = (whole(1)?, whole(2)?, whole(3)?);
        let money = text(4);
        let monetary_value = money
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                bad(
                    "monetary_value",
                    format!("`{money}` is not a finite number ≥ 0"),
                )
            })?;
        let observation =
            BgBbObservation::new(frequency, recency, n_periods).map_err(|e| match e {
                Error::Validation { field, message } => Error::InvalidRecord {
                    row,
                    field,
                    message,
                },
                other => other,
            })?;
        customers.push(BgBbCustomer {
            customer_id: id.to_owned(),
            observation,
            monetary_value,
        });
    }
    if customers.is_empty() {
        return Err(Error::EmptyInput {
            what: "BG/BB summary has no data row".into(),
        });
    }
    Ok(BgBbSummary {
        period_days: None,
        calibration_end: None,
        customers,
    })
}

/// What BG/BB and Gamma-Gamma say about one customer; opportunities instead of weeks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgBbPrediction {
    /// The customer's id.
    pub customer_id: String,
    /// Opportunities with a transaction, x.
    pub frequency: u32,
    /// The opportunity of the last transaction, tₓ.
    pub recency: u32,
    /// Opportunities observed, n.
    pub n_periods: u32,
    /// Average value per counted opportunity.
    pub monetary_value: f64,
    /// P(alive) after the last observed opportunity.
    pub p_alive: f64,
    /// P(alive) after the horizon's opportunities.
    pub p_alive_at_horizon: f64,
    /// Expected transactions in the horizon's opportunities.
    pub expected_purchases: f64,
    /// Expected value per future transaction.
    pub expected_average_spend: f64,
    /// Discounted value over the horizon.
    pub clv: f64,
}

/// Predictions for every customer of `summary` over the next `options.periods`
/// opportunities (the horizon is counted in opportunities; `options.period_weeks` does not
/// apply): P(alive) now and after the horizon, expected transactions in it, expected spend per
/// transaction from `gamma_gamma`, and CLV Σⱼ spend · (E[X(j)] − E[X(j−1)]) / (1+d)ʲ, each
/// opportunity one discount period.
///
/// # Errors
///
/// [`Error::InfiniteMeanSpend`] when the Gamma-Gamma q ≤ 1; [`Error::Validation`] for a bad
/// discount rate; as [`BgBb::p_alive`].
pub fn predict_bgbb(
    model: &BgBb,
    gamma_gamma: GammaGamma,
    summary: &BgBbSummary,
    options: &ClvOptions,
) -> Result<Vec<BgBbPrediction>> {
    if !gamma_gamma.has_finite_mean() {
        return Err(Error::InfiniteMeanSpend { q: gamma_gamma.q });
    }
    options.validate()?;
    let horizon = options.periods;
    summary
        .customers
        .iter()
        .map(|c| {
            let o = &c.observation;
            let spend = gamma_gamma.expected_average_spend(o.frequency, c.monetary_value)?;
            let mut clv = 0.0;
            let mut previous = 0.0;
            for j in 1..=horizon {
                let cumulative = model.expected_purchases(o, j)?;
                clv +=
                    spend * (cumulative - previous) / (1.0 + options.discount_rate).powi(j as i32);
                previous = cumulative;
            }
            Ok(BgBbPrediction {
                customer_id: c.customer_id.clone(),
                frequency: o.frequency,
                recency: o.recency,
                n_periods: o.n_periods,
                monetary_value: c.monetary_value,
                p_alive: model.p_alive(o)?,
                p_alive_at_horizon: model.p_alive_after(o, horizon)?,
                expected_purchases: model.expected_purchases(o, horizon)?,
                expected_average_spend: spend,
                clv: clv.max(0.0),
            })
        })
        .collect()
}

/// Writes BG/BB predictions as CSV with the header
/// `customer_id,frequency,recency,n_periods,monetary_value,p_alive,p_alive_at_horizon,expected_purchases,expected_average_spend,clv`.
///
/// # Errors
///
/// [`Error::Backend`] (`"csv"`) when writing fails.
pub fn write_bgbb_predictions_csv<W: Write>(
    writer: W,
    predictions: &[BgBbPrediction],
) -> Result<()> {
    let to_err = |e: csv::Error| Error::backend("csv", e);
    let mut w = csv::Writer::from_writer(writer);
    if predictions.is_empty() {
        w.write_record([
            "customer_id",
            "frequency",
            "recency",
            "n_periods",
            "monetary_value",
            "p_alive",
            "p_alive_at_horizon",
            "expected_purchases",
            "expected_average_spend",
            "clv",
        ])
        .map_err(to_err)?;
    }
    for p in predictions {
        w.serialize(p).map_err(to_err)?;
    }
    w.flush().map_err(Error::io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    #[test]
    fn opportunities_from_transactions() {
        let t = |id: &str, date, amount| Transaction::new(id, date, amount).unwrap();
        let tx = [
            t("b", d(1, 25), 5.0), // D = 6 days to Jan 31: no finished opportunity after 0
            t("a", d(1, 1), 1.0),
            t("a", d(1, 20), 3.0), // opportunity 2
            t("c", d(2, 1), 1.0),  // after the calibration end
        ];
        let s = BgBbSummary::from_transactions(&tx, d(1, 31), 7).unwrap();
        let ids: Vec<_> = s.customers.iter().map(|c| c.customer_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            s.customers[0].observation,
            BgBbObservation::new(1, 2, 3).unwrap()
        );
        assert_eq!(s.customers[0].monetary_value, 3.0);
        assert_eq!(
            s.customers[1].observation,
            BgBbObservation::new(0, 0, 0).unwrap()
        );
        assert!(matches!(
            BgBbSummary::from_transactions(&tx, d(1, 31), 0),
            Err(Error::Validation { field, .. }) if field == "period_days"
        ));
    }

    #[test]
    fn csv_summary_rows_are_checked() {
        let ok = "customer_id,frequency,recency,n_periods,monetary_value\na,2,3,6,10\nb,0,0,6,0\n";
        let s = read_bgbb_summary(ok.as_bytes()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.customers[0].observation,
            BgBbObservation::new(2, 3, 6).unwrap()
        );
        let bad = "customer_id,frequency,recency,n_periods,monetary_value\na,2,7,6,10\n";
        assert_eq!(
            read_bgbb_summary(bad.as_bytes()).unwrap_err().to_string(),
            "row 2, field `recency`: need recency ≤ n_periods, got recency 7, n_periods 6"
        );
        let continuous = "customer_id,frequency,recency,T,monetary_value\na,1,1,2,3\n";
        assert!(matches!(
            read_bgbb_summary(continuous.as_bytes()),
            Err(Error::InvalidRecord { row: 1, field, .. }) if field == "T"
        ));
    }

    #[test]
    fn predictions_over_opportunities() {
        let model = BgBb::new(1.2, 0.75, 0.66, 2.78).unwrap();
        let gg = GammaGamma::new(6.0, 4.0, 15.0).unwrap();
        let summary = read_bgbb_summary(
            "customer_id,frequency,recency,n_periods,monetary_value\na,3,6,6,20\nb,1,1,6,5\n"
                .as_bytes(),
        )
        .unwrap();
        let options = ClvOptions {
            periods: 5,
            period_weeks: 52.0,
            discount_rate: 0.0,
        };
        let p = predict_bgbb(&model, gg, &summary, &options).unwrap();
        for (pred, c) in p.iter().zip(&summary.customers) {
            let o = &c.observation;
            assert_eq!(pred.p_alive, model.p_alive(o).unwrap());
            assert_eq!(
                pred.expected_purchases,
                model.expected_purchases(o, 5).unwrap()
            );
            // Without discounting CLV is spend × expected purchases.
            assert!(
                (pred.clv - pred.expected_average_spend * pred.expected_purchases).abs() < 1e-9
            );
        }
        assert!(p[0].p_alive > p[1].p_alive);
        let mut out = Vec::new();
        write_bgbb_predictions_csv(&mut out, &p).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "customer_id,frequency,recency,n_periods,monetary_value,p_alive,p_alive_at_horizon,"
        ));
        assert_eq!(text.lines().count(), 3);
    }
}
