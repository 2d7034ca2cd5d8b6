//! The event bus: one small trait, two backends.
//!
//! Components only see [`EventBus`] (held as `Arc<dyn EventBus>`) and the [`Consumer`] it hands
//! out. Two backends implement it:
//!
//! - [`KafkaBus`]: rdkafka, idempotent producer with `acks=all`, consumer groups with offsets
//!   stored only when the caller says so and committed explicitly;
//! - [`EmbeddedLog`]: a durable log in one SQLite file (the single-machine default), with a
//!   group-committing writer so concurrent publishers share one fsync.
//!
//! Delivery is at least once on both: a record is redelivered until the offset after it has been
//! [stored](Consumer::store) and [committed](Consumer::commit). [`DeadLetters`] moves records
//! that can never be processed aside, with a cap so a bad deploy halts instead of draining.
//!
//! The conformance suite (`shared/tests/bus_conformance.rs`) runs the same cases against both.

mod dead_letter;
mod embedded;
mod error;
mod kafka;
mod partition;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

pub use dead_letter::{
    DeadLetterCap, DeadLetters, HEADER_AT, HEADER_ERROR, HEADER_LETTER_ID, HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC, HEADER_STAGE, LetterAbout, distinct_letters,
    letter_id, public_id,
};
pub use embedded::{EmbeddedConsumer, EmbeddedLog, EmbeddedStats, RetentionReport};
pub use error::BusError;
pub use kafka::{KafkaBus, KafkaBusConfig, KafkaConsumer};
pub use partition::{murmur2, partition_for};

/// A record to publish: the key decides the partition (and so the order), the payload is opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Partitioning key; records with the same key keep their relative order.
    pub key: String,
    /// The bytes to store (dealflow puts the JSON envelope here).
    pub payload: Vec<u8>,
    /// Record headers, in order (names may repeat, as in Kafka).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    /// A record without headers.
    pub fn new(key: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            payload: payload.into(),
            headers: Vec::new(),
        }
    }

    /// Adds one header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A record read from the bus, owned (no borrow of the consumer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from (always 0 on the embedded log).
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// The key (`None` only for foreign records written without one).
    pub key: Option<String>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Delivered {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Where a published record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Partition the record was written to.
    pub partition: i32,
    /// Offset within that partition.
    pub offset: i64,
}

/// Where [`EventBus::reset_group`] moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// The earliest record still kept.
    Earliest,
    /// The first record appended at or after this time (Kafka: the record timestamp, which
    /// the producer sets when it sends; embedded log: when it was appended); the end of a
    /// partition with none.
    Since(chrono::DateTime<chrono::Utc>),
}

/// How long a topic keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Only the latest record per key is kept (Kafka `cleanup.policy=compact`).
    Compacted,
    /// Records older than this many days are deleted.
    Days(u32),
    /// Records are never deleted (the replay source).
    Forever,
}

/// A topic to create if it does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Full topic name (prefix included).
    pub name: String,
    /// Partition count on Kafka; the embedded log always has one partition per topic.
    pub partitions: i32,
    /// Retention policy.
    pub retention: Retention,
}

impl TopicSpec {
    /// A topic spec.
    pub fn new(name: impl Into<String>, partitions: i32, retention: Retention) -> Self {
        Self {
            name: name.into(),
            partitions,
            retention,
        }
    }
}

/// The event bus: publish with a durable acknowledgement, consume as a group, replay.
#[async_trait]
pub trait EventBus: Send + Sync + Debug {
    /// Creates the topics that do not exist yet; existing ones are left as they are
    /// (the embedded log updates their retention).
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError>;

    /// Appends the records to `topic`, in order. Resolves only when every record is durably
    /// acknowledged (Kafka: `acks=all` delivery reports; embedded: the fsynced commit), with one
    /// position per record in input order. On error, any subset may have been written.
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, BusError>;

    /// Joins consumer group `group` on `topics` (which must exist). The group starts from its
    /// committed offsets, or from the earliest record when it has none.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Consumer>, BusError>;

    /// [`subscribe`](EventBus::subscribe) for a follower of a settings topic (`follow`): off
    /// the webhook → visible path, so a backend may fetch for it less eagerly (Kafka: 250 ms
    /// instead of 50 between fetches while idle). The same consumer otherwise.
    async fn follow(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>, BusError> {
        self.subscribe(group, topics).await
    }

    /// Moves `group`'s committed offsets on `topics` to `to` (the beginning, or the first record
    /// appended at or after a time), so its next member reads from there: on every partition,
    /// or on the `only` ones. The group must have no active member ([`BusError::GroupBusy`]
    /// otherwise).
    async fn reset_group(
        &self,
        group: &str,
        topics: &[String],
        to: GroupStart,
        only: Option<&[i32]>,
    ) -> Result<(), BusError>;

    /// High watermark per partition (the offset the next record will get), sorted by partition.
    async fn end_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError>;

    /// What `group` has committed on `topic`: the next offset it will read, per partition,
    /// sorted by partition; partitions it never committed are left out. Read without joining
    /// the group, so asking never disturbs its members (a separate ingest asks the projector's
    /// group what the read model holds, [`crate::visibility`]).
    async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, i64)>, BusError>;
}

/// One member of a consumer group. Offsets move only through [`store`](Consumer::store) and
/// [`commit`](Consumer::commit); dropping a consumer without committing means redelivery.
#[async_trait]
pub trait Consumer: Send + Debug {
    /// Up to `max` records. Waits up to `timeout` for the first one (woken by the backend, no
    /// busy polling); an empty vector means the timeout passed.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Delivered>, BusError>;

    /// Marks `record` as processed, so the next commit moves the group past it. Call only once
    /// its side effect is durable, and in order within a partition: storing a record also
    /// moves the group past every earlier record of its partition. Offsets are never stored
    /// implicitly.
    fn store(&mut self, record: &Delivered) -> Result<(), BusError>;

    /// Durably commits what was stored. A no-op when nothing new was stored.
    async fn commit(&mut self) -> Result<(), BusError>;

    /// The partitions currently assigned to this member, as `(topic, partition)`.
    fn assignment(&self) -> Vec<(String, i32)>;

    /// Calls `hook` with the partitions a rebalance takes from this member, inside the
    /// rebalance: before the group can give them to another member. A member that must stop
    /// work tied to a partition at once (the enricher's fence on an account, DESIGN §7.4) learns
    /// it here rather than at its next look at [`assignment`](Consumer::assignment). The
    /// default does nothing: a backend whose group has one member never revokes.
    fn on_revoke(&mut self, hook: RevokeHook) {
        let _ = hook;
    }
}

/// Told which `(topic, partition)`s a rebalance revoked ([`Consumer::on_revoke`]).
pub type RevokeHook = std::sync::Arc<dyn Fn(&[(String, i32)]) + Send + Sync>;
