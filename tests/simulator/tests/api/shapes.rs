//! Response shapes compared with the real bodies in the fixtures.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{assert_has, assert_same_classes, assert_subset, fixture, keys, ok, set, sim};

/// Keys an order may carry beyond the fixtures' orders (all documented in API-NOTES §5).
const ORDER_EXTRAS: &[&str] = &[
    "company",
    "source",
    "clientId",
    "additionalPhone",
    "customerComment",
    "managerComment",
    "fullPaidAt",
];

fn fixture_order_keys() -> BTreeSet<String> {
    let mut all = keys(&fixture("orders-get.json")["order"]);
    all.extend(keys(&fixture("orders-list.json")["orders"][0]));
    all
}

#[tokio::test]
async fn orders_have_the_fixture_shape() {
    let sim = sim(120, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let body = ok(a, "api/v5/orders?limit=100").await;
    assert_eq!(keys(&body), set(&["success", "pagination", "orders"]));
    assert_eq!(
        keys(&body["pagination"]),
        keys(&fixture("orders-list.json")["pagination"])
    );
    let get_fixture = fixture("orders-get.json")["order"].clone();
    let list_fixture = fixture("orders-list.json")["orders"][0].clone();
    let mut allowed = fixture_order_keys();
    allowed.extend(set(ORDER_EXTRAS));
    // Every key of the fixture's GET order is always there, except related-order links and
    // the external id (manual orders have none).
    let mut required = keys(&get_fixture);
    required.remove("links");
    required.remove("externalId");
    let item_fixture = list_fixture["items"][0].clone();
    let mut item_allowed = keys(&item_fixture);
    item_allowed.insert("isCanceled".into());
    for order in body["orders"].as_array().expect("orders") {
        let have = keys(order);
        assert_subset("order", &have, &allowed);
        assert_has("order", &have, &required);
        assert_same_classes("order", order, &get_fixture, &["payments", "customFields"]);
        assert_same_classes("order", order, &list_fixture, &["payments", "customFields"]);
        assert_same_classes(
            "order.delivery",
            &order["delivery"],
            &get_fixture["delivery"],
            &[],
        );
        for item in order["items"].as_array().expect("items") {
            assert_subset("item", &keys(item), &item_allowed);
            assert_same_classes("item", item, &item_fixture, &[]);
            assert_subset(
                "item.offer",
                &keys(&item["offer"]),
                &keys(&item_fixture["offer"]),
            );
        }
        let customer_type = order["customer"]["type"].as_str().expect("customer.type");
        assert!(matches!(customer_type, "customer" | "customer_corporate"));
        assert_eq!(order["contact"]["type"], "customer");
        assert_eq!(order["slug"], order["id"]);
    }
}

#[tokio::test]
async fn empty_custom_fields_and_payments_are_arrays() {
    let sim = sim(150, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let body = ok(a, "api/v5/orders?limit=100").await;
    let orders = body["orders"].as_array().expect("orders");
    let mut empty_fields = 0;
    let mut empty_payments = 0;
    for o in orders {
        match &o["customFields"] {
            Value::Array(a) => {
                assert!(a.is_empty());
                empty_fields += 1;
            }
            Value::Object(m) => assert!(!m.is_empty(), "an empty object must be []"),
            other => panic!("customFields {other}"),
        }
        match &o["payments"] {
            Value::Array(a) => {
                assert!(a.is_empty());
                empty_payments += 1;
            }
            Value::Object(m) => {
                assert!(!m.is_empty(), "no payments must be []");
                for (id, p) in m {
                    assert_eq!(p["id"].to_string(), *id, "payments are keyed by their id");
                }
            }
            other => panic!("payments {other}"),
        }
    }
    assert!(empty_fields > 0 && empty_fields < orders.len());
    assert!(empty_payments > 0 && empty_payments < orders.len());
}

#[tokio::test]
async fn references_are_keyed_by_code() {
    let sim = sim(20, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let statuses = ok(a, "api/v5/reference/statuses").await["statuses"].clone();
    let status_fixture = fixture("reference-statuses.json")["statuses"]["new"].clone();
    let mut inactive = 0;
    for (code, s) in statuses.as_object().expect("statuses") {
        assert_eq!(keys(s), keys(&status_fixture));
        assert_same_classes("status", s, &status_fixture, &[]);
        assert_eq!(s["code"], Value::String(code.clone()));
        if s["active"] == Value::Bool(false) {
            inactive += 1;
        }
    }
    assert!(inactive >= 1, "an inactive status exists");

    let groups = ok(a, "api/v5/reference/status-groups").await["statusGroups"].clone();
    let group_fixture = fixture("reference-status-groups.json")["statusGroups"]["new"].clone();
    assert_eq!(
        keys(&groups),
        set(&[
            "new",
            "approval",
            "assembling",
            "delivery",
            "complete",
            "cancel"
        ])
    );
    let mut seen = BTreeSet::new();
    for (code, g) in groups.as_object().expect("groups") {
        assert_eq!(keys(g), keys(&group_fixture));
        assert_same_classes("group", g, &group_fixture, &[]);
        assert_eq!(g["code"], Value::String(code.clone()));
        let members = g["statuses"].as_array().expect("statuses");
        assert!(!members.is_empty(), "group {code} has statuses");
        for m in members {
            let m = m.as_str().expect("code");
            assert_eq!(statuses[m]["group"], Value::String(code.clone()));
            assert!(seen.insert(m.to_owned()), "{m} in one group only");
        }
    }
    assert_eq!(seen.len(), statuses.as_object().map_or(0, |m| m.len()));

    let sites = ok(a, "api/v5/reference/sites").await["sites"].clone();
    let site_fixtures = fixture("reference-sites.json")["sites"].clone();
    let mut site_keys = keys(&site_fixtures["test"]);
    site_keys.extend(keys(&site_fixtures["test-ru"]));
    assert!(
        sites.as_object().expect("sites").len() >= 3,
        "several shops"
    );
    for (code, s) in sites.as_object().expect("sites") {
        assert_subset("site", &keys(s), &site_keys);
        assert_same_classes("site", s, &site_fixtures["test"], &[]);
        assert_eq!(s["code"], Value::String(code.clone()));
        assert!(s["countryIso"].as_str().is_some_and(|c| c.len() == 2));
    }
}

#[tokio::test]
async fn unversioned_methods_and_settings_match_the_fixtures() {
    let sim = sim(20, chrono_tz::Asia::Yekaterinburg).await;
    let a = sim.account(0);
    let credentials = ok(a, "api/credentials").await;
    assert_has(
        "credentials",
        &keys(&credentials),
        &keys(&fixture("api-credentials.json")),
    );
    assert_same_classes(
        "credentials",
        &credentials,
        &fixture("api-credentials.json"),
        &[],
    );
    assert_eq!(
        ok(a, "api/api-versions").await,
        fixture("api-versions.json")
    );

    let settings = ok(a, "api/v5/settings").await;
    let settings_fixture = fixture("settings.json");
    assert_has(
        "settings",
        &keys(&settings["settings"]),
        &set(&[
            "default_currency",
            "system_language",
            "timezone",
            "work_times",
        ]),
    );
    for key in ["default_currency", "system_language", "timezone"] {
        assert_eq!(
            keys(&settings["settings"][key]),
            keys(&settings_fixture["settings"][key])
        );
    }
    assert_eq!(
        settings["settings"]["timezone"]["value"],
        "Asia/Yekaterinburg"
    );
    assert_eq!(settings["settings"]["default_currency"]["value"], "RUB");
}

#[tokio::test]
async fn history_entries_have_the_fixture_shape() {
    let sim = sim(60, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let body = ok(a, "api/v5/orders/history?limit=100").await;
    let history_fixture = fixture("orders-history.json");
    assert_eq!(keys(&body), keys(&history_fixture));
    let fixture_entries = history_fixture["history"].as_array().expect("history");
    let mut entry_keys: BTreeSet<String> = fixture_entries.iter().flat_map(keys).collect();
    // Deletion and merge markers are documented (API-NOTES §4) though this page has none.
    entry_keys.extend(set(&["deleted", "combinedTo"]));
    let created_fixture = fixture_entries
        .iter()
        .find(|e| e["created"] == Value::Bool(true))
        .expect("creation entry");
    let stub_keys = set(&["id", "externalId", "managerId", "site", "status"]);
    let mut previous = 0;
    for e in body["history"].as_array().expect("history") {
        let id = e["id"].as_u64().expect("id");
        assert!(id > previous, "ascending ids");
        previous = id;
        assert_subset("history entry", &keys(e), &entry_keys);
        if e["created"] == Value::Bool(true) {
            let mut comparable = e.clone();
            if let Some(map) = comparable.as_object_mut() {
                // Mixed-type values (null, {code}, numbers) and the order (checked elsewhere).
                for key in ["oldValue", "newValue", "order"] {
                    map.remove(key);
                }
            }
            assert_same_classes("created entry", &comparable, created_fixture, &[]);
            assert!(
                e["order"]["items"].is_array(),
                "creation carries the full order"
            );
            assert_eq!(e["field"], "status");
            assert!(e["oldValue"].is_null());
        } else {
            assert_subset("entry order", &keys(&e["order"]), &stub_keys);
        }
        match e["source"].as_str().expect("source") {
            "user" => assert!(e["user"]["id"].is_u64()),
            "api" => assert_eq!(e["apiKey"]["current"], Value::Bool(false)),
            "code" | "combine" => {}
            other => panic!("source {other}"),
        }
    }
}
