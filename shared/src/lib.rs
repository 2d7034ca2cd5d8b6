//! dealflow-shared: everything the components agree on.
//!
//! - [`events`]: the wire schema (envelope and every event type of DESIGN §6);
//! - [`topics`]: topic names under the configurable prefix;
//! - [`config`]: typed configuration from the environment (DESIGN §3);
//! - [`http`]: the JSON error body, bearer auth and route-labelled HTTP metrics;
//! - [`views`]: response shapes several services answer with (the integration);
//! - [`serve`]: serving a router with a header-read timeout and a connection cap;
//! - [`telemetry`] and [`metrics`]: logging and the Prometheus registry helper;
//! - [`follow`]: reading a compacted topic to its end, then following it;
//! - [`registry`]: every integration's current settings, followed from the `integrations` topic;
//! - [`visibility`]: read your writes, a write waiting until the read side shows it;
//! - [`bus`]: the event bus trait with its Kafka and embedded-log backends;
//! - [`tenants`]: tenants, their tokens, and the scope each request is answered in;
//! - [`secrets`]: sealing API keys at rest and deriving webhook tokens;
//! - [`wiring`]: startup glue (opening the configured bus);
//! - [`retailcrm`]: the RetailCRM API v5 client, its request budget and typed models.

pub mod bus;
pub mod config;
pub mod events;
pub mod follow;
pub mod http;
pub mod metrics;
pub mod registry;
pub mod retailcrm;
pub mod secrets;
pub mod serve;
pub mod sqlite_checkpoint;
pub mod sqlite_readers;
pub mod stages;
pub mod telemetry;
pub mod tenants;
pub mod topics;
pub mod views;
pub mod visibility;
pub mod wiring;
