#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod bgbb;
mod bgnbd;
#[cfg(feature = "charts")]
pub mod charts;
mod clv;
mod error;
mod gamma_gamma;
mod hyp2f1;
mod insights;
mod mbgnbd;
mod ml;
mod optimize;
mod pareto_nbd;
mod profile;
mod recommend;
mod rfm;
mod segment;
pub mod simulate;
pub mod special;
#[cfg(feature = "testing")]
pub mod testing;
mod transactions;

/// Re-exported so callers can build inputs without depending on chrono themselves.
pub use chrono::NaiveDate;

pub use bgbb::{BgBb, BgBbFit, BgBbObservation};
pub use bgnbd::{BgNbd, BgNbdFit};
pub use clv::{
    evaluate_holdout, write_predictions_csv, BgNbdReport, ClvFit, ClvModel, ClvOptions,
    CustomerPrediction, FitReport, HoldoutBucket, HoldoutEvaluation,
};
pub use error::{Error, Result};
pub use gamma_gamma::{GammaGamma, GammaGammaFit};
pub use insights::{InsightsGenerator, SegmentReport, SegmentStats};
pub use mbgnbd::{MbgNbd, MbgNbdFit};
pub use ml::{MLModelManager, Prediction, PredictionValue};
pub use pareto_nbd::{ParetoNbd, ParetoNbdFit};
pub use profile::{
    heuristic_churn, AnalyticsEngine, CustomerValueModel, EngagementWeights, HeuristicModel,
    ProbabilisticModel, UserProfile, ValueAssessment,
};
pub use recommend::{
    Product, Recommendation, RecommendationConfig, RecommendationEngine, RecommendationReason,
};
pub use rfm::{holdout_purchases, CustomerSummary, Rfm, RfmSummary, DAYS_PER_WEEK};
pub use segment::{
    ActivityCounts, CustomerRecord, PredictionKind, Purchase, PurchaseStats, Segment,
    SegmentThresholds, UserActivity,
};
pub use transactions::{
    activity_by_customer, read_transactions, read_transactions_file, Transaction,
};
