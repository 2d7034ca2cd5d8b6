//! What every Kafka client of the backend shares: the context that routes librdkafka's logs and
//! errors to `tracing`, the classification of librdkafka errors into transient and fatal, and
//! the hop to the blocking pool for calls that block inside librdkafka.
//!
//! Kept apart from the producer, consumer and admin code so each of them classifies and logs
//! errors the same way.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::bus::BusError;

/// Runs a blocking librdkafka call on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, BusError> + Send + 'static,
) -> Result<T, BusError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| BusError::fatal("a Kafka client call panicked", e))?
}

/// A client that could not be created: rejected properties are a configuration error (the
/// operator's to fix), anything else is fatal.
pub(super) fn creation(what: &str, error: KafkaError) -> BusError {
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
                // The member lost its place in the group (a session that timed out while the
                // broker was away, a rebalance it missed): it rejoins on its own, and what it
                // had not committed is delivered again, to it or to the partition's new owner.
                | C::IllegalGeneration
                | C::UnknownMemberId
                | C::AssignmentLost
                | C::State
        )
    });
    // The cause goes into the message too: a log line of the error alone must say what
    // librdkafka answered.
    let context = format!("{}: {error}", context.into());
    if transient {
        BusError::unavailable(context, error)
    } else {
        BusError::fatal(context, error)
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

    use super::classify;

    #[test]
    fn losing_the_group_membership_is_transient_and_named() {
        for code in [
            C::IllegalGeneration,
            C::UnknownMemberId,
            C::AssignmentLost,
            C::State,
        ] {
            let error = classify("committing offsets of g", KafkaError::ConsumerCommit(code));
            assert!(error.is_transient(), "{code:?}: {error}");
            assert!(
                error.to_string().contains("committing offsets of g"),
                "{error}"
            );
        }
        let fatal = classify("x", KafkaError::ConsumerCommit(C::TopicAuthorizationFailed));
        assert!(!fatal.is_transient(), "{fatal}");
        assert!(
            fatal.to_string().contains("uthoriz"),
            "the cause is named: {fatal}"
        );
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
