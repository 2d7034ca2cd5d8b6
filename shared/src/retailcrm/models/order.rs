//! Orders: `GET /api/v5/orders/{id}?by=id` and `GET /api/v5/orders` (API-NOTES §3, §5).
//!
//! Every field but `id` is optional: the API omits absent keys, and history entries carry a
//! stub order (`{id, externalId, managerId, site, status}`) in the same type. Money is
//! [`Decimal`]; datetimes are naive account-local values (see [`crate::retailcrm::time`]).

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::customer::{Address, Company, Contragent, Customer, OrderCustomer, Source};
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
    /// Comment to the last status change.
    #[serde(default)]
    pub status_comment: Option<String>,
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
    /// ISO-3166 alpha-2 country.
    #[serde(default)]
    pub country_iso: Option<String>,
    /// Currency code, e.g. `RUB`.
    #[serde(default)]
    pub currency: Option<String>,
    /// Goods of the non-cancelled items, without delivery.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub summ: Option<Decimal>,
    /// Grand total: goods after all discounts plus `delivery.cost`.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total_summ: Option<Decimal>,
    /// Amount already paid.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub prepay_sum: Option<Decimal>,
    /// Purchase price of the goods.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub purchase_summ: Option<Decimal>,
    /// One-off manual discount on the whole order (amount).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub discount_manual_amount: Option<Decimal>,
    /// One-off manual discount on the whole order (percent).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub discount_manual_percent: Option<Decimal>,
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
    /// Legal details of the buyer.
    #[serde(default)]
    pub contragent: Option<Contragent>,
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
    /// Links to related orders.
    #[serde(default)]
    pub links: Vec<OrderLink>,
    /// Created through the API.
    #[serde(default)]
    pub from_api: Option<bool>,
    /// Shipped from the warehouse.
    #[serde(default)]
    pub shipped: Option<bool>,
    /// Warehouse code.
    #[serde(default)]
    pub shipment_store: Option<String>,
    /// Shipment date.
    #[serde(default)]
    pub shipment_date: Option<NaiveDate>,
    /// Manager's comment.
    #[serde(default)]
    pub manager_comment: Option<String>,
    /// Customer's comment.
    #[serde(default)]
    pub customer_comment: Option<String>,
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
    /// Delivery type code.
    #[serde(default)]
    pub code: Option<String>,
    /// Integration code of the delivery service.
    #[serde(default)]
    pub integration_code: Option<String>,
    /// Delivery service.
    #[serde(default)]
    pub service: Option<DeliveryService>,
    /// What the customer pays for delivery.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub cost: Option<Decimal>,
    /// What delivery costs the shop.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub net_cost: Option<Decimal>,
    /// Delivery date.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// Delivery time window (`"HH:MM"` texts).
    #[serde(default)]
    pub time: Option<DeliveryTime>,
    /// Delivery address.
    #[serde(default)]
    pub address: Option<Address>,
    /// VAT rate, e.g. `"20.00"` or `"none"`.
    #[serde(default)]
    pub vat_rate: Option<String>,
}

/// `delivery.service`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryService {
    /// Service code.
    #[serde(default)]
    pub code: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the service is active.
    #[serde(default)]
    pub active: Option<bool>,
}

/// `delivery.time`: `{from, to}` as `"HH:MM"`, or a free-text `custom` value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryTime {
    /// Start, `"HH:MM"`.
    #[serde(default)]
    pub from: Option<String>,
    /// End, `"HH:MM"`.
    #[serde(default)]
    pub to: Option<String>,
    /// Free text.
    #[serde(default)]
    pub custom: Option<String>,
}

/// One order line (`items[]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// Line id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The line's external id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// External ids per system.
    #[serde(default)]
    pub external_ids: Vec<CodeValue>,
    /// The catalogue offer.
    #[serde(default)]
    pub offer: Option<Offer>,
    /// Name for lines without an offer.
    #[serde(default)]
    pub product_name: Option<String>,
    /// Price type (`{code}`).
    #[serde(default)]
    pub price_type: Option<CodeRef>,
    /// Unit price before discounts.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub initial_price: Option<Decimal>,
    /// Discount per unit.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub discount_total: Option<Decimal>,
    /// Manual discount per unit (amount).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub discount_manual_amount: Option<Decimal>,
    /// Manual discount (percent).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub discount_manual_percent: Option<Decimal>,
    /// Discounts by kind.
    #[serde(default)]
    pub discounts: Vec<Discount>,
    /// Price after discount per quantity group.
    #[serde(default)]
    pub prices: Vec<ItemPrice>,
    /// Quantity (fractional for weighed goods).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub quantity: Option<Decimal>,
    /// Line status code.
    #[serde(default)]
    pub status: Option<String>,
    /// Cancelled lines are left out of `summ`.
    #[serde(default)]
    pub is_canceled: bool,
    /// Purchase price per unit.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub purchase_price: Option<Decimal>,
    /// VAT rate, e.g. `"20.00"` or `"none"`.
    #[serde(default)]
    pub vat_rate: Option<String>,
    /// When the line was added.
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub created_at: Option<NaiveDateTime>,
    /// Line comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Line properties by code; `[]` when empty.
    #[serde(default, deserialize_with = "lenient::map_or_empty")]
    pub properties: BTreeMap<String, ItemProperty>,
}

/// `{code, value}` pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CodeValue {
    /// System code.
    pub code: String,
    /// Value in that system.
    pub value: String,
}

/// A reference by code, e.g. `priceType: {code}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CodeRef {
    /// The code.
    pub code: String,
}

/// `items[].offer`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// Offer id.
    #[serde(default)]
    pub id: Option<i64>,
    /// External id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// XML id from the catalogue.
    #[serde(default)]
    pub xml_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Article (SKU).
    #[serde(default)]
    pub article: Option<String>,
    /// VAT rate.
    #[serde(default)]
    pub vat_rate: Option<String>,
    /// Unit of measure.
    #[serde(default)]
    pub unit: Option<Unit>,
}

/// Unit of measure.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unit {
    /// Code (OKEI or text).
    #[serde(default)]
    pub code: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Symbol.
    #[serde(default)]
    pub sym: Option<String>,
}

/// `items[].discounts[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Discount {
    /// Kind: `manual_order`, `manual_product`, `loyalty_level`, `round`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Amount.
    #[serde(deserialize_with = "lenient::decimal")]
    pub amount: Decimal,
}

/// `items[].prices[]`: price after discount for a quantity group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ItemPrice {
    /// Unit price.
    #[serde(deserialize_with = "lenient::decimal")]
    pub price: Decimal,
    /// Quantity at that price.
    #[serde(deserialize_with = "lenient::decimal")]
    pub quantity: Decimal,
}

/// `items[].properties.<code>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ItemProperty {
    /// Property code.
    #[serde(default)]
    pub code: Option<String>,
    /// Property name.
    #[serde(default)]
    pub name: Option<String>,
    /// Value as text.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub value: Option<String>,
}

/// One payment of an order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Payment id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Payment status code.
    #[serde(default)]
    pub status: Option<String>,
    /// Payment type code.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// External id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Amount.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub amount: Option<Decimal>,
    /// When it was paid.
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub paid_at: Option<NaiveDateTime>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `links[]`: a related order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLink {
    /// Comment on the link.
    #[serde(default)]
    pub comment: Option<String>,
    /// When the link was made.
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub created_at: Option<NaiveDateTime>,
    /// The linked order.
    pub order: OrderRef,
}

/// A short reference to an order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRef {
    /// Internal id.
    pub id: i64,
    /// Order number.
    #[serde(default)]
    pub number: Option<String>,
    /// External id.
    #[serde(default)]
    pub external_id: Option<String>,
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
