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

#[cfg(test)]
mod tests {
    use dealflow_shared::retailcrm::models::{OrdersResponse, StatusGroupsResponse};

    use super::*;
    use crate::mapping::tests::{Account, fixture};

    /// The fixtures' account (`mapping::tests`), loaded now.
    fn reference() -> Reference {
        let account = Account::fixtures();
        let groups: StatusGroupsResponse = fixture("reference-status-groups.json");
        Reference {
            timezone: account.timezone,
            default_currency: Some(account.currency),
            sites: account.sites,
            statuses: account.statuses,
            groups: groups.status_groups,
            managers: account.managers,
            loaded_at: Instant::now(),
        }
    }

    fn rank(event: &Event) -> u8 {
        match event {
            Event::FunnelStageSeen(_) => 0,
            Event::ContactUpserted(_) => 1,
            _ => 2,
        }
    }

    #[test]
    fn stages_come_first_then_contacts_then_deals_and_stages_once_per_load() {
        let reference = reference();
        let orders: OrdersResponse = fixture("orders-list.json");
        let now = Utc::now();
        let mut published = StageMemory::default();
        let deleted = [(999, Some(1000))];
        let mapped = map_fetched(&reference, &published, None, &orders.orders, &deleted, now);
        assert!(
            !mapped.new_stages.is_empty(),
            "a first load publishes its stages"
        );
        let deals = mapped
            .events
            .iter()
            .filter(|e| matches!(e, Event::DealUpserted(_)));
        assert_eq!(deals.count() + mapped.poison.len(), orders.orders.len());
        assert!(mapped.poison.is_empty(), "{:?}", mapped.poison);
        let ranks: Vec<u8> = mapped.events.iter().map(rank).collect();
        assert!(ranks.is_sorted(), "stages, contacts, deals: {ranks:?}");
        assert!(matches!(
            mapped.events.last(),
            Some(Event::DealDeleted(d)) if d.order_id == 999 && d.merged_into == Some(1000)
        ));

        published.remember(&mapped.new_stages);
        let again = map_fetched(
            &reference,
            &published,
            Some(mapped.loaded_at),
            &orders.orders,
            &[],
            now,
        );
        assert!(again.new_stages.is_empty(), "the same load's stages once");
        assert_eq!(
            again.events.len(),
            mapped.events.len() - mapped.new_stages.len() - deleted.len()
        );
    }
}
