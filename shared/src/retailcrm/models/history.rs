//! The order change feed: `GET /api/v5/orders/history` (API-NOTES §4).
//!
//! Entries come in ascending `id`; `sinceId` is exclusive, so the last `id` seen is the next
//! cursor. An entry's `order` is a full snapshot when `created` is true and a stub
//! (`{id, externalId, managerId, site, status}`) otherwise; both read into [`Order`].

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::envelope::{CombinedTo, Pagination};
use super::order::Order;
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
    /// snake_case field code, e.g. `status`, `delivery_cost`, `custom_<code>`.
    #[serde(default)]
    pub field: Option<String>,
    /// Value after, same shapes as `old_value`.
    #[serde(default)]
    pub new_value: serde_json::Value,
    /// The order: full on `created`, a stub otherwise.
    #[serde(default)]
    pub order: Option<Order>,
    /// The order this one was merged into.
    #[serde(default)]
    pub combined_to: Option<CombinedTo>,
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

/// The body of `GET /api/v5/orders/history` with each record kept as raw JSON, so one
/// record this build cannot read spoils only itself, not its page.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LenientHistoryResponse {
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub generated_at: Option<NaiveDateTime>,
    pub history: Vec<serde_json::Value>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

impl LenientHistoryResponse {
    /// Reads each record on its own: readable ones in `history`, the rest in `unreadable`.
    pub(crate) fn into_page(self) -> HistoryPage {
        let mut history = Vec::with_capacity(self.history.len());
        let mut unreadable = Vec::new();
        for raw in self.history {
            match serde_json::from_value::<OrderHistoryEntry>(raw.clone()) {
                Ok(entry) => history.push(entry),
                Err(error) => unreadable.push(UnreadableEntry {
                    id: raw.get("id").and_then(serde_json::Value::as_i64),
                    reason: error.to_string(),
                    raw,
                }),
            }
        }
        HistoryPage {
            history,
            unreadable,
            pagination: self.pagination,
            generated_at: self.generated_at,
        }
    }
}

/// A history record that could not be read, with its id when that much was readable.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableEntry {
    /// The record's `id`, if it is an integer.
    pub id: Option<i64>,
    /// Why it could not be read.
    pub reason: String,
    /// The record as RetailCRM sent it.
    pub raw: serde_json::Value,
}

/// One page of history, as [`crate::retailcrm::RetailCrmClient::orders_history`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The readable records, ascending by `id`.
    pub history: Vec<OrderHistoryEntry>,
    /// The records that could not be read (the cursor still moves past them).
    pub unreadable: Vec<UnreadableEntry>,
    /// Paging.
    pub pagination: Option<Pagination>,
    /// When the page was generated (account-local).
    pub generated_at: Option<NaiveDateTime>,
}

impl HistoryPage {
    /// The id to pass as the next `sinceId`: the last record's (readable or not), if any.
    pub fn last_id(&self) -> Option<i64> {
        let readable = self.history.iter().map(|e| e.id);
        readable
            .chain(self.unreadable.iter().filter_map(|e| e.id))
            .max()
    }

    /// Records on this page, readable or not.
    pub fn len(&self) -> usize {
        self.history.len() + self.unreadable.len()
    }

    /// Whether the page has no record at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
