//! Calling the JSON API as a page handler, in the signed-in user's scope.
//!
//! [`InProcessApi`]: a router in this process (the CSV stream; every write in the all-in-one).
//! The request carries the [`Scope`] the pages' session resolved to as a request extension,
//! which the API's [`Authenticator`](dealflow_shared::tenants::Authenticator) takes as it is
//! (extensions are set by server code only, never by a client), so no token is passed around.
//!
//! [`Writes`]: where the pages' writes go — that router, or ingest's API over HTTP in the split
//! deployment (DESIGN §2), sent with the user's session in
//! [`SESSION_HEADER`](dealflow_shared::tenants::SESSION_HEADER), so ingest checks the same
//! user, revocations included, and never sees more power than the cookie held.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use dealflow_shared::tenants::{SESSION_HEADER, Scope};
use serde_json::Value;
use tower::ServiceExt;

/// The API router.
#[derive(Clone)]
pub struct InProcessApi {
    router: Router,
}

impl std::fmt::Debug for InProcessApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProcessApi(..)")
    }
}

/// An API answer: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The `{"error": {"code", "message"}}` of a failed answer.
    pub fn error(&self) -> Option<(String, String)> {
        let e = self.body.get("error")?;
        Some((
            e["code"].as_str()?.to_string(),
            e["message"].as_str()?.to_string(),
        ))
    }
}

impl InProcessApi {
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// Sends one request through the API router as `scope` and returns the raw response.
    pub async fn raw(
        &self,
        scope: &Scope,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Response {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .extension(scope.clone());
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let request = request
            .body(body)
            .expect("a request built from a valid URI");
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Sends one request as `scope` and reads the JSON answer.
    pub async fn call(
        &self,
        scope: &Scope,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Answer {
        let response = self.raw(scope, method, uri, body).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body }
    }
}

/// The signed-in user a page acts for: the scope and the session it came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: Scope,
    /// The session cookie's value (sent on when the write goes to another process).
    pub session: String,
}

/// Where the pages' writes (connect, settings) go.
#[derive(Debug, Clone)]
pub enum Writes {
    /// The API router in this process (the all-in-one).
    InProcess(InProcessApi),
    /// Ingest's API over HTTP (`--target projector`, `DEALFLOW_INGEST_URL`).
    Ingest(IngestClient),
}

impl Writes {
    /// Sends one write as `caller` and reads the JSON answer.
    pub async fn call(&self, caller: &Caller, method: Method, uri: &str, body: &Value) -> Answer {
        match self {
            Writes::InProcess(api) => api.call(&caller.scope, method, uri, Some(body)).await,
            Writes::Ingest(ingest) => ingest.call(&caller.session, method, uri, body).await,
        }
    }
}

/// Ingest's API reached over HTTP.
#[derive(Debug, Clone)]
pub struct IngestClient {
    base: url::Url,
    http: reqwest::Client,
}

/// How long a write may take at ingest: a connect checks the RetailCRM key and waits for the
/// read side (up to 5 s, DESIGN §4), so this leaves room for both.
const INGEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl IngestClient {
    pub fn new(base: url::Url) -> Self {
        let http = reqwest::Client::builder()
            .timeout(INGEST_TIMEOUT)
            .build()
            .expect("an HTTP client with a timeout");
        Self { base, http }
    }

    async fn call(&self, session: &str, method: Method, uri: &str, body: &Value) -> Answer {
        let url = match self.base.join(uri) {
            Ok(url) => url,
            Err(e) => return unreachable_answer(&format!("{uri}: {e}")),
        };
        let sent = self
            .http
            .request(method, url)
            .header(SESSION_HEADER, session)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return unreachable_answer(&e.without_url().to_string()),
        };
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer { status, body }
    }
}

/// The answer a page shows when ingest could not be asked at all.
fn unreachable_answer(detail: &str) -> Answer {
    tracing::warn!(error = %detail, "the pages could not reach ingest (DEALFLOW_INGEST_URL)");
    Answer {
        status: StatusCode::BAD_GATEWAY,
        body: serde_json::json!({"error": {
            "code": "ingest_unreachable",
            "message": "The change could not be confirmed: ingest did not answer. Reload the page to see whether it was saved before trying again.",
        }}),
    }
}
