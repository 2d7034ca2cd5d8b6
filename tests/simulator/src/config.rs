//! Configuration of a simulator run: which accounts exist, how big their data sets are, and
//! which API keys they accept. Plain data; nothing here touches the network.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The scopes a default key carries: everything dealflow reads.
pub const DEFAULT_SCOPES: [&str; 4] =
    ["order_read", "customer_read", "reference_read", "user_read"];

/// The whole simulator: listener settings, the seed and one entry per account.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address every account listens on.
    pub listen_host: IpAddr,
    /// Port of the first account; account `i` listens on `base_port + i`. `0` = ephemeral ports.
    pub base_port: u16,
    /// Seed of the generated data (account `i` derives its own seed from it).
    pub seed: u64,
    /// One entry per account (each RetailCRM account is its own host).
    pub accounts: Vec<AccountConfig>,
}

impl SimConfig {
    /// `accounts` default accounts with `orders` generated orders each, seed 42, ephemeral ports.
    pub fn new(accounts: usize, orders: usize) -> Self {
        Self {
            listen_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            seed: 42,
            accounts: (0..accounts)
                .map(|_| AccountConfig::with_orders(orders))
                .collect(),
        }
    }

    /// Same configuration with another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::new(1, 200)
    }
}

/// How the 503 answer of the rate limiter (and injected errors) is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorBody {
    /// `{"success": false, "errorMsg": "..."}` as the official Go client's tests mock it.
    #[default]
    Json,
    /// An nginx-style HTML page, as a proxy in front of the API would send.
    Html,
}

/// One RetailCRM account.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// Account timezone (`/api/v5/settings`); every datetime of the account is naive in it.
    pub timezone: Tz,
    /// Account currency (`default_currency`), also the currency of every site and order.
    pub currency: String,
    /// Number of generated orders.
    pub orders: usize,
    /// Generated orders are spread over this many days before the anchor.
    pub history_days: u32,
    /// The "now" of the generated data; `None` = the moment the simulator starts. Pin it to get
    /// byte-identical data sets for one seed.
    pub anchor: Option<DateTime<Utc>>,
    /// API keys; empty = one generated key with full access and [`DEFAULT_SCOPES`].
    pub keys: Vec<KeyAccess>,
    /// Requests allowed in any sliding one-second window (the real API allows 10); 0 = no limit.
    pub rate_limit: u32,
    /// Body of the rate limiter's 503.
    pub rate_limit_body: ErrorBody,
}

impl AccountConfig {
    /// A Moscow/RUB account with `orders` generated orders and one full-access key.
    pub fn with_orders(orders: usize) -> Self {
        Self {
            timezone: chrono_tz::Europe::Moscow,
            currency: "RUB".to_owned(),
            orders,
            history_days: 180,
            anchor: None,
            keys: Vec::new(),
            rate_limit: 10,
            rate_limit_body: ErrorBody::Json,
        }
    }
}

/// Site access of a key (`siteAccess` in `/api/credentials`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SiteAccess {
    /// Every site of the account.
    #[default]
    #[serde(rename = "access_full")]
    Full,
    /// Only `sites_available`.
    #[serde(rename = "access_selective")]
    Selective,
}

/// What one API key may do. Also the body of the key controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAccess {
    /// The key itself; `None` = generated from the seed.
    #[serde(default)]
    pub key: Option<String>,
    /// Granted scopes (`order_read`, …). A key without scopes is an "old" key that only has
    /// `credentials`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Allowed method paths without version (`/api/orders/history`); `None` = derived from the
    /// scopes.
    #[serde(default)]
    pub credentials: Option<Vec<String>>,
    /// Full or selective site access.
    #[serde(default)]
    pub site_access: SiteAccess,
    /// Sites of a selective key.
    #[serde(default)]
    pub sites_available: Vec<String>,
}

impl Default for KeyAccess {
    fn default() -> Self {
        Self {
            key: None,
            scopes: DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            credentials: None,
            site_access: SiteAccess::Full,
            sites_available: Vec::new(),
        }
    }
}
