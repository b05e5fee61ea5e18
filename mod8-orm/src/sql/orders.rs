//! [`crate::OrderRepository`] for every backend.

/// Implements `OrderRepository` for `SqlStore<$db>`.
macro_rules! impl_order_repository {
    ($db:ty) => {
        const _: () = {
            use std::collections::HashMap;

            use $crate::error::{Error, Result};
            use $crate::catalog::{Checkout, VariantLine};
            use $crate::model::*;
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::sql::products::{Movement, DEFAULT_VARIANT_OF_P};
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
                         ORDER BY order_id, product_id, variant_id",
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

            /// A line resolved to the variant it reserves and the price it pays.
            struct Resolved {
                product_id: Uuid,
                variant_id: Uuid,
                sku: String,
                price_cents: i64,
                quantity: i64,
            }

            impl SqlStore<$db> {
                /// Why `line` could not be reserved: what its variant has available.
                async fn unreserved(
                    &self,
                    tx: &mut $crate::store::Tx<'_, $db>,
                    line: &Resolved,
                ) -> Error {
                    let found = ::sqlx::query_scalar::<$db, i64>(
                        "SELECT on_hand - reserved FROM inventory WHERE variant_id = $1",
                    )
                    .bind(line.variant_id)
                    .fetch_optional(tx.exec())
                    .await;
                    match found {
                        Ok(available) => Error::conflict(
                            "product",
                            "stock",
                            format!(
                                "{} (product {}, variant {}) has {} available, {} ordered",
                                line.sku,
                                line.product_id,
                                line.variant_id,
                                available.unwrap_or(0),
                                line.quantity
                            ),
                        ),
                        Err(e) => self.err(e),
                    }
                }

                /// Reserves `lines` through the ledger (all or nothing) and writes the order
                /// header, its items and their reservation movements inside `tx`.
                async fn place_resolved(
                    &self,
                    tx: &mut $crate::store::Tx<'_, $db>,
                    user_id: Uuid,
                    mut lines: Vec<Resolved>,
                    created: ::chrono::DateTime<::chrono::Utc>,
                    shipping_address_id: Option<Uuid>,
                    billing_address_id: Option<Uuid>,
                ) -> Result<OrderWithItems> {
                    // Reserve stock line by line. The guarded UPDATE is the stock check (a
                    // read-then-write check would race concurrent orders). Rows are locked in
                    // variant-id order whatever the caller's line order, so two orders for the
                    // same variants cannot each hold one row the other waits for (a deadlock on
                    // PostgreSQL). A failing line leaves earlier reservations to the
                    // transaction's rollback.
                    lines.sort_by_key(|line| line.variant_id);
                    let mut total: i64 = 0;
                    let now = sql::now();
                    for line in &lines {
                        let reserved = ::sqlx::query_scalar::<$db, Uuid>(
                            "UPDATE inventory SET reserved = reserved + $1, updated_at = $2 \
                             WHERE variant_id = $3 AND on_hand - reserved >= $1 \
                             RETURNING variant_id",
                        )
                        .bind(line.quantity)
                        .bind(now)
                        .bind(line.variant_id)
                        .fetch_optional(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                        if reserved.is_none() {
                            return Err(self.unreserved(tx, line).await);
                        }
                        total = line
                            .price_cents
                            .checked_mul(line.quantity)
                            .and_then(|amount| total.checked_add(amount))
                            .ok_or_else(|| {
                                Error::validation("quantity", "order total overflows")
                            })?;
                    }

                                        let header = ::sqlx::query_as::<$db, Order>(&format!(
                        "INSERT INTO orders ({ORDER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         RETURNING {ORDER_COLS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(user_id)
                    .bind(created)
                    .bind(OrderStatus::Placed.as_str())
                    .bind(total)
                    .bind(shipping_address_id)
                    .bind(billing_address_id)
                    .fetch_one(tx.exec())
                    .await
                    .map_err(|e| sql::name_missing(self.err(e), "user", user_id))?;

                    let sql = format!(
                        "INSERT INTO order_items ({ORDER_ITEM_COLS}) VALUES {} \
                         RETURNING {ORDER_ITEM_COLS}",
                        <$db as SqlDriver>::DIALECT.values(lines.len(), 5, 1)
                    );
                    let mut q = ::sqlx::query_as::<$db, OrderItem>(&sql);
                    for line in &lines {
                        q = q
                            .bind(header.id)
                            .bind(line.product_id)
                            .bind(line.variant_id)
                            .bind(line.quantity)
                            .bind(line.price_cents);
                    }
                    let mut items = q.fetch_all(tx.exec()).await.map_err(|e| self.err(e))?;
                    items.sort_by_key(|i| (i.product_id, i.variant_id));
                    let movements: Vec<Movement<'_>> = lines
                        .iter()
                        .map(|line| Movement {
                            variant_id: line.variant_id,
                            kind: "reservation",
                            on_hand_delta: 0,
                            reserved_delta: line.quantity,
                            reason: "order placed",
                            order_id: Some(header.id),
                        })
                        .collect();
                    self.append_movements(tx, &movements).await?;
                    Ok(OrderWithItems {
                        order: header,
                        items,
                    })
                }

                /// Applies a status change's inventory effect to every line of order `id`:
                /// shipping sells the reserved units, cancelling releases them. One update of
                /// the inventory rows and one append to the ledger.
                async fn settle_stock(
                    &self,
                    tx: &mut $crate::store::Tx<'_, $db>,
                    id: Uuid,
                    status: OrderStatus,
                ) -> Result<()> {
                    let (kind, on_hand) = match status {
                        OrderStatus::Shipped => ("sale", true),
                        OrderStatus::Cancelled => ("release", false),
                        OrderStatus::Placed | OrderStatus::Paid => return Ok(()),
                    };
                    let lines = ::sqlx::query_as::<$db, (Uuid, i64)>(
                        "SELECT variant_id, quantity FROM order_items WHERE order_id = $1 \
                         ORDER BY variant_id",
                    )
                    .bind(id)
                    .fetch_all(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let quantity = "(SELECT oi.quantity FROM order_items oi \
                         WHERE oi.order_id = $1 AND oi.variant_id = inventory.variant_id)";
                    let on_hand_set = if on_hand {
                        format!("on_hand = on_hand - {quantity}, ")
                    } else {
                        String::new()
                    };
                    ::sqlx::query::<$db>(&format!(
                        "UPDATE inventory SET {on_hand_set}reserved = reserved - {quantity}, \
                           updated_at = $2 \
                         WHERE variant_id IN (SELECT variant_id FROM order_items \
                           WHERE order_id = $1)"
                    ))
                    .bind(id)
                    .bind(sql::now())
                    .execute(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let movements: Vec<Movement<'_>> = lines
                        .iter()
                        .map(|&(variant_id, q)| Movement {
                            variant_id,
                            kind,
                            on_hand_delta: if on_hand { -q } else { 0 },
                            reserved_delta: -q,
                            reason: if on_hand { "order shipped" } else { "order cancelled" },
                            order_id: Some(id),
                        })
                        .collect();
                    self.append_movements(tx, &movements).await
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

                    // Each product's default variant and its price, in one statement.
                    let ids: Vec<Uuid> = order.lines.iter().map(|l| l.product_id).collect();
                    let statement = format!(
                        "SELECT p.id, v.id, v.sku, v.price_cents FROM products p \
                         JOIN product_variants v ON v.id = {DEFAULT_VARIANT_OF_P} \
                         WHERE p.id IN ({})",
                        <$db as SqlDriver>::DIALECT.list(ids.len(), 1)
                    );
                    let variants =
                        ::sqlx::query_as::<$db, (Uuid, Uuid, String, i64)>(&statement);
                    let variants = ids
                        .iter()
                        .fold(variants, |q, id| q.bind(*id))
                        .fetch_all(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    let by_product: HashMap<Uuid, (Uuid, String, i64)> = variants
                        .into_iter()
                        .map(|(p, v, sku, price)| (p, (v, sku, price)))
                        .collect();
                    let mut lines = Vec::with_capacity(order.lines.len());
                    for line in &order.lines {
                        let Some((variant_id, sku, price_cents)) = by_product.get(&line.product_id)
                        else {
                            return Err(Error::not_found("product", line.product_id));
                        };
                        lines.push(Resolved {
                            product_id: line.product_id,
                            variant_id: *variant_id,
                            sku: sku.clone(),
                            price_cents: *price_cents,
                            quantity: line.quantity,
                        });
                    }

                    let created = order.created_at.map(sql::stored).unwrap_or_else(sql::now);
                    let placed = self
                        .place_resolved(&mut tx, order.user_id, lines, created, None, None)
                        .await?;
                    tx.commit(backend).await?;
                    Ok(placed)
                }

                async fn checkout(&self, checkout: Checkout) -> Result<OrderWithItems> {
                    if let Some(lines) = &checkout.lines {
                        validate::checkout_lines(lines)?;
                    }
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let from_cart = checkout.lines.is_none();
                    let wanted: Vec<VariantLine> = match checkout.lines {
                        Some(lines) => lines,
                        None => ::sqlx::query_as::<$db, (Uuid, i64)>(
                            "SELECT variant_id, quantity FROM cart_items WHERE user_id = $1",
                        )
                        .bind(checkout.user_id)
                        .fetch_all(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?
                        .into_iter()
                        .map(|(variant_id, quantity)| VariantLine {
                            variant_id,
                            quantity,
                        })
                        .collect(),
                    };
                    if wanted.is_empty() {
                        return Err(Error::validation("lines", "the cart is empty"));
                    }
                    validate::checkout_lines(&wanted)?;
                    for (field, address) in [
                        ("shipping_address_id", checkout.shipping_address_id),
                        ("billing_address_id", checkout.billing_address_id),
                    ] {
                        let Some(address) = address else { continue };
                        let found = ::sqlx::query_scalar::<$db, i64>(
                            "SELECT CAST(COUNT(*) AS BIGINT) FROM addresses WHERE id = $1",
                        )
                        .bind(address)
                        .fetch_one(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                        if found == 0 {
                            return Err(Error::not_found(
                                if field == "shipping_address_id" {
                                    "shipping address"
                                } else {
                                    "billing address"
                                },
                                address,
                            ));
                        }
                    }
                    // The variants and their current prices, in one statement.
                    let statement = format!(
                        "SELECT v.id, v.product_id, v.sku, v.price_cents FROM product_variants v \
                         WHERE v.id IN ({})",
                        <$db as SqlDriver>::DIALECT.list(wanted.len(), 1)
                    );
                    let found = wanted
                        .iter()
                        .fold(
                            ::sqlx::query_as::<$db, (Uuid, Uuid, String, i64)>(&statement),
                            |q, l| q.bind(l.variant_id),
                        )
                        .fetch_all(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    let by_variant: HashMap<Uuid, (Uuid, String, i64)> = found
                        .into_iter()
                        .map(|(v, p, sku, price)| (v, (p, sku, price)))
                        .collect();
                    let mut lines = Vec::with_capacity(wanted.len());
                    for line in &wanted {
                        let Some((product_id, sku, price_cents)) = by_variant.get(&line.variant_id)
                        else {
                            return Err(Error::not_found("variant", line.variant_id));
                        };
                        lines.push(Resolved {
                            product_id: *product_id,
                            variant_id: line.variant_id,
                            sku: sku.clone(),
                            price_cents: *price_cents,
                            quantity: line.quantity,
                        });
                    }
                    let placed = self
                        .place_resolved(
                            &mut tx,
                            checkout.user_id,
                            lines,
                            sql::now(),
                            checkout.shipping_address_id,
                            checkout.billing_address_id,
                        )
                        .await?;
                    if from_cart {
                        ::sqlx::query::<$db>("DELETE FROM cart_items WHERE user_id = $1")
                            .bind(checkout.user_id)
                            .execute(tx.exec())
                            .await
                            .map_err(|e| self.err(e))?;
                    }
                    tx.commit(backend).await?;
                    Ok(placed)
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
                         ORDER BY product_id, variant_id"
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
                    // The status changes first, conditionally on the statuses it may come
                    // from: the UPDATE locks the row, so of concurrent changes exactly one
                    // happens (the others re-check the condition after it commits and match
                    // nothing) and only that one moves stock. A plain read first would let two
                    // both see it open.
                    let from = status.may_follow();
                    let changed = if from.is_empty() {
                        None
                    } else {
                        // Numbered placeholders throughout: SQLite binds anonymous ones from
                        // the first argument, whatever numbered ones precede them.
                        let statuses = (3..3 + from.len())
                            .map(|n| format!("${n}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let statement = format!(
                            "UPDATE orders SET status = $1 WHERE id = $2 \
                             AND status IN ({statuses}) RETURNING {ORDER_COLS}"
                        );
                        from.iter()
                            .fold(
                                ::sqlx::query_as::<$db, Order>(&statement)
                                    .bind(status.as_str())
                                    .bind(id),
                                |q, s| q.bind(s.as_str()),
                            )
                            .fetch_optional(tx.exec())
                            .await
                            .map_err(|e| self.err(e))?
                    };
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
                        return Err(Error::conflict(
                            "order",
                            "status",
                            format!("a {} order cannot become {status}", current.status),
                        ));
                    };
                    self.settle_stock(&mut tx, id, status).await?;
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
                           p.sku, p.name, c.name AS category, oi.quantity, oi.unit_price_cents \
                         FROM orders o \
                         JOIN order_items oi ON oi.order_id = o.id \
                         JOIN products p ON p.id = oi.product_id \
                         JOIN categories c ON c.id = p.category_id \
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
                        "SELECT p.id AS product_id, p.sku, p.name, c.name AS category, \
                           CAST(COALESCE(SUM(oi.quantity), 0) AS BIGINT) AS units_sold, \
                           CAST(COUNT(DISTINCT o.id) AS BIGINT) AS orders, \
                           CAST(COUNT(DISTINCT o.user_id) AS BIGINT) AS buyers, \
                           CAST(COALESCE(SUM(oi.quantity * oi.unit_price_cents), 0) AS BIGINT) AS revenue_cents \
                         FROM products p \
                         JOIN categories c ON c.id = p.category_id \
                         LEFT JOIN (order_items oi JOIN orders o \
                                    ON o.id = oi.order_id AND o.status <> 'cancelled') \
                           ON oi.product_id = p.id \
                         WHERE p.archived_at IS NULL \
                         GROUP BY p.id, p.sku, p.name, c.name \
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
