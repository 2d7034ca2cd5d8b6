//! Following a compacted topic from its beginning: read it to the end once (then say "ready"),
//! and keep applying what arrives, until shutdown.
//!
//! Every process that keeps state from such a topic (the integrations registry, the enricher's
//! sync states) reads the whole topic, so each uses its own consumer group and never commits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bus::{BusError, Delivered, EventBus};
use crate::events::{DecodeError, Envelope};

/// Whether a followed topic has been read to its end once (cheap to clone; clones share it).
/// Every store kept from a compacted topic (the integrations registry, the tenants, the
/// enricher's sync states) holds one and answers `is_ready` / `wait_ready` through it.
#[derive(Debug, Clone)]
pub struct CaughtUp(watch::Sender<bool>);

impl Default for CaughtUp {
    fn default() -> Self {
        Self(watch::Sender::new(false))
    }
}

impl CaughtUp {
    /// Whether the topic has been read to its end once.
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the topic has been read to its end once.
    pub async fn wait_ready(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|ready| *ready).await;
    }

    fn set(&self) {
        self.0.send_replace(true);
    }
}

/// Reads `topic` with the unique `group`, calls `apply` for every record (decoded, or the
/// decoding error), sets `ready` once every partition has been read up to where it ended at
/// the start, and keeps going until `shutdown`. Transient bus errors are retried.
pub async fn follow_topic(
    bus: Arc<dyn EventBus>,
    topic: &str,
    group: &str,
    ready: &CaughtUp,
    shutdown: CancellationToken,
    mut apply: impl FnMut(&Delivered, Result<Envelope, DecodeError>),
) -> Result<(), BusError> {
    follow_records(bus, topic, group, ready, shutdown, |record| {
        apply(record, Envelope::decode(&record.payload))
    })
    .await
}

/// [`follow_topic`] for a topic whose records are not integration envelopes (the `tenants`
/// topic): `apply` gets each record as it is.
pub async fn follow_records(
    bus: Arc<dyn EventBus>,
    topic: &str,
    group: &str,
    ready: &CaughtUp,
    shutdown: CancellationToken,
    mut apply: impl FnMut(&Delivered),
) -> Result<(), BusError> {
    let end = bus.end_offsets(topic).await?;
    let mut pending: HashMap<i32, i64> = end.into_iter().filter(|(_, end)| *end > 0).collect();
    let mut consumer = bus.follow(group, &[topic.to_string()]).await?;
    if pending.is_empty() {
        ready.set();
    }
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            batch = consumer.poll(500, Duration::from_millis(500)) => batch,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) if e.is_transient() => {
                tracing::warn!(topic, error = %e, "topic unavailable, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        for record in &batch {
            apply(record);
            if pending
                .get(&record.partition)
                .is_some_and(|end| record.offset + 1 >= *end)
            {
                pending.remove(&record.partition);
            }
        }
        if pending.is_empty() && !ready.is_ready() {
            tracing::info!(topic, "read to its end");
            ready.set();
        }
    }
}

/// How far a follower has applied a topic, so a request can wait until everything on the topic
/// right now is applied before it calls something unknown: a record published through another
/// process a moment ago (a token, a status) is then seen (DESIGN §4, read your writes).
/// Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct Followed {
    /// The next offset to apply, per partition of the followed topic.
    applied: Arc<watch::Sender<HashMap<i32, i64>>>,
    /// The bus and topic followed (set once the follower starts).
    source: Arc<std::sync::OnceLock<(Arc<dyn EventBus>, String)>>,
    /// One catch-up at a time: unknown names cost at most one end-offsets query in flight.
    catching_up: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Followed(..)")
    }
}

/// How long a request waits at most for a followed topic before it calls a name unknown.
pub const CATCH_UP_WITHIN: Duration = Duration::from_secs(2);

impl Followed {
    /// Names what is followed (called by the follower when it starts).
    pub fn start(&self, bus: Arc<dyn EventBus>, topic: &str) {
        let _ = self.source.set((bus, topic.to_owned()));
    }

    /// Records that `record` was applied.
    pub fn advance(&self, record: &Delivered) {
        self.applied.send_modify(|applied| {
            applied.insert(record.partition, record.offset + 1);
        });
    }

    /// Waits (at most [`CATCH_UP_WITHIN`]) until every record on the followed topic right now
    /// has been applied; at once when nothing is followed.
    pub async fn catch_up(&self) {
        let Some((bus, topic)) = self.source.get().cloned() else {
            return;
        };
        let _one_at_a_time = self.catching_up.lock().await;
        let end = match bus.end_offsets(&topic).await {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!(topic, error = %e, "could not read where a followed topic ends");
                return;
            }
        };
        let mut applied = self.applied.subscribe();
        let caught_up = applied.wait_for(|applied| {
            end.iter()
                .all(|(partition, end)| *end <= 0 || applied.get(partition) >= Some(end))
        });
        if tokio::time::timeout(CATCH_UP_WITHIN, caught_up)
            .await
            .is_err()
        {
            tracing::warn!(
                topic,
                within = ?CATCH_UP_WITHIN,
                "a followed topic was not read to its end in time; a new name may be refused"
            );
        }
    }
}

impl Followed {
    /// Follows `topic` with [`follow_topic`], applying each envelope and recording progress
    /// for [`Followed::catch_up`]; an unreadable record is logged and skipped (a follower
    /// keeps a view, it has nothing to dead-letter).
    pub async fn follow_envelopes(
        &self,
        bus: Arc<dyn EventBus>,
        topic: &str,
        group: &str,
        ready: &CaughtUp,
        shutdown: CancellationToken,
        mut apply: impl FnMut(&Envelope),
    ) -> Result<(), BusError> {
        self.start(bus.clone(), topic);
        follow_topic(bus, topic, group, ready, shutdown, |record, decoded| {
            match decoded {
                Ok(envelope) => apply(&envelope),
                Err(e) => tracing::error!(
                    topic = %record.topic, partition = record.partition, offset = record.offset,
                    error = %e, "unreadable record on a followed topic, skipped"
                ),
            }
            self.advance(record);
        })
        .await
    }

    /// [`Followed::follow_envelopes`] for a topic whose records are not envelopes.
    pub async fn follow_records(
        &self,
        bus: Arc<dyn EventBus>,
        topic: &str,
        group: &str,
        ready: &CaughtUp,
        shutdown: CancellationToken,
        mut apply: impl FnMut(&Delivered),
    ) -> Result<(), BusError> {
        self.start(bus.clone(), topic);
        follow_records(bus, topic, group, ready, shutdown, |record| {
            apply(record);
            self.advance(record);
        })
        .await
    }
}
