//! The `mod8` subcommands, callable from code too.

pub mod bench;
pub mod clv;
pub mod demo;
pub mod recs;
pub mod seed;

use std::net::SocketAddr;

use crate::{App, AppConfig};

/// `mod8 serve`: build the app from the environment, start its consumers and relay, serve
/// until SIGINT/SIGTERM, then drain requests and consumers.
///
/// # Errors
///
/// A backend that cannot be reached, or the address cannot be bound.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let app = App::build(AppConfig::from_env()?).await?;
    app.start().await?;
    let served = crate::http::serve(app.clone(), addr).await;
    app.shutdown().await;
    served
}
