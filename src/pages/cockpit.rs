//! The operator's pages (issue 19): one deal with every field, its lines, stage timeline and
//! trace, and a re-fetch button; and the integration page's forms for a re-sync, a new API
//! key, dead-letter retries and deleting the integration. Writes go through the API
//! ([`Writes`](super::api::Writes)), like every page write.

use askama::Template;
use axum::Form;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use dealflow_projector::read::cockpit::TraceItem;
use dealflow_projector::read::deals::DealView;
use dealflow_shared::tenants::Scope;
use serde::Deserialize;
use serde_json::json;

use super::PagesState;
use super::api::Caller;
use super::handlers::{PageForm, Problems, after_write, integration_page, render, write_from_page};
use super::views::{Clock, IntegrationView, TZ_COOKIE, money};

#[derive(Template)]
#[template(path = "deal.html")]
struct DealPage {
    i: IntegrationView,
    /// The viewer's timezone.
    clock: Clock,
    order_id: u64,
    /// `None`: dealflow has no deal for this order (never fetched, or it failed).
    deal: Option<DealView>,
    trace: Vec<TraceItem>,
    /// What a refused re-fetch said.
    error: Option<String>,
}

impl DealPage {
    /// Where the timezone picker returns to.
    fn back(&self) -> String {
        format!("/integrations/{}/deals/{}", self.i.id, self.order_id)
    }

    fn money(&self, amount: &str) -> String {
        money(
            amount,
            self.deal.as_ref().and_then(|d| d.currency.as_deref()),
        )
    }

    fn opt_money(&self, amount: &Option<String>) -> String {
        amount
            .as_deref()
            .map_or_else(|| "—".to_owned(), |a| self.money(a))
    }

    fn custom_fields(&self) -> Vec<(String, String)> {
        let Some(fields) = self.deal.as_ref().and_then(|d| d.custom_fields.as_object()) else {
            return Vec::new();
        };
        fields
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
async fn deal_page(
    state: &PagesState,
    clock: Clock,
    scope: &Scope,
    id: &str,
    order_id: &str,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let i = match state.reads.integration(scope, id).await {
        Ok(i) => IntegrationView(i),
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            return (
                StatusCode::NOT_FOUND,
                Html("There is no integration with this id. <a href=\"/\">Back</a>"),
            )
                .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let trace = match state.reads.trace(scope, id, order_id, None).await {
        Ok(trace) => trace,
        Err(e) => return e.into_response(),
    };
    let deal = match state.reads.deal(scope, id, order_id, None).await {
        Ok(deal) => Some(deal),
        Err(e) if e.status == StatusCode::NOT_FOUND => None,
        Err(e) => return e.into_response(),
    };
    let page = DealPage {
        i,
        clock,
        order_id: order_id.parse().unwrap_or_default(),
        deal,
        trace,
        error,
    };
    (status, render(&page)).into_response()
}

/// `GET /integrations/{id}/deals/{order_id}`: also for an order that has no deal (yet), so
/// its trace tells why and the re-fetch button can bring it.
pub async fn deal(
    State(state): State<PagesState>,
    Extension(scope): Extension<Scope>,
    Path((id, order_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let clock = Clock::of(&headers);
    deal_page(&state, clock, &scope, &id, &order_id, StatusCode::OK, None).await
}

/// `POST /integrations/{id}/deals/{order_id}/refetch`: the deal page again, its trace showing
/// the request (the API answers once the read side has it).
pub async fn refetch(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path((id, order_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let answer = state
        .writes
        .call(
            &caller,
            Method::POST,
            &format!("/api/v1/integrations/{id}/deals/{order_id}/refetch"),
            &json!({}),
        )
        .await;
    if answer.status.is_success() {
        return Redirect::to(&format!("/integrations/{id}/deals/{order_id}#trace")).into_response();
    }
    let message = answer.error().map(|(_, m)| m);
    deal_page(
        &state,
        Clock::of(&headers),
        &caller.scope,
        &id,
        &order_id,
        StatusCode::UNPROCESSABLE_ENTITY,
        message,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct ResyncInput {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

/// `POST /integrations/{id}/resync`: the re-sync form (an empty `until` means today).
pub async fn resync(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(input): Form<ResyncInput>,
) -> Response {
    let mut body = json!({"since": input.since.trim()});
    if !input.until.trim().is_empty() {
        body["until"] = input.until.trim().into();
    }
    let path = format!("/api/v1/integrations/{id}/resync");
    write_from_page(
        &state,
        &caller,
        &id,
        (Method::POST, &path),
        &body,
        PageForm::Resync,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct ApiKeyInput {
    #[serde(default)]
    api_key: String,
}

/// `POST /integrations/{id}/api-key`: a new key, checked against RetailCRM like on connect.
pub async fn change_api_key(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(input): Form<ApiKeyInput>,
) -> Response {
    let path = format!("/api/v1/integrations/{id}");
    let body = json!({"api_key": input.api_key.trim()});
    write_from_page(
        &state,
        &caller,
        &id,
        (Method::PATCH, &path),
        &body,
        PageForm::ApiKey,
    )
    .await
}

/// `POST /integrations/{id}/dead-letters/{letter_id}/retry`.
pub async fn retry(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path((id, letter)): Path<(String, String)>,
) -> Response {
    let answer = retry_letter(&state, &caller, &id, &letter).await;
    after_write(&state, &caller, &id, answer, PageForm::DeadLetters).await
}

/// `POST /integrations/{id}/dead-letters/retry-all`: every listed letter about an order.
pub async fn retry_all(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let letters = match state.reads.dead_letters(&caller.scope, &id, None).await {
        Ok(letters) => letters,
        Err(e) => return e.into_response(),
    };
    for letter in letters.iter().filter(|l| l.order_id.is_some()) {
        let answer = retry_letter(&state, &caller, &id, &letter.id).await;
        if !answer.status.is_success() {
            return after_write(&state, &caller, &id, answer, PageForm::DeadLetters).await;
        }
    }
    Redirect::to(&format!("/integrations/{id}#dead-letters")).into_response()
}

async fn retry_letter(
    state: &PagesState,
    caller: &Caller,
    id: &str,
    letter: &str,
) -> super::api::Answer {
    state
        .writes
        .call(
            caller,
            Method::POST,
            &format!("/api/v1/integrations/{id}/dead-letters/{letter}/retry"),
            &json!({}),
        )
        .await
}

#[derive(Debug, Deserialize)]
pub struct DeleteInput {
    #[serde(default)]
    confirm: String,
}

/// `POST /integrations/{id}/delete`: only with the account's address typed as confirmation.
pub async fn delete(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(input): Form<DeleteInput>,
) -> Response {
    let crm_url = match state.reads.integration(&caller.scope, &id).await {
        Ok(i) => i.crm_url,
        Err(e) => return e.into_response(),
    };
    let typed = input.confirm.trim().trim_end_matches('/');
    if typed != crm_url.trim_end_matches('/') {
        let problems = Problems {
            delete: Some(format!(
                "Type the account's address, {crm_url}, to confirm; nothing was deleted."
            )),
            ..Problems::default()
        };
        return integration_page(
            &state,
            &caller.scope,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            problems,
        )
        .await;
    }
    let answer = state
        .writes
        .call(
            &caller,
            Method::DELETE,
            &format!("/api/v1/integrations/{id}"),
            &json!({}),
        )
        .await;
    if answer.status.is_success() {
        return Redirect::to("/").into_response();
    }
    after_write(&state, &caller, &id, answer, PageForm::Delete).await
}

#[derive(Debug, Deserialize)]
pub struct TimezoneInput {
    #[serde(default)]
    tz: String,
    #[serde(default)]
    back: String,
}

/// `POST /timezone`: the viewer's timezone for every page's times (a cookie), then back to
/// the page they were on (a path of this site only).
pub async fn set_timezone(Form(input): Form<TimezoneInput>) -> Response {
    let Ok(tz) = input.tz.parse::<chrono_tz::Tz>() else {
        return (
            StatusCode::BAD_REQUEST,
            Html("Unknown timezone. <a href=\"/\">Back</a>"),
        )
            .into_response();
    };
    let back = if input.back.starts_with('/') && !input.back.starts_with("//") {
        input.back
    } else {
        "/".to_owned()
    };
    let cookie = format!(
        "{TZ_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        tz.name().replace('/', "%2F")
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

/// How long a webhook check waits before it says none arrived.
const CHECK_FOR: i64 = 120;

#[derive(Template)]
#[template(path = "webhook_check.html")]
struct WebhookCheckPage {
    i: IntegrationView,
    clock: Clock,
    /// When the check started: a webhook accepted after it is the one the user caused.
    since: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
}

impl WebhookCheckPage {
    fn arrived(&self) -> bool {
        self.i.last_webhook_at.is_some_and(|at| at >= self.since)
    }

    fn waited_s(&self) -> i64 {
        (self.now - self.since).num_seconds()
    }

    fn expired(&self) -> bool {
        self.waited_s() >= CHECK_FOR
    }
}

#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    since: Option<i64>,
}

/// `GET /integrations/{id}/webhook-check`: starts a check (a redirect that pins its start
/// time in the URL), then shows whether a webhook arrived since, refreshing itself for two
/// minutes.
pub async fn webhook_check(
    State(state): State<PagesState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<CheckQuery>,
    headers: HeaderMap,
) -> Response {
    let now = chrono::Utc::now();
    let Some(since) = query
        .since
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
    else {
        return Redirect::to(&format!(
            "/integrations/{id}/webhook-check?since={}",
            now.timestamp()
        ))
        .into_response();
    };
    let i = match state.reads.integration(&scope, &id).await {
        Ok(i) => IntegrationView(i),
        Err(e) => return e.into_response(),
    };
    render(&WebhookCheckPage {
        i,
        clock: Clock::of(&headers),
        since,
        now,
    })
}
