//! The wire schema: one envelope and every event type of DESIGN §6.
//!
//! Every record on the bus is JSON of the shape
//! `{"type", "version", "id", "integration_id", "occurred_at", "data"}` and is keyed by the
//! integration id. Types are past tense and never reused or removed; a new shape is a new
//! `version`, decoded alongside the old ones and upcast into the current type by
//! [`Envelope::decode`].
//! Golden JSON files under `shared/golden/` pin every type and version.

mod envelope;
mod sync_state;
mod types;
mod v1;

pub use envelope::{DecodeError, Envelope, Event, EventType};
pub use sync_state::*;
pub use types::*;
