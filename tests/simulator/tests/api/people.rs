//! Users, customers and corporate customers.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{
    assert_same_classes, assert_subset, fixture, get, keys, live_orders, ok, set, sim,
};

#[tokio::test]
async fn users_list_get_and_the_deleted_one() {
    let sim = sim(40, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let (count, deleted) = a.inspect(|store| (store.users.len(), store.deleted_user_ids[0]));
    let list = ok(a, "api/v5/users").await;
    assert_eq!(
        list["pagination"]["totalCount"].as_u64(),
        Some(count as u64)
    );
    let user_fixture = fixture("users-get.json")["user"].clone();
    let mut allowed = keys(&user_fixture);
    allowed.extend(set(&["lastName", "patronymic", "position", "phone"]));
    for u in list["users"].as_array().expect("users") {
        assert_subset("user", &keys(u), &allowed);
        assert_same_classes("user", u, &user_fixture, &[]);
    }
    let inactive = ok(a, "api/v5/users?filter[active]=0").await;
    let inactive = inactive["users"].as_array().expect("users");
    assert_eq!(inactive.len(), 1);
    let id = inactive[0]["id"].as_u64().expect("id");
    assert_eq!(
        ok(a, &format!("api/v5/users/{id}")).await["user"]["active"],
        Value::Bool(false)
    );
    let (status, body) = get(a, &format!("api/v5/users/{deleted}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixture("error-not-found.json"));
}

#[tokio::test]
async fn customers_by_id_and_merged_ones() {
    let sim = sim(80, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let orders = live_orders(a);
    let individual = orders
        .iter()
        .find(|o| o["customer"]["type"] == "customer")
        .expect("individual");
    let id = individual["customer"]["id"].as_u64().expect("id");
    let customer = ok(a, &format!("api/v5/customers/{id}?by=id")).await["customer"].clone();
    let customer_fixture = fixture("customers-get.json")["customer"].clone();
    let mut allowed = keys(&customer_fixture);
    allowed.extend(set(&[
        "patronymic",
        "sex",
        "source",
        "firstClientId",
        "lastName",
    ]));
    assert_subset("customer", &keys(&customer), &allowed);
    assert_same_classes("customer", &customer, &customer_fixture, &["customFields"]);
    assert_eq!(customer["id"].as_u64(), Some(id));

    let corporate = orders
        .iter()
        .find(|o| o["customer"]["type"] == "customer_corporate")
        .expect("corporate");
    let cid = corporate["customer"]["id"].as_u64().expect("id");
    let body = ok(a, &format!("api/v5/customers-corporate/{cid}?by=id")).await;
    let corp_fixture = fixture("customers-corporate-get.json")["customerCorporate"].clone();
    let mut corp_allowed = keys(&corp_fixture);
    corp_allowed.insert("mainCustomerContact".into());
    assert_subset(
        "corporate",
        &keys(&body["customerCorporate"]),
        &corp_allowed,
    );
    assert_same_classes(
        "corporate",
        &body["customerCorporate"],
        &corp_fixture,
        &["customFields"],
    );

    let (merged, survivor) = a.inspect(|store| {
        let c = store
            .customers
            .values()
            .find(|c| c.combined_to.is_some())
            .expect("a merged customer");
        (c.id, c.combined_to.expect("target"))
    });
    let (status, body) = get(a, &format!("api/v5/customers/{merged}?by=id")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorMsg"], "Not found");
    assert_eq!(body["combinedTo"]["id"].as_u64(), Some(survivor));
    let (status, body) = get(a, "api/v5/customers/999999999?by=id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixture("error-not-found.json"));
    // `by` defaults to externalId here too.
    let (status, _) = get(a, &format!("api/v5/customers/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
