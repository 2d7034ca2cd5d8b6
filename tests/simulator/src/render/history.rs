//! History entries as JSON (`orders/history`).

use serde_json::{Value, json};

use super::Obj;
use super::order::{order, stub};
use crate::history::{Actor, EntryOrder, HistoryEntry};
use crate::store::{CustomerStats, Store};

/// One entry, with the keys the fixtures show for its kind.
pub fn entry(store: &Store, stats: &CustomerStats, e: &HistoryEntry) -> Value {
    let mut obj = Obj::new()
        .put("id", e.id)
        .datetime("createdAt", e.created_at);
    if e.created {
        obj = obj.put("created", true);
    }
    if e.deleted {
        obj = obj.put("deleted", true);
    }
    obj = obj.put("source", e.actor.source());
    obj = match e.actor {
        Actor::User(id) => obj.put("user", json!({ "id": id })),
        Actor::Api => obj.put("apiKey", json!({ "current": false })),
        Actor::Code | Actor::Combine => obj,
    };
    let order_json = match &e.order {
        EntryOrder::Snapshot(o) => order(store, stats, o),
        EntryOrder::Stub(s) => stub(s),
    };
    obj.put("field", e.field.as_str())
        .put("oldValue", e.old_value.clone())
        .put("newValue", e.new_value.clone())
        .put("order", order_json)
        .opt("item", e.item.clone())
        .opt("combinedTo", e.combined_to.as_ref().map(stub))
        .build()
}
