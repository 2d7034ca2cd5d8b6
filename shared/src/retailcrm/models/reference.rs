//! Reference dictionaries: `reference/statuses`, `reference/status-groups`, `reference/sites`
//! (API-NOTES §6): what the funnel stages and the deal's shop are built from.
//!
//! Dictionaries are objects keyed by code; like every empty object in this API they come back
//! as `[]` when empty, so they are read with the lenient map reader.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::retailcrm::lenient;

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
}

/// A site (store, "shop").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    /// Site code (the orders' `site`).
    pub code: String,
    /// Display name.
    pub name: String,
    /// Country, ISO-3166 alpha-2 (default region for phone numbers).
    #[serde(default)]
    pub country_iso: Option<String>,
    /// Currency code.
    #[serde(default)]
    pub currency: Option<String>,
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
