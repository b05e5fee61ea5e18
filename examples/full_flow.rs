//! The three mod8 flows driven through the library API (not HTTP): registration with the
//! outbox, real-time analytics, personalisation — the same run as `mod8 demo`.
//!
//! ```sh
//! cargo run -p mod8-examples --example full_flow              # embedded defaults
//! eval "$(scripts/services.sh env)" && cargo run -p mod8-examples --example full_flow
//! ```

use mod8_app::{App, AppConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = AppConfig::from_env()?;
    for line in config.describe() {
        println!("{line}");
    }
    let app = App::build(config).await?;
    app.start().await?;
    let report = mod8_app::commands::demo::run_on(&app).await;
    app.shutdown().await;
    print!("{report}");
    anyhow::ensure!(
        report.failures() == 0,
        "{} step(s) failed",
        report.failures()
    );
    Ok(())
}
