//! Orders: `GET /api/v5/orders/{id}?by=id` and `GET /api/v5/orders` (API-NOTES §3, §5).
//!
//! Every field but `id` is optional: the API omits absent keys, and history entries carry a
//! stub order (`{id, externalId, managerId, site, status}`) in the same type. Money is
//! [`Decimal`]; datetimes are naive account-local values (see [`crate::retailcrm::time`]).
//!
//! Only the fields dealflow reads are modelled (the deal's facts, DESIGN §4/§5, including the
//! lines and payment facts of the deal value); serde skips the rest, so a field nobody reads
//! can never fail an order.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::customer::{Company, Customer, OrderCustomer, Source};
use super::envelope::Pagination;
use crate::retailcrm::{lenient, time};

/// Custom field values by code: bool, number, string or array (multiselect). The API sends
/// `[]` when there are none.
pub type CustomFields = BTreeMap<String, serde_json::Value>;

/// One order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Internal id (what the trigger's `{{ order.id }}` gives).
    pub id: i64,
    /// Human order number, e.g. `"7141C"`.
    #[serde(default)]
    pub number: Option<String>,
    /// Id in the shop or CMS.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Store (site) code.
    #[serde(default)]
    pub site: Option<String>,
    /// Status code (see `reference/statuses`).
    #[serde(default)]
    pub status: Option<String>,
    /// Last status change (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub status_updated_at: Option<NaiveDateTime>,
    /// Order date (account-local; can be set on import).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub created_at: Option<NaiveDateTime>,
    /// Order type code.
    #[serde(default)]
    pub order_type: Option<String>,
    /// Order method code.
    #[serde(default)]
    pub order_method: Option<String>,
    /// Currency code, e.g. `RUB`.
    #[serde(default)]
    pub currency: Option<String>,
    /// Grand total: goods after all discounts plus `delivery.cost`.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total_summ: Option<Decimal>,
    /// Amount already paid.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub prepay_sum: Option<Decimal>,
    /// Purchase price of the goods.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub purchase_summ: Option<Decimal>,
    /// Contact data stored on the order (may differ from the customer card).
    #[serde(default)]
    pub first_name: Option<String>,
    /// See `first_name`.
    #[serde(default)]
    pub last_name: Option<String>,
    /// See `first_name`.
    #[serde(default)]
    pub patronymic: Option<String>,
    /// See `first_name`.
    #[serde(default)]
    pub phone: Option<String>,
    /// See `first_name`.
    #[serde(default)]
    pub additional_phone: Option<String>,
    /// See `first_name`.
    #[serde(default)]
    pub email: Option<String>,
    /// Responsible user (`/users/{id}`).
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub manager_id: Option<i64>,
    /// The customer: individual or corporate, by its `type`.
    #[serde(default)]
    pub customer: Option<OrderCustomer>,
    /// The contact person (duplicates `customer` on individual orders).
    #[serde(default)]
    pub contact: Option<Customer>,
    /// The company (corporate orders).
    #[serde(default)]
    pub company: Option<Company>,
    /// Delivery, with its cost.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// UTM-like attribution of the order.
    #[serde(default)]
    pub source: Option<Source>,
    /// Google Analytics client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Custom field values by code.
    #[serde(default, deserialize_with = "lenient::map_or_empty")]
    pub custom_fields: CustomFields,
    /// Order lines.
    #[serde(default)]
    pub items: Vec<OrderItem>,
    /// Payments; the API sends an object keyed by payment id or an array, read in body order.
    #[serde(default, deserialize_with = "lenient::vec_or_map")]
    pub payments: Vec<Payment>,
    /// When the order became fully paid.
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub full_paid_at: Option<NaiveDateTime>,
}

impl Order {
    /// `delivery.cost`, `None` when the order has no delivery or no cost.
    pub fn delivery_cost(&self) -> Option<Decimal> {
        self.delivery.as_ref().and_then(|d| d.cost)
    }
}

/// `delivery` of an order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// What the customer pays for delivery.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub cost: Option<Decimal>,
}

/// One order line (`items[]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// The catalogue offer.
    #[serde(default)]
    pub offer: Option<Offer>,
    /// Name for lines without an offer.
    #[serde(default)]
    pub product_name: Option<String>,
    /// Unit price before discounts.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub initial_price: Option<Decimal>,
    /// Discount per unit.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub discount_total: Option<Decimal>,
    /// Quantity (fractional for weighed goods).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub quantity: Option<Decimal>,
    /// Cancelled lines are left out of `summ`.
    #[serde(default)]
    pub is_canceled: bool,
    /// Purchase price per unit.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub purchase_price: Option<Decimal>,
}

/// `items[].offer`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// Offer id.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub id: Option<i64>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Article (SKU).
    #[serde(default)]
    pub article: Option<String>,
}

/// One payment of an order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Payment status code.
    #[serde(default)]
    pub status: Option<String>,
    /// Amount.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub amount: Option<Decimal>,
    /// When it was paid.
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub paid_at: Option<NaiveDateTime>,
}

/// Body of `GET /api/v5/orders/{id}` (also of create/edit, which add a top-level `id`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderResponse {
    /// Always `true` here.
    pub success: bool,
    /// The order.
    pub order: Order,
}

/// Body of `GET /api/v5/orders`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrdersResponse {
    /// Always `true` here.
    pub success: bool,
    /// Paging of the filter.
    pub pagination: Pagination,
    /// The page of orders.
    pub orders: Vec<Order>,
}

/// One page of orders, as [`crate::retailcrm::RetailCrmClient::orders`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersPage {
    /// The orders on this page.
    pub orders: Vec<Order>,
    /// Paging of the filter.
    pub pagination: Pagination,
}
