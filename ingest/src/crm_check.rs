//! Checking a RetailCRM key at connect time, through the shared client and its budget.
//!
//! Every call counts against the account's budget like any other (DESIGN §7.4). The user gets
//! the precise reason when the key is not usable: `crm_auth_failed`, `crm_insufficient_access`
//! naming what to enable, `invalid_crm_url` when no RetailCRM account answers, or
//! `crm_unreachable` when the account does not answer at all.

use axum::http::StatusCode;
use dealflow_shared::http::ApiError;
use dealflow_shared::retailcrm::{HistoryFilter, RetailCrmClient, RetailCrmError};
use secrecy::SecretString;
use url::Url;

use crate::access;
use crate::state::AppState;

/// What a successful check learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    /// The account's latest `orders/history` id: reconciliation starts after it.
    pub latest_history_id: Option<u64>,
}

/// Checks that `api_key` opens the account at `url` with enough access for dealflow.
#[tracing::instrument(skip_all, fields(crm = %url), err(Display))]
pub async fn check_key(
    state: &AppState,
    url: &Url,
    api_key: &SecretString,
) -> Result<KeyCheck, ApiError> {
    let client = RetailCrmClient::new(url, api_key.clone(), &state.budgets, &state.client_options)
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_crm_url",
                e.to_string(),
            )
        })?;
    let credentials = client.credentials().await.map_err(|e| crm_error(url, e))?;
    let shops = if credentials.has_full_site_access() {
        None
    } else {
        // A selective key may not list the shops; then the message says what it is limited to.
        client
            .sites()
            .await
            .ok()
            .map(|sites| sites.into_keys().collect::<Vec<_>>())
    };
    let missing = access::check(&credentials, shops.as_deref());
    if !missing.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "crm_insufficient_access",
            missing.message(),
        ));
    }
    let latest_history_id = latest_history_id(&client)
        .await
        .map_err(|e| crm_error(url, e))?;
    Ok(KeyCheck { latest_history_id })
}

/// The newest `orders/history` record id: the last record of the last page. `page` is allowed
/// here because no `sinceId` is sent.
async fn latest_history_id(client: &RetailCrmClient) -> Result<Option<u64>, RetailCrmError> {
    let first = client.orders_history(&HistoryFilter::default()).await?;
    let last_page = first
        .pagination
        .as_ref()
        .map(|p| p.total_page_count)
        .unwrap_or(1);
    let page = if last_page > 1 {
        client
            .orders_history(&HistoryFilter {
                page: Some(last_page),
                ..HistoryFilter::default()
            })
            .await?
    } else {
        first
    };
    Ok(page.last_id().and_then(|id| u64::try_from(id).ok()))
}

/// A RetailCRM failure at connect time, in the user's terms.
fn crm_error(url: &Url, error: RetailCrmError) -> ApiError {
    let unprocessable =
        |code, message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
    match error {
        RetailCrmError::AuthFailed { .. } => unprocessable(
            "crm_auth_failed",
            "RetailCRM refused the API key. Copy it again from Settings → Integration → API access keys.".into(),
        ),
        RetailCrmError::AccessDenied { endpoint, .. } => unprocessable(
            "crm_insufficient_access",
            format!("The API key may not call {endpoint}; allow this method for the key."),
        ),
        RetailCrmError::AccountNotFound { .. } | RetailCrmError::NotFound { .. } => unprocessable(
            "invalid_crm_url",
            format!("No RetailCRM account answers at {url}; check the account address."),
        ),
        RetailCrmError::InvalidResponse { .. } | RetailCrmError::BadRequest { .. } => unprocessable(
            "invalid_crm_url",
            format!("{url} did not answer like a RetailCRM account; check the account address."),
        ),
        other => {
            tracing::warn!(error = %other, "RetailCRM unreachable at connect time");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "crm_unreachable",
                format!("RetailCRM at {url} did not answer; try again in a minute."),
            )
        }
    }
}
