//! Applying events to the read model, inside a transaction the caller owns.
//!
//! `apply_events` is the whole policy: a batch of decoded envelopes becomes a few multi-row
//! statements. Every step is a function of stored state and the events, never of arrival
//! timing: settings, health and snapshots keep the newest by their own timestamps, the stage
//! history is a set, and everything derived is recomputed from facts. So applying a batch twice,
//! or the same events in other batch cuts, or a topic replayed after another, ends in the same
//! rows; [`batch`] adds the offsets that make a redelivered record a no-op in the first place.

pub mod batch;
mod contacts;
mod deal_row;
mod deals;
mod funnels;
mod integrations;
pub(crate) mod letters;
mod stage_history;
mod sync;
pub(crate) mod trace;
pub(crate) mod write_back;

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Conn;
use dealflow_shared::events::{Envelope, Event, IntegrationId};

use crate::store::values::micros;
use crate::store::{Dialect, StoreError};
use deals::DealEvent;
use letters::Letter;
use write_back::WriteBack;

/// What a batch did, for metrics and progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Events applied, by type.
    pub events: BTreeMap<&'static str, u64>,
    /// Events ignored because their integration was removed.
    pub ignored_removed: u64,
    /// Deal rows written.
    pub deals_written: u64,
    /// Integrations whose deals were re-derived after a marker or stage mapping change.
    pub rederived_integrations: u64,
}

impl Applied {
    /// Adds another batch's figures.
    pub fn add(&mut self, other: &Applied) {
        for (kind, n) in &other.events {
            *self.events.entry(kind).or_default() += n;
        }
        self.ignored_removed += other.ignored_removed;
        self.deals_written += other.deals_written;
        self.rederived_integrations += other.rederived_integrations;
    }

    /// Total events applied.
    pub fn total(&self) -> u64 {
        self.events.values().sum()
    }
}

/// Applies decoded events (in bus order) and dead letters within the caller's transaction;
/// a replay passes its write-back memo ([`write_back`]), the live consumer none.
pub(crate) async fn apply_events(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    envelopes: &[&Envelope],
    letters: &[Letter],
    mut memo: Option<&mut WriteBack>,
) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    let ids: BTreeSet<IntegrationId> = envelopes
        .iter()
        .map(|e| e.integration_id)
        .chain(letters.iter().map(|l| l.integration_id))
        .collect();
    if let Some(memo) = memo.as_deref_mut() {
        memo.next_step();
        // Settings changes re-derive and remove deals in SQL: the tables must hold everything,
        // and what the memo holds would be stale afterwards.
        let settings = envelopes.iter().any(|e| {
            matches!(
                e.event,
                Event::IntegrationConfigured(_) | Event::IntegrationRemoved(_)
            )
        });
        if settings {
            applied.deals_written += memo.flush_all(conn, dialect).await? as u64;
        }
        memo.lettered(letters.iter().map(|l| l.integration_id));
    }
    let mut removed = integrations::removed_among(conn, &ids).await?;
    let mut removals = BTreeMap::new();
    for e in envelopes {
        if let Event::IntegrationRemoved(r) = &e.event {
            removed.insert(e.integration_id);
            removals
                .entry(e.integration_id)
                .or_insert_with(|| micros(r.removed_at));
        }
    }
    for (id, removed_at) in removals {
        integrations::remove(conn, id, removed_at).await?;
    }

    let mut configs = BTreeMap::new();
    let mut health = BTreeMap::new();
    let mut changes = Vec::new();
    let mut stages = Vec::new();
    let mut contacts = Vec::new();
    let mut deals = Vec::new();
    let mut reconciled: BTreeMap<IntegrationId, i64> = BTreeMap::new();
    let mut sync_states = BTreeMap::new();
    let mut kept = Vec::with_capacity(envelopes.len());
    for &e in envelopes {
        let id = e.integration_id;
        if removed.contains(&id) && !matches!(e.event, Event::IntegrationRemoved(_)) {
            applied.ignored_removed += 1;
            continue;
        }
        kept.push(e);
        *applied
            .events
            .entry(e.event.event_type().as_str())
            .or_default() += 1;
        match &e.event {
            Event::IntegrationConfigured(c) => newest(&mut configs, id, c, |c| c.updated_at),
            Event::IntegrationHealthChanged(h) => newest(&mut health, id, h, |h| h.checked_at),
            Event::OrderChanged(c) => changes.push((id, c)),
            Event::FunnelStageSeen(s) => stages.push((id, s)),
            Event::ContactUpserted(c) => contacts.push((id, c)),
            Event::DealUpserted(d) => deals.push((id, DealEvent::Upserted(d))),
            Event::DealDeleted(d) => deals.push((id, DealEvent::Deleted(d))),
            Event::DealStagesRecorded(d) => deals.push((id, DealEvent::Stages(d))),
            Event::IntegrationRemoved(_) => {}
            Event::SyncStateChanged(s) => {
                newest(&mut sync_states, id, s, |s| s.updated_at);
                if let Some(at) = s.last_reconciled_at {
                    let at = micros(at);
                    let entry = reconciled.entry(id).or_insert(at);
                    *entry = (*entry).max(at);
                }
            }
        }
    }
    let configured = integrations::configure(conn, dialect, configs).await?;
    applied.rederived_integrations = (configured.rederived + configured.remapped.len()) as u64;
    integrations::health(conn, health).await?;
    integrations::webhooks(conn, integrations::latest_webhooks(changes)).await?;
    integrations::reconciled(conn, reconciled).await?;
    let regrouped = funnels::apply(conn, &stages).await?;
    contacts::apply(conn, &contacts).await?;
    applied.deals_written += deals::apply(
        conn,
        dialect,
        &deals,
        &regrouped,
        &configured.remapped,
        memo.as_deref_mut(),
    )
    .await? as u64;
    sync::apply(conn, sync_states).await?;
    let letters: Vec<Letter> = letters
        .iter()
        .filter(|l| !removed.contains(&l.integration_id))
        .cloned()
        .collect();
    trace::apply(
        conn,
        dialect,
        &trace::entries(&kept, &letters),
        memo.as_deref_mut(),
    )
    .await?;
    letters::apply(conn, &letters).await?;
    // Letters leave the list once their order got through: look where either moved.
    let resolvable: BTreeSet<IntegrationId> = deals
        .iter()
        .map(|(id, _)| *id)
        .chain(letters.iter().map(|l| l.integration_id))
        .collect();
    if let Some(memo) = memo.as_deref_mut() {
        // The resolution reads the deals in SQL.
        let lettered = memo.lettered_among(&resolvable);
        if !lettered.is_empty() {
            applied.deals_written += memo.sync_deals(conn, Some(&lettered)).await? as u64;
        }
    }
    letters::resolve(conn, &resolvable).await?;
    if let Some(memo) = memo {
        applied.deals_written += memo.evict(conn, dialect).await? as u64;
    }
    Ok(applied)
}

/// Keeps the newest of each integration's events by `at`; ties go to the later one.
fn newest<'a, T, K: Ord>(
    map: &mut BTreeMap<IntegrationId, &'a T>,
    id: IntegrationId,
    event: &'a T,
    at: impl Fn(&T) -> K,
) {
    match map.get(&id) {
        Some(current) if at(current) > at(event) => {}
        _ => {
            map.insert(id, event);
        }
    }
}
