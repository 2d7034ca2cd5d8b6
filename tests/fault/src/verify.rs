//! The read model against the simulator's truth (`/_sim/truth`), through the read API:
//! every order listed exactly once, live ones with their current stage, amount (decimal
//! compare, delivery included as connected), manager and contact; deleted and merged ones
//! marked; no deal that RetailCRM never had; and (at the end) no duplicated stage history.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::api::Api;
use crate::deploy::Endpoints;

/// The outcome of one comparison of a deployment.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub orders_checked: usize,
    pub histories_checked: usize,
    pub mismatches: Vec<String>,
}

fn dec(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => Decimal::from_str(s).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        _ => None,
    }
}

/// Parts joined by spaces, empty ones skipped (DESIGN §5, the contact's name).
fn join_name(parts: &[&Value]) -> Option<String> {
    let parts: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.as_str())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// What is wrong with the deal of one live order (`order` as RetailCRM serves it).
pub fn live_order_problems(order: &Value, deal: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut differ = |what: &str, want: &Value, got: &Value| {
        problems.push(format!("{what}: want {want}, got {got}"));
    };
    if deal["deleted"] != Value::Bool(false) {
        differ("deleted", &Value::Bool(false), &deal["deleted"]);
    }
    if deal["stage_code"] != order["status"] {
        differ("stage", &order["status"], &deal["stage_code"]);
    }
    let (want, got) = (dec(&order["totalSumm"]), dec(&deal["amount"]));
    if want.is_none() || want != got {
        differ("amount", &order["totalSumm"], &deal["amount"]);
    }
    let manager = deal["manager"]["id"].clone();
    if manager != order["managerId"] {
        differ("manager", &order["managerId"], &manager);
    }
    let contact = &deal["contact"];
    let card = &order["contact"];
    if contact["id"] != card["id"] {
        differ("contact id", &card["id"], &contact["id"]);
    }
    let name = join_name(&[
        &order["firstName"],
        &order["lastName"],
        &order["patronymic"],
    ])
    .or_else(|| join_name(&[&card["firstName"], &card["lastName"], &card["patronymic"]]));
    let got_name = contact["name"].as_str().map(str::to_owned);
    if name != got_name {
        differ("contact name", &name.into(), &got_name.into());
    }
    if let Some(email) = order["email"].as_str().map(|e| e.trim().to_lowercase())
        && !email.is_empty()
    {
        let emails = contact["emails"].as_array().cloned().unwrap_or_default();
        if !emails.iter().any(|e| e.as_str() == Some(email.as_str())) {
            differ("contact email", &email.into(), &contact["emails"]);
        }
    }
    // The order's own phone, in whatever format it was typed, must be among the contact's
    // (E.164) phones: the subscriber part (last 7 digits) identifies it.
    if let Some(phone) = order["phone"].as_str() {
        let want = digits(phone);
        if want.len() >= 7 {
            let tail = &want[want.len() - 7..];
            let phones = contact["phones"].as_array().cloned().unwrap_or_default();
            if !phones
                .iter()
                .filter_map(Value::as_str)
                .any(|p| digits(p).ends_with(tail))
            {
                differ("contact phone", &phone.into(), &contact["phones"]);
            }
        }
    }
    problems
}

/// What is wrong with a deal's stage history (`deal` with `stage_history`).
///
/// RetailCRM's `statusUpdatedAt` has one-second precision, so two changes within a second give
/// two entries with the same `entered_at`, which the read API lists in stage-code order: the
/// checks that depend on order (twice in a row, the last entry) only judge entries whose time
/// no other entry shares.
pub fn history_problems(deal: &Value, live_status: Option<&Value>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(history) = deal["stage_history"].as_array() else {
        return vec!["no stage_history in the deal".to_owned()];
    };
    let mut at_time: BTreeMap<String, usize> = BTreeMap::new();
    for entry in history {
        *at_time.entry(entry["entered_at"].to_string()).or_default() += 1;
    }
    let alone = |e: &Value| at_time.get(&e["entered_at"].to_string()) == Some(&1);
    let mut seen = BTreeSet::new();
    for (i, entry) in history.iter().enumerate() {
        if !seen.insert(entry.to_string()) {
            problems.push(format!("stage history entry {entry} recorded twice"));
        }
        let previous = i.checked_sub(1).map(|p| &history[p]);
        if let Some(previous) = previous
            && previous["stage_code"] == entry["stage_code"]
            && alone(previous)
            && alone(entry)
        {
            problems.push(format!(
                "stage {} recorded twice in a row",
                entry["stage_code"]
            ));
        }
    }
    if let Some(status) = live_status
        && let Some(last) = history.last()
    {
        let last_time = &last["entered_at"];
        let latest: Vec<&Value> = history
            .iter()
            .filter(|e| &e["entered_at"] == last_time)
            .map(|e| &e["stage_code"])
            .collect();
        if !latest.contains(&status) {
            problems.push(format!(
                "stage history ends at {latest:?}, the current stage is {status}"
            ));
        }
    }
    problems
}

/// Compares one deployment with the truth of every account; with `histories`, also fetches
/// each deal's stage history.
/// `removed_before[account]`: orders the generated data had already deleted or merged before
/// dealflow was connected. dealflow cannot know of those (neither the backfill nor the history
/// after the connection names them); if one is listed anyway it must be marked deleted.
pub async fn compare(
    api: &Api,
    endpoints: &Endpoints,
    truths: &[Value],
    removed_before: &[BTreeSet<u64>],
    histories: bool,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for integration in &endpoints.integrations {
        let truth = &truths[integration.account];
        let label = format!("{} account {}", endpoints.name, integration.account);
        let deals = api.all_deals(&endpoints.read_base, &integration.id).await?;
        let mut by_order: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
        for deal in &deals {
            by_order
                .entry(deal["order_id"].as_u64().unwrap_or(0))
                .or_default()
                .push(deal);
        }
        let orders = truth["orders"].as_array().cloned().unwrap_or_default();
        let mut live_status = BTreeMap::new();
        for entry in &orders {
            let id = entry["id"].as_u64().unwrap_or(0);
            report.orders_checked += 1;
            let found = by_order.remove(&id).unwrap_or_default();
            let deal = match found.as_slice() {
                [deal] => *deal,
                [] if removed_before[integration.account].contains(&id) => continue,
                [] => {
                    report
                        .mismatches
                        .push(format!("{label}: order {id} missing"));
                    continue;
                }
                many => {
                    report
                        .mismatches
                        .push(format!("{label}: order {id} listed {} times", many.len()));
                    continue;
                }
            };
            let problems = if entry["deleted"] == Value::Bool(true) {
                let mut p = Vec::new();
                if deal["deleted"] != Value::Bool(true) {
                    p.push("not marked deleted".to_owned());
                }
                if deal["merged_into"] != entry["merged_into"] {
                    p.push(format!(
                        "merged_into: want {}, got {}",
                        entry["merged_into"], deal["merged_into"]
                    ));
                }
                p
            } else {
                live_status.insert(id, entry["order"]["status"].clone());
                live_order_problems(&entry["order"], deal)
            };
            for p in problems {
                report.mismatches.push(format!("{label}: order {id}: {p}"));
            }
        }
        for extra in by_order.keys() {
            report
                .mismatches
                .push(format!("{label}: deal {extra} has no order in RetailCRM"));
        }
        if histories {
            // Only orders listed once (the others are mismatches already).
            let listed: BTreeSet<u64> = deals
                .iter()
                .filter_map(|d| d["order_id"].as_u64())
                .collect();
            let ids: Vec<u64> = orders
                .iter()
                .filter_map(|o| o["id"].as_u64())
                .filter(|id| listed.contains(id))
                .collect();
            for chunk in ids.chunks(16) {
                let mut fetches = JoinSet::new();
                for &id in chunk {
                    let (api, base, integ) = (
                        api.clone(),
                        endpoints.read_base.clone(),
                        integration.id.clone(),
                    );
                    fetches.spawn(async move { (id, api.deal(&base, &integ, id).await) });
                }
                while let Some(done) = fetches.join_next().await {
                    let (id, deal) = done?;
                    let deal = deal?;
                    report.histories_checked += 1;
                    for p in history_problems(&deal, live_status.get(&id)) {
                        report.mismatches.push(format!("{label}: order {id}: {p}"));
                    }
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order() -> Value {
        json!({"status": "new", "totalSumm": 1500.5, "managerId": 7, "firstName": "Anna",
               "lastName": "Ivanova", "phone": "8 (912) 345-67-89", "email": "A@x.ru",
               "contact": {"id": 3, "firstName": "Card", "lastName": "Name"}})
    }

    fn deal() -> Value {
        json!({"deleted": false, "stage_code": "new", "amount": "1500.50",
               "manager": {"id": 7}, "contact": {"id": 3, "name": "Anna Ivanova",
               "phones": ["+79123456789"], "emails": ["a@x.ru"]}})
    }

    #[test]
    fn a_matching_deal_has_no_problems() {
        assert_eq!(live_order_problems(&order(), &deal()), Vec::<String>::new());
    }

    #[test]
    fn each_wrong_fact_is_named() {
        for (field, value, named) in [
            ("stage_code", json!("complete"), "stage"),
            ("amount", json!("1500.51"), "amount"),
            ("manager", json!({"id": 8}), "manager"),
            ("manager", Value::Null, "manager"),
            ("deleted", json!(true), "deleted"),
        ] {
            let mut d = deal();
            d[field] = value;
            let problems = live_order_problems(&order(), &d);
            assert!(
                problems.iter().any(|p| p.starts_with(named)),
                "{field}: {problems:?}"
            );
        }
        let mut d = deal();
        d["contact"]["phones"] = json!(["+79120000000"]);
        d["contact"]["name"] = json!("Card Name");
        let problems = live_order_problems(&order(), &d);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn duplicated_or_stale_history_is_found() {
        let entry = |s: &str, t: &str| json!({"stage_code": s, "entered_at": t});
        let good = json!({"stage_history": [entry("new", "1"), entry("paid", "2")]});
        assert!(history_problems(&good, Some(&json!("paid"))).is_empty());
        let twice = json!({"stage_history": [entry("new", "1"), entry("new", "1")]});
        assert_eq!(history_problems(&twice, None).len(), 1);
        let in_a_row = json!({"stage_history": [entry("new", "1"), entry("new", "2")]});
        assert_eq!(history_problems(&in_a_row, None).len(), 1);
        assert_eq!(history_problems(&good, Some(&json!("new"))).len(), 1);
        // Two changes in one second: listed in code order, either may be the current one.
        let tie =
            json!({"stage_history": [entry("new", "1"), entry("paid", "2"), entry("new", "2")]});
        assert!(history_problems(&tie, Some(&json!("paid"))).is_empty());
        assert!(history_problems(&tie, Some(&json!("new"))).is_empty());
    }
}
