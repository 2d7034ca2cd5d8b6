//! End-to-end tests of the whole pipeline: the all-in-one process (in-process, or the real
//! binary for crash tests) against the RetailCRM simulator, on the embedded log and on Kafka,
//! and the split deployment's three processes behind their gateway.
//!
//! Every assertion reads the public read API and compares with the simulator's truth.

mod browser;
mod budget;
mod cli;
mod cockpit;
mod crash;
mod flow;
mod metrics;
mod openapi;
mod read_your_writes;
mod security;
mod split;
mod support;
mod tenants;
mod timeline;
