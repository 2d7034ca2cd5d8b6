//! Traffic of one account: requests per endpoint, responses per status, 503s sent by the
//! rate limiter, injected faults, and the busiest one-second window. The rate limiter's
//! window lives here too so that counting and limiting see the same arrivals.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::rate_limit::SlidingWindow;

/// A point-in-time copy of the counters (also the JSON of `GET /_sim/counters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// Every API request that reached the account (controls excluded).
    pub total: u64,
    /// Requests per endpoint, keyed `"GET /api/v5/orders/{id}"` (`"other"` for unknown paths).
    pub requests: BTreeMap<String, u64>,
    /// Responses per HTTP status (as a string key).
    pub responses: BTreeMap<String, u64>,
    /// 503s sent by the rate limiter.
    pub rate_limited: u64,
    /// Requests hit by an injected fault (error, hang or latency).
    pub faults_injected: u64,
    /// The most requests seen in any sliding one-second window (rejected ones included).
    pub max_per_second: usize,
}

#[derive(Debug, Default)]
struct Inner {
    snapshot: CountersSnapshot,
    window: SlidingWindow,
}

/// The account's counters and rate-limit window.
#[derive(Debug, Default)]
pub struct Traffic {
    inner: Mutex<Inner>,
}

impl Traffic {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way that
        // matters to tests, so a poisoned lock is simply taken over.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an arrival on `endpoint`; returns whether the rate limit lets it through.
    pub fn arrive(&self, endpoint: &str, limit: u32) -> bool {
        let mut inner = self.lock();
        let allowed = inner.window.arrive(Instant::now(), limit);
        let max = inner.window.max_seen();
        let s = &mut inner.snapshot;
        s.total += 1;
        *s.requests.entry(endpoint.to_owned()).or_default() += 1;
        s.max_per_second = max;
        if !allowed {
            s.rate_limited += 1;
        }
        allowed
    }

    /// Counts a response status.
    pub fn responded(&self, status: u16) {
        *self
            .lock()
            .snapshot
            .responses
            .entry(status.to_string())
            .or_default() += 1;
    }

    /// Counts a request hit by an injected fault.
    pub fn fault(&self) {
        self.lock().snapshot.faults_injected += 1;
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> CountersSnapshot {
        self.lock().snapshot.clone()
    }

    /// Zeroes the counters (the limiter keeps the arrivals of the current second).
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.window.reset_max();
        let max = inner.window.max_seen();
        inner.snapshot = CountersSnapshot {
            max_per_second: max,
            ..CountersSnapshot::default()
        };
    }
}
