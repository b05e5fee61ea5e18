//! The in-process (L1) store's memory overhead per entry, beyond the key and value bytes.
//!
//! A counting global allocator (`stats_alloc`) tracks the bytes the program has asked for and
//! not yet freed.
//! For each store (LRU, and LRU bounded by age) the example builds a store sized for `N`
//! entries, inserts `N` entries with a TTL (no tags, the common case) and reports
//!
//! ```text
//! (bytes allocated by the filled store − Σ(key bytes + value bytes)) / N
//! ```
//!
//! Everything the store holds is counted: the preallocated LRU list, the hash index, the key
//! and entry headers, and the `Arc` header of each value. It counts requested bytes, so it is
//! deterministic; the system allocator adds its own per-allocation bookkeeping on top (about
//! 8–16 bytes for each of the allocations per entry it also prints).
//!
//! Where it goes (64-bit): the entry's slot in its shard's dense array, 56 B (key `Box<str>`
//! 16, value `Arc<[u8]>` 16, deadline 8, pointer to tags and decoded value 8, referenced bit
//! padded to 8); the `Arc`'s counts, 16 B, plus padding of the value to 8 bytes; the shard's
//! hash index, 5 B per bucket (a `u32` position and a control byte) at most 7/8 full, rounded
//! up to a power of two: 6 to 11 B per entry depending on where a shard's count falls; and
//! room a shard's array has allocated but not used yet (it grows by doubling up to its share
//! of the capacity, then by eighths). About 86 B in all at 100 000 entries, 88 B at 10 000.
//!
//! A typed [`Cache`](mod8_cache::Cache) also keeps the value it decoded beside the bytes of
//! each entry it has read: the third line reports that, after one `Cache::get::<String>` of
//! every entry (a 40 B box holding the decoded value's `Arc` and the tags, the `Arc`'s 16 B of
//! counts, and the decoded `String` itself, a second copy of the payload).
//!
//! ```sh
//! cargo run -p mod8-cache --example l1_overhead            # N = 100 000
//! cargo run -p mod8-cache --example l1_overhead -- 10000   # another N
//! ```
#![allow(clippy::print_stdout)] // an example reports on stdout

use std::alloc::System;
use std::time::Duration;

use mod8_cache::{Bytes, Cache, CacheStore, EntryOptions, MemoryStore};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

// The system allocator with counters (`stats_alloc`: the workspace forbids `unsafe`, which a
// hand-written `GlobalAlloc` needs).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const VALUE_LEN: usize = 100;

#[derive(Clone, Copy)]
struct Report {
    store_bytes: usize,
    payload_bytes: usize,
    allocations: usize,
}

fn fill(store: impl FnOnce() -> MemoryStore, n: usize) -> (MemoryStore, Report) {
    let options = EntryOptions::ttl(Duration::from_secs(600));
    let region = Region::new(GLOBAL);
    let store = store();
    let mut payload_bytes = 0;
    for i in 0..n {
        // Built inside the measured region: the value's `Arc` allocation is the store's cost
        // (its header counts as overhead); the key is copied in and this `String` freed.
        let key = format!("user:{i:08}:profile");
        // A JSON string of VALUE_LEN bytes, so a typed cache can decode it.
        let mut json = vec![b'x'; VALUE_LEN];
        (json[0], json[VALUE_LEN - 1]) = (b'"', b'"');
        let value: Bytes = json.into();
        payload_bytes += key.len() + value.len();
        futures::executor::block_on(store.set(&key, value, &options)).expect("set");
    }
    // Live bytes and blocks: what was asked for in the region and not given back.
    let change = region.change();
    let report = Report {
        store_bytes: change.bytes_allocated - change.bytes_deallocated,
        payload_bytes,
        allocations: change.allocations - change.deallocations,
    };
    assert_eq!(store.len(), n, "the store must hold every entry");
    (store, report)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N must be a number"))
        .unwrap_or(100_000);
    println!(
        "L1 overhead per entry beyond key + value (N = {n}, keys of {} bytes, values of {VALUE_LEN} bytes, TTL set, no tags)",
        format!("user:{:08}:profile", 0).len()
    );
    println!("target: see BENCHMARKS.md at the repository root");
    for (name, build) in [
        (
            "lru (MemoryStore::lru)",
            Box::new(move || MemoryStore::lru(n)) as Box<dyn FnOnce() -> MemoryStore>,
        ),
        (
            "ttl (MemoryStore::ttl)",
            Box::new(move || MemoryStore::ttl(n, Duration::from_secs(300))),
        ),
    ] {
        let (store, r) = fill(build, n);
        report(name, &r, n);
        if name.starts_with("lru") {
            // The same store once a typed cache has read every entry.
            let region = Region::new(GLOBAL);
            let cache = Cache::new(store.clone());
            futures::executor::block_on(async {
                for i in 0..n {
                    let key = format!("user:{i:08}:profile");
                    let value: Option<String> = cache.get(&key).await.expect("get");
                    assert_eq!(value.map(|v| v.len()), Some(VALUE_LEN - 2));
                }
            });
            let change = region.change();
            let typed = Report {
                store_bytes: r.store_bytes + change.bytes_allocated - change.bytes_deallocated,
                allocations: r.allocations + change.allocations - change.deallocations,
                ..r
            };
            report("lru, decoded values kept", &typed, n);
            drop(cache);
        }
        drop(store);
    }
}

fn report(name: &str, r: &Report, n: usize) {
    let overhead = (r.store_bytes - r.payload_bytes) as f64 / n as f64;
    println!(
        "{name:26} store {:>11} B, key+value {:>11} B, overhead {overhead:6.1} B/entry, {:.2} allocations/entry",
        r.store_bytes,
        r.payload_bytes,
        r.allocations as f64 / n as f64,
    );
}
