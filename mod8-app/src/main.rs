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
    },
    /// Generate a realistic data set.
    Seed {
        /// How many users to create.
        #[arg(long, default_value_t = 1000)]
        users: usize,
    },
    /// Drive the flows at scale and print throughput and latency percentiles.
    Bench(mod8_app::commands::bench::BenchArgs),
    /// Customer lifetime value: fit, predict, plot (BG/NBD + Gamma-Gamma).
    Clv {
        #[command(subcommand)]
        command: ClvCommand,
    },
}

#[derive(Subcommand)]
enum ClvCommand {
    /// Fit BG/NBD and Gamma-Gamma and print the parameters as JSON (with `--holdout-end`, also
    /// predicted vs actual holdout purchases).
    Fit {
        #[command(flatten)]
        input: ClvArgs,
        #[command(flatten)]
        holdout: HoldoutArgs,
    },
    /// Per-customer P(alive), expected purchases and CLV as CSV on stdout.
    Predict {
        #[command(flatten)]
        input: ClvArgs,
        #[command(flatten)]
        horizon: HorizonArgs,
    },
    /// Write the charts (SVG and PNG) into a directory.
    Plot {
        #[command(flatten)]
        input: ClvArgs,
        #[command(flatten)]
        holdout: HoldoutArgs,
        /// The CLV distribution chart's horizon and discount rate.
        #[command(flatten)]
        horizon: HorizonArgs,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The input: a transaction log with its calibration end, or a per-customer summary.
#[derive(Args)]
struct ClvArgs {
    /// Transaction log: CSV with a header row `customer_id,date,amount` and ISO dates.
    /// Transactions after the calibration end are held out (counted on stderr).
    #[arg(
        long,
        required_unless_present = "summary",
        conflicts_with = "summary",
        requires = "calibration_end"
    )]
    transactions: Option<PathBuf>,
    /// Last day of the calibration period (YYYY-MM-DD), with --transactions.
    #[arg(long, requires = "transactions", conflicts_with = "summary")]
    calibration_end: Option<chrono::NaiveDate>,
    /// Per-customer summary instead of a transaction log: CSV with the header
    /// `customer_id,frequency,recency,T,monetary_value`, time in weeks (lifetimes' conventions).
    #[arg(long)]
    summary: Option<PathBuf>,
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
        match (self.transactions, self.calibration_end, self.summary) {
            (Some(path), Some(calibration_end), None) => Ok(ClvSource::Transactions {
                path,
                calibration_end,
                holdout_end,
            }),
            (None, None, Some(path)) => Ok(ClvSource::Summary { path }),
            // clap enforces this already; kept as an error rather than a panic.
            _ => anyhow::bail!("give --transactions with --calibration-end, or --summary"),
        }
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
        Command::Serve { addr } => commands::serve(addr).await,
        Command::Seed { users } => commands::seed::run(users).await,
        Command::Bench(args) => commands::bench::run(args).await,
        // CPU-bound and quick: runs on this task, nothing else is scheduled meanwhile.
        Command::Clv { command } => run_clv(command),
    }
}

fn run_clv(command: ClvCommand) -> anyhow::Result<()> {
    use mod8_app::commands::clv;
    match command {
        ClvCommand::Fit { input, holdout } => clv::fit(input.source(holdout.holdout_end)?),
        ClvCommand::Predict { input, horizon } => {
            clv::predict(input.source(None)?, horizon.options())
        }
        ClvCommand::Plot {
            input,
            holdout,
            horizon,
            out,
        } => clv::plot(input.source(holdout.holdout_end)?, horizon.options(), &out),
    }
}
