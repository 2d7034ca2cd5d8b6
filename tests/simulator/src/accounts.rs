//! One simulated account at run time: its data, keys, traffic counters, faults and switches,
//! and the control operations shared by the Rust handle and the `/_sim` HTTP controls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::auth::ApiKey;
use crate::clock::fmt_datetime;
use crate::config::{AccountConfig, ErrorBody, KeyAccess};
use crate::counters::{CountersSnapshot, Traffic};
use crate::data::orders::{build_order, spec_from_new};
use crate::data::{NewOrder, account_seed, generate};
use crate::error::SimError;
use crate::faults::{FaultRule, Faults};
use crate::history::Actor;
use crate::orders::OrderEdit;
use crate::render::order::order as render_order;
use crate::store::Store;

/// One account's state.
#[derive(Debug)]
pub struct Account {
    index: usize,
    store: RwLock<Store>,
    keys: RwLock<Vec<ApiKey>>,
    key_rng: Mutex<StdRng>,
    /// Requests, statuses and the rate-limit window.
    pub(crate) traffic: Traffic,
    faults: Mutex<Faults>,
    rate_limit: AtomicU32,
    rate_limit_body: ErrorBody,
    exists: AtomicBool,
    /// Cancelled when the simulator stops (ends hanging requests).
    pub(crate) shutdown: CancellationToken,
}

// Locks are never held across a panic that matters to tests; a poisoned lock is taken over.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Account {
    /// Generates account `index` of a run with `seed`.
    pub(crate) fn new(
        index: usize,
        cfg: &AccountConfig,
        seed: u64,
        started: DateTime<Utc>,
        shutdown: CancellationToken,
    ) -> Self {
        let store = generate(cfg, seed, index, started);
        let mut key_rng = StdRng::seed_from_u64(account_seed(seed, index) ^ 0x6B65_7973);
        let configured = if cfg.keys.is_empty() {
            vec![KeyAccess::default()]
        } else {
            cfg.keys.clone()
        };
        let keys = configured
            .into_iter()
            .map(|access| new_key(&mut key_rng, access))
            .collect();
        Self {
            index,
            store: RwLock::new(store),
            keys: RwLock::new(keys),
            key_rng: Mutex::new(key_rng),
            traffic: Traffic::default(),
            faults: Mutex::new(Faults::new(account_seed(seed, index) ^ 0x6661_756C)),
            rate_limit: AtomicU32::new(cfg.rate_limit),
            rate_limit_body: cfg.rate_limit_body,
            exists: AtomicBool::new(true),
            shutdown,
        }
    }

    /// Position of the account in the configuration.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Read access to the data for the server (a guard; never hold it across an `.await`).
    pub(crate) fn store(&self) -> RwLockReadGuard<'_, Store> {
        read(&self.store)
    }

    /// Runs `f` on the account's data under its read lock. A closure rather than a guard, so
    /// that a caller cannot keep the lock while calling a control (which would deadlock).
    pub fn inspect<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.store())
    }

    fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        write(&self.store)
    }

    /// The keys (for authorisation).
    pub(crate) fn keys(&self) -> RwLockReadGuard<'_, Vec<ApiKey>> {
        read(&self.keys)
    }

    /// Key `i` (its secret).
    pub fn key(&self, i: usize) -> Result<String, SimError> {
        self.keys()
            .get(i)
            .map(|k| k.key.clone())
            .ok_or(SimError::UnknownKey(i))
    }

    /// Requests per second allowed (0 = unlimited).
    pub fn rate_limit(&self) -> u32 {
        self.rate_limit.load(Ordering::Relaxed)
    }

    /// Body of the rate limiter's 503.
    pub fn rate_limit_body(&self) -> ErrorBody {
        self.rate_limit_body
    }

    /// Changes the rate limit.
    pub fn set_rate_limit(&self, per_second: u32) {
        self.rate_limit.store(per_second, Ordering::Relaxed);
    }

    /// Whether the host still answers as an account.
    pub fn exists(&self) -> bool {
        self.exists.load(Ordering::Relaxed)
    }

    /// Makes the host answer `Account does not exist` (or restores it).
    pub fn set_exists(&self, exists: bool) {
        self.exists.store(exists, Ordering::Relaxed);
    }

    /// Decides injected faults for a request to `path`.
    pub(crate) fn decide_faults(&self, path: &str) -> crate::faults::Decision {
        lock(&self.faults).decide(path)
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        lock(&self.faults).add(rule)
    }

    /// Removes one fault rule.
    pub fn remove_fault(&self, id: u64) -> bool {
        lock(&self.faults).remove(id)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<(u64, FaultRule)> {
        lock(&self.faults).list()
    }

    /// A copy of the counters.
    pub fn counters(&self) -> CountersSnapshot {
        self.traffic.snapshot()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        self.traffic.reset();
    }

    /// Changes an order's status (as its manager in the UI unless `actor` says otherwise).
    pub fn set_status(&self, id: u64, code: &str, actor: Option<Actor>) -> Result<bool, SimError> {
        let mut store = self.store_mut();
        let actor = actor.unwrap_or_else(|| default_actor(&store, id));
        let now = store.clock.now();
        store.set_status(id, code, actor, now)
    }

    /// Moves an order through `codes` one after the other within the same second, as an
    /// automation rule does: one history record each, all with the same `createdAt`, in
    /// order of their ids. Returns how many changed the status (a code equal to the current
    /// status writes nothing). Every code is checked before anything changes.
    pub fn set_statuses(
        &self,
        id: u64,
        codes: &[&str],
        actor: Option<Actor>,
    ) -> Result<usize, SimError> {
        let mut store = self.store_mut();
        if let Some(unknown) = codes.iter().find(|c| store.status(c).is_none()) {
            return Err(SimError::UnknownStatus((*unknown).to_owned()));
        }
        let actor = actor.unwrap_or_else(|| default_actor(&store, id));
        let now = store.clock.now();
        let mut changed = 0;
        for code in codes {
            changed += usize::from(store.set_status(id, code, actor, now)?);
        }
        Ok(changed)
    }

    /// Creates an order (as the shop through the API); returns its id.
    pub fn create_order(&self, new: &NewOrder) -> Result<u64, SimError> {
        let mut store = self.store_mut();
        let now = store.clock.now();
        let spec = spec_from_new(&mut store, new, now)?;
        let order = build_order(&mut store, &spec)?;
        Ok(store.insert_order(order, Actor::Api, now))
    }

    /// Edits amounts, manager or contact data; returns the number of history entries written.
    pub fn edit_order(
        &self,
        id: u64,
        edit: &OrderEdit,
        actor: Option<Actor>,
    ) -> Result<usize, SimError> {
        let mut store = self.store_mut();
        let actor = actor.unwrap_or_else(|| default_actor(&store, id));
        let now = store.clock.now();
        store.edit_order(id, edit, actor, now)
    }

    /// Renders order `id` unreadably in the API (`on`), or as it is again.
    pub fn garble(&self, id: u64, on: bool) -> Result<(), SimError> {
        let mut store = self.store_mut();
        store.check_live(id)?;
        if on {
            store.garbled.insert(id);
        } else {
            store.garbled.remove(&id);
        }
        Ok(())
    }

    /// Deletes an order.
    pub fn delete_order(&self, id: u64, actor: Option<Actor>) -> Result<(), SimError> {
        let mut store = self.store_mut();
        let actor = actor.unwrap_or_else(|| default_actor(&store, id));
        let now = store.clock.now();
        store.delete_order(id, actor, now)
    }

    /// Merges order `from` into `into`.
    pub fn merge_orders(&self, from: u64, into: u64) -> Result<(), SimError> {
        let mut store = self.store_mut();
        let now = store.clock.now();
        store.merge_orders(from, into, now)
    }

    /// Revokes key `i` (it answers `Wrong "apiKey" value`).
    pub fn revoke_key(&self, i: usize) -> Result<(), SimError> {
        self.with_key(i, |k| k.revoked = true)
    }

    /// Restores a revoked key.
    pub fn restore_key(&self, i: usize) -> Result<(), SimError> {
        self.with_key(i, |k| k.revoked = false)
    }

    /// Replaces what key `i` may do (its secret stays unless `access.key` sets a new one).
    pub fn set_key_access(&self, i: usize, access: KeyAccess) -> Result<(), SimError> {
        self.with_key(i, |k| {
            if let Some(secret) = &access.key {
                k.key.clone_from(secret);
            }
            k.access = KeyAccess {
                key: None,
                ..access
            };
        })
    }

    /// Adds a key; returns its index and secret.
    pub fn add_key(&self, access: KeyAccess) -> (usize, String) {
        let key = new_key(&mut lock(&self.key_rng), access);
        let secret = key.key.clone();
        let mut keys = write(&self.keys);
        keys.push(key);
        (keys.len() - 1, secret)
    }

    fn with_key(&self, i: usize, f: impl FnOnce(&mut ApiKey)) -> Result<(), SimError> {
        let mut keys = write(&self.keys);
        let key = keys.get_mut(i).ok_or(SimError::UnknownKey(i))?;
        f(key);
        Ok(())
    }

    /// Every order (deleted and merged ones included, with markers) as JSON, for assertions,
    /// with `stages`: its status records as the history holds them (`code`, account-local
    /// `at`, `history_id`), ascending by id.
    pub fn truth(&self) -> Value {
        let store = self.store();
        let stats = store.stats();
        let mut stages: HashMap<u64, Vec<Value>> = HashMap::new();
        for entry in store.history.entries() {
            if entry.field == "status"
                && !entry.deleted
                && let Some(code) = entry.new_value.get("code")
            {
                stages.entry(entry.order.id()).or_default().push(json!({
                    "code": code,
                    "at": fmt_datetime(entry.created_at),
                    "history_id": entry.id,
                }));
            }
        }
        let orders: Vec<Value> = store
            .orders
            .values()
            .map(|o| {
                json!({
                    "id": o.id,
                    "deleted": o.removal.is_some(),
                    "merged_into": o.removal.and_then(|r| r.merged_into),
                    "removed_at": o.removal.map(|r| fmt_datetime(r.at)),
                    "stages": stages.remove(&o.id).unwrap_or_default(),
                    "order": render_order(&store, &stats, o),
                })
            })
            .collect();
        json!({
            "timezone": store.clock.timezone().name(),
            "currency": store.currency,
            "sites": store.sites.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(),
            "last_history_id": store.history.last_id(),
            "deleted_user_ids": store.deleted_user_ids,
            "orders": orders,
        })
    }
}

/// The order's manager in the UI, else the system.
fn default_actor(store: &Store, id: u64) -> Actor {
    store
        .orders
        .get(&id)
        .and_then(|o| o.manager_id)
        .map_or(Actor::Code, Actor::User)
}

fn new_key(rng: &mut StdRng, access: KeyAccess) -> ApiKey {
    let key = access
        .key
        .clone()
        .unwrap_or_else(|| Alphanumeric.sample_string(rng, 32));
    ApiKey {
        key,
        access: KeyAccess {
            key: None,
            ..access
        },
        revoked: false,
    }
}
