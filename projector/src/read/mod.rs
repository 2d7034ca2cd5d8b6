//! Reading the read model: the views the API serves, each scoped to one integration.
//!
//! Every query here takes the integration id and filters on it first (it leads every primary
//! key and index), so one integration's rows can never be served under another's id.

pub mod charts;
pub mod cockpit;
mod deal_cursor;
pub mod deals;
pub mod funnels;
pub mod integrations;
pub mod people;
