//! The integration settings API against the RetailCRM simulator: URL validation, the key check
//! with its precise refusals, sealing, and that no key or token reaches a log line.

mod support;

use dealflow_shared::events::{Envelope, Event};
use dealflow_shared::secrets::SecretKeys;
use dealflow_simulator::{KeyAccess, SimConfig, SimHandle, Simulator, SiteAccess};
use dealflow_testkit::{captured_logs, wait_for, wait_until};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use support::{API_TOKEN, Backend, Options, SECRET, TestApp, WAIT, error_code};

const ALLOW_SIM: &str = "http://127.0.0.1:*";

async fn setup() -> (Backend, TestApp, SimHandle) {
    captured_logs();
    let backend = Backend::embedded().await;
    let app = TestApp::spawn(&backend, backend.bus.clone(), &[ALLOW_SIM]).await;
    let sim = Simulator::start(SimConfig::new(1, 30)).await.unwrap();
    (backend, app, sim)
}

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(app.api("/integrations"))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn body_for(sim: &SimHandle, key: &str) -> Value {
    json!({"crm_url": sim.account(0).url(), "api_key": key, "default_funnel": false,
           "include_delivery_cost": true, "active": true, "backfill_days": 0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_seals_the_key_and_gives_a_working_webhook() {
    let (backend, app, sim) = setup().await;
    let key = sim.account(0).api_key();
    let response = create(&app, body_for(&sim, &key)).await;
    assert_eq!(response.status(), 201);
    let integration: Value = response.json().await.unwrap();
    let text = integration.to_string();
    assert!(!text.contains(&key), "the key is never returned");
    assert_eq!(
        integration["api_key_hint"],
        format!("…{}", &key[key.len() - 4..])
    );
    assert_eq!(integration["crm_url"], sim.account(0).url());
    assert_eq!(integration["health"]["status"], "pending");
    let webhook = integration["webhook_url"].as_str().unwrap();
    assert!(
        webhook.starts_with("https://dealflow.example.com/hooks/retailcrm/"),
        "{webhook}"
    );

    // On the bus: sealed, opening only with the right secret, cursor at the account's latest.
    let records = backend.read_all(&backend.topics.integrations()).await;
    assert_eq!(records.len(), 1);
    assert!(!String::from_utf8_lossy(&records[0].payload).contains(&key));
    let envelope = Envelope::decode(&records[0].payload).unwrap();
    let Event::IntegrationConfigured(config) = &envelope.event else {
        panic!("{envelope:?}")
    };
    let keys = SecretKeys::derive(&SecretString::from(SECRET));
    assert_eq!(
        keys.open(envelope.integration_id, &config.api_key_sealed)
            .unwrap()
            .expose_secret(),
        key
    );
    let other = SecretKeys::derive(&SecretString::from(
        "a different secret key of enough length",
    ));
    assert!(
        other
            .open(envelope.integration_id, &config.api_key_sealed)
            .is_err()
    );
    assert_eq!(
        config.history_since_id,
        sim.account(0).truth()["last_history_id"].as_u64()
    );

    let hook = webhook.replace("https://dealflow.example.com", &app.base);
    assert_eq!(
        app.http
            .get(format!("{hook}?orderId=5"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_refused_before_any_call() {
    let (backend, app, sim) = setup().await;
    let before = sim.account(0).counters();
    for url in [
        "http://demo.retailcrm.ru/",
        "https://user:secret@demo.retailcrm.ru/",
        "https://demo.retailcrm.ru/?key=1",
        "https://demo.retailcrm.ru:8443/",
        "https://192.168.1.10/",
        "https://10.0.0.1/",
        "https://169.254.169.254/",
        "https://internal.example.com/",
        "not a url at all",
        // The allow pattern covers 127.0.0.1 over http only.
        &sim.account(0).url().replace("http://", "https://"),
    ] {
        let response = create(&app, json!({"crm_url": url, "api_key": "k"})).await;
        assert_eq!(
            error_code(response).await,
            (422, "invalid_crm_url".into()),
            "{url}"
        );
    }
    assert_eq!(
        sim.account(0).counters(),
        before,
        "no call reached RetailCRM"
    );
    assert!(
        backend
            .read_all(&backend.topics.integrations())
            .await
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_problems_are_named_precisely() {
    let (backend, app, sim) = setup().await;
    let account = sim.account(0);

    let response = create(&app, body_for(&sim, "definitely-not-the-key")).await;
    assert_eq!(error_code(response).await, (422, "crm_auth_failed".into()));

    let (_, no_orders) = account.add_key(KeyAccess {
        scopes: vec![
            "customer_read".into(),
            "reference_read".into(),
            "user_read".into(),
        ],
        ..KeyAccess::default()
    });
    let response = create(&app, body_for(&sim, &no_orders)).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str().unwrap()),
        (422, "crm_insufficient_access")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("order_read"),
        "{body}"
    );

    let sites: Vec<String> = account.truth()["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let (_, selective) = account.add_key(KeyAccess {
        site_access: SiteAccess::Selective,
        sites_available: vec![sites[0].clone()],
        ..KeyAccess::default()
    });
    let response = create(&app, body_for(&sim, &selective)).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "crm_insufficient_access");
    let message = body["error"]["message"].as_str().unwrap();
    // Either the shops it misses are named, or what it is limited to.
    assert!(
        message.contains(&sites[1]) || message.contains(&format!("limited to {}", sites[0])),
        "{message}"
    );

    account.set_exists(false);
    let response = create(&app, body_for(&sim, &account.api_key())).await;
    assert_eq!(error_code(response).await, (422, "invalid_crm_url".into()));
    account.set_exists(true);

    assert!(
        backend
            .read_all(&backend.topics.integrations())
            .await
            .is_empty(),
        "nothing published"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_does_not_answer_is_unreachable() {
    let (_backend, app, _sim) = setup().await;
    // A port nothing listens on: bind, note, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let response = create(
        &app,
        json!({"crm_url": format!("http://127.0.0.1:{port}/"), "api_key": "k"}),
    )
    .await;
    assert_eq!(error_code(response).await, (502, "crm_unreachable".into()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_delete_and_resync() {
    let (backend, app, sim) = setup().await;
    let key = sim.account(0).api_key();
    let created: Value = create(&app, body_for(&sim, &key))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let path = app.api(&format!("/integrations/{id}"));

    let patched: Value = app
        .http
        .patch(&path)
        .bearer_auth(API_TOKEN)
        .json(&json!({"default_funnel": true, "include_delivery_cost": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            patched["default_funnel"].as_bool(),
            patched["include_delivery_cost"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(
        patched["webhook_url"], created["webhook_url"],
        "markers do not change the webhook"
    );

    let response = app
        .http
        .patch(&path)
        .bearer_auth(API_TOKEN)
        .json(&json!({"colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "invalid_request".into()));
    let response = app
        .http
        .patch(&path)
        .bearer_auth(API_TOKEN)
        .json(&json!({"api_key": "wrong-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (422, "crm_auth_failed".into()));

    let resync = format!("{path}/resync");
    let response = app
        .http
        .post(&resync)
        .bearer_auth(API_TOKEN)
        .json(&json!({"since": "2024-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    for bad in [
        json!({"since": "01.01.2024"}),
        json!({"since": "2999-01-01"}),
        json!({}),
    ] {
        let response = app
            .http
            .post(&resync)
            .bearer_auth(API_TOKEN)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (400, "invalid_request".into()),
            "{bad}"
        );
    }

    let hook = created["webhook_url"]
        .as_str()
        .unwrap()
        .replace("https://dealflow.example.com", &app.base);
    let response = app
        .http
        .delete(&path)
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app
        .http
        .get(format!("{hook}?orderId=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (404, "unknown_integration".into())
    );
    let response = app
        .http
        .get(&path)
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (404, "integration_not_found".into())
    );

    // created, patched, resync, removed: four records, the last one the removal.
    let records = backend.read_all(&backend.topics.integrations()).await;
    assert_eq!(records.len(), 4);
    let last = Envelope::decode(&records[3].payload).unwrap();
    assert!(matches!(last.event, Event::IntegrationRemoved(_)));
    let resynced = Envelope::decode(&records[2].payload).unwrap();
    let Event::IntegrationConfigured(config) = resynced.event else {
        panic!()
    };
    assert_eq!(config.resync.unwrap().since.to_string(), "2024-01-01");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_needs_the_bearer_token() {
    let (_backend, app, _sim) = setup().await;
    let id = "01890a5d-ac96-774b-bcce-b302099a8057";
    let routes = [
        ("GET", "/integrations".to_string()),
        ("POST", "/integrations".to_string()),
        ("GET", format!("/integrations/{id}")),
        ("PATCH", format!("/integrations/{id}")),
        ("DELETE", format!("/integrations/{id}")),
        ("POST", format!("/integrations/{id}/resync")),
    ];
    for (method, path) in routes {
        for token in [
            None,
            Some("wrong-token"),
            Some(&API_TOKEN[..API_TOKEN.len() - 1]),
        ] {
            let mut request = app
                .http
                .request(method.parse().unwrap(), app.api(&path))
                .json(&json!({}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                error_code(response).await,
                (401, "unauthorized".into()),
                "{method} {path} {token:?}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_token_ever_reaches_a_log_line() {
    let logs = captured_logs();
    let (_backend, app, sim) = setup().await;
    let key = sim.account(0).api_key();
    let created: Value = create(&app, body_for(&sim, &key))
        .await
        .json()
        .await
        .unwrap();
    let hook = created["webhook_url"].as_str().unwrap().to_string();
    let token = hook.rsplit('/').next().unwrap().to_string();
    let local = hook.replace("https://dealflow.example.com", &app.base);
    app.http
        .get(format!("{local}?orderId=1"))
        .send()
        .await
        .unwrap();
    app.http
        .get(format!("{local}x?orderId=1"))
        .send()
        .await
        .unwrap();
    create(&app, body_for(&sim, "wrong-key-that-must-not-be-logged")).await;
    let (_, second_key) = sim.account(0).add_key(KeyAccess::default());
    let path = app.api(&format!(
        "/integrations/{}",
        created["id"].as_str().unwrap()
    ));
    let response = app
        .http
        .patch(&path)
        .bearer_auth(API_TOKEN)
        .json(&json!({"api_key": second_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("integration connected"),
        "logs were captured: {text}"
    );
    for secret in [
        key.as_str(),
        second_key.as_str(),
        token.as_str(),
        "wrong-key-that-must-not-be-logged",
        API_TOKEN,
        SECRET,
    ] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
}

/// Rotating `DEALFLOW_SECRET_KEY`: with the old secret as the previous one, ingest seals the
/// stored key again under the new secret at start, and webhook URLs of both secrets work; once
/// the previous secret is dropped, only the new URL works and nothing is re-sealed again.
#[tokio::test]
async fn rotating_the_secret_key_reseals_keys_and_keeps_old_webhook_urls_until_dropped() {
    const NEW_SECRET: &str = "the-rotated-secret-key-also-long-enough-987654321";
    let rotating = |previous| Options {
        secret: NEW_SECRET,
        previous,
        ..Options::default()
    };
    let backend = Backend::embedded().await;
    let id = backend.seed_integration(true).await;
    let old_token = SecretKeys::derive(&SecretString::from(SECRET)).webhook_token(id, 0);

    let app = TestApp::spawn_with(&backend, backend.bus.clone(), rotating(Some(SECRET))).await;
    let topic = backend.topics.integrations();
    let resealed = wait_for(WAIT, "the key to be sealed again", || async {
        let records = backend.read_all(&topic).await;
        (records.len() == 2).then(|| Envelope::decode(&records[1].payload).unwrap())
    })
    .await;
    let Event::IntegrationConfigured(config) = &resealed.event else {
        panic!("{resealed:?}")
    };
    let new_keys = SecretKeys::derive(&SecretString::from(NEW_SECRET));
    assert_eq!(
        new_keys
            .open(id, &config.api_key_sealed)
            .expect("opens with the new secret alone")
            .expose_secret(),
        "seeded-crm-key"
    );
    let new_hook = app.webhook_url(id).await;
    let old_hook = format!("{}/hooks/retailcrm/{old_token}", app.base);
    assert_ne!(new_hook, old_hook);
    for hook in [&new_hook, &old_hook] {
        let status = app
            .http
            .get(format!("{hook}?orderId=7"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202, "{hook}");
    }
    app.stop().await;

    let app = TestApp::spawn_with(&backend, backend.bus.clone(), rotating(None)).await;
    let new_hook = app.webhook_url(id).await;
    let ok = app
        .http
        .get(format!("{new_hook}?orderId=8"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let old_hook = format!("{}/hooks/retailcrm/{old_token}", app.base);
    let old = app
        .http
        .get(format!("{old_hook}?orderId=9"))
        .send()
        .await
        .unwrap();
    assert!(old.status().is_client_error(), "{}", old.status());
    // Once this start's re-seal pass is over, it found nothing to do.
    wait_until(WAIT, "the start's re-seal pass", || async {
        app.metrics_text()
            .await
            .contains("dealflow_key_reseal_passes_total{resealed=\"none\"} 1")
    })
    .await;
    assert_eq!(
        backend.read_all(&topic).await.len(),
        2,
        "nothing left to re-seal"
    );
    app.stop().await;
}
