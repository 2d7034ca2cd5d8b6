//! Why the enricher stopped: only fatal conditions end up here (bad settings, a bus that is
//! gone for good, the dead-letter cap). Transient and per-order failures are handled inside
//! the account workers and never stop the service.

use std::net::SocketAddr;

use dealflow_shared::bus::BusError;

/// A fatal enricher failure.
#[derive(Debug, thiserror::Error)]
pub enum EnricherError {
    /// The settings break a rule (checked before any I/O).
    #[error("invalid enricher settings: {0}")]
    Settings(String),
    /// The ops listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The event bus failed in a way retrying cannot fix (or the dead-letter cap was hit).
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    /// The ops HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// An account worker ended without being asked to (a bug); its records would never
    /// finish, so the enricher stops instead of holding its partition forever.
    #[error("the worker of integration {0} stopped unexpectedly")]
    WorkerLost(String),
}
