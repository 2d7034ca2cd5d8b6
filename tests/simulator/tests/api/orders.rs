//! Orders: lookups, filters, pagination, sums, the variety of the generated data and its
//! datetimes.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use dealflow_simulator::{AccountConfig, SimConfig};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::common::{get, live_orders, ok, sim, start};

fn decimal(v: &Value) -> Decimal {
    v.to_string()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {v}"))
}

fn naive(v: &Value) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(v.as_str().expect("string"), "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[tokio::test]
async fn one_hundred_ids_come_back_in_one_call() {
    let sim = sim(150, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let ids: Vec<u64> = live_orders(a)
        .iter()
        .take(100)
        .map(|o| o["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 100);
    let query: Vec<String> = ids.iter().map(|id| format!("filter[ids][]={id}")).collect();
    let body = ok(a, &format!("api/v5/orders?limit=100&{}", query.join("&"))).await;
    let got: BTreeSet<u64> = body["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(got, ids.iter().copied().collect());
    assert_eq!(body["pagination"]["totalCount"], 100);
    assert_eq!(body["pagination"]["totalPageCount"], 1);
}

#[tokio::test]
async fn created_at_from_pages_cover_exactly_the_window() {
    let sim = sim(230, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let now = a.inspect(|s| s.clock.now());
    let from_day = (now - Duration::days(30)).date();
    let expected: BTreeSet<u64> = live_orders(a)
        .iter()
        .filter(|o| naive(&o["createdAt"]).date() >= from_day)
        .map(|o| o["id"].as_u64().expect("id"))
        .collect();
    assert!(expected.len() > 40, "the window holds several pages");
    for from in [
        from_day.format("%Y-%m-%d").to_string(),
        format!("{} 00:00:00", from_day.format("%Y-%m-%d")),
    ] {
        let mut seen = BTreeSet::new();
        let mut page = 1;
        loop {
            let body = ok(
                a,
                &format!("api/v5/orders?filter[createdAtFrom]={from}&limit=20&page={page}"),
            )
            .await;
            for o in body["orders"].as_array().expect("orders") {
                assert!(
                    seen.insert(o["id"].as_u64().expect("id")),
                    "duplicate across pages"
                );
            }
            let p = &body["pagination"];
            assert_eq!(p["totalCount"].as_u64(), Some(expected.len() as u64));
            if p["currentPage"] == p["totalPageCount"] {
                break;
            }
            page += 1;
        }
        assert_eq!(seen, expected);
    }
}

#[tokio::test]
async fn limits_and_filters_are_validated() {
    let sim = sim(20, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    for bad in [
        "limit=25",
        "limit=250",
        "page=0",
        "filter[createdAtFrom]=01.02.2024",
        "filter[nope]=1",
        "filter[ids][]=x",
    ] {
        let (status, body) = get(a, &format!("api/v5/orders?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["errorMsg"], "Errors in the input parameters", "{bad}");
        assert!(body["errors"].is_object(), "{bad}");
    }
    for good in ["limit=20", "limit=50", "limit=100"] {
        ok(a, &format!("api/v5/orders?{good}")).await;
    }
}

#[tokio::test]
async fn by_defaults_to_external_id() {
    let sim = sim(60, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let order = live_orders(a)
        .into_iter()
        .find(|o| o["externalId"].is_string())
        .expect("an order with an external id");
    let id = order["id"].as_u64().expect("id");
    let (status, _) = get(a, &format!("api/v5/orders/{id}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a numeric id is read as an externalId"
    );
    assert_eq!(
        ok(a, &format!("api/v5/orders/{id}?by=id")).await["order"]["id"].as_u64(),
        Some(id)
    );
    let external = order["externalId"].as_str().expect("externalId");
    let by_external = ok(
        a,
        &format!(
            "api/v5/orders/{external}?site={}",
            order["site"].as_str().expect("site")
        ),
    )
    .await;
    assert_eq!(by_external["order"]["id"].as_u64(), Some(id));
    let (status, _) = get(a, &format!("api/v5/orders/{id}?by=number")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sums_follow_the_api_rules_everywhere() {
    let sim = sim(300, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let mut floats = 0;
    for o in live_orders(a) {
        let mut goods = Decimal::ZERO;
        let mut purchase = Decimal::ZERO;
        for i in o["items"].as_array().expect("items") {
            let price = decimal(&i["prices"][0]["price"]);
            assert_eq!(
                price,
                decimal(&i["initialPrice"]) - decimal(&i["discountTotal"])
            );
            if i["isCanceled"] == Value::Bool(false) {
                goods += price * decimal(&i["quantity"]);
                purchase += decimal(&i["purchasePrice"]) * decimal(&i["quantity"]);
            }
        }
        let delivery = decimal(&o["delivery"]["cost"]);
        assert_eq!(decimal(&o["summ"]), goods.round_dp(2), "order {}", o["id"]);
        assert_eq!(
            decimal(&o["totalSumm"]),
            (goods + delivery).round_dp(2),
            "order {}",
            o["id"]
        );
        assert_eq!(
            decimal(&o["purchaseSumm"]),
            purchase.round_dp(2),
            "order {}",
            o["id"]
        );
        if o["totalSumm"].is_f64() {
            floats += 1;
        } else {
            assert!(o["totalSumm"].is_u64(), "whole amounts are ints");
        }
    }
    assert!(floats > 0, "some totals have kopecks");
}

#[tokio::test]
async fn the_data_set_is_varied_like_a_real_account() {
    let sim = sim(300, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let orders = live_orders(a);
    let (inactive_statuses, inactive_users, deleted_users) = a.inspect(|store| {
        let statuses: Vec<String> = store
            .statuses
            .iter()
            .filter(|s| !s.active)
            .map(|s| s.code.clone())
            .collect();
        let users: Vec<u64> = store
            .users
            .iter()
            .filter(|u| !u.active)
            .map(|u| u.id)
            .collect();
        (statuses, users, store.deleted_user_ids.clone())
    });
    let any = |f: &dyn Fn(&Value) -> bool| orders.iter().any(f);
    assert!(
        any(&|o| o["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["isCanceled"] == Value::Bool(true))),
        "cancelled items"
    );
    assert!(
        any(&|o| o["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| decimal(&i["discountTotal"]) > Decimal::ZERO)),
        "discounts"
    );
    assert!(
        any(&|o| o["customer"]["type"] == "customer_corporate"
            && o["company"].is_object()
            && o["contact"]["isContact"] == Value::Bool(true)),
        "corporate orders"
    );
    assert!(
        any(&|o| o["customer"]["type"] == "customer"),
        "individual orders"
    );
    assert!(
        any(&|o| inactive_statuses
            .iter()
            .any(|s| o["status"] == Value::String(s.clone()))),
        "old orders in inactive statuses"
    );
    assert!(
        any(&|o| o["managerId"]
            .as_u64()
            .is_some_and(|m| inactive_users.contains(&m))),
        "inactive manager"
    );
    assert!(
        any(&|o| o["managerId"]
            .as_u64()
            .is_some_and(|m| deleted_users.contains(&m))),
        "deleted manager"
    );
    assert!(
        any(&|o| o.get("managerId").is_none()),
        "orders without a manager"
    );
    assert!(any(&|o| o["source"]["source"].is_string()), "UTM source");
    assert!(any(&|o| o["clientId"].is_string()), "clientId");
    assert!(
        any(&|o| o["additionalPhone"].is_string()),
        "additionalPhone"
    );
    assert!(
        any(&|o| o["email"]
            .as_str()
            .is_some_and(|e| e.chars().any(|c| c.is_ascii_uppercase()))),
        "emails with capitals"
    );
    assert!(
        any(&|o| decimal(&o["delivery"]["cost"]) > Decimal::ZERO),
        "paid delivery"
    );
    assert!(
        any(&|o| o.get("externalId").is_none()),
        "orders without externalId"
    );
    let sites: BTreeSet<&str> = orders
        .iter()
        .map(|o| o["site"].as_str().expect("site"))
        .collect();
    assert!(sites.len() >= 3, "several shops: {sites:?}");
    let groups: BTreeSet<String> = a.inspect(|store| {
        orders
            .iter()
            .filter_map(|o| store.status(o["status"].as_str()?).map(|s| s.group.clone()))
            .collect()
    });
    assert_eq!(groups.len(), 6, "orders in every status group: {groups:?}");
    // Phones typed every which way: with 8 or +7, brackets, dashes, spaces, bare digits.
    let phones: Vec<&str> = orders.iter().filter_map(|o| o["phone"].as_str()).collect();
    let styles = [
        |p: &str| p.starts_with("8 ("),
        |p: &str| p.starts_with("+7 "),
        |p: &str| p.len() == 10 && p.bytes().all(|b| b.is_ascii_digit()),
        |p: &str| p.starts_with("+7") && p[2..].bytes().all(|b| b.is_ascii_digit()),
        |p: &str| p.starts_with("8-"),
    ];
    for (n, style) in styles.iter().enumerate() {
        assert!(
            phones.iter().any(|p| style(p)),
            "phone style {n} in {phones:?}"
        );
    }
    // The generated history also has deletions and a merge.
    let truth = a.truth();
    let removed = truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["deleted"] == Value::Bool(true))
        .count();
    assert!(removed >= 2, "deleted and merged orders");
    assert!(
        truth["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .any(|o| o["merged_into"].is_u64())
    );
}

/// Every value under a key ending in `At`/`Datetime` is a naive `Y-m-d H:i:s`.
fn assert_naive_datetimes(v: &Value, path: &str) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if (k.ends_with("At") || k.ends_with("Datetime")) && !v.is_null() {
                    naive(v);
                }
                assert_naive_datetimes(v, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => items.iter().for_each(|i| assert_naive_datetimes(i, path)),
        _ => {}
    }
}

#[tokio::test]
async fn datetimes_are_naive_in_the_account_timezone() {
    for tz in [
        chrono_tz::Asia::Vladivostok,
        chrono_tz::America::New_York,
        chrono_tz::Europe::Moscow,
    ] {
        let sim = sim(40, tz).await;
        let a = sim.account(0);
        let settings = ok(a, "api/v5/settings").await;
        let zone: Tz = settings["settings"]["timezone"]["value"]
            .as_str()
            .expect("tz")
            .parse()
            .expect("IANA");
        assert_eq!(zone, tz);
        let to_utc = |v: &Value| {
            zone.from_local_datetime(&naive(v))
                .earliest()
                .expect("exists")
                .with_timezone(&Utc)
        };
        let body = ok(a, "api/v5/orders?limit=100").await;
        assert_naive_datetimes(&body, "orders");
        for o in body["orders"].as_array().expect("orders") {
            assert!(to_utc(&o["createdAt"]) <= Utc::now());
            assert!(naive(&o["statusUpdatedAt"]) >= naive(&o["createdAt"]));
        }
        let order = &body["orders"][0];
        let id = order["id"].as_u64().expect("id");
        let target = if order["status"] == "cancel-other" {
            "complete"
        } else {
            "cancel-other"
        };
        a.set_status(id, target, None).expect("changed");
        let fresh = ok(a, &format!("api/v5/orders/{id}?by=id")).await;
        let changed = to_utc(&fresh["order"]["statusUpdatedAt"]);
        assert!(
            (Utc::now() - changed).num_seconds().abs() < 30,
            "{tz}: {changed}"
        );
        let history = ok(a, "api/v5/orders/history?limit=20").await;
        assert_naive_datetimes(&history, "history");
        assert!(
            (Utc::now() - to_utc(&history["generatedAt"]))
                .num_seconds()
                .abs()
                < 30,
            "{tz}"
        );
    }
}

#[tokio::test]
async fn same_seed_same_data() {
    let pinned = Utc
        .with_ymd_and_hms(2024, 3, 1, 12, 0, 0)
        .single()
        .expect("valid");
    let config = |seed| {
        let account = AccountConfig {
            anchor: Some(pinned),
            ..AccountConfig::with_orders(60)
        };
        SimConfig {
            accounts: vec![account.clone(), account],
            ..SimConfig::new(0, 0).with_seed(seed)
        }
    };
    let one = start(config(7)).await;
    let two = start(config(7)).await;
    let other = start(config(8)).await;
    // Plain `assert!`: a failing comparison of two data sets would print megabytes.
    for i in 0..2 {
        assert!(
            one.account(i).truth() == two.account(i).truth(),
            "account {i}: same seed, same data"
        );
    }
    assert_eq!(one.account(0).api_key(), two.account(0).api_key());
    assert!(
        one.account(0).truth() != one.account(1).truth(),
        "accounts differ"
    );
    assert!(
        one.account(0).truth() != other.account(0).truth(),
        "seeds differ"
    );
    assert_eq!(
        one.account(0).truth()["orders"][0]["order"]["createdAt"]
            .as_str()
            .map(|s| s < "2024-03-01 15:00:00"),
        Some(true)
    );
}
