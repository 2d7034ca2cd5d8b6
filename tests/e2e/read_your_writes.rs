//! Read your writes (DESIGN §4): the read right after a settings write shows it, with nothing
//! in between — no retry, no wait. In the all-in-one on both buses (the GETs are the
//! projector's, reading its database), and in the split deployment: `dealflow run --target
//! ingest` and `--target projector` as separate processes on Kafka, the write sent to ingest
//! and the read to the projector, as the gateway routes them.

use std::time::{Duration, Instant};

use dealflow_projector::Store;
use dealflow_shared::topics::Topics;
use dealflow_simulator::{SimConfig, Simulator};
use dealflow_testkit::{Broker, unique_prefix};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Bus, Process, System, free_port, run_binary, wait_ready};

/// How many records of the `integrations` topic the all-in-one's read model has applied.
async fn applied_settings(system: &System) -> i64 {
    let store = Store::open(&system.config.database_url).await.unwrap();
    let topic = Topics::new(system.config.topic_prefix.clone()).integrations();
    let applied = store.applied_offsets().await.unwrap();
    store.close().await;
    applied
        .iter()
        .filter(|((t, _), _)| *t == topic)
        .map(|(_, next)| next)
        .sum()
}

/// How long the writes so far waited for the read side, from ingest's metrics (`n × mean`).
async fn read_side_waits(http: &reqwest::Client, base: &str) -> String {
    let text = dealflow_testkit::metrics::scrape(http, base).await;
    let value =
        |series: &str| dealflow_testkit::metrics::series_value(&text, series).unwrap_or(0.0);
    let n = value("dealflow_read_side_wait_seconds_count{outcome=\"visible\"}");
    let sum = value("dealflow_read_side_wait_seconds_sum{outcome=\"visible\"}");
    format!(
        "{n} writes waited for the read side {:.1} ms on average",
        sum * 1000.0 / n.max(1.0)
    )
}

/// The ids in `GET /api/v1/integrations`.
fn listed(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

async fn all_in_one(bus: Bus) {
    let system = System::start(bus, 3).await;
    // Create (the harness sends the POST and waits for nothing).
    let (id, _) = system.connect(false).await;
    let path = format!("/integrations/{id}");
    assert_eq!(system.get(&path).await["id"], id.as_str());
    assert_eq!(listed(&system.get("/integrations").await), [id.as_str()]);

    // Change.
    let (status, body) = system
        .send(
            Method::PATCH,
            &path,
            json!({"default_funnel": true, "include_delivery_cost": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let one = system.get(&path).await;
    assert_eq!(one["default_funnel"], true, "{one}");
    assert_eq!(one["include_delivery_cost"], false, "{one}");
    let list = system.get("/integrations").await;
    assert_eq!(list["items"][0]["default_funnel"], true, "{list}");

    // Re-sync: the view shows nothing of it, so ask the read model whether it applied it.
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{path}/resync"),
            json!({"since": "2024-01-01"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        applied_settings(&system).await,
        3,
        "create, change, re-sync"
    );

    // Delete.
    let (status, body) = system.send(Method::DELETE, &path, Value::Null).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = system.send(Method::GET, &path, Value::Null).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("integration_not_found")),
        "{body}"
    );
    assert!(listed(&system.get("/integrations").await).is_empty());
    assert_eq!(applied_settings(&system).await, 4);
    println!(
        "all-in-one: {}",
        read_side_waits(&system.http, &system.base).await
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_reads_its_writes_on_the_embedded_log() {
    all_in_one(Bus::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_reads_its_writes_on_kafka() {
    all_in_one(Bus::kafka().await).await;
}

/// The pages redirect after a connect or a settings change; the page they redirect to shows
/// the write at once (never "There is no integration with this id").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_redirect_to_what_was_just_written() {
    let system = System::start(Bus::Embedded, 3).await;
    let account = system.account();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(format!("{}/login", system.base))
        .form(&[("token", system.token.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = |path: String| {
        let (browser, cookie, base) = (browser.clone(), cookie.clone(), system.base.clone());
        async move {
            let response = browser
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let redirect = |response: reqwest::Response| {
        assert_eq!(response.status().as_u16(), 303, "{response:?}");
        response.headers()["location"].to_str().unwrap().to_owned()
    };

    let connected = browser
        .post(format!("{}/integrations", system.base))
        .header("cookie", &cookie)
        .form(&[
            ("crm_url", account.url()),
            ("api_key", account.api_key()),
            ("active", "on".to_owned()),
            ("include_delivery_cost", "on".to_owned()),
            ("backfill_days", "0".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    let location = redirect(connected);
    let (status, html) = page(location.clone()).await;
    assert_eq!(status, 200, "{location}: {html}");
    assert!(html.contains("webhook-url"), "{html}");
    let default_funnel_on = r#"name="default_funnel" value="on" checked"#;
    assert!(!html.contains(default_funnel_on));

    let saved = browser
        .post(format!("{}{location}/settings", system.base))
        .header("cookie", &cookie)
        .form(&[("active", "on"), ("default_funnel", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(redirect(saved), location);
    let (status, html) = page(location.clone()).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(default_funnel_on),
        "the change is on the page"
    );

    // Raw data → Deals reads the same operations as the API: a filter the API refuses is shown
    // with the API's own message; an unknown integration is a 404 page.
    let (status, html) = page(format!("{location}/deals")).await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("must be open, won or lost"), "{html}");
    let (status, html) = page(format!("{location}/deals?outcome=bogus")).await;
    assert_eq!(status, 200);
    assert!(html.contains("must be open, won or lost"), "{html}");
    let (status, _) = page("/integrations/not-an-id".to_owned()).await;
    assert_eq!(status, 404);
    system.stop().await;
}

const TOKEN: &str = "split-test-api-token-0123456789abcdef";

/// One `dealflow run --target <target>` of a split deployment, on its own data directory.
struct Component {
    base: String,
    _process: Process,
    _dir: tempfile::TempDir,
}

async fn component(
    target: &str,
    port: u16,
    shared: &[(&str, String)],
    http: &reqwest::Client,
) -> Component {
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared.to_vec();
    env.push(("DEALFLOW_DATA_DIR", dir.path().display().to_string()));
    env.push(("DEALFLOW_LISTEN", format!("127.0.0.1:{port}")));
    let process = run_binary(target, &env);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(http, &base).await;
    Component {
        base,
        _process: process,
        _dir: dir,
    }
}

/// A write to ingest, timed; `(status, body, how long it took)`.
async fn write(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Value,
) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = http
        .request(method, url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null), took)
}

async fn read(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_deployment_reads_its_writes() {
    let broker = Broker::start().await;
    let sim = Simulator::start(SimConfig::new(1, 3)).await.unwrap();
    let account = sim.account(0);
    let http = reqwest::Client::new();
    let shared = [
        ("DEALFLOW_KAFKA_BROKERS", broker.bootstrap()),
        ("DEALFLOW_TOPIC_PREFIX", unique_prefix()),
        ("DEALFLOW_API_TOKEN", TOKEN.to_owned()),
        (
            "DEALFLOW_SECRET_KEY",
            "split-test-secret-key-long-enough-0123456789".to_owned(),
        ),
        ("DEALFLOW_CRM_ALLOW_HOSTS", "http://127.0.0.1:*".to_owned()),
        // One public address for both, as behind the gateway.
        (
            "DEALFLOW_PUBLIC_URL",
            "https://dealflow.example.com".to_owned(),
        ),
    ];
    // The projector on SQLite in its own data directory (its database does not matter here);
    // its pages would send writes to ingest.
    let ingest_port = free_port();
    let mut projector_env = shared.to_vec();
    projector_env.push((
        "DEALFLOW_INGEST_URL",
        format!("http://127.0.0.1:{ingest_port}"),
    ));
    let projector = component("projector", free_port(), &projector_env, &http).await;
    let ingest = component("ingest", ingest_port, &shared, &http).await;
    let writes = format!("{}/api/v1/integrations", ingest.base);
    let reads = format!("{}/api/v1/integrations", projector.base);
    let mut took = Vec::new();

    let (status, body, t) = write(
        &http,
        Method::POST,
        &writes,
        json!({"crm_url": account.url(), "api_key": account.api_key(), "backfill_days": 0}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    took.push(("create", t));
    let id = body["id"].as_str().unwrap().to_owned();
    let (status, one) = read(&http, &format!("{reads}/{id}")).await;
    assert_eq!(
        status, 200,
        "the projector's GET right after the 201: {one}"
    );
    assert_eq!(one["webhook_url"], body["webhook_url"]);
    let (_, list) = read(&http, &reads).await;
    assert_eq!(listed(&list), [id.as_str()]);

    let (status, body, t) = write(
        &http,
        Method::PATCH,
        &format!("{writes}/{id}"),
        json!({"active": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    took.push(("change", t));
    let (_, one) = read(&http, &format!("{reads}/{id}")).await;
    assert_eq!(one["active"], false, "{one}");

    let (status, body, t) = write(
        &http,
        Method::POST,
        &format!("{writes}/{id}/resync"),
        json!({"since": "2024-01-01"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    took.push(("resync", t));

    let (status, body, t) = write(
        &http,
        Method::DELETE,
        &format!("{writes}/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    took.push(("delete", t));
    let (status, body) = read(&http, &format!("{reads}/{id}")).await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = read(&http, &reads).await;
    assert!(listed(&list).is_empty(), "{list}");

    // A tenant token issued through ingest works at the projector in the very next request
    // (its registry reads the tenants topic to its end before calling a token unknown).
    let tenants = format!("{}/api/v1/tenants", ingest.base);
    let (status, tenant, t) = write(&http, Method::POST, &tenants, json!({"name": "Acme"})).await;
    assert_eq!(status, 201, "{tenant}");
    took.push(("tenant", t));
    let tenant = tenant["id"].as_str().unwrap();
    let (status, issued, t) = write(
        &http,
        Method::POST,
        &format!("{tenants}/{tenant}/tokens"),
        json!({"name": "cabinet"}),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    took.push(("token", t));
    let response = http
        .get(&reads)
        .bearer_auth(issued["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the projector knows the token issued through ingest a moment ago"
    );

    // What a write costs across processes (DESIGN §4 allows the split deployment 1 s): the
    // whole request, and of it the wait for the projector.
    println!(
        "split deployment, writes answered once the projector shows them: {took:?}; {}",
        read_side_waits(&http, &ingest.base).await
    );
}
