//! What the templates show, read from the API's JSON (DESIGN §4 shapes).

use chrono::{DateTime, Utc};
use dealflow_shared::views::Integration;
use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// RFC 3339 UTC shortened for a table: `2024-01-15 07:20`.
fn when(v: &Value) -> String {
    let s = text(v);
    if s.is_empty() {
        return "—".to_string();
    }
    s.get(..16).map(|d| d.replace('T', " ")).unwrap_or(s)
}

/// One integration, as the pages show it: the API's [`Integration`] (fields reached through
/// `Deref`), with its times and health worded for a person.
#[derive(Debug)]
pub struct IntegrationView(pub Integration);

impl std::ops::Deref for IntegrationView {
    type Target = Integration;
    fn deref(&self) -> &Integration {
        &self.0
    }
}

impl IntegrationView {
    /// From the API's JSON; `None` when it is not an integration.
    pub fn from_json(v: &Value) -> Option<Self> {
        serde_json::from_value::<Integration>(v.clone()).ok().map(Self)
    }

    /// `auth failed`, `ok`, `pending`, …
    pub fn health_label(&self) -> String {
        serde_json::to_value(self.health.status)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_default()
    }

    pub fn last_webhook_label(&self) -> String {
        minutes(self.last_webhook_at)
    }

    pub fn last_reconciled_label(&self) -> String {
        minutes(self.last_reconciled_at)
    }
}

/// A time shortened for a table (`2024-01-15 07:20`), `—` when there is none.
fn minutes(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_string(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// One row of Raw data → Deals.
#[derive(Debug)]
pub struct DealRow {
    pub created_at: String,
    pub number: String,
    pub site: String,
    pub funnel: String,
    pub stage: String,
    pub outcome: String,
    pub amount: String,
    pub manager: String,
    pub contact: String,
    pub phones: String,
    pub utm_source: String,
    pub deleted: bool,
}

impl DealRow {
    pub fn from_json(d: &Value) -> Self {
        let list = |v: &Value| {
            v.as_array()
                .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        let stage_name = text(&d["stage_name"]);
        Self {
            created_at: when(&d["created_at"]),
            number: if d["number"].is_null() {
                text(&d["order_id"])
            } else {
                text(&d["number"])
            },
            site: text(&d["site"]),
            funnel: text(&d["funnel_name"]),
            stage: if stage_name.is_empty() {
                text(&d["stage_code"])
            } else {
                stage_name
            },
            outcome: text(&d["outcome"]),
            amount: format!("{} {}", text(&d["amount"]), text(&d["currency"]))
                .trim()
                .to_string(),
            manager: text(&d["manager"]["name"]),
            contact: text(&d["contact"]["name"]),
            phones: list(&d["contact"]["phones"]),
            utm_source: text(&d["utm"]["source"]),
            deleted: d["deleted"].as_bool().unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn deal_rows_read_the_design_shape() {
        let row = DealRow::from_json(&json!({
            "order_id": 48213, "number": "48213A", "site": "shop-main", "funnel_name": "Main shop",
            "stage_code": "send-to-delivery", "stage_name": "Передан в доставку", "outcome": "open",
            "amount": "6330.00", "currency": "RUB", "manager": {"id": 17, "name": "Ирина Петрова"},
            "contact": {"id": 9021, "name": "Анна Смирнова", "phones": ["+79161234567", "+79160000000"]},
            "utm": {"source": "google"}, "created_at": "2024-01-15T07:20:30Z", "deleted": false
        }));
        assert_eq!(row.created_at, "2024-01-15 07:20");
        assert_eq!(row.amount, "6330.00 RUB");
        assert_eq!(row.phones, "+79161234567, +79160000000");
        assert_eq!(row.stage, "Передан в доставку");
        let bare = DealRow::from_json(
            &json!({"order_id": 5, "manager": null, "contact": null, "utm": {}}),
        );
        assert_eq!(
            (
                bare.number.as_str(),
                bare.manager.as_str(),
                bare.created_at.as_str()
            ),
            ("5", "", "—")
        );
    }
}
