//! `mod8 clv fit|predict|plot` run as a command on a simulated customer base: the JSON shape the
//! README documents for `clv fit`, the fitted parameters near the simulated ones, predictions as
//! CSV, charts on disk, and bad input refused with the row and field named and a non-zero exit.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use chrono::NaiveDate;
use mod8_datasci::simulate::{simulate_transactions, SimulationParams};
use mod8_datasci::{BgNbd, GammaGamma};

const END: &str = "2024-09-30";

fn mod8(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mod8"))
        .args(args)
        .output()
        .expect("the mod8 binary runs")
}

fn write_base(dir: &Path) -> std::path::PathBuf {
    write_simulated(
        dir,
        "transactions.csv",
        BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        |amount| amount,
    )
}

/// A simulated base of 3,000 customers up to [`END`], amounts passed through `amount`.
fn write_simulated(
    dir: &Path,
    name: &str,
    bgnbd: BgNbd,
    gamma_gamma: GammaGamma,
    amount: impl Fn(f64) -> f64,
) -> std::path::PathBuf {
    let params = SimulationParams {
        bgnbd,
        gamma_gamma,
        customers: 3_000,
        min_age_weeks: 0.0,
        max_age_weeks: 0.0,
        seed: 7,
    };
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let end: NaiveDate = END.parse().unwrap();
    let mut csv = String::from("customer_id,date,amount\n");
    for t in simulate_transactions(&params, start, 60, end).unwrap() {
        csv.push_str(&format!(
            "{},{},{:.2}\n",
            t.customer_id,
            t.date,
            amount(t.amount)
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    path
}

fn clv(command: &str, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "clv",
        command,
        "--transactions",
        file.to_str().unwrap(),
        "--calibration-end",
        END,
    ];
    args.extend_from_slice(extra);
    mod8(&args)
}

#[test]
fn fit_prints_the_documented_json_with_sensible_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_base(dir.path());
    let out = mod8(&[
        "clv",
        "fit",
        "--transactions",
        file.to_str().unwrap(),
        "--calibration-end",
        END,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["bgnbd", "customers", "gamma_gamma"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(r#"{"customers":"#), "{text}");
    assert!(json["customers"].as_u64().unwrap() > 2_000);
    let b = &json["bgnbd"];
    for k in ["r", "alpha", "a", "b", "log_likelihood"] {
        assert!(b[k].as_f64().unwrap().is_finite(), "{k}");
    }
    // Recovered within a loose band of the simulated r = 0.5 and alpha = 5 (3,000 customers).
    let r = b["r"].as_f64().unwrap();
    let alpha = b["alpha"].as_f64().unwrap();
    assert!((0.3..0.8).contains(&r), "r = {r}");
    assert!((2.5..9.0).contains(&alpha), "alpha = {alpha}");
    for k in ["p", "q", "gamma"] {
        assert!(json["gamma_gamma"][k].as_f64().unwrap() > 0.0, "{k}");
    }
}

#[test]
fn predict_writes_one_csv_row_per_customer_and_plot_writes_charts() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_base(dir.path());
    let file = file.to_str().unwrap();
    let out = mod8(&[
        "clv",
        "predict",
        "--transactions",
        file,
        "--calibration-end",
        END,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("customer_id,frequency,recency,T,monetary_value,p_alive"));
    let rows: Vec<_> = lines.collect();
    assert!(rows.len() > 2_000);
    for row in &rows {
        let p_alive: f64 = row.split(',').nth(5).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&p_alive), "{row}");
    }

    let charts = dir.path().join("charts");
    let out = mod8(&[
        "clv",
        "plot",
        "--transactions",
        file,
        "--calibration-end",
        END,
        "--out",
        charts.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_charts(&charts, &out);
}

/// `plot` wrote exactly the three charts, listed them on stdout, and each is an SVG document.
fn assert_charts(dir: &Path, out: &Output) {
    let mut written: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "expected_purchases.svg",
            "probability_alive.svg",
            "segments.svg"
        ]
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in &written {
        assert!(stdout.contains(name.as_str()), "{stdout}");
        let svg = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{name}");
        assert!(svg.trim_end().ends_with("</svg>"), "{name}");
        assert!(!svg.contains("NaN"), "{name}");
    }
    let segments = std::fs::read_to_string(dir.join("segments.svg")).unwrap();
    assert!(segments.contains("Users per segment ("), "{segments}");
}

#[test]
fn plot_needs_no_spend_model() {
    let dir = tempfile::tempdir().unwrap();
    // All purchases free: Gamma-Gamma has nobody to fit, so `fit` fails, but the charts only
    // need BG/NBD.
    let free = write_simulated(
        dir.path(),
        "free.csv",
        BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        |_| 0.0,
    );
    let out = clv("fit", &free, &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Gamma-Gamma"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let charts = dir.path().join("charts");
    let out = clv("plot", &free, &["--out", charts.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_charts(&charts, &out);
}

#[test]
fn bad_input_names_row_and_field_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "customer_id,date,amount\nc1,2024-01-05,NaN\n",
            "row 2",
            "amount",
        ),
        (
            "customer_id,date,amount\nc1,2024-01-05,10\nc2,2024-02-30,5\n",
            "row 3",
            "date",
        ),
        (
            "customer_id,date,amount\nc1,2024-01-05,-3\n",
            "row 2",
            "amount",
        ),
        (
            "customer_id,date,amount\nc1,2025-01-05,3\n",
            "row 2",
            "date",
        ),
        (
            "customer_id,date,amount\nc1,2024-01-05,10\nc1,2024-01-06,inf\n",
            "row 3, field `amount`",
            "infinite",
        ),
        (
            "customer_id,date,amount\nc1,2024-01-05,-inf\n",
            "row 2, field `amount`",
            "infinite",
        ),
        (
            "customer_id,when,amount\nc1,2024-01-05,3\n",
            "row 1, field `when`",
            "unknown column",
        ),
        ("customer_id,date,amount\n", "empty input", "no data rows"),
        ("", "empty", "no header"),
    ];
    for (i, (csv, row, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.csv"));
        std::fs::write(&path, csv).unwrap();
        let out = mod8(&[
            "clv",
            "fit",
            "--transactions",
            path.to_str().unwrap(),
            "--calibration-end",
            END,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} succeeded");
        assert!(out.stdout.is_empty(), "case {i} printed a result");
        assert!(
            stderr.contains(row) && stderr.contains(field),
            "case {i}: {stderr}"
        );
    }
    let out = mod8(&[
        "clv",
        "fit",
        "--transactions",
        "/no/such/file.csv",
        "--calibration-end",
        END,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.csv"));
}

#[test]
fn fits_that_do_not_converge_are_reported_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Every purchase costs 10.00: no spread in spend between customers, Gamma-Gamma's q runs
    // off to its bound.
    let same_spend = write_simulated(
        dir.path(),
        "same_spend.csv",
        BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        |_| 10.0,
    );
    // Nobody ever drops out (dropout probability ~ Beta(1, 1e9)): BG/NBD's a runs off to 0.
    let no_dropout = write_simulated(
        dir.path(),
        "no_dropout.csv",
        BgNbd::new(0.5, 5.0, 1.0, 1e9).unwrap(),
        GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        |amount| amount,
    );
    for (file, model) in [(&same_spend, "Gamma-Gamma"), (&no_dropout, "BG/NBD")] {
        for command in ["fit", "predict"] {
            let out = clv(command, file, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command} {model}: succeeded");
            assert!(out.stdout.is_empty(), "{command} {model}: printed a result");
            assert!(
                stderr.contains(&format!("{model} fit did not converge")),
                "{command} {model}: {stderr}"
            );
        }
    }
    // The charts need BG/NBD only, so the file whose spend cannot be fitted still plots.
    let charts = dir.path().join("charts");
    let out = clv("plot", &same_spend, &["--out", charts.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_charts(&charts, &out);
}

#[test]
fn predict_refuses_a_spend_model_without_finite_mean() {
    let dir = tempfile::tempdir().unwrap();
    // Spend scales ν ~ Gamma(q = 0.9, γ): heavy-tailed, no finite mean; the fit finds q < 1.
    let file = write_simulated(
        dir.path(),
        "heavy.csv",
        BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        GammaGamma::new(2.0, 0.9, 15.0).unwrap(),
        |amount| amount,
    );
    // `fit` reports the parameters as fitted, with a warning on stderr.
    let out = clv("fit", &file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let q = json["gamma_gamma"]["q"].as_f64().unwrap();
    assert!(q < 1.0, "q = {q}");
    assert!(
        stderr.contains("warning: Gamma-Gamma q = ") && stderr.contains("no finite mean"),
        "{stderr}"
    );
    // `predict` needs a mean spend: it refuses instead of printing infinite values.
    let out = clv("predict", &file, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "predict succeeded");
    assert!(out.stdout.is_empty(), "predict printed rows");
    assert!(
        stderr.contains("≤ 1: the spend distribution has no finite mean"),
        "{stderr}"
    );
}
