//! Customers: individual (`customers/{id}`), corporate (`customers-corporate/{id}`), the
//! polymorphic `customer` of an order, and the pieces they share (address, contragent, UTM
//! source, company, contact person). API-NOTES §8.

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, de};

use super::order::CustomFields;
use crate::retailcrm::{lenient, time};

/// An individual customer (`type: "customer"`), also an order's contact person.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Internal id.
    pub id: i64,
    /// Id in the shop.
    #[serde(default)]
    pub external_id: Option<String>,
    /// A contact person of a corporate customer.
    #[serde(default)]
    pub is_contact: Option<bool>,
    /// Creation time (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub created_at: Option<NaiveDateTime>,
    /// Responsible user.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub manager_id: Option<i64>,
    /// Store code.
    #[serde(default)]
    pub site: Option<String>,
    /// VIP flag.
    #[serde(default)]
    pub vip: Option<bool>,
    /// "Bad customer" flag.
    #[serde(default)]
    pub bad: Option<bool>,
    /// Legal details.
    #[serde(default)]
    pub contragent: Option<Contragent>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<CustomerTag>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Patronymic.
    #[serde(default)]
    pub patronymic: Option<String>,
    /// `male` / `female`.
    #[serde(default)]
    pub sex: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Phones.
    #[serde(default)]
    pub phones: Vec<Phone>,
    /// Birthday.
    #[serde(default)]
    pub birthday: Option<NaiveDate>,
    /// Main address.
    #[serde(default)]
    pub address: Option<Address>,
    /// UTM-like attribution of the customer.
    #[serde(default)]
    pub source: Option<Source>,
    /// Custom field values by code.
    #[serde(default, deserialize_with = "lenient::map_or_empty")]
    pub custom_fields: CustomFields,
    /// Sum of the customer's orders.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total_summ: Option<Decimal>,
    /// Average order sum.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub average_summ: Option<Decimal>,
    /// Margin (can be negative).
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub margin_summ: Option<Decimal>,
    /// Costs.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub cost_summ: Option<Decimal>,
    /// Number of orders.
    #[serde(default)]
    pub orders_count: Option<i64>,
    /// Personal discount, percent.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub personal_discount: Option<Decimal>,
}

impl Customer {
    /// First, last and patronymic name joined by spaces, skipping empty parts.
    pub fn full_name(&self) -> Option<String> {
        join_name(&[&self.first_name, &self.last_name, &self.patronymic])
    }
}

pub(crate) fn join_name(parts: &[&Option<String>]) -> Option<String> {
    let parts: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.as_deref().map(str::trim))
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A corporate customer (`type: "customer_corporate"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerCorporate {
    /// Internal id.
    pub id: i64,
    /// Id in the shop.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Company display name.
    #[serde(default)]
    pub nick_name: Option<String>,
    /// Main address (often just `{id}`).
    #[serde(default)]
    pub main_address: Option<Address>,
    /// Main company (`{id, name}`).
    #[serde(default)]
    pub main_company: Option<Company>,
    /// Main contact person.
    #[serde(default)]
    pub main_customer_contact: Option<CustomerContact>,
    /// Contact persons (full snapshots only).
    #[serde(default)]
    pub customer_contacts: Vec<CustomerContact>,
    /// Companies (full snapshots only).
    #[serde(default)]
    pub companies: Vec<Company>,
    /// Addresses (full snapshots only).
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Creation time (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub created_at: Option<NaiveDateTime>,
    /// Responsible user.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub manager_id: Option<i64>,
    /// Store code.
    #[serde(default)]
    pub site: Option<String>,
    /// VIP flag.
    #[serde(default)]
    pub vip: Option<bool>,
    /// "Bad customer" flag.
    #[serde(default)]
    pub bad: Option<bool>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<CustomerTag>,
    /// UTM-like attribution.
    #[serde(default)]
    pub source: Option<Source>,
    /// Custom field values by code.
    #[serde(default, deserialize_with = "lenient::map_or_empty")]
    pub custom_fields: CustomFields,
    /// Sum of the customer's orders.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total_summ: Option<Decimal>,
    /// Average order sum.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub average_summ: Option<Decimal>,
    /// Margin.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub margin_summ: Option<Decimal>,
    /// Costs.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub cost_summ: Option<Decimal>,
    /// Number of orders.
    #[serde(default)]
    pub orders_count: Option<i64>,
    /// Personal discount, percent.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub personal_discount: Option<Decimal>,
}

/// An order's `customer`, discriminated by its `type` (API-NOTES §10.4).
#[derive(Debug, Clone, PartialEq)]
pub enum OrderCustomer {
    /// `type: "customer"`.
    Individual(Box<Customer>),
    /// `type: "customer_corporate"`.
    Corporate(Box<CustomerCorporate>),
    /// Any other or missing `type`, kept as sent so a new kind never fails the order.
    Other {
        /// The `type` value, if any.
        kind: Option<String>,
        /// The object as sent.
        raw: serde_json::Value,
    },
}

impl OrderCustomer {
    /// The customer's internal id, whatever its kind.
    pub fn id(&self) -> Option<i64> {
        match self {
            OrderCustomer::Individual(c) => Some(c.id),
            OrderCustomer::Corporate(c) => Some(c.id),
            OrderCustomer::Other { raw, .. } => raw.get("id").and_then(serde_json::Value::as_i64),
        }
    }

    /// The individual customer, if it is one.
    pub fn as_individual(&self) -> Option<&Customer> {
        match self {
            OrderCustomer::Individual(c) => Some(c),
            _ => None,
        }
    }

    /// The corporate customer, if it is one.
    pub fn as_corporate(&self) -> Option<&CustomerCorporate> {
        match self {
            OrderCustomer::Corporate(c) => Some(c),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for OrderCustomer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Buffer once, then dispatch on `type`. serde's internally tagged enums cannot keep a
        // data-carrying fallback variant, and they hide the failing field; here a failure in
        // the chosen variant reports its inner path (`customer: totalSumm: ...`).
        let value = serde_json::Value::deserialize(d)?;
        let kind = value
            .get("type")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        match kind.as_deref() {
            Some("customer") => typed(value).map(|c| OrderCustomer::Individual(Box::new(c))),
            Some("customer_corporate") => {
                typed(value).map(|c| OrderCustomer::Corporate(Box::new(c)))
            }
            _ => Ok(OrderCustomer::Other { kind, raw: value }),
        }
    }
}

fn typed<T: DeserializeOwned, E: de::Error>(value: serde_json::Value) -> Result<T, E> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| E::custom(format_args!("{}: {}", e.path(), e.inner())))
}

/// A customer tag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CustomerTag {
    /// Tag name.
    pub name: String,
    /// Colour, `#rrggbb`.
    #[serde(default)]
    pub color: Option<String>,
    /// Attached to the customer.
    #[serde(default)]
    pub attached: Option<bool>,
}

/// `phones[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Phone {
    /// The number as entered (any national format).
    #[serde(default)]
    pub number: Option<String>,
}

/// An address (customer, delivery, company). Numeric ids inside addresses may come as `""`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Address id (customer addresses).
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub id: Option<i64>,
    /// External id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Address name (corporate addresses).
    #[serde(default)]
    pub name: Option<String>,
    /// Main address flag.
    #[serde(default)]
    pub is_main: Option<bool>,
    /// Postal code.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub index: Option<String>,
    /// Country, ISO-3166 alpha-2 (may be `""`).
    #[serde(default)]
    pub country_iso: Option<String>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// Region id.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub region_id: Option<i64>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// City id.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub city_id: Option<i64>,
    /// City type, e.g. `г.`.
    #[serde(default)]
    pub city_type: Option<String>,
    /// Street.
    #[serde(default)]
    pub street: Option<String>,
    /// Street id.
    #[serde(default, deserialize_with = "lenient::opt_id")]
    pub street_id: Option<i64>,
    /// Street type, e.g. `ул.`.
    #[serde(default)]
    pub street_type: Option<String>,
    /// Building.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub building: Option<String>,
    /// Flat or office.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub flat: Option<String>,
    /// Floor.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub floor: Option<String>,
    /// Entrance.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub block: Option<String>,
    /// House.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub house: Option<String>,
    /// Housing.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub housing: Option<String>,
    /// Metro station.
    #[serde(default)]
    pub metro: Option<String>,
    /// Notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// The whole address as one text.
    #[serde(default)]
    pub text: Option<String>,
}

/// Legal details (`contragent`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contragent {
    /// `individual`, `legal-entity` or `enterpreneur` (sic).
    #[serde(default)]
    pub contragent_type: Option<String>,
    /// Legal name.
    #[serde(default)]
    pub legal_name: Option<String>,
    /// Legal address.
    #[serde(default)]
    pub legal_address: Option<String>,
    /// Taxpayer number.
    #[serde(default, rename = "INN")]
    pub inn: Option<String>,
    /// Tax registration reason code.
    #[serde(default, rename = "KPP")]
    pub kpp: Option<String>,
    /// State registration number.
    #[serde(default, rename = "OGRN")]
    pub ogrn: Option<String>,
    /// Code (legal entities of a site).
    #[serde(default)]
    pub code: Option<String>,
    /// Country.
    #[serde(default)]
    pub country_iso: Option<String>,
}

/// UTM-like attribution: `source{source, medium, campaign, keyword, content}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Source {
    /// utm_source.
    #[serde(default)]
    pub source: Option<String>,
    /// utm_medium.
    #[serde(default)]
    pub medium: Option<String>,
    /// utm_campaign.
    #[serde(default)]
    pub campaign: Option<String>,
    /// utm_term.
    #[serde(default)]
    pub keyword: Option<String>,
    /// utm_content.
    #[serde(default)]
    pub content: Option<String>,
}

/// A company of a corporate customer (`order.company`, `mainCompany`, `companies[]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Company {
    /// Company id.
    pub id: i64,
    /// External id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// Site (a store code or a web address).
    #[serde(default)]
    pub site: Option<String>,
    /// Main company of its customer.
    #[serde(default)]
    pub is_main: Option<bool>,
    /// Active flag.
    #[serde(default)]
    pub active: Option<bool>,
    /// Creation time (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub created_at: Option<NaiveDateTime>,
    /// Legal details.
    #[serde(default)]
    pub contragent: Option<Contragent>,
    /// Address.
    #[serde(default)]
    pub address: Option<Address>,
    /// The corporate customer it belongs to.
    #[serde(default)]
    pub customer: Option<CustomerRef>,
    /// Custom field values by code.
    #[serde(default, deserialize_with = "lenient::map_or_empty")]
    pub custom_fields: CustomFields,
    /// Sum of the company's orders.
    #[serde(default, deserialize_with = "lenient::opt_decimal")]
    pub total_summ: Option<Decimal>,
}

/// A short reference to a customer (`{id, externalId, site, type}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRef {
    /// Internal id.
    pub id: i64,
    /// External id.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Store code.
    #[serde(default)]
    pub site: Option<String>,
    /// `customer` or `customer_corporate`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A contact person of a corporate customer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerContact {
    /// Link id.
    pub id: i64,
    /// Main contact flag.
    #[serde(default)]
    pub is_main: Option<bool>,
    /// The person (an individual customer).
    #[serde(default)]
    pub customer: Option<CustomerRef>,
    /// Companies the person acts for.
    #[serde(default)]
    pub companies: Vec<ContactCompany>,
}

/// `companies[]` of a contact person.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContactCompany {
    /// Link id.
    pub id: i64,
    /// The company.
    #[serde(default)]
    pub company: Option<Company>,
}

/// Body of `GET /api/v5/customers/{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomerResponse {
    /// Always `true` here.
    pub success: bool,
    /// The customer.
    pub customer: Customer,
}

/// Body of `GET /api/v5/customers-corporate/{id}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerCorporateResponse {
    /// Always `true` here.
    pub success: bool,
    /// The corporate customer.
    pub customer_corporate: CustomerCorporate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_kinds_by_type_with_a_fallback() {
        let individual: OrderCustomer =
            serde_json::from_str(r#"{"type":"customer","id":1,"totalSumm":"12.50"}"#).unwrap();
        assert_eq!(
            individual.as_individual().unwrap().total_summ,
            Some(Decimal::new(1250, 2))
        );
        let corporate: OrderCustomer = serde_json::from_str(
            r#"{"id":2,"nickName":"ACME","mainCompany":{"id":3,"name":"ACME LLC"},"type":"customer_corporate"}"#,
        )
        .unwrap();
        let c = corporate.as_corporate().unwrap();
        assert_eq!((c.id, c.nick_name.as_deref()), (2, Some("ACME")));
        let other: OrderCustomer = serde_json::from_str(r#"{"type":"lead","id":5}"#).unwrap();
        assert!(matches!(&other, OrderCustomer::Other { kind: Some(k), .. } if k == "lead"));
        assert_eq!(other.id(), Some(5));
        let untyped: OrderCustomer = serde_json::from_str(r#"{"id":6}"#).unwrap();
        assert!(matches!(untyped, OrderCustomer::Other { kind: None, .. }));
    }

    #[test]
    fn a_broken_known_kind_fails_and_names_the_field() {
        let e = serde_json::from_str::<OrderCustomer>(r#"{"type":"customer","id":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("id: "), "{e}");
    }

    #[test]
    fn address_ids_may_be_empty_strings() {
        let a: Address =
            serde_json::from_str(r#"{"regionId":"","cityId":"4298","streetId":7,"floor":2}"#)
                .unwrap();
        assert_eq!(
            (a.region_id, a.city_id, a.street_id),
            (None, Some(4298), Some(7))
        );
        assert_eq!(a.floor.as_deref(), Some("2"));
    }

    #[test]
    fn names_join_the_present_parts() {
        let c: Customer = serde_json::from_str(
            r#"{"id":1,"firstName":"Анна","lastName":"Смирнова","patronymic":""}"#,
        )
        .unwrap();
        assert_eq!(c.full_name().as_deref(), Some("Анна Смирнова"));
    }
}
