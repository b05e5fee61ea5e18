//! Memoisation of pure functions with the `cached` crate's macro, where a whole [`Cache`](crate::Cache)
//! would be too much: a process-local, synchronous, typed table keyed by the arguments.
//!
//! `#[cached]` is re-exported so callers need no direct dependency on `cached`:
//!
//! ```
//! use mod8_cache::memo::cached;
//!
//! #[cached(max_size = 1_000)]
//! fn slow_square(n: u64) -> u64 {
//!     n * n
//! }
//! assert_eq!(slow_square(12), 144);
//! assert_eq!(slow_square(12), 144); // answered from the memo table
//! ```

pub use cached::macros::cached;

/// Fibonacci by naive recursion: exponential time, the baseline of the memoisation demo.
pub fn fibonacci_naive(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fibonacci_naive(n - 1).wrapping_add(fibonacci_naive(n - 2))
    }
}

/// Fibonacci with the same recursion, memoised by `#[cached]`: each `n` is computed once per
/// process, so the first call is linear and every later call is a table lookup.
#[cached]
pub fn fibonacci_memo(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fibonacci_memo(n - 1).wrapping_add(fibonacci_memo(n - 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoised_and_naive_agree() {
        for n in 0..25 {
            assert_eq!(fibonacci_memo(n), fibonacci_naive(n));
        }
        assert_eq!(fibonacci_memo(90), 2_880_067_194_370_816_120);
    }
}
