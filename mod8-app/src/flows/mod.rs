//! The three flows of the design, as methods on [`App`](crate::App): the HTTP handlers, the
//! demo and the benchmark call the same code.
//!
//! - [`registration`]: validate → user, address and outbox row in one SQL transaction → cache
//!   the user → initial recommendations; the relay publishes the UserData event later.
//! - [`analytics`]: count the event in the cache tier → publish to the `analytics` fanout,
//!   whose consumers store it and feed the live dashboard.
//! - [`personalisation`]: cache hit, or SQL + documents → profile → predictions (cached) →
//!   recommendations → cache for an hour.

pub mod analytics;
pub mod personalisation;
pub mod registration;

use std::future::Future;
use std::time::Instant;

use crate::error::{AppError, AppResult};
use crate::App;

/// Cache tag of everything derived from one user's data.
pub fn user_tag(user_id: uuid::Uuid) -> String {
    format!("user:{user_id}")
}

impl App {
    /// Runs one call to a dependency with the configured timeout, recording its latency under
    /// `name` (`sql.create_user`, `docs.events`, ...).
    pub(crate) async fn call<T, E>(
        &self,
        name: &'static str,
        dependency: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> AppResult<T>
    where
        E: Into<AppError>,
    {
        let started = Instant::now();
        let result = tokio::time::timeout(self.config.call_timeout, fut).await;
        self.metrics.observe_query(name, started.elapsed());
        match result {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(AppError::Unavailable {
                dependency,
                message: format!("{name} took longer than {:?}", self.config.call_timeout),
            }),
        }
    }
}
