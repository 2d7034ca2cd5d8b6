//! ingest: the write edge of dealflow (DESIGN §1, §4).
//!
//! RetailCRM trigger webhooks become `OrderChanged` events and settings commands become
//! `IntegrationConfigured` events, each answered only after the event bus acknowledged the write.
//! It holds no database: its state is the `integrations` and `tenants` topics
//! ([`dealflow_shared::registry`], [`dealflow_shared::tenants`]).
//!
//! - [`service`]: `IngestService::build` / `run_until_stopped`, routes, health and metrics;
//! - [`webhook`]: `GET|POST /hooks/retailcrm/{token}`;
//! - [`api`]: the integration settings API; [`view`] its JSON; [`crm_check`] the key check;
//! - [`stage_mapping`]: the user's status outcome overrides and exclusions;
//! - [`tenants_api`]: tenants and their tokens (operator token only);
//! - [`access`]: whether a RetailCRM API key is enough, and what to enable when not;
//! - [`crm_url`]: validating and normalising the RetailCRM account URL (SSRF guard);
//! - `rotation`: sealing API keys again after the secret key was rotated;
//! - [`order_id`]: reading the order id from a webhook request in every form RetailCRM sends;
//! - `openapi`: the OpenAPI document of these routes ([`openapi()`]).

pub mod access;
pub mod api;
pub mod crm_check;
pub mod crm_url;
pub mod metrics;
mod openapi;
pub mod order_actions;
pub mod order_id;
pub mod resync;
mod rotation;
pub mod service;
pub mod stage_mapping;
pub mod state;
pub mod tenants_api;
pub mod view;
pub mod webhook;

pub use openapi::openapi;
pub use service::{DEFAULT_READ_SIDE_TIMEOUT, Ingest, IngestError, IngestService, IngestSettings};
pub use state::READ_MODEL_BEHIND;
