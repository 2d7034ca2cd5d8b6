//! Test controls over HTTP under `/_sim/...` on every account port. **Test-only**: no API
//! key is needed, so never expose a simulator beyond the test machine. Errors are
//! `{"error": {"code", "message"}}` like dealflow's own API.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /_sim` | | account info incl. keys |
//! | `GET /_sim/truth` | | every order with `deleted`/`merged_into` markers |
//! | `GET /_sim/counters`, `POST /_sim/counters/reset` | | counters |
//! | `POST /_sim/orders` | `NewOrder` | `201 {"id"}` |
//! | `POST /_sim/orders/{id}/status` | `{"status"}`, or `{"statuses": [...]}` in one second | `{"changed"}` |
//! | `POST /_sim/orders/{id}/edit` | `OrderEdit` (`"unrecorded": true`: no history record) | `{"history_entries"}` |
//! | `POST /_sim/orders/{id}/garble` | `{"on"}` | `{}`: while on, the API renders the order unreadably |
//! | `POST /_sim/orders/{id}/delete` | | `{}` |
//! | `POST /_sim/orders/merge` | `{"from", "into"}` | `{}` |
//! | `POST /_sim/keys` | `KeyAccess` | `201 {"index", "key"}` |
//! | `PUT /_sim/keys/{i}` | `KeyAccess` | `{}` |
//! | `POST /_sim/keys/{i}/revoke`, `.../restore` | | `{}` |
//! | `GET/POST/DELETE /_sim/faults`, `DELETE /_sim/faults/{id}` | `FaultRule` | `{"id"}` / list |
//! | `PUT /_sim/rate-limit` | `{"per_second"}` | `{}` |
//! | `PUT /_sim/account` | `{"exists"}` | `{}` |
//!
//! Status, edit and delete take `?source=user|api|code` and `&user_id=N` to choose who made
//! the change (default: the order's manager in the UI).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::Account;
use crate::config::KeyAccess;
use crate::data::NewOrder;
use crate::error::SimError;
use crate::faults::FaultRule;
use crate::history::Actor;
use crate::orders::OrderEdit;

type Shared = State<Arc<Account>>;

/// The `/_sim` routes (nested by `routes::router`).
pub fn router() -> Router<Arc<Account>> {
    Router::new()
        .route("/", get(info))
        .route("/truth", get(truth))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/orders", post(create_order))
        .route("/orders/merge", post(merge_orders))
        .route("/orders/{id}/status", post(set_status))
        .route("/orders/{id}/edit", post(edit_order))
        .route("/orders/{id}/delete", post(delete_order))
        .route("/orders/{id}/garble", post(garble_order))
        .route("/keys", post(add_key))
        .route("/keys/{i}", put(set_key))
        .route("/keys/{i}/revoke", post(revoke_key))
        .route("/keys/{i}/restore", post(restore_key))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", delete(remove_fault))
        .route("/rate-limit", put(set_rate_limit))
        .route("/account", put(set_exists))
}

/// A control error as `{"error": {"code", "message"}}`.
#[derive(Debug)]
enum ControlError {
    Sim(SimError),
    Body(String),
}

impl From<SimError> for ControlError {
    fn from(e: SimError) -> Self {
        ControlError::Sim(e)
    }
}

impl From<JsonRejection> for ControlError {
    fn from(e: JsonRejection) -> Self {
        ControlError::Body(e.body_text())
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ControlError::Sim(e) => {
                let status = match e {
                    SimError::Invalid(_) => StatusCode::BAD_REQUEST,
                    SimError::OrderRemoved(_) => StatusCode::CONFLICT,
                    _ => StatusCode::NOT_FOUND,
                };
                (status, e.code(), e.to_string())
            }
            ControlError::Body(message) => (StatusCode::BAD_REQUEST, "invalid_body", message),
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}

type Answer = Result<Response, ControlError>;

fn ok(body: Value) -> Answer {
    Ok(Json(body).into_response())
}

fn created(body: Value) -> Answer {
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `?source=user|api|code&user_id=N`.
#[derive(Debug, Deserialize)]
struct ActorQuery {
    source: Option<String>,
    user_id: Option<u64>,
}

impl ActorQuery {
    fn actor(&self) -> Result<Option<Actor>, ControlError> {
        match (self.source.as_deref(), self.user_id) {
            (None, None) => Ok(None),
            (None | Some("user"), Some(id)) => Ok(Some(Actor::User(id))),
            (Some("api"), _) => Ok(Some(Actor::Api)),
            (Some("code"), _) => Ok(Some(Actor::Code)),
            (Some("user"), None) => {
                Err(SimError::Invalid("source=user needs user_id".into()).into())
            }
            (Some(other), _) => Err(SimError::Invalid(format!("unknown source {other:?}")).into()),
        }
    }
}

async fn info(State(a): Shared) -> Answer {
    let keys: Vec<Value> = a
        .keys()
        .iter()
        .enumerate()
        .map(|(i, k)| {
            json!({
                "index": i, "key": k.key, "revoked": k.revoked, "scopes": k.access.scopes,
                "credentials": k.credentials(), "site_access": k.access.site_access,
                "sites_available": k.access.sites_available,
            })
        })
        .collect();
    let store = a.store();
    ok(json!({
        "index": a.index(),
        "timezone": store.clock.timezone().name(),
        "currency": store.currency,
        "rate_limit": a.rate_limit(),
        "exists": a.exists(),
        "keys": keys,
    }))
}

async fn truth(State(a): Shared) -> Answer {
    ok(a.truth())
}

async fn counters(State(a): Shared) -> Answer {
    ok(json!(a.counters()))
}

async fn reset_counters(State(a): Shared) -> Answer {
    a.reset_counters();
    ok(json!({}))
}

async fn create_order(State(a): Shared, body: Result<Json<NewOrder>, JsonRejection>) -> Answer {
    let Json(new) = body?;
    created(json!({ "id": a.create_order(&new)? }))
}

/// `{"status"}` for one change, or `{"statuses": [...]}` for several within one second.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, untagged)]
enum StatusBody {
    One { status: String },
    Several { statuses: Vec<String> },
}

async fn set_status(
    State(a): Shared,
    Path(id): Path<u64>,
    Query(q): Query<ActorQuery>,
    body: Result<Json<StatusBody>, JsonRejection>,
) -> Answer {
    let Json(body) = body?;
    match body {
        StatusBody::One { status } => {
            ok(json!({ "changed": a.set_status(id, &status, q.actor()?)? }))
        }
        StatusBody::Several { statuses } => {
            let codes: Vec<&str> = statuses.iter().map(String::as_str).collect();
            ok(json!({ "changed": a.set_statuses(id, &codes, q.actor()?)? }))
        }
    }
}

async fn edit_order(
    State(a): Shared,
    Path(id): Path<u64>,
    Query(q): Query<ActorQuery>,
    body: Result<Json<OrderEdit>, JsonRejection>,
) -> Answer {
    let Json(edit) = body?;
    ok(json!({ "history_entries": a.edit_order(id, &edit, q.actor()?)? }))
}

async fn delete_order(
    State(a): Shared,
    Path(id): Path<u64>,
    Query(q): Query<ActorQuery>,
) -> Answer {
    a.delete_order(id, q.actor()?)?;
    ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GarbleBody {
    on: bool,
}

async fn garble_order(
    State(a): Shared,
    Path(id): Path<u64>,
    body: Result<Json<GarbleBody>, JsonRejection>,
) -> Answer {
    let Json(GarbleBody { on }) = body?;
    a.garble(id, on)?;
    ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    from: u64,
    into: u64,
}

async fn merge_orders(State(a): Shared, body: Result<Json<MergeBody>, JsonRejection>) -> Answer {
    let Json(m) = body?;
    a.merge_orders(m.from, m.into)?;
    ok(json!({}))
}

async fn add_key(State(a): Shared, body: Result<Json<KeyAccess>, JsonRejection>) -> Answer {
    let Json(access) = body?;
    let (index, key) = a.add_key(access);
    created(json!({ "index": index, "key": key }))
}

async fn set_key(
    State(a): Shared,
    Path(i): Path<usize>,
    body: Result<Json<KeyAccess>, JsonRejection>,
) -> Answer {
    let Json(access) = body?;
    a.set_key_access(i, access)?;
    ok(json!({}))
}

async fn revoke_key(State(a): Shared, Path(i): Path<usize>) -> Answer {
    a.revoke_key(i)?;
    ok(json!({}))
}

async fn restore_key(State(a): Shared, Path(i): Path<usize>) -> Answer {
    a.restore_key(i)?;
    ok(json!({}))
}

async fn list_faults(State(a): Shared) -> Answer {
    let rules: Vec<Value> = a
        .faults()
        .into_iter()
        .map(|(id, rule)| json!({ "id": id, "rule": rule }))
        .collect();
    ok(json!(rules))
}

async fn add_fault(State(a): Shared, body: Result<Json<FaultRule>, JsonRejection>) -> Answer {
    let Json(rule) = body?;
    created(json!({ "id": a.add_fault(rule) }))
}

async fn clear_faults(State(a): Shared) -> Answer {
    a.clear_faults();
    ok(json!({}))
}

async fn remove_fault(State(a): Shared, Path(id): Path<u64>) -> Answer {
    ok(json!({ "removed": a.remove_fault(id) }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitBody {
    per_second: u32,
}

async fn set_rate_limit(
    State(a): Shared,
    body: Result<Json<RateLimitBody>, JsonRejection>,
) -> Answer {
    let Json(b) = body?;
    a.set_rate_limit(b.per_second);
    ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExistsBody {
    exists: bool,
}

async fn set_exists(State(a): Shared, body: Result<Json<ExistsBody>, JsonRejection>) -> Answer {
    let Json(b) = body?;
    a.set_exists(b.exists);
    ok(json!({}))
}
