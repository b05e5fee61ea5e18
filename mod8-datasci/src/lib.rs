#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod activity;
mod bgbb;
mod bgnbd;
#[cfg(feature = "charts")]
mod charts;
mod clv;
mod engagement;
mod engine;
mod error;
mod evaluate;
mod forecast;
mod gamma_gamma;
mod grouping;
mod hyp2f1;
mod insights;
mod mbgnbd;
mod opportunity;
mod optimize;
mod parallel;
mod pareto_nbd;
mod predictor;
mod purchase;
mod recommend;
mod rfm;
mod segment;
pub mod simulate;
pub mod special;
mod summary;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod transactions;
mod value;

/// Re-exported so callers can build inputs without depending on chrono themselves.
pub use chrono::NaiveDate;

pub use activity::{ActivityCounts, CustomerActivity, CustomerRecord, ItemPurchase, PurchaseStats};
pub use bgbb::{BgBb, BgBbFit, BgBbObservation};
pub use bgnbd::{BgNbd, BgNbdFit};
#[cfg(feature = "charts")]
#[cfg_attr(docsrs, doc(cfg(feature = "charts")))]
pub use charts::{
    render_calibration_holdout, render_clv_charts, render_clv_distribution,
    render_expected_purchases_matrix, render_model_expected_purchases_matrix,
    render_model_probability_alive_matrix, render_probability_alive_matrix, render_segment_chart,
    render_segment_distribution, render_transaction_charts, ChartFormat, ClvChartSet,
};
pub use clv::{
    evaluate_holdout, write_predictions_csv, BgNbdReport, ClvFit, ClvModel, ClvOptions,
    CustomerPrediction, FitReport, HoldoutBucket, HoldoutEvaluation, HoldoutPeriod,
};
pub use engagement::EngagementWeights;
pub use engine::{AnalyticsEngine, CustomerProfile};
pub use error::{BoxError, Error, Result};
pub use evaluate::{
    average_precision_at_k, catalog_coverage, evaluate_recommendations, ndcg_at_k, precision_at_k,
    recall_at_k, EvaluationConfig, EvaluationReport, EvaluationSplit, HeldOut, RankingMetrics,
    RecommendationStrategy, StrategyScores, TrainTestSplit,
};
pub use gamma_gamma::{GammaGamma, GammaGammaFit};
pub use insights::{InsightsGenerator, SegmentReport, SegmentReportBuilder, SegmentStats};
pub use mbgnbd::{MbgNbd, MbgNbdFit};
pub use opportunity::{
    predict_bgbb, read_bgbb_summary, write_bgbb_predictions_csv, BgBbCustomer, BgBbPrediction,
    BgBbSummary,
};
pub use pareto_nbd::{ParetoNbd, ParetoNbdFit};
pub use predictor::{Prediction, PredictionKind, PredictionValue, Predictor};
pub use purchase::{aic, bic, HoldoutError, PurchaseModel, PurchaseModelFit, PurchaseModelKind};
pub use recommend::{
    CatalogItem, PurchaseCounts, Recommendation, RecommendationConfig, RecommendationEngine,
    RecommendationReason,
};
pub use rfm::{holdout_purchases, CustomerSummary, Rfm, RfmSummary, DAYS_PER_WEEK};
pub use segment::{Segment, SegmentSignals, SegmentThresholds};
pub use summary::{read_summary, read_summary_file};
pub use transactions::{
    activity_by_customer, read_transactions, read_transactions_file, ReadOptions, Transaction,
};
pub use value::{
    heuristic_churn, CustomerValueModel, HeuristicModel, ProbabilisticModel, ValueAssessment,
};
