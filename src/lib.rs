//! The `dealflow` command's library: everything above the components.
//!
//! - [`allinone`]: ingest, enricher and projector in one process behind one listener, with the
//!   web pages (`dealflow run` without `--target`);
//! - [`pages`]: the server-rendered pages (integrations, connect form, Raw data → Deals);
//! - [`demo`]: the all-in-one plus the RetailCRM simulator and generated trigger traffic.
//!
//! The binary's `main` only parses the command line and calls into here, so tests build the
//! same process in-memory on port 0.

pub mod allinone;
pub mod demo;
pub mod pages;
