//! Orders and the sums the API derives from them.
//!
//! The rules, from API-NOTES §5 and the fixtures: `summ` is the goods of the non-cancelled
//! items after item discounts; `totalSumm` = `summ` + `delivery.cost`; `purchaseSumm` is the
//! purchase price of the non-cancelled goods; `prepaySum` is what the paid payments cover.
//! (Whether the real `summ` is before or after item discounts is unconfirmed; the simulator
//! picks "after", which keeps `totalSumm = summ + delivery.cost` true as in every fixture.)

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::{Address, Utm};

/// Who bought: an individual, or a company through one of its contact persons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buyer {
    /// `customer.type = customer`; `contact` repeats the customer.
    Individual {
        /// The customer.
        customer_id: u64,
    },
    /// `customer.type = customer_corporate` with `contact` and `company`.
    Corporate {
        /// The corporate customer.
        corporate_id: u64,
        /// Its contact person who placed the order.
        contact_id: u64,
        /// The company the order is for.
        company_id: u64,
    },
}

/// A catalog offer as it appears inside an item.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Id.
    pub id: u64,
    /// Id in the shop catalog.
    pub external_id: String,
    /// XML id from the catalog feed.
    pub xml_id: String,
    /// Name.
    pub name: String,
    /// Article (SKU).
    pub article: String,
}

/// An order line.
#[derive(Debug, Clone)]
pub struct Item {
    /// Id.
    pub id: u64,
    /// What was bought.
    pub offer: Offer,
    /// Unit price before discounts.
    pub initial_price: Decimal,
    /// Discount per unit.
    pub discount_total: Decimal,
    /// The discounts making up `discount_total`: `(type, amount per unit)`.
    pub discounts: Vec<(String, Decimal)>,
    /// Quantity.
    pub quantity: Decimal,
    /// Item status code (product statuses reference).
    pub status: String,
    /// Cancelled items stay on the order but count in no sum.
    pub is_canceled: bool,
    /// Purchase (cost) price per unit.
    pub purchase_price: Decimal,
    /// VAT rate as the API writes it (`"none"`, `"20.00"`).
    pub vat_rate: String,
    /// When the line was added.
    pub created_at: NaiveDateTime,
}

impl Item {
    /// Unit price after the item discounts (`prices[].price`).
    pub fn unit_price(&self) -> Decimal {
        self.initial_price - self.discount_total
    }

    /// What the line adds to `summ`: nothing when cancelled.
    pub fn goods_total(&self) -> Decimal {
        if self.is_canceled {
            Decimal::ZERO
        } else {
            self.unit_price() * self.quantity
        }
    }
}

/// A payment of the order.
#[derive(Debug, Clone)]
pub struct Payment {
    /// Id (payments are keyed by it as a string).
    pub id: u64,
    /// Payment type code (`cash`, `bank-card`, `bank-transfer`).
    pub kind: String,
    /// Payment status code (`paid`, `not-paid`).
    pub status: String,
    /// Amount.
    pub amount: Decimal,
    /// When it was paid.
    pub paid_at: Option<NaiveDateTime>,
    /// Id in the payment system.
    pub external_id: Option<String>,
}

impl Payment {
    /// Counted in `prepaySum`.
    pub fn is_paid(&self) -> bool {
        self.status == "paid"
    }
}

/// Delivery of the order.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Delivery type code.
    pub code: String,
    /// Delivery service: `(code, name)`.
    pub service: Option<(String, String)>,
    /// What the customer pays for delivery (part of `totalSumm`).
    pub cost: Decimal,
    /// What the delivery costs the shop.
    pub net_cost: Decimal,
    /// Delivery date.
    pub date: Option<NaiveDate>,
    /// Time window `("HH:MM", "HH:MM")`.
    pub time: Option<(String, String)>,
    /// Where to.
    pub address: Address,
}

/// Why an order is gone from `GET`: deleted, or merged into another order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// When.
    pub at: NaiveDateTime,
    /// The surviving order of a merge.
    pub merged_into: Option<u64>,
}

/// An order.
#[derive(Debug, Clone)]
pub struct Order {
    /// Internal id (also `slug`).
    pub id: u64,
    /// Human number (`7141C`).
    pub number: String,
    /// Id in the shop, absent on manual/phone orders.
    pub external_id: Option<String>,
    /// Shop code.
    pub site: String,
    /// Status code.
    pub status: String,
    /// When the status last changed.
    pub status_updated_at: NaiveDateTime,
    /// Order date (the shop may set it on import).
    pub created_at: NaiveDateTime,
    /// Order type code.
    pub order_type: String,
    /// Order method code.
    pub order_method: String,
    /// Country.
    pub country_iso: String,
    /// Currency.
    pub currency: String,
    /// Contact data stored on the order (may differ from the customer card).
    pub first_name: String,
    /// Last name on the order.
    pub last_name: String,
    /// Patronymic on the order.
    pub patronymic: Option<String>,
    /// Phone on the order, as typed.
    pub phone: Option<String>,
    /// Second phone on the order.
    pub additional_phone: Option<String>,
    /// Email on the order, as typed.
    pub email: Option<String>,
    /// Responsible manager (may be an inactive or deleted user).
    pub manager_id: Option<u64>,
    /// Who bought.
    pub buyer: Buyer,
    /// Delivery.
    pub delivery: Delivery,
    /// UTM attribution.
    pub source: Option<Utm>,
    /// Google Analytics client id.
    pub client_id: Option<String>,
    /// Lines.
    pub items: Vec<Item>,
    /// Payments.
    pub payments: Vec<Payment>,
    /// Custom fields (empty renders as `[]`).
    pub custom_fields: Map<String, Value>,
    /// Customer's comment.
    pub customer_comment: Option<String>,
    /// Manager's comment.
    pub manager_comment: Option<String>,
    /// Warehouse.
    pub shipment_store: String,
    /// Shipped flag.
    pub shipped: bool,
    /// Created through the API.
    pub from_api: bool,
    /// "Needs a call" flag.
    pub call: bool,
    /// Overdue flag.
    pub expired: bool,
    /// Set once the order is deleted or merged away (then it is gone from the API).
    pub removal: Option<Removal>,
}

impl Order {
    /// `summ`: goods of the non-cancelled items after item discounts.
    pub fn summ(&self) -> Decimal {
        self.items.iter().map(Item::goods_total).sum()
    }

    /// `totalSumm`: `summ` + `delivery.cost`.
    pub fn total_summ(&self) -> Decimal {
        self.summ() + self.delivery.cost
    }

    /// `purchaseSumm`: purchase price of the non-cancelled goods.
    pub fn purchase_summ(&self) -> Decimal {
        self.items
            .iter()
            .filter(|i| !i.is_canceled)
            .map(|i| i.purchase_price * i.quantity)
            .sum()
    }

    /// `prepaySum`: the paid payments.
    pub fn prepay_sum(&self) -> Decimal {
        self.payments
            .iter()
            .filter(|p| p.is_paid())
            .map(|p| p.amount)
            .sum()
    }

    /// Still visible through the API.
    pub fn is_live(&self) -> bool {
        self.removal.is_none()
    }

    /// The item with `id`.
    pub fn item_mut(&mut self, id: u64) -> Option<&mut Item> {
        self.items.iter_mut().find(|i| i.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::cents;

    fn item(id: u64, price: i64, discount: i64, qty: i64, canceled: bool) -> Item {
        Item {
            id,
            offer: Offer {
                id,
                external_id: format!("sku-{id}"),
                xml_id: format!("x{id}"),
                name: "Чайник".into(),
                article: "KT-17".into(),
            },
            initial_price: cents(price),
            discount_total: cents(discount),
            discounts: Vec::new(),
            quantity: Decimal::from(qty),
            status: "new".into(),
            is_canceled: canceled,
            purchase_price: cents(price / 2),
            vat_rate: "none".into(),
            created_at: NaiveDateTime::default(),
        }
    }

    fn order(items: Vec<Item>, delivery: i64, payments: Vec<Payment>) -> Order {
        Order {
            id: 1,
            number: "1A".into(),
            external_id: None,
            site: "shop".into(),
            status: "new".into(),
            status_updated_at: NaiveDateTime::default(),
            created_at: NaiveDateTime::default(),
            order_type: "eshop-individual".into(),
            order_method: "shopping-cart".into(),
            country_iso: "RU".into(),
            currency: "RUB".into(),
            first_name: "Анна".into(),
            last_name: "Смирнова".into(),
            patronymic: None,
            phone: None,
            additional_phone: None,
            email: None,
            manager_id: None,
            buyer: Buyer::Individual { customer_id: 1 },
            delivery: Delivery {
                code: "courier".into(),
                service: None,
                cost: cents(delivery),
                net_cost: Decimal::ZERO,
                date: None,
                time: None,
                address: Address::default(),
            },
            source: None,
            client_id: None,
            items,
            payments,
            custom_fields: Map::new(),
            customer_comment: None,
            manager_comment: None,
            shipment_store: "main".into(),
            shipped: false,
            from_api: true,
            call: false,
            expired: false,
            removal: None,
        }
    }

    #[test]
    fn sums_skip_cancelled_items_and_add_delivery() {
        let o = order(
            vec![
                item(1, 299_000, 0, 2, false),
                item(2, 499_990, 49_999, 1, false),
                item(3, 3_499_000, 0, 1, true),
            ],
            35_000,
            Vec::new(),
        );
        // 2 × 2990 + (4999.90 − 499.99) = 10479.91; + 350 delivery.
        assert_eq!(o.summ(), cents(1_047_991));
        assert_eq!(o.total_summ(), cents(1_082_991));
        assert_eq!(o.purchase_summ(), cents(299_000 + 249_995));
    }

    #[test]
    fn prepay_counts_only_paid_payments() {
        let pay = |id, status: &str, amount| Payment {
            id,
            kind: "bank-card".into(),
            status: status.into(),
            amount: cents(amount),
            paid_at: None,
            external_id: None,
        };
        let o = order(
            vec![item(1, 100_000, 0, 1, false)],
            0,
            vec![pay(1, "paid", 60_000), pay(2, "not-paid", 40_000)],
        );
        assert_eq!(o.prepay_sum(), cents(60_000));
    }
}
