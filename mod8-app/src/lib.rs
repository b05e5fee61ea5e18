#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod activity;
mod app;
pub mod commands;
pub mod config;
pub mod dependency_figures;
pub mod error;
pub mod flows;
pub mod http;
pub mod keys;
pub mod live;
pub mod live_feed;
pub mod metrics;
pub mod metrics_text;
mod ops_metrics;
pub mod outbox;
pub mod process_stats;
pub mod reference;
pub mod sinks;
pub mod telemetry;
pub mod worker;

pub use app::{App, ConsumerCounts, Role};
pub use config::AppConfig;
pub use error::{AppError, AppResult};
