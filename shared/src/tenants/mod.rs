//! Tenants: the cabinet customers one dealflow serves, their API tokens, and the scope every
//! request is answered in (DESIGN §4 "Tenants and tokens", §7.7).
//!
//! - [`events`]: the `tenants` topic's records (no token in clear, only its keyed hash);
//! - [`token`]: making and recognising tenant tokens (`dft_…`, 256 random bits);
//! - [`registry`]: every tenant and token, followed from the topic, and token look-up;
//! - [`auth`]: the bearer/session check that gives each request its [`Scope`].

pub mod auth;
pub mod events;
pub mod registry;
pub mod token;

#[cfg(test)]
mod tests;

pub use auth::{AuthFailure, Authenticator, SESSION_HEADER, Scope};
pub use events::{
    TenantConfigured, TenantEvent, TenantId, TenantRecord, TenantRemoved, TenantTokenIssued,
    TenantTokenRevoked, TenantTokenUsed,
};
pub use registry::{TenantRegistry, TokenRefusal, TokenState};
