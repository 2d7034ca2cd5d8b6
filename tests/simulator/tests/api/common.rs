//! Test helpers: start a simulator, call it, read fixtures, compare JSON shapes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use dealflow_simulator::{AccountConfig, AccountHandle, SimConfig, SimHandle, Simulator};
use reqwest::StatusCode;
use serde_json::Value;

/// A simulator with one account of `orders` orders in `tz`, rate limit off (so tests that
/// read a lot are not throttled; the rate-limit tests turn it on).
pub async fn sim(orders: usize, tz: Tz) -> SimHandle {
    let account = AccountConfig {
        timezone: tz,
        rate_limit: 0,
        ..AccountConfig::with_orders(orders)
    };
    start(SimConfig {
        accounts: vec![account],
        ..SimConfig::new(0, 0)
    })
    .await
}

/// Starts a simulator.
pub async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config).await.expect("simulator starts")
}

/// An HTTP client with a short timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `GET url + path` with the account's first key; status and JSON body.
pub async fn get(account: &AccountHandle, path: &str) -> (StatusCode, Value) {
    get_with_key(account, path, Some(&account.api_key())).await
}

/// `GET url + path` with `key` in `X-API-KEY` (none when `None`).
pub async fn get_with_key(
    account: &AccountHandle,
    path: &str,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = client().get(format!("{}{}", account.url(), path.trim_start_matches('/')));
    if let Some(key) = key {
        request = request.header("X-API-KEY", key);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// `GET` that must succeed; returns the body.
pub async fn ok(account: &AccountHandle, path: &str) -> Value {
    let (status, body) = get(account, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert_eq!(body["success"], Value::Bool(true), "{path}: {body}");
    body
}

/// A fixture body.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/retailcrm")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The keys of an object.
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// The JSON type of a value.
pub fn class(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key both objects have holds the same JSON type, except `map_or_array` keys, which
/// may be an object or `[]` in either.
pub fn assert_same_classes(what: &str, ours: &Value, theirs: &Value, map_or_array: &[&str]) {
    for (key, value) in ours.as_object().expect("object") {
        let Some(other) = theirs.get(key) else {
            continue;
        };
        if map_or_array.contains(&key.as_str()) {
            assert!(
                matches!(class(value), "object" | "array"),
                "{what}.{key} is {}",
                class(value)
            );
            continue;
        }
        if class(other) == "null" {
            continue;
        }
        assert_eq!(
            class(value),
            class(other),
            "{what}.{key}: ours {value}, fixture {other}"
        );
    }
}

/// Asserts `sub ⊆ sup`, naming the extra keys.
pub fn assert_subset(what: &str, sub: &BTreeSet<String>, sup: &BTreeSet<String>) {
    let extra: Vec<&String> = sub.difference(sup).collect();
    assert!(
        extra.is_empty(),
        "{what} has keys the API does not: {extra:?}"
    );
}

/// Asserts every key of `required` is in `have`.
pub fn assert_has(what: &str, have: &BTreeSet<String>, required: &BTreeSet<String>) {
    let missing: Vec<&String> = required.difference(have).collect();
    assert!(missing.is_empty(), "{what} misses keys: {missing:?}");
}

/// A set of strings.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The live orders of the current truth.
pub fn live_orders(account: &AccountHandle) -> Vec<Value> {
    let truth = account.truth();
    truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["deleted"] == Value::Bool(false))
        .map(|o| o["order"].clone())
        .collect()
}

/// The newest history id seen through the API (walking `sinceId` like a real client).
pub async fn last_history_id(account: &AccountHandle) -> u64 {
    let mut since = 0;
    loop {
        let body = ok(
            account,
            &format!("api/v5/orders/history?filter[sinceId]={since}&limit=100"),
        )
        .await;
        let entries = body["history"].as_array().expect("history");
        match entries.last() {
            Some(last) => since = last["id"].as_u64().expect("id"),
            None => return since,
        }
    }
}

/// The history entries after `since`.
pub async fn history_since(account: &AccountHandle, since: u64) -> Vec<Value> {
    let body = ok(
        account,
        &format!("api/v5/orders/history?filter[sinceId]={since}&limit=100"),
    )
    .await;
    body["history"].as_array().expect("history").clone()
}
