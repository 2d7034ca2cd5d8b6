//! The request budget: one token bucket per RetailCRM account, shared by every client and every
//! call to that account (DESIGN §7.4).
//!
//! RetailCRM allows 10 requests per second. A GCRA bucket (governor) with capacity `burst` and
//! one token every `period` admits at most `burst + ⌊1 s / period⌋` requests in any closed
//! one-second window. The period is `1 s / rps`, stretched by a nanosecond when that peak
//! would pass the budget's ceiling (10, the API's limit, unless a share of it is reserved): so
//! `DEALFLOW_CRM_RPS=10` runs at just under 10/s and never sends an eleventh request in a
//! second. The default, 8/s with a burst of 1, peaks at 9 and leaves one request of slack for
//! send-side jitter (a request that got its token late on the wire still lands inside the
//! limit). Every HTTP attempt takes a token first: retries and the connect-time key check
//! included.
//!
//! **The window, whatever the delays**: the bucket counts when tokens are *taken*, RetailCRM
//! when requests *arrive*; a request delayed between the two (a busy runtime, a slow connect)
//! made an eleventh arrival in some second although no second had eleven tokens (seen as a 503
//! in the all-in-one's budget test). So each budget also keeps its last `ceiling` requests
//! ([`Ticket`]): a request may start only once the `ceiling`-th before it was *answered* more
//! than a second ago. A request arrives after its start and before its answer, so no second
//! at RetailCRM ever holds more than `ceiling` of this budget's requests. At 8/s this never
//! binds (ten requests span more than a second anyway); at the ceiling it costs a response
//! time per second.
//!
//! **Across processes** (DESIGN §7.4): in the split deployment ingest's connect-time key
//! checks run in another process than the enricher, so the account's ten are shared out:
//! ingest gets one request per second ([`BudgetSettings::connect_checks`]) and the enricher's
//! ceiling is the other nine ([`BudgetSettings::enricher_beside_ingest`]). In the all-in-one
//! both use one budget of the process.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use url::Url;

/// RetailCRM's own limit: requests per second per account (API-NOTES §2).
pub const API_LIMIT_PER_SECOND: u32 = 10;

/// Rate, burst and ceiling of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    rps: NonZeroU32,
    burst: NonZeroU32,
    /// The most requests this budget may send in any one-second window.
    ceiling: u32,
}

impl BudgetSettings {
    /// `rps` requests per second with bursts of up to `burst`, within the API's 10 per second.
    /// Fails unless both are at least 1 and `rps + burst` is at most 11 (at 11 the rate is
    /// shaved by a nanosecond per token so the peak stays at 10).
    pub fn new(rps: u32, burst: u32) -> Result<Self, BudgetError> {
        Self::within(rps, burst, API_LIMIT_PER_SECOND)
    }

    /// Like [`BudgetSettings::new`] with a lower ceiling than the API's limit (a share of the
    /// account's ten reserved for another process).
    pub fn within(rps: u32, burst: u32, ceiling: u32) -> Result<Self, BudgetError> {
        let error = BudgetError {
            rps,
            burst,
            ceiling,
        };
        let (Some(rps_nz), Some(burst_nz)) = (NonZeroU32::new(rps), NonZeroU32::new(burst)) else {
            return Err(error);
        };
        if ceiling > API_LIMIT_PER_SECOND || rps + burst > ceiling + 1 {
            return Err(error);
        }
        Ok(BudgetSettings {
            rps: rps_nz,
            burst: burst_nz,
            ceiling,
        })
    }

    /// `rps` per second with a burst of 1 (the smallest, safest burst).
    pub fn with_rps(rps: u32) -> Result<Self, BudgetError> {
        Self::new(rps, 1)
    }

    /// Ingest's connect-time key checks in a process of their own: one request per second,
    /// the share of each account the enricher leaves ([`Self::enricher_beside_ingest`]).
    pub fn connect_checks() -> Self {
        Self::within(1, 1, 1).expect("one per second within a ceiling of one")
    }

    /// The enricher's budget when ingest runs as another process: `rps` (from
    /// `DEALFLOW_CRM_RPS`), within the nine requests per second ingest's
    /// [`Self::connect_checks`] leave.
    pub fn enricher_beside_ingest(rps: u32) -> Result<Self, BudgetError> {
        let ceiling = API_LIMIT_PER_SECOND - Self::connect_checks().max_per_second();
        Self::within(rps.min(ceiling), 1, ceiling)
    }

    /// Tokens replenished per second.
    pub fn rps(&self) -> u32 {
        self.rps.get()
    }

    /// Bucket capacity.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The most requests this budget admits in any closed one-second window.
    pub fn max_per_second(&self) -> u32 {
        const SECOND: u64 = 1_000_000_000;
        let steady = SECOND / self.period_nanos();
        self.burst() + u32::try_from(steady).unwrap_or(u32::MAX)
    }

    /// Time between tokens: `1 s / rps` rounded up (never faster than `rps`), and longer by a
    /// nanosecond than `1 s / (ceiling − burst + 1)` so that `burst` plus the tokens of one
    /// second stay within the ceiling.
    fn period_nanos(&self) -> u64 {
        const SECOND: u64 = 1_000_000_000;
        let by_rate = SECOND.div_ceil(u64::from(self.rps()));
        let room = u64::from((self.ceiling + 1).saturating_sub(self.burst()).max(1));
        by_rate.max(SECOND / room + 1)
    }

    fn quota(&self) -> Quota {
        Quota::with_period(Duration::from_nanos(self.period_nanos()))
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
     together at most one more than the ceiling of {ceiling} requests per second (RetailCRM \
     allows {API_LIMIT_PER_SECOND})"
)]
pub struct BudgetError {
    /// The rejected rate.
    pub rps: u32,
    /// The rejected burst.
    pub burst: u32,
    /// The ceiling it had to stay within.
    pub ceiling: u32,
}

/// Counters of one budget, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetStats {
    /// Tokens handed out (= HTTP attempts made, plus `unsent`).
    pub acquired: u64,
    /// Tokens taken for an attempt its caller's gate then stopped: no request went out
    /// ([`crate::retailcrm::RetailCrmClient::with_gate`]).
    pub unsent: u64,
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
    /// The last `ceiling` requests, oldest first (see the module's "the window").
    recent: Mutex<VecDeque<Recent>>,
    acquired: AtomicU64,
    unsent: AtomicU64,
    waited: AtomicU64,
    wait_nanos: AtomicU64,
}

impl Budget {
    fn new(account: String, settings: BudgetSettings) -> Self {
        Budget {
            account,
            settings,
            limiter: RateLimiter::direct(settings.quota()),
            recent: Mutex::new(VecDeque::new()),
            acquired: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            wait_nanos: AtomicU64::new(0),
        }
    }

    /// Waits until a request may be sent and takes the token; the [`Ticket`] is to be held
    /// until the request's answer (or failure) is in.
    pub async fn acquire(&self) -> Ticket<'_> {
        let started = Instant::now();
        let mut waited = false;
        if self.limiter.check().is_err() {
            // A little jitter keeps many waiters from all re-checking at the same instant.
            self.limiter
                .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(5)))
                .await;
            waited = true;
        }
        let id = loop {
            match self.enter_window() {
                Ok(id) => break id,
                Err(pause) => {
                    waited = true;
                    tokio::time::sleep(pause).await;
                }
            }
        };
        self.acquired.fetch_add(1, Ordering::Relaxed);
        let waited = if waited {
            let waited = started.elapsed();
            self.waited.fetch_add(1, Ordering::Relaxed);
            let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
            waited
        } else {
            Duration::ZERO
        };
        Ticket {
            budget: self,
            id,
            waited,
        }
    }

    /// Starts a request if the `ceiling`-th before it was answered over a second ago (its id),
    /// else says how long to wait before asking again.
    fn enter_window(&self) -> Result<u64, Duration> {
        let mut recent = self.lock_recent();
        let now = Instant::now();
        let ceiling = usize::try_from(self.settings.ceiling.max(1)).unwrap_or(usize::MAX);
        if recent.len() >= ceiling {
            let oldest = &recent[recent.len() - ceiling];
            match oldest.answered {
                Some(at) if now.duration_since(at) > WINDOW => {}
                Some(at) => return Err(WINDOW - now.duration_since(at) + Duration::from_millis(1)),
                // Still in flight: where it arrived is not known yet.
                None => return Err(Duration::from_millis(5)),
            }
        }
        let id = recent.back().map_or(0, |r| r.id + 1);
        recent.push_back(Recent { id, answered: None });
        while recent.len() > ceiling {
            recent.pop_front();
        }
        Ok(id)
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, VecDeque<Recent>> {
        // Only times are kept: a panic while holding the lock leaves nothing half done.
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a token was taken but its request not sent (see [`BudgetStats::unsent`]).
    pub fn note_unsent(&self) {
        self.unsent.fetch_add(1, Ordering::Relaxed);
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
            unsent: self.unsent.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            wait_time: Duration::from_nanos(self.wait_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// The one-second window the ceiling holds in.
const WINDOW: Duration = Duration::from_secs(1);

/// One of a budget's recent requests.
#[derive(Debug)]
struct Recent {
    id: u64,
    /// When its answer (or failure) came; `None` while in flight.
    answered: Option<Instant>,
}

/// A request's place in its budget's window: hold it until the answer is in; dropping it
/// marks the request answered.
#[derive(Debug)]
pub struct Ticket<'a> {
    budget: &'a Budget,
    id: u64,
    waited: Duration,
}

impl Ticket<'_> {
    /// How long the request waited for its token and its place.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut recent = self.budget.lock_recent();
        if let Some(r) = recent.iter_mut().find(|r| r.id == self.id) {
            r.answered.get_or_insert_with(Instant::now);
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
        assert_eq!(BudgetSettings::new(8, 2).unwrap().max_per_second(), 10);
        assert!(BudgetSettings::new(8, 4).is_err());
        assert!(BudgetSettings::new(0, 1).is_err());
        assert!(BudgetSettings::new(11, 0).is_err());
        // Every DEALFLOW_CRM_RPS from 1 to 10 is a budget that never passes 10 in a second.
        for rps in 1..=10 {
            let settings = BudgetSettings::with_rps(rps).unwrap();
            let peak = settings.max_per_second();
            assert!(
                peak <= (rps + 1).min(10) && peak >= rps,
                "{rps}/s peaks at {peak}"
            );
        }
        // Beside a separate ingest, the enricher and the connect checks share the ten.
        let checks = BudgetSettings::connect_checks().max_per_second();
        assert_eq!(checks, 1);
        for rps in 1..=10 {
            let enricher = BudgetSettings::enricher_beside_ingest(rps).unwrap();
            assert!(enricher.max_per_second() + checks <= 10, "{rps}/s");
        }
        assert_eq!(
            BudgetSettings::enricher_beside_ingest(8).unwrap(),
            BudgetSettings::with_rps(8)
                .unwrap()
                .with_ceiling_for_test(9)
        );
    }

    impl BudgetSettings {
        fn with_ceiling_for_test(mut self, ceiling: u32) -> Self {
            self.ceiling = ceiling;
            self
        }
    }

    /// The bucket itself, on a simulated clock: at every rate from 1 to 10 per second, taking
    /// every token the moment it is there for five seconds, no closed one-second window holds
    /// more grants than the settings' peak, and that peak is at most 10.
    #[test]
    fn no_rate_grants_more_than_its_peak_in_any_second() {
        use governor::clock::FakeRelativeClock;
        for rps in 1..=10u32 {
            let settings = BudgetSettings::with_rps(rps).unwrap();
            let clock = FakeRelativeClock::default();
            let limiter = RateLimiter::direct_with_clock(settings.quota(), clock.clone());
            let mut grants: Vec<u64> = Vec::new();
            for step in 0..5_000u64 {
                while limiter.check().is_ok() {
                    grants.push(step);
                }
                clock.advance(Duration::from_millis(1));
            }
            let worst = (0..grants.len())
                .map(|i| {
                    grants[i..]
                        .iter()
                        .take_while(|t| **t - grants[i] <= 1_000)
                        .count()
                })
                .max()
                .unwrap();
            assert!(
                worst as u32 <= settings.max_per_second(),
                "{rps}/s: {worst}"
            );
            assert!(worst <= 10, "{rps}/s: {worst} in one second");
            assert!(
                grants.len() as u32 >= rps * 5 - 1,
                "{rps}/s: only {} grants",
                grants.len()
            );
        }
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

    /// A request delayed between its token and RetailCRM (here: never answered until told)
    /// holds back the request `ceiling` after it until a second after its answer, however
    /// many tokens the bucket has by then.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ceiling_holds_from_answers_not_tokens() {
        let budgets = Budgets::new(BudgetSettings::within(3, 1, 3).unwrap());
        let budget = budgets.for_account("x");
        let slow = budget.acquire().await;
        drop(budget.acquire().await);
        drop(budget.acquire().await);
        let fourth = tokio::time::timeout(Duration::from_millis(1_500), budget.acquire()).await;
        assert!(
            fourth.is_err(),
            "the fourth started while the first was in flight"
        );
        let answered = Instant::now();
        drop(slow);
        let fourth = budget.acquire().await;
        assert!(
            answered.elapsed() >= Duration::from_secs(1),
            "{:?}",
            answered.elapsed()
        );
        assert!(fourth.waited() > Duration::ZERO);
    }

    #[tokio::test]
    async fn a_second_token_waits_for_the_period() {
        let budgets = Budgets::new(BudgetSettings::new(5, 1).unwrap());
        let budget = budgets.for_account("x");
        assert_eq!(budget.acquire().await.waited(), Duration::ZERO);
        let waited = budget.acquire().await.waited();
        // 5/s → one token every 200 ms.
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        let stats = budget.stats();
        assert_eq!((stats.acquired, stats.waited), (2, 1));
    }
}
