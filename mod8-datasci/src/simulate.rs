//! Seeded synthetic data: customer bases drawn from BG/NBD + Gamma-Gamma, and synthetic users
//! and catalogues for examples and benchmarks. Deterministic for a given seed, no external RNG.

use chrono::{Days, NaiveDate};

use crate::activity::{
    ActivityCounts, CustomerActivity, CustomerRecord, ItemPurchase, PurchaseStats,
};
use crate::bgnbd::BgNbd;
use crate::error::{Error, Result};
use crate::gamma_gamma::GammaGamma;
use crate::recommend::CatalogItem;
use crate::rfm::Rfm;
use crate::transactions::Transaction;

/// A small, fast, seeded generator (SplitMix64) with the distributions the simulators need.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform integer in `0..n` (`n > 0`; returns 0 for `n = 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Exponential with the given rate.
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.uniform().ln() / rate
    }

    /// Gamma(shape, rate) by Marsaglia & Tsang (boosted for shape < 1); NaN unless both
    /// parameters are finite and > 0.
    pub fn gamma(&mut self, shape: f64, rate: f64) -> f64 {
        if !(shape.is_finite() && shape > 0.0 && rate.is_finite() && rate > 0.0) {
            return f64::NAN;
        }
        if shape < 1.0 {
            let u = self.uniform();
            return self.gamma(shape + 1.0, rate) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v / rate;
            }
        }
    }

    /// Beta(a, b).
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        let y = self.gamma(b, 1.0);
        x / (x + y)
    }
}

/// What to simulate with [`simulate_customers`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulationParams {
    /// Purchase and dropout process.
    pub bgnbd: BgNbd,
    /// Spend process.
    pub gamma_gamma: GammaGamma,
    /// Number of customers.
    pub customers: usize,
    /// Customer ages T are uniform in `[min_age_weeks, max_age_weeks]`.
    pub min_age_weeks: f64,
    /// See `min_age_weeks`.
    pub max_age_weeks: f64,
    /// Seed.
    pub seed: u64,
}

impl SimulationParams {
    fn validate(&self) -> Result<()> {
        let BgNbd { r, alpha, a, b } = self.bgnbd;
        BgNbd::new(r, alpha, a, b)?;
        let GammaGamma { p, q, gamma } = self.gamma_gamma;
        GammaGamma::new(p, q, gamma)?;
        let (lo, hi) = (self.min_age_weeks, self.max_age_weeks);
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            let field = if lo.is_finite() && lo >= 0.0 {
                "max_age_weeks"
            } else {
                "min_age_weeks"
            };
            return Err(Error::validation(
                field,
                format!("customer ages need 0 ≤ min ≤ max, got {lo}..{hi}"),
            ));
        }
        Ok(())
    }
}

/// Draws customers from the BG/NBD + Gamma-Gamma generative story in continuous time:
/// λ ~ Gamma(r, α), p ~ Beta(a, b); purchases at rate λ from the first one at time 0; after
/// each repeat purchase the customer leaves with probability p; ν ~ Gamma(q, γ) and each repeat
/// purchase is worth Gamma(p_spend, ν).
///
/// # Errors
///
/// [`Error::Validation`] for non-positive or non-finite parameters or bad ages.
pub fn simulate_customers(params: &SimulationParams) -> Result<Vec<Rfm>> {
    params.validate()?;
    let mut rng = Rng::new(params.seed);
    let BgNbd { r, alpha, a, b } = params.bgnbd;
    let gg = params.gamma_gamma;
    Ok((0..params.customers)
        .map(|_| {
            let t = params.min_age_weeks
                + rng.uniform() * (params.max_age_weeks - params.min_age_weeks);
            let lambda = rng.gamma(r, alpha);
            let p = rng.beta(a, b);
            let nu = rng.gamma(gg.q, gg.gamma);
            let (mut now, mut x, mut last, mut spend) = (0.0, 0u32, 0.0, 0.0);
            loop {
                now += rng.exponential(lambda);
                if now > t {
                    break;
                }
                x += 1;
                last = now;
                spend += rng.gamma(gg.p, nu);
                if rng.uniform() < p {
                    break;
                }
            }
            Rfm {
                frequency: x,
                recency: last,
                t,
                monetary_value: if x > 0 { spend / x as f64 } else { 0.0 },
            }
        })
        .collect())
}

/// Draws dated transactions (`c000001`, …) from the same story, first purchases spread over
/// the `acquisition_days` days from `start` and history up to `end`; amounts are rounded to
/// cents. Useful for end-to-end tests of the CSV → summary → fit pipeline. The age fields of
/// `params` are not used (ages follow from the dates).
///
/// # Errors
///
/// [`Error::Validation`] for non-positive or non-finite parameters.
pub fn simulate_transactions(
    params: &SimulationParams,
    start: NaiveDate,
    acquisition_days: u32,
    end: NaiveDate,
) -> Result<Vec<Transaction>> {
    params.validate()?;
    let mut rng = Rng::new(params.seed);
    let BgNbd { r, alpha, a, b } = params.bgnbd;
    let gg = params.gamma_gamma;
    let mut out = Vec::new();
    for i in 0..params.customers {
        let first = start + Days::new(rng.below(acquisition_days.max(1) as u64));
        if first > end {
            continue;
        }
        let lambda = rng.gamma(r, alpha);
        let p = rng.beta(a, b);
        let nu = rng.gamma(gg.q, gg.gamma);
        let id = format!("c{:06}", i + 1);
        let horizon = (end - first).num_days() as f64 / 7.0;
        let money = |rng: &mut Rng| (rng.gamma(gg.p, nu) * 100.0).round() / 100.0;
        out.push(Transaction {
            customer_id: id.clone(),
            date: first,
            amount: money(&mut rng),
        });
        let mut now = 0.0;
        loop {
            now += rng.exponential(lambda);
            if now > horizon {
                break;
            }
            let date = first + Days::new((now * 7.0).floor() as u64);
            out.push(Transaction {
                customer_id: id.clone(),
                date,
                amount: money(&mut rng),
            });
            if rng.uniform() < p {
                break;
            }
        }
    }
    Ok(out)
}

/// A synthetic catalogue of `n` products over `categories` categories with log-normal prices.
pub fn synthetic_catalog(n: usize, categories: usize, seed: u64) -> Vec<CatalogItem> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| CatalogItem {
            id: format!("p{:05}", i + 1),
            category: format!("category-{}", i % categories.max(1) + 1),
            price: ((3.0 + 0.8 * rng.normal()).exp() * 100.0).round() / 100.0,
        })
        .collect()
}

/// Synthetic customers with activity and purchases up to `as_of`: a realistic mix of loyal,
/// casual, lapsed and never-buying users. Purchases favour a few categories per user (so
/// co-occurrence carries signal) and popular products (a Zipf-like skew).
pub fn synthetic_customers(
    n: usize,
    catalog: &[CatalogItem],
    as_of: NaiveDate,
    seed: u64,
) -> Vec<CustomerRecord> {
    let mut rng = Rng::new(seed);
    let categories: Vec<&str> = {
        let mut c: Vec<&str> = catalog.iter().map(|p| p.category.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    (0..n)
        .map(|i| {
            let kind = rng.below(100);
            // (purchase count, days since last activity, spend scale)
            let (purchases, idle, scale) = match kind {
                0..=9 => (8 + rng.below(20), rng.below(20), 3.0), // loyal, high value
                10..=49 => (1 + rng.below(6), rng.below(60), 1.0), // casual
                50..=74 => (1 + rng.below(4), 90 + rng.below(300), 1.0), // lapsed
                _ => (0, rng.below(200), 1.0),                    // browsers
            };
            let last_active = as_of.checked_sub_days(Days::new(idle));
            let favourite: Vec<&str> = (0..2)
                .map(|_| {
                    categories
                        .get(rng.below(categories.len() as u64) as usize)
                        .copied()
                        .unwrap_or("")
                })
                .collect();
            let mut bought = Vec::with_capacity(purchases as usize);
            for k in 0..purchases {
                let product = pick_product(&mut rng, catalog, &favourite);
                let Some(product) = product else { break };
                let back = idle + k * (5 + rng.below(25));
                let Some(date) = as_of.checked_sub_days(Days::new(back)) else {
                    break;
                };
                bought.push(ItemPurchase {
                    product_id: product.id.clone(),
                    amount: (product.price * scale * 100.0).round() / 100.0,
                    date,
                });
            }
            let sessions = (purchases * 3 + rng.below(20)) as u32;
            CustomerRecord {
                user_id: format!("u{:07}", i + 1),
                activity: ActivityCounts {
                    sessions,
                    page_views: sessions * (3 + rng.below(8) as u32),
                    clicks: sessions * (1 + rng.below(4) as u32),
                    searches: sessions / 2,
                    cart_adds: purchases as u32 + rng.below(3) as u32,
                    reviews: (rng.below(10) == 0) as u32,
                },
                last_active,
                purchases: bought,
            }
        })
        .collect()
}

fn pick_product<'a>(
    rng: &mut Rng,
    catalog: &'a [CatalogItem],
    favourite: &[&str],
) -> Option<&'a CatalogItem> {
    if catalog.is_empty() {
        return None;
    }
    // Zipf-ish popularity: squaring a uniform skews towards low indices.
    for _ in 0..20 {
        let u = rng.uniform();
        let idx = ((u * u) * catalog.len() as f64) as usize;
        let p = &catalog[idx.min(catalog.len() - 1)];
        if favourite.contains(&p.category.as_str()) || rng.below(5) == 0 {
            return Some(p);
        }
    }
    catalog.get(rng.below(catalog.len() as u64) as usize)
}

/// `n` compact synthetic users for throughput benchmarks (no ids, no heap).
pub fn synthetic_activity(n: usize, as_of: NaiveDate, seed: u64) -> Vec<CustomerActivity> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let count = if rng.below(4) == 0 {
                0
            } else {
                1 + rng.below(12) as u32
            };
            let idle = rng.below(200);
            let span = if count > 1 { 7 + rng.below(300) } else { 0 };
            let last = as_of.checked_sub_days(Days::new(idle));
            let first = last.and_then(|l| l.checked_sub_days(Days::new(span)));
            let avg = 5.0 + rng.below(200) as f64;
            CustomerActivity {
                activity: ActivityCounts {
                    sessions: rng.below(50) as u32,
                    page_views: rng.below(400) as u32,
                    clicks: rng.below(100) as u32,
                    searches: rng.below(30) as u32,
                    cart_adds: rng.below(10) as u32,
                    reviews: rng.below(3) as u32,
                },
                last_active: as_of.checked_sub_days(Days::new(rng.below(idle + 1))),
                purchases: if count == 0 {
                    PurchaseStats::default()
                } else {
                    PurchaseStats {
                        count,
                        total_amount: avg * count as f64,
                        first_amount: avg,
                        first,
                        last,
                    }
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_and_beta_moments() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let mean_g: f64 = (0..n).map(|_| rng.gamma(0.5, 2.0)).sum::<f64>() / n as f64;
        assert!((mean_g - 0.25).abs() < 0.005, "{mean_g}");
        let mean_g: f64 = (0..n).map(|_| rng.gamma(3.0, 0.5)).sum::<f64>() / n as f64;
        assert!((mean_g - 6.0).abs() < 0.05, "{mean_g}");
        let mean_b: f64 = (0..n).map(|_| rng.beta(0.8, 2.4)).sum::<f64>() / n as f64;
        assert!((mean_b - 0.25).abs() < 0.005, "{mean_b}");
    }

    #[test]
    fn simulated_histories_are_consistent() {
        let params = SimulationParams {
            bgnbd: BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
            gamma_gamma: GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
            customers: 1000,
            min_age_weeks: 20.0,
            max_age_weeks: 40.0,
            seed: 1,
        };
        for c in simulate_customers(&params).unwrap() {
            c.validate().unwrap();
        }
        let tx = simulate_transactions(
            &params,
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            60,
            NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
        )
        .unwrap();
        assert!(tx.len() > 1000);
        let bad = SimulationParams {
            bgnbd: BgNbd {
                r: f64::NAN,
                ..params.bgnbd
            },
            ..params
        };
        assert!(simulate_customers(&bad).is_err());
        assert!(Rng::new(1).gamma(f64::NAN, 1.0).is_nan());
    }
}
