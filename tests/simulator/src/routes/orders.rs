//! `GET /api/v5/orders` (filters, `limit` ∈ {20, 50, 100}, `page`) and
//! `GET /api/v5/orders/{id}` (`by` defaults to `externalId`, like the real API).
//!
//! Lists are sorted newest first (by id, descending); the real default order is not
//! documented. Orders of sites the key does not see are left out (and answer `Not found`);
//! naming such a site in `site`/`filter[sites][]` is `Access denied.`.

use serde_json::{Value, json};

use super::Ctx;
use super::errors::ApiError;
use super::params::{LIST_LIMITS, invalid};
use crate::model::{Buyer, Order};
use crate::render::{order::order as render_order, pagination};
use crate::store::Store;

const FILTERS: &[&str] = &[
    "ids[]",
    "externalIds[]",
    "numbers[]",
    "sites[]",
    "createdAtFrom",
    "createdAtTo",
    "statusUpdatedAtFrom",
    "statusUpdatedAtTo",
    "extendedStatus[]",
    "managers[]",
    "customerId",
];

/// `GET /api/v5/orders`.
pub fn list(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    p.check_filters(FILTERS)?;
    let limit = p.limit_in(LIST_LIMITS)?;
    let page = p.page()?;
    let ids = p.numbers("filter[ids][]")?;
    let external_ids = p.all("filter[externalIds][]");
    let numbers = p.all("filter[numbers][]");
    let sites = p.all("filter[sites][]");
    if sites.iter().any(|s| !ctx.key.sees_site(s)) {
        return Err(ApiError::AccessDenied);
    }
    let created_from = p.datetime("filter[createdAtFrom]", false)?;
    let created_to = p.datetime("filter[createdAtTo]", true)?;
    let status_from = p.datetime("filter[statusUpdatedAtFrom]", false)?;
    let status_to = p.datetime("filter[statusUpdatedAtTo]", true)?;
    let statuses = p.all("filter[extendedStatus][]");
    let managers = p.numbers("filter[managers][]")?;
    let customer = p.number("filter[customerId]")?;
    let store = ctx.store;
    let matches = |o: &Order| {
        ctx.key.sees_site(&o.site)
            && (ids.is_empty() || ids.contains(&o.id))
            && (external_ids.is_empty()
                || o.external_id
                    .as_deref()
                    .is_some_and(|e| external_ids.contains(&e)))
            && (numbers.is_empty() || numbers.contains(&o.number.as_str()))
            && (sites.is_empty() || sites.contains(&o.site.as_str()))
            && created_from.is_none_or(|f| o.created_at >= f)
            && created_to.is_none_or(|t| o.created_at <= t)
            && status_from.is_none_or(|f| o.status_updated_at >= f)
            && status_to.is_none_or(|t| o.status_updated_at <= t)
            && (statuses.is_empty() || status_matches(store, &statuses, &o.status))
            && (managers.is_empty() || o.manager_id.is_some_and(|m| managers.contains(&m)))
            && customer.is_none_or(|c| buyer_is(o.buyer, c))
    };
    let found: Vec<&Order> = store
        .orders
        .values()
        .rev()
        .filter(|o| o.is_live() && matches(o))
        .collect();
    let stats = store.stats();
    let orders: Vec<Value> = found
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|o| render_order(store, &stats, o))
        .collect();
    Ok(json!({
        "success": true,
        "pagination": pagination(limit, found.len(), page),
        "orders": orders,
    }))
}

/// `extendedStatus[]` takes status codes and status-group codes.
fn status_matches(store: &Store, wanted: &[&str], status: &str) -> bool {
    wanted.contains(&status)
        || store
            .status(status)
            .is_some_and(|s| wanted.contains(&s.group.as_str()))
}

fn buyer_is(buyer: Buyer, id: u64) -> bool {
    match buyer {
        Buyer::Individual { customer_id } => customer_id == id,
        Buyer::Corporate { corporate_id, .. } => corporate_id == id,
    }
}

/// `GET /api/v5/orders/{id}?by=id|externalId&site=`.
pub fn get(ctx: &Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let site = ctx.check_site_param()?;
    let store = ctx.store;
    let order = match ctx.params.get("by").unwrap_or("externalId") {
        "id" => id.parse::<u64>().ok().and_then(|id| store.live_order(id)),
        "externalId" => store.live_order_by_external(id, site),
        _ => {
            return Err(invalid(
                "by",
                "The value you selected is not a valid choice.",
            ));
        }
    };
    let order = order
        .filter(|o| ctx.key.sees_site(&o.site) && site.is_none_or(|s| s == o.site))
        .ok_or(ApiError::NotFound { combined_to: None })?;
    Ok(json!({ "success": true, "order": render_order(store, &store.stats(), order) }))
}
