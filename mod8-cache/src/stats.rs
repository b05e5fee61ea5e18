//! Counters kept by every [`Cache`](crate::Cache).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Entries the backend dropped on its own (capacity or age; in-process tiers only).
    pub evictions: u64,
    /// Backend operations that failed and were treated as misses or skipped (fail-open).
    pub backend_errors: u64,
    /// Stored values that no longer decoded as the requested type (treated as misses).
    pub decode_errors: u64,
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

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) backend_errors: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, evictions: u64) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            loads: self.loads.load(Relaxed),
            load_errors: self.load_errors.load(Relaxed),
            evictions,
            backend_errors: self.backend_errors.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
}
