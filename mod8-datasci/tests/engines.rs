//! The engines end to end on a synthetic base: profiles → report, both tiers, the model
//! predictor, recommendations and the charts.

#![allow(clippy::unwrap_used)] // tests may unwrap

use chrono::NaiveDate;
use mod8_datasci::simulate::{synthetic_catalog, synthetic_customers};
use mod8_datasci::{
    AnalyticsEngine, BgNbd, ClvModel, GammaGamma, InsightsGenerator, PredictionKind,
    PredictionValue, Predictor, RecommendationEngine, Segment,
};

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 30).unwrap()
}

fn cdnow() -> ClvModel {
    ClvModel::new(
        BgNbd::new(0.2426, 4.4135, 0.7929, 2.4258).unwrap(),
        GammaGamma::new(6.2488, 3.7446, 15.4477).unwrap(),
    )
    .unwrap()
}

#[test]
fn synthetic_base_profiles_into_every_segment() {
    let catalog = synthetic_catalog(200, 8, 1);
    let customers = synthetic_customers(2_000, &catalog, as_of(), 2);
    for engine in [
        AnalyticsEngine::heuristic(),
        AnalyticsEngine::probabilistic(cdnow()),
    ] {
        let profiles: Vec<_> = customers
            .iter()
            .map(|c| engine.profile_customer(c, as_of()).unwrap())
            .collect();
        for s in Segment::ALL {
            assert!(
                profiles.iter().any(|p| p.segment == s),
                "{s} empty with {engine:?}"
            );
        }
        for p in &profiles {
            assert!((0.0..=1.0).contains(&p.churn_risk));
            assert!((0.0..=100.0).contains(&p.engagement));
            assert!(p.lifetime_value >= 0.0 && p.lifetime_value.is_finite());
        }
        let report = InsightsGenerator::default().report(&profiles);
        assert_eq!(report.total_users, 2_000);
        assert_eq!(
            report.segments.iter().map(|s| s.users).sum::<usize>(),
            2_000
        );
        assert!((report.segments.iter().map(|s| s.share).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(report.segments.iter().all(|s| !s.insights.is_empty()));
        let text = report.to_text();
        for s in Segment::ALL {
            assert!(text.contains(s.as_str()));
        }
    }
}

#[test]
fn predictor_dispatches_every_kind() {
    let catalog = synthetic_catalog(100, 5, 3);
    let customers = synthetic_customers(500, &catalog, as_of(), 4);
    let recs =
        RecommendationEngine::build(&catalog, &customers, as_of(), Default::default()).unwrap();
    let predictor =
        Predictor::new(AnalyticsEngine::probabilistic(cdnow())).with_recommendations(recs, 5);
    let loyal = customers.iter().max_by_key(|c| c.purchases.len()).unwrap();
    for kind in [
        PredictionKind::Churn,
        PredictionKind::LifetimeValue,
        PredictionKind::NextPurchase,
        PredictionKind::Recommendation,
    ] {
        let p = predictor.predict(kind, loyal, as_of()).unwrap();
        assert_eq!(p.kind, kind);
        assert!((0.0..=1.0).contains(&p.confidence), "{p:?}");
        match (&p.value, kind) {
            (PredictionValue::Probability(v), PredictionKind::Churn) => {
                assert!((0.0..=1.0).contains(v))
            }
            (PredictionValue::Amount(v), PredictionKind::LifetimeValue) => assert!(*v > 0.0),
            (PredictionValue::Date(_), PredictionKind::NextPurchase) => {}
            (PredictionValue::Products(list), PredictionKind::Recommendation) => {
                assert_eq!(list.len(), 5);
                let bought: Vec<&str> = loyal
                    .purchases
                    .iter()
                    .map(|p| p.product_id.as_str())
                    .collect();
                assert!(list
                    .iter()
                    .all(|r| !bought.contains(&r.product_id.as_str())));
            }
            other => panic!("mismatched prediction {other:?}"),
        }
    }
    let json = serde_json::to_string(
        &predictor
            .predict(PredictionKind::Churn, loyal, as_of())
            .unwrap(),
    )
    .unwrap();
    assert!(json.contains("\"kind\":\"churn\""), "{json}");
}

#[cfg(feature = "charts")]
#[test]
fn charts_are_written_as_svg() {
    use mod8_datasci::simulate::{simulate_transactions, SimulationParams};
    use mod8_datasci::RfmSummary;

    let dir = tempfile::tempdir().unwrap();
    let params = SimulationParams {
        bgnbd: cdnow().bgnbd,
        gamma_gamma: cdnow().gamma_gamma,
        customers: 500,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 5,
    };
    let tx = simulate_transactions(
        &params,
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        60,
        as_of(),
    )
    .unwrap();
    let summary = RfmSummary::from_transactions(&tx, as_of()).unwrap();
    let files = mod8_datasci::render_clv_charts(dir.path(), &cdnow().bgnbd, &summary).unwrap();
    assert_eq!(files.len(), 2);
    for f in &files {
        let svg = std::fs::read_to_string(f).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<rect"),
            "{}",
            f.display()
        );
    }
    let catalog = synthetic_catalog(50, 4, 1);
    let customers = synthetic_customers(300, &catalog, as_of(), 1);
    let engine = AnalyticsEngine::heuristic();
    let profiles: Vec<_> = customers
        .iter()
        .map(|c| engine.profile_customer(c, as_of()).unwrap())
        .collect();
    let report = InsightsGenerator::default().report(&profiles);
    let seg = mod8_datasci::render_segment_chart(dir.path(), &report).unwrap();
    assert!(std::fs::read_to_string(seg).unwrap().contains("active"));
    let jpg = mod8_datasci::render_segment_distribution(&dir.path().join("x.jpg"), &report);
    assert!(matches!(jpg, Err(mod8_datasci::Error::Unsupported { .. })));
    let png = dir.path().join("x.png");
    let result = mod8_datasci::render_segment_distribution(&png, &report);
    if cfg!(feature = "png") {
        result.unwrap();
        assert_png_with_text(&png, (800, 500));
    } else {
        assert!(matches!(
            result,
            Err(mod8_datasci::Error::Unsupported { .. })
        ));
    }
}

#[cfg(feature = "charts")]
/// A PNG of `size` whose caption strip (the top 40 rows, white but for the title) has dark
/// pixels: the title was rasterised, so the font engine works.
fn assert_png_with_text(path: &std::path::Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}",
        path.display()
    );
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(image.dimensions(), size);
    let dark = (0..size.0)
        .flat_map(|x| (0..40).map(move |y| (x, y)))
        .filter(|&(x, y)| image.get_pixel(x, y).0.iter().all(|&c| c < 128))
        .count();
    assert!(
        dark > 50,
        "{}: no title text ({dark} dark pixels)",
        path.display()
    );
}

#[cfg(feature = "png")]
#[test]
fn model_charts_render_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let model = mod8_datasci::BgNbd::new(0.24, 4.4, 0.79, 2.4).unwrap();
    let alive = dir.path().join("alive.png");
    mod8_datasci::render_probability_alive_matrix(&alive, &model, 10, 39.0).unwrap();
    assert_png_with_text(&alive, (900, 650));
    let expected = dir.path().join("expected.png");
    mod8_datasci::render_expected_purchases_matrix(&expected, &model, 10, 39.0, 52.0).unwrap();
    assert_png_with_text(&expected, (900, 650));
    // SVG keeps working with the font engine on (it lays text out with the same font).
    let svg = dir.path().join("alive.svg");
    mod8_datasci::render_probability_alive_matrix(&svg, &model, 10, 39.0).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("P(alive)"));
}
