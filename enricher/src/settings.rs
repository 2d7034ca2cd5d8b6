//! [`EnricherSettings`]: everything the enricher needs to know, with defaults that suit a
//! production deployment (tests shorten the timings).

use std::net::SocketAddr;
use std::time::Duration;

use dealflow_shared::bus::DeadLetterCap;
use dealflow_shared::config::Config;
use dealflow_shared::retailcrm::{ClientOptions, MAX_IDS_PER_REQUEST};
use dealflow_shared::topics::Topics;
use dealflow_shared::wiring;
use secrecy::SecretString;

use crate::error::EnricherError;

/// Settings of one enricher.
#[derive(Debug, Clone)]
pub struct EnricherSettings {
    /// `/healthz`, `/readyz` and `/metrics` when the enricher runs alone; `None` when another
    /// listener serves them (all-in-one).
    pub listen: Option<SocketAddr>,
    /// Topic names.
    pub topics: Topics,
    /// `DEALFLOW_SECRET_KEY`: opens the sealed RetailCRM API keys.
    pub secret_key: SecretString,
    /// `DEALFLOW_SECRET_KEY_PREVIOUS`: while the secret is rotated, keys sealed with the old
    /// one still open (ingest seals them again at its start).
    pub secret_key_previous: Option<SecretString>,
    /// Consumer group on `order-changed` (default `{prefix}enricher`); replicas share it.
    pub consumer_group: String,
    /// Timeouts and retries of every RetailCRM client.
    pub client_options: ClientOptions,
    /// Orders per `GET /orders?filter[ids][]` call, 1 to 100.
    pub batch_size: usize,
    /// An account's batch starts once no new order change arrived for this long (a burst is
    /// over), so the changes of one burst share calls.
    pub batch_linger: Duration,
    /// ... or once its oldest waiting order waited this long, whatever keeps arriving. This
    /// bounds the latency under steady traffic (1,000 webhooks/s over 10 accounts never pause
    /// for `batch_linger`): 300 ms still puts 30 orders in a call at 100 changes/s per account
    /// (3 calls/s, well inside the budget), and a faster stream fills batches of 100 sooner.
    pub batch_max_wait: Duration,
    /// An order a list did not return (deleted or merged) is looked up by id when no live
    /// batch is due, or once it waited this long (then lookups alternate with live batches).
    pub unlisted_max_wait: Duration,
    /// Records taken from the bus per poll.
    pub poll_max_records: usize,
    /// How long one poll waits for records.
    pub poll_timeout: Duration,
    /// How often stored offsets are committed.
    pub commit_interval: Duration,
    /// Reference data (settings, statuses, groups, sites) is reloaded after this long, and
    /// at once when an order names a status or site it does not know.
    pub reference_ttl: Duration,
    /// First pause after an account's transient failure; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest pause between an account's retries.
    pub backoff_max: Duration,
    /// Consecutive transient failures before the account's health changes to
    /// `rate_limited` / `unreachable`.
    pub unhealthy_after: u32,
    /// Records of an account that made no progress for this long are appended again at the
    /// end of their partition, so the group's offset can move on (see `lib.rs`).
    pub requeue_after: Duration,
    /// A parked account (key rejected) is tried again after this long even when its
    /// settings did not change (the key may have been re-enabled in RetailCRM).
    pub parked_retry: Duration,
    /// How long a record of an integration the registry does not know waits for it to
    /// appear before it is skipped (removed integrations).
    pub unknown_integration_grace: Duration,
    /// An account worker with nothing to do stops after this long.
    pub idle_worker_timeout: Duration,
    /// Dead letters allowed in a sliding window before the enricher stops.
    pub dead_letter_cap: DeadLetterCap,
    /// On shutdown, how long in-flight batches may take to finish.
    pub shutdown_grace: Duration,
    /// `DEALFLOW_RECONCILE_INTERVAL`: how often each integration's `orders/history` is read
    /// from its stored cursor (webhooks that were never sent show up within one interval).
    pub reconcile_interval: Duration,
    /// While live changes keep an account busy, its backfill / re-sync still gets one page
    /// after this many live batches (live changes first, the backfill never starves).
    pub live_batches_per_load_page: u32,
    /// Backfill / re-sync progress is logged at most this often per integration.
    pub progress_log_every: Duration,
}

impl EnricherSettings {
    /// Production defaults for the given topics and secret.
    pub fn new(topics: Topics, secret_key: SecretString) -> Self {
        let consumer_group = format!("{}enricher", topics.prefix());
        Self {
            listen: None,
            topics,
            secret_key,
            secret_key_previous: None,
            consumer_group,
            client_options: ClientOptions::default(),
            batch_size: MAX_IDS_PER_REQUEST,
            batch_linger: Duration::from_millis(200),
            batch_max_wait: Duration::from_millis(300),
            unlisted_max_wait: Duration::from_secs(10),
            poll_max_records: 500,
            poll_timeout: Duration::from_millis(100),
            commit_interval: Duration::from_secs(1),
            reference_ttl: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            unhealthy_after: 3,
            requeue_after: Duration::from_secs(300),
            parked_retry: Duration::from_secs(600),
            unknown_integration_grace: Duration::from_secs(30),
            idle_worker_timeout: Duration::from_secs(600),
            dead_letter_cap: DeadLetterCap::default(),
            shutdown_grace: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(300),
            live_batches_per_load_page: 4,
            progress_log_every: Duration::from_secs(5),
        }
    }

    /// From the process configuration: its topic prefix, listener, reconcile interval,
    /// RetailCRM hosts and the secret being rotated out; production defaults for the rest.
    pub fn from_config(config: &Config, secret_key: SecretString) -> Self {
        let mut settings = Self::new(Topics::new(config.topic_prefix.clone()), secret_key);
        settings.listen = Some(config.listen);
        settings.reconcile_interval = config.reconcile_interval;
        settings.client_options = wiring::client_options(config);
        settings.secret_key_previous = config.secret_key_previous.clone();
        settings
    }

    /// Checks the cross-field rules before any I/O.
    pub fn validate(&self) -> Result<(), EnricherError> {
        let bad = |what: String| Err(EnricherError::Settings(what));
        if !(1..=MAX_IDS_PER_REQUEST).contains(&self.batch_size) {
            return bad(format!(
                "batch_size must be 1 to {MAX_IDS_PER_REQUEST}, got {}",
                self.batch_size
            ));
        }
        if self.poll_max_records == 0 {
            return bad("poll_max_records must be at least 1".into());
        }
        if self.consumer_group.trim().is_empty() {
            return bad("consumer_group must not be empty".into());
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return bad("backoff_initial must be positive and at most backoff_max".into());
        }
        if self.batch_max_wait < self.batch_linger {
            return bad("batch_max_wait must be at least batch_linger".into());
        }
        if self.unlisted_max_wait.is_zero() {
            return bad("unlisted_max_wait must be positive".into());
        }
        if self.requeue_after.is_zero() || self.commit_interval.is_zero() {
            return bad("requeue_after and commit_interval must be positive".into());
        }
        if self.reconcile_interval.is_zero() {
            return bad("reconcile_interval must be positive".into());
        }
        if self.live_batches_per_load_page == 0 {
            return bad("live_batches_per_load_page must be at least 1".into());
        }
        if self.dead_letter_cap.max == 0 {
            return bad("dead_letter_cap.max must be at least 1".into());
        }
        Ok(())
    }

    /// The pause before an account's `failures`-th retry: exponential, capped, with jitter
    /// (between half and all of the step) so accounts do not retry in lockstep.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        let step = self
            .backoff_initial
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max);
        step.mul_f64(rand::random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EnricherSettings {
        EnricherSettings::new(Topics::new("p."), SecretString::from("s"))
    }

    #[test]
    fn defaults_are_valid_and_name_the_group_after_the_prefix() {
        let s = settings();
        s.validate().unwrap();
        assert_eq!(s.consumer_group, "p.enricher");
        assert_eq!(s.batch_size, 100);
    }

    #[test]
    fn bad_batch_sizes_are_refused() {
        let mut s = settings();
        s.batch_size = 101;
        assert!(s.validate().unwrap_err().to_string().contains("batch_size"));
        s.batch_size = 0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = settings();
        let first = s.backoff(1);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        let fourth = s.backoff(4);
        assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
        assert!(s.backoff(40) <= Duration::from_secs(60));
        assert!(s.backoff(40) >= Duration::from_secs(30));
    }
}
