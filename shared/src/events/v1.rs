//! Payloads of earlier versions, exactly as they were written, and their upcasts into the
//! current types. Never changed or removed: records of these versions stay on the topics (the
//! compacted `sync-state` keeps each integration's last record for ever), and `decode` reads
//! them through these shapes.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::sync_state::{LoadKind, LoadProgress, SyncStateChanged};
use super::types::{IntegrationConfigured, ResyncRequested, Revenue, SealedApiKey, TenantId};

/// `IntegrationConfigured` v1: written before tenants; such an integration belongs to the
/// tenant `default` (DESIGN §4: "Integrations that existed before tenants belong to the tenant
/// `default`", with no manual step).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IntegrationConfiguredV1 {
    crm_url: String,
    api_key_sealed: SealedApiKey,
    api_key_hint: String,
    active: bool,
    default_funnel: bool,
    include_delivery_cost: bool,
    backfill_days: u32,
    webhook_token_generation: u32,
    history_since_id: Option<u64>,
    resync: Option<ResyncRequested>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<IntegrationConfiguredV1> for IntegrationConfigured {
    fn from(v1: IntegrationConfiguredV1) -> Self {
        Self {
            tenant_id: TenantId::default_tenant(),
            crm_url: v1.crm_url,
            api_key_sealed: v1.api_key_sealed,
            api_key_hint: v1.api_key_hint,
            active: v1.active,
            default_funnel: v1.default_funnel,
            include_delivery_cost: v1.include_delivery_cost,
            revenue: Revenue::Total,
            stage_mapping: Default::default(),
            backfill_days: v1.backfill_days,
            webhook_token_generation: v1.webhook_token_generation,
            history_since_id: v1.history_since_id,
            resync: v1.resync,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
        }
    }
}

/// `SyncStateChanged` v1: loads without a timeline pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncStateChangedV1 {
    history_cursor: Option<u64>,
    last_reconciled_at: Option<DateTime<Utc>>,
    backfill: Option<LoadProgressV1>,
    resync: Option<LoadProgressV1>,
    updated_at: DateTime<Utc>,
}

/// `LoadProgress` inside `SyncStateChanged` v1.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadProgressV1 {
    kind: LoadKind,
    since: NaiveDate,
    requested_at: DateTime<Utc>,
    pages_done: u32,
    pages_total: Option<u32>,
    orders_done: u64,
    orders_total: Option<u64>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<SyncStateChangedV1> for SyncStateChanged {
    fn from(v1: SyncStateChangedV1) -> Self {
        Self {
            history_cursor: v1.history_cursor,
            last_reconciled_at: v1.last_reconciled_at,
            backfill: v1.backfill.map(Into::into),
            resync: v1.resync.map(Into::into),
            updated_at: v1.updated_at,
        }
    }
}

impl From<LoadProgressV1> for LoadProgress {
    /// A v1 load never ran a timeline pass: `timeline: None`, so a finished v1 load still
    /// gets its deals' timelines completed after an upgrade.
    fn from(v1: LoadProgressV1) -> Self {
        Self {
            kind: v1.kind,
            since: v1.since,
            until: None,
            requested_at: v1.requested_at,
            pages_done: v1.pages_done,
            pages_total: v1.pages_total,
            orders_done: v1.orders_done,
            orders_total: v1.orders_total,
            started_at: v1.started_at,
            finished_at: v1.finished_at,
            timeline: None,
        }
    }
}
