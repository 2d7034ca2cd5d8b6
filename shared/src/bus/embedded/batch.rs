//! The group commit itself: one batch of writer requests applied in one `BEGIN IMMEDIATE`
//! transaction with cached prepared statements, committed once.
//!
//! Offsets are assigned here, densely per topic, in the order the requests were received. The
//! writer thread ([`super::writer`]) owns the connection and the in-memory topic table and calls
//! [`write()`] once per batch.

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior, params};

use super::protocol::{Done, Op};
use super::retention::sweep;
use super::schema::{encode_headers, retention_from_sql, retention_to_sql};
use crate::bus::{BusError, OutRecord, Position, Retention, TopicSpec};

/// What the writer keeps in memory about one topic.
#[derive(Debug, Clone)]
pub(super) struct TopicState {
    pub id: i64,
    pub next_offset: i64,
    pub retention: Retention,
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads the topic table (on open, and after a failed batch rolled back).
pub(super) fn load_topics(conn: &Connection) -> rusqlite::Result<HashMap<String, TopicState>> {
    let mut select = conn.prepare("SELECT id, name, retention, next_offset FROM topics")?;
    let rows = select.query_map([], |row| {
        let retention: String = row.get("retention")?;
        let state = TopicState {
            id: row.get("id")?,
            next_offset: row.get("next_offset")?,
            retention: retention_from_sql(&retention),
        };
        Ok((row.get("name")?, state))
    })?;
    rows.collect()
}

/// One transaction for the whole batch. A request that is invalid on its own (unknown topic)
/// gets its error without touching the others; a storage error fails the whole batch (the
/// transaction rolls back when dropped uncommitted).
pub(super) fn write(
    conn: &mut Connection,
    topics: &mut HashMap<String, TopicState>,
    ops: &[Op],
    appended: &mut bool,
) -> rusqlite::Result<Vec<Result<Done, BusError>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut touched = HashSet::new();
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        let outcome = match op {
            Op::Publish { topic, records } => {
                let result = append(&tx, topics, topic, records)?;
                if result.as_ref().is_ok_and(|p| !p.is_empty()) {
                    *appended = true;
                    touched.insert(topic.as_str());
                }
                result.map(Done::Published)
            }
            Op::CommitOffsets { group, offsets } => {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO group_offsets (group_name, topic_id, next_offset) VALUES (?1, ?2, ?3)
                     ON CONFLICT (group_name, topic_id) DO UPDATE SET next_offset = excluded.next_offset",
                )?;
                for &(topic_id, next_offset) in offsets {
                    upsert.execute(params![group, topic_id, next_offset])?;
                }
                Ok(Done::Committed)
            }
            Op::EnsureTopics(specs) => {
                ensure_topics(&tx, topics, specs)?;
                Ok(Done::TopicsEnsured)
            }
            Op::ResetGroup {
                group,
                topic_ids,
                since_ms: None,
            } => {
                // No committed position: the group starts from the earliest record.
                let mut delete = tx.prepare_cached(
                    "DELETE FROM group_offsets WHERE group_name = ?1 AND topic_id = ?2",
                )?;
                for topic_id in topic_ids {
                    delete.execute(params![group, topic_id])?;
                }
                Ok(Done::GroupReset)
            }
            Op::ResetGroup {
                group,
                topic_ids,
                since_ms: Some(since_ms),
            } => {
                // Records are appended in time order, so the first one at or after the time
                // is where the group resumes; the topic's end when none is that recent.
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO group_offsets (group_name, topic_id, next_offset)
                     SELECT ?1, t.id, COALESCE(
                         (SELECT MIN(r.offset) FROM records r
                          WHERE r.topic_id = t.id AND r.appended_at_ms >= ?3),
                         t.next_offset)
                     FROM topics t WHERE t.id = ?2
                     ON CONFLICT (group_name, topic_id) DO UPDATE SET next_offset = excluded.next_offset",
                )?;
                for topic_id in topic_ids {
                    upsert.execute(params![group, topic_id, since_ms])?;
                }
                Ok(Done::GroupReset)
            }
            Op::Retention { now_ms } => Ok(Done::Retention(sweep(&tx, topics, *now_ms)?)),
        };
        outcomes.push(outcome);
    }
    {
        let mut advance = tx.prepare_cached("UPDATE topics SET next_offset = ?1 WHERE id = ?2")?;
        for name in touched {
            let state = &topics[name];
            advance.execute(params![state.next_offset, state.id])?;
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Appends records to one topic; the outer error is storage, the inner one this request's.
fn append(
    conn: &Connection,
    topics: &mut HashMap<String, TopicState>,
    topic: &str,
    records: &[OutRecord],
) -> rusqlite::Result<Result<Vec<Position>, BusError>> {
    let Some(state) = topics.get_mut(topic) else {
        return Ok(Err(BusError::UnknownTopic(topic.to_owned())));
    };
    let mut encoded = Vec::with_capacity(records.len());
    for record in records {
        match encode_headers(&record.headers) {
            Ok(headers) => encoded.push(headers),
            Err(error) => return Ok(Err(error)),
        }
    }
    let appended_at = now_ms();
    let first = state.next_offset;
    let mut insert = conn.prepare_cached(
        "INSERT INTO records (topic_id, offset, key, payload, headers, appended_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for ((record, headers), offset) in records.iter().zip(&encoded).zip(first..) {
        insert.execute(params![
            state.id,
            offset,
            record.key,
            record.payload,
            headers,
            appended_at
        ])?;
    }
    let count = i64::try_from(records.len()).unwrap_or(i64::MAX);
    state.next_offset = first + count;
    Ok(Ok((first..state.next_offset)
        .map(|offset| Position {
            partition: 0,
            offset,
        })
        .collect()))
}

/// Creates missing topics and updates the retention of existing ones.
fn ensure_topics(
    conn: &Connection,
    topics: &mut HashMap<String, TopicState>,
    specs: &[TopicSpec],
) -> rusqlite::Result<()> {
    for spec in specs {
        let retention = retention_to_sql(spec.retention);
        if let Some(state) = topics.get_mut(&spec.name) {
            if state.retention != spec.retention {
                conn.execute(
                    "UPDATE topics SET retention = ?1 WHERE id = ?2",
                    params![retention, state.id],
                )?;
                state.retention = spec.retention;
            }
            continue;
        }
        let id: i64 = conn.query_row(
            "INSERT INTO topics (name, retention, next_offset) VALUES (?1, ?2, 0) RETURNING id",
            params![spec.name, retention],
            |row| row.get(0),
        )?;
        let state = TopicState {
            id,
            next_offset: 0,
            retention: spec.retention,
        };
        topics.insert(spec.name.clone(), state);
    }
    Ok(())
}
