//! Vector similarity of products: "more like this one".
//!
//! Every product has an embedding: by default the deterministic one of
//! [`crate::embedding::DefaultEmbedder`] (computed in-process from its name, brand, category
//! path, attributes and description), or one the caller stored with
//! [`ProductSimilarity::set_embedding`] (its own model; the dimension is the deployment's,
//! [`SimilaritySettings::dimension`], and any other length is refused with
//! [`crate::Error::Validation`] on `embedding`). Embeddings live in the `product_embeddings` table
//! (migration 0005, portable: `REAL[]` on PostgreSQL, a blob on SQLite).
//!
//! [`crate::Database::product_similarity`] reaches it. Which search path answers
//! ([`SimilarityPath`]) depends on the backend, and [`ProductSimilarity::prepare`] logs it:
//!
//! - **PostgreSQL with pgvector** ([`SimilarityPath::Pgvector`]): when `CREATE EXTENSION
//!   vector` succeeds, a `vector(dimension)` column (kept equal to the portable one by a
//!   trigger) with an HNSW index (`vector_cosine_ops`). Filtered queries run with pgvector
//!   0.8's iterative index scan (`hnsw.iterative_scan = strict_order`), so a selective filter
//!   still yields `k` rows; should the scan stop short (`hnsw.max_scan_tuples`) while more
//!   rows match, the query is answered by the exact scan instead. The exact scan runs in
//!   the server there: the same statement with index scans off, pgvector comparing every
//!   matching vector.
//! - **PostgreSQL without the extension** ([`SimilarityPath::ExactScan`]): the matching
//!   embeddings are streamed and ranked exactly in process (a bounded top-k heap).
//! - **SQLite** ([`SimilarityPath::InProcessHnsw`]): an in-process HNSW index (see
//!   `ann_index` for the choice of crate), built from the table by `prepare` and kept current
//!   by [`ProductSimilarity::refresh`] / [`ProductSimilarity::sync`]. Selective filters (few
//!   matching products) are ranked exactly over the matching vectors; others search the graph
//!   with the filter and fall back to the exact ranking should it return fewer than `k`.
//!
//! Filters mean what they mean for full-text search: `category` is the category's whole
//! subtree, `in_stock` is "some variant has `on_hand - reserved > 0`", and archived products
//! are never returned. The product asked about is never among its own results.
//!
//! Product changes do not recompute embeddings by themselves: call
//! [`ProductSimilarity::refresh`] for one product (the mod8 app does on every product event)
//! or [`ProductSimilarity::sync`] to catch up every product whose embedding is missing or
//! older than the product. A query about a product without an embedding computes it first.

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;

/// The embedding dimension of a deployment that sets none.
pub const DEFAULT_DIMENSION: usize = 256;

/// The most neighbours one query may ask for.
pub const MAX_K: u32 = 100;

/// How a deployment embeds and searches products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimilaritySettings {
    /// The length of every embedding (default [`DEFAULT_DIMENSION`]). Fixed per deployment:
    /// custom embeddings of another length are refused; default ones of another length
    /// (after a change) are recomputed by [`ProductSimilarity::sync`].
    pub dimension: usize,
    /// PostgreSQL: use pgvector when `CREATE EXTENSION vector` succeeds (default `true`);
    /// `false` forces the exact scan.
    pub use_vector_extension: bool,
    /// Candidates explored per query by the HNSW searches (`ef_search`; default 200).
    pub ef_search: usize,
}

impl Default for SimilaritySettings {
    fn default() -> Self {
        SimilaritySettings {
            dimension: DEFAULT_DIMENSION,
            use_vector_extension: true,
            ef_search: 200,
        }
    }
}

/// Which search answers similarity queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SimilarityPath {
    /// PostgreSQL with pgvector: the HNSW index (cosine).
    Pgvector,
    /// An exact scan of every matching embedding (PostgreSQL without pgvector).
    ExactScan,
    /// The in-process HNSW index (SQLite, the embedded default).
    InProcessHnsw,
}

impl SimilarityPath {
    /// `pgvector`, `exact_scan` or `in_process_hnsw`.
    pub fn name(self) -> &'static str {
        match self {
            SimilarityPath::Pgvector => "pgvector",
            SimilarityPath::ExactScan => "exact_scan",
            SimilarityPath::InProcessHnsw => "in_process_hnsw",
        }
    }
}

/// What to find neighbours of.
#[derive(Debug, Clone, PartialEq)]
pub enum SimilarTo {
    /// A product (its own embedding); the product itself is left out of the results.
    Product(Uuid),
    /// A vector of the deployment's dimension (normalised before use).
    Vector(Vec<f32>),
}

/// A similarity query.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarQuery {
    /// The product or vector to find neighbours of.
    pub target: SimilarTo,
    /// How many neighbours (1..=[`MAX_K`]).
    pub k: u32,
    /// Only products in this category or below it.
    pub category: Option<Uuid>,
    /// `Some(true)`: only products with stock available; `Some(false)`: only products
    /// without; `None`: either.
    pub in_stock: Option<bool>,
}

impl SimilarQuery {
    /// The `k` nearest products to `product_id`, unfiltered.
    pub fn product(product_id: Uuid, k: u32) -> Self {
        SimilarQuery {
            target: SimilarTo::Product(product_id),
            k,
            category: None,
            in_stock: None,
        }
    }

    /// Only products in `category`'s subtree.
    pub fn in_category(mut self, category: Uuid) -> Self {
        self.category = Some(category);
        self
    }

    /// Only products with (`true`) or without (`false`) available stock.
    pub fn in_stock(mut self, in_stock: bool) -> Self {
        self.in_stock = Some(in_stock);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.k == 0 || self.k > MAX_K {
            return Err(crate::Error::validation(
                "k",
                format!("must be between 1 and {MAX_K}, got {}", self.k),
            ));
        }
        Ok(())
    }

    pub(crate) fn has_filter(&self) -> bool {
        self.category.is_some() || self.in_stock.is_some()
    }
}

/// One neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarHit {
    /// The product.
    pub product_id: Uuid,
    /// Its name.
    pub name: String,
    /// Cosine distance to the target (`1 - cos`; 0 is identical, smaller is closer).
    pub distance: f32,
}

/// Vector similarity over the catalog's products (see the module documentation).
#[async_trait]
pub trait ProductSimilarity: Send + Sync {
    /// Sets up the search path (PostgreSQL: tries `CREATE EXTENSION vector`, adds the vector
    /// column and HNSW index; SQLite: builds the in-process index), computes the embeddings
    /// that are missing or stale, and logs which path is in use. Idempotent; every other
    /// method runs it first if it has not run.
    async fn prepare(&self) -> Result<SimilarityPath>;
    /// The path in use (after [`ProductSimilarity::prepare`]; `None` before).
    fn path(&self) -> Option<SimilarityPath>;
    /// The deployment's embedding dimension.
    fn dimension(&self) -> usize;
    /// The `k` nearest non-archived products matching the filters, nearest first.
    /// [`crate::Error::NotFound`] when the target product does not exist or is archived.
    async fn similar(&self, query: &SimilarQuery) -> Result<Vec<SimilarHit>>;
    /// The same answer computed by an exact scan, whatever the path (the reference for
    /// recall measurements).
    async fn similar_exact(&self, query: &SimilarQuery) -> Result<Vec<SimilarHit>>;
    /// Stores the caller's own embedding for a product (normalised to unit length), used
    /// from now on instead of the default one. [`crate::Error::Validation`] on `embedding`
    /// when its length is not [`ProductSimilarity::dimension`] or it is zero or not finite.
    async fn set_embedding(&self, product_id: Uuid, embedding: Vec<f32>) -> Result<()>;
    /// Drops a custom embedding: the product goes back to its default one.
    async fn reset_embedding(&self, product_id: Uuid) -> Result<()>;
    /// Brings one product up to date after it changed: recomputes its default embedding
    /// (a custom one is kept) and updates the index; an archived or deleted product leaves
    /// the index.
    async fn refresh(&self, product_id: Uuid) -> Result<()>;
    /// Recomputes every missing or stale default embedding and brings the index up to
    /// date; returns how many embeddings were written.
    async fn sync(&self) -> Result<u64>;
}

/// Per-store similarity state: settings, the chosen path, the in-process index.
pub(crate) struct SimilarityState {
    pub(crate) settings: SimilaritySettings,
    pub(crate) path: tokio::sync::OnceCell<SimilarityPath>,
    pub(crate) index: std::sync::RwLock<Option<crate::ann_index::AnnIndex>>,
    /// Held while one product's stored embedding is brought up to date and copied into the
    /// in-process index, so two refreshes of a product (this process's write and a product
    /// event) cannot leave the index with the older vector.
    pub(crate) refresh: tokio::sync::Mutex<()>,
}

impl SimilarityState {
    pub(crate) fn new(settings: SimilaritySettings) -> Self {
        SimilarityState {
            settings,
            path: tokio::sync::OnceCell::new(),
            index: std::sync::RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }
}

impl Default for SimilarityState {
    fn default() -> Self {
        SimilarityState::new(SimilaritySettings::default())
    }
}

impl std::fmt::Debug for SimilarityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimilarityState")
            .field("settings", &self.settings)
            .field("path", &self.path.get())
            .finish()
    }
}

/// Checks a caller's embedding and normalises it.
pub(crate) fn checked_embedding(mut embedding: Vec<f32>, dimension: usize) -> Result<Vec<f32>> {
    if embedding.len() != dimension {
        return Err(crate::Error::validation(
            "embedding",
            format!(
                "has {} components; this deployment's dimension is {dimension}",
                embedding.len()
            ),
        ));
    }
    if embedding.iter().any(|x| !x.is_finite()) || !crate::embedding::normalise(&mut embedding) {
        return Err(crate::Error::validation(
            "embedding",
            "must be finite and not all zero",
        ));
    }
    Ok(embedding)
}
