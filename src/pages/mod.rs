//! The web pages (DESIGN §4): integrations with the connect form, one integration with its
//! webhook address, trigger instructions, sync panel, re-sync, key change, stage mapping, dead
//! letters and deletion; Raw data → Deals with its charts; and one deal with its trace.
//!
//! Pages are thin: they read through the projector's typed read operations ([`Reads`], what the
//! read API answers with) and write through the settings API — in-process in the all-in-one,
//! ingest's over HTTP when they are served by `--target projector` (DESIGN §2) — then render a
//! template, so a page shows exactly what the API says, error messages included. The browser signs in once with the operator's or a
//! tenant's token and then holds an HttpOnly, SameSite=Strict session cookie derived from it
//! (`Secure` behind https); a tenant's pages show only its integrations.

mod api;
mod auth;
mod charts;
mod cockpit;
mod filters;
mod handlers;
mod views;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use dealflow_projector::Reads;
use dealflow_shared::tenants::Authenticator;

pub use api::{InProcessApi, IngestClient, Writes};

/// What the page handlers share.
#[derive(Clone, Debug)]
pub struct PagesState {
    reads: Reads,
    /// The read API in this process (the CSV stream).
    read_api: InProcessApi,
    /// Where connect and settings changes go.
    writes: Writes,
    /// Signs users in with the operator's or a tenant's token, and resolves their sessions.
    auth: Authenticator,
    /// Whether the session cookie gets `Secure` (the public URL is https).
    secure_cookie: bool,
}

impl PagesState {
    /// `reads` of the read model; `read_api` the router serving the read API in this process;
    /// `writes` where the settings API is; `auth` the token check the API uses.
    pub fn new(reads: Reads, read_api: Router, writes: Writes, auth: Authenticator) -> Self {
        Self {
            reads,
            read_api: InProcessApi::new(read_api),
            writes,
            auth,
            secure_cookie: false,
        }
    }

    /// Marks the session cookie `Secure`: set when users reach dealflow over https, so the
    /// browser never sends the cookie over plain http.
    pub fn with_secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
        self
    }
}

/// Every page route; all but the sign-in page require the session cookie.
pub fn router(state: PagesState) -> Router {
    let signed_in = Router::new()
        .route("/", get(handlers::index))
        .route("/integrations", post(handlers::connect))
        .route("/integrations/{id}", get(handlers::integration))
        .route("/integrations/{id}/settings", post(handlers::save_settings))
        .route(
            "/integrations/{id}/stage-mapping",
            post(handlers::save_stage_mapping),
        )
        .route("/integrations/{id}/deals", get(handlers::deals))
        .route("/integrations/{id}/deals/{order_id}", get(cockpit::deal))
        .route(
            "/integrations/{id}/deals/{order_id}/refetch",
            post(cockpit::refetch),
        )
        .route("/integrations/{id}/resync", post(cockpit::resync))
        .route("/integrations/{id}/api-key", post(cockpit::change_api_key))
        .route(
            "/integrations/{id}/dead-letters/retry-all",
            post(cockpit::retry_all),
        )
        .route(
            "/integrations/{id}/dead-letters/{letter_id}/retry",
            post(cockpit::retry),
        )
        .route("/integrations/{id}/delete", post(cockpit::delete))
        .route(
            "/integrations/{id}/webhook-check",
            get(cockpit::webhook_check),
        )
        .route("/timezone", post(cockpit::set_timezone))
        .route("/integrations/{id}/deals.csv", get(handlers::deals_csv))
        .route(
            "/integrations/{id}/deal-items.csv",
            get(handlers::deal_items_csv),
        )
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
