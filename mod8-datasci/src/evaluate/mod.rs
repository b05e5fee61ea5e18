//! Offline evaluation of recommendation strategies: split the order history, recommend from
//! the training part, score the lists against the held-out purchases.

mod metrics;
mod split;

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::activity::CustomerRecord;
use crate::engine::AnalyticsEngine;
use crate::error::{Error, Result};
use crate::recommend::{CatalogItem, Recommendation, RecommendationConfig, RecommendationEngine};
use crate::simulate::Rng;

pub use metrics::{
    average_precision_at_k, catalog_coverage, ndcg_at_k, precision_at_k, recall_at_k,
    RankingMetrics,
};
pub use split::{EvaluationSplit, HeldOut, TrainTestSplit};

/// Weight of the collaborative-filtering score in [`RecommendationStrategy::Blend`].
const BLEND_CF: f64 = 0.8;
/// Weight of the popularity score in [`RecommendationStrategy::Blend`].
const BLEND_POPULARITY: f64 = 0.2;

/// A way of picking the top-k products for a customer, compared by
/// [`evaluate_recommendations`]. Every strategy sees only the training purchases and never
/// recommends a product the customer bought in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationStrategy {
    /// k catalogue products drawn uniformly without replacement (seeded, see
    /// [`EvaluationConfig::seed`]): the floor every other strategy should clear.
    Random,
    /// The most-purchased products in training (number of purchases; ties in catalogue order).
    /// Products nobody bought are not recommended. The same list for everyone.
    Popularity,
    /// Item-item collaborative filtering alone: [`RecommendationEngine::collaborative`]
    /// (cosine similarity of co-purchases, no fill-up, so lists can be shorter than k).
    ItemCf,
    /// The segment strategy: [`RecommendationEngine::recommend`] with the customer's segment
    /// from [`AnalyticsEngine::heuristic`] on their training history as of the evaluation day.
    Segment,
    /// `0.8 × CF + 0.2 × popularity`, where CF is the [`RecommendationStrategy::ItemCf`] score
    /// (best candidate = 1) and popularity is the training purchase count over the largest
    /// count. CF ranks; popularity breaks CF's near-ties and fills the list up to k.
    Blend,
}

impl RecommendationStrategy {
    /// Every strategy, in report order.
    pub const ALL: [RecommendationStrategy; 5] = [
        RecommendationStrategy::Random,
        RecommendationStrategy::Popularity,
        RecommendationStrategy::ItemCf,
        RecommendationStrategy::Segment,
        RecommendationStrategy::Blend,
    ];

    /// Lower-case name (`"random"`, `"popularity"`, `"item_cf"`, `"segment"`, `"blend"`), as
    /// in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecommendationStrategy::Random => "random",
            RecommendationStrategy::Popularity => "popularity",
            RecommendationStrategy::ItemCf => "item_cf",
            RecommendationStrategy::Segment => "segment",
            RecommendationStrategy::Blend => "blend",
        }
    }
}

impl std::fmt::Display for RecommendationStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`EvaluationConfig::evaluate`] does: the split, the cut-off k, the evaluation day, the
/// random strategy's seed and the engine tuning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvaluationConfig {
    /// How purchases are held out.
    pub split: EvaluationSplit,
    /// Recommendations scored per customer (the k of every metric).
    pub k: usize,
    /// The day the models are built and customers segmented as of (trending decay, segment
    /// recency). For a time split, pass the cut-off.
    pub as_of: NaiveDate,
    /// Seed of the random strategy. Default 0.
    pub seed: u64,
    /// Tuning of the [`RecommendationEngine`] behind the CF, segment and blend strategies.
    pub recommendation: RecommendationConfig,
}

impl EvaluationConfig {
    /// A configuration with seed 0 and the default engine tuning.
    pub fn new(split: EvaluationSplit, k: usize, as_of: NaiveDate) -> Self {
        EvaluationConfig {
            split,
            k,
            as_of,
            seed: 0,
            recommendation: RecommendationConfig::default(),
        }
    }

    /// Replaces the random strategy's seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Replaces the engine tuning.
    pub fn with_recommendation_config(mut self, config: RecommendationConfig) -> Self {
        self.recommendation = config;
        self
    }

    /// Splits `customers`, builds every strategy on the training purchases and scores each
    /// strategy's top-k lists against the held-out purchases.
    ///
    /// A customer is a test customer when the split holds out purchases of theirs and at least
    /// one held-out product is *new to them*: in the catalogue and not bought in training
    /// (strategies never recommend what the customer already bought, so repeat purchases are
    /// not relevance). The relevant set is those new products; the metrics
    /// ([`RankingMetrics`]) are averaged over test customers with equal weight, and coverage
    /// is [`catalog_coverage`] of all their lists. Deterministic for a given configuration.
    ///
    /// # Errors
    ///
    /// - [`Error::Validation`] for `k = 0` (`"k"`), an empty catalogue (`"catalog"`), a
    ///   leave-last-out split with k = 0 (`"split.k"`), a split that leaves no test customer
    ///   (`"split"`), and duplicate ids or bad prices in the catalogue (`"id"`, `"price"`, as
    ///   [`RecommendationEngine::build`]);
    /// - [`Error::EmptyInput`] for no customers.
    pub fn evaluate(
        &self,
        catalog: &[CatalogItem],
        customers: &[CustomerRecord],
    ) -> Result<EvaluationReport> {
        let k = self.k;
        metrics::check_k(k)?;
        if catalog.is_empty() {
            return Err(Error::validation(
                "catalog",
                "the product catalogue is empty",
            ));
        }
        if customers.is_empty() {
            return Err(Error::EmptyInput {
                what: "customers: no order history to evaluate recommendations on".into(),
            });
        }
        let split = self.split.apply(customers)?;
        let engine =
            RecommendationEngine::build(catalog, &split.train, self.as_of, self.recommendation)?;
        let n = catalog.len();
        let index: HashMap<&str, u32> = catalog
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i as u32))
            .collect();
        let lookup = |id: &str| index.get(id).copied();

        // Popularity: training purchase counts, best first, ties in catalogue order.
        let mut counts = vec![0u64; n];
        let mut training_purchases = 0;
        for c in &split.train {
            training_purchases += c.purchases.len();
            for i in c.purchases.iter().filter_map(|p| lookup(&p.product_id)) {
                counts[i as usize] += 1;
            }
        }
        let mut popular: Vec<u32> = (0..n as u32).filter(|&i| counts[i as usize] > 0).collect();
        popular.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
        let max_count = counts.iter().copied().max().unwrap_or(0).max(1) as f64;

        let analytics = AnalyticsEngine::heuristic();
        let mut rng = Rng::new(self.seed);
        let mut totals: Vec<Totals> = RecommendationStrategy::ALL
            .iter()
            .map(|_| Totals::new(n))
            .collect();
        let (mut test_customers, mut held_out_purchases, mut relevant_items) = (0, 0, 0);
        for held in &split.held_out {
            let Some(record) = split.train.get(held.customer) else {
                continue;
            };
            held_out_purchases += held.purchases.len();
            let bought: HashSet<u32> = record
                .purchases
                .iter()
                .filter_map(|p| lookup(&p.product_id))
                .collect();
            let mut relevant: Vec<u32> = held
                .purchases
                .iter()
                .filter_map(|p| lookup(&p.product_id))
                .filter(|i| !bought.contains(i))
                .collect();
            relevant.sort_unstable();
            relevant.dedup();
            if relevant.is_empty() {
                continue;
            }
            test_customers += 1;
            relevant_items += relevant.len();
            let ids = |recs: Vec<Recommendation>| -> Vec<u32> {
                recs.iter().filter_map(|r| lookup(&r.product_id)).collect()
            };
            let not_bought = |i: &u32| !bought.contains(i);
            for (strategy, total) in RecommendationStrategy::ALL.iter().zip(&mut totals) {
                let list: Vec<u32> = match strategy {
                    RecommendationStrategy::Random => random_pick(&mut rng, n, &bought, k),
                    RecommendationStrategy::Popularity => {
                        popular.iter().copied().filter(not_bought).take(k).collect()
                    }
                    RecommendationStrategy::ItemCf => {
                        ids(engine.collaborative(&record.purchases, k))
                    }
                    RecommendationStrategy::Segment => {
                        let segment = analytics.profile_customer(record, self.as_of)?.segment;
                        ids(engine.recommend(&record.purchases, segment, k))
                    }
                    RecommendationStrategy::Blend => {
                        let cf = engine.collaborative(&record.purchases, usize::MAX);
                        let mut scores: HashMap<u32, f64> = HashMap::new();
                        for r in &cf {
                            if let Some(i) = lookup(&r.product_id) {
                                scores.insert(i, BLEND_CF * r.score);
                            }
                        }
                        // Items outside CF score popularity only: the first k unbought
                        // popular ones are all that can reach the top k.
                        for &i in popular.iter().filter(|i| not_bought(i)).take(k) {
                            scores.entry(i).or_insert(0.0);
                        }
                        let mut ranked: Vec<(f64, u32)> = scores
                            .into_iter()
                            .map(|(i, s)| {
                                (
                                    s + BLEND_POPULARITY * counts[i as usize] as f64 / max_count,
                                    i,
                                )
                            })
                            .filter(|&(s, _)| s > 0.0)
                            .collect();
                        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                        ranked.into_iter().take(k).map(|(_, i)| i).collect()
                    }
                };
                total.add(&list, &relevant, k)?;
            }
        }
        if test_customers == 0 {
            return Err(Error::validation(
                "split",
                format!(
                    "the {} leaves no test customer (none has both training purchases and a \
                     held-out purchase of a catalogue product new to them)",
                    self.split
                ),
            ));
        }
        let rows = RecommendationStrategy::ALL
            .iter()
            .zip(&totals)
            .map(|(&strategy, t)| t.scores(strategy, test_customers))
            .collect();
        Ok(EvaluationReport {
            split: self.split,
            k,
            as_of: self.as_of,
            seed: self.seed,
            catalog_items: n,
            customers: customers.len(),
            test_customers,
            training_purchases,
            held_out_purchases,
            relevant_items,
            rows,
        })
    }
}

/// Evaluates every [`RecommendationStrategy`] on `customers` with `split`, top-`k` lists and
/// models built as of `as_of` (random seed 0, default engine tuning): the library call behind
/// `mod8 recs eval`. Equivalent to
/// `EvaluationConfig::new(split, k, as_of).evaluate(catalog, customers)`; see
/// [`EvaluationConfig::evaluate`] for what is measured and the errors.
///
/// ```
/// use mod8_datasci::{
///     evaluate_recommendations, CatalogItem, CustomerRecord, EvaluationSplit, ItemPurchase,
///     NaiveDate, RecommendationStrategy,
/// };
/// let day = |d| NaiveDate::from_ymd_opt(2024, 5, d).unwrap();
/// let catalog: Vec<CatalogItem> = ["a", "b", "c", "d"]
///     .iter()
///     .map(|id| CatalogItem { id: id.to_string(), category: "books".into(), price: 10.0 })
///     .collect();
/// // Two customers buy a, b, then c; two buy a, c, then b. The last purchase is held out.
/// let orders = [["a", "b", "c"], ["a", "b", "c"], ["a", "c", "b"], ["a", "c", "b"]];
/// let customers: Vec<CustomerRecord> = orders
///     .iter()
///     .enumerate()
///     .map(|(u, items)| CustomerRecord {
///         user_id: format!("u{u}"),
///         purchases: (1..)
///             .zip(items)
///             .map(|(d, p)| ItemPurchase { product_id: p.to_string(), amount: 10.0, date: day(d) })
///             .collect(),
///         ..Default::default()
///     })
///     .collect();
/// let report = evaluate_recommendations(&catalog, &customers, EvaluationSplit::leave_last_out(1), 2, day(4))?;
/// assert_eq!(report.test_customers, 4);
/// println!("{report}"); // summary line and a Markdown table, one row per strategy
/// // "c" was bought with "a" in training, so CF ranks it first for the a, b buyers (and "b"
/// // for the a, c buyers): every held-out product at rank 1.
/// let cf = report.row(RecommendationStrategy::ItemCf).unwrap();
/// assert_eq!((cf.ndcg, cf.recall, cf.precision), (1.0, 1.0, 0.5));
/// assert!(report.to_json().starts_with(r#"{"split":{"kind":"leave_last_out","k":1},"k":2,"#));
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
///
/// # Errors
///
/// As [`EvaluationConfig::evaluate`].
pub fn evaluate_recommendations(
    catalog: &[CatalogItem],
    customers: &[CustomerRecord],
    split: EvaluationSplit,
    k: usize,
    as_of: NaiveDate,
) -> Result<EvaluationReport> {
    EvaluationConfig::new(split, k, as_of).evaluate(catalog, customers)
}

/// `k` distinct catalogue indices not in `bought`, uniformly (all of them, shuffled, when fewer
/// remain).
fn random_pick(rng: &mut Rng, n: usize, bought: &HashSet<u32>, k: usize) -> Vec<u32> {
    let available = n - bought.len().min(n);
    if available <= k.saturating_mul(2) {
        let mut pool: Vec<u32> = (0..n as u32).filter(|i| !bought.contains(i)).collect();
        // Partial Fisher–Yates: the first min(k, len) places are a uniform sample.
        let take = k.min(pool.len());
        for i in 0..take {
            let j = i + rng.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(take);
        return pool;
    }
    // More than 2k candidates: rejection sampling stays cheap.
    let mut picked = Vec::with_capacity(k);
    while picked.len() < k {
        let i = rng.below(n as u64) as u32;
        if !bought.contains(&i) && !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked
}

/// Running sums of one strategy's metrics.
struct Totals {
    sum: RankingMetrics,
    listed: usize,
    covered: Vec<bool>,
}

impl Totals {
    fn new(n: usize) -> Self {
        Totals {
            sum: RankingMetrics::default(),
            listed: 0,
            covered: vec![false; n],
        }
    }

    fn add(&mut self, list: &[u32], relevant: &[u32], k: usize) -> Result<()> {
        let m = RankingMetrics::at_k(list, relevant, k)?;
        self.sum.precision += m.precision;
        self.sum.recall += m.recall;
        self.sum.average_precision += m.average_precision;
        self.sum.ndcg += m.ndcg;
        self.listed += list.len().min(k);
        for &i in list.iter().take(k) {
            if let Some(c) = self.covered.get_mut(i as usize) {
                *c = true;
            }
        }
        Ok(())
    }

    fn scores(&self, strategy: RecommendationStrategy, customers: usize) -> StrategyScores {
        let per = |x: f64| x / customers as f64;
        StrategyScores {
            strategy,
            precision: per(self.sum.precision),
            recall: per(self.sum.recall),
            map: per(self.sum.average_precision),
            ndcg: per(self.sum.ndcg),
            coverage: self.covered.iter().filter(|&&c| c).count() as f64
                / self.covered.len().max(1) as f64,
            mean_list_length: per(self.listed as f64),
        }
    }
}

/// One strategy's scores at k, averaged over test customers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StrategyScores {
    /// The strategy.
    pub strategy: RecommendationStrategy,
    /// Mean precision@k.
    pub precision: f64,
    /// Mean recall@k.
    pub recall: f64,
    /// MAP@k: mean average precision at k.
    pub map: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Share of catalogue items in at least one test customer's top-k list.
    pub coverage: f64,
    /// Mean length of the lists (at most k; pure CF can return fewer).
    pub mean_list_length: f64,
}

/// The result of [`evaluate_recommendations`]: what was evaluated and one row per strategy.
///
/// `Display` prints a one-line summary and [`EvaluationReport::to_table`]; serde (and
/// [`EvaluationReport::to_json`]) gives the same numbers as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    /// The split used.
    pub split: EvaluationSplit,
    /// The cut-off of every metric.
    pub k: usize,
    /// The day models were built as of.
    pub as_of: NaiveDate,
    /// Seed of the random strategy.
    pub seed: u64,
    /// Products in the catalogue.
    pub catalog_items: usize,
    /// Customers given.
    pub customers: usize,
    /// Customers scored (see [`EvaluationConfig::evaluate`]).
    pub test_customers: usize,
    /// Purchases the strategies were built on.
    pub training_purchases: usize,
    /// Held-out purchases of the customers with training history (repeat purchases included).
    pub held_out_purchases: usize,
    /// Relevant (held-out, new to the customer) products summed over test customers.
    pub relevant_items: usize,
    /// One row per strategy, in [`RecommendationStrategy::ALL`] order.
    pub rows: Vec<StrategyScores>,
}

impl EvaluationReport {
    /// The row of `strategy`.
    pub fn row(&self, strategy: RecommendationStrategy) -> Option<&StrategyScores> {
        self.rows.iter().find(|r| r.strategy == strategy)
    }

    /// A Markdown table, one row per strategy, metrics with 4 decimals:
    ///
    /// ```text
    /// | strategy | precision@10 | recall@10 | MAP@10 | NDCG@10 | coverage | mean list |
    /// |---|---:|---:|---:|---:|---:|---:|
    /// | random | 0.0032 | 0.0316 | 0.0077 | 0.0131 | 1.0000 | 10.0 |
    /// | item_cf | 0.0721 | 0.7210 | 0.4501 | 0.5164 | 1.0000 | 10.0 |
    /// ```
    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let k = self.k;
        let mut out = format!(
            "| strategy | precision@{k} | recall@{k} | MAP@{k} | NDCG@{k} | coverage | mean list |\n\
             |---|---:|---:|---:|---:|---:|---:|\n"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.1} |",
                r.strategy, r.precision, r.recall, r.map, r.ndcg, r.coverage, r.mean_list_length
            );
        }
        out
    }

    /// The report as JSON (the serde shape).
    pub fn to_json(&self) -> String {
        // Plain numbers and strings: serialisation cannot fail (NaN would become `null`).
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl std::fmt::Display for EvaluationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}, k = {}, as of {}: {} test customers of {}, {} catalogue items, {} training \
             purchases, {} relevant held-out items",
            self.split,
            self.k,
            self.as_of,
            self.test_customers,
            self.customers,
            self.catalog_items,
            self.training_purchases,
            self.relevant_items
        )?;
        writeln!(f)?;
        f.write_str(&self.to_table())
    }
}
