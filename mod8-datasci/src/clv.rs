//! BG/NBD + Gamma-Gamma together: fitting from transactions, the `clv fit` JSON report,
//! per-customer predictions (CSV-ready) and a calibration/holdout evaluation.

use std::io::Write;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::bgnbd::{BgNbd, BgNbdFit};
use crate::error::{Error, Result};
use crate::gamma_gamma::{GammaGamma, GammaGammaFit};
use crate::rfm::{holdout_purchases, CustomerSummary, Rfm, RfmSummary, DAYS_PER_WEEK};
use crate::transactions::{ReadOptions, Transaction};

/// How lifetime value is discounted: `periods` periods of `period_weeks` weeks each, the cash of
/// period k discounted by (1 + `discount_rate`)^k. The defaults (12 periods of 4.345 weeks at
/// 1 % per period) are one year in months, as the lifetimes package does it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClvOptions {
    /// Number of periods in the horizon.
    pub periods: u32,
    /// Length of one period in weeks.
    pub period_weeks: f64,
    /// Discount rate per period (0.01 = 1 %).
    pub discount_rate: f64,
}

impl Default for ClvOptions {
    fn default() -> Self {
        ClvOptions {
            periods: 12,
            period_weeks: 4.345,
            discount_rate: 0.01,
        }
    }
}

impl ClvOptions {
    /// The whole horizon in weeks.
    pub fn horizon_weeks(&self) -> f64 {
        self.periods as f64 * self.period_weeks
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.period_weeks.is_finite() && self.period_weeks > 0.0) {
            return Err(Error::validation(
                "period_weeks",
                format!("period_weeks must be > 0, got {}", self.period_weeks),
            ));
        }
        if !(self.discount_rate.is_finite() && self.discount_rate > -1.0) {
            return Err(Error::validation(
                "discount_rate",
                format!("discount_rate must be > -1, got {}", self.discount_rate),
            ));
        }
        Ok(())
    }
}

/// A usable customer-value model: BG/NBD for purchases, Gamma-Gamma (with q > 1) for spend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClvModel {
    /// Purchase/dropout model.
    pub bgnbd: BgNbd,
    /// Spend model.
    pub gamma_gamma: GammaGamma,
}

/// Everything the model says about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerPrediction {
    /// The customer's id.
    pub customer_id: String,
    /// Repeat purchases in the calibration period.
    pub frequency: u32,
    /// Weeks from first to last purchase.
    pub recency: f64,
    /// Weeks from first purchase to the calibration end.
    #[serde(rename = "T")]
    pub t: f64,
    /// Average repeat-purchase value.
    pub monetary_value: f64,
    /// P(alive) at the calibration end.
    pub p_alive: f64,
    /// P(alive) at the end of the horizon.
    pub p_alive_at_horizon: f64,
    /// Expected purchases over the horizon.
    pub expected_purchases: f64,
    /// Expected spend per future purchase.
    pub expected_average_spend: f64,
    /// Discounted lifetime value over the horizon.
    pub clv: f64,
}

impl ClvModel {
    /// Combines the two models.
    ///
    /// # Errors
    ///
    /// [`Error::InfiniteMeanSpend`] when the Gamma-Gamma q ≤ 1: such a model has no mean spend
    /// and would value every customer at infinity.
    pub fn new(bgnbd: BgNbd, gamma_gamma: GammaGamma) -> Result<Self> {
        if !gamma_gamma.has_finite_mean() {
            return Err(Error::InfiniteMeanSpend { q: gamma_gamma.q });
        }
        Ok(ClvModel { bgnbd, gamma_gamma })
    }

    /// Expected spend per future purchase of this customer.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a negative or non-finite monetary value.
    pub fn expected_average_spend(&self, rfm: &Rfm) -> Result<f64> {
        self.gamma_gamma
            .expected_average_spend(rfm.frequency, rfm.monetary_value.max(0.0))
    }

    /// Discounted lifetime value: Σₖ spend · (E[X(k·Δ)] − E[X((k−1)·Δ)]) / (1+d)ᵏ.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for bad options or history; [`Error::NotConverged`] if a
    /// hypergeometric series fails (only for horizons far beyond the data).
    pub fn clv(&self, rfm: &Rfm, options: &ClvOptions) -> Result<f64> {
        crate::forecast::clv(self, rfm, options)
    }

    /// Predictions for one customer over `horizon_weeks` (P(alive) at the horizon, expected
    /// purchases in it) with CLV by `options`.
    ///
    /// # Errors
    ///
    /// As [`ClvModel::clv`].
    pub fn predict(
        &self,
        customer: &CustomerSummary,
        horizon_weeks: f64,
        options: &ClvOptions,
    ) -> Result<CustomerPrediction> {
        crate::forecast::predict(self, customer, horizon_weeks, options)
    }

    /// [`ClvModel::predict`] for every customer of a summary, in its order: the results are
    /// those of calling [`ClvModel::predict`] one by one, bit for bit, computed faster —
    /// customers with the same (frequency, recency, T) share their purchase forecast, and with
    /// the `parallel` feature (default) the work is spread over rayon's threads.
    ///
    /// # Errors
    ///
    /// The first customer's error, as [`ClvModel::predict`].
    pub fn predict_all(
        &self,
        summary: &RfmSummary,
        horizon_weeks: f64,
        options: &ClvOptions,
    ) -> Result<Vec<CustomerPrediction>> {
        crate::forecast::predict_all(self, summary, horizon_weeks, options)
    }
}

/// Writes predictions as CSV with the header
/// `customer_id,frequency,recency,T,monetary_value,p_alive,p_alive_at_horizon,expected_purchases,expected_average_spend,clv`.
///
/// # Errors
///
/// [`Error::Backend`] (`"csv"`) when writing fails.
pub fn write_predictions_csv<W: Write>(
    writer: W,
    predictions: &[CustomerPrediction],
) -> Result<()> {
    let to_err = |e: csv::Error| Error::backend("csv", e);
    let mut w = csv::Writer::from_writer(writer);
    for p in predictions {
        w.serialize(p).map_err(to_err)?;
    }
    if predictions.is_empty() {
        w.write_record([
            "customer_id",
            "frequency",
            "recency",
            "T",
            "monetary_value",
            "p_alive",
            "p_alive_at_horizon",
            "expected_purchases",
            "expected_average_spend",
            "clv",
        ])
        .map_err(to_err)?;
    }
    w.flush().map_err(Error::io)
}

/// Both fits on one calibration summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClvFit {
    /// Customers in the calibration summary.
    pub customers: usize,
    /// The BG/NBD fit (all customers).
    pub bgnbd: BgNbdFit,
    /// The Gamma-Gamma fit (repeat customers with positive spend).
    pub gamma_gamma: GammaGammaFit,
}

/// The `mod8 clv fit` output; serialises to exactly
/// `{"customers":N,"bgnbd":{"r":..,"alpha":..,"a":..,"b":..,"log_likelihood":..},"gamma_gamma":{"p":..,"q":..,"gamma":..}}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Customers in the calibration period.
    pub customers: usize,
    /// BG/NBD parameters and total log-likelihood.
    pub bgnbd: BgNbdReport,
    /// Gamma-Gamma parameters.
    pub gamma_gamma: GammaGamma,
}

/// The BG/NBD part of [`FitReport`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdReport {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate of the purchase-rate distribution (weeks).
    pub alpha: f64,
    /// Dropout Beta shape a.
    pub a: f64,
    /// Dropout Beta shape b.
    pub b: f64,
    /// Total log-likelihood (time in weeks).
    pub log_likelihood: f64,
}

impl ClvFit {
    /// Fits BG/NBD on every customer and Gamma-Gamma on those with a repeat purchase and a
    /// positive average repeat spend.
    ///
    /// # Errors
    ///
    /// As [`BgNbd::fit`] and [`GammaGamma::fit`]. A Gamma-Gamma fit with q ≤ 1 is *not* an
    /// error here (it is reported by [`ClvFit::warnings`]); [`ClvFit::model`] refuses it.
    pub fn fit(summary: &RfmSummary) -> Result<Self> {
        Self::fit_points(&summary.points())
    }

    /// [`ClvFit::fit`] on bare summaries.
    ///
    /// # Errors
    ///
    /// As [`ClvFit::fit`].
    pub fn fit_points(points: &[Rfm]) -> Result<Self> {
        Ok(ClvFit {
            customers: points.len(),
            bgnbd: BgNbd::fit(points)?,
            gamma_gamma: GammaGamma::fit(points)?,
        })
    }

    /// Reads transactions, summarises them up to `calibration_end` and fits: the whole
    /// `mod8 clv fit` pipeline. Transactions after the calibration end are held out: read and
    /// checked like the others, left out of the summary (count them, or evaluate the fit on
    /// them with [`HoldoutEvaluation::of_fit`], from [`crate::read_transactions`]' output).
    ///
    /// # Errors
    ///
    /// As [`crate::read_transactions`], [`RfmSummary::from_transactions`] and [`ClvFit::fit`].
    pub fn from_csv<R: std::io::Read>(
        reader: R,
        calibration_end: NaiveDate,
    ) -> Result<(RfmSummary, Self)> {
        let tx = crate::transactions::read_transactions(reader, ReadOptions::default())?;
        let summary = RfmSummary::from_transactions(&tx, calibration_end)?;
        let fit = ClvFit::fit(&summary)?;
        Ok((summary, fit))
    }

    /// The JSON-shaped report.
    pub fn report(&self) -> FitReport {
        FitReport {
            customers: self.customers,
            bgnbd: BgNbdReport::from(&self.bgnbd),
            gamma_gamma: self.gamma_gamma.params,
        }
    }

    /// The combined model for predictions.
    ///
    /// # Errors
    ///
    /// [`Error::InfiniteMeanSpend`] when the Gamma-Gamma fit has q ≤ 1.
    pub fn model(&self) -> Result<ClvModel> {
        ClvModel::new(self.bgnbd.params, self.gamma_gamma.params)
    }

    /// Things a user of the fit should be told (for a CLI: print to stderr): customers left out
    /// of Gamma-Gamma and why, and a q ≤ 1 spend model.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let gg = &self.gamma_gamma;
        if gg.excluded_non_positive_spend > 0 {
            out.push(format!(
                "{} customer(s) with a non-positive average repeat spend were excluded from the Gamma-Gamma fit",
                gg.excluded_non_positive_spend
            ));
        }
        if !gg.params.has_finite_mean() {
            out.push(format!(
                "Gamma-Gamma q = {:.4} ≤ 1: the fitted spend distribution has no finite mean, so it cannot be used for lifetime value",
                gg.params.q
            ));
        }
        out
    }
}

impl From<&BgNbdFit> for BgNbdReport {
    fn from(fit: &BgNbdFit) -> Self {
        let p = fit.params;
        BgNbdReport {
            r: p.r,
            alpha: p.alpha,
            a: p.a,
            b: p.b,
            log_likelihood: fit.log_likelihood,
        }
    }
}

impl FitReport {
    /// Compact JSON in the documented shape.
    pub fn to_json(&self) -> String {
        // Serialising plain f64/usize fields cannot fail; NaN would become `null`.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Predicted versus actual holdout purchases for one calibration-frequency bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutBucket {
    /// Calibration frequency of the bucket; the last bucket holds this frequency and above.
    pub frequency: u32,
    /// Whether this is the open-ended last bucket.
    pub and_above: bool,
    /// Customers in the bucket.
    pub customers: usize,
    /// Mean actual holdout purchases.
    pub actual_mean: f64,
    /// Mean predicted holdout purchases.
    pub predicted_mean: f64,
}

/// A calibration period and the holdout period after it: `(.., calibration_end]` is fitted,
/// `(calibration_end, holdout_end]` is predicted and compared, later transactions are ignored.
///
/// ```
/// use mod8_datasci::{HoldoutPeriod, NaiveDate};
/// let d = |m| NaiveDate::from_ymd_opt(2024, m, 1).unwrap();
/// let period = HoldoutPeriod::new(d(6), d(9))?;
/// assert_eq!(period.weeks(), 13.142857142857142);
/// assert!(HoldoutPeriod::new(d(6), d(3)).is_err());
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HoldoutPeriod {
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
}

impl HoldoutPeriod {
    /// A checked period: the holdout must end after the calibration.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] (field `holdout_end`) when `holdout_end ≤ calibration_end`.
    pub fn new(calibration_end: NaiveDate, holdout_end: NaiveDate) -> Result<Self> {
        if holdout_end <= calibration_end {
            return Err(Error::validation(
                "holdout_end",
                format!(
                    "holdout end {holdout_end} must be after the calibration end {calibration_end}"
                ),
            ));
        }
        Ok(HoldoutPeriod {
            calibration_end,
            holdout_end,
        })
    }

    /// Last calibration day.
    pub fn calibration_end(&self) -> NaiveDate {
        self.calibration_end
    }

    /// Last holdout day.
    pub fn holdout_end(&self) -> NaiveDate {
        self.holdout_end
    }

    /// Holdout length in weeks.
    pub fn weeks(&self) -> f64 {
        (self.holdout_end - self.calibration_end).num_days() as f64 / DAYS_PER_WEEK
    }
}

/// Calibration/holdout comparison: fit BG/NBD on transactions up to `calibration_end`, predict
/// the purchases of each calibrated customer in `(calibration_end, holdout_end]`, compare.
/// Purchase counts need no spend model, so Gamma-Gamma is not fitted (data whose spend cannot
/// be modelled, such as all-zero amounts, is still evaluated).
///
/// Purchases are counted as in the calibration summary: several transactions of a customer on
/// one day are one purchase; customers first seen in the holdout are not part of the
/// calibrated base and are left out ([`holdout_purchases`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutEvaluation {
    /// Last calibration day.
    pub calibration_end: NaiveDate,
    /// Last holdout day.
    pub holdout_end: NaiveDate,
    /// Holdout length in weeks.
    pub holdout_weeks: f64,
    /// Customers in the calibration period.
    pub customers: usize,
    /// The BG/NBD fit on the calibration period.
    pub bgnbd: BgNbdReport,
    /// Per calibration frequency 0, 1, …, and a last "and above" bucket.
    pub buckets: Vec<HoldoutBucket>,
    /// Total actual holdout purchases.
    pub actual_total: f64,
    /// Total predicted holdout purchases.
    pub predicted_total: f64,
    /// Mean absolute error per customer.
    pub mean_absolute_error: f64,
    /// Root mean squared error per customer.
    pub root_mean_squared_error: f64,
}

/// Runs the calibration/holdout evaluation with frequency buckets `0..last_bucket` and
/// `last_bucket+` (7 is a common choice).
///
/// # Errors
///
/// [`Error::Validation`] when `holdout_end ≤ calibration_end`; otherwise as
/// [`RfmSummary::from_transactions`], [`BgNbd::fit`] and [`BgNbd::expected_purchases`].
pub fn evaluate_holdout(
    transactions: &[Transaction],
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
    last_bucket: u32,
) -> Result<HoldoutEvaluation> {
    let period = HoldoutPeriod::new(calibration_end, holdout_end)?;
    let summary = RfmSummary::from_transactions(transactions, calibration_end)?;
    // BG/NBD alone: a Gamma-Gamma failure must not block a purchase-count evaluation.
    let fit = BgNbd::fit(&summary.points())?;
    HoldoutEvaluation::evaluate(&fit, &summary, transactions, period, last_bucket)
}

impl HoldoutEvaluation {
    /// [`evaluate_holdout`] with a BG/NBD already fitted on `transactions` up to the
    /// calibration end (as `mod8 clv fit` has), so it is not fitted twice.
    ///
    /// # Errors
    ///
    /// As [`RfmSummary::from_transactions`] and [`BgNbd::expected_purchases`].
    pub fn of_fit(
        fit: &BgNbdFit,
        transactions: &[Transaction],
        period: HoldoutPeriod,
        last_bucket: u32,
    ) -> Result<Self> {
        let summary = RfmSummary::from_transactions(transactions, period.calibration_end)?;
        Self::evaluate(fit, &summary, transactions, period, last_bucket)
    }

    fn evaluate(
        fit: &BgNbdFit,
        summary: &RfmSummary,
        transactions: &[Transaction],
        period: HoldoutPeriod,
        last_bucket: u32,
    ) -> Result<Self> {
        let HoldoutPeriod {
            calibration_end,
            holdout_end,
        } = period;
        let actual = holdout_purchases(transactions, calibration_end, holdout_end);
        let holdout_weeks = period.weeks();
        let nb = last_bucket as usize + 1;
        let mut counts = vec![0usize; nb];
        let mut actual_sum = vec![0.0; nb];
        let mut predicted_sum = vec![0.0; nb];
        let mut abs_err = 0.0;
        let mut sq_err = 0.0;
        for c in &summary.customers {
            let predicted = fit.params.expected_purchases(&c.rfm, holdout_weeks)?;
            let observed = actual.get(&c.customer_id).copied().unwrap_or(0) as f64;
            let k = (c.rfm.frequency as usize).min(nb - 1);
            counts[k] += 1;
            actual_sum[k] += observed;
            predicted_sum[k] += predicted;
            abs_err += (observed - predicted).abs();
            sq_err += (observed - predicted).powi(2);
        }
        let mean = |sum: f64, n: usize| if n > 0 { sum / n as f64 } else { 0.0 };
        let buckets = (0..nb)
            .map(|k| HoldoutBucket {
                frequency: k as u32,
                and_above: k == nb - 1,
                customers: counts[k],
                actual_mean: mean(actual_sum[k], counts[k]),
                predicted_mean: mean(predicted_sum[k], counts[k]),
            })
            .collect();
        let n = summary.len();
        Ok(HoldoutEvaluation {
            calibration_end,
            holdout_end,
            holdout_weeks,
            customers: n,
            bgnbd: BgNbdReport::from(fit),
            buckets,
            actual_total: actual_sum.iter().sum(),
            predicted_total: predicted_sum.iter().sum(),
            mean_absolute_error: mean(abs_err, n),
            root_mean_squared_error: mean(sq_err, n).sqrt(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdnow() -> ClvModel {
        ClvModel::new(
            BgNbd::new(
                0.2425929282798216,
                4.4135322652718125,
                0.7928859664406493,
                2.42575238262571,
            )
            .unwrap(),
            GammaGamma::new(6.248802496079201, 3.74458846092242, 15.447748064915702).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn clv_matches_lifetimes() {
        // lifetimes: GammaGammaFitter.customer_lifetime_value(bgf, ..., time=12, freq="W",
        // discount_rate=0.01) on the first three CDNOW customers.
        let m = cdnow();
        let cases = [
            (
                Rfm {
                    frequency: 2,
                    recency: 30.43,
                    t: 38.86,
                    monetary_value: 22.35,
                },
                36.27849576,
            ),
            (
                Rfm {
                    frequency: 1,
                    recency: 1.71,
                    t: 38.86,
                    monetary_value: 11.77,
                },
                4.63746633,
            ),
            (
                Rfm {
                    frequency: 0,
                    recency: 0.0,
                    t: 38.86,
                    monetary_value: 0.0,
                },
                8.34409312,
            ),
        ];
        for (rfm, expected) in cases {
            let v = m.clv(&rfm, &ClvOptions::default()).unwrap();
            assert!((v - expected).abs() < 1e-6, "{rfm:?}: {v} vs {expected}");
        }
    }

    #[test]
    fn holdout_period_must_follow_the_calibration() {
        let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap();
        for holdout_end in [d(3, 1), d(2, 29)] {
            match HoldoutPeriod::new(d(3, 1), holdout_end) {
                Err(Error::Validation { field, message }) => {
                    assert_eq!(field, "holdout_end");
                    assert!(message.contains("must be after the calibration end 2024-03-01"));
                }
                other => panic!("{other:?}"),
            }
        }
        let period = HoldoutPeriod::new(d(3, 1), d(3, 15)).unwrap();
        assert_eq!(
            (
                period.calibration_end(),
                period.holdout_end(),
                period.weeks()
            ),
            (d(3, 1), d(3, 15), 2.0)
        );
        let tx = [Transaction::new("a", d(1, 1), 1.0).unwrap()];
        assert!(matches!(
            evaluate_holdout(&tx, d(3, 1), d(1, 1), 7),
            Err(Error::Validation { .. })
        ));
    }

    #[test]
    fn holdout_by_hand() {
        let d = |m, day| NaiveDate::from_ymd_opt(2024, m, day).unwrap();
        let t = |id: &str, date, amount| Transaction::new(id, date, amount).unwrap();
        let tx = [
            // a: frequency 2 in calibration; holdout: two purchases on one day (one purchase)
            // and one more; one after the holdout end (ignored).
            t("a", d(1, 1), 10.0),
            t("a", d(1, 15), 10.0),
            t("a", d(2, 12), 10.0),
            t("a", d(3, 5), 3.0),
            t("a", d(3, 5), 4.0),
            t("a", d(3, 20), 4.0),
            t("a", d(5, 1), 4.0),
            // b: frequency 0, no holdout purchase.
            t("b", d(2, 1), 5.0),
            // c: frequency 1 and 1 holdout purchase.
            t("c", d(1, 8), 5.0),
            t("c", d(1, 22), 5.0),
            t("c", d(3, 10), 5.0),
            // d: first seen in the holdout: not in the calibrated base.
            t("d", d(3, 2), 5.0),
        ];
        let period = HoldoutPeriod::new(d(2, 26), d(3, 25)).unwrap();
        let fit = BgNbdFit {
            params: BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
            log_likelihood: -1.0,
            customers: 3,
            distinct_histories: 3,
            iterations: 1,
        };
        let eval = HoldoutEvaluation::of_fit(&fit, &tx, period, 1).unwrap();
        assert_eq!(eval.customers, 3);
        assert_eq!(eval.holdout_weeks, 4.0);
        let summary = RfmSummary::from_transactions(&tx, d(2, 26)).unwrap();
        let predicted: Vec<f64> = summary
            .customers
            .iter()
            .map(|c| fit.params.expected_purchases(&c.rfm, 4.0).unwrap())
            .collect();
        let ids: Vec<_> = summary
            .customers
            .iter()
            .map(|c| c.customer_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let actual = [2.0, 0.0, 1.0];
        // Buckets: frequency 0 (b) and 1+ (a, c).
        assert_eq!(eval.buckets.len(), 2);
        let b0 = &eval.buckets[0];
        assert_eq!((b0.frequency, b0.and_above, b0.customers), (0, false, 1));
        assert_eq!((b0.actual_mean, b0.predicted_mean), (0.0, predicted[1]));
        let b1 = &eval.buckets[1];
        assert_eq!((b1.frequency, b1.and_above, b1.customers), (1, true, 2));
        assert_eq!(b1.actual_mean, 1.5);
        assert!((b1.predicted_mean - (predicted[0] + predicted[2]) / 2.0).abs() < 1e-12);
        assert_eq!(eval.actual_total, 3.0);
        assert!((eval.predicted_total - predicted.iter().sum::<f64>()).abs() < 1e-12);
        let errors: Vec<f64> = actual.iter().zip(&predicted).map(|(a, p)| a - p).collect();
        let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / 3.0;
        let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / 3.0).sqrt();
        assert!((eval.mean_absolute_error - mae).abs() < 1e-12);
        assert!((eval.root_mean_squared_error - rmse).abs() < 1e-12);
        // A holdout end before the later purchases counts fewer of them.
        let short = HoldoutPeriod::new(d(2, 26), d(3, 6)).unwrap();
        let eval = HoldoutEvaluation::of_fit(&fit, &tx, short, 1).unwrap();
        assert_eq!(eval.actual_total, 1.0);
    }

    #[test]
    fn report_has_exactly_the_documented_shape() {
        let report = FitReport {
            customers: 3,
            bgnbd: BgNbdReport {
                r: 1.0,
                alpha: 2.0,
                a: 0.5,
                b: 4.0,
                log_likelihood: -10.5,
            },
            gamma_gamma: GammaGamma {
                p: 6.0,
                q: 3.5,
                gamma: 15.0,
            },
        };
        assert_eq!(
            report.to_json(),
            r#"{"customers":3,"bgnbd":{"r":1.0,"alpha":2.0,"a":0.5,"b":4.0,"log_likelihood":-10.5},"gamma_gamma":{"p":6.0,"q":3.5,"gamma":15.0}}"#
        );
    }

    #[test]
    fn q_at_most_one_is_refused_for_valuation() {
        let bg = BgNbd::new(1.0, 1.0, 1.0, 1.0).unwrap();
        let gg = GammaGamma::new(1.0, 0.9, 1.0).unwrap();
        assert!(matches!(
            ClvModel::new(bg, gg),
            Err(Error::InfiniteMeanSpend { .. })
        ));
    }

    fn gamma_gamma_fit(params: GammaGamma, excluded_non_positive_spend: usize) -> GammaGammaFit {
        GammaGammaFit {
            params,
            log_likelihood: -100.0,
            customers: 50,
            excluded_no_repeat: 10,
            excluded_non_positive_spend,
            iterations: 12,
        }
    }

    #[test]
    fn warnings_report_q_at_most_one_and_exclusions() {
        let bgnbd = BgNbdFit {
            params: BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
            log_likelihood: -200.0,
            customers: 60,
            distinct_histories: 60,
            iterations: 20,
        };
        let heavy = ClvFit {
            customers: 60,
            bgnbd,
            gamma_gamma: gamma_gamma_fit(GammaGamma::new(2.0, 0.9, 15.0).unwrap(), 3),
        };
        assert_eq!(
            heavy.warnings(),
            [
                "3 customer(s) with a non-positive average repeat spend were excluded from the Gamma-Gamma fit",
                "Gamma-Gamma q = 0.9000 ≤ 1: the fitted spend distribution has no finite mean, so it cannot be used for lifetime value",
            ]
        );
        assert!(matches!(
            heavy.model(),
            Err(Error::InfiniteMeanSpend { q }) if q == 0.9
        ));
        // The report still shows the fit as it is.
        assert_eq!(heavy.report().gamma_gamma.q, 0.9);

        let fine = ClvFit {
            gamma_gamma: gamma_gamma_fit(GammaGamma::new(2.0, 1.5, 15.0).unwrap(), 0),
            ..heavy
        };
        assert!(fine.warnings().is_empty());
        assert!(fine.model().is_ok());
    }

    #[test]
    fn predictions_csv_has_header_and_rows() {
        let m = cdnow();
        let c = CustomerSummary {
            customer_id: "c1".into(),
            first_purchase: NaiveDate::from_ymd_opt(1997, 1, 1),
            rfm: Rfm {
                frequency: 2,
                recency: 30.43,
                t: 38.86,
                monetary_value: 22.35,
            },
        };
        let p = m.predict(&c, 52.0, &ClvOptions::default()).unwrap();
        assert!(p.p_alive_at_horizon < p.p_alive);
        let mut out = Vec::new();
        write_predictions_csv(&mut out, &[p]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "customer_id,frequency,recency,T,monetary_value,p_alive,p_alive_at_horizon,expected_purchases,expected_average_spend,clv"
        );
        assert!(lines
            .next()
            .unwrap()
            .starts_with("c1,2,30.43,38.86,22.35,0.7266"));
    }
}
