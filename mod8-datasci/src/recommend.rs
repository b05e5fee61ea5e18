//! Segment-aware recommendations on item-to-item collaborative filtering.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::activity::{days_between, CustomerRecord, ItemPurchase};
use crate::error::{Error, Result};
use crate::segment::Segment;

/// A product of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogItem {
    /// Product id.
    pub id: String,
    /// Category name.
    pub category: String,
    /// Price.
    pub price: f64,
}

/// Why a product was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RecommendationReason {
    /// Bought together with what the user bought (item-to-item CF).
    SimilarItems,
    /// Popular right now (new users, or filling up a short list).
    Trending,
    /// High-end pick for a VIP.
    Premium,
    /// Popular in the user's favourite categories, to win a dormant user back.
    ReEngagement,
    /// Affordable, familiar pick for a customer at risk.
    Retention,
}

/// One recommended product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    /// Product id.
    pub product_id: String,
    /// Relevance in [0, 1], comparable within one list.
    pub score: f64,
    /// Why it was picked.
    pub reason: RecommendationReason,
}

/// Tuning of [`RecommendationEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecommendationConfig {
    /// Similar items kept per product. Default 50.
    pub neighbours: usize,
    /// Half-life in days of a purchase's weight in the trending score. Default 30.
    pub trending_half_life_days: f64,
}

impl Default for RecommendationConfig {
    fn default() -> Self {
        RecommendationConfig {
            neighbours: 50,
            trending_half_life_days: 30.0,
        }
    }
}

/// Item-to-item collaborative filtering with segment strategies and a trending fallback.
///
/// Similarity is the cosine of purchase co-occurrence: sim(i, j) = n(i ∧ j) / √(n(i)·n(j)) over
/// distinct buyers. A user's CF score for a product is the sum of its similarities to the
/// products they bought, scaled so the best candidate scores 1. Final scores blend, with weights
/// summing to 1 so scores stay in [0, 1]:
///
/// | segment | blend |
/// |---|---|
/// | Active | 0.8 CF + 0.2 trending |
/// | Vip | 0.5 CF + 0.3 price rank + 0.2 trending (premium picks) |
/// | AtRisk | 0.6 CF + 0.2 category affinity + 0.2 (1 − price rank) (retention offers) |
/// | Dormant | 0.4 trending + 0.4 category affinity + 0.2 CF (re-engagement) |
/// | no purchases | trending |
///
/// Products the user already bought are never recommended.
///
/// ```
/// use chrono::NaiveDate;
/// use mod8_datasci::{CatalogItem, CustomerRecord, ItemPurchase, RecommendationEngine, Segment};
/// let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
/// let product = |id: &str| CatalogItem { id: id.into(), category: "books".into(), price: 10.0 };
/// let bought = |user: &str, items: &[&str]| CustomerRecord {
///     user_id: user.into(),
///     purchases: items.iter().map(|p| ItemPurchase { product_id: p.to_string(), amount: 10.0, date: day }).collect(),
///     ..Default::default()
/// };
/// let engine = RecommendationEngine::build(
///     &[product("a"), product("b"), product("c")],
///     &[bought("u1", &["a", "b"]), bought("u2", &["a", "b"]), bought("u3", &["c"])],
///     day,
///     Default::default(),
/// )?;
/// let recs = engine.recommend(&bought("new", &["a"]).purchases, Segment::Active, 2);
/// assert_eq!(recs[0].product_id, "b");
/// assert!(recs.iter().all(|r| r.product_id != "a" && (0.0..=1.0).contains(&r.score)));
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecommendationEngine {
    products: Vec<CatalogItem>,
    index: HashMap<String, u32>,
    /// Per product: (neighbour, similarity), best first.
    neighbours: Vec<Vec<(u32, f32)>>,
    /// Trending score per product, max 1.
    trending: Vec<f64>,
    /// Products by trending score, best first (ties by catalogue order).
    trending_order: Vec<u32>,
    /// Price percentile per product in [0, 1].
    price_rank: Vec<f64>,
    /// Category id per product.
    category: Vec<u32>,
    categories: usize,
    unknown_purchases: usize,
}

impl RecommendationEngine {
    /// Builds the model from the catalogue and purchase histories as of `as_of` (for trending).
    /// Purchases of products missing from the catalogue are skipped and counted
    /// ([`RecommendationEngine::unknown_purchases`]).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an empty catalogue, duplicate product ids or a non-finite or
    /// negative price.
    pub fn build(
        catalog: &[CatalogItem],
        customers: &[CustomerRecord],
        as_of: NaiveDate,
        config: RecommendationConfig,
    ) -> Result<Self> {
        let base = Catalogue::new(catalog)?;
        let n = catalog.len();
        // Distinct buyers per product, co-occurrence per pair, decayed counts for trending.
        let mut buyers = vec![0u32; n];
        let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
        let mut trending = vec![0.0f64; n];
        let decay = decay_rate(&config);
        let mut unknown_purchases = 0;
        let mut items: Vec<u32> = Vec::new();
        for c in customers {
            items.clear();
            for p in &c.purchases {
                match base.index.get(&p.product_id) {
                    Some(&i) => {
                        items.push(i);
                        let age = days_between(p.date, as_of) as f64;
                        trending[i as usize] += (-decay * age).exp();
                    }
                    None => unknown_purchases += 1,
                }
            }
            items.sort_unstable();
            items.dedup();
            for (k, &i) in items.iter().enumerate() {
                buyers[i as usize] += 1;
                for &j in &items[k + 1..] {
                    *pairs.entry((i, j)).or_default() += 1;
                }
            }
        }
        Ok(base.finish(
            catalog,
            Counts {
                buyers,
                pairs,
                trending,
                unknown_purchases,
            },
            config,
        ))
    }

    /// Builds the same model as [`RecommendationEngine::build`] from co-purchase counts taken
    /// elsewhere (a database aggregate over every order line, say) instead of the purchase
    /// histories: given the counts of the histories `build` would be given, the similarities
    /// are identical and the trending scores equal up to floating-point rounding. Counts of
    /// products missing from the catalogue are skipped; their purchase lines are counted in
    /// [`RecommendationEngine::unknown_purchases`].
    ///
    /// # Errors
    ///
    /// As [`RecommendationEngine::build`], and [`Error::Validation`] on `counts` for a pair of a
    /// product with itself.
    ///
    /// ```
    /// use chrono::NaiveDate;
    /// use mod8_datasci::{CatalogItem, PurchaseCounts, RecommendationEngine};
    /// let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
    /// let product = |id: &str| CatalogItem { id: id.into(), category: "books".into(), price: 10.0 };
    /// let counts = PurchaseCounts {
    ///     buyers: vec![("a".into(), 2), ("b".into(), 2), ("c".into(), 1)],
    ///     pairs: vec![("a".into(), "b".into(), 2)],
    ///     lines_by_day: vec![("a".into(), day, 2), ("b".into(), day, 2), ("c".into(), day, 1)],
    /// };
    /// let engine = RecommendationEngine::from_counts(
    ///     &[product("a"), product("b"), product("c")], &counts, day, Default::default())?;
    /// assert_eq!(engine.similar_products("a", 1)?, vec![("b".to_owned(), 1.0)]);
    /// # Ok::<(), mod8_datasci::Error>(())
    /// ```
    pub fn from_counts(
        catalog: &[CatalogItem],
        counts: &PurchaseCounts,
        as_of: NaiveDate,
        config: RecommendationConfig,
    ) -> Result<Self> {
        let base = Catalogue::new(catalog)?;
        let n = catalog.len();
        let saturate = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
        let mut buyers = vec![0u32; n];
        for (id, count) in &counts.buyers {
            if let Some(&i) = base.index.get(id) {
                buyers[i as usize] = saturate(*count);
            }
        }
        let mut pairs: HashMap<(u32, u32), u32> = HashMap::with_capacity(counts.pairs.len());
        for (a, b, count) in &counts.pairs {
            let (Some(&i), Some(&j)) = (base.index.get(a), base.index.get(b)) else {
                continue;
            };
            if i == j {
                return Err(Error::validation(
                    "counts",
                    format!("a pair of product {a} with itself"),
                ));
            }
            *pairs.entry((i.min(j), i.max(j))).or_default() += saturate(*count);
        }
        let decay = decay_rate(&config);
        let mut trending = vec![0.0f64; n];
        let mut unknown_purchases = 0usize;
        for (id, day, lines) in &counts.lines_by_day {
            match base.index.get(id) {
                Some(&i) => {
                    let age = days_between(*day, as_of) as f64;
                    trending[i as usize] += *lines as f64 * (-decay * age).exp();
                }
                None => {
                    unknown_purchases = unknown_purchases
                        .saturating_add(usize::try_from(*lines).unwrap_or(usize::MAX));
                }
            }
        }
        Ok(base.finish(
            catalog,
            Counts {
                buyers,
                pairs,
                trending,
                unknown_purchases,
            },
            config,
        ))
    }

    /// Purchases skipped at build time because their product is not in the catalogue.
    pub fn unknown_purchases(&self) -> usize {
        self.unknown_purchases
    }

    /// Products most similar to `product_id` with their cosine similarity, best first.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown product.
    pub fn similar_products(&self, product_id: &str, limit: usize) -> Result<Vec<(String, f64)>> {
        let &i = self
            .index
            .get(product_id)
            .ok_or_else(|| Error::not_found("product", product_id))?;
        Ok(self.neighbours[i as usize]
            .iter()
            .take(limit)
            .map(|&(j, s)| (self.products[j as usize].id.clone(), s as f64))
            .collect())
    }

    /// Trending products, best first, scores in [0, 1].
    pub fn trending(&self, limit: usize) -> Vec<Recommendation> {
        self.trending_order
            .iter()
            .take(limit)
            .map(|&i| Recommendation {
                product_id: self.products[i as usize].id.clone(),
                score: self.trending[i as usize],
                reason: RecommendationReason::Trending,
            })
            .collect()
    }

    /// Pure item-to-item collaborative filtering: up to `limit` products scored only by their
    /// summed cosine similarity to the products in `history`, scaled so the best scores 1, best
    /// first (ties in catalogue order), all with reason
    /// [`RecommendationReason::SimilarItems`]. No trending, segment or fill-up terms: products
    /// similar to nothing the user bought are left out, so the list can be shorter than
    /// `limit` (and is empty without known purchases). Never returns a product the user bought.
    pub fn collaborative(&self, history: &[ItemPurchase], limit: usize) -> Vec<Recommendation> {
        let n = self.products.len();
        let mut bought = vec![false; n];
        let mut cf = vec![0.0f64; n];
        let mut owned: Vec<u32> = history
            .iter()
            .filter_map(|p| self.index.get(&p.product_id).copied())
            .collect();
        owned.sort_unstable();
        owned.dedup();
        for &i in &owned {
            bought[i as usize] = true;
            for &(j, s) in &self.neighbours[i as usize] {
                cf[j as usize] += s as f64;
            }
        }
        let mut scored: Vec<(f64, u32)> = (0..n)
            .filter(|&i| !bought[i] && cf[i] > 0.0)
            .map(|i| (cf[i], i as u32))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(limit);
        let max = scored.first().map_or(1.0, |s| s.0);
        scored
            .into_iter()
            .map(|(score, i)| Recommendation {
                product_id: self.products[i as usize].id.clone(),
                score: (score / max).clamp(0.0, 1.0),
                reason: RecommendationReason::SimilarItems,
            })
            .collect()
    }

    /// Up to `limit` products for a user with this purchase history in this segment, best
    /// first. Never returns a product the user bought; scores are in [0, 1].
    pub fn recommend(
        &self,
        history: &[ItemPurchase],
        segment: Segment,
        limit: usize,
    ) -> Vec<Recommendation> {
        let n = self.products.len();
        let mut bought = vec![false; n];
        let mut any = false;
        let mut affinity = vec![0.0f64; self.categories];
        let mut cf = vec![0.0f64; n];
        let mut owned: Vec<u32> = history
            .iter()
            .filter_map(|p| self.index.get(&p.product_id).copied())
            .collect();
        owned.sort_unstable();
        owned.dedup();
        for &i in &owned {
            bought[i as usize] = true;
            any = true;
            affinity[self.category[i as usize] as usize] += 1.0;
            for &(j, s) in &self.neighbours[i as usize] {
                cf[j as usize] += s as f64;
            }
        }
        if !any {
            let with_sales = self
                .trending_order
                .iter()
                .take_while(|&&i| self.trending[i as usize] > 0.0)
                .count();
            return self.trending(limit.min(with_sales));
        }
        // Only neighbours of owned products have a CF score; scan them for the maximum.
        let max_cf = owned
            .iter()
            .flat_map(|&i| self.neighbours[i as usize].iter())
            .filter(|(j, _)| !bought[*j as usize])
            .fold(0.0f64, |m, &(j, _)| m.max(cf[j as usize]));
        let max_aff = affinity.iter().cloned().fold(0.0, f64::max);
        let inv_cf = if max_cf > 0.0 { 1.0 / max_cf } else { 0.0 };
        let inv_aff = if max_aff > 0.0 { 1.0 / max_aff } else { 0.0 };
        // (CF, trending, affinity, price rank, 1 − price rank) weights per segment.
        let (wc, wt, wa, wp, wq) = match segment {
            Segment::Active => (0.8, 0.2, 0.0, 0.0, 0.0),
            Segment::Vip => (0.5, 0.2, 0.0, 0.3, 0.0),
            Segment::AtRisk => (0.6, 0.0, 0.2, 0.0, 0.2),
            Segment::Dormant => (0.2, 0.4, 0.4, 0.0, 0.0),
        };
        // Top `limit` by (score desc, index asc), kept sorted best first.
        let mut top: Vec<(f64, u32)> = Vec::with_capacity(limit.min(n) + 1);
        for i in 0..n {
            if bought[i] {
                continue;
            }
            let p = self.price_rank[i];
            let score = wc * cf[i] * inv_cf
                + wt * self.trending[i]
                + wa * affinity[self.category[i] as usize] * inv_aff
                + wp * p
                + wq * (1.0 - p);
            if score <= 0.0 || limit == 0 {
                continue;
            }
            if top.len() == limit && top.last().is_some_and(|w| score <= w.0) {
                continue;
            }
            // Ties keep catalogue order: an equal score never overtakes an earlier index.
            let at = top.partition_point(|e| e.0 >= score);
            top.insert(at, (score, i as u32));
            top.truncate(limit);
        }
        top.into_iter()
            .map(|(score, i)| Recommendation {
                product_id: self.products[i as usize].id.clone(),
                score: score.clamp(0.0, 1.0),
                reason: match segment {
                    Segment::Active if cf[i as usize] > 0.0 => RecommendationReason::SimilarItems,
                    Segment::Active => RecommendationReason::Trending,
                    Segment::Vip => RecommendationReason::Premium,
                    Segment::AtRisk => RecommendationReason::Retention,
                    Segment::Dormant => RecommendationReason::ReEngagement,
                },
            })
            .collect()
    }
}

/// Co-purchase counts over a whole purchase log, the input of
/// [`RecommendationEngine::from_counts`]: what [`RecommendationEngine::build`] counts from the
/// purchase histories, for callers that count elsewhere (a database aggregate over every order
/// line) and would rather not load every history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PurchaseCounts {
    /// Per product id: how many distinct customers bought it.
    pub buyers: Vec<(String, u64)>,
    /// Per unordered pair of different product ids (each pair once): how many distinct
    /// customers bought both.
    pub pairs: Vec<(String, String, u64)>,
    /// Per product id and day: how many purchase lines of it there were (each counts once in
    /// the trending score, decayed by its age).
    pub lines_by_day: Vec<(String, NaiveDate, u64)>,
}

/// The validated catalogue: product index and categories.
struct Catalogue {
    index: HashMap<String, u32>,
    category: Vec<u32>,
    categories: usize,
}

/// What the model is made of, however it was counted.
struct Counts {
    buyers: Vec<u32>,
    pairs: HashMap<(u32, u32), u32>,
    /// Decayed purchase lines per product (not yet scaled).
    trending: Vec<f64>,
    unknown_purchases: usize,
}

fn decay_rate(config: &RecommendationConfig) -> f64 {
    std::f64::consts::LN_2 / config.trending_half_life_days.max(1e-9)
}

impl Catalogue {
    fn new(catalog: &[CatalogItem]) -> Result<Self> {
        if catalog.is_empty() {
            return Err(Error::validation(
                "catalog",
                "the product catalogue is empty",
            ));
        }
        let mut index = HashMap::with_capacity(catalog.len());
        let mut category_ids: HashMap<&str, u32> = HashMap::new();
        let mut category = Vec::with_capacity(catalog.len());
        for (i, p) in catalog.iter().enumerate() {
            if !(p.price.is_finite() && p.price >= 0.0) {
                return Err(Error::validation(
                    "price",
                    format!("product {} has price {}", p.id, p.price),
                ));
            }
            if index.insert(p.id.clone(), i as u32).is_some() {
                return Err(Error::validation(
                    "id",
                    format!("duplicate product id {}", p.id),
                ));
            }
            let next = category_ids.len() as u32;
            category.push(*category_ids.entry(p.category.as_str()).or_insert(next));
        }
        Ok(Catalogue {
            index,
            category,
            categories: category_ids.len(),
        })
    }

    fn finish(
        self,
        catalog: &[CatalogItem],
        counts: Counts,
        config: RecommendationConfig,
    ) -> RecommendationEngine {
        let Counts {
            buyers,
            pairs,
            mut trending,
            unknown_purchases,
        } = counts;
        let n = catalog.len();
        let mut neighbours: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for (&(i, j), &count) in &pairs {
            let both = (buyers[i as usize] as f64) * (buyers[j as usize] as f64);
            if count == 0 || both <= 0.0 {
                continue;
            }
            let sim = count as f64 / both.sqrt();
            neighbours[i as usize].push((j, sim as f32));
            neighbours[j as usize].push((i, sim as f32));
        }
        for list in &mut neighbours {
            list.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            list.truncate(config.neighbours);
        }
        let max_trend = trending.iter().cloned().fold(0.0, f64::max);
        if max_trend > 0.0 {
            for t in &mut trending {
                *t /= max_trend;
            }
        }
        let mut trending_order: Vec<u32> = (0..n as u32).collect();
        trending_order.sort_by(|&a, &b| {
            trending[b as usize]
                .total_cmp(&trending[a as usize])
                .then(a.cmp(&b))
        });
        let mut by_price: Vec<u32> = (0..n as u32).collect();
        by_price.sort_by(|&a, &b| {
            catalog[a as usize]
                .price
                .total_cmp(&catalog[b as usize].price)
        });
        let mut price_rank = vec![0.0; n];
        for (rank, &i) in by_price.iter().enumerate() {
            price_rank[i as usize] = if n > 1 {
                rank as f64 / (n - 1) as f64
            } else {
                1.0
            };
        }
        RecommendationEngine {
            products: catalog.to_vec(),
            index: self.index,
            neighbours,
            trending,
            trending_order,
            price_rank,
            category: self.category,
            categories: self.categories,
            unknown_purchases,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 5, d).unwrap()
    }

    fn product(id: &str, category: &str, price: f64) -> CatalogItem {
        CatalogItem {
            id: id.into(),
            category: category.into(),
            price,
        }
    }

    fn customer(id: &str, items: &[&str], d: u32) -> CustomerRecord {
        CustomerRecord {
            user_id: id.into(),
            purchases: items
                .iter()
                .map(|p| ItemPurchase {
                    product_id: p.to_string(),
                    amount: 1.0,
                    date: day(d),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn engine() -> RecommendationEngine {
        let catalog = vec![
            product("a", "x", 10.0),
            product("b", "x", 20.0),
            product("c", "y", 500.0),
            product("d", "y", 5.0),
        ];
        let customers = vec![
            customer("1", &["a", "b"], 1),
            customer("2", &["a", "b", "c"], 1),
            customer("3", &["d"], 30),
            customer("4", &["d", "zzz"], 30),
        ];
        RecommendationEngine::build(&catalog, &customers, day(31), Default::default()).unwrap()
    }

    /// The counts `build` takes from these histories, counted the plain way.
    fn counts_of(customers: &[CustomerRecord]) -> PurchaseCounts {
        use std::collections::{BTreeMap, BTreeSet};
        let mut buyers: BTreeMap<String, u64> = BTreeMap::new();
        let mut pairs: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut days: BTreeMap<(String, NaiveDate), u64> = BTreeMap::new();
        for c in customers {
            let bought: BTreeSet<&String> = c.purchases.iter().map(|p| &p.product_id).collect();
            for &a in &bought {
                *buyers.entry(a.clone()).or_default() += 1;
                for &b in bought.range::<&String, _>(a..).skip(1) {
                    *pairs.entry((a.clone(), b.clone())).or_default() += 1;
                }
            }
            for p in &c.purchases {
                *days.entry((p.product_id.clone(), p.date)).or_default() += 1;
            }
        }
        PurchaseCounts {
            buyers: buyers.into_iter().collect(),
            pairs: pairs.into_iter().map(|((a, b), n)| (a, b, n)).collect(),
            lines_by_day: days.into_iter().map(|((p, d), n)| (p, d, n)).collect(),
        }
    }

    #[test]
    fn the_model_from_counts_is_the_model_from_histories() {
        let catalog = vec![
            product("a", "x", 10.0),
            product("b", "x", 20.0),
            product("c", "y", 500.0),
            product("d", "y", 5.0),
        ];
        let customers = vec![
            customer("1", &["a", "b", "a"], 1),
            customer("2", &["a", "b", "c"], 3),
            customer("3", &["d"], 30),
            customer("4", &["d", "zzz"], 30),
            customer("5", &["c", "d"], 20),
        ];
        let counts = counts_of(&customers);
        let from_histories =
            RecommendationEngine::build(&catalog, &customers, day(31), Default::default()).unwrap();
        let from_counts =
            RecommendationEngine::from_counts(&catalog, &counts, day(31), Default::default())
                .unwrap();
        for p in ["a", "b", "c", "d"] {
            assert_eq!(
                from_histories.similar_products(p, 10).unwrap(),
                from_counts.similar_products(p, 10).unwrap(),
                "{p}"
            );
        }
        let (t1, t2) = (from_histories.trending(4), from_counts.trending(4));
        for (x, y) in t1.iter().zip(&t2) {
            assert_eq!(x.product_id, y.product_id);
            assert!((x.score - y.score).abs() < 1e-12);
        }
        assert_eq!(from_counts.unknown_purchases(), 1);
        for segment in Segment::ALL {
            let history = &customers[0].purchases;
            let a = from_histories.recommend(history, segment, 3);
            let b = from_counts.recommend(history, segment, 3);
            assert_eq!(
                a.iter().map(|r| &r.product_id).collect::<Vec<_>>(),
                b.iter().map(|r| &r.product_id).collect::<Vec<_>>()
            );
        }
        let mut bad = counts;
        bad.pairs.push(("a".into(), "a".into(), 1));
        assert!(matches!(
            RecommendationEngine::from_counts(&catalog, &bad, day(31), Default::default()),
            Err(Error::Validation { field, .. }) if field == "counts"
        ));
    }

    #[test]
    fn cosine_by_hand() {
        let e = engine();
        let sims = e.similar_products("a", 10).unwrap();
        // a and b: bought together by 2 of 2 buyers each → 1; a and c: 1/√(2·1).
        assert_eq!(sims[0].0, "b");
        assert!((sims[0].1 - 1.0).abs() < 1e-6);
        assert!((sims[1].1 - 1.0 / 2f64.sqrt()).abs() < 1e-6);
        assert_eq!(e.unknown_purchases(), 1);
        assert!(matches!(
            e.similar_products("nope", 1),
            Err(Error::NotFound { entity: "product", key }) if key == "nope"
        ));
    }

    #[test]
    fn new_users_get_trending() {
        let e = engine();
        let recs = e.recommend(&[], Segment::Active, 2);
        assert_eq!(recs[0].product_id, "d"); // bought recently, twice
        assert_eq!(recs[0].reason, RecommendationReason::Trending);
        assert_eq!(recs[0].score, 1.0);
    }

    #[test]
    fn strategies_differ_and_exclude_bought() {
        let e = engine();
        let history = customer("u", &["a"], 2).purchases;
        for s in Segment::ALL {
            let recs = e.recommend(&history, s, 10);
            assert!(recs.iter().all(|r| r.product_id != "a"), "{s}");
            assert!(recs.iter().all(|r| (0.0..=1.0).contains(&r.score)), "{s}");
            assert!(recs.windows(2).all(|w| w[0].score >= w[1].score), "{s}");
        }
        assert_eq!(e.recommend(&history, Segment::Active, 1)[0].product_id, "b");
        let score = |s, id: &str| {
            e.recommend(&history, s, 10)
                .into_iter()
                .find(|r| r.product_id == id)
                .map(|r| r.score)
                .unwrap()
        };
        // The expensive product gains for a VIP, the cheap one for a customer at risk.
        assert!(score(Segment::Vip, "c") > score(Segment::Active, "c"));
        assert!(score(Segment::AtRisk, "d") > score(Segment::Active, "d") - 1e-12);
        assert_eq!(e.recommend(&history, Segment::AtRisk, 1)[0].product_id, "b");
        assert!(e.recommend(&history, Segment::Active, 0).is_empty());
        assert_eq!(e.recommend(&history, Segment::Active, usize::MAX).len(), 3);
        assert_eq!(e.recommend(&[], Segment::Active, usize::MAX).len(), 4);
    }

    #[test]
    fn pure_collaborative_filtering() {
        let e = engine();
        let history = customer("u", &["a"], 2).purchases;
        let recs = e.collaborative(&history, 10);
        // Neighbours of a: b (cosine 1), c (1/√2); d was never bought with a, so it is left out.
        let ids: Vec<&str> = recs.iter().map(|r| r.product_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(recs[0].score, 1.0);
        assert!((recs[1].score - 1.0 / 2f64.sqrt()).abs() < 1e-6);
        assert!(recs
            .iter()
            .all(|r| r.reason == RecommendationReason::SimilarItems));
        assert_eq!(e.collaborative(&history, 1).len(), 1);
        assert!(e.collaborative(&history, 0).is_empty());
        assert!(e.collaborative(&[], 10).is_empty());
    }

    #[test]
    fn bad_catalogues() {
        assert!(RecommendationEngine::build(&[], &[], day(1), Default::default()).is_err());
        let dup = vec![product("a", "x", 1.0), product("a", "x", 1.0)];
        assert!(RecommendationEngine::build(&dup, &[], day(1), Default::default()).is_err());
        let nan = vec![product("a", "x", f64::NAN)];
        assert!(RecommendationEngine::build(&nan, &[], day(1), Default::default()).is_err());
    }
}
