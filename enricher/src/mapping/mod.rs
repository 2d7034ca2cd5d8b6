//! RetailCRM orders → the facts dealflow emits (DESIGN §5). Pure functions, no I/O.
//!
//! [`map_order`] turns one fetched order into a `DealUpserted` plus the `ContactUpserted`
//! events of its contact person and company; [`stages()`] turns the account's reference data
//! into `FunnelStageSeen` events. Markers (amount with or without delivery, one funnel or one
//! per shop) are the projector's business: only facts leave here. Money stays [`Decimal`];
//! RetailCRM's naive datetimes are read in the account timezone and emitted in UTC.
//!
//! An order without the facts every deal needs (site, status, creation time, total) is a
//! [`MapError`]: the caller dead-letters it and carries on with the others.

mod contact;
mod phone;
mod stages;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use dealflow_shared::events::{ContactKind, ContactUpserted, DealItem, DealUpserted, Manager, Utm};
use dealflow_shared::retailcrm::models::{
    Dictionary, Order, OrderItem, Site, Source, Status, User,
};
use dealflow_shared::retailcrm::time::to_utc;
use rust_decimal::Decimal;

pub use contact::{company, deal_contact, join_name};
pub use phone::{ContactDetails, FALLBACK_REGION, region, to_e164};
pub use stages::{StageMemory, stages};

/// What mapping needs to know about the account, borrowed from its reference cache.
#[derive(Debug, Clone, Copy)]
pub struct AccountView<'a> {
    /// The zone of every naive datetime of the account.
    pub timezone: Tz,
    /// The account's base currency (`settings.default_currency`).
    pub default_currency: Option<&'a str>,
    /// Sites (shops) by code: their country and currency.
    pub sites: &'a Dictionary<Site>,
    /// Statuses by code: their group.
    pub statuses: &'a Dictionary<Status>,
    /// Users looked up so far: `Some(user)` when found, `None` when unknown or deleted.
    pub managers: &'a HashMap<i64, Option<User>>,
}

/// Why an order cannot become a deal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// RetailCRM ids are positive integers.
    #[error("order id {0} is not a positive integer")]
    BadId(i64),
    /// A fact every deal needs is missing or empty.
    #[error("order {order_id} has no `{field}`; a deal needs it")]
    Missing {
        /// The order.
        order_id: i64,
        /// The RetailCRM field.
        field: &'static str,
    },
}

/// One order, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The deal's facts.
    pub deal: DealUpserted,
    /// The contact person (when the order links a customer) and the company (corporate
    /// orders).
    pub contacts: Vec<ContactUpserted>,
}

/// A trimmed, non-empty copy of an optional text.
fn text(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Maps one order; `observed_at` is when it was fetched (newer snapshots win downstream).
pub fn map_order(
    order: &Order,
    view: &AccountView<'_>,
    observed_at: DateTime<Utc>,
) -> Result<Mapped, MapError> {
    let order_id = u64::try_from(order.id)
        .ok()
        .filter(|id| *id > 0)
        .ok_or(MapError::BadId(order.id))?;
    let missing = |field| MapError::Missing {
        order_id: order.id,
        field,
    };
    let site = text(order.site.as_deref()).ok_or_else(|| missing("site"))?;
    let status_code = text(order.status.as_deref()).ok_or_else(|| missing("status"))?;
    let created_local = order.created_at.ok_or_else(|| missing("createdAt"))?;
    let total_sum = order.total_summ.ok_or_else(|| missing("totalSumm"))?;

    let site_info = view.sites.get(&site);
    let region =
        region(site_info.and_then(|s| s.country_iso.as_deref())).unwrap_or(FALLBACK_REGION);
    let currency = text(order.currency.as_deref())
        .or_else(|| site_info.and_then(|s| text(s.currency.as_deref())))
        .or_else(|| text(view.default_currency));
    let contact = deal_contact(order, region);
    let company = company(order);

    let mut contacts = Vec::new();
    if let Some(person) = &contact
        && let Some(contact_id) = person.id
    {
        contacts.push(ContactUpserted {
            contact_id,
            kind: ContactKind::Person,
            name: person.name.clone(),
            phones: person.phones.clone(),
            emails: person.emails.clone(),
            observed_at,
        });
    }
    if let Some(company) = &company {
        contacts.push(ContactUpserted {
            contact_id: company.id,
            kind: ContactKind::Company,
            name: company.name.clone(),
            phones: Vec::new(),
            emails: Vec::new(),
            observed_at,
        });
    }

    let deal = DealUpserted {
        order_id,
        number: text(order.number.as_deref()),
        external_id: text(order.external_id.as_deref()),
        status_group: view.statuses.get(&status_code).map(|s| s.group.clone()),
        site,
        status_code,
        total_sum,
        delivery_cost: order.delivery_cost().unwrap_or(Decimal::ZERO),
        currency,
        manager: manager(order.manager_id, view.managers, region),
        contact,
        company,
        utm: utm(order.source.as_ref()),
        client_id: text(order.client_id.as_deref()),
        custom_fields: order.custom_fields.clone(),
        created_at: to_utc(created_local, view.timezone),
        stage_entered_at: order.status_updated_at.map(|t| to_utc(t, view.timezone)),
        observed_at,
        order_type: text(order.order_type.as_deref()),
        order_method: text(order.order_method.as_deref()),
        purchase_sum: order.purchase_summ,
        paid_sum: order.prepay_sum,
        paid_at: order.full_paid_at.map(|t| to_utc(t, view.timezone)),
        items: order.items.iter().map(item).collect(),
    };
    Ok(Mapped { deal, contacts })
}

/// One order line (DESIGN §5 "Lines"). A line without a quantity counts as one piece (what
/// RetailCRM assumes when a line is created without one); missing prices count as zero.
fn item(line: &OrderItem) -> DealItem {
    let offer = line.offer.as_ref();
    let quantity = line.quantity.unwrap_or(Decimal::ONE);
    let price =
        line.initial_price.unwrap_or(Decimal::ZERO) - line.discount_total.unwrap_or(Decimal::ZERO);
    DealItem {
        offer_id: offer
            .and_then(|o| o.id)
            .and_then(|id| u64::try_from(id).ok()),
        article: offer.and_then(|o| text(o.article.as_deref())),
        name: offer
            .and_then(|o| text(o.display_name.as_deref()).or_else(|| text(o.name.as_deref())))
            .or_else(|| text(line.product_name.as_deref())),
        quantity,
        price,
        sum: price * quantity,
        purchase_price: line.purchase_price,
        canceled: line.is_canceled,
    }
}

/// The responsible manager; an unknown or deleted user keeps its id with no name.
fn manager(
    manager_id: Option<i64>,
    users: &HashMap<i64, Option<User>>,
    region: phonenumber::country::Id,
) -> Option<Manager> {
    let id = manager_id?;
    let public_id = u64::try_from(id).ok()?;
    let user = users.get(&id).and_then(Option::as_ref);
    Some(Manager {
        id: public_id,
        name: user.and_then(|u| join_name(&[u.first_name.as_deref(), u.last_name.as_deref()])),
        email: user.and_then(|u| text(u.email.as_deref()).map(|e| e.to_lowercase())),
        phone: user
            .and_then(|u| u.phone.as_deref())
            .and_then(|p| to_e164(p, region)),
    })
}

/// The order's UTM attribution, empty texts as absent.
fn utm(source: Option<&Source>) -> Utm {
    let Some(s) = source else {
        return Utm::default();
    };
    Utm {
        source: text(s.source.as_deref()),
        medium: text(s.medium.as_deref()),
        campaign: text(s.campaign.as_deref()),
        keyword: text(s.keyword.as_deref()),
        content: text(s.content.as_deref()),
    }
}
