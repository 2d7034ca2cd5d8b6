//! The realistic data set of one account, deterministic from a seed: shops, statuses,
//! managers, customers (individual and corporate) and orders with their whole history.

pub mod orders;
pub mod people;
pub mod pools;
pub mod reference;
pub mod timeline;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use self::orders::{BuyerPool, OrderSpec, build_order, random_buyer};
use self::people::{CustomerSeed, PeopleIds, corporate, customer};
use self::timeline::{Action, Event, replay, status_path, step_gap};
use crate::clock::Clock;
use crate::config::AccountConfig;
use crate::history::{Actor, HistoryLog};
use crate::model::Site;
use crate::store::{Ids, Store};

pub use self::orders::{NewItem, NewOrder};

/// The seed of account `index` derived from the run's seed.
pub fn account_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Generates the store of account `index`. `started` stands in for the anchor when the
/// configuration does not pin one.
pub fn generate(cfg: &AccountConfig, seed: u64, index: usize, started: DateTime<Utc>) -> Store {
    let mut rng = StdRng::seed_from_u64(account_seed(seed, index));
    let clock = Clock::new(cfg.timezone);
    let anchor = clock.local(cfg.anchor.unwrap_or(started));
    let window = Duration::days(i64::from(cfg.history_days.max(1)));
    let epoch = anchor - window - Duration::days(400);
    let sites = reference::sites(index, &cfg.currency, &mut rng, epoch);
    let (users, deleted_user) = reference::users(&mut rng, epoch, reference::brand_domain(index));
    let mut store = Store {
        clock,
        currency: cfg.currency.clone(),
        settings_updated_at: epoch + Duration::hours(3),
        sites,
        groups: reference::groups(),
        statuses: reference::statuses(),
        users,
        deleted_user_ids: vec![deleted_user],
        customers: BTreeMap::new(),
        corporates: BTreeMap::new(),
        orders: BTreeMap::new(),
        history: HistoryLog::new(rng.random_range(5_000..20_000)),
        ids: Ids {
            order: rng.random_range(1_000..5_000),
            item: rng.random_range(10_000..20_000),
            payment: rng.random_range(3_000..4_000),
        },
        rng: StdRng::seed_from_u64(rng.random()),
        garbled: Default::default(),
    };
    people_into(&mut store, &mut rng, cfg.orders, epoch, anchor - window);
    let events = plan_orders(&mut store, &mut rng, cfg.orders, anchor, window);
    replay(&mut store, events);
    store
}

fn pick_site<'a>(rng: &mut StdRng, sites: &'a [Site]) -> &'a Site {
    // Retail 60 %, wholesale 20 %, Kazakhstan 20 %.
    let i = match rng.random_range(0..10) {
        0..=5 => 0,
        6 | 7 => 1,
        _ => 2,
    };
    &sites[i.min(sites.len() - 1)]
}

fn people_into(
    store: &mut Store,
    rng: &mut StdRng,
    orders: usize,
    from: NaiveDateTime,
    to: NaiveDateTime,
) {
    let span = (to - from).num_seconds().max(1);
    let managers: Vec<u64> = store
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.id)
        .collect();
    let mut ids = PeopleIds {
        customer: rng.random_range(2_000..4_000),
        company: rng.random_range(700..900),
        address: rng.random_range(3_000..4_000),
    };
    let sites = store.sites.clone();
    for _ in 0..(orders / 3).max(10) {
        let site = pick_site(rng, &sites);
        let seed = CustomerSeed {
            site,
            created_at: from + Duration::seconds(rng.random_range(0..span)),
            manager_id: managers
                .choose(rng)
                .copied()
                .filter(|_| rng.random_bool(0.6)),
            is_contact: false,
        };
        let c = customer(rng, &mut ids, seed);
        store.customers.insert(c.id, c);
    }
    for n in 0..(orders / 15).max(3) {
        // Most companies buy in the wholesale shop.
        let site = if n % 4 == 3 {
            pick_site(rng, &sites)
        } else {
            &sites[1.min(sites.len() - 1)]
        };
        let seed = CustomerSeed {
            site,
            created_at: from + Duration::seconds(rng.random_range(0..span)),
            manager_id: managers.choose(rng).copied(),
            is_contact: false,
        };
        let cc = corporate(rng, &mut ids, seed, &mut store.customers);
        store.corporates.insert(cc.id, cc);
    }
    // One customer merged into another: GET answers `Not found` with `combinedTo`.
    let survivor = store
        .customers
        .values()
        .find(|c| !c.is_contact)
        .map(|c| c.id);
    let mut merged = customer(
        rng,
        &mut ids,
        CustomerSeed {
            site: &sites[0],
            created_at: to,
            manager_id: None,
            is_contact: false,
        },
    );
    merged.combined_to = survivor;
    store.customers.insert(merged.id, merged);
}

/// Plans the life of every order; returns the events to replay.
fn plan_orders(
    store: &mut Store,
    rng: &mut StdRng,
    count: usize,
    anchor: NaiveDateTime,
    window: Duration,
) -> Vec<Event> {
    let limit = anchor - Duration::minutes(1);
    let span = (window - Duration::minutes(10)).num_seconds().max(1);
    // Ages skew recent (u² of the window), like a growing shop: half the orders are from the
    // last quarter of the window, so every status group has orders in it.
    let mut created: Vec<NaiveDateTime> = (0..count)
        .map(|_| {
            let u: f64 = rng.random();
            anchor - Duration::minutes(10) - Duration::seconds((span as f64 * u * u) as i64)
        })
        .collect();
    created.sort();
    let managers: Vec<u64> = store
        .users
        .iter()
        .filter(|u| u.active)
        .map(|u| u.id)
        .collect();
    let inactive: Option<u64> = store.users.iter().find(|u| !u.active).map(|u| u.id);
    let deleted_user = store.deleted_user_ids.first().copied();
    let pool = BuyerPool::of(store);
    let archive_count = (count * 3).div_ceil(100);
    let mut events = Vec::new();
    let mut seq = 0;
    let mut push = |events: &mut Vec<Event>, at, order_id, actor, action| {
        seq += 1;
        events.push(Event {
            at,
            seq,
            order_id,
            actor,
            action,
        });
    };
    let mut lives: Vec<(u64, String, NaiveDateTime)> = Vec::with_capacity(count);
    for (n, created_at) in created.into_iter().enumerate() {
        let site = pick_site(rng, &store.sites).code.clone();
        let corporate_share = if site == store.sites[1.min(store.sites.len() - 1)].code {
            0.8
        } else {
            0.05
        };
        let Some(buyer) = random_buyer(store, &pool, &site, corporate_share) else {
            continue;
        };
        let archive = n < archive_count;
        let manager = match n {
            0 => deleted_user,
            _ if archive || n < count / 10 && rng.random_bool(0.3) => inactive,
            _ => managers.choose(rng).copied(),
        };
        let assign_later = n > 0 && manager.is_some() && rng.random_bool(0.25);
        let never = n > 0 && rng.random_bool(0.05);
        let spec = OrderSpec {
            site: site.clone(),
            buyer,
            created_at,
            status: "new".to_owned(),
            manager_id: manager.filter(|_| !assign_later && !never),
            items: None,
            delivery_cost: None,
            external_id: None,
            phone: None,
            email: None,
        };
        let Ok(order) = build_order(store, &spec) else {
            continue;
        };
        let id = order.id;
        let creator = if order.from_api {
            Actor::Api
        } else {
            manager.map_or(Actor::Code, Actor::User)
        };
        let initial_cost = order.delivery.cost;
        push(
            &mut events,
            created_at,
            id,
            creator,
            Action::Create(Box::new(order)),
        );
        let mut at = created_at;
        if assign_later
            && !never
            && let Some(m) = manager
        {
            at += Duration::minutes(rng.random_range(5..60));
            push(&mut events, at, id, Actor::Code, Action::Manager(m));
        }
        let actor = manager.filter(|_| !never).map_or(Actor::Code, Actor::User);
        let age_days = (anchor - created_at).num_days();
        for (step, code) in status_path(rng, age_days, archive).into_iter().enumerate() {
            let next = at + step_gap(rng);
            if next > limit {
                break;
            }
            at = next;
            if step == 0 && rng.random_bool(0.08) {
                let cost = if initial_cost.is_zero() {
                    Decimal::from(300)
                } else {
                    Decimal::ZERO
                };
                push(&mut events, at, id, actor, Action::DeliveryCost(cost));
            }
            push(&mut events, at, id, actor, Action::Status(code));
        }
        lives.push((id, site, at));
    }
    let admin = store
        .users
        .first()
        .map_or(Actor::Code, |u| Actor::User(u.id));
    plan_removals(rng, &lives, (limit, admin), &mut events, &mut push);
    events
}

type Push<'a> = dyn FnMut(&mut Vec<Event>, NaiveDateTime, u64, Actor, Action) + 'a;

/// About 1 % of the orders are deleted and one duplicate is merged into an earlier order.
fn plan_removals(
    rng: &mut StdRng,
    lives: &[(u64, String, NaiveDateTime)],
    (limit, admin): (NaiveDateTime, Actor),
    events: &mut Vec<Event>,
    push: &mut Push<'_>,
) {
    if lives.len() < 20 {
        return;
    }
    let mut taken = Vec::new();
    for _ in 0..(lives.len() / 100).max(1) {
        let (id, _, last) = &lives[rng.random_range(lives.len() / 2..lives.len())];
        let at = *last + Duration::hours(rng.random_range(1..48));
        if at <= limit && !taken.contains(id) {
            taken.push(*id);
            push(events, at, *id, admin, Action::Delete);
        }
    }
    if lives.len() < 30 {
        return;
    }
    // A duplicate: a later order merged into an earlier one of the same shop. Orders still
    // changing at the anchor cannot be merged in the past, so try a few candidates.
    for _ in 0..50 {
        let j = rng.random_range(lives.len() / 4..lives.len());
        let (from, site, from_last) = &lives[j];
        let earlier = lives[..j]
            .iter()
            .rev()
            .find(|(id, s, _)| s == site && !taken.contains(id));
        if let Some((into, _, into_last)) = earlier
            && !taken.contains(from)
        {
            let at = (*from_last).max(*into_last) + Duration::minutes(rng.random_range(10..120));
            if at <= limit {
                push(
                    events,
                    at,
                    *from,
                    Actor::Combine,
                    Action::Merge { into: *into },
                );
                return;
            }
        }
    }
}
