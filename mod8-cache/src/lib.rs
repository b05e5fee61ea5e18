#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod cache;
mod clock;
mod codec;
mod config;
mod counter;
mod error;
mod flight;
mod front;
mod layer;
pub mod memo;
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod server_memory;
mod stats;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod tiered;

/// Re-exported so a repository adapter (`impl MyRepo for Cached<R>`) or a custom
/// [`CacheStore`] needs no direct dependency on `async-trait`.
pub use async_trait::async_trait;
pub use cache::{Cache, CacheBuilder, NegativeCaching};
pub use codec::Codec;
pub use config::{connect, CacheConfig};
pub use counter::{CounterInit, CounterOptions, CounterUpdate, Idempotency};
pub use error::{BoxError, Error, Result};
pub use layer::{CacheLayer, Cached, WritePolicy};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisConfig, RedisStore};
pub use server_memory::ServerMemory;
pub use stats::CacheStats;
pub use tiered::{TierOptions, TieredStore};

/// A shared, type-erased [`CacheStore`]: what [`Cache::store`] and [`TieredStore::l2`] hand
/// out, and what a custom tier can hold.
pub type DynCacheStore = Arc<dyn CacheStore>;

/// A stored value: encoded bytes, shared so an in-process hit never copies them.
pub type Bytes = Arc<[u8]>;

/// How one entry is stored: its time to live and the tags it can be invalidated by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryOptions {
    /// How long the entry lives; `None` keeps it until evicted or invalidated.
    pub ttl: Option<Duration>,
    /// Tags the entry belongs to; [`CacheStore::invalidate_tag`] removes every entry of a tag.
    pub tags: Vec<String>,
}

impl EntryOptions {
    /// Options with a time to live and no tags.
    pub fn ttl(ttl: Duration) -> Self {
        EntryOptions {
            ttl: Some(ttl),
            tags: Vec::new(),
        }
    }

    /// Adds a tag (for example `user:123`), for "invalidate everything about user 123".
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets or replaces the time to live.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Rejects a zero TTL and empty tags, the same way on every backend.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.ttl == Some(Duration::ZERO) {
            return Err(Error::validation("ttl", "must be greater than zero"));
        }
        if self.tags.iter().any(String::is_empty) {
            return Err(Error::validation("tag", "must not be empty"));
        }
        Ok(())
    }
}

/// A byte-level cache backend: the object-safe core every tier implements.
///
/// Keys are non-empty strings; values are opaque bytes ([`Bytes`]); the typed, fail-open API
/// most code wants is [`Cache`], built on top of any `CacheStore`. Backends in this crate:
/// [`MemoryStore`] (in-process LRU, optionally bounded by age), [`RedisStore`] (feature
/// `redis`) and [`TieredStore`] (an in-process L1 in front of any L2).
///
/// Patterns for [`invalidate_pattern`](Self::invalidate_pattern) are globs where `*` matches any
/// run of characters and `?` one character; every other character is literal on every backend.
#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// A short backend name for errors, logs and metrics (`"memory"`, `"redis"`, `"tiered"`).
    fn backend(&self) -> &'static str;

    /// The value stored under `key`, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// The values of several keys, in order, in one round trip where the backend allows it.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>>;

    /// Stores `value` under `key`, replacing any previous value and its tags.
    async fn set(&self, key: &str, value: Bytes, options: &EntryOptions) -> Result<()>;

    /// Stores several entries with the same options, batched where the backend allows it.
    async fn set_many(&self, entries: &[(&str, Bytes)], options: &EntryOptions) -> Result<()>;

    /// Removes `key`; returns whether it was present.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Removes every key matching the glob `pattern`; returns how many were removed.
    async fn invalidate_pattern(&self, pattern: &str) -> Result<u64>;

    /// Removes every entry stored with `tag`; returns the keys that were attached to it.
    ///
    /// A key stored with the tag and later re-stored without it may still be removed by
    /// backends that keep tag membership apart from the value (Redis): over-invalidation is
    /// safe for a cache, serving a stale entry is not.
    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>>;

    /// Removes every entry this store owns (for Redis: every key under its namespace).
    async fn clear(&self) -> Result<()>;

    /// Entries this store dropped on its own (capacity or age), since it was created. The
    /// in-process store counts here too the idempotency markers it forgot before their
    /// window ended because its marker table was full.
    fn evictions(&self) -> u64;

    /// Adds each `(field, delta)` of `deltas` to the integer fields of the counter `key` in
    /// one atomic step, and returns their new values in the order given.
    ///
    /// A counter is a hash of 64-bit integer fields, apart from cached entries: it is never
    /// evicted for room, untouched by [`invalidate_pattern`](Self::invalidate_pattern) and
    /// [`invalidate_tag`](Self::invalidate_tag), removed by
    /// [`delete_counter`](Self::delete_counter), [`clear`](Self::clear) or its TTL. A missing
    /// counter or field starts at 0. Concurrent increments never lose an update, and another
    /// reader sees either none or all of one call's deltas.
    ///
    /// - [`CounterOptions::ttl`] sets (or refreshes) the counter's time to live on every
    ///   increment; without it the counter keeps the lifetime it has (none, for a new one).
    /// - [`CounterOptions::idempotency`] applies the call at most once per id and counter
    ///   within the id's window: a repeat, even a concurrent one, changes nothing and returns
    ///   [`CounterUpdate::applied`] `false` with the current values. The marker of an id lives
    ///   for its window, whatever happens to the counter meanwhile.
    /// - Bad input is an [`Error::Validation`] before anything changes: an empty key, field
    ///   or id, no deltas, a field given twice, a zero TTL or window; and a delta that would
    ///   overflow an `i64` (`field` = `"delta"`), in which case no field of the call changes.
    ///
    /// Backends that keep no counters answer [`Error::Unsupported`] (the default, so that a
    /// store written before counters existed still compiles). A [`TieredStore`] keeps its
    /// counters in its shared tier (L2) only.
    async fn increment(
        &self,
        key: &str,
        deltas: &[(&str, i64)],
        options: &CounterOptions,
    ) -> Result<CounterUpdate> {
        let _ = (key, deltas, options);
        Err(Error::unsupported("counters", self.backend()))
    }

    /// Creates the counter `key` with the values of `fields` if it does not exist, and marks
    /// [`CounterInit::applied`]'s ids as applied to it, in one atomic step; a counter that
    /// exists is left as it is, and no id is marked then. Returns
    /// [`CounterUpdate::applied`] `true` when this call created the counter, and the values
    /// of `fields` after the call (the given ones, or the existing counter's).
    ///
    /// Made to rebuild a counter from a source of truth (an event log) when it is missing:
    /// compute the values and the ids of the events they include, then initialise. Increments
    /// that race with the rebuild are exact when they use [`CounterOptions::existing_only`]
    /// (on a missing counter, rebuild, then increment again): none lands before the counter
    /// exists, so whichever initialisation wins is the base every increment adds to, and an
    /// increment under an id the winner included is a repeat. On Redis, one script over the
    /// counter and its markers, which share the counter's hash tag (one cluster slot).
    ///
    /// [`Error::Validation`] before anything changes for an empty key, no fields, an empty or
    /// repeated field, a zero TTL, an empty id, or ids with a zero window. Backends that keep
    /// no counters answer [`Error::Unsupported`] (the default).
    async fn init_counter(
        &self,
        key: &str,
        fields: &[(&str, i64)],
        init: &CounterInit,
    ) -> Result<CounterUpdate> {
        let _ = (key, fields, init);
        Err(Error::unsupported("counters", self.backend()))
    }

    /// Every field of the counter `key` and its value; empty when there is no such counter
    /// (never created, deleted or expired).
    async fn counter(&self, key: &str) -> Result<BTreeMap<String, i64>> {
        let _ = key;
        Err(Error::unsupported("counters", self.backend()))
    }

    /// Removes the counter `key`; returns whether it existed. Idempotency markers stay for
    /// their window (an id already counted is not counted again).
    async fn delete_counter(&self, key: &str) -> Result<bool> {
        let _ = key;
        Err(Error::unsupported("counters", self.backend()))
    }

    /// The memory the server behind this store uses and may use ([`ServerMemory`]), one
    /// round trip; `None` for a store without a server of its own (in process, the default).
    /// A [`TieredStore`] answers for its shared tier (L2).
    async fn server_memory(&self) -> Result<Option<ServerMemory>> {
        Ok(None)
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<S: CacheStore + ?Sized> CacheStore for $ty {
            fn backend(&self) -> &'static str {
                (**self).backend()
            }
            async fn get(&self, key: &str) -> Result<Option<Bytes>> {
                (**self).get(key).await
            }
            async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
                (**self).get_many(keys).await
            }
            async fn set(&self, key: &str, value: Bytes, options: &EntryOptions) -> Result<()> {
                (**self).set(key, value, options).await
            }
            async fn set_many(&self, entries: &[(&str, Bytes)], options: &EntryOptions) -> Result<()> {
                (**self).set_many(entries, options).await
            }
            async fn delete(&self, key: &str) -> Result<bool> {
                (**self).delete(key).await
            }
            async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
                (**self).invalidate_pattern(pattern).await
            }
            async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>> {
                (**self).invalidate_tag(tag).await
            }
            async fn clear(&self) -> Result<()> {
                (**self).clear().await
            }
            fn evictions(&self) -> u64 {
                (**self).evictions()
            }
            async fn increment(
                &self,
                key: &str,
                deltas: &[(&str, i64)],
                options: &CounterOptions,
            ) -> Result<CounterUpdate> {
                (**self).increment(key, deltas, options).await
            }
            async fn init_counter(
                &self,
                key: &str,
                fields: &[(&str, i64)],
                init: &CounterInit,
            ) -> Result<CounterUpdate> {
                (**self).init_counter(key, fields, init).await
            }
            async fn counter(&self, key: &str) -> Result<BTreeMap<String, i64>> {
                (**self).counter(key).await
            }
            async fn delete_counter(&self, key: &str) -> Result<bool> {
                (**self).delete_counter(key).await
            }
            async fn server_memory(&self) -> Result<Option<ServerMemory>> {
                (**self).server_memory().await
            }
        }
    )*};
}
forward_store!(Arc<S>, Box<S>);

/// Rejects an empty key the same way on every backend.
#[inline]
pub(crate) fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::validation("key", "must not be empty"));
    }
    Ok(())
}

/// Whether `text` matches the glob `pattern` (`*` any run, `?` one character, all else literal).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with backtracking to the last `*`: linear in practice, no recursion.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_matches_like_redis_for_star_and_question_mark() {
        assert!(glob_match("user:*", "user:1"));
        assert!(glob_match("user:*", "user:"));
        assert!(!glob_match("user:*", "users:1"));
        assert!(glob_match("*:profile", "user:1:profile"));
        assert!(glob_match("u?er:*:p*", "user:1:profile"));
        assert!(!glob_match("u?er", "uer"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("[x]", "[x]"));
    }
}
