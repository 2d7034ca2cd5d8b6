//! The embedded log's consumer: the one active member of its group.
//!
//! It reads from a fetch position per topic (starting at the group's committed offset), keeps
//! what the caller [stored](Consumer::store) in memory, and writes it through the writer thread on
//! [`commit`](Consumer::commit). Dropping it without committing loses only the stored positions,
//! so the next member sees those records again (at least once). It queries a topic only when
//! the writer's end offset for it is past the fetch position, so commits to other topics wake it
//! without costing a read.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use tokio::sync::watch;

use super::protocol::{Done, Op, TopicEnds};
use super::schema::decode_headers;
use super::{GroupClaim, unexpected};
use crate::bus::{BusError, Consumer, Delivered};

/// Per-topic progress of the consumer.
#[derive(Debug)]
struct Cursor {
    topic: String,
    topic_id: i64,
    /// Next offset to read.
    fetch: i64,
    /// Next offset to commit, as stored by the caller.
    stored: i64,
    /// Last committed next offset.
    committed: i64,
}

/// A member of a consumer group on the [`EmbeddedLog`](super::EmbeddedLog).
#[derive(Debug)]
pub struct EmbeddedConsumer {
    claim: GroupClaim,
    cursors: Vec<Cursor>,
    /// Topic to read first on the next poll, so one busy topic cannot starve the others.
    next_cursor: usize,
    wake: watch::Receiver<TopicEnds>,
}

impl EmbeddedConsumer {
    /// Starts from the group's committed offsets (0, the earliest, when none).
    pub(super) async fn start(
        claim: GroupClaim,
        topics: &[String],
        topic_ids: &[i64],
    ) -> Result<Self, BusError> {
        let inner = &claim.log.inner;
        let mut cursors = Vec::with_capacity(topics.len());
        for (topic, &topic_id) in topics.iter().zip(topic_ids) {
            let committed = super::committed_offset(&inner.reader, &claim.group, topic_id)
                .await?
                .unwrap_or(0);
            cursors.push(Cursor {
                topic: topic.clone(),
                topic_id,
                fetch: committed,
                stored: committed,
                committed,
            });
        }
        let wake = inner.wake.clone();
        Ok(Self {
            claim,
            cursors,
            next_cursor: 0,
            wake,
        })
    }

    /// Per cursor, the end offset of its topic as of the writer's last commit (`None` for a
    /// topic it does not know, which is then read). Marks the current ends seen, so a commit
    /// landing after this still wakes the next wait.
    fn ends(&mut self) -> Vec<Option<i64>> {
        let ends = self.wake.borrow_and_update();
        self.cursors
            .iter()
            .map(|c| ends.get(&c.topic_id).copied())
            .collect()
    }

    /// Reads what is available now, up to `max` records, round-robin over the topics with
    /// records past the fetch position.
    async fn fetch(
        &mut self,
        max: usize,
        ends: &[Option<i64>],
    ) -> Result<Vec<Delivered>, BusError> {
        let mut out = Vec::new();
        let count = self.cursors.len();
        for step in 0..count {
            let remaining = max.saturating_sub(out.len());
            if remaining == 0 {
                break;
            }
            let index = (self.next_cursor + step) % count;
            let cursor = &mut self.cursors[index];
            let end = ends[index];
            if !behind(cursor, end) {
                continue;
            }
            let limit = i64::try_from(remaining).unwrap_or(i64::MAX);
            let read = |e| BusError::fatal("reading the embedded log", e);
            let rows: Vec<StoredRecord> = self
                .claim
                .log
                .inner
                .reader
                .read(|conn| {
                    let mut statement = conn.prepare_cached(
                        "SELECT offset, key, payload, headers FROM records
                         WHERE topic_id = ? AND offset >= ? ORDER BY offset LIMIT ?",
                    )?;
                    let rows = statement
                        .query_map(params![cursor.topic_id, cursor.fetch, limit], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                        })?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()
                })
                .await
                .map_err(read)?;
            // A short read saw every record below `end` (committed before the ends were
            // published, so in this read's snapshot): the rest up to `end` were deleted by
            // retention, and need not be asked for again.
            let exhausted = rows.len() < remaining;
            for (offset, key, payload, headers) in rows {
                out.push(Delivered {
                    topic: cursor.topic.clone(),
                    partition: 0,
                    offset,
                    key,
                    payload,
                    headers: decode_headers(headers.as_deref())?,
                });
                cursor.fetch = offset + 1;
            }
            if exhausted && let Some(end) = end {
                cursor.fetch = cursor.fetch.max(end);
            }
        }
        if count > 0 {
            self.next_cursor = (self.next_cursor + 1) % count;
        }
        Ok(out)
    }
}

/// A record as read: offset, key, payload, encoded headers.
type StoredRecord = (i64, Option<String>, Vec<u8>, Option<Vec<u8>>);

/// Whether the topic has records at or past the cursor's fetch position.
fn behind(cursor: &Cursor, end: Option<i64>) -> bool {
    end.is_none_or(|end| cursor.fetch < end)
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    #[tracing::instrument(skip_all, fields(group = %self.claim.group), err)]
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Delivered>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Take the ends *before* reading, so a commit landing between the read and the
            // wait still wakes us.
            let ends = self.ends();
            let any_behind = self
                .cursors
                .iter()
                .zip(&ends)
                .any(|(c, &end)| behind(c, end));
            if any_behind {
                let records = self.fetch(max, &ends).await?;
                if !records.is_empty() {
                    return Ok(records);
                }
            }
            match tokio::time::timeout_at(deadline, self.wake.changed()).await {
                Err(_elapsed) => return Ok(Vec::new()),
                Ok(Ok(())) => {}
                Ok(Err(_closed)) => {
                    return Err(BusError::fatal_msg("the embedded log writer has stopped"));
                }
            }
        }
    }

    fn store(&mut self, record: &Delivered) -> Result<(), BusError> {
        let cursor = self
            .cursors
            .iter_mut()
            .find(|c| c.topic == record.topic && record.partition == 0)
            .ok_or_else(|| {
                BusError::fatal_msg(format!(
                    "cannot store offset {} of {}[{}]: not assigned to this consumer",
                    record.offset, record.topic, record.partition
                ))
            })?;
        cursor.stored = record.offset + 1;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(group = %self.claim.group), err)]
    async fn commit(&mut self) -> Result<(), BusError> {
        let offsets: Vec<(i64, i64)> = self
            .cursors
            .iter()
            .filter(|c| c.stored != c.committed)
            .map(|c| (c.topic_id, c.stored))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let op = Op::CommitOffsets {
            group: self.claim.group.clone(),
            offsets,
        };
        match self.claim.log.call(op).await? {
            Done::Committed => {}
            other => return Err(unexpected(&other)),
        }
        for cursor in &mut self.cursors {
            cursor.committed = cursor.stored;
        }
        Ok(())
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.cursors.iter().map(|c| (c.topic.clone(), 0)).collect()
    }
}
