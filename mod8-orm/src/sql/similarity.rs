//! SQL of vector similarity (see `crate::similarity`): embeddings kept in
//! `product_embeddings`, the filters, and the two backends' search paths.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::ann_index::top_k;
use crate::embedding::{DefaultEmbedder, ProductText};
use crate::error::{Error, Result};
use crate::similarity::{SimilarHit, SimilarQuery, SimilarTo};

/// Products embedded per batch by `sync`.
pub(crate) const SYNC_BATCH: i64 = 1000;
/// Embedding rows per `INSERT` statement.
pub(crate) const UPSERT_ROWS: usize = 200;

/// A product's text and version, as its default embedding needs them.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ProductTextRow {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) brand: Option<String>,
    pub(crate) description: String,
    #[sqlx(json)]
    pub(crate) attributes: serde_json::Value,
    pub(crate) category_id: Uuid,
    pub(crate) version: i64,
    pub(crate) archived: bool,
}

pub(crate) const TEXT_COLUMNS: &str = "p.id, p.name, p.brand, p.description, p.attributes, \
     p.category_id, p.version, p.archived_at IS NOT NULL AS archived";

/// Products (not archived) whose default embedding is missing or stale, after `$1` in id
/// order; `$2` is the deployment's dimension.
pub(crate) fn stale_products_sql() -> String {
    format!(
        "SELECT {TEXT_COLUMNS} FROM products p \
         LEFT JOIN product_embeddings e ON e.product_id = p.id \
         WHERE p.archived_at IS NULL AND p.id > $1 \
           AND (e.product_id IS NULL OR (e.custom = FALSE AND \
                (e.product_version <> p.version OR e.dimension <> $2))) \
         ORDER BY p.id LIMIT {SYNC_BATCH}"
    )
}

/// One product's text, archived or not.
pub(crate) fn product_text_sql() -> String {
    format!("SELECT {TEXT_COLUMNS} FROM products p WHERE p.id = $1")
}

/// Category id → (parent, name), for category paths.
pub(crate) type CategoryNames = HashMap<Uuid, (Option<Uuid>, String)>;

/// The default embedding of one product.
pub(crate) fn embed_row(
    embedder: &DefaultEmbedder,
    categories: &CategoryNames,
    row: &ProductTextRow,
) -> Vec<f32> {
    let mut path = Vec::new();
    let mut next = Some(row.category_id);
    while let Some(id) = next {
        if path.len() >= 64 {
            break;
        }
        match categories.get(&id) {
            Some((parent, name)) => {
                path.push(name.clone());
                next = *parent;
            }
            None => break,
        }
    }
    path.reverse();
    embedder.embed(&ProductText {
        name: row.name.clone(),
        brand: row.brand.clone(),
        category_path: path,
        description: row.description.clone(),
        attributes: row.attributes.clone(),
    })
}

/// The filter of a similarity query as SQL over `products p`: a `WITH RECURSIVE` prefix
/// (empty without a category) and the `WHERE` conditions; the category id is parameter
/// `$param`.
pub(crate) fn filter_sql(query: &SimilarQuery, param: usize) -> (String, String) {
    let mut cte = String::new();
    let mut conditions = String::from("p.archived_at IS NULL");
    if query.category.is_some() {
        cte = format!(
            "WITH RECURSIVE sub(id) AS ( \
               SELECT id FROM categories WHERE id = ${param} \
               UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id) "
        );
        conditions.push_str(" AND p.category_id IN (SELECT id FROM sub)");
    }
    if let Some(in_stock) = query.in_stock {
        conditions.push_str(if in_stock { " AND " } else { " AND NOT " });
        conditions.push_str(
            "EXISTS (SELECT 1 FROM product_variants v JOIN inventory i ON i.variant_id = v.id \
               WHERE v.product_id = p.id AND i.on_hand - i.reserved > 0)",
        );
    }
    (cte, conditions)
}

/// `$first, $first+1, ...` for `n` values.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The product the query is about, if any.
pub(crate) fn target_product(query: &SimilarQuery) -> Option<Uuid> {
    match &query.target {
        SimilarTo::Product(id) => Some(*id),
        SimilarTo::Vector(_) => None,
    }
}

/// Joins ranked ids with the names of those still listed (not archived), in rank order.
pub(crate) fn named_hits(ranked: &[(Uuid, f32)], names: &HashMap<Uuid, String>) -> Vec<SimilarHit> {
    ranked
        .iter()
        .filter_map(|(id, d)| {
            names.get(id).map(|name| SimilarHit {
                product_id: *id,
                name: name.clone(),
                distance: *d,
            })
        })
        .collect()
}

/// Little-endian bytes of a vector (SQLite's storage).
pub(crate) fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A vector from little-endian bytes.
pub(crate) fn from_blob(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Exact top-k over streamed (id, vector) candidates.
pub(crate) fn rank_exact(
    query: &[f32],
    k: usize,
    candidates: impl Iterator<Item = (Uuid, Vec<f32>)>,
) -> Vec<(Uuid, f32)> {
    top_k(
        candidates
            .filter(|(_, v)| v.len() == query.len())
            .map(|(id, v)| (id, crate::embedding::cosine_distance(query, &v))),
        k,
    )
}

/// The query vector of a [`SimilarTo::Vector`] query, checked and normalised.
pub(crate) fn query_vector(v: &[f32], dimension: usize) -> Result<Vec<f32>> {
    crate::similarity::checked_embedding(v.to_vec(), dimension)
}

pub(crate) fn poisoned() -> Error {
    Error::Backend {
        backend: "similarity",
        source: "the in-process index lock was poisoned by a panic".into(),
    }
}

/// Set of ids.
pub(crate) type IdSet = HashSet<Uuid>;

/// Implements the embedding storage helpers of `SqlStore<$db>`: `$stored` is the column's
/// Rust type, `$encode` / `$decode` convert vectors to and from it.
macro_rules! impl_embedding_storage {
    ($db:ty, $stored:ty, $encode:expr, $decode:expr) => {
        impl $crate::store::SqlStore<$db> {
            /// Every category's parent and name.
            pub(crate) async fn similarity_categories(
                &self,
            ) -> $crate::error::Result<$crate::sql::similarity::CategoryNames> {
                let mut conn = self.conn().await?;
                let rows: Vec<(uuid::Uuid, Option<uuid::Uuid>, String)> =
                    sqlx::query_as("SELECT id, parent_id, name FROM categories")
                        .fetch_all(conn.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                Ok(rows.into_iter().map(|(id, p, n)| (id, (p, n))).collect())
            }

            /// Writes embeddings: (product, vector, custom, product version).
            pub(crate) async fn similarity_write(
                &self,
                rows: &[(uuid::Uuid, Vec<f32>, bool, i64)],
            ) -> $crate::error::Result<()> {
                let mut conn = self.conn().await?;
                let now = $crate::sql::now();
                for chunk in rows.chunks($crate::sql::similarity::UPSERT_ROWS) {
                    let values = (0..chunk.len())
                        .map(|i| {
                            let b = i * 6;
                            format!(
                                "(${}, ${}, ${}, ${}, ${}, ${})",
                                b + 1,
                                b + 2,
                                b + 3,
                                b + 4,
                                b + 5,
                                b + 6
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO product_embeddings \
                           (product_id, dimension, embedding, custom, product_version, updated_at) \
                         VALUES {values} \
                         ON CONFLICT (product_id) DO UPDATE SET dimension = excluded.dimension, \
                           embedding = excluded.embedding, custom = excluded.custom, \
                           product_version = excluded.product_version, \
                           updated_at = excluded.updated_at \
                         WHERE excluded.custom \
                           OR product_embeddings.product_version <= excluded.product_version"
                    );
                    let mut q = sqlx::query::<$db>(&sql);
                    for (id, v, custom, version) in chunk {
                        let stored: $stored = ($encode)(v.as_slice());
                        q = q
                            .bind(*id)
                            .bind(i32::try_from(v.len()).unwrap_or(i32::MAX))
                            .bind(stored)
                            .bind(*custom)
                            .bind(*version)
                            .bind(now);
                    }
                    q.execute(conn.exec()).await.map_err(|e| self.err(e))?;
                }
                Ok(())
            }

            /// One product's text (archived or not); `None` when it does not exist.
            pub(crate) async fn similarity_product_text(
                &self,
                id: uuid::Uuid,
            ) -> $crate::error::Result<Option<$crate::sql::similarity::ProductTextRow>> {
                let mut conn = self.conn().await?;
                sqlx::query_as(&$crate::sql::similarity::product_text_sql())
                    .bind(id)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
            }

            /// A product's stored embedding: (vector, custom, product version at the time).
            pub(crate) async fn similarity_stored(
                &self,
                id: uuid::Uuid,
            ) -> $crate::error::Result<Option<(Vec<f32>, bool, i64)>> {
                let mut conn = self.conn().await?;
                let row: Option<($stored, bool, i64)> = sqlx::query_as(
                    "SELECT embedding, custom, product_version FROM product_embeddings \
                     WHERE product_id = $1",
                )
                .bind(id)
                .fetch_optional(conn.exec())
                .await
                .map_err(|e| self.err(e))?;
                Ok(row.map(|(v, c, ver)| (($decode)(v), c, ver)))
            }

            /// Recomputes missing or stale default embeddings; returns what was written.
            pub(crate) async fn similarity_sync_rows(
                &self,
            ) -> $crate::error::Result<Vec<(uuid::Uuid, Vec<f32>)>> {
                let settings = &self.similarity.settings;
                let embedder = $crate::embedding::DefaultEmbedder::new(settings.dimension);
                let categories = self.similarity_categories().await?;
                let dimension = i32::try_from(settings.dimension).unwrap_or(i32::MAX);
                let sql = $crate::sql::similarity::stale_products_sql();
                let mut after = uuid::Uuid::nil();
                let mut written = Vec::new();
                loop {
                    let rows: Vec<$crate::sql::similarity::ProductTextRow> = {
                        let mut conn = self.conn().await?;
                        sqlx::query_as(&sql)
                            .bind(after)
                            .bind(dimension)
                            .fetch_all(conn.exec())
                            .await
                            .map_err(|e| self.err(e))?
                    };
                    let Some(last) = rows.last() else { break };
                    after = last.id;
                    let batch: Vec<(uuid::Uuid, Vec<f32>, bool, i64)> = rows
                        .iter()
                        .map(|r| {
                            let v = $crate::sql::similarity::embed_row(&embedder, &categories, r);
                            (r.id, v, false, r.version)
                        })
                        .collect();
                    self.similarity_write(&batch).await?;
                    let full = rows.len() as i64 == $crate::sql::similarity::SYNC_BATCH;
                    written.extend(batch.into_iter().map(|(id, v, _, _)| (id, v)));
                    if !full {
                        break;
                    }
                }
                Ok(written)
            }

            /// Brings one product's row up to date; returns its vector when it is listed
            /// (`None` when archived or missing).
            pub(crate) async fn similarity_refresh_row(
                &self,
                id: uuid::Uuid,
            ) -> $crate::error::Result<Option<Vec<f32>>> {
                let Some(row) = self.similarity_product_text(id).await? else {
                    return Ok(None);
                };
                if row.archived {
                    return Ok(None);
                }
                let dimension = self.similarity.settings.dimension;
                if let Some((v, custom, version)) = self.similarity_stored(id).await? {
                    let current = v.len() == dimension && (custom || version == row.version);
                    if current {
                        return Ok(Some(v));
                    }
                }
                let embedder = $crate::embedding::DefaultEmbedder::new(dimension);
                let categories = self.similarity_categories().await?;
                let v = $crate::sql::similarity::embed_row(&embedder, &categories, &row);
                // A refresh that read an older version of the product loses to one that
                // read a newer (the upsert keeps the newer); answer with what is stored.
                self.similarity_write(&[(id, v.clone(), false, row.version)]).await?;
                match self.similarity_stored(id).await? {
                    Some((stored, _, _)) if stored.len() == dimension => Ok(Some(stored)),
                    _ => Ok(Some(v)),
                }
            }

            /// Stores a caller's embedding (checked, normalised).
            pub(crate) async fn similarity_set_custom(
                &self,
                id: uuid::Uuid,
                embedding: Vec<f32>,
            ) -> $crate::error::Result<Option<Vec<f32>>> {
                let v = $crate::similarity::checked_embedding(
                    embedding,
                    self.similarity.settings.dimension,
                )?;
                let Some(row) = self.similarity_product_text(id).await? else {
                    return Err($crate::error::Error::not_found("product", id));
                };
                self.similarity_write(&[(id, v.clone(), true, row.version)]).await?;
                Ok((!row.archived).then_some(v))
            }

            /// Drops a custom embedding (a default one is left alone).
            pub(crate) async fn similarity_drop_custom(
                &self,
                id: uuid::Uuid,
            ) -> $crate::error::Result<()> {
                let mut conn = self.conn().await?;
                sqlx::query(
                    "DELETE FROM product_embeddings WHERE product_id = $1 AND custom = TRUE",
                )
                .bind(id)
                .execute(conn.exec())
                .await
                .map_err(|e| self.err(e))?;
                Ok(())
            }

            /// Names of the listed (not archived) products among `ids`.
            pub(crate) async fn similarity_names(
                &self,
                ids: &[uuid::Uuid],
            ) -> $crate::error::Result<std::collections::HashMap<uuid::Uuid, String>> {
                if ids.is_empty() {
                    return Ok(std::collections::HashMap::new());
                }
                let sql = format!(
                    "SELECT id, name FROM products WHERE archived_at IS NULL AND id IN ({})",
                    $crate::sql::similarity::placeholders(1, ids.len())
                );
                let mut q = sqlx::query_as::<$db, (uuid::Uuid, String)>(&sql);
                for id in ids {
                    q = q.bind(*id);
                }
                let mut conn = self.conn().await?;
                let rows = q.fetch_all(conn.exec()).await.map_err(|e| self.err(e))?;
                Ok(rows.into_iter().collect())
            }

            /// Fails with `NotFound` on `category` when the query names an unknown one.
            pub(crate) async fn similarity_check_category(
                &self,
                query: &$crate::similarity::SimilarQuery,
            ) -> $crate::error::Result<()> {
                let Some(category) = query.category else {
                    return Ok(());
                };
                let mut conn = self.conn().await?;
                let found: Option<(uuid::Uuid,)> =
                    sqlx::query_as("SELECT id FROM categories WHERE id = $1")
                        .bind(category)
                        .fetch_optional(conn.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                match found {
                    Some(_) => Ok(()),
                    None => Err($crate::error::Error::not_found("category", category)),
                }
            }

            /// The ids of listed products matching the query's filters.
            #[allow(dead_code)] // SQLite's path; PostgreSQL filters in the query
            pub(crate) async fn similarity_allowed(
                &self,
                query: &$crate::similarity::SimilarQuery,
            ) -> $crate::error::Result<$crate::sql::similarity::IdSet> {
                let (cte, conditions) = $crate::sql::similarity::filter_sql(query, 1);
                let sql = format!("{cte}SELECT p.id FROM products p WHERE {conditions}");
                let mut q = sqlx::query_as::<$db, (uuid::Uuid,)>(&sql);
                if let Some(category) = query.category {
                    q = q.bind(category);
                }
                let mut conn = self.conn().await?;
                let rows = q.fetch_all(conn.exec()).await.map_err(|e| self.err(e))?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            /// The query's target vector: a product's embedding (computed first when missing
            /// or stale; `NotFound` for a missing or archived product) or the given vector.
            pub(crate) async fn similarity_target(
                &self,
                query: &$crate::similarity::SimilarQuery,
            ) -> $crate::error::Result<Vec<f32>> {
                match &query.target {
                    $crate::similarity::SimilarTo::Product(id) => {
                        match self.similarity_refresh_row(*id).await? {
                            Some(v) => Ok(v),
                            None => Err($crate::error::Error::not_found("product", id)),
                        }
                    }
                    $crate::similarity::SimilarTo::Vector(v) => {
                        $crate::sql::similarity::query_vector(v, self.similarity.settings.dimension)
                    }
                }
            }

            /// Exact ranking by streaming every matching stored embedding.
            #[allow(dead_code)] // PostgreSQL's path; SQLite ranks from its index
            pub(crate) async fn similarity_exact_scan(
                &self,
                query: &$crate::similarity::SimilarQuery,
                target: &[f32],
            ) -> $crate::error::Result<Vec<$crate::similarity::SimilarHit>> {
                use futures::TryStreamExt;
                let (cte, conditions) = $crate::sql::similarity::filter_sql(query, 3);
                let sql = format!(
                    "{cte}SELECT e.product_id, e.embedding FROM product_embeddings e \
                     JOIN products p ON p.id = e.product_id \
                     WHERE {conditions} AND e.product_id <> $1 AND e.dimension = $2"
                );
                let exclude = $crate::sql::similarity::target_product(query)
                    .unwrap_or_else(uuid::Uuid::nil);
                let dimension = i32::try_from(target.len()).unwrap_or(i32::MAX);
                let k = query.k as usize;
                let ranked = {
                    let mut q = sqlx::query_as::<$db, (uuid::Uuid, $stored)>(&sql)
                        .bind(exclude)
                        .bind(dimension);
                    if let Some(category) = query.category {
                        q = q.bind(category);
                    }
                    let mut conn = self.conn().await?;
                    let mut heap_input = Vec::new();
                    let mut ranked: Vec<(uuid::Uuid, f32)> = Vec::new();
                    {
                        let mut rows = q.fetch(conn.exec());
                        while let Some((id, stored)) =
                            rows.try_next().await.map_err(|e| self.err(e))?
                        {
                            heap_input.push((id, ($decode)(stored)));
                            // Rank in chunks so memory stays bounded by the chunk size.
                            if heap_input.len() >= 4096 {
                                let chunk = std::mem::take(&mut heap_input);
                                let mut merged = $crate::sql::similarity::rank_exact(
                                    target,
                                    k,
                                    chunk.into_iter(),
                                );
                                merged.extend(ranked.drain(..));
                                ranked = $crate::ann_index::top_k(merged.into_iter(), k);
                            }
                        }
                    }
                    let mut merged =
                        $crate::sql::similarity::rank_exact(target, k, heap_input.into_iter());
                    merged.extend(ranked.drain(..));
                    $crate::ann_index::top_k(merged.into_iter(), k)
                };
                let ids: Vec<uuid::Uuid> = ranked.iter().map(|(id, _)| *id).collect();
                let names = self.similarity_names(&ids).await?;
                Ok($crate::sql::similarity::named_hits(&ranked, &names))
            }
        }
    };
}

pub(crate) use impl_embedding_storage;
