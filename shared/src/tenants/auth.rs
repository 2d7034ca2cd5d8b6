//! Who is asking: the bearer token (or the pages' session) of every `/api` request and page,
//! turned into a [`Scope`] the handlers filter by.
//!
//! The operator token (`DEALFLOW_API_TOKEN`) sees every tenant and manages tenants; a tenant
//! token acts inside its tenant only (DESIGN §4, §7.7). Failures are counted by reason, never by
//! token, and logged without the presented value. A tenant token's use is recorded coarsely
//! (at most once a minute per token and process) as a `TenantTokenUsed` record, so
//! `last_used_at` costs no write per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use prometheus::IntCounterVec;
use uuid::Uuid;

use super::events::{TenantEvent, TenantId, TenantRecord, TenantTokenUsed};
use super::registry::{TenantRegistry, TokenRefusal, TokenState};
use super::token::looks_like_tenant_token;
use crate::bus::{EventBus, OutRecord};
use crate::http::{ApiError, BearerAuth};
use crate::metrics::Metrics;

/// The header a pages process sends another process's API with the signed-in user's session
/// (the split deployment: the projector's pages write through ingest). A session is derived
/// from a token and ends with it, so it proves no more than the cookie it comes from; browsers
/// never add such a header to a cross-site request, so it opens no forgery path.
pub const SESSION_HEADER: &str = "x-dealflow-session";

/// How often one process records that a token was used.
pub const USE_MARK_INTERVAL: Duration = Duration::from_secs(60);

/// What a request may see and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The operator token: every tenant, and the tenants API.
    Operator,
    /// A tenant token: that tenant's integrations only.
    Tenant { tenant_id: TenantId, token_id: Uuid },
}

impl Scope {
    /// Whether this scope may see what belongs to `tenant`.
    pub fn allows(&self, tenant: &TenantId) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Tenant { tenant_id, .. } => tenant_id == tenant,
        }
    }

    /// The tenant a tenant token acts for; `None` for the operator.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Scope::Operator => None,
            Scope::Tenant { tenant_id, .. } => Some(tenant_id),
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Scope::Operator)
    }

    /// `403 forbidden` unless this is the operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Only the operator token may manage tenants.",
            ))
        }
    }
}

/// Why a request was not authenticated (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Unknown,
    Revoked,
    TenantRemoved,
}

impl AuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Unknown => "unknown_token",
            AuthFailure::Revoked => "revoked",
            AuthFailure::TenantRemoved => "tenant_removed",
        }
    }
}

impl From<TokenRefusal> for AuthFailure {
    fn from(refusal: TokenRefusal) -> Self {
        match refusal {
            TokenRefusal::Unknown => AuthFailure::Unknown,
            TokenRefusal::Revoked => AuthFailure::Revoked,
            TokenRefusal::TenantRemoved => AuthFailure::TenantRemoved,
        }
    }
}

/// Where use marks go: the bus and the `tenants` topic.
#[derive(Clone)]
struct UseMarks {
    bus: Arc<dyn EventBus>,
    topic: String,
    last: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

/// Authenticates requests against the operator token and the tenant registry.
#[derive(Clone)]
pub struct Authenticator {
    operator: BearerAuth,
    tenants: TenantRegistry,
    failures: IntCounterVec,
    uses: Option<UseMarks>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator(..)")
    }
}

impl Authenticator {
    pub fn new(operator: BearerAuth, tenants: TenantRegistry, metrics: &Metrics) -> Self {
        Self {
            operator,
            tenants,
            failures: metrics.shared_counter(
                "auth_failures_total",
                "Requests refused for their token or session, by reason (never by token).",
                &["reason"],
            ),
            uses: None,
        }
    }

    /// Records tenant tokens' use on `topic` (at most once a minute per token).
    pub fn recording_use(mut self, bus: Arc<dyn EventBus>, topic: String) -> Self {
        self.uses = Some(UseMarks {
            bus,
            topic,
            last: Arc::default(),
        });
        self
    }

    pub fn tenants(&self) -> &TenantRegistry {
        &self.tenants
    }

    /// The scope of a presented bearer token.
    pub fn authenticate(&self, presented: &str) -> Result<Scope, AuthFailure> {
        if self.operator.accepts(presented) {
            return Ok(Scope::Operator);
        }
        if !looks_like_tenant_token(presented) {
            return Err(AuthFailure::Unknown);
        }
        let token = self.tenants.identify(presented)?;
        Ok(self.tenant_scope(&token))
    }

    /// The scope of a pages session cookie ([`Authenticator::session_value`]).
    pub fn authenticate_session(&self, session: &str) -> Result<Scope, AuthFailure> {
        if self.operator.accepts_session(session) {
            return Ok(Scope::Operator);
        }
        let token = self.tenants.identify_session(session)?;
        Ok(self.tenant_scope(&token))
    }

    /// The session value for a presented token (derived, never the token itself).
    pub fn session_value(&self, presented: &str) -> Result<String, AuthFailure> {
        if self.operator.accepts(presented) {
            return Ok(self.operator.session_value());
        }
        if !looks_like_tenant_token(presented) {
            return Err(AuthFailure::Unknown);
        }
        let token = self.tenants.identify(presented)?;
        Ok(self.tenants.session_value(&token))
    }

    /// [`Authenticator::authenticate`] that reads the tenants topic to its end before calling
    /// a well-formed tenant token unknown: issued through another process a moment ago, it
    /// works in the very next request (DESIGN §4, read your writes).
    pub async fn authenticate_now(&self, presented: &str) -> Result<Scope, AuthFailure> {
        let could_be_new = looks_like_tenant_token(presented);
        self.after_catch_up(could_be_new, || self.authenticate(presented))
            .await
    }

    /// [`Authenticator::authenticate_session`], catching up like
    /// [`Authenticator::authenticate_now`].
    pub async fn authenticate_session_now(&self, session: &str) -> Result<Scope, AuthFailure> {
        let could_be_new = session.starts_with("t.");
        self.after_catch_up(could_be_new, || self.authenticate_session(session))
            .await
    }

    /// [`Authenticator::session_value`], catching up like [`Authenticator::authenticate_now`].
    pub async fn session_value_now(&self, presented: &str) -> Result<String, AuthFailure> {
        let could_be_new = looks_like_tenant_token(presented);
        self.after_catch_up(could_be_new, || self.session_value(presented))
            .await
    }

    async fn after_catch_up<T>(
        &self,
        could_be_new: bool,
        attempt: impl Fn() -> Result<T, AuthFailure>,
    ) -> Result<T, AuthFailure> {
        match attempt() {
            Err(AuthFailure::Unknown) if could_be_new => {
                self.tenants.catch_up().await;
                attempt()
            }
            other => other,
        }
    }

    /// Counts (and logs, without the token) one refused request.
    pub fn refused(&self, failure: AuthFailure) {
        self.failures.with_label_values(&[failure.reason()]).inc();
        tracing::debug!(reason = failure.reason(), "request refused: bad token");
    }

    fn tenant_scope(&self, token: &TokenState) -> Scope {
        self.note_use(token);
        Scope::Tenant {
            tenant_id: token.issued.tenant_id.clone(),
            token_id: token.issued.token_id,
        }
    }

    fn note_use(&self, token: &TokenState) {
        let Some(uses) = &self.uses else { return };
        let id = token.issued.token_id;
        {
            let mut last = uses.last.lock().expect("use marks lock");
            let now = Instant::now();
            if last
                .get(&id)
                .is_some_and(|at| now.duration_since(*at) < USE_MARK_INTERVAL)
            {
                return;
            }
            last.insert(id, now);
        }
        let record = TenantRecord::new(TenantEvent::TenantTokenUsed(TenantTokenUsed {
            token_id: id,
            tenant_id: token.issued.tenant_id.clone(),
            used_at: Utc::now(),
        }));
        self.tenants.apply(&record);
        let (bus, topic) = (uses.bus.clone(), uses.topic.clone());
        // The mark is best effort: a request never waits for it, and a lost one only makes
        // `last_used_at` a minute older.
        tokio::spawn(async move {
            let out = OutRecord::new(record.key(), record.encode());
            if let Err(e) = bus.publish(&topic, vec![out]).await {
                tracing::warn!(error = %e, "could not record a token's use");
            }
        });
    }

    /// axum middleware: `401 unauthorized` unless the bearer token is the operator's or a live
    /// tenant token (or [`SESSION_HEADER`] a live pages session); puts the request's [`Scope`]
    /// in its extensions.
    ///
    /// A request that already carries a [`Scope`] (set by server code, such as the pages
    /// calling the API in-process for a signed-in user) passes as it is: clients cannot set
    /// request extensions.
    pub async fn require(
        State(auth): State<Authenticator>,
        mut request: Request,
        next: Next,
    ) -> Response {
        if request.extensions().get::<Scope>().is_some() {
            return next.run(request).await;
        }
        let session = request
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok());
        let outcome = match (BearerAuth::presented(request.headers()), session) {
            (Some(token), _) => auth.authenticate_now(token).await,
            (None, Some(session)) => auth.authenticate_session_now(session).await,
            (None, None) => Err(AuthFailure::Missing),
        };
        match outcome {
            Ok(scope) => {
                request.extensions_mut().insert(scope);
                next.run(request).await
            }
            Err(failure) => {
                auth.refused(failure);
                let message = match failure {
                    AuthFailure::Missing => {
                        "Send the API token as 'Authorization: Bearer <token>'."
                    }
                    AuthFailure::Revoked => "This token was revoked.",
                    _ => "The bearer token is not valid.",
                };
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
            }
        }
    }
}
