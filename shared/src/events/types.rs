//! The payloads (`data`) of every event type, current version (the `sync-state` one is in
//! `sync_state`).
//!
//! Deal events carry **facts** only (DESIGN §5): the projector applies the integration's
//! markers (amount with or without delivery, one funnel or one per shop) when it builds the
//! view. Money is [`Decimal`] serialised as a string; times are UTC.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::tenants::TenantId;

/// Identifies one connected RetailCRM account; the key of every record on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntegrationId(pub Uuid);

impl IntegrationId {
    /// A new time-ordered id (UUID v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for IntegrationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for IntegrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for IntegrationId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// What made dealflow look at an order again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// A RetailCRM trigger called the webhook.
    Webhook,
    /// The `orders/history` reconciliation found a change.
    History,
    /// The backfill on connect.
    Backfill,
    /// A re-sync the user asked for.
    Resync,
    /// A user asked for the order to be fetched again (`POST …/refetch`); OrderChanged v2.
    Refetch,
    /// A user retried the order's dead letter (`POST …/dead-letters/{id}/retry`); v2.
    Retry,
}

/// `order-changed`: RetailCRM says this order changed; the enricher fetches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderChanged {
    /// RetailCRM's internal order id (`{{ order.id }}`).
    pub order_id: u64,
    pub source: ChangeSource,
    pub received_at: DateTime<Utc>,
}

/// A RetailCRM API key sealed with the service's secret key (an AEAD ciphertext, base64).
///
/// Opaque here: sealing and opening live with the component that holds the secret key.
/// `Debug` never prints the ciphertext either, so logs stay boring.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedApiKey(pub String);

impl fmt::Debug for SealedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedApiKey(..)")
    }
}

/// `integrations` (compacted): the full current settings of one integration.
///
/// v2 added `tenant_id`; v1 records (written before tenants) belong to the tenant `default`.
/// v3 added `revenue`; v1 and v2 records count the total (the fields default).
/// v4 added `stage_mapping`; older records map every status by its group (no rules).
/// v5 added the re-sync's `until`; older requests load up to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfigured {
    /// The cabinet customer the integration belongs to (DESIGN §4 "Tenants and tokens").
    pub tenant_id: TenantId,
    /// Normalised account URL, `https://host/`.
    pub crm_url: String,
    pub api_key_sealed: SealedApiKey,
    /// The last four characters of the key, for display.
    pub api_key_hint: String,
    pub active: bool,
    /// Marker: one funnel "default" for every order (on) or one funnel per shop (off).
    pub default_funnel: bool,
    /// Marker: amount = `total_sum` (on) or `total_sum − delivery_cost` (off).
    pub include_delivery_cost: bool,
    /// What `amount` counts (DESIGN §5 "Revenue"); v3.
    #[serde(default)]
    pub revenue: Revenue,
    /// The user's overrides of the status groups' outcomes, and the statuses whose deals are
    /// left out (DESIGN §4 "stage-mapping"), by status code; a status without a rule maps by
    /// its group. v4.
    #[serde(default)]
    pub stage_mapping: BTreeMap<String, StageRule>,
    /// Days of past orders to load on connect (0 = none).
    pub backfill_days: u32,
    /// Rotation counter of the webhook token (the token is recomputed, never stored).
    pub webhook_token_generation: u32,
    /// The account's latest `orders/history` id at connect time: where reconciliation starts.
    pub history_since_id: Option<u64>,
    /// The latest re-sync the user asked for; the enricher runs each request once.
    pub resync: Option<ResyncRequested>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a deal's `amount` counts (DESIGN §5 "Revenue"): the order total (with or without
/// delivery, as `include_delivery_cost` says), that minus the purchase sum, or what was paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Revenue {
    #[default]
    Total,
    Margin,
    Paid,
}

impl Revenue {
    pub fn as_str(self) -> &'static str {
        match self {
            Revenue::Total => "total",
            Revenue::Margin => "margin",
            Revenue::Paid => "paid",
        }
    }

    /// From its wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [Revenue::Total, Revenue::Margin, Revenue::Paid]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// Whether a deal is still open, won or lost (DESIGN §5 "Funnel").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageOutcome {
    Open,
    Won,
    Lost,
}

impl StageOutcome {
    /// The default from the RetailCRM status group: `complete` wins, `cancel` loses, anything
    /// else is open.
    pub fn of_group(group: Option<&str>) -> Self {
        match group {
            Some("complete") => StageOutcome::Won,
            Some("cancel") => StageOutcome::Lost,
            _ => StageOutcome::Open,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StageOutcome::Open => "open",
            StageOutcome::Won => "won",
            StageOutcome::Lost => "lost",
        }
    }

    /// From its wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [StageOutcome::Open, StageOutcome::Won, StageOutcome::Lost]
            .into_iter()
            .find(|o| o.as_str() == text)
    }

    /// Won or lost.
    pub fn is_closed(self) -> bool {
        self != StageOutcome::Open
    }
}

/// The user's rule for one status: an outcome other than its group's, and whether deals in it
/// are left out (spam, test, duplicates). A rule with neither is not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRule {
    #[serde(default)]
    pub outcome: Option<StageOutcome>,
    #[serde(default)]
    pub excluded: bool,
}

impl StageRule {
    /// Whether the rule changes anything (one that does not is dropped from the mapping).
    pub fn is_effective(self) -> bool {
        self.outcome.is_some() || self.excluded
    }
}

/// A user's request to load every order created since a date again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResyncRequested {
    /// Orders created on or after this day (account timezone) are loaded.
    pub since: NaiveDate,
    /// ... and on or before this day (IntegrationConfigured v5; `None`: up to now, as every
    /// v4 request meant).
    #[serde(default)]
    pub until: Option<NaiveDate>,
    /// Identifies the request: a new request replaces an unfinished one.
    pub requested_at: DateTime<Utc>,
}

/// `integrations`: the integration was deleted by its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationRemoved {
    pub removed_at: DateTime<Utc>,
}

/// The responsible manager of a deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manager {
    pub id: u64,
    /// `None` when the user is unknown or deleted in RetailCRM.
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The contact person of a deal as stored on the order (and its card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealContact {
    /// RetailCRM customer id, when the order is linked to a customer.
    pub id: Option<u64>,
    pub name: Option<String>,
    /// E.164, de-duplicated, the order's own phones first.
    pub phones: Vec<String>,
    /// Lower-cased, de-duplicated.
    pub emails: Vec<String>,
}

/// The company of a corporate order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Company {
    pub id: u64,
    pub name: Option<String>,
}

/// Marketing attribution of the order (RetailCRM `source`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub keyword: Option<String>,
    pub content: Option<String>,
}

/// `deals`: the facts of one order as fetched from RetailCRM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealUpserted {
    pub order_id: u64,
    pub number: Option<String>,
    pub external_id: Option<String>,
    /// Shop (RetailCRM site) code.
    pub site: String,
    pub status_code: String,
    pub status_group: Option<String>,
    /// RetailCRM `totalSumm`: goods after discounts plus delivery.
    #[serde(with = "rust_decimal::serde::str")]
    pub total_sum: Decimal,
    /// RetailCRM `delivery.cost` (0 when absent).
    #[serde(with = "rust_decimal::serde::str")]
    pub delivery_cost: Decimal,
    pub currency: Option<String>,
    pub manager: Option<Manager>,
    pub contact: Option<DealContact>,
    pub company: Option<Company>,
    pub utm: Utm,
    pub client_id: Option<String>,
    pub custom_fields: BTreeMap<String, serde_json::Value>,
    /// RetailCRM `createdAt`, converted from the account timezone.
    pub created_at: DateTime<Utc>,
    /// When the order entered its current status (`statusUpdatedAt`, or the history record's
    /// `createdAt` when known), converted from the account timezone.
    pub stage_entered_at: Option<DateTime<Utc>>,
    /// When the enricher read this snapshot: an older snapshot never overwrites a newer one.
    pub observed_at: DateTime<Utc>,
    // v2 (DESIGN §5 "Revenue", "Lines"): what the deal is worth and what was in it. Absent
    // from v1 records, which decode with these unknown (null, no lines): the view they gave.
    /// RetailCRM `orderType`.
    #[serde(default)]
    pub order_type: Option<String>,
    /// RetailCRM `orderMethod`.
    #[serde(default)]
    pub order_method: Option<String>,
    /// RetailCRM `purchaseSumm`: what the goods cost the shop.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub purchase_sum: Option<Decimal>,
    /// RetailCRM `prepaySum`: what the customer has paid.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub paid_sum: Option<Decimal>,
    /// RetailCRM `fullPaidAt`, converted from the account timezone.
    #[serde(default)]
    pub paid_at: Option<DateTime<Utc>>,
    /// The order lines (`items`), in RetailCRM's order.
    #[serde(default)]
    pub items: Vec<DealItem>,
}

/// One order line of a deal (DESIGN §5 "Lines").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealItem {
    /// `offer.id`.
    pub offer_id: Option<u64>,
    /// `offer.article`.
    pub article: Option<String>,
    /// `offer.displayName`, else `offer.name`, else `productName`.
    pub name: Option<String>,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// Unit price after discounts: `initialPrice − discountTotal`.
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    /// `price × quantity`.
    #[serde(with = "rust_decimal::serde::str")]
    pub sum: Decimal,
    /// `purchasePrice` per unit.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub purchase_price: Option<Decimal>,
    /// `isCanceled`: the line is not part of the order's sum.
    pub canceled: bool,
}

/// `deals`: status changes RetailCRM recorded for one order, read from `orders/history` by
/// reconciliation or by a backfill's / re-sync's timeline pass (DESIGN §5 "Stage timeline").
///
/// Facts only, like the snapshots: the projector merges them with the stages the snapshots
/// reported into one timeline, one entry per (stage, instant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealStagesRecorded {
    pub order_id: u64,
    /// The order's status records of one history page, ascending by `history_id`.
    pub stages: Vec<StageRecorded>,
    /// When the enricher read the records.
    pub observed_at: DateTime<Utc>,
}

/// One status an order entered, as an `orders/history` record tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRecorded {
    /// The new status (`newValue.code`, or the status of the order's creation record).
    pub stage_code: String,
    /// The record's `createdAt`, converted from the account timezone (whole seconds).
    pub entered_at: DateTime<Utc>,
    /// The record's id: RetailCRM's own order of changes made within the same second.
    pub history_id: u64,
}

/// `deals`: the order is gone from RetailCRM (deleted, or merged into another order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealDeleted {
    pub order_id: u64,
    /// The surviving order when this one was merged (`combinedTo`).
    pub merged_into: Option<u64>,
    pub observed_at: DateTime<Utc>,
}

/// Whether a contact is a person or a company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Person,
    Company,
}

/// `contacts`: a contact person or company as seen on an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactUpserted {
    pub contact_id: u64,
    pub kind: ContactKind,
    pub name: Option<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub observed_at: DateTime<Utc>,
}

/// `funnels`: a (shop, status) stage, emitted when first seen and whenever it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelStageSeen {
    pub site: String,
    pub site_name: Option<String>,
    pub stage_code: String,
    pub stage_name: String,
    /// The status' own `ordering` inside its group.
    pub stage_ordering: i64,
    pub active: bool,
    pub group_code: String,
    pub group_name: Option<String>,
    pub group_ordering: i64,
    pub observed_at: DateTime<Utc>,
}

/// The health of an integration as the enricher last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    AuthFailed,
    AccessDenied,
    Unreachable,
    RateLimited,
    Pending,
}

/// `health` (compacted): the integration's health changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationHealthChanged {
    pub status: HealthStatus,
    /// A sentence for the user; never contains a secret.
    pub message: Option<String>,
    pub checked_at: DateTime<Utc>,
}
