//! Column encodings shared by writers and readers: times as microseconds since the epoch,
//! flags as 0/1, lists as JSON text (money is stored as the events' decimal text).

use chrono::{DateTime, Utc};

use super::StoreError;

/// A time as stored (microseconds since the Unix epoch, UTC).
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored time back as a `DateTime`.
pub(crate) fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt {
        what: "a time",
        detail: format!("{micros} µs is out of range"),
    })
}

/// A flag as stored.
pub(crate) fn flag(on: bool) -> i64 {
    i64::from(on)
}

/// A list of strings as stored (JSON text).
pub(crate) fn list(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

/// A stored list back.
pub(crate) fn parse_list(text: Option<&str>) -> Result<Vec<String>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            what: "a list",
            detail: e.to_string(),
        }),
    }
}

/// An order or other RetailCRM id as stored (BIGINT); ids above `i64::MAX` do not exist in
/// RetailCRM, so saturating only guards against nonsense.
pub(crate) fn id(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored id back.
pub(crate) fn uid(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

/// Typed column access with the store's error type.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let at: DateTime<Utc> = "2024-01-15T07:20:30.123456Z".parse().unwrap();
        assert_eq!(time(micros(at)).unwrap(), at);
        let phones = vec!["+79161234567".to_owned(), "+79160000000".to_owned()];
        assert_eq!(parse_list(Some(&list(&phones))).unwrap(), phones);
        assert_eq!(parse_list(None).unwrap(), Vec::<String>::new());
        assert_eq!(uid(id(48213)), 48213);
    }
}
