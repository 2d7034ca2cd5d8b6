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

mod config;
mod consumer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub use config::KafkaBusConfig;
pub use consumer::KafkaConsumer;

use super::{BusError, Consumer, EventBus, OutRecord, Position, Retention, TopicSpec};

/// Wait before retrying to enqueue when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);
const MS_PER_DAY: u64 = 86_400_000;

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

    /// Fails with [`BusError::UnknownTopic`] unless `topic` exists. Without this check librdkafka
    /// would hold records for a missing topic until the publish timeout (auto-creation is off).
    async fn check_topic(&self, topic: &str) -> Result<(), BusError> {
        let known = self
            .known_topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(topic);
        if !known {
            self.partitions(topic).await?;
            self.known_topics
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(topic.to_owned());
        }
        Ok(())
    }

    /// The cached client that reads `group`'s committed offsets without joining it.
    fn group_reader(&self, group: &str) -> Result<Arc<BaseConsumer<TracingContext>>, BusError> {
        let mut readers = self
            .group_readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reader) = readers.get(group) {
            return Ok(Arc::clone(reader));
        }
        let reader: BaseConsumer<TracingContext> = self
            .config
            .consumer(Some(group))
            .create_with_context(TracingContext)
            .map_err(|e| creation("group offsets client", e))?;
        let reader = Arc::new(reader);
        readers.insert(group.to_owned(), Arc::clone(&reader));
        Ok(reader)
    }

    /// Partition ids of `topic`, or [`BusError::UnknownTopic`].
    async fn partitions(&self, topic: &str) -> Result<Vec<i32>, BusError> {
        let meta = Arc::clone(&self.meta);
        let timeout = self.config.request_timeout;
        let name = topic.to_owned();
        blocking(move || topic_partitions(&meta, &name, timeout)).await
    }
}

/// Partition ids of `topic` from a metadata request (blocking).
fn topic_partitions<C: ConsumerContext>(
    client: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, BusError> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| classify(format!("fetching metadata of {topic}"), e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(BusError::UnknownTopic(topic.to_owned()));
    };
    if let Some(error) = found.error() {
        let code = RDKafkaErrorCode::from(error);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Err(BusError::UnknownTopic(topic.to_owned()));
        }
        return Err(classify(
            format!("fetching metadata of {topic}"),
            KafkaError::MetadataFetch(code),
        ));
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    if partitions.is_empty() {
        return Err(BusError::UnknownTopic(topic.to_owned()));
    }
    partitions.sort_unstable();
    Ok(partitions)
}

#[async_trait]
impl EventBus for KafkaBus {
    #[tracing::instrument(skip_all, fields(topics = specs.len()), err)]
    async fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError> {
        let settings: Vec<Vec<(&str, String)>> =
            specs.iter().map(|s| topic_settings(s.retention)).collect();
        let replication = self.config.replication_factor;
        let new_topics: Vec<NewTopic<'_>> = specs
            .iter()
            .zip(&settings)
            .map(|(spec, settings)| {
                let topic = NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(replication),
                );
                settings.iter().fold(topic, |t, (k, v)| t.set(k, v))
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(self.config.request_timeout))
            .operation_timeout(Some(self.config.request_timeout));
        let results = self
            .admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|e| classify("creating topics", e))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "created topic"),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::debug!(topic = %name, "topic exists");
                }
                Err((name, code)) => {
                    return Err(classify(
                        format!("creating topic {name}"),
                        KafkaError::AdminOp(code),
                    ));
                }
            }
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(topic = %topic, records = records.len()), err)]
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<Position>, BusError> {
        let timeout = self.config.publish_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        tokio::time::timeout_at(deadline, self.check_topic(topic))
            .await
            .map_err(|_| BusError::Timeout {
                operation: format!("metadata of {topic}"),
                after: timeout,
            })??;
        let timed_out = || BusError::Timeout {
            operation: format!("delivery to {topic}"),
            after: timeout,
        };
        // Enqueue strictly in order: a later record never overtakes an earlier one.
        let mut pending = Vec::with_capacity(records.len());
        for record in &records {
            let headers = record.headers.iter().fold(
                OwnedHeaders::new_with_capacity(record.headers.len()),
                |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(value),
                    })
                },
            );
            let mut out = FutureRecord::to(topic)
                .key(&record.key)
                .payload(&record.payload)
                .headers(headers);
            loop {
                match self.producer.send_result(out) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(timed_out());
                        }
                        out = back;
                        tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                    }
                    Err((error, _)) => {
                        return Err(classify(format!("enqueueing a record for {topic}"), error));
                    }
                }
            }
        }
        let reports = tokio::time::timeout_at(deadline, join_all(pending))
            .await
            .map_err(|_| timed_out())?;
        reports
            .into_iter()
            .map(|report| match report {
                Ok(Ok(delivery)) => Ok(Position {
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Ok(Err((error, _))) => Err(classify(format!("delivering to {topic}"), error)),
                Err(_canceled) => Err(BusError::fatal_msg("the Kafka producer was dropped")),
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(group = %group, topics = ?topics), err)]
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Box<dyn Consumer>, BusError> {
        for topic in topics {
            self.check_topic(topic).await?;
        }
        let consumer = KafkaConsumer::subscribe(&self.config, group, topics)?;
        Ok(Box::new(consumer))
    }

    #[tracing::instrument(skip_all, fields(group = %group, topics = ?topics), err)]
    async fn reset_group(&self, group: &str, topics: &[String]) -> Result<(), BusError> {
        let client: BaseConsumer<TracingContext> = self
            .config
            .consumer(Some(group))
            .create_with_context(TracingContext)
            .map_err(|e| creation("group client", e))?;
        let timeout = self.config.request_timeout;
        let (group, topics) = (group.to_owned(), topics.to_vec());
        blocking(move || {
            let mut offsets = TopicPartitionList::new();
            for topic in &topics {
                for partition in topic_partitions(&client, topic, timeout)? {
                    let (low, _high) = client
                        .fetch_watermarks(topic, partition, timeout)
                        .map_err(|e| classify(format!("fetching watermarks of {topic}"), e))?;
                    offsets
                        .add_partition_offset(topic, partition, Offset::Offset(low))
                        .map_err(|e| classify("building the reset offsets", e))?;
                }
            }
            // A commit outside the group's generation is refused while members are active.
            client.commit(&offsets, CommitMode::Sync).map_err(|error| {
                match error.rdkafka_error_code() {
                    Some(
                        RDKafkaErrorCode::UnknownMemberId
                        | RDKafkaErrorCode::IllegalGeneration
                        | RDKafkaErrorCode::RebalanceInProgress
                        | RDKafkaErrorCode::NonEmptyGroup,
                    ) => BusError::GroupBusy(group.clone()),
                    _ => classify(format!("resetting group {group}"), error),
                }
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(topic = %topic), err)]
    async fn end_offsets(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
        let meta = Arc::clone(&self.meta);
        let timeout = self.config.request_timeout;
        let topic = topic.to_owned();
        blocking(move || {
            topic_partitions(&meta, &topic, timeout)?
                .into_iter()
                .map(|partition| {
                    let (_low, high) = meta
                        .fetch_watermarks(&topic, partition, timeout)
                        .map_err(|e| classify(format!("fetching watermarks of {topic}"), e))?;
                    Ok((partition, high))
                })
                .collect()
        })
        .await
    }

    // No `err`: a read-your-writes wait asks every few milliseconds and reports failures once.
    #[tracing::instrument(skip_all, fields(group = %group, topic = %topic))]
    async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<(i32, i64)>, BusError> {
        let client = self.group_reader(group)?;
        let timeout = self.config.request_timeout;
        let topic = topic.to_owned();
        blocking(move || group_committed(&client, &topic, timeout)).await
    }
}

/// The committed offsets of `client`'s group on every partition of `topic` (blocking).
fn group_committed(
    client: &BaseConsumer<TracingContext>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, BusError> {
    let mut wanted = TopicPartitionList::new();
    for partition in topic_partitions(client, topic, timeout)? {
        wanted.add_partition(topic, partition);
    }
    let committed = client
        .committed_offsets(wanted, timeout)
        .map_err(|e| classify(format!("fetching committed offsets of {topic}"), e))?;
    let mut offsets: Vec<(i32, i64)> = committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(next) => Some((e.partition(), next)),
            // `Invalid`: the group never committed on this partition.
            _ => None,
        })
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

/// Topic-level configs for a retention policy.
fn topic_settings(retention: Retention) -> Vec<(&'static str, String)> {
    match retention {
        Retention::Compacted => vec![("cleanup.policy", "compact".to_owned())],
        Retention::Days(days) => vec![
            ("cleanup.policy", "delete".to_owned()),
            ("retention.ms", (u64::from(days) * MS_PER_DAY).to_string()),
        ],
        Retention::Forever => vec![
            ("cleanup.policy", "delete".to_owned()),
            ("retention.ms", "-1".to_owned()),
        ],
    }
}

/// Runs a blocking librdkafka call on the blocking pool.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, BusError> + Send + 'static,
) -> Result<T, BusError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| BusError::fatal("a Kafka client call panicked", e))?
}

fn creation(what: &str, error: KafkaError) -> BusError {
    match error {
        KafkaError::ClientConfig(..) => BusError::Config(format!("Kafka {what}: {error}")),
        other => BusError::fatal(format!("creating the Kafka {what}"), other),
    }
}

/// Classifies a librdkafka error: unreachable brokers, leadership moves and timeouts are
/// transient; everything else (authorization, invalid records, unknown topics) is fatal.
pub(super) fn classify(context: impl Into<String>, error: KafkaError) -> BusError {
    use RDKafkaErrorCode as C;
    let transient = error.rdkafka_error_code().is_some_and(|code| {
        matches!(
            code,
            C::BrokerTransportFailure
                | C::Resolve
                | C::AllBrokersDown
                | C::MessageTimedOut
                | C::OperationTimedOut
                | C::TimedOutQueue
                | C::RequestTimedOut
                | C::QueueFull
                | C::WaitingForCoordinator
                | C::Retry
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::BrokerNotAvailable
                | C::ReplicaNotAvailable
                | C::NetworkException
                | C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::RebalanceInProgress
                | C::KafkaStorageError
                | C::FencedLeaderEpoch
                | C::UnknownLeaderEpoch
                | C::OffsetNotAvailable
                | C::PreferredLeaderNotAvailable
                | C::ThrottlingQuotaExceeded
        )
    });
    if transient {
        BusError::unavailable(context, error)
    } else {
        BusError::fatal(context, error)
    }
}

/// Routes librdkafka's logs and client errors to `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Mostly connection trouble that librdkafka retries on its own.
        tracing::warn!(%error, reason, "kafka client error");
    }
}

impl ConsumerContext for TracingContext {}

/// One librdkafka log line as a tracing event at the matching level.
pub(super) fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, message: &str) {
    use RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", fac, "{message}");
        }
        L::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, "{message}"),
        L::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}
