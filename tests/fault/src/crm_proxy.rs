//! A recording pass-through in front of each simulated account: dealflow is connected to the
//! proxy's address, every request is forwarded to the simulator unchanged, and the URL of
//! each request is kept so the secrets scan can check that no URL sent to RetailCRM carries a
//! key (the key belongs in the `X-API-KEY` header).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

/// The URLs (path and query) every proxy saw.
#[derive(Debug, Clone, Default)]
pub struct Urls(Arc<Mutex<Vec<String>>>);

impl Urls {
    fn push(&self, url: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(url);
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[derive(Debug, Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    urls: Urls,
}

/// Starts a proxy to `upstream` (`http://host:port/`); returns its base URL.
pub async fn start(upstream: &str, urls: Urls) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Upstream {
        base: upstream.trim_end_matches('/').to_owned(),
        // No timeout of its own: a hang injected in the simulator must reach dealflow's
        // client as a hang.
        http: reqwest::Client::new(),
        urls,
    };
    let app = Router::new().fallback(forward).with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("RetailCRM proxy stopped: {e}");
        }
    });
    Ok(format!("http://{addr}/"))
}

async fn forward(
    State(up): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    up.urls.push(path.clone());
    let mut request = up.http.request(method, format!("{}{path}", up.base));
    for (name, value) in &headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let answer = match request.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = (status, bytes).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}
