//! The in-process approximate nearest-neighbour index of the embedded backend.
//!
//! # Choice of crate
//!
//! The index is an HNSW graph from [`hnsw_rs`] (0.3). The candidates weighed:
//!
//! - **`hnsw_rs`**: pure Rust, released regularly, inserts into a built graph (`&self`, so
//!   products can be added one at a time as events arrive) and searches with a caller's
//!   filter (`search_filter`), which category / stock filters need. No deletion: an updated or
//!   archived product's old node is left in the graph as a tombstone the filter skips.
//! - **`instant-distance`**: pure Rust and small, but builds an immutable index in one go (no
//!   insertion, no filter), and its last release is from 2023.
//! - **`usearch`**: fast, with deletion and filters, but a C++ library built through `cxx`: a
//!   C++ toolchain on every build machine, the kind of surprise this workspace avoids.
//! - `hora`, `hnsw` (rust-cv): unmaintained for years.
//!
//! The graph is only ever built in one go (`parallel_insert`): products added or changed
//! afterwards wait in a small pending set that every search ranks exactly beside the graph's
//! answer, and the owner rebuilds the graph once that set (or the tombstones) grow.
//!
//! `hnsw_rs`'s own cosine and dot distances assert on rounding (`1 - dot >= 0`), which two
//! identical unit vectors can violate by an ulp; [`UnitCosine`] clamps instead.
//!
//! Every product's vector is also kept here (besides the graph's copy), so selective filters
//! and the exact reference rank in memory without going back to SQL.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;
use uuid::Uuid;

use crate::embedding::cosine_distance;

/// Links per node and layer (HNSW's `M`).
const MAX_CONNECTIONS: usize = 16;
/// Candidates explored while inserting (`ef_construction`). At 100,000 products (release
/// build, 2 cores) 100 built the graph in 72 s with recall@10 1.0000 against the exact
/// ranking; 200 took 142 s for the same recall.
const EF_CONSTRUCTION: usize = 100;
/// Layers of the graph.
const MAX_LAYERS: usize = 16;

/// Cosine distance of unit vectors, clamped at 0.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        cosine_distance(va, vb)
    }
}

/// An HNSW graph over product embeddings, plus the vectors themselves.
pub(crate) struct AnnIndex {
    graph: Hnsw<'static, f32, UnitCosine>,
    dimension: usize,
    /// Slot (the graph's data id) → product, `None` once superseded or removed.
    slots: Vec<Option<Uuid>>,
    /// Product → (its node in the graph, if any, and its vector).
    live: HashMap<Uuid, (Option<usize>, Vec<f32>)>,
    /// Products added or changed since the graph was built: ranked exactly beside the graph's
    /// answer until the next rebuild (the graph is only ever built in one go).
    pending: HashSet<Uuid>,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("dimension", &self.dimension)
            .field("live", &self.live.len())
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// A (distance, product) pair ordered by distance then id, for top-k heaps.
#[derive(PartialEq)]
struct Ranked(f32, Uuid);

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

/// The `k` smallest of `items` by distance (ties by id), nearest first.
pub(crate) fn top_k(items: impl Iterator<Item = (Uuid, f32)>, k: usize) -> Vec<(Uuid, f32)> {
    let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(k + 1);
    for (id, d) in items {
        if k == 0 {
            break;
        }
        if heap.len() < k {
            heap.push(Ranked(d, id));
        } else if let Some(worst) = heap.peek() {
            if Ranked(d, id) < *worst {
                heap.pop();
                heap.push(Ranked(d, id));
            }
        }
    }
    let mut out: Vec<(Uuid, f32)> = heap.into_iter().map(|Ranked(d, id)| (id, d)).collect();
    out.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    out
}

impl AnnIndex {
    /// Builds the index over `items` (vectors of `dimension`, unit length), inserting in
    /// parallel.
    pub(crate) fn build(dimension: usize, items: Vec<(Uuid, Vec<f32>)>) -> Self {
        let graph = Hnsw::new(
            MAX_CONNECTIONS,
            items.len().max(1024),
            MAX_LAYERS,
            EF_CONSTRUCTION,
            UnitCosine,
        );
        let mut index = AnnIndex {
            graph,
            dimension,
            slots: Vec::with_capacity(items.len()),
            live: HashMap::with_capacity(items.len()),
            pending: HashSet::new(),
        };
        let mut batch: Vec<(Uuid, Vec<f32>)> = Vec::with_capacity(items.len());
        for (id, v) in items {
            if v.len() != dimension {
                continue;
            }
            if let Some((Some(slot), _)) = index.live.remove(&id) {
                index.slots[slot] = None;
            }
            let slot = index.slots.len();
            index.slots.push(Some(id));
            index.live.insert(id, (Some(slot), Vec::new()));
            batch.push((id, v));
        }
        let with_slots: Vec<(&Vec<f32>, usize)> = batch
            .iter()
            .filter_map(|(id, v)| {
                index
                    .live
                    .get(id)
                    .and_then(|(slot, _)| slot.map(|slot| (v, slot)))
            })
            .collect();
        index.graph.parallel_insert(&with_slots);
        for (id, v) in batch {
            if let Some(entry) = index.live.get_mut(&id) {
                entry.1 = v;
            }
        }
        index
    }

    /// Live products.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether it is time to rebuild: superseded nodes outnumber live ones, or many products
    /// wait outside the graph.
    pub(crate) fn needs_rebuild(&self) -> bool {
        let dead = self.slots.len() - (self.live.len() - self.pending.len());
        (dead > 1024 && dead > self.live.len())
            || (self.pending.len() > 256 && self.pending.len() * 10 > self.live.len())
    }

    /// Adds or replaces a product's vector (its old node becomes a tombstone; the new vector
    /// is ranked exactly until the next rebuild).
    pub(crate) fn upsert(&mut self, id: Uuid, vector: Vec<f32>) {
        if vector.len() != self.dimension {
            return;
        }
        if let Some((slot, old)) = self.live.get(&id) {
            if *old == vector {
                return;
            }
            if let Some(slot) = *slot {
                self.slots[slot] = None;
            }
        }
        self.live.insert(id, (None, vector));
        self.pending.insert(id);
    }

    /// Takes a product out of the index.
    pub(crate) fn remove(&mut self, id: Uuid) {
        if let Some((Some(slot), _)) = self.live.remove(&id) {
            self.slots[slot] = None;
        }
        self.pending.remove(&id);
    }

    /// Approximate search: up to `k` live products nearest to `query`, skipping `exclude`
    /// and, when given, products not in `allowed`; nearest first.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&HashSet<Uuid>>,
        exclude: Option<Uuid>,
    ) -> Vec<(Uuid, f32)> {
        if k == 0 || self.live.is_empty() || query.len() != self.dimension {
            return Vec::new();
        }
        let filter = |slot: &usize| -> bool {
            match self.slots.get(*slot).copied().flatten() {
                Some(id) => Some(id) != exclude && allowed.is_none_or(|a| a.contains(&id)),
                None => false,
            }
        };
        let found = self.graph.search_filter(query, k, ef.max(k), Some(&filter));
        let mut out: Vec<(Uuid, f32)> = found
            .into_iter()
            .filter_map(|n| {
                self.slots
                    .get(n.d_id)
                    .copied()
                    .flatten()
                    .map(|id| (id, n.distance))
            })
            .collect();
        // Products not in the graph yet, ranked exactly, merged in.
        out.extend(self.pending.iter().filter_map(|id| {
            let wanted = Some(*id) != exclude && allowed.is_none_or(|a| a.contains(id));
            wanted
                .then(|| self.live.get(id))
                .flatten()
                .map(|(_, v)| (*id, cosine_distance(query, v)))
        }));
        top_k(out.into_iter(), k)
    }

    /// Exact search over the live products (or those of `allowed`).
    pub(crate) fn exact(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<Uuid>>,
        exclude: Option<Uuid>,
    ) -> Vec<(Uuid, f32)> {
        if query.len() != self.dimension {
            return Vec::new();
        }
        let distance = |id: &Uuid, v: &Vec<f32>| (*id, cosine_distance(query, v));
        match allowed {
            Some(allowed) => top_k(
                allowed
                    .iter()
                    .filter(|id| Some(**id) != exclude)
                    .filter_map(|id| self.live.get(id).map(|(_, v)| distance(id, v))),
                k,
            ),
            None => top_k(
                self.live
                    .iter()
                    .filter(|(id, _)| Some(**id) != exclude)
                    .map(|(id, (_, v))| distance(id, v)),
                k,
            ),
        }
    }

    /// Bytes held, estimated: vectors (ours and the graph's), the graph's links at `M` per
    /// layer (twice that on layer 0) and the maps.
    pub(crate) fn approx_memory_bytes(&self) -> usize {
        let vector = self.dimension * std::mem::size_of::<f32>();
        // Neighbour entries hold an Arc and a distance; the upper layers add ~1/(M-1) nodes.
        let link = std::mem::size_of::<usize>() * 2;
        let links_per_node = 2 * MAX_CONNECTIONS + MAX_CONNECTIONS / (MAX_CONNECTIONS - 1);
        let per_node = vector + links_per_node * link + 64;
        let per_live = vector + 16 + 48;
        self.slots.len() * (per_node + 17) + self.live.len() * per_live
    }
}
