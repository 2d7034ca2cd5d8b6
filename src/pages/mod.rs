//! The web pages (DESIGN §4): integrations with the connect form, one integration with its
//! webhook address and trigger instructions, and Raw data → Deals.
//!
//! Pages are thin: each one calls the JSON API in-process (the same router that serves
//! `/api`, with the bearer token) and renders a template, so a page shows exactly what the API
//! says, error messages included. The browser signs in once with the API token, kept in an
//! HttpOnly, SameSite=Strict cookie.

mod api;
mod auth;
mod handlers;
mod views;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use secrecy::SecretString;

pub use api::InProcessApi;

/// What the page handlers share.
#[derive(Clone, Debug)]
pub struct PagesState {
    api: InProcessApi,
    token: std::sync::Arc<SecretString>,
}

impl PagesState {
    /// `api` is the router serving `/api/v1/...`; `token` the API token it expects.
    pub fn new(api: Router, token: SecretString) -> Self {
        Self {
            api: InProcessApi::new(api, token.clone()),
            token: std::sync::Arc::new(token),
        }
    }
}

/// Every page route; all but the sign-in page require the session cookie.
pub fn router(state: PagesState) -> Router {
    let signed_in = Router::new()
        .route("/", get(handlers::index))
        .route("/integrations", post(handlers::connect))
        .route("/integrations/{id}", get(handlers::integration))
        .route("/integrations/{id}/settings", post(handlers::save_settings))
        .route("/integrations/{id}/deals", get(handlers::deals))
        .route("/integrations/{id}/deals.csv", get(handlers::deals_csv))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_session,
        ));
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .merge(signed_in)
        .with_state(state)
}
