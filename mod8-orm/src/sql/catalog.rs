//! [`crate::CatalogRepository`] for every backend.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::{CatalogProduct, ListingQuery, ListingSort, ProductSummary, Rating};
use crate::error::{Error, Result};

/// The columns of a [`CatalogProduct`] (unqualified, for `RETURNING`).
pub(crate) const CATALOG_PRODUCT_COLS: &str = "id, sku, name, category_id, brand, description, \
     attributes, created_at, updated_at, version, archived_at";
/// The columns of a [`crate::Category`].
pub(crate) const CATEGORY_COLS: &str = "id, parent_id, slug, name, created_at";

/// A product row with its rating aggregate (statement 1 of a product page).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ProductRow {
    #[sqlx(flatten)]
    pub(crate) product: CatalogProduct,
    pub(crate) review_count: Option<i64>,
    pub(crate) rating_sum: Option<i64>,
}

impl ProductRow {
    pub(crate) fn rating(&self) -> Rating {
        rating(self.review_count, self.rating_sum)
    }
}

/// The rating of a count and a sum of ratings.
pub(crate) fn rating(count: Option<i64>, sum: Option<i64>) -> Rating {
    let count = count.unwrap_or(0).max(0);
    Rating {
        review_count: u64::try_from(count).unwrap_or(0),
        average: (count > 0).then(|| sum.unwrap_or(0) as f64 / count as f64),
    }
}

/// A category with its depth and subtree product count.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CountRow {
    #[sqlx(flatten)]
    pub(crate) category: crate::catalog::Category,
    pub(crate) depth: i64,
    pub(crate) products: i64,
}

/// What a listing cursor holds: the sort it belongs to, the last row's sort key and id.
#[derive(Debug, Serialize, Deserialize)]
struct CursorKey {
    s: ListingSort,
    k: serde_json::Value,
    id: Uuid,
}

/// The key a cursor resumes after, typed for binding.
#[derive(Debug)]
pub(crate) enum After {
    Time(DateTime<Utc>, Uuid),
    Cents(i64, Uuid),
    Score(f64, Uuid),
}

/// Encodes the position after `last` in a listing sorted by `sort`: hex of a small JSON
/// document (opaque to clients, who must not build one).
pub(crate) fn encode_cursor(sort: ListingSort, last: &ProductSummary) -> String {
    let k = match sort {
        ListingSort::Newest => serde_json::json!(last.created_at),
        ListingSort::PriceAsc | ListingSort::PriceDesc => serde_json::json!(last.price_cents),
        ListingSort::Rating => serde_json::json!(last.rating),
    };
    let bytes = serde_json::to_vec(&CursorKey {
        s: sort,
        k,
        id: last.id,
    })
    .unwrap_or_default();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a cursor of a listing sorted by `sort`.
pub(crate) fn decode_cursor(sort: ListingSort, cursor: &str) -> Result<After> {
    let bad = || Error::validation("cursor", "not a cursor of this listing");
    if !cursor.len().is_multiple_of(2) || cursor.len() > 1_024 {
        return Err(bad());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let key: CursorKey = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if key.s != sort {
        return Err(Error::validation(
            "cursor",
            "the cursor belongs to a listing in another order",
        ));
    }
    Ok(match sort {
        ListingSort::Newest => {
            After::Time(serde_json::from_value(key.k).map_err(|_| bad())?, key.id)
        }
        ListingSort::PriceAsc | ListingSort::PriceDesc => {
            After::Cents(key.k.as_i64().ok_or_else(bad)?, key.id)
        }
        ListingSort::Rating => After::Score(key.k.as_f64().ok_or_else(bad)?, key.id),
    })
}

/// The listing statement: filters bound as `$2`–`$5`, the page size as `$6`, a cursor (if
/// any) as `$7`, `$8`.
pub(crate) fn listing_sql(sort: ListingSort, with_cursor: bool) -> String {
    let (order, after) = match sort {
        ListingSort::Newest => (
            "created_at DESC, id DESC",
            "(created_at < $7 OR (created_at = $7 AND id < $8))",
        ),
        ListingSort::PriceAsc => (
            "price_cents ASC, id ASC",
            "(price_cents > $7 OR (price_cents = $7 AND id > $8))",
        ),
        ListingSort::PriceDesc => (
            "price_cents DESC, id DESC",
            "(price_cents < $7 OR (price_cents = $7 AND id < $8))",
        ),
        ListingSort::Rating => (
            "rating DESC, id DESC",
            "(rating < $7 OR (rating = $7 AND id < $8))",
        ),
    };
    let after = if with_cursor {
        format!("AND {after}")
    } else {
        String::new()
    };
    format!(
        "WITH RECURSIVE sub(id) AS ( \
           SELECT id FROM categories WHERE id = $1 \
           UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id), \
         listing AS ( \
           SELECT p.id, p.sku, p.name, p.brand, p.category_id, p.created_at, \
             CAST(COALESCE((SELECT MIN(v.price_cents) FROM product_variants v \
                            WHERE v.product_id = p.id), 0) AS BIGINT) AS price_cents, \
             CAST(COALESCE((SELECT SUM(i.on_hand - i.reserved) FROM product_variants v \
                            JOIN inventory i ON i.variant_id = v.id \
                            WHERE v.product_id = p.id), 0) AS BIGINT) AS available, \
             COALESCE(CAST(r.rating_sum AS DOUBLE PRECISION) / NULLIF(r.review_count, 0), \
                      CAST(0 AS DOUBLE PRECISION)) AS rating, \
             CAST(COALESCE(r.review_count, 0) AS BIGINT) AS review_count \
           FROM products p LEFT JOIN product_ratings r ON r.product_id = p.id \
           WHERE p.archived_at IS NULL AND p.category_id IN (SELECT id FROM sub)) \
         SELECT id, sku, name, brand, category_id, price_cents, available, rating, \
           review_count, created_at \
         FROM listing \
         WHERE ($2 IS NULL OR price_cents >= $2) AND ($3 IS NULL OR price_cents <= $3) \
           AND ($4 = FALSE OR available > 0) AND ($5 IS NULL OR brand = $5) {after} \
         ORDER BY {order} LIMIT $6"
    )
}

/// The page size of a listing query.
pub(crate) fn listing_limit(query: &ListingQuery) -> Result<i64> {
    match query.limit {
        0 => Ok(i64::from(ListingQuery::DEFAULT_LIMIT)),
        n if n <= ListingQuery::MAX_LIMIT => Ok(i64::from(n)),
        n => Err(Error::validation(
            "limit",
            format!("{n} is not between 1 and {}", ListingQuery::MAX_LIMIT),
        )),
    }
}

/// Implements `CatalogRepository` for `SqlStore<$db>`.
macro_rules! impl_catalog_repository {
    ($db:ty) => {
        const _: () = {
            use $crate::catalog::*;
            use $crate::error::{Error, Result};
            use $crate::repository::Backend;
            use $crate::sql::catalog::{
                decode_cursor, encode_cursor, listing_limit, listing_sql, After, CountRow,
                ProductRow, CATALOG_PRODUCT_COLS, CATEGORY_COLS,
            };
            use $crate::sql::products::Movement;
            use $crate::sql::{self};
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::validate;
            use ::sqlx::types::Json;
            use ::uuid::Uuid;

            impl SqlStore<$db> {
                /// Why an update of product `id` at `expected` matched nothing.
                async fn stale_or_missing(
                    &self,
                    tx: &mut $crate::store::Tx<'_, $db>,
                    id: Uuid,
                    expected: i64,
                ) -> Error {
                    let current = ::sqlx::query_scalar::<$db, i64>(
                        "SELECT version FROM products WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(tx.exec())
                    .await;
                    match current {
                        Ok(None) => Error::not_found("product", id),
                        Ok(Some(version)) => Error::conflict(
                            "product",
                            "version",
                            format!(
                                "product {id} is at version {version}, not {expected}"
                            ),
                        ),
                        Err(e) => self.err(e),
                    }
                }
            }

            #[::async_trait::async_trait]
            impl $crate::repository::CatalogRepository for SqlStore<$db> {
                async fn create_category(&self, category: NewCategory) -> Result<Category> {
                    let c = validate::new_category(&category)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Category>(&format!(
                        "INSERT INTO categories ({CATEGORY_COLS}) VALUES ($1, $2, $3, $4, $5) \
                         RETURNING {CATEGORY_COLS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(c.parent_id)
                    .bind(&c.slug)
                    .bind(&c.name)
                    .bind(sql::now())
                    .fetch_one(conn.exec())
                    .await
                    .map_err(|e| {
                        sql::name_missing(
                            self.err(e),
                            "category",
                            c.parent_id.map(|p| p.to_string()).unwrap_or_default(),
                        )
                    })
                }

                async fn get_category(&self, id: Uuid) -> Result<Category> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Category>(&format!(
                        "SELECT {CATEGORY_COLS} FROM categories WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("category", id))
                }

                async fn categories(&self) -> Result<Vec<Category>> {
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, Category>(&format!(
                        "SELECT {CATEGORY_COLS} FROM categories \
                         ORDER BY parent_id IS NOT NULL, name, id"
                    ))
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn move_category(
                    &self,
                    id: Uuid,
                    parent_id: Option<Uuid>,
                ) -> Result<Category> {
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    if <$db as SqlDriver>::DIALECT.backend == Backend::Postgres {
                        // Two moves checked at once could each pass and together make a
                        // cycle: moves (and nothing else) wait for each other. SQLite
                        // serialises writers already.
                        ::sqlx::query::<$db>(
                            "LOCK TABLE categories IN SHARE ROW EXCLUSIVE MODE",
                        )
                        .execute(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    }
                    if let Some(parent) = parent_id {
                        // The new parent must exist and lie outside the moved subtree.
                        let found = ::sqlx::query_as::<$db, (i64, i64)>(
                            "WITH RECURSIVE sub(id) AS ( \
                               SELECT id FROM categories WHERE id = $1 \
                               UNION ALL SELECT c.id FROM categories c \
                                 JOIN sub ON c.parent_id = sub.id) \
                             SELECT \
                               CAST((SELECT COUNT(*) FROM categories WHERE id = $2) AS BIGINT), \
                               CAST((SELECT COUNT(*) FROM sub WHERE id = $2) AS BIGINT)",
                        )
                        .bind(id)
                        .bind(parent)
                        .fetch_one(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                        if found.0 == 0 {
                            return Err(Error::not_found("category", parent));
                        }
                        if found.1 > 0 {
                            return Err(Error::validation(
                                "parent_id",
                                format!(
                                    "category {parent} is {id} itself or below it: \
                                     the move would make a cycle"
                                ),
                            ));
                        }
                    }
                    let moved = ::sqlx::query_as::<$db, Category>(&format!(
                        "UPDATE categories SET parent_id = $1 WHERE id = $2 \
                         RETURNING {CATEGORY_COLS}"
                    ))
                    .bind(parent_id)
                    .bind(id)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("category", id))?;
                    tx.commit(backend).await?;
                    Ok(moved)
                }

                async fn category_path(&self, id: Uuid) -> Result<Vec<Category>> {
                    let mut conn = self.conn().await?;
                    let path = ::sqlx::query_as::<$db, Category>(
                        "WITH RECURSIVE up(id, parent_id, slug, name, created_at, depth) AS ( \
                           SELECT id, parent_id, slug, name, created_at, 0 FROM categories \
                           WHERE id = $1 \
                           UNION ALL SELECT c.id, c.parent_id, c.slug, c.name, c.created_at, \
                             up.depth + 1 \
                           FROM categories c JOIN up ON c.id = up.parent_id \
                           WHERE up.depth < 1000) \
                         SELECT id, parent_id, slug, name, created_at FROM up \
                         ORDER BY depth DESC",
                    )
                    .bind(id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    if path.is_empty() {
                        return Err(Error::not_found("category", id));
                    }
                    Ok(path)
                }

                async fn category_tree_counts(&self, id: Uuid) -> Result<Vec<CategoryCount>> {
                    let mut conn = self.conn().await?;
                    let rows = ::sqlx::query_as::<$db, CountRow>(
                        "WITH RECURSIVE sub(id, depth) AS ( \
                           SELECT id, 0 FROM categories WHERE id = $1 \
                           UNION ALL SELECT c.id, sub.depth + 1 FROM categories c \
                             JOIN sub ON c.parent_id = sub.id), \
                         closure(ancestor, descendant) AS ( \
                           SELECT id, id FROM sub \
                           UNION ALL SELECT closure.ancestor, c.id FROM closure \
                             JOIN categories c ON c.parent_id = closure.descendant) \
                         SELECT c.id, c.parent_id, c.slug, c.name, c.created_at, \
                           CAST(sub.depth AS BIGINT) AS depth, \
                           CAST((SELECT COUNT(*) FROM closure \
                                 JOIN products p ON p.category_id = closure.descendant \
                                 WHERE closure.ancestor = c.id AND p.archived_at IS NULL) \
                                AS BIGINT) AS products \
                         FROM sub JOIN categories c ON c.id = sub.id \
                         ORDER BY sub.depth, c.name, c.id",
                    )
                    .bind(id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    if rows.is_empty() {
                        return Err(Error::not_found("category", id));
                    }
                    Ok(rows
                        .into_iter()
                        .map(|r| CategoryCount {
                            category: r.category,
                            depth: u32::try_from(r.depth).unwrap_or(u32::MAX),
                            products: u64::try_from(r.products).unwrap_or(0),
                        })
                        .collect())
                }

                async fn create_catalog_product(
                    &self,
                    product: NewCatalogProduct,
                ) -> Result<ProductPage> {
                    let p = validate::new_catalog_product(&product)?;
                    let backend = self.backend_name();
                    let id = Uuid::new_v4();
                    {
                        let mut conn = self.conn().await?;
                        let mut tx = conn.transaction(backend).await?;
                        let now = sql::now();
                        ::sqlx::query::<$db>(&format!(
                            "INSERT INTO products ({CATALOG_PRODUCT_COLS}) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1, NULL)"
                        ))
                        .bind(id)
                        .bind(&p.sku)
                        .bind(&p.name)
                        .bind(p.category_id)
                        .bind(&p.brand)
                        .bind(&p.description)
                        .bind(Json(&p.attributes))
                        .bind(now)
                        .execute(tx.exec())
                        .await
                        .map_err(|e| sql::name_missing(self.err(e), "category", p.category_id))?;
                        let variant_ids: Vec<Uuid> =
                            p.variants.iter().map(|_| Uuid::new_v4()).collect();
                        let statement = format!(
                            "INSERT INTO product_variants (id, product_id, sku, options, \
                               price_cents, currency, position, created_at) VALUES {}",
                            <$db as SqlDriver>::DIALECT.values(p.variants.len(), 8, 1)
                        );
                        let mut q = ::sqlx::query::<$db>(&statement);
                        for (position, (v, vid)) in p.variants.iter().zip(&variant_ids).enumerate() {
                            q = q
                                .bind(*vid)
                                .bind(id)
                                .bind(&v.sku)
                                .bind(Json(&v.options))
                                .bind(v.price_cents)
                                .bind(&v.currency)
                                .bind(i32::try_from(position).unwrap_or(i32::MAX))
                                .bind(now);
                        }
                        q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
                        let statement = format!(
                            "INSERT INTO inventory (variant_id, on_hand, reserved, updated_at) \
                             VALUES {}",
                            <$db as SqlDriver>::DIALECT.values(p.variants.len(), 4, 1)
                        );
                        let mut q = ::sqlx::query::<$db>(&statement);
                        for (v, vid) in p.variants.iter().zip(&variant_ids) {
                            q = q.bind(*vid).bind(v.initial_stock).bind(0_i64).bind(now);
                        }
                        q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
                        let receipts: Vec<Movement<'_>> = p
                            .variants
                            .iter()
                            .zip(&variant_ids)
                            .filter(|(v, _)| v.initial_stock > 0)
                            .map(|(v, vid)| Movement {
                                variant_id: *vid,
                                kind: "receipt",
                                on_hand_delta: v.initial_stock,
                                reserved_delta: 0,
                                reason: "opening balance",
                                order_id: None,
                            })
                            .collect();
                        self.append_movements(&mut tx, &receipts).await?;
                        if !p.images.is_empty() {
                            let statement = format!(
                                "INSERT INTO product_images (id, product_id, position, url, \
                                   alt_text) VALUES {}",
                                <$db as SqlDriver>::DIALECT.values(p.images.len(), 5, 1)
                            );
                            let mut q = ::sqlx::query::<$db>(&statement);
                            for (position, image) in p.images.iter().enumerate() {
                                q = q
                                    .bind(Uuid::new_v4())
                                    .bind(id)
                                    .bind(i32::try_from(position).unwrap_or(i32::MAX))
                                    .bind(&image.url)
                                    .bind(&image.alt_text);
                            }
                            q.execute(tx.exec()).await.map_err(|e| self.err(e))?;
                        }
                        tx.commit(backend).await?;
                    }
                    self.product_page(id).await
                }

                async fn product_page(&self, id: Uuid) -> Result<ProductPage> {
                    let mut conn = self.conn().await?;
                    let row = ::sqlx::query_as::<$db, ProductRow>(
                        "SELECT p.id, p.sku, p.name, p.category_id, p.brand, p.description, \
                           p.attributes, p.created_at, p.updated_at, p.version, p.archived_at, \
                           r.review_count, r.rating_sum \
                         FROM products p LEFT JOIN product_ratings r ON r.product_id = p.id \
                         WHERE p.id = $1",
                    )
                    .bind(id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| Error::not_found("product", id))?;
                    let category = ::sqlx::query_as::<$db, Category>(&format!(
                        "SELECT {CATEGORY_COLS} FROM categories WHERE id = $1"
                    ))
                    .bind(row.product.category_id)
                    .fetch_one(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let variants = ::sqlx::query_as::<$db, VariantStock>(
                        "SELECT v.id, v.product_id, v.sku, v.options, v.price_cents, \
                           v.currency, v.position, \
                           COALESCE(i.on_hand, 0) AS on_hand, \
                           COALESCE(i.reserved, 0) AS reserved \
                         FROM product_variants v LEFT JOIN inventory i ON i.variant_id = v.id \
                         WHERE v.product_id = $1 \
                         ORDER BY v.position, v.created_at, v.id",
                    )
                    .bind(id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let images = ::sqlx::query_as::<$db, Image>(
                        "SELECT id, product_id, position, url, alt_text FROM product_images \
                         WHERE product_id = $1 ORDER BY position",
                    )
                    .bind(id)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    let rating = row.rating();
                    Ok(ProductPage {
                        product: row.product,
                        category,
                        variants,
                        images,
                        rating,
                    })
                }

                async fn update_product(
                    &self,
                    id: Uuid,
                    expected_version: i64,
                    changes: ProductChanges,
                ) -> Result<CatalogProduct> {
                    let c = validate::product_changes(&changes)?;
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let updated = ::sqlx::query_as::<$db, CatalogProduct>(&format!(
                        "UPDATE products SET name = COALESCE($1, name), \
                           brand = CASE WHEN $2 THEN $3 ELSE brand END, \
                           description = COALESCE($4, description), \
                           attributes = COALESCE($5, attributes), \
                           category_id = COALESCE($6, category_id), \
                           version = version + 1, updated_at = $7 \
                         WHERE id = $8 AND version = $9 \
                         RETURNING {CATALOG_PRODUCT_COLS}"
                    ))
                    .bind(&c.name)
                    .bind(c.brand.is_some())
                    .bind(c.brand.clone().flatten())
                    .bind(&c.description)
                    .bind(c.attributes.as_ref().map(Json))
                    .bind(c.category_id)
                    .bind(sql::now())
                    .bind(id)
                    .bind(expected_version)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| {
                        sql::name_missing(
                            self.err(e),
                            "category",
                            c.category_id.map(|c| c.to_string()).unwrap_or_default(),
                        )
                    })?;
                    let Some(updated) = updated else {
                        return Err(self.stale_or_missing(&mut tx, id, expected_version).await);
                    };
                    for (variant, price) in &c.prices {
                        let done = ::sqlx::query::<$db>(
                            "UPDATE product_variants SET price_cents = $1 \
                             WHERE id = $2 AND product_id = $3",
                        )
                        .bind(*price)
                        .bind(*variant)
                        .bind(id)
                        .execute(tx.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                        if done.rows_affected() == 0 {
                            return Err(Error::validation(
                                "prices",
                                format!("{variant} is not a variant of product {id}"),
                            ));
                        }
                    }
                    tx.commit(backend).await?;
                    Ok(updated)
                }

                async fn archive_product(
                    &self,
                    id: Uuid,
                    expected_version: i64,
                ) -> Result<CatalogProduct> {
                    let backend = self.backend_name();
                    let mut conn = self.conn().await?;
                    let mut tx = conn.transaction(backend).await?;
                    let archived = ::sqlx::query_as::<$db, CatalogProduct>(&format!(
                        "UPDATE products SET archived_at = $1, version = version + 1, \
                           updated_at = $1 \
                         WHERE id = $2 AND version = $3 AND archived_at IS NULL \
                         RETURNING {CATALOG_PRODUCT_COLS}"
                    ))
                    .bind(sql::now())
                    .bind(id)
                    .bind(expected_version)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    if let Some(archived) = archived {
                        tx.commit(backend).await?;
                        return Ok(archived);
                    }
                    let current = ::sqlx::query_as::<$db, CatalogProduct>(&format!(
                        "SELECT {CATALOG_PRODUCT_COLS} FROM products WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(tx.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    match current {
                        Some(p) if p.archived_at.is_some() => Ok(p),
                        Some(_) => Err(self.stale_or_missing(&mut tx, id, expected_version).await),
                        None => Err(Error::not_found("product", id)),
                    }
                }

                async fn list_category_products(
                    &self,
                    category_id: Uuid,
                    query: ListingQuery,
                ) -> Result<CursorPage<ProductSummary>> {
                    let limit = listing_limit(&query)?;
                    if let (Some(min), Some(max)) = (query.min_price_cents, query.max_price_cents) {
                        if min > max {
                            return Err(Error::validation(
                                "min_price_cents",
                                format!("{min} is above max_price_cents {max}"),
                            ));
                        }
                    }
                    let after = query
                        .cursor
                        .as_deref()
                        .map(|c| decode_cursor(query.sort, c))
                        .transpose()?;
                    let statement = listing_sql(query.sort, after.is_some());
                    let mut conn = self.conn().await?;
                    let q = ::sqlx::query_as::<$db, ProductSummary>(&statement)
                        .bind(category_id)
                        .bind(query.min_price_cents)
                        .bind(query.max_price_cents)
                        .bind(query.in_stock)
                        .bind(query.brand.as_deref())
                        .bind(limit);
                    let q = match after {
                        None => q,
                        Some(After::Time(t, id)) => q.bind(t).bind(id),
                        Some(After::Cents(c, id)) => q.bind(c).bind(id),
                        Some(After::Score(s, id)) => q.bind(s).bind(id),
                    };
                    let items = q.fetch_all(conn.exec()).await.map_err(|e| self.err(e))?;
                    if items.is_empty() {
                        // Unknown category, or an empty page of a known one?
                        let known = ::sqlx::query_scalar::<$db, i64>(
                            "SELECT CAST(COUNT(*) AS BIGINT) FROM categories WHERE id = $1",
                        )
                        .bind(category_id)
                        .fetch_one(conn.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                        if known == 0 {
                            return Err(Error::not_found("category", category_id));
                        }
                    }
                    let next_cursor = if items.len() as i64 == limit {
                        items.last().map(|last| encode_cursor(query.sort, last))
                    } else {
                        None
                    };
                    Ok(CursorPage { items, next_cursor })
                }

                async fn best_sellers(
                    &self,
                    category_id: Uuid,
                    days: u32,
                    limit: u32,
                ) -> Result<Vec<ProductSales>> {
                    let limit = sql::limit(limit)?;
                    if !(1..=3_660).contains(&days) {
                        return Err(Error::validation(
                            "days",
                            format!("{days} is not between 1 and 3660"),
                        ));
                    }
                    let since = sql::now() - ::chrono::Duration::days(i64::from(days));
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, ProductSales>(
                        "WITH RECURSIVE sub(id) AS ( \
                           SELECT id FROM categories WHERE id = $1 \
                           UNION ALL SELECT c.id FROM categories c \
                             JOIN sub ON c.parent_id = sub.id) \
                         SELECT p.id AS product_id, p.sku, p.name, \
                           CAST(SUM(oi.quantity) AS BIGINT) AS units, \
                           CAST(SUM(oi.quantity * oi.unit_price_cents) AS BIGINT) \
                             AS revenue_cents \
                         FROM order_items oi \
                         JOIN orders o ON o.id = oi.order_id \
                         JOIN products p ON p.id = oi.product_id \
                         WHERE o.status <> 'cancelled' AND o.created_at >= $2 \
                           AND p.archived_at IS NULL \
                           AND p.category_id IN (SELECT id FROM sub) \
                         GROUP BY p.id, p.sku, p.name \
                         ORDER BY units DESC, revenue_cents DESC, p.sku LIMIT $3",
                    )
                    .bind(category_id)
                    .bind(since)
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn top_rated(
                    &self,
                    min_reviews: u32,
                    limit: u32,
                ) -> Result<Vec<RatedProduct>> {
                    let limit = sql::limit(limit)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, RatedProduct>(
                        "SELECT p.id AS product_id, p.sku, p.name, \
                           CAST(r.rating_sum AS DOUBLE PRECISION) / r.review_count AS average, \
                           r.review_count \
                         FROM product_ratings r JOIN products p ON p.id = r.product_id \
                         WHERE r.review_count >= $1 AND r.review_count > 0 \
                           AND p.archived_at IS NULL \
                         ORDER BY average DESC, r.review_count DESC, p.sku LIMIT $2",
                    )
                    .bind(i64::from(min_reviews))
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn also_bought(
                    &self,
                    product_id: Uuid,
                    limit: u32,
                ) -> Result<Vec<AlsoBought>> {
                    let limit = sql::limit(limit)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, AlsoBought>(
                        "WITH buyers AS ( \
                           SELECT DISTINCT o.user_id FROM orders o \
                           JOIN order_items oi ON oi.order_id = o.id \
                           WHERE oi.product_id = $1 AND o.status <> 'cancelled') \
                         SELECT p.id AS product_id, p.sku, p.name, \
                           CAST(COUNT(DISTINCT o.user_id) AS BIGINT) AS buyers \
                         FROM orders o \
                         JOIN order_items oi ON oi.order_id = o.id \
                         JOIN products p ON p.id = oi.product_id \
                         WHERE o.user_id IN (SELECT user_id FROM buyers) \
                           AND o.status <> 'cancelled' AND oi.product_id <> $1 \
                           AND p.archived_at IS NULL \
                         GROUP BY p.id, p.sku, p.name \
                         ORDER BY buyers DESC, p.sku LIMIT $2",
                    )
                    .bind(product_id)
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }
            }
        };
    };
}

pub(crate) use impl_catalog_repository;
