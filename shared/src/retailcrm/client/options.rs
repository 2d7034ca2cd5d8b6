//! What a client is built with and what its list calls take: [`ClientOptions`] (timeouts,
//! retries, allowed private hosts), the build error, page sizes and the `orders` and
//! `orders/history` filters.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};

use crate::config::HostPattern;
#[cfg(doc)]
use crate::retailcrm::PublicOnlyResolver;
use crate::retailcrm::retry::RetryPolicy;

/// The most ids one `filter[ids][]` request may carry.
pub const MAX_IDS_PER_REQUEST: usize = 100;

/// Timeouts and retries of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for one whole attempt (connect, send, receive the body).
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Operator patterns (`DEALFLOW_CRM_ALLOW_HOSTS`) whose hosts may resolve to private or
    /// local addresses: the simulator and test servers. Every other host name is resolved
    /// through [`PublicOnlyResolver`] at each connection (DNS rebinding).
    pub allow_hosts: Vec<HostPattern>,
}

impl Default for ClientOptions {
    /// 5 s to connect, 30 s per attempt, the default [`RetryPolicy`].
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            user_agent: concat!("dealflow/", env!("CARGO_PKG_VERSION")).to_owned(),
            allow_hosts: Vec::new(),
        }
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientBuildError {
    /// The base URL is not an `http(s)://host/` URL without credentials, query or fragment.
    #[error("invalid RetailCRM URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be set up (TLS backend).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Page size of list endpoints (the API accepts 20, 50 and 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageLimit {
    /// 20, the API default.
    #[default]
    Twenty,
    /// 50.
    Fifty,
    /// 100, the most the API documents.
    Hundred,
}

impl PageLimit {
    /// The number sent as `limit`.
    pub fn get(self) -> u32 {
        match self {
            PageLimit::Twenty => 20,
            PageLimit::Fifty => 50,
            PageLimit::Hundred => 100,
        }
    }
}

/// Filter of `GET /api/v5/orders`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrdersFilter {
    /// `filter[ids][]`: internal ids, at most [`MAX_IDS_PER_REQUEST`].
    pub ids: Vec<i64>,
    /// `filter[createdAtFrom]` (a date, `Y-m-d`).
    pub created_at_from: Option<NaiveDate>,
    /// `filter[createdAtTo]` (a date, `Y-m-d`: orders created on that day are included).
    pub created_at_to: Option<NaiveDate>,
    /// `filter[sites][]`: site codes.
    pub sites: Vec<String>,
    /// `limit`.
    pub limit: PageLimit,
    /// `page` (1-based); `None` leaves the API default (1).
    pub page: Option<u32>,
}

/// Filter of `GET /api/v5/orders/history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFilter {
    /// `filter[sinceId]`: records after this id (exclusive).
    pub since_id: Option<i64>,
    /// `filter[startDate]`: records from this account-local time.
    pub start_date: Option<NaiveDateTime>,
    /// `limit`, 100 by default.
    pub limit: PageLimit,
    /// `page`; the API refuses it together with `since_id` (walk by `since_id` instead).
    pub page: Option<u32>,
}

impl Default for HistoryFilter {
    fn default() -> Self {
        HistoryFilter {
            since_id: None,
            start_date: None,
            limit: PageLimit::Hundred,
            page: None,
        }
    }
}
