//! The parts every response shares: the `success` flag, the error envelope
//! (`errorMsg`, `errors`, `combinedTo`) and the `pagination` block (API-NOTES §2).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

/// `pagination` of list endpoints. The numbers are the API's own and do not always agree with
/// the payload (a page may hold fewer rows than `limit` claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Page size the API applied.
    pub limit: u32,
    /// Rows matching the filter, over all pages.
    pub total_count: u64,
    /// 1-based page number of this response.
    pub current_page: u32,
    /// Number of pages for this filter and limit.
    pub total_page_count: u32,
}

impl Pagination {
    /// Whether this is the last page.
    pub fn is_last_page(&self) -> bool {
        self.current_page >= self.total_page_count
    }
}

/// The body of a failed call: `{"success": false, "errorMsg": "...", "errors": ...}`.
///
/// `errors` is a field → message map or a plain array depending on the method (API-NOTES §2),
/// and `[]` when there are none; both read into [`ApiErrors`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    /// `false` on errors; some successful bodies carry an empty `errors` too.
    #[serde(default)]
    pub success: Option<bool>,
    /// The API's message, e.g. `Not found` or `Wrong "apiKey" value.`.
    #[serde(default)]
    pub error_msg: Option<String>,
    /// Details per field (validation) or a list of messages.
    #[serde(default)]
    pub errors: ApiErrors,
    /// On a merged entity's `Not found`: the entity it was merged into.
    #[serde(default)]
    pub combined_to: Option<CombinedTo>,
}

/// `errors` of an error body: a map of field → message, or a list of messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiErrors {
    /// `{"name": "name must be provided"}`.
    Fields(BTreeMap<String, String>),
    /// `["Offer with id 1 not found.", ...]`.
    Messages(Vec<String>),
}

impl Default for ApiErrors {
    fn default() -> Self {
        ApiErrors::Messages(Vec::new())
    }
}

impl ApiErrors {
    /// No details at all.
    pub fn is_empty(&self) -> bool {
        match self {
            ApiErrors::Fields(map) => map.is_empty(),
            ApiErrors::Messages(list) => list.is_empty(),
        }
    }

    /// Number of details.
    pub fn len(&self) -> usize {
        match self {
            ApiErrors::Fields(map) => map.len(),
            ApiErrors::Messages(list) => list.len(),
        }
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiErrors::Fields(map) => {
                for (i, (field, message)) in map.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{field}: {message}")?;
                }
                Ok(())
            }
            ApiErrors::Messages(list) => f.write_str(&list.join("; ")),
        }
    }
}

impl<'de> Deserialize<'de> for ApiErrors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A message is normally a string; anything else is kept as its JSON text rather than
        // failing the whole error body, which would hide the real error behind a parse error.
        fn text(value: serde_json::Value) -> String {
            match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }
        }
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Object(map) => {
                ApiErrors::Fields(map.into_iter().map(|(k, v)| (k, text(v))).collect())
            }
            serde_json::Value::Array(list) => {
                ApiErrors::Messages(list.into_iter().map(text).collect())
            }
            serde_json::Value::Null => ApiErrors::default(),
            other => ApiErrors::Messages(vec![text(other)]),
        })
    }
}

/// `combinedTo`: the order or customer an entity was merged into.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CombinedTo {
    /// Internal id of the surviving entity.
    pub id: i64,
}

/// Just the `success` flag, read before the typed body so an error body returned with a 2xx
/// status is classified as an error rather than reported as a parse failure.
#[derive(Debug, Deserialize)]
pub(crate) struct SuccessProbe {
    #[serde(default)]
    pub success: Option<bool>,
}
