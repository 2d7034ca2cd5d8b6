//! Order mutations. Each one changes the store and writes the matching `orders/history`
//! entries, exactly one per changed field, so the feed always explains the current state.

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::error::SimError;
use crate::history::{Actor, EntryOrder, OrderStub};
use crate::model::{Order, Removal};
use crate::money;
use crate::render::order::item_ref;
use crate::store::Store;

/// Item status that marks a line cancelled (a `cancelStatus` product status).
pub const CANCELED_ITEM_STATUS: &str = "out-of-stock";

/// Changes to an order's amounts, manager and contact data. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderEdit {
    /// New `delivery.cost`.
    pub delivery_cost: Option<Decimal>,
    /// New manager; `Some(None)` (JSON `null`) removes it.
    #[serde(deserialize_with = "present")]
    pub manager_id: Option<Option<u64>>,
    /// First name on the order.
    pub first_name: Option<String>,
    /// Last name on the order.
    pub last_name: Option<String>,
    /// Patronymic on the order.
    pub patronymic: Option<String>,
    /// Phone on the order.
    pub phone: Option<String>,
    /// Second phone on the order.
    pub additional_phone: Option<String>,
    /// Email on the order.
    pub email: Option<String>,
    /// Line changes.
    pub items: Vec<ItemEdit>,
    /// Leave no `orders/history` record (RetailCRM makes some changes without one: bulk
    /// operations, fixes by its support): only a by-id fetch sees the change.
    pub unrecorded: bool,
}

/// Changes to one line.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemEdit {
    /// The line.
    pub item_id: u64,
    /// New unit price before discounts.
    #[serde(default)]
    pub initial_price: Option<Decimal>,
    /// New discount per unit.
    #[serde(default)]
    pub discount_total: Option<Decimal>,
    /// New quantity.
    #[serde(default)]
    pub quantity: Option<Decimal>,
    /// Cancel (`true`) or restore (`false`) the line.
    #[serde(default)]
    pub canceled: Option<bool>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

fn opt_str(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

fn manager_value(id: Option<u64>) -> Value {
    id.map_or(Value::Null, |id| json!({ "id": id }))
}

impl Store {
    fn live_order_mut(&mut self, id: u64) -> Result<&mut Order, SimError> {
        match self.orders.get_mut(&id) {
            None => Err(SimError::UnknownOrder(id)),
            Some(o) if !o.is_live() => Err(SimError::OrderRemoved(id)),
            Some(o) => Ok(o),
        }
    }

    pub(crate) fn check_live(&self, id: u64) -> Result<&Order, SimError> {
        match self.orders.get(&id) {
            None => Err(SimError::UnknownOrder(id)),
            Some(o) if !o.is_live() => Err(SimError::OrderRemoved(id)),
            Some(o) => Ok(o),
        }
    }

    /// Adds a new order and its creation entry (`created: true`, full snapshot).
    pub fn insert_order(&mut self, order: Order, actor: Actor, at: NaiveDateTime) -> u64 {
        let id = order.id;
        let status = json!({ "code": order.status });
        let entry = self.history.push(
            at,
            actor,
            "status",
            Value::Null,
            status,
            EntryOrder::Snapshot(Box::new(order.clone())),
        );
        entry.created = true;
        self.orders.insert(id, order);
        id
    }

    /// Moves an order to another status. Returns `false` (and writes nothing) when the order
    /// already has it.
    pub fn set_status(
        &mut self,
        id: u64,
        code: &str,
        actor: Actor,
        at: NaiveDateTime,
    ) -> Result<bool, SimError> {
        if self.status(code).is_none() {
            return Err(SimError::UnknownStatus(code.to_owned()));
        }
        let order = self.live_order_mut(id)?;
        if order.status == code {
            return Ok(false);
        }
        let old = std::mem::replace(&mut order.status, code.to_owned());
        order.status_updated_at = at;
        let stub = EntryOrder::Stub(OrderStub::of(order));
        self.history.push(
            at,
            actor,
            "status",
            json!({ "code": old }),
            json!({ "code": code }),
            stub,
        );
        Ok(true)
    }

    /// Applies `edit`, writing one entry per field that really changed. Returns how many.
    pub fn edit_order(
        &mut self,
        id: u64,
        edit: &OrderEdit,
        actor: Actor,
        at: NaiveDateTime,
    ) -> Result<usize, SimError> {
        self.validate_edit(id, edit)?;
        let order = self.live_order_mut(id)?;
        // Collect the changes first: every entry's stub must show the order after the edit.
        let mut changes: Vec<(&'static str, Value, Value, Option<Value>)> = Vec::new();
        if let Some(cost) = edit.delivery_cost
            && cost != order.delivery.cost
        {
            let old = std::mem::replace(&mut order.delivery.cost, cost);
            changes.push(("delivery_cost", money::num(old), money::num(cost), None));
        }
        if let Some(manager) = edit.manager_id
            && manager != order.manager_id
        {
            let old = std::mem::replace(&mut order.manager_id, manager);
            changes.push(("manager", manager_value(old), manager_value(manager), None));
        }
        let text_fields: [(&'static str, &Option<String>, &mut String); 2] = [
            ("first_name", &edit.first_name, &mut order.first_name),
            ("last_name", &edit.last_name, &mut order.last_name),
        ];
        for (field, new, slot) in text_fields {
            if let Some(new) = new
                && new != slot
            {
                let old = std::mem::replace(slot, new.clone());
                changes.push((field, Value::String(old), Value::String(new.clone()), None));
            }
        }
        let optional_fields: [(&'static str, &Option<String>, &mut Option<String>); 4] = [
            ("patronymic", &edit.patronymic, &mut order.patronymic),
            ("phone", &edit.phone, &mut order.phone),
            (
                "additional_phone",
                &edit.additional_phone,
                &mut order.additional_phone,
            ),
            ("email", &edit.email, &mut order.email),
        ];
        for (field, new, slot) in optional_fields {
            if let Some(new) = new
                && slot.as_deref() != Some(new.as_str())
            {
                let old = slot.replace(new.clone());
                changes.push((field, opt_str(old.as_deref()), opt_str(Some(new)), None));
            }
        }
        for change in &edit.items {
            let item = order
                .item_mut(change.item_id)
                .ok_or(SimError::UnknownItem {
                    order: id,
                    item: change.item_id,
                })?;
            let decimals: [(&'static str, Option<Decimal>, &mut Decimal); 3] = [
                (
                    "order_product.initial_price",
                    change.initial_price,
                    &mut item.initial_price,
                ),
                (
                    "order_product.discount_total",
                    change.discount_total,
                    &mut item.discount_total,
                ),
                (
                    "order_product.quantity",
                    change.quantity,
                    &mut item.quantity,
                ),
            ];
            let mut item_changes = Vec::new();
            for (field, new, slot) in decimals {
                if let Some(new) = new
                    && new != *slot
                {
                    let old = std::mem::replace(slot, new);
                    item_changes.push((field, money::num(old), money::num(new)));
                }
            }
            if change.discount_total.is_some() {
                item.discounts = if item.discount_total.is_zero() {
                    Vec::new()
                } else {
                    vec![("manual_product".to_owned(), item.discount_total)]
                };
            }
            if let Some(canceled) = change.canceled
                && canceled != item.is_canceled
            {
                let new_status = if canceled {
                    CANCELED_ITEM_STATUS
                } else {
                    "new"
                };
                let old = std::mem::replace(&mut item.status, new_status.to_owned());
                item.is_canceled = canceled;
                item_changes.push((
                    "order_product.status",
                    json!({ "code": old }),
                    json!({ "code": new_status }),
                ));
            }
            let reference = item_ref(item);
            for (field, old, new) in item_changes {
                changes.push((field, old, new, Some(reference.clone())));
            }
        }
        if edit.unrecorded {
            return Ok(0);
        }
        let stub = OrderStub::of(order);
        let written = changes.len();
        for (field, old, new, item) in changes {
            let entry =
                self.history
                    .push(at, actor, field, old, new, EntryOrder::Stub(stub.clone()));
            entry.item = item;
        }
        Ok(written)
    }

    fn validate_edit(&self, id: u64, edit: &OrderEdit) -> Result<(), SimError> {
        let order = self.check_live(id)?;
        if let Some(Some(manager)) = edit.manager_id
            && self.user(manager).is_none()
            && !self.deleted_user_ids.contains(&manager)
        {
            return Err(SimError::UnknownUser(manager));
        }
        if edit.delivery_cost.is_some_and(|c| c.is_sign_negative()) {
            return Err(SimError::Invalid(
                "delivery_cost must not be negative".into(),
            ));
        }
        for change in &edit.items {
            if !order.items.iter().any(|i| i.id == change.item_id) {
                return Err(SimError::UnknownItem {
                    order: id,
                    item: change.item_id,
                });
            }
            if change.quantity.is_some_and(|q| q <= Decimal::ZERO) {
                return Err(SimError::Invalid("quantity must be positive".into()));
            }
        }
        Ok(())
    }

    /// Deletes an order: gone from `GET`, one `deleted: true` entry.
    pub fn delete_order(
        &mut self,
        id: u64,
        actor: Actor,
        at: NaiveDateTime,
    ) -> Result<(), SimError> {
        let order = self.live_order_mut(id)?;
        order.removal = Some(Removal {
            at,
            merged_into: None,
        });
        let stub = EntryOrder::Stub(OrderStub::of(order));
        let entry = self
            .history
            .push(at, actor, "id", json!(id), Value::Null, stub);
        entry.deleted = true;
        Ok(())
    }

    /// Merges `from` into `into` ("combine"): the lines of `from` move to `into` (one
    /// `order_product` entry each), then `from` is deleted with `source: "combine"` and
    /// `combinedTo` pointing at `into`.
    pub fn merge_orders(
        &mut self,
        from: u64,
        into: u64,
        at: NaiveDateTime,
    ) -> Result<(), SimError> {
        if from == into {
            return Err(SimError::Invalid(
                "cannot merge an order into itself".into(),
            ));
        }
        self.check_live(into)?;
        let moved = self.check_live(from)?.items.clone();
        let mut added = Vec::with_capacity(moved.len());
        for mut item in moved {
            item.id = self.ids.next_item();
            item.created_at = at;
            added.push(item);
        }
        let survivor = self.live_order_mut(into)?;
        survivor.items.extend(added.iter().cloned());
        let survivor_stub = OrderStub::of(survivor);
        for item in &added {
            let entry = self.history.push(
                at,
                Actor::Combine,
                "order_product",
                Value::Null,
                item_ref(item),
                EntryOrder::Stub(survivor_stub.clone()),
            );
            entry.item = Some(item_ref(item));
        }
        let merged = self.live_order_mut(from)?;
        merged.removal = Some(Removal {
            at,
            merged_into: Some(into),
        });
        let stub = EntryOrder::Stub(OrderStub::of(merged));
        let entry = self
            .history
            .push(at, Actor::Combine, "id", json!(from), Value::Null, stub);
        entry.deleted = true;
        entry.combined_to = Some(survivor_stub);
        Ok(())
    }
}
