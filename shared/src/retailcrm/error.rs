//! Typed errors of the RetailCRM client, and the classification of an HTTP answer into one.
//!
//! Callers branch on the kind: a wrong key or URL is reported to the user, a missing entity
//! becomes a deletion, a transient failure is retried later, an unparseable order goes to the
//! dead-letter topic. The messages the official clients map (API-NOTES §2) drive the
//! classification first; the HTTP status is the fallback.

use std::fmt;

use super::models::envelope::{ApiErrors, CombinedTo, ErrorEnvelope};

/// The method and path a request went to, e.g. `GET /api/v5/orders/48213` (never the query,
/// never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path below the account URL.
    pub path: String,
}

impl Endpoint {
    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Endpoint {
            method: "GET",
            path: path.into(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Why the account could not be reached (after retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailability {
    /// The server answered with this 5xx status.
    Status(u16),
    /// The request or the response did not complete in time.
    Timeout,
    /// No connection could be made (refused, DNS, TLS).
    Connect(String),
    /// The connection broke during the exchange.
    Transport(String),
    /// Not sent: the caller's gate closed (another process now calls this account, DESIGN
    /// §7.4), so this call and its retries are the new caller's to make.
    Fenced,
}

impl fmt::Display for Unavailability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailability::Status(s) => write!(f, "HTTP {s}"),
            Unavailability::Timeout => f.write_str("timed out"),
            Unavailability::Connect(e) => write!(f, "cannot connect: {e}"),
            Unavailability::Transport(e) => write!(f, "connection failed: {e}"),
            Unavailability::Fenced => {
                f.write_str("not sent: another process calls this account now")
            }
        }
    }
}

/// Everything a RetailCRM call can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RetailCrmError {
    /// The key is wrong or missing (`Wrong "apiKey" value`, `"apiKey" is missing`, 401/403).
    #[error("RetailCRM rejected the API key on {endpoint}: {message}")]
    AuthFailed {
        /// The call.
        endpoint: Endpoint,
        /// The API's message.
        message: String,
    },
    /// The key works but may not call this method or site (`Access denied.`).
    #[error("the API key may not call {endpoint} ({message}); allow this method for the key")]
    AccessDenied {
        /// The call that was denied: names the permission to enable.
        endpoint: Endpoint,
        /// The API's message.
        message: String,
    },
    /// The entity does not exist (deleted, or merged into `combined_to`).
    #[error("{endpoint}: not found{}", combined_to.as_ref().map(|c| format!(" (merged into {})", c.id)).unwrap_or_default())]
    NotFound {
        /// The call.
        endpoint: Endpoint,
        /// The entity this one was merged into, when the API says so.
        combined_to: Option<CombinedTo>,
    },
    /// Still answered 503/429 after every retry.
    #[error("{endpoint}: still rate limited after {attempts} attempts")]
    RateLimited {
        /// The call.
        endpoint: Endpoint,
        /// Attempts made.
        attempts: u32,
    },
    /// 5xx, timeouts or connection failures after every retry.
    #[error("{endpoint}: unavailable after {attempts} attempts: {reason}")]
    Unavailable {
        /// The call.
        endpoint: Endpoint,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: Unavailability,
    },
    /// The URL does not point at a RetailCRM account (`Account does not exist`, an HTML page,
    /// a redirect).
    #[error("no RetailCRM account answers {endpoint}: {detail}")]
    AccountNotFound {
        /// The call.
        endpoint: Endpoint,
        /// What came back instead.
        detail: String,
    },
    /// The API refused the request: validation errors, a missing parameter, a bad filter, an
    /// unexpected method.
    #[error("{endpoint} was refused (HTTP {status}): {message}{}", if errors.is_empty() { String::new() } else { format!(" [{errors}]") })]
    BadRequest {
        /// The call.
        endpoint: Endpoint,
        /// HTTP status.
        status: u16,
        /// The API's message.
        message: String,
        /// Details per field or as a list.
        errors: ApiErrors,
    },
    /// The body does not match the model; `path` is the JSON path of the offending field.
    #[error("{endpoint} returned an unexpected body at `{path}`: {message}")]
    InvalidResponse {
        /// The call.
        endpoint: Endpoint,
        /// JSON path, e.g. `order.items[0].initialPrice`.
        path: String,
        /// What was wrong there.
        message: String,
    },
    /// The request was not sent because it is invalid (e.g. more than 100 ids in a filter).
    #[error("invalid RetailCRM request: {0}")]
    InvalidRequest(String),
}

impl RetailCrmError {
    /// Worth retrying later (rate limit, 5xx, timeout, connection failure). Everything else
    /// will fail the same way again until something changes.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RetailCrmError::RateLimited { .. } | RetailCrmError::Unavailable { .. }
        )
    }

    /// Classifies a complete non-success answer (used by the client after retries are
    /// settled, and by tests on recorded bodies). 503 and 429 become [`Self::RateLimited`]
    /// and other 5xx [`Self::Unavailable`], each counted as one attempt.
    pub fn from_response(endpoint: Endpoint, status: u16, body: &[u8]) -> Self {
        match classify(&endpoint, status, body) {
            Verdict::Fail(e) => e,
            Verdict::Retry(cause) => cause.into_error(endpoint, 1),
        }
    }
}

/// Why an attempt is worth repeating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RetryCause {
    /// 503 / 429 / `Rate limit exceeded`.
    RateLimited,
    /// Other failure that may pass.
    Unavailable(Unavailability),
}

impl RetryCause {
    pub(crate) fn into_error(self, endpoint: Endpoint, attempts: u32) -> RetailCrmError {
        match self {
            RetryCause::RateLimited => RetailCrmError::RateLimited { endpoint, attempts },
            RetryCause::Unavailable(reason) => RetailCrmError::Unavailable {
                endpoint,
                attempts,
                reason,
            },
        }
    }
}

/// The verdict on one answer that is not a success.
#[derive(Debug)]
pub(crate) enum Verdict {
    Retry(RetryCause),
    Fail(RetailCrmError),
}

/// Body looks like an HTML page rather than JSON (wrong URL, proxy page).
pub(crate) fn looks_like_html(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

/// Classifies a non-success answer: any status ≥ 300, or a 2xx whose body says
/// `success: false`.
pub(crate) fn classify(endpoint: &Endpoint, status: u16, body: &[u8]) -> Verdict {
    // Rate limiting and server errors come first whatever the body says: a 503 page from a
    // proxy is HTML, and must not read as "account does not exist".
    if status == 503 || status == 429 {
        return Verdict::Retry(RetryCause::RateLimited);
    }
    if status >= 500 {
        return Verdict::Retry(RetryCause::Unavailable(Unavailability::Status(status)));
    }
    let endpoint = endpoint.clone();
    if (300..400).contains(&status) {
        // Redirects are not followed (the key must not travel to another host); a RetailCRM
        // account never redirects its API.
        return Verdict::Fail(RetailCrmError::AccountNotFound {
            endpoint,
            detail: format!("redirected (HTTP {status})"),
        });
    }
    if looks_like_html(body) {
        return Verdict::Fail(RetailCrmError::AccountNotFound {
            endpoint,
            detail: format!("an HTML page instead of JSON (HTTP {status})"),
        });
    }
    let envelope: Option<ErrorEnvelope> = serde_json::from_slice(body).ok();
    let message = envelope.as_ref().and_then(|e| e.error_msg.clone());
    let normalized = message
        .as_deref()
        .map(|m| m.trim().trim_end_matches('.').to_ascii_lowercase());

    if let Some(msg) = normalized.as_deref() {
        let message = message.clone().unwrap_or_default();
        if msg == "account does not exist" {
            return Verdict::Fail(RetailCrmError::AccountNotFound {
                endpoint,
                detail: message,
            });
        }
        if msg.contains("\"apikey\"") {
            return Verdict::Fail(RetailCrmError::AuthFailed { endpoint, message });
        }
        if msg == "access denied" {
            return Verdict::Fail(RetailCrmError::AccessDenied { endpoint, message });
        }
        if msg == "not found" {
            let combined_to = envelope.and_then(|e| e.combined_to);
            return Verdict::Fail(RetailCrmError::NotFound {
                endpoint,
                combined_to,
            });
        }
        if msg == "rate limit exceeded" {
            return Verdict::Retry(RetryCause::RateLimited);
        }
    }
    match status {
        401 => Verdict::Fail(RetailCrmError::AuthFailed {
            endpoint,
            message: message.unwrap_or_else(|| "HTTP 401".into()),
        }),
        403 => match message {
            Some(message) => Verdict::Fail(RetailCrmError::AccessDenied { endpoint, message }),
            None => Verdict::Fail(RetailCrmError::AuthFailed {
                endpoint,
                message: "HTTP 403".into(),
            }),
        },
        404 => Verdict::Fail(RetailCrmError::NotFound {
            endpoint,
            combined_to: envelope.and_then(|e| e.combined_to),
        }),
        _ => {
            let errors = envelope.map(|e| e.errors).unwrap_or_default();
            let message = message.unwrap_or_else(|| {
                if body.is_empty() {
                    "no error message".into()
                } else {
                    "a body that is not an error envelope".into()
                }
            });
            Verdict::Fail(RetailCrmError::BadRequest {
                endpoint,
                status,
                message,
                errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> RetailCrmError {
        RetailCrmError::from_response(Endpoint::get("/api/v5/orders/1"), status, body.as_bytes())
    }

    #[test]
    fn messages_win_over_statuses() {
        let e = err(
            400,
            r#"{"success":false,"errorMsg":"Account does not exist"}"#,
        );
        assert!(matches!(e, RetailCrmError::AccountNotFound { .. }), "{e:?}");
        let e = err(
            403,
            r#"{"success":false,"errorMsg":"Wrong \"apiKey\" value."}"#,
        );
        assert!(matches!(e, RetailCrmError::AuthFailed { .. }), "{e:?}");
        let e = err(
            200,
            r#"{"success":false,"errorMsg":"\"apiKey\" is missing."}"#,
        );
        assert!(matches!(e, RetailCrmError::AuthFailed { .. }), "{e:?}");
        let e = err(403, r#"{"errorMsg":"Access denied.","success":false}"#);
        assert!(
            matches!(&e, RetailCrmError::AccessDenied { endpoint, .. } if endpoint.path == "/api/v5/orders/1"),
            "{e:?}"
        );
    }

    #[test]
    fn not_found_keeps_combined_to() {
        let e = err(
            404,
            r#"{"success":false,"errorMsg":"Not found","combinedTo":{"id":9,"externalId":"x"}}"#,
        );
        match e {
            RetailCrmError::NotFound { combined_to, .. } => {
                assert_eq!(combined_to.unwrap().id, 9)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn html_and_redirects_mean_no_account_but_html_503_is_a_rate_limit() {
        assert!(matches!(
            err(405, "<html><body>405 Not Allowed</body></html>"),
            RetailCrmError::AccountNotFound { .. }
        ));
        assert!(matches!(
            err(302, ""),
            RetailCrmError::AccountNotFound { .. }
        ));
        let e = err(503, "<html>Service Temporarily Unavailable</html>");
        assert!(matches!(e, RetailCrmError::RateLimited { .. }) && e.is_transient());
        let e = err(502, "");
        assert!(
            matches!(
                e,
                RetailCrmError::Unavailable {
                    reason: Unavailability::Status(502),
                    ..
                }
            ) && e.is_transient()
        );
    }

    #[test]
    fn validation_keeps_errors_in_either_shape() {
        let e = err(
            400,
            r#"{"success":false,"errorMsg":"Errors in the entity format","errors":{"name":"name must be provided"}}"#,
        );
        match &e {
            RetailCrmError::BadRequest { errors, status, .. } => {
                assert_eq!(*status, 400);
                assert!(
                    matches!(errors, ApiErrors::Fields(m) if m["name"] == "name must be provided")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("name: name must be provided"));
        assert!(!e.is_transient());
        let e = err(
            400,
            r#"{"success":false,"errorMsg":"x","errors":["a","b"]}"#,
        );
        assert!(
            matches!(e, RetailCrmError::BadRequest { errors: ApiErrors::Messages(ref l), .. } if l.len() == 2)
        );
    }

    #[test]
    fn bare_statuses_fall_back() {
        assert!(matches!(err(401, ""), RetailCrmError::AuthFailed { .. }));
        assert!(matches!(err(403, ""), RetailCrmError::AuthFailed { .. }));
        assert!(matches!(err(404, ""), RetailCrmError::NotFound { .. }));
        assert!(matches!(
            err(405, "{}"),
            RetailCrmError::BadRequest { status: 405, .. }
        ));
    }
}
