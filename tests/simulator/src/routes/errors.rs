//! Error answers with the real API's bodies and statuses (fixtures `error-*.json`).
//!
//! Statuses the sources leave open are decided here: a missing key answers 403 (like a
//! wrong key), an unknown API method 404 `API method not found`, a disabled account
//! 400 `Account does not exist` on GET (as the Go client's mock) and an HTML 405 otherwise.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::config::ErrorBody;

/// An error answer of the simulated API.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// No key: 403 `"apiKey" is missing.`
    MissingKey,
    /// Unknown or revoked key: 403 `Wrong "apiKey" value`.
    WrongKey,
    /// The key may not use this method or site: 403 `Access denied.`
    AccessDenied,
    /// 404 `Not found`, with `combinedTo` for merged customers.
    NotFound {
        /// The customer this one was merged into.
        combined_to: Option<Value>,
    },
    /// 404 for a path under `/api/` that is no method.
    UnknownMethod,
    /// 405 `Method Not Allowed` (the simulated API is read-only).
    MethodNotAllowed,
    /// 400 `Errors in the input parameters` with the per-parameter `errors`.
    InvalidParams(Map<String, Value>),
}

impl ApiError {
    fn status_and_body(&self) -> (StatusCode, Value) {
        let body = |msg: &str| json!({ "success": false, "errorMsg": msg });
        match self {
            ApiError::MissingKey => (StatusCode::FORBIDDEN, body("\"apiKey\" is missing.")),
            ApiError::WrongKey => (StatusCode::FORBIDDEN, body("Wrong \"apiKey\" value")),
            ApiError::AccessDenied => (
                StatusCode::FORBIDDEN,
                json!({ "errorMsg": "Access denied.", "success": false }),
            ),
            ApiError::NotFound { combined_to } => {
                let mut b = body("Not found");
                if let (Some(to), Some(obj)) = (combined_to, b.as_object_mut()) {
                    obj.insert("combinedTo".to_owned(), to.clone());
                }
                (StatusCode::NOT_FOUND, b)
            }
            ApiError::UnknownMethod => (StatusCode::NOT_FOUND, body("API method not found")),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, body("Method Not Allowed"))
            }
            ApiError::InvalidParams(errors) => (
                StatusCode::BAD_REQUEST,
                json!({
                    "success": false,
                    "errorMsg": "Errors in the input parameters",
                    "errors": errors,
                }),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        json_response(status, &body)
    }
}

/// A JSON answer with the API's content type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// An nginx-style HTML page.
pub fn html_response(status: StatusCode, title: &str) -> Response {
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = (status, page).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    response
}

/// An error status with a JSON or HTML body (rate limit, injected faults).
pub fn status_response(code: u16, body: ErrorBody) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    match body {
        ErrorBody::Json => {
            let msg = match code {
                503 | 429 => "Rate limit exceeded",
                _ => reason,
            };
            json_response(status, &json!({ "success": false, "errorMsg": msg }))
        }
        ErrorBody::Html => {
            let title = match code {
                503 => "503 Service Temporarily Unavailable".to_owned(),
                _ => format!("{code} {reason}"),
            };
            html_response(status, &title)
        }
    }
}

/// The answer of a host that is not (or no longer) a RetailCRM account.
pub fn account_missing(get: bool) -> Response {
    if get {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "success": false, "errorMsg": "Account does not exist" }),
        )
    } else {
        html_response(StatusCode::METHOD_NOT_ALLOWED, "405 Not Allowed")
    }
}

/// What a non-API path answers: the "account does not exist" HTML page.
pub fn non_api_page() -> Response {
    let page = "<!DOCTYPE html>\n<html lang=\"ru\">\n<head><meta charset=\"utf-8\"><title>Account does not exist</title></head>\n<body><h1>Account does not exist.</h1><p>Аккаунт не существует.</p></body>\n</html>\n";
    let mut response = (StatusCode::NOT_FOUND, page).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    response
}
