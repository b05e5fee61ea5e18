//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005): each transaction value is
//! Gamma(p, ν) with ν ~ Gamma(q, γ) across customers, independent of purchase frequency.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use crate::error::{Error, Result};
use crate::grouping::NumberMap;
use crate::optimize::{self, Options};
use crate::parallel;
use crate::rfm::Rfm;

/// Gamma-Gamma parameters `p`, `q` and `gamma` (γ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGamma {
    /// Shape of the per-transaction spend distribution.
    pub p: f64,
    /// Shape of the customers' scale distribution; the mean spend is finite only when q > 1.
    pub q: f64,
    /// Rate of the customers' scale distribution.
    pub gamma: f64,
}

/// A fitted Gamma-Gamma model and which customers it used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaFit {
    /// Maximum-likelihood parameters. Check [`GammaGamma::has_finite_mean`] before using them
    /// to value customers ([`crate::ClvModel::new`] does).
    pub params: GammaGamma,
    /// Total log-likelihood at the optimum.
    pub log_likelihood: f64,
    /// Customers used: at least one repeat purchase and a positive average spend.
    pub customers: usize,
    /// Customers left out because they have no repeat purchase (x = 0).
    pub excluded_no_repeat: usize,
    /// Customers left out because their average repeat spend is ≤ 0.
    pub excluded_non_positive_spend: usize,
    /// Optimiser iterations.
    pub iterations: usize,
}

impl GammaGamma {
    /// Parameters, checked: all finite and > 0 (q ≤ 1 is allowed here; see
    /// [`GammaGamma::has_finite_mean`]).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] otherwise.
    pub fn new(p: f64, q: f64, gamma: f64) -> Result<Self> {
        for (name, v) in [("p", p), ("q", q), ("gamma", gamma)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::validation(
                    name,
                    format!("Gamma-Gamma {name} must be finite and > 0, got {v}"),
                ));
            }
        }
        Ok(GammaGamma { p, q, gamma })
    }

    /// Whether the population mean spend p·γ/(q−1) exists (q > 1).
    pub fn has_finite_mean(&self) -> bool {
        self.q > 1.0
    }

    /// Log-likelihood of one customer with `x ≥ 1` repeat purchases averaging `m > 0`:
    /// ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(xm+γ).
    /// Returns −∞ outside that domain.
    pub fn log_likelihood(&self, x: u32, m: f64) -> f64 {
        if x == 0 || m.is_nan() || m <= 0.0 {
            return f64::NEG_INFINITY;
        }
        let GammaGamma { p, q, gamma } = *self;
        let x = x as f64;
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * gamma.ln()
            + (p * x - 1.0) * m.ln()
            + p * x * x.ln()
            - (p * x + q) * (x * m + gamma).ln()
    }

    /// E[spend per transaction | x, m] = (1−w)·pγ/(q−1) + w·m with w = px/(px+q−1); for x = 0
    /// this is the population mean.
    ///
    /// # Errors
    ///
    /// [`Error::InfiniteMeanSpend`] when q ≤ 1; [`Error::Validation`] for a negative or
    /// non-finite `m`.
    pub fn expected_average_spend(&self, x: u32, m: f64) -> Result<f64> {
        if !self.has_finite_mean() {
            return Err(Error::InfiniteMeanSpend { q: self.q });
        }
        if !(m.is_finite() && m >= 0.0) {
            return Err(Error::validation(
                "m",
                format!("average spend must be finite and ≥ 0, got {m}"),
            ));
        }
        let GammaGamma { p, q, gamma } = *self;
        let px = p * x as f64;
        let population = p * gamma / (q - 1.0);
        let w = px / (px + q - 1.0);
        Ok((1.0 - w) * population + w * m)
    }

    /// Population mean spend per transaction p·γ/(q−1).
    ///
    /// # Errors
    ///
    /// [`Error::InfiniteMeanSpend`] when q ≤ 1.
    pub fn mean_spend(&self) -> Result<f64> {
        self.expected_average_spend(0, 0.0)
    }

    /// Fits the model on the customers with at least one repeat purchase and a positive average
    /// repeat spend (the others are counted in the result, not used).
    ///
    /// The fit itself succeeds with q ≤ 1; such a model is reported by
    /// [`GammaGamma::has_finite_mean`] and refused by [`crate::ClvModel::new`].
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] when no customer qualifies; [`Error::NotConverged`] when the
    /// optimiser fails or a parameter runs off to 0 or ∞ (for example when every customer has
    /// the same spend).
    pub fn fit(data: &[Rfm]) -> Result<GammaGammaFit> {
        let mut excluded_no_repeat = 0;
        let mut excluded_non_positive_spend = 0;
        // Group identical (x, m) pairs.
        let mut groups: NumberMap<(u32, u64), f64> = NumberMap::default();
        let mut used = 0usize;
        let mut sum_m = 0.0;
        for d in data {
            if d.frequency == 0 {
                excluded_no_repeat += 1;
                continue;
            }
            if !(d.monetary_value.is_finite() && d.monetary_value > 0.0) {
                excluded_non_positive_spend += 1;
                continue;
            }
            used += 1;
            sum_m += d.monetary_value;
            *groups
                .entry((d.frequency, d.monetary_value.to_bits()))
                .or_default() += 1.0;
        }
        if used == 0 {
            return Err(Error::EmptyInput {
                what: "no customer with a repeat purchase and positive spend to fit Gamma-Gamma on"
                    .into(),
            });
        }
        let mut groups: Vec<SpendGroup> = groups
            .into_iter()
            .map(|((x, m), n)| SpendGroup::new(x as f64, f64::from_bits(m), n))
            .collect();
        groups.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.m.total_cmp(&b.m)));
        let n = used as f64;
        // Start near the method of moments: mean spend ≈ pγ/(q−1) with p = 1, q = 2.
        let mean = sum_m / n;
        let x0 = [0.0, 2f64.ln(), mean.max(1e-6).ln()];
        let minimum = optimize::minimize(
            |theta, grad| {
                let (p, q, gamma) = (theta[0].exp(), theta[1].exp(), theta[2].exp());
                let mut g = [0.0; 3];
                let ll = log_likelihood_and_gradient(&groups, p, q, gamma, &mut g);
                grad[0] = -g[0] * p / n;
                grad[1] = -g[1] * q / n;
                grad[2] = -g[2] * gamma / n;
                -ll / n
            },
            &x0,
            Options {
                // Flat means: a factor of 20 in a parameter (or two together) changes the total
                // log-likelihood by less than 0.001 — the data do not determine it, and at such
                // points (b ~ 1e7) rounding in ln Γ alone moves the likelihood by more than
                // 1e-10 relative, which hid the degenerate BG/NBD fits of customers who never
                // drop out.
                flat_tolerance: 1e-3 / n,
                ..Options::default()
            },
        )
        .map_err(|f| Error::NotConverged {
            model: "Gamma-Gamma",
            reason: f.describe(&["p", "q", "gamma"]),
        })?;
        Ok(GammaGammaFit {
            params: GammaGamma {
                p: minimum.x[0].exp(),
                q: minimum.x[1].exp(),
                gamma: minimum.x[2].exp(),
            },
            log_likelihood: -minimum.value * n,
            customers: used,
            excluded_no_repeat,
            excluded_non_positive_spend,
            iterations: minimum.iterations,
        })
    }
}

/// Customers sharing (x, m), with the logarithms the likelihood needs precomputed.
struct SpendGroup {
    x: f64,
    m: f64,
    n: f64,
    ln_m: f64,
    ln_x: f64,
}

impl SpendGroup {
    fn new(x: f64, m: f64, n: f64) -> Self {
        SpendGroup {
            x,
            m,
            n,
            ln_m: m.ln(),
            ln_x: x.ln(),
        }
    }
}

/// Log-likelihood over grouped customers and its gradient in (p, q, γ).
///
/// The Gamma-function terms depend on x only, so they are computed once per distinct x (a few
/// dozen) rather than once per customer; per group only ln(xm + γ) is left. The groups are
/// summed in fixed chunks (see `crate::parallel`): the first goes on from `grad`, the others
/// start at zero, and the chunk sums are added in order, so the result does not depend on how
/// many threads computed them.
fn log_likelihood_and_gradient(
    groups: &[SpendGroup],
    p: f64,
    q: f64,
    gamma: f64,
    grad: &mut [f64; 3],
) -> f64 {
    let start = (0.0, *grad);
    let chunks = parallel::map_chunks(groups, |index, chunk| {
        let start = if index == 0 { start } else { (0.0, [0.0; 3]) };
        add_spend_groups(chunk, p, q, gamma, start)
    });
    let mut chunks = chunks.into_iter();
    let (mut ll, mut total) = chunks.next().unwrap_or(start);
    for (chunk_ll, chunk_grad) in chunks {
        ll += chunk_ll;
        for (t, g) in total.iter_mut().zip(chunk_grad) {
            *t += g;
        }
    }
    *grad = total;
    ll
}

/// `start` (log-likelihood, gradient) plus the terms of `groups`, one group after the other.
fn add_spend_groups(
    groups: &[SpendGroup],
    p: f64,
    q: f64,
    gamma: f64,
    start: (f64, [f64; 3]),
) -> (f64, [f64; 3]) {
    let (lg_q, dg_q, ln_gamma_v) = (ln_gamma(q), digamma(q), gamma.ln());
    let (mut ll, mut grad) = start;
    // Cache of the per-x terms; groups are sorted by x (see `GammaGamma::fit`), so one slot
    // suffices, and unsorted input stays correct, only slower.
    let mut cached_x = f64::NAN;
    let (mut lg_terms, mut dg_pxq, mut dg_px) = (0.0, 0.0, 0.0);
    for &SpendGroup {
        x,
        m,
        n,
        ln_m,
        ln_x,
    } in groups
    {
        if x != cached_x {
            let px = p * x;
            lg_terms = ln_gamma(px + q) - ln_gamma(px);
            dg_pxq = digamma(px + q);
            dg_px = digamma(px);
            cached_x = x;
        }
        let px = p * x;
        let xm_g = x * m + gamma;
        let ln_xm = xm_g.ln();
        ll += n
            * (lg_terms - lg_q + q * ln_gamma_v + (px - 1.0) * ln_m + px * ln_x - (px + q) * ln_xm);
        grad[0] += n * x * (dg_pxq - dg_px + ln_m + ln_x - ln_xm);
        grad[1] += n * (dg_pxq - dg_q + ln_gamma_v - ln_xm);
        grad[2] += n * (q / gamma - (px + q) / xm_g);
    }
    (ll, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    // lifetimes 0.11.3 GammaGammaFitter on the CDNOW summary (946 repeat customers).
    const CDNOW: GammaGamma = GammaGamma {
        p: 6.248802496079201,
        q: 3.74458846092242,
        gamma: 15.447748064915702,
    };

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    #[test]
    fn expected_spend_matches_lifetimes() {
        assert!(close(
            CDNOW.expected_average_spend(2, 46.5).unwrap(),
            44.460041849504286,
            1e-12
        ));
        assert!(close(
            CDNOW.mean_spend().unwrap(),
            35.171002152506844,
            1e-12
        ));
    }

    #[test]
    fn log_likelihood_by_hand() {
        // x = 1, p = q = γ = 1: ln Γ(2) − ln Γ(1) − ln Γ(1) + 0 + 0 + 0 − 2 ln(m+1).
        let g = GammaGamma::new(1.0, 1.0, 1.0).unwrap();
        assert!(close(g.log_likelihood(1, 3.0), -2.0 * 4f64.ln(), 1e-12));
        assert_eq!(g.log_likelihood(0, 3.0), f64::NEG_INFINITY);
        assert_eq!(g.log_likelihood(2, 0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let groups = vec![
            SpendGroup::new(1.0, 10.0, 2.0),
            SpendGroup::new(3.0, 25.0, 1.0),
            SpendGroup::new(7.0, 4.5, 3.0),
        ];
        let p = [2.0, 3.0, 12.0];
        let mut g = [0.0; 3];
        log_likelihood_and_gradient(&groups, p[0], p[1], p[2], &mut g);
        for i in 0..3 {
            let (mut hi, mut lo) = (p, p);
            hi[i] += 1e-6;
            lo[i] -= 1e-6;
            let mut s = [0.0; 3];
            let numeric = (log_likelihood_and_gradient(&groups, hi[0], hi[1], hi[2], &mut s)
                - log_likelihood_and_gradient(&groups, lo[0], lo[1], lo[2], &mut s))
                / 2e-6;
            assert!(close(g[i], numeric, 1e-5), "{i}: {} vs {numeric}", g[i]);
        }
    }

    #[test]
    fn infinite_mean_is_an_error_not_a_number() {
        let g = GammaGamma::new(2.0, 0.8, 10.0).unwrap();
        assert!(!g.has_finite_mean());
        assert!(matches!(
            g.expected_average_spend(3, 20.0),
            Err(Error::InfiniteMeanSpend { .. })
        ));
    }

    #[test]
    fn identical_spend_does_not_converge() {
        // Every repeat customer averages exactly 25: no spread between customers, so the
        // likelihood improves without end as q and γ grow (ν concentrating on one value).
        let data: Vec<Rfm> = (0..300u32)
            .map(|i| Rfm {
                frequency: 1 + i % 6,
                recency: 10.0 + (i % 20) as f64,
                t: 40.0,
                monetary_value: 25.0,
            })
            .collect();
        match GammaGamma::fit(&data) {
            Err(Error::NotConverged { model, reason }) => {
                assert_eq!(model, "Gamma-Gamma");
                assert!(reason.contains("parameter"), "{reason}");
            }
            other => panic!("expected NotConverged, got {other:?}"),
        }
    }

    #[test]
    fn exclusions_are_counted() {
        let data = [
            Rfm {
                frequency: 0,
                recency: 0.0,
                t: 5.0,
                monetary_value: 0.0,
            },
            Rfm {
                frequency: 2,
                recency: 3.0,
                t: 5.0,
                monetary_value: 0.0,
            },
        ];
        assert!(matches!(
            GammaGamma::fit(&data),
            Err(Error::EmptyInput { .. })
        ));
    }
}
