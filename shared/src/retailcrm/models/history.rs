//! The order change feed: `GET /api/v5/orders/history` (API-NOTES §4).
//!
//! Entries come in ascending `id`; `sinceId` is exclusive, so the last `id` seen is the next
//! cursor. An entry's `order` is a full snapshot when `created` is true and a stub
//! (`{id, externalId, managerId, site, status}`) otherwise; both read into [`Order`].

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::envelope::{CombinedTo, Pagination};
use super::order::{Order, OrderItem, Payment};
use crate::retailcrm::time;

/// One change record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderHistoryEntry {
    /// Monotonic record id (the `sinceId` cursor).
    pub id: i64,
    /// When the change happened (account-local).
    #[serde(deserialize_with = "time::datetime")]
    pub created_at: NaiveDateTime,
    /// True only on the record of the order's creation.
    #[serde(default)]
    pub created: bool,
    /// The order was deleted (or merged away, see `combined_to`).
    #[serde(default)]
    pub deleted: bool,
    /// Who changed it: `api`, `code`, `user`, `rule`, `combine`, `split`, ...
    #[serde(default)]
    pub source: Option<String>,
    /// snake_case field code, e.g. `status`, `delivery_cost`, `custom_<code>`.
    #[serde(default)]
    pub field: Option<String>,
    /// Value before: a scalar, `null` or an object such as `{"code": "new"}`.
    #[serde(default)]
    pub old_value: serde_json::Value,
    /// Value after, same shapes as `old_value`.
    #[serde(default)]
    pub new_value: serde_json::Value,
    /// The order: full on `created`, a stub otherwise.
    #[serde(default)]
    pub order: Option<Order>,
    /// The order this one was merged into.
    #[serde(default)]
    pub combined_to: Option<CombinedTo>,
    /// The user who made the change (`source = user`).
    #[serde(default)]
    pub user: Option<UserRef>,
    /// The API key that made the change (`source = api`).
    #[serde(default)]
    pub api_key: Option<ApiKeyRef>,
    /// The order line concerned (`order_product.*` fields).
    #[serde(default)]
    pub item: Option<OrderItem>,
    /// The payment concerned (`payments.*` fields).
    #[serde(default)]
    pub payment: Option<Payment>,
}

/// `user: {id}` of a history record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct UserRef {
    /// User id.
    pub id: i64,
}

/// `apiKey: {current}` of a history record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ApiKeyRef {
    /// The change was made with the key making this request.
    #[serde(default)]
    pub current: bool,
}

/// Body of `GET /api/v5/orders/history`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrdersHistoryResponse {
    /// Always `true` here.
    pub success: bool,
    /// When the page was generated (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub generated_at: Option<NaiveDateTime>,
    /// The records, ascending by `id`.
    pub history: Vec<OrderHistoryEntry>,
    /// Paging.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// One page of history, as [`crate::retailcrm::RetailCrmClient::orders_history`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The records, ascending by `id`.
    pub history: Vec<OrderHistoryEntry>,
    /// Paging.
    pub pagination: Option<Pagination>,
    /// When the page was generated (account-local).
    pub generated_at: Option<NaiveDateTime>,
}

impl HistoryPage {
    /// The id to pass as the next `sinceId`: the last record's, if any.
    pub fn last_id(&self) -> Option<i64> {
        self.history.iter().map(|e| e.id).max()
    }
}
