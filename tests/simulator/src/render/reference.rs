//! Reference data and settings as JSON, keyed by code like the real API.

use serde_json::{Map, Value, json};

use super::Obj;
use crate::model::{Site, Status, User};
use crate::store::Store;

/// `statuses` keyed by code.
pub fn statuses(store: &Store) -> Value {
    let map: Map<String, Value> = store
        .statuses
        .iter()
        .map(|s| (s.code.clone(), status(s)))
        .collect();
    Value::Object(map)
}

fn status(s: &Status) -> Value {
    json!({
        "name": s.name, "code": s.code, "active": s.active, "ordering": s.ordering, "group": s.group,
    })
}

/// `statusGroups` keyed by code, each listing its status codes.
pub fn status_groups(store: &Store) -> Value {
    let map: Map<String, Value> = store
        .groups
        .iter()
        .map(|g| {
            let members: Vec<&str> = store
                .statuses
                .iter()
                .filter(|s| s.group == g.code)
                .map(|s| s.code.as_str())
                .collect();
            let v = json!({
                "name": g.name, "code": g.code, "active": true, "ordering": g.ordering,
                "process": g.process, "statuses": members,
            });
            (g.code.clone(), v)
        })
        .collect();
    Value::Object(map)
}

/// `sites` keyed by code.
pub fn sites(store: &Store) -> Value {
    let map: Map<String, Value> = store
        .sites
        .iter()
        .map(|s| (s.code.clone(), site(s)))
        .collect();
    Value::Object(map)
}

fn site(s: &Site) -> Value {
    Obj::new()
        .put("id", s.id)
        .put("name", s.name.as_str())
        .put("url", s.url.as_str())
        .put("code", s.code.as_str())
        .put("description", format!("Интернет-магазин «{}»", s.name))
        .put("defaultForCrm", s.ordering == 1)
        .put("ymlUrl", format!("{}/catalog.xml", s.url))
        .put("loadFromYml", true)
        .datetime("catalogUpdatedAt", s.catalog_updated_at)
        .datetime("catalogLoadingAt", s.catalog_updated_at)
        .put(
            "contragent",
            json!({
                "contragentType": "legal-entity", "legalName": s.legal_name, "INN": s.inn,
                "code": format!("{}-legal", s.code), "countryIso": s.country_iso,
            }),
        )
        .put("countryIso", s.country_iso.as_str())
        .put("currency", s.currency.as_str())
        .put("senderEmail", format!("shop@{}", host(&s.url)))
        .put("senderName", s.name.as_str())
        .put("catalogId", s.id.to_string())
        .put("isCatalogMainSite", true)
        .put("ordering", s.ordering)
        .put("isDemo", false)
        .build()
}

fn host(url: &str) -> &str {
    url.trim_start_matches("https://").trim_end_matches('/')
}

/// One user.
pub fn user(u: &User) -> Value {
    let groups: Vec<Value> = u
        .groups
        .iter()
        .map(|(id, name, code)| json!({ "id": id, "name": name, "code": code }))
        .collect();
    Obj::new()
        .put("id", u.id)
        .datetime("createdAt", u.created_at)
        .put("active", u.active)
        .put("email", u.email.as_str())
        .put("firstName", u.first_name.as_str())
        .put("lastName", u.last_name.as_str())
        .opt("patronymic", u.patronymic.as_deref())
        .opt("position", u.position.as_deref())
        .opt("phone", u.phone.as_deref())
        .put("status", u.status)
        .put("online", u.online)
        .put("isAdmin", u.is_admin)
        .put("isManager", u.is_manager)
        .put("groups", groups)
        .build()
}

/// The `settings` object of `/api/v5/settings`.
pub fn settings(store: &Store) -> Value {
    let updated = crate::clock::fmt_datetime(store.settings_updated_at);
    let work_day = |day: &str| {
        json!({
            "day_type": day, "start_time": "09:00", "end_time": "18:00",
            "lunch_start_time": "13:00", "lunch_end_time": "14:00",
        })
    };
    let work_times: Vec<Value> = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
        .iter()
        .map(|d| work_day(d))
        .collect();
    json!({
        "default_currency": { "value": store.currency, "updated_at": updated },
        "system_language": { "value": "RU", "updated_at": updated },
        "timezone": { "value": store.clock.timezone().name(), "updated_at": updated },
        "work_times": work_times,
        "non_working_days": [
            { "start_date": "01.01", "end_date": "01.08" },
            { "start_date": "05.09", "end_date": "05.09" },
        ],
    })
}
