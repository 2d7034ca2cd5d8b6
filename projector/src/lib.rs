//! projector: the raw-deals read model and its API (DESIGN §4, §5).
//!
//! Applies deal, contact and funnel events idempotently into PostgreSQL or SQLite. The store and
//! read API land with issue 5; this crate holds its place in the workspace.
