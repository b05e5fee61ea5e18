//! "More like this": a product's nearest neighbours by embedding
//! (`GET /api/products/{id}/similar`), cached, and kept current by product events.
//!
//! - Read: the cache under [`keys::similar_products`] (the product and the canonical query),
//!   or on a miss [`mod8_orm::ProductSimilarity::similar`] (pgvector, the exact scan or the
//!   in-process HNSW index, whichever the SQL store uses), cached for [`SIMILAR_TTL`] under
//!   [`keys::similar_products_tag`].
//! - Product events: [`product_similarity_changed`] recomputes the product's embedding and
//!   updates the index, then drops every cached answer (any may name the product). The
//!   product-event consumer calls it for every event.
//! - Start: [`App::prepare_similarity`] builds the index (or checks for pgvector) in the
//!   background and logs which path answers.

use std::collections::HashMap;
use std::time::Duration;

use mod8_cache::{Cache, EntryOptions};
use mod8_orm::similarity::MAX_K;
use mod8_orm::{DynDatabase, SimilarHit, SimilarQuery};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::flows::params;
use crate::{keys, App};

/// How long one similarity answer stays cached (a product event drops them all at once, and
/// so does a checkout or cancellation that sells a variant out or brings it back).
pub const SIMILAR_TTL: Duration = Duration::from_secs(60);
/// Neighbours returned when `k` is not given.
pub const DEFAULT_K: u32 = 10;

/// A product's nearest neighbours (`GET /api/products/{id}/similar`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimilarProducts {
    /// The product asked about.
    pub product_id: Uuid,
    /// Nearest first; never the product itself nor an archived product.
    pub items: Vec<SimilarHit>,
    /// Whether this answer came from the cache.
    pub cached: bool,
}

/// The canonical form of a similarity query, the cache key's suffix.
#[derive(Serialize)]
struct CanonicalQuery {
    k: u32,
    category: Option<Uuid>,
    in_stock: Option<bool>,
}

/// Parses `k`, `category` and `in_stock`; a bad or unknown parameter is a 422 naming it.
///
/// # Errors
///
/// [`AppError::Validation`] naming the parameter.
pub fn similar_query(
    product_id: Uuid,
    params: &HashMap<String, String>,
) -> AppResult<SimilarQuery> {
    let mut query = SimilarQuery::product(product_id, DEFAULT_K);
    for (name, raw) in params {
        match name.as_str() {
            "k" => query.k = params::count(name, raw, MAX_K, "number")?,
            "category" => {
                query.category = Some(raw.parse().map_err(|_| {
                    AppError::validation(
                        "category",
                        format!("{} is not a category id (UUID)", params::echo(raw)),
                    )
                })?);
            }
            "in_stock" => query.in_stock = Some(params::flag(name, raw)?),
            other => return Err(params::unknown(other, "k, category or in_stock")),
        }
    }
    Ok(query)
}

/// After a product event: brings the product's embedding and the similarity index up to
/// date, then drops every cached similarity answer.
///
/// # Errors
///
/// The SQL store or the cache failing (the consumer retries the event).
pub async fn product_similarity_changed(
    sql: &DynDatabase,
    cache: &Cache,
    product_id: Uuid,
) -> anyhow::Result<()> {
    if let Some(similarity) = sql.product_similarity() {
        similarity.refresh(product_id).await?;
    }
    cache.invalidate_tag(keys::similar_products_tag()).await?;
    Ok(())
}

impl App {
    /// A product's nearest neighbours, from the cache or the SQL store's similarity search
    /// (then cached for [`SIMILAR_TTL`]).
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown or archived product or an unknown category,
    /// [`AppError::Validation`] for a bad `k`, [`AppError::Unsupported`] when the SQL store
    /// has no similarity search, or the store failing. A cache failure is never an error.
    pub async fn similar_products(&self, query: SimilarQuery) -> AppResult<SimilarProducts> {
        let mod8_orm::SimilarTo::Product(product_id) = query.target else {
            return Err(AppError::validation("target", "a product id is expected"));
        };
        let canonical = serde_json::to_string(&CanonicalQuery {
            k: query.k,
            category: query.category,
            in_stock: query.in_stock,
        })
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("similarity key")))?;
        let key = keys::similar_products(product_id, &canonical);
        if let Some(items) = self.cache.get::<Vec<SimilarHit>>(&key).await? {
            return Ok(SimilarProducts {
                product_id,
                items,
                cached: true,
            });
        }
        let Some(similarity) = self.sql.product_similarity() else {
            return Err(AppError::Unsupported(
                "product similarity on this SQL store".into(),
            ));
        };
        let options = EntryOptions::ttl(SIMILAR_TTL).with_tag(keys::similar_products_tag());
        let items: Vec<SimilarHit> = self
            .cache
            .get_or_load(&key, &options, || {
                self.call("sql.similar_products", "sql", similarity.similar(&query))
            })
            .await
            .map_err(AppError::from)?;
        Ok(SimilarProducts {
            product_id,
            items,
            cached: false,
        })
    }

    /// Prepares the SQL store's similarity search in the background (pgvector or the exact
    /// scan on PostgreSQL, the in-process index built from SQL on SQLite); the store logs
    /// which path answers. Queries before it finishes wait for it.
    pub fn prepare_similarity(&self) {
        let sql = self.sql.clone();
        tokio::spawn(async move {
            if let Some(similarity) = sql.product_similarity() {
                match similarity.prepare().await {
                    Ok(path) => tracing::info!(path = path.name(), "product similarity ready"),
                    Err(e) => {
                        tracing::warn!(error = %e, "product similarity could not be prepared")
                    }
                }
            }
        });
    }

    /// "More like what they bought": up to `k` in-stock neighbours of each of `sources`, in
    /// order, for the recommendation engine's candidates. Best effort: a failure is logged
    /// and gives no candidates.
    pub(crate) async fn similar_candidates(&self, sources: &[Uuid], k: u32) -> Vec<Uuid> {
        let Some(similarity) = self.sql.product_similarity() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for source in sources {
            let query = SimilarQuery::product(*source, k.clamp(1, MAX_K)).in_stock(true);
            match self
                .call("sql.similar_products", "sql", similarity.similar(&query))
                .await
            {
                Ok(hits) => out.extend(hits.into_iter().map(|h| h.product_id)),
                Err(e) => {
                    tracing::debug!(product_id = %source, error = %e, "no similarity candidates");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_queries_name_the_bad_parameter() {
        let id = Uuid::new_v4();
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let q = similar_query(id, &params(&[("k", "5"), ("in_stock", "true")])).unwrap();
        assert_eq!((q.k, q.in_stock, q.category), (5, Some(true), None));
        assert_eq!(similar_query(id, &params(&[])).unwrap().k, DEFAULT_K);
        for (pairs, field) in [
            (vec![("k", "0")], "k"),
            (vec![("k", "101")], "k"),
            (vec![("k", "ten")], "k"),
            (vec![("category", "shoes")], "category"),
            (vec![("in_stock", "maybe")], "in_stock"),
            (vec![("limit", "3")], "limit"),
        ] {
            match similar_query(id, &params(&pairs)) {
                Err(AppError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }
}
