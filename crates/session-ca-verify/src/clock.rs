//! Time as an injected dependency, so validity arithmetic is testable with a fixed clock.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

/// A source of the current time.
///
/// Certificates are stamped with whole seconds (X.509 `UTCTime` has no finer
/// resolution), so implementations return times truncated to the second.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, truncated to whole seconds.
    fn now(&self) -> OffsetDateTime;
}

/// A shareable clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_second(OffsetDateTime::now_utc())
    }
}

/// A clock that always returns the same instant (for tests and for `inspect --at`).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(OffsetDateTime);

impl FixedClock {
    /// A clock stopped at `at` (truncated to the second).
    pub fn new(at: OffsetDateTime) -> Self {
        Self(truncate_to_second(at))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

fn truncate_to_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_has_whole_seconds() {
        assert_eq!(SystemClock.now().nanosecond(), 0);
    }

    #[test]
    fn fixed_clock_truncates_and_stays() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_500_000_000).unwrap();
        let clock = FixedClock::new(at);
        assert_eq!(clock.now().unix_timestamp(), 1_700_000_000);
        assert_eq!(clock.now().nanosecond(), 0);
        assert_eq!(clock.now(), clock.now());
    }
}
