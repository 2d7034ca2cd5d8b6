//! API keys: the real error bodies, revocation, scopes, old credential-only keys, selective
//! site access.

use dealflow_simulator::{AccountConfig, KeyAccess, SimConfig, SiteAccess};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{client, fixture, get_with_key, ok, sim, start};

#[tokio::test]
async fn missing_wrong_and_revoked_keys_get_the_real_bodies() {
    let sim = sim(20, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let (status, body) = get_with_key(a, "api/v5/orders", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, fixture("error-missing-api-key.json"));

    let (status, body) = get_with_key(a, "api/credentials", Some("not-a-key")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, fixture("error-wrong-api-key.json"));

    // The key may also travel as the apiKey query parameter.
    let (status, _) = get_with_key(a, &format!("api/v5/orders?apiKey={}", a.api_key()), None).await;
    assert_eq!(status, StatusCode::OK);

    a.revoke_key(0).expect("key 0");
    let (status, body) = get_with_key(a, "api/credentials", Some(&a.api_key())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, fixture("error-wrong-api-key.json"));
    a.restore_key(0).expect("key 0");
    ok(a, "api/credentials").await;
}

#[tokio::test]
async fn scopes_decide_access_and_credentials_report_them() {
    let sim = sim(20, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let orders_only = KeyAccess {
        scopes: vec!["order_read".into(), "reference_read".into()],
        ..KeyAccess::default()
    };
    a.set_key_access(0, orders_only).expect("key 0");
    ok(a, "api/v5/orders").await;
    ok(a, "api/v5/reference/statuses").await;
    for path in ["api/v5/users", "api/v5/users/1", "api/v5/customers/1?by=id"] {
        let (status, body) = get_with_key(a, path, Some(&a.api_key())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body, fixture("error-access-denied.json"), "{path}");
    }
    let credentials = ok(a, "api/credentials").await;
    assert_eq!(
        credentials["scopes"],
        serde_json::json!(["order_read", "reference_read"])
    );
    let paths = credentials["credentials"].as_array().expect("credentials");
    assert!(paths.contains(&Value::from("/api/orders/history")));
    assert!(!paths.contains(&Value::from("/api/users/{id}")));

    // An old key without scopes is judged by its credentials list.
    let (index, old) = a.add_key(KeyAccess {
        scopes: Vec::new(),
        credentials: Some(vec!["/api/users/{id}".into()]),
        ..KeyAccess::default()
    });
    assert_eq!(index, 1);
    let user_id = a.inspect(|s| s.users[0].id);
    let (status, _) = get_with_key(a, &format!("api/v5/users/{user_id}"), Some(&old)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_with_key(a, "api/v5/users", Some(&old)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get_with_key(a, "api/v5/orders", Some(&old)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn selective_site_access_hides_other_shops() {
    let mut account = AccountConfig::with_orders(80);
    account.rate_limit = 0;
    account.keys = vec![KeyAccess::default()];
    let sim = start(SimConfig {
        accounts: vec![account],
        ..SimConfig::new(0, 0)
    })
    .await;
    let a = sim.account(0);
    let sites: Vec<String> = a.inspect(|s| s.sites.iter().map(|s| s.code.clone()).collect());
    let visible = sites[0].clone();
    a.set_key_access(
        0,
        KeyAccess {
            site_access: SiteAccess::Selective,
            sites_available: vec![visible.clone()],
            ..KeyAccess::default()
        },
    )
    .expect("key 0");
    let credentials = ok(a, "api/credentials").await;
    assert_eq!(credentials["siteAccess"], "access_selective");
    assert_eq!(credentials["sitesAvailable"], serde_json::json!([visible]));
    let listed = ok(a, "api/v5/reference/sites").await;
    assert_eq!(listed["sites"].as_object().map(|m| m.len()), Some(1));
    let orders = ok(a, "api/v5/orders?limit=100").await;
    for o in orders["orders"].as_array().expect("orders") {
        assert_eq!(o["site"], Value::String(visible.clone()));
    }
    let (status, body) = get_with_key(
        a,
        &format!("api/v5/orders?filter[sites][]={}", sites[1]),
        Some(&a.api_key()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, fixture("error-access-denied.json"));
    let hidden = crate::common::live_orders(a)
        .into_iter()
        .find(|o| o["site"] != Value::String(visible.clone()))
        .expect("an order of another shop");
    let (status, body) = get_with_key(
        a,
        &format!("api/v5/orders/{}?by=id", hidden["id"]),
        Some(&a.api_key()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, fixture("error-not-found.json"));
}

#[tokio::test]
async fn unknown_methods_paths_and_verbs() {
    let sim = sim(10, chrono_tz::Europe::Moscow).await;
    let a = sim.account(0);
    let (status, body) = get_with_key(a, "api/v5/orders/1/edit", Some(&a.api_key())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["success"], Value::Bool(false));
    let response = client()
        .get(format!("{}login", a.url()))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        response.text().await.expect("body").starts_with('<'),
        "non-API paths answer HTML"
    );
    let response = client()
        .post(format!("{}api/v5/orders", a.url()))
        .header("X-API-KEY", a.api_key())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    a.set_exists(false);
    let (status, body) = get_with_key(a, "api/credentials", Some(&a.api_key())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorMsg"], "Account does not exist");
    a.set_exists(true);
    ok(a, "api/credentials").await;
}
