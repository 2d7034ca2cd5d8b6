//! enricher: the only component that talks to RetailCRM (DESIGN §1, §5).
//!
//! Consumes `order-changed`, fetches orders in batches within each account's request budget and
//! emits deals, contacts and funnel stages. The consumer lands with issue 4; this crate holds its
//! place in the workspace.
