//! Reference dictionaries: `reference/statuses`, `reference/status-groups`, `reference/sites`
//! (API-NOTES §6), and the common shape of the other dictionaries.
//!
//! Dictionaries are objects keyed by code; like every empty object in this API they come back
//! as `[]` when empty, so they are read with the lenient map reader.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::customer::Contragent;
use crate::retailcrm::{lenient, time};

/// An order status. Statuses are account-wide (no `site`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    /// Status code, e.g. `new` or `dict-statuses-1571123798`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Inactive statuses still appear on old orders.
    pub active: bool,
    /// Order within its group.
    pub ordering: i64,
    /// Status-group code.
    pub group: String,
}

/// A status group (`new`, `approval`, `assembling`, `delivery`, `complete`, `cancel`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusGroup {
    /// Group code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Active flag.
    pub active: bool,
    /// Order of the groups.
    pub ordering: i64,
    /// "In progress" group.
    #[serde(default)]
    pub process: bool,
    /// Codes of the statuses in this group.
    #[serde(default)]
    pub statuses: Vec<String>,
}

/// A site (store, "shop").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    /// Site code (the orders' `site`).
    pub code: String,
    /// Display name.
    pub name: String,
    /// Site id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Shop URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Country, ISO-3166 alpha-2 (default region for phone numbers).
    #[serde(default)]
    pub country_iso: Option<String>,
    /// Currency code.
    #[serde(default)]
    pub currency: Option<String>,
    /// Default site in the CRM.
    #[serde(default)]
    pub default_for_crm: Option<bool>,
    /// Sort order.
    #[serde(default)]
    pub ordering: Option<i64>,
    /// Legal entity of the site.
    #[serde(default)]
    pub contragent: Option<Contragent>,
    /// Catalogue id (a string, even when numeric).
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// Last catalogue update (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub catalog_updated_at: Option<NaiveDateTime>,
    /// Demo site.
    #[serde(default)]
    pub is_demo: Option<bool>,
}

/// The shape every other dictionary entry shares (order types, order methods, delivery and
/// payment types, payment and product statuses, units, price types, ...). Only the common
/// fields are typed; nothing in dealflow reads the rest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceEntry {
    /// Code (absent on a few list-shaped references such as messenger channels).
    #[serde(default)]
    pub code: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Numeric id, on list-shaped references.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub id: Option<i64>,
    /// Active flag.
    #[serde(default)]
    pub active: Option<bool>,
    /// Sort order.
    #[serde(default)]
    pub ordering: Option<i64>,
}

/// Entries of a dictionary by code.
pub type Dictionary<T> = BTreeMap<String, T>;

/// Body of `GET /api/v5/reference/statuses`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatusesResponse {
    /// Always `true` here.
    pub success: bool,
    /// Statuses by code.
    #[serde(deserialize_with = "lenient::map_or_empty")]
    pub statuses: Dictionary<Status>,
}

/// Body of `GET /api/v5/reference/status-groups`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusGroupsResponse {
    /// Always `true` here.
    pub success: bool,
    /// Groups by code.
    #[serde(deserialize_with = "lenient::map_or_empty")]
    pub status_groups: Dictionary<StatusGroup>,
}

/// Body of `GET /api/v5/reference/sites`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SitesResponse {
    /// Always `true` here.
    pub success: bool,
    /// Sites by code.
    #[serde(deserialize_with = "lenient::map_or_empty")]
    pub sites: Dictionary<Site>,
}

/// Reads a dictionary that may come as `[]` when empty; for callers' own response types.
pub fn dictionary<'de, D, T>(d: D) -> Result<Dictionary<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    lenient::map_or_empty(d)
}
