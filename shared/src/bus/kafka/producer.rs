//! Publishing on Kafka: records are enqueued on the one idempotent producer strictly in order,
//! then every delivery report is awaited before `publish` answers.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::KafkaBus;
use super::client::classify;
use crate::bus::{BusError, OutRecord, Position};

/// Wait before retrying to enqueue when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

impl KafkaBus {
    /// [`EventBus::publish`](crate::bus::EventBus::publish): enqueues `records` in order and
    /// waits for every delivery report within the publish timeout.
    pub(super) async fn produce(
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
}
