//! projector: the raw-deals read model and its API (DESIGN §4, §5, §7).
//!
//! Consumes `deals`, `contacts`, `funnels`, `integrations`, `health` and `order-changed`,
//! applies them idempotently into PostgreSQL or SQLite, and serves the read API from there.
//!
//! - [`service`]: [`ProjectorService::build`] / `run_until_stopped`, and [`Projector`] for
//!   embedding (router, consumer, replay);
//! - [`settings`]: the [`ProjectorSettings`];
//! - `consumer`: poll → apply in one transaction with the offsets →
//!   commit, with retries, dead letters and the lag gauge;
//! - [`apply`]: the events → rows policy, and batches applied with their offsets;
//! - [`derive`](mod@derive): markers (amount, funnel) and the stage history (outcome, closure);
//! - [`read`] and `api`: the views and the HTTP read API (DESIGN §4);
//! - [`replay`](mod@replay): rebuilding the read model from the topics;
//! - [`store`]: the database (sqlx `Any`, one schema and one set of migrations for both);

mod api;
pub mod apply;
mod consumer;
pub mod derive;
mod error;
mod metrics;
pub mod read;
pub mod replay;
pub mod service;
pub mod settings;
pub mod store;

pub use api::{DEFAULT_LIMIT, DealPage, MAX_LIMIT, Reads, openapi};
pub use apply::Applied;
pub use apply::batch::{BatchError, BatchOutcome, DEAD_LETTER_STAGE};
pub use error::ProjectorError;
pub use metrics::ProjectorMetrics;
pub use replay::{ReplayProgress, ReplayReport, replay};
pub use service::{Projector, ProjectorService};
pub use settings::{DEFAULT_BATCH_SIZE, DEFAULT_REPLAY_BATCH_SIZE, ProjectorSettings};
pub use store::{Dialect, Store, StoreError};
