//! Work over many customers spread across cores with rayon (feature `parallel`, on by default).
//!
//! Two kinds of work are spread, and neither changes a single bit of the results:
//!
//! - **Predictions** ([`crate::ClvModel::predict_all`]): every distinct history, then every
//!   customer, is computed on its own by the same function as for one customer, so the parallel
//!   results are the sequential ones, in the same order.
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

/// Items below which [`try_map`] stays on the calling thread (spreading would cost more).
const SEQUENTIAL_BELOW: usize = 1_024;

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

/// `f` over every item, in order, stopping at the first error: spread over rayon's pool with
/// the `parallel` feature. On failure the error is the one of the first failing item (as a
/// sequential pass would report it), whichever thread met an error first.
pub(crate) fn try_map<T, R, E, F>(items: &[T], f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&T) -> Result<R, E> + Sync + Send,
{
    #[cfg(feature = "parallel")]
    if items.len() >= SEQUENTIAL_BELOW {
        use rayon::prelude::*;
        let all: Result<Vec<R>, E> = items.par_iter().map(&f).collect();
        if let Ok(all) = all {
            return Ok(all);
        }
        // Some item failed; which one rayon reported depends on timing, so find the first
        // failure the way the sequential path does (errors are the rare case).
    }
    items.iter().map(f).collect()
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

    #[test]
    fn try_map_keeps_order_and_reports_the_first_error() {
        let items: Vec<u32> = (0..50_000).collect();
        let doubled = try_map(&items, |&x| Ok::<_, String>(2 * x)).unwrap();
        assert_eq!(doubled, items.iter().map(|x| 2 * x).collect::<Vec<_>>());
        // Errors at 30,000 and at 40,000 and above: the first one wins, every time.
        for _ in 0..20 {
            let err = try_map(&items, |&x| {
                if x == 30_000 || x >= 40_000 {
                    Err(x)
                } else {
                    Ok(x)
                }
            })
            .unwrap_err();
            assert_eq!(err, 30_000);
        }
    }
}
