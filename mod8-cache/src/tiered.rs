//! L1 in-process in front of any L2 (usually Redis), with separate TTLs, invalidation of both
//! tiers, and (with Redis) a pub/sub bus so other processes drop their L1 copies.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cache::WarnLimiter;
use crate::{
    validate_key, Bytes, CacheStore, CounterOptions, CounterUpdate, DynCacheStore, EntryOptions,
    Error, MemoryStore, Result,
};

const BACKEND: &str = "tiered";

/// An in-process [`MemoryStore`] (L1) in front of a shared store (L2).
///
/// - Reads try L1, then L2; an L2 hit fills L1 with the L1 TTL.
/// - Writes go to both; an entry's L1 TTL is the shorter of its own and the L1 TTL, so L1
///   copies stay short-lived while L2 keeps the full TTL.
/// - The L1 TTL is always finite ([`TieredStore::DEFAULT_L1_TTL`] when none is given): an L2
///   hit is copied into L1 without knowing how long L2 keeps the entry, so an unbounded copy
///   could outlive the entry in L2, and any invalidation this process did not hear about.
/// - Invalidation (key, pattern, tag, clear) clears both tiers, and with
///   [`TieredStore::with_redis`] (and [`TierOptions::pubsub`]) is published so every other
///   process drops its L1 copies.
/// - With Redis, L1 is flushed whenever the connection is re-established, since
///   invalidations published meanwhile were missed.
///
/// The bound on staleness across processes without the bus is the L1 TTL.
///
/// Counters ([`CacheStore::increment`]) go to L2 only and are never copied into L1: a count
/// is shared state, read where it is kept.
#[derive(Clone)]
pub struct TieredStore {
    inner: Arc<Inner>,
}

struct Inner {
    l1: MemoryStore,
    l2: DynCacheStore,
    /// How long an L1 copy lives at most (never unbounded, see the type's docs).
    l1_ttl: Duration,
    /// Rate-limits the warnings for L2 failures this store absorbs itself.
    warn: WarnLimiter,
    #[cfg(feature = "redis")]
    bus: Option<Bus>,
}

/// The Redis side of a tier: the reconnect-flush task, and with pub/sub the publishing half
/// of the invalidation bus and its listener. The tasks are aborted on drop.
#[cfg(feature = "redis")]
struct Bus {
    redis: crate::RedisStore,
    /// Whether invalidations are published ([`TierOptions::pubsub`]).
    publishes: bool,
    channel: String,
    origin: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The subscriber connection, closed with the bus.
    subscriber: Option<fred::clients::Client>,
}

#[cfg(feature = "redis")]
impl Drop for Bus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let (Some(sub), Ok(handle)) = (
            self.subscriber.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            handle.spawn(async move {
                let _ = fred::prelude::ClientLike::quit(&sub).await;
            });
        }
    }
}

/// What goes over the invalidation channel.
#[cfg(feature = "redis")]
#[derive(Debug, Serialize, Deserialize)]
struct Invalidation {
    origin: String,
    #[serde(flatten)]
    what: What,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum What {
    Keys { keys: Vec<String> },
    Pattern { pattern: String },
    Clear,
}

impl std::fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("l1", &self.inner.l1)
            .field("l2", &self.inner.l2.backend())
            .field("l1_ttl", &self.inner.l1_ttl)
            .finish()
    }
}

/// How a [`TieredStore`] bounds its L1 copies and, over Redis, keeps other processes' L1
/// copies in step.
///
/// ```
/// use mod8_cache::{MemoryStore, TierOptions, TieredStore};
/// use std::time::Duration;
///
/// let options = TierOptions::default().with_l1_ttl(Duration::from_secs(5));
/// let tiered = TieredStore::new(MemoryStore::lru(100), MemoryStore::lru(10_000), options);
/// assert_eq!(tiered.l1_ttl(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierOptions {
    /// How long an L1 copy lives at most (default [`TieredStore::DEFAULT_L1_TTL`]; zero means
    /// the default, never "unbounded").
    pub l1_ttl: Duration,
    /// With [`TieredStore::with_redis`]: publish invalidations on
    /// [`RedisStore::invalidation_channel`](crate::RedisStore::invalidation_channel) and apply
    /// other processes' ones, over one extra connection (default true). Without Redis there is
    /// no bus and this is ignored.
    pub pubsub: bool,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            l1_ttl: TieredStore::DEFAULT_L1_TTL,
            pubsub: true,
        }
    }
}

impl TierOptions {
    /// Sets how long an L1 copy lives at most (zero: [`TieredStore::DEFAULT_L1_TTL`]).
    #[must_use]
    pub fn with_l1_ttl(mut self, l1_ttl: Duration) -> Self {
        self.l1_ttl = l1_ttl;
        self
    }

    /// Sets whether invalidations go over Redis pub/sub (see [`TierOptions::pubsub`]).
    #[must_use]
    pub fn with_pubsub(mut self, pubsub: bool) -> Self {
        self.pubsub = pubsub;
        self
    }

    /// The L1 TTL in effect: never zero.
    fn effective_l1_ttl(&self) -> Duration {
        if self.l1_ttl.is_zero() {
            TieredStore::DEFAULT_L1_TTL
        } else {
            self.l1_ttl
        }
    }
}

impl TieredStore {
    /// How long L1 copies live when no L1 TTL is given: 30 s, the same as
    /// [`CacheConfig`](crate::CacheConfig)'s default.
    pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(30);

    /// `l1` in front of `l2`; L1 copies live at most [`TierOptions::l1_ttl`]. No
    /// cross-process bus: use [`TieredStore::with_redis`] for that.
    pub fn new(l1: MemoryStore, l2: impl CacheStore, options: TierOptions) -> Self {
        TieredStore {
            inner: Arc::new(Inner {
                l1,
                l2: Arc::new(l2),
                l1_ttl: options.effective_l1_ttl(),
                warn: WarnLimiter::new(),
                #[cfg(feature = "redis")]
                bus: None,
            }),
        }
    }

    /// `l1` in front of Redis, L1 copies living at most [`TierOptions::l1_ttl`], flushing L1
    /// on every reconnection and, with [`TierOptions::pubsub`], publishing invalidations on
    /// [`RedisStore::invalidation_channel`](crate::RedisStore::invalidation_channel) and
    /// applying other processes' ones (one extra connection). Must run inside a Tokio runtime.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub async fn with_redis(
        l1: MemoryStore,
        redis: crate::RedisStore,
        options: TierOptions,
    ) -> Result<Self> {
        use fred::prelude::EventInterface;

        let pubsub = options.pubsub;

        let channel = redis.invalidation_channel();
        let origin = uuid::Uuid::new_v4().simple().to_string();
        let mut tasks = Vec::new();
        // Subscribe first: nothing is spawned if this fails.
        let subscriber = if pubsub {
            Some(redis.subscriber(&channel).await?)
        } else {
            None
        };

        // Flush L1 on each reconnection of the data connection.
        let mut reconnects = redis.reconnections();
        let flush = l1.clone();
        tasks.push(tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            while let Ok(_) | Err(RecvError::Lagged(_)) = reconnects.recv().await {
                tracing::info!("redis reconnected: flushing the in-process tier");
                flush.clear_now();
            }
        }));

        if let Some(sub) = subscriber.clone() {
            let mut messages = sub.message_rx();
            let mut sub_reconnects = sub.reconnect_rx();
            let (l1_msgs, own, chan) = (l1.clone(), origin.clone(), channel.clone());
            tasks.push(tokio::spawn(async move {
                use fred::prelude::PubsubInterface;
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    tokio::select! {
                        message = messages.recv() => match message {
                            Ok(message) => {
                                let text = message.value.as_str().map(|s| s.to_string());
                                let parsed = text.as_deref().and_then(|t| serde_json::from_str::<Invalidation>(t).ok());
                                match parsed {
                                    Some(inv) if inv.origin == own => {}
                                    Some(inv) => apply(&l1_msgs, inv.what),
                                    None => tracing::warn!(channel = %chan, "ignoring a malformed invalidation message"),
                                }
                            }
                            // Missed messages: only a flush is safe.
                            Err(RecvError::Lagged(_)) => l1_msgs.clear_now(),
                            Err(RecvError::Closed) => break,
                        },
                        reconnect = sub_reconnects.recv() => match reconnect {
                            Ok(_) | Err(RecvError::Lagged(_)) => {
                                l1_msgs.clear_now();
                                if let Err(e) = sub.subscribe(chan.as_str()).await {
                                    tracing::warn!(error = %e, "could not resubscribe to the invalidation channel");
                                }
                            }
                            Err(RecvError::Closed) => break,
                        },
                    }
                }
                let _ = fred::prelude::ClientLike::quit(&sub).await;
            }));
        }

        Ok(TieredStore {
            inner: Arc::new(Inner {
                l1,
                l2: Arc::new(redis.clone()),
                l1_ttl: options.effective_l1_ttl(),
                warn: WarnLimiter::new(),
                bus: Some(Bus {
                    redis,
                    publishes: pubsub,
                    channel,
                    origin,
                    tasks,
                    subscriber,
                }),
            }),
        })
    }

    /// The in-process tier.
    pub fn l1(&self) -> &MemoryStore {
        &self.inner.l1
    }

    /// The shared tier.
    pub fn l2(&self) -> &DynCacheStore {
        &self.inner.l2
    }

    /// How long an L1 copy lives at most.
    pub fn l1_ttl(&self) -> Duration {
        self.inner.l1_ttl
    }

    fn l1_options(&self, options: &EntryOptions) -> EntryOptions {
        let l1_ttl = self.inner.l1_ttl;
        EntryOptions {
            ttl: Some(options.ttl.map_or(l1_ttl, |ttl| ttl.min(l1_ttl))),
            tags: options.tags.clone(),
        }
    }

    /// Publishes an invalidation for other processes; failures only delay them (bounded by
    /// their L1 TTL and their own reconnect flush), so they are logged, not returned.
    async fn publish(&self, what: What) {
        #[cfg(feature = "redis")]
        if let Some(bus) = self.inner.bus.as_ref().filter(|b| b.publishes) {
            let message = Invalidation {
                origin: bus.origin.clone(),
                what,
            };
            if let Ok(text) = serde_json::to_string(&message) {
                if let Err(e) = bus.redis.publish(&bus.channel, text).await {
                    tracing::warn!(error = %e, "could not publish a cache invalidation");
                }
            }
        }
        #[cfg(not(feature = "redis"))]
        let _ = what;
    }
}

#[cfg(feature = "redis")]
fn apply(l1: &MemoryStore, what: What) {
    match what {
        What::Keys { keys } => {
            l1.remove_now(keys.iter().map(String::as_str));
        }
        What::Pattern { pattern } => {
            l1.remove_matching(&pattern);
        }
        What::Clear => l1.clear_now(),
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl CacheStore for TieredStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        validate_key(key)?;
        if let Some(hit) = self.inner.l1.get_now(key) {
            return Ok(Some(hit));
        }
        let found = self.inner.l2.get(key).await?;
        if let Some(bytes) = &found {
            let options = self.l1_options(&EntryOptions::default());
            self.inner.l1.set(key, bytes.clone(), &options).await?;
        }
        Ok(found)
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let mut out = self.inner.l1.get_many(keys).await?;
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        let found = match self.inner.l2.get_many(&wanted).await {
            Ok(found) => found,
            Err(e @ Error::Validation { .. }) => return Err(e),
            Err(e) => {
                // The L1 hits are good answers: an L2 failure only turns the rest into misses
                // (fail-open, as `Cache` does for a whole failed batch).
                if let Some(suppressed) = self.inner.warn.allow() {
                    tracing::warn!(
                        backend = self.inner.l2.backend(),
                        error = %e,
                        suppressed,
                        "shared tier failed in get_many; serving the in-process hits only"
                    );
                }
                return Ok(out);
            }
        };
        let fill = self.l1_options(&EntryOptions::default());
        for (i, value) in missing.into_iter().zip(found) {
            if let Some(bytes) = &value {
                self.inner.l1.set(keys[i], bytes.clone(), &fill).await?;
            }
            out[i] = value;
        }
        Ok(out)
    }

    async fn set(&self, key: &str, value: Bytes, options: &EntryOptions) -> Result<()> {
        validate_key(key)?;
        options.validate()?;
        // L1 first: with L2 down the value is still served here (fail-open); the L1 TTL and the
        // reconnect flush bound how long the tiers can disagree.
        self.inner
            .l1
            .set(key, value.clone(), &self.l1_options(options))
            .await?;
        self.inner.l2.set(key, value, options).await
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], options: &EntryOptions) -> Result<()> {
        self.inner
            .l1
            .set_many(entries, &self.l1_options(options))
            .await?;
        self.inner.l2.set_many(entries, options).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let local = self.inner.l1.delete(key).await?;
        let shared = self.inner.l2.delete(key).await;
        self.publish(What::Keys {
            keys: vec![key.to_owned()],
        })
        .await;
        Ok(shared? || local)
    }

    async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        let local = self.inner.l1.invalidate_pattern(pattern).await?;
        let shared = self.inner.l2.invalidate_pattern(pattern).await;
        self.publish(What::Pattern {
            pattern: pattern.to_owned(),
        })
        .await;
        Ok(shared?.max(local))
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>> {
        let local = self.inner.l1.invalidate_tag(tag).await?;
        let shared = self.inner.l2.invalidate_tag(tag).await?;
        // L1 copies filled from L2 carry no tags: drop the keys L2 reported too.
        self.inner.l1.remove_now(shared.iter().map(String::as_str));
        let keys: BTreeSet<String> = local.into_iter().chain(shared).collect();
        let keys: Vec<String> = keys.into_iter().collect();
        self.publish(What::Keys { keys: keys.clone() }).await;
        Ok(keys)
    }

    async fn clear(&self) -> Result<()> {
        self.inner.l1.clear_now();
        let shared = self.inner.l2.clear().await;
        self.publish(What::Clear).await;
        shared
    }

    fn evictions(&self) -> u64 {
        self.inner.l1.evictions() + self.inner.l2.evictions()
    }

    /// Counters live in the shared tier only: an L1 copy would be a stale count the moment
    /// another process increments it, and an increment must be atomic where the count is.
    async fn increment(
        &self,
        key: &str,
        deltas: &[(&str, i64)],
        options: &CounterOptions,
    ) -> Result<CounterUpdate> {
        self.inner.l2.increment(key, deltas, options).await
    }

    /// Read from the shared tier (never cached in L1).
    async fn init_counter(
        &self,
        key: &str,
        fields: &[(&str, i64)],
        init: &crate::CounterInit,
    ) -> Result<CounterUpdate> {
        self.inner.l2.init_counter(key, fields, init).await
    }

    async fn counter(&self, key: &str) -> Result<std::collections::BTreeMap<String, i64>> {
        self.inner.l2.counter(key).await
    }

    async fn delete_counter(&self, key: &str) -> Result<bool> {
        self.inner.l2.delete_counter(key).await
    }

    /// The shared tier's server: the in-process tier is bounded by its capacity already.
    async fn server_memory(&self) -> Result<Option<crate::ServerMemory>> {
        self.inner.l2.server_memory().await
    }
}
