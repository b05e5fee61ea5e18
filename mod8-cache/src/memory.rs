//! The in-process backend: an LRU bounded by entries, optionally also by age, on `cached`'s
//! `ExpiringLruCache` (per-entry expiry) behind one short-held (spinning, then parking) mutex.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cached::{Cached, CachedPeek, Expires, ExpiringLruCache};

use crate::{glob_match, validate_key, Bytes, CacheStore, EntryOptions, Error, Result};

const BACKEND: &str = "memory";

/// An in-process cache: thread-safe, bounded by entry count (least recently used goes first)
/// and, when built with [`MemoryStore::ttl`], by age.
///
/// Every operation holds a `parking_lot::Mutex` for O(1) work only (pattern invalidation walks the
/// keys once), never across an `.await`, so it is safe to use from async code without blocking
/// the runtime. Cloning is cheap and shares the same entries.
///
/// What it does not do: share entries between processes or survive a restart — put a
/// [`RedisStore`](crate::RedisStore) behind it with [`TieredStore`](crate::TieredStore) for that.
///
/// ```
/// # tokio_test_block_on(async {
/// use mod8_cache::{CacheStore, EntryOptions, MemoryStore};
/// use std::time::Duration;
///
/// let store = MemoryStore::lru(1_000);
/// store.set("greeting", b"hello".as_slice().into(), &EntryOptions::ttl(Duration::from_secs(60))).await?;
/// assert_eq!(store.get("greeting").await?.as_deref(), Some(b"hello".as_slice()));
/// # Ok::<(), mod8_cache::Error>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    capacity: usize,
    max_age: Option<Duration>,
}

struct State {
    /// Keys as `Box<str>`, not `String`: 8 bytes less per entry (no spare capacity to track).
    entries: ExpiringLruCache<Box<str>, Entry>,
    /// tag → keys stored with it; pruned of dead keys when it grows past the entry bound.
    tags: HashMap<String, HashSet<String>>,
    tagged_keys: usize,
}

/// One cached value, kept small (32 bytes) because the LRU list preallocates a slot of it (and
/// its key) for every entry of the capacity, and the overhead per entry beyond key and value
/// has a budget (see BENCHMARKS.md at the repository root; `examples/l1_overhead.rs` measures
/// it).
struct Entry {
    value: Bytes,
    /// The deadline as nanoseconds after [`epoch`] (plus one, so zero never occurs): 8 bytes
    /// where an `Option<Instant>` takes 16. `None`: no expiry.
    expires_at: Option<NonZeroU64>,
    /// The tags, boxed once more so an untagged entry pays one thin pointer (8 bytes), not a
    /// fat `Box<[String]>` (16); only tagged entries allocate.
    tags: Option<Box<Box<[String]>>>,
}

// Guard the budget above: a wider entry costs every slot of every L1.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Entry>() == 32);

/// The process-wide origin of [`Entry::expires_at`]; `Expires::is_expired` has no access to
/// the store, so the origin cannot be per store.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from [`epoch`] to now.
fn now_nanos() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Entry {
    fn tags(&self) -> &[String] {
        self.tags.as_deref().map_or(&[], |tags| &tags[..])
    }
}

impl Expires for Entry {
    fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at.get() <= now_nanos())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.inner.capacity)
            .field("max_age", &self.inner.max_age)
            .field("len", &self.len())
            .finish()
    }
}

impl MemoryStore {
    /// An LRU store holding at most `capacity` entries (at least 1); entries expire only by
    /// their own TTL.
    pub fn lru(capacity: usize) -> Self {
        Self::build(capacity, None)
    }

    /// An LRU store holding at most `capacity` entries, none older than `max_age`: an entry's
    /// effective TTL is the shorter of its own and `max_age`.
    pub fn ttl(capacity: usize, max_age: Duration) -> Self {
        Self::build(capacity, Some(max_age).filter(|d| !d.is_zero()))
    }

    fn build(capacity: usize, max_age: Option<Duration>) -> Self {
        let capacity = capacity.max(1);
        MemoryStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    entries: ExpiringLruCache::new(capacity),
                    tags: HashMap::new(),
                    tagged_keys: 0,
                }),
                capacity,
                max_age,
            }),
        }
    }

    /// The most entries this store keeps.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The age bound, when built with [`MemoryStore::ttl`].
    pub fn max_age(&self) -> Option<Duration> {
        self.inner.max_age
    }

    /// Entries currently held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().entries.cache_size()
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Synchronous lookup, for callers outside async code and for the hot path of [`Cache`](crate::Cache).
    pub fn get_now(&self, key: &str) -> Option<Bytes> {
        self.lock().entries.cache_get(key).map(|e| e.value.clone())
    }

    /// Synchronous removal of every entry.
    pub fn clear_now(&self) {
        let mut state = self.lock();
        state.entries.cache_clear();
        state.tags.clear();
        state.tagged_keys = 0;
    }

    /// Synchronous removal of the given keys; returns how many were present.
    pub fn remove_now<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut state = self.lock();
        keys.into_iter()
            .filter(|k| state.entries.cache_remove(*k).is_some())
            .count() as u64
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // parking_lot's mutex spins briefly before parking: the critical sections here are tens
        // of nanoseconds, so a contended lookup waits that long instead of a park/unpark round
        // trip through the kernel (which put the 2-thread p99 near 10 µs with std's mutex). It
        // does not poison: a panic while holding it cannot leave the maps half-updated in a way
        // that matters for a cache (worst case a stale tag index entry).
        self.inner.state.lock()
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<NonZeroU64> {
        let ttl = match (ttl, self.inner.max_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        // A deadline past u64 nanoseconds (584 years) means "never" in practice.
        let ttl = u64::try_from(ttl.as_nanos()).ok()?;
        now_nanos()
            .checked_add(ttl)?
            .checked_add(1)
            .and_then(NonZeroU64::new)
    }

    fn insert(&self, state: &mut State, key: &str, value: Bytes, options: &EntryOptions) {
        let entry = Entry {
            value,
            expires_at: self.expiry(options.ttl),
            tags: (!options.tags.is_empty())
                .then(|| Box::new(options.tags.clone().into_boxed_slice())),
        };
        for tag in entry.tags() {
            if state
                .tags
                .entry(tag.clone())
                .or_default()
                .insert(key.to_owned())
            {
                state.tagged_keys += 1;
            }
        }
        state.entries.cache_set(key.into(), entry);
        if state.tagged_keys > self.inner.capacity.saturating_mul(2) + 64 {
            prune_tags(state);
        }
    }
}

/// Drops tag index entries whose key is gone or no longer carries the tag.
fn prune_tags(state: &mut State) {
    let State {
        entries,
        tags,
        tagged_keys,
    } = state;
    *tagged_keys = 0;
    tags.retain(|tag, keys| {
        keys.retain(|k| {
            entries
                .cache_peek(k.as_str())
                .is_some_and(|e| !e.is_expired() && e.tags().contains(tag))
        });
        *tagged_keys += keys.len();
        !keys.is_empty()
    });
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl CacheStore for MemoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        validate_key(key)?;
        Ok(self.get_now(key))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        keys.iter().try_for_each(|k| validate_key(k))?;
        let mut state = self.lock();
        Ok(keys
            .iter()
            .map(|k| state.entries.cache_get(*k).map(|e| e.value.clone()))
            .collect())
    }

    async fn set(&self, key: &str, value: Bytes, options: &EntryOptions) -> Result<()> {
        validate_key(key)?;
        options.validate()?;
        let mut state = self.lock();
        self.insert(&mut state, key, value, options);
        Ok(())
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], options: &EntryOptions) -> Result<()> {
        entries.iter().try_for_each(|(k, _)| validate_key(k))?;
        options.validate()?;
        let mut state = self.lock();
        for (key, value) in entries {
            self.insert(&mut state, key, value.clone(), options);
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let removed = self.lock().entries.cache_remove(key);
        Ok(removed.is_some_and(|e| !e.is_expired()))
    }

    async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        if pattern.is_empty() {
            return Err(Error::validation("pattern", "must not be empty"));
        }
        Ok(self.remove_matching(pattern))
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>> {
        if tag.is_empty() {
            return Err(Error::validation("tag", "must not be empty"));
        }
        let mut state = self.lock();
        let Some(keys) = state.tags.remove(tag) else {
            return Ok(Vec::new());
        };
        state.tagged_keys = state.tagged_keys.saturating_sub(keys.len());
        let mut removed = Vec::with_capacity(keys.len());
        for key in keys {
            // The key may have been overwritten since without this tag: leave it alone then.
            let still_tagged = state
                .entries
                .cache_peek(key.as_str())
                .is_some_and(|e| e.tags().iter().any(|t| t == tag));
            if still_tagged {
                if let Some(entry) = state.entries.cache_remove(key.as_str()) {
                    if !entry.is_expired() {
                        removed.push(key);
                    }
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    async fn clear(&self) -> Result<()> {
        self.clear_now();
        Ok(())
    }

    fn evictions(&self) -> u64 {
        self.lock().entries.cache_evictions().unwrap_or(0)
    }
}

impl MemoryStore {
    /// Synchronous removal of every key matching the glob `pattern`; returns how many.
    pub fn remove_matching(&self, pattern: &str) -> u64 {
        let mut state = self.lock();
        let keys: Vec<Box<str>> = state
            .entries
            .key_order()
            .into_iter()
            .filter(|k| glob_match(pattern, k))
            .collect();
        for key in &keys {
            let _ = state.entries.cache_remove(&**key);
        }
        keys.len() as u64
    }
}
