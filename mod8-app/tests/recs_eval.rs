//! `mod8 seed --planted` then `mod8 recs eval`, run as commands on a temporary SQLite
//! database: item-item collaborative filtering beats popularity on NDCG@10 by the margin the
//! README states (at least 5× and 0.2 above it), and the report has one row per strategy.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::Value;

/// CF's NDCG@10 must be at least this many times popularity's…
const MARGIN: f64 = 5.0;
/// …and at least this much above it.
const MARGIN_ABSOLUTE: f64 = 0.2;

fn mod8(args: &[&str], url: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mod8"));
    command
        .args(args)
        .env("MOD8_POSTGRES_URL", url)
        // The CI primary's replica does not replicate the database named here.
        .env_remove("MOD8_POSTGRES_READ_URL");
    for var in [
        "MOD8_MONGODB_URL",
        "MOD8_REDIS_URL",
        "MOD8_AMQP_URL",
        "MOD8_AMQP_CLUSTER_URLS",
    ] {
        command.env_remove(var);
    }
    command.output().expect("the mod8 binary runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ndcg(report: &Value, strategy: &str) -> f64 {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["strategy"] == strategy)
        .unwrap()["ndcg"]
        .as_f64()
        .unwrap()
}

#[test]
fn cf_beats_popularity_on_seeded_planted_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let seeded = ok(mod8(&["seed", "--planted", "--users", "600"], &url));
    assert!(
        seeded.contains("planted: 600 users in 10 taste groups, 300 products"),
        "{seeded}"
    );

    for split in [&[][..], &["--time-split", "2024-10-31"][..]] {
        let mut args = vec!["recs", "eval", "--json"];
        args.extend_from_slice(split);
        let report: Value = serde_json::from_str(&ok(mod8(&args, &url))).unwrap();
        assert_eq!(report["customers"], 600, "{report}");
        assert_eq!(report["catalog_items"], 300);
        assert_eq!(report["k"], 10);
        let strategies: Vec<_> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["strategy"].as_str().unwrap())
            .collect();
        assert_eq!(
            strategies,
            ["random", "popularity", "item_cf", "segment", "blend"]
        );
        let (cf, popularity) = (ndcg(&report, "item_cf"), ndcg(&report, "popularity"));
        assert!(
            cf >= MARGIN * popularity && cf >= popularity + MARGIN_ABSOLUTE,
            "{split:?}: CF {cf} vs popularity {popularity}"
        );
        assert!(ndcg(&report, "random") < popularity);
    }

    let table = ok(mod8(&["recs", "eval", "--k", "5"], &url));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("600 customers ("), "{table}");
    assert!(lines[0].ends_with("k = 5"), "{table}");
    assert_eq!(
        lines[1],
        "| strategy | precision@5 | recall@5 | MAP@5 | NDCG@5 | coverage | mean list |"
    );
    assert_eq!(lines.len(), 8, "{table}");
}

#[test]
fn eval_on_an_empty_database_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("empty.db").display()
    );
    let out = mod8(&["recs", "eval"], &url);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mod8 seed --planted"));
}
