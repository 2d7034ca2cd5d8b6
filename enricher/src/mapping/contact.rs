//! The people and companies of an order (DESIGN §5 "Contact").
//!
//! The contact person is the order's `contact`, else its individual `customer`. Contact data
//! typed on the order wins over the customer card: the order's name when it has one, and its
//! own `phone`, `additionalPhone` and `email` before the card's. A corporate order also names
//! its company: `company`, else the corporate customer's `mainCompany`, else the corporate
//! customer itself under its `nickName`.

use dealflow_shared::events::{Company, DealContact};
use dealflow_shared::retailcrm::models::{Customer, Order, OrderCustomer};
use phonenumber::country::Id;

use super::phone::ContactDetails;

/// Parts of a name joined by spaces, empty parts skipped; `None` when nothing is left.
pub fn join_name(parts: &[Option<&str>]) -> Option<String> {
    let parts: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.map(str::trim))
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The customer card of the order's contact person, if any.
fn person_card(order: &Order) -> Option<&Customer> {
    order.contact.as_ref().or_else(|| {
        order
            .customer
            .as_ref()
            .and_then(OrderCustomer::as_individual)
    })
}

/// The deal's contact: the order's own data first, then the person's card; `None` when the
/// order names nobody at all.
pub fn deal_contact(order: &Order, region: Id) -> Option<DealContact> {
    let card = person_card(order);
    let own_name = join_name(&[
        order.first_name.as_deref(),
        order.last_name.as_deref(),
        order.patronymic.as_deref(),
    ]);
    let name = own_name.or_else(|| card.and_then(Customer::full_name));
    let mut details = ContactDetails::new(region);
    details.add_phone(order.phone.as_deref());
    details.add_phone(order.additional_phone.as_deref());
    details.add_email(order.email.as_deref());
    if let Some(card) = card {
        for phone in &card.phones {
            details.add_phone(phone.number.as_deref());
        }
        details.add_email(card.email.as_deref());
    }
    let id = card.and_then(|c| u64::try_from(c.id).ok());
    if id.is_none() && name.is_none() && details.is_empty() {
        return None;
    }
    let (phones, emails) = details.into_parts();
    Some(DealContact {
        id,
        name,
        phones,
        emails,
    })
}

/// The company of a corporate order, `None` for an individual one.
pub fn company(order: &Order) -> Option<Company> {
    let corporate = order
        .customer
        .as_ref()
        .and_then(OrderCustomer::as_corporate);
    let nick = corporate.and_then(|c| c.nick_name.as_deref());
    let pick = |id: i64, name: Option<&str>| {
        u64::try_from(id).ok().map(|id| Company {
            id,
            name: join_name(&[name]).or_else(|| join_name(&[nick])),
        })
    };
    if let Some(company) = &order.company {
        return pick(company.id, company.name.as_deref());
    }
    let corporate = corporate?;
    match &corporate.main_company {
        Some(main) => pick(main.id, main.name.as_deref()),
        None => pick(corporate.id, None),
    }
}
