//! The RetailCRM calls of one account worker, measured.
//!
//! A thin layer over the shared [`RetailCrmClient`] (which already takes a budget token per
//! attempt and retries 503/429/5xx with backoff): each call is counted by endpoint and
//! outcome, timed, and the account budget's waits during it are added to the budget-wait
//! metrics. Endpoint labels are fixed names, never a path with an id.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::NaiveDate;
use dealflow_shared::retailcrm::models::{
    Dictionary, HistoryPage, Order, OrdersPage, Settings, Site, Status, StatusGroup, User,
    UsersPage,
};
use dealflow_shared::retailcrm::{
    BudgetStats, HistoryFilter, OrdersFilter, PageLimit, RetailCrmClient, RetailCrmError,
};

use crate::metrics::EnricherMetrics;

/// The outcome label of a call.
pub fn outcome(result: &Result<impl Sized, RetailCrmError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(RetailCrmError::NotFound { .. }) => "not_found",
        Err(RetailCrmError::AuthFailed { .. }) => "auth_failed",
        Err(RetailCrmError::AccessDenied { .. }) => "access_denied",
        Err(RetailCrmError::RateLimited { .. }) => "rate_limited",
        Err(RetailCrmError::Unavailable { .. }) => "unavailable",
        Err(RetailCrmError::AccountNotFound { .. }) => "account_not_found",
        Err(RetailCrmError::BadRequest { .. }) => "bad_request",
        Err(RetailCrmError::InvalidResponse { .. }) => "invalid_response",
        Err(RetailCrmError::InvalidRequest(_)) => "invalid_request",
        Err(_) => "other",
    }
}

/// One account's client with metrics. Clones share everything (a batch's list call runs on
/// a clone while the worker maps and publishes the batch before).
#[derive(Debug, Clone)]
pub struct Crm {
    client: RetailCrmClient,
    metrics: EnricherMetrics,
    /// The budget's counters when last looked at, shared by the clones so that each wait
    /// is counted once.
    budget_seen: Arc<Mutex<BudgetStats>>,
}

impl Crm {
    /// Wraps the account's client.
    pub fn new(client: RetailCrmClient, metrics: EnricherMetrics) -> Self {
        let budget_seen = Arc::new(Mutex::new(client.budget().stats()));
        Self {
            client,
            metrics,
            budget_seen,
        }
    }

    async fn measured<T, F>(&mut self, endpoint: &'static str, call: F) -> Result<T, RetailCrmError>
    where
        F: Future<Output = Result<T, RetailCrmError>>,
    {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .crm_call(endpoint, outcome(&result), started.elapsed());
        // The budget is the account's, shared with any other client of it; this worker is
        // its only steady user, so the difference is (nearly all) its calls' waiting.
        let mut seen = self.budget_seen.lock().expect("budget stats lock");
        let now = self.client.budget().stats();
        self.metrics.budget_waited(
            now.waited.saturating_sub(seen.waited),
            now.wait_time.saturating_sub(seen.wait_time),
        );
        *seen = now;
        drop(seen);
        result
    }

    /// `GET /api/v5/orders?filter[ids][]=…&limit=100`: the orders among `ids` that exist.
    pub async fn orders(&mut self, ids: &[i64]) -> Result<Vec<Order>, RetailCrmError> {
        self.metrics.orders_call(ids.len());
        let filter = OrdersFilter {
            ids: ids.to_vec(),
            limit: PageLimit::Hundred,
            ..OrdersFilter::default()
        };
        let client = self.client.clone();
        self.measured("orders", async move {
            client.orders(&filter).await.map(|p| p.orders)
        })
        .await
    }

    /// `GET /api/v5/orders?filter[createdAtFrom]=since[&filter[createdAtTo]=until]&limit=100&page=page`:
    /// one page of a backfill / re-sync window, full orders.
    pub async fn orders_created_between(
        &mut self,
        since: NaiveDate,
        until: Option<NaiveDate>,
        page: u32,
    ) -> Result<OrdersPage, RetailCrmError> {
        let filter = OrdersFilter {
            created_at_from: Some(since),
            created_at_to: until,
            limit: PageLimit::Hundred,
            page: Some(page),
            ..OrdersFilter::default()
        };
        let client = self.client.clone();
        self.measured("orders_list", async move { client.orders(&filter).await })
            .await
    }

    /// `GET /api/v5/orders/history?filter[sinceId]=…&limit=100` (or `startDate` before the
    /// first cursor); never `page` (API-NOTES §4).
    pub async fn history(&mut self, filter: HistoryFilter) -> Result<HistoryPage, RetailCrmError> {
        let client = self.client.clone();
        self.measured(
            "history",
            async move { client.orders_history(&filter).await },
        )
        .await
    }

    /// `GET /api/v5/orders/{id}?by=id`.
    pub async fn order(&mut self, id: i64) -> Result<Order, RetailCrmError> {
        let client = self.client.clone();
        self.measured("order", async move { client.order_by_id(id).await })
            .await
    }

    /// `GET /api/v5/settings`.
    pub async fn settings(&mut self) -> Result<Settings, RetailCrmError> {
        let client = self.client.clone();
        self.measured("settings", async move { client.settings().await })
            .await
    }

    /// `GET /api/v5/reference/statuses`.
    pub async fn statuses(&mut self) -> Result<Dictionary<Status>, RetailCrmError> {
        let client = self.client.clone();
        self.measured("statuses", async move { client.statuses().await })
            .await
    }

    /// `GET /api/v5/reference/status-groups`.
    pub async fn status_groups(&mut self) -> Result<Dictionary<StatusGroup>, RetailCrmError> {
        let client = self.client.clone();
        self.measured("status_groups", async move { client.status_groups().await })
            .await
    }

    /// `GET /api/v5/reference/sites`.
    pub async fn sites(&mut self) -> Result<Dictionary<Site>, RetailCrmError> {
        let client = self.client.clone();
        self.measured("sites", async move { client.sites().await })
            .await
    }

    /// `GET /api/v5/users?limit=…&page=…`: one page of the account's users.
    pub async fn users(
        &mut self,
        page: u32,
        limit: PageLimit,
    ) -> Result<UsersPage, RetailCrmError> {
        let client = self.client.clone();
        self.measured("users", async move { client.users(page, limit).await })
            .await
    }

    /// `GET /api/v5/users/{id}`.
    pub async fn user(&mut self, id: i64) -> Result<User, RetailCrmError> {
        let client = self.client.clone();
        self.measured("user", async move { client.user(id).await })
            .await
    }
}
