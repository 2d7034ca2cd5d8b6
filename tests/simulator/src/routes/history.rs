//! `GET /api/v5/orders/history`: `filter[sinceId]` (exclusive, ascending), `startDate`,
//! `endDate`, `orderId`, `orderExternalId`; `limit` up to 100; `page` — but never together
//! with `sinceId` (HTTP 400 since 2023-05-15).

use serde_json::{Value, json};

use super::Ctx;
use super::errors::ApiError;
use super::params::invalid;
use crate::clock::fmt_datetime;
use crate::history::{EntryOrder, HistoryEntry};
use crate::render::{history::entry, pagination};

const FILTERS: &[&str] = &[
    "sinceId",
    "startDate",
    "endDate",
    "orderId",
    "orderExternalId",
];

/// `GET /api/v5/orders/history`.
pub fn list(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let p = ctx.params;
    p.check_filters(FILTERS)?;
    if p.has("filter[sinceId]") && p.has("page") {
        return Err(invalid(
            "page",
            "The \"page\" parameter cannot be used together with \"filter[sinceId]\"; move filter[sinceId] instead.",
        ));
    }
    let limit = p.limit_up_to(100, 20)?;
    let page = p.page()?;
    let since = p.number("filter[sinceId]")?;
    let start = p.datetime("filter[startDate]", false)?;
    let end = p.datetime("filter[endDate]", true)?;
    let order_id = p.number("filter[orderId]")?;
    let external = p.get("filter[orderExternalId]");
    let store = ctx.store;
    let candidates = store.history.after(since.unwrap_or(0));
    let matches = |e: &HistoryEntry| {
        ctx.key.sees_site(e.order.site())
            && start.is_none_or(|s| e.created_at >= s)
            && end.is_none_or(|t| e.created_at <= t)
            && order_id.is_none_or(|id| e.order.id() == id)
            && external.is_none_or(|x| external_id(&e.order) == Some(x))
    };
    let found: Vec<&HistoryEntry> = candidates.iter().filter(|e| matches(e)).collect();
    let stats = store.stats();
    let history: Vec<Value> = found
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|e| entry(store, &stats, e))
        .collect();
    Ok(json!({
        "success": true,
        "generatedAt": fmt_datetime(store.clock.now()),
        "history": history,
        "pagination": pagination(limit, found.len(), page),
    }))
}

fn external_id(order: &EntryOrder) -> Option<&str> {
    match order {
        EntryOrder::Snapshot(o) => o.external_id.as_deref(),
        EntryOrder::Stub(s) => s.external_id.as_deref(),
    }
}
