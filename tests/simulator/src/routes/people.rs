//! Users (`/api/v5/users`, `/api/v5/users/{id}`), customers and corporate customers
//! (`/api/v5/customers/{id}`, `/api/v5/customers-corporate/{id}`; `by` defaults to
//! `externalId`; a merged customer answers `Not found` with `combinedTo`).

use serde_json::{Value, json};

use super::Ctx;
use super::errors::ApiError;
use super::params::{LIST_LIMITS, invalid};
use crate::model::User;
use crate::render::customer::{corporate as render_corporate, customer as render_customer};
use crate::render::{pagination, reference::user as render_user};

const USER_FILTERS: &[&str] = &[
    "active",
    "isManager",
    "isAdmin",
    "online",
    "status",
    "email",
];

/// `GET /api/v5/users`.
pub fn users(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    p.check_filters(USER_FILTERS)?;
    let limit = p.limit_in(LIST_LIMITS)?;
    let page = p.page()?;
    let active = p.flag("filter[active]")?;
    let manager = p.flag("filter[isManager]")?;
    let admin = p.flag("filter[isAdmin]")?;
    let online = p.flag("filter[online]")?;
    let status = p.get("filter[status]");
    let email = p.get("filter[email]");
    let matches = |u: &User| {
        active.is_none_or(|a| u.active == a)
            && manager.is_none_or(|m| u.is_manager == m)
            && admin.is_none_or(|a| u.is_admin == a)
            && online.is_none_or(|o| u.online == o)
            && status.is_none_or(|s| u.status == s)
            && email.is_none_or(|e| u.email.eq_ignore_ascii_case(e))
    };
    let found: Vec<&User> = ctx.store.users.iter().filter(|u| matches(u)).collect();
    let users: Vec<Value> = found
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|u| render_user(u))
        .collect();
    Ok(json!({
        "success": true,
        "pagination": pagination(limit, found.len(), page),
        "users": users,
    }))
}

/// `GET /api/v5/users/{id}`: deleted users answer `Not found`.
pub fn user(ctx: &Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let user = id
        .parse::<u64>()
        .ok()
        .and_then(|id| ctx.store.user(id))
        .ok_or(ApiError::NotFound { combined_to: None })?;
    Ok(json!({ "success": true, "user": render_user(user) }))
}

/// How `{id}` is read: `by=id` or `by=externalId` (the default).
fn by_id(ctx: &Ctx<'_>) -> Result<bool, ApiError> {
    match ctx.params.get("by").unwrap_or("externalId") {
        "id" => Ok(true),
        "externalId" => Ok(false),
        _ => Err(invalid(
            "by",
            "The value you selected is not a valid choice.",
        )),
    }
}

/// `GET /api/v5/customers/{id}`.
pub fn customer(ctx: &Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let site = ctx.check_site_param()?;
    let by_id = by_id(ctx)?;
    let store = ctx.store;
    let found = store.customers.values().find(|c| {
        let hit = if by_id {
            id.parse::<u64>().is_ok_and(|n| n == c.id)
        } else {
            c.external_id.as_deref() == Some(id)
        };
        hit && site.is_none_or(|s| s == c.site) && ctx.key.sees_site(&c.site)
    });
    let customer = found.ok_or(ApiError::NotFound { combined_to: None })?;
    if let Some(to) = customer.combined_to {
        let survivor = store.customers.get(&to);
        let combined = json!({
            "id": to,
            "externalId": survivor.and_then(|s| s.external_id.clone()),
            "site": survivor.map(|s| s.site.clone()),
        });
        return Err(ApiError::NotFound {
            combined_to: Some(strip_nulls(combined)),
        });
    }
    Ok(json!({ "success": true, "customer": render_customer(customer, &store.stats()) }))
}

/// `GET /api/v5/customers-corporate/{id}`.
pub fn corporate(ctx: &Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let site = ctx.check_site_param()?;
    let by_id = by_id(ctx)?;
    let store = ctx.store;
    let found = store.corporates.values().find(|c| {
        let hit = if by_id {
            id.parse::<u64>().is_ok_and(|n| n == c.id)
        } else {
            c.external_id.as_deref() == Some(id)
        };
        hit && site.is_none_or(|s| s == c.site) && ctx.key.sees_site(&c.site)
    });
    let corporate = found.ok_or(ApiError::NotFound { combined_to: None })?;
    Ok(json!({
        "success": true,
        "customerCorporate": render_corporate(corporate, &store.stats()),
    }))
}

/// The API omits absent keys instead of writing `null`.
fn strip_nulls(mut v: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    v
}
