//! Orders: place one in SQL, then drop everything cached about its user that the order
//! changes (profile, predictions, recommendations: all tagged with the user's
//! [`keys::user_tag`]).

use mod8_orm::{NewOrder, OrderWithItems};
use uuid::Uuid;

use crate::error::AppResult;
use crate::{keys, App};

impl App {
    /// Places an order, drops everything cached about the user that it changes (profile,
    /// predictions, recommendations) and wakes the insights worker to rebuild the
    /// recommendation model.
    ///
    /// # Errors
    ///
    /// As the order repository: validation, unknown product or user, insufficient stock. The
    /// cache never fails it: the order is committed, so an invalidation that fails (cache
    /// backend down) is logged and counted, and the stale answers expire by their TTL.
    pub async fn place_order(&self, order: NewOrder) -> AppResult<OrderWithItems> {
        let user_id = order.user_id;
        let placed = self
            .call("sql.place_order", "sql", self.sql.place_order(order))
            .await?;
        self.invalidate_user(user_id).await;
        // The co-occurrence model counts every order line: the worker rebuilds it.
        self.worker.orders_changed();
        Ok(placed)
    }

    /// Drops what is cached about a user after a committed write. Never an error: the write
    /// has happened, so a failing cache is logged and counted (`/metrics`) instead.
    pub(crate) async fn invalidate_user(&self, user_id: Uuid) {
        if let Err(e) = self.cache.invalidate_tag(&keys::user_tag(user_id)).await {
            self.metrics.cache_invalidation_failed();
            tracing::warn!(%user_id, error = %e, "could not invalidate the user's cached answers; they expire by TTL");
        }
    }
}
