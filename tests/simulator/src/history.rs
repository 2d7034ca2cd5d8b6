//! The `orders/history` change feed: one entry per changed field, ascending ids, written by
//! every mutation in `orders` (and by the data generator through the same mutations).

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::model::Order;

/// Who made a change; decides `source` and the `user`/`apiKey` keys of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A manager in the UI: `source: "user"`, `user: {id}`.
    User(u64),
    /// An API client (the shop): `source: "api"`, `apiKey: {current: false}`.
    Api,
    /// The system itself (rules, automation): `source: "code"`.
    Code,
    /// An order merge: `source: "combine"`.
    Combine,
}

impl Actor {
    /// The `source` value.
    pub fn source(self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Api => "api",
            Actor::Code => "code",
            Actor::Combine => "combine",
        }
    }
}

/// The minimal order of a non-creation entry: `{id, externalId?, managerId?, site, status}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStub {
    /// Id.
    pub id: u64,
    /// External id.
    pub external_id: Option<String>,
    /// Manager.
    pub manager_id: Option<u64>,
    /// Site.
    pub site: String,
    /// Status after the change.
    pub status: String,
}

impl OrderStub {
    /// The stub of `order` as it is now.
    pub fn of(order: &Order) -> Self {
        Self {
            id: order.id,
            external_id: order.external_id.clone(),
            manager_id: order.manager_id,
            site: order.site.clone(),
            status: order.status.clone(),
        }
    }
}

/// The order carried by an entry.
#[derive(Debug, Clone)]
pub enum EntryOrder {
    /// Creation entries carry the full order as it was created.
    Snapshot(Box<Order>),
    /// Every other entry carries a stub.
    Stub(OrderStub),
}

impl EntryOrder {
    /// Id of the order.
    pub fn id(&self) -> u64 {
        match self {
            EntryOrder::Snapshot(o) => o.id,
            EntryOrder::Stub(s) => s.id,
        }
    }

    /// Site of the order.
    pub fn site(&self) -> &str {
        match self {
            EntryOrder::Snapshot(o) => &o.site,
            EntryOrder::Stub(s) => &s.site,
        }
    }
}

/// One history record.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// Monotonic id.
    pub id: u64,
    /// When the change happened (account-local).
    pub created_at: NaiveDateTime,
    /// Who changed it.
    pub actor: Actor,
    /// snake_case field code (`status`, `manager`, `delivery_cost`, `order_product.status`, …).
    pub field: String,
    /// Value before.
    pub old_value: Value,
    /// Value after.
    pub new_value: Value,
    /// The order.
    pub order: EntryOrder,
    /// The creation record.
    pub created: bool,
    /// The deletion record (also for merged-away orders).
    pub deleted: bool,
    /// The surviving order of a merge.
    pub combined_to: Option<OrderStub>,
    /// The item of an `order_product*` change: `{id, offer{id, externalId, xmlId}}`.
    pub item: Option<Value>,
}

/// The account's history, ascending by id.
#[derive(Debug, Clone)]
pub struct HistoryLog {
    entries: Vec<HistoryEntry>,
    next_id: u64,
}

impl HistoryLog {
    /// An empty log whose first entry gets `first_id`.
    pub fn new(first_id: u64) -> Self {
        Self {
            entries: Vec::new(),
            next_id: first_id,
        }
    }

    /// Appends an entry and returns it for the caller to set the flags.
    pub fn push(
        &mut self,
        at: NaiveDateTime,
        actor: Actor,
        field: &str,
        old_value: Value,
        new_value: Value,
        order: EntryOrder,
    ) -> &mut HistoryEntry {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(HistoryEntry {
            id,
            created_at: at,
            actor,
            field: field.to_owned(),
            old_value,
            new_value,
            order,
            created: false,
            deleted: false,
            combined_to: None,
            item: None,
        });
        let last = self.entries.len() - 1;
        &mut self.entries[last]
    }

    /// Every entry.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// The entries with an id greater than `since_id` (`filter[sinceId]` is exclusive).
    pub fn after(&self, since_id: u64) -> &[HistoryEntry] {
        let start = self.entries.partition_point(|e| e.id <= since_id);
        &self.entries[start..]
    }

    /// Id of the newest entry.
    pub fn last_id(&self) -> Option<u64> {
        self.entries.last().map(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(id: u64) -> EntryOrder {
        EntryOrder::Stub(OrderStub {
            id,
            external_id: None,
            manager_id: None,
            site: "shop".into(),
            status: "new".into(),
        })
    }

    #[test]
    fn since_id_is_exclusive_and_ids_ascend() {
        let mut log = HistoryLog::new(100);
        for order in 1..=5 {
            log.push(
                NaiveDateTime::default(),
                Actor::Api,
                "status",
                Value::Null,
                Value::Null,
                stub(order),
            );
        }
        let ids: Vec<u64> = log.after(101).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![102, 103, 104]);
        assert_eq!(log.after(0).len(), 5);
        assert!(log.after(104).is_empty());
        assert_eq!(log.last_id(), Some(104));
    }
}
