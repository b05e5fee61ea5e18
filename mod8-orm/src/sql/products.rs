//! [`crate::ProductRepository`] for every backend: the simple-product view of the catalog.
//!
//! A simple product is a catalog product seen through its default variant (the first by
//! position): its SKU is the product's code, its price the variant's, its stock what the
//! variant's inventory has available (on hand minus reserved), its category the name of its
//! category in the tree. Creating one creates the category (a root, by slug) when it is new,
//! the product, its one variant (with the product's id and SKU) and the inventory row with an
//! opening `receipt` movement, in one transaction.

use uuid::Uuid;

/// The currency of prices set through the simple-product view.
pub(crate) const DEFAULT_CURRENCY: &str = "EUR";

/// The id of product `p`'s default variant: the first by position, then age, then id.
pub(crate) const DEFAULT_VARIANT_OF_P: &str = "(SELECT v2.id FROM product_variants v2 \
     WHERE v2.product_id = p.id ORDER BY v2.position, v2.created_at, v2.id LIMIT 1)";

/// The simple-product columns (`Product`) of products `p` joined to their category `c`,
/// default variant `v` and its inventory `i`; append a `WHERE`.
pub(crate) fn product_select() -> String {
    format!(
        "SELECT p.id, p.sku, p.name, c.name AS category, v.price_cents, \
           i.on_hand - i.reserved AS stock \
         FROM products p \
         JOIN categories c ON c.id = p.category_id \
         JOIN product_variants v ON v.id = {DEFAULT_VARIANT_OF_P} \
         JOIN inventory i ON i.variant_id = v.id"
    )
}

/// The slug of a category name: trimmed, lower-cased, spaces as hyphens (the rule the catalog
/// migration applied to the old text categories).
pub(crate) fn slug_of(name: &str) -> String {
    name.trim().to_lowercase().replace(' ', "-")
}

/// One stock movement to append to the ledger.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Movement<'a> {
    pub(crate) variant_id: Uuid,
    pub(crate) kind: &'a str,
    pub(crate) on_hand_delta: i64,
    pub(crate) reserved_delta: i64,
    pub(crate) reason: &'a str,
    pub(crate) order_id: Option<Uuid>,
}

/// Columns of an insert into `stock_movements`, in bind order.
pub(crate) const MOVEMENT_INSERT_COLS: &str =
    "id, variant_id, kind, on_hand_delta, reserved_delta, reason, order_id, created_at";

/// Implements `ProductRepository` for `SqlStore<$db>`.
macro_rules! impl_product_repository {
    ($db:ty) => {
        const _: () = {
            use ::uuid::Uuid;
            use $crate::error::{Error, Result};
            use $crate::model::*;
            use $crate::sql::products::{
                product_select, slug_of, Movement, DEFAULT_CURRENCY, DEFAULT_VARIANT_OF_P,
                MOVEMENT_INSERT_COLS,
            };
            use $crate::sql::{self};
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::validate;

            impl SqlStore<$db> {
                /// Appends `movements` to the ledger in one statement (none: no statement).
                pub(crate) async fn append_movements(
                    &self,
                    tx: &mut $crate::store::Tx<'_, $db>,
                    movements: &[Movement<'_>],
                ) -> Result<()> {
                    let now = sql::now();
                    for chunk in movements.chunks($crate::sql::dialect::rows_per_statement(
                        8,
                        <$db as SqlDriver>::DIALECT.max_bind_params,
                    )) {
                        let statement = format!(
                            "INSERT INTO stock_movements ({MOVEMENT_INSERT_COLS}) VALUES {}",
                            <$db as SqlDriver>::DIALECT.values(chunk.len(), 8, 1)
                        );
                        let mut q = ::sqlx::query::<$db>(&statement);
                        for m in chunk {
                            q = q
                                .bind(Uuid::new_v4())
                                .bind(m.variant_id)
                                .bind(m.kind)
                                .bind(m.on_hand_delta)
                                .bind(m.reserved_delta)
                                .bind(m.reason)
                                .bind(m.order_id)
                                .bind(now);
                        }
                        q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
                    }
                    Ok(())
                }

                /// The simple-product view of product `id` inside `tx`.
                async fn product_in(
                    &self,
                    tx: &mut $crate::store::Tx<'_, $db>,
                    id: Uuid,
                ) -> Result<Product> {
                    ::sqlx::query_as::<$db, Product>(&format!(
                        "{} WHERE p.id = $1",
                        product_select()
                    ))
                    .bind(id)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("product", id))
                }
            }

            #[::async_trait::async_trait]
            impl $crate::repository::ProductRepository for SqlStore<$db> {
                async fn create_product(&self, product: NewProduct) -> Result<Product> {
                    let p = validate::new_product(&product)?;
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let now = sql::now();
                    let slug = slug_of(&p.category);
                    ::sqlx::query::<$db>(
                        "INSERT INTO categories (id, parent_id, slug, name, created_at) \
                         VALUES ($1, NULL, $2, $3, $4) ON CONFLICT (slug) DO NOTHING",
                    )
                    .bind(Uuid::new_v4())
                    .bind(&slug)
                    .bind(&p.category)
                    .bind(now)
                    .execute(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let id = Uuid::new_v4();
                    ::sqlx::query::<$db>(
                        "INSERT INTO products (id, sku, name, category_id, created_at, \
                           updated_at) \
                         SELECT $1, $2, $3, id, $4, $4 FROM categories WHERE slug = $5",
                    )
                    .bind(id)
                    .bind(&p.sku)
                    .bind(&p.name)
                    .bind(now)
                    .bind(&slug)
                    .execute(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    ::sqlx::query::<$db>(
                        "INSERT INTO product_variants (id, product_id, sku, options, \
                           price_cents, currency, position, created_at) \
                         VALUES ($1, $1, $2, '{}', $3, $4, 0, $5)",
                    )
                    .bind(id)
                    .bind(&p.sku)
                    .bind(p.price_cents)
                    .bind(DEFAULT_CURRENCY)
                    .bind(now)
                    .execute(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    ::sqlx::query::<$db>(
                        "INSERT INTO inventory (variant_id, on_hand, reserved, updated_at) \
                         VALUES ($1, $2, 0, $3)",
                    )
                    .bind(id)
                    .bind(p.stock)
                    .bind(now)
                    .execute(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    if p.stock > 0 {
                        let receipt = Movement {
                            variant_id: id,
                            kind: "receipt",
                            on_hand_delta: p.stock,
                            reserved_delta: 0,
                            reason: "opening balance",
                            order_id: None,
                        };
                        self.append_movements(&mut tx, &[receipt]).await?;
                    }
                    let created = self.product_in(&mut tx, id).await?;
                    tx.commit(backend).await?;
                    Ok(created)
                }

                async fn get_product(&self, id: Uuid) -> Result<Product> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Product>(&format!(
                        "{} WHERE p.id = $1",
                        product_select()
                    ))
                    .bind(id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("product", id))
                }

                async fn products(&self, category: Option<&str>) -> Result<Vec<Product>> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Product>(&format!(
                        "{} WHERE p.archived_at IS NULL AND ($1 IS NULL OR c.name = $1) \
                         ORDER BY c.name, p.name, p.id",
                        product_select()
                    ))
                    .bind(category)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn restock(&self, id: Uuid, quantity: i64) -> Result<Product> {
                    let quantity = validate::quantity(quantity)?;
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let variant = ::sqlx::query_scalar::<$db, Uuid>(&format!(
                        "UPDATE inventory SET on_hand = on_hand + $1, updated_at = $2 \
                         WHERE variant_id = (SELECT {DEFAULT_VARIANT_OF_P} \
                           FROM products p WHERE p.id = $3) \
                         RETURNING variant_id"
                    ))
                    .bind(quantity)
                    .bind(sql::now())
                    .bind(id)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("product", id))?;
                    let receipt = Movement {
                        variant_id: variant,
                        kind: "receipt",
                        on_hand_delta: quantity,
                        reserved_delta: 0,
                        reason: "restock",
                        order_id: None,
                    };
                    self.append_movements(&mut tx, &[receipt]).await?;
                    let restocked = self.product_in(&mut tx, id).await?;
                    tx.commit(backend).await?;
                    Ok(restocked)
                }
            }
        };
    };
}

pub(crate) use impl_product_repository;
