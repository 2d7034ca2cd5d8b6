//! Generated event streams: realistic, deterministic (seeded) traffic of several integrations
//! for tests and the benchmark. Orders move through a RetailCRM-like status path; some are
//! deleted or merged, some snapshots arrive twice, and some arrive late with an older
//! `observed_at` (which must change nothing). A third of the orders also get their status
//! records from `orders/history` (`DealStagesRecorded`), some with a stage no snapshot showed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use dealflow_shared::bus::{BusError, EventBus, OutRecord};
use dealflow_shared::events::{
    ChangeSource, ContactKind, ContactUpserted, DealContact, DealDeleted, DealItem,
    DealStagesRecorded, DealUpserted, Envelope, Event, FunnelStageSeen, HealthStatus,
    IntegrationConfigured, IntegrationHealthChanged, IntegrationId, Manager, OrderChanged,
    SealedApiKey, StageRecorded, Utm,
};
use dealflow_shared::topics::Topics;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use uuid::Uuid;

/// Which topic an event goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Integrations,
    Health,
    Funnels,
    Contacts,
    Deals,
    OrderChanged,
    SyncState,
}

impl Source {
    /// The topic name.
    pub fn topic(self, topics: &Topics) -> String {
        match self {
            Source::Integrations => topics.integrations(),
            Source::Health => topics.health(),
            Source::Funnels => topics.funnels(),
            Source::Contacts => topics.contacts(),
            Source::Deals => topics.deals(),
            Source::OrderChanged => topics.order_changed(),
            Source::SyncState => topics.sync_state(),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub seed: u64,
    pub integrations: usize,
    pub orders_per_integration: usize,
}

/// A generated stream.
#[derive(Debug, Clone)]
pub struct Generated {
    pub integrations: Vec<IntegrationId>,
    /// In publishing order.
    pub events: Vec<(Source, Envelope)>,
}

impl Generated {
    /// The events of `sources` only, in publishing order (a test that sets the stage itself).
    pub fn only(&self, sources: &[Source]) -> Vec<(Source, Envelope)> {
        self.events
            .iter()
            .filter(|(s, _)| sources.contains(s))
            .cloned()
            .collect()
    }

    /// The first deal snapshot of the stream.
    pub fn first_deal(&self) -> DealUpserted {
        self.events
            .iter()
            .find_map(|(_, e)| match &e.event {
                Event::DealUpserted(d) => Some(d.clone()),
                _ => None,
            })
            .expect("a generated stream has deals")
    }
}

/// The shops of every generated account: (code, name).
pub const SITES: [(&str, &str); 2] = [("shop-main", "Main shop"), ("shop-outlet", "Outlet")];

/// Statuses: (code, name, group, group ordering, status ordering).
pub const STATUSES: [(&str, &str, &str, i64, i64); 8] = [
    ("new", "Новый", "new", 10, 10),
    (
        "availability-confirmed",
        "Наличие подтверждено",
        "approval",
        20,
        10,
    ),
    ("assembling", "Комплектуется", "assembling", 30, 10),
    ("send-to-delivery", "Передан в доставку", "delivery", 40, 10),
    ("delivering", "Доставляется", "delivery", 40, 20),
    ("complete", "Выполнен", "complete", 50, 10),
    ("cancel-other", "Отменён", "cancel", 60, 10),
    ("no-product", "Нет в наличии", "cancel", 60, 20),
];

/// The time generated streams start at.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 7, 0, 0)
        .single()
        .expect("a valid time")
}

/// Settings of a generated integration.
pub fn configured(
    default_funnel: bool,
    include_delivery_cost: bool,
    updated_at: DateTime<Utc>,
) -> IntegrationConfigured {
    IntegrationConfigured {
        tenant_id: dealflow_shared::events::TenantId::default_tenant(),
        crm_url: "https://demo.retailcrm.ru/".to_owned(),
        api_key_sealed: SealedApiKey("v1.synthetic".to_owned()),
        api_key_hint: "…abcd".to_owned(),
        active: true,
        default_funnel,
        include_delivery_cost,
        revenue: dealflow_shared::events::Revenue::Total,
        stage_mapping: Default::default(),
        backfill_days: 30,
        webhook_token_generation: 0,
        history_since_id: None,
        resync: None,
        created_at: epoch(),
        updated_at,
    }
}

/// An envelope with a deterministic id.
pub fn envelope(rng: &mut StdRng, id: IntegrationId, at: DateTime<Utc>, event: Event) -> Envelope {
    Envelope {
        id: Uuid::from_u128(rng.random()),
        integration_id: id,
        occurred_at: at,
        event,
    }
}

/// Generates the stream of `spec`.
pub fn generate(spec: &Spec) -> Generated {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    // (emission time, tie-breaker, source, envelope): sorted by emission time at the end.
    let mut out: Vec<(DateTime<Utc>, u64, Source, Envelope)> = Vec::new();
    let mut seq = 0_u64;
    let mut push = |at, source, env| {
        seq += 1;
        out.push((at, seq, source, env));
    };
    let mut integrations = Vec::new();
    let start = epoch();
    for n in 0..spec.integrations {
        let id = IntegrationId(Uuid::from_u128(rng.random()));
        integrations.push(id);
        let config = configured(n % 2 == 1, n % 3 != 2, start);
        push(
            start,
            Source::Integrations,
            envelope(&mut rng, id, start, Event::IntegrationConfigured(config)),
        );
        let health = IntegrationHealthChanged {
            status: HealthStatus::Ok,
            message: None,
            checked_at: start,
        };
        push(
            start,
            Source::Health,
            envelope(&mut rng, id, start, Event::IntegrationHealthChanged(health)),
        );
        for (site, site_name) in SITES {
            for (code, name, group, group_ordering, ordering) in STATUSES {
                let stage = FunnelStageSeen {
                    site: site.to_owned(),
                    site_name: Some(site_name.to_owned()),
                    stage_code: code.to_owned(),
                    stage_name: name.to_owned(),
                    stage_ordering: ordering,
                    active: true,
                    group_code: group.to_owned(),
                    group_name: Some(group.to_owned()),
                    group_ordering,
                    observed_at: start,
                };
                push(
                    start,
                    Source::Funnels,
                    envelope(&mut rng, id, start, Event::FunnelStageSeen(stage)),
                );
            }
        }
        for o in 0..spec.orders_per_integration {
            for (at, source, event) in order_events(&mut rng, o, spec.orders_per_integration) {
                let env = envelope(&mut rng, id, at, event);
                // A redelivered duplicate (same envelope, same id) now and then.
                if rng.random_bool(0.03) {
                    push(at, source, env.clone());
                }
                push(at, source, env);
            }
        }
    }
    out.sort_by_key(|(at, seq, _, _)| (*at, *seq));
    Generated {
        integrations,
        events: out.into_iter().map(|(_, _, s, e)| (s, e)).collect(),
    }
}

/// What the order is worth and what was in it, from its own id and sums (no draw from the
/// stream's generator, so the rest of the stream stays what it was): one or two lines whose
/// sums add up to the goods, purchase prices at 60 %, paid in full once complete.
fn with_value(mut deal: DealUpserted, paid: bool) -> DealUpserted {
    let goods = deal.total_sum - deal.delivery_cost;
    let purchase = |price: Decimal| (price * Decimal::new(6, 1)).round_dp(2);
    let line = |offer: u64, name: &str, quantity: Decimal, price: Decimal| DealItem {
        offer_id: Some(offer),
        article: Some(format!("A-{offer}")),
        name: Some(name.to_owned()),
        quantity,
        price,
        sum: price * quantity,
        purchase_price: Some(purchase(price)),
        canceled: false,
    };
    deal.items = if deal.order_id.is_multiple_of(2) {
        vec![line(
            300 + deal.order_id % 50,
            "Чайник",
            Decimal::ONE,
            goods,
        )]
    } else {
        // Two pieces of one offer and a cancelled line that adds nothing.
        let half = (goods / Decimal::TWO).round_dp(2);
        let mut lines = vec![
            line(400 + deal.order_id % 50, "Кружка", Decimal::TWO, half),
            line(500, "Упаковка", Decimal::ONE, goods - half * Decimal::TWO),
        ];
        lines.push(DealItem {
            canceled: true,
            ..line(600, "Подарок", Decimal::ONE, Decimal::new(100, 0))
        });
        lines
    };
    deal.purchase_sum = Some(
        deal.items
            .iter()
            .filter(|i| !i.canceled)
            .filter_map(|i| i.purchase_price.map(|p| p * i.quantity))
            .sum(),
    );
    if paid {
        deal.paid_sum = Some(deal.total_sum);
        deal.paid_at = deal.stage_entered_at;
    }
    // Custom fields of several value types (a multiselect, a flag, a text a spreadsheet would
    // take for a formula); a third of the orders have none.
    match deal.order_id % 3 {
        0 => {
            deal.custom_fields
                .insert("colors".into(), serde_json::json!(["red", "blue"]));
            deal.custom_fields
                .insert("gift_wrap".into(), serde_json::json!(true));
        }
        1 => {
            deal.custom_fields
                .insert("note".into(), serde_json::json!("=1+2"));
        }
        _ => {}
    }
    deal
}

/// The events of one order: snapshots along a status path, webhooks, its contact, sometimes a
/// late older snapshot and a deletion.
fn order_events(rng: &mut StdRng, o: usize, orders: usize) -> Vec<(DateTime<Utc>, Source, Event)> {
    let order_id = 10_000 + o as u64;
    let created = epoch() + Duration::seconds(60 * o as i64 + rng.random_range(0..50));
    let ending = match rng.random_range(0..10) {
        0..=5 => "complete",
        6 | 7 => "cancel-other",
        _ => "delivering",
    };
    let mut path = vec!["new", "assembling", "send-to-delivery"];
    if ending != "delivering" || rng.random_bool(0.5) {
        path.push(ending);
    }
    let steps = rng.random_range(1..=path.len());
    let site = SITES[rng.random_range(0..SITES.len())].0;
    let total = Decimal::new(rng.random_range(50_000..900_000), 2);
    let delivery = if rng.random_bool(0.6) {
        Decimal::new(35_000, 2)
    } else {
        Decimal::ZERO
    };
    let manager_id = rng.random_range(1..=5_u64);
    let customer = 9_000 + rng.random_range(0..(orders as u64).max(1));
    let contact = DealContact {
        id: Some(customer),
        name: Some(format!("Клиент {customer}")),
        phones: vec![format!("+7916{customer:07}")],
        emails: vec![format!("c{customer}@example.com")],
    };
    let mut events = Vec::new();
    let mut at = created;
    let mut snapshots = Vec::new();
    // Drawn from a generator of its own, so the rest of the stream stays what it was.
    let mut own = StdRng::seed_from_u64(order_id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let recorded = own.random_bool(0.3);
    // With history, a middle stage may be one no snapshot caught (it lasted between fetches).
    let unseen = (recorded && steps >= 3).then(|| own.random_range(1..steps - 1));
    let mut taken = Vec::new();
    for (i, status) in path.iter().take(steps).enumerate() {
        if i > 0 {
            at += Duration::seconds(rng.random_range(600..86_400));
        }
        taken.push(StageRecorded {
            stage_code: (*status).to_owned(),
            entered_at: at,
            history_id: order_id * 100 + i as u64,
        });
        let observed = at + Duration::seconds(rng.random_range(1..30));
        let group = STATUSES
            .iter()
            .find(|s| s.0 == *status)
            .map(|s| s.2.to_owned());
        let deal = DealUpserted {
            order_id,
            number: Some(format!("{order_id}A")),
            external_id: rng.random_bool(0.5).then(|| format!("wc-{order_id}")),
            site: site.to_owned(),
            status_code: (*status).to_owned(),
            status_group: group,
            total_sum: total,
            delivery_cost: delivery,
            currency: Some("RUB".to_owned()),
            manager: Some(Manager {
                id: manager_id,
                name: Some(format!("Менеджер {manager_id}")),
                email: Some(format!("m{manager_id}@shop.example")),
                phone: None,
            }),
            contact: Some(contact.clone()),
            company: None,
            utm: Utm {
                source: Some(["google", "yandex", "direct"][o % 3].to_owned()),
                medium: Some("cpc".to_owned()),
                campaign: Some(format!("c{}", o % 7)),
                keyword: None,
                content: None,
            },
            client_id: Some(format!("{order_id}.1705302000")),
            custom_fields: BTreeMap::new(),
            created_at: created,
            stage_entered_at: Some(at),
            observed_at: observed,
            order_type: Some("eshop-individual".to_owned()),
            order_method: Some(["shopping-cart", "phone", "one-click"][o % 3].to_owned()),
            purchase_sum: None,
            paid_sum: None,
            paid_at: None,
            items: Vec::new(),
        };
        let deal = with_value(deal, *status == "complete");
        let change = OrderChanged {
            order_id,
            source: ChangeSource::Webhook,
            received_at: at,
        };
        events.push((at, Source::OrderChanged, Event::OrderChanged(change)));
        if i == 0 {
            let contact = ContactUpserted {
                contact_id: customer,
                kind: ContactKind::Person,
                name: contact.name.clone(),
                phones: contact.phones.clone(),
                emails: contact.emails.clone(),
                observed_at: observed,
            };
            events.push((observed, Source::Contacts, Event::ContactUpserted(contact)));
        }
        if unseen != Some(i) {
            events.push((observed, Source::Deals, Event::DealUpserted(deal.clone())));
        }
        snapshots.push(deal);
    }
    if recorded {
        let read = at + Duration::seconds(90);
        let stages = DealStagesRecorded {
            order_id,
            stages: taken,
            observed_at: read,
        };
        events.push((read, Source::Deals, Event::DealStagesRecorded(stages)));
    }
    // A late snapshot: re-sent after the newest, older `observed_at`.
    if snapshots.len() > 1 && rng.random_bool(0.1) {
        let stale = snapshots[0].clone();
        events.push((
            at + Duration::seconds(40),
            Source::Deals,
            Event::DealUpserted(stale),
        ));
    }
    if rng.random_bool(0.04) {
        let deleted = DealDeleted {
            order_id,
            merged_into: rng.random_bool(0.5).then_some(order_id + 1),
            observed_at: at + Duration::seconds(60),
        };
        events.push((
            at + Duration::seconds(60),
            Source::Deals,
            Event::DealDeleted(deleted),
        ));
    }
    events
}

/// Publishes events in order (per topic), in chunks.
pub async fn publish(
    bus: &dyn EventBus,
    topics: &Topics,
    events: &[(Source, Envelope)],
) -> Result<(), BusError> {
    let mut by_topic: BTreeMap<Source, Vec<OutRecord>> = BTreeMap::new();
    for (source, envelope) in events {
        by_topic
            .entry(*source)
            .or_default()
            .push(OutRecord::new(envelope.key(), envelope.encode()));
    }
    for (source, records) in by_topic {
        let topic = source.topic(topics);
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<OutRecord> = records.by_ref().take(2000).collect();
            bus.publish(&topic, chunk).await?;
        }
    }
    Ok(())
}
