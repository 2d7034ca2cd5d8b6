//! The RetailCRM client against an HTTP fake (wiremock): the request shape, the retry and error
//! paths, and the per-account budget measured where the requests arrive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use dealflow_shared::config::HostPattern;
use dealflow_shared::retailcrm::time::parse_datetime;
use dealflow_shared::retailcrm::{
    Budgets, ClientOptions, HistoryFilter, OrdersFilter, PageLimit, RetailCrmClient,
    RetailCrmError, RetryPolicy, Unavailability,
};
use secrecy::SecretString;
use url::Url;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "test-key-0123456789";

fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var("DEALFLOW_FIXTURES_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/retailcrm").to_owned()
    });
    std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Short pauses so the retry paths run in milliseconds.
fn options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            max_elapsed: Duration::from_secs(10),
        },
        ..ClientOptions::default()
    }
}

fn client_for(server: &MockServer, budgets: &Budgets, options: &ClientOptions) -> RetailCrmClient {
    let url = Url::parse(&server.uri()).unwrap();
    RetailCrmClient::new(&url, SecretString::from(KEY), budgets, options).unwrap()
}

fn client(server: &MockServer) -> RetailCrmClient {
    client_for(server, &Budgets::default(), &options())
}

fn json(status: u16, body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body, "application/json")
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

fn pairs(request: &Request) -> Vec<(String, String)> {
    request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn order_by_id_sends_the_key_in_a_header_and_by_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v5/orders/6722"))
        .and(query_param("by", "id"))
        .and(header("X-API-KEY", KEY))
        .respond_with(json(200, fixture("orders-get.json")))
        .expect(1)
        .mount(&server)
        .await;

    let order = client(&server).order_by_id(6722).await.unwrap();
    assert_eq!(order.id, 6722);

    let sent = requests(&server).await;
    assert!(
        !sent[0].url.as_str().contains(KEY),
        "the key never goes in the URL"
    );
    assert_eq!(pairs(&sent[0]), owned(&[("by", "id")]));
}

#[tokio::test]
async fn list_filters_use_php_brackets() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v5/orders"))
        .respond_with(json(200, fixture("orders-list.json")))
        .mount(&server)
        .await;
    let filter = OrdersFilter {
        ids: vec![7141, 7142],
        created_at_from: NaiveDate::from_ymd_opt(2024, 1, 15),
        created_at_to: NaiveDate::from_ymd_opt(2024, 1, 31),
        sites: vec!["shop-a".into(), "shop-b".into()],
        limit: PageLimit::Hundred,
        page: Some(2),
    };
    let page = client(&server).orders(&filter).await.unwrap();
    assert_eq!(page.orders[0].id, 7141);

    let sent = requests(&server).await;
    assert_eq!(
        pairs(&sent[0]),
        owned(&[
            ("filter[ids][]", "7141"),
            ("filter[ids][]", "7142"),
            ("filter[createdAtFrom]", "2024-01-15"),
            ("filter[createdAtTo]", "2024-01-31"),
            ("filter[sites][]", "shop-a"),
            ("filter[sites][]", "shop-b"),
            ("limit", "100"),
            ("page", "2"),
        ])
    );
}

#[tokio::test]
async fn more_than_100_ids_is_refused_before_sending() {
    let server = MockServer::start().await;
    let filter = OrdersFilter {
        ids: (1..=101).collect(),
        ..OrdersFilter::default()
    };
    let e = client(&server).orders(&filter).await.unwrap_err();
    assert!(matches!(e, RetailCrmError::InvalidRequest(_)), "{e:?}");
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn history_never_sends_page_with_since_id() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v5/orders/history"))
        .and(query_param("filter[sinceId]", "2691"))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("page"))
        .respond_with(json(200, fixture("orders-history.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let filter = HistoryFilter {
        since_id: Some(2691),
        ..HistoryFilter::default()
    };
    let page = client.orders_history(&filter).await.unwrap();
    assert_eq!(page.last_id(), Some(7137));

    let both = HistoryFilter {
        page: Some(2),
        ..filter
    };
    let e = client.orders_history(&both).await.unwrap_err();
    assert!(matches!(e, RetailCrmError::InvalidRequest(_)), "{e:?}");

    let by_date = HistoryFilter {
        start_date: Some(parse_datetime("2024-01-15 10:20:30").unwrap()),
        page: Some(3),
        ..HistoryFilter::default()
    };
    Mock::given(path("/api/v5/orders/history"))
        .and(query_param("filter[startDate]", "2024-01-15 10:20:30"))
        .respond_with(json(200, fixture("orders-history.json")))
        .mount(&server)
        .await;
    client.orders_history(&by_date).await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(
        pairs(&sent[1]),
        owned(&[
            ("filter[startDate]", "2024-01-15 10:20:30"),
            ("limit", "100"),
            ("page", "3")
        ])
    );
}

#[tokio::test]
async fn every_endpoint_hits_its_path() {
    let server = MockServer::start().await;
    let routes = [
        ("/api/credentials", "api-credentials.json"),
        ("/api/api-versions", "api-versions.json"),
        ("/api/v5/settings", "settings.json"),
        ("/api/v5/reference/statuses", "reference-statuses.json"),
        (
            "/api/v5/reference/status-groups",
            "reference-status-groups.json",
        ),
        ("/api/v5/reference/sites", "reference-sites.json"),
        ("/api/v5/users/28", "users-get.json"),
        ("/api/v5/users", "users-list.json"),
        ("/api/v5/customers/4770", "customers-get.json"),
        (
            "/api/v5/customers-corporate/5043",
            "customers-corporate-get.json",
        ),
    ];
    for (route, file) in routes {
        Mock::given(path(route))
            .and(header("X-API-KEY", KEY))
            .respond_with(json(200, fixture(file)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let c = client(&server);
    assert!(c.credentials().await.unwrap().has_scope("order_read"));
    assert_eq!(c.api_versions().await.unwrap().len(), 3);
    assert_eq!(
        c.settings().await.unwrap().time_zone().unwrap(),
        Some(chrono_tz::Europe::Moscow)
    );
    assert_eq!(c.statuses().await.unwrap().len(), 39);
    assert_eq!(c.status_groups().await.unwrap().len(), 6);
    assert_eq!(c.sites().await.unwrap().len(), 2);
    assert_eq!(c.user(28).await.unwrap().id, 28);
    assert_eq!(c.users(2, PageLimit::Fifty).await.unwrap().users.len(), 1);
    assert_eq!(c.customer(4770).await.unwrap().id, 4770);
    assert_eq!(c.customer_corporate(5043).await.unwrap().id, 5043);

    let sent = requests(&server).await;
    let query_of = |p: &str| pairs(sent.iter().find(|r| r.url.path() == p).unwrap());
    assert_eq!(
        query_of("/api/v5/users"),
        owned(&[("limit", "50"), ("page", "2")])
    );
    assert_eq!(query_of("/api/v5/customers/4770"), owned(&[("by", "id")]));
    assert_eq!(
        query_of("/api/v5/customers-corporate/5043"),
        owned(&[("by", "id")])
    );
    assert!(query_of("/api/credentials").is_empty());
}

#[tokio::test]
async fn a_503_is_retried_through_the_budget_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v5/orders/6722"))
        .respond_with(json(503, fixture("error-rate-limit.json")))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v5/orders/6722"))
        .respond_with(json(200, fixture("orders-get.json")))
        .with_priority(2)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(c.order_by_id(6722).await.unwrap().id, 6722);
    assert_eq!(requests(&server).await.len(), 3);
    assert_eq!(c.budget().stats().acquired, 3, "every attempt took a token");
}

#[tokio::test]
async fn endless_503_gives_rate_limited_after_bounded_attempts() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v5/orders/1"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>503</html>"))
        .mount(&server)
        .await;
    let e = client(&server).order_by_id(1).await.unwrap_err();
    assert!(
        matches!(e, RetailCrmError::RateLimited { attempts: 4, .. }),
        "{e:?}"
    );
    assert!(e.is_transient());
    assert_eq!(requests(&server).await.len(), 4);
}

#[tokio::test]
async fn a_timeout_is_a_transient_error() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v5/orders/1"))
        .respond_with(json(200, fixture("orders-get.json")).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        retry: RetryPolicy {
            max_attempts: 2,
            ..options().retry
        },
        ..options()
    };
    let started = Instant::now();
    let e = client_for(&server, &Budgets::default(), &options)
        .order_by_id(1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            RetailCrmError::Unavailable {
                reason: Unavailability::Timeout,
                attempts: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the timeouts"
    );
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let c = RetailCrmClient::new(
        &url,
        SecretString::from(KEY),
        &Budgets::default(),
        &options(),
    )
    .unwrap();
    let e = c.credentials().await.unwrap_err();
    assert!(
        matches!(
            e,
            RetailCrmError::Unavailable {
                reason: Unavailability::Connect(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains(KEY));
}

#[tokio::test]
async fn a_wrong_key_is_auth_failed_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/credentials"))
        .respond_with(json(403, fixture("error-wrong-api-key.json")))
        .mount(&server)
        .await;
    let e = client(&server).credentials().await.unwrap_err();
    assert!(matches!(e, RetailCrmError::AuthFailed { .. }), "{e:?}");
    assert!(!e.is_transient());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn access_denied_names_the_method() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v5/orders/history"))
        .respond_with(json(403, fixture("error-access-denied.json")))
        .mount(&server)
        .await;
    let e = client(&server)
        .orders_history(&HistoryFilter::default())
        .await
        .unwrap_err();
    match &e {
        RetailCrmError::AccessDenied { endpoint, .. } => {
            assert_eq!(endpoint.path, "/api/v5/orders/history")
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("/api/v5/orders/history"));
}

#[tokio::test]
async fn an_html_body_means_the_account_does_not_exist() {
    let server = MockServer::start().await;
    Mock::given(path("/api/credentials"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("<!DOCTYPE html><html><body>Shop</body></html>", "text/html"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/api-versions"))
        .respond_with(json(400, fixture("error-account-does-not-exist.json")))
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.credentials().await.unwrap_err();
    assert!(matches!(e, RetailCrmError::AccountNotFound { .. }), "{e:?}");
    let e = c.api_versions().await.unwrap_err();
    assert!(matches!(e, RetailCrmError::AccountNotFound { .. }), "{e:?}");
}

/// DNS rebinding: a name that resolves to loopback when the request is made is refused at
/// connection time, without a retry and without the key reaching the server; the operator's
/// allowed-host pattern (the simulator's case) lets the same name through.
#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_at_connection() {
    let server = MockServer::start().await;
    Mock::given(path("/api/credentials"))
        .respond_with(json(200, fixture("api-credentials.json")))
        .mount(&server)
        .await;
    let by_name: Url = format!("http://localhost:{}/", server.address().port())
        .parse()
        .unwrap();
    let budgets = Budgets::default();

    let strict =
        RetailCrmClient::new(&by_name, SecretString::from(KEY), &budgets, &options()).unwrap();
    let e = strict.credentials().await.unwrap_err();
    match &e {
        RetailCrmError::AccountNotFound { detail, .. } => {
            assert!(detail.contains("private or local address"), "{detail}")
        }
        other => panic!("expected AccountNotFound, got {other:?}"),
    }
    assert!(requests(&server).await.is_empty(), "the key was sent");

    let allowed = ClientOptions {
        allow_hosts: vec![HostPattern::parse("http://localhost:*").unwrap()],
        ..options()
    };
    let trusted =
        RetailCrmClient::new(&by_name, SecretString::from(KEY), &budgets, &allowed).unwrap();
    trusted
        .credentials()
        .await
        .expect("allowed by the operator's pattern");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_merged_order_is_not_found_with_combined_to() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v5/orders/48190"))
        .respond_with(json(
            404,
            br#"{"success":false,"errorMsg":"Not found","combinedTo":{"id":48213,"externalId":"wc-10931"}}"#.to_vec(),
        ))
        .mount(&server)
        .await;
    match client(&server).order_by_id(48190).await.unwrap_err() {
        RetailCrmError::NotFound { combined_to, .. } => {
            assert_eq!(combined_to.unwrap().id, 48213)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_order_names_the_offending_path() {
    let server = MockServer::start().await;
    let body = String::from_utf8(fixture("orders-get.json"))
        .unwrap()
        .replacen(
            "\"initialPrice\": 1,",
            "\"initialPrice\": {\"amount\": 1},",
            1,
        );
    Mock::given(path("/api/v5/orders/6722"))
        .respond_with(json(200, body.into_bytes()))
        .mount(&server)
        .await;
    let e = client(&server).order_by_id(6722).await.unwrap_err();
    match &e {
        RetailCrmError::InvalidResponse { endpoint, path, .. } => {
            assert_eq!(path, "order.items[0].initialPrice");
            assert_eq!(endpoint.path, "/api/v5/orders/6722");
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.is_transient());
}

/// Responds with a tiny order and records when each request arrived.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Respond for Arrivals {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        json(200, br#"{"success":true,"order":{"id":1}}"#.to_vec())
    }
}

impl Arrivals {
    /// The most arrivals in any closed one-second window (each window starts at an arrival).
    fn max_in_any_second(&self) -> usize {
        let mut times = self.0.lock().unwrap().clone();
        times.sort();
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| t.duration_since(times[i]) <= Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_never_exceed_the_budget_in_any_second() {
    let server = MockServer::start().await;
    let arrivals = Arrivals::default();
    Mock::given(path("/api/v5/orders/1"))
        .respond_with(arrivals.clone())
        .mount(&server)
        .await;
    let budgets = Budgets::default();
    let c = Arc::new(client_for(&server, &budgets, &options()));

    let started = Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.order_by_id(1).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();

    let peak = arrivals.max_in_any_second();
    println!("50 calls in {elapsed:?}, peak {peak} in one second");
    assert_eq!(arrivals.count(), 50);
    assert!(peak <= 10, "{peak} requests in one second");
    // The bucket really throttled: 8/s with a burst of 1 needs about 49/8 s.
    assert!(elapsed >= Duration::from_millis(5_500), "{elapsed:?}");
    let stats = c.budget().stats();
    assert_eq!(stats.acquired, 50);
    assert!(stats.waited >= 45, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_of_one_account_share_its_budget() {
    let server = MockServer::start().await;
    let arrivals = Arrivals::default();
    Mock::given(path("/api/v5/orders/1"))
        .respond_with(arrivals.clone())
        .mount(&server)
        .await;
    let budgets = Budgets::default();
    let a = Arc::new(client_for(&server, &budgets, &options()));
    let b = Arc::new(client_for(&server, &budgets, &options()));
    assert!(Arc::ptr_eq(a.budget(), b.budget()));

    let started = Instant::now();
    let calls: Vec<_> = (0..30)
        .map(|i| {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { c.order_by_id(1).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let peak = arrivals.max_in_any_second();
    assert_eq!(arrivals.count(), 30);
    assert!(peak <= 10, "{peak} requests in one second");
    // Two separate buckets would finish in half the time.
    assert!(
        started.elapsed() >= Duration::from_millis(3_200),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.budget().stats().acquired, 30);
}

/// The gate (the enricher's fence, DESIGN §7.4): a retry after the gate closed is not sent,
/// and the call fails as fenced rather than as the account's fault; a closed gate sends nothing.
#[tokio::test]
async fn a_closed_gate_stops_the_retries_and_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v5/orders/1"))
        .respond_with(json(503, br#"{"success":false}"#.to_vec()))
        .mount(&server)
        .await;
    let asked = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let asks = Arc::clone(&asked);
    // Open for the first attempt only (asked before and after its token), shut for the retry.
    let client = client(&server).with_gate(Arc::new(move || {
        asks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2
    }));
    let e = client.order_by_id(1).await.unwrap_err();
    assert!(
        matches!(
            e,
            RetailCrmError::Unavailable {
                reason: Unavailability::Fenced,
                attempts: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(requests(&server).await.len(), 1, "the retry was not sent");

    let shut = client.with_gate(Arc::new(|| false));
    let tokens = shut.budget().stats().acquired;
    assert!(shut.order_by_id(1).await.is_err());
    assert_eq!(
        shut.budget().stats().acquired,
        tokens,
        "a shut gate spends no budget"
    );

    // Shut while the attempt waited for its token: the token is spent, counted as unsent.
    let once = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let late = shut.with_gate(Arc::new(move || {
        once.swap(false, std::sync::atomic::Ordering::SeqCst)
    }));
    let before = late.budget().stats();
    assert!(late.order_by_id(1).await.is_err());
    let after = late.budget().stats();
    assert_eq!(
        (
            after.acquired - before.acquired,
            after.unsent - before.unsent
        ),
        (1, 1)
    );
    assert_eq!(requests(&server).await.len(), 1, "and nothing was sent");
    assert_eq!(
        requests(&server).await.len(),
        1,
        "nothing sent through a shut gate"
    );
}
