//! The simulated API: one entry point per account that counts the request, applies the rate
//! limit and injected faults, checks the key and dispatches to the method handlers.

pub mod api;
pub mod endpoint;
pub mod errors;
pub mod history;
pub mod orders;
pub mod params;
pub mod people;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use self::endpoint::{Endpoint, Route};
use self::errors::{
    ApiError, account_missing, html_response, json_response, non_api_page, status_response,
};
use self::params::Params;
use crate::accounts::Account;
use crate::auth::{ApiKey, AuthError, authorize, presented_key};
use crate::faults::FaultAction;

/// How long a "hang" fault holds a request when nobody gives up first.
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// The router of one account: the API everywhere, the controls under `/_sim`.
pub fn router(account: Arc<Account>) -> Router {
    Router::new()
        .nest("/_sim", crate::controls::router())
        .fallback(entry)
        .with_state(account)
}

async fn entry(
    State(account): State<Arc<Account>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let route = Route::parse(uri.path());
    let response = if account.traffic.arrive(route.label(), account.rate_limit()) {
        serve(&account, &method, &uri, &headers, route).await
    } else {
        status_response(503, account.rate_limit_body())
    };
    account.traffic.responded(response.status().as_u16());
    response
}

async fn serve(
    account: &Account,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    route: Route,
) -> Response {
    let decision = account.decide_faults(uri.path());
    if decision.hit() {
        account.traffic.fault();
    }
    if !decision.latency.is_zero() {
        tokio::select! {
            () = account.shutdown.cancelled() => return html_response(StatusCode::SERVICE_UNAVAILABLE, "503 Service Temporarily Unavailable"),
            () = tokio::time::sleep(decision.latency) => {}
        }
    }
    match decision.outcome {
        Some(FaultAction::Status { code, body }) => return status_response(code, body),
        Some(FaultAction::Hang) => {
            tokio::select! {
                () = account.shutdown.cancelled() => {}
                () = tokio::time::sleep(HANG_LIMIT) => {}
            }
            return html_response(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out");
        }
        Some(FaultAction::Latency { .. }) | None => {}
    }
    if !account.exists() {
        return account_missing(method == Method::GET);
    }
    let endpoint = match route {
        Route::Api(e) => e,
        Route::UnknownApi => return ApiError::UnknownMethod.into_response(),
        Route::NonApi => return non_api_page(),
    };
    if method != Method::GET {
        return ApiError::MethodNotAllowed.into_response();
    }
    let params = Params::parse(uri.query());
    match answer(account, headers, &params, &endpoint) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn answer(
    account: &Account,
    headers: &HeaderMap,
    params: &Params,
    endpoint: &Endpoint,
) -> Result<Value, ApiError> {
    let keys = account.keys();
    let key = authorize(
        &keys,
        presented_key(headers, params.get("apiKey")),
        endpoint,
    )
    .map_err(|e| match e {
        AuthError::Missing => ApiError::MissingKey,
        AuthError::Wrong => ApiError::WrongKey,
        AuthError::Denied => ApiError::AccessDenied,
    })?;
    dispatch(account, key, params, endpoint)
}

fn dispatch(
    account: &Account,
    key: &ApiKey,
    params: &Params,
    endpoint: &Endpoint,
) -> Result<Value, ApiError> {
    let store = account.store();
    let ctx = Ctx {
        store: &store,
        key,
        params,
    };
    match endpoint {
        Endpoint::Credentials => Ok(api::credentials(&ctx)),
        Endpoint::ApiVersions => Ok(api::versions()),
        Endpoint::Settings => Ok(api::settings(&ctx)),
        Endpoint::Statuses => Ok(api::statuses(&ctx)),
        Endpoint::StatusGroups => Ok(api::status_groups(&ctx)),
        Endpoint::Sites => Ok(api::sites(&ctx)),
        Endpoint::OrdersList => orders::list(&ctx),
        Endpoint::OrderGet(id) => orders::get(&ctx, id),
        Endpoint::OrdersHistory => history::list(&ctx),
        Endpoint::UsersList => people::users(&ctx),
        Endpoint::UserGet(id) => people::user(&ctx, id),
        Endpoint::CustomerGet(id) => people::customer(&ctx, id),
        Endpoint::CorporateGet(id) => people::corporate(&ctx, id),
    }
}

/// What a method handler needs: the data, the caller's key and the query.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The account's data (read-locked for the request).
    pub store: &'a crate::store::Store,
    /// The authorised key.
    pub key: &'a ApiKey,
    /// The query parameters.
    pub params: &'a Params,
}

impl Ctx<'_> {
    /// Checks an explicit `site` parameter: the key must see it.
    pub fn check_site_param(&self) -> Result<Option<&str>, ApiError> {
        match self.params.get("site") {
            Some(site) if !self.key.sees_site(site) => Err(ApiError::AccessDenied),
            other => Ok(other),
        }
    }
}
