//! Work over many customers spread across cores with rayon (feature `parallel`, on by default).
//!
//! Spreading the work does not change a single bit of the results:
//!
//! - **The fits' log-likelihood sums** ([`crate::BgNbd::fit`], [`crate::GammaGamma::fit`]): the
//!   distinct histories are cut into fixed chunks of [`CHUNK`] (boundaries that depend on the
//!   data only, never on the number of threads), each chunk is summed in order, and the chunk
//!   sums are added in chunk order. A fit therefore takes the same optimiser steps and returns
//!   the same parameters on one thread or many.
//!
//! The threads are rayon's: its global pool (one thread per core, or `RAYON_NUM_THREADS`), or
//! the pool a call runs in (`rayon::ThreadPool::install`). Without the feature everything runs
//! on the calling thread, chunked the same way. These are CPU-bound calls: from an async
//! runtime, run them on a blocking thread (`tokio::task::spawn_blocking`).

/// Histories per chunk of a likelihood sum: large enough that a chunk outweighs the cost of
/// handing it to a thread, small enough that a million distinct histories keep two cores busy.
pub(crate) const CHUNK: usize = 4_096;

/// `f(chunk_index, chunk)` for every [`CHUNK`]-sized chunk of `items`, in chunk order; on
/// rayon's pool with the `parallel` feature when there is more than one chunk.
pub(crate) fn map_chunks<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(usize, &[T]) -> R + Sync + Send,
{
    #[cfg(feature = "parallel")]
    if items.len() > CHUNK {
        use rayon::prelude::*;
        return items
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(i, chunk)| f(i, chunk))
            .collect();
    }
    items
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, chunk)| f(i, chunk))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_back_in_order_with_their_index() {
        let items: Vec<u32> = (0..(3 * CHUNK as u32 + 5)).collect();
        let firsts = map_chunks(&items, |i, chunk| (i, chunk[0], chunk.len()));
        assert_eq!(firsts.len(), 4);
        for (k, &(i, first, len)) in firsts.iter().enumerate() {
            assert_eq!(i, k);
            assert_eq!(first as usize, k * CHUNK);
            assert_eq!(len, if k < 3 { CHUNK } else { 5 });
        }
        assert!(map_chunks(&[] as &[u32], |_, c| c.len()).is_empty());
    }
}
