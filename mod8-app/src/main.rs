//! The `mod8` command: the demo, the HTTP server, data seeding, the benchmark harness and the
//! customer-lifetime-value tools. See `mod8 --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mod8: the data layer of a product that registers users, tracks what they do and
/// personalises what they see. Backends come from MOD8_POSTGRES_URL, MOD8_MONGODB_URL,
/// MOD8_REDIS_URL and MOD8_AMQP_URL; each falls back to an embedded default when unset.
#[derive(Parser)]
#[command(name = "mod8", version, about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registration, analytics and personalisation flows end to end and print a report.
    Demo,
    /// Serve the HTTP API.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// What this process runs: `api` (the HTTP API and the outbox relay), `worker` (the
        /// message consumers and the insights worker; serves only /healthz and /metrics) or
        /// `all` (both). Any number of each may run against the same backends.
        #[arg(long, env = "MOD8_ROLE", value_enum, default_value_t = mod8_app::Role::All)]
        role: mod8_app::Role,
    },
    /// Generate a realistic data set.
    Seed {
        /// How many users to create.
        #[arg(long, default_value_t = 1000)]
        users: usize,
        /// How many catalog products to create (1–5 variants each, written with COPY on
        /// PostgreSQL).
        #[arg(long, default_value_t = 10_000)]
        products: usize,
        /// Instead: users with planted taste groups (products, users and paid orders in the
        /// SQL store only), on which `mod8 recs eval` shows what collaborative filtering finds.
        #[arg(long)]
        planted: bool,
        /// Seed of the planted data (with --planted).
        #[arg(long, default_value_t = 1, requires = "planted")]
        seed: u64,
    },
    /// Recommendations: offline evaluation.
    Recs {
        #[command(subcommand)]
        command: RecsCommand,
    },
    /// Drive the flows at scale and print throughput and latency percentiles.
    Bench(mod8_app::commands::bench::BenchArgs),
    /// Customer lifetime value: fit, predict, plot, compare (BG/NBD, Pareto/NBD, MBG/NBD or
    /// BG/BB, with Gamma-Gamma for spend).
    Clv {
        #[command(subcommand)]
        command: ClvCommand,
    },
    /// Rebuild missing engagement counters in the cache from the event log (after a Redis
    /// restart or flush): every user's, or one user's. Counters still in the cache are left as
    /// they are, so running it again changes nothing.
    RebuildCounters {
        /// Only this user (its id).
        #[arg(long)]
        user: Option<uuid::Uuid>,
    },
    /// The SQL database: `db review`.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Slow-query review: the top statements by total time (PostgreSQL: pg_stat_statements;
    /// SQLite: a probe workload timed by mod8), each plan's red flags and a proposed index or
    /// rewrite, indexes tried with hypopg (PostgreSQL) for the cost before and after.
    Review {
        /// Print the review as JSON.
        #[arg(long)]
        json: bool,
        /// How many statements, the most total time first.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// A table with at least this many rows counts as large.
        #[arg(long, default_value_t = 1000)]
        large_rows: u64,
    },
}

#[derive(Subcommand)]
enum RecsCommand {
    /// Score random, popularity, item-item CF, segment and blend recommendations on the
    /// configured database's order history (held-out purchases): precision@k, recall@k,
    /// MAP@k, NDCG@k, catalogue coverage, as a Markdown table (or JSON).
    Eval {
        /// Recommendations scored per user (the k of every metric).
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Hold out each user's last N purchases (leave-last-N-out; the default split, N = 1).
        #[arg(long, conflicts_with = "time_split")]
        leave_last: Option<usize>,
        /// Time split instead: purchases after this day (YYYY-MM-DD) are held out.
        #[arg(long)]
        time_split: Option<chrono::NaiveDate>,
        /// The day models are built as of (default: the time split's day, else the last
        /// purchase's).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Seed of the random strategy.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClvCommand {
    /// Fit the purchase model and Gamma-Gamma and print the parameters and log-likelihood as
    /// JSON (with `--holdout-end`, also predicted vs actual holdout purchases).
    Fit {
        #[command(flatten)]
        input: ClvArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        holdout: HoldoutArgs,
    },
    /// Per-customer P(alive), expected purchases and CLV as CSV on stdout.
    Predict {
        #[command(flatten)]
        input: ClvArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        horizon: HorizonArgs,
    },
    /// Write the charts (SVG and PNG) into a directory.
    Plot {
        #[command(flatten)]
        input: ClvArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        holdout: HoldoutArgs,
        /// The CLV distribution chart's horizon and discount rate.
        #[command(flatten)]
        horizon: HorizonArgs,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Fit every purchase model that applies to the input and print log-likelihood, number
    /// of parameters, AIC, BIC and (with `--holdout-end`) holdout MAE/RMSE side by side.
    Compare {
        #[command(flatten)]
        input: ClvArgs,
        #[command(flatten)]
        holdout: HoldoutArgs,
        /// Days per transaction opportunity: compare BG/BB on the transaction log cut into
        /// opportunities (instead of the weekly models).
        #[arg(long, requires = "transactions")]
        period_days: Option<u32>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// The purchase model.
#[derive(Args)]
struct ModelArgs {
    /// Purchase model: bgnbd (default), pareto-nbd, mbgnbd, or bgbb for discrete transaction
    /// opportunities (with --period-days on a transaction log, or a summary
    /// customer_id,frequency,recency,n_periods,monetary_value).
    #[arg(long, value_parser = parse_model)]
    model: Option<mod8_datasci::PurchaseModelKind>,
    /// Days per transaction opportunity, for --model bgbb on a transaction log: opportunity j
    /// of a customer is days [j·N, (j+1)·N) after their first transaction (which is
    /// opportunity 0, not counted); only opportunities finished by the calibration end count.
    #[arg(long, requires = "transactions")]
    period_days: Option<u32>,
}

fn parse_model(s: &str) -> Result<mod8_datasci::PurchaseModelKind, String> {
    s.parse().map_err(|e: mod8_datasci::Error| match e {
        mod8_datasci::Error::Validation { message, .. } => message,
        other => other.to_string(),
    })
}

/// The input: a transaction log with its calibration end, a per-customer summary, or the
/// configured database's orders up to a calibration end.
#[derive(Args)]
struct ClvArgs {
    /// Transaction log: CSV with a header row `customer_id,date,amount` and ISO dates.
    /// Transactions after the calibration end are held out (counted on stderr).
    #[arg(
        long,
        required_unless_present_any = ["summary", "from_db"],
        conflicts_with_all = ["summary", "from_db"],
        requires = "calibration_end"
    )]
    transactions: Option<PathBuf>,
    /// Last day of the calibration period (YYYY-MM-DD), with --transactions or --from-db.
    #[arg(long, conflicts_with = "summary")]
    calibration_end: Option<chrono::NaiveDate>,
    /// Per-customer summary instead of a transaction log: CSV with the header
    /// `customer_id,frequency,recency,T,monetary_value`, time in weeks (lifetimes' conventions);
    /// for --model bgbb `customer_id,frequency,recency,n_periods,monetary_value` in opportunities.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Summarise the configured database's orders (MOD8_POSTGRES_URL, PostgreSQL or a SQLite
    /// URL; else the embedded SQLite) with one SQL aggregate: paid and shipped orders up to and
    /// including --calibration-end, amounts in currency units (cents / 100).
    #[arg(long, conflicts_with = "summary", requires = "calibration_end")]
    from_db: bool,
}

#[derive(Args)]
struct HoldoutArgs {
    /// Last day of the holdout period (YYYY-MM-DD, after --calibration-end): predicted vs
    /// actual purchases between the two ends, per calibration frequency, with MAE and RMSE.
    /// Needs --transactions.
    #[arg(long, requires = "transactions", conflicts_with = "summary")]
    holdout_end: Option<chrono::NaiveDate>,
}

#[derive(Args)]
struct HorizonArgs {
    /// Number of periods in the CLV horizon.
    #[arg(long, default_value_t = 12)]
    periods: u32,
    /// Length of one period in weeks (4.345 = a month).
    #[arg(long, default_value_t = 4.345)]
    period_weeks: f64,
    /// Discount rate per period (0.01 = 1 %).
    #[arg(long, default_value_t = 0.01)]
    discount_rate: f64,
}

impl HorizonArgs {
    fn options(&self) -> mod8_datasci::ClvOptions {
        mod8_datasci::ClvOptions {
            periods: self.periods,
            period_weeks: self.period_weeks,
            discount_rate: self.discount_rate,
        }
    }
}

impl ClvArgs {
    fn source(
        self,
        holdout_end: Option<chrono::NaiveDate>,
    ) -> anyhow::Result<mod8_app::commands::clv::ClvSource> {
        use mod8_app::commands::clv::ClvSource;
        match (self.transactions, self.calibration_end, self.summary, self.from_db) {
            (Some(path), Some(calibration_end), None, false) => Ok(ClvSource::Transactions {
                path,
                calibration_end,
                holdout_end,
            }),
            (None, None, Some(path), false) => Ok(ClvSource::Summary { path }),
            (None, Some(calibration_end), None, true) => {
                if holdout_end.is_some() {
                    anyhow::bail!("--holdout-end needs --transactions");
                }
                Ok(ClvSource::Database { calibration_end })
            }
            // clap enforces this already; kept as an error rather than a panic.
            _ => anyhow::bail!(
                "give --transactions with --calibration-end, --summary, or --from-db with --calibration-end"
            ),
        }
    }

    fn request(
        self,
        holdout_end: Option<chrono::NaiveDate>,
        model: ModelArgs,
    ) -> anyhow::Result<mod8_app::commands::clv::ClvRequest> {
        Ok(mod8_app::commands::clv::ClvRequest {
            source: self.source(holdout_end)?,
            model: model.model,
            period_days: model.period_days,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mod8_app::telemetry::init(cli.json_logs);
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli.command)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mod8: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    use mod8_app::commands;
    match command {
        Command::Demo => commands::demo::run().await,
        Command::Serve { addr, role } => commands::serve_as(addr, role).await,
        Command::Seed {
            users,
            products,
            planted: false,
            ..
        } => commands::seed::run(users, products).await,
        Command::Seed {
            users,
            planted: true,
            seed,
            ..
        } => commands::seed::run_planted(users, seed).await,
        Command::Recs {
            command:
                RecsCommand::Eval {
                    k,
                    leave_last,
                    time_split,
                    as_of,
                    seed,
                    json,
                },
        } => {
            let split = match time_split {
                Some(cutoff) => mod8_datasci::EvaluationSplit::time(cutoff),
                None => mod8_datasci::EvaluationSplit::leave_last_out(leave_last.unwrap_or(1)),
            };
            commands::recs::run(
                commands::recs::EvalOptions {
                    k,
                    split,
                    as_of,
                    seed,
                },
                json,
            )
            .await
        }
        Command::Bench(args) => commands::bench::run(args).await,
        // The fits run in `spawn_blocking`; `--from-db` streams the summary from the database.
        Command::Clv { command } => run_clv(command).await,
        Command::RebuildCounters { user } => commands::counters::run(user).await,
        Command::Db {
            command:
                DbCommand::Review {
                    json,
                    limit,
                    large_rows,
                },
        } => {
            let options = commands::review::ReviewOptions { limit, large_rows };
            commands::review::run(json, options).await
        }
    }
}

async fn run_clv(command: ClvCommand) -> anyhow::Result<()> {
    use mod8_app::commands::clv;
    match command {
        ClvCommand::Fit {
            input,
            model,
            holdout,
        } => clv::fit(input.request(holdout.holdout_end, model)?).await,
        ClvCommand::Predict {
            input,
            model,
            horizon,
        } => clv::predict(input.request(None, model)?, horizon.options()).await,
        ClvCommand::Plot {
            input,
            model,
            holdout,
            horizon,
            out,
        } => {
            clv::plot(
                input.request(holdout.holdout_end, model)?,
                horizon.options(),
                &out,
            )
            .await
        }
        ClvCommand::Compare {
            input,
            holdout,
            period_days,
            json,
        } => {
            let request = input.request(
                holdout.holdout_end,
                ModelArgs {
                    model: None,
                    period_days,
                },
            )?;
            let comparison = clv::compare(request).await?;
            if json {
                println!("{}", serde_json::to_string(&comparison)?);
            } else {
                print!("{}", comparison.to_table());
            }
            Ok(())
        }
    }
}
