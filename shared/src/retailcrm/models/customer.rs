//! Customers: individual (`customers/{id}`), corporate (`customers-corporate/{id}`), the
//! polymorphic `customer` of an order, and the pieces an order shares with them (UTM source,
//! company). API-NOTES §8.
//!
//! Only what the deal's contact and company are built from is modelled (DESIGN §5 "Contact"):
//! names, phones, e-mail, the corporate name and main company. serde skips every other field,
//! so a customer card's statistics, addresses or tags can never fail an order.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, de};

/// An individual customer (`type: "customer"`), also an order's contact person.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Internal id.
    pub id: i64,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Patronymic.
    #[serde(default)]
    pub patronymic: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Phones.
    #[serde(default)]
    pub phones: Vec<Phone>,
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
    /// Company display name.
    #[serde(default)]
    pub nick_name: Option<String>,
    /// Main company (`{id, name}`).
    #[serde(default)]
    pub main_company: Option<Company>,
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
        // the chosen variant reports its inner path (`customer: id: ...`).
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

/// `phones[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Phone {
    /// The number as entered (any national format).
    #[serde(default)]
    pub number: Option<String>,
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

/// A company of a corporate customer (`order.company`, `mainCompany`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Company {
    /// Company id.
    pub id: i64,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
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
            serde_json::from_str(r#"{"type":"customer","id":1,"firstName":"Анна"}"#).unwrap();
        assert_eq!(
            individual.as_individual().unwrap().first_name.as_deref(),
            Some("Анна")
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
    fn names_join_the_present_parts() {
        let c: Customer = serde_json::from_str(
            r#"{"id":1,"firstName":"Анна","lastName":"Смирнова","patronymic":""}"#,
        )
        .unwrap();
        assert_eq!(c.full_name().as_deref(), Some("Анна Смирнова"));
    }
}
