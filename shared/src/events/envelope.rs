//! The envelope every record travels in, and decoding by (type, version).
//!
//! Decoding is the only place that knows old versions: each (type, version) pair the system has
//! ever written is listed in [`decode_data`] and upcast into the current payload type, so the
//! rest of the code only sees current shapes. Unknown types and versions are refused with an
//! error that names them (a consumer dead-letters such a record rather than guessing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::sync_state::*;
use super::types::*;
use super::v1;

/// One event with its metadata, as it travels on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Unique per event (UUID v7, time ordered); consumers may deduplicate on it.
    pub id: Uuid,
    /// The record key: one account's events stay in order on one partition.
    pub integration_id: IntegrationId,
    pub occurred_at: DateTime<Utc>,
    pub event: Event,
}

/// Every event type of DESIGN §6, each holding its current payload version.
// Events are handled one at a time and never stored in bulk, so the size difference between
// variants costs nothing worth a `Box` at every construction site.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Event {
    OrderChanged(OrderChanged),
    IntegrationConfigured(IntegrationConfigured),
    IntegrationRemoved(IntegrationRemoved),
    DealUpserted(DealUpserted),
    DealDeleted(DealDeleted),
    DealStagesRecorded(DealStagesRecorded),
    ContactUpserted(ContactUpserted),
    FunnelStageSeen(FunnelStageSeen),
    IntegrationHealthChanged(IntegrationHealthChanged),
    SyncStateChanged(SyncStateChanged),
}

/// The name of an event type, as written in the envelope's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    OrderChanged,
    IntegrationConfigured,
    IntegrationRemoved,
    DealUpserted,
    DealDeleted,
    DealStagesRecorded,
    ContactUpserted,
    FunnelStageSeen,
    IntegrationHealthChanged,
    SyncStateChanged,
}

impl EventType {
    /// Every type, for tests and metrics.
    pub const ALL: [EventType; 10] = [
        EventType::OrderChanged,
        EventType::IntegrationConfigured,
        EventType::IntegrationRemoved,
        EventType::DealUpserted,
        EventType::DealDeleted,
        EventType::DealStagesRecorded,
        EventType::ContactUpserted,
        EventType::FunnelStageSeen,
        EventType::IntegrationHealthChanged,
        EventType::SyncStateChanged,
    ];

    /// The wire name (also a fine low-cardinality metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderChanged => "OrderChanged",
            EventType::IntegrationConfigured => "IntegrationConfigured",
            EventType::IntegrationRemoved => "IntegrationRemoved",
            EventType::DealUpserted => "DealUpserted",
            EventType::DealDeleted => "DealDeleted",
            EventType::DealStagesRecorded => "DealStagesRecorded",
            EventType::ContactUpserted => "ContactUpserted",
            EventType::FunnelStageSeen => "FunnelStageSeen",
            EventType::IntegrationHealthChanged => "IntegrationHealthChanged",
            EventType::SyncStateChanged => "SyncStateChanged",
        }
    }

    /// The version new events of this type are written with.
    pub fn current_version(self) -> u32 {
        match self {
            // v2: a load's progress carries its timeline pass (`LoadProgress::timeline`).
            // v3: a load's `until` (v2 loads run up to now).
            EventType::SyncStateChanged => 3,
            // v2: the integration belongs to a tenant (`tenant_id`); v3: `revenue` (v2 records
            // decode with the default, the total); v4: `stage_mapping` (v3 records decode
            // with no rules: every status maps by its group); v5: the re-sync's `until` (older
            // requests load up to now).
            EventType::IntegrationConfigured => 5,
            // v2: payments, purchase sum, order type and method, and the lines; v1 records
            // decode with those unknown (the fields default).
            EventType::DealUpserted => 2,
            // v2: the sources `refetch` and `retry` (a v1 record is a v2 record as it is).
            EventType::OrderChanged => 2,
            _ => 1,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self {
            Event::OrderChanged(_) => EventType::OrderChanged,
            Event::IntegrationConfigured(_) => EventType::IntegrationConfigured,
            Event::IntegrationRemoved(_) => EventType::IntegrationRemoved,
            Event::DealUpserted(_) => EventType::DealUpserted,
            Event::DealDeleted(_) => EventType::DealDeleted,
            Event::DealStagesRecorded(_) => EventType::DealStagesRecorded,
            Event::ContactUpserted(_) => EventType::ContactUpserted,
            Event::FunnelStageSeen(_) => EventType::FunnelStageSeen,
            Event::IntegrationHealthChanged(_) => EventType::IntegrationHealthChanged,
            Event::SyncStateChanged(_) => EventType::SyncStateChanged,
        }
    }
}

/// Why bytes could not be read as an event. Each kind names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an event envelope: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "unsupported version {version} of event type {event_type} (this build reads versions 1..={newest})"
    )]
    UnsupportedVersion {
        event_type: &'static str,
        version: u32,
        newest: u32,
    },
    #[error("invalid data for {event_type} v{version}: {source}")]
    InvalidData {
        event_type: &'static str,
        version: u32,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    version: u32,
    id: Uuid,
    integration_id: IntegrationId,
    occurred_at: DateTime<Utc>,
    data: &'a Event,
}

/// The envelope as read: `data` stays raw JSON text (a slice of the record) until its type
/// and version say what to decode it into — decoding it into a `serde_json::Value` first cost
/// the projector about a twentieth of its CPU (a tree of maps and strings per event).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn<'a> {
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    id: Uuid,
    integration_id: IntegrationId,
    occurred_at: DateTime<Utc>,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl Envelope {
    /// Wraps an event that happens now, with a fresh id.
    pub fn new(integration_id: IntegrationId, event: Event) -> Self {
        Self {
            id: Uuid::now_v7(),
            integration_id,
            occurred_at: Utc::now(),
            event,
        }
    }

    /// The record key on the bus.
    pub fn key(&self) -> String {
        self.integration_id.to_string()
    }

    /// JSON bytes in the current version of the event's type.
    pub fn encode(&self) -> Vec<u8> {
        let event_type = self.event.event_type();
        let wire = WireOut {
            event_type: event_type.as_str(),
            version: event_type.current_version(),
            id: self.id,
            integration_id: self.integration_id,
            occurred_at: self.occurred_at,
            data: &self.event,
        };
        // Serialising plain structs of strings, numbers and maps cannot fail.
        serde_json::to_vec(&wire).expect("event serialisation is infallible")
    }

    /// Reads any known (type, version), upcasting old versions to the current payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: WireIn = serde_json::from_slice(bytes).map_err(DecodeError::Malformed)?;
        let event_type = EventType::from_name(&wire.event_type)
            .ok_or_else(|| DecodeError::UnknownType(wire.event_type.clone()))?;
        let event = decode_data(event_type, wire.version, wire.data)?;
        Ok(Self {
            id: wire.id,
            integration_id: wire.integration_id,
            occurred_at: wire.occurred_at,
            event,
        })
    }
}

/// The table of every (type, version) ever written: the current version decodes into the
/// current struct, an older one into its own shape (`v1`) and is upcast from there.
fn decode_data(event_type: EventType, version: u32, data: &RawValue) -> Result<Event, DecodeError> {
    let data = data.get();
    if version == 0 || version > event_type.current_version() {
        return Err(DecodeError::UnsupportedVersion {
            event_type: event_type.as_str(),
            version,
            newest: event_type.current_version(),
        });
    }
    let invalid = |source| DecodeError::InvalidData {
        event_type: event_type.as_str(),
        version,
        source,
    };
    let event = match event_type {
        EventType::OrderChanged => {
            Event::OrderChanged(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::IntegrationConfigured if version == 1 => Event::IntegrationConfigured(
            serde_json::from_str::<v1::IntegrationConfiguredV1>(data)
                .map_err(invalid)?
                .into(),
        ),
        EventType::IntegrationConfigured => {
            Event::IntegrationConfigured(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::IntegrationRemoved => {
            Event::IntegrationRemoved(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::DealUpserted => {
            Event::DealUpserted(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::DealDeleted => Event::DealDeleted(serde_json::from_str(data).map_err(invalid)?),
        EventType::DealStagesRecorded => {
            Event::DealStagesRecorded(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::ContactUpserted => {
            Event::ContactUpserted(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::FunnelStageSeen => {
            Event::FunnelStageSeen(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::IntegrationHealthChanged => {
            Event::IntegrationHealthChanged(serde_json::from_str(data).map_err(invalid)?)
        }
        EventType::SyncStateChanged if version == 1 => Event::SyncStateChanged(
            serde_json::from_str::<v1::SyncStateChangedV1>(data)
                .map_err(invalid)?
                .into(),
        ),
        EventType::SyncStateChanged => {
            Event::SyncStateChanged(serde_json::from_str(data).map_err(invalid)?)
        }
    };
    Ok(event)
}
