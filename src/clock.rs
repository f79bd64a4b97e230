//! Time from outside: every stage that asks "what time is it" asks a `Clock`, so the
//! daemon runs on the system clock and tests on a manual one they advance at will
//! (escalations, silence expiry and grouping waits without sleeping).

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex, PoisonError};

/// The system clock, or a manual clock shared by every clone of it.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// A clock that stands at `start` until advanced.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self::Manual(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            // A poisoned lock still holds a valid time: a test panicked elsewhere.
            Self::Manual(t) => *t.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Now as epoch milliseconds, the unit of the database's time columns.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Moves a manual clock forward; the system clock moves by itself.
    pub fn advance(&self, by: chrono::Duration) {
        if let Self::Manual(t) = self {
            let mut t = t.lock().unwrap_or_else(PoisonError::into_inner);
            *t += by;
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Self::Manual(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let start = DateTime::parse_from_rfc3339("2019-02-26T08:00:00Z").map(|t| t.to_utc()).ok();
        let Some(start) = start else { panic!("a valid test time") };
        let c = Clock::manual(start);
        let other = c.clone();
        assert_eq!(c.now(), start);
        other.advance(chrono::Duration::seconds(90));
        assert_eq!(c.now(), start + chrono::Duration::seconds(90));
        assert_eq!(c.now_ms(), start.timestamp_millis() + 90_000);
    }

    #[test]
    fn the_system_clock_is_not_manual() {
        let c = Clock::System;
        assert!(!c.is_manual());
        c.advance(chrono::Duration::days(1));
        assert!((c.now() - Utc::now()).num_seconds().abs() < 5);
    }
}
