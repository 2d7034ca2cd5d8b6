//! What the projector needs to know, and how it follows from the process configuration.

use std::net::SocketAddr;
use std::time::Duration;

use dealflow_shared::bus::DeadLetterCap;
use dealflow_shared::config::{Config, DatabaseUrl};
use dealflow_shared::topics::Topics;
use secrecy::SecretString;
use url::Url;

/// Records per poll (and so per transaction) by default. A poll returns what is there at
/// once, so a large maximum costs a live projector nothing, while one catching up (a backlog)
/// pays a commit's fsync and its per-batch lookups once per 5,000 records instead of per 500:
/// SQLite applied 8.0k → 19.1k events/s, PostgreSQL 9.0k → 12.2k (BENCHMARKS.md, 2026-12-04).
/// Larger batches are faster still (20,000: ~29k / ~22k) but cost the all-in-one ~180 MiB
/// more at the peak of draining a million-change backlog (260 → 440 MiB), so they are kept
/// for the replay ([`DEFAULT_REPLAY_BATCH_SIZE`]).
pub const DEFAULT_BATCH_SIZE: usize = 5_000;

/// Records a replay applies per step (in its one transaction). A replay is an operator's
/// one-off rebuild where speed matters more than a spike of memory: each order's rows are
/// rewritten once for all of its events in a step, so fewer steps write fewer row versions
/// (a million events on PostgreSQL: replay 88 → 66 s with the one-row-per-order traces). It
/// also bounds the replay's memo of hot orders (`apply::write_back`: up to this many orders'
/// rows kept between steps besides the current step's).
pub const DEFAULT_REPLAY_BATCH_SIZE: usize = 20_000;

/// The projector's settings.
#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// HTTP listener of [`ProjectorService`](crate::ProjectorService).
    pub listen: SocketAddr,
    /// Base of the webhook URLs shown in the integration JSON.
    pub public_url: Url,
    /// The read model store.
    pub database_url: DatabaseUrl,
    pub topics: Topics,
    /// Bearer token of every `/api` route.
    pub api_token: SecretString,
    /// `DEALFLOW_SECRET_KEY`: webhook URLs are recomputed from it, never stored.
    pub secret_key: SecretString,
    /// Consumer group of the projector (default `{prefix}projector`).
    pub group: String,
    /// Records per poll, applied in one transaction.
    pub batch_size: usize,
    /// Records a replay applies per step.
    pub replay_batch_size: usize,
    /// How long a poll waits for the first record.
    pub poll_timeout: Duration,
    /// Dead letters allowed before the consumer halts.
    pub dead_letter_cap: DeadLetterCap,
    /// The secret being rotated out (`DEALFLOW_SECRET_KEY_PREVIOUS`): tenant tokens issued
    /// under it are still recognised.
    pub secret_key_previous: Option<SecretString>,
    /// `DEALFLOW_RECONCILE_INTERVAL`, as the sync panel and `GET …/sync` report it (the
    /// enricher runs it).
    pub reconcile_interval: Duration,
}

impl ProjectorSettings {
    /// Settings with the defaults for everything but what has none.
    pub fn new(
        listen: SocketAddr,
        public_url: Url,
        database_url: DatabaseUrl,
        topics: Topics,
        api_token: SecretString,
        secret_key: SecretString,
    ) -> Self {
        let group = topics.projector_group();
        Self {
            listen,
            public_url,
            database_url,
            topics,
            api_token,
            secret_key,
            group,
            batch_size: DEFAULT_BATCH_SIZE,
            replay_batch_size: DEFAULT_REPLAY_BATCH_SIZE,
            poll_timeout: Duration::from_secs(1),
            dead_letter_cap: DeadLetterCap::default(),
            secret_key_previous: None,
            reconcile_interval: Duration::from_secs(300),
        }
    }

    /// From the process configuration and the secrets it runs with.
    pub fn from_config(config: &Config, api_token: SecretString, secret_key: SecretString) -> Self {
        let mut settings = Self::new(
            config.listen,
            config.public_url.clone(),
            config.database_url.clone(),
            Topics::new(config.topic_prefix.clone()),
            api_token,
            secret_key,
        );
        settings.secret_key_previous = config.secret_key_previous.clone();
        settings.reconcile_interval = config.reconcile_interval;
        settings
    }

    /// Every topic the projector reads.
    pub fn source_topics(&self) -> Vec<String> {
        vec![
            self.topics.integrations(),
            self.topics.health(),
            self.topics.funnels(),
            self.topics.contacts(),
            self.topics.deals(),
            self.topics.order_changed(),
            self.topics.sync_state(),
            self.topics.dead_letter(),
        ]
    }

    /// The source topics that keep every record forever: on these an offset gap means the
    /// consumer group is ahead of the database.
    pub(crate) fn complete_topics(&self) -> std::collections::BTreeSet<String> {
        [
            self.topics.deals(),
            self.topics.contacts(),
            self.topics.funnels(),
        ]
        .into_iter()
        .collect()
    }
}
