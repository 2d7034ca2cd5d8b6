//! A recording pass-through in front of each simulated account, one per deployment: dealflow
//! is connected to the proxy's address, every request is forwarded to the simulator unchanged,
//! and the URL of each request is kept so the secrets scan can check that no URL sent to
//! RetailCRM carries a key (the key belongs in the `X-API-KEY` header).
//!
//! Both deployments read the same simulated accounts (so one change script drives both), so
//! the simulator's own limit must allow both; each proxy holds its deployment to RetailCRM's
//! real limit instead: it counts every request in a sliding second, answers 503 above 10 as
//! RetailCRM does, and reports the busiest second it saw (DESIGN §7.4, issue 17). To a
//! deployment, its proxy *is* the account.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
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

/// RetailCRM's limit: requests per account in any sliding second.
pub const LIMIT_PER_SECOND: usize = 10;

/// One proxy's sliding-second window: the busiest second it saw and what it refused.
#[derive(Debug, Default)]
pub struct Limiter {
    inner: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    /// Arrivals of the last second: when, and who asked what (for a failed run's reader).
    recent: VecDeque<(Instant, String)>,
    busiest: usize,
    /// The requests of the busiest second, once it passed the limit.
    busiest_window: Vec<String>,
    refused: u64,
    total: u64,
}

impl Limiter {
    /// Counts an arrival (refused ones included); whether it is within the limit. `what`
    /// names the request (wall-clock time, caller's port, path) in a report of a busy second.
    fn arrive(&self, what: String) -> bool {
        let mut s = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        while s
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(1))
        {
            s.recent.pop_front();
        }
        s.recent.push_back((now, what));
        s.total += 1;
        if s.recent.len() > s.busiest {
            s.busiest = s.recent.len();
            if s.busiest > LIMIT_PER_SECOND {
                s.busiest_window = s.recent.iter().map(|(_, what)| what.clone()).collect();
            }
        }
        let allowed = s.recent.len() <= LIMIT_PER_SECOND;
        if !allowed {
            s.refused += 1;
        }
        allowed
    }

    /// `(requests, busiest sliding second, refused with 503)` so far.
    pub fn report(&self) -> (u64, usize, u64) {
        let s = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (s.total, s.busiest, s.refused)
    }

    /// The requests of the busiest second when it passed the limit (empty otherwise).
    pub fn busiest_window(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .busiest_window
            .clone()
    }
}

#[derive(Debug, Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    urls: Urls,
    limiter: Arc<Limiter>,
}

/// Starts a proxy to `upstream` (`http://host:port/`) that holds its callers to
/// [`LIMIT_PER_SECOND`]; returns its base URL and its limiter.
pub async fn start(upstream: &str, urls: Urls) -> anyhow::Result<(String, Arc<Limiter>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let limiter = Arc::new(Limiter::default());
    let state = Upstream {
        base: upstream.trim_end_matches('/').to_owned(),
        // No timeout of its own: a hang injected in the simulator must reach dealflow's
        // client as a hang.
        http: reqwest::Client::new(),
        urls,
        limiter: limiter.clone(),
    };
    let app = Router::new()
        .fallback(forward)
        .with_state(state)
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("RetailCRM proxy stopped: {e}");
        }
    });
    Ok((format!("http://{addr}/"), limiter))
}

async fn forward(
    State(up): State<Upstream>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    up.urls.push(path.clone());
    let what = format!(
        "{} :{} {}",
        chrono::Utc::now().format("%H:%M:%S%.3f"),
        caller.port(),
        uri.path()
    );
    if !up.limiter.arrive(what) {
        // What RetailCRM answers above its limit.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"success":false,"errorMsg":"Too many requests"}"#,
        )
            .into_response();
    }
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
