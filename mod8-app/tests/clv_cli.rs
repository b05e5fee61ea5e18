//! `mod8 clv fit|predict|plot` run as a command: on a simulated customer base (the documented
//! JSON shape, the fitted parameters near the simulated ones, held-out transactions and the
//! calibration/holdout evaluation, predictions as CSV, charts on disk) and on lifetimes'
//! CDNOW summary (`--summary`, predictions equal to lifetimes'), and bad input refused with the
//! row and field named and a non-zero exit.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::NaiveDate;
use mod8_datasci::simulate::{simulate_transactions, SimulationParams};
use mod8_datasci::{BgNbd, GammaGamma};

const END: &str = "2024-09-30";
/// Holdout end of the simulated logs that go on after [`END`].
const HOLDOUT_END: &str = "2025-03-31";

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

/// The same base as [`write_base`] with its history going on to [`HOLDOUT_END`].
fn write_base_with_holdout(dir: &Path) -> std::path::PathBuf {
    write_simulated_until(
        dir,
        "transactions_with_holdout.csv",
        BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
        GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
        |amount| amount,
        HOLDOUT_END,
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
    write_simulated_until(dir, name, bgnbd, gamma_gamma, amount, END)
}

/// [`write_simulated`] with the history simulated up to `until`.
fn write_simulated_until(
    dir: &Path,
    name: &str,
    bgnbd: BgNbd,
    gamma_gamma: GammaGamma,
    amount: impl Fn(f64) -> f64,
    until: &str,
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
    let end: NaiveDate = until.parse().unwrap();
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
    assert_charts(&charts, &out, &[ALIVE, EXPECTED, SEGMENTS, CLV]);
}

/// A chart `plot` writes: file stem, PNG size, a text its SVG carries.
type Chart = (&'static str, (u32, u32), &'static str);
const ALIVE: Chart = (
    "probability_alive",
    (900, 650),
    "P(alive) of a customer aged",
);
const EXPECTED: Chart = (
    "expected_purchases",
    (900, 650),
    "Expected purchases in the next",
);
const SEGMENTS: Chart = ("segments", (800, 500), "Users per segment (");
const HOLDOUT: Chart = (
    "calibration_holdout",
    (900, 600),
    "Holdout purchases: actual",
);
const CLV: Chart = (
    "clv_distribution",
    (900, 600),
    "Predicted CLV over 12 x 4.345 weeks (",
);

/// `plot` wrote exactly these charts, each as SVG and PNG, and listed them on stdout; every SVG
/// is a document carrying its title, every PNG decodes to its size with the title rasterised.
fn assert_charts(dir: &Path, out: &Output, charts: &[Chart]) {
    let mut written: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected: Vec<String> = charts
        .iter()
        .flat_map(|(stem, _, _)| [format!("{stem}.png"), format!("{stem}.svg")])
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), expected.len(), "{stdout}");
    for (stem, size, title) in charts {
        let svg_name = format!("{stem}.svg");
        assert!(stdout.contains(&svg_name), "{stdout}");
        let svg = std::fs::read_to_string(dir.join(&svg_name)).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{svg_name}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg_name}");
        assert!(!svg.contains("NaN"), "{svg_name}");
        assert!(svg.contains(title), "{svg_name} has no `{title}`");
        let png_name = format!("{stem}.png");
        assert!(stdout.contains(&png_name), "{stdout}");
        assert_png_with_text(&dir.join(&png_name), *size);
    }
}

/// A PNG of `size` whose caption strip (the top 40 rows, white but for the title) has dark
/// pixels: the title was rasterised.
fn assert_png_with_text(path: &Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}",
        path.display()
    );
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();
    assert_eq!(image.dimensions(), size, "{}", path.display());
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Everything but the CLV distribution, which needs the spend model, and a warning saying so.
    assert!(
        stderr.contains("warning: no CLV distribution chart: "),
        "{stderr}"
    );
    assert_charts(&charts, &out, &[ALIVE, EXPECTED, SEGMENTS]);
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
        // Only transactions after the calibration end: nothing to fit (later ones are held
        // out, not refused).
        (
            "customer_id,date,amount\nc1,2025-01-05,3\n",
            "empty input",
            "no transactions on or before the calibration end 2024-09-30",
        ),
        // A held-out row is still checked.
        (
            "customer_id,date,amount\nc1,2024-01-05,3\nc1,2025-01-05,x\n",
            "row 3, field `amount`",
            "not a number",
        ),
        (
            "customer_id,date,amount\nc1,2024-01-05,3\nc1,2025-02-30,1\n",
            "row 3, field `date`",
            "not an ISO date",
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: no CLV distribution chart: Gamma-Gamma fit did not converge"),
        "{stderr}"
    );
    assert_charts(&charts, &out, &[ALIVE, EXPECTED, SEGMENTS]);
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

/// Runs `mod8 args…` and asserts it succeeded.
fn mod8_ok(args: &[&str]) -> Output {
    let out = mod8(args);
    assert!(
        out.status.success(),
        "mod8 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The data rows of a transactions CSV as (customer, date).
fn rows(file: &Path) -> Vec<(String, NaiveDate)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[0].to_owned(), f[1].parse().unwrap())
        })
        .collect()
}

#[test]
fn transactions_after_the_calibration_end_are_held_out_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let whole = write_base_with_holdout(dir.path());
    let end: NaiveDate = END.parse().unwrap();
    // The calibration part alone, as a user would have had to cut it.
    let text = std::fs::read_to_string(&whole).unwrap();
    let mut lines = text.lines();
    let mut calibration = format!("{}\n", lines.next().unwrap());
    let mut later = 0;
    for line in lines {
        let date: NaiveDate = line.split(',').nth(1).unwrap().parse().unwrap();
        if date <= end {
            calibration.push_str(line);
            calibration.push('\n');
        } else {
            later += 1;
        }
    }
    assert!(later > 500, "{later}");
    let cut = dir.path().join("calibration.csv");
    std::fs::write(&cut, calibration).unwrap();

    for command in ["fit", "predict"] {
        let from_whole = clv(command, &whole, &[]);
        let stderr = String::from_utf8_lossy(&from_whole.stderr);
        assert!(from_whole.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "note: {later} transaction(s) after the calibration end {END} held out (not used by the fit"
            )),
            "{command}: {stderr}"
        );
        let from_cut = clv(command, &cut, &[]);
        assert!(from_cut.status.success());
        assert!(
            !String::from_utf8_lossy(&from_cut.stderr).contains("held out"),
            "{command}"
        );
        // Same fit, same predictions: the later transactions change nothing.
        assert!(!from_whole.stdout.is_empty());
        assert_eq!(from_whole.stdout, from_cut.stdout, "{command}");
    }
}

/// What the holdout evaluation must find, computed from the file: per calibration-frequency
/// bucket (0–6, 7+) the customers and the sum of their holdout purchase days.
fn expected_holdout(file: &Path, holdout_end: NaiveDate) -> ([usize; 8], [f64; 8]) {
    let end: NaiveDate = END.parse().unwrap();
    let mut calibration: HashMap<String, HashSet<NaiveDate>> = HashMap::new();
    let mut holdout: HashMap<String, HashSet<NaiveDate>> = HashMap::new();
    for (id, date) in rows(file) {
        if date <= end {
            calibration.entry(id).or_default().insert(date);
        } else if date <= holdout_end {
            holdout.entry(id).or_default().insert(date);
        }
    }
    let mut customers = [0usize; 8];
    let mut purchases = [0.0; 8];
    for (id, days) in &calibration {
        let k = (days.len() - 1).min(7);
        customers[k] += 1;
        purchases[k] += holdout.get(id).map_or(0, HashSet::len) as f64;
    }
    (customers, purchases)
}

#[test]
fn fit_with_holdout_end_compares_predicted_and_actual_holdout_purchases() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_base_with_holdout(dir.path());
    let path = file.to_str().unwrap();
    let last_day = rows(&file).iter().map(|r| r.1).max().unwrap();
    // The whole rest of the log as holdout, then a shorter holdout that ignores the tail.
    for (holdout_end, total_band) in [(HOLDOUT_END, 0.10), ("2024-12-31", 0.10)] {
        let out = mod8_ok(&[
            "clv",
            "fit",
            "--transactions",
            path,
            "--calibration-end",
            END,
            "--holdout-end",
            holdout_end,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with(r#"{"customers":"#), "{text}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["bgnbd", "customers", "gamma_gamma", "holdout"]);
        let h = &json["holdout"];
        assert_eq!(h["calibration_end"], END);
        assert_eq!(h["holdout_end"], holdout_end);
        let end: NaiveDate = END.parse().unwrap();
        let holdout_day: NaiveDate = holdout_end.parse().unwrap();
        let weeks = (holdout_day - end).num_days() as f64 / 7.0;
        assert_eq!(h["holdout_weeks"].as_f64().unwrap(), weeks);
        // The evaluation is of the fit printed above it.
        assert_eq!(h["customers"], json["customers"]);
        assert_eq!(h["bgnbd"], json["bgnbd"]);

        let (customers, purchases) = expected_holdout(&file, holdout_day);
        let buckets = h["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 8);
        let mut predicted_total = 0.0;
        for (k, b) in buckets.iter().enumerate() {
            assert_eq!(b["frequency"].as_u64().unwrap(), k as u64);
            assert_eq!(b["and_above"].as_bool().unwrap(), k == 7);
            assert_eq!(
                b["customers"].as_u64().unwrap() as usize,
                customers[k],
                "{b}"
            );
            let n = customers[k] as f64;
            let actual_mean = b["actual_mean"].as_f64().unwrap();
            assert!(
                (actual_mean * n - purchases[k]).abs() < 1e-9,
                "bucket {k}: {b} vs {} purchases",
                purchases[k]
            );
            predicted_total += b["predicted_mean"].as_f64().unwrap() * n;
        }
        let actual_total = h["actual_total"].as_f64().unwrap();
        assert_eq!(actual_total, purchases.iter().sum::<f64>());
        assert!(actual_total > 100.0, "{actual_total}");
        let predicted = h["predicted_total"].as_f64().unwrap();
        assert!((predicted - predicted_total).abs() < 1e-6 * predicted);
        // Simulated from the model: the prediction is close overall.
        assert!(
            (predicted - actual_total).abs() < total_band * actual_total,
            "predicted {predicted} vs actual {actual_total}"
        );
        let mae = h["mean_absolute_error"].as_f64().unwrap();
        let rmse = h["root_mean_squared_error"].as_f64().unwrap();
        assert!(mae > 0.0 && rmse >= mae && rmse.is_finite(), "{mae} {rmse}");

        let stderr = String::from_utf8_lossy(&out.stderr);
        let later: Vec<_> = rows(&file).into_iter().filter(|r| r.1 > end).collect();
        let ignored = later.iter().filter(|r| r.1 > holdout_day).count();
        assert!(
            stderr.contains(&format!(
                "note: {} transaction(s) after the calibration end {END} held out: {} in the holdout period to {holdout_end}, {ignored} after it (ignored)",
                later.len(),
                later.len() - ignored
            )),
            "{stderr}"
        );
        // A holdout end past the log's last day is said to be so.
        assert_eq!(
            stderr.contains("warning: the last transaction is on"),
            last_day < holdout_day,
            "{stderr}"
        );
    }
}

#[test]
fn holdout_end_must_follow_the_calibration_end() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_base_with_holdout(dir.path());
    let charts = dir.path().join("charts");
    for holdout_end in [END, "2024-06-30"] {
        for (command, extra) in [
            ("fit", vec![]),
            ("plot", vec!["--out", charts.to_str().unwrap()]),
        ] {
            let mut args = vec!["--holdout-end", holdout_end];
            args.extend(extra);
            let out = clv(command, &file, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command} {holdout_end}");
            assert!(out.stdout.is_empty(), "{command} {holdout_end}");
            assert!(
                stderr.contains("--holdout-end: invalid holdout_end: holdout end")
                    && stderr.contains("must be after the calibration end 2024-09-30"),
                "{command}: {stderr}"
            );
            assert!(!charts.exists(), "{command} wrote charts");
        }
    }
}

#[test]
fn plot_with_holdout_end_draws_calibration_vs_holdout_and_clv_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_base_with_holdout(dir.path());
    let charts = dir.path().join("charts");
    let out = clv(
        "plot",
        &file,
        &[
            "--holdout-end",
            HOLDOUT_END,
            "--out",
            charts.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_charts(&charts, &out, &[ALIVE, EXPECTED, SEGMENTS, HOLDOUT, CLV]);
    let holdout = std::fs::read_to_string(charts.join("calibration_holdout.svg")).unwrap();
    for text in [
        "actual",
        "predicted (BG/NBD)",
        "7+",
        "purchases in the calibration period (to 2024-09-30)",
        "to 2025-03-31)",
    ] {
        assert!(holdout.contains(text), "no `{text}` in the holdout chart");
    }
    let clv = std::fs::read_to_string(charts.join("clv_distribution.svg")).unwrap();
    assert!(clv.contains("customers"), "{clv}");
    assert!(clv.contains("discounted 1% per period"), "{clv}");
}

/// lifetimes' bundled CDNOW summary (`ID,x,t_x,T,zbar`, weeks) under mod8's summary header.
fn write_cdnow_summary(dir: &Path) -> PathBuf {
    let text = include_str!("../../mod8-datasci/tests/data/cdnow_summary.csv");
    let (header, rows) = text.split_once('\n').unwrap();
    assert_eq!(header.trim_end(), "ID,x,t_x,T,zbar"); // CRLF line ends, kept
    let path = dir.join("cdnow_summary.csv");
    std::fs::write(
        &path,
        format!("customer_id,frequency,recency,T,monetary_value\n{rows}"),
    )
    .unwrap();
    path
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs()
    }
}

#[test]
fn summary_input_fits_predicts_and_plots_like_lifetimes() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_cdnow_summary(dir.path());
    let summary = summary.to_str().unwrap();

    // fit: lifetimes 0.11.3's parameters on the same summary.
    let out = mod8_ok(&["clv", "fit", "--summary", summary]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["customers"], 2357);
    let b = &json["bgnbd"];
    for (k, lifetimes) in [
        ("r", 0.2425929282798216),
        ("alpha", 4.4135322652718125),
        ("a", 0.7928859664406493),
        ("b", 2.42575238262571),
    ] {
        let ours = b[k].as_f64().unwrap();
        assert!(rel(ours, lifetimes) < 1e-5, "{k}: {ours} vs {lifetimes}");
    }
    let g = &json["gamma_gamma"];
    for (k, lifetimes) in [
        ("p", 6.248802496079201),
        ("q", 3.74458846092242),
        ("gamma", 15.447748064915702),
    ] {
        let ours = g[k].as_f64().unwrap();
        assert!(rel(ours, lifetimes) < 1e-5, "{k}: {ours} vs {lifetimes}");
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains("held out"));

    // predict: one row per customer in file order; lifetimes' values to 1e-6 relative.
    let out = mod8_ok(&["clv", "predict", "--summary", summary]);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "customer_id,frequency,recency,T,monetary_value,p_alive,p_alive_at_horizon,expected_purchases,expected_average_spend,clv"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2357);
    let ids: Vec<String> = rows.iter().map(|r| r[0].to_owned()).collect();
    let file_order: Vec<String> = (1..=2357).map(|i| i.to_string()).collect();
    assert_eq!(ids, file_order);
    let by_id: HashMap<&str, &Vec<&str>> = rows.iter().map(|r| (r[0], r)).collect();
    let reference = include_str!("../../mod8-datasci/tests/data/cdnow_lifetimes_predictions.csv");
    let mut reference = reference.lines();
    assert_eq!(
        reference.next().unwrap(),
        "customer_id,frequency,recency,T,monetary_value,p_alive,expected_purchases,expected_average_spend,clv"
    );
    let mut compared = 0;
    for line in reference {
        let r: Vec<&str> = line.split(',').collect();
        let ours = by_id[r[0]];
        assert_eq!(ours[1], r[1], "frequency of {}", r[0]);
        for (label, ours, theirs) in [
            ("p_alive", ours[5], r[5]),
            ("expected_purchases", ours[7], r[6]),
            ("expected_average_spend", ours[8], r[7]),
            ("clv", ours[9], r[8]),
        ] {
            let (ours, theirs): (f64, f64) = (ours.parse().unwrap(), theirs.parse().unwrap());
            assert!(
                rel(ours, theirs) < 1e-6,
                "customer {}: {label} {ours} vs lifetimes {theirs}",
                r[0]
            );
        }
        compared += 1;
    }
    assert!(compared >= 200, "{compared}");

    // plot: the matrices and the CLV distribution (no segments or holdout without dates).
    let charts = dir.path().join("charts");
    let out = mod8_ok(&[
        "clv",
        "plot",
        "--summary",
        summary,
        "--periods",
        "24",
        "--out",
        charts.to_str().unwrap(),
    ]);
    let clv_24 = (
        "clv_distribution",
        (900, 600),
        "Predicted CLV over 24 x 4.345 weeks (2357 customers",
    );
    assert_charts(&charts, &out, &[ALIVE, EXPECTED, clv_24]);
}

#[test]
fn the_input_is_a_log_with_its_calibration_end_or_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_base(dir.path());
    let log = log.to_str().unwrap();
    let summary = write_cdnow_summary(dir.path());
    let summary = summary.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "fit",
                "--summary",
                summary,
                "--transactions",
                log,
                "--calibration-end",
                END,
            ],
            "cannot be used with",
        ),
        (
            &["predict", "--summary", summary, "--calibration-end", END],
            "cannot be used with",
        ),
        (
            &["fit", "--summary", summary, "--holdout-end", HOLDOUT_END],
            "cannot be used with",
        ),
        (&["fit", "--transactions", log], "--calibration-end"),
        (&["plot", "--out", "charts"], "--transactions"),
        (&["fit", "--calibration-end", END], "--transactions"),
        // predict has no holdout.
        (
            &[
                "predict",
                "--transactions",
                log,
                "--calibration-end",
                END,
                "--holdout-end",
                HOLDOUT_END,
            ],
            "unexpected argument '--holdout-end'",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["clv"];
        all.extend_from_slice(args);
        let out = mod8(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn bad_summaries_name_row_and_field_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let h = "customer_id,frequency,recency,T,monetary_value\n";
    let ok = "c0,1,2,10,5\n";
    let cases = [
        (
            format!("{h}c1,2,40,38.86,22.35\n"),
            "row 2, field `recency`",
            "is after T 38.86",
        ),
        (
            format!("{h}{ok}c1,0,2,38.86,0\n"),
            "row 3, field `recency`",
            "recency must be 0 when frequency is 0",
        ),
        (
            format!("{h}c1,-1,0,38.86,0\n"),
            "row 2, field `frequency`",
            "is negative",
        ),
        (
            format!("{h}c1,1,-1,38.86,5\n"),
            "row 2, field `recency`",
            "is negative",
        ),
        (
            format!("{h}c1,0,0,-3,0\n"),
            "row 2, field `T`",
            "is negative",
        ),
        (
            format!("{h}c1,1,1,3,-5\n"),
            "row 2, field `monetary_value`",
            "is negative",
        ),
        (
            format!("{h}c1,two,1,3,5\n"),
            "row 2, field `frequency`",
            "`two` is not a number",
        ),
        (
            format!("{h}c1,1,x,3,5\n"),
            "row 2, field `recency`",
            "`x` is not a number",
        ),
        (
            format!("{h}c1,1,1,,5\n"),
            "row 2, field `T`",
            "`` is not a number",
        ),
        (
            format!("{h}c1,1,1,3,abc\n"),
            "row 2, field `monetary_value`",
            "`abc` is not a number",
        ),
        (
            format!("{h}c1,1,1,3,NaN\n"),
            "row 2, field `monetary_value`",
            "is NaN",
        ),
        (
            format!("{h}c1,1,1,inf,5\n"),
            "row 2, field `T`",
            "is infinite",
        ),
        (
            format!("{h}c1,1.5,1,3,5\n"),
            "row 2, field `frequency`",
            "not a whole number",
        ),
        (
            format!("{h}{ok},1,1,3,5\n"),
            "row 3, field `customer_id`",
            "customer_id is empty",
        ),
        (
            format!("{h}{ok}{ok}"),
            "row 3, field `customer_id`",
            "already appears on row 2",
        ),
        (
            format!("{h}{ok}c1,1,1,3\n"),
            "row 3, field `(record)`",
            "expected 5 fields, found 4",
        ),
        (
            "customer_id,frequency,recency,T\nc1,1,1,3\n".into(),
            "row 1, field `monetary_value`",
            "missing column",
        ),
        (
            "customer_id,date,amount\nc1,2024-01-05,3\n".into(),
            "row 1, field `date`",
            "unknown column",
        ),
        (
            "customer_id,frequency,recency,t,monetary_value\nc1,1,1,3,5\n".into(),
            "row 1, field `t`",
            "unknown column",
        ),
        (h.to_owned(), "empty input", "no data rows"),
        (String::new(), "empty input", "no header"),
    ];
    let charts = dir.path().join("charts");
    for (i, (csv, row, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.csv"));
        std::fs::write(&path, csv).unwrap();
        let path = path.to_str().unwrap();
        for command in [
            vec!["clv", "fit", "--summary", path],
            vec!["clv", "predict", "--summary", path],
            vec![
                "clv",
                "plot",
                "--summary",
                path,
                "--out",
                charts.to_str().unwrap(),
            ],
        ] {
            let out = mod8(&command);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "case {i} {command:?} succeeded");
            assert_eq!(out.status.code(), Some(1), "case {i}: {stderr}");
            assert!(
                out.stdout.is_empty(),
                "case {i} {command:?} printed a result"
            );
            assert!(
                stderr.contains(path) && stderr.contains(row) && stderr.contains(message),
                "case {i} {command:?}: {stderr}"
            );
        }
        assert!(!charts.exists(), "case {i}: plot wrote charts");
    }
    let out = mod8(&["clv", "fit", "--summary", "/no/such/summary.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /no/such/summary.csv"));
}
