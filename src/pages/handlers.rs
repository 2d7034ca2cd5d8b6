//! The page handlers: read through [`Reads`](dealflow_projector::Reads), write through the
//! settings API ([`Writes`](super::api::Writes): in-process, or ingest's over HTTP), render a
//! template.

use askama::Template;
use axum::Form;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use dealflow_shared::stages::StageMappingItem;
use dealflow_shared::tenants::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

use super::PagesState;
use super::api::Caller;
use super::auth::template_failed;
use super::filters::DealFilters;
use super::views::{Clock, DealRow, IntegrationView};
use dealflow_projector::read::cockpit::{DeadLetterView, SyncView};

pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => template_failed(e),
    }
}

/// What the connect form shows (values back after an error, and the server's messages).
#[derive(Debug)]
pub struct ConnectForm {
    pub crm_url: String,
    pub default_funnel: bool,
    pub include_delivery_cost: bool,
    pub active: bool,
    pub backfill_days: String,
    pub crm_url_error: Option<String>,
    pub api_key_error: Option<String>,
    pub backfill_error: Option<String>,
    pub general_error: Option<String>,
}

impl Default for ConnectForm {
    fn default() -> Self {
        Self {
            crm_url: String::new(),
            default_funnel: false,
            include_delivery_cost: true,
            active: true,
            backfill_days: "30".to_string(),
            crm_url_error: None,
            api_key_error: None,
            backfill_error: None,
            general_error: None,
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    integrations: Vec<IntegrationView>,
    form: ConnectForm,
}

#[derive(Template)]
#[template(path = "integration.html")]
struct IntegrationPage {
    i: IntegrationView,
    /// Every status of the account with its outcome (the stage mapping editor).
    mapping: Vec<StageMappingItem>,
    /// The sync panel: reconciliation and the current or last load.
    sync: SyncView,
    /// What could not be processed, newest first.
    letters: Vec<DeadLetterView>,
    /// What a refused write said, next to its form.
    problems: Problems,
}

impl IntegrationPage {
    /// While a load runs the page refreshes itself (the progress bar moves with no script).
    fn refresh(&self) -> bool {
        self.sync.load.as_ref().is_some_and(|l| l.running())
    }
}

#[derive(Template)]
#[template(path = "deals.html")]
struct DealsPage {
    id: String,
    /// The viewer's timezone (the table's times).
    clock: Clock,
    /// Inline SVG: deals created per day (last 30 days) by outcome.
    chart_per_day: String,
    /// Inline SVG: deals per current stage, in funnel order.
    chart_funnel: String,
    crm_url: String,
    filters: DealFilters,
    funnels: Vec<SelectOption>,
    outcomes: Vec<SelectOption>,
    deleted_options: Vec<SelectOption>,
    deals: Vec<DealRow>,
    error: Option<String>,
    query: String,
    first_query: String,
    next_query: Option<String>,
    has_cursor: bool,
}

impl DealsPage {
    /// Where the timezone picker returns to.
    fn back(&self) -> String {
        format!("/integrations/{}/deals{}", self.id, self.query)
    }
}

/// One `<option>` of a filter.
#[derive(Debug)]
struct SelectOption {
    value: String,
    label: String,
    selected: bool,
}

fn options(current: &str, choices: &[(&str, &str)]) -> Vec<SelectOption> {
    choices
        .iter()
        .map(|(value, label)| SelectOption {
            value: value.to_string(),
            label: label.to_string(),
            selected: *value == current,
        })
        .collect()
}

async fn index_page(
    state: &PagesState,
    scope: &Scope,
    form: ConnectForm,
    status: StatusCode,
) -> Response {
    let integrations = match state.reads.integrations(scope).await {
        Ok(list) => list.items.into_iter().map(IntegrationView).collect(),
        Err(e) => return e.into_response(),
    };
    (status, render(&IndexPage { integrations, form })).into_response()
}

pub async fn index(
    State(state): State<PagesState>,
    Extension(scope): Extension<Scope>,
) -> Response {
    index_page(&state, &scope, ConnectForm::default(), StatusCode::OK).await
}

/// The connect form as posted (unchecked boxes are absent).
#[derive(Debug, Deserialize)]
pub struct ConnectInput {
    #[serde(default)]
    crm_url: String,
    #[serde(default)]
    api_key: String,
    default_funnel: Option<String>,
    include_delivery_cost: Option<String>,
    active: Option<String>,
    #[serde(default)]
    backfill_days: String,
}

pub async fn connect(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Form(input): Form<ConnectInput>,
) -> Response {
    let scope = &caller.scope;
    let mut form = ConnectForm {
        crm_url: input.crm_url.clone(),
        default_funnel: input.default_funnel.is_some(),
        include_delivery_cost: input.include_delivery_cost.is_some(),
        active: input.active.is_some(),
        backfill_days: input.backfill_days.clone(),
        ..ConnectForm::default()
    };
    let backfill_days = match input.backfill_days.trim() {
        "" => 0,
        text => match text.parse::<u32>() {
            Ok(days) => days,
            Err(_) => {
                form.backfill_error =
                    Some("Enter a whole number of days (0 for none).".to_string());
                return index_page(&state, scope, form, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        },
    };
    let body = json!({
        "crm_url": input.crm_url.trim(), "api_key": input.api_key.trim(),
        "default_funnel": form.default_funnel, "include_delivery_cost": form.include_delivery_cost,
        "active": form.active, "backfill_days": backfill_days,
    });
    let answer = state
        .writes
        .call(&caller, Method::POST, "/api/v1/integrations", &body)
        .await;
    if answer.status == StatusCode::CREATED {
        // The API answered only once the read side shows the integration (read your writes),
        // so the page we redirect to finds it.
        let id = answer.body["id"].as_str().unwrap_or_default();
        return Redirect::to(&format!("/integrations/{id}")).into_response();
    }
    let (code, message) = answer.error().unwrap_or_else(|| {
        (
            "internal_error".into(),
            "The integration could not be created.".into(),
        )
    });
    // The server's message goes next to the field it is about.
    match code.as_str() {
        // Created, not shown yet: the message says so and names it. An empty form, so the
        // user is not invited to submit the same account again.
        dealflow_ingest::READ_MODEL_BEHIND => {
            form = ConnectForm {
                general_error: Some(message),
                ..ConnectForm::default()
            };
        }
        "invalid_crm_url" | "crm_unreachable" => form.crm_url_error = Some(message),
        "crm_auth_failed" | "crm_insufficient_access" => form.api_key_error = Some(message),
        "invalid_request" if message.contains("backfill") => form.backfill_error = Some(message),
        "invalid_request" if message.contains("api_key") => form.api_key_error = Some(message),
        _ => form.general_error = Some(message),
    }
    let status = StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
    index_page(&state, scope, form, status).await
}

async fn load_integration(
    state: &PagesState,
    scope: &Scope,
    id: &str,
) -> Result<IntegrationView, Response> {
    match state.reads.integration(scope, id).await {
        Ok(found) => Ok(IntegrationView(found)),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err((
            StatusCode::NOT_FOUND,
            Html("There is no integration with this id. <a href=\"/\">Back</a>"),
        )
            .into_response()),
        Err(e) => Err(e.into_response()),
    }
}

pub async fn integration(
    State(state): State<PagesState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
) -> Response {
    integration_page(&state, &scope, &id, StatusCode::OK, Problems::default()).await
}

/// What a refused write on the integration page said, shown next to its form.
#[derive(Debug, Default)]
pub(super) struct Problems {
    pub settings: Option<String>,
    pub mapping: Option<String>,
    pub resync: Option<String>,
    pub api_key: Option<String>,
    pub letters: Option<String>,
    pub delete: Option<String>,
}

pub(super) async fn integration_page(
    state: &PagesState,
    scope: &Scope,
    id: &str,
    status: StatusCode,
    problems: Problems,
) -> Response {
    let i = match load_integration(state, scope, id).await {
        Ok(i) => i,
        Err(response) => return response,
    };
    let mapping = match state.reads.stage_mapping(scope, id, None).await {
        Ok(mapping) => mapping.items,
        Err(e) => return e.into_response(),
    };
    let sync = match state.reads.sync(scope, id, None).await {
        Ok(sync) => sync,
        Err(e) => return e.into_response(),
    };
    let letters = match state.reads.dead_letters(scope, id, None).await {
        Ok(letters) => letters,
        Err(e) => return e.into_response(),
    };
    let page = IntegrationPage {
        i,
        mapping,
        sync,
        letters,
        problems,
    };
    (status, render(&page)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct SettingsInput {
    active: Option<String>,
    default_funnel: Option<String>,
    include_delivery_cost: Option<String>,
    revenue: Option<String>,
}

pub async fn save_settings(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(input): Form<SettingsInput>,
) -> Response {
    let mut body = json!({
        "active": input.active.is_some(),
        "default_funnel": input.default_funnel.is_some(),
        "include_delivery_cost": input.include_delivery_cost.is_some(),
    });
    // An unknown value goes to the API, whose message the page then shows.
    if let Some(revenue) = input.revenue {
        body["revenue"] = revenue.into();
    }
    let path = format!("/api/v1/integrations/{id}");
    write_from_page(
        &state,
        &caller,
        &id,
        (Method::PATCH, &path),
        &body,
        PageForm::Settings,
    )
    .await
}

/// `POST /integrations/{id}/stage-mapping`: the editor's form, one row per status — a hidden
/// `status` with its code, `outcome.<code>` (empty for the group's default) and a checkbox
/// `excluded.<code>` — sent to the API as one `PATCH` naming every status shown.
pub async fn save_stage_mapping(
    State(state): State<PagesState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let value = |name: String| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = serde_json::Map::new();
    for (name, code) in &fields {
        if name != "status" {
            continue;
        }
        let outcome = match value(format!("outcome.{code}")) {
            None | Some("") => Value::Null,
            Some(outcome) => outcome.into(),
        };
        let excluded = value(format!("excluded.{code}")).is_some();
        body.insert(
            code.clone(),
            json!({"outcome": outcome, "excluded": excluded}),
        );
    }
    let path = format!("/api/v1/integrations/{id}/stage-mapping");
    let body = Value::Object(body);
    write_from_page(
        &state,
        &caller,
        &id,
        (Method::PATCH, &path),
        &body,
        PageForm::StageMapping,
    )
    .await
}

/// Which form of the integration page sent a write.
#[derive(Debug, Clone, Copy)]
pub(super) enum PageForm {
    Settings,
    StageMapping,
    Resync,
    ApiKey,
    DeadLetters,
    Delete,
}

impl PageForm {
    /// Where the page opens after the write: the form's own section.
    fn anchor(self) -> &'static str {
        match self {
            PageForm::Settings | PageForm::ApiKey => "",
            PageForm::StageMapping => "#stage-mapping",
            PageForm::Resync => "#sync",
            PageForm::DeadLetters => "#dead-letters",
            PageForm::Delete => "#delete",
        }
    }
}

/// Sends a page form's write to the API (`call`: method and path) and shows the integration
/// page after it ([`after_write`]).
pub(super) async fn write_from_page(
    state: &PagesState,
    caller: &Caller,
    id: &str,
    call: (Method, &str),
    body: &Value,
    form: PageForm,
) -> Response {
    let answer = state.writes.call(caller, call.0, call.1, body).await;
    after_write(state, caller, id, answer, form).await
}

/// The integration page after a write from one of its forms: shown again (a redirect) once
/// the API answered — which it does only when the read side shows the change — else with
/// the API's message next to that form (`read_model_behind` included: its message says the
/// change was saved).
pub(super) async fn after_write(
    state: &PagesState,
    caller: &Caller,
    id: &str,
    answer: super::api::Answer,
    form: PageForm,
) -> Response {
    if answer.status.is_success() {
        let anchor = form.anchor();
        return Redirect::to(&format!("/integrations/{id}{anchor}")).into_response();
    }
    let message = Some(
        answer
            .error()
            .map(|(_, m)| m)
            .unwrap_or_else(|| format!("The change was refused ({}).", answer.status)),
    );
    let mut problems = Problems::default();
    *match form {
        PageForm::Settings => &mut problems.settings,
        PageForm::StageMapping => &mut problems.mapping,
        PageForm::Resync => &mut problems.resync,
        PageForm::ApiKey => &mut problems.api_key,
        PageForm::DeadLetters => &mut problems.letters,
        PageForm::Delete => &mut problems.delete,
    } = message;
    integration_page(
        state,
        &caller.scope,
        id,
        StatusCode::UNPROCESSABLE_ENTITY,
        problems,
    )
    .await
}

pub async fn deals(
    State(state): State<PagesState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let clock = Clock::of(&headers);
    let filters: DealFilters = DealFilters::from_query(raw.as_deref());
    let integration = match load_integration(&state, &scope, &id).await {
        Ok(i) => i,
        Err(response) => return response,
    };
    let api_query = filters.query(Some(&filters.cursor));
    let (deals, next, error) = match state
        .reads
        .deal_page(&scope, &id, api_query.strip_prefix('?'))
        .await
    {
        Ok(page) => (
            page.items.iter().map(|d| DealRow::of(d, &clock)).collect(),
            page.next_cursor,
            None,
        ),
        // A filter the API refuses: its message on the page, no rows.
        Err(e) => (Vec::new(), None, Some(e.message)),
    };
    let mut funnels = options(&filters.funnel_id, &[("", "all")]);
    for f in state
        .reads
        .funnels(&scope, &id, None)
        .await
        .unwrap_or_default()
    {
        funnels.push(SelectOption {
            selected: f.id == filters.funnel_id,
            label: f.name,
            value: f.id,
        });
    }
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Days::new(super::charts::DAYS - 1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let (per_day, per_stage) = match state.reads.charts(&scope, &id, from).await {
        Ok(figures) => figures,
        Err(e) => return e.into_response(),
    };
    let stages = state
        .reads
        .stage_mapping(&scope, &id, None)
        .await
        .map(|m| m.items)
        .unwrap_or_default();
    let page = DealsPage {
        clock,
        chart_per_day: super::charts::per_day(&per_day, today),
        chart_funnel: super::charts::funnel(&super::charts::in_funnel_order(&stages, &per_stage)),
        crm_url: integration.0.crm_url,
        query: filters.query(None),
        first_query: filters.query(None),
        next_query: next.map(|c| filters.query(Some(&c))),
        has_cursor: !filters.cursor.is_empty(),
        outcomes: options(
            &filters.outcome,
            &[
                ("", "all"),
                ("open", "open"),
                ("won", "won"),
                ("lost", "lost"),
            ],
        ),
        deleted_options: options(
            &filters.deleted,
            &[("", "shown"), ("false", "hidden"), ("true", "only")],
        ),
        id,
        filters,
        funnels,
        deals,
        error,
    };
    render(&page)
}

/// The CSV of the current filters, streamed from the read API in this process (the browser has
/// a cookie, not a bearer token).
pub async fn deals_csv(
    State(state): State<PagesState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    stream_csv(&state, &scope, &id, "deals.csv", raw.as_deref()).await
}

/// The order lines of the current filters as CSV, like [`deals_csv`].
pub async fn deal_items_csv(
    State(state): State<PagesState>,
    Extension(scope): Extension<Scope>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    stream_csv(&state, &scope, &id, "deal-items.csv", raw.as_deref()).await
}

async fn stream_csv(
    state: &PagesState,
    scope: &Scope,
    id: &str,
    file: &str,
    raw: Option<&str>,
) -> Response {
    let filters: DealFilters = DealFilters::from_query(raw);
    let response = state
        .read_api
        .raw(
            scope,
            Method::GET,
            &format!("/api/v1/integrations/{id}/{file}{}", filters.query(None)),
            None,
        )
        .await;
    let (parts, body) = response.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for name in [header::CONTENT_TYPE, header::CONTENT_DISPOSITION] {
        if let Some(value) = parts.headers.get(&name) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}
