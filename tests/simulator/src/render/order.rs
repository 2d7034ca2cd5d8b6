//! Orders as JSON: the full order of `GET /orders`, the creation snapshot and the stubs of
//! history entries.

use serde_json::{Map, Value, json};

use super::customer::{address, company, company_contragent, corporate, customer, utm};
use super::{Obj, map_or_empty_array};
use crate::history::OrderStub;
use crate::model::{Buyer, Item, Order};
use crate::money;
use crate::store::{CustomerStats, Store};

/// The full order, as `GET /api/v5/orders/{id}` returns it.
pub fn order(store: &Store, stats: &CustomerStats, o: &Order) -> Value {
    let full_paid_at = if !o.payments.is_empty() && o.prepay_sum() >= o.total_summ() {
        o.payments.iter().filter_map(|p| p.paid_at).max()
    } else {
        None
    };
    let mut obj = Obj::new()
        .put("slug", o.id)
        .put("bonusesCreditTotal", 0)
        .put("bonusesChargeTotal", 0)
        .put("id", o.id)
        .put("number", o.number.as_str())
        .opt("externalId", o.external_id.as_deref())
        .put("orderType", o.order_type.as_str())
        .put("orderMethod", o.order_method.as_str())
        .put("privilegeType", "none")
        .put("countryIso", o.country_iso.as_str())
        .datetime("createdAt", o.created_at)
        .datetime("statusUpdatedAt", o.status_updated_at)
        .opt(
            "createdAt",
            store.garbled.contains(&o.id).then_some("31.02.2024 25:61"),
        )
        .money("summ", o.summ())
        .put("currency", o.currency.as_str())
        .money("totalSumm", o.total_summ())
        .money("prepaySum", o.prepay_sum())
        .money("purchaseSumm", o.purchase_summ())
        .datetime("markDatetime", o.created_at)
        .put("lastName", o.last_name.as_str())
        .put("firstName", o.first_name.as_str())
        .opt("patronymic", o.patronymic.as_deref())
        .opt("phone", o.phone.as_deref())
        .opt("additionalPhone", o.additional_phone.as_deref())
        .opt("email", o.email.as_deref())
        .put("call", o.call)
        .put("expired", o.expired)
        .opt("customerComment", o.customer_comment.as_deref())
        .opt("managerComment", o.manager_comment.as_deref())
        .opt("managerId", o.manager_id);
    obj = buyer(obj, store, stats, o);
    obj.put("delivery", delivery(o))
        .put("site", o.site.as_str())
        .put("status", o.status.as_str())
        .put("items", o.items.iter().map(item).collect::<Vec<_>>())
        .put("payments", payments(o))
        .opt_datetime("fullPaidAt", full_paid_at)
        .opt("source", o.source.as_ref().map(utm))
        .opt("clientId", o.client_id.as_deref())
        .put("fromApi", o.from_api)
        .put("shipmentStore", o.shipment_store.as_str())
        .put("shipped", o.shipped)
        .put("customFields", map_or_empty_array(o.custom_fields.clone()))
        .build()
}

/// `customer`, `contact`, `company` and `contragent` of the order.
fn buyer(obj: Obj, store: &Store, stats: &CustomerStats, o: &Order) -> Obj {
    match o.buyer {
        Buyer::Individual { customer_id } => {
            let person = store
                .customers
                .get(&customer_id)
                .map(|c| customer(c, stats));
            obj.opt("customer", person.clone())
                .opt("contact", person)
                .put("contragent", json!({ "contragentType": "individual" }))
        }
        Buyer::Corporate {
            corporate_id,
            contact_id,
            company_id,
        } => {
            let cc = store.corporates.get(&corporate_id);
            let comp = cc.and_then(|cc| cc.company(company_id).map(|c| (cc, c)));
            obj.opt("customer", cc.map(|cc| corporate(cc, stats)))
                .opt(
                    "contact",
                    store.customers.get(&contact_id).map(|c| customer(c, stats)),
                )
                .opt("company", comp.map(|(cc, c)| company(cc, c, stats)))
                .opt("contragent", comp.map(|(_, c)| company_contragent(c)))
        }
    }
}

fn delivery(o: &Order) -> Value {
    let d = &o.delivery;
    Obj::new()
        .put("code", d.code.as_str())
        .opt(
            "service",
            d.service
                .as_ref()
                .map(|(code, name)| json!({ "name": name, "code": code, "active": true })),
        )
        .money("cost", d.cost)
        .money("netCost", d.net_cost)
        .opt_date("date", d.date)
        .opt(
            "time",
            d.time
                .as_ref()
                .map(|(from, to)| json!({ "from": from, "to": to })),
        )
        .put("address", address(&d.address))
        .build()
}

/// One order line.
pub fn item(i: &Item) -> Value {
    let discounts: Vec<Value> = i
        .discounts
        .iter()
        .map(|(kind, amount)| json!({ "type": kind, "amount": money::num(*amount) }))
        .collect();
    Obj::new()
        .put("markingCodes", Vec::<Value>::new())
        .put("id", i.id)
        .put("priceType", json!({ "code": "base" }))
        .money("initialPrice", i.initial_price)
        .money("discountTotal", i.discount_total)
        .put(
            "prices",
            json!([{ "price": money::num(i.unit_price()), "quantity": money::num(i.quantity) }]),
        )
        .put("discounts", discounts)
        .put("vatRate", i.vat_rate.as_str())
        .datetime("createdAt", i.created_at)
        .money("quantity", i.quantity)
        .put("status", i.status.as_str())
        .put("isCanceled", i.is_canceled)
        .put(
            "offer",
            json!({
                "displayName": i.offer.name,
                "id": i.offer.id,
                "externalId": i.offer.external_id,
                "xmlId": i.offer.xml_id,
                "name": i.offer.name,
                "article": i.offer.article,
                "vatRate": i.vat_rate,
                "unit": { "code": "pc", "name": "Штука", "sym": "шт." },
            }),
        )
        .put("properties", Vec::<Value>::new())
        .money("purchasePrice", i.purchase_price)
        .build()
}

/// The `item` of an `order_product*` history entry.
pub fn item_ref(i: &Item) -> Value {
    json!({
        "id": i.id,
        "offer": { "id": i.offer.id, "externalId": i.offer.external_id, "xmlId": i.offer.xml_id },
    })
}

/// Payments keyed by id (as a string); `[]` when there are none.
fn payments(o: &Order) -> Value {
    let map: Map<String, Value> = o
        .payments
        .iter()
        .map(|p| {
            let v = Obj::new()
                .put("id", p.id)
                .put("status", p.status.as_str())
                .put("type", p.kind.as_str())
                .opt("externalId", p.external_id.as_deref())
                .money("amount", p.amount)
                .opt_datetime("paidAt", p.paid_at)
                .build();
            (p.id.to_string(), v)
        })
        .collect();
    map_or_empty_array(map)
}

/// The minimal order of a history entry.
pub fn stub(s: &OrderStub) -> Value {
    Obj::new()
        .put("id", s.id)
        .opt("externalId", s.external_id.as_deref())
        .opt("managerId", s.manager_id)
        .put("site", s.site.as_str())
        .put("status", s.status.as_str())
        .build()
}
