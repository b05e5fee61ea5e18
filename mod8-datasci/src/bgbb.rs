//! The BG/BB model (Fader, Hardie & Shang 2010, "Customer-Base Analysis in a Discrete-Time
//! Noncontractual Setting", Marketing Science 29(6)) for discrete transaction opportunities
//! (a yearly donation drive, a weekly class): while alive, a customer transacts at each
//! opportunity with probability p ~ Beta(α, β); before each opportunity an alive customer
//! drops out for good with probability θ ~ Beta(γ, δ). The formulas below are the paper's
//! (cited as "FHS (n)"), which lifetimes' `BetaGeoBetaBinomFitter` implements.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use crate::error::{Error, Result};
use crate::optimize::{self, Options};

/// One customer's history over `n_periods` transaction opportunities.
///
/// `frequency` (x) is the number of opportunities with a transaction, `recency` (tₓ) the
/// opportunity of the last one (0 when x = 0), `n_periods` (n) the opportunities observed. The
/// first transaction (the one that made them a customer) is not counted, as in lifetimes'
/// donations data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BgBbObservation {
    /// Opportunities with a transaction, x.
    pub frequency: u32,
    /// The opportunity of the last transaction, tₓ (0 when x = 0).
    pub recency: u32,
    /// Opportunities observed, n.
    pub n_periods: u32,
}

impl BgBbObservation {
    /// A checked history: x ≤ tₓ ≤ n, and tₓ = 0 exactly when x = 0.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] otherwise.
    pub fn new(frequency: u32, recency: u32, n_periods: u32) -> Result<Self> {
        let obs = BgBbObservation {
            frequency,
            recency,
            n_periods,
        };
        obs.validate()?;
        Ok(obs)
    }

    fn validate(&self) -> Result<()> {
        let BgBbObservation {
            frequency,
            recency,
            n_periods,
        } = *self;
        if recency > n_periods {
            return Err(Error::validation(
                "recency",
                format!("need recency ≤ n_periods, got recency {recency}, n_periods {n_periods}"),
            ));
        }
        if frequency > recency {
            return Err(Error::validation(
                "frequency",
                format!("need frequency ≤ recency, got frequency {frequency}, recency {recency}"),
            ));
        }
        if frequency == 0 && recency != 0 {
            return Err(Error::validation(
                "recency",
                format!("recency must be 0 when frequency is 0, got {recency}"),
            ));
        }
        Ok(())
    }
}

/// BG/BB parameters: transaction probability p ~ Beta(`alpha`, `beta`), dropout probability
/// θ ~ Beta(`gamma`, `delta`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgBb {
    /// First shape of the transaction-probability distribution.
    pub alpha: f64,
    /// Second shape of the transaction-probability distribution.
    pub beta: f64,
    /// First shape of the dropout-probability distribution.
    pub gamma: f64,
    /// Second shape of the dropout-probability distribution.
    pub delta: f64,
}

/// A fitted BG/BB model and how the fit went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgBbFit {
    /// Maximum-likelihood parameters.
    pub params: BgBb,
    /// Total log-likelihood at the optimum (sum over customers).
    pub log_likelihood: f64,
    /// Customers the fit used (the sum of the weights).
    pub customers: u64,
    /// Distinct (frequency, recency, n_periods) triples the likelihood was evaluated on.
    pub distinct_histories: usize,
    /// Optimiser iterations.
    pub iterations: usize,
}

const MODEL: &str = "BG/BB";

/// ln Γ and ψ of `base + k` for k = 0..len.
struct Table {
    ln_gamma: Vec<f64>,
    digamma: Vec<f64>,
}

impl Table {
    fn new(base: f64, len: usize) -> Self {
        let (ln_gamma, digamma) = (0..len)
            .map(|k| {
                let y = base + k as f64;
                (ln_gamma(y), digamma(y))
            })
            .unzip();
        Table { ln_gamma, digamma }
    }
}

/// Everything one likelihood evaluation needs, for histories with n ≤ `len` − 2.
struct Tables {
    a: Table,     // α + k
    b: Table,     // β + k
    ab: Table,    // α + β + k
    d: Table,     // δ + k
    gd: Table,    // γ + δ + k
    g: [f64; 4],  // lnΓ(γ), lnΓ(γ+1), ψ(γ), ψ(γ+1)
    ln_b_ab: f64, // ln B(α, β)
    ln_b_gd: f64, // ln B(γ, δ)
}

impl Tables {
    fn new(p: &BgBb, max_n: u32) -> Self {
        let len = max_n as usize + 2;
        let BgBb {
            alpha,
            beta,
            gamma,
            delta,
        } = *p;
        let t = Tables {
            a: Table::new(alpha, len),
            b: Table::new(beta, len),
            ab: Table::new(alpha + beta, len),
            d: Table::new(delta, len),
            gd: Table::new(gamma + delta, len),
            g: [
                ln_gamma(gamma),
                ln_gamma(gamma + 1.0),
                digamma(gamma),
                digamma(gamma + 1.0),
            ],
            ln_b_ab: 0.0,
            ln_b_gd: 0.0,
        };
        Tables {
            ln_b_ab: t.a.ln_gamma[0] + t.b.ln_gamma[0] - t.ab.ln_gamma[0],
            ln_b_gd: t.g[0] + t.d.ln_gamma[0] - t.gd.ln_gamma[0],
            ..t
        }
    }

    /// The log-terms of FHS (5) for one history with their gradients in (α, β, γ, δ): first
    /// "alive after n", B(α+x, β+n−x)/B(α, β) · B(γ, δ+n)/B(γ, δ), then "dropped out before
    /// opportunity tₓ+i+1", B(α+x, β+tₓ−x+i)/B(α, β) · B(γ+1, δ+tₓ+i)/B(γ, δ) for
    /// i = 0..n−tₓ−1. Calls `each(ln term, gradient)`.
    fn terms(&self, obs: &BgBbObservation, mut each: impl FnMut(f64, [f64; 4])) {
        let (x, tx, n) = (
            obs.frequency as usize,
            obs.recency as usize,
            obs.n_periods as usize,
        );
        let (a, b, ab, d, gd) = (&self.a, &self.b, &self.ab, &self.d, &self.gd);
        let [lg_g, lg_g1, dg_g, dg_g1] = self.g;
        // ψ(α) − ψ(α+β), ψ(β) − ψ(α+β), ψ(γ) − ψ(γ+δ), ψ(δ) − ψ(γ+δ): from −ln B(α, β) etc.
        let base = [
            a.digamma[0] - ab.digamma[0],
            b.digamma[0] - ab.digamma[0],
            dg_g - gd.digamma[0],
            d.digamma[0] - gd.digamma[0],
        ];
        let alive = a.ln_gamma[x] + b.ln_gamma[n - x] - ab.ln_gamma[n] + lg_g + d.ln_gamma[n]
            - gd.ln_gamma[n]
            - self.ln_b_ab
            - self.ln_b_gd;
        each(
            alive,
            [
                a.digamma[x] - ab.digamma[n] - base[0],
                b.digamma[n - x] - ab.digamma[n] - base[1],
                dg_g - gd.digamma[n] - base[2],
                d.digamma[n] - gd.digamma[n] - base[3],
            ],
        );
        for k in tx..n {
            // k = tₓ + i: last alive at opportunity k, gone before k+1.
            let term = a.ln_gamma[x] + b.ln_gamma[k - x] - ab.ln_gamma[k] + lg_g1 + d.ln_gamma[k]
                - gd.ln_gamma[k + 1]
                - self.ln_b_ab
                - self.ln_b_gd;
            each(
                term,
                [
                    a.digamma[x] - ab.digamma[k] - base[0],
                    b.digamma[k - x] - ab.digamma[k] - base[1],
                    dg_g1 - gd.digamma[k + 1] - base[2],
                    d.digamma[k] - gd.digamma[k + 1] - base[3],
                ],
            );
        }
    }

    /// ln L, the "alive after n" term's share of it (P(alive at n)), and ∂ln L.
    fn history(&self, obs: &BgBbObservation) -> (f64, f64, [f64; 4]) {
        let mut terms = Vec::with_capacity((obs.n_periods - obs.recency) as usize + 1);
        self.terms(obs, |v, g| terms.push((v, g)));
        let m = terms.iter().fold(f64::NEG_INFINITY, |m, t| m.max(t.0));
        let mut sum = 0.0;
        let mut grad = [0.0; 4];
        for (v, g) in &terms {
            let w = (v - m).exp();
            sum += w;
            for i in 0..4 {
                grad[i] += w * g[i];
            }
        }
        let alive_share = (terms[0].0 - m).exp() / sum;
        (m + sum.ln(), alive_share, grad.map(|g| g / sum))
    }
}

impl BgBb {
    /// Parameters, checked: all four finite and > 0.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] otherwise.
    pub fn new(alpha: f64, beta: f64, gamma: f64, delta: f64) -> Result<Self> {
        for (name, v) in [
            ("alpha", alpha),
            ("beta", beta),
            ("gamma", gamma),
            ("delta", delta),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::validation(
                    name,
                    format!("BG/BB {name} must be finite and > 0, got {v}"),
                ));
            }
        }
        Ok(BgBb {
            alpha,
            beta,
            gamma,
            delta,
        })
    }

    fn evaluate(&self, obs: &BgBbObservation) -> Result<(f64, f64)> {
        obs.validate()?;
        let (ll, p_alive, _) = Tables::new(self, obs.n_periods).history(obs);
        Ok((ll, p_alive))
    }

    /// Log-likelihood of one history (x, tₓ, n), FHS (5):
    ///
    /// L = B(α+x, β+n−x)/B(α, β) · B(γ, δ+n)/B(γ, δ)
    ///   + Σᵢ₌₀ⁿ⁻ᵗˣ⁻¹ B(α+x, β+tₓ−x+i)/B(α, β) · B(γ+1, δ+tₓ+i)/B(γ, δ),
    ///
    /// summed in log space. (lifetimes adds 1e-15 to the sum; the difference in the CDNOW and
    /// donations fits is below 1e-12 relative.)
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an inconsistent history.
    pub fn log_likelihood(&self, obs: &BgBbObservation) -> Result<f64> {
        Ok(self.evaluate(obs)?.0)
    }

    /// Total log-likelihood of many histories.
    ///
    /// # Errors
    ///
    /// As [`BgBb::log_likelihood`].
    pub fn total_log_likelihood(&self, data: &[BgBbObservation]) -> Result<f64> {
        data.iter().map(|d| self.log_likelihood(d)).sum()
    }

    /// P(alive at n | x, tₓ, n): the probability the customer is still alive after the last
    /// observed opportunity, B(α+x, β+n−x)/B(α, β) · B(γ, δ+n)/B(γ, δ) / L (FHS (A10) with
    /// m = 0; lifetimes' `conditional_probability_alive(0, ...)`).
    ///
    /// # Errors
    ///
    /// As [`BgBb::log_likelihood`].
    pub fn p_alive(&self, obs: &BgBbObservation) -> Result<f64> {
        Ok(self.evaluate(obs)?.1)
    }

    /// P(alive at n+m | x, tₓ, n): the probability the customer is still alive after `m`
    /// further opportunities, P(alive at n) · B(γ, δ+n+m)/B(γ, δ+n) (lifetimes'
    /// `conditional_probability_alive(m, ...)`; FHS (A10) with m = 1 is alive at the next one).
    ///
    /// # Errors
    ///
    /// As [`BgBb::log_likelihood`].
    pub fn p_alive_after(&self, obs: &BgBbObservation, m: u32) -> Result<f64> {
        let p = self.p_alive(obs)?;
        let n = f64::from(obs.n_periods);
        let m = f64::from(m);
        let BgBb { gamma, delta, .. } = *self;
        let ln_ratio =
            ln_gamma(delta + n + m) - ln_gamma(gamma + delta + n + m) - ln_gamma(delta + n)
                + ln_gamma(gamma + delta + n);
        Ok(p * ln_ratio.exp())
    }

    /// E[X(n, n+n*) | x, tₓ, n]: expected transactions in the next `n_star` opportunities,
    /// FHS (13). Written as Σⱼ₌₁ⁿ* P(alive at n+j) · (α+x)/(α+β+n) — given alive, the
    /// transaction probability's posterior mean times the chance to be alive at opportunity
    /// n+j — which is FHS (13) without its removable singularity at γ = 1. O(n*).
    ///
    /// # Errors
    ///
    /// As [`BgBb::log_likelihood`].
    pub fn expected_purchases(&self, obs: &BgBbObservation, n_star: u32) -> Result<f64> {
        let p = self.p_alive(obs)?;
        Ok(self.expected_if_alive(obs.frequency, obs.n_periods, n_star) * p)
    }

    /// Σⱼ₌₁ⁿ* P(alive at n+j | alive at n) · (α+x)/(α+β+n).
    fn expected_if_alive(&self, x: u32, n: u32, n_star: u32) -> f64 {
        let BgBb {
            alpha,
            beta,
            gamma,
            delta,
        } = *self;
        let (x, n) = (f64::from(x), f64::from(n));
        // Σⱼ Πₖ₍ⱼ (δ+n+k)/(γ+δ+n+k): survival through each further opportunity.
        let (mut survive, mut sum) = (1.0, 0.0);
        for k in 0..n_star {
            let k = f64::from(k);
            survive *= (delta + n + k) / (gamma + delta + n + k);
            sum += survive;
        }
        (alpha + x) / (alpha + beta + n) * sum
    }

    /// E[X(n*)]: expected transactions in the first `n_star` opportunities of a new customer,
    /// FHS (8): α/(α+β) · δ/(γ−1) · [1 − Γ(γ+δ)Γ(1+δ+n*)/(Γ(γ+δ+n*)Γ(1+δ))] — the
    /// conditional expectation of the empty history (0, 0, 0), which is alive for sure.
    pub fn expected_purchases_new(&self, n_star: u32) -> f64 {
        self.expected_if_alive(0, 0, n_star)
    }

    /// Fits the model by maximum likelihood to one history per customer.
    ///
    /// # Errors
    ///
    /// As [`BgBb::fit_grouped`].
    pub fn fit(data: &[BgBbObservation]) -> Result<BgBbFit> {
        let mut counts: HashMap<BgBbObservation, u64> = HashMap::new();
        for d in data {
            *counts.entry(*d).or_insert(0) += 1;
        }
        let mut grouped: Vec<(BgBbObservation, u64)> = counts.into_iter().collect();
        grouped.sort_by_key(|(o, _)| (o.n_periods, o.frequency, o.recency));
        Self::fit_grouped(&grouped)
    }

    /// Fits the model by maximum likelihood to histories with customer counts, the
    /// recency/frequency table FHS and lifetimes (`weights`) work with.
    ///
    /// The optimiser is BFGS on the log-parameters with an analytic gradient, started at
    /// α = β = γ = δ = 1; each evaluation costs O(Σ (n − tₓ)) over the distinct histories.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] when there are no customers (no rows, or all counts 0),
    /// [`Error::Validation`] for an inconsistent history, [`Error::NotConverged`] when the
    /// optimiser stops without an optimum or a parameter runs off to 0 or ∞ (for instance when
    /// nobody ever transacts again).
    pub fn fit_grouped(data: &[(BgBbObservation, u64)]) -> Result<BgBbFit> {
        let rows: Vec<(BgBbObservation, f64)> = data
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|&(o, count)| (o, count as f64))
            .collect();
        let customers: u64 = data.iter().map(|(_, c)| c).sum();
        if rows.is_empty() {
            return Err(Error::empty_input(format!(
                "no customers to fit {MODEL} on"
            )));
        }
        for (o, _) in &rows {
            o.validate()?;
        }
        if rows.iter().all(|(o, _)| o.frequency == 0) {
            return Err(Error::not_converged(MODEL,
                "no customer transacted after the first time, so the transaction probability is not identified",
            ));
        }
        let max_n = rows.iter().map(|(o, _)| o.n_periods).max().unwrap_or(0);
        let total = customers as f64;
        let minimum = optimize::minimize(
            |theta, grad| {
                let p = BgBb {
                    alpha: theta[0].exp(),
                    beta: theta[1].exp(),
                    gamma: theta[2].exp(),
                    delta: theta[3].exp(),
                };
                let tables = Tables::new(&p, max_n);
                let mut ll = 0.0;
                let mut g = [0.0; 4];
                for (o, w) in &rows {
                    let (l, _, gg) = tables.history(o);
                    ll += w * l;
                    for i in 0..4 {
                        g[i] += w * gg[i];
                    }
                }
                let scale = [p.alpha, p.beta, p.gamma, p.delta];
                for i in 0..4 {
                    grad[i] = -g[i] * scale[i] / total;
                }
                -ll / total
            },
            &[0.0; 4],
            Options {
                // As for BG/NBD: a factor of 20 in a parameter that changes the total
                // log-likelihood by less than 0.001 means the data do not determine it.
                flat_tolerance: 1e-3 / total,
                ..Options::default()
            },
        )
        .map_err(|f| {
            Error::not_converged(MODEL, f.describe(&["alpha", "beta", "gamma", "delta"]))
        })?;
        Ok(BgBbFit {
            params: BgBb {
                alpha: minimum.x[0].exp(),
                beta: minimum.x[1].exp(),
                gamma: minimum.x[2].exp(),
                delta: minimum.x[3].exp(),
            },
            log_likelihood: -minimum.value * total,
            customers,
            distinct_histories: rows.len(),
            iterations: minimum.iterations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(x: u32, tx: u32, n: u32) -> BgBbObservation {
        BgBbObservation::new(x, tx, n).unwrap()
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-12)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let p = [1.2, 0.75, 0.66, 2.8];
        let data = [
            obs(0, 0, 6),
            obs(2, 4, 6),
            obs(3, 3, 5),
            obs(6, 6, 6),
            obs(1, 1, 9),
        ];
        let at = |q: [f64; 4]| {
            let m = BgBb::new(q[0], q[1], q[2], q[3]).unwrap();
            let tables = Tables::new(&m, 9);
            data.iter().fold((0.0, [0.0; 4]), |(l, g), o| {
                let (ll, _, gg) = tables.history(o);
                (
                    l + ll,
                    [g[0] + gg[0], g[1] + gg[1], g[2] + gg[2], g[3] + gg[3]],
                )
            })
        };
        let (_, g) = at(p);
        for i in 0..4 {
            let mut hi = p;
            let mut lo = p;
            hi[i] += 1e-6;
            lo[i] -= 1e-6;
            let numeric = (at(hi).0 - at(lo).0) / 2e-6;
            assert!(
                close(g[i], numeric, 1e-6),
                "param {i}: {} vs {numeric}",
                g[i]
            );
        }
    }

    #[test]
    fn likelihood_sums_to_one_over_histories() {
        // Over all (x, tₓ) for fixed n the likelihoods of the histories, each counted with the
        // number of transaction patterns that give it (C(tₓ−1, x−1)), sum to 1.
        let m = BgBb::new(1.2, 0.75, 0.66, 2.8).unwrap();
        let n = 7u32;
        let mut total = m.log_likelihood(&obs(0, 0, n)).unwrap().exp();
        for tx in 1..=n {
            for x in 1..=tx {
                let patterns =
                    statrs::function::factorial::binomial(u64::from(tx - 1), u64::from(x - 1));
                total += patterns * m.log_likelihood(&obs(x, tx, n)).unwrap().exp();
            }
        }
        assert!(close(total, 1.0, 1e-12), "{total}");
    }

    #[test]
    fn rejects_inconsistent_histories() {
        assert!(BgBbObservation::new(3, 2, 6).is_err());
        assert!(BgBbObservation::new(1, 7, 6).is_err());
        assert!(BgBbObservation::new(0, 2, 6).is_err());
        assert!(BgBbObservation::new(0, 0, 0).is_ok());
        assert!(BgBb::new(1.0, 0.0, 1.0, 1.0).is_err());
        assert!(matches!(BgBb::fit(&[]), Err(Error::EmptyInput { .. })));
        assert!(matches!(
            BgBb::fit(&[obs(0, 0, 5), obs(0, 0, 6)]),
            Err(Error::NotConverged { .. })
        ));
    }
}
