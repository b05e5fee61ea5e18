//! Per-caller rate limiting (GCRA, with `governor`'s keyed limiters).
//!
//! A request with a valid bearer token is counted against its token's subject (and scope), any
//! other request against the client's IP address; registrations (`POST /api/users`) against the
//! address, on a stricter quota of their own. Over the limit: 429 `rate_limited` with
//! `Retry-After` (whole seconds), counted in `mod8_http_rate_limited_total{route}`.
//!
//! The client address is the TCP peer's: behind a reverse proxy every unauthenticated caller
//! shares the proxy's address (forwarded headers are not trusted).
//!
//! State is bounded: callers whose bucket is full again are forgotten (every
//! [`SWEEP_EVERY`] checks, and every [`SATURATED_SWEEP_EVERY`] while
//! [`HttpLimits::max_tracked_callers`] are tracked); while that many are tracked, every request
//! is counted against one shared overflow bucket until some callers are forgotten.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::auth::Authenticated;
use crate::config::HttpLimits;
use crate::error::AppError;
use crate::App;

/// Checks between two sweeps of forgotten callers.
pub const SWEEP_EVERY: u64 = 4096;
/// Checks between two sweeps while the limiter tracks its maximum of callers.
pub const SATURATED_SWEEP_EVERY: u64 = 256;
const OVERFLOW_KEY: &str = "overflow";

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// The limiters of one router.
pub struct RateLimits {
    requests: Keyed,
    registrations: Keyed,
    max_keys: usize,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("tracked", &self.tracked())
            .finish_non_exhaustive()
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl RateLimits {
    /// Limiters with `limits`' quotas.
    pub fn new(limits: &HttpLimits) -> Self {
        let requests = Quota::per_second(nonzero(limits.requests_per_second))
            .allow_burst(nonzero(limits.request_burst));
        let registrations = Quota::per_minute(nonzero(limits.registrations_per_minute))
            .allow_burst(nonzero(limits.registration_burst));
        Self {
            requests: RateLimiter::dashmap(requests),
            registrations: RateLimiter::dashmap(registrations),
            max_keys: limits.max_tracked_callers.max(1),
            checks: AtomicU64::new(0),
        }
    }

    /// Callers currently tracked (both limiters).
    pub fn tracked(&self) -> usize {
        self.requests.len() + self.registrations.len()
    }

    /// `Ok` if `key` may make one more request on `limiter`, else the seconds to wait.
    fn check(&self, limiter: &Keyed, key: String) -> Result<(), u64> {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        // A sweep scans every tracked caller: when full, at most one per SATURATED_SWEEP_EVERY
        // checks, so a caller flooding with new keys cannot make every request pay for one.
        let saturated = limiter.len() >= self.max_keys;
        if n % SWEEP_EVERY == SWEEP_EVERY - 1
            || (saturated && n.is_multiple_of(SATURATED_SWEEP_EVERY))
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let key = if limiter.len() >= self.max_keys {
            OVERFLOW_KEY.to_owned()
        } else {
            key
        };
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            // Whole seconds, rounded up: retrying earlier would be refused again.
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

/// The middleware: authenticates the request once (the outcome goes into its extensions for
/// [`super::auth::Caller`]), picks the limiter and key, and answers 429 when over.
pub(super) async fn limit(
    State((app, limits)): State<(Arc<App>, Arc<RateLimits>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let authenticated = app.auth.authenticate(request.headers());
    let outcome = if route == "/api/users" && request.method() == Method::POST {
        limits.check(&limits.registrations, format!("addr:{address}"))
    } else {
        let key = match &authenticated {
            Ok(claims) => format!("{:?}:{}", claims.scope, claims.sub),
            Err(_) => format!("addr:{address}"),
        };
        limits.check(&limits.requests, key)
    };
    if let Err(retry_after_secs) = outcome {
        app.metrics.rate_limited(&route);
        return AppError::RateLimited { retry_after_secs }.into_response();
    }
    request
        .extensions_mut()
        .insert(Authenticated(authenticated));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_quota_a_caller_waits_and_others_do_not() {
        let limits = RateLimits::new(&HttpLimits {
            registrations_per_minute: 1,
            registration_burst: 2,
            ..HttpLimits::default()
        });
        let r = &limits.registrations;
        assert!(limits.check(r, "a".into()).is_ok());
        assert!(limits.check(r, "a".into()).is_ok());
        let wait = limits.check(r, "a".into()).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(limits.check(r, "b".into()).is_ok());
    }

    #[test]
    fn tracked_callers_are_bounded() {
        let limits = RateLimits::new(&HttpLimits {
            requests_per_second: 1,
            request_burst: 1,
            max_tracked_callers: 10,
            ..HttpLimits::default()
        });
        for i in 0..1000 {
            let _ = limits.check(&limits.requests, format!("k{i}"));
        }
        // At most the bound, plus the overflow bucket.
        assert!(limits.requests.len() <= 11, "{}", limits.requests.len());
    }
}
