//! JSON in the API's exact shapes and quirks: keys omitted when absent (never `null`), empty
//! custom fields and payments as `[]`, money as int-or-float numbers, naive datetimes,
//! references keyed by code.

pub mod customer;
pub mod history;
pub mod order;
pub mod reference;

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::clock::{fmt_date, fmt_datetime};
use crate::money;

/// Builds a JSON object, skipping absent values the way the API omits them.
#[derive(Debug, Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`.
    pub fn put(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `key` when `value` is present.
    pub fn opt(self, key: &str, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(v) => self.put(key, v),
            None => self,
        }
    }

    /// Sets a money amount.
    pub fn money(self, key: &str, amount: Decimal) -> Self {
        self.put(key, money::num(amount))
    }

    /// Sets a datetime.
    pub fn datetime(self, key: &str, at: NaiveDateTime) -> Self {
        self.put(key, fmt_datetime(at))
    }

    /// Sets a datetime when present.
    pub fn opt_datetime(self, key: &str, at: Option<NaiveDateTime>) -> Self {
        self.opt(key, at.map(fmt_datetime))
    }

    /// Sets a date when present.
    pub fn opt_date(self, key: &str, at: Option<NaiveDate>) -> Self {
        self.opt(key, at.map(fmt_date))
    }

    /// The object.
    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// A map that the API writes as `[]` when empty (custom fields, payments).
pub fn map_or_empty_array(map: Map<String, Value>) -> Value {
    if map.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(map)
    }
}

/// The `pagination` block.
pub fn pagination(limit: usize, total: usize, page: usize) -> Value {
    Obj::new()
        .put("limit", limit)
        .put("totalCount", total)
        .put("currentPage", page)
        .put("totalPageCount", total.div_ceil(limit))
        .build()
}
