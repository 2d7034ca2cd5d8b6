//! The bus error type: what callers branch on (retry later, or stop).

use std::error::Error as StdError;
use std::time::Duration;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An event bus failure, classified so callers know whether to retry.
///
/// [`is_transient`](BusError::is_transient) is true for [`Unavailable`](BusError::Unavailable)
/// and [`Timeout`](BusError::Timeout): retry with backoff, keep the offset. Everything else is
/// fatal for the operation (bad configuration, a missing topic, a broken store, the dead-letter
/// cap) and should stop the component loudly.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker or store cannot be reached right now (broker down, leader moving, busy).
    #[error("event bus unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The operation was not acknowledged in time.
    #[error("event bus did not answer within {after:?}: {operation}")]
    Timeout {
        /// What was waited for.
        operation: String,
        /// How long.
        after: Duration,
    },

    /// The topic does not exist (create it with `ensure_topics` first).
    #[error("topic {0:?} does not exist on the event bus")]
    UnknownTopic(String),

    /// The consumer group already has an active member where only one is allowed (a second
    /// member on the embedded log, or a reset while a member is active).
    #[error("consumer group {0:?} already has an active member")]
    GroupBusy(String),

    /// The bus configuration is invalid.
    #[error("invalid event bus configuration: {0}")]
    Config(String),

    /// Too many dead letters in the cap's window: stop instead of draining everything.
    #[error(
        "dead-letter cap reached: {count} records dead-lettered within {window:?}; stopping so a bad deploy does not drain the topic"
    )]
    DeadLetterCapReached {
        /// Dead letters sent within the window.
        count: usize,
        /// The sliding window.
        window: Duration,
    },

    /// Any other failure (storage broken, protocol error, a record the broker refused).
    #[error("event bus failed: {message}")]
    Fatal {
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl BusError {
    /// True when retrying later may succeed (the offset should stay where it is).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }

    /// A transient failure with its cause.
    pub(crate) fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A fatal failure with its cause.
    pub(crate) fn fatal(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Fatal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A fatal failure without an underlying error.
    pub(crate) fn fatal_msg(message: impl Into<String>) -> Self {
        Self::Fatal {
            message: message.into(),
            source: None,
        }
    }
}
