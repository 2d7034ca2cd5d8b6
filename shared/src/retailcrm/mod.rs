//! The RetailCRM API v5 client: one request budget per account, typed models, typed errors.
//!
//! - [`RetailCrmClient`] ([`client`]): the calls dealflow makes, built once per account;
//! - [`Budgets`] / [`Budget`] ([`budget`]): the token bucket per account that keeps every
//!   account under 10 requests in any second, retries included (DESIGN §7.4);
//! - [`RetryPolicy`] ([`retry`]): bounded exponential backoff with jitter;
//! - [`RetailCrmError`] ([`error`]): what callers branch on, with [`RetailCrmError::is_transient`];
//! - [`models`]: the typed bodies, lenient exactly where the API varies (API-NOTES §10);
//! - [`time`]: the `Y-m-d H:i:s` format and account-local → UTC conversion;
//! - [`address`]: which addresses a key may be sent to, checked at every connection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dealflow_shared::retailcrm::{Budgets, ClientOptions, RetailCrmClient};
//! let budgets = Budgets::default(); // one registry per process, shared by every client
//! let client = RetailCrmClient::new(
//!     &"https://shop.retailcrm.ru/".parse()?,
//!     secrecy::SecretString::from("key"),
//!     &budgets,
//!     &ClientOptions::default(),
//! )?;
//! let order = client.order_by_id(48213).await?;
//! # Ok(()) }
//! ```

pub mod address;
pub mod budget;
pub mod client;
pub mod error;
mod lenient;
pub mod models;
pub mod retry;
pub mod time;

pub use address::{NonPublicAddress, PublicOnlyResolver, is_public};
pub use budget::{
    API_LIMIT_PER_SECOND, Budget, BudgetError, BudgetSettings, BudgetStats, Budgets, account_key,
};
pub use client::{
    ClientBuildError, ClientOptions, Gate, HistoryFilter, MAX_IDS_PER_REQUEST, OrdersFilter,
    PageLimit, RetailCrmClient, parse_response,
};
pub use error::{Endpoint, RetailCrmError, Unavailability};
pub use retry::RetryPolicy;
