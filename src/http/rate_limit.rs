//! Enforcing a profile's rate limits ([`crate::profile::rate_limit`]):
//! one store call per admitted request counts it against every limit that
//! applies (with an `Idempotency-Key`, the same call that takes the key's
//! lease), and the first limit exceeded refuses it with 429
//! `rate_limited` and `Retry-After` (the end of that limit's window).

use super::{AppError, AppState};
use crate::profile::rate_limit::{Counted, FailMode};
use crate::profile::{CertificatePlan, Profile};
use crate::store::{Counts, Hit};

/// The limits of `profile` that `plan` is counted against at `now` (Unix
/// seconds); `session_sent` says whether the request named its session.
/// None without limits, or without a store to count them in (the
/// configuration refuses limits without a store).
pub(crate) fn counters(
    state: &AppState,
    profile: &Profile,
    plan: &CertificatePlan,
    session_sent: bool,
    now: i64,
) -> Vec<Counted> {
    if !profile.rate_limit.any() || state.ledger.store().is_none() {
        return Vec::new();
    }
    profile
        .rate_limit
        .counters(&profile.name, plan, session_sent, now)
}

/// Refuses the request when it exceeds one of `counted`'s limits: with
/// `counts`, the store's answer when the idempotency lease was taken
/// together with the counts ([`crate::store::Store::begin_counting`]),
/// otherwise counting now. When the store cannot count, the profile's
/// `on_store_error` decides: closed (503, the default) or open (admitted,
/// with a warning).
pub(crate) async fn enforce(
    state: &AppState,
    profile: &Profile,
    counted: &[Counted],
    counts: Option<Counts>,
) -> Result<(), AppError> {
    let Some(store) = state.ledger.store().filter(|_| !counted.is_empty()) else {
        return Ok(());
    };
    let counts = match counts {
        Some(counts) => counts,
        None => store.count(&hits_of(counted)).await,
    };
    let limits = &profile.rate_limit;
    let counts = match counts {
        Ok(counts) => counts,
        Err(e) => match limits.on_store_error {
            FailMode::Closed => return Err(AppError::StoreUnavailable(e.to_string())),
            FailMode::Open => {
                tracing::warn!(
                    profile = %profile.name,
                    error = %e,
                    "rate limits not counted (the store is unavailable); admitted, as \
                     rate_limit.on_store_error = \"open\" says"
                );
                return Ok(());
            }
        },
    };
    // Of the limits exceeded, the one whose window ends last says when.
    let exceeded = counted
        .iter()
        .zip(&counts)
        .filter(|(c, &count)| count > c.rate.count)
        .map(|(c, _)| c)
        .max_by_key(|c| c.retry_after);
    match exceeded {
        None => Ok(()),
        Some(c) => Err(AppError::RateLimited {
            profile: profile.name.clone(),
            limit: c.name,
            rate: c.rate.to_string(),
            retry_after: c.retry_after,
        }),
    }
}

/// The store's counters of `counted`, in order.
pub(crate) fn hits_of(counted: &[Counted]) -> Vec<Hit> {
    counted.iter().map(|c| c.hit.clone()).collect()
}
