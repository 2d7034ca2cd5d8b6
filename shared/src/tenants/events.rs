//! The records of the `tenants` topic (DESIGN §4 "Tenants and tokens", §6): who the cabinet's
//! customers are and which tokens act for them.
//!
//! They travel in their own small envelope, not the integration one: a tenant record is about
//! a tenant or a token, not an integration, and the topic is compacted per tenant and per token
//! (the record key says which, [`TenantRecord::key`]). The shape mirrors the integration
//! envelope (`type`, `version`, `id`, `occurred_at`, `data`) so the same tools read both, and
//! follows the same rules: types are never reused, a new shape is a new version.
//! No record ever holds a token in clear: only its keyed hash ([`crate::secrets`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::DecodeError;

/// Identifies a tenant: `default` for the one every earlier integration belongs to, a UUID for
/// the others. A string, because `default` is a name users and scripts already rely on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub String);

impl TenantId {
    /// The tenant of every integration created before tenants existed, and of every one the
    /// operator creates without naming a tenant.
    pub const DEFAULT: &'static str = "default";

    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_string())
    }

    /// A new tenant's id (UUID v7, time ordered).
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::default_tenant()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `TenantConfigured`: a tenant and its current name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfigured {
    pub tenant_id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// `TenantRemoved`: the tenant is gone (it had no integrations left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRemoved {
    pub tenant_id: TenantId,
    pub removed_at: DateTime<Utc>,
}

/// `TenantTokenIssued`: a token of a tenant, as its keyed hash only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantTokenIssued {
    pub token_id: Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    /// HMAC-SHA256 of the token under a key derived from `DEALFLOW_SECRET_KEY`, hex.
    pub token_hash: String,
    /// The token's prefix and last four characters, for people to tell tokens apart.
    pub token_hint: String,
    pub created_at: DateTime<Utc>,
}

/// `TenantTokenRevoked`: the token is refused from now on, by every process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantTokenRevoked {
    pub token_id: Uuid,
    pub tenant_id: TenantId,
    pub revoked_at: DateTime<Utc>,
}

/// `TenantTokenUsed`: a token was used at `used_at` (coarse: a process writes this at most once
/// a minute per token, so `last_used_at` costs no write per request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantTokenUsed {
    pub token_id: Uuid,
    pub tenant_id: TenantId,
    pub used_at: DateTime<Utc>,
}

/// Every record type of the `tenants` topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TenantEvent {
    TenantConfigured(TenantConfigured),
    TenantRemoved(TenantRemoved),
    TenantTokenIssued(TenantTokenIssued),
    TenantTokenRevoked(TenantTokenRevoked),
    TenantTokenUsed(TenantTokenUsed),
}

impl TenantEvent {
    /// The wire name of the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            TenantEvent::TenantConfigured(_) => "TenantConfigured",
            TenantEvent::TenantRemoved(_) => "TenantRemoved",
            TenantEvent::TenantTokenIssued(_) => "TenantTokenIssued",
            TenantEvent::TenantTokenRevoked(_) => "TenantTokenRevoked",
            TenantEvent::TenantTokenUsed(_) => "TenantTokenUsed",
        }
    }

    /// The tenant the record is about.
    pub fn tenant_id(&self) -> &TenantId {
        match self {
            TenantEvent::TenantConfigured(e) => &e.tenant_id,
            TenantEvent::TenantRemoved(e) => &e.tenant_id,
            TenantEvent::TenantTokenIssued(e) => &e.tenant_id,
            TenantEvent::TenantTokenRevoked(e) => &e.tenant_id,
            TenantEvent::TenantTokenUsed(e) => &e.tenant_id,
        }
    }
}

/// One record of the `tenants` topic with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub event: TenantEvent,
}

#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    version: u32,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    data: &'a TenantEvent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    data: serde_json::Value,
}

impl TenantRecord {
    /// Wraps an event that happens now, with a fresh id.
    pub fn new(event: TenantEvent) -> Self {
        Self {
            id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            event,
        }
    }

    /// The record key, so compaction keeps the latest record of each tenant and each token:
    /// a tenant's records share `tenant/<id>`, a token's issue and revocation `token/<id>`,
    /// and its use marks `token-used/<id>` (a use mark must never replace a revocation).
    pub fn key(&self) -> String {
        match &self.event {
            TenantEvent::TenantConfigured(e) => format!("tenant/{}", e.tenant_id),
            TenantEvent::TenantRemoved(e) => format!("tenant/{}", e.tenant_id),
            TenantEvent::TenantTokenIssued(e) => format!("token/{}", e.token_id),
            TenantEvent::TenantTokenRevoked(e) => format!("token/{}", e.token_id),
            TenantEvent::TenantTokenUsed(e) => format!("token-used/{}", e.token_id),
        }
    }

    /// JSON bytes (every type is at version 1).
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireOut {
            event_type: self.event.type_name(),
            version: 1,
            id: self.id,
            occurred_at: self.occurred_at,
            data: &self.event,
        };
        serde_json::to_vec(&wire).expect("event serialisation is infallible")
    }

    /// Reads a record, refusing unknown types and versions by name.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: WireIn = serde_json::from_slice(bytes).map_err(DecodeError::Malformed)?;
        let name: &'static str = match wire.event_type.as_str() {
            "TenantConfigured" => "TenantConfigured",
            "TenantRemoved" => "TenantRemoved",
            "TenantTokenIssued" => "TenantTokenIssued",
            "TenantTokenRevoked" => "TenantTokenRevoked",
            "TenantTokenUsed" => "TenantTokenUsed",
            other => return Err(DecodeError::UnknownType(other.to_string())),
        };
        if wire.version != 1 {
            return Err(DecodeError::UnsupportedVersion {
                event_type: name,
                version: wire.version,
                newest: 1,
            });
        }
        let invalid = |source| DecodeError::InvalidData {
            event_type: name,
            version: 1,
            source,
        };
        let data = wire.data;
        let event = match name {
            "TenantConfigured" => {
                TenantEvent::TenantConfigured(serde_json::from_value(data).map_err(invalid)?)
            }
            "TenantRemoved" => {
                TenantEvent::TenantRemoved(serde_json::from_value(data).map_err(invalid)?)
            }
            "TenantTokenIssued" => {
                TenantEvent::TenantTokenIssued(serde_json::from_value(data).map_err(invalid)?)
            }
            "TenantTokenRevoked" => {
                TenantEvent::TenantTokenRevoked(serde_json::from_value(data).map_err(invalid)?)
            }
            _ => TenantEvent::TenantTokenUsed(serde_json::from_value(data).map_err(invalid)?),
        };
        Ok(Self {
            id: wire.id,
            occurred_at: wire.occurred_at,
            event,
        })
    }
}
