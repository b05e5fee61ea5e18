//! The conformance suite every [`CustomerValueModel`] must pass (feature `testing`).
//!
//! Each case is a plain function over `&dyn CustomerValueModel`; [`conformance_tests!`] emits
//! one named `#[test]` per case for a model built by the given expression:
//!
//! ```text
//! mod8_datasci::conformance_tests!(heuristic, mod8_datasci::HeuristicModel::default());
//! ```
//!
//! [`conformance_tests!`]: crate::conformance_tests

use chrono::NaiveDate;

use crate::activity::{CustomerActivity, PurchaseStats};
use crate::value::CustomerValueModel;

fn day(offset: i64) -> NaiveDate {
    // 2024-01-01 plus `offset` days; offsets used here stay within 2023–2025.
    NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::TimeDelta::days(offset)))
        .unwrap_or(NaiveDate::MIN)
}

fn buyer(count: u32, first: i64, last: i64, total: f64) -> CustomerActivity {
    CustomerActivity {
        last_active: Some(day(last)),
        purchases: PurchaseStats {
            count,
            total_amount: total,
            first_amount: total / count.max(1) as f64,
            first: Some(day(first)),
            last: Some(day(last)),
        },
        ..Default::default()
    }
}

/// Churn risk is a probability for every kind of user, and lifetime value finite and ≥ 0.
pub fn case_outputs_in_range(model: &dyn CustomerValueModel) {
    let as_of = day(400);
    let users = [
        CustomerActivity::default(),
        CustomerActivity {
            last_active: Some(day(399)),
            ..Default::default()
        },
        buyer(1, 10, 10, 20.0),
        buyer(2, 10, 300, 80.0),
        buyer(30, 0, 399, 3000.0),
        buyer(5, 0, 50, 0.0),
    ];
    for u in &users {
        let churn = model.churn_risk(u, as_of);
        assert!(
            (0.0..=1.0).contains(&churn),
            "{}: churn {churn} for {u:?}",
            model.name()
        );
        let ltv = model.lifetime_value(u, as_of).expect("lifetime value");
        assert!(
            ltv.is_finite() && ltv >= 0.0,
            "{}: ltv {ltv} for {u:?}",
            model.name()
        );
    }
}

/// Without purchases: no lifetime value and no next purchase.
pub fn case_no_purchases(model: &dyn CustomerValueModel) {
    let u = CustomerActivity {
        last_active: Some(day(0)),
        ..Default::default()
    };
    assert_eq!(
        model.lifetime_value(&u, day(10)).expect("ltv"),
        0.0,
        "{}",
        model.name()
    );
    assert_eq!(model.next_purchase(&u, day(10)), None, "{}", model.name());
}

/// The same buyer is riskier and worth less when their last purchase is long ago.
pub fn case_lapsed_buyer_is_riskier(model: &dyn CustomerValueModel) {
    let recent = buyer(6, 0, 195, 600.0);
    let lapsed = buyer(6, 0, 20, 600.0);
    let as_of = day(200);
    assert!(
        model.churn_risk(&lapsed, as_of) > model.churn_risk(&recent, as_of),
        "{}",
        model.name()
    );
    assert!(
        model.lifetime_value(&lapsed, as_of).expect("ltv")
            < model.lifetime_value(&recent, as_of).expect("ltv"),
        "{}",
        model.name()
    );
}

/// Doubling every amount doubles the lifetime value of a buyer with repeat purchases.
pub fn case_value_scales_with_spend(model: &dyn CustomerValueModel) {
    let as_of = day(100);
    let small = buyer(4, 0, 90, 100.0);
    let large = buyer(4, 0, 90, 200.0);
    let (a, b) = (
        model.lifetime_value(&small, as_of).expect("ltv"),
        model.lifetime_value(&large, as_of).expect("ltv"),
    );
    assert!(b > a, "{}: {a} vs {b}", model.name());
}

/// A regular buyer's next purchase, when given, is not before their last purchase.
pub fn case_next_purchase_after_last(model: &dyn CustomerValueModel) {
    let u = buyer(5, 0, 95, 100.0);
    if let Some(next) = model.next_purchase(&u, day(100)) {
        assert!(next >= day(95), "{}: {next}", model.name());
    }
}

/// `assess` returns exactly what the three separate methods return.
pub fn case_assess_matches_parts(model: &dyn CustomerValueModel) {
    let as_of = day(300);
    for u in [
        CustomerActivity::default(),
        buyer(1, 10, 10, 20.0),
        buyer(7, 0, 290, 700.0),
        buyer(3, 5, 60, 90.0),
    ] {
        let a = model.assess(&u, as_of).expect("assess");
        assert_eq!(
            a.churn_risk,
            model.churn_risk(&u, as_of),
            "{}",
            model.name()
        );
        assert_eq!(
            a.lifetime_value,
            model.lifetime_value(&u, as_of).expect("ltv"),
            "{}",
            model.name()
        );
        assert_eq!(
            a.next_purchase,
            model.next_purchase(&u, as_of),
            "{}",
            model.name()
        );
    }
}

/// Emits one `#[test]` per conformance case, in a module named `$name`, for the model `$setup`.
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $setup:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!(@case $setup; case_outputs_in_range, case_no_purchases,
                case_lapsed_buyer_is_riskier, case_value_scales_with_spend, case_next_purchase_after_last,
                case_assess_matches_parts);
        }
    };
    (@case $setup:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let model = $setup;
                $crate::testing::$case(&model);
            }
        )*
    };
}
