//! The in-process backend: a sharded hash table whose lookups take a shared (read) lock only,
//! CLOCK (second-chance) eviction, per-entry expiry checked on the coarse clock, and a slot
//! per entry for the value [`Cache`](crate::Cache) decoded from it.
//!
//! A lookup hashes the key (foldhash), picks a shard from the hash, takes that shard's
//! `RwLock` for reading, probes the shard's index, checks the deadline against the coarse
//! clock (see the `clock` module) and sets the entry's "referenced" bit if it is not set yet.
//! Nothing on that path writes memory another lookup reads, except the bit once per sweep.
//!
//! Typed hits that repeat on one thread are answered from that thread's front (the `front`
//! module) without the lock, for as long as the shard's write epoch stays where it was.
//!
//! Eviction is CLOCK: each shard keeps its entries in a dense array and a hand; when the full
//! store takes a new key, the hand of the key's shard walks its array, clearing referenced
//! bits and taking the first entry that was not referenced since the hand last passed it (or
//! that expired). That approximates least-recently-used without moving anything on a hit,
//! which is what lets a hit stay a read.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hashbrown::HashTable;
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::clock;
use crate::counter::{validate_increment, validate_init, CounterTable};
use crate::front::{self, Origin};
use crate::{
    glob_match, validate_key, Bytes, CacheStore, Codec, CounterInit, CounterOptions, CounterUpdate,
    EntryOptions, Error, Result,
};

const BACKEND: &str = "memory";

/// Entries per shard below which a store is not split further: small stores stay one shard,
/// so their eviction order is one CLOCK over every entry.
const MIN_SHARD_CAPACITY: usize = 256;
/// The most shards a store is split into.
const MAX_SHARDS: usize = 64;

/// An in-process cache: thread-safe, bounded by entry count (entries not read recently go
/// first) and, when built with [`MemoryStore::ttl`], by age.
///
/// - **Lookups** take a shared lock on one shard (of up to 64; a store of fewer than 512
///   entries is one shard) and write nothing but a "referenced" bit, so concurrent hits do not
///   serialise on each other.
/// - **Eviction** is CLOCK (second chance): once the store holds `capacity` entries, a new key
///   takes the place of an entry of its shard that was not read since the shard's hand last
///   passed it, expired ones first — close to least recently used, without reordering
///   anything on a hit. The capacity bounds the store as a whole (a store holds exactly
///   `capacity` distinct keys before it evicts), while the choice of what to evict is made
///   within one shard.
/// - **Expiry** is checked against the coarse monotonic clock (a few nanoseconds to read; it
///   advances once per kernel tick, 1 to 10 ms) while deadlines are set from the precise one:
///   an entry is never returned past its TTL by more than one tick and never dropped early.
/// - [`Cache`](crate::Cache) keeps the value it decoded from an entry's bytes beside them
///   (type-checked, per codec), so a typed hit is not decoded again; every write or
///   invalidation of the entry replaces or drops it with the bytes.
/// - A thread that hits the same key twice keeps the decoded value in a small table of its
///   own (256 entries per thread, shared by every store), valid while the key's shard is not
///   written: its later typed hits take no lock and write no shared memory, so a hot key read
///   from many threads does not bounce a lock between their cores. Any write to the shard
///   (from any thread) moves the shard's epoch on and sends the next read to the shared
///   table. Each such table keeps up to 256 values alive until they are replaced, even after
///   the store dropped them.
///
/// Every lock is held for O(1) work (pattern and tag invalidation walk the keys once), never
/// across an `.await`, so it is safe to use from async code. Cloning is cheap and shares the
/// same entries.
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
    /// This store in the per-thread fronts (see the `front` module).
    id: u64,
    shards: Box<[Padded<ShardLock>]>,
    /// `shards.len() - 1` (a power of two minus one).
    shard_mask: usize,
    hasher: foldhash::fast::RandomState,
    capacity: usize,
    max_age: Option<Duration>,
    /// Entries held, over all shards: the capacity bounds the store as a whole, so a shard
    /// whose keys hash more often than others' holds more than its share rather than evict
    /// early. Written by inserts of new keys and removals only (under their shard's lock).
    len: AtomicUsize,
    /// Taken before any shard lock, never while holding one.
    tags: Mutex<TagIndex>,
    evictions: AtomicU64,
    /// The counters ([`CacheStore::increment`]) and their idempotency markers: apart from the
    /// entries, never evicted for room; each call is atomic under this lock.
    counters: Mutex<CounterTable>,
}

/// A shard and its write epoch: bumped by every write lock taken, so a per-thread front
/// entry copied out at one epoch is known stale once the shard was written since.
struct ShardLock {
    lock: RwLock<Shard>,
    epoch: AtomicU64,
}

impl ShardLock {
    fn new(shard: Shard) -> Self {
        ShardLock {
            lock: RwLock::new(shard),
            epoch: AtomicU64::new(0),
        }
    }

    #[inline]
    fn read(&self) -> RwLockReadGuard<'_, Shard> {
        self.lock.read()
    }

    /// The write lock; the epoch moves on before anything under it can change.
    fn write(&self) -> RwLockWriteGuard<'_, Shard> {
        let guard = self.lock.write();
        self.epoch.fetch_add(1, Release);
        guard
    }
}

/// Keeps a shard's lock alone on its cache lines (128 bytes: x86 prefetches lines in pairs),
/// so readers of neighbouring shards do not bounce each other's lock word.
#[repr(align(128))]
struct Padded<T>(T);

/// tag → keys stored with it; pruned of dead keys when it grows past the entry bound.
#[derive(Default)]
struct TagIndex {
    tags: HashMap<String, HashSet<String>>,
    tagged_keys: usize,
}

struct Shard {
    /// Positions in `slots`, hashed by their key.
    index: HashTable<u32>,
    /// The entries, dense (a removal moves the last one into the hole).
    slots: Vec<Slot>,
    /// This shard's even share of the store's capacity: how far its room grows by doubling.
    share: usize,
    /// The CLOCK hand: the next position eviction looks at.
    hand: usize,
}

/// One entry: 56 bytes (checked below), since the overhead per entry beyond key and value has
/// a budget (see BENCHMARKS.md at the repository root; `examples/l1_overhead.rs` measures it).
struct Slot {
    /// Keys as `Box<str>`, not `String`: 8 bytes less per entry (no spare capacity to track).
    key: Box<str>,
    value: Bytes,
    /// The deadline on the `clock` module's scale; 0: no expiry.
    expires_at: u64,
    /// Tags and the decoded value, boxed so an entry with neither pays one thin pointer.
    extra: Option<Box<Extra>>,
    /// Read since the CLOCK hand last passed: spares the entry once.
    referenced: AtomicBool,
}

#[derive(Default)]
struct Extra {
    tags: Box<[String]>,
    decoded: Option<Decoded>,
}

/// A value [`Cache`](crate::Cache) decoded from the entry's bytes with `codec`.
struct Decoded {
    codec: Codec,
    value: Arc<dyn Any + Send + Sync>,
}

// Guard the budget above: a wider slot costs every entry of every L1.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Slot>() == 56);

impl Slot {
    fn tags(&self) -> &[String] {
        self.extra.as_deref().map_or(&[], |extra| &extra.tags[..])
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tags().iter().any(|t| t == tag)
    }

    fn expired_at(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }

    #[inline]
    fn expired(&self) -> bool {
        // Entries without a deadline (the common case in a plain LRU) never read the clock.
        self.expires_at != 0 && self.expires_at <= clock::coarse_nanos()
    }

    #[inline]
    fn touch(&self) {
        // Read before writing: once set, hits leave the cache line clean.
        if !self.referenced.load(Relaxed) {
            self.referenced.store(true, Relaxed);
        }
    }
}

/// What a typed lookup found in the store.
pub(crate) enum Found<R> {
    /// The decoded value, viewed as asked.
    Decoded(R),
    /// A live entry without a usable decoded value: its bytes.
    Encoded(Bytes),
    /// No live entry.
    Missing,
}

impl Shard {
    fn new(share: usize) -> Self {
        Shard {
            index: HashTable::new(),
            slots: Vec::new(),
            share,
            hand: 0,
        }
    }

    /// The position of `key`'s entry, live or not.
    #[inline]
    fn position(&self, hash: u64, key: &str) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| {
                slots
                    .get(i as usize)
                    .is_some_and(|slot| same_key(slot.key.as_bytes(), key.as_bytes()))
            })
            .map(|&i| i as usize)
    }

    /// `key`'s live entry, marked as read.
    #[inline]
    fn live(&self, hash: u64, key: &str) -> Option<&Slot> {
        let slot = &self.slots[self.position(hash, key)?];
        if slot.expired() {
            return None;
        }
        slot.touch();
        Some(slot)
    }

    /// Removes the entry at `position`, moving the last one into its place.
    fn remove_at(&mut self, hasher: &impl BuildHasher, hash: u64, position: usize) -> Slot {
        if let Ok(entry) = self.index.find_entry(hash, |&i| i as usize == position) {
            entry.remove();
        }
        let last = self.slots.len() - 1;
        let slot = self.slots.swap_remove(position);
        if position != last {
            let moved = hasher.hash_one(&*self.slots[position].key);
            if let Some(i) = self.index.find_mut(moved, |&i| i as usize == last) {
                *i = position as u32;
            }
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
        slot
    }

    /// Removes `key`'s entry, live or not.
    fn remove(&mut self, hasher: &impl BuildHasher, hash: u64, key: &str) -> Option<Slot> {
        let position = self.position(hash, key)?;
        Some(self.remove_at(hasher, hash, position))
    }

    /// The position CLOCK evicts: the first entry from the hand on that expired or was not read
    /// since the hand last passed it (clearing the bits it passes). At most one turn and one
    /// step, since a turn clears every bit.
    fn victim(&mut self) -> usize {
        let now = clock::coarse_nanos();
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let position = self.hand;
            self.hand += 1;
            let slot = &mut self.slots[position];
            if slot.expired_at(now) || !std::mem::replace(slot.referenced.get_mut(), false) {
                return position;
            }
        }
    }

    /// Replaces the entry of `slot`'s key if there is one; else hands `slot` back.
    fn replace(&mut self, hash: u64, slot: Slot) -> Option<Slot> {
        let Some(position) = self.position(hash, &slot.key) else {
            return Some(slot);
        };
        // A write is a use, as it would be in a least-recently-used list.
        slot.referenced.store(true, Relaxed);
        self.slots[position] = slot;
        None
    }

    /// Adds `slot` (a new key, room reserved in the store's count).
    fn push(&mut self, hasher: &impl BuildHasher, hash: u64, slot: Slot) {
        let Shard {
            index,
            slots,
            share,
            ..
        } = self;
        if slots.len() == slots.capacity() {
            // Doubling up to the shard's share of the capacity, then by an eighth: a full store
            // has little room allocated and unused, however unevenly its keys hash.
            let grown = slots.capacity();
            let want = if grown < *share {
                (grown * 2).max(4).min(*share)
            } else {
                grown + (grown / 8).max(4)
            };
            slots.reserve_exact(want - slots.len());
        }
        index.insert_unique(hash, slots.len() as u32, |&i| {
            hasher.hash_one(&*slots[i as usize].key)
        });
        slots.push(slot);
    }

    /// Puts `slot` (a new key) in the place of the entry CLOCK evicts (the shard is not empty).
    fn evict_for(&mut self, hasher: &impl BuildHasher, hash: u64, slot: Slot) {
        let position = self.victim();
        let old = hasher.hash_one(&*self.slots[position].key);
        if let Ok(entry) = self.index.find_entry(old, |&i| i as usize == position) {
            entry.remove();
        }
        self.slots[position] = slot;
        let Shard { index, slots, .. } = self;
        index.insert_unique(hash, position as u32, |&i| {
            hasher.hash_one(&*slots[i as usize].key)
        });
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.inner.capacity)
            .field("max_age", &self.inner.max_age)
            .field("shards", &self.inner.shards.len())
            .field("len", &self.len())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` entries (at least 1); entries expire only by their
    /// own TTL.
    pub fn lru(capacity: usize) -> Self {
        Self::build(capacity, None)
    }

    /// A store holding at most `capacity` entries, none older than `max_age`: an entry's
    /// effective TTL is the shorter of its own and `max_age`.
    pub fn ttl(capacity: usize, max_age: Duration) -> Self {
        Self::build(capacity, Some(max_age).filter(|d| !d.is_zero()))
    }

    fn build(capacity: usize, max_age: Option<Duration>) -> Self {
        let capacity = capacity.max(1);
        let count = prev_power_of_two((capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS));
        // Shares as equal as can be, adding up to `capacity` exactly.
        let shards = (0..count)
            .map(|i| {
                let share = capacity / count + usize::from(i < capacity % count);
                Padded(ShardLock::new(Shard::new(share)))
            })
            .collect();
        MemoryStore {
            inner: Arc::new(Inner {
                id: front::next_store_id(),
                shards,
                shard_mask: count - 1,
                hasher: foldhash::fast::RandomState::default(),
                capacity,
                max_age,
                len: AtomicUsize::new(0),
                tags: Mutex::new(TagIndex::default()),
                evictions: AtomicU64::new(0),
                counters: Mutex::new(CounterTable::default()),
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
        self.inner.len.load(Relaxed)
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Synchronous lookup, for callers outside async code and for the hot path of [`Cache`](crate::Cache).
    #[inline]
    pub fn get_now(&self, key: &str) -> Option<Bytes> {
        let hash = self.hash(key);
        let shard = self.shard(hash).read();
        shard.live(hash, key).map(|slot| slot.value.clone())
    }

    /// The decoded value kept beside `key`'s bytes when it was decoded with `codec` and `view`
    /// accepts it (`view` runs under the shard's read lock: keep it to a downcast and a clone),
    /// else the bytes.
    #[inline]
    pub(crate) fn get_decoded<R>(
        &self,
        key: &str,
        codec: Codec,
        view: impl Fn(&Arc<dyn Any + Send + Sync>) -> Option<R>,
    ) -> Found<R> {
        let hash = self.hash(key);
        let origin = Origin {
            store: self.inner.id,
            hash,
            key,
            codec,
        };
        let lock = self.shard(hash);
        if let Some(found) = front::get(&origin, &lock.epoch, &view) {
            return Found::Decoded(found);
        }
        let shard = lock.read();
        let Some(slot) = shard.live(hash, key) else {
            return Found::Missing;
        };
        let decoded = slot.extra.as_deref().and_then(|e| e.decoded.as_ref());
        if let Some(decoded) = decoded.filter(|d| d.codec == codec) {
            if let Some(found) = view(&decoded.value) {
                // Under the read lock: no write can move the epoch meanwhile.
                let epoch = lock.epoch.load(Relaxed);
                front::offer(&origin, epoch, slot.expires_at, &decoded.value);
                return Found::Decoded(found);
            }
        }
        Found::Encoded(slot.value.clone())
    }

    /// Keeps `value`, decoded from `bytes` with `codec`, beside `key`'s entry — if the entry
    /// still holds those very bytes (the same allocation): a write or invalidation since then
    /// replaced them, and the decoded value must not outlive them.
    pub(crate) fn keep_decoded(
        &self,
        key: &str,
        bytes: &Bytes,
        codec: Codec,
        value: Arc<dyn Any + Send + Sync>,
    ) {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).write();
        let Some(position) = shard.position(hash, key) else {
            return;
        };
        let slot = &mut shard.slots[position];
        if Arc::ptr_eq(&slot.value, bytes) {
            slot.extra.get_or_insert_with(Box::default).decoded = Some(Decoded { codec, value });
        }
    }

    /// Synchronous removal of every entry, counter and idempotency marker.
    pub fn clear_now(&self) {
        self.inner.counters.lock().clear();
        let mut tags = self.inner.tags.lock();
        for shard in self.inner.shards.iter() {
            let mut shard = shard.0.write();
            self.inner.len.fetch_sub(shard.slots.len(), Relaxed);
            shard.index.clear();
            shard.slots.clear();
            shard.hand = 0;
        }
        *tags = TagIndex::default();
    }

    /// Synchronous removal of the given keys; returns how many were present.
    pub fn remove_now<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> u64 {
        keys.into_iter()
            .filter(|key| self.remove_key(key).is_some())
            .count() as u64
    }

    /// Synchronous removal of every key matching the glob `pattern`; returns how many.
    pub fn remove_matching(&self, pattern: &str) -> u64 {
        let mut removed = 0u64;
        for shard in self.inner.shards.iter() {
            let mut shard = shard.0.write();
            let before = shard.slots.len();
            shard.slots.retain(|slot| !glob_match(pattern, &slot.key));
            if shard.slots.len() == before {
                continue;
            }
            removed += (before - shard.slots.len()) as u64;
            self.inner
                .len
                .fetch_sub(before - shard.slots.len(), Relaxed);
            // Positions moved: index them again.
            let Shard {
                index, slots, hand, ..
            } = &mut *shard;
            index.clear();
            for (i, slot) in slots.iter().enumerate() {
                let hash = self.inner.hasher.hash_one(&*slot.key);
                index.insert_unique(hash, i as u32, |&j| {
                    self.inner.hasher.hash_one(&*slots[j as usize].key)
                });
            }
            if *hand >= slots.len() {
                *hand = 0;
            }
        }
        removed
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    /// The shard of a hash: bits 32 and up, apart from the low bits a shard's index buckets by
    /// and the top 7 it tags its buckets with.
    #[inline]
    fn shard(&self, hash: u64) -> &ShardLock {
        &self.inner.shards[(hash >> 32) as usize & self.inner.shard_mask].0
    }

    fn remove_key(&self, key: &str) -> Option<Slot> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).write();
        let slot = shard.remove(&self.inner.hasher, hash, key)?;
        self.inner.len.fetch_sub(1, Relaxed);
        Some(slot)
    }

    /// The deadline of an entry stored now with `ttl`, bounded by the store's age bound.
    fn deadline(&self, ttl: Option<Duration>) -> u64 {
        let ttl = match (ttl, self.inner.max_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match ttl {
            None => 0,
            // A deadline past u64 nanoseconds (584 years) is "never" in practice.
            Some(ttl) => clock::deadline_nanos(ttl),
        }
    }

    fn insert(&self, key: &str, value: Bytes, options: &EntryOptions) {
        let expires_at = self.deadline(options.ttl);
        let hash = self.hash(key);
        let slot = |extra| Slot {
            key: key.into(),
            value,
            expires_at,
            extra,
            referenced: AtomicBool::new(false),
        };
        if options.tags.is_empty() {
            self.store(hash, slot(None));
            return;
        }
        // Tags first, then the shard: an invalidation of the tag holds the index throughout,
        // so it sees this entry either not yet stored or stored and indexed.
        let mut tags = self.inner.tags.lock();
        let extra = Extra {
            tags: options.tags.clone().into_boxed_slice(),
            decoded: None,
        };
        self.store(hash, slot(Some(Box::new(extra))));
        for tag in &options.tags {
            if tags
                .tags
                .entry(tag.clone())
                .or_default()
                .insert(key.to_owned())
            {
                tags.tagged_keys += 1;
            }
        }
        if tags.tagged_keys > self.inner.capacity.saturating_mul(2) + 64 {
            self.prune_tags(&mut tags);
        }
    }

    /// Stores `slot`: in place of its key's entry, else in room left in the store, else in
    /// place of an entry CLOCK evicts from the key's shard — or, when that shard is empty
    /// while the store is full, from another shard first.
    fn store(&self, hash: u64, slot: Slot) {
        let hasher = &self.inner.hasher;
        let mut slot = slot;
        loop {
            let mut shard = self.shard(hash).write();
            let Some(new) = shard.replace(hash, slot) else {
                return;
            };
            if self.reserve_one() {
                shard.push(hasher, hash, new);
                return;
            }
            if !shard.slots.is_empty() {
                shard.evict_for(hasher, hash, new);
                self.inner.evictions.fetch_add(1, Relaxed);
                return;
            }
            drop(shard);
            self.evict_elsewhere();
            slot = new;
        }
    }

    /// Takes room for one more entry in the store's count, if there is any.
    fn reserve_one(&self) -> bool {
        let capacity = self.inner.capacity;
        self.inner
            .len
            .fetch_update(Relaxed, Relaxed, |len| (len < capacity).then_some(len + 1))
            .is_ok()
    }

    /// Evicts one entry from the first non-empty shard (one shard lock at a time).
    fn evict_elsewhere(&self) {
        for shard in self.inner.shards.iter() {
            let mut shard = shard.0.write();
            if shard.slots.is_empty() {
                continue;
            }
            let position = shard.victim();
            let hash = self.inner.hasher.hash_one(&*shard.slots[position].key);
            shard.remove_at(&self.inner.hasher, hash, position);
            self.inner.len.fetch_sub(1, Relaxed);
            self.inner.evictions.fetch_add(1, Relaxed);
            return;
        }
    }

    /// Drops tag index entries whose key is gone or no longer carries the tag.
    fn prune_tags(&self, index: &mut TagIndex) {
        let TagIndex { tags, tagged_keys } = index;
        *tagged_keys = 0;
        tags.retain(|tag, keys| {
            keys.retain(|key| {
                let hash = self.hash(key);
                let shard = self.shard(hash).read();
                shard
                    .position(hash, key)
                    .is_some_and(|i| !shard.slots[i].expired() && shard.slots[i].has_tag(tag))
            });
            *tagged_keys += keys.len();
            !keys.is_empty()
        });
    }
}

/// Whether two keys are equal: short keys (the usual ones) compared inline, as two
/// overlapping words, instead of by a call to `memcmp`.
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    if (8..=16).contains(&len) {
        return word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8);
    }
    a == b
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
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
        Ok(keys.iter().map(|k| self.get_now(k)).collect())
    }

    async fn set(&self, key: &str, value: Bytes, options: &EntryOptions) -> Result<()> {
        validate_key(key)?;
        options.validate()?;
        self.insert(key, value, options);
        Ok(())
    }

    async fn set_many(&self, entries: &[(&str, Bytes)], options: &EntryOptions) -> Result<()> {
        entries.iter().try_for_each(|(k, _)| validate_key(k))?;
        options.validate()?;
        for (key, value) in entries {
            self.insert(key, value.clone(), options);
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        Ok(self.remove_key(key).is_some_and(|slot| !slot.expired()))
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
        let mut index = self.inner.tags.lock();
        let Some(keys) = index.tags.remove(tag) else {
            return Ok(Vec::new());
        };
        index.tagged_keys = index.tagged_keys.saturating_sub(keys.len());
        let mut removed = Vec::with_capacity(keys.len());
        for key in keys {
            let hash = self.hash(&key);
            let mut shard = self.shard(hash).write();
            // The key may have been overwritten since without this tag: leave it alone then.
            let Some(position) = shard.position(hash, &key) else {
                continue;
            };
            if shard.slots[position].has_tag(tag) {
                let slot = shard.remove_at(&self.inner.hasher, hash, position);
                self.inner.len.fetch_sub(1, Relaxed);
                if !slot.expired() {
                    removed.push(key);
                }
            }
        }
        drop(index);
        removed.sort();
        Ok(removed)
    }

    async fn clear(&self) -> Result<()> {
        self.clear_now();
        Ok(())
    }

    fn evictions(&self) -> u64 {
        // Entries dropped for room or age, and idempotency markers forgotten for room.
        self.inner.evictions.load(Relaxed) + self.inner.counters.lock().markers_evicted
    }

    async fn increment(
        &self,
        key: &str,
        deltas: &[(&str, i64)],
        options: &CounterOptions,
    ) -> Result<CounterUpdate> {
        validate_increment(key, deltas, options)?;
        // One lock over the existence check and the increment: atomic together.
        let mut counters = self.inner.counters.lock();
        if options.existing_only && !counters.exists(key) {
            return Ok(CounterUpdate::missing(deltas.len()));
        }
        let (applied, values) = counters.increment(key, deltas, options)?;
        Ok(CounterUpdate::new(applied, values))
    }

    async fn init_counter(
        &self,
        key: &str,
        fields: &[(&str, i64)],
        init: &CounterInit,
    ) -> Result<CounterUpdate> {
        validate_init(key, fields, init)?;
        let (created, values) = self.inner.counters.lock().init(key, fields, init);
        Ok(CounterUpdate::new(created, values))
    }

    async fn counter(&self, key: &str) -> Result<std::collections::BTreeMap<String, i64>> {
        validate_key(key)?;
        Ok(self.inner.counters.lock().read(key))
    }

    async fn delete_counter(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        Ok(self.inner.counters.lock().delete(key))
    }

    /// No server: the in-process store is bounded by its capacity.
    async fn server_memory(&self) -> Result<Option<crate::ServerMemory>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> EntryOptions {
        EntryOptions::default()
    }

    /// Every indexed position points at the entry of its own key, and the count agrees.
    fn assert_consistent(store: &MemoryStore) {
        let mut total = 0;
        for shard in store.inner.shards.iter() {
            let shard = shard.0.read();
            assert_eq!(shard.index.len(), shard.slots.len());
            for (i, slot) in shard.slots.iter().enumerate() {
                let hash = store.hash(&slot.key);
                assert_eq!(shard.position(hash, &slot.key), Some(i));
            }
            total += shard.slots.len();
        }
        assert_eq!(store.len(), total);
    }

    #[tokio::test]
    async fn a_sharded_store_holds_its_capacity_and_stays_consistent() {
        let store = MemoryStore::lru(2_048);
        assert!(store.inner.shards.len() > 1);
        for i in 0..2_048 {
            store
                .set(&format!("k{i}"), vec![1].into(), &opts())
                .await
                .unwrap();
        }
        // However unevenly the keys hash, the store holds all of them before evicting.
        assert_eq!((store.len(), store.evictions()), (2_048, 0));
        store
            .set("one more", vec![1].into(), &opts())
            .await
            .unwrap();
        assert_eq!((store.len(), store.evictions()), (2_048, 1));
        for i in 0..4_000 {
            store
                .set(&format!("j{i}"), vec![1].into(), &opts())
                .await
                .unwrap();
            if i % 3 == 0 {
                let _ = store.delete(&format!("j{}", i / 2)).await.unwrap();
            }
        }
        assert!(store.len() <= 2_048);
        assert_consistent(&store);
        let before = store.len() as u64;
        let removed = store.remove_matching("j1*");
        assert_eq!(store.len() as u64, before - removed);
        assert_consistent(&store);
        store.clear_now();
        assert_eq!(store.len(), 0);
        assert_consistent(&store);
    }

    #[tokio::test]
    async fn a_full_store_takes_a_key_of_an_empty_shard_by_evicting_elsewhere() {
        let store = MemoryStore::lru(512);
        assert_eq!(store.inner.shards.len(), 2);
        let shard_of = |key: &str| (store.hash(key) >> 32) as usize & store.inner.shard_mask;
        let keys = |shard: usize| {
            (0..)
                .map(|i| format!("k{i}"))
                .filter(move |k| shard_of(k) == shard)
        };
        for key in keys(0).take(512) {
            store.set(&key, vec![1].into(), &opts()).await.unwrap();
        }
        let other = keys(1).next().unwrap();
        store.set(&other, vec![2].into(), &opts()).await.unwrap();
        assert_eq!(store.get_now(&other).as_deref(), Some(&[2u8][..]));
        assert_eq!((store.len(), store.evictions()), (512, 1));
        assert_consistent(&store);
    }

    #[tokio::test]
    async fn a_decoded_value_goes_with_the_bytes_it_came_from() {
        let store = MemoryStore::lru(16);
        store
            .set("k", b"1".as_slice().into(), &opts())
            .await
            .unwrap();
        let old = store.get_now("k").unwrap();
        let view = |v: &Arc<dyn Any + Send + Sync>| v.downcast_ref::<u32>().copied();
        assert!(matches!(
            store.get_decoded("k", Codec::Json, view),
            Found::Encoded(_)
        ));
        store.keep_decoded("k", &old, Codec::Json, Arc::new(1u32));
        assert!(matches!(
            store.get_decoded("k", Codec::Json, view),
            Found::Decoded(1)
        ));
        // Another codec or type does not see it.
        assert!(matches!(
            store.get_decoded("k", Codec::MessagePack, view),
            Found::Encoded(_)
        ));
        let other = |v: &Arc<dyn Any + Send + Sync>| v.downcast_ref::<u64>().copied();
        assert!(matches!(
            store.get_decoded("k", Codec::Json, other),
            Found::Encoded(_)
        ));
        // A write drops it, and a late attach for the old bytes is refused.
        store
            .set("k", b"2".as_slice().into(), &opts())
            .await
            .unwrap();
        store.keep_decoded("k", &old, Codec::Json, Arc::new(1u32));
        assert!(matches!(
            store.get_decoded("k", Codec::Json, view),
            Found::Encoded(_)
        ));
    }
}
