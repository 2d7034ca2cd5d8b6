//! What the templates show, worded from the API's own types (DESIGN §4 shapes).

use chrono::{DateTime, Utc};
use dealflow_projector::read::deals::DealView;
use dealflow_shared::views::Integration;

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
    /// The choices of the revenue setting (DESIGN §5 "Revenue"), as the settings form shows them.
    pub fn revenue_options(&self) -> [(&'static str, &'static str); 3] {
        [
            ("total", "the order total"),
            ("margin", "the margin (total − purchase sum)"),
            ("paid", "what the customer paid"),
        ]
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
    at.map_or_else(
        || "—".to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// The name of the cookie that keeps the viewer's chosen timezone.
pub const TZ_COOKIE: &str = "dealflow_tz";

/// Times as the viewer reads them: in the timezone they chose (UTC until they do), the UTC
/// time on hover. The API keeps UTC.
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub chrono_tz::Tz);

impl Default for Clock {
    fn default() -> Self {
        Clock(chrono_tz::UTC)
    }
}

impl Clock {
    /// The timezone the request's cookie names (UTC when none or unknown).
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == TZ_COOKIE)
            .and_then(|(_, value)| value.replace("%2F", "/").parse().ok())
            .map(Clock)
            .unwrap_or_default()
    }

    /// The timezone's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// `2024-01-15 10:20:30` in the viewer's timezone.
    pub fn local(&self, at: &DateTime<Utc>) -> String {
        at.with_timezone(&self.0)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// `2024-01-15 07:20:30 UTC`, for the hover.
    pub fn utc(&self, at: &DateTime<Utc>) -> String {
        at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }

    /// The zones the picker offers, each with whether it is the current one (the current one
    /// first when it is not among the usual ones).
    pub fn choices(&self) -> Vec<(&'static str, bool)> {
        let mut zones = vec![
            "UTC",
            "Europe/Kaliningrad",
            "Europe/Moscow",
            "Europe/Samara",
            "Asia/Yekaterinburg",
            "Asia/Omsk",
            "Asia/Novosibirsk",
            "Asia/Krasnoyarsk",
            "Asia/Irkutsk",
            "Asia/Yakutsk",
            "Asia/Vladivostok",
            "Asia/Almaty",
            "Europe/Minsk",
            "Europe/Kyiv",
            "Europe/Berlin",
            "Europe/Madrid",
            "Europe/London",
            "America/New_York",
        ];
        if !zones.contains(&self.name()) {
            zones.insert(0, self.name());
        }
        zones.into_iter().map(|z| (z, z == self.name())).collect()
    }
}

/// Money as people read it on a page (the API keeps decimal strings): two decimals, rounded
/// half away from zero, thousands grouped with a narrow no-break space, then the currency
/// code. A value that is not a decimal is shown as it came.
pub fn money(amount: &str, currency: Option<&str>) -> String {
    use rust_decimal::{Decimal, RoundingStrategy};
    let Ok(value) = amount.parse::<Decimal>() else {
        return format!("{amount} {}", currency.unwrap_or_default())
            .trim()
            .to_string();
    };
    let rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let fixed = rounded.abs().to_string();
    let (whole, cents) = fixed.split_once('.').unwrap_or((fixed.as_str(), ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(digit);
    }
    let sign = if rounded.is_sign_negative() && !rounded.is_zero() {
        "-"
    } else {
        ""
    };
    format!(
        "{sign}{grouped}.{cents:0<2} {}",
        currency.unwrap_or_default()
    )
    .trim()
    .to_string()
}

/// One row of Raw data → Deals.
#[derive(Debug)]
pub struct DealRow {
    pub order_id: u64,
    /// In the viewer's timezone.
    pub created_at: String,
    /// In UTC, for the hover.
    pub created_at_utc: String,
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
    /// From the deal the read API answers with, times as `clock` shows them.
    pub fn of(d: &DealView, clock: &Clock) -> Self {
        let contact = d.contact.as_ref();
        Self {
            order_id: d.order_id,
            created_at: clock.local(&d.created_at),
            created_at_utc: clock.utc(&d.created_at),
            number: d.number.clone().unwrap_or_else(|| d.order_id.to_string()),
            site: d.site.clone(),
            funnel: d.funnel_name.clone(),
            stage: d.stage_name.clone().unwrap_or_else(|| d.stage_code.clone()),
            outcome: d.outcome.clone(),
            amount: money(&d.amount, d.currency.as_deref()),
            manager: d
                .manager
                .as_ref()
                .and_then(|m| m.name.clone())
                .unwrap_or_default(),
            contact: contact.and_then(|c| c.name.clone()).unwrap_or_default(),
            phones: contact.map(|c| c.phones.join(", ")).unwrap_or_default(),
            utm_source: d.utm.source.clone().unwrap_or_default(),
            deleted: d.deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn deal(overrides: Value) -> DealView {
        let mut d = json!({
            "order_id": 48213, "number": "48213A", "external_id": null, "site": "shop-main",
            "funnel_id": "shop-main", "funnel_name": "Main shop", "stage_code": "send-to-delivery",
            "stage_name": "Передан в доставку", "stage_group": "delivery", "outcome": "open",
            "amount": "6330.00", "currency": "RUB", "total_sum": "6330.00", "delivery_cost": "0",
            "manager": {"id": 17, "name": "Ирина Петрова", "email": null, "phone": null},
            "contact": {"id": 9021, "name": "Анна Смирнова", "phones": ["+79161234567", "+79160000000"], "emails": []},
            "company": null,
            "utm": {"source": "google", "medium": null, "campaign": null, "keyword": null, "content": null},
            "client_id": null, "custom_fields": {}, "order_type": null, "order_method": null,
            "purchase_sum": null, "paid_sum": null, "payment_status": "not_paid", "paid_at": null,
            "items": [], "created_at": "2024-01-15T07:20:30Z",
            "stage_entered_at": null, "closed_at": null, "last_open_stage": null,
            "excluded": false, "deleted": false, "merged_into": null, "updated_at": "2024-01-15T07:20:31Z"
        });
        for (k, v) in overrides.as_object().unwrap() {
            d[k] = v.clone();
        }
        serde_json::from_value(d).unwrap()
    }

    #[test]
    fn deal_rows_show_the_api_deal() {
        let row = DealRow::of(&deal(json!({})), &Clock::default());
        assert_eq!(row.created_at, "2024-01-15 07:20:30");
        let moscow = DealRow::of(&deal(json!({})), &Clock(chrono_tz::Europe::Moscow));
        assert_eq!(moscow.created_at, "2024-01-15 10:20:30");
        assert_eq!(moscow.created_at_utc, "2024-01-15 07:20:30 UTC");
        assert_eq!(row.amount, "6\u{202f}330.00 RUB");
        assert_eq!(row.phones, "+79161234567, +79160000000");
        assert_eq!(row.stage, "Передан в доставку");
        let bare = DealRow::of(
            &deal(json!({
                "number": null, "manager": null, "contact": null, "stage_name": null, "currency": null
            })),
            &Clock::default(),
        );
        assert_eq!(
            (
                bare.number.as_str(),
                bare.manager.as_str(),
                bare.stage.as_str(),
                bare.amount.as_str()
            ),
            ("48213", "", "send-to-delivery", "6\u{202f}330.00")
        );
    }

    #[test]
    fn the_clock_follows_the_cookie() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(Clock::of(&headers).name(), "UTC");
        headers.insert(
            axum::http::header::COOKIE,
            "dealflow_session=x; dealflow_tz=Asia%2FYekaterinburg"
                .parse()
                .unwrap(),
        );
        assert_eq!(Clock::of(&headers).name(), "Asia/Yekaterinburg");
        headers.insert(
            axum::http::header::COOKIE,
            "dealflow_tz=Mars/Olympus".parse().unwrap(),
        );
        assert_eq!(Clock::of(&headers).name(), "UTC");
    }

    #[test]
    fn money_is_grouped_with_two_decimals_and_its_currency() {
        let nb = '\u{202f}';
        assert_eq!(
            money("1234567.5", Some("RUB")),
            format!("1{nb}234{nb}567.50 RUB")
        );
        assert_eq!(money("999", Some("EUR")), "999.00 EUR");
        assert_eq!(money("1000", None), format!("1{nb}000.00"));
        assert_eq!(money("0.005", Some("RUB")), "0.01 RUB");
        assert_eq!(money("-2500.255", Some("RUB")), format!("-2{nb}500.26 RUB"));
        assert_eq!(money("-0.001", None), "0.00");
        assert_eq!(money("n/a", Some("RUB")), "n/a RUB");
    }
}
