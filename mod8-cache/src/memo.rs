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
//!
//! A recursive function memoised this way reuses its own earlier answers: naive Fibonacci is
//! exponential, the memoised one computes each `n` once per process.
//!
//! ```
//! use mod8_cache::memo::cached;
//!
//! fn fibonacci_naive(n: u64) -> u64 {
//!     if n < 2 { n } else { fibonacci_naive(n - 1).wrapping_add(fibonacci_naive(n - 2)) }
//! }
//!
//! #[cached]
//! fn fibonacci_memo(n: u64) -> u64 {
//!     if n < 2 { n } else { fibonacci_memo(n - 1).wrapping_add(fibonacci_memo(n - 2)) }
//! }
//!
//! for n in 0..25 {
//!     assert_eq!(fibonacci_memo(n), fibonacci_naive(n));
//! }
//! assert_eq!(fibonacci_memo(90), 2_880_067_194_370_816_120);
//! ```

pub use cached::macros::cached;
