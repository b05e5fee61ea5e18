//! The typed, fail-open front over any [`CacheStore`]: codec, stampede protection, stats.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{de::DeserializeOwned, Serialize};

use crate::flight::{Flights, Role};
use crate::memory::Found;
use crate::stats::{Counter, Counters};
use crate::{
    glob_match, validate_key, Bytes, CacheStats, CacheStore, Codec, CounterInit, CounterOptions,
    CounterUpdate, DynCacheStore, EntryOptions, Error, MemoryStore, Result, TieredStore,
};

/// How often a failing backend may log a warning.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// What [`Cache::get_or_load_optional`] does with a "not found" (`None`) answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegativeCaching {
    /// Not stored: the next lookup runs the loader again (the default).
    #[default]
    Off,
    /// Stored for this long (negative caching); a zero duration is the same as
    /// [`NegativeCaching::Off`].
    Ttl(Duration),
}

impl NegativeCaching {
    /// How long a "not found" answer is kept, if at all.
    fn ttl(self) -> Option<Duration> {
        match self {
            NegativeCaching::Off => None,
            NegativeCaching::Ttl(ttl) => Some(ttl).filter(|d| !d.is_zero()),
        }
    }
}

/// A typed cache over any [`CacheStore`]; cheap to clone (clones share everything).
///
/// - `get` / `set` encode values with the configured [`Codec`] (JSON by default).
/// - [`get_or_load`](Cache::get_or_load) runs the loader once per key however many callers miss
///   at the same time; the others wait for its result. Misses on different keys never wait on
///   each other and in-process hits never wait on a loader.
/// - One miss asks the shared store (Redis, the L2 of a [`TieredStore`]) once: in
///   `get_or_load` only the key's flight leader sends the GET, and callers that miss while it
///   runs wait for its answer (a hit or the load) instead of sending their own. A key written
///   or invalidated through this cache since that flight started gets a new flight, so a
///   caller never waits for a value older than its own write.
/// - It fails open: when the backend is down or slow a lookup is a miss, a write is skipped,
///   a warning is logged (at most once per 10 s per cache) and the caller carries on. Only
///   caller mistakes (an empty key, a zero TTL, a value the codec cannot encode) are errors.
///   Invalidation is the exception: it reports backend failures, since a skipped
///   invalidation means stale data and the caller may want to know.
/// - A stored value that no longer decodes as the requested type is a miss and is
///   overwritten by the next load.
/// - A load that was running when its key was written or invalidated through this cache (or a
///   clone of it) does not store its result, which may be older than that change; its callers
///   still get it. Changes made elsewhere (another process, the store directly) cannot be
///   seen here: TTLs bound those.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use mod8_cache::{Cache, EntryOptions, MemoryStore};
/// use std::time::Duration;
///
/// let cache = Cache::new(MemoryStore::lru(10_000));
/// let ttl = EntryOptions::ttl(Duration::from_secs(60)).with_tag("user:7");
/// let name: String = cache
///     .get_or_load("user:7:name", &ttl, || async { Ok::<_, std::io::Error>("Ada".to_string()) })
///     .await?;
/// assert_eq!(name, "Ada");
/// assert_eq!(cache.get::<String>("user:7:name").await?, Some("Ada".to_string()));
/// assert_eq!(cache.invalidate_tag("user:7").await?, 1);
/// assert_eq!(cache.stats().loads, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    store: DynCacheStore,
    /// The in-process tier, read synchronously before the (async) store.
    local: Option<MemoryStore>,
    /// Whether `local` is the whole store (then a local miss is final).
    local_is_store: bool,
    codec: Codec,
    default_ttl: Option<Duration>,
    counters: Counters,
    flights: Flights,
    warn: WarnLimiter,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("backend", &self.inner.store.backend())
            .field("codec", &self.inner.codec)
            .field("default_ttl", &self.inner.default_ttl)
            .finish()
    }
}

/// Builds a [`Cache`] over a store; see [`Cache::builder`].
#[must_use]
pub struct CacheBuilder {
    store: DynCacheStore,
    local: Option<MemoryStore>,
    local_is_store: bool,
    name: String,
    codec: Codec,
    default_ttl: Option<Duration>,
}

impl std::fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("backend", &self.store.backend())
            .field("name", &self.name)
            .field("codec", &self.codec)
            .field("default_ttl", &self.default_ttl)
            .finish()
    }
}

impl CacheBuilder {
    /// The name used in logs and metrics labels (default `"default"`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The value format (default [`Codec::Json`]).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The TTL used when [`EntryOptions::ttl`] is `None` (default: none, entries live until
    /// evicted or invalidated); `None` or zero for none.
    pub fn with_default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl.filter(|d| !d.is_zero());
        self
    }

    /// The cache.
    pub fn build(self) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                name: self.name,
                store: self.store,
                local: self.local,
                local_is_store: self.local_is_store,
                codec: self.codec,
                default_ttl: self.default_ttl,
                counters: Counters::default(),
                flights: Flights::default(),
                warn: WarnLimiter::new(),
            }),
        }
    }
}

impl Cache {
    /// A cache over `store` with default settings.
    pub fn new(store: impl CacheStore) -> Cache {
        Cache::builder(store).build()
    }

    /// A builder over `store`. A [`MemoryStore`] or [`TieredStore`] gets a synchronous
    /// in-process fast path for hits.
    pub fn builder<S: CacheStore>(store: S) -> CacheBuilder {
        let any: &dyn Any = &store;
        let (local, local_is_store) = if let Some(m) = any.downcast_ref::<MemoryStore>() {
            (Some(m.clone()), true)
        } else if let Some(t) = any.downcast_ref::<TieredStore>() {
            (Some(t.l1().clone()), false)
        } else {
            (None, false)
        };
        CacheBuilder {
            store: Arc::new(store),
            local,
            local_is_store,
            name: "default".into(),
            codec: Codec::default(),
            default_ttl: None,
        }
    }

    /// An in-process cache of at most `capacity` entries.
    pub fn in_process(capacity: usize) -> Cache {
        Cache::new(MemoryStore::lru(capacity))
    }

    /// The name given to the builder.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The store underneath (for batch or raw byte access).
    pub fn store(&self) -> &DynCacheStore {
        &self.inner.store
    }

    /// The backend's short name (`"memory"`, `"redis"`, `"tiered"`).
    pub fn backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    /// The memory the backing server uses and may use (one round trip; see
    /// [`CacheStore::server_memory`](crate::CacheStore::server_memory)); `None` in process.
    ///
    /// # Errors
    ///
    /// The server's error, or no answer.
    pub async fn server_memory(&self) -> Result<Option<crate::ServerMemory>> {
        self.inner.store.server_memory().await
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot(self.inner.store.evictions())
    }

    /// The value under `key` decoded as `T`, or `None` on a miss (absent, expired,
    /// undecodable, or the backend failing).
    ///
    /// With an in-process tier ([`MemoryStore`], or the L1 of a [`TieredStore`]) the value
    /// decoded on the first hit is kept beside the entry's bytes, so later hits clone it
    /// instead of decoding: cheap for small or `Copy` types; for large ones
    /// [`get_shared`](Cache::get_shared) hands out the kept value itself.
    ///
    /// The in-process tier is read when `get` is called, so a hit's future is ready at once
    /// (no state machine to run or move around); the shared tier, if any, is asked when the
    /// future is polled.
    pub fn get<'a, T>(&'a self, key: &'a str) -> impl Future<Output = Result<Option<T>>> + Send + 'a
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.get_with(key, view_cloned::<T>, owned::<T>)
    }

    /// Like [`get`](Cache::get), sharing the value instead of cloning it: an in-process hit
    /// is a hash lookup and a reference-count increment, whatever the size of `T`.
    pub fn get_shared<'a, T>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<Arc<T>>>> + Send + 'a
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.get_with(key, view_shared::<T>, shared::<T>)
    }

    /// [`get`](Cache::get) and [`get_shared`](Cache::get_shared): the in-process tier now, the
    /// store (boxed, since it is the slow path anyway) when polled.
    #[inline]
    fn get_with<'a, T, R>(
        &'a self,
        key: &'a str,
        view: impl Fn(&Arc<dyn Any + Send + Sync>) -> Option<R>,
        own: impl FnOnce(Arc<T>) -> R + Send + 'a,
    ) -> GetFuture<'a, R>
    where
        T: DeserializeOwned + Send + Sync + 'static,
        R: Send + 'a,
    {
        if let Err(e) = validate_key(key) {
            return GetFuture::Later(Box::pin(async move { Err(e) }));
        }
        match self.local_first(key, true, view, own) {
            Early::Done(found) => GetFuture::Now(Some(found)),
            Early::Store(local, own) => GetFuture::Later(Box::pin(async move {
                Ok(self.ask_store(key, local, true, own).await)
            })),
        }
    }

    /// Several values in one round trip where the backend allows it; `None` for each miss.
    pub async fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<Vec<Option<T>>> {
        keys.iter().try_for_each(|k| validate_key(k))?;
        let raw = match self.inner.store.get_many(keys).await {
            Ok(raw) => raw,
            Err(e) => {
                self.backend_failed("get_many", &e);
                vec![None; keys.len()]
            }
        };
        Ok(raw.into_iter().map(|b| self.decode_counted(b)).collect())
    }

    /// Stores `value` under `key`. Backend failures are logged and skipped (fail-open); the
    /// error cases are an invalid key or options and a value the codec cannot encode.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: &EntryOptions,
    ) -> Result<()> {
        validate_key(key)?;
        options.validate()?;
        let bytes: Bytes = self.inner.codec.encode(value)?.into();
        let options = self.effective(options);
        self.supersede(|k| k == key);
        if let Err(e) = self.inner.store.set(key, bytes, &options).await {
            self.backend_failed("set", &e);
        }
        Ok(())
    }

    /// Stores several values with the same options, batched where the backend allows it.
    pub async fn set_many<T: Serialize>(
        &self,
        entries: &[(&str, T)],
        options: &EntryOptions,
    ) -> Result<()> {
        entries.iter().try_for_each(|(k, _)| validate_key(k))?;
        options.validate()?;
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            encoded.push((*key, Bytes::from(self.inner.codec.encode(value)?)));
        }
        let options = self.effective(options);
        self.supersede(|k| encoded.iter().any(|(key, _)| *key == k));
        if let Err(e) = self.inner.store.set_many(&encoded, &options).await {
            self.backend_failed("set_many", &e);
        }
        Ok(())
    }

    /// The cached value of `key`, or the loader's result (stored with `options`) on a miss.
    ///
    /// Concurrent misses on one key run `loader` once; the other callers wait and receive the
    /// same value or the same error (shared as `Arc<E>`, like moka's `try_get_with`). Loader
    /// errors are never cached. If the leader is cancelled, a waiting caller takes over.
    /// The cache failing never fails this call: the loader runs and its value is returned.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &str,
        options: &EntryOptions,
        loader: F,
    ) -> std::result::Result<T, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        self.load_shared(key, options, |_| Some(options.clone()), loader)
            .await
    }

    /// Like [`get_or_load`](Cache::get_or_load) for lookups that may find nothing: a `Some`
    /// is stored with `options`; a `None` ("not found") is stored only with
    /// [`NegativeCaching::Ttl`] (negative caching, asked for explicitly), for that long.
    pub async fn get_or_load_optional<T, E, F, Fut>(
        &self,
        key: &str,
        options: &EntryOptions,
        not_found: NegativeCaching,
        loader: F,
    ) -> std::result::Result<Option<T>, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Option<T>, E>>,
    {
        let negative = not_found.ttl().map(EntryOptions::ttl);
        self.load_shared(
            key,
            options,
            |value: &Option<T>| match value {
                Some(_) => Some(options.clone()),
                None => negative.clone(),
            },
            loader,
        )
        .await
    }

    async fn load_shared<T, E, F, Fut>(
        &self,
        key: &str,
        options: &EntryOptions,
        store_with: impl Fn(&T) -> Option<EntryOptions>,
        loader: F,
    ) -> std::result::Result<T, Arc<E>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        if let Err(e) = validate_key(key).and_then(|()| options.validate()) {
            // A bad key is the caller's bug, but the caller still gets its value.
            self.warn("get_or_load", &e);
            return self.run_loader(loader).await;
        }
        // The in-process tier answers at once. A lookup that needs the shared store is made
        // by the key's flight leader only: concurrent misses share one GET as they share one
        // load, and the leader's GET is also its check for a value stored by a flight that
        // just ended (one miss = one round trip).
        let remote = match self.local_first(key, true, view_cloned::<T>, owned) {
            Early::Done(Some(value)) => return Ok(value),
            // The in-process store is the whole store: a counted, final miss.
            Early::Done(None) => None,
            Early::Store(local, _) => Some(local),
        };
        // Whether this caller's miss is counted yet (the store's answer counts it otherwise).
        let mut counted = remote.is_none();
        let leader = loop {
            match self.inner.flights.join_or_lead(key) {
                Role::Lead(leader) => break leader,
                Role::Wait(waiter) => {
                    if !counted {
                        // It waits on a load: a miss (counted before it waits).
                        self.inner.counters.bump(Counter::Misses);
                        counted = true;
                    }
                    match waiter.result().await {
                        Some(shared) => {
                            if let Some(result) =
                                shared.downcast_ref::<std::result::Result<T, Arc<E>>>()
                            {
                                return result.clone();
                            }
                            // The leader loads another type under this key: do not mix them.
                            return self.run_loader(loader).await;
                        }
                        // The leader went away without a result (cancelled): try again.
                        None => continue,
                    }
                }
            }
        };
        let found = match remote {
            // Someone may have stored the value between our lookup and taking the lead: an
            // in-process check, no round trip.
            None => self.lookup(key, false, view_cloned::<T>, owned).await,
            Some(local) => self.ask_store(key, local, !counted, owned).await,
        };
        if let Some(value) = found {
            leader.publish(Arc::new(Ok::<T, Arc<E>>(value.clone())));
            return Ok(value);
        }
        let result = self.run_loader(loader).await;
        if let Ok(value) = &result {
            match store_with(value) {
                // The key changed while loading: storing would undo that change.
                Some(_) if leader.superseded() => {}
                Some(options) => {
                    self.store_loaded(key, value, &options).await;
                    // A change that raced with the store may have reached the backend before
                    // it (the check above ran first): remove what was stored, since an
                    // extra miss is safe and a stale entry is not.
                    if leader.superseded() {
                        if let Err(e) = self.inner.store.delete(key).await {
                            self.backend_failed("delete", &e);
                        }
                    }
                }
                None => {}
            }
        }
        leader.publish(Arc::new(result.clone()));
        result
    }

    /// Removes `key` from every tier; returns whether it was present. Reports backend errors.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        self.supersede(|k| k == key);
        self.invalidation(self.inner.store.delete(key).await, "delete")
    }

    /// Removes every key matching the glob `pattern` (`*`, `?`); returns how many.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.supersede(|k| glob_match(pattern, k));
        self.invalidation(
            self.inner.store.invalidate_pattern(pattern).await,
            "invalidate_pattern",
        )
    }

    /// Removes every entry stored with `tag`; returns how many.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        // Which keys a running load will tag is not known here: stop every one from storing.
        self.supersede(|_| true);
        let keys =
            self.invalidation(self.inner.store.invalidate_tag(tag).await, "invalidate_tag")?;
        Ok(keys.len() as u64)
    }

    /// Removes every entry of this cache (for Redis: every key under its namespace).
    pub async fn clear(&self) -> Result<()> {
        self.supersede(|_| true);
        self.invalidation(self.inner.store.clear().await, "clear")
    }

    /// Adds `deltas` to the fields of the counter `key` atomically and returns their new
    /// values (see [`CacheStore::increment`] for the rules, idempotency included).
    ///
    /// Unlike lookups this does not fail open: a lost increment is a wrong count, so backend
    /// failures are returned (and counted in [`CacheStats::backend_errors`]). Counters are
    /// kept in the shared tier only, never in the in-process one, and are untouched by this
    /// cache's invalidations apart from [`clear`](Cache::clear).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use mod8_cache::{Cache, CounterOptions};
    /// use std::time::Duration;
    ///
    /// let cache = Cache::in_process(100);
    /// let once = CounterOptions::ttl(Duration::from_secs(3_600))
    ///     .with_idempotency("message-1", Duration::from_secs(600));
    /// let first = cache.increment("post:7", &[("likes", 1), ("views", 3)], &once).await?;
    /// assert!(first.applied);
    /// assert_eq!(first.values, vec![1, 3]);
    /// // The same message again (a redelivery) counts once.
    /// let again = cache.increment("post:7", &[("likes", 1), ("views", 3)], &once).await?;
    /// assert!(!again.applied);
    /// assert_eq!(cache.counter("post:7").await?.get("views"), Some(&3));
    /// # Ok::<(), mod8_cache::Error>(()) }).unwrap();
    /// ```
    pub async fn increment(
        &self,
        key: &str,
        deltas: &[(&str, i64)],
        options: &CounterOptions,
    ) -> Result<CounterUpdate> {
        let update = self.invalidation(
            self.inner.store.increment(key, deltas, options).await,
            "increment",
        )?;
        if !update.missing {
            self.inner.counters.bump(if update.applied {
                Counter::Increments
            } else {
                Counter::DuplicateIncrements
            });
        }
        Ok(update)
    }

    /// Creates the counter `key` with the values of `fields` unless it exists, marking
    /// [`CounterInit::applied`]'s ids as applied to it, atomically (see
    /// [`CacheStore::init_counter`]); [`CounterUpdate::applied`] says whether this call created
    /// it. Reports backend errors, like [`increment`](Cache::increment).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use mod8_cache::{Cache, CounterInit, CounterOptions};
    /// use std::time::Duration;
    ///
    /// let cache = Cache::in_process(100);
    /// let once = |id: &str| CounterOptions::default()
    ///     .with_idempotency(id, Duration::from_secs(600))
    ///     .existing_only();
    /// // No counter yet: an existing-only increment changes nothing and says so.
    /// assert!(cache.increment("post:7", &[("likes", 1)], &once("m-3")).await?.missing);
    /// // Rebuilt from the source of truth, which holds messages m-1 and m-2.
    /// let init = CounterInit::default().with_applied(["m-1", "m-2"], Duration::from_secs(600));
    /// assert!(cache.init_counter("post:7", &[("likes", 2)], &init).await?.applied);
    /// // m-2 is in the rebuilt value; m-3 is new.
    /// assert!(!cache.increment("post:7", &[("likes", 1)], &once("m-2")).await?.applied);
    /// assert_eq!(cache.increment("post:7", &[("likes", 1)], &once("m-3")).await?.values, vec![3]);
    /// # Ok::<(), mod8_cache::Error>(()) }).unwrap();
    /// ```
    pub async fn init_counter(
        &self,
        key: &str,
        fields: &[(&str, i64)],
        init: &CounterInit,
    ) -> Result<CounterUpdate> {
        self.invalidation(
            self.inner.store.init_counter(key, fields, init).await,
            "init_counter",
        )
    }

    /// Every field of the counter `key` (empty when there is none); reports backend errors.
    pub async fn counter(&self, key: &str) -> Result<std::collections::BTreeMap<String, i64>> {
        self.invalidation(self.inner.store.counter(key).await, "counter")
    }

    /// Removes the counter `key`; returns whether it existed. Reports backend errors.
    pub async fn delete_counter(&self, key: &str) -> Result<bool> {
        self.invalidation(self.inner.store.delete_counter(key).await, "delete_counter")
    }

    fn invalidation<R>(&self, result: Result<R>, operation: &'static str) -> Result<R> {
        if let Err(e) = &result {
            if !matches!(e, Error::Validation { .. }) {
                self.inner.counters.bump(Counter::BackendErrors);
                self.warn(operation, e);
            }
        }
        result
    }

    fn effective(&self, options: &EntryOptions) -> EntryOptions {
        let mut options = options.clone();
        if options.ttl.is_none() {
            options.ttl = self.inner.default_ttl;
        }
        options
    }

    /// Marks the loads running for the keys `matches` selects as superseded (see
    /// [`Flights::supersede`]).
    fn supersede(&self, matches: impl Fn(&str) -> bool) {
        self.inner.flights.supersede(matches);
    }

    async fn run_loader<T, E, F, Fut>(&self, loader: F) -> std::result::Result<T, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        self.inner.counters.bump(Counter::Loads);
        let result = loader().await.map_err(Arc::new);
        if result.is_err() {
            self.inner.counters.bump(Counter::LoadErrors);
        }
        result
    }

    async fn store_loaded<T: Serialize>(&self, key: &str, value: &T, options: &EntryOptions) {
        let bytes = match self.inner.codec.encode(value) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                self.warn("encode", &e);
                return;
            }
        };
        if let Err(e) = self
            .inner
            .store
            .set(key, bytes, &self.effective(options))
            .await
        {
            self.backend_failed("set", &e);
        }
    }

    /// The in-process tier first (its kept decoded value when there is one), then the store;
    /// counts a hit or miss when `count`. `view` reads a kept decoded value (under the tier's
    /// read lock), `own` turns a freshly decoded one into the result.
    async fn lookup<T, R>(
        &self,
        key: &str,
        count: bool,
        view: impl Fn(&Arc<dyn Any + Send + Sync>) -> Option<R>,
        own: impl FnOnce(Arc<T>) -> R,
    ) -> Option<R>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        match self.local_first(key, count, view, own) {
            Early::Done(found) => found,
            Early::Store(local, own) => self.ask_store(key, local, count, own).await,
        }
    }

    /// What the in-process tier answers without the store: a kept decoded value, the kept
    /// bytes decoded, or a final miss (when it is the whole store); else the store must be
    /// asked (`own` handed back for that).
    #[inline]
    fn local_first<T, R, O>(
        &self,
        key: &str,
        count: bool,
        view: impl Fn(&Arc<dyn Any + Send + Sync>) -> Option<R>,
        own: O,
    ) -> Early<'_, R, O>
    where
        T: DeserializeOwned + Send + Sync + 'static,
        O: FnOnce(Arc<T>) -> R,
    {
        let inner = &*self.inner;
        let Some(local) = inner.local.as_ref() else {
            return Early::Store(None, own);
        };
        match local.get_decoded(key, inner.codec, view) {
            Found::Decoded(found) => {
                if count {
                    inner.counters.bump(Counter::Hits);
                }
                Early::Done(Some(found))
            }
            Found::Encoded(bytes) => {
                Early::Done(self.decode_and_keep(key, Some(bytes), Some(local), count, own))
            }
            Found::Missing if inner.local_is_store => {
                Early::Done(self.decode_and_keep(key, None, None, count, own))
            }
            // The tiered store fills its L1 from L2 with the very bytes it returns.
            Found::Missing => Early::Store(Some(local), own),
        }
    }

    /// The store's answer for `key`, decoded (and kept in `local`).
    async fn ask_store<T, R>(
        &self,
        key: &str,
        local: Option<&MemoryStore>,
        count: bool,
        own: impl FnOnce(Arc<T>) -> R,
    ) -> Option<R>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let found = self.inner.store.get(key).await;
        let bytes = self.store_answer(found);
        self.decode_and_keep(key, bytes, local, count, own)
    }

    /// The bytes of a store's answer; a failing backend is a miss (counted, logged).
    fn store_answer(&self, found: Result<Option<Bytes>>) -> Option<Bytes> {
        found.unwrap_or_else(|e| {
            self.backend_failed("get", &e);
            None
        })
    }

    /// Decodes `bytes` as `T`, keeping the value in `local` beside the bytes it came from.
    fn decode_and_keep<T, R>(
        &self,
        key: &str,
        bytes: Option<Bytes>,
        local: Option<&MemoryStore>,
        count: bool,
        own: impl FnOnce(Arc<T>) -> R,
    ) -> Option<R>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let Some(bytes) = bytes else {
            if count {
                inner.counters.bump(Counter::Misses);
            }
            return None;
        };
        match inner.codec.decode::<T>(&bytes) {
            Ok(value) => {
                let value = Arc::new(value);
                if let Some(local) = local {
                    local.keep_decoded(key, &bytes, inner.codec, value.clone());
                }
                if count {
                    inner.counters.bump(Counter::Hits);
                }
                Some(own(value))
            }
            Err(_) => {
                if count {
                    inner.counters.bump(Counter::DecodeErrors);
                    inner.counters.bump(Counter::Misses);
                }
                None
            }
        }
    }

    fn decode_counted<T: DeserializeOwned>(&self, bytes: Option<Bytes>) -> Option<T> {
        let counters = &self.inner.counters;
        let Some(bytes) = bytes else {
            counters.bump(Counter::Misses);
            return None;
        };
        match self.inner.codec.decode(&bytes) {
            Ok(value) => {
                counters.bump(Counter::Hits);
                Some(value)
            }
            Err(_) => {
                counters.bump(Counter::DecodeErrors);
                counters.bump(Counter::Misses);
                None
            }
        }
    }

    fn backend_failed(&self, operation: &'static str, error: &Error) {
        self.inner.counters.bump(Counter::BackendErrors);
        self.warn(operation, error);
    }

    fn warn(&self, operation: &'static str, error: &Error) {
        if let Some(suppressed) = self.inner.warn.allow() {
            tracing::warn!(
                cache = %self.inner.name,
                backend = self.inner.store.backend(),
                operation,
                error = %error,
                suppressed,
                "cache operation failed; failing open (treated as a miss)"
            );
        }
    }
}

/// The future of [`Cache::get`]: ready at once for what the in-process tier answers, boxed for
/// a round trip to the store (and for a key refused before any lookup, a rare path).
///
/// The ready variant holds only the answer, not a `Result` with the crate's error beside it:
/// a hit's future stays two words and a tag, which the caller moves around at every `.await`
/// (a larger one measurably slowed the hit).
enum GetFuture<'a, R> {
    /// The in-process tier's answer; taken by the first poll.
    Now(Option<Option<R>>),
    /// The store's answer, or an error.
    Later(BoxFuture<'a, Result<Option<R>>>),
}

// The answer is moved out, never pinned in place; the boxed future is pinned on the heap.
impl<R> Unpin for GetFuture<'_, R> {}

impl<R> std::future::Future for GetFuture<'_, R> {
    type Output = Result<Option<R>>;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            // Polled again after it completed (which the `Future` contract leaves open): a
            // miss rather than a panic.
            GetFuture::Now(answer) => std::task::Poll::Ready(Ok(answer.take().flatten())),
            GetFuture::Later(future) => future.as_mut().poll(cx),
        }
    }
}

/// What [`Cache::local_first`] leaves to do.
enum Early<'a, R, O> {
    /// The answer.
    Done(Option<R>),
    /// Ask the store (then keep the decoded value in the in-process tier, if any).
    Store(Option<&'a MemoryStore>, O),
}

/// A kept decoded value as a clone of `T` (read under the in-process tier's lock).
fn view_cloned<T: Clone + 'static>(value: &Arc<dyn Any + Send + Sync>) -> Option<T> {
    (**value).downcast_ref::<T>().cloned()
}

/// A kept decoded value as a shared `Arc<T>`: a reference-count increment.
fn view_shared<T: Send + Sync + 'static>(value: &Arc<dyn Any + Send + Sync>) -> Option<Arc<T>> {
    Arc::clone(value).downcast::<T>().ok()
}

/// A freshly decoded value as `T`: moved out when nothing else kept it, else cloned.
fn owned<T: Clone>(value: Arc<T>) -> T {
    Arc::try_unwrap(value).unwrap_or_else(|kept| (*kept).clone())
}

/// A freshly decoded value as it is.
fn shared<T>(value: Arc<T>) -> Arc<T> {
    value
}

/// Lets one warning through per [`WARN_INTERVAL`], counting the ones it held back.
pub(crate) struct WarnLimiter {
    start: Instant,
    /// Milliseconds since `start` of the last warning, plus one (0 = never warned).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    pub(crate) fn new() -> Self {
        WarnLimiter {
            start: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed since the last warning)` when a warning may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last.load(Relaxed);
        let interval = WARN_INTERVAL.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < interval {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Relaxed))
    }
}
