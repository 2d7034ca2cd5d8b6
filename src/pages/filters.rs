//! The filters of Raw data → Deals as the page keeps them: read leniently from the page's own
//! query string, and written back as the read API's query.

use serde::Deserialize;

/// The deal filters the page offers (all optional, passed to the API as they are).
#[derive(Debug, Default, Deserialize)]
pub struct DealFilters {
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub funnel_id: String,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub deleted: String,
    #[serde(default)]
    pub cursor: String,
}

impl DealFilters {
    /// `?a=b&…` of the non-empty filters (and the cursor when `with_cursor`).
    pub(super) fn query(&self, cursor: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("site", &self.site),
            ("funnel_id", &self.funnel_id),
            ("stage", &self.stage),
            ("outcome", &self.outcome),
            ("deleted", &self.deleted),
        ] {
            if !value.is_empty() {
                q.append_pair(name, value);
            }
        }
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            q.append_pair("cursor", cursor);
        }
        let text = q.finish();
        if text.is_empty() {
            String::new()
        } else {
            format!("?{text}")
        }
    }

    /// Filters from the page's query string; unknown or repeated fields are ignored, never an
    /// error page.
    pub(super) fn from_query(raw: Option<&str>) -> Self {
        let mut filters = Self::default();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let value = value.trim().to_string();
            match key.as_ref() {
                "site" => filters.site = value,
                "funnel_id" => filters.funnel_id = value,
                "stage" => filters.stage = value,
                "outcome" => filters.outcome = value,
                "deleted" => filters.deleted = value,
                "cursor" => filters.cursor = value,
                _ => {}
            }
        }
        filters
    }
}
