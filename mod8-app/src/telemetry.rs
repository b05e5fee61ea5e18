//! Logging with `tracing`: human-readable by default, JSON lines with `--json-logs`.
//! The level comes from `RUST_LOG` (default `info` for mod8, `warn` for everything else).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber (a second call is a no-op).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,mod8=info,mod8_app=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
