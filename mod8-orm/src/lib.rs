#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod ann_index;
mod bulk;
mod catalog;
mod config;
mod customer_summary;
pub mod embedding;
mod error;
pub mod explain;
mod forward;
mod model;
mod pinned;
mod pool_usage;
mod purchases;
mod repository;
mod search;
pub mod similarity;
mod slow;
mod sql;
mod store;
mod timed;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod replica;
pub mod sqlite;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod validate;

pub use bulk::{CatalogBulkLoad, LoadedProduct};
pub use catalog::*;
pub use config::{connect, OrmConfig, ReplicaSettings, DEFAULT_URL};
pub use customer_summary::CustomerRfm;
pub use error::{BoxError, Error, Result};
pub use model::*;
pub use pool_usage::PoolUsage;
pub use purchases::{
    CoPurchase, CoPurchaseCounts, CustomerHistory, ProductBuyers, ProductDayLines,
};
pub use repository::{
    AnalyticsRepository, Backend, CartRepository, CatalogRepository, Database, DynDatabase,
    InventoryRepository, LocationRepository, OrderRepository, OutboxRepository, ProductRepository,
    Repositories, ReviewRepository, UnitOfWork, UserRepository,
};
pub use search::{
    reciprocal_rank_fusion, CategoryFilter, MatchKind, ProductSearch, SearchHit, SearchMode,
    SearchPage, SearchQuery, FUZZY_THRESHOLD, HYBRID_DEPTH, MAX_QUERY_CHARS, MAX_QUERY_ITEMS,
    RRF_K,
};
pub use similarity::{
    ProductSimilarity, SimilarHit, SimilarQuery, SimilarTo, SimilarityPath, SimilaritySettings,
};
pub use slow::{
    statement_name, SlowStatementSettings, StatementLog, StatementTiming, MAX_STATEMENTS, OTHER,
};
pub use sql::migrate::{migrations, HISTORY_TABLE};
pub use store::{SqlBackend, SqlStore};

/// Re-exported: the public API uses its date and time types.
pub use chrono;
/// Re-exported: [`AnalyticsRepository::customer_rfm`] returns a `futures` stream (consume it
/// with `futures::TryStreamExt`).
pub use futures;
/// Re-exported: outbox payloads are JSON values.
pub use serde_json;
/// The sqlx version this crate is built on, re-exported for hosts that reach the pool.
pub use sqlx;
/// Re-exported: every id is a UUID.
pub use uuid;
