//! `orders/history`: `sinceId` rules and the entries each control writes.

use chrono::{NaiveDateTime, TimeZone, Utc};
use dealflow_simulator::{Actor, ItemEdit, NewOrder, OrderEdit};
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::{
    fixture, get, history_since, keys, last_history_id, live_orders, ok, set, sim,
};

fn decimal(v: &Value) -> Decimal {
    v.to_string().parse().expect("a number")
}

#[tokio::test]
async fn page_with_since_id_is_rejected() {
    let sim = sim(20, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let (status, body) = get(
        a,
        "api/v5/orders/history?filter[sinceId]=1&page=1&limit=100",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["success"], Value::Bool(false));
    assert_eq!(body["errorMsg"], "Errors in the input parameters");
    assert!(body["errors"]["page"].is_string());
    let (status, _) = get(a, "api/v5/orders/history?limit=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Paging without sinceId is fine.
    let body = ok(a, "api/v5/orders/history?page=2&limit=50").await;
    assert_eq!(body["pagination"]["currentPage"], 2);
}

#[tokio::test]
async fn since_id_is_exclusive_and_walks_the_whole_feed() {
    let sim = sim(80, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let all = ok(a, "api/v5/orders/history?limit=100").await;
    let total = all["pagination"]["totalCount"].as_u64().expect("total");
    let first = all["history"][0]["id"].as_u64().expect("id");
    let after_first = history_since(a, first).await;
    assert_eq!(after_first[0]["id"].as_u64(), Some(first + 1));
    // Walking sinceId sees every record once, in ascending order.
    let mut since = 0;
    let mut seen = 0;
    loop {
        let page = history_since(a, since).await;
        let Some(last) = page.last() else { break };
        for e in &page {
            assert!(e["id"].as_u64().expect("id") > since);
        }
        seen += page.len() as u64;
        since = last["id"].as_u64().expect("id");
    }
    assert_eq!(seen, total);
    assert_eq!(a.inspect(|s| s.history.last_id()), Some(since));
    // Every generated order has its creation record.
    let (created, orders) = a.inspect(|s| {
        (
            s.history.entries().iter().filter(|e| e.created).count(),
            s.orders.len(),
        )
    });
    assert_eq!(created, orders);
}

#[tokio::test]
async fn status_change_writes_one_status_entry() {
    let sim = sim(40, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let since = last_history_id(a).await;
    let order = live_orders(a)
        .into_iter()
        .find(|o| o["status"] != "complete")
        .expect("an order");
    let id = order["id"].as_u64().expect("id");
    let manager = a.inspect(|s| s.users[1].id);
    assert!(
        a.set_status(id, "complete", Some(Actor::User(manager)))
            .expect("changed")
    );
    assert!(
        !a.set_status(id, "complete", None).expect("no-op"),
        "same status is no change"
    );
    let entries = history_since(a, since).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["field"], "status");
    assert_eq!(e["oldValue"], json!({ "code": order["status"] }));
    assert_eq!(e["newValue"], json!({ "code": "complete" }));
    assert_eq!(e["source"], "user");
    assert_eq!(e["order"]["id"].as_u64(), Some(id));
    assert_eq!(e["order"]["status"], "complete");
    assert!(keys(&e["order"]).is_subset(&set(&[
        "id",
        "externalId",
        "managerId",
        "site",
        "status"
    ])));
    let fresh = ok(a, &format!("api/v5/orders/{id}?by=id")).await;
    assert_eq!(fresh["order"]["status"], "complete");
    assert_eq!(fresh["order"]["statusUpdatedAt"], e["createdAt"]);
    assert!(matches!(
        a.set_status(id, "no-such-status", None),
        Err(dealflow_simulator::SimError::UnknownStatus(_))
    ));
}

#[tokio::test]
async fn delete_writes_a_deleted_entry_and_hides_the_order() {
    let sim = sim(40, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let since = last_history_id(a).await;
    let id = live_orders(a)[3]["id"].as_u64().expect("id");
    a.delete_order(id, None).expect("deleted");
    let entries = history_since(a, since).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["deleted"], Value::Bool(true));
    assert_eq!(entries[0]["order"]["id"].as_u64(), Some(id));
    assert!(entries[0].get("combinedTo").is_none());
    let (status, body) = get(a, &format!("api/v5/orders/{id}?by=id")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixture("error-not-found.json"));
    let listed = ok(a, &format!("api/v5/orders?filter[ids][]={id}")).await;
    assert_eq!(listed["orders"], json!([]));
    let truth = a.truth();
    let marked = truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["id"].as_u64() == Some(id))
        .expect("kept in the truth");
    assert_eq!(marked["deleted"], Value::Bool(true));
    assert!(marked["merged_into"].is_null());
}

#[tokio::test]
async fn merge_moves_items_and_points_at_the_survivor() {
    let sim = sim(40, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let orders = live_orders(a);
    let (from, into) = (&orders[5], &orders[6]);
    let (from_id, into_id) = (
        from["id"].as_u64().expect("id"),
        into["id"].as_u64().expect("id"),
    );
    let since = last_history_id(a).await;
    a.merge_orders(from_id, into_id).expect("merged");
    let entries = history_since(a, since).await;
    let moved = from["items"].as_array().expect("items").len();
    assert_eq!(entries.len(), moved + 1);
    for e in &entries[..moved] {
        assert_eq!(e["field"], "order_product");
        assert_eq!(e["source"], "combine");
        assert_eq!(e["order"]["id"].as_u64(), Some(into_id));
        assert!(e["item"]["id"].is_u64());
    }
    let last = &entries[moved];
    assert_eq!(last["source"], "combine");
    assert_eq!(last["deleted"], Value::Bool(true));
    assert_eq!(last["order"]["id"].as_u64(), Some(from_id));
    assert_eq!(last["combinedTo"]["id"].as_u64(), Some(into_id));
    let survivor = ok(a, &format!("api/v5/orders/{into_id}?by=id")).await["order"].clone();
    assert_eq!(
        decimal(&survivor["summ"]),
        decimal(&into["summ"]) + decimal(&from["summ"])
    );
    let (status, _) = get(a, &format!("api/v5/orders/{from_id}?by=id")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let truth = a.truth();
    let marked = truth["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .find(|o| o["id"].as_u64() == Some(from_id))
        .expect("kept");
    assert_eq!(marked["merged_into"].as_u64(), Some(into_id));
}

#[tokio::test]
async fn edits_write_one_entry_per_field_and_keep_the_sums() {
    let sim = sim(40, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let order = live_orders(a)
        .into_iter()
        .find(|o| o["items"].as_array().is_some_and(|i| i.len() >= 2))
        .expect("two lines");
    let id = order["id"].as_u64().expect("id");
    let item = order["items"][0]["id"].as_u64().expect("item");
    let current = order["managerId"].as_u64();
    let manager = a.inspect(|s| {
        s.users
            .iter()
            .map(|u| u.id)
            .find(|id| Some(*id) != current)
            .expect("another user")
    });
    let since = last_history_id(a).await;
    let edit = OrderEdit {
        delivery_cost: Some(Decimal::new(49990, 2)),
        manager_id: Some(Some(manager)),
        phone: Some("+7 (999) 000-11-22".into()),
        items: vec![ItemEdit {
            item_id: item,
            discount_total: Some(Decimal::from(10)),
            canceled: Some(true),
            ..ItemEdit::default()
        }],
        ..OrderEdit::default()
    };
    let written = a.edit_order(id, &edit, Some(Actor::Api)).expect("edited");
    let entries = history_since(a, since).await;
    assert_eq!(entries.len(), written);
    let fields: Vec<&str> = entries
        .iter()
        .map(|e| e["field"].as_str().expect("field"))
        .collect();
    for f in ["delivery_cost", "manager", "phone", "order_product.status"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    for e in &entries {
        assert_eq!(e["source"], "api");
        assert_eq!(e["apiKey"], json!({ "current": false }));
        assert_eq!(e["order"]["managerId"].as_u64(), Some(manager));
    }
    let fresh = ok(a, &format!("api/v5/orders/{id}?by=id")).await["order"].clone();
    assert_eq!(fresh["delivery"]["cost"], json!(499.9));
    let lines: Decimal = fresh["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["isCanceled"] == Value::Bool(false))
        .map(|i| decimal(&i["prices"][0]["price"]) * decimal(&i["quantity"]))
        .sum();
    assert_eq!(decimal(&fresh["summ"]), lines);
    assert_eq!(decimal(&fresh["totalSumm"]), lines + Decimal::new(49990, 2));
    assert_eq!(fresh["items"][0]["isCanceled"], Value::Bool(true));
}

#[tokio::test]
async fn created_orders_carry_a_full_snapshot() {
    let sim = sim(20, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let since = last_history_id(a).await;
    let id = a
        .create_order(&NewOrder {
            corporate: Some(true),
            ..NewOrder::default()
        })
        .expect("created");
    let entries = history_since(a, since).await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["created"], Value::Bool(true));
    assert_eq!(e["source"], "api");
    assert_eq!(e["newValue"], json!({ "code": "new" }));
    let fetched = ok(a, &format!("api/v5/orders/{id}?by=id")).await["order"].clone();
    assert_eq!(keys(&e["order"]), keys(&fetched));
    assert_eq!(fetched["customer"]["type"], "customer_corporate");
    assert!(fetched["company"]["name"].is_string());
    assert_eq!(fetched["createdAt"], e["createdAt"]);
    // A fresh order is stamped now in the account's zone.
    let created = NaiveDateTime::parse_from_str(
        fetched["createdAt"].as_str().expect("createdAt"),
        "%Y-%m-%d %H:%M:%S",
    )
    .expect("naive");
    let utc = chrono_tz::Europe::Moscow
        .from_local_datetime(&created)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc);
    assert!((Utc::now() - utc).num_seconds().abs() < 30);
}
