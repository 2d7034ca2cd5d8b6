//! Every tenant and token, rebuilt from the compacted `tenants` topic, and the question every
//! request asks of it: which tenant does this bearer token act for?
//!
//! Like the integrations registry, each process (ingest, projector, the all-in-one) reads the
//! topic to its end at start and then follows it, so a token issued through one process works
//! on the others as soon as they read it, and a revocation is refused everywhere within the
//! time it takes to read one record (well inside DESIGN's 5 s). ingest applies its own writes
//! locally once the bus acknowledges them (read your writes); a record arriving again later
//! changes nothing. Another process asked for a token it does not know yet reads the topic up
//! to its end first ([`TenantRegistry::catch_up`]), so a token works everywhere in the request
//! right after the one that issued it (DESIGN §4, read your writes).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::events::{TenantConfigured, TenantEvent, TenantId, TenantRecord, TenantTokenIssued};
use crate::bus::{BusError, EventBus};
use crate::follow::{CaughtUp, Followed, follow_records};
use crate::secrets::SecretKeys;

/// A token as the registry keeps it: what was issued, and what happened to it since.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenState {
    pub issued: TenantTokenIssued,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Why a presented tenant token acts for nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No such token (never issued here, or mistyped).
    Unknown,
    /// It was revoked.
    Revoked,
    /// Its tenant was removed.
    TenantRemoved,
}

#[derive(Debug, Default)]
struct State {
    tenants: HashMap<TenantId, TenantConfigured>,
    removed: HashMap<TenantId, DateTime<Utc>>,
    tokens: HashMap<Uuid, TokenState>,
    by_hash: HashMap<String, Uuid>,
    /// Use marks read before their token's issue record (the topic's order across keys is
    /// not guaranteed on Kafka).
    early_use: HashMap<Uuid, DateTime<Utc>>,
}

pub use crate::follow::CATCH_UP_WITHIN;

/// Tenants and tokens (cheap to clone; clones share the state).
#[derive(Clone)]
pub struct TenantRegistry {
    state: Arc<RwLock<State>>,
    keys: Arc<SecretKeys>,
    ready: CaughtUp,
    /// How far the tenants topic is applied (for [`TenantRegistry::catch_up`]).
    followed: Followed,
}

impl std::fmt::Debug for TenantRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantRegistry(..)")
    }
}

impl TenantRegistry {
    /// An empty registry; token hashes are computed with `keys`.
    pub fn new(keys: Arc<SecretKeys>) -> Self {
        Self {
            state: Arc::default(),
            keys,
            ready: CaughtUp::default(),
            followed: Followed::default(),
        }
    }

    pub fn keys(&self) -> &SecretKeys {
        &self.keys
    }

    /// Applies one record of the `tenants` topic (or one ingest just published).
    pub fn apply(&self, record: &TenantRecord) {
        let mut state = self.state.write().expect("tenant registry lock");
        match &record.event {
            TenantEvent::TenantConfigured(tenant) => {
                if state.removed.contains_key(&tenant.tenant_id) {
                    return;
                }
                let mut tenant = tenant.clone();
                // A rename keeps the tenant's first creation time.
                if let Some(known) = state.tenants.get(&tenant.tenant_id) {
                    tenant.created_at = tenant.created_at.min(known.created_at);
                }
                state.tenants.insert(tenant.tenant_id.clone(), tenant);
            }
            TenantEvent::TenantRemoved(removed) => {
                state.tenants.remove(&removed.tenant_id);
                state
                    .removed
                    .insert(removed.tenant_id.clone(), removed.removed_at);
            }
            TenantEvent::TenantTokenIssued(issued) => {
                if state.tokens.contains_key(&issued.token_id) {
                    return;
                }
                let last_used_at = state.early_use.remove(&issued.token_id);
                state
                    .by_hash
                    .insert(issued.token_hash.clone(), issued.token_id);
                state.tokens.insert(
                    issued.token_id,
                    TokenState {
                        issued: issued.clone(),
                        revoked_at: None,
                        last_used_at,
                    },
                );
            }
            TenantEvent::TenantTokenRevoked(revoked) => {
                if let Some(token) = state.tokens.get_mut(&revoked.token_id) {
                    token.revoked_at.get_or_insert(revoked.revoked_at);
                }
            }
            TenantEvent::TenantTokenUsed(used) => match state.tokens.get_mut(&used.token_id) {
                Some(token) => {
                    token.last_used_at = token.last_used_at.max(Some(used.used_at));
                }
                None => {
                    let early = state.early_use.entry(used.token_id).or_insert(used.used_at);
                    *early = (*early).max(used.used_at);
                }
            },
        }
    }

    /// The tenant, unless unknown or removed.
    pub fn tenant(&self, id: &TenantId) -> Option<TenantConfigured> {
        let state = self.state.read().expect("tenant registry lock");
        state.tenants.get(id).cloned()
    }

    /// Whether the tenant was removed (its id is never used again).
    pub fn was_removed(&self, id: &TenantId) -> bool {
        let state = self.state.read().expect("tenant registry lock");
        state.removed.contains_key(id)
    }

    /// Every live tenant, oldest first (`default` among them once it has been recorded).
    pub fn tenants(&self) -> Vec<TenantConfigured> {
        let state = self.state.read().expect("tenant registry lock");
        let mut tenants: Vec<_> = state.tenants.values().cloned().collect();
        tenants.sort_by(|a, b| (a.created_at, &a.tenant_id).cmp(&(b.created_at, &b.tenant_id)));
        tenants
    }

    /// The tenant's tokens that are not revoked, oldest first.
    pub fn tokens(&self, tenant: &TenantId) -> Vec<TokenState> {
        let state = self.state.read().expect("tenant registry lock");
        let mut tokens: Vec<_> = state
            .tokens
            .values()
            .filter(|t| &t.issued.tenant_id == tenant && t.revoked_at.is_none())
            .cloned()
            .collect();
        tokens.sort_by_key(|t| (t.issued.created_at, t.issued.token_id));
        tokens
    }

    /// One token of the tenant, revoked or not.
    pub fn token(&self, tenant: &TenantId, token_id: Uuid) -> Option<TokenState> {
        let state = self.state.read().expect("tenant registry lock");
        state
            .tokens
            .get(&token_id)
            .filter(|t| &t.issued.tenant_id == tenant)
            .cloned()
    }

    /// Which token a presented bearer value is, by its keyed hash (under the current secret,
    /// then the one being rotated out).
    pub fn identify(&self, presented: &str) -> Result<TokenState, TokenRefusal> {
        let hashes = std::iter::once(self.keys.api_token_hash(presented))
            .chain(self.keys.previous_api_token_hash(presented));
        let state = self.state.read().expect("tenant registry lock");
        let token = hashes
            .filter_map(|hash| state.by_hash.get(&hash))
            .find_map(|id| state.tokens.get(id))
            .ok_or(TokenRefusal::Unknown)?;
        Self::usable(&state, token)
    }

    /// The token behind a pages session value ([`TenantRegistry::session_value`]), if it is
    /// still usable: a session ends when its token is revoked.
    pub fn identify_session(&self, session: &str) -> Result<TokenState, TokenRefusal> {
        let (id, _) = session
            .strip_prefix("t.")
            .and_then(|rest| rest.split_once('.'))
            .ok_or(TokenRefusal::Unknown)?;
        let id: Uuid = id.parse().map_err(|_| TokenRefusal::Unknown)?;
        let state = self.state.read().expect("tenant registry lock");
        let token = state.tokens.get(&id).ok_or(TokenRefusal::Unknown)?;
        let expected = self.session_for(&token.issued);
        let matches = expected.len() == session.len()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                session.as_bytes(),
            ));
        if !matches {
            return Err(TokenRefusal::Unknown);
        }
        Self::usable(&state, token)
    }

    /// The pages' session value for a token: its id and a keyed hash of its stored hash, so the
    /// cookie is never the token, cannot be made from what the events hold, and stops working
    /// when the token is revoked.
    pub fn session_value(&self, token: &TokenState) -> String {
        self.session_for(&token.issued)
    }

    fn session_for(&self, issued: &TenantTokenIssued) -> String {
        let mac = self
            .keys
            .api_token_hash(&format!("pages session v1:{}", issued.token_hash));
        format!("t.{}.{mac}", issued.token_id)
    }

    fn usable(state: &State, token: &TokenState) -> Result<TokenState, TokenRefusal> {
        if token.revoked_at.is_some() {
            return Err(TokenRefusal::Revoked);
        }
        if !state.tenants.contains_key(&token.issued.tenant_id)
            && !token.issued.tenant_id.is_default()
        {
            return Err(TokenRefusal::TenantRemoved);
        }
        Ok(token.clone())
    }

    /// Whether the topic has been read to its end once.
    pub fn is_ready(&self) -> bool {
        self.ready.is_ready()
    }

    /// Waits until the topic has been read to its end once.
    pub async fn wait_ready(&self) {
        self.ready.wait_ready().await;
    }

    /// Reads `topic` to its end, marks the registry ready, then follows it until `shutdown`
    /// (`group` unique per process; nothing is committed).
    pub async fn follow(
        self,
        bus: Arc<dyn EventBus>,
        topic: String,
        group: String,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        self.followed.start(bus.clone(), &topic);
        follow_records(bus, &topic, &group, &self.ready, shutdown, |record| {
            match TenantRecord::decode(&record.payload) {
                Ok(decoded) => self.apply(&decoded),
                Err(e) => tracing::error!(
                    topic = %record.topic, partition = record.partition, offset = record.offset,
                    error = %e, "unreadable record on the tenants topic, skipped"
                ),
            }
            self.followed.advance(record);
        })
        .await
    }

    /// Waits (at most [`CATCH_UP_WITHIN`]) until every record on the tenants topic right now
    /// has been applied. Asked before a token is called unknown: it may have been issued
    /// through another process a moment ago.
    pub async fn catch_up(&self) {
        self.followed.catch_up().await;
    }
}
