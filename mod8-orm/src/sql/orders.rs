//! [`crate::OrderRepository`] for every backend.

/// Implements `OrderRepository` for `SqlStore<$db>`.
macro_rules! impl_order_repository {
    ($db:ty) => {
        const _: () = {
            use std::collections::HashMap;

            use $crate::error::{Error, Result};
            use $crate::model::*;
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::sql::{self, ORDER_COLS, ORDER_ITEM_COLS};
            use $crate::validate;
            use ::uuid::Uuid;

            /// Items of these orders, in one statement per bind-limit chunk.
            async fn items_of(
                conn: &mut $crate::store::Conn<'_, $db>,
                orders: &[Order],
            ) -> std::result::Result<HashMap<Uuid, Vec<OrderItem>>, ::sqlx::Error> {
                let mut items = Vec::new();
                for chunk in orders.chunks(<$db as SqlDriver>::DIALECT.max_bind_params) {
                    let sql = format!(
                        "SELECT {ORDER_ITEM_COLS} FROM order_items WHERE order_id IN ({}) \
                         ORDER BY order_id, product_id",
                        <$db as SqlDriver>::DIALECT.list(chunk.len(), 1)
                    );
                    let mut q = ::sqlx::query_as::<$db, OrderItem>(&sql);
                    for o in chunk {
                        q = q.bind(o.id);
                    }
                    items.extend(q.fetch_all(conn.exec()).await?);
                }
                Ok(sql::group_by_parent(items, |i| i.order_id))
            }

            impl SqlStore<$db> {
                /// Why `line` could not be reserved: the product is missing, or short (a
                /// conflict naming it and what is left).
                async fn unreserved(
                    &self,
                    tx: &mut $crate::store::Tx<'_, $db>,
                    line: &OrderLine,
                ) -> Error {
                    let found = ::sqlx::query_as::<$db, (String, i64)>(
                        "SELECT sku, stock FROM products WHERE id = $1",
                    )
                    .bind(line.product_id)
                    .fetch_optional(tx.exec())
                    .await;
                    match found {
                        Ok(None) => Error::not_found("product", line.product_id),
                        Ok(Some((sku, stock))) => Error::conflict(
                            "product",
                            "stock",
                            format!(
                                "{sku} (product {}) has {stock} in stock, {} ordered",
                                line.product_id, line.quantity
                            ),
                        ),
                        Err(e) => self.err(e),
                    }
                }
            }

            #[::async_trait::async_trait]
            impl $crate::repository::OrderRepository for SqlStore<$db> {
                async fn place_order(&self, order: NewOrder) -> Result<OrderWithItems> {
                    validate::new_order(&order)?;
                    if order.lines.len() > sql::MAX_ORDER_LINES {
                        return Err(Error::validation(
                            "lines",
                            format!("at most {} lines per order", sql::MAX_ORDER_LINES),
                        ));
                    }
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;

                    // Reserve stock line by line. The guarded UPDATE is the stock check (a
                    // read-then-write check would race concurrent orders), and it returns the
                    // catalogue price. Rows are locked in product-id order whatever the
                    // caller's line order, so two orders for the same products cannot each
                    // hold one row the other waits for (a deadlock on PostgreSQL). A failing
                    // line leaves earlier reservations to the transaction's rollback.
                    let mut lines: Vec<&OrderLine> = order.lines.iter().collect();
                    lines.sort_by_key(|line| line.product_id);
                    let mut total: i64 = 0;
                    let mut priced = Vec::with_capacity(lines.len());
                    for line in lines {
                        let price = ::sqlx::query_scalar::<$db, i64>(
                            "UPDATE products SET stock = stock - $1 \
                             WHERE id = $2 AND stock >= $1 RETURNING price_cents",
                        )
                        .bind(line.quantity)
                        .bind(line.product_id)
                        .fetch_optional(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                        let Some(price) = price else {
                            return Err(self.unreserved(&mut tx, line).await);
                        };
                        total = price
                            .checked_mul(line.quantity)
                            .and_then(|amount| total.checked_add(amount))
                            .ok_or_else(|| {
                                Error::validation("quantity", "order total overflows")
                            })?;
                        priced.push((line, price));
                    }

                    let created = order.created_at.map(sql::stored).unwrap_or_else(sql::now);
                    let header = ::sqlx::query_as::<$db, Order>(&format!(
                        "INSERT INTO orders ({ORDER_COLS}) VALUES ($1, $2, $3, $4, $5) \
                         RETURNING {ORDER_COLS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(order.user_id)
                    .bind(created)
                    .bind(OrderStatus::Placed.as_str())
                    .bind(total)
                    .fetch_one(tx.exec())
                    .await
                    .map_err(|e| sql::name_missing(self.err(e), "user", order.user_id))?;

                    let sql = format!(
                        "INSERT INTO order_items ({ORDER_ITEM_COLS}) VALUES {} \
                         RETURNING {ORDER_ITEM_COLS}",
                        <$db as SqlDriver>::DIALECT.values(priced.len(), 4, 1)
                    );
                    let mut q = ::sqlx::query_as::<$db, OrderItem>(&sql);
                    for (line, price) in &priced {
                        q = q
                            .bind(header.id)
                            .bind(line.product_id)
                            .bind(line.quantity)
                            .bind(*price);
                    }
                    let mut items = q.fetch_all(tx.exec()).await.map_err(|e| self.err(e))?;
                    items.sort_by_key(|i| i.product_id);
                    tx.commit(backend).await?;
                    Ok(OrderWithItems {
                        order: header,
                        items,
                    })
                }

                async fn get_order(&self, id: Uuid) -> Result<OrderWithItems> {
                    let mut conn = self.conn().await?;
                    let order = ::sqlx::query_as::<$db, Order>(&format!(
                        "SELECT {ORDER_COLS} FROM orders WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("order", id))?;
                    let items = ::sqlx::query_as::<$db, OrderItem>(&format!(
                        "SELECT {ORDER_ITEM_COLS} FROM order_items WHERE order_id = $1 \
                         ORDER BY product_id"
                    ))
                    .bind(id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(OrderWithItems { order, items })
                }

                async fn set_order_status(&self, id: Uuid, status: OrderStatus) -> Result<Order> {
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    // The status changes first, conditionally: the UPDATE locks the row, so of
                    // concurrent cancels exactly one changes it (the others re-check the
                    // condition after it commits and match nothing) and only that one
                    // restocks. A plain read first would let two both see it open.
                    let changed = ::sqlx::query_as::<$db, Order>(&format!(
                        "UPDATE orders SET status = $1 \
                         WHERE id = $2 AND status <> 'cancelled' AND status <> $1 \
                         RETURNING {ORDER_COLS}"
                    ))
                    .bind(status.as_str())
                    .bind(id)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let Some(updated) = changed else {
                        // Nothing changed: say why.
                        let current = ::sqlx::query_as::<$db, Order>(&format!(
                            "SELECT {ORDER_COLS} FROM orders WHERE id = $1"
                        ))
                        .bind(id)
                        .fetch_optional(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?
                        .ok_or_else(|| Error::not_found("order", id))?;
                        if current.status == status {
                            return Ok(current);
                        }
                        return Err(Error::validation(
                            "status",
                            "a cancelled order cannot be reopened",
                        ));
                    };
                    if status == OrderStatus::Cancelled {
                        ::sqlx::query::<$db>(
                            "UPDATE products SET stock = stock + \
                               (SELECT oi.quantity FROM order_items oi \
                                WHERE oi.order_id = $1 AND oi.product_id = products.id) \
                             WHERE id IN (SELECT product_id FROM order_items WHERE order_id = $1)",
                        )
                        .bind(id)
                        .execute(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    }
                    tx.commit(backend).await?;
                    Ok(updated)
                }

                async fn orders_of_user(&self, user_id: Uuid) -> Result<Vec<OrderWithItems>> {
                    let mut conn = self.conn().await?;
                    let orders = ::sqlx::query_as::<$db, Order>(&format!(
                        "SELECT {ORDER_COLS} FROM orders WHERE user_id = $1 \
                         ORDER BY created_at DESC, id"
                    ))
                    .bind(user_id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let mut items = items_of(&mut conn, &orders)
                        .await
                        .map_err(|e| self.err(e))?;
                    Ok(orders
                        .into_iter()
                        .map(|order| OrderWithItems {
                            items: items.remove(&order.id).unwrap_or_default(),
                            order,
                        })
                        .collect())
                }

                async fn purchase_history(&self, user_id: Uuid) -> Result<Vec<Purchase>> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Purchase>(
                        "SELECT o.id AS order_id, o.created_at AS ordered_at, p.id AS product_id, \
                           p.sku, p.name, p.category, oi.quantity, oi.unit_price_cents \
                         FROM orders o \
                         JOIN order_items oi ON oi.order_id = o.id \
                         JOIN products p ON p.id = oi.product_id \
                         WHERE o.user_id = $1 AND o.status <> 'cancelled' \
                         ORDER BY o.created_at DESC, o.id, p.sku",
                    )
                    .bind(user_id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn product_popularity(&self, limit: u32) -> Result<Vec<ProductPopularity>> {
                    let limit = sql::limit(limit)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, ProductPopularity>(
                        "SELECT p.id AS product_id, p.sku, p.name, p.category, \
                           CAST(COALESCE(SUM(oi.quantity), 0) AS BIGINT) AS units_sold, \
                           CAST(COUNT(DISTINCT o.id) AS BIGINT) AS orders, \
                           CAST(COUNT(DISTINCT o.user_id) AS BIGINT) AS buyers, \
                           CAST(COALESCE(SUM(oi.quantity * oi.unit_price_cents), 0) AS BIGINT) AS revenue_cents \
                         FROM products p \
                         LEFT JOIN (order_items oi JOIN orders o \
                                    ON o.id = oi.order_id AND o.status <> 'cancelled') \
                           ON oi.product_id = p.id \
                         GROUP BY p.id, p.sku, p.name, p.category \
                         ORDER BY units_sold DESC, revenue_cents DESC, p.sku LIMIT $1",
                    )
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }
            }
        };
    };
}

pub(crate) use impl_order_repository;
