//! The clock of in-process deadlines: set from the precise monotonic clock, checked against the
//! coarse one.
//!
//! Reading the precise clock (`Instant::now`, `CLOCK_MONOTONIC`) costs about 20 ns on a
//! virtual machine, as much as the rest of a cache hit. On Linux (and FreeBSD) the hit path
//! reads `CLOCK_MONOTONIC_COARSE` instead: the same clock as of the last kernel tick (1 to
//! 10 ms ago), read from the vDSO in a few nanoseconds, with no thread of ours to keep it
//! ticking. A deadline is "set time (precise) + TTL" and an entry counts as expired once the
//! coarse reading reaches it; since the coarse reading never runs ahead of the precise one, an
//! entry is never dropped before its TTL and is returned at most one tick after it.
//!
//! Elsewhere both readings are `Instant` (precise), measured from a process-wide origin.

use std::time::Duration;

/// The deadline of something that lives `ttl` from now, in nanoseconds on this module's scale
/// (never 0, which callers use for "none").
pub(crate) fn deadline_nanos(ttl: Duration) -> u64 {
    let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
    imp::precise_nanos().saturating_add(ttl).max(1)
}

/// Now, in nanoseconds on this module's scale, possibly up to one kernel tick behind.
#[inline]
pub(crate) fn coarse_nanos() -> u64 {
    imp::coarse_nanos()
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
mod imp {
    use rustix::time::{clock_gettime, ClockId, Timespec};

    fn nanos(ts: Timespec) -> u64 {
        // Monotonic clocks count from boot: never negative, and u64 nanoseconds last 584 years.
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nsecs = u64::try_from(ts.tv_nsec).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
    }

    pub(super) fn precise_nanos() -> u64 {
        nanos(clock_gettime(ClockId::Monotonic))
    }

    #[inline]
    pub(super) fn coarse_nanos() -> u64 {
        nanos(clock_gettime(ClockId::MonotonicCoarse))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    fn since_origin() -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn precise_nanos() -> u64 {
        since_origin()
    }

    pub(super) fn coarse_nanos() -> u64 {
        since_origin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_never_reads_ahead_of_the_precise_one() {
        for _ in 0..10_000 {
            let coarse = coarse_nanos();
            assert!(coarse <= imp::precise_nanos());
        }
        assert!(deadline_nanos(Duration::MAX) == u64::MAX);
        assert!(deadline_nanos(Duration::ZERO) >= 1);
    }
}
