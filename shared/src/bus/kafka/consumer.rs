//! The Kafka consumer: a `StreamConsumer` in a group, offsets stored and committed explicitly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};

use super::KafkaBusConfig;
use super::client::{blocking, classify, log_librdkafka};
use super::config::Pace;
use crate::bus::{BusError, Consumer, Delivered, RevokeHook};

/// Logs rebalances and commits of one group member, and tells its revoke hook.
#[derive(Clone)]
pub(super) struct GroupContext {
    group: String,
    /// Set once by [`Consumer::on_revoke`]; called from librdkafka's rebalance callback.
    revoke_hook: Arc<Mutex<Option<RevokeHook>>>,
}

impl std::fmt::Debug for GroupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupContext")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_librdkafka(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(group = %self.group, %error, reason, "kafka consumer error");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                tracing::info!(group = %self.group, partitions = %describe(tpl), "partitions revoked");
                let hook = self
                    .revoke_hook
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if let Some(hook) = hook {
                    let revoked: Vec<(String, i32)> = tpl
                        .elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition()))
                        .collect();
                    hook(&revoked);
                }
            }
            Rebalance::Assign(tpl) => {
                tracing::info!(group = %self.group, partitions = %describe(tpl), "partitions assigned");
            }
            Rebalance::Error(error) => {
                tracing::error!(group = %self.group, %error, "rebalance failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                tracing::debug!(group = %self.group, offsets = %describe(offsets), "committed")
            }
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(group = %self.group, %error, "commit failed"),
        }
    }
}

/// `topic[partition]@offset, …` for logs.
fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]@{:?}", e.topic(), e.partition(), e.offset()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A member of a Kafka consumer group.
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<GroupContext>>,
    group: String,
    revoke_hook: Arc<Mutex<Option<RevokeHook>>>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// Creates the consumer and subscribes; the group assigns partitions on the first polls.
    pub(super) fn subscribe(
        config: &KafkaBusConfig,
        group: &str,
        topics: &[String],
        pace: Pace,
    ) -> Result<Self, BusError> {
        let revoke_hook = Arc::new(Mutex::new(None));
        let context = GroupContext {
            group: group.to_owned(),
            revoke_hook: Arc::clone(&revoke_hook),
        };
        let consumer: StreamConsumer<GroupContext> = config
            .consumer_paced(Some(group), pace)
            .create_with_context(context)
            .map_err(|e| classify(format!("creating a consumer for group {group}"), e))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(|e| classify(format!("subscribing group {group}"), e))?;
        Ok(Self {
            consumer: Arc::new(consumer),
            group: group.to_owned(),
            revoke_hook,
        })
    }
}

/// Copies a message out of librdkafka's buffer.
fn owned(message: &BorrowedMessage<'_>) -> Delivered {
    let headers = message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    h.value.map_or_else(Vec::new, <[u8]>::to_vec),
                )
            })
            .collect()
    });
    Delivered {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: message.payload().map_or_else(Vec::new, <[u8]>::to_vec),
        headers,
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    #[tracing::instrument(skip_all, fields(group = %self.group), err)]
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Delivered>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let first = match tokio::time::timeout(timeout, self.consumer.recv()).await {
            Err(_elapsed) => return Ok(Vec::new()),
            Ok(Err(error)) => return Err(classify(format!("consuming for {}", self.group), error)),
            Ok(Ok(message)) => owned(&message),
        };
        let mut records = vec![first];
        // Take whatever else is already buffered, without waiting.
        while records.len() < max {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => records.push(owned(&message)),
                Some(Err(error)) => {
                    // Returning an error here would drop records already taken from the
                    // queue; hand them over and let the next poll surface a lasting error.
                    tracing::warn!(group = %self.group, %error, "consumer error after a partial batch");
                    break;
                }
                None => break,
            }
        }
        Ok(records)
    }

    fn store(&mut self, record: &Delivered) -> Result<(), BusError> {
        // librdkafka stores `offset + 1`, the next record to read.
        self.consumer
            .store_offset(&record.topic, record.partition, record.offset)
            .map_err(|e| {
                classify(
                    format!(
                        "storing offset {} of {}[{}]",
                        record.offset, record.topic, record.partition
                    ),
                    e,
                )
            })
    }

    #[tracing::instrument(skip_all, fields(group = %self.group), err)]
    async fn commit(&mut self) -> Result<(), BusError> {
        let consumer = Arc::clone(&self.consumer);
        let group = self.group.clone();
        blocking(
            move || match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                Err(error) => Err(classify(format!("committing offsets of {group}"), error)),
            },
        )
        .await
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        match self.consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(error) => {
                tracing::warn!(group = %self.group, %error, "reading the assignment");
                Vec::new()
            }
        }
    }

    fn on_revoke(&mut self, hook: RevokeHook) {
        *self
            .revoke_hook
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hook);
    }
}
