//! The service's clock. Everything that decides by the time of day or compares stored times —
//! quiet hours, the reply window, outbox due times and leases, consent event times — reads it
//! here, so tests can move it (to 22:30 in a customer's time zone, then to the next morning)
//! while the service runs.
//!
//! [`Clock::system`] is the real clock. [`Clock::adjustable`] is the real clock plus an offset a
//! test sets: time keeps flowing (leases expire, backoffs elapse), only shifted.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A clock shared by every part of the service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Milliseconds added to the system time; always 0 for the system clock.
    offset_ms: Arc<AtomicI64>,
    adjustable: bool,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock.
    #[must_use]
    pub fn system() -> Self {
        Self {
            offset_ms: Arc::new(AtomicI64::new(0)),
            adjustable: false,
        }
    }

    /// The system clock plus an offset that [`Clock::set`] and [`Clock::advance`] change (tests).
    #[must_use]
    pub fn adjustable() -> Self {
        Self {
            offset_ms: Arc::new(AtomicI64::new(0)),
            adjustable: true,
        }
    }

    /// Now.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        if !self.adjustable {
            return now;
        }
        let offset = chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst));
        now.checked_add_signed(offset).unwrap_or(now)
    }

    /// Now, as stored.
    #[must_use]
    pub fn timestamp(&self) -> String {
        crate::store::timestamp(self.now())
    }

    /// Makes `now()` read `at` (then flow on from there). Ignored by the system clock.
    pub fn set(&self, at: DateTime<Utc>) {
        if self.adjustable {
            let offset = (at - Utc::now()).num_milliseconds();
            self.offset_ms.store(offset, Ordering::SeqCst);
        }
    }

    /// Moves the clock forward by `by`. Ignored by the system clock.
    pub fn advance(&self, by: std::time::Duration) {
        if self.adjustable {
            let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let clock = Clock::system();
        let far = Utc::now() + chrono::Duration::days(400);
        clock.set(far);
        assert!(clock.now() < far - chrono::Duration::days(399));
    }

    #[test]
    fn an_adjustable_clock_moves_and_keeps_flowing() {
        let clock = Clock::adjustable();
        let shared = clock.clone();
        let target = Utc::now() + chrono::Duration::hours(9);
        clock.set(target);
        let read = shared.now();
        assert!(
            (read - target).num_milliseconds().abs() < 1_000,
            "{read} vs {target}"
        );
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(shared.now() >= target + chrono::Duration::minutes(59));
    }
}
