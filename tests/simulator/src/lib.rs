//! A RetailCRM API v5 simulator for the demo, the end-to-end tests and the benchmarks.
//!
//! Each simulated account listens on its own port (a RetailCRM account is its own host) and
//! serves the read endpoints dealflow uses with the shapes and quirks of the real API (see
//! `../shared/retailcrm/API-NOTES.md` and the fixtures): naive datetimes in the account
//! timezone, `[]` for empty objects, int-or-float money, references keyed by code, `by`
//! defaulting to `externalId`, `page` + `sinceId` rejected, the real error bodies, and the
//! 10 requests/s limit answered with 503.
//!
//! Test controls (Rust: [`AccountHandle`]; HTTP: `/_sim/...` on every account port, no API
//! key, test-only) mutate orders, write the matching history, manage keys, inject faults and
//! read counters and the current truth.
//!
//! Where the real API is undocumented the simulator decides, and `README.md` lists each
//! decision (503 body, 403 for a missing key, list order, deletion record fields, …).

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod controls;
pub mod counters;
pub mod data;
pub mod error;
pub mod faults;
pub mod history;
pub mod model;
pub mod money;
pub mod orders;
pub mod rate_limit;
pub mod render;
pub mod routes;
pub mod server;
pub mod store;

pub use accounts::Account;
pub use cli::{SimArgs, run};
pub use config::{AccountConfig, ErrorBody, KeyAccess, SimConfig, SiteAccess};
pub use counters::CountersSnapshot;
pub use data::{NewItem, NewOrder};
pub use error::SimError;
pub use faults::{FaultAction, FaultRule};
pub use history::Actor;
pub use orders::{ItemEdit, OrderEdit};
pub use server::{AccountHandle, SimHandle, Simulator};
