//! The security promises of DESIGN §7.5, tested on the all-in-one (issue 10):
//! - API keys and webhook tokens never appear in a log line, `/metrics`, an API response (the
//!   webhook URL of an integration's own settings aside), a bus record or a file under the data
//!   directory, across connect, webhooks, a key change, a revoked key and errors;
//! - every `/api` route refuses a missing or wrong bearer token, every page sends to `/login`;
//! - one integration's data is never served under another's id (routes, cursors, CSV);
//! - RetailCRM URLs pointing at private, loopback, link-local or metadata addresses are refused
//!   on connect, and no request leaves.

use std::time::Duration;

use dealflow_shared::topics::Topics;
use dealflow_simulator::KeyAccess;
use dealflow_testkit::{bytes_contain, captured_logs, unpooled_client};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Bus, System, WAIT, truth_orders};

/// The webhook token of a webhook URL (its last path segment).
fn token_of(hook: &str) -> String {
    hook.rsplit('/').next().unwrap().to_owned()
}

/// A response body without the `webhook_url` fields (the integration's own settings show
/// its webhook URL on purpose: the user pastes it into RetailCRM).
fn without_webhook_urls(mut value: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("webhook_url");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// Every response the test saw, as text.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    async fn call(
        &mut self,
        system: &System,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = system
            .http
            .request(method.clone(), format!("{}{path}", system.base))
            .bearer_auth(&system.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let text = response.text().await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        let shown = match &value {
            Value::String(_) => text,
            other => without_webhook_urls(other.clone()).to_string(),
        };
        self.0
            .push((format!("{method} {path} → {status}"), headers + &shown));
        (status, value)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_into_logs_metrics_responses_records_or_files() {
    let logs = captured_logs();
    let system = System::start_accounts(Bus::Embedded, 2, 12).await;
    let mut seen = Seen::default();
    let (a, b) = (system.sim.account(0), system.sim.account(1));
    let mut keys = vec![a.api_key(), b.api_key()];
    let mut tokens = Vec::new();

    // A connect with a key RetailCRM refuses: the error body must not echo it.
    let wrong_key = format!("wrongkey{:016x}", rand::random::<u64>());
    keys.push(wrong_key.clone());
    let (status, _) = seen
        .call(
            &system,
            Method::POST,
            "/api/v1/integrations",
            Some(json!({"crm_url": a.url(), "api_key": wrong_key, "backfill_days": 0})),
        )
        .await;
    assert_eq!(status, 422);

    let (id_a, hook_a) = system.connect_account(0, false).await;
    let (id_b, hook_b) = system.connect_account(1, false).await;
    tokens.push(token_of(&hook_a));
    tokens.push(token_of(&hook_b));
    assert!(tokens.iter().all(|t| t.len() >= 20), "{tokens:?}");

    // Webhooks, good and bad (a token nobody has, an unreadable id).
    let orders_a: Vec<u64> = truth_orders(a).keys().copied().collect();
    let orders_b: Vec<u64> = truth_orders(b).keys().copied().collect();
    for order in &orders_a[..4] {
        let r = system.http.get(format!("{hook_a}?orderId={order}"));
        assert_eq!(r.send().await.unwrap().status(), 202);
    }
    let stranger = format!("{}x", token_of(&hook_a));
    tokens.push(stranger.clone());
    let hooks_base = hook_a.trim_end_matches(&token_of(&hook_a)).to_owned();
    let r = system.http.get(format!("{hooks_base}{stranger}?orderId=1"));
    assert!(r.send().await.unwrap().status().is_client_error());
    let r = system.http.get(format!("{hook_a}?orderId=abc"));
    assert_eq!(r.send().await.unwrap().status(), 400);

    // A key change on A: a second key, then the first one revoked.
    let (_, new_key) = a.add_key(KeyAccess::default());
    keys.push(new_key.clone());
    let (status, body) = seen
        .call(
            &system,
            Method::PATCH,
            &format!("/api/v1/integrations/{id_a}"),
            Some(json!({"api_key": new_key})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    a.revoke_key(0).unwrap();
    // A revoked key on B: its next fetch fails and the integration's health says so.
    b.revoke_key(0).unwrap();
    for order in &orders_b[..2] {
        let r = system.http.post(format!("{hook_b}?id={order}"));
        assert_eq!(r.send().await.unwrap().status(), 202);
    }
    for order in &orders_a[4..6] {
        let r = system.http.post(&hook_a).json(&json!({"orderId": order}));
        assert_eq!(r.send().await.unwrap().status(), 202);
    }
    system
        .wait_deals(&id_a, "A's deals, fetched with the new key", |d| {
            d.len() >= 6
        })
        .await;
    dealflow_testkit::wait_until(WAIT, "B's health to report the revoked key", || async {
        let b = system.get(&format!("/integrations/{id_b}")).await;
        b["health"]["status"] == "auth_failed"
    })
    .await;

    // A tenant and its token (issue 15): issued once (that answer is the one place it may
    // appear), then used on the API and to sign in to the pages, then revoked.
    let (status, tenant) = system
        .send(Method::POST, "/tenants", json!({"name": "Leak check"}))
        .await;
    assert_eq!(status, 201, "{tenant}");
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let mut tenant_tokens = Vec::new();
    for name in ["kept", "revoked"] {
        let (status, issued) = system
            .send(
                Method::POST,
                &format!("/tenants/{tenant_id}/tokens"),
                json!({"name": name}),
            )
            .await;
        assert_eq!(status, 201, "{issued}");
        let token = issued["token"].as_str().unwrap().to_owned();
        let response = system
            .http
            .get(format!("{}/api/v1/integrations", system.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        seen.0.push((
            format!("GET /api/v1/integrations as tenant token {name}"),
            response.text().await.unwrap(),
        ));
        let login = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/login", system.base))
            .form(&[("token", token.as_str()), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 303);
        let cookie = format!("{:?}", login.headers().get_all("set-cookie"));
        seen.0
            .push((format!("sign-in with tenant token {name}"), cookie));
        tenant_tokens.push((issued["id"].as_str().unwrap().to_owned(), token));
    }
    let (status, _) = system
        .send(
            Method::DELETE,
            &format!("/tenants/{tenant_id}/tokens/{}", tenant_tokens[1].0),
            json!(null),
        )
        .await;
    assert_eq!(status, 204);
    let refused = system
        .http
        .get(format!("{}/api/v1/integrations", system.base))
        .bearer_auth(&tenant_tokens[1].1)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    seen.0.push((
        "a revoked tenant token".into(),
        refused.text().await.unwrap(),
    ));
    let (status, _) = seen
        .call(
            &system,
            Method::GET,
            &format!("/api/v1/tenants/{tenant_id}/tokens"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // The token, and the token without its recognisable prefix.
    let tenant_secrets: Vec<String> = tenant_tokens
        .iter()
        .flat_map(|(_, t)| [t.clone(), t["dft_".len()..].to_owned()])
        .collect();

    // Every read route, for both integrations.
    for id in [&id_a, &id_b] {
        for route in [
            "",
            "/deals",
            "/deals.csv",
            "/funnels",
            "/contacts",
            "/managers",
        ] {
            let path = format!("/api/v1/integrations/{id}{route}");
            let (status, _) = seen.call(&system, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{path}");
        }
    }
    seen.call(&system, Method::GET, "/api/v1/integrations", None)
        .await;
    let metrics = system.metrics().await;
    assert!(metrics.contains("dealflow_"), "{metrics}");

    let (dir, config) = system.stop_keeping_data().await;
    let logs = logs.lock().unwrap().clone();
    // The capture saw this run's components (not only some other test's).
    assert!(
        bytes_contain(&logs, &id_a) && bytes_contain(&logs, &id_b),
        "the subscriber captured the run"
    );
    let secrets: Vec<(&str, &String)> = keys
        .iter()
        .map(|k| ("API key", k))
        .chain(tokens.iter().map(|t| ("webhook token", t)))
        .chain(tenant_secrets.iter().map(|t| ("tenant token", t)))
        .collect();
    for (what, secret) in &secrets {
        assert!(!bytes_contain(&logs, secret), "a {what} in the logs");
        assert!(!metrics.contains(secret.as_str()), "a {what} in /metrics");
        for (call, text) in &seen.0 {
            assert!(!text.contains(secret.as_str()), "a {what} in {call}");
        }
    }

    // Every record of every topic, and every file under the data directory.
    let bus = dealflow_shared::wiring::open_bus(&config, "security-test")
        .await
        .unwrap();
    let topics = Topics::new(config.topic_prefix.clone());
    let mut records = 0;
    for spec in topics.specs(1) {
        let total: i64 = bus
            .end_offsets(&spec.name)
            .await
            .unwrap()
            .iter()
            .map(|(_, end)| end)
            .sum();
        let mut consumer = bus
            .subscribe("security-reader", std::slice::from_ref(&spec.name))
            .await
            .unwrap();
        let mut read = 0;
        while read < total {
            for record in consumer
                .poll(500, Duration::from_millis(200))
                .await
                .unwrap()
            {
                read += 1;
                let headers: String = record
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={}\n", String::from_utf8_lossy(v)))
                    .collect();
                for (what, secret) in &secrets {
                    assert!(
                        !bytes_contain(&record.payload, secret)
                            && !headers.contains(secret.as_str()),
                        "a {what} in a record of {}",
                        spec.name
                    );
                }
            }
        }
        records += read;
    }
    assert!(records > 20, "{records} records read");
    let mut files = 0;
    let mut pending = vec![dir.path().to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        // SQLite's transient files (a rollback journal, say) may go between listing and
        // reading; one that is gone holds nothing any more.
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        files += 1;
        for (what, secret) in &secrets {
            assert!(
                !bytes_contain(&bytes, secret),
                "a {what} in {}",
                path.display()
            );
        }
    }
    assert!(files >= 2, "{files} files under the data directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_and_page_needs_the_token() {
    let system = System::start(Bus::Embedded, 3).await;
    let (id, _) = system.connect(false).await;
    let order = *truth_orders(system.account()).keys().next().unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The same length as the real token, one character off: a prefix comparison would pass.
    let mut wrong = system.token.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    let api = [
        (Method::GET, "/api/v1/integrations".to_owned()),
        (Method::POST, "/api/v1/integrations".to_owned()),
        (Method::GET, format!("/api/v1/integrations/{id}")),
        (Method::PATCH, format!("/api/v1/integrations/{id}")),
        (Method::DELETE, format!("/api/v1/integrations/{id}")),
        (Method::POST, format!("/api/v1/integrations/{id}/resync")),
        (Method::GET, format!("/api/v1/integrations/{id}/deals")),
        (Method::GET, format!("/api/v1/integrations/{id}/deals.csv")),
        (
            Method::GET,
            format!("/api/v1/integrations/{id}/deals/{order}"),
        ),
        (Method::GET, format!("/api/v1/integrations/{id}/funnels")),
        (Method::GET, format!("/api/v1/integrations/{id}/contacts")),
        (Method::GET, format!("/api/v1/integrations/{id}/managers")),
        (Method::GET, "/api/v1/tenants".to_owned()),
        (Method::POST, "/api/v1/tenants".to_owned()),
        (Method::DELETE, "/api/v1/tenants/default".to_owned()),
        (Method::GET, "/api/v1/tenants/default/tokens".to_owned()),
        (Method::POST, "/api/v1/tenants/default/tokens".to_owned()),
        (
            Method::DELETE,
            format!(
                "/api/v1/tenants/default/tokens/{}",
                dealflow_shared::events::IntegrationId::new()
            ),
        ),
    ];
    for (method, path) in &api {
        let url = format!("{}{path}", system.base);
        let bodies = [
            None,
            Some(format!("Bearer {wrong}")),
            Some(format!("Basic {}", system.token)),
            Some(format!("Bearer {}x", system.token)),
            Some("Bearer ".to_owned()),
        ];
        for authorization in bodies {
            let mut request = http.request(method.clone(), &url).json(&json!({}));
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {authorization:?}"
            );
            let body = response.text().await.unwrap();
            assert!(!body.contains(&system.token), "{method} {path}");
        }
    }
    // The integration is untouched by all of that.
    let still = system.get(&format!("/integrations/{id}")).await;
    assert_eq!(still["active"], true);

    let pages = [
        (Method::GET, "/".to_owned()),
        (Method::POST, "/integrations".to_owned()),
        (Method::GET, format!("/integrations/{id}")),
        (Method::POST, format!("/integrations/{id}/settings")),
        (Method::GET, format!("/integrations/{id}/deals")),
        (Method::GET, format!("/integrations/{id}/deals.csv")),
    ];
    for (method, path) in &pages {
        for cookie in [None, Some("dealflow_session=forged")] {
            let mut request = http
                .request(method.clone(), format!("{}{path}", system.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("active=on");
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            // A bearer token is no page session either way: pages use their own cookie.
            let response = request.send().await.unwrap();
            assert!(
                response.status().is_redirection(),
                "{method} {path} ({cookie:?}): {}",
                response.status()
            );
            let location = response.headers()["location"].to_str().unwrap();
            assert!(
                location.starts_with("/login"),
                "{method} {path}: {location}"
            );
        }
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_integrations_data_is_never_served_under_anothers_id() {
    let system = System::start_accounts(Bus::Embedded, 2, 8).await;
    let (id_a, hook_a) = system.connect_account(0, false).await;
    let (id_b, hook_b) = system.connect_account(1, true).await;
    let mut truth = Vec::new();
    for (i, (id, hook)) in [(&id_a, &hook_a), (&id_b, &hook_b)].into_iter().enumerate() {
        let orders = truth_orders(system.sim.account(i));
        for order in orders.keys() {
            let r = system.http.get(format!("{hook}?orderId={order}"));
            assert_eq!(r.send().await.unwrap().status(), 202);
        }
        let n = orders.len();
        system.wait_deals(id, "every deal", |d| d.len() == n).await;
        truth.push(orders);
    }
    let unknown = dealflow_shared::events::IntegrationId::new().to_string();
    let get = |path: String| {
        let system = &system;
        async move {
            let r = system
                .http
                .get(format!("{}/api/v1{path}", system.base))
                .bearer_auth(&system.token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    for (i, id) in [&id_a, &id_b].into_iter().enumerate() {
        let (own, other) = (&truth[i], &truth[1 - i]);
        // Every deal listed under this id is one of this account's orders, with its facts.
        let deals = system.all_deals(id).await;
        for deal in &deals {
            let order = &own[&deal["order_id"].as_u64().unwrap()];
            assert_eq!(deal["site"], order["site"]);
            assert_eq!(deal["stage_code"], order["status"]);
        }
        // The other account's order ids, asked under this id: 404 unless this account has an
        // order with the same id, and then it is this account's.
        for (order_id, order) in other {
            let (status, body) = get(format!("/integrations/{id}/deals/{order_id}")).await;
            match own.get(order_id) {
                None => assert_eq!(status, 404, "{body}"),
                Some(mine) => {
                    assert_eq!(status, 200);
                    let deal: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(deal["site"], mine["site"]);
                    if mine["site"] != order["site"] || mine["status"] != order["status"] {
                        assert_ne!(
                            (deal["site"].clone(), deal["stage_code"].clone()),
                            (order["site"].clone(), order["status"].clone())
                        );
                    }
                }
            }
        }
        // A cursor of the other integration's listing does not open it.
        let other_id = if i == 0 { &id_b } else { &id_a };
        let (_, page) = get(format!("/integrations/{other_id}/deals?limit=1")).await;
        let page: Value = serde_json::from_str(&page).unwrap();
        if let Some(cursor) = page["next_cursor"].as_str() {
            let (status, body) = get(format!(
                "/integrations/{id}/deals?limit=500&cursor={cursor}"
            ))
            .await;
            if status == 200 {
                let body: Value = serde_json::from_str(&body).unwrap();
                for deal in body["items"].as_array().unwrap() {
                    assert!(own.contains_key(&deal["order_id"].as_u64().unwrap()));
                }
            } else {
                assert_eq!(status, 400, "{body}");
            }
        }
        // The CSV export lists this account's orders only.
        let (status, csv) = get(format!("/integrations/{id}/deals.csv")).await;
        assert_eq!(status, 200);
        assert_eq!(csv.lines().count(), own.len() + 1, "{csv}");
    }
    for route in [
        "",
        "/deals",
        "/deals.csv",
        "/deals/1",
        "/funnels",
        "/contacts",
        "/managers",
    ] {
        let (status, body) = get(format!("/integrations/{unknown}{route}")).await;
        assert_eq!(status, 404, "{route}: {body}");
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_metadata_urls_are_refused_and_never_requested() {
    let system = System::start(Bus::Embedded, 1).await;
    // Anything that connects here would be the SSRF the policy forbids.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    let urls = [
        format!("https://127.0.0.1:{port}/"),
        "https://127.0.0.1/".to_owned(),
        format!("https://localhost:{port}/"),
        "https://localhost/".to_owned(),
        "https://127.1/".to_owned(),
        "https://2130706433/".to_owned(),
        "https://0x7f000001/".to_owned(),
        "https://[::1]/".to_owned(),
        "https://[::ffff:127.0.0.1]/".to_owned(),
        format!("http://127.0.0.2:{port}/"),
        format!("http://localhost:{port}/"),
        "https://10.0.0.1/".to_owned(),
        "https://172.16.5.4/".to_owned(),
        "https://192.168.1.1/".to_owned(),
        "https://169.254.169.254/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "https://metadata.google.internal/".to_owned(),
        "https://[fe80::1]/".to_owned(),
        "https://[fd00::1]/".to_owned(),
        "https://0.0.0.0/".to_owned(),
        "https://100.64.0.1/".to_owned(),
        "https://shop.retailcrm.ru@127.0.0.1/".to_owned(),
        "https://user:pass@shop.retailcrm.ru/".to_owned(),
        "http://shop.retailcrm.ru/".to_owned(),
        "https://shop.retailcrm.ru.evil.example/".to_owned(),
        "https://evil.example/".to_owned(),
        "file:///etc/passwd".to_owned(),
        "gopher://127.0.0.1/".to_owned(),
    ];
    for url in &urls {
        let (status, body) = system
            .send(
                Method::POST,
                "/integrations",
                json!({"crm_url": url, "api_key": system.account().api_key(), "backfill_days": 0}),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_crm_url", "{url}: {body}");
    }
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a refused URL was requested: {other:?}"),
    }
    assert_eq!(
        system.get("/integrations").await["items"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "nothing was connected"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let system = System::start(Bus::Embedded, 1).await;
    let (_, hook) = system.connect(false).await;
    // A webhook body over its 64 KiB limit, even one that starts like a valid form.
    let mut body = b"orderId=1&pad=".to_vec();
    body.resize(64 * 1024 + 1, b'x');
    // The server may close the connection of a body it refuses: each oversized request, and
    // the probe after them, gets a connection of its own (a pooled one flaked in CI).
    let response = unpooled_client()
        .post(&hook)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // And says so, so that a client with a pool does not reuse the connection.
    assert_eq!(
        response.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "a 413 over HTTP/1 announces the close"
    );
    // A settings body far over any sane size.
    let huge = format!(
        r#"{{"crm_url":"https://a.retailcrm.ru/","api_key":"{}"}}"#,
        "k".repeat(8 * 1024 * 1024)
    );
    let sent = unpooled_client()
        .post(format!("{}/api/v1/integrations", system.base))
        .bearer_auth(&system.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    match sent {
        // Refused after at most axum's default 2 MiB were read, as 413 payload_too_large.
        Ok(response) => assert!(
            response.status() == StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            response.status()
        ),
        // The server answered 413 from the Content-Length and closed the connection before
        // the client finished writing: refused without being read.
        Err(e) => assert!(e.is_request() && !e.is_timeout(), "{e:?}"),
    }
    let health = unpooled_client()
        .get(format!("{}/healthz", system.base))
        .send();
    assert!(health.await.unwrap().status().is_success(), "still serving");
    system.stop().await;
}
