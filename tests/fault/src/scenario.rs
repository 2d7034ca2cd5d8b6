//! The change script: seeded mutations of the simulator's orders (status changes, edits of
//! amount, manager and contact, new orders, deletions, merges) paced over the chaos window,
//! and the webhook plan that announces them: one announcement per change plus duplicates,
//! 30% of the plan never sent. Every deployment receives the same announcements; each sender
//! reorders them on its own (see [`crate::chaos`]).

use std::collections::BTreeSet;
use std::time::Duration;

use dealflow_simulator::{AccountHandle, NewOrder, OrderEdit};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rust_decimal::Decimal;
use tokio::sync::mpsc::UnboundedSender;

/// Share of planned webhooks that are never sent (reconciliation must find those changes).
pub const NEVER_SENT: f64 = 0.30;
/// Orders deleted per account, and merges per account.
const DELETIONS_PER_ACCOUNT: usize = 10;
const MERGES_PER_ACCOUNT: usize = 2;

/// "Order X of account A changed", as a RetailCRM trigger would say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub account: usize,
    pub order: u64,
}

/// What the script did.
#[derive(Debug, Clone, Default)]
pub struct ScriptStats {
    pub status_changes: usize,
    pub edits: usize,
    pub created: usize,
    pub deleted: usize,
    pub merged: usize,
    /// Changes the simulator refused (e.g. a status the order already had): not announced.
    pub refused: usize,
    pub planned_webhooks: usize,
    pub duplicates: usize,
    pub never_sent: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Change(ChangeKind),
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    Status,
    Edit,
    Create,
    Delete,
    Merge,
}

/// Per-account state the script keeps to choose targets.
#[derive(Debug)]
struct AccountState {
    handle: AccountHandle,
    live: Vec<u64>,
    /// Orders that existed (and were backfilled) before the script started and were not yet
    /// deleted, merged or merged into: the only candidates for deletion and merge, so every
    /// removed order was seen by dealflow first (a deal it never saw cannot be "marked").
    removable: BTreeSet<u64>,
    statuses: Vec<String>,
    managers: Vec<u64>,
}

impl AccountState {
    fn new(handle: AccountHandle) -> Self {
        let (live, statuses, managers) = handle.inspect(|s| {
            (
                s.orders
                    .values()
                    .filter(|o| o.is_live())
                    .map(|o| o.id)
                    .collect::<Vec<_>>(),
                s.statuses
                    .iter()
                    .filter(|st| st.active)
                    .map(|st| st.code.clone())
                    .collect::<Vec<_>>(),
                s.users
                    .iter()
                    .filter(|u| u.active)
                    .map(|u| u.id)
                    .collect::<Vec<_>>(),
            )
        });
        Self {
            handle,
            removable: live.iter().copied().collect(),
            live,
            statuses,
            managers,
        }
    }

    fn remove(&mut self, order: u64) {
        self.live.retain(|o| *o != order);
        self.removable.remove(&order);
    }
}

/// The seeded plan: which slot does what, and which announcements are never sent.
fn plan(rng: &mut StdRng, webhooks: usize, to_create: usize, accounts: usize) -> Vec<(Slot, bool)> {
    let changes = webhooks / 2;
    let mut kinds = Vec::with_capacity(changes);
    kinds.extend(std::iter::repeat_n(ChangeKind::Create, to_create));
    kinds.extend(std::iter::repeat_n(
        ChangeKind::Delete,
        DELETIONS_PER_ACCOUNT * accounts,
    ));
    kinds.extend(std::iter::repeat_n(
        ChangeKind::Merge,
        MERGES_PER_ACCOUNT * accounts,
    ));
    while kinds.len() < changes {
        kinds.push(if rng.random_bool(0.6) {
            ChangeKind::Status
        } else {
            ChangeKind::Edit
        });
    }
    kinds.shuffle(rng);
    let mut slots: Vec<Slot> = kinds.into_iter().map(Slot::Change).collect();
    slots.extend(std::iter::repeat_n(Slot::Duplicate, webhooks - changes));
    slots.shuffle(rng);
    // A duplicate needs something announced before it.
    if let Some(first_change) = slots.iter().position(|s| *s != Slot::Duplicate) {
        slots.swap(0, first_change);
    }
    let never = (webhooks as f64 * NEVER_SENT).round() as usize;
    let mut dropped: Vec<bool> = (0..webhooks).map(|i| i < never).collect();
    dropped.shuffle(rng);
    slots.into_iter().zip(dropped).collect()
}

/// A phone in international format (valid whatever the shop's country).
fn phone(rng: &mut StdRng) -> String {
    format!(
        "+7 9{:02} {:03}-{:02}-{:02}",
        rng.random_range(0..100),
        rng.random_range(0..1000),
        rng.random_range(0..100),
        rng.random_range(0..100)
    )
}

/// Applies one change; returns the orders to announce (empty when the simulator refused).
fn change(rng: &mut StdRng, kind: ChangeKind, a: &mut AccountState, n: usize) -> Vec<u64> {
    let Some(&target) = a.live.choose(rng) else {
        return Vec::new();
    };
    match kind {
        ChangeKind::Status => {
            let Some(code) = a.statuses.choose(rng).cloned() else {
                return Vec::new();
            };
            match a.handle.set_status(target, &code, None) {
                Ok(true) => vec![target],
                _ => Vec::new(),
            }
        }
        ChangeKind::Edit => {
            let mut edit = OrderEdit::default();
            match rng.random_range(0..5) {
                0 => edit.delivery_cost = Some(Decimal::new(rng.random_range(0..150_000), 2)),
                1 => {
                    edit.manager_id = Some(if rng.random_bool(0.15) {
                        None
                    } else {
                        a.managers.choose(rng).copied()
                    })
                }
                2 => {
                    edit.first_name = Some(format!("Fault{n}"));
                    edit.last_name = Some(format!("Suite{}", rng.random_range(0..1000)));
                }
                3 => edit.phone = Some(phone(rng)),
                _ => edit.email = Some(format!("buyer{n}@fault.example")),
            }
            match a.handle.edit_order(target, &edit, None) {
                Ok(entries) if entries > 0 => vec![target],
                _ => Vec::new(),
            }
        }
        ChangeKind::Create => match a.handle.create_order(&NewOrder::default()) {
            Ok(id) => {
                a.live.push(id);
                vec![id]
            }
            Err(_) => Vec::new(),
        },
        ChangeKind::Delete => {
            let candidates: Vec<u64> = a.removable.iter().copied().collect();
            let Some(&victim) = candidates.choose(rng) else {
                return Vec::new();
            };
            match a.handle.delete_order(victim, None) {
                Ok(()) => {
                    a.remove(victim);
                    vec![victim]
                }
                Err(_) => Vec::new(),
            }
        }
        ChangeKind::Merge => {
            let candidates: Vec<u64> = a.removable.iter().copied().collect();
            let picked: Vec<u64> = candidates.choose_multiple(rng, 2).copied().collect();
            let [from, into] = picked[..] else {
                return Vec::new();
            };
            match a.handle.merge_orders(from, into) {
                Ok(()) => {
                    a.remove(from);
                    // The surviving order stays live but is kept out of later removals.
                    a.removable.remove(&into);
                    vec![from, into]
                }
                Err(_) => Vec::new(),
            }
        }
    }
}

/// Runs the script over `duration`, sending every announcement that is not dropped to each
/// of `senders`.
pub async fn run(
    mut rng: StdRng,
    accounts: Vec<AccountHandle>,
    webhooks: usize,
    to_create: usize,
    duration: Duration,
    senders: Vec<UnboundedSender<Announcement>>,
) -> ScriptStats {
    let mut states: Vec<AccountState> = accounts.into_iter().map(AccountState::new).collect();
    let slots = plan(&mut rng, webhooks, to_create, states.len());
    let mut stats = ScriptStats {
        planned_webhooks: slots.len(),
        ..ScriptStats::default()
    };
    let mut recent: Vec<Announcement> = Vec::new();
    let start = tokio::time::Instant::now();
    let step = duration / u32::try_from(slots.len().max(1)).unwrap_or(u32::MAX);
    for (i, (slot, dropped)) in slots.into_iter().enumerate() {
        tokio::time::sleep_until(start + step * u32::try_from(i).unwrap_or(u32::MAX)).await;
        let announced: Vec<Announcement> = match slot {
            Slot::Duplicate => {
                stats.duplicates += 1;
                // Recent changes are the likeliest to be announced twice.
                let from = recent.len().saturating_sub(300);
                recent[from..]
                    .choose(&mut rng)
                    .copied()
                    .into_iter()
                    .collect()
            }
            Slot::Change(kind) => {
                let account = rng.random_range(0..states.len());
                let orders = change(&mut rng, kind, &mut states[account], i);
                match kind {
                    _ if orders.is_empty() => stats.refused += 1,
                    ChangeKind::Status => stats.status_changes += 1,
                    ChangeKind::Edit => stats.edits += 1,
                    ChangeKind::Create => stats.created += 1,
                    ChangeKind::Delete => stats.deleted += 1,
                    ChangeKind::Merge => stats.merged += 1,
                }
                orders
                    .into_iter()
                    .map(|order| Announcement { account, order })
                    .collect()
            }
        };
        recent.extend(&announced);
        if dropped {
            stats.never_sent += 1;
            continue;
        }
        for a in announced {
            for s in &senders {
                let _ = s.send(a);
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_plan_has_the_asked_shares() {
        let mut rng = StdRng::seed_from_u64(7);
        let slots = plan(&mut rng, 10_000, 100, 2);
        assert_eq!(slots.len(), 10_000);
        assert_eq!(slots.iter().filter(|(_, d)| *d).count(), 3_000);
        let creates = slots
            .iter()
            .filter(|(s, _)| *s == Slot::Change(ChangeKind::Create))
            .count();
        assert_eq!(creates, 100);
        assert_ne!(slots[0].0, Slot::Duplicate);
        let again = plan(&mut StdRng::seed_from_u64(7), 10_000, 100, 2);
        assert_eq!(slots, again, "same seed, same plan");
    }
}
