//! `mod8 clv` beyond BG/NBD, run as a command: `--model pareto-nbd|mbgnbd|bgbb` for fit and
//! predict, `clv compare` on lifetimes' CDNOW summary (the table's structure, finite values,
//! AIC = 2k − 2LL, BIC = k ln n − 2LL, holdout errors), BG/BB's input rules, and
//! `--from-db` against the same orders exported as a transaction log (SQLite always,
//! PostgreSQL when `MOD8_POSTGRES_URL` is set).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{NaiveDate, TimeZone, Utc};
use mod8_datasci::simulate::{simulate_transactions, Rng, SimulationParams};
use mod8_datasci::{BgNbd, GammaGamma};
use mod8_orm::{NewOrder, NewProduct, NewUser, OrderLine, OrderStatus};
use serde_json::Value;

const END: &str = "2024-09-30";
const HOLDOUT_END: &str = "2025-03-31";

fn mod8_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mod8"));
    command.args(args);
    // Only the SQL store matters here: keep the others on their embedded defaults.
    for var in [
        "MOD8_POSTGRES_URL",
        // A replica of the CI primary: meaningless for the database this test names.
        "MOD8_POSTGRES_READ_URL",
        "MOD8_MONGODB_URL",
        "MOD8_REDIS_URL",
        "MOD8_AMQP_URL",
        // Read only when MOD8_AMQP_URL is unset: would pick the RabbitMQ cluster instead.
        "MOD8_AMQP_CLUSTER_URLS",
    ] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the mod8 binary runs")
}

fn mod8(args: &[&str]) -> Output {
    mod8_env(args, &[])
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cdnow_summary(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mod8-datasci/tests/data/cdnow_summary.csv"
    ))
    .unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "ID,x,t_x,T,zbar");
    let mut out = String::from("customer_id,frequency,recency,T,monetary_value\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    let path = dir.join("cdnow.csv");
    std::fs::write(&path, out).unwrap();
    path
}

/// A simulated BG/NBD base of 2,000 customers from 2024-01-01 to [`HOLDOUT_END`].
fn simulated_log(dir: &Path) -> PathBuf {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let until: NaiveDate = HOLDOUT_END.parse().unwrap();
    let tx = simulate_transactions(
        &SimulationParams {
            customers: 2_000,
            bgnbd: BgNbd::new(0.5, 5.0, 0.8, 2.5).unwrap(),
            gamma_gamma: GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
            min_age_weeks: 1.0,
            max_age_weeks: 30.0,
            seed: 11,
        },
        start,
        120,
        until,
    )
    .unwrap();
    let mut text = String::from("customer_id,date,amount\n");
    for t in tx {
        text.push_str(&format!("{},{},{:.2}\n", t.customer_id, t.date, t.amount));
    }
    let path = dir.join("log.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn compare_reports_every_continuous_model_with_consistent_criteria() {
    let dir = tempfile::tempdir().unwrap();
    let summary = cdnow_summary(dir.path());
    let summary = summary.to_str().unwrap();
    let json: Value = serde_json::from_str(&ok(mod8(&[
        "clv",
        "compare",
        "--summary",
        summary,
        "--json",
    ])))
    .unwrap();
    assert_eq!(json["customers"], 2357);
    let models = json["models"].as_array().unwrap();
    let names: Vec<_> = models
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bgnbd", "pareto-nbd", "mbgnbd"]);
    let n = 2357f64;
    for m in models {
        let k = m["parameters"].as_u64().unwrap() as f64;
        assert_eq!(k, 4.0);
        let ll = m["log_likelihood"].as_f64().unwrap();
        let aic = m["aic"].as_f64().unwrap();
        let bic = m["bic"].as_f64().unwrap();
        assert!(ll.is_finite() && ll < 0.0, "{m}");
        assert!((aic - (2.0 * k - 2.0 * ll)).abs() < 1e-9 * aic.abs(), "{m}");
        assert!(
            (bic - (k * n.ln() - 2.0 * ll)).abs() < 1e-9 * bic.abs(),
            "{m}"
        );
        assert!(m.get("holdout").is_none());
        for v in m["estimates"].as_object().unwrap().values() {
            assert!(v.as_f64().unwrap() > 0.0, "{m}");
        }
    }
    // lifetimes' BG/NBD log-likelihood on this summary (tests/clv.rs of mod8-datasci).
    assert!((models[0]["log_likelihood"].as_f64().unwrap() - (-9582.4256)).abs() < 1e-3);
    assert_eq!(
        models[1]["estimates"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["r", "alpha", "s", "beta"]
    );

    // The table: a header line with the customers, the column names, one row per model.
    let table = ok(mod8(&["clv", "compare", "--summary", summary]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "2357 customers");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(header, ["model", "k", "log_likelihood", "AIC", "BIC"]);
    assert_eq!(lines.len(), 5, "{table}");
    for (line, m) in lines[2..].iter().zip(models) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0], m["model"].as_str().unwrap());
        assert_eq!(cells[1], "4");
        let ll: f64 = cells[2].parse().unwrap();
        let aic: f64 = cells[3].parse().unwrap();
        assert!((ll - m["log_likelihood"].as_f64().unwrap()).abs() < 1e-4);
        assert!((aic - (8.0 - 2.0 * ll)).abs() < 1e-3);
    }
}

#[test]
fn compare_with_a_holdout_adds_each_models_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = simulated_log(dir.path());
    let log = log.to_str().unwrap();
    let args = [
        "clv",
        "compare",
        "--transactions",
        log,
        "--calibration-end",
        END,
        "--holdout-end",
        HOLDOUT_END,
    ];
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let json: Value = serde_json::from_str(&ok(mod8(&with_json))).unwrap();
    let models = json["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    for m in models {
        let h = &m["holdout"];
        let (mae, rmse) = (
            h["mean_absolute_error"].as_f64().unwrap(),
            h["root_mean_squared_error"].as_f64().unwrap(),
        );
        assert!(mae.is_finite() && mae > 0.0 && rmse >= mae, "{m}");
        assert!(h["actual_total"].as_f64().unwrap() > 100.0, "{m}");
    }
    // BG/NBD's holdout error is the one `fit --holdout-end` reports.
    let fit: Value = serde_json::from_str(&ok(mod8(&[
        "clv",
        "fit",
        "--transactions",
        log,
        "--calibration-end",
        END,
        "--holdout-end",
        HOLDOUT_END,
    ])))
    .unwrap();
    for key in ["mean_absolute_error", "root_mean_squared_error"] {
        let a = fit["holdout"][key].as_f64().unwrap();
        let b = models[0]["holdout"][key].as_f64().unwrap();
        assert!((a - b).abs() <= 1e-12 * a.abs(), "{key}: {a} vs {b}");
    }
    let table = ok(mod8(&args));
    let header: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "model",
            "k",
            "log_likelihood",
            "AIC",
            "BIC",
            "holdout_MAE",
            "holdout_RMSE"
        ]
    );
}

#[test]
fn other_models_fit_and_predict_with_their_own_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let summary = cdnow_summary(dir.path());
    let summary = summary.to_str().unwrap();
    for (model, key, params) in [
        ("pareto-nbd", "pareto_nbd", ["r", "alpha", "s", "beta"]),
        ("mbgnbd", "mbgnbd", ["r", "alpha", "a", "b"]),
        ("bgnbd", "bgnbd", ["r", "alpha", "a", "b"]),
    ] {
        let json: Value = serde_json::from_str(&ok(mod8(&[
            "clv",
            "fit",
            "--summary",
            summary,
            "--model",
            model,
        ])))
        .unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut expected = vec!["customers", "gamma_gamma", key];
        expected.sort();
        assert_eq!(keys, expected, "{json}");
        for p in params.iter().chain(&["log_likelihood"]) {
            assert!(json[key][p].as_f64().unwrap().is_finite(), "{model} {p}");
        }
        let csv = ok(mod8(&[
            "clv",
            "predict",
            "--summary",
            summary,
            "--model",
            model,
        ]));
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "customer_id,frequency,recency,T,monetary_value,p_alive,p_alive_at_horizon,expected_purchases,expected_average_spend,clv"
        );
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split(',').skip(1).map(|v| v.parse().unwrap()).collect())
            .collect();
        assert_eq!(rows.len(), 2357);
        for r in &rows {
            let (p_alive, later, expected, spend, clv) = (r[4], r[5], r[6], r[7], r[8]);
            assert!(
                (0.0..=1.0).contains(&p_alive) && later <= p_alive,
                "{model} {r:?}"
            );
            assert!(
                expected >= 0.0 && spend > 0.0 && clv >= 0.0,
                "{model} {r:?}"
            );
        }
    }
    // The default (no --model) is BG/NBD with the same output.
    assert_eq!(
        ok(mod8(&["clv", "fit", "--summary", summary])),
        ok(mod8(&[
            "clv",
            "fit",
            "--summary",
            summary,
            "--model",
            "bgnbd"
        ]))
    );
}

#[test]
fn bgbb_works_on_opportunities_and_refuses_weekly_histories() {
    let dir = tempfile::tempdir().unwrap();
    let log = simulated_log(dir.path());
    let log = log.to_str().unwrap();
    let base = ["--transactions", log, "--calibration-end", END];
    let fit: Value = serde_json::from_str(&ok(mod8(
        &[
            &["clv", "fit"],
            &base[..],
            &["--model", "bgbb", "--period-days", "7"],
        ]
        .concat(),
    )))
    .unwrap();
    for p in ["alpha", "beta", "gamma", "delta", "log_likelihood"] {
        assert!(fit["bgbb"][p].as_f64().unwrap().is_finite(), "{p}: {fit}");
    }
    let csv = ok(mod8(
        &[
            &["clv", "predict"],
            &base[..],
            &["--model", "bgbb", "--period-days", "7", "--periods", "8"],
        ]
        .concat(),
    ));
    assert!(csv.starts_with("customer_id,frequency,recency,n_periods,monetary_value,p_alive,"));
    assert!(csv.lines().count() > 1_000);

    // A BG/BB summary, and compare on it (BG/BB alone).
    let summary = dir.path().join("bgbb.csv");
    std::fs::write(
        &summary,
        "customer_id,frequency,recency,n_periods,monetary_value\n\
         a,3,6,6,20\nb,1,1,6,5\nc,0,0,6,0\nd,2,4,6,12\ne,5,6,6,30\nf,0,0,6,0\ng,1,3,6,8\nh,4,5,6,25\n",
    )
    .unwrap();
    let summary = summary.to_str().unwrap();
    let json: Value = serde_json::from_str(&ok(mod8(&[
        "clv",
        "compare",
        "--summary",
        summary,
        "--json",
    ])))
    .unwrap();
    let models = json["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["model"], "bgbb");

    let refused: [(Vec<&str>, &str); 5] = [
        (
            [&["clv", "fit"], &base[..], &["--model", "bgbb"]].concat(),
            "--period-days",
        ),
        (
            [&["clv", "fit"], &base[..], &["--period-days", "7"]].concat(),
            "use --model bgbb",
        ),
        (
            vec!["clv", "fit", "--summary", summary],
            "this is a BG/BB summary",
        ),
        (
            vec![
                "clv",
                "fit",
                "--from-db",
                "--calibration-end",
                END,
                "--model",
                "bgbb",
            ],
            "not available with --from-db",
        ),
        (
            vec![
                "clv",
                "plot",
                "--summary",
                summary,
                "--model",
                "bgbb",
                "--out",
                "x",
            ],
            "BG/BB has no charts",
        ),
    ];
    for (args, message) in refused {
        let out = mod8(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let out = mod8(&["clv", "fit", "--summary", summary, "--model", "nbd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model `nbd`"));
}

/// Seeds 150 customers' orders (paid, shipped, some only placed or cancelled, some on the same
/// day, some after the calibration end) into `db`; returns them as a transaction log of the
/// purchases (paid or shipped), amounts in currency units.
async fn seed_orders(db: &mod8_orm::DynDatabase, run: &str) -> String {
    let product = db
        .create_product(NewProduct {
            sku: format!("{run}-sku"),
            name: "Thing".into(),
            category: "things".into(),
            price_cents: 1,
            stock: 1_000_000_000,
        })
        .await
        .unwrap();
    // Purchase days and amounts from a BG/NBD + Gamma-Gamma base (so the fits converge),
    // each an order of `amount` one-cent units; one order in ten more is left placed or
    // cancelled, which the summary must ignore.
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let until: NaiveDate = HOLDOUT_END.parse().unwrap();
    let tx = simulate_transactions(
        &SimulationParams {
            customers: 150,
            bgnbd: BgNbd::new(0.8, 4.0, 0.6, 2.5).unwrap(),
            gamma_gamma: GammaGamma::new(6.0, 4.0, 15.0).unwrap(),
            min_age_weeks: 1.0,
            max_age_weeks: 30.0,
            seed: 5,
        },
        start,
        120,
        until,
    )
    .unwrap();
    let mut rng = Rng::new(5);
    let mut users = std::collections::HashMap::new();
    let mut log = String::from("customer_id,date,amount\n");
    for t in tx {
        let next = users.len();
        let user = match users.get(&t.customer_id) {
            Some(id) => *id,
            None => {
                let id = db
                    .create_user(NewUser::new(
                        format!("{run}.{next}@example.com"),
                        format!("{run}_{next}"),
                    ))
                    .await
                    .unwrap()
                    .id;
                users.insert(t.customer_id.clone(), id);
                id
            }
        };
        let noise = match rng.below(10) {
            0 => Some(OrderStatus::Placed),
            1 => Some(OrderStatus::Cancelled),
            _ => None,
        };
        for status in [
            noise,
            Some(if rng.below(3) == 0 {
                OrderStatus::Shipped
            } else {
                OrderStatus::Paid
            }),
        ]
        .into_iter()
        .flatten()
        {
            let at = Utc.from_utc_datetime(
                &t.date
                    .and_hms_opt(rng.below(24) as u32, rng.below(60) as u32, 0)
                    .unwrap(),
            );
            let quantity = ((t.amount * 100.0).round() as i64).max(1);
            let placed = db
                .place_order(NewOrder {
                    user_id: user,
                    lines: vec![OrderLine {
                        product_id: product.id,
                        quantity,
                    }],
                    created_at: Some(at),
                })
                .await
                .unwrap();
            if status != OrderStatus::Placed {
                db.set_order_status(placed.order.id, status).await.unwrap();
            }
            if status.is_purchase() {
                log.push_str(&format!(
                    "{user},{},{}\n",
                    t.date,
                    placed.order.total_cents as f64 / 100.0
                ));
            }
        }
    }
    log
}

/// The summary columns of two prediction CSVs (id, frequency, recency, T exactly; the average
/// spend to 1e-12 relative) and the model's columns to `tolerance` relative.
fn predictions_close(a: &str, b: &str, tolerance: f64, what: &str) {
    assert_eq!(a.lines().count(), b.lines().count(), "{what}");
    for (la, lb) in a.lines().zip(b.lines()) {
        for (i, (x, y)) in la.split(',').zip(lb.split(',')).enumerate() {
            match (i, x.parse::<f64>(), y.parse::<f64>()) {
                (0..=3, _, _) | (_, Err(_), _) => assert_eq!(x, y, "{what}: {la} vs {lb}"),
                (_, Ok(x), Ok(y)) => {
                    let tolerance = if i == 4 { 1e-12 } else { tolerance };
                    assert!(
                        (x - y).abs() <= tolerance * x.abs().max(y.abs()),
                        "{what}, column {i}: {la} vs {lb}"
                    );
                }
                _ => panic!("{what}: {la} vs {lb}"),
            }
        }
    }
}

fn json_close(a: &Value, b: &Value, tolerance: f64, what: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{what}"
            );
            for (k, v) in x {
                json_close(v, &y[k], tolerance, &format!("{what}.{k}"));
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= tolerance * x.abs().max(y.abs()),
                "{what}: {x} vs {y}"
            );
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

/// `--from-db` on `url` equals the transaction-log path on the same orders, for fit and
/// predict, for BG/NBD and Pareto/NBD: the same customers with the same frequency, recency
/// and T, the same average spend up to rounding (the database averages whole cents, the log
/// path sums amounts in currency units: 1e-12 relative), and so the same fits and predictions
/// up to the optimisers' stopping tolerance (1e-6 relative; Gamma-Gamma moves by ~4e-8 on the
/// ulp-level spend differences).
async fn from_db_matches_the_log(url: &str, dir: &Path) {
    let db = mod8_orm::connect(url).await.unwrap();
    let log = seed_orders(&db, &mod8_testkit::unique_name("clvdb")).await;
    drop(db);
    let log_path = dir.join("orders.csv");
    std::fs::write(&log_path, log).unwrap();
    let log_path = log_path.to_str().unwrap();
    let env = [("MOD8_POSTGRES_URL", url)];
    for model in ["bgnbd", "pareto-nbd"] {
        let from_db = |command: &str| {
            let out = mod8_env(
                &[
                    "clv",
                    command,
                    "--from-db",
                    "--calibration-end",
                    END,
                    "--model",
                    model,
                ],
                &env,
            );
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                stderr.contains("customer(s) summarised from the database"),
                "{stderr}"
            );
            ok(out)
        };
        let from_log = |command: &str| {
            ok(mod8(&[
                "clv",
                command,
                "--transactions",
                log_path,
                "--calibration-end",
                END,
                "--model",
                model,
            ]))
        };
        let (a, b) = (from_db("fit"), from_log("fit"));
        let (a, b): (Value, Value) = (
            serde_json::from_str(&a).unwrap(),
            serde_json::from_str(&b).unwrap(),
        );
        assert!(a["customers"].as_u64().unwrap() > 100, "{a}");
        json_close(&a, &b, 1e-6, model);
        predictions_close(&from_db("predict"), &from_log("predict"), 1e-6, model);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn from_db_on_sqlite_equals_the_exported_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("orders.db").display()
    );
    from_db_matches_the_log(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_db_on_postgres_equals_the_exported_log() {
    let Some(pg) = mod8_testkit::service_url(mod8_testkit::POSTGRES, "clv_models") else {
        return;
    };
    use mod8_orm::sqlx::{self, Connection};
    let run = mod8_testkit::unique_name("mod8_clv");
    let mut admin = sqlx::PgConnection::connect(&pg).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {run}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = pg.rsplit_once('/').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outcome = {
        use futures::FutureExt;
        std::panic::AssertUnwindSafe(from_db_matches_the_log(
            &format!("{base}/{run}"),
            dir.path(),
        ))
        .catch_unwind()
        .await
    };
    sqlx::query(&format!("DROP DATABASE IF EXISTS {run} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
