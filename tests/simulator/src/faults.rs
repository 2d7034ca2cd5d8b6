//! Injected faults: latency, error statuses and hangs on a path prefix, for the next N
//! matching requests and/or a fraction of them (drawn from a seeded generator, so a run is
//! reproducible).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::ErrorBody;

/// What a fault does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Answer with this status instead of the real response.
    Status {
        /// HTTP status (503, 500, 502, 429, …).
        code: u16,
        /// JSON (`{"success":false,"errorMsg":…}`) or an HTML error page.
        #[serde(default)]
        body: ErrorBody,
    },
    /// Delay the request, then serve it normally.
    Latency {
        /// Milliseconds to wait.
        ms: u64,
    },
    /// Never answer (until the client gives up or the simulator stops).
    Hang,
}

/// One fault rule (also the body of `POST /_sim/faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Requests whose path starts with this (default `/api/`).
    #[serde(default = "api_prefix")]
    pub path_prefix: String,
    /// What to do.
    pub action: FaultAction,
    /// Only the next N matching requests that it hits; `None` = until cleared.
    #[serde(default)]
    pub count: Option<u32>,
    /// Probability of hitting a matching request; `None` = every one.
    #[serde(default)]
    pub fraction: Option<f64>,
}

fn api_prefix() -> String {
    "/api/".to_owned()
}

impl FaultRule {
    /// A rule hitting the next `count` requests under `path_prefix` with `action`.
    pub fn next(path_prefix: &str, count: u32, action: FaultAction) -> Self {
        Self {
            path_prefix: path_prefix.to_owned(),
            action,
            count: Some(count),
            fraction: None,
        }
    }
}

/// What the faults decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Decision {
    /// Total injected delay.
    pub latency: Duration,
    /// An error or hang instead of the real answer.
    pub outcome: Option<FaultAction>,
}

impl Decision {
    /// Whether any fault hit.
    pub fn hit(&self) -> bool {
        !self.latency.is_zero() || self.outcome.is_some()
    }
}

/// The active rules of one account.
#[derive(Debug)]
pub struct Faults {
    rules: Vec<(u64, FaultRule)>,
    next_id: u64,
    rng: StdRng,
}

impl Faults {
    /// No rules; `seed` drives the fractions.
    pub fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            next_id: 1,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Adds a rule; returns its id.
    pub fn add(&mut self, rule: FaultRule) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.rules.push((id, rule));
        id
    }

    /// Removes one rule; `false` if it was not there (or already used up).
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(i, _)| *i != id);
        self.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The active rules with their ids.
    pub fn list(&self) -> Vec<(u64, FaultRule)> {
        self.rules.clone()
    }

    /// Decides the faults for a request to `path`. Latency rules add up; the first error or
    /// hang rule that hits wins. Counts go down only for rules that hit.
    pub fn decide(&mut self, path: &str) -> Decision {
        let mut decision = Decision::default();
        for (_, rule) in &mut self.rules {
            if !path.starts_with(&rule.path_prefix) {
                continue;
            }
            let terminal = !matches!(rule.action, FaultAction::Latency { .. });
            if terminal && decision.outcome.is_some() {
                continue;
            }
            if let Some(p) = rule.fraction
                && !self.rng.random_bool(p.clamp(0.0, 1.0))
            {
                continue;
            }
            match rule.action {
                FaultAction::Latency { ms } => decision.latency += Duration::from_millis(ms),
                action => decision.outcome = Some(action),
            }
            if let Some(n) = &mut rule.count {
                *n = n.saturating_sub(1);
            }
        }
        self.rules.retain(|(_, r)| r.count != Some(0));
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E503: FaultAction = FaultAction::Status {
        code: 503,
        body: ErrorBody::Html,
    };

    #[test]
    fn next_n_requests_then_nothing() {
        let mut f = Faults::new(1);
        f.add(FaultRule::next("/api/v5/orders", 2, E503));
        assert_eq!(f.decide("/api/v5/users").outcome, None);
        assert_eq!(f.decide("/api/v5/orders/history").outcome, Some(E503));
        assert_eq!(f.decide("/api/v5/orders").outcome, Some(E503));
        assert_eq!(f.decide("/api/v5/orders").outcome, None);
        assert!(f.list().is_empty());
    }

    #[test]
    fn latency_adds_up_and_first_error_wins() {
        let mut f = Faults::new(1);
        f.add(FaultRule::next("/api/", 5, FaultAction::Latency { ms: 30 }));
        f.add(FaultRule::next("/api/", 5, FaultAction::Latency { ms: 20 }));
        f.add(FaultRule::next("/api/", 1, FaultAction::Hang));
        f.add(FaultRule::next("/api/", 1, E503));
        let d = f.decide("/api/v5/orders");
        assert_eq!(d.latency, Duration::from_millis(50));
        assert_eq!(d.outcome, Some(FaultAction::Hang));
        assert_eq!(f.decide("/api/v5/orders").outcome, Some(E503));
    }

    #[test]
    fn fraction_hits_about_that_share() {
        let mut f = Faults::new(7);
        f.add(FaultRule {
            path_prefix: "/api/".into(),
            action: E503,
            count: None,
            fraction: Some(0.25),
        });
        let hits = (0..2000)
            .filter(|_| f.decide("/api/v5/orders").hit())
            .count();
        assert!((400..600).contains(&hits), "{hits}");
    }
}
