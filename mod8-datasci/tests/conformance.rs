//! The `CustomerValueModel` conformance suite on both tiers, directly and through `Arc`.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;

use mod8_datasci::{BgNbd, ClvModel, GammaGamma, HeuristicModel, ProbabilisticModel};

fn cdnow_model() -> ProbabilisticModel {
    ProbabilisticModel::new(
        ClvModel::new(
            BgNbd::new(0.2426, 4.4135, 0.7929, 2.4258).unwrap(),
            GammaGamma::new(6.2488, 3.7446, 15.4477).unwrap(),
        )
        .unwrap(),
    )
}

mod8_datasci::conformance_tests!(heuristic, HeuristicModel::default());
mod8_datasci::conformance_tests!(probabilistic, cdnow_model());
mod8_datasci::conformance_tests!(
    shared_heuristic,
    Arc::new(HeuristicModel::default()) as Arc<dyn mod8_datasci::CustomerValueModel>
);
