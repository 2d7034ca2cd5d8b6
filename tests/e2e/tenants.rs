//! Tenants end to end (issue 15, DESIGN §4 "Tenants and tokens", §7.7) on the all-in-one
//! process, on both buses: two tenants with an integration each, and every API route and page
//! tried with the other tenant's token or session — all `404`, nothing changed — while each
//! sees its own; a revoked token ends its API access and its pages session.

use reqwest::Method;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::{Bus, System, truth_orders};

/// A tenant and a token for it, made with the operator token; `(tenant id, token)`.
async fn tenant_with_token(system: &System, name: &str) -> (String, String) {
    let (status, tenant) = system
        .send(Method::POST, "/tenants", json!({"name": name}))
        .await;
    assert_eq!(status, 201, "{tenant}");
    let id = tenant["id"].as_str().unwrap().to_string();
    let (status, issued) = system
        .send(
            Method::POST,
            &format!("/tenants/{id}/tokens"),
            json!({"name": "cabinet"}),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    (id, issued["token"].as_str().unwrap().to_string())
}

/// `(status, body text)` of one API call with `token`.
async fn api(
    system: &System,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = system
        .http
        .request(method, format!("{}/api/v1{path}", system.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Signs in to the pages with `token`; the session cookie (`name=value`).
async fn sign_in(system: &System, pages: &reqwest::Client, token: &str) -> String {
    let response = pages
        .post(format!("{}/login", system.base))
        .form(&[("token", token), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "sign-in with a tenant token");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains(token) && !cookie.contains(&token[4..]));
    cookie.split(';').next().unwrap().to_string()
}

/// `(status, body)` of one page request with a session cookie (redirects not followed).
async fn page(
    system: &System,
    pages: &reqwest::Client,
    cookie: &str,
    method: Method,
    path: &str,
    form: Option<&[(&str, &str)]>,
) -> (u16, String) {
    let mut request = pages
        .request(method, format!("{}{path}", system.base))
        .header("cookie", cookie);
    if let Some(form) = form {
        request = request.form(form);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn each_tenant_sees_only_its_own(bus: Bus) {
    let system = System::start_accounts(bus, 2, 6).await;
    let (a, token_a) = tenant_with_token(&system, "Tenant A").await;
    let (b, token_b) = tenant_with_token(&system, "Tenant B").await;
    let (id_a, hook_a) = system.connect_with(0, json!({"tenant_id": a})).await;
    let (id_b, hook_b) = system.connect_with(1, json!({"tenant_id": b})).await;
    for (i, (id, hook)) in [(&id_a, &hook_a), (&id_b, &hook_b)].into_iter().enumerate() {
        let orders = truth_orders(system.sim.account(i));
        for order in orders.keys() {
            let sent = system.http.get(format!("{hook}?orderId={order}")).send();
            assert_eq!(sent.await.unwrap().status(), 202);
        }
        let n = orders.len();
        system.wait_deals(id, "every deal", |d| d.len() == n).await;
    }
    let order_a = *truth_orders(system.sim.account(0)).keys().next().unwrap();
    let order_b = *truth_orders(system.sim.account(1)).keys().next().unwrap();
    let (_, first_page) = api(
        &system,
        &token_a,
        Method::GET,
        &format!("/integrations/{id_a}/deals?limit=1"),
        None,
    )
    .await;
    let cursor_a = serde_json::from_str::<Value>(&first_page).unwrap()["next_cursor"]
        .as_str()
        .expect("more than one deal")
        .to_string();

    let reads = |id: &str, order: u64, cursor: &str| {
        vec![
            format!("/integrations/{id}"),
            format!("/integrations/{id}/deals"),
            format!("/integrations/{id}/deals?limit=1&cursor={cursor}"),
            format!("/integrations/{id}/deals?outcome=open&deleted=false"),
            format!("/integrations/{id}/deals.csv"),
            format!("/integrations/{id}/deals/{order}"),
            format!("/integrations/{id}/funnels"),
            format!("/integrations/{id}/contacts"),
            format!("/integrations/{id}/managers"),
        ]
    };
    // Each tenant reads its own.
    for (token, id, order) in [(&token_a, &id_a, order_a), (&token_b, &id_b, order_b)] {
        for path in reads(id, order, "") {
            let path = path.replace("&cursor=", "");
            let (status, body) = api(&system, token, Method::GET, &path, None).await;
            assert_eq!(status, 200, "own {path}: {body}");
        }
    }
    // The other tenant's: every read and write is 404 integration_not_found, and nothing
    // changed (the operator sees the same integration and deals before and after).
    let before = (
        system.get(&format!("/integrations/{id_a}")).await,
        system.all_deals(&id_a).await,
    );
    let mut attempts: Vec<(Method, String, Option<Value>)> = reads(&id_a, order_a, &cursor_a)
        .into_iter()
        .map(|path| (Method::GET, path, None))
        .collect();
    attempts.extend([
        (
            Method::PATCH,
            format!("/integrations/{id_a}"),
            Some(json!({"active": false, "default_funnel": true})),
        ),
        (
            Method::POST,
            format!("/integrations/{id_a}/resync"),
            Some(json!({"since": "2024-01-01"})),
        ),
        (
            Method::POST,
            format!("/integrations/{id_a}/deals/{order_a}/refetch"),
            None,
        ),
        (
            Method::POST,
            format!("/integrations/{id_a}/dead-letters/0000000000000000/retry"),
            None,
        ),
        (
            Method::GET,
            format!("/integrations/{id_a}/deals/{order_a}/trace"),
            None,
        ),
        (Method::GET, format!("/integrations/{id_a}/sync"), None),
        (
            Method::GET,
            format!("/integrations/{id_a}/dead-letters"),
            None,
        ),
        (Method::DELETE, format!("/integrations/{id_a}"), None),
    ]);
    for (method, path, body) in attempts {
        let (status, text) = api(&system, &token_b, method.clone(), &path, body).await;
        assert_eq!(status, 404, "B: {method} {path}: {text}");
        let code = serde_json::from_str::<Value>(&text).unwrap()["error"]["code"].clone();
        assert_eq!(code, "integration_not_found", "B: {method} {path}");
    }
    let (_, list_b) = api(&system, &token_b, Method::GET, "/integrations", None).await;
    assert!(
        list_b.contains(&id_b) && !list_b.contains(&id_a),
        "{list_b}"
    );
    let (status, _) = api(&system, &token_b, Method::GET, "/tenants", None).await;
    assert_eq!(status, 403);
    let after = (
        system.get(&format!("/integrations/{id_a}")).await,
        system.all_deals(&id_a).await,
    );
    assert_eq!(
        before, after,
        "B's attempts changed A's integration or deals"
    );

    // The pages: B signs in with its token and sees only its own integration.
    let pages = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let cookie_b = sign_in(&system, &pages, &token_b).await;
    let (status, index) = page(&system, &pages, &cookie_b, Method::GET, "/", None).await;
    assert_eq!(status, 200);
    assert!(
        index.contains(&id_b) && !index.contains(&id_a),
        "B's index lists A's integration"
    );
    for path in [
        format!("/integrations/{id_a}"),
        format!("/integrations/{id_a}/deals"),
        format!("/integrations/{id_a}/deals?outcome=open"),
        format!("/integrations/{id_a}/deals.csv"),
        format!("/integrations/{id_a}/deals/{order_a}"),
    ] {
        let (status, body) = page(&system, &pages, &cookie_b, Method::GET, &path, None).await;
        assert_eq!(status, 404, "B's page {path}: {body}");
    }
    for (path, form) in [
        (
            format!("/integrations/{id_a}/deals/{order_a}/refetch"),
            vec![],
        ),
        (
            format!("/integrations/{id_a}/resync"),
            vec![("since", "2024-01-01")],
        ),
        (
            format!("/integrations/{id_a}/dead-letters/0000000000000000/retry"),
            vec![],
        ),
        (
            format!("/integrations/{id_a}/dead-letters/retry-all"),
            vec![],
        ),
        (
            format!("/integrations/{id_a}/api-key"),
            vec![("api_key", "x")],
        ),
        (
            format!("/integrations/{id_a}/delete"),
            vec![("confirm", "anything")],
        ),
    ] {
        let (status, body) =
            page(&system, &pages, &cookie_b, Method::POST, &path, Some(&form)).await;
        assert_eq!(status, 404, "B's form {path} on A's integration: {body}");
    }
    let (status, _) = page(
        &system,
        &pages,
        &cookie_b,
        Method::POST,
        &format!("/integrations/{id_a}/settings"),
        Some(&[("default_funnel", "on")]),
    )
    .await;
    assert_eq!(status, 404, "B's settings form on A's integration");
    for path in [
        format!("/integrations/{id_b}"),
        format!("/integrations/{id_b}/deals"),
    ] {
        let (status, _) = page(&system, &pages, &cookie_b, Method::GET, &path, None).await;
        assert_eq!(status, 200, "B's own page {path}");
    }
    let (status, _) = page(
        &system,
        &pages,
        &cookie_b,
        Method::POST,
        &format!("/integrations/{id_b}/settings"),
        Some(&[("active", "on"), ("default_funnel", "on")]),
    )
    .await;
    assert_eq!(status, 303, "B changes its own settings through the page");
    assert_eq!(
        system.get(&format!("/integrations/{id_b}")).await["default_funnel"],
        true
    );
    assert_eq!(
        system.get(&format!("/integrations/{id_a}")).await,
        before.0,
        "A unchanged"
    );

    // Revoking B's token ends its API access and its pages session at once.
    let (_, tokens) = system
        .send(Method::GET, &format!("/tenants/{b}/tokens"), Value::Null)
        .await;
    let token_id = tokens["items"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = system
        .send(
            Method::DELETE,
            &format!("/tenants/{b}/tokens/{token_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api(&system, &token_b, Method::GET, "/integrations", None).await;
    assert_eq!(status, 401);
    let response = pages
        .get(format!("{}/", system.base))
        .header("cookie", &cookie_b)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        303,
        "a revoked token's session sends to the sign-in"
    );
    // A's token still works; the operator still sees both.
    let (status, _) = api(
        &system,
        &token_a,
        Method::GET,
        &format!("/integrations/{id_a}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let all = system.get("/integrations").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_sees_only_its_own_on_the_embedded_log() {
    each_tenant_sees_only_its_own(Bus::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_sees_only_its_own_on_kafka() {
    each_tenant_sees_only_its_own(Bus::kafka().await).await;
}
