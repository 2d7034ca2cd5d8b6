//! Integration tests of the projector: real bus (embedded log; nisshi for the Kafka case),
//! real databases (a SQLite file and a fresh PostgreSQL database per test).

mod support;

mod api;
mod cockpit;
mod consumer;
mod idempotency;
mod kafka;
mod markers;
mod poison;
mod replay;
mod tenants;
mod timeline;
mod upkeep;
