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
    let mut consumer = bus.subscribe(group, &[topic.to_string()]).await?;
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
