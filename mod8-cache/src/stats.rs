//! Counters kept by every [`Cache`](crate::Cache).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::OnceLock;

/// A snapshot of one cache's counters since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups not answered from the cache (absent, expired, undecodable or backend failing).
    pub misses: u64,
    /// Loader runs (one per stampede, however many callers waited on it).
    pub loads: u64,
    /// Loader runs that returned an error (never cached).
    pub load_errors: u64,
    /// Entries the backend dropped on its own (capacity or age; in-process tiers only), and
    /// idempotency markers the in-process tier forgot early for room.
    pub evictions: u64,
    /// Backend operations that failed and were treated as misses or skipped (fail-open).
    pub backend_errors: u64,
    /// Stored values that no longer decoded as the requested type (treated as misses).
    pub decode_errors: u64,
    /// Counter increments applied ([`Cache::increment`](crate::Cache::increment)).
    pub increments: u64,
    /// Idempotent counter increments skipped because their id was applied before.
    pub duplicate_increments: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }

    /// The counters in the Prometheus text format, each metric labelled `cache="<name>"`.
    ///
    /// ```
    /// let stats = mod8_cache::CacheStats { hits: 3, misses: 1, ..Default::default() };
    /// let text = stats.to_prometheus("recommendations");
    /// assert!(text.contains("mod8_cache_hits_total{cache=\"recommendations\"} 3"));
    /// assert!(text.contains("mod8_cache_hit_ratio{cache=\"recommendations\"} 0.75"));
    /// ```
    pub fn to_prometheus(&self, name: &str) -> String {
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        let counters = [
            ("hits", "Lookups answered from the cache.", self.hits),
            (
                "misses",
                "Lookups not answered from the cache.",
                self.misses,
            ),
            ("loads", "Loader runs.", self.loads),
            ("load_errors", "Loader runs that failed.", self.load_errors),
            (
                "evictions",
                "Entries evicted by capacity or age.",
                self.evictions,
            ),
            (
                "backend_errors",
                "Backend failures treated as misses.",
                self.backend_errors,
            ),
            (
                "decode_errors",
                "Stored values that no longer decoded.",
                self.decode_errors,
            ),
            ("increments", "Counter increments applied.", self.increments),
            (
                "duplicate_increments",
                "Idempotent counter increments skipped as repeats.",
                self.duplicate_increments,
            ),
        ];
        for (metric, help, value) in counters {
            let _ = writeln!(out, "# HELP mod8_cache_{metric}_total {help}");
            let _ = writeln!(out, "# TYPE mod8_cache_{metric}_total counter");
            let _ = writeln!(out, "mod8_cache_{metric}_total{{cache=\"{name}\"}} {value}");
        }
        let _ = writeln!(out, "# HELP mod8_cache_hit_ratio Hits over lookups.");
        let _ = writeln!(out, "# TYPE mod8_cache_hit_ratio gauge");
        let _ = writeln!(
            out,
            "mod8_cache_hit_ratio{{cache=\"{name}\"}} {}",
            self.hit_ratio()
        );
        out
    }
}

/// Which live counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Hits,
    Misses,
    Loads,
    LoadErrors,
    BackendErrors,
    DecodeErrors,
    Increments,
    DuplicateIncrements,
}

const COUNTERS: usize = 8;

/// One thread's counters, alone on its cache lines: 128 bytes, since x86 prefetches lines in
/// pairs and two threads' stripes must not share a pair.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; COUNTERS]);

/// The live counters behind [`CacheStats`], striped per thread so that counting a hit never
/// writes a cache line another thread writes.
///
/// Each thread that counts takes a slot of a process-wide table (see [`thread_slot`]) for as
/// long as it runs; no other live thread has that slot, so the thread is the only writer of
/// its stripe in every `Counters` and bumps it with a plain load and store (no locked
/// read-modify-write instruction). Threads beyond the table's size share one last stripe,
/// bumped with `fetch_add`. A snapshot sums the stripes: each stripe is exact, and a snapshot
/// taken after the counted operations (joined, awaited) sees all of them.
#[derive(Debug)]
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            stripes: (0..=slots().len()).map(|_| Stripe::default()).collect(),
        }
    }
}

impl Counters {
    pub(crate) fn snapshot(&self, evictions: u64) -> CacheStats {
        let mut sums = [0u64; COUNTERS];
        for stripe in self.stripes.iter() {
            for (sum, counter) in sums.iter_mut().zip(&stripe.0) {
                *sum = sum.wrapping_add(counter.load(Relaxed));
            }
        }
        let [hits, misses, loads, load_errors, backend_errors, decode_errors, increments, duplicate_increments] =
            sums;
        CacheStats {
            hits,
            misses,
            loads,
            load_errors,
            evictions,
            backend_errors,
            decode_errors,
            increments,
            duplicate_increments,
        }
    }

    #[inline]
    pub(crate) fn bump(&self, counter: Counter) {
        let index = counter as usize;
        match thread_slot() {
            Some(slot) => {
                // This thread is the only writer of its stripe (see the type's docs).
                let cell = &self.stripes[slot].0[index];
                cell.store(cell.load(Relaxed).wrapping_add(1), Relaxed);
            }
            None => {
                if let Some(shared) = self.stripes.last() {
                    shared.0[index].fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// The process-wide table of thread slots: `true` where a live thread holds the slot.
/// Four per available core (at least 16, at most 256), so worker and blocking-pool threads
/// usually each get one.
fn slots() -> &'static [AtomicBool] {
    static SLOTS: OnceLock<Box<[AtomicBool]>> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(4, usize::from);
        (0..(cores * 4).clamp(16, 256))
            .map(|_| AtomicBool::new(false))
            .collect()
    })
}

/// A thread's slot, given back when the thread exits.
struct SlotLease(usize);

impl Drop for SlotLease {
    fn drop(&mut self) {
        // From now on this thread counts on the shared stripe (its stripe is someone else's).
        SLOT.set(NO_SLOT);
        // Release: the next holder continues from this thread's counts.
        slots()[self.0].store(false, Release);
    }
}

/// [`SLOT`] before the thread's first count.
const UNSET: usize = usize::MAX;
/// [`SLOT`] of a thread without a slot of its own.
const NO_SLOT: usize = usize::MAX - 1;

thread_local! {
    /// This thread's slot: read on every count, so a plain constant-initialised cell (no lazy
    /// initialisation or destructor check on access).
    static SLOT: Cell<usize> = const { Cell::new(UNSET) };
    /// Holds the slot taken on the first count and gives it back at thread exit.
    static LEASE: RefCell<Option<SlotLease>> = const { RefCell::new(None) };
}

/// This thread's slot, or `None` when every slot is taken (or the thread is exiting).
#[inline]
fn thread_slot() -> Option<usize> {
    match SLOT.get() {
        UNSET => take_slot(),
        NO_SLOT => None,
        slot => Some(slot),
    }
}

#[cold]
fn take_slot() -> Option<usize> {
    // Acquire: see the counts the slot's previous thread stored before releasing it.
    let taken = slots()
        .iter()
        .position(|s| s.compare_exchange(false, true, Acquire, Relaxed).is_ok());
    let Some(slot) = taken else {
        SLOT.set(NO_SLOT);
        return None;
    };
    // Registering the lease fails only while the thread's locals are being destroyed: give
    // the slot back at once and count on the shared stripe.
    let lease = SlotLease(slot);
    match LEASE.try_with(|cell| cell.replace(Some(lease))) {
        Ok(_) => {
            SLOT.set(slot);
            Some(slot)
        }
        Err(_) => None,
    }
}
