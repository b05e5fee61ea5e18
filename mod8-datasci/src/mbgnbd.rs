//! The MBG/NBD model (Batislam, Denizel & Filiztekin 2007, "Empirical validation and
//! comparison of models for customer base analysis", with the corrections of Wagner & Hoppe
//! 2008, "Erratum on the MBG/NBD model"): BG/NBD with a dropout chance at time 0 as well as
//! after each purchase. Purchases while alive follow a Poisson process with rate
//! λ ~ Gamma(r, α); at the first purchase and after every repeat purchase the customer drops
//! out with probability p ~ Beta(a, b). Time is in weeks. The formulas are those of lifetimes'
//! `ModifiedBetaGeoFitter`, which implements these papers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use crate::error::{Error, Result};
use crate::optimize::{self, Options};
use crate::pareto_nbd::one_minus_exp_over;
use crate::rfm::Rfm;

/// MBG/NBD parameters: λ ~ Gamma(shape `r`, rate `alpha`), p ~ Beta(`a`, `b`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MbgNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (in weeks) of the purchase-rate distribution.
    pub alpha: f64,
    /// First shape of the dropout-probability distribution.
    pub a: f64,
    /// Second shape of the dropout-probability distribution.
    pub b: f64,
}

/// A fitted MBG/NBD model and how the fit went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MbgNbdFit {
    /// Maximum-likelihood parameters.
    pub params: MbgNbd,
    /// Total log-likelihood at the optimum (sum over customers, time in weeks).
    pub log_likelihood: f64,
    /// Customers the fit used.
    pub customers: usize,
    /// Distinct (frequency, recency, T) triples the likelihood was evaluated on.
    pub distinct_histories: usize,
    /// Optimiser iterations.
    pub iterations: usize,
}

const MODEL: &str = "MBG/NBD";

/// Most terms of the hypergeometric series in [`MbgNbd::expected_purchases`].
const MAX_TERMS: usize = 200_000;

impl MbgNbd {
    /// Parameters, checked: all four finite and > 0.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] otherwise.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Result<Self> {
        for (name, v) in [("r", r), ("alpha", alpha), ("a", a), ("b", b)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::validation(
                    name,
                    format!("MBG/NBD {name} must be finite and > 0, got {v}"),
                ));
            }
        }
        Ok(MbgNbd { r, alpha, a, b })
    }

    /// The two log-terms of the likelihood: alive at T, and dropped out after the last
    /// purchase (Batislam et al. 2007, appendix A, eq. (2)):
    /// ln[(α+T)^−(r+x)] and ln[a/(b+x) · (α+tₓ)^−(r+x)].
    fn branches(&self, rfm: &Rfm) -> (f64, f64) {
        let MbgNbd { r, alpha, a, b } = *self;
        let x = f64::from(rfm.frequency);
        let alive = -(r + x) * (alpha + rfm.t).ln();
        let dropped = a.ln() - (b + x).ln() - (r + x) * (alpha + rfm.recency).ln();
        (alive, dropped)
    }

    /// Log-likelihood of one customer's history (x, tₓ, T):
    ///
    /// ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x+1) − ln B(a, b)
    ///        + ln[ (α+T)^−(r+x) + a/(b+x) · (α+tₓ)^−(r+x) ]
    ///
    /// (lifetimes' `ModifiedBetaGeoFitter._negative_log_likelihood`; unlike BG/NBD the dropout
    /// term is there for x = 0 too).
    pub fn log_likelihood(&self, rfm: &Rfm) -> f64 {
        let MbgNbd { r, alpha, a, b } = *self;
        let x = f64::from(rfm.frequency);
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x + 1.0) - ln_gamma(b) - ln_gamma(a + b + x + 1.0);
        let (alive, dropped) = self.branches(rfm);
        a1 + a2 + log_add_exp(alive, dropped)
    }

    /// Total log-likelihood of many histories.
    pub fn total_log_likelihood(&self, data: &[Rfm]) -> f64 {
        data.iter().map(|d| self.log_likelihood(d)).sum()
    }

    /// P(alive at T | x, tₓ, T) = 1 / (1 + a/(b+x) · ((α+T)/(α+tₓ))^(r+x)) (Batislam et al.
    /// 2007, appendix A, eq. (5)). Below 1 even for x = 0: a customer may drop out at once.
    pub fn p_alive(&self, rfm: &Rfm) -> f64 {
        let (alive, dropped) = self.branches(rfm);
        1.0 / (1.0 + (dropped - alive).exp())
    }

    /// E[X(T, T+t] | x, tₓ, T]: expected purchases in the next `t` weeks (Wagner & Hoppe
    /// 2008; lifetimes' `conditional_expected_number_of_purchases_up_to_time`):
    ///
    /// P(alive) · (a+b+x)/(a−1) · [1 − ₂F₁(r+x, b+x+1; a+b+x; z) (1−z)^(r+x)],
    /// z = t/(α+T+t).
    ///
    /// Euler's transformation turns the bracket into 1 − (1−z)^(a−1) ₂F₁(a+b−r, a−1; a+b+x; z),
    /// whose series starts 1 + (a−1)·S, so the bracket over a−1 is
    /// −expm1((a−1) ln(1−z))/(a−1) − (1−z)^(a−1)·S: no cancellation and no singularity at a = 1.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a negative or non-finite `t`; [`Error::NotConverged`] if the
    /// series does not settle (only for t ≫ α + T).
    pub fn expected_purchases(&self, rfm: &Rfm, t: f64) -> Result<f64> {
        check_horizon(t)?;
        if t == 0.0 {
            return Ok(0.0);
        }
        let MbgNbd { r, alpha, a, b } = *self;
        let x = f64::from(rfm.frequency);
        let z = t / (alpha + rfm.t + t);
        let ln_1mz = -(t / (alpha + rfm.t)).ln_1p();
        let k = a - 1.0;
        let (upper, c) = (a + b - r, a + b + x);
        // S = Σₙ≥₁ (a+b−r)ₙ (a)ₙ₋₁ / ((a+b+x)ₙ n!) zⁿ.
        let mut term = upper / c * z;
        let mut sum = term;
        let mut small = 0;
        let mut settled = term == 0.0;
        for n in 1..MAX_TERMS {
            if settled {
                break;
            }
            let n = n as f64;
            term *= (upper + n) * (a + n - 1.0) / ((c + n) * (n + 1.0)) * z;
            sum += term;
            if term == 0.0 {
                settled = true;
            } else if term.abs() <= 1e-16 * sum.abs() {
                small += 1;
                settled = small >= 2;
            } else {
                small = 0;
            }
        }
        if !settled {
            return Err(Error::not_converged(
                MODEL,
                format!("expected-purchases series at z = {z} did not settle in {MAX_TERMS} terms"),
            ));
        }
        let bracket = one_minus_exp_over(k, -ln_1mz) - (k * ln_1mz).exp() * sum;
        Ok((self.p_alive(rfm) * c * bracket).max(0.0))
    }

    /// E[X(t)]: expected purchases in the first `t` weeks of a new customer (lifetimes'
    /// `expected_number_of_purchases_up_to_time`):
    /// b/(a−1) · [1 − ₂F₁(r, b+1; a+b; t/(α+t)) (α/(α+t))^r], the conditional expectation of
    /// a history (0, 0, 0).
    ///
    /// # Errors
    ///
    /// As [`MbgNbd::expected_purchases`].
    pub fn expected_purchases_new(&self, t: f64) -> Result<f64> {
        self.expected_purchases(
            &Rfm {
                frequency: 0,
                recency: 0.0,
                t: 0.0,
                monetary_value: 0.0,
            },
            t,
        )
    }

    /// Fits the model by maximum likelihood.
    ///
    /// Identical (x, tₓ, T) histories are grouped, so a fit costs O(distinct histories) per
    /// iteration. The optimiser is BFGS on the log-parameters with an analytic gradient,
    /// started at r = a = b = 1 with α matching the observed mean purchase rate.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] for no data, [`Error::Validation`] for an inconsistent history,
    /// [`Error::NotConverged`] when the optimiser stops without an optimum or a parameter runs
    /// off to 0 or ∞ (for instance when nobody ever repeats a purchase).
    pub fn fit(data: &[Rfm]) -> Result<MbgNbdFit> {
        if data.is_empty() {
            return Err(Error::empty_input(format!(
                "no customers to fit {MODEL} on"
            )));
        }
        for d in data {
            d.validate()?;
        }
        let total_x: f64 = data.iter().map(|d| f64::from(d.frequency)).sum();
        let total_t: f64 = data.iter().map(|d| d.t).sum();
        if total_x == 0.0 {
            return Err(Error::not_converged(
                MODEL,
                "no customer made a repeat purchase, so the purchase rate is not identified",
            ));
        }
        let prepared = Prepared::new(data);
        let n = data.len() as f64;
        let alpha0 = (total_t.max(1e-9) / total_x).clamp(1e-3, 1e6);
        let minimum = optimize::minimize(
            |theta, grad| {
                let p = [
                    theta[0].exp(),
                    theta[1].exp(),
                    theta[2].exp(),
                    theta[3].exp(),
                ];
                let mut g = [0.0; 4];
                let ll = prepared.log_likelihood_and_gradient(p, &mut g);
                for i in 0..4 {
                    grad[i] = -g[i] * p[i] / n;
                }
                -ll / n
            },
            &[0.0, alpha0.ln(), 0.0, 0.0],
            Options {
                // As for BG/NBD: a factor of 20 in a parameter that changes the total
                // log-likelihood by less than 0.001 means the data do not determine it.
                flat_tolerance: 1e-3 / n,
                ..Options::default()
            },
        )
        .map_err(|f| Error::not_converged(MODEL, f.describe(&["r", "alpha", "a", "b"])))?;
        let params = MbgNbd {
            r: minimum.x[0].exp(),
            alpha: minimum.x[1].exp(),
            a: minimum.x[2].exp(),
            b: minimum.x[3].exp(),
        };
        Ok(MbgNbdFit {
            params,
            log_likelihood: -minimum.value * n,
            customers: data.len(),
            distinct_histories: prepared.groups.len(),
            iterations: minimum.iterations,
        })
    }
}

fn log_add_exp(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    m + ((x - m).exp() + (y - m).exp()).ln()
}

fn check_horizon(t: f64) -> Result<()> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(Error::validation(
            "horizon",
            format!("horizon must be finite and ≥ 0 weeks, got {t}"),
        ))
    }
}

/// One distinct history with its multiplicity and indices into the shared tables.
struct Group {
    count: f64,
    x_index: usize,
    t_index: usize,
    recency_index: usize,
}

/// Histories grouped for fast likelihood evaluation.
struct Prepared {
    xs: Vec<(f64, f64)>, // (x, customers with this x)
    /// Distinct T and tₓ values.
    us: Vec<f64>,
    groups: Vec<Group>,
}

impl Prepared {
    fn new(data: &[Rfm]) -> Self {
        let mut xs_index: HashMap<u32, usize> = HashMap::new();
        let mut us_index: HashMap<u64, usize> = HashMap::new();
        let mut group_index: HashMap<(u32, u64, u64), usize> = HashMap::new();
        let mut p = Prepared {
            xs: Vec::new(),
            us: Vec::new(),
            groups: Vec::new(),
        };
        for d in data {
            let key = (d.frequency, d.recency.to_bits(), d.t.to_bits());
            if let Some(&g) = group_index.get(&key) {
                p.groups[g].count += 1.0;
                p.xs[p.groups[g].x_index].1 += 1.0;
                continue;
            }
            let x_index = *xs_index.entry(d.frequency).or_insert_with(|| {
                p.xs.push((f64::from(d.frequency), 0.0));
                p.xs.len() - 1
            });
            p.xs[x_index].1 += 1.0;
            let mut u = |value: f64| {
                *us_index.entry(value.to_bits()).or_insert_with(|| {
                    p.us.push(value);
                    p.us.len() - 1
                })
            };
            let (t_index, recency_index) = (u(d.t), u(d.recency));
            group_index.insert(key, p.groups.len());
            p.groups.push(Group {
                count: 1.0,
                x_index,
                t_index,
                recency_index,
            });
        }
        p
    }

    /// Total log-likelihood at `[r, alpha, a, b]`; `grad` receives ∂LL/∂(r, α, a, b).
    fn log_likelihood_and_gradient(&self, params: [f64; 4], grad: &mut [f64; 4]) -> f64 {
        let [r, alpha, a, b] = params;
        let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
        let (lg_r, lg_ab, lg_b) = (ln_gamma(r), ln_gamma(a + b), ln_gamma(b));
        let (dg_r, dg_ab, dg_b) = (digamma(r), digamma(a + b), digamma(b));
        let mut ll = 0.0;
        // Per distinct x: the Gamma and Beta terms, and ln(b+x) for the dropout branch.
        let mut ln_bx = Vec::with_capacity(self.xs.len());
        for &(x, n) in &self.xs {
            let a1 = ln_gamma(r + x) - lg_r + r * ln_alpha;
            let a2 = lg_ab + ln_gamma(b + x + 1.0) - lg_b - ln_gamma(a + b + x + 1.0);
            ll += n * (a1 + a2);
            let dg_abx = digamma(a + b + x + 1.0);
            grad[0] += n * (digamma(r + x) - dg_r + ln_alpha);
            grad[1] += n * r / alpha;
            grad[2] += n * (dg_ab - dg_abx);
            grad[3] += n * (dg_ab + digamma(b + x + 1.0) - dg_b - dg_abx);
            ln_bx.push((b + x).ln());
        }
        let ln_u: Vec<f64> = self.us.iter().map(|u| (alpha + u).ln()).collect();
        for g in &self.groups {
            let x = self.xs[g.x_index].0;
            let rx = r + x;
            let (lt, lrec) = (ln_u[g.t_index], ln_u[g.recency_index]);
            let alive = -rx * lt;
            let dropped = ln_a - ln_bx[g.x_index] - rx * lrec;
            let m = alive.max(dropped);
            let (e3, e4) = ((alive - m).exp(), (dropped - m).exp());
            let s = e3 + e4;
            ll += g.count * (m + s.ln());
            let (w3, w4) = (e3 / s, e4 / s);
            let inv_t = 1.0 / (alpha + self.us[g.t_index]);
            let inv_rec = 1.0 / (alpha + self.us[g.recency_index]);
            grad[0] -= g.count * (w3 * lt + w4 * lrec);
            grad[1] -= g.count * rx * (w3 * inv_t + w4 * inv_rec);
            grad[2] += g.count * w4 / a;
            grad[3] -= g.count * w4 / (b + x);
        }
        ll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfm(x: u32, tx: f64, t: f64) -> Rfm {
        Rfm {
            frequency: x,
            recency: tx,
            t,
            monetary_value: 0.0,
        }
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data = vec![
            rfm(0, 0.0, 30.0),
            rfm(2, 10.0, 30.0),
            rfm(5, 25.5, 38.0),
            rfm(1, 3.0, 20.0),
            rfm(1, 3.0, 20.0),
        ];
        let prepared = Prepared::new(&data);
        let p = [0.7, 3.0, 0.9, 2.2];
        let mut g = [0.0; 4];
        let ll = prepared.log_likelihood_and_gradient(p, &mut g);
        let params = MbgNbd::new(p[0], p[1], p[2], p[3]).unwrap();
        assert!(close(ll, params.total_log_likelihood(&data), 1e-12));
        for i in 0..4 {
            let mut hi = p;
            let mut lo = p;
            hi[i] += 1e-6;
            lo[i] -= 1e-6;
            let mut scratch = [0.0; 4];
            let numeric = (prepared.log_likelihood_and_gradient(hi, &mut scratch)
                - prepared.log_likelihood_and_gradient(lo, &mut scratch))
                / 2e-6;
            assert!(
                close(g[i], numeric, 1e-6),
                "param {i}: {} vs {numeric}",
                g[i]
            );
        }
    }

    #[test]
    fn log_likelihood_and_p_alive_by_hand() {
        // x = 0: L = (α/(α+T))^r · b/(a+b) · [1 + a/b · ((α+T)/α)^r] = (α/(α+T))^r b/(a+b) + a/(a+b).
        let m = MbgNbd::new(0.5, 6.0, 0.9, 1.6).unwrap();
        let h = rfm(0, 0.0, 30.0);
        let alive = (6.0f64 / 36.0).powf(0.5) * 1.6 / 2.5;
        let expected = (alive + 0.9 / 2.5).ln();
        assert!(close(m.log_likelihood(&h), expected, 1e-14));
        assert!(close(m.p_alive(&h), alive / (alive + 0.9 / 2.5), 1e-14));
    }
}
