//! Query parameters in PHP bracket notation (`filter[ids][]=1&filter[ids][]=2`, also the
//! indexed `filter[ids][0]=1` that PHP's `http_build_query` writes), with the validation
//! errors the real API gives.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::errors::ApiError;
use crate::clock::parse_filter_datetime;

/// The allowed `limit` values of paginated list methods.
pub const LIST_LIMITS: &[usize] = &[20, 50, 100];

/// Parsed query parameters.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// `filter[ids][7]` → `filter[ids][]`, so both array notations read the same.
fn normalise(key: &str) -> String {
    if let Some(open) = key.rfind('[')
        && key.ends_with(']')
        && open + 2 < key.len()
        && key[open + 1..key.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return format!("{}[]", &key[..open]);
    }
    key.to_owned()
}

impl Params {
    /// Parses a raw query string.
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (normalise(&k), v.into_owned()))
            .collect();
        Self { pairs }
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the array `key` (give it with `[]`).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// Rejects `filter[...]` keys outside `allowed` (names without `filter[`/`]`, arrays with
    /// a trailing `[]`), as the API's form validation does.
    pub fn check_filters(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let mut errors = Map::new();
        for (key, _) in &self.pairs {
            if let Some(inner) = key.strip_prefix("filter[") {
                let name = inner.replacen(']', "", 1);
                if !allowed.contains(&name.as_str()) {
                    errors.insert(
                        "filter".to_owned(),
                        Value::String("This form should not contain extra fields.".to_owned()),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidParams(errors))
        }
    }

    /// `limit`, which must be one of `allowed` (default the first).
    pub fn limit_in(&self, allowed: &[usize]) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(allowed[0]),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|l| allowed.contains(l))
                .ok_or_else(|| invalid("limit", "The value you selected is not a valid choice.")),
        }
    }

    /// `limit` between 1 and `max` (default `default`).
    pub fn limit_up_to(&self, max: usize, default: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=max).contains(l))
                .ok_or_else(|| invalid("limit", &format!("This value should be {max} or less."))),
        }
    }

    /// `page`, a positive integer (default 1).
    pub fn page(&self) -> Result<usize, ApiError> {
        match self.get("page") {
            None => Ok(1),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| invalid("page", "This value should be greater than 0.")),
        }
    }

    /// A datetime filter (`Y-m-d` or `Y-m-d H:i:s`).
    pub fn datetime(&self, key: &str, end_of_day: bool) -> Result<Option<NaiveDateTime>, ApiError> {
        self.get(key)
            .map(|v| {
                parse_filter_datetime(v, end_of_day)
                    .ok_or_else(|| invalid(key, "This value is not valid."))
            })
            .transpose()
    }

    /// An integer filter.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| invalid(key, "This value is not valid."))
            })
            .transpose()
    }

    /// An integer array filter.
    pub fn numbers(&self, key: &str) -> Result<Vec<u64>, ApiError> {
        self.all(key)
            .into_iter()
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| invalid(key, "This value is not valid."))
            })
            .collect()
    }

    /// A boolean filter (`1`/`0`, `true`/`false`).
    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|v| match v {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => Err(invalid(key, "This value is not valid.")),
            })
            .transpose()
    }
}

/// `Errors in the input parameters` naming one parameter.
pub fn invalid(key: &str, message: &str) -> ApiError {
    let mut errors = Map::new();
    errors.insert(key.to_owned(), Value::String(message.to_owned()));
    ApiError::InvalidParams(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_arrays_in_both_notations() {
        let p = Params::parse(Some(
            "filter%5Bids%5D%5B%5D=1&filter[ids][]=2&filter[ids][5]=3&limit=50&filter[sites][]=a",
        ));
        assert_eq!(p.numbers("filter[ids][]").unwrap(), vec![1, 2, 3]);
        assert_eq!(p.limit_in(LIST_LIMITS).unwrap(), 50);
        assert!(p.check_filters(&["ids[]", "sites[]"]).is_ok());
        assert!(p.check_filters(&["ids[]"]).is_err());
    }

    #[test]
    fn bad_limit_page_and_dates_are_rejected() {
        let p = Params::parse(Some("limit=25&page=0&filter[createdAtFrom]=yesterday"));
        assert!(p.limit_in(LIST_LIMITS).is_err());
        assert!(p.page().is_err());
        assert!(p.datetime("filter[createdAtFrom]", false).is_err());
        assert_eq!(Params::parse(None).limit_in(LIST_LIMITS).unwrap(), 20);
    }
}
