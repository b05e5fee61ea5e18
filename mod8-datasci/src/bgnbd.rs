//! The BG/NBD model (Fader, Hardie & Lee 2005): purchases while alive follow a Poisson process
//! with rate λ ~ Gamma(r, α); after each purchase the customer drops out with probability
//! p ~ Beta(a, b). Time is in weeks throughout this crate.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use crate::error::{Error, Result};
use crate::grouping::NumberMap;
use crate::optimize::{self, Options};
use crate::parallel;
use crate::rfm::Rfm;
use crate::special::{hyp2f1, hyp2f1_many, log_add_exp};

/// BG/NBD parameters: λ ~ Gamma(shape `r`, rate `alpha`), p ~ Beta(`a`, `b`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbd {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (inverse scale, in weeks) of the purchase-rate distribution.
    pub alpha: f64,
    /// First shape of the dropout-probability distribution.
    pub a: f64,
    /// Second shape of the dropout-probability distribution.
    pub b: f64,
}

/// A fitted BG/NBD model and how the fit went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdFit {
    /// Maximum-likelihood parameters.
    pub params: BgNbd,
    /// Total log-likelihood at the optimum (sum over customers, time in weeks).
    pub log_likelihood: f64,
    /// Customers the fit used.
    pub customers: usize,
    /// Distinct (frequency, recency, T) triples the likelihood was evaluated on.
    pub distinct_histories: usize,
    /// Optimiser iterations.
    pub iterations: usize,
}

impl BgNbd {
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
                    format!("BG/NBD {name} must be finite and > 0, got {v}"),
                ));
            }
        }
        Ok(BgNbd { r, alpha, a, b })
    }

    /// Log-likelihood of one customer's history (x, tₓ, T).
    ///
    /// ln L = ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
    ///        + ln[ (α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+tₓ)^−(r+x) ]
    pub fn log_likelihood(&self, rfm: &Rfm) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = rfm.frequency as f64;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + rfm.t).ln();
        let tail = if rfm.frequency > 0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + rfm.recency).ln();
            log_add_exp(a3, a4)
        } else {
            a3
        };
        a1 + a2 + tail
    }

    /// Total log-likelihood of many histories.
    pub fn total_log_likelihood(&self, data: &[Rfm]) -> f64 {
        data.iter().map(|d| self.log_likelihood(d)).sum()
    }

    /// P(alive at T | x, tₓ, T): the probability the customer has not dropped out by the end of
    /// the observation period. 1 when x = 0 (in BG/NBD dropout happens only after a purchase).
    pub fn p_alive(&self, rfm: &Rfm) -> f64 {
        if rfm.frequency == 0 {
            return 1.0;
        }
        let x = rfm.frequency as f64;
        let BgNbd { r, alpha, a, b } = *self;
        let log_div =
            (r + x) * ((alpha + rfm.t) / (alpha + rfm.recency)).ln() + (a / (b + x - 1.0)).ln();
        1.0 / (1.0 + log_div.exp())
    }

    /// P(alive at T + t | x, tₓ, T): the probability the customer is still alive `t` weeks after
    /// the observation period, whatever they buy meanwhile.
    ///
    /// Given alive at T, the posterior is λ ~ Gamma(r+x, α+T), p ~ Beta(a, b+x), and the
    /// customer survives (0, t] when none of the Poisson(λt) purchases triggers a dropout:
    /// E[exp(−λpt)] = ₂F₁(r+x, a; a+b+x; −t/(α+T)), evaluated through Pfaff's transformation.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a negative or non-finite `t`; [`Error::NotConverged`] if the
    /// hypergeometric series does not settle (only for t ≫ α + T).
    pub fn p_alive_after(&self, rfm: &Rfm, t: f64) -> Result<f64> {
        check_horizon(t)?;
        if t == 0.0 {
            return Ok(self.p_alive(rfm));
        }
        let BgNbd { r, alpha, a, b } = *self;
        let x = rfm.frequency as f64;
        let scale = alpha + rfm.t;
        let w = t / (scale + t);
        // (1 − z)^−a with z = −t/scale, times the transformed series.
        let survive = (-a * (1.0 + t / scale).ln()).exp() * hyp2f1(a, a + b - r, a + b + x, w)?;
        Ok((self.p_alive(rfm) * survive).clamp(0.0, 1.0))
    }

    /// E[X(T, T+t] | x, tₓ, T]: expected purchases in the next `t` weeks.
    ///
    /// Uses P(alive) · (a+b+x−1)/(a−1) · [1 − (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z)] with
    /// z = t/(α+T+t) — the lifetimes formula after Euler's transformation, which keeps every
    /// term bounded. At the removable singularities (a = 1, a+b+x−1 a non-positive integer) the
    /// value is the average of a ± 1e-5.
    ///
    /// # Errors
    ///
    /// As [`BgNbd::p_alive_after`].
    pub fn expected_purchases(&self, rfm: &Rfm, t: f64) -> Result<f64> {
        let mut out = [0.0];
        self.expected_purchases_many(rfm, &[t], &mut out)?;
        Ok(out[0])
    }

    /// [`BgNbd::expected_purchases`] at several horizons `ts` into `out` (same length), each
    /// value bit for bit the single-horizon one; the hypergeometric series of all horizons
    /// share their coefficients (see `special::hyp2f1_many`), which makes the lifetime value's
    /// dozen horizons several times cheaper than one by one.
    pub(crate) fn expected_purchases_many(
        &self,
        rfm: &Rfm,
        ts: &[f64],
        out: &mut [f64],
    ) -> Result<()> {
        for &t in ts {
            check_horizon(t)?;
        }
        let x = rfm.frequency as f64;
        let c = self.a + self.b + x - 1.0;
        // With a, b > 0 the only reachable pole is c = 0 (x = 0, a + b = 1). The ±1e-6 windows
        // are wide enough: see expected_purchases_near_removable_singularities_match_mpmath.
        let singular = (self.a - 1.0).abs() < 1e-6 || (c <= 0.5 && (c - c.round()).abs() < 1e-6);
        if singular {
            let lo = BgNbd {
                a: self.a - 1e-5,
                ..*self
            };
            let hi = BgNbd {
                a: self.a + 1e-5,
                ..*self
            };
            let mut upper = vec![0.0; ts.len()];
            lo.expected_purchases_raw(rfm, ts, out)?;
            hi.expected_purchases_raw(rfm, ts, &mut upper)?;
            for (o, u) in out.iter_mut().zip(upper) {
                *o = 0.5 * (*o + u);
            }
            // (Rare: only at the removable singularities, so the vector is no concern.)
        } else {
            self.expected_purchases_raw(rfm, ts, out)?;
        }
        for (o, &t) in out.iter_mut().zip(ts) {
            *o = if t == 0.0 { 0.0 } else { o.max(0.0) };
        }
        Ok(())
    }

    /// The formula at every horizon (0 at t = 0, without the singularity handling).
    fn expected_purchases_raw(&self, rfm: &Rfm, ts: &[f64], out: &mut [f64]) -> Result<()> {
        let BgNbd { r, alpha, a, b } = *self;
        let x = rfm.frequency as f64;
        let c = a + b + x - 1.0;
        // The lifetime value's dozen horizons fit on the stack.
        let mut on_stack = [0.0; 16];
        let mut on_heap = Vec::new();
        let zs: &mut [f64] = if ts.len() <= on_stack.len() {
            &mut on_stack[..ts.len()]
        } else {
            on_heap.resize(ts.len(), 0.0);
            &mut on_heap
        };
        for (z, &t) in zs.iter_mut().zip(ts) {
            *z = t / (alpha + rfm.t + t);
        }
        // t = 0 gives z = 0, whose series ends at once (its value is set to 0 by the caller).
        hyp2f1_many(a + b - 1.0 - r, a - 1.0, c, zs, out)?;
        let p_alive = self.p_alive(rfm);
        for (o, &z) in out.iter_mut().zip(zs.iter()) {
            let bracket = 1.0 - ((a - 1.0) * (1.0 - z).ln()).exp() * *o;
            *o = p_alive * c / (a - 1.0) * bracket;
        }
        Ok(())
    }

    /// E[X(t)]: expected purchases in the first `t` weeks of a new customer.
    ///
    /// # Errors
    ///
    /// As [`BgNbd::expected_purchases`].
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

    /// Posterior mean purchase rate (per week) of a customer who is alive: (r+x)/(α+T).
    pub fn expected_rate(&self, rfm: &Rfm) -> f64 {
        (self.r + rfm.frequency as f64) / (self.alpha + rfm.t)
    }

    /// Fits the model by maximum likelihood.
    ///
    /// Identical (x, tₓ, T) histories are grouped and the Gamma/Beta terms computed once per
    /// distinct x, so a fit costs O(distinct histories) per iteration. The optimiser is BFGS on
    /// the log-parameters with an analytic gradient, started at r = 1, a = 1, b = 1 and α
    /// matching the observed mean purchase rate.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyInput`] for no data, [`Error::Validation`] for an inconsistent history,
    /// [`Error::NotConverged`] when the optimiser stops without an optimum or a parameter runs
    /// off to 0 or ∞ (for instance when nobody ever repeats a purchase).
    pub fn fit(data: &[Rfm]) -> Result<BgNbdFit> {
        if data.is_empty() {
            return Err(Error::EmptyInput {
                what: "no customers to fit BG/NBD on".into(),
            });
        }
        for d in data {
            d.validate()?;
        }
        let prepared = Prepared::new(data);
        let total_x: f64 = data.iter().map(|d| d.frequency as f64).sum();
        let total_t: f64 = data.iter().map(|d| d.t).sum();
        if total_x == 0.0 {
            return Err(Error::NotConverged {
                model: "BG/NBD",
                reason:
                    "no customer made a repeat purchase, so the purchase rate is not identified"
                        .into(),
            });
        }
        let alpha0 = (total_t.max(1e-9) / total_x).clamp(1e-3, 1e6);
        let x0 = [0.0, alpha0.ln(), 0.0, 0.0];
        let n = data.len() as f64;
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
            model: "BG/NBD",
            reason: f.describe(&["r", "alpha", "a", "b"]),
        })?;
        let params = BgNbd {
            r: minimum.x[0].exp(),
            alpha: minimum.x[1].exp(),
            a: minimum.x[2].exp(),
            b: minimum.x[3].exp(),
        };
        Ok(BgNbdFit {
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
            "t",
            format!("horizon must be finite and ≥ 0 weeks, got {t}"),
        ))
    }
}

/// One distinct history with its multiplicity and indices into the shared tables.
struct Group {
    count: f64,
    x_index: usize,
    t_index: usize,
    recency_index: Option<usize>,
}

/// Histories grouped for fast likelihood evaluation.
struct Prepared {
    xs: Vec<(f64, f64)>, // (x, customers with this x)
    ts: Vec<f64>,
    recencies: Vec<f64>,
    groups: Vec<Group>,
}

impl Prepared {
    fn new(data: &[Rfm]) -> Self {
        let mut xs_index: NumberMap<u32, usize> = NumberMap::default();
        let mut ts_index: NumberMap<u64, usize> = NumberMap::default();
        let mut rec_index: NumberMap<u64, usize> = NumberMap::default();
        let mut group_index: NumberMap<(u32, u64, u64), usize> = NumberMap::default();
        let mut p = Prepared {
            xs: Vec::new(),
            ts: Vec::new(),
            recencies: Vec::new(),
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
                p.xs.push((d.frequency as f64, 0.0));
                p.xs.len() - 1
            });
            p.xs[x_index].1 += 1.0;
            let t_index = *ts_index.entry(d.t.to_bits()).or_insert_with(|| {
                p.ts.push(d.t);
                p.ts.len() - 1
            });
            let recency_index = (d.frequency > 0).then(|| {
                *rec_index.entry(d.recency.to_bits()).or_insert_with(|| {
                    p.recencies.push(d.recency);
                    p.recencies.len() - 1
                })
            });
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
        // Per distinct x: the Gamma and Beta terms, and ln(b+x−1) for the dropout branch.
        let mut ln_b_x1 = Vec::with_capacity(self.xs.len());
        for &(x, n) in &self.xs {
            let a1 = ln_gamma(r + x) - lg_r + r * ln_alpha;
            let a2 = lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x);
            ll += n * (a1 + a2);
            let dg_abx = digamma(a + b + x);
            grad[0] += n * (digamma(r + x) - dg_r + ln_alpha);
            grad[1] += n * r / alpha;
            grad[2] += n * (dg_ab - dg_abx);
            grad[3] += n * (dg_ab + digamma(b + x) - dg_b - dg_abx);
            ln_b_x1.push(if x > 0.0 { (b + x - 1.0).ln() } else { 0.0 });
        }
        let ln_t: Vec<f64> = self.ts.iter().map(|t| (alpha + t).ln()).collect();
        let ln_rec: Vec<f64> = self.recencies.iter().map(|t| (alpha + t).ln()).collect();
        let per_x = (ll, *grad);
        // The per-group terms, in fixed chunks (see `crate::parallel`): the first chunk goes on
        // from the per-x sums, the others start at zero, and the chunk sums are added in order,
        // so the result does not depend on how many threads computed them.
        let chunks = parallel::map_chunks(&self.groups, |index, groups| {
            let start = if index == 0 { per_x } else { (0.0, [0.0; 4]) };
            let terms = Terms {
                r,
                alpha,
                a,
                b,
                ln_a,
                ln_b_x1: &ln_b_x1,
                ln_t: &ln_t,
                ln_rec: &ln_rec,
            };
            self.add_groups(groups, &terms, start)
        });
        let mut chunks = chunks.into_iter();
        let (mut ll, mut total) = chunks.next().unwrap_or(per_x);
        for (chunk_ll, chunk_grad) in chunks {
            ll += chunk_ll;
            for (t, g) in total.iter_mut().zip(chunk_grad) {
                *t += g;
            }
        }
        *grad = total;
        ll
    }

    /// `start` (log-likelihood, gradient) plus the per-group terms of `groups`, added one group
    /// after the other.
    fn add_groups(
        &self,
        groups: &[Group],
        terms: &Terms<'_>,
        start: (f64, [f64; 4]),
    ) -> (f64, [f64; 4]) {
        let Terms {
            r,
            alpha,
            a,
            b,
            ln_a,
            ln_b_x1,
            ln_t,
            ln_rec,
        } = *terms;
        let (mut ll, mut grad) = start;
        for g in groups {
            let x = self.xs[g.x_index].0;
            let rx = r + x;
            let lt = ln_t[g.t_index];
            let inv_t = 1.0 / (alpha + self.ts[g.t_index]);
            let a3 = -rx * lt;
            match g.recency_index {
                None => {
                    ll += g.count * a3;
                    grad[0] -= g.count * lt;
                    grad[1] -= g.count * rx * inv_t;
                }
                Some(k) => {
                    let lrec = ln_rec[k];
                    let a4 = ln_a - ln_b_x1[g.x_index] - rx * lrec;
                    let m = a3.max(a4);
                    let (e3, e4) = ((a3 - m).exp(), (a4 - m).exp());
                    let s = e3 + e4;
                    ll += g.count * (m + s.ln());
                    let (w3, w4) = (e3 / s, e4 / s);
                    let inv_rec = 1.0 / (alpha + self.recencies[k]);
                    grad[0] -= g.count * (w3 * lt + w4 * lrec);
                    grad[1] -= g.count * rx * (w3 * inv_t + w4 * inv_rec);
                    grad[2] += g.count * w4 / a;
                    grad[3] -= g.count * w4 / (b + x - 1.0);
                }
            }
        }
        (ll, grad)
    }
}

/// What every group's terms share at one parameter point.
#[derive(Clone, Copy)]
struct Terms<'a> {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
    ln_a: f64,
    /// ln(b + x − 1) per distinct x (0 for x = 0).
    ln_b_x1: &'a [f64],
    /// ln(α + T) per distinct T.
    ln_t: &'a [f64],
    /// ln(α + tₓ) per distinct recency.
    ln_rec: &'a [f64],
}

#[cfg(test)]
mod tests {
    use super::*;

    // lifetimes 0.11.3 BetaGeoFitter on its bundled CDNOW summary (2357 customers, weeks).
    const CDNOW: BgNbd = BgNbd {
        r: 0.2425929282798216,
        alpha: 4.4135322652718125,
        a: 0.7928859664406493,
        b: 2.42575238262571,
    };

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
    fn individual_log_likelihood_matches_lifetimes() {
        let ll = CDNOW.log_likelihood(&rfm(2, 30.43, 38.86));
        assert!(close(ll, -9.459701008041236, 1e-10), "{ll}");
    }

    #[test]
    fn log_likelihood_by_hand_for_x0() {
        // x = 0: r ln α − r ln(α+T) (the Beta terms cancel).
        let p = BgNbd::new(2.0, 3.0, 1.5, 2.5).unwrap();
        let ll = p.log_likelihood(&rfm(0, 0.0, 5.0));
        assert!(close(ll, 2.0 * (3.0f64 / 8.0).ln(), 1e-12));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data = vec![
            rfm(0, 0.0, 30.0),
            rfm(2, 10.0, 30.0),
            rfm(5, 25.5, 38.0),
            rfm(1, 3.0, 20.0),
        ];
        let prepared = Prepared::new(&data);
        let p = [0.7, 3.0, 0.9, 2.2];
        let mut g = [0.0; 4];
        let ll = prepared.log_likelihood_and_gradient(p, &mut g);
        let params = BgNbd::new(p[0], p[1], p[2], p[3]).unwrap();
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
                close(g[i], numeric, 1e-5),
                "param {i}: {} vs {numeric}",
                g[i]
            );
        }
    }

    /// `expected_purchases` as it was before horizons were evaluated together: one
    /// hypergeometric series per horizon.
    fn expected_purchases_alone(p: &BgNbd, h: &Rfm, t: f64) -> f64 {
        if t == 0.0 {
            return 0.0;
        }
        let raw = |p: &BgNbd| {
            let BgNbd { r, alpha, a, b } = *p;
            let x = h.frequency as f64;
            let z = t / (alpha + h.t + t);
            let c = a + b + x - 1.0;
            let hyp = hyp2f1(a + b - 1.0 - r, a - 1.0, c, z).unwrap();
            let bracket = 1.0 - ((a - 1.0) * (1.0 - z).ln()).exp() * hyp;
            p.p_alive(h) * c / (a - 1.0) * bracket
        };
        let c = p.a + p.b + h.frequency as f64 - 1.0;
        let singular = (p.a - 1.0).abs() < 1e-6 || (c <= 0.5 && (c - c.round()).abs() < 1e-6);
        let value = if singular {
            let lo = BgNbd {
                a: p.a - 1e-5,
                ..*p
            };
            let hi = BgNbd {
                a: p.a + 1e-5,
                ..*p
            };
            0.5 * (raw(&lo) + raw(&hi))
        } else {
            raw(p)
        };
        value.max(0.0)
    }

    #[test]
    fn horizons_together_give_the_bits_of_one_at_a_time() {
        let horizons: Vec<f64> = [0.0, 0.5, 10.0, 39.0, 52.14]
            .into_iter()
            .chain((1..=20).map(|k| k as f64 * 4.345))
            .collect();
        // CDNOW, and parameters at both removable singularities (a = 1; a + b = 1 with x = 0).
        let singular_a = BgNbd::new(0.5, 4.0, 1.0, 2.0).unwrap();
        let singular_c = BgNbd::new(0.5, 4.0, 0.4, 0.6).unwrap();
        for p in [CDNOW, singular_a, singular_c] {
            for h in [
                rfm(0, 0.0, 0.0),
                rfm(0, 0.0, 38.86),
                rfm(2, 30.43, 38.86),
                rfm(10, 35.0, 38.86),
            ] {
                for len in [1, 12, horizons.len()] {
                    let mut out = vec![f64::NAN; len];
                    p.expected_purchases_many(&h, &horizons[..len], &mut out)
                        .unwrap();
                    for (&t, &v) in horizons.iter().zip(&out) {
                        let alone = p.expected_purchases(&h, t).unwrap();
                        assert_eq!(v.to_bits(), alone.to_bits(), "{p:?} {h:?} t={t}");
                        let before = expected_purchases_alone(&p, &h, t);
                        assert_eq!(alone.to_bits(), before.to_bits(), "{p:?} {h:?} t={t}");
                    }
                }
            }
        }
        let mut out = [0.0; 2];
        assert!(matches!(
            CDNOW.expected_purchases_many(&rfm(1, 1.0, 2.0), &[1.0, -1.0], &mut out),
            Err(Error::Validation { field, .. }) if field == "t"
        ));
    }

    #[test]
    fn p_alive_matches_lifetimes() {
        assert!(close(
            CDNOW.p_alive(&rfm(2, 30.43, 38.86)),
            0.72660914,
            1e-7
        ));
        assert!(close(CDNOW.p_alive(&rfm(1, 1.71, 38.86)), 0.21222739, 1e-7));
        assert!(close(
            CDNOW.p_alive(&rfm(10, 35.0, 38.86)),
            0.84696076,
            1e-7
        ));
        assert_eq!(CDNOW.p_alive(&rfm(0, 0.0, 38.86)), 1.0);
    }

    #[test]
    fn expected_purchases_match_lifetimes() {
        let cases = [
            (rfm(2, 30.43, 38.86), 10.0, 0.3569310086469087),
            (rfm(0, 0.0, 38.86), 10.0, 0.05421009733135075),
            (rfm(1, 1.71, 38.86), 52.0, 0.2599070794084907),
            (rfm(10, 35.0, 38.86), 39.0, 6.163801704307461),
            (rfm(0, 0.0, 0.0), 39.0, 1.1950162284461998),
        ];
        for (h, t, expected) in cases {
            let v = CDNOW.expected_purchases(&h, t).unwrap();
            assert!(close(v, expected, 1e-9), "{h:?} t={t}: {v} vs {expected}");
        }
        assert!(close(
            CDNOW.expected_purchases_new(39.0).unwrap(),
            1.1950162284461998,
            1e-9
        ));
    }

    #[test]
    fn expected_purchases_continuous_through_a_equal_one() {
        let h = rfm(3, 20.0, 30.0);
        let at = BgNbd::new(0.5, 4.0, 1.0, 2.0)
            .unwrap()
            .expected_purchases(&h, 10.0)
            .unwrap();
        let near = BgNbd::new(0.5, 4.0, 1.001, 2.0)
            .unwrap()
            .expected_purchases(&h, 10.0)
            .unwrap();
        assert!(at.is_finite() && close(at, near, 1e-3), "{at} vs {near}");
    }

    #[test]
    fn expected_purchases_near_removable_singularities_match_mpmath() {
        // References: lifetimes' original (un-transformed) formula evaluated by mpmath 1.3 at
        // 60 digits; at the singularity itself, mpmath's limit. Outside the ±1e-6 windows the
        // direct evaluation keeps full precision near the c = a+b+x−1 = 0 pole (error ≤ 1e-14
        // at 1.5e-6..1e-3 away, so the window need not be wider); near a = 1 the bracket
        // cancels and loses up to ~1e-9 relative at 1e-6..1e-5 away, about what averaging
        // a ± 1e-5 gives inside the window, so widening it would not help either.
        let new_customer = rfm(0, 0.0, 30.0);
        let c_pole = |d: f64| BgNbd::new(0.5, 5.0, 0.4, 0.6 + d).unwrap();
        for (t, d, expected, tol) in [
            (10.0, 0.0, 0.13231749614740318, 1e-9),
            (10.0, 1.5e-6, 0.1323175108226391, 1e-13),
            (10.0, -1.5e-6, 0.13231748147212483, 1e-13),
            (10.0, 1e-3, 0.13232727022718918, 1e-13),
            (10.0, -1e-3, 0.13230770319913757, 1e-13),
            (52.0, 0.0, 0.5564842247675732, 1e-9),
            (52.0, 1.5e-6, 0.5564844359746347, 1e-13),
            (52.0, -1.5e-6, 0.5564840135599542, 1e-13),
            (52.0, 1e-3, 0.5566249059085913, 1e-13),
            (52.0, -1e-3, 0.5563432958879605, 1e-13),
        ] {
            let v = c_pole(d).expected_purchases(&new_customer, t).unwrap();
            assert!(
                close(v, expected, tol),
                "c = {d}, t = {t}: {v} vs {expected}"
            );
        }
        let repeat = rfm(3, 20.0, 30.0);
        let a_one = |d: f64| BgNbd::new(0.5, 5.0, 1.0 + d, 2.0).unwrap();
        for (t, d, expected) in [
            (10.0, 0.0, 0.5003864326832917),
            (10.0, 1.5e-6, 0.5003860356072641),
            (10.0, -1e-5, 0.5003890798714578),
            (10.0, 1e-3, 0.5001218424599135),
            (52.0, 0.0, 1.939789234820928),
            (52.0, 1.5e-6, 1.9397870137416533),
            (52.0, -1e-5, 1.9398040421178062),
            (52.0, 1e-3, 1.9383093979653223),
        ] {
            let v = a_one(d).expected_purchases(&repeat, t).unwrap();
            assert!(
                close(v, expected, 1e-9),
                "a = 1 + {d}, t = {t}: {v} vs {expected}"
            );
        }
    }

    #[test]
    fn p_alive_after_matches_quadrature() {
        // E_p[(1 + p t/(α+T))^−(r+x)] with p ~ Beta(a, b+x), a = 2 so the density is smooth.
        let m = BgNbd::new(0.8, 5.0, 2.0, 3.0).unwrap();
        let h = rfm(2, 10.0, 20.0);
        let t = 15.0;
        let (s, beta_a, beta_b) = (0.8 + 2.0, 2.0, 5.0);
        let ln_b = statrs::function::beta::ln_beta(beta_a, beta_b);
        let steps = 20_000;
        let mut integral = 0.0;
        for i in 0..steps {
            let p = (i as f64 + 0.5) / steps as f64;
            let density = ((beta_a - 1.0) * p.ln() + (beta_b - 1.0) * (1.0 - p).ln() - ln_b).exp();
            integral += density * (1.0 + p * t / 25.0f64).powf(-s) / steps as f64;
        }
        let expected = m.p_alive(&h) * integral;
        let got = m.p_alive_after(&h, t).unwrap();
        assert!(close(got, expected, 1e-6), "{got} vs {expected}");
        assert!(got < m.p_alive(&h));
    }

    #[test]
    fn no_visible_dropout_does_not_converge() {
        // Every customer bought right up to the end of the period (recency = T): nothing
        // suggests anyone left, so the likelihood improves ever more slowly as the dropout
        // probability a/(a+b) goes to 0. The gradient vanishes well inside the box (this used
        // to come back as a "fit" with a ≈ 1e-6, b ≈ 5e4).
        let data: Vec<Rfm> = (0..500u32)
            .map(|i| {
                let t = 20.0 + (i % 30) as f64;
                rfm(1 + i % 7, t, t)
            })
            .collect();
        match BgNbd::fit(&data) {
            Err(Error::NotConverged { model, reason }) => {
                assert_eq!(model, "BG/NBD");
                assert!(reason.contains("parameter a "), "{reason}");
                assert!(reason.contains("no interior optimum"), "{reason}");
            }
            other => panic!("expected NotConverged, got {other:?}"),
        }
    }

    #[test]
    fn fit_rejects_degenerate_data() {
        assert!(matches!(BgNbd::fit(&[]), Err(Error::EmptyInput { .. })));
        assert!(matches!(
            BgNbd::fit(&[rfm(0, 0.0, 3.0), rfm(0, 0.0, 5.0)]),
            Err(Error::NotConverged { .. })
        ));
        assert!(matches!(
            BgNbd::fit(&[rfm(1, 9.0, 3.0)]),
            Err(Error::Validation { field, .. }) if field == "recency"
        ));
        assert!(BgNbd::new(0.0, 1.0, 1.0, 1.0).is_err());
        assert!(BgNbd::new(1.0, f64::NAN, 1.0, 1.0).is_err());
        assert!(CDNOW.expected_purchases(&rfm(0, 0.0, 1.0), -1.0).is_err());
    }
}
