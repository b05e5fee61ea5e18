//! Choosing and building a backend: by URL scheme, from the environment, or with a builder.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{DocStore, Error, MemoryDocStore, Result};

/// The database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "mod8";

/// The environment variable naming the MongoDB server; unset means in memory.
const URL_VAR: &str = "MOD8_MONGODB_URL";
/// The environment variable overriding the database name.
const DATABASE_VAR: &str = "MOD8_MONGODB_DATABASE";

/// Where the document store lives.
///
/// ```
/// use mod8_docstore::DocStoreConfig;
/// let config = DocStoreConfig::builder().with_database("analytics").build();
/// assert_eq!(config.url, None); // in memory
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocStoreConfig {
    /// `mongodb://...` / `mongodb+srv://...` for MongoDB, `memory://` or `None` for in memory.
    pub url: Option<String>,
    /// Database name; when `None`, the URL's path, else [`DEFAULT_DATABASE`].
    pub database: Option<String>,
}

impl DocStoreConfig {
    /// A builder starting from the in-memory default.
    pub fn builder() -> DocStoreConfigBuilder {
        DocStoreConfigBuilder::default()
    }

    /// `MOD8_MONGODB_URL` (unset or empty: in memory) and `MOD8_MONGODB_DATABASE`.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        DocStoreConfig {
            url: var(URL_VAR),
            database: var(DATABASE_VAR),
        }
    }

    /// Connects to the configured backend.
    pub async fn connect(&self) -> Result<Arc<dyn DocStore>> {
        match self.url.as_deref().map(str::trim) {
            None | Some("") | Some("memory://") | Some("memory:") => {
                Ok(Arc::new(MemoryDocStore::new()))
            }
            Some(url) if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") => {
                connect_mongodb(url, self.database.as_deref()).await
            }
            Some(url) => Err(Error::validation(
                "url",
                format!(
                    "unknown scheme in {:?}: expected mongodb://, mongodb+srv:// or memory://",
                    url.split("://").next().unwrap_or(url)
                ),
            )),
        }
    }
}

#[cfg(feature = "mongodb")]
async fn connect_mongodb(url: &str, database: Option<&str>) -> Result<Arc<dyn DocStore>> {
    Ok(Arc::new(
        crate::MongoDocStore::connect(url, database).await?,
    ))
}

#[cfg(not(feature = "mongodb"))]
async fn connect_mongodb(_url: &str, _database: Option<&str>) -> Result<Arc<dyn DocStore>> {
    Err(Error::Unsupported {
        operation: "connect to mongodb://".to_owned(),
        backend: "mongodb",
        message: "mod8-docstore was built without its `mongodb` feature".to_owned(),
    })
}

/// Builds a [`DocStoreConfig`].
#[derive(Debug, Clone, Default)]
pub struct DocStoreConfigBuilder {
    config: DocStoreConfig,
}

impl DocStoreConfigBuilder {
    /// Use the server at `url` (`mongodb://...`, or `memory://`).
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.config.url = Some(url.into());
        self
    }

    /// Use the database `name`.
    pub fn with_database(mut self, name: impl Into<String>) -> Self {
        self.config.database = Some(name.into());
        self
    }

    /// The configuration.
    pub fn build(self) -> DocStoreConfig {
        self.config
    }
}

/// Connects to the backend named by `url`'s scheme: `mongodb://` or `mongodb+srv://` for
/// MongoDB (database from the URL path, else [`DEFAULT_DATABASE`]), `memory://` or an empty
/// string for the in-memory store.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = mod8_docstore::connect("memory://").await?;
/// assert_eq!(store.backend(), "memory");
/// assert!(mod8_docstore::connect("ftp://x").await.is_err());
/// # Ok::<(), mod8_docstore::Error>(()) }).unwrap();
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn DocStore>> {
    DocStoreConfig::builder()
        .with_url(url)
        .build()
        .connect()
        .await
}
