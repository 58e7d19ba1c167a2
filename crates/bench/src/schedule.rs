//! The open-loop arrival schedule: request `i` is due at `start + i / rate`, whatever happened
//! to earlier requests. Latency is measured from that intended time, so a stall in the server
//! (or in the load generator) shows up in the numbers instead of silently lowering the offered
//! load (no coordinated omission).

use std::time::Duration;

/// A constant-rate schedule of `count` requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub rate_per_sec: f64,
    pub count: u64,
}

impl Schedule {
    /// Enough requests to keep `rate_per_sec` for `duration` (at least one).
    pub fn for_duration(rate_per_sec: f64, duration: Duration) -> Schedule {
        assert!(
            rate_per_sec.is_finite() && rate_per_sec > 0.0,
            "rate must be positive"
        );
        let count = (rate_per_sec * duration.as_secs_f64()).floor().max(1.0) as u64;
        Schedule {
            rate_per_sec,
            count,
        }
    }

    /// Offset of request `i` from the start of the run.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate_per_sec)
    }

    /// How many requests are due at `elapsed` since the start (those with offset <= elapsed).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        ((elapsed.as_secs_f64() * self.rate_per_sec).floor() as u64 + 1).min(self.count)
    }

    pub fn span(&self) -> Duration {
        self.offset(self.count.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_requests_evenly_from_zero() {
        let s = Schedule::for_duration(200.0, Duration::from_secs(2));
        assert_eq!(s.count, 400);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(5));
        assert_eq!(s.offset(200), Duration::from_secs(1));
        assert_eq!(s.span(), Duration::from_millis(1995));
    }

    #[test]
    fn due_by_counts_requests_whose_time_has_come() {
        let s = Schedule::for_duration(1000.0, Duration::from_secs(1));
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_micros(999)), 1);
        assert_eq!(s.due_by(Duration::from_millis(1)), 2);
        assert_eq!(s.due_by(Duration::from_millis(10)), 11);
        assert_eq!(s.due_by(Duration::from_secs(60)), 1000);
    }

    #[test]
    fn tiny_runs_still_send_one_request() {
        let s = Schedule::for_duration(0.5, Duration::from_secs(1));
        assert_eq!(s.count, 1);
    }
}
