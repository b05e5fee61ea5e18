//! The `mod8` subcommands, callable from code too.

pub mod bench;
pub mod cluster;
pub mod clv;
pub mod counters;
pub mod demo;
pub mod recs;
pub mod review;
pub mod seed;

use std::net::SocketAddr;

use crate::{App, AppConfig, Role};

/// `mod8 serve`: build the app from the environment, start its consumers and relay, serve
/// until SIGINT/SIGTERM, then drain requests and consumers.
///
/// Without `MOD8_AUTH_KEYS` the API signs with a random development key, and one admin token
/// is printed once, on stdout (never through the logs), as a line `TOKEN=<jwt>`.
///
/// # Errors
///
/// A backend that cannot be reached, or the address cannot be bound.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    serve_as(addr, Role::All).await
}

/// `mod8 serve --role ROLE`: like [`serve`], running only `role`'s work
/// ([`App::start_with`]): [`Role::Api`] serves the API and runs the outbox relay,
/// [`Role::Worker`] runs the consumers and the insights worker and serves only `/healthz` and
/// `/metrics` on `addr`, [`Role::All`] does both.
///
/// # Errors
///
/// A backend that cannot be reached, or the address cannot be bound.
pub async fn serve_as(addr: SocketAddr, role: Role) -> anyhow::Result<()> {
    let app = App::build(AppConfig::from_env()?).await?;
    app.start_with(role).await?;
    let served = async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        if app.auth.is_development() {
            let admin = app
                .auth
                .issue(crate::http::auth::Scope::Admin, "admin")
                .map_err(anyhow::Error::new)?;
            tracing::warn!(
                "no MOD8_AUTH_KEYS set: tokens are signed with a random development key that \
                 dies with this process; an admin token is printed on stdout"
            );
            print_admin_token(&admin.token, admin.expires_at)?;
        }
        crate::http::serve_listener(app.clone(), listener, crate::http::shutdown_signal()).await
    }
    .await;
    app.shutdown().await;
    served
}

fn print_admin_token(token: &str, expires_at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# development admin token (valid until {expires_at}); use it as\n\
         # curl -H \"Authorization: Bearer $TOKEN\" ...\nTOKEN={token}"
    )?;
    out.flush()?;
    Ok(())
}
