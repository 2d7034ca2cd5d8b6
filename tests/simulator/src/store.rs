//! Everything one account knows: references, people, orders and history, plus the lookups
//! and derived customer statistics the renderers need. Guarded by the account's lock.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use rand::rngs::StdRng;
use rust_decimal::Decimal;

use crate::clock::Clock;
use crate::history::HistoryLog;
use crate::model::{Buyer, CorporateCustomer, Customer, Order, Site, Status, StatusGroup, User};

/// Next free ids per entity kind.
#[derive(Debug, Clone)]
pub struct Ids {
    /// Next order id.
    pub order: u64,
    /// Next item id.
    pub item: u64,
    /// Next payment id.
    pub payment: u64,
}

impl Ids {
    /// Takes the next order id.
    pub fn next_order(&mut self) -> u64 {
        let id = self.order;
        self.order += 1;
        id
    }

    /// Takes the next item id.
    pub fn next_item(&mut self) -> u64 {
        let id = self.item;
        self.item += 1;
        id
    }

    /// Takes the next payment id.
    pub fn next_payment(&mut self) -> u64 {
        let id = self.payment;
        self.payment += 1;
        id
    }
}

/// One account's data.
#[derive(Debug)]
pub struct Store {
    /// The account clock (timezone).
    pub clock: Clock,
    /// Account currency.
    pub currency: String,
    /// When the settings were last changed.
    pub settings_updated_at: NaiveDateTime,
    /// Shops, in `ordering`.
    pub sites: Vec<Site>,
    /// Status groups, in `ordering`.
    pub groups: Vec<StatusGroup>,
    /// Statuses.
    pub statuses: Vec<Status>,
    /// Users, by id.
    pub users: Vec<User>,
    /// Ids referenced by orders whose user was deleted (GET answers `Not found`).
    pub deleted_user_ids: Vec<u64>,
    /// Individual customers and contact persons.
    pub customers: BTreeMap<u64, Customer>,
    /// Corporate customers.
    pub corporates: BTreeMap<u64, CorporateCustomer>,
    /// Orders, including deleted and merged ones (see `Order::removal`).
    pub orders: BTreeMap<u64, Order>,
    /// The change feed.
    pub history: HistoryLog,
    /// Id sequences.
    pub ids: Ids,
    /// Generator state for orders created later by the controls (seeded, so reproducible).
    pub rng: StdRng,
    /// Orders the API renders with an unreadable `createdAt` (a test control: an order
    /// RetailCRM describes in a way no client can read, until it is fixed).
    pub garbled: std::collections::BTreeSet<u64>,
}

impl Store {
    /// The site with `code`.
    pub fn site(&self, code: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.code == code)
    }

    /// The status with `code`.
    pub fn status(&self, code: &str) -> Option<&Status> {
        self.statuses.iter().find(|s| s.code == code)
    }

    /// The user with `id`.
    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// A live (not deleted, not merged) order.
    pub fn live_order(&self, id: u64) -> Option<&Order> {
        self.orders.get(&id).filter(|o| o.is_live())
    }

    /// A live order by external id, optionally within one site.
    pub fn live_order_by_external(&self, external_id: &str, site: Option<&str>) -> Option<&Order> {
        self.orders.values().find(|o| {
            o.is_live()
                && o.external_id.as_deref() == Some(external_id)
                && site.is_none_or(|s| o.site == s)
        })
    }

    /// Statistics of every customer, corporate customer and company over the live orders.
    pub fn stats(&self) -> CustomerStats {
        let mut by = HashMap::new();
        for order in self.orders.values().filter(|o| o.is_live()) {
            let keys = match order.buyer {
                Buyer::Individual { customer_id } => vec![StatsKey::Customer(customer_id)],
                Buyer::Corporate {
                    corporate_id,
                    contact_id,
                    company_id,
                } => vec![
                    StatsKey::Corporate(corporate_id),
                    StatsKey::Company(company_id),
                    StatsKey::Customer(contact_id),
                ],
            };
            for key in keys {
                let agg: &mut Aggregate = by.entry(key).or_default();
                agg.orders += 1;
                agg.total += order.total_summ();
                agg.cost += order.purchase_summ();
            }
        }
        CustomerStats { by }
    }
}

/// Whose statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsKey {
    /// An individual customer or contact person.
    Customer(u64),
    /// A corporate customer.
    Corporate(u64),
    /// A company.
    Company(u64),
}

/// Order statistics of one customer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Aggregate {
    /// `ordersCount`.
    pub orders: u64,
    /// `totalSumm`.
    pub total: Decimal,
    /// `costSumm`.
    pub cost: Decimal,
}

impl Aggregate {
    /// `averageSumm`.
    pub fn average(&self) -> Decimal {
        if self.orders == 0 {
            Decimal::ZERO
        } else {
            self.total / Decimal::from(self.orders)
        }
    }

    /// `marginSumm`.
    pub fn margin(&self) -> Decimal {
        self.total - self.cost
    }
}

/// Statistics of all customers, computed once per request.
#[derive(Debug, Clone, Default)]
pub struct CustomerStats {
    by: HashMap<StatsKey, Aggregate>,
}

impl CustomerStats {
    /// The statistics of `key` (zero when it has no orders).
    pub fn get(&self, key: StatsKey) -> Aggregate {
        self.by.get(&key).copied().unwrap_or_default()
    }
}
