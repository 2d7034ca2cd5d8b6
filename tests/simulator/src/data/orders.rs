//! Builds orders: lines with discounts and cancellations, delivery, payments, UTM, custom
//! fields and the contact data typed on the order. Used by the generator and by the
//! "create order" control, so both produce the same kind of order.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use rand::seq::IndexedRandom;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::people::{client_id, format_phone, utm};
use super::pools::{COMMENTS, PRODUCTS};
use crate::clock::parse_datetime;
use crate::error::SimError;
use crate::model::{Buyer, Delivery, Item, Offer, Order, Payment};
use crate::money::{cents, round};
use crate::orders::CANCELED_ITEM_STATUS;
use crate::store::Store;

/// One line to put on a new order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Product name; a catalog product when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Unit price before discounts.
    pub price: Decimal,
    /// Quantity (default 1).
    #[serde(default = "one")]
    pub quantity: Decimal,
    /// Discount per unit (default 0).
    #[serde(default)]
    pub discount: Decimal,
    /// Put the line on the order already cancelled.
    #[serde(default)]
    pub canceled: bool,
}

fn one() -> Decimal {
    Decimal::ONE
}

/// What the "create order" control accepts; everything absent is generated.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewOrder {
    /// Shop code.
    pub site: Option<String>,
    /// Initial status (default `new`).
    pub status: Option<String>,
    /// A corporate order (random buyer of that kind).
    pub corporate: Option<bool>,
    /// The buyer: an individual customer id, or a corporate customer id.
    pub customer_id: Option<u64>,
    /// Manager.
    pub manager_id: Option<u64>,
    /// External id.
    pub external_id: Option<String>,
    /// Order date `Y-m-d H:i:s` (an import can set it in the past); default now.
    pub created_at: Option<String>,
    /// Lines; random catalog lines when absent.
    pub items: Option<Vec<NewItem>>,
    /// Delivery cost; random when absent.
    pub delivery_cost: Option<Decimal>,
    /// Phone typed on the order.
    pub phone: Option<String>,
    /// Email typed on the order.
    pub email: Option<String>,
}

/// Fully decided parameters of an order to build.
#[derive(Debug, Clone)]
pub struct OrderSpec {
    /// Shop code.
    pub site: String,
    /// Buyer.
    pub buyer: Buyer,
    /// Order date.
    pub created_at: NaiveDateTime,
    /// Initial status.
    pub status: String,
    /// Manager at creation.
    pub manager_id: Option<u64>,
    /// Given lines (random when `None`).
    pub items: Option<Vec<NewItem>>,
    /// Given delivery cost (random when `None`).
    pub delivery_cost: Option<Decimal>,
    /// Given external id (generated per order method when `None`).
    pub external_id: Option<String>,
    /// Given phone.
    pub phone: Option<String>,
    /// Given email.
    pub email: Option<String>,
}

/// Who can place orders, per site: individual customers (not contact persons, not merged)
/// and corporate customers. Built once for a batch of orders. Ordered maps keep the draws
/// reproducible from the seed.
#[derive(Debug, Default)]
pub struct BuyerPool {
    individuals: BTreeMap<String, Vec<u64>>,
    corporates: BTreeMap<String, Vec<u64>>,
}

impl BuyerPool {
    /// The buyers of `store`.
    pub fn of(store: &Store) -> Self {
        let mut pool = Self::default();
        for c in store
            .customers
            .values()
            .filter(|c| !c.is_contact && c.combined_to.is_none())
        {
            pool.individuals
                .entry(c.site.clone())
                .or_default()
                .push(c.id);
        }
        for c in store.corporates.values() {
            pool.corporates
                .entry(c.site.clone())
                .or_default()
                .push(c.id);
        }
        pool
    }

    /// The site's ids of one kind, else any site's.
    fn candidates<'a>(by_site: &'a BTreeMap<String, Vec<u64>>, site: &str) -> Vec<&'a u64> {
        match by_site.get(site) {
            Some(ids) if !ids.is_empty() => ids.iter().collect(),
            _ => by_site.values().flatten().collect(),
        }
    }
}

/// A random buyer of the site: corporate with probability `corporate_share`.
pub fn random_buyer(
    store: &mut Store,
    pool: &BuyerPool,
    site: &str,
    corporate_share: f64,
) -> Option<Buyer> {
    if store.rng.random_bool(corporate_share.clamp(0.0, 1.0))
        && let Some(id) = BuyerPool::candidates(&pool.corporates, site)
            .choose(&mut store.rng)
            .copied()
    {
        return corporate_buyer(store, *id);
    }
    let id = **BuyerPool::candidates(&pool.individuals, site).choose(&mut store.rng)?;
    Some(Buyer::Individual { customer_id: id })
}

fn corporate_buyer(store: &mut Store, corporate_id: u64) -> Option<Buyer> {
    let cc = store.corporates.get(&corporate_id)?;
    let contact_id = *cc.contacts.choose(&mut store.rng)?;
    let company_id = cc.companies.choose(&mut store.rng)?.id;
    Some(Buyer::Corporate {
        corporate_id,
        contact_id,
        company_id,
    })
}

/// Decides every parameter of a control-created order.
pub fn spec_from_new(
    store: &mut Store,
    new: &NewOrder,
    now: NaiveDateTime,
) -> Result<OrderSpec, SimError> {
    let site = match &new.site {
        Some(code) => store
            .site(code)
            .ok_or_else(|| SimError::UnknownSite(code.clone()))?
            .code
            .clone(),
        None => {
            let codes: Vec<String> = store.sites.iter().map(|s| s.code.clone()).collect();
            codes
                .choose(&mut store.rng)
                .cloned()
                .ok_or_else(|| SimError::Invalid("the account has no sites".into()))?
        }
    };
    let status = new.status.clone().unwrap_or_else(|| "new".to_owned());
    if store.status(&status).is_none() {
        return Err(SimError::UnknownStatus(status));
    }
    if let Some(m) = new.manager_id
        && store.user(m).is_none()
        && !store.deleted_user_ids.contains(&m)
    {
        return Err(SimError::UnknownUser(m));
    }
    let buyer = match (new.customer_id, new.corporate.unwrap_or(false)) {
        (Some(id), _) if store.corporates.contains_key(&id) => corporate_buyer(store, id),
        (Some(id), _) => match store.customers.get(&id) {
            Some(c) if c.combined_to.is_none() => Some(Buyer::Individual { customer_id: id }),
            _ => return Err(SimError::UnknownCustomer(id)),
        },
        (None, corporate) => {
            let pool = BuyerPool::of(store);
            random_buyer(store, &pool, &site, if corporate { 1.0 } else { 0.0 })
        }
    }
    .ok_or_else(|| SimError::Invalid("no customer to place the order for".into()))?;
    let created_at = match &new.created_at {
        Some(s) => parse_datetime(s)
            .ok_or_else(|| SimError::Invalid(format!("created_at {s:?} is not Y-m-d H:i:s")))?,
        None => now,
    };
    Ok(OrderSpec {
        site,
        buyer,
        created_at,
        status,
        manager_id: new.manager_id,
        items: new.items.clone(),
        delivery_cost: new.delivery_cost,
        external_id: new.external_id.clone(),
        phone: new.phone.clone(),
        email: new.email.clone(),
    })
}

/// A delivery type: (code, `(service code, service name)`, cost in kopecks).
type DeliveryKind = (&'static str, Option<(&'static str, &'static str)>, i64);

/// Delivery types the shops offer.
const DELIVERIES: &[DeliveryKind] = &[
    ("courier", Some(("cdek-courier", "СДЭК курьер")), 35_000),
    ("courier", Some(("dostavista", "Достависта")), 49_000),
    ("self-delivery", None, 0),
    ("russian-post", Some(("avia", "Почта России")), 29_990),
    ("sdek-pvz", Some(("cdek-pvz", "СДЭК пункт выдачи")), 24_950),
];

/// Builds the order (taking ids from the store) without inserting it.
pub fn build_order(store: &mut Store, spec: &OrderSpec) -> Result<Order, SimError> {
    let site = store
        .site(&spec.site)
        .ok_or_else(|| SimError::UnknownSite(spec.site.clone()))?
        .clone();
    let id = store.ids.next_order();
    let corporate = matches!(spec.buyer, Buyer::Corporate { .. });
    let (method, has_external) = if corporate {
        (
            ["phone", "shopping-cart", "landing-page"]
                .choose(&mut store.rng)
                .copied()
                .unwrap_or("phone"),
            false,
        )
    } else {
        match store.rng.random_range(0..10) {
            0..=5 => ("shopping-cart", true),
            6 => ("one-click", true),
            7 => ("messenger", false),
            _ => ("phone", false),
        }
    };
    let external_id = spec.external_id.clone().or_else(|| {
        (has_external || corporate && store.rng.random_bool(0.3))
            .then(|| format!("{}{}", site.external_prefix, id + 9000))
    });
    let items = items(store, spec, corporate);
    let goods: Decimal = items.iter().map(Item::goods_total).sum();
    let (delivery_code, service, default_cost) =
        *DELIVERIES.choose(&mut store.rng).unwrap_or(&DELIVERIES[0]);
    // Free delivery above 5000, as shops do; kopecks stay on the paid ones.
    let cost = spec.delivery_cost.unwrap_or(
        if goods > Decimal::from(5000) && store.rng.random_bool(0.5) {
            Decimal::ZERO
        } else {
            cents(default_cost)
        },
    );
    let contact = contact_of(store, spec.buyer)?;
    let (contact_address, contact_phone) = (
        contact.address.clone().unwrap_or_default(),
        contact.phones.first().cloned(),
    );
    let phone = spec.phone.clone().or_else(|| {
        contact_phone.map(|p| {
            // Sometimes the order carries the same number typed differently.
            if store.rng.random_bool(0.2) {
                let digits: String = p.chars().filter(char::is_ascii_digit).collect();
                let national = &digits[digits.len().saturating_sub(10)..];
                let (area, rest) = national.split_at(3.min(national.len()));
                format_phone(&mut store.rng, area, rest.parse().unwrap_or(1_234_567))
            } else {
                p
            }
        })
    });
    let additional_phone = if contact.phones.len() > 1 && store.rng.random_bool(0.7) {
        contact.phones.get(1).cloned()
    } else {
        None
    };
    let mut delivery_address = contact_address;
    delivery_address.id = None;
    let delivery = Delivery {
        code: delivery_code.to_owned(),
        service: service.map(|(c, n)| (c.to_owned(), n.to_owned())),
        cost,
        net_cost: round(cost * Decimal::new(8, 1)),
        date: Some((spec.created_at + Duration::days(store.rng.random_range(1..6))).date()),
        time: (delivery_code == "courier").then(|| {
            let from = store.rng.random_range(9..18);
            (format!("{from:02}:00"), format!("{:02}:00", from + 4))
        }),
        address: delivery_address,
    };
    let total = goods + cost;
    let payments = payments(store, spec, corporate, total);
    let source = utm(&mut store.rng);
    let client = (!corporate && store.rng.random_bool(0.6))
        .then(|| client_id(&mut store.rng, spec.created_at));
    let custom_fields = custom_fields(store);
    let customer_comment = store
        .rng
        .random_bool(0.15)
        .then(|| COMMENTS.choose(&mut store.rng).map(|c| (*c).to_owned()))
        .flatten();
    Ok(Order {
        id,
        number: format!("{id}{}", site.number_suffix),
        external_id,
        site: site.code.clone(),
        status: spec.status.clone(),
        status_updated_at: spec.created_at,
        created_at: spec.created_at,
        order_type: if corporate {
            "eshop-legal"
        } else {
            "eshop-individual"
        }
        .to_owned(),
        order_method: method.to_owned(),
        country_iso: site.country_iso.clone(),
        currency: site.currency.clone(),
        first_name: contact.first_name.clone(),
        last_name: contact.last_name.clone(),
        patronymic: contact.patronymic.clone(),
        phone,
        additional_phone,
        email: spec.email.clone().or_else(|| contact.email.clone()),
        manager_id: spec.manager_id,
        buyer: spec.buyer,
        delivery,
        source,
        client_id: client,
        items,
        payments,
        custom_fields,
        customer_comment,
        manager_comment: None,
        shipment_store: "main".to_owned(),
        shipped: false,
        from_api: has_external,
        call: false,
        expired: false,
        removal: None,
    })
}

fn contact_of(store: &Store, buyer: Buyer) -> Result<crate::model::Customer, SimError> {
    let id = match buyer {
        Buyer::Individual { customer_id } => customer_id,
        Buyer::Corporate { contact_id, .. } => contact_id,
    };
    store
        .customers
        .get(&id)
        .cloned()
        .ok_or(SimError::UnknownCustomer(id))
}

fn items(store: &mut Store, spec: &OrderSpec, corporate: bool) -> Vec<Item> {
    let lines: Vec<NewItem> = match &spec.items {
        Some(given) => given.clone(),
        None => random_lines(store, corporate),
    };
    lines
        .into_iter()
        .enumerate()
        .map(|(n, line)| {
            let id = store.ids.next_item();
            let product = match &line.name {
                Some(name) => PRODUCTS.iter().find(|p| p.0 == name).copied(),
                None => PRODUCTS.choose(&mut store.rng).copied(),
            };
            let name = line
                .name
                .clone()
                .or_else(|| product.map(|p| p.0.to_owned()))
                .unwrap_or_else(|| format!("Товар {}", n + 1));
            let article = product.map_or_else(|| format!("SIM-{id}"), |p| p.1.to_owned());
            let offer_id = 500
                + PRODUCTS
                    .iter()
                    .position(|p| p.0 == name)
                    .unwrap_or(PRODUCTS.len() + n) as u64;
            let discounts = if line.discount.is_zero() {
                Vec::new()
            } else {
                vec![(
                    ["manual_product", "loyalty_level", "personal"][n % 3].to_owned(),
                    line.discount,
                )]
            };
            Item {
                id,
                offer: Offer {
                    id: offer_id,
                    external_id: format!("sku-{offer_id}"),
                    xml_id: format!("{:x}", offer_id * 7919),
                    name,
                    article,
                },
                initial_price: line.price,
                discount_total: line.discount,
                discounts,
                quantity: line.quantity,
                status: if line.canceled {
                    CANCELED_ITEM_STATUS
                } else {
                    "new"
                }
                .to_owned(),
                is_canceled: line.canceled,
                purchase_price: product
                    .map_or_else(|| round(line.price * Decimal::new(55, 2)), |p| cents(p.3)),
                vat_rate: if corporate { "20.00" } else { "none" }.to_owned(),
                created_at: spec.created_at,
            }
        })
        .collect()
}

/// Random catalog lines: some discounted, sometimes one cancelled.
fn random_lines(store: &mut Store, corporate: bool) -> Vec<NewItem> {
    let rng = &mut store.rng;
    let count = rng.random_range(1..=4usize);
    let cancel_one = count > 1 && rng.random_bool(0.15);
    (0..count)
        .map(|n| {
            let (name, _, price, _) = *PRODUCTS.choose(rng).unwrap_or(&PRODUCTS[0]);
            let price = cents(price);
            let discount = match rng.random_range(0..10) {
                0 | 1 => round(price * Decimal::new(10, 2)),
                2 => Decimal::from(100),
                _ => Decimal::ZERO,
            };
            NewItem {
                name: Some(name.to_owned()),
                price,
                quantity: Decimal::from(if corporate {
                    rng.random_range(2..20)
                } else {
                    rng.random_range(1..=3)
                }),
                discount,
                canceled: cancel_one && n == count - 1,
            }
        })
        .collect()
}

fn payments(store: &mut Store, spec: &OrderSpec, corporate: bool, total: Decimal) -> Vec<Payment> {
    if total.is_zero() || store.rng.random_bool(0.3) {
        return Vec::new();
    }
    let id = store.ids.next_payment();
    let (kind, paid) = if corporate {
        ("bank-transfer", store.rng.random_bool(0.5))
    } else if store.rng.random_bool(0.6) {
        ("bank-card", true)
    } else {
        ("cash", false)
    };
    vec![Payment {
        id,
        kind: kind.to_owned(),
        status: if paid { "paid" } else { "not-paid" }.to_owned(),
        amount: total,
        paid_at: paid.then_some(spec.created_at),
        external_id: (kind == "bank-card").then(|| format!("payment_{id}")),
    }]
}

fn custom_fields(store: &mut Store) -> Map<String, Value> {
    let mut fields = Map::new();
    match store.rng.random_range(0..10) {
        0 => {
            fields.insert("gift_wrap".into(), json!(true));
        }
        1 => {
            fields.insert("delivery_interval".into(), json!(["morning", "evening"]));
            fields.insert("floor".into(), json!(store.rng.random_range(1..20)));
        }
        2 => {
            fields.insert("utm_term".into(), json!("чайник"));
        }
        _ => {}
    }
    fields
}
