//! One polled batch applied in one transaction that also records what it applied.
//!
//! `applied_offsets` holds the next offset of every (topic, partition) the read model has
//! applied. A batch reads those rows first (locked on PostgreSQL), skips every record below
//! them (already applied: the bus redelivered what the database had committed before a crash,
//! a rebalance or a lost commit), applies the rest, moves the offsets and commits, all in one
//! transaction. A crash before the commit leaves neither rows nor offsets; a crash after it
//! leaves both, and the redelivered records are skipped. The bus commit that follows is only an
//! optimisation (less to re-read after a restart).

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Conn;
use dealflow_shared::bus::{BusError, DeadLetters, Delivered};
use dealflow_shared::events::Envelope;
use dealflow_shared::topics;

use super::letters::Letter;
use super::{Applied, apply_events};
use crate::store::values::Columns as _;
use crate::store::{Dialect, Sql, Store, StoreError};

/// The dead-letter stage name of the projector.
pub const DEAD_LETTER_STAGE: &str = "projector.decode";

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// What the new records changed.
    pub applied: Applied,
    /// Records skipped because the read model had already applied them.
    pub already_applied: u64,
    /// Records that could not be decoded (dead-lettered by the consumer).
    pub invalid: u64,
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot dead-letter an undecodable record: {0}")]
    DeadLetter(#[source] BusError),
    /// The bus delivered records beyond what the read model applied on a topic that never
    /// loses records: the consumer group is ahead of the database (a restored backup, a
    /// database swapped under a running deployment). Resetting the group fixes it.
    #[error(
        "the read model is behind the bus consumer group on {topic}[{partition}]: it applied up to offset {applied_next}, the bus delivered from {delivered}"
    )]
    Behind {
        topic: String,
        partition: i32,
        applied_next: i64,
        delivered: i64,
    },
}

impl BatchError {
    /// True when retrying the same batch later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            BatchError::Store(e) => e.is_transient(),
            BatchError::DeadLetter(e) => e.is_transient(),
            BatchError::Behind { .. } => false,
        }
    }
}

/// How a batch is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchOptions<'a> {
    /// Topics that keep every record forever: a gap there means the group is ahead.
    pub complete_topics: &'a BTreeSet<String>,
    /// Where undecodable records go (`None`: counted and skipped).
    pub dead_letters: Option<&'a DeadLetters>,
}

/// The records of one poll, each decoded. Decoding needs no database, so the consumer decodes
/// a batch while the previous one is being written.
#[derive(Debug, Default)]
pub(crate) struct Polled {
    pub records: Vec<Delivered>,
    decoded: Vec<Decoded>,
}

impl Polled {
    /// Decodes every record (dead-lettering comes later, only for records not yet applied).
    pub(crate) fn decode(records: Vec<Delivered>) -> Self {
        let decoded = records.iter().map(decode).collect();
        Self { records, decoded }
    }

    /// Adds the records of a later poll.
    pub(crate) fn extend(&mut self, later: Polled) {
        self.records.extend(later.records);
        self.decoded.extend(later.decoded);
    }

    /// [`decode`](Self::decode) on a blocking thread, started at once (not at the first poll
    /// of the returned future): the caller's task is free to drive the database meanwhile
    /// (decoding a batch inline would hold back its next statement).
    pub(crate) fn decode_aside(records: Vec<Delivered>) -> impl Future<Output = Self> {
        let decoding = tokio::task::spawn_blocking(move || Self::decode(records));
        async move {
            match decoding.await {
                Ok(polled) => polled,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    }

    /// Each record with what it decoded to.
    pub(crate) fn into_parts(self) -> impl Iterator<Item = (Delivered, Decoded)> {
        self.records.into_iter().zip(self.decoded)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

/// Applies a polled batch (in bus order) in one transaction with its offsets.
#[tracing::instrument(skip_all, fields(records = polled.len()), err)]
pub(crate) async fn apply_records(
    store: &Store,
    polled: &Polled,
    options: BatchOptions<'_>,
) -> Result<BatchOutcome, BatchError> {
    let records = &polled.records;
    let mut outcome = BatchOutcome::default();
    let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for r in records {
        let key = (r.topic.as_str(), r.partition);
        first.entry(key).or_insert(r.offset);
        last.insert(key, r.offset);
    }
    let mut tx = store
        .begin_write()
        .await
        .map_err(StoreError::query("starting a batch"))?;
    let mut conn = tx.conn();
    let applied_next = load_offsets(&mut conn, store.dialect(), first.keys()).await?;
    for ((topic, partition), offset) in &first {
        let next = applied_next.get(&(topic.to_string(), *partition)).copied();
        if options.complete_topics.contains(*topic) && *offset > next.unwrap_or(0) {
            return Err(BatchError::Behind {
                topic: (*topic).to_owned(),
                partition: *partition,
                applied_next: next.unwrap_or(0),
                delivered: *offset,
            });
        }
    }

    let mut envelopes = Vec::with_capacity(records.len());
    let mut letters = Vec::new();
    for (r, decoded) in records.iter().zip(&polled.decoded) {
        let next = applied_next
            .get(&(r.topic.clone(), r.partition))
            .copied()
            .unwrap_or(0);
        if r.offset < next {
            outcome.already_applied += 1;
            continue;
        }
        match decoded {
            Decoded::Event(envelope) => envelopes.push(envelope),
            Decoded::Letter(letter) => letters.push(letter.clone()),
            Decoded::Skipped => {}
            Decoded::Invalid(reason) => {
                outcome.invalid += 1;
                dead_letter(r, reason, options.dead_letters).await?;
            }
        }
    }
    outcome.applied = apply_events(&mut conn, store.dialect(), &envelopes, &letters, None).await?;
    let moved: Vec<((&str, i32), i64)> = last
        .into_iter()
        .filter(|(key, offset)| {
            let next = applied_next.get(&(key.0.to_owned(), key.1)).copied();
            next.is_none_or(|next| *offset >= next)
        })
        .map(|(key, offset)| (key, offset + 1))
        .collect();
    store_offsets(&mut conn, &moved).await?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing a batch"))?;
    Ok(outcome)
}

/// What a record is to the read model.
// One per record, consumed at once: boxing the envelope would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Decoded {
    Event(Envelope),
    /// A record of the dead-letter topic.
    Letter(Letter),
    /// A dead-letter record that names no integration: nobody's list.
    Skipped,
    /// Undecodable, or of a type its topic does not carry (DESIGN §6): to be dead-lettered,
    /// with the reason, so the partition keeps flowing.
    Invalid(String),
}

/// Decodes a record; one of the dead-letter topic is a [`Letter`].
pub(crate) fn decode(record: &Delivered) -> Decoded {
    if topics::is_dead_letter(&record.topic) {
        return Letter::of(record, chrono::Utc::now()).map_or(Decoded::Skipped, Decoded::Letter);
    }
    match Envelope::decode(&record.payload) {
        Ok(envelope) => {
            let event_type = envelope.event.event_type();
            match topics::event_types(&record.topic) {
                Some(types) if !types.contains(&event_type) => Decoded::Invalid(format!(
                    "unexpected event type {} on topic {}",
                    event_type.as_str(),
                    record.topic
                )),
                _ => Decoded::Event(envelope),
            }
        }
        Err(error) => Decoded::Invalid(error.to_string()),
    }
}

/// Logs an invalid record and sends it to the dead-letter topic, when one is given.
pub(crate) async fn dead_letter(
    record: &Delivered,
    reason: &str,
    dead_letters: Option<&DeadLetters>,
) -> Result<(), BatchError> {
    tracing::warn!(
        topic = %record.topic, partition = record.partition, offset = record.offset,
        error = %reason, "undecodable record"
    );
    if let Some(dead_letters) = dead_letters {
        dead_letters
            .send(record, DEAD_LETTER_STAGE, reason)
            .await
            .map_err(BatchError::DeadLetter)?;
    }
    Ok(())
}

/// The next offset the read model expects on each partition it has applied.
pub(crate) async fn load_offsets<'k>(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    partitions: impl Iterator<Item = &'k (&'k str, i32)>,
) -> Result<BTreeMap<(String, i32), i64>, StoreError> {
    let mut by_topic: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic
            .entry(topic)
            .or_default()
            .push(i64::from(*partition));
    }
    let mut out = BTreeMap::new();
    for (topic, partitions) in by_topic {
        let mut sql =
            Sql::new("SELECT partition_id, next_offset FROM applied_offsets WHERE topic = ");
        sql.bind(topic.to_owned())
            .push(" AND partition_id IN ")
            .bind_list(partitions)
            .push(" ORDER BY partition_id")
            .push(dialect.for_update());
        for row in sql
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("reading applied offsets"))?
        {
            let partition = i32::try_from(row.int("partition_id")?).unwrap_or_default();
            out.insert((topic.to_owned(), partition), row.int("next_offset")?);
        }
    }
    Ok(out)
}

/// Records the next offset of each partition (only ever forward).
pub(crate) async fn store_offsets(
    conn: &mut Conn<'_>,
    next: &[((&str, i32), i64)],
) -> Result<(), StoreError> {
    if next.is_empty() {
        return Ok(());
    }
    let mut sql =
        Sql::new("INSERT INTO applied_offsets (topic, partition_id, next_offset) VALUES ");
    for (i, ((topic, partition), offset)) in next.iter().enumerate() {
        sql.row(i == 0, |r| {
            r.v((*topic).to_owned()).v(i64::from(*partition)).v(*offset);
        });
    }
    sql.push(
        " ON CONFLICT (topic, partition_id) DO UPDATE SET next_offset = excluded.next_offset \
         WHERE excluded.next_offset > applied_offsets.next_offset",
    );
    sql.execute(&mut *conn)
        .await
        .map_err(StoreError::query("recording applied offsets"))?;
    Ok(())
}
