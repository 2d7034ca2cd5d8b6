//! A batch's fetched orders (and deleted ones) turned into the events to publish: pure, with
//! the account's reference data as it is (the worker resolves what the orders name first,
//! `Worker::resolve_reference`), so mapping never calls RetailCRM.
//!
//! Funnel stages come first (only those that changed since the last published load of the
//! reference data), then contacts (one per person or company of the batch), then deals: the
//! order `Output::publish` keeps.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dealflow_shared::events::{ContactKind, ContactUpserted, DealDeleted, Event, FunnelStageSeen};
use dealflow_shared::retailcrm::models::Order;
use tokio::time::Instant;

use crate::context::STAGE_MAP;
use crate::mapping::{StageMemory, map_order, stages};
use crate::reference::Reference;

/// Orders mapped into events, ready to publish.
#[derive(Debug)]
pub(super) struct Mapped {
    /// Funnel stages first, then contacts, then deals.
    pub events: Vec<Event>,
    /// Orders that cannot be processed: `(order id, stage, reason)`.
    pub poison: Vec<(u64, &'static str, String)>,
    /// The funnel stages among `events`, remembered once they are acknowledged.
    pub new_stages: Vec<FunnelStageSeen>,
    /// The load of the reference data the stages were taken from.
    pub loaded_at: Instant,
}

/// Maps `orders` and `deleted` (with the order each was merged into) with `reference`. The
/// funnel stages are compared with `published` unless they were already published from this
/// load (`stages_synced`).
pub(super) fn map_fetched(
    reference: &Reference,
    published: &StageMemory,
    stages_synced: Option<Instant>,
    orders: &[Order],
    deleted: &[(u64, Option<u64>)],
    now: DateTime<Utc>,
) -> Mapped {
    let loaded_at = reference.loaded_at;
    let new_stages = if stages_synced == Some(loaded_at) {
        Vec::new()
    } else {
        published.changed(stages(
            &reference.sites,
            &reference.statuses,
            &reference.groups,
            now,
        ))
    };
    let mut events: Vec<Event> = new_stages
        .iter()
        .cloned()
        .map(Event::FunnelStageSeen)
        .collect();
    let mut contacts: BTreeMap<(u8, u64), ContactUpserted> = BTreeMap::new();
    let mut deals = Vec::with_capacity(orders.len() + deleted.len());
    let mut poison = Vec::new();
    let view = reference.view();
    for order in orders {
        match map_order(order, &view, now) {
            Ok(mapped) => {
                deals.push(Event::DealUpserted(mapped.deal));
                for contact in mapped.contacts {
                    let kind = u8::from(contact.kind == ContactKind::Company);
                    contacts.insert((kind, contact.contact_id), contact);
                }
            }
            Err(error) => poison.push((order.id.unsigned_abs(), STAGE_MAP, error.to_string())),
        }
    }
    for (order_id, merged_into) in deleted {
        deals.push(Event::DealDeleted(DealDeleted {
            order_id: *order_id,
            merged_into: *merged_into,
            observed_at: now,
        }));
    }
    events.extend(contacts.into_values().map(Event::ContactUpserted));
    events.extend(deals);
    Mapped {
        events,
        poison,
        new_stages,
        loaded_at,
    }
}
