//! Offline evaluation of recommendation strategies: split the order history, recommend from
//! the training part, score the lists against the held-out purchases.

mod metrics;
mod split;

pub use metrics::{
    average_precision_at_k, catalog_coverage, ndcg_at_k, precision_at_k, recall_at_k,
    RankingMetrics,
};
pub use split::{EvaluationSplit, HeldOut, TrainTestSplit};
