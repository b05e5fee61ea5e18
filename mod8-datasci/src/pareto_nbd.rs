//! The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987, "Counting Your Customers: Who
//! Are They and What Will They Do Next?"): while alive, a customer buys as a Poisson process
//! with rate λ ~ Gamma(r, α); lifetimes are exponential with rate μ ~ Gamma(s, β), independent
//! of λ. Time is in weeks, as everywhere in this crate.
//!
//! The likelihood, P(alive) and the expectations follow Fader, Hardie & Lee, "A Note on
//! Deriving the Pareto/NBD Model and Related Expressions" (2005; equations cited below as
//! "note (n)"), which is also what lifetimes' `ParetoNBDFitter` implements. The likelihood's
//! integral term is evaluated in log space through ₂F₁(1, q; c; z) (see `hyp2f1`), which stays
//! in [1, 1/(1−z)] however large the purchase count, so the model fits data on which
//! lifetimes' `hyp2f1(r+s+x, r+x; ...)` overflows.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use crate::error::{Error, Result};
use crate::hyp2f1::hyp2f1_one;
use crate::optimize::{self, Options};
use crate::rfm::Rfm;

/// Pareto/NBD parameters: purchase rate λ ~ Gamma(shape `r`, rate `alpha`), dropout rate
/// μ ~ Gamma(shape `s`, rate `beta`), both per week.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (in weeks) of the purchase-rate distribution.
    pub alpha: f64,
    /// Shape of the dropout-rate distribution.
    pub s: f64,
    /// Rate (in weeks) of the dropout-rate distribution.
    pub beta: f64,
}

/// A fitted Pareto/NBD model and how the fit went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbdFit {
    /// Maximum-likelihood parameters.
    pub params: ParetoNbd,
    /// Total log-likelihood at the optimum (sum over customers, time in weeks).
    pub log_likelihood: f64,
    /// Customers the fit used.
    pub customers: usize,
    /// Distinct (frequency, recency, T) triples the likelihood was evaluated on.
    pub distinct_histories: usize,
    /// Optimiser iterations.
    pub iterations: usize,
}

const MODEL: &str = "Pareto/NBD";

/// [1 − e^(−k·l)]/k, continuous at k = 0 (where it is l).
pub(crate) fn one_minus_exp_over(k: f64, l: f64) -> f64 {
    if k == 0.0 {
        l
    } else {
        -(-k * l).exp_m1() / k
    }
}

/// ln(α+u), ln(β+u), 1/(α+u) and 1/(β+u) at one time point u.
#[derive(Debug, Clone, Copy)]
struct At {
    u: f64,
    ln_a: f64,
    ln_b: f64,
    inv_a: f64,
    inv_b: f64,
}

impl At {
    fn new(p: &ParetoNbd, u: f64) -> Self {
        At {
            u,
            ln_a: (p.alpha + u).ln(),
            ln_b: (p.beta + u).ln(),
            inv_a: 1.0 / (p.alpha + u),
            inv_b: 1.0 / (p.beta + u),
        }
    }
}

/// ln G(u) and its gradient in (r, α, s, β), where
/// G(u) = ∫ᵤ^∞ (α+y)^−(r+x) (β+y)^−(s+1) dy
///      = (α+u)^−(r+x) (β+u)^−(s+1) (m+u)/R · ₂F₁(1, q; R+1; |α−β|/(M+u)),
/// R = r+s+x, m = min(α, β), M = max(α, β), q = r+x when α ≥ β and s+1 otherwise. This is
/// note (19)/(20)'s ₂F₁(R, ·; R+1; z)/(M+u)^R after Euler's transformation, divided by R.
fn ln_tail(p: &ParetoNbd, x: f64, ln_big_r: f64, at: &At) -> Result<Tail> {
    let ParetoNbd { r, alpha, s, beta } = *p;
    let big_r = r + s + x;
    let At {
        u,
        ln_a,
        ln_b,
        inv_a: ia,
        inv_b: ib,
    } = *at;
    let alpha_larger = alpha >= beta;
    let (q, z, ln_m) = if alpha_larger {
        (r + x, (alpha - beta) * ia, ln_b)
    } else {
        (s + 1.0, (beta - alpha) * ib, ln_a)
    };
    let h = hyp2f1_one(q, big_r + 1.0, z)?;
    let inv_h = 1.0 / h.value;
    let (fq, fc, fz) = (h.d_q * inv_h, h.d_c * inv_h, h.d_z * inv_h);
    let g = -(r + x) * ln_a - (s + 1.0) * ln_b + ln_m - ln_big_r + h.value.ln();
    let inv_r = 1.0 / big_r;
    let mut grad = [
        -ln_a - inv_r + fc,
        -(r + x) * ia,
        -ln_b - inv_r + fc,
        -(s + 1.0) * ib,
    ];
    if alpha_larger {
        // z = (α−β)/(α+u): ∂z/∂α = (β+u)/(α+u)², ∂z/∂β = −1/(α+u); m = β.
        grad[0] += fq;
        grad[1] += fz * (beta + u) * ia * ia;
        grad[3] += ib - fz * ia;
    } else {
        // z = (β−α)/(β+u): ∂z/∂α = −1/(β+u), ∂z/∂β = (α+u)/(β+u)²; m = α.
        grad[2] += fq;
        grad[1] += ia - fz * ib;
        grad[3] += fz * (alpha + u) * ib * ib;
    }
    Ok((g, grad))
}

/// ln G(u) with its gradient in (r, α, s, β).
type Tail = (f64, [f64; 4]);

/// Per-evaluation constants: ln α, ln β, ln s.
#[derive(Debug, Clone, Copy)]
struct Logs {
    alpha: f64,
    beta: f64,
    s: f64,
}

impl Logs {
    fn new(p: &ParetoNbd) -> Self {
        Logs {
            alpha: p.alpha.ln(),
            beta: p.beta.ln(),
            s: p.s.ln(),
        }
    }
}

/// What one history contributes, given its pieces.
struct HistoryInput {
    x: f64,
    /// lnΓ(r+x) − lnΓ(r) and ψ(r+x) − ψ(r).
    ln_gamma_ratio: f64,
    digamma_diff: f64,
    /// The logs and inverses at T.
    at_t: At,
    /// ln G(tₓ) and ln G(T) with gradients; `None` when tₓ = T (no dropout term).
    tails: Option<(Tail, Tail)>,
}

/// ln L (note (18)) and P(alive) (note (36)) of one history; adds ∂ln L/∂(r, α, s, β) to `grad`.
///
/// ln L = ln Γ(r+x) − ln Γ(r) + r ln α + s ln β + ln[(α+T)^−(r+x)(β+T)^−s + s (G(tₓ) − G(T))]
/// and P(alive) is the first term's share of the bracket.
fn history(p: &ParetoNbd, logs: Logs, h: &HistoryInput, grad: &mut [f64; 4]) -> (f64, f64) {
    let ParetoNbd { r, alpha, s, beta } = *p;
    let x = h.x;
    let at = h.at_t;
    let a = h.ln_gamma_ratio + r * logs.alpha + s * logs.beta;
    let b1 = -(r + x) * at.ln_a - s * at.ln_b;
    let d_a = [h.digamma_diff + logs.alpha, r / alpha, logs.beta, s / beta];
    let d_b1 = [-at.ln_a, -(r + x) * at.inv_a, -at.ln_b, -s * at.inv_b];
    let Some(((g1, dg1), (g2, dg2))) = h.tails else {
        for i in 0..4 {
            grad[i] += d_a[i] + d_b1[i];
        }
        return (a + b1, 1.0);
    };
    // G(T) < G(tₓ) for tₓ < T; rounding can make them equal when tₓ ≈ T.
    let delta = g2 - g1;
    if delta >= 0.0 {
        for i in 0..4 {
            grad[i] += d_a[i] + d_b1[i];
        }
        return (a + b1, 1.0);
    }
    // The bracket is e^b1 (1 + κ) with κ = s G(tₓ)(1 − ρ) / e^b1, ρ = G(T)/G(tₓ): the odds
    // of "dropped out at some y in (tₓ, T]" against "alive at T".
    let one_minus_rho = -delta.exp_m1();
    let ln_odds0 = logs.s + g1 - b1;
    let (ln_bracket, w1, w2) = if ln_odds0 < 600.0 {
        let odds = ln_odds0.exp() * one_minus_rho;
        let inv = 1.0 / (1.0 + odds);
        (b1 + odds.ln_1p(), inv, odds * inv)
    } else {
        // e^b1 is negligible beside the dropout term.
        let ln_odds = ln_odds0 + one_minus_rho.ln();
        (b1 + ln_odds, (-ln_odds).exp(), 1.0)
    };
    // ∂ln(s I): (∂g1 − ρ ∂g2)/(1 − ρ), plus 1/s.
    let rho = 1.0 - one_minus_rho;
    let inv = 1.0 / one_minus_rho;
    for i in 0..4 {
        let mut d_b2 = (dg1[i] - rho * dg2[i]) * inv;
        if i == 2 {
            d_b2 += 1.0 / s;
        }
        grad[i] += d_a[i] + w1 * d_b1[i] + w2 * d_b2;
    }
    (a + ln_bracket, w1)
}

impl ParetoNbd {
    /// Parameters, checked: all four finite and > 0.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] otherwise.
    pub fn new(r: f64, alpha: f64, s: f64, beta: f64) -> Result<Self> {
        for (name, v) in [("r", r), ("alpha", alpha), ("s", s), ("beta", beta)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::validation(
                    name,
                    format!("Pareto/NBD {name} must be finite and > 0, got {v}"),
                ));
            }
        }
        Ok(ParetoNbd { r, alpha, s, beta })
    }

    fn evaluate(&self, rfm: &Rfm) -> Result<(f64, f64)> {
        rfm.validate()?;
        let ParetoNbd { r, s, .. } = *self;
        let x = f64::from(rfm.frequency);
        let at_t = At::new(self, rfm.t);
        let tails = if rfm.recency < rfm.t {
            let ln_big_r = (r + s + x).ln();
            let at_recency = ln_tail(self, x, ln_big_r, &At::new(self, rfm.recency))?;
            Some((at_recency, ln_tail(self, x, ln_big_r, &at_t)?))
        } else {
            None
        };
        let input = HistoryInput {
            x,
            ln_gamma_ratio: ln_gamma(r + x) - ln_gamma(r),
            digamma_diff: 0.0, // only for the gradient, which is dropped
            at_t,
            tails,
        };
        Ok(history(self, Logs::new(self), &input, &mut [0.0; 4]))
    }

    /// Log-likelihood of one customer's history (x, tₓ, T), note (18):
    ///
    /// ln L = ln Γ(r+x) − ln Γ(r) + r ln α + s ln β
    ///        + ln[ (α+T)^−(r+x) (β+T)^−s + s ∫ₜₓ^T (α+y)^−(r+x) (β+y)^−(s+1) dy ],
    ///
    /// the integral (note (19)–(20)'s A₀ divided by r+s+x) evaluated through ₂F₁(1, ·; ·; ·).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an inconsistent history; [`Error::NotConverged`] when the
    /// hypergeometric function does not settle (only for max(α, β)/(min(α, β) + tₓ) ≳ 1e11).
    pub fn log_likelihood(&self, rfm: &Rfm) -> Result<f64> {
        Ok(self.evaluate(rfm)?.0)
    }

    /// Total log-likelihood of many histories.
    ///
    /// # Errors
    ///
    /// As [`ParetoNbd::log_likelihood`].
    pub fn total_log_likelihood(&self, data: &[Rfm]) -> Result<f64> {
        data.iter().map(|d| self.log_likelihood(d)).sum()
    }

    /// P(alive at T | x, tₓ, T), note (36)–(37): the share of the likelihood from customers
    /// still alive at T, 1 / (1 + s (α+T)^(r+x) (β+T)^s ∫ₜₓ^T (α+y)^−(r+x) (β+y)^−(s+1) dy).
    ///
    /// # Errors
    ///
    /// As [`ParetoNbd::log_likelihood`].
    pub fn p_alive(&self, rfm: &Rfm) -> Result<f64> {
        Ok(self.evaluate(rfm)?.1)
    }

    /// E[X(T, T+t] | x, tₓ, T]: expected purchases in the next `t` weeks, note (41):
    ///
    /// P(alive) · (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)],
    ///
    /// with the bracket over s−1 evaluated as −expm1(−(s−1)·ln(1 + t/(β+T)))/(s−1), which is
    /// continuous through s = 1 (where it is ln(1 + t/(β+T))).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a negative or non-finite `t`; otherwise as
    /// [`ParetoNbd::p_alive`].
    pub fn expected_purchases(&self, rfm: &Rfm, t: f64) -> Result<f64> {
        check_horizon(t)?;
        let p_alive = self.p_alive(rfm)?;
        let ParetoNbd { r, alpha, s, beta } = *self;
        let x = f64::from(rfm.frequency);
        let span = one_minus_exp_over(s - 1.0, (t / (beta + rfm.t)).ln_1p());
        Ok(p_alive * (r + x) * (beta + rfm.t) / (alpha + rfm.t) * span)
    }

    /// E[X(t)]: expected purchases in the first `t` weeks of a new customer, note (27):
    /// rβ / (α(s−1)) · [1 − (β/(β+t))^(s−1)].
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a negative or non-finite `t`.
    pub fn expected_purchases_new(&self, t: f64) -> Result<f64> {
        check_horizon(t)?;
        let ParetoNbd { r, alpha, s, beta } = *self;
        Ok(r * beta / alpha * one_minus_exp_over(s - 1.0, (t / beta).ln_1p()))
    }

    /// Fits the model by maximum likelihood.
    ///
    /// Identical (x, tₓ, T) histories are grouped, and the integral term is computed once per
    /// distinct (x, tₓ) and (x, T), so a fit costs O(distinct histories) per iteration. The
    /// optimiser is BFGS on the log-parameters with an analytic gradient, started at r = s = 1
    /// with α matching the observed mean purchase rate and β the mean customer age.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] for no data, [`Error::Validation`] for an inconsistent history,
    /// [`Error::NotConverged`] when the optimiser stops without an optimum or a parameter runs
    /// off to 0 or ∞ (for instance when nobody ever repeats a purchase, or nothing suggests
    /// that anyone has left).
    pub fn fit(data: &[Rfm]) -> Result<ParetoNbdFit> {
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
        let beta0 = (total_t / n).clamp(1e-3, 1e6);
        let x0 = [0.0, alpha0.ln(), 0.0, beta0.ln()];
        let mut last_error = None;
        let minimum = optimize::minimize(
            |theta, grad| {
                let p = ParetoNbd {
                    r: theta[0].exp(),
                    alpha: theta[1].exp(),
                    s: theta[2].exp(),
                    beta: theta[3].exp(),
                };
                let mut g = [0.0; 4];
                match prepared.log_likelihood_and_gradient(&p, &mut g) {
                    Ok(ll) => {
                        let scale = [p.r, p.alpha, p.s, p.beta];
                        for i in 0..4 {
                            grad[i] = -g[i] * scale[i] / n;
                        }
                        -ll / n
                    }
                    Err(e) => {
                        last_error = Some(e);
                        f64::NAN
                    }
                }
            },
            &x0,
            Options {
                // As for BG/NBD: a factor of 20 in a parameter that changes the total
                // log-likelihood by less than 0.001 means the data do not determine it.
                flat_tolerance: 1e-3 / n,
                ..Options::default()
            },
        )
        .map_err(|f| match (&f, last_error.take()) {
            (optimize::Failure::NonFiniteStart, Some(e)) => e,
            _ => Error::not_converged(MODEL, f.describe(&["r", "alpha", "s", "beta"])),
        })?;
        let params = ParetoNbd {
            r: minimum.x[0].exp(),
            alpha: minimum.x[1].exp(),
            s: minimum.x[2].exp(),
            beta: minimum.x[3].exp(),
        };
        Ok(ParetoNbdFit {
            params,
            log_likelihood: -minimum.value * n,
            customers: data.len(),
            distinct_histories: prepared.groups.len(),
            iterations: minimum.iterations,
        })
    }
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
    /// Indices into `tails` of (x, tₓ) and (x, T); `None` when tₓ = T.
    tails: Option<(usize, usize)>,
}

/// Histories grouped for fast likelihood evaluation.
struct Prepared {
    xs: Vec<f64>,
    /// Distinct tₓ and T values.
    us: Vec<f64>,
    /// Distinct (x index, u index) pairs whose G(u) is needed.
    tails: Vec<(usize, usize)>,
    groups: Vec<Group>,
}

impl Prepared {
    fn new(data: &[Rfm]) -> Self {
        let mut x_index: HashMap<u32, usize> = HashMap::new();
        let mut u_index: HashMap<u64, usize> = HashMap::new();
        let mut tail_index: HashMap<(usize, usize), usize> = HashMap::new();
        let mut group_index: HashMap<(u32, u64, u64), usize> = HashMap::new();
        let mut p = Prepared {
            xs: Vec::new(),
            us: Vec::new(),
            tails: Vec::new(),
            groups: Vec::new(),
        };
        for d in data {
            let key = (d.frequency, d.recency.to_bits(), d.t.to_bits());
            if let Some(&g) = group_index.get(&key) {
                p.groups[g].count += 1.0;
                continue;
            }
            let xi = *x_index.entry(d.frequency).or_insert_with(|| {
                p.xs.push(f64::from(d.frequency));
                p.xs.len() - 1
            });
            let mut u = |value: f64| {
                *u_index.entry(value.to_bits()).or_insert_with(|| {
                    p.us.push(value);
                    p.us.len() - 1
                })
            };
            let (ti, ri) = (u(d.t), u(d.recency));
            let tails = (d.recency < d.t).then(|| {
                let mut tail = |ui: usize| {
                    *tail_index.entry((xi, ui)).or_insert_with(|| {
                        p.tails.push((xi, ui));
                        p.tails.len() - 1
                    })
                };
                (tail(ri), tail(ti))
            });
            group_index.insert(key, p.groups.len());
            p.groups.push(Group {
                count: 1.0,
                x_index: xi,
                t_index: ti,
                tails,
            });
        }
        p
    }

    /// Total log-likelihood at `params`; `grad` receives ∂LL/∂(r, α, s, β).
    fn log_likelihood_and_gradient(&self, params: &ParetoNbd, grad: &mut [f64; 4]) -> Result<f64> {
        let ParetoNbd { r, s, .. } = *params;
        let ats: Vec<At> = self.us.iter().map(|&u| At::new(params, u)).collect();
        let (lg_r, dg_r) = (ln_gamma(r), digamma(r));
        // Per distinct x: lnΓ(r+x) − lnΓ(r), ψ(r+x) − ψ(r), ln(r+s+x).
        let per_x: Vec<(f64, f64, f64)> = self
            .xs
            .iter()
            .map(|&x| {
                (
                    ln_gamma(r + x) - lg_r,
                    digamma(r + x) - dg_r,
                    (r + s + x).ln(),
                )
            })
            .collect();
        let tails = self
            .tails
            .iter()
            .map(|&(xi, ui)| ln_tail(params, self.xs[xi], per_x[xi].2, &ats[ui]))
            .collect::<Result<Vec<_>>>()?;
        let logs = Logs::new(params);
        let mut ll = 0.0;
        for g in &self.groups {
            let (ln_gamma_ratio, digamma_diff, _) = per_x[g.x_index];
            let input = HistoryInput {
                x: self.xs[g.x_index],
                ln_gamma_ratio,
                digamma_diff,
                at_t: ats[g.t_index],
                tails: g.tails.map(|(i, j)| (tails[i], tails[j])),
            };
            let mut gg = [0.0; 4];
            ll += g.count * history(params, logs, &input, &mut gg).0;
            for i in 0..4 {
                grad[i] += g.count * gg[i];
            }
        }
        Ok(ll)
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
            rfm(3, 20.0, 20.0),
            rfm(400, 35.0, 38.0),
        ];
        let prepared = Prepared::new(&data);
        // α > β, α < β, α = β, and α ≫ β (continued fraction for the small-recency tails).
        for p in [
            [0.7, 3.0, 0.9, 2.2],
            [0.55, 10.6, 0.61, 11.7],
            [1.3, 4.0, 0.8, 4.0],
            [0.5, 200.0, 0.3, 0.5],
        ] {
            let params = ParetoNbd::new(p[0], p[1], p[2], p[3]).unwrap();
            let mut g = [0.0; 4];
            let ll = prepared
                .log_likelihood_and_gradient(&params, &mut g)
                .unwrap();
            let direct = params.total_log_likelihood(&data).unwrap();
            assert!(close(ll, direct, 1e-12), "{ll} vs {direct}");
            for i in 0..4 {
                let h = 1e-6 * p[i];
                let mut hi = p;
                let mut lo = p;
                hi[i] += h;
                lo[i] -= h;
                let at = |q: [f64; 4]| {
                    let m = ParetoNbd::new(q[0], q[1], q[2], q[3]).unwrap();
                    prepared
                        .log_likelihood_and_gradient(&m, &mut [0.0; 4])
                        .unwrap()
                };
                let numeric = (at(hi) - at(lo)) / (2.0 * h);
                assert!(
                    (g[i] - numeric).abs() <= 1e-6 * numeric.abs().max(1.0),
                    "{p:?} param {i}: {} vs {numeric}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn log_likelihood_by_hand_when_alpha_equals_beta() {
        // α = β: the integral is closed-form, ∫ₜₓ^T (α+y)^−(R+1) dy with R = r+s+x.
        let (r, a, s) = (0.7, 4.0, 0.9);
        let m = ParetoNbd::new(r, a, s, a).unwrap();
        for (x, tx, t) in [(0u32, 0.0, 30.0), (3, 12.0, 30.0), (60, 29.0, 30.0)] {
            let xf = f64::from(x);
            let big_r = r + s + xf;
            let integral = ((a + tx).powf(-big_r) - (a + t).powf(-big_r)) / big_r;
            let bracket = (a + t).powf(-(r + xf)) * (a + t).powf(-s) + s * integral;
            let expected = ln_gamma(r + xf) - ln_gamma(r) + (r + s) * a.ln() + bracket.ln();
            let ours = m.log_likelihood(&rfm(x, tx, t)).unwrap();
            assert!(close(ours, expected, 1e-13), "x={x}: {ours} vs {expected}");
        }
    }

    #[test]
    fn alive_at_the_end_when_the_last_purchase_is_at_t() {
        let m = ParetoNbd::new(0.55, 10.6, 0.61, 11.7).unwrap();
        assert_eq!(m.p_alive(&rfm(4, 30.0, 30.0)).unwrap(), 1.0);
        assert!(m.p_alive(&rfm(4, 29.0, 30.0)).unwrap() < 1.0);
        // With T = 0 (a brand-new customer) the expectation is the population's.
        let fresh = m.expected_purchases(&rfm(0, 0.0, 0.0), 26.0).unwrap();
        assert!(close(fresh, m.expected_purchases_new(26.0).unwrap(), 1e-14));
    }

    #[test]
    fn expected_purchases_continuous_through_s_equal_one() {
        let h = rfm(3, 20.0, 30.0);
        let at = |s: f64| {
            ParetoNbd::new(0.6, 11.6, s, 18.8)
                .unwrap()
                .expected_purchases(&h, 26.0)
                .unwrap()
        };
        let (below, one, above) = (at(1.0 - 1e-9), at(1.0), at(1.0 + 1e-9));
        assert!(
            close(below, one, 1e-8) && close(above, one, 1e-8),
            "{below} {one} {above}"
        );
        let new = |s: f64| {
            ParetoNbd::new(0.6, 11.6, s, 18.8)
                .unwrap()
                .expected_purchases_new(26.0)
                .unwrap()
        };
        // s = 1: rβ/α · ln(1 + t/β).
        assert!(close(
            new(1.0),
            0.6 * 18.8 / 11.6 * (26.0f64 / 18.8).ln_1p(),
            1e-15
        ));
        assert!(close(new(1.0 + 1e-9), new(1.0), 1e-8));
    }
}
