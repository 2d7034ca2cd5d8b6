//! Tenants and scoped tokens on ingest (issue 15, DESIGN §4 "Tenants and tokens", §7.7), on
//! both buses: the operator manages tenants and tokens; a tenant token sees and changes only
//! its tenant's integrations, another tenant's are `404` and stay unchanged; revoked tokens
//! are refused at once; a restart keeps tenants and tokens; no token reaches a log line.

mod support;

use dealflow_simulator::{SimConfig, SimHandle, Simulator};
use dealflow_testkit::captured_logs;
use reqwest::Method;
use serde_json::{Value, json};
use support::{API_TOKEN, Backend, TestApp, error_code, on_both_backends};

const ALLOW_SIM: &str = "http://127.0.0.1:*";

/// A call with an explicit bearer token; `(status, body)`.
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.api(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates a tenant and one token for it with the operator token; `(tenant id, token)`.
async fn tenant_with_token(app: &TestApp, name: &str) -> (String, String) {
    let (status, tenant) = app
        .send(Method::POST, "/tenants", Some(json!({"name": name})))
        .await;
    assert_eq!(status, 201, "{tenant}");
    let id = tenant["id"].as_str().unwrap().to_string();
    let (status, issued) = app
        .send(
            Method::POST,
            &format!("/tenants/{id}/tokens"),
            Some(json!({"name": "cabinet"})),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(
        token.starts_with("dft_") && token.len() >= 4 + 43,
        "{token}"
    );
    assert_eq!(
        issued["token_hint"].as_str().unwrap(),
        format!("dft_…{}", &token[token.len() - 4..])
    );
    (id, token)
}

fn connect_body(sim: &SimHandle) -> Value {
    json!({"crm_url": sim.account(0).url(), "api_key": sim.account(0).api_key(), "backfill_days": 0})
}

async fn a_tenant_token_reaches_only_its_own_integrations(backend: Backend) {
    let logs = captured_logs();
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[ALLOW_SIM]).await;
    let sim = Simulator::start(SimConfig::new(1, 5)).await.unwrap();
    let (a, token_a) = tenant_with_token(&app, "Tenant A").await;
    let (b, token_b) = tenant_with_token(&app, "Tenant B").await;

    // A tenant token creates in its own tenant; naming another is refused.
    let (status, created) = call(
        &app,
        &token_a,
        Method::POST,
        "/integrations",
        Some(connect_body(&sim)),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tenant_id"], a.as_str());
    let id = created["id"].as_str().unwrap().to_string();
    let mut other = connect_body(&sim);
    other["tenant_id"] = b.clone().into();
    let (status, body) = call(
        &app,
        &token_a,
        Method::POST,
        "/integrations",
        Some(other.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // The operator creates in the tenant it names, `default` when it names none, and is
    // told when the tenant does not exist.
    let (status, in_b) = app.send(Method::POST, "/integrations", Some(other)).await;
    assert_eq!(
        (status, in_b["tenant_id"].as_str()),
        (201, Some(b.as_str()))
    );
    let (status, in_default) = app
        .send(Method::POST, "/integrations", Some(connect_body(&sim)))
        .await;
    assert_eq!(
        (status, in_default["tenant_id"].as_str()),
        (201, Some("default"))
    );
    let mut unknown = connect_body(&sim);
    unknown["tenant_id"] = "no-such-tenant".into();
    let (status, body) = app.send(Method::POST, "/integrations", Some(unknown)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("tenant_not_found"))
    );

    // Lists are scoped; the operator sees every tenant.
    let ids = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, list_a) = call(&app, &token_a, Method::GET, "/integrations", None).await;
    assert_eq!(ids(&list_a), vec![id.clone()]);
    let (_, list_b) = call(&app, &token_b, Method::GET, "/integrations", None).await;
    assert_eq!(ids(&list_b), vec![in_b["id"].as_str().unwrap().to_string()]);
    let (_, all) = app.get_json("/integrations").await;
    assert_eq!(ids(&all).len(), 3);

    // Every route on A's integration with B's token: 404, exactly like an unknown id, and
    // nothing changed.
    let (_, before) = app.get_json(&format!("/integrations/{id}")).await;
    let attempts = [
        (Method::GET, format!("/integrations/{id}"), None),
        (
            Method::PATCH,
            format!("/integrations/{id}"),
            Some(json!({"active": false})),
        ),
        (
            Method::POST,
            format!("/integrations/{id}/resync"),
            Some(json!({"since": "2024-01-01"})),
        ),
        (Method::DELETE, format!("/integrations/{id}"), None),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = call(&app, &token_b, method.clone(), &path, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (404, Some("integration_not_found")),
            "{method} {path}"
        );
    }
    let (status, after) = app.get_json(&format!("/integrations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(before, after, "B's attempts changed A's integration");
    let (status, _) = call(
        &app,
        &token_a,
        Method::PATCH,
        &format!("/integrations/{id}"),
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(status, 200, "A changes its own integration");

    // The tenants API is the operator's.
    for (method, path) in [
        (Method::GET, "/tenants".to_string()),
        (Method::POST, "/tenants".to_string()),
        (Method::DELETE, format!("/tenants/{a}")),
        (Method::GET, format!("/tenants/{a}/tokens")),
        (Method::POST, format!("/tenants/{a}/tokens")),
    ] {
        let (status, answer) = call(
            &app,
            &token_a,
            method.clone(),
            &path,
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }

    // A tenant with integrations stays; once empty it goes, and its tokens with it.
    let (status, body) = app
        .send(Method::DELETE, &format!("/tenants/{a}"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("tenant_not_empty"))
    );
    let (status, body) = app.send(Method::DELETE, "/tenants/default", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("default_tenant"))
    );
    let (status, _) = call(
        &app,
        &token_a,
        Method::DELETE,
        &format!("/integrations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(Method::DELETE, &format!("/tenants/{a}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, &token_a, Method::GET, "/integrations", None).await;
    assert_eq!(status, 401, "a removed tenant's token is refused");
    let (_, tenants) = app.get_json("/tenants").await;
    let names: Vec<&str> = tenants["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Default", "Tenant B"], "{tenants}");

    app.stop().await;
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains("tenant token issued"), "logs were captured");
    for secret in [token_a.as_str(), token_b.as_str(), &token_a[4..], API_TOKEN] {
        assert!(!text.contains(secret), "a token reached the logs");
    }
}

async fn tokens_are_listed_without_the_token_revoked_at_once_and_survive_a_restart(
    backend: Backend,
) {
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let (tenant, kept) = tenant_with_token(&app, "Tenant A").await;
    let (status, issued) = app
        .send(
            Method::POST,
            &format!("/tenants/{tenant}/tokens"),
            Some(json!({"name": "old"})),
        )
        .await;
    assert_eq!(status, 201);
    let (revoked, revoked_id) = (
        issued["token"].as_str().unwrap().to_string(),
        issued["id"].as_str().unwrap().to_string(),
    );
    let (status, _) = call(&app, &revoked, Method::GET, "/integrations", None).await;
    assert_eq!(status, 200, "a fresh token works at once");

    let (_, tokens) = app.get_json(&format!("/tenants/{tenant}/tokens")).await;
    let items = tokens["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(
        |t| t.get("token").is_none() && t["token_hint"].as_str().unwrap().starts_with("dft_…")
    ));
    assert!(
        !tokens.to_string().contains(&kept[4..]),
        "a listing shows no token"
    );
    let used = items
        .iter()
        .find(|t| t["id"] == revoked_id.as_str())
        .unwrap();
    assert!(
        used["last_used_at"].is_string(),
        "its use is recorded: {used}"
    );

    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/tenants/{tenant}/tokens/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let response = app
        .http
        .get(app.api("/integrations"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (401, "unauthorized".into()));
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("dealflow_auth_failures_total{reason=\"revoked\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(&kept[4..]) && !metrics.contains(&revoked[4..]));
    let (status, body) = app
        .send(
            Method::DELETE,
            &format!("/tenants/{tenant}/tokens/{}", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("token_not_found"))
    );

    // A restart reads tenants and tokens back from the topic.
    app.stop().await;
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let (status, _) = call(&app, &kept, Method::GET, "/integrations", None).await;
    assert_eq!(status, 200, "the kept token works after a restart");
    let (status, _) = call(&app, &revoked, Method::GET, "/integrations", None).await;
    assert_eq!(status, 401, "the revoked one stays revoked");
    let (_, tenants) = app.get_json("/tenants").await;
    assert_eq!(tenants["items"].as_array().unwrap().len(), 2, "{tenants}");
    app.stop().await;

    // Nothing on the bus holds a token in clear.
    for record in backend.read_all(&backend.topics.tenants()).await {
        let text = String::from_utf8_lossy(&record.payload);
        assert!(
            !text.contains(&kept[4..]) && !text.contains(&revoked[4..]),
            "a token on the bus"
        );
    }
}

/// Two ingest replicas: a token issued through one works on the other once it has read the
/// record, and a revocation through one is refused by the other within 5 s (DESIGN §4).
async fn another_process_honours_a_revocation_within_5_s(backend: Backend) {
    let first = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let second = TestApp::spawn(&backend, backend.bus.clone(), &[]).await;
    let (tenant, token) = tenant_with_token(&first, "Tenant A").await;
    let usable = std::time::Instant::now();
    dealflow_testkit::wait_until(
        std::time::Duration::from_secs(5),
        "the token to work on the other replica",
        || async {
            call(&second, &token, Method::GET, "/integrations", None)
                .await
                .0
                == 200
        },
    )
    .await;
    let (_, tokens) = first.get_json(&format!("/tenants/{tenant}/tokens")).await;
    let token_id = tokens["items"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = first
        .send(
            Method::DELETE,
            &format!("/tenants/{tenant}/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let revoked = std::time::Instant::now();
    dealflow_testkit::wait_until(
        std::time::Duration::from_secs(5),
        "the other replica to refuse the revoked token",
        || async {
            call(&second, &token, Method::GET, "/integrations", None)
                .await
                .0
                == 401
        },
    )
    .await;
    let took = revoked.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "revocation took {took:?} (issue took {:?})",
        revoked - usable
    );
    first.stop().await;
    second.stop().await;
}

on_both_backends!(
    a_tenant_token_reaches_only_its_own_integrations,
    another_process_honours_a_revocation_within_5_s,
    tokens_are_listed_without_the_token_revoked_at_once_and_survive_a_restart,
);
