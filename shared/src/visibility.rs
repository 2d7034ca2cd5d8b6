//! Read your writes (DESIGN §4): a settings write is answered only once the read side shows it.
//!
//! ingest publishes a change and the projector applies it later, from the bus, into the read
//! model that serves `GET /api/v1/integrations…`. Answering at the bus's acknowledgement would
//! let a client that got `201` read `404` a moment later. So a write waits, bounded, until the
//! read side has applied the position the bus gave it ([`Visibility::wait`]), wherever that
//! read side runs ([`ReadSide`]):
//!
//! - **in process** (all-in-one): the projector publishes the next offset it has applied per
//!   (topic, partition) through a [`ReadProgress`], right after each batch's database commit;
//!   a wait is a `watch` receiver, no I/O;
//! - **another process** (split deployment): the projector commits its consumer group's offsets
//!   on the bus right after each database commit, never before, so the group's committed offsets
//!   (polled every [`GROUP_POLL`]) never claim more than the read model holds. The group is
//!   [`Topics::projector_group`](crate::topics::Topics::projector_group). That bus commit is best
//!   effort for the projector (its database knows what it applied); a lost one only delays the
//!   answer to the partition's next commit, or to the bound;
//! - **none** (ingest tested alone): nothing to wait for.
//!
//! A write that is not visible in time is not undone: it is on the bus and will be applied.
//! The caller says exactly that (`503 read_model_behind`), never a silent success that then
//! reads as 404.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::bus::{EventBus, Position};

/// How often a wait on another process's read side asks the bus for the group's offsets.
/// Small against the 1 s the split deployment allows; writes are rare, so the load is too.
pub const GROUP_POLL: Duration = Duration::from_millis(20);

/// The next offset applied per (topic, partition): everything below it is in the read model.
pub type Applied = BTreeMap<(String, i32), i64>;

/// What a projector in this process has applied, for the writers in the same process.
/// Cheap to clone; clones share the state.
#[derive(Debug, Clone)]
pub struct ReadProgress {
    applied: Arc<watch::Sender<Applied>>,
}

impl ReadProgress {
    /// Progress starting from what the read model already holds.
    pub fn new(applied: Applied) -> Self {
        Self {
            applied: Arc::new(watch::Sender::new(applied)),
        }
    }

    /// Records newly applied next offsets (call once they are committed); offsets only move
    /// forward, and waiters wake only when one did.
    pub fn advance(&self, applied: impl IntoIterator<Item = ((String, i32), i64)>) {
        let applied: Vec<_> = applied.into_iter().collect();
        self.applied.send_if_modified(|current| {
            let mut moved = false;
            for (key, next) in applied {
                let entry = current.entry(key).or_insert(0);
                if next > *entry {
                    *entry = next;
                    moved = true;
                }
            }
            moved
        });
    }

    /// The next offset applied on `topic[partition]` (0 when nothing was).
    pub fn applied(&self, topic: &str, partition: i32) -> i64 {
        self.applied
            .borrow()
            .get(&(topic.to_owned(), partition))
            .copied()
            .unwrap_or(0)
    }

    /// The read side a writer in this process waits on.
    pub fn read_side(&self) -> ReadSide {
        ReadSide::InProcess(self.applied.subscribe())
    }
}

/// Where the read side that must show a write runs.
#[derive(Debug, Clone)]
pub enum ReadSide {
    /// No read side to wait for: ingest running without any projector (its own tests).
    None,
    /// A projector in this process ([`ReadProgress::read_side`]).
    InProcess(watch::Receiver<Applied>),
    /// A projector in other processes, consuming in this group on the same bus.
    ConsumerGroup(String),
}

/// The read side did not show a write within the bound. The write itself stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the read side has not applied {topic}[{partition}]@{offset} after {waited:?}")]
pub struct NotVisible {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub waited: Duration,
}

/// Waits until the read side has applied a published record, for at most `timeout`.
#[derive(Debug, Clone)]
pub struct Visibility {
    read_side: ReadSide,
    bus: Arc<dyn EventBus>,
    timeout: Duration,
}

impl Visibility {
    /// `bus` is the one the writes go to (asked for the group's offsets with
    /// [`ReadSide::ConsumerGroup`]).
    pub fn new(read_side: ReadSide, bus: Arc<dyn EventBus>, timeout: Duration) -> Self {
        Self {
            read_side,
            bus,
            timeout,
        }
    }

    /// The bound of one wait.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Resolves once the read side has applied the record at `at` on `topic` (with how long
    /// that took), or fails with [`NotVisible`] when the bound passes first.
    pub async fn wait(&self, topic: &str, at: Position) -> Result<Duration, NotVisible> {
        let started = Instant::now();
        let visible = match &self.read_side {
            ReadSide::None => true,
            ReadSide::InProcess(applied) => {
                let mut applied = applied.clone();
                let key = (topic.to_owned(), at.partition);
                let shown = applied.wait_for(|a| a.get(&key).is_some_and(|next| *next > at.offset));
                // An error means the projector is gone: nothing will ever advance.
                matches!(tokio::time::timeout(self.timeout, shown).await, Ok(Ok(_)))
            }
            ReadSide::ConsumerGroup(group) => {
                tokio::time::timeout(self.timeout, self.poll_group(group, topic, at))
                    .await
                    .is_ok()
            }
        };
        if visible {
            Ok(started.elapsed())
        } else {
            Err(NotVisible {
                topic: topic.to_owned(),
                partition: at.partition,
                offset: at.offset,
                waited: started.elapsed(),
            })
        }
    }

    /// Asks the bus until `group` has committed past `at` (runs until cancelled otherwise).
    async fn poll_group(&self, group: &str, topic: &str, at: Position) {
        let mut last_error = None;
        loop {
            match self.bus.committed_offsets(group, topic).await {
                Ok(committed) => {
                    let next = committed.iter().find(|(p, _)| *p == at.partition);
                    if next.is_some_and(|(_, next)| *next > at.offset) {
                        return;
                    }
                }
                Err(e) => {
                    // Reported once per kind of failure, not every few milliseconds.
                    let text = e.to_string();
                    if last_error.as_ref() != Some(&text) {
                        tracing::warn!(%group, %topic, error = %text, "reading the read side's committed offsets");
                        last_error = Some(text);
                    }
                }
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{EmbeddedLog, OutRecord, Retention, TopicSpec};

    async fn log() -> (tempfile::TempDir, Arc<dyn EventBus>) {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedLog::open(dir.path().join("log.db")).await.unwrap();
        bus.ensure_topics(&[TopicSpec::new("t", 1, Retention::Forever)])
            .await
            .unwrap();
        (dir, Arc::new(bus))
    }

    const AT: Position = Position {
        partition: 0,
        offset: 4,
    };

    #[tokio::test]
    async fn no_read_side_means_no_wait() {
        let (_dir, bus) = log().await;
        let v = Visibility::new(ReadSide::None, bus, Duration::from_secs(5));
        assert!(v.wait("t", AT).await.unwrap() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn an_in_process_wait_ends_when_the_offset_is_applied() {
        let (_dir, bus) = log().await;
        let progress = ReadProgress::new(Applied::from([(("t".into(), 0), 3)]));
        let v = Visibility::new(progress.read_side(), bus, Duration::from_secs(5));
        let waiting = tokio::spawn(async move { v.wait("t", AT).await });
        tokio::task::yield_now().await;
        // Another partition, and an offset at (not past) the record, are not enough.
        progress.advance([(("t".into(), 1), 9), (("t".into(), 0), 4)]);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        progress.advance([(("t".into(), 0), 5)]);
        waiting.await.unwrap().unwrap();
        // Never backwards.
        progress.advance([(("t".into(), 0), 2)]);
        assert_eq!(progress.applied("t", 0), 5);
    }

    #[tokio::test]
    async fn a_wait_that_sees_nothing_ends_at_the_bound() {
        let (_dir, bus) = log().await;
        let progress = ReadProgress::new(Applied::new());
        let bound = Duration::from_millis(200);
        let v = Visibility::new(progress.read_side(), bus.clone(), bound);
        let err = v.wait("t", AT).await.unwrap_err();
        assert!(err.waited >= bound && err.waited < bound * 5, "{err}");
        let v = Visibility::new(ReadSide::ConsumerGroup("nobody".into()), bus, bound);
        let err = v.wait("t", AT).await.unwrap_err();
        assert!(err.waited >= bound && err.waited < bound * 5, "{err}");
    }

    #[tokio::test]
    async fn a_group_wait_ends_when_the_group_commits_past_the_record() {
        let (_dir, bus) = log().await;
        let positions = bus
            .publish("t", (0..3).map(|i| OutRecord::new("k", vec![i])).collect())
            .await
            .unwrap();
        let v = Visibility::new(
            ReadSide::ConsumerGroup("reader".into()),
            bus.clone(),
            Duration::from_secs(10),
        );
        let last = positions[2];
        let waiting = tokio::spawn(async move { v.wait("t", last).await });
        let mut consumer = bus.subscribe("reader", &["t".to_owned()]).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            seen.extend(consumer.poll(10, Duration::from_secs(5)).await.unwrap());
        }
        consumer.store(&seen[1]).unwrap();
        consumer.commit().await.unwrap();
        tokio::time::sleep(GROUP_POLL * 3).await;
        assert!(
            !waiting.is_finished(),
            "committed only up to the record before"
        );
        consumer.store(&seen[2]).unwrap();
        consumer.commit().await.unwrap();
        waiting.await.unwrap().unwrap();
    }
}
