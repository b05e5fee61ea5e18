//! One interface over the purchase-count models: which model ([`PurchaseModelKind`]), a fitted
//! continuous-time model ([`PurchaseModel`]: BG/NBD, Pareto/NBD or MBG/NBD on weekly
//! (frequency, recency, T) histories), its fit with the information criteria that compare
//! models ([`PurchaseModelFit`]), per-customer predictions with a Gamma-Gamma spend model, and
//! the holdout error of any of them ([`HoldoutError`]).
//!
//! BG/BB works on discrete opportunities instead ([`crate::BgBbSummary`]); its kind is here so
//! that a caller can name all four, and [`PurchaseModelKind::is_discrete`] tells them apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bgnbd::BgNbd;
use crate::clv::{ClvModel, ClvOptions, CustomerPrediction, HoldoutPeriod};
use crate::error::{Error, Result};
use crate::gamma_gamma::GammaGamma;
use crate::mbgnbd::MbgNbd;
use crate::pareto_nbd::ParetoNbd;
use crate::rfm::{holdout_purchases, Rfm, RfmSummary};
use crate::special::hyp2f1;
use crate::transactions::Transaction;

/// The purchase-count models, by the names the `mod8 clv --model` option uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PurchaseModelKind {
    /// BG/NBD (Fader, Hardie & Lee 2005): `bgnbd`.
    #[serde(rename = "bgnbd")]
    BgNbd,
    /// Pareto/NBD (Schmittlein, Morrison & Colombo 1987): `pareto-nbd`.
    #[serde(rename = "pareto-nbd")]
    ParetoNbd,
    /// MBG/NBD (Batislam, Denizel & Filiztekin 2007): `mbgnbd`.
    #[serde(rename = "mbgnbd")]
    MbgNbd,
    /// BG/BB (Fader, Hardie & Shang 2010), discrete opportunities: `bgbb`.
    #[serde(rename = "bgbb")]
    BgBb,
}

impl PurchaseModelKind {
    /// All four, in the order `compare` reports them.
    pub const ALL: [PurchaseModelKind; 4] = [
        PurchaseModelKind::BgNbd,
        PurchaseModelKind::ParetoNbd,
        PurchaseModelKind::MbgNbd,
        PurchaseModelKind::BgBb,
    ];

    /// The continuous-time models (weekly (frequency, recency, T) histories).
    pub const CONTINUOUS: [PurchaseModelKind; 3] = [
        PurchaseModelKind::BgNbd,
        PurchaseModelKind::ParetoNbd,
        PurchaseModelKind::MbgNbd,
    ];

    /// The option value: `bgnbd`, `pareto-nbd`, `mbgnbd` or `bgbb`.
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseModelKind::BgNbd => "bgnbd",
            PurchaseModelKind::ParetoNbd => "pareto-nbd",
            PurchaseModelKind::MbgNbd => "mbgnbd",
            PurchaseModelKind::BgBb => "bgbb",
        }
    }

    /// The key of the model's object in `mod8 clv fit`'s JSON: `bgnbd`, `pareto_nbd`,
    /// `mbgnbd` or `bgbb`.
    pub fn json_key(self) -> &'static str {
        match self {
            PurchaseModelKind::ParetoNbd => "pareto_nbd",
            other => other.as_str(),
        }
    }

    /// Free parameters of the model (four for each), the k of AIC and BIC.
    pub fn parameter_count(self) -> usize {
        4
    }

    /// Whether the model is for discrete transaction opportunities (BG/BB) rather than
    /// purchases at any time.
    pub fn is_discrete(self) -> bool {
        self == PurchaseModelKind::BgBb
    }
}

impl fmt::Display for PurchaseModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PurchaseModelKind {
    type Err = Error;

    /// Parses `bgnbd`, `pareto-nbd`, `mbgnbd` or `bgbb`.
    fn from_str(s: &str) -> Result<Self> {
        PurchaseModelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "model",
                    format!("unknown model `{s}` (expected bgnbd, pareto-nbd, mbgnbd or bgbb)"),
                )
            })
    }
}

/// AIC = 2k − 2 ln L.
pub fn aic(log_likelihood: f64, parameters: usize) -> f64 {
    2.0 * parameters as f64 - 2.0 * log_likelihood
}

/// BIC = k ln n − 2 ln L, with n the number of customers.
pub fn bic(log_likelihood: f64, parameters: usize, customers: usize) -> f64 {
    parameters as f64 * (customers as f64).ln() - 2.0 * log_likelihood
}

/// A fitted continuous-time purchase model; time in weeks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case")]
pub enum PurchaseModel {
    /// BG/NBD.
    #[serde(rename = "bgnbd")]
    BgNbd(BgNbd),
    /// Pareto/NBD.
    #[serde(rename = "pareto-nbd")]
    ParetoNbd(ParetoNbd),
    /// MBG/NBD.
    #[serde(rename = "mbgnbd")]
    MbgNbd(MbgNbd),
}

/// A [`PurchaseModel`] fitted by maximum likelihood, and how the fit went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PurchaseModelFit {
    /// The fitted parameters.
    pub model: PurchaseModel,
    /// Total log-likelihood at the optimum (time in weeks).
    pub log_likelihood: f64,
    /// Customers the fit used.
    pub customers: usize,
    /// Optimiser iterations.
    pub iterations: usize,
}

impl PurchaseModelFit {
    /// AIC = 2k − 2 ln L.
    pub fn aic(&self) -> f64 {
        aic(self.log_likelihood, self.model.kind().parameter_count())
    }

    /// BIC = k ln n − 2 ln L, n = customers.
    pub fn bic(&self) -> f64 {
        bic(
            self.log_likelihood,
            self.model.kind().parameter_count(),
            self.customers,
        )
    }
}

impl PurchaseModel {
    /// Fits the model `kind` to weekly histories ([`BgNbd::fit`], [`ParetoNbd::fit`],
    /// [`MbgNbd::fit`]).
    ///
    /// # Errors
    ///
    /// As the model's own fit; [`Error::Unsupported`] for [`PurchaseModelKind::BgBb`], which
    /// needs discrete opportunity data ([`crate::BgBbSummary`]).
    pub fn fit(kind: PurchaseModelKind, points: &[Rfm]) -> Result<PurchaseModelFit> {
        Ok(match kind {
            PurchaseModelKind::BgNbd => {
                let f = BgNbd::fit(points)?;
                PurchaseModelFit {
                    model: PurchaseModel::BgNbd(f.params),
                    log_likelihood: f.log_likelihood,
                    customers: f.customers,
                    iterations: f.iterations,
                }
            }
            PurchaseModelKind::ParetoNbd => {
                let f = ParetoNbd::fit(points)?;
                PurchaseModelFit {
                    model: PurchaseModel::ParetoNbd(f.params),
                    log_likelihood: f.log_likelihood,
                    customers: f.customers,
                    iterations: f.iterations,
                }
            }
            PurchaseModelKind::MbgNbd => {
                let f = MbgNbd::fit(points)?;
                PurchaseModelFit {
                    model: PurchaseModel::MbgNbd(f.params),
                    log_likelihood: f.log_likelihood,
                    customers: f.customers,
                    iterations: f.iterations,
                }
            }
            PurchaseModelKind::BgBb => {
                return Err(Error::unsupported(
                    "BG/BB on continuous-time (frequency, recency, T) histories; it needs discrete opportunities",
                    "PurchaseModel",
                ))
            }
        })
    }

    /// Which model this is.
    pub fn kind(&self) -> PurchaseModelKind {
        match self {
            PurchaseModel::BgNbd(_) => PurchaseModelKind::BgNbd,
            PurchaseModel::ParetoNbd(_) => PurchaseModelKind::ParetoNbd,
            PurchaseModel::MbgNbd(_) => PurchaseModelKind::MbgNbd,
        }
    }

    /// The parameters by name, in the model's usual order (`r, alpha, a, b` or
    /// `r, alpha, s, beta`).
    pub fn parameters(&self) -> [(&'static str, f64); 4] {
        match *self {
            PurchaseModel::BgNbd(BgNbd { r, alpha, a, b })
            | PurchaseModel::MbgNbd(MbgNbd { r, alpha, a, b }) => {
                [("r", r), ("alpha", alpha), ("a", a), ("b", b)]
            }
            PurchaseModel::ParetoNbd(ParetoNbd { r, alpha, s, beta }) => {
                [("r", r), ("alpha", alpha), ("s", s), ("beta", beta)]
            }
        }
    }

    /// P(alive at T | x, tₓ, T).
    ///
    /// # Errors
    ///
    /// As [`ParetoNbd::p_alive`] (the other two cannot fail).
    pub fn p_alive(&self, rfm: &Rfm) -> Result<f64> {
        match self {
            PurchaseModel::BgNbd(m) => Ok(m.p_alive(rfm)),
            PurchaseModel::ParetoNbd(m) => m.p_alive(rfm),
            PurchaseModel::MbgNbd(m) => Ok(m.p_alive(rfm)),
        }
    }

    /// P(alive at T + t | x, tₓ, T): P(alive at T) times the posterior chance to survive the
    /// next `t` weeks. BG/NBD: [`BgNbd::p_alive_after`]. Pareto/NBD: given alive at T the
    /// dropout rate is μ ~ Gamma(s, β+T), so the factor is ((β+T)/(β+T+t))^s. MBG/NBD: as
    /// BG/NBD with the dropout posterior p ~ Beta(a, b+x+1) (the extra chance to drop out at
    /// time 0 was survived too): ₂F₁(r+x, a; a+b+x+1; −t/(α+T)).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a negative or non-finite `t`; as [`PurchaseModel::p_alive`];
    /// [`Error::NotConverged`] if a hypergeometric series does not settle.
    pub fn p_alive_after(&self, rfm: &Rfm, t: f64) -> Result<f64> {
        if !(t.is_finite() && t >= 0.0) {
            return Err(Error::validation(
                "t",
                format!("horizon must be finite and ≥ 0, got {t}"),
            ));
        }
        match *self {
            PurchaseModel::BgNbd(m) => m.p_alive_after(rfm, t),
            PurchaseModel::ParetoNbd(m) => {
                let p = m.p_alive(rfm)?;
                let survive = (-m.s * (t / (m.beta + rfm.t)).ln_1p()).exp();
                Ok((p * survive).clamp(0.0, 1.0))
            }
            PurchaseModel::MbgNbd(m) => {
                let p = m.p_alive(rfm);
                if t == 0.0 {
                    return Ok(p);
                }
                let MbgNbd { r, alpha, a, b } = m;
                let x = f64::from(rfm.frequency);
                let scale = alpha + rfm.t;
                let w = t / (scale + t);
                // Pfaff: ₂F₁(r+x, a; c; −t/scale) = (1 + t/scale)^−a ₂F₁(a, c−r−x; c; w).
                let survive = (-a * (t / scale).ln_1p()).exp()
                    * hyp2f1(a, a + b + 1.0 - r, a + b + x + 1.0, w)?;
                Ok((p * survive).clamp(0.0, 1.0))
            }
        }
    }

    /// E[X(T, T+t] | x, tₓ, T]: expected purchases in the next `t` weeks.
    ///
    /// # Errors
    ///
    /// As the model's own `expected_purchases`.
    pub fn expected_purchases(&self, rfm: &Rfm, t: f64) -> Result<f64> {
        match self {
            PurchaseModel::BgNbd(m) => m.expected_purchases(rfm, t),
            PurchaseModel::ParetoNbd(m) => m.expected_purchases(rfm, t),
            PurchaseModel::MbgNbd(m) => m.expected_purchases(rfm, t),
        }
    }

    /// Per-customer predictions with `gamma_gamma` as the spend model, in the summary's order,
    /// the same columns as [`ClvModel::predict_all`] (which this is, bit for bit, for BG/NBD):
    /// P(alive) now and at the horizon, expected purchases over `horizon_weeks`, expected
    /// spend per purchase and the CLV Σₖ spend · (E[X(kΔ)] − E[X((k−1)Δ)]) / (1+d)ᵏ over
    /// `options`' periods.
    ///
    /// # Errors
    ///
    /// [`Error::InfiniteMeanSpend`] when the Gamma-Gamma q ≤ 1; [`Error::Validation`] for bad
    /// options; as the model's predictions.
    pub fn predict_all(
        &self,
        gamma_gamma: GammaGamma,
        summary: &RfmSummary,
        horizon_weeks: f64,
        options: &ClvOptions,
    ) -> Result<Vec<CustomerPrediction>> {
        if let PurchaseModel::BgNbd(bgnbd) = *self {
            return ClvModel::new(bgnbd, gamma_gamma)?.predict_all(summary, horizon_weeks, options);
        }
        if !gamma_gamma.has_finite_mean() {
            return Err(Error::InfiniteMeanSpend { q: gamma_gamma.q });
        }
        options.validate()?;
        let divisors: Vec<f64> = (1..=options.periods)
            .map(|k| (1.0 + options.discount_rate).powi(k as i32))
            .collect();
        summary
            .customers
            .iter()
            .map(|c| {
                let rfm = &c.rfm;
                let spend = gamma_gamma
                    .expected_average_spend(rfm.frequency, rfm.monetary_value.max(0.0))?;
                let mut clv = 0.0;
                let mut previous = 0.0;
                for (k, divisor) in divisors.iter().enumerate() {
                    let cumulative =
                        self.expected_purchases(rfm, (k + 1) as f64 * options.period_weeks)?;
                    clv += spend * (cumulative - previous) / divisor;
                    previous = cumulative;
                }
                Ok(CustomerPrediction {
                    customer_id: c.customer_id.clone(),
                    frequency: rfm.frequency,
                    recency: rfm.recency,
                    t: rfm.t,
                    monetary_value: rfm.monetary_value,
                    p_alive: self.p_alive(rfm)?,
                    p_alive_at_horizon: self.p_alive_after(rfm, horizon_weeks)?,
                    expected_purchases: self.expected_purchases(rfm, horizon_weeks)?,
                    expected_average_spend: spend,
                    clv: clv.max(0.0),
                })
            })
            .collect()
    }

    /// How far the model's expected holdout purchases are from the actual ones, per
    /// calibrated customer (those of `summary`, summarised from `transactions` up to the
    /// period's calibration end): the same counting as [`crate::HoldoutEvaluation`], whose
    /// MAE and RMSE this equals for BG/NBD.
    ///
    /// # Errors
    ///
    /// As [`PurchaseModel::expected_purchases`].
    pub fn holdout_error(
        &self,
        summary: &RfmSummary,
        transactions: &[Transaction],
        period: HoldoutPeriod,
    ) -> Result<HoldoutError> {
        let actual =
            holdout_purchases(transactions, period.calibration_end(), period.holdout_end());
        let weeks = period.weeks();
        let (mut abs, mut sq, mut actual_total, mut predicted_total) = (0.0, 0.0, 0.0, 0.0);
        for c in &summary.customers {
            let predicted = self.expected_purchases(&c.rfm, weeks)?;
            let observed = f64::from(actual.get(&c.customer_id).copied().unwrap_or(0));
            abs += (observed - predicted).abs();
            sq += (observed - predicted).powi(2);
            actual_total += observed;
            predicted_total += predicted;
        }
        let n = summary.len().max(1) as f64;
        Ok(HoldoutError {
            customers: summary.len(),
            actual_total,
            predicted_total,
            mean_absolute_error: abs / n,
            root_mean_squared_error: (sq / n).sqrt(),
        })
    }
}

/// Predicted versus actual holdout purchases of one model, per calibrated customer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HoldoutError {
    /// Customers compared.
    pub customers: usize,
    /// Total actual holdout purchases.
    pub actual_total: f64,
    /// Total predicted holdout purchases.
    pub predicted_total: f64,
    /// Mean absolute error per customer.
    pub mean_absolute_error: f64,
    /// Root mean squared error per customer.
    pub root_mean_squared_error: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfm(frequency: u32, recency: f64, t: f64) -> Rfm {
        Rfm::new(frequency, recency, t, 10.0).unwrap()
    }

    #[test]
    fn kinds_parse_and_print() {
        for kind in PurchaseModelKind::ALL {
            assert_eq!(kind.as_str().parse::<PurchaseModelKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert!(matches!(
            "nbd".parse::<PurchaseModelKind>(),
            Err(Error::Validation { field, .. }) if field == "model"
        ));
        assert!(PurchaseModelKind::BgBb.is_discrete());
        assert_eq!(PurchaseModelKind::ParetoNbd.json_key(), "pareto_nbd");
    }

    #[test]
    fn information_criteria() {
        assert_eq!(aic(-100.0, 4), 208.0);
        assert!((bic(-100.0, 4, 100) - (4.0 * 100f64.ln() + 200.0)).abs() < 1e-12);
    }

    #[test]
    fn p_alive_after_zero_is_p_alive_and_decreases() {
        let models = [
            PurchaseModel::BgNbd(BgNbd::new(0.24, 4.4, 0.79, 2.4).unwrap()),
            PurchaseModel::ParetoNbd(ParetoNbd::new(0.55, 10.6, 0.61, 11.7).unwrap()),
            PurchaseModel::MbgNbd(MbgNbd::new(0.53, 6.2, 0.89, 1.6).unwrap()),
        ];
        for m in models {
            for h in [rfm(0, 0.0, 30.0), rfm(3, 20.0, 38.0), rfm(10, 5.0, 38.0)] {
                let p = m.p_alive(&h).unwrap();
                assert!((m.p_alive_after(&h, 0.0).unwrap() - p).abs() < 1e-12);
                let later = m.p_alive_after(&h, 52.0).unwrap();
                assert!(later < p && later > 0.0, "{m:?} {h:?}: {later} vs {p}");
            }
        }
    }

    /// MBG/NBD's survival factor against a direct quadrature of E[exp(−λpt)] over the
    /// posterior λ ~ Gamma(r+x, α+T), p ~ Beta(a, b+x+1).
    #[test]
    fn mbgnbd_survival_matches_quadrature() {
        use statrs::function::beta::ln_beta;
        let m = MbgNbd::new(0.53, 6.2, 0.89, 1.6).unwrap();
        let h = rfm(3, 20.0, 38.0);
        let t = 26.0;
        let (shape, rate) = (m.r + 3.0, m.alpha + 38.0);
        let (pa, pb) = (m.a, m.b + 4.0);
        // E over p of (rate/(rate + p t))^shape, midpoint rule on a substitution p = u².
        let n = 200_000;
        let mut sum = 0.0;
        for i in 0..n {
            let u = (i as f64 + 0.5) / n as f64;
            let p = u * u;
            let density = ((pa - 1.0) * p.ln() + (pb - 1.0) * (-p).ln_1p() - ln_beta(pa, pb)).exp();
            sum += (rate / (rate + p * t)).powf(shape) * density * 2.0 * u / n as f64;
        }
        let model = PurchaseModel::MbgNbd(m);
        let factor = model.p_alive_after(&h, t).unwrap() / model.p_alive(&h).unwrap();
        assert!((factor - sum).abs() < 1e-4, "{factor} vs {sum}");
    }

    #[test]
    fn bgbb_is_not_a_continuous_model() {
        assert!(matches!(
            PurchaseModel::fit(PurchaseModelKind::BgBb, &[rfm(1, 1.0, 2.0)]),
            Err(Error::Unsupported { .. })
        ));
    }
}
