//! The per-thread front of [`MemoryStore`](crate::MemoryStore)'s typed hits: a small
//! direct-mapped table per thread that answers a repeated hit without touching the shared
//! table — no lock, no write to memory another thread reads.
//!
//! A typed hit on the shared table takes its shard's read lock: two atomic read-modify-writes
//! on the lock word, and when several threads read keys of one shard (a hot key) that word
//! bounces between their cores. The front keeps, per thread, the decoded values of keys this
//! thread hit more than once, each with the *write epoch* its shard had when the value was
//! copied out under the read lock. Every write to a shard (set, removal, eviction, expiry
//! sweep, invalidation, clear) bumps that shard's epoch while it holds the write lock, so a
//! front entry is used only while its shard has not been written since: a front hit is a
//! hash, a key comparison and a plain atomic load of the epoch. A thread that sees a
//! completed write (it made it, or synchronised with the thread that did) sees the new epoch
//! and goes to the shared table.
//!
//! What the front costs and bounds:
//! - `SLOTS` entries per thread that makes typed lookups (about 20 KiB), allocated on the
//!   thread's first typed hit; an entry keeps its value (an `Arc`) alive until it is replaced,
//!   so a thread holds at most `SLOTS` values that its stores may have dropped already.
//! - Admission: a key enters a slot on its second main-table hit in a row at that slot, so a
//!   walk over more keys than slots keeps using the shared table (one extra store per hit)
//!   instead of copying every value in and out.
//! - Recency needs nothing more: a front hit does not mark the entry as read in the shared
//!   table, but CLOCK's hand only moves under the shard's write lock, which moves the epoch
//!   on, so the first read after it goes to the shared table and marks the entry there. A key
//!   read between evictions is seen as read, as without the front.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{clock, Codec};

/// Entries per thread (a power of two).
const SLOTS: usize = 256;

/// A store's identity in the fronts: never 0, never reused within a process.
pub(crate) fn next_store_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What a looked-up value belongs to: its store, key (and the key's hash) and codec.
pub(crate) struct Origin<'a> {
    pub(crate) store: u64,
    pub(crate) hash: u64,
    pub(crate) key: &'a str,
    pub(crate) codec: Codec,
}

#[derive(Default)]
struct Entry {
    /// 0: empty.
    store: u64,
    hash: u64,
    key: Box<str>,
    codec: Option<Codec>,
    /// The shard's write epoch when `value` was copied out.
    epoch: u64,
    /// The entry's deadline on the `clock` scale; 0: none.
    expires_at: u64,
    value: Option<Arc<dyn Any + Send + Sync>>,
    /// Admission: `(store, hash)` of the last key the shared table answered at this slot.
    candidate: (u64, u64),
}

impl Entry {
    /// Whether this entry is `origin`'s key in `origin`'s store (whatever its codec).
    #[inline]
    fn holds(&self, origin: &Origin<'_>) -> bool {
        self.store == origin.store
            && self.hash == origin.hash
            && same_key(self.key.as_bytes(), origin.key.as_bytes())
    }
}

thread_local! {
    static FRONT: RefCell<Option<Box<[Entry]>>> = const { RefCell::new(None) };
}

fn slot_of(hash: u64) -> usize {
    // The low bits: the shard is chosen from bits 32 and up.
    (hash as usize) & (SLOTS - 1)
}

/// The value of `origin` from this thread's front, viewed with `view`, if the front holds it
/// and `epoch` (the shard's current write epoch) is still the one it was copied at; `None`
/// sends the caller to the shared table.
#[inline]
pub(crate) fn get<R>(
    origin: &Origin<'_>,
    epoch: &AtomicU64,
    view: impl Fn(&Arc<dyn Any + Send + Sync>) -> Option<R>,
) -> Option<R> {
    FRONT
        .try_with(|front| {
            // A view that re-enters the cache (a `Clone` that reads it) finds the front
            // borrowed for reading only, which nests.
            let front = front.try_borrow().ok()?;
            let entry = front.as_ref()?.get(slot_of(origin.hash))?;
            if !entry.holds(origin)
                || entry.codec != Some(origin.codec)
                || entry.epoch != epoch.load(Ordering::Acquire)
                || (entry.expires_at != 0 && entry.expires_at <= clock::coarse_nanos())
            {
                return None;
            }
            view(entry.value.as_ref()?)
        })
        .ok()
        .flatten()
}

/// Whether two keys are equal: keys of up to 16 bytes (most cache keys) are compared as two
/// overlapping words each, in registers, instead of through a call to `memcmp`.
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Each slice below has exactly the array's length, so the conversions cannot fail (a
    // failure would only read as "not equal").
    let u64_at = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_ne_bytes)
    };
    let u32_at = |s: &[u8], i: usize| {
        s.get(i..i + 4)
            .and_then(|w| w.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    match n {
        8..=16 => {
            u64_at(a, 0).is_some_and(|x| Some(x) == u64_at(b, 0))
                && u64_at(a, n - 8).is_some_and(|x| Some(x) == u64_at(b, n - 8))
        }
        4..=7 => {
            u32_at(a, 0).is_some_and(|x| Some(x) == u32_at(b, 0))
                && u32_at(a, n - 4).is_some_and(|x| Some(x) == u32_at(b, n - 4))
        }
        _ => a == b,
    }
}

/// Offers a value the shared table just answered (under its shard's read lock, so `epoch`
/// is the shard's epoch for it): refreshes the slot if it holds the same key, takes the
/// slot if the same key was the last one offered there, else only notes the key.
pub(crate) fn offer(
    origin: &Origin<'_>,
    epoch: u64,
    expires_at: u64,
    value: &Arc<dyn Any + Send + Sync>,
) {
    let _ = FRONT.try_with(|front| {
        // Borrowed already: a view re-entered the cache; the front is left as it is.
        let Ok(mut front) = front.try_borrow_mut() else {
            return;
        };
        let front = front.get_or_insert_with(|| (0..SLOTS).map(|_| Entry::default()).collect());
        let Some(entry) = front.get_mut(slot_of(origin.hash)) else {
            return;
        };
        if !entry.holds(origin) {
            let candidate = (origin.store, origin.hash);
            if entry.candidate != candidate {
                entry.candidate = candidate;
                return;
            }
            entry.store = origin.store;
            entry.hash = origin.hash;
            entry.key = origin.key.into();
        }
        entry.codec = Some(origin.codec);
        entry.epoch = epoch;
        entry.expires_at = expires_at;
        if !entry.value.as_ref().is_some_and(|v| Arc::ptr_eq(v, value)) {
            entry.value = Some(value.clone());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn keys_compare_equal_exactly_when_their_bytes_do() {
        let keys: Vec<String> = (0_usize..=40)
            .flat_map(|n| {
                let base: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
                // The same length, differing in the first, a middle or the last byte.
                let mut variants = vec![base.clone()];
                for at in [0, n / 2, n.saturating_sub(1)] {
                    if n > 0 {
                        let mut bytes = base.clone().into_bytes();
                        bytes[at] = b'Z';
                        variants.push(String::from_utf8(bytes).unwrap_or_default());
                    }
                }
                variants
            })
            .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(same_key(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
            }
        }
    }
}
