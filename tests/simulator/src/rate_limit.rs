//! The API's rate limit: more than N requests in any sliding one-second window are answered
//! with 503. Rejected requests still count as arrivals (the real limiter counts what reaches
//! it, so a client that retries without backing off stays locked out).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

/// Arrivals of the last second plus the busiest second seen.
#[derive(Debug, Default, Clone)]
pub struct SlidingWindow {
    arrivals: VecDeque<Instant>,
    max_seen: usize,
}

impl SlidingWindow {
    /// Registers an arrival at `now`; returns whether it is within `limit` (0 = no limit).
    pub fn arrive(&mut self, now: Instant, limit: u32) -> bool {
        while let Some(first) = self.arrivals.front() {
            if now.saturating_duration_since(*first) >= WINDOW {
                self.arrivals.pop_front();
            } else {
                break;
            }
        }
        self.arrivals.push_back(now);
        // Any busiest window can be slid to end at an arrival, so checking at arrivals finds it.
        self.max_seen = self.max_seen.max(self.arrivals.len());
        limit == 0 || self.arrivals.len() <= limit as usize
    }

    /// The most arrivals seen in any one-second window.
    pub fn max_seen(&self) -> usize {
        self.max_seen
    }

    /// Forgets the maximum (the arrivals of the current window stay, so the limit holds).
    pub fn reset_max(&mut self) {
        self.max_seen = self.arrivals.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eleventh_request_within_a_second_is_rejected() {
        let start = Instant::now();
        let mut w = SlidingWindow::default();
        for i in 0..10 {
            assert!(w.arrive(start + Duration::from_millis(i * 10), 10));
        }
        assert!(!w.arrive(start + Duration::from_millis(500), 10));
        // Rejected arrivals count: 11 in the window until the first one ages out.
        assert!(!w.arrive(start + Duration::from_millis(999), 10));
        assert_eq!(w.max_seen(), 12);
        // At 1.015 s the arrivals at 0, 10 ms have left the window; 10 remain + this one.
        assert!(!w.arrive(start + Duration::from_millis(1015), 10));
        // At 2 s everything older than 1 s is gone.
        assert!(w.arrive(start + Duration::from_millis(2100), 10));
    }

    #[test]
    fn zero_means_unlimited() {
        let start = Instant::now();
        let mut w = SlidingWindow::default();
        assert!((0..100).all(|_| w.arrive(start, 0)));
        assert_eq!(w.max_seen(), 100);
    }
}
