//! End-to-end tests of the simulator over real HTTP: shapes against the fixtures, auth,
//! rate limit, history, orders, customers and the test controls.

mod auth;
mod common;
mod controls;
mod history;
mod orders;
mod people;
mod rate_limit;
mod shapes;
