//! Why the projector stopped.

use std::net::SocketAddr;

use dealflow_shared::bus::BusError;

use crate::apply::batch::BatchError;
use crate::store::StoreError;

/// A projector failure that stops it (or a replay).
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("replay stopped before it finished")]
    ReplayCancelled,
}
