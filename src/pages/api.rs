//! Calling the JSON API in-process as a page handler, in the signed-in user's scope.
//!
//! The request carries the [`Scope`] the pages' session resolved to as a request extension,
//! which the API's [`Authenticator`](dealflow_shared::tenants::Authenticator) takes as it is
//! (extensions are set by server code only, never by a client), so no token is passed around.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use dealflow_shared::tenants::Scope;
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
