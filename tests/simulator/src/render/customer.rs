//! Customers, corporate customers, companies, addresses and UTM sources as JSON.

use serde_json::{Value, json};

use super::{Obj, map_or_empty_array};
use crate::model::{Address, Company, CorporateCustomer, Customer, Utm};
use crate::store::{Aggregate, CustomerStats, StatsKey};

/// An address (`id` only on stored addresses such as customer cards).
pub fn address(a: &Address) -> Value {
    Obj::new()
        .opt("id", a.id)
        .put("index", a.index.as_str())
        .put("countryIso", a.country_iso.as_str())
        .put("region", a.region.as_str())
        .put("city", a.city.as_str())
        .put("street", a.street.as_str())
        .put("building", a.building.as_str())
        .opt("flat", a.flat.as_deref())
        .put("text", a.text.as_str())
        .build()
}

/// A UTM `source` object.
pub fn utm(u: &Utm) -> Value {
    Obj::new()
        .put("source", u.source.as_str())
        .put("medium", u.medium.as_str())
        .opt("campaign", u.campaign.as_deref())
        .opt("keyword", u.keyword.as_deref())
        .opt("content", u.content.as_deref())
        .build()
}

fn with_stats(o: Obj, s: Aggregate) -> Obj {
    o.money("marginSumm", s.margin())
        .money("totalSumm", s.total)
        .money("averageSumm", s.average())
        .put("ordersCount", s.orders)
        .money("costSumm", s.cost)
}

/// A full individual customer (`type: customer`).
pub fn customer(c: &Customer, stats: &CustomerStats) -> Value {
    let phones: Vec<Value> = c.phones.iter().map(|p| json!({ "number": p })).collect();
    let o = Obj::new()
        .put("type", "customer")
        .put("id", c.id)
        .opt("externalId", c.external_id.as_deref())
        .put("isContact", c.is_contact)
        .datetime("createdAt", c.created_at)
        .opt("managerId", c.manager_id)
        .put("vip", c.vip)
        .put("bad", c.bad)
        .put("site", c.site.as_str())
        .put("contragent", json!({ "contragentType": "individual" }))
        .put("tags", Vec::<Value>::new());
    with_stats(o, stats.get(StatsKey::Customer(c.id)))
        .put("customFields", map_or_empty_array(c.custom_fields.clone()))
        .put("personalDiscount", 0)
        .put("cumulativeDiscount", 0)
        .opt("address", c.address.as_ref().map(address))
        .put("segments", Vec::<Value>::new())
        .put("firstName", c.first_name.as_str())
        .put("lastName", c.last_name.as_str())
        .opt("patronymic", c.patronymic.as_deref())
        .opt("sex", c.sex)
        .opt("email", c.email.as_deref())
        .put("phones", phones)
        .opt("source", c.source.as_ref().map(utm))
        .opt("firstClientId", c.client_id.as_deref())
        .build()
}

fn legal_contragent(c: &Company) -> Value {
    Obj::new()
        .put("contragentType", "legal-entity")
        .put("legalName", c.legal_name.as_str())
        .put("legalAddress", c.address.text.as_str())
        .put("INN", c.inn.as_str())
        .put("KPP", c.kpp.as_str())
        .put("OGRN", c.ogrn.as_str())
        .build()
}

/// The order's `contragent` for a corporate order.
pub fn company_contragent(c: &Company) -> Value {
    legal_contragent(c)
}

/// A company of a corporate customer.
pub fn company(cc: &CorporateCustomer, c: &Company, stats: &CustomerStats) -> Value {
    let is_main = cc.companies.first().is_some_and(|m| m.id == c.id);
    let o = Obj::new()
        .put("isMain", is_main)
        .put("id", c.id)
        .opt("externalId", c.external_id.as_deref())
        .put(
            "customer",
            Obj::new()
                .put("site", cc.site.as_str())
                .put("id", cc.id)
                .opt("externalId", cc.external_id.as_deref())
                .put("type", "customer_corporate")
                .build(),
        )
        .put("active", true)
        .put("name", c.name.as_str())
        .opt("brand", c.brand.as_deref())
        .datetime("createdAt", c.created_at)
        .put("contragent", legal_contragent(c))
        .put("address", address(&c.address));
    with_stats(o, stats.get(StatsKey::Company(c.id)))
        .put("customFields", Vec::<Value>::new())
        .build()
}

/// A full corporate customer (`type: customer_corporate`).
pub fn corporate(cc: &CorporateCustomer, stats: &CustomerStats) -> Value {
    let main_company = cc.companies.first().map(|c| {
        Obj::new()
            .put("id", c.id)
            .opt("externalId", c.external_id.as_deref())
            .put("name", c.name.as_str())
            .build()
    });
    let main_contact = cc.contacts.first().map(|id| {
        let companies: Vec<Value> = cc
            .companies
            .iter()
            .map(|c| json!({ "id": c.id, "company": { "id": c.id, "name": c.name } }))
            .collect();
        json!({ "id": id, "customer": { "id": id }, "companies": companies })
    });
    let o = Obj::new()
        .put("type", "customer_corporate")
        .put("id", cc.id)
        .opt("externalId", cc.external_id.as_deref())
        .put("nickName", cc.nick_name.as_str())
        .put(
            "mainAddress",
            Obj::new()
                .opt("id", cc.main_address.id)
                .put("name", "Основной адрес")
                .build(),
        )
        .datetime("createdAt", cc.created_at)
        .opt("managerId", cc.manager_id)
        .put("vip", false)
        .put("bad", false)
        .put("site", cc.site.as_str())
        .put("tags", Vec::<Value>::new());
    with_stats(o, stats.get(StatsKey::Corporate(cc.id)))
        .put("customFields", map_or_empty_array(cc.custom_fields.clone()))
        .put("personalDiscount", 0)
        .opt("mainCompany", main_company)
        .opt("mainCustomerContact", main_contact)
        .build()
}
