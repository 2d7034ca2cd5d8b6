//! ingest: the write edge of dealflow (DESIGN §1, §4).
//!
//! RetailCRM trigger webhooks become `OrderChanged` events and settings commands become
//! `IntegrationConfigured` events, each answered only after the event bus acknowledged the write.
//! The HTTP service lands with issue 3; this crate holds its place in the workspace.
