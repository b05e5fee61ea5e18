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

/// What to draw with [`planted_taste_groups`]: customers with a latent taste group, each group
/// buying mostly from its own products, in bundles bought together.
///
/// `Default`: 3,000 customers in 10 groups of 6 bundles × 5 products (300 products), 3–12
/// purchases each over 2024, affinity 0.8, seed 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TasteGroupParams {
    /// Number of customers.
    pub customers: usize,
    /// Number of latent taste groups (at least 1).
    pub groups: usize,
    /// Bundles per group (at least 1).
    pub bundles_per_group: usize,
    /// Products per bundle (at least 1). The catalogue has
    /// `groups × bundles_per_group × bundle_size` products.
    pub bundle_size: usize,
    /// A customer buys from 1 to this many bundles of their group (at least 1).
    pub bundles_per_customer: usize,
    /// Fewest purchases per customer (at least 1).
    pub min_purchases: usize,
    /// Most purchases per customer (at least `min_purchases`).
    pub max_purchases: usize,
    /// Share of purchases that follow the customer's taste (their bundles), in [0, 1]; the
    /// rest are drawn from the whole catalogue by global popularity. 0 gives data without any
    /// planted structure but with the same popularity skew.
    pub affinity: f64,
    /// First possible purchase day.
    pub start: NaiveDate,
    /// Last possible purchase day (the natural evaluation day).
    pub end: NaiveDate,
    /// Seed.
    pub seed: u64,
}

impl Default for TasteGroupParams {
    fn default() -> Self {
        TasteGroupParams {
            customers: 3_000,
            groups: 10,
            bundles_per_group: 6,
            bundle_size: 5,
            bundles_per_customer: 2,
            min_purchases: 3,
            max_purchases: 12,
            affinity: 0.8,
            start: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default(),
            end: NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default(),
            seed: 1,
        }
    }
}

impl TasteGroupParams {
    fn validate(&self) -> Result<()> {
        let at_least_one = [
            ("groups", self.groups),
            ("bundles_per_group", self.bundles_per_group),
            ("bundle_size", self.bundle_size),
            ("bundles_per_customer", self.bundles_per_customer),
            ("min_purchases", self.min_purchases),
        ];
        for (field, value) in at_least_one {
            if value == 0 {
                return Err(Error::validation(field, "must be at least 1"));
            }
        }
        if self.max_purchases < self.min_purchases {
            return Err(Error::validation(
                "max_purchases",
                format!(
                    "{} is below min_purchases {}",
                    self.max_purchases, self.min_purchases
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.affinity) {
            return Err(Error::validation(
                "affinity",
                format!("{} is not a share in [0, 1]", self.affinity),
            ));
        }
        if self.end < self.start {
            return Err(Error::validation(
                "end",
                format!("{} is before start {}", self.end, self.start),
            ));
        }
        self.groups
            .checked_mul(self.bundles_per_group)
            .and_then(|n| n.checked_mul(self.bundle_size))
            .filter(|&n| n <= u32::MAX as usize)
            .map(|_| ())
            .ok_or_else(|| Error::validation("bundle_size", "the catalogue would be too large"))
    }
}

/// Customers and catalogue drawn by [`planted_taste_groups`], with the planted truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TasteGroupData {
    /// The catalogue (`p00001`, …; categories unrelated to the groups).
    pub catalog: Vec<CatalogItem>,
    /// The customers (`u0000001`, …), purchases sorted by date, `last_active` = last purchase.
    pub customers: Vec<CustomerRecord>,
    /// Taste group of each customer (same order as `customers`).
    pub customer_groups: Vec<usize>,
    /// Taste group of each catalogue product (same order as `catalog`).
    pub item_groups: Vec<usize>,
}

/// Seeded customers with planted structure, for measuring recommenders (and for seeding demo
/// data).
///
/// The catalogue is split into `groups` taste groups of `bundles_per_group` bundles of
/// `bundle_size` products; products are assigned to groups and bundles in a shuffled order and
/// categories cycle independently of groups, so neither ids nor categories reveal a group.
/// Each customer:
///
/// 1. belongs to a uniformly drawn group and picks 1 to `bundles_per_customer` of its bundles
///    (popular bundles first: bundle rank ⌊u² · bundles_per_group⌋, u uniform);
/// 2. makes `min_purchases..=max_purchases` purchases (uniform) on uniformly drawn days in
///    `start..=end`, in date order;
/// 3. each purchase, with probability `affinity`, is a product of their bundles that they
///    have not bought yet (once those are bought out they take up a further bundle of their
///    group; only a customer who bought out their whole group leaves it); otherwise a product
///    of the whole catalogue by a global Zipf-like popularity (rank ⌊u² · products⌋ over a shuffled
///    order), which may repeat an earlier purchase.
///
/// Groups are equally likely and every group has the same number of products, so global
/// popularity alone cannot tell a customer's group; what a customer bought (co-purchases
/// within bundles and groups) can. Deterministic for a given `params`.
///
/// ```
/// use mod8_datasci::simulate::{planted_taste_groups, TasteGroupParams};
/// let data = planted_taste_groups(&TasteGroupParams { customers: 200, seed: 7, ..Default::default() })?;
/// assert_eq!(data.catalog.len(), 300);
/// assert_eq!(data.customers.len(), 200);
/// assert!(data.customers.iter().all(|c| (3..=12).contains(&c.purchases.len())));
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Validation`] naming the parameter: a zero count (`"groups"`, `"bundles_per_group"`,
/// `"bundle_size"`, `"bundles_per_customer"`, `"min_purchases"`), `"max_purchases"` below the
/// minimum, `"affinity"` outside [0, 1], `"end"` before `start`.
pub fn planted_taste_groups(params: &TasteGroupParams) -> Result<TasteGroupData> {
    params.validate()?;
    let mut rng = Rng::new(params.seed);
    let per_group = params.bundles_per_group * params.bundle_size;
    let n = params.groups * per_group;
    // Slot s (group s / per_group, bundle (s / bundle_size) % bundles_per_group) holds product
    // slot_item[s]; a second shuffle ranks products for the global popularity.
    let slot_item = shuffled(&mut rng, n);
    let popularity_order = shuffled(&mut rng, n);
    let mut item_groups = vec![0; n];
    for (slot, &item) in slot_item.iter().enumerate() {
        item_groups[item] = slot / per_group;
    }
    let catalog: Vec<CatalogItem> = (0..n)
        .map(|i| CatalogItem {
            id: format!("p{:05}", i + 1),
            category: format!("category-{}", i % 8 + 1),
            price: ((3.0 + 0.8 * rng.normal()).exp() * 100.0).round() / 100.0,
        })
        .collect();
    let days = (params.end - params.start).num_days().max(0) as u64 + 1;
    let skewed = |rng: &mut Rng, len: usize| {
        let u = rng.uniform();
        ((u * u * len as f64) as usize).min(len - 1)
    };
    let mut customers = Vec::with_capacity(params.customers);
    let mut customer_groups = Vec::with_capacity(params.customers);
    for c in 0..params.customers {
        let group = rng.below(params.groups as u64) as usize;
        let wanted = 1 + rng.below(params.bundles_per_customer as u64) as usize;
        let mut bundles: Vec<usize> = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            let b = skewed(&mut rng, params.bundles_per_group);
            if !bundles.contains(&b) {
                bundles.push(b);
            }
        }
        // The customer's not-yet-bought bundle products.
        let mut taste: Vec<usize> = bundles
            .iter()
            .flat_map(|&b| {
                let first = group * per_group + b * params.bundle_size;
                slot_item[first..first + params.bundle_size].iter().copied()
            })
            .collect();
        let count = params.min_purchases
            + rng.below((params.max_purchases - params.min_purchases + 1) as u64) as usize;
        let mut dates: Vec<NaiveDate> = (0..count)
            .map(|_| params.start + Days::new(rng.below(days)))
            .collect();
        dates.sort_unstable();
        let purchases: Vec<ItemPurchase> = dates
            .into_iter()
            .map(|date| {
                let follows_taste = rng.uniform() < params.affinity;
                if follows_taste && taste.is_empty() && bundles.len() < params.bundles_per_group {
                    // Bought out: the customer takes up a further bundle of their group.
                    let b = (0..10)
                        .map(|_| skewed(&mut rng, params.bundles_per_group))
                        .find(|b| !bundles.contains(b))
                        .or_else(|| (0..params.bundles_per_group).find(|b| !bundles.contains(b)))
                        .unwrap_or(0);
                    bundles.push(b);
                    let first = group * per_group + b * params.bundle_size;
                    taste.extend_from_slice(&slot_item[first..first + params.bundle_size]);
                }
                let item = if follows_taste && !taste.is_empty() {
                    taste.swap_remove(rng.below(taste.len() as u64) as usize)
                } else {
                    popularity_order[skewed(&mut rng, n)]
                };
                ItemPurchase {
                    product_id: catalog[item].id.clone(),
                    amount: catalog[item].price,
                    date,
                }
            })
            .collect();
        let last_active = purchases.last().map(|p| p.date);
        let sessions = (count * 3) as u32;
        customers.push(CustomerRecord {
            user_id: format!("u{:07}", c + 1),
            activity: ActivityCounts {
                sessions,
                page_views: sessions * 5,
                clicks: sessions * 2,
                cart_adds: count as u32,
                ..Default::default()
            },
            last_active,
            purchases,
        });
        customer_groups.push(group);
    }
    Ok(TasteGroupData {
        catalog,
        customers,
        customer_groups,
        item_groups,
    })
}

/// A uniformly shuffled `0..n` (Fisher–Yates).
fn shuffled(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
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
