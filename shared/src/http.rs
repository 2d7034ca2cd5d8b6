//! HTTP pieces every service shares: the one error type, bearer-token auth and route-labelled
//! request metrics.
//!
//! Every error answers `{"error": {"code": "snake_case", "message": "sentence"}}` (DESIGN §4);
//! internal causes are logged in full and never sent. Metrics are labelled by the matched route
//! (`/hooks/retailcrm/{token}`), never the raw path, so no token or id reaches a label.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use prometheus::{HistogramVec, IntCounterVec};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::metrics::Metrics;

/// OpenAPI pieces every service's document shares: the error body and the bearer scheme.
pub mod openapi {
    use serde::Serialize;
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
    use utoipa::{Modify, ToSchema};

    /// `{"error": {"code", "message"}}`, the body of every error (DESIGN §4).
    #[derive(Debug, Serialize, ToSchema)]
    #[schema(as = Error)]
    pub struct ErrorBody {
        error: ErrorDetail,
    }

    /// What went wrong: a stable snake_case code and a human sentence.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct ErrorDetail {
        #[schema(example = "integration_not_found")]
        code: String,
        message: String,
    }

    /// Adds the two schemes to a document: `bearer`, the operator token
    /// (`DEALFLOW_API_TOKEN`: every tenant, and the tenants API), and `tenant`, a tenant token
    /// (`dft_…`: that tenant's integrations only). Both travel as `Authorization: Bearer …`.
    #[derive(Debug)]
    pub struct BearerScheme;

    impl Modify for BearerScheme {
        fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
            let components = openapi.components.get_or_insert_with(Default::default);
            let scheme = |description: &str| {
                let mut http = Http::new(HttpAuthScheme::Bearer);
                http.description = Some(description.to_string());
                SecurityScheme::Http(http)
            };
            components.add_security_scheme(
                "bearer",
                scheme(
                    "The operator token (DEALFLOW_API_TOKEN): every tenant, and the tenants API.",
                ),
            );
            components.add_security_scheme(
                "tenant",
                scheme(
                    "A tenant token (dft_…): that tenant's integrations, deals and settings only.",
                ),
            );
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A failure that is ours, not the client's: the cause is logged, the client gets a sentence.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side; it has been logged.",
        )
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The JSON body, for tests and non-axum callers.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Checks `Authorization: Bearer <token>` in constant time.
#[derive(Clone)]
pub struct BearerAuth {
    token: Arc<SecretString>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth(..)")
    }
}

impl BearerAuth {
    pub fn new(token: SecretString) -> Self {
        Self {
            token: Arc::new(token),
        }
    }

    /// Whether the presented token is the configured one.
    pub fn accepts(&self, presented: &str) -> bool {
        let expected = self.token.expose_secret().as_bytes();
        presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected))
    }

    /// The value of the pages' session cookie: an HMAC of a fixed label keyed by the token, so
    /// the cookie is not the token itself (a cookie lifted from a browser profile does not
    /// open the API for a script) and changes when the token is rotated.
    pub fn session_value(&self) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.token.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"dealflow pages session v1");
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether a session cookie's value is this token's, compared in constant time.
    pub fn accepts_session(&self, presented: &str) -> bool {
        let expected = self.session_value();
        presented.len() == expected.len()
            && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    }

    /// The token from an `Authorization: Bearer …` header, if any.
    pub fn presented(headers: &HeaderMap) -> Option<&str> {
        headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(str::trim)
    }

    /// axum middleware: `401 unauthorized` unless the bearer token matches.
    pub async fn require(State(auth): State<BearerAuth>, request: Request, next: Next) -> Response {
        match Self::presented(request.headers()) {
            Some(token) if auth.accepts(token) => next.run(request).await,
            Some(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "The bearer token is not valid.",
            )
            .into_response(),
            None => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Send the API token as 'Authorization: Bearer <token>'.",
            )
            .into_response(),
        }
    }
}

/// Request count and latency by matched route, method and status.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl HttpMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            requests: metrics.counter(
                "http_requests_total",
                "HTTP requests by matched route, method and status.",
                &["route", "method", "status"],
            ),
            latency: metrics.latency(
                "http_request_duration_seconds",
                "HTTP request latency by matched route.",
                &["route", "method"],
            ),
        }
    }

    /// axum middleware (`from_fn_with_state`).
    pub async fn track(State(m): State<HttpMetrics>, request: Request, next: Next) -> Response {
        // A matched path is a shared string and a standard method an enum: no allocation
        // per request.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let method = request.method().clone();
        let method = method.as_str();
        let started = Instant::now();
        let response = next.run(request).await;
        m.latency
            .with_label_values(&[route, method])
            .observe(started.elapsed().as_secs_f64());
        m.requests
            .with_label_values(&[route, method, response.status().as_str()])
            .inc();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_code_and_message() {
        let e = ApiError::bad_request("invalid_order_id", "no order id");
        assert_eq!(
            e.body(),
            serde_json::json!({"error": {"code": "invalid_order_id", "message": "no order id"}})
        );
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        let auth = BearerAuth::new(SecretString::from("s3cret-token-value".to_string()));
        assert!(auth.accepts("s3cret-token-value"));
        assert!(!auth.accepts("s3cret-token-valuf"));
        assert!(!auth.accepts("s3cret"));
        assert!(!auth.accepts(""));
        assert!(!format!("{auth:?}").contains("s3cret"));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(BearerAuth::presented(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(BearerAuth::presented(&headers), None);
    }
}
