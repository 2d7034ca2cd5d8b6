//! Kafka metadata and administration: which topics exist and their partitions, topic creation
//! with the retention settings, moving a group back to the beginning, and reading watermarks
//! and a group's committed offsets.
//!
//! Metadata, watermark and offset calls block inside librdkafka, so they run on the blocking
//! pool ([`blocking`]).

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaBus;
use super::client::{TracingContext, blocking, classify, creation};
use crate::bus::{BusError, GroupStart, Retention, TopicSpec};

const MS_PER_DAY: u64 = 86_400_000;

impl KafkaBus {
    /// Fails with [`BusError::UnknownTopic`] unless `topic` exists. Without this check librdkafka
    /// would hold records for a missing topic until the publish timeout (auto-creation is off).
    pub(super) async fn check_topic(&self, topic: &str) -> Result<(), BusError> {
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

    /// [`EventBus::ensure_topics`](crate::bus::EventBus::ensure_topics) through the admin API;
    /// a topic that already exists is left as it is.
    pub(super) async fn create_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError> {
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

    /// [`EventBus::reset_group`](crate::bus::EventBus::reset_group): commits for `group` each
    /// partition's low watermark, or the first offset at or after a time (the high watermark
    /// where no record is that recent).
    pub(super) async fn reset_group_offsets(
        &self,
        group: &str,
        topics: &[String],
        to: GroupStart,
        only: Option<&[i32]>,
    ) -> Result<(), BusError> {
        let only = only.map(<[i32]>::to_vec);
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
                    if only.as_ref().is_some_and(|only| !only.contains(&partition)) {
                        continue;
                    }
                    let (low, high) = client
                        .fetch_watermarks(topic, partition, timeout)
                        .map_err(|e| classify(format!("fetching watermarks of {topic}"), e))?;
                    let offset = match to {
                        GroupStart::Earliest => low,
                        GroupStart::Since(time) => {
                            offset_at(&client, topic, partition, time, timeout)?.unwrap_or(high)
                        }
                    };
                    offsets
                        .add_partition_offset(topic, partition, Offset::Offset(offset))
                        .map_err(|e| classify("building the reset offsets", e))?;
                }
            }
            if offsets.count() == 0 {
                return Ok(()); // no partition named exists: nothing moves
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

    /// [`EventBus::end_offsets`](crate::bus::EventBus::end_offsets): the high watermark of
    /// every partition of `topic`.
    pub(super) async fn high_watermarks(&self, topic: &str) -> Result<Vec<(i32, i64)>, BusError> {
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

    /// [`EventBus::committed_offsets`](crate::bus::EventBus::committed_offsets), asked through
    /// the group's non-member client.
    pub(super) async fn group_committed_offsets(
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

/// The first offset of `topic`/`partition` whose record timestamp is at or after `time`;
/// `None` when every record is older.
fn offset_at(
    client: &BaseConsumer<TracingContext>,
    topic: &str,
    partition: i32,
    time: chrono::DateTime<chrono::Utc>,
    timeout: Duration,
) -> Result<Option<i64>, BusError> {
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, partition, Offset::Offset(time.timestamp_millis()))
        .map_err(|e| classify("building the time query", e))?;
    let found = client
        .offsets_for_times(query, timeout)
        .map_err(|e| classify(format!("finding offsets by time on {topic}"), e))?;
    let offset = found
        .find_partition(topic, partition)
        .map(|element| element.offset());
    Ok(match offset {
        Some(Offset::Offset(offset)) if offset >= 0 => Some(offset),
        _ => None,
    })
}
