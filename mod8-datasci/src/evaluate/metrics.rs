//! Ranking metrics at a cut-off k with binary relevance, and catalogue coverage.
//!
//! For one customer with a recommendation list `L` (best first) and a set `R` of relevant
//! items, with `relᵢ = 1` when the i-th item of `L` is in `R` (and was not already counted
//! higher up the list) and 0 otherwise, summing over the first `min(k, |L|)` positions:
//!
//! | metric | definition |
//! |---|---|
//! | precision@k | `Σ relᵢ / k` |
//! | recall@k | `Σ relᵢ / |R|` |
//! | AP@k (MAP@k is its mean over customers) | `Σ relᵢ · precision@i / min(k, |R|)` |
//! | NDCG@k | `DCG@k / IDCG@k` with `DCG@k = Σ relᵢ / log₂(i + 1)` and `IDCG@k = Σ_{i=1}^{min(k, |R|)} 1 / log₂(i + 1)` |
//!
//! Conventions: precision divides by `k` even when fewer than `k` items were recommended (a short
//! list is not rewarded for being short); items past position `k` are ignored; an item repeated
//! in `L` counts once, at its first position; with no relevant item (`R` empty) every metric is
//! 0. All four lie in [0, 1] and are 1 for a perfect list.

use std::collections::HashSet;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The four ranking metrics of one recommendation list at k (see the module formulas:
/// [`precision_at_k`], [`recall_at_k`], [`average_precision_at_k`], [`ndcg_at_k`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    /// Hits in the top k divided by k.
    pub precision: f64,
    /// Hits in the top k divided by the number of relevant items.
    pub recall: f64,
    /// Average precision at k (its mean over customers is MAP@k).
    pub average_precision: f64,
    /// Normalised discounted cumulative gain at k.
    pub ndcg: f64,
}

impl RankingMetrics {
    /// All four metrics of `recommended` (best first) against the `relevant` items at `k`.
    ///
    /// ```
    /// use mod8_datasci::RankingMetrics;
    /// // Hits at ranks 1 and 3, one relevant item ("f") missed.
    /// let m = RankingMetrics::at_k(&["a", "b", "c", "d", "e"], &["a", "c", "f"], 5)?;
    /// assert_eq!(m.precision, 0.4);
    /// assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
    /// assert!((m.average_precision - 5.0 / 9.0).abs() < 1e-12); // (1/1 + 2/3) / 3
    /// # Ok::<(), mod8_datasci::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] (`field` `"k"`) for `k = 0`.
    pub fn at_k<T: Eq + Hash>(recommended: &[T], relevant: &[T], k: usize) -> Result<Self> {
        check_k(k)?;
        let relevant: HashSet<&T> = relevant.iter().collect();
        if relevant.is_empty() {
            return Ok(RankingMetrics::default());
        }
        let mut seen: HashSet<&T> = HashSet::with_capacity(k.min(recommended.len()));
        let (mut hits, mut precision_sum, mut dcg) = (0usize, 0.0f64, 0.0f64);
        for (i, item) in recommended.iter().take(k).enumerate() {
            if !seen.insert(item) || !relevant.contains(item) {
                continue;
            }
            hits += 1;
            let rank = (i + 1) as f64;
            precision_sum += hits as f64 / rank;
            dcg += 1.0 / (rank + 1.0).log2();
        }
        let ideal = k.min(relevant.len());
        let idcg: f64 = (1..=ideal).map(|i| 1.0 / (i as f64 + 1.0).log2()).sum();
        Ok(RankingMetrics {
            precision: hits as f64 / k as f64,
            recall: hits as f64 / relevant.len() as f64,
            average_precision: precision_sum / ideal as f64,
            ndcg: dcg / idcg,
        })
    }
}

/// precision@k = hits in the first `k` recommendations / `k` (binary relevance; a list shorter
/// than `k` still divides by `k`; 0 without relevant items).
///
/// # Errors
///
/// [`Error::Validation`] (`field` `"k"`) for `k = 0`.
pub fn precision_at_k<T: Eq + Hash>(recommended: &[T], relevant: &[T], k: usize) -> Result<f64> {
    Ok(RankingMetrics::at_k(recommended, relevant, k)?.precision)
}

/// recall@k = hits in the first `k` recommendations / number of relevant items (0 without
/// relevant items).
///
/// # Errors
///
/// [`Error::Validation`] (`field` `"k"`) for `k = 0`.
pub fn recall_at_k<T: Eq + Hash>(recommended: &[T], relevant: &[T], k: usize) -> Result<f64> {
    Ok(RankingMetrics::at_k(recommended, relevant, k)?.recall)
}

/// AP@k = Σᵢ relᵢ · precision@i / min(k, |R|) over the first `k` positions: the mean over
/// customers is MAP@k (0 without relevant items).
///
/// # Errors
///
/// [`Error::Validation`] (`field` `"k"`) for `k = 0`.
pub fn average_precision_at_k<T: Eq + Hash>(
    recommended: &[T],
    relevant: &[T],
    k: usize,
) -> Result<f64> {
    Ok(RankingMetrics::at_k(recommended, relevant, k)?.average_precision)
}

/// NDCG@k = DCG@k / IDCG@k with DCG@k = Σᵢ relᵢ / log₂(i + 1) over the first `k` positions and
/// IDCG@k the DCG of a list with all min(k, |R|) relevant items on top (0 without relevant
/// items).
///
/// # Errors
///
/// [`Error::Validation`] (`field` `"k"`) for `k = 0`.
pub fn ndcg_at_k<T: Eq + Hash>(recommended: &[T], relevant: &[T], k: usize) -> Result<f64> {
    Ok(RankingMetrics::at_k(recommended, relevant, k)?.ndcg)
}

/// Catalogue coverage at k: the share of `catalog` items that appear in the first `k` items of
/// at least one list. Items not in `catalog` are ignored.
///
/// ```
/// use mod8_datasci::catalog_coverage;
/// let catalog = ["a", "b", "c", "d"];
/// let lists = [vec!["a", "b", "c"], vec!["a", "d"]];
/// assert_eq!(catalog_coverage(&lists, &catalog, 1)?, 0.25); // only "a"
/// assert_eq!(catalog_coverage(&lists, &catalog, 2)?, 0.75); // a, b, d
/// # Ok::<(), mod8_datasci::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Validation`] for `k = 0` (`field` `"k"`) or an empty catalogue (`"catalog"`).
pub fn catalog_coverage<T: Eq + Hash>(lists: &[Vec<T>], catalog: &[T], k: usize) -> Result<f64> {
    check_k(k)?;
    let catalog: HashSet<&T> = catalog.iter().collect();
    if catalog.is_empty() {
        return Err(Error::validation(
            "catalog",
            "the product catalogue is empty",
        ));
    }
    let covered: HashSet<&T> = lists
        .iter()
        .flat_map(|list| list.iter().take(k))
        .filter(|item| catalog.contains(item))
        .collect();
    Ok(covered.len() as f64 / catalog.len() as f64)
}

pub(super) fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::validation(
            "k",
            "the cut-off k must be at least 1 recommendation",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    fn metrics(recommended: &[&str], relevant: &[&str], k: usize) -> RankingMetrics {
        RankingMetrics::at_k(recommended, relevant, k).unwrap()
    }

    // log₂ 3, the discount of rank 2.
    const LOG2_3: f64 = 1.584_962_500_721_156_2;

    #[test]
    fn two_hits_in_five() {
        // Relevant a, c, f; hits at ranks 1 and 3.
        let m = metrics(&["a", "b", "c", "d", "e"], &["a", "c", "f"], 5);
        close(m.precision, 2.0 / 5.0);
        close(m.recall, 2.0 / 3.0);
        // (1/1 + 2/3) / min(5, 3)
        close(m.average_precision, (1.0 + 2.0 / 3.0) / 3.0);
        // DCG = 1/log₂2 + 1/log₂4 = 1.5; IDCG = 1 + 1/log₂3 + 1/log₂4.
        close(m.ndcg, 1.5 / (1.0 + 1.0 / LOG2_3 + 0.5));
        // The free functions agree.
        let (rec, rel) = (["a", "b", "c", "d", "e"], ["a", "c", "f"]);
        close(precision_at_k(&rec, &rel, 5).unwrap(), m.precision);
        close(recall_at_k(&rec, &rel, 5).unwrap(), m.recall);
        close(
            average_precision_at_k(&rec, &rel, 5).unwrap(),
            m.average_precision,
        );
        close(ndcg_at_k(&rec, &rel, 5).unwrap(), m.ndcg);
    }

    #[test]
    fn cut_off_ignores_the_tail() {
        // Same lists at k = 2: only "a" (rank 1) counts.
        let m = metrics(&["a", "b", "c", "d", "e"], &["a", "c", "f"], 2);
        close(m.precision, 1.0 / 2.0);
        close(m.recall, 1.0 / 3.0);
        close(m.average_precision, 1.0 / 2.0); // 1/1 / min(2, 3)
        close(m.ndcg, 1.0 / (1.0 + 1.0 / LOG2_3));
    }

    #[test]
    fn fewer_recommendations_than_k() {
        // Two recommendations at k = 5, the single relevant item at rank 2.
        let m = metrics(&["x", "a"], &["a"], 5);
        close(m.precision, 1.0 / 5.0); // still divided by k
        close(m.recall, 1.0);
        close(m.average_precision, 1.0 / 2.0); // precision@2 / min(5, 1)
        close(m.ndcg, 1.0 / LOG2_3); // (1/log₂3) / (1/log₂2)
        assert_eq!(metrics(&[], &["a"], 5), RankingMetrics::default());
    }

    #[test]
    fn no_relevant_items_scores_zero() {
        assert_eq!(metrics(&["a", "b"], &[], 2), RankingMetrics::default());
        assert_eq!(metrics(&[], &[], 3), RankingMetrics::default());
        // Relevant items exist but none was recommended.
        assert_eq!(metrics(&["a", "b"], &["c"], 2), RankingMetrics::default());
    }

    #[test]
    fn perfect_list_scores_one() {
        let m = metrics(&["b", "a"], &["a", "b"], 2);
        assert_eq!(
            m,
            RankingMetrics {
                precision: 1.0,
                recall: 1.0,
                average_precision: 1.0,
                ndcg: 1.0
            }
        );
        // More relevant items than k: precision, AP and NDCG can still be 1, recall cannot.
        let m = metrics(&["a", "b"], &["a", "b", "c", "d"], 2);
        close(m.precision, 1.0);
        close(m.recall, 0.5);
        close(m.average_precision, 1.0);
        close(m.ndcg, 1.0);
    }

    #[test]
    fn repeated_items_count_once() {
        // "a" twice: the second one is not a hit; "b" at rank 3 is.
        let m = metrics(&["a", "a", "b"], &["a", "b", "a"], 3);
        close(m.precision, 2.0 / 3.0);
        close(m.recall, 1.0);
        close(m.average_precision, (1.0 + 2.0 / 3.0) / 2.0);
        close(m.ndcg, 1.5 / (1.0 + 1.0 / LOG2_3));
    }

    #[test]
    fn coverage_by_hand() {
        let catalog: Vec<String> = ('a'..='j').map(String::from).collect();
        let lists = vec![
            vec!["a".to_string(), "b".into(), "c".into()],
            vec!["a".into(), "d".into(), "zz".into()],
        ];
        close(catalog_coverage(&lists, &catalog, 2).unwrap(), 3.0 / 10.0);
        // "zz" is not in the catalogue.
        close(catalog_coverage(&lists, &catalog, 3).unwrap(), 4.0 / 10.0);
        close(catalog_coverage::<String>(&[], &catalog, 3).unwrap(), 0.0);
    }

    #[test]
    fn bad_arguments() {
        for e in [
            RankingMetrics::at_k(&["a"], &["a"], 0).unwrap_err(),
            catalog_coverage(&[vec!["a"]], &["a"], 0).unwrap_err(),
        ] {
            assert!(
                matches!(e, Error::Validation { ref field, .. } if field == "k"),
                "{e}"
            );
        }
        let e = catalog_coverage(&[vec!["a"]], &[], 1).unwrap_err();
        assert!(matches!(e, Error::Validation { ref field, .. } if field == "catalog"));
    }
}
