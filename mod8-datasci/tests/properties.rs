//! Property tests: probabilities stay in [0, 1], expected purchases are non-negative and grow
//! with the horizon, log-likelihoods are finite for valid inputs.

#![allow(clippy::unwrap_used)] // tests may unwrap

use mod8_datasci::{heuristic_churn, BgNbd, GammaGamma, Rfm};
use proptest::prelude::*;

fn params() -> impl Strategy<Value = BgNbd> {
    (0.05f64..5.0, 0.1f64..50.0, 0.05f64..5.0, 0.05f64..10.0)
        .prop_map(|(r, alpha, a, b)| BgNbd::new(r, alpha, a, b).unwrap())
}

fn history() -> impl Strategy<Value = Rfm> {
    (0u32..60, 0.1f64..100.0, 0.0f64..1.0).prop_map(|(x, t, share)| {
        let recency = if x == 0 { 0.0 } else { t * share };
        Rfm::new(x, recency, t, 0.0).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn p_alive_is_a_probability(m in params(), h in history(), t in 0.0f64..150.0) {
        let now = m.p_alive(&h);
        prop_assert!((0.0..=1.0).contains(&now), "{now}");
        let later = m.p_alive_after(&h, t).unwrap();
        prop_assert!((0.0..=1.0).contains(&later), "{later}");
        prop_assert!(later <= now + 1e-12, "{later} > {now}");
    }

    #[test]
    fn expected_purchases_non_negative_and_increasing(
        m in params(), h in history(), t1 in 0.0f64..100.0, dt in 0.0f64..50.0
    ) {
        let e1 = m.expected_purchases(&h, t1).unwrap();
        let e2 = m.expected_purchases(&h, t1 + dt).unwrap();
        prop_assert!(e1 >= 0.0 && e1.is_finite(), "{e1}");
        prop_assert!(e2 >= e1 - 1e-9 * (1.0 + e1), "E({}) = {e2} < E({t1}) = {e1}", t1 + dt);
    }

    #[test]
    fn log_likelihoods_are_finite(m in params(), h in history(), spend in 0.01f64..1e4,
                                  p in 0.1f64..20.0, q in 0.1f64..20.0, g in 0.1f64..100.0) {
        prop_assert!(m.log_likelihood(&h).is_finite());
        prop_assert!(m.log_likelihood(&h) <= 1e-9 || h.frequency > 0);
        let gg = GammaGamma::new(p, q, g).unwrap();
        prop_assert!(gg.log_likelihood(h.frequency.max(1), spend).is_finite());
    }

    #[test]
    fn heuristic_churn_is_a_probability_and_monotone(d in 0.0f64..10_000.0, e in 0.0f64..100.0) {
        let c = heuristic_churn(d);
        prop_assert!((0.0..=1.0).contains(&c));
        prop_assert!(heuristic_churn(d + e) >= c);
    }
}
