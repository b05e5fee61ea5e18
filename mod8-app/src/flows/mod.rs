//! The flows of the design, as methods on [`App`]: the HTTP handlers, the demo and the
//! benchmark call the same code.
//!
//! - [`registration`]: validate → user, address and outbox row in one SQL transaction → cache
//!   the user → initial recommendations; the relay publishes the UserData event later.
//! - [`analytics`]: count the event in the cache tier → publish to the `analytics` fanout,
//!   whose consumers store it and feed the live dashboard.
//! - [`personalisation`]: cache hit, or SQL + documents → profile → predictions (cached) →
//!   recommendations → cache for an hour.
//! - [`orders`]: place an order, then drop what is cached about its user.
//! - [`shop`]: carts, checkout with its `order.placed` outbox row, the order life cycle and
//!   reviews.
//! - [`catalog`]: product pages and category listings from the cache; product writes under
//!   `If-Match` with an outbox row, then the stale entries dropped (and again by the
//!   product-events consumer).
//!
//! The flow modules do not import each other: a flow calls another one through its method on
//! [`App`], and what several of them share lives outside them — cache keys and tags in
//! [`crate::keys`], event counting in [`crate::activity`], the outbox handle in
//! [`crate::outbox`], errors shared by cache waiters in [`crate::error`] — or here
//! ([`Recommendations`], which registration answers with too, and the timed call to a
//! dependency that every flow makes).

pub mod analytics;
pub mod catalog;
pub mod orders;
pub(crate) mod params;
pub mod personalisation;
pub mod registration;
pub mod search;
pub mod shop;
pub mod similar;

use std::future::Future;
use std::time::Instant;

use mod8_datasci::Recommendation;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::App;

/// Personalised recommendations (`GET /api/users/{id}/recommendations`, and the initial ones
/// of a registration).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Recommendations {
    /// The user.
    pub user_id: Uuid,
    /// The user's segment when computed.
    pub segment: mod8_datasci::Segment,
    /// Products, best first, scores in [0, 1].
    pub recommendations: Vec<Recommendation>,
    /// Whether this answer came from the cache.
    pub cached: bool,
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
