//! Enforcing a profile's rate limits ([`crate::profile::rate_limit`]):
//! one store call per admitted request counts it against every limit that
//! applies, and the first limit exceeded refuses it with 429
//! `rate_limited` and `Retry-After` (the end of that limit's window).

use super::{AppError, AppState};
use crate::profile::rate_limit::FailMode;
use crate::profile::{CertificatePlan, Profile};

/// Counts `plan` against `profile`'s limits at `now` (Unix seconds);
/// `session_sent` says whether the request named its session. When the
/// store cannot count, the profile's `on_store_error` decides: closed
/// (503, the default) or open (admitted, with a warning).
pub(crate) async fn enforce(
    state: &AppState,
    profile: &Profile,
    plan: &CertificatePlan,
    session_sent: bool,
    now: i64,
) -> Result<(), AppError> {
    let limits = &profile.rate_limit;
    if !limits.any() {
        return Ok(());
    }
    // The configuration refuses limits without a store; with none, there
    // is nothing to count in.
    let Some(store) = state.ledger.store() else {
        return Ok(());
    };
    let counted = limits.counters(&profile.name, plan, session_sent, now);
    if counted.is_empty() {
        return Ok(());
    }
    let hits: Vec<_> = counted.iter().map(|c| c.hit.clone()).collect();
    let counts = match store.count(&hits).await {
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
