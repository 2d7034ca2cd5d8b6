//! Plans the life of each generated order (creation, manager assignment, status steps, a few
//! amount changes, some deletions and one merge) as timed events, then replays them in time
//! order through the ordinary mutations, so the generated history is exactly what the
//! mutations would have written live.

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use rand::seq::IndexedRandom;
use rust_decimal::Decimal;

use super::reference::{CANCEL_CODES, INACTIVE_COMPLETE, INACTIVE_NEW};
use crate::history::Actor;
use crate::model::Order;
use crate::orders::OrderEdit;
use crate::store::Store;

/// What happens to an order at one moment.
#[derive(Debug)]
pub enum Action {
    /// The order is created.
    Create(Box<Order>),
    /// A manager is assigned.
    Manager(u64),
    /// The status changes.
    Status(String),
    /// The delivery cost changes.
    DeliveryCost(Decimal),
    /// The order is deleted.
    Delete,
    /// The order is merged into another one.
    Merge {
        /// The surviving order.
        into: u64,
    },
}

/// A timed action.
#[derive(Debug)]
pub struct Event {
    /// When.
    pub at: NaiveDateTime,
    /// Tie-breaker: planning order.
    pub seq: usize,
    /// Which order.
    pub order_id: u64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
}

/// The main path through the funnel; targets are prefixes of it.
const MAIN_PATH: &[&str] = &[
    "client-confirmed",
    "send-to-assembling",
    "assembling-complete",
    "send-to-delivery",
    "delivering",
    "complete",
];

/// Chooses the status path of an order created `age_days` before the anchor.
/// `archive` orders are the oldest ones, which ended in statuses that are inactive today.
pub fn status_path(rng: &mut impl Rng, age_days: i64, archive: bool) -> Vec<String> {
    let owned = |codes: &[&str]| codes.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    if archive {
        return if rng.random_bool(0.5) {
            owned(&[INACTIVE_NEW])
        } else {
            owned(&["client-confirmed", INACTIVE_COMPLETE])
        };
    }
    // Target group weights: new, approval, assembling, delivery, complete, cancel.
    let weights: [u32; 6] = if age_days > 30 {
        [0, 0, 0, 5, 70, 25]
    } else if age_days > 7 {
        [0, 10, 15, 25, 35, 15]
    } else {
        [30, 30, 20, 10, 5, 5]
    };
    let total: u32 = weights.iter().sum();
    let mut pick = rng.random_range(0..total);
    let mut group = 0;
    for (i, w) in weights.iter().enumerate() {
        if pick < *w {
            group = i;
            break;
        }
        pick -= w;
    }
    match group {
        0 => Vec::new(),
        1 => match rng.random_range(0..3) {
            0 => owned(&["availability-confirmed"]),
            1 => owned(&["client-confirmed"]),
            _ => owned(&["client-confirmed", "prepayed"]),
        },
        2 => owned(&MAIN_PATH[..rng.random_range(2..=3)]),
        3 => {
            let mut path = owned(&MAIN_PATH[..rng.random_range(4..=5)]);
            if rng.random_bool(0.1) {
                path.push("redirect".to_owned());
            }
            path
        }
        4 => owned(MAIN_PATH),
        _ => {
            let mut path = owned(&MAIN_PATH[..rng.random_range(0..=3)]);
            path.push((*CANCEL_CODES.choose(rng).unwrap_or(&"cancel-other")).to_owned());
            path
        }
    }
}

/// A random gap between two steps of an order's life.
pub fn step_gap(rng: &mut impl Rng) -> Duration {
    Duration::minutes(rng.random_range(20..30 * 60))
}

/// Replays the events in time order through the store's mutations.
pub fn replay(store: &mut Store, mut events: Vec<Event>) {
    events.sort_by_key(|e| (e.at, e.seq));
    for e in events {
        let result = match e.action {
            Action::Create(order) => {
                store.insert_order(*order, e.actor, e.at);
                Ok(())
            }
            Action::Manager(id) => {
                let edit = OrderEdit {
                    manager_id: Some(Some(id)),
                    ..OrderEdit::default()
                };
                store.edit_order(e.order_id, &edit, e.actor, e.at).map(drop)
            }
            Action::Status(code) => store.set_status(e.order_id, &code, e.actor, e.at).map(drop),
            Action::DeliveryCost(cost) => {
                let edit = OrderEdit {
                    delivery_cost: Some(cost),
                    ..OrderEdit::default()
                };
                store.edit_order(e.order_id, &edit, e.actor, e.at).map(drop)
            }
            Action::Delete => store.delete_order(e.order_id, e.actor, e.at),
            Action::Merge { into } => store.merge_orders(e.order_id, into, e.at),
        };
        // The plan guarantees every event applies; a failure is a generator bug worth seeing.
        if let Err(err) = result {
            tracing::warn!(order_id = e.order_id, %err, "generated event did not apply");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn paths_use_known_statuses_and_end_where_the_age_allows() {
        let statuses = crate::data::reference::statuses();
        let mut rng = StdRng::seed_from_u64(7);
        for age in [0, 10, 100] {
            for _ in 0..200 {
                for code in status_path(&mut rng, age, false) {
                    assert!(
                        statuses.iter().any(|s| s.code == code && s.active),
                        "{code}"
                    );
                }
            }
        }
        let archive = status_path(&mut rng, 400, true);
        let last = archive.last().unwrap();
        assert!(statuses.iter().any(|s| &s.code == last && !s.active));
    }
}
