//! One batch of one account: fetch up to 100 waiting orders in one call, map them, publish
//! the events, dead-letter what cannot be read or mapped. The reference data the orders name
//! (statuses, sites, managers) is resolved first, calling RetailCRM where it must; mapping
//! itself (`mapped`) is pure.
//!
//! An order RetailCRM's list does not return was deleted (or merged) or is otherwise amiss: one
//! `orders/history` already reported deleted becomes `DealDeleted` at once, any other is handed
//! to `unlisted` to be checked by id after the live batches, so it costs the batch's live
//! orders nothing. When the list answer cannot be read because of one bad order, the batch is
//! split in halves until the bad order is alone (a handful of extra calls), so one poison order
//! costs itself and nobody else.

use std::collections::HashSet;

use chrono::Utc;
use dealflow_shared::events::HealthStatus;
use dealflow_shared::retailcrm::RetailCrmError;
use dealflow_shared::retailcrm::models::Order;
use tokio::time::Instant;

use super::Worker;
use super::failure::{Failure, bus_failure, is_unreadable};
use super::unlisted::KnownDeleted;
use crate::context::STAGE_FETCH;
use crate::crm::Crm;
use crate::queue::{Entry, Ticket};

/// What listing a batch found.
#[derive(Debug, Default)]
pub(super) struct Listed {
    pub orders: Vec<Order>,
    /// Asked for, readable, and not in the answer: deleted (or merged) orders, looked up by
    /// id later (`unlisted`).
    pub missing: Vec<u64>,
    /// Orders whose answer could not be read, with the reason.
    pub unreadable: Vec<(u64, String)>,
}

/// Lists `ids` with as few calls as the answers allow (one, unless an unreadable order has to
/// be isolated by halving).
pub(super) async fn list(crm: &mut Crm, ids: &[i64]) -> Result<Listed, Failure> {
    let mut out = Listed::default();
    let asked: HashSet<i64> = ids.iter().copied().collect();
    let mut chunks = vec![ids.to_vec()];
    while let Some(chunk) = chunks.pop() {
        match crm.orders(&chunk).await {
            Ok(orders) => out
                .orders
                .extend(orders.into_iter().filter(|o| asked.contains(&o.id))),
            Err(error) if is_unreadable(&error) && chunk.len() > 1 => {
                let (left, right) = chunk.split_at(chunk.len() / 2);
                chunks.push(right.to_vec());
                chunks.push(left.to_vec());
            }
            Err(error) if is_unreadable(&error) => out
                .unreadable
                .push((chunk[0].unsigned_abs(), error.to_string())),
            Err(error) => return Err(error.into()),
        }
    }
    // A list may return an order twice across split chunks only if asked twice; keep one.
    let mut unique = HashSet::new();
    out.orders.retain(|o| unique.insert(o.id));
    let seen: HashSet<u64> = out
        .orders
        .iter()
        .map(|o| o.id.unsigned_abs())
        .chain(out.unreadable.iter().map(|(id, _)| *id))
        .collect();
    out.missing = ids
        .iter()
        .map(|id| id.unsigned_abs())
        .filter(|id| !seen.contains(id))
        .collect();
    Ok(out)
}

/// What one by-id lookup of an order the list did not return found.
#[derive(Debug)]
pub(super) enum LookedUp {
    /// It exists after all (the list missed it).
    Found(Box<Order>),
    /// `Not found`: deleted, or merged into the order given.
    Deleted(Option<u64>),
    /// The answer could not be read.
    Unreadable(String),
}

/// `GET /orders/{id}` for an order the list did not return. `known_deleted` holds the orders
/// `orders/history` reported merged away (RetailCRM's `Not found` may lack `combinedTo`).
pub(super) async fn look_up(
    crm: &mut Crm,
    id: u64,
    known_deleted: &KnownDeleted,
) -> Result<LookedUp, Failure> {
    let asked = i64::try_from(id).unwrap_or(i64::MAX);
    match crm.order(asked).await {
        Ok(order) => Ok(LookedUp::Found(Box::new(order))),
        Err(RetailCrmError::NotFound { combined_to, .. }) => Ok(LookedUp::Deleted(
            combined_to
                .and_then(|c| u64::try_from(c.id).ok())
                .or_else(|| known_deleted.merged_into(id)),
        )),
        Err(error) if is_unreadable(&error) => Ok(LookedUp::Unreadable(error.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// The account's client, or why the account is parked.
pub(super) fn client(crm: &mut Option<Crm>) -> Result<&mut Crm, Failure> {
    crm.as_mut().ok_or_else(|| Failure::Park {
        health: HealthStatus::AuthFailed,
        message: "the stored API key cannot be opened (was DEALFLOW_SECRET_KEY changed?); enter the key again".into(),
    })
}

impl Worker {
    /// Completes one batch from its list answer. Returns the orders the list did not return
    /// (and history does not already know as deleted): their tickets stay held until they are
    /// looked up by id (`unlisted`); every other ticket of the batch may be finished.
    pub(super) async fn publish_listed(
        &mut self,
        batch: &[(u64, Entry)],
        listed: Listed,
        started: Instant,
    ) -> Result<Vec<u64>, Failure> {
        // A deleted order never comes back: one history already reported needs no lookup.
        let (deleted, unlisted): (Vec<u64>, Vec<u64>) = listed
            .missing
            .iter()
            .partition(|id| self.known_deleted.contains(**id));
        let deleted: Vec<(u64, Option<u64>)> = deleted
            .into_iter()
            .map(|id| (id, self.known_deleted.merged_into(id)))
            .collect();
        let done: Vec<(u64, &[Ticket])> = batch
            .iter()
            .filter(|(id, _)| !unlisted.contains(id))
            .map(|(id, entry)| (*id, entry.tickets.as_slice()))
            .collect();
        self.publish_fetched(&done, &listed.orders, &deleted, listed.unreadable, started)
            .await?;
        Ok(unlisted)
    }

    /// Maps and publishes what was fetched for `done` (the orders and their tickets): the
    /// unreadable and unmappable orders' records go to the dead-letter topic first.
    pub(super) async fn publish_fetched(
        &mut self,
        done: &[(u64, &[Ticket])],
        orders: &[Order],
        deleted: &[(u64, Option<u64>)],
        unreadable: Vec<(u64, String)>,
        started: Instant,
    ) -> Result<(), Failure> {
        let metrics = self.context.metrics.clone();
        self.resolve_reference(orders, started).await?;
        let mut mapped = self.map_orders(orders, deleted);
        let mut poison: Vec<(u64, &'static str, String)> = unreadable
            .into_iter()
            .map(|(id, reason)| (id, STAGE_FETCH, reason))
            .collect();
        poison.append(&mut mapped.poison);

        for (order_id, stage, reason) in &poison {
            let tickets = done
                .iter()
                .find(|(id, _)| id == order_id)
                .map(|(_, tickets)| *tickets)
                .unwrap_or_default();
            if tickets.is_empty() {
                tracing::warn!(integration_id = %self.id, order_id, stage, reason, "order cannot be processed; its record comes back later");
            }
            for ticket in tickets {
                self.context
                    .dead_letter(&ticket.delivered, stage, reason)
                    .await
                    .map_err(bus_failure)?;
            }
        }

        let events = std::mem::take(&mut mapped.events);
        self.context
            .output
            .publish(self.id, events)
            .await
            .map_err(bus_failure)?;
        self.reference.remember_stages(&mapped);
        metrics.orders_fetched("found", orders.len());
        metrics.orders_fetched("deleted", deleted.len());
        metrics.stage("batch", started.elapsed());
        let emitted_at = Utc::now();
        for ticket in done.iter().flat_map(|(_, tickets)| tickets.iter()) {
            let took = (emitted_at - ticket.changed_at)
                .to_std()
                .unwrap_or_default();
            metrics.stage("change_to_emit", took);
        }
        Ok(())
    }
}
