//! The Kafka backend (rdkafka with its bundled librdkafka).
//!
//! - **Publish**: one idempotent `FutureProducer` with `acks=all`. Records are enqueued in order
//!   (so per-key order holds), then every delivery report is awaited within
//!   [`KafkaBusConfig::publish_timeout`]; missing it is a transient [`BusError::Timeout`].
//! - **Consume**: one `StreamConsumer` per [`subscribe`](EventBus::subscribe), in the group,
//!   with `enable.auto.offset.store=false` and `enable.auto.commit=false`: only what the caller
//!   stores is committed, and only when it calls `commit` (a synchronous commit). Uncommitted
//!   work is redelivered after a rebalance or restart (at least once).
//! - **Admin**: topics created through the admin API ("already exists" is fine); `reset_group`
//!   commits each partition's low watermark for the group; `committed_offsets` asks the group
//!   coordinator through a client with that `group.id` that never subscribes (so it never joins
//!   or rebalances the group); metadata, watermark and offset calls, which block in librdkafka,
//!   run on the blocking thread pool.
//!
//! Files: [`producer`] publishes, [`consumer`] is one group member, [`admin`] holds metadata,
//! topics and group offsets, [`client`] what every client shares (logging context, error
//! classification), [`config`] the librdkafka properties.

mod admin;
mod client;
mod config;
mod consumer;
mod producer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rdkafka::admin::AdminClient;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::FutureProducer;

pub use config::KafkaBusConfig;
pub use consumer::KafkaConsumer;

use super::{BusError, Consumer, EventBus, GroupStart, OutRecord, Position, TopicSpec};
use client::{TracingContext, creation};
use config::Pace;

/// The Kafka event bus.
pub struct KafkaBus {
    config: KafkaBusConfig,
    producer: FutureProducer<TracingContext>,
    admin: AdminClient<TracingContext>,
    /// A group-less consumer for metadata and watermarks.
    meta: Arc<BaseConsumer<TracingContext>>,
    /// Topics seen to exist, so only the first publish to a topic pays a metadata request.
    known_topics: Mutex<HashSet<String>>,
    /// One non-member client per group whose committed offsets are read (a client costs
    /// threads and connections; a read-your-writes wait asks every few milliseconds).
    group_readers: Mutex<HashMap<String, Arc<BaseConsumer<TracingContext>>>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("brokers", &self.config.brokers)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// A member of `group` on `topics` (which must exist), fetching at `pace`.
    async fn join(
        &self,
        group: &str,
        topics: &[String],
        pace: Pace,
    ) -> Result<Box<dyn Consumer>, BusError> {
        for topic in topics {
            self.check_topic(topic).await?;
        }
        let consumer = KafkaConsumer::subscribe(&self.config, group, topics, pace)?;
        Ok(Box::new(consumer))
    }

    /// Validates `config` and creates the clients (connections are made lazily).
    pub fn new(config: KafkaBusConfig) -> Result<Self, BusError> {
        config.validate()?;
        let producer = config
            .producer()
            .create_with_context(TracingContext)
            .map_err(|e| creation("producer", e))?;
        let admin = config
            .admin()
            .create_with_context(TracingContext)
            .map_err(|e| creation("admin client", e))?;
        let meta = config
            .consumer(None)
            .create_with_context(TracingContext)
            .map_err(|e| creation("metadata client", e))?;
        Ok(Self {
            config,
            producer,
            admin,
            meta: Arc::new(meta),
            known_topics: Mutex::new(HashSet::new()),
            group_readers: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &KafkaBusConfig {
        &self.config
    }
}

// Each operation lives with its concern (`admin`, `producer`); the spans stay here, on the
// trait methods, so they are named after the bus operation.
#[async_trait]
impl EventBus for KafkaBus {
    #[tracing::instrument(skip_all, fields(topics = specs.len()), err)]
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError> {
        self.create_topics(specs).await
    }

    #[tracing::instrument(skip_all, fields(topic = %topic, records = records.len()), err)]
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, BusError> {
        self.produce(topic, records).await
    }

    #[tracing::instrument(skip_all, fields(group = %group, topics = ?topics), err)]
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Consumer>, BusError> {
        self.join(group, topics, Pace::Live).await
    }

    #[tracing::instrument(skip_all, fields(group = %group, topics = ?topics), err)]
    async fn follow(&self, group: &str, topics: &[String]) -> Result<Box<dyn Consumer>, BusError> {
        self.join(group, topics, Pace::Follower).await
    }

    #[tracing::instrument(skip_all, fields(group = %group, topics = ?topics), err)]
    async fn reset_group(
        &self,
        group: &str,
        topics: &[String],
        to: GroupStart,
        only: Option<&[i32]>,
    ) -> Result<(), BusError> {
        self.reset_group_offsets(group, topics, to, only).await
    }

    #[tracing::instrument(skip_all, fields(topic = %topic), err)]
    async fn end_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
        self.high_watermarks(topic).await
    }

    // No `err`: a read-your-writes wait asks every few milliseconds and reports failures once.
    #[tracing::instrument(skip_all, fields(group = %group, topic = %topic))]
    async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, i64)>, BusError> {
        self.group_committed_offsets(group, topic).await
    }
}
