//! enricher: the only component that talks to RetailCRM (DESIGN §1, §5, §7).
//!
//! Consumes `order-changed` as a consumer group, fetches the changed orders in batches of up to
//! 100 per call within each account's request budget, and emits `DealUpserted` /
//! `DealDeleted`, `ContactUpserted`, `FunnelStageSeen` and `IntegrationHealthChanged`.
//!
//! - [`service`]: `EnricherService::build` / `run_until_stopped`, the ops listener;
//! - [`settings`]: [`EnricherSettings`] and its defaults;
//! - `context`: what the intake and every account worker of the process share;
//! - `intake`: the consumer loop, routing and offsets; [`offsets`]: which offsets may move;
//! - `worker`: one task per account (batching, backoff, parking, health); [`queue`]: its
//!   de-duplicated waiting orders;
//! - [`reference`](mod@reference) and [`crm`]: the account's cached reference data and measured calls;
//! - [`mapping`]: orders → facts (DESIGN §5), pure; [`output`]: publishing; [`metrics`];
//! - [`sync`]: reconciliation of `orders/history`, backfill on connect and re-sync (DESIGN
//!   §7.1), their state on the compacted `sync-state` topic; the work runs in the account's
//!   worker (`worker::reconcile`, `worker::load`), live changes first.
//!
//! # Offsets, failures and parked accounts
//!
//! At least once: a record's offset is stored only after every output for it (or its dead
//! letter) is acknowledged, and only when every earlier record of its partition is finished.
//! One account's failures never delay another's *processing*: each account has its own worker,
//! budget and backoff, so a 503 storm or a revoked key only slows that account. They could
//! still hold back the partition's *committed offset* (accounts share partitions), which
//! would mean re-fetching the other accounts' records after a restart. So a record that waits
//! longer than `requeue_after` (5 minutes by default) is appended again, bytes and key
//! unchanged, at the end of its partition, and only then finished: the committed offset moves
//! on, nothing is lost across a restart (the appended record is durable before the old one is
//! released), and the order stays queued in the parked worker. The cost is one appended
//! record per stalled order per `requeue_after`, and after a restart at most `requeue_after`
//! of other accounts' records are fetched again.

mod context;
pub mod crm;
pub mod error;
mod intake;
pub mod mapping;
pub mod metrics;
pub mod offsets;
pub mod output;
pub mod queue;
pub mod reference;
pub mod service;
pub mod settings;
pub mod sync;
mod worker;

pub use error::EnricherError;
pub use service::{EnricherService, Readiness};
pub use settings::EnricherSettings;
pub use worker::HEADER_REQUEUED;
