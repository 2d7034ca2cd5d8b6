//! Topic names (DESIGN §6), every one under the configurable prefix, and their retention.

use crate::bus::{Retention, TopicSpec};
use crate::events::EventType;

/// Partitions of every topic on Kafka: the unit of consumer parallelism. Records are keyed by
/// integration, so one account's events stay in order on one partition.
pub const DEFAULT_PARTITIONS: i32 = 12;

/// The topic names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

/// Topic names after the prefix, as DESIGN §6 lists them.
pub mod names {
    pub const INTEGRATIONS: &str = "integrations";
    pub const ORDER_CHANGED: &str = "order-changed";
    pub const DEALS: &str = "deals";
    pub const CONTACTS: &str = "contacts";
    pub const FUNNELS: &str = "funnels";
    pub const HEALTH: &str = "health";
    pub const DEAD_LETTER: &str = "dead-letter";
    pub const SYNC_STATE: &str = "sync-state";
    pub const TENANTS: &str = "tenants";
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// `IntegrationConfigured`, `IntegrationRemoved` (compacted).
    pub fn integrations(&self) -> String {
        self.name(names::INTEGRATIONS)
    }
    /// `OrderChanged` (kept for days).
    pub fn order_changed(&self) -> String {
        self.name(names::ORDER_CHANGED)
    }
    /// `DealUpserted`, `DealDeleted`, `DealStagesRecorded` (kept forever: the replay source).
    pub fn deals(&self) -> String {
        self.name(names::DEALS)
    }
    /// `ContactUpserted` (kept forever).
    pub fn contacts(&self) -> String {
        self.name(names::CONTACTS)
    }
    /// `FunnelStageSeen` (kept forever).
    pub fn funnels(&self) -> String {
        self.name(names::FUNNELS)
    }
    /// `IntegrationHealthChanged` (compacted).
    pub fn health(&self) -> String {
        self.name(names::HEALTH)
    }
    /// `SyncStateChanged` (compacted): each integration's history cursor and backfill /
    /// re-sync progress, the enricher's only state.
    pub fn sync_state(&self) -> String {
        self.name(names::SYNC_STATE)
    }
    /// Tenants and their tokens (compacted per tenant and per token; [`crate::tenants`]).
    pub fn tenants(&self) -> String {
        self.name(names::TENANTS)
    }
    /// Records that could not be processed, with their reason in headers (kept for weeks).
    pub fn dead_letter(&self) -> String {
        self.name(names::DEAD_LETTER)
    }

    /// The projector's consumer group. Named here because two sides use it: the projector
    /// consumes in it, and a separate ingest reads its committed offsets to know what the
    /// read model holds (read your writes, [`crate::visibility`]).
    pub fn projector_group(&self) -> String {
        self.name("projector")
    }

    /// Every topic with its retention (DESIGN §6): settings, health and sync state compacted, the domain
    /// topics forever (they are the replay source), webhooks for days, dead letters for weeks.
    pub fn specs(&self, partitions: i32) -> Vec<TopicSpec> {
        vec![
            TopicSpec::new(self.integrations(), partitions, Retention::Compacted),
            TopicSpec::new(self.order_changed(), partitions, Retention::Days(7)),
            TopicSpec::new(self.deals(), partitions, Retention::Forever),
            TopicSpec::new(self.contacts(), partitions, Retention::Forever),
            TopicSpec::new(self.funnels(), partitions, Retention::Forever),
            TopicSpec::new(self.health(), partitions, Retention::Compacted),
            TopicSpec::new(self.dead_letter(), partitions, Retention::Days(28)),
            TopicSpec::new(self.sync_state(), partitions, Retention::Compacted),
            TopicSpec::new(self.tenants(), partitions, Retention::Compacted),
        ]
    }
}

/// The key of an `order-changed` record: the RetailCRM **account** it is about (its
/// normalised host, [`crate::retailcrm::account_key`]), not the integration, so every change
/// of every integration connected to one account lands on one partition and is fetched by one
/// enricher member, inside one request budget (DESIGN §7.4). `crm_url` never changes for an
/// integration, so its records keep their order. Other topics stay keyed by integration
/// (compaction of `sync-state` and `integrations` is per integration).
pub fn order_changed_key(crm_url: &str) -> String {
    match url::Url::parse(crm_url) {
        Ok(url) => crate::retailcrm::account_key(&url),
        Err(_) => crm_url.to_owned(),
    }
}

/// The event types DESIGN §6 puts on a topic, by its full name under any prefix; `None` for the
/// dead-letter topic (any bytes) and for a name that is not dealflow's. A consumer dead-letters
/// a well-formed envelope of another type: applying it would make the read model depend on
/// records a replay of the right topics never sees. No topic name is a suffix of another, so
/// the suffix decides.
pub fn event_types(topic: &str) -> Option<&'static [EventType]> {
    use EventType as T;
    let table: [(&str, &'static [EventType]); 7] = [
        (
            names::INTEGRATIONS,
            &[T::IntegrationConfigured, T::IntegrationRemoved],
        ),
        (names::ORDER_CHANGED, &[T::OrderChanged]),
        (
            names::DEALS,
            &[T::DealUpserted, T::DealDeleted, T::DealStagesRecorded],
        ),
        (names::CONTACTS, &[T::ContactUpserted]),
        (names::FUNNELS, &[T::FunnelStageSeen]),
        (names::HEALTH, &[T::IntegrationHealthChanged]),
        (names::SYNC_STATE, &[T::SyncStateChanged]),
    ];
    table
        .into_iter()
        .find(|(name, _)| topic.ends_with(name))
        .map(|(_, types)| types)
}

/// Whether `topic` is a dead-letter topic (its records are letters, not envelopes).
pub fn is_dead_letter(topic: &str) -> bool {
    topic.ends_with(names::DEAD_LETTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_the_prefix() {
        let t = Topics::new("acme.");
        assert_eq!(t.integrations(), "acme.integrations");
        assert_eq!(t.order_changed(), "acme.order-changed");
        assert_eq!(t.deals(), "acme.deals");
        assert_eq!(t.contacts(), "acme.contacts");
        assert_eq!(t.funnels(), "acme.funnels");
        assert_eq!(t.health(), "acme.health");
        assert_eq!(t.dead_letter(), "acme.dead-letter");
        assert_eq!(t.sync_state(), "acme.sync-state");
        assert_eq!(t.projector_group(), "acme.projector");
        assert_eq!(Topics::new("").deals(), "deals");
    }

    #[test]
    fn order_changes_are_keyed_by_account() {
        assert_eq!(
            order_changed_key("https://Shop.RetailCRM.ru/"),
            "shop.retailcrm.ru"
        );
        assert_eq!(
            order_changed_key("http://127.0.0.1:4100/"),
            "127.0.0.1:4100"
        );
    }

    #[test]
    fn specs_follow_design_retention() {
        let specs = Topics::new("p.").specs(3);
        assert_eq!(specs.len(), 9);
        let retention = |name: &str| specs.iter().find(|s| s.name == name).unwrap().retention;
        assert_eq!(retention("p.tenants"), Retention::Compacted);
        assert_eq!(retention("p.integrations"), Retention::Compacted);
        assert_eq!(retention("p.health"), Retention::Compacted);
        assert_eq!(retention("p.sync-state"), Retention::Compacted);
        assert_eq!(retention("p.deals"), Retention::Forever);
        assert_eq!(retention("p.contacts"), Retention::Forever);
        assert_eq!(retention("p.funnels"), Retention::Forever);
        assert!(matches!(retention("p.order-changed"), Retention::Days(_)));
        assert!(matches!(retention("p.dead-letter"), Retention::Days(d) if d >= 14));
        assert!(specs.iter().all(|s| s.partitions == 3));
    }

    #[test]
    fn every_event_type_has_one_topic() {
        let t = Topics::new("acme.");
        let all = [
            t.integrations(),
            t.order_changed(),
            t.deals(),
            t.contacts(),
            t.funnels(),
            t.health(),
            t.sync_state(),
        ];
        for ty in EventType::ALL {
            let homes: Vec<&String> = all
                .iter()
                .filter(|topic| event_types(topic).unwrap().contains(&ty))
                .collect();
            assert_eq!(homes.len(), 1, "{ty:?} on {homes:?}");
        }
        assert_eq!(event_types(&t.dead_letter()), None);
        assert_eq!(event_types("elsewhere"), None);
        assert_eq!(
            event_types("deals.contacts"),
            Some(&[EventType::ContactUpserted][..])
        );
    }
}
