//! [`RetailCrmClient`]: one small struct per account, built once with timeouts, the account's
//! base URL, its API key and the account's shared request budget.
//!
//! Every call is a `GET` with the key in the `X-API-KEY` header (never in the URL, never
//! logged), takes a budget token per attempt, is retried on transient failures
//! ([`RetryPolicy`]) and ends in a typed model or a typed [`RetailCrmError`]. Its options and
//! filters are in `options`, the reading of one answer in `response`.

mod options;
mod response;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::address::{PublicOnlyResolver, refused_address};
use super::budget::{Budget, Budgets, account_key};
use super::error::{Endpoint, RetailCrmError, RetryCause, Unavailability, Verdict};
use super::models::{
    ApiVersionsResponse, Credentials, Customer, CustomerCorporate, CustomerCorporateResponse,
    CustomerResponse, Dictionary, HistoryPage, LenientHistoryResponse, Order, OrderResponse,
    OrdersPage, OrdersResponse, Settings, SettingsResponse, Site, SitesResponse, Status,
    StatusGroup, StatusGroupsResponse, StatusesResponse, User, UserResponse, UsersPage,
    UsersResponse,
};
use super::retry::{Attempt, RetryPolicy, with_retries};

use super::time::format_datetime;
pub use options::{
    ClientBuildError, ClientOptions, HistoryFilter, MAX_IDS_PER_REQUEST, OrdersFilter, PageLimit,
};
use response::interpret;
pub use response::parse_response;

/// The RetailCRM API v5 client of one account. Cloning is cheap and shares the connection
/// pool and the budget.
#[derive(Clone)]
pub struct RetailCrmClient {
    http: reqwest::Client,
    base_url: Url,
    account: String,
    api_key: SecretString,
    budget: Arc<Budget>,
    retry: RetryPolicy,
    /// Whether this caller may still call the account ([`RetailCrmClient::with_gate`]).
    gate: Option<Gate>,
}

/// The HTTP clients of this process, one per shape (timeouts, user agent, whether names are
/// resolved through [`PublicOnlyResolver`]), shared by every account's client: a
/// `reqwest::Client` carries its own connection pool and TLS configuration, and one per
/// account was most of an enricher's memory per account with a thousand accounts connected.
/// Pools are kept per host, so sharing them shares nothing between accounts but the setup.
fn shared_http(
    options: &ClientOptions,
    public_only: bool,
) -> Result<reqwest::Client, ClientBuildError> {
    type Shape = (Duration, Duration, String, bool);
    static CLIENTS: Mutex<BTreeMap<Shape, reqwest::Client>> = Mutex::new(BTreeMap::new());
    let shape = (
        options.connect_timeout,
        options.request_timeout,
        options.user_agent.clone(),
        public_only,
    );
    let mut clients = CLIENTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(http) = clients.get(&shape) {
        return Ok(http.clone());
    }
    let mut http = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .user_agent(options.user_agent.clone())
        // A redirect would carry the key to another host; RetailCRM never redirects its
        // API, so a redirect means a wrong URL (classified as such).
        .redirect(reqwest::redirect::Policy::none());
    if public_only {
        http = http.dns_resolver(Arc::new(PublicOnlyResolver));
    }
    let http = http.build()?;
    clients.insert(shape, http.clone());
    Ok(http)
}

/// Asked before every attempt, once its budget token is taken: `false` means the caller no
/// longer calls this account (the enricher's fence after a rebalance, DESIGN §7.4).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

impl fmt::Debug for RetailCrmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetailCrmClient")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &"[REDACTED]")
            .field("budget", &self.budget)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl RetailCrmClient {
    /// A client for the account at `base_url` (`https://host/`; `/api/...` is appended), using
    /// that account's budget from `budgets`.
    pub fn new(
        base_url: &Url,
        api_key: SecretString,
        budgets: &Budgets,
        options: &ClientOptions,
    ) -> Result<Self, ClientBuildError> {
        let base_url = normalize_base_url(base_url)?;
        // Literal addresses were judged by the settings API and cannot change; names can
        // resolve elsewhere later, so they are checked again at every connection.
        let public_only = !options.allow_hosts.iter().any(|p| p.matches(&base_url));
        let http = shared_http(options, public_only)?;
        let account = account_key(&base_url);
        Ok(RetailCrmClient {
            http,
            budget: budgets.for_account(&account),
            account,
            base_url,
            api_key,
            retry: options.retry.clone(),
            gate: None,
        })
    }

    /// This client with a gate asked before every attempt (the first and each retry), before
    /// and after its budget token is taken: once it says `false` no request goes out, and the
    /// call fails as [`Unavailability::Fenced`].
    #[must_use]
    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The account key (host) this client talks to; also its budget's key.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The normalised base URL (`scheme://host[:port]/`).
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The account's budget, shared with every other client of the account.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// `GET /api/credentials`: what the key may do (the connect-time check).
    // Failures are returned to callers, which classify them and log at the level they deserve
    // (a deleted manager is routine, a revoked key is not); the span records them at debug.
    #[tracing::instrument(skip_all, fields(account = %self.account), err(level = "debug"))]
    pub async fn credentials(&self) -> Result<Credentials, RetailCrmError> {
        self.get("api/credentials", Vec::new()).await
    }

    /// `GET /api/api-versions`: the API versions the account serves.
    #[tracing::instrument(skip_all, fields(account = %self.account), err(level = "debug"))]
    pub async fn api_versions(&self) -> Result<Vec<String>, RetailCrmError> {
        let body: ApiVersionsResponse = self.get("api/api-versions", Vec::new()).await?;
        Ok(body.versions)
    }

    /// `GET /api/v5/settings`: currency, language and the timezone of every naive datetime.
    #[tracing::instrument(skip_all, fields(account = %self.account), err(level = "debug"))]
    pub async fn settings(&self) -> Result<Settings, RetailCrmError> {
        let body: SettingsResponse = self.get("api/v5/settings", Vec::new()).await?;
        Ok(body.settings)
    }

    /// `GET /api/v5/reference/statuses`: order statuses by code.
    #[tracing::instrument(skip_all, fields(account = %self.account), err(level = "debug"))]
    pub async fn statuses(&self) -> Result<Dictionary<Status>, RetailCrmError> {
        let body: StatusesResponse = self.get("api/v5/reference/statuses", Vec::new()).await?;
        Ok(body.statuses)
    }

    /// `GET /api/v5/reference/status-groups`: status groups by code.
    #[tracing::instrument(skip_all, fields(account = %self.account), err(level = "debug"))]
    pub async fn status_groups(&self) -> Result<Dictionary<StatusGroup>, RetailCrmError> {
        let body: StatusGroupsResponse = self
            .get("api/v5/reference/status-groups", Vec::new())
            .await?;
        Ok(body.status_groups)
    }

    /// `GET /api/v5/reference/sites`: the account's sites (shops) by code.
    #[tracing::instrument(skip_all, fields(account = %self.account), err(level = "debug"))]
    pub async fn sites(&self) -> Result<Dictionary<Site>, RetailCrmError> {
        let body: SitesResponse = self.get("api/v5/reference/sites", Vec::new()).await?;
        Ok(body.sites)
    }

    /// `GET /api/v5/orders/{id}?by=id`: one order by its internal id.
    #[tracing::instrument(skip_all, fields(account = %self.account, order_id = id), err(level = "debug"))]
    pub async fn order_by_id(&self, id: i64) -> Result<Order, RetailCrmError> {
        let body: OrderResponse = self
            .get(&format!("api/v5/orders/{id}"), vec![pair("by", "id")])
            .await?;
        Ok(body.order)
    }

    /// `GET /api/v5/orders` with `filter[...]`, `limit` and `page`.
    #[tracing::instrument(skip_all, fields(account = %self.account, ids = filter.ids.len()), err(level = "debug"))]
    pub async fn orders(&self, filter: &OrdersFilter) -> Result<OrdersPage, RetailCrmError> {
        if filter.ids.len() > MAX_IDS_PER_REQUEST {
            return Err(RetailCrmError::InvalidRequest(format!(
                "{} ids in one orders request; at most {MAX_IDS_PER_REQUEST}",
                filter.ids.len()
            )));
        }
        let mut query = Vec::new();
        for id in &filter.ids {
            query.push(pair("filter[ids][]", id));
        }
        if let Some(date) = filter.created_at_from {
            query.push(pair("filter[createdAtFrom]", date.format("%Y-%m-%d")));
        }
        if let Some(date) = filter.created_at_to {
            query.push(pair("filter[createdAtTo]", date.format("%Y-%m-%d")));
        }
        for site in &filter.sites {
            query.push(pair("filter[sites][]", site));
        }
        query.push(pair("limit", filter.limit.get()));
        if let Some(page) = filter.page {
            query.push(pair("page", page));
        }
        let body: OrdersResponse = self.get("api/v5/orders", query).await?;
        Ok(OrdersPage {
            orders: body.orders,
            pagination: body.pagination,
        })
    }

    /// `GET /api/v5/orders/history`. Walk it by passing the last record's id as the next
    /// `since_id` ([`HistoryPage::last_id`]); `page` is refused together with `since_id`.
    #[tracing::instrument(skip_all, fields(account = %self.account, since_id = filter.since_id), err(level = "debug"))]
    pub async fn orders_history(
        &self,
        filter: &HistoryFilter,
    ) -> Result<HistoryPage, RetailCrmError> {
        if filter.since_id.is_some() && filter.page.is_some() {
            return Err(RetailCrmError::InvalidRequest(
                "orders/history refuses `page` together with `sinceId`".into(),
            ));
        }
        let mut query = Vec::new();
        if let Some(since_id) = filter.since_id {
            query.push(pair("filter[sinceId]", since_id));
        }
        if let Some(start) = filter.start_date {
            query.push(pair("filter[startDate]", format_datetime(&start)));
        }
        query.push(pair("limit", filter.limit.get()));
        if let Some(page) = filter.page {
            query.push(pair("page", page));
        }
        // Each record is read on its own: one unreadable record must not hide the page (the
        // caller dead-letters it and moves the cursor past it).
        let body: LenientHistoryResponse = self.get("api/v5/orders/history", query).await?;
        Ok(body.into_page())
    }

    /// `GET /api/v5/users/{id}`: one user (a responsible manager).
    #[tracing::instrument(skip_all, fields(account = %self.account, user_id = id), err(level = "debug"))]
    pub async fn user(&self, id: i64) -> Result<User, RetailCrmError> {
        let body: UserResponse = self.get(&format!("api/v5/users/{id}"), Vec::new()).await?;
        Ok(body.user)
    }

    /// `GET /api/v5/users?limit=&page=`: one page of users.
    #[tracing::instrument(skip_all, fields(account = %self.account, page), err(level = "debug"))]
    pub async fn users(&self, page: u32, limit: PageLimit) -> Result<UsersPage, RetailCrmError> {
        let query = vec![pair("limit", limit.get()), pair("page", page)];
        let body: UsersResponse = self.get("api/v5/users", query).await?;
        Ok(UsersPage {
            users: body.users,
            pagination: body.pagination,
        })
    }

    /// `GET /api/v5/customers/{id}?by=id`: an individual customer. A merged customer gives
    /// [`RetailCrmError::NotFound`] with `combined_to`.
    #[tracing::instrument(skip_all, fields(account = %self.account, customer_id = id), err(level = "debug"))]
    pub async fn customer(&self, id: i64) -> Result<Customer, RetailCrmError> {
        let body: CustomerResponse = self
            .get(&format!("api/v5/customers/{id}"), vec![pair("by", "id")])
            .await?;
        Ok(body.customer)
    }

    /// `GET /api/v5/customers-corporate/{id}?by=id`: a corporate customer.
    #[tracing::instrument(skip_all, fields(account = %self.account, customer_id = id), err(level = "debug"))]
    pub async fn customer_corporate(&self, id: i64) -> Result<CustomerCorporate, RetailCrmError> {
        let body: CustomerCorporateResponse = self
            .get(
                &format!("api/v5/customers-corporate/{id}"),
                vec![pair("by", "id")],
            )
            .await?;
        Ok(body.customer_corporate)
    }

    /// One `GET` of `relative` (below the base URL) with retries.
    async fn get<T: DeserializeOwned>(
        &self,
        relative: &str,
        query: Vec<(String, String)>,
    ) -> Result<T, RetailCrmError> {
        let mut url = self
            .base_url
            .join(relative)
            .map_err(|e| RetailCrmError::InvalidRequest(format!("bad path {relative:?}: {e}")))?;
        let endpoint = Endpoint::get(url.path().to_owned());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(&query);
        }
        with_retries(&self.retry, &endpoint, |number| {
            self.attempt(&endpoint, &url, number)
        })
        .await
    }

    /// Whether the gate ([`Self::with_gate`]) says no more calls.
    fn gate_shut(&self) -> bool {
        self.gate.as_ref().is_some_and(|open| !open())
    }

    /// One attempt: a budget token, the request, the classification of the answer.
    async fn attempt<T: DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        number: u32,
    ) -> Attempt<T> {
        // Asked before the token (a shut gate spends none of the account's budget) and again
        // after it (the wait for a token may outlast the gate).
        let fenced = || {
            Attempt::Done(Err(RetailCrmError::Unavailable {
                endpoint: endpoint.clone(),
                attempts: number,
                reason: Unavailability::Fenced,
            }))
        };
        if self.gate_shut() {
            return fenced();
        }
        let ticket = self.budget.acquire().await;
        if self.gate_shut() {
            self.budget.note_unsent();
            return fenced();
        }
        let sent = self
            .http
            .get(url.clone())
            .header("X-API-KEY", self.api_key.expose_secret())
            .send()
            .await;
        // The answer's head is in: the request has arrived (the budget's window).
        drop(ticket);
        let response = match sent {
            Ok(response) => response,
            Err(e) => return transport_failure(endpoint, e),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return transport_failure(endpoint, e),
        };
        match interpret(endpoint, status, &body) {
            Ok(value) => Attempt::Done(Ok(value)),
            Err(Verdict::Fail(e)) => Attempt::Done(Err(e)),
            Err(Verdict::Retry(cause)) => Attempt::Retry { cause, retry_after },
        }
    }
}

/// A failure below HTTP: retried unless the request itself could not be built or the host
/// resolved to an address the key must not go to (that answer is the URL's, not a glitch).
fn transport_failure<T>(endpoint: &Endpoint, e: reqwest::Error) -> Attempt<T> {
    if e.is_builder() {
        return Attempt::Done(Err(RetailCrmError::InvalidRequest(error_chain(&e))));
    }
    if let Some(refused) = refused_address(&e) {
        return Attempt::Done(Err(RetailCrmError::AccountNotFound {
            endpoint: endpoint.clone(),
            detail: refused.to_string(),
        }));
    }
    let reason = if e.is_timeout() {
        Unavailability::Timeout
    } else if e.is_connect() {
        Unavailability::Connect(error_chain(&e))
    } else {
        Unavailability::Transport(error_chain(&e))
    };
    Attempt::Retry {
        cause: RetryCause::Unavailable(reason),
        retry_after: None,
    }
}

/// The error and its sources on one line (reqwest's own message is only the outer layer).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn pair(key: &str, value: impl fmt::Display) -> (String, String) {
    (key.to_owned(), value.to_string())
}

/// Checks the account URL and reduces it to `scheme://host[:port]/path/` (path kept for test
/// servers that host several accounts; real accounts have none).
fn normalize_base_url(url: &Url) -> Result<Url, ClientBuildError> {
    let bad = |reason| ClientBuildError::InvalidBaseUrl {
        url: url.to_string(),
        reason,
    };
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad(
            "the scheme must be https (or http for local test servers)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials are not allowed in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    let mut normalized = url.clone();
    if !normalized.path().ends_with('/') {
        let path = format!("{}/", normalized.path());
        normalized.set_path(&path);
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalized() {
        let norm = |u: &str| normalize_base_url(&Url::parse(u).unwrap()).map(|u| u.to_string());
        assert_eq!(
            norm("https://shop.retailcrm.ru").unwrap(),
            "https://shop.retailcrm.ru/"
        );
        assert_eq!(
            norm("http://127.0.0.1:9/acc").unwrap(),
            "http://127.0.0.1:9/acc/"
        );
        assert!(norm("ftp://shop.retailcrm.ru/").is_err());
        assert!(norm("https://u:p@shop.retailcrm.ru/").is_err());
        assert!(norm("https://shop.retailcrm.ru/?apiKey=x").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let client = RetailCrmClient::new(
            &Url::parse("https://shop.retailcrm.ru/").unwrap(),
            SecretString::from("super-secret-key"),
            &Budgets::default(),
            &ClientOptions::default(),
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("super-secret-key"), "{shown}");
        assert!(shown.contains("shop.retailcrm.ru"));
    }
}
