//! [`crate::InventoryRepository`], [`crate::ReviewRepository`] and
//! [`crate::CartRepository`] for every backend.
//!
//! Rating aggregates live in `product_ratings`, a summary table the review repository updates
//! in the same transaction as the review it writes. Chosen over a trigger (one write path in
//! Rust for both databases instead of two trigger dialects, and visible in the code that
//! writes reviews) and over a materialized view refreshed by a consumer (which would be
//! stale between refreshes, and costs a full recomputation per refresh); the count and the
//! sum are exact integers, so the average never drifts.

/// Columns of an inventory level.
pub(crate) const LEVEL_COLS: &str = "variant_id, on_hand, reserved";
/// Columns of a stock movement.
pub(crate) const MOVEMENT_COLS: &str =
    "id, variant_id, kind, on_hand_delta, reserved_delta, reason, order_id, created_at";
/// Columns of a review.
pub(crate) const REVIEW_COLS: &str =
    "id, product_id, user_id, rating, title, body, verified_purchase, created_at";

/// Implements `InventoryRepository`, `ReviewRepository` and `CartRepository` for
/// `SqlStore<$db>`.
macro_rules! impl_inventory_repositories {
    ($db:ty) => {
        const _: () = {
            use $crate::catalog::*;
            use $crate::error::{Error, Result};
            use $crate::model::PageRequest;
            use $crate::sql::inventory::{LEVEL_COLS, MOVEMENT_COLS, REVIEW_COLS};
            use $crate::sql::products::Movement;
            use $crate::sql::{self};
            use $crate::store::SqlStore;
            use $crate::validate;
            use ::uuid::Uuid;

            impl SqlStore<$db> {
                /// Changes a variant's inventory row by the movement's deltas (refused with a
                /// conflict on `stock` when it would leave fewer units on hand than reserved,
                /// or a negative reservation) and appends the movement, in one transaction.
                async fn move_stock(&self, movement: Movement<'_>) -> Result<InventoryLevel> {
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let level = ::sqlx::query_as::<$db, InventoryLevel>(&format!(
                        "UPDATE inventory SET on_hand = on_hand + $1, \
                           reserved = reserved + $2, updated_at = $3 \
                         WHERE variant_id = $4 AND on_hand + $1 >= reserved + $2 \
                           AND reserved + $2 >= 0 \
                         RETURNING {LEVEL_COLS}"
                    ))
                    .bind(movement.on_hand_delta)
                    .bind(movement.reserved_delta)
                    .bind(sql::now())
                    .bind(movement.variant_id)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let Some(level) = level else {
                        let current = ::sqlx::query_as::<$db, InventoryLevel>(&format!(
                            "SELECT {LEVEL_COLS} FROM inventory WHERE variant_id = $1"
                        ))
                        .bind(movement.variant_id)
                        .fetch_optional(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                        return Err(match current {
                            None => Error::not_found("variant", movement.variant_id),
                            Some(c) => Error::conflict(
                                "variant",
                                "stock",
                                format!(
                                    "variant {} has {} on hand and {} reserved; \
                                     {:+} on hand would leave too few",
                                    c.variant_id, c.on_hand, c.reserved, movement.on_hand_delta
                                ),
                            ),
                        });
                    };
                    self.append_movements(&mut tx, &[movement]).await?;
                    tx.commit(backend).await?;
                    Ok(level)
                }

                /// The cart of `user_id` on `conn`.
                async fn cart_on(
                    &self,
                    conn: &mut $crate::store::Conn<'_, $db>,
                    user_id: Uuid,
                ) -> Result<Cart> {
                    let lines = ::sqlx::query_as::<$db, CartLine>(
                        "SELECT ci.variant_id, v.product_id, v.sku, p.name, ci.quantity, \
                           v.price_cents AS unit_price_cents, v.currency \
                         FROM cart_items ci \
                         JOIN product_variants v ON v.id = ci.variant_id \
                         JOIN products p ON p.id = v.product_id \
                         WHERE ci.user_id = $1 ORDER BY v.sku",
                    )
                    .bind(user_id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let total_cents = lines
                        .iter()
                        .try_fold(0_i64, |sum, l| {
                            l.unit_price_cents
                                .checked_mul(l.quantity)
                                .and_then(|amount| sum.checked_add(amount))
                        })
                        .ok_or_else(|| Error::validation("quantity", "cart total overflows"))?;
                    Ok(Cart { lines, total_cents })
                }
            }

            #[::async_trait::async_trait]
            impl $crate::repository::InventoryRepository for SqlStore<$db> {
                async fn inventory(&self, variant_id: Uuid) -> Result<InventoryLevel> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, InventoryLevel>(&format!(
                        "SELECT {LEVEL_COLS} FROM inventory WHERE variant_id = $1"
                    ))
                    .bind(variant_id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("variant", variant_id))
                }

                async fn receive_stock(
                    &self,
                    variant_id: Uuid,
                    quantity: i64,
                    reason: &str,
                ) -> Result<InventoryLevel> {
                    let quantity = validate::quantity(quantity)?;
                    let reason = validate::reason(reason)?;
                    self.move_stock(Movement {
                        variant_id,
                        kind: "receipt",
                        on_hand_delta: quantity,
                        reserved_delta: 0,
                        reason: &reason,
                        order_id: None,
                    })
                    .await
                }

                async fn return_stock(
                    &self,
                    variant_id: Uuid,
                    quantity: i64,
                    order_id: Option<Uuid>,
                ) -> Result<InventoryLevel> {
                    let quantity = validate::quantity(quantity)?;
                    self.move_stock(Movement {
                        variant_id,
                        kind: "return",
                        on_hand_delta: quantity,
                        reserved_delta: 0,
                        reason: "customer return",
                        order_id,
                    })
                    .await
                }

                async fn adjust_stock(
                    &self,
                    variant_id: Uuid,
                    delta: i64,
                    reason: &str,
                ) -> Result<InventoryLevel> {
                    if delta == 0 {
                        return Err(Error::validation("delta", "an adjustment must change the stock"));
                    }
                    let reason = validate::reason(reason)?;
                    self.move_stock(Movement {
                        variant_id,
                        kind: "adjustment",
                        on_hand_delta: delta,
                        reserved_delta: 0,
                        reason: &reason,
                        order_id: None,
                    })
                    .await
                }

                async fn stock_movements(
                    &self,
                    variant_id: Uuid,
                    limit: u32,
                ) -> Result<Vec<StockMovement>> {
                    let limit = sql::limit(limit)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, StockMovement>(&format!(
                        "SELECT {MOVEMENT_COLS} FROM stock_movements WHERE variant_id = $1 \
                         ORDER BY created_at DESC, id DESC LIMIT $2"
                    ))
                    .bind(variant_id)
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn ledger_mismatches(&self) -> Result<Vec<LedgerMismatch>> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, LedgerMismatch>(
                        "SELECT i.variant_id, i.on_hand, i.reserved, \
                           CAST(COALESCE(m.on_hand, 0) AS BIGINT) AS ledger_on_hand, \
                           CAST(COALESCE(m.reserved, 0) AS BIGINT) AS ledger_reserved \
                         FROM inventory i LEFT JOIN ( \
                           SELECT variant_id, SUM(on_hand_delta) AS on_hand, \
                             SUM(reserved_delta) AS reserved \
                           FROM stock_movements GROUP BY variant_id) m \
                           ON m.variant_id = i.variant_id \
                         WHERE i.on_hand <> COALESCE(m.on_hand, 0) \
                           OR i.reserved <> COALESCE(m.reserved, 0) \
                         ORDER BY i.variant_id",
                    )
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }
            }

            #[::async_trait::async_trait]
            impl $crate::repository::ReviewRepository for SqlStore<$db> {
                async fn create_review(&self, review: NewReview) -> Result<Review> {
                    let r = validate::new_review(&review)?;
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    // Verified is decided here, from the orders, in the same statement.
                    let written = ::sqlx::query_as::<$db, Review>(&format!(
                        "INSERT INTO reviews ({REVIEW_COLS}) \
                         SELECT $1, $2, $3, $4, $5, $6, EXISTS ( \
                             SELECT 1 FROM orders o JOIN order_items oi ON oi.order_id = o.id \
                             WHERE o.user_id = $3 AND oi.product_id = $2 \
                               AND o.status IN ('paid', 'shipped')), $7 \
                         WHERE EXISTS (SELECT 1 FROM products WHERE id = $2) \
                         RETURNING {REVIEW_COLS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(r.product_id)
                    .bind(r.user_id)
                    .bind(r.rating)
                    .bind(&r.title)
                    .bind(&r.body)
                    .bind(sql::now())
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| sql::name_missing(self.err(e), "user", r.user_id))?
                    .ok_or_else(|| Error::not_found("product", r.product_id))?;
                    ::sqlx::query::<$db>(
                        "INSERT INTO product_ratings (product_id, review_count, rating_sum) \
                         VALUES ($1, 1, $2) ON CONFLICT (product_id) DO UPDATE SET \
                           review_count = product_ratings.review_count + 1, \
                           rating_sum = product_ratings.rating_sum + excluded.rating_sum",
                    )
                    .bind(r.product_id)
                    .bind(i64::from(r.rating))
                    .execute(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    tx.commit(backend).await?;
                    Ok(written)
                }

                async fn reviews_of(
                    &self,
                    product_id: Uuid,
                    page: PageRequest,
                ) -> Result<Vec<Review>> {
                    let (limit, offset) = sql::page_bounds(page)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Review>(&format!(
                        "SELECT {REVIEW_COLS} FROM reviews WHERE product_id = $1 \
                         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
                    ))
                    .bind(product_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn product_rating(&self, product_id: Uuid) -> Result<Rating> {
                    let mut conn = self.conn().await?;
                    let row = ::sqlx::query_as::<$db, (i64, i64)>(
                        "SELECT review_count, rating_sum FROM product_ratings \
                         WHERE product_id = $1",
                    )
                    .bind(product_id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok($crate::sql::catalog::rating(
                        row.map(|r| r.0),
                        row.map(|r| r.1),
                    ))
                }
            }

            #[::async_trait::async_trait]
            impl $crate::repository::CartRepository for SqlStore<$db> {
                async fn add_to_cart(
                    &self,
                    user_id: Uuid,
                    variant_id: Uuid,
                    quantity: i64,
                ) -> Result<Cart> {
                    let quantity = validate::cart_quantity(quantity)?;
                    let mut conn = self.conn().await?;
                    // The merge and its bound in one statement: concurrent adds of the same
                    // variant add up, and the line never passes the bound.
                    let merged = ::sqlx::query_scalar::<$db, i64>(
                        "INSERT INTO cart_items (user_id, variant_id, quantity, added_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, variant_id) DO UPDATE \
                           SET quantity = cart_items.quantity + excluded.quantity \
                           WHERE cart_items.quantity + excluded.quantity <= $5 \
                         RETURNING quantity",
                    )
                    .bind(user_id)
                    .bind(variant_id)
                    .bind(quantity)
                    .bind(sql::now())
                    .bind(validate::MAX_CART_QUANTITY)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| match self.err(e) {
                        Error::NotFound { .. } => {
                            Error::not_found("user or variant", format!("{user_id}/{variant_id}"))
                        }
                        other => other,
                    })?;
                    if merged.is_none() {
                        return Err(Error::validation(
                            "quantity",
                            format!(
                                "the line would hold more than {}",
                                validate::MAX_CART_QUANTITY
                            ),
                        ));
                    }
                    self.cart_on(&mut conn, user_id).await
                }

                async fn set_cart_quantity(
                    &self,
                    user_id: Uuid,
                    variant_id: Uuid,
                    quantity: i64,
                ) -> Result<Cart> {
                    let quantity = validate::cart_quantity(quantity)?;
                    let mut conn = self.conn().await?;
                    let done = ::sqlx::query::<$db>(
                        "UPDATE cart_items SET quantity = $1 \
                         WHERE user_id = $2 AND variant_id = $3",
                    )
                    .bind(quantity)
                    .bind(user_id)
                    .bind(variant_id)
                    .execute(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("cart item", variant_id));
                    }
                    self.cart_on(&mut conn, user_id).await
                }

                async fn remove_from_cart(&self, user_id: Uuid, variant_id: Uuid) -> Result<bool> {
                    let mut conn = self.conn().await?;
                    let done = ::sqlx::query::<$db>(
                        "DELETE FROM cart_items WHERE user_id = $1 AND variant_id = $2",
                    )
                    .bind(user_id)
                    .bind(variant_id)
                    .execute(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(done.rows_affected() > 0)
                }

                async fn cart(&self, user_id: Uuid) -> Result<Cart> {
                    let mut conn = self.conn().await?;
                    self.cart_on(&mut conn, user_id).await
                }

                async fn clear_cart(&self, user_id: Uuid) -> Result<u64> {
                    let mut conn = self.conn().await?;
                    let done = ::sqlx::query::<$db>("DELETE FROM cart_items WHERE user_id = $1")
                        .bind(user_id)
                        .execute(conn.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    Ok(done.rows_affected())
                }
            }
        };
    };
}

pub(crate) use impl_inventory_repositories;
