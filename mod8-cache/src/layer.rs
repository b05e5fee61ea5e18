//! The decorator: cache-aside reads and write-through or invalidate-on-write around any
//! repository, through a few lines of adapter per repository trait.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use crate::{Cache, EntryOptions, NegativeCaching};

/// What a successful write does to the cached copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WritePolicy {
    /// Drop the cached copy; the next read loads the new value (the safe default).
    #[default]
    Invalidate,
    /// Store the value the write returned, so the next read is a hit.
    WriteThrough,
}

/// The cache policy for one repository: key prefix, TTL, negative caching and write policy.
/// [`CacheLayer::layer`] wraps a repository into a [`Cached`] that shares this state.
///
/// A Rust trait cannot be implemented generically for "any trait", so the adapter for a
/// repository trait is a short impl whose methods call [`Cached::read`],
/// [`Cached::read_optional`] and [`Cached::write`]; callers keep using `dyn MyRepo`
/// unchanged. When the trait is your own, implement it for `Cached<R>` directly (below); when
/// it comes from another crate (say mod8-orm's `UserRepository`), the orphan rule asks for a
/// newtype of your own, `struct CachedUsers(Cached<DynDatabase>)`, implementing the trait the
/// same way (see `examples/caching.rs`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use mod8_cache::{Cache, CacheLayer, Cached};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// #[async_trait::async_trait]
/// trait Prices: Send + Sync {
///     async fn price(&self, sku: &str) -> Result<u64, String>;
/// }
/// struct Db(AtomicUsize);
/// #[async_trait::async_trait]
/// impl Prices for Db {
///     async fn price(&self, _sku: &str) -> Result<u64, String> {
///         self.0.fetch_add(1, Ordering::SeqCst);
///         Ok(42)
///     }
/// }
/// // The adapter: one line per method.
/// #[async_trait::async_trait]
/// impl<R: Prices> Prices for Cached<R> {
///     async fn price(&self, sku: &str) -> Result<u64, String> {
///         self.read(&self.key(sku), |db| db.price(sku)).await.map_err(|e| e.to_string())
///     }
/// }
///
/// let layer =
///     CacheLayer::new(Cache::in_process(1_000), "price").with_ttl(Duration::from_secs(60));
/// let prices: Arc<dyn Prices> = Arc::new(layer.layer(Db(AtomicUsize::new(0))));
/// assert_eq!(prices.price("sku-1").await, Ok(42));
/// assert_eq!(prices.price("sku-1").await, Ok(42));
/// assert_eq!(layer.cache().stats().loads, 1);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct CacheLayer {
    state: Arc<LayerState>,
}

#[derive(Debug)]
struct LayerState {
    cache: Cache,
    prefix: String,
    ttl: Option<Duration>,
    negative_ttl: Option<Duration>,
    policy: WritePolicy,
}

impl CacheLayer {
    /// A layer storing entries under `{prefix}:{id}` in `cache`, with the cache's default TTL,
    /// no negative caching and [`WritePolicy::Invalidate`].
    pub fn new(cache: Cache, prefix: impl Into<String>) -> Self {
        CacheLayer {
            state: Arc::new(LayerState {
                cache,
                prefix: prefix.into(),
                ttl: None,
                negative_ttl: None,
                policy: WritePolicy::Invalidate,
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut LayerState)) -> Self {
        let mut state = Arc::try_unwrap(self.state).unwrap_or_else(|shared| LayerState {
            cache: shared.cache.clone(),
            prefix: shared.prefix.clone(),
            ttl: shared.ttl,
            negative_ttl: shared.negative_ttl,
            policy: shared.policy,
        });
        f(&mut state);
        CacheLayer {
            state: Arc::new(state),
        }
    }

    /// The TTL of cached reads.
    #[must_use]
    pub fn with_ttl(self, ttl: Duration) -> Self {
        self.map(|s| s.ttl = Some(ttl).filter(|d| !d.is_zero()))
    }

    /// Cache "not found" answers of [`Cached::read_optional`] for this long (off by default).
    #[must_use]
    pub fn with_negative_ttl(self, ttl: Duration) -> Self {
        self.map(|s| s.negative_ttl = Some(ttl).filter(|d| !d.is_zero()))
    }

    /// What writes do to the cached copy.
    #[must_use]
    pub fn with_write_policy(self, policy: WritePolicy) -> Self {
        self.map(|s| s.policy = policy)
    }

    /// The cache behind this layer (for stats and manual invalidation).
    pub fn cache(&self) -> &Cache {
        &self.state.cache
    }

    /// Wraps `inner`; the wrapper is cheap to clone when `R` is.
    pub fn layer<R>(&self, inner: R) -> Cached<R> {
        Cached {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A repository (or any value) wrapped by a [`CacheLayer`]; implement your repository trait
/// for `Cached<R>` with [`read`](Cached::read), [`read_optional`](Cached::read_optional) and
/// [`write`](Cached::write).
#[derive(Debug, Clone)]
pub struct Cached<R> {
    inner: R,
    state: Arc<LayerState>,
}

impl<R> Cached<R> {
    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.state.cache
    }

    /// The cache key for `id`: `{prefix}:{id}`.
    pub fn key(&self, id: impl Display) -> String {
        format!("{}:{id}", self.state.prefix)
    }

    fn options(&self) -> EntryOptions {
        EntryOptions::default().with_ttl(self.state.ttl)
    }

    /// Cache-aside read: the cached value of `key`, or `load(inner)` stored with the layer's
    /// TTL. Concurrent misses load once; errors are shared with the waiters and never cached.
    pub async fn read<'a, T, E, F, Fut>(&'a self, key: &str, load: F) -> Result<T, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce(&'a R) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'a,
    {
        let inner = &self.inner;
        self.state
            .cache
            .get_or_load(key, &self.options(), || load(inner))
            .await
    }

    /// Like [`read`](Cached::read) for lookups that may find nothing; `None` is cached only
    /// when the layer has a [negative TTL](CacheLayer::with_negative_ttl).
    pub async fn read_optional<'a, T, E, F, Fut>(
        &'a self,
        key: &str,
        load: F,
    ) -> Result<Option<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce(&'a R) -> Fut,
        Fut: Future<Output = Result<Option<T>, E>> + 'a,
    {
        let inner = &self.inner;
        let not_found = self
            .state
            .negative_ttl
            .map_or(NegativeCaching::Off, NegativeCaching::Ttl);
        self.state
            .cache
            .get_or_load_optional(key, &self.options(), not_found, || load(inner))
            .await
    }

    /// Runs `write(inner)`; on success applies the layer's [`WritePolicy`] to `key` (store
    /// the returned value, or drop the cached copy). The write's own error is returned as
    /// is; a cache failure afterwards is logged, never returned.
    pub async fn write<'a, T, E, F, Fut>(&'a self, key: &str, write: F) -> Result<T, E>
    where
        T: Serialize,
        F: FnOnce(&'a R) -> Fut,
        Fut: Future<Output = Result<T, E>> + 'a,
    {
        let value = write(&self.inner).await?;
        let cache = &self.state.cache;
        let outcome = match self.state.policy {
            WritePolicy::WriteThrough => cache.set(key, &value, &self.options()).await,
            WritePolicy::Invalidate => cache.delete(key).await.map(|_| ()),
        };
        if let Err(e) = outcome {
            tracing::warn!(key, error = %e, "cache update after a write failed");
        }
        Ok(value)
    }

    /// Drops the cached copy of `key` (after a write done without [`write`](Cached::write)).
    pub async fn invalidate(&self, key: &str) {
        if let Err(e) = self.state.cache.delete(key).await {
            tracing::warn!(key, error = %e, "cache invalidation failed");
        }
    }
}
