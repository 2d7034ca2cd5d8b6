//! Calling the JSON API in-process, with the bearer token, as a page handler.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tower::ServiceExt;

/// The API router plus the token it expects.
#[derive(Clone)]
pub struct InProcessApi {
    router: Router,
    token: SecretString,
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
    pub fn new(router: Router, token: SecretString) -> Self {
        Self { router, token }
    }

    /// Sends one request through the API router and returns the raw response.
    pub async fn raw(&self, method: Method, uri: &str, body: Option<&Value>) -> Response {
        let mut request = Request::builder().method(method).uri(uri).header(
            header::AUTHORIZATION,
            format!("Bearer {}", self.token.expose_secret()),
        );
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

    /// Sends one request and reads the JSON answer.
    pub async fn call(&self, method: Method, uri: &str, body: Option<&Value>) -> Answer {
        let response = self.raw(method, uri, body).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body }
    }
}
