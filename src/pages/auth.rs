//! Signing in to the pages: the operator's or a tenant's API token once, then an HttpOnly,
//! SameSite=Strict session cookie holding a value derived from the token (never the token
//! itself), `Secure` when the public URL is https. A tenant's session ends when its token is
//! revoked.

use askama::Template;
use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::PagesState;
use super::api::Caller;
use super::handlers::render;

/// The cookie holding the API token.
pub const COOKIE: &str = "dealflow_session";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Only local paths: a sign-in must never redirect to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// Page middleware: no valid session → the sign-in page, remembering where the user was going.
pub async fn require_session(
    State(state): State<PagesState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match session_token(request.headers()) {
        Some(session) => Some(
            state
                .auth
                .authenticate_session_now(&session)
                .await
                .map(|scope| Caller { scope, session }),
        ),
        None => None,
    };
    match caller {
        Some(Ok(caller)) => {
            request.extensions_mut().insert(caller.scope.clone());
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        failed => {
            if let Some(Err(failure)) = failed {
                state.auth.refused(failure);
            }
            let target = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
            Redirect::to(&format!("/login?next={encoded}")).into_response()
        }
    }
}

pub async fn login_form(Query(query): Query<LoginQuery>) -> Response {
    render(&LoginPage {
        next: safe_next(query.next.as_deref()),
        error: None,
    })
}

pub async fn login(State(state): State<PagesState>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim();
    let session = match state.auth.session_value_now(token).await {
        Ok(session) => session,
        Err(failure) => {
            state.auth.refused(failure);
            let page = LoginPage {
                next,
                error: Some("This is not an API token of this dealflow.".to_string()),
            };
            return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
        }
    };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000{}",
        session,
        if state.secure_cookie { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("dealflow_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

/// A page that could not be rendered (a template bug) answers 500 with a short text.
pub fn template_failed(e: askama::Error) -> Response {
    tracing::error!(error = %e, "page template failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html("The page could not be rendered; it has been logged."),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dealflow_projector::Reads;
    use dealflow_shared::config::DatabaseUrl;
    use dealflow_shared::http::BearerAuth;
    use dealflow_shared::secrets::SecretKeys;
    use secrecy::SecretString;

    #[test]
    fn next_is_always_local() {
        assert_eq!(safe_next(Some("/integrations/1")), "/integrations/1");
        assert_eq!(safe_next(Some("//evil.com/x")), "/");
        assert_eq!(safe_next(Some("https://evil.com/")), "/");
        assert_eq!(safe_next(Some("/\\evil.com")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dealflow_session=tok; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
    }

    /// Signs in through the real router and returns the `Set-Cookie` header.
    async fn sign_in(secure: bool) -> String {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("pages.db").display()
        );
        let store = dealflow_projector::Store::open(&DatabaseUrl::Sqlite(SecretString::from(url)))
            .await
            .unwrap();
        let keys = std::sync::Arc::new(SecretKeys::derive(&SecretString::from(
            "a-secret-key-long-enough-for-tests",
        )));
        let reads = Reads::new(store, keys.clone(), "http://127.0.0.1/".parse().unwrap());
        let auth = dealflow_shared::tenants::Authenticator::new(
            BearerAuth::new(SecretString::from(TOKEN)),
            dealflow_shared::tenants::TenantRegistry::new(keys),
            &dealflow_shared::metrics::Metrics::new(),
        );
        let writes =
            super::super::Writes::InProcess(super::super::InProcessApi::new(axum::Router::new()));
        let state =
            PagesState::new(reads, axum::Router::new(), writes, auth).with_secure_cookie(secure);
        let response = super::super::router(state)
            .oneshot(
                axum::http::Request::post("/login")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(axum::body::Body::from(format!("token={TOKEN}&next=/")))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned()
    }

    const TOKEN: &str = "the-api-token-0123456789";

    #[tokio::test]
    async fn the_cookie_is_derived_from_the_token_and_secure_behind_https() {
        let plain = sign_in(false).await;
        let secure = sign_in(true).await;
        assert!(!plain.contains(TOKEN) && !secure.contains(TOKEN), "{plain}");
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(secure.ends_with("; Secure"), "{secure}");
        for cookie in [&plain, &secure] {
            assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
        }
        let value = plain
            .strip_prefix(&format!("{COOKIE}="))
            .and_then(|v| v.split(';').next())
            .unwrap();
        let auth = BearerAuth::new(SecretString::from(TOKEN));
        assert!(auth.accepts_session(value));
        assert!(
            !auth.accepts_session(TOKEN),
            "the token itself is not a session"
        );
        let rotated = BearerAuth::new(SecretString::from("another-token-0123456789"));
        assert!(
            !rotated.accepts_session(value),
            "a rotated token ends the session"
        );
    }
}
