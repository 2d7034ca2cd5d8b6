//! The request budget: one token bucket per RetailCRM account, shared by every client and every
//! call to that account (DESIGN §7.4).
//!
//! RetailCRM allows 10 requests per second. A GCRA bucket (governor) replenishing `rps` tokens
//! per second with capacity `burst` admits at most `burst + rps` requests in any closed
//! one-second window, so `rps + burst ≤ 10` is enforced when the settings are built. The
//! default, 8/s with a burst of 1, peaks at 9 and leaves one request of slack for send-side
//! jitter (a request that got its token late on the wire still lands inside the limit).
//! Every HTTP attempt takes a token first: retries and the connect-time key check included.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use url::Url;

/// RetailCRM's own limit: requests per second per account (API-NOTES §2).
pub const API_LIMIT_PER_SECOND: u32 = 10;

/// Rate and burst of a budget, validated against [`API_LIMIT_PER_SECOND`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    rps: NonZeroU32,
    burst: NonZeroU32,
}

impl BudgetSettings {
    /// `rps` requests per second with bursts of up to `burst`. Fails unless both are at least
    /// 1 and `rps + burst` stays within the API's 10 per second.
    pub fn new(rps: u32, burst: u32) -> Result<Self, BudgetError> {
        let (Some(rps_nz), Some(burst_nz)) = (NonZeroU32::new(rps), NonZeroU32::new(burst)) else {
            return Err(BudgetError { rps, burst });
        };
        if rps + burst > API_LIMIT_PER_SECOND {
            return Err(BudgetError { rps, burst });
        }
        Ok(BudgetSettings {
            rps: rps_nz,
            burst: burst_nz,
        })
    }

    /// `rps` per second with a burst of 1 (the smallest, safest burst).
    pub fn with_rps(rps: u32) -> Result<Self, BudgetError> {
        Self::new(rps, 1)
    }

    /// Tokens replenished per second.
    pub fn rps(&self) -> u32 {
        self.rps.get()
    }

    /// Bucket capacity.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The most requests this budget admits in any one-second window.
    pub fn max_per_second(&self) -> u32 {
        self.rps() + self.burst()
    }

    fn quota(&self) -> Quota {
        // Round the period up so the bucket is never faster than `rps`.
        let period = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(self.rps())));
        Quota::with_period(period)
            .expect("a period of at least 100 ms is never zero")
            .allow_burst(self.burst)
    }
}

impl Default for BudgetSettings {
    /// 8 requests per second, burst 1 (DESIGN §3 `DEALFLOW_CRM_RPS`).
    fn default() -> Self {
        BudgetSettings::new(8, 1).expect("8 + 1 is within the limit")
    }
}

/// Budget settings outside the API limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a RetailCRM budget of {rps}/s with burst {burst} is invalid: both must be at least 1 and \
     together at most {API_LIMIT_PER_SECOND}"
)]
pub struct BudgetError {
    /// The rejected rate.
    pub rps: u32,
    /// The rejected burst.
    pub burst: u32,
}

/// Counters of one budget, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetStats {
    /// Tokens handed out (= HTTP attempts made).
    pub acquired: u64,
    /// Acquisitions that had to wait for a token.
    pub waited: u64,
    /// Total time spent waiting.
    pub wait_time: Duration,
}

/// One account's token bucket. Obtain it from [`Budgets`] so every client of the account
/// shares it.
pub struct Budget {
    account: String,
    settings: BudgetSettings,
    limiter: DefaultDirectRateLimiter,
    acquired: AtomicU64,
    waited: AtomicU64,
    wait_nanos: AtomicU64,
}

impl Budget {
    fn new(account: String, settings: BudgetSettings) -> Self {
        Budget {
            account,
            settings,
            limiter: RateLimiter::direct(settings.quota()),
            acquired: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            wait_nanos: AtomicU64::new(0),
        }
    }

    /// Waits until a request may be sent and takes the token; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        if self.limiter.check().is_err() {
            // A little jitter keeps many waiters from all re-checking at the same instant.
            self.limiter
                .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(5)))
                .await;
            let waited = started.elapsed();
            self.waited.fetch_add(1, Ordering::Relaxed);
            let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
            self.acquired.fetch_add(1, Ordering::Relaxed);
            return waited;
        }
        self.acquired.fetch_add(1, Ordering::Relaxed);
        Duration::ZERO
    }

    /// The account this budget belongs to (see [`account_key`]).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Its rate and burst.
    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// Counters so far.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            acquired: self.acquired.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            wait_time: Duration::from_nanos(self.wait_nanos.load(Ordering::Relaxed)),
        }
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("account", &self.account)
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The registry of budgets, one per account, shared by all clients built from it. Cloning
/// shares the registry. Budgets are never dropped while the registry lives: a fresh bucket
/// would start full and could push a just-busy account over its limit.
#[derive(Clone, Default)]
pub struct Budgets {
    settings: BudgetSettings,
    by_account: Arc<Mutex<HashMap<String, Arc<Budget>>>>,
}

impl Budgets {
    /// A registry whose budgets all use `settings`.
    pub fn new(settings: BudgetSettings) -> Self {
        Budgets {
            settings,
            by_account: Arc::default(),
        }
    }

    /// The budget of `account` (an [`account_key`]), created on first use.
    pub fn for_account(&self, account: &str) -> Arc<Budget> {
        let mut map = self.by_account.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account.to_owned())
            .or_insert_with(|| Arc::new(Budget::new(account.to_owned(), self.settings)))
            .clone()
    }

    /// Every budget so far with its counters, for metrics.
    pub fn snapshot(&self) -> Vec<(String, BudgetStats)> {
        let map = self.by_account.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = map.iter().map(|(k, b)| (k.clone(), b.stats())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The settings new budgets get.
    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }
}

impl fmt::Debug for Budgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.by_account.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("Budgets")
            .field("settings", &self.settings)
            .field("accounts", &count)
            .finish()
    }
}

/// The key that identifies an account: its host (lower case), with the port when one is given
/// and the path when it is not `/` (test servers may host several accounts on one port).
/// For a real account, `https://shop.retailcrm.ru/` → `shop.retailcrm.ru`.
pub fn account_key(base_url: &Url) -> String {
    let mut key = base_url.host_str().unwrap_or_default().to_ascii_lowercase();
    if let Some(port) = base_url.port() {
        key.push(':');
        key.push_str(&port.to_string());
    }
    let path = base_url.path().trim_end_matches('/');
    key.push_str(path);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_stay_within_the_api_limit() {
        assert_eq!(BudgetSettings::default().max_per_second(), 9);
        assert!(BudgetSettings::new(8, 2).is_ok());
        assert!(BudgetSettings::new(8, 3).is_err());
        assert!(BudgetSettings::new(10, 1).is_err());
        assert!(BudgetSettings::new(0, 1).is_err());
        assert!(BudgetSettings::with_rps(9).is_ok());
    }

    #[test]
    fn keys_are_per_host_and_path() {
        let key = |u: &str| account_key(&Url::parse(u).unwrap());
        assert_eq!(key("https://Shop.RetailCRM.ru/"), "shop.retailcrm.ru");
        assert_eq!(key("http://127.0.0.1:8081/acc-1/"), "127.0.0.1:8081/acc-1");
        assert_ne!(
            key("http://127.0.0.1:8081/a/"),
            key("http://127.0.0.1:8081/b/")
        );
    }

    #[test]
    fn one_budget_per_account() {
        let budgets = Budgets::default();
        let a = budgets.for_account("a.retailcrm.ru");
        let b = budgets.clone().for_account("a.retailcrm.ru");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &budgets.for_account("b.retailcrm.ru")));
    }

    #[tokio::test]
    async fn a_second_token_waits_for_the_period() {
        let budgets = Budgets::new(BudgetSettings::new(5, 1).unwrap());
        let budget = budgets.for_account("x");
        assert_eq!(budget.acquire().await, Duration::ZERO);
        let waited = budget.acquire().await;
        // 5/s → one token every 200 ms.
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        let stats = budget.stats();
        assert_eq!((stats.acquired, stats.waited), (2, 1));
    }
}
