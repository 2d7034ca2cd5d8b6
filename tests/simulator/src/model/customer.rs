//! Customers: individuals (also the contact persons of companies) and corporate customers
//! with their companies.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

/// A postal address.
#[derive(Debug, Clone, Default)]
pub struct Address {
    /// Id of a stored address (customer cards have one, order delivery addresses do not).
    pub id: Option<u64>,
    /// Postcode.
    pub index: String,
    /// ISO-3166 alpha-2 country.
    pub country_iso: String,
    /// Region.
    pub region: String,
    /// City.
    pub city: String,
    /// Street.
    pub street: String,
    /// Building number.
    pub building: String,
    /// Flat, if any.
    pub flat: Option<String>,
    /// One-line text form.
    pub text: String,
}

/// UTM-like attribution (`source` on orders and customers).
#[derive(Debug, Clone, Default)]
pub struct Utm {
    /// utm_source.
    pub source: String,
    /// utm_medium.
    pub medium: String,
    /// utm_campaign.
    pub campaign: Option<String>,
    /// utm_term.
    pub keyword: Option<String>,
    /// utm_content.
    pub content: Option<String>,
}

/// An individual customer card; `is_contact` marks a contact person of a corporate customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Id.
    pub id: u64,
    /// Id in the shop, if the shop sent one.
    pub external_id: Option<String>,
    /// Shop the customer came from.
    pub site: String,
    /// When the card was created.
    pub created_at: NaiveDateTime,
    /// Responsible manager.
    pub manager_id: Option<u64>,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Patronymic.
    pub patronymic: Option<String>,
    /// `male`/`female`.
    pub sex: Option<&'static str>,
    /// Email as typed by the customer (capitals kept).
    pub email: Option<String>,
    /// Phones as typed (mixed national formats).
    pub phones: Vec<String>,
    /// Main address.
    pub address: Option<Address>,
    /// First-touch attribution.
    pub source: Option<Utm>,
    /// Contact person of a corporate customer.
    pub is_contact: bool,
    /// VIP flag.
    pub vip: bool,
    /// "Bad customer" flag.
    pub bad: bool,
    /// Custom fields (empty renders as `[]`).
    pub custom_fields: Map<String, Value>,
    /// Set when merged into another customer: GET answers `Not found` + `combinedTo`.
    pub combined_to: Option<u64>,
    /// Google Analytics client id of the first visit.
    pub client_id: Option<String>,
}

/// A legal entity of a corporate customer.
#[derive(Debug, Clone)]
pub struct Company {
    /// Id.
    pub id: u64,
    /// Short name (`ООО «Вектор»`).
    pub name: String,
    /// Trade mark, if any.
    pub brand: Option<String>,
    /// Id in the shop.
    pub external_id: Option<String>,
    /// Full legal name.
    pub legal_name: String,
    /// Taxpayer number.
    pub inn: String,
    /// Tax registration reason code.
    pub kpp: String,
    /// State registration number.
    pub ogrn: String,
    /// Legal address.
    pub address: Address,
    /// When it was added.
    pub created_at: NaiveDateTime,
}

/// A corporate customer: companies and contact persons.
#[derive(Debug, Clone)]
pub struct CorporateCustomer {
    /// Id.
    pub id: u64,
    /// Id in the shop.
    pub external_id: Option<String>,
    /// Display name.
    pub nick_name: String,
    /// Shop.
    pub site: String,
    /// When it was created.
    pub created_at: NaiveDateTime,
    /// Responsible manager.
    pub manager_id: Option<u64>,
    /// Companies; the first is the main one.
    pub companies: Vec<Company>,
    /// Ids of the contact persons (individual customers with `is_contact`); the first is main.
    pub contacts: Vec<u64>,
    /// Main delivery address.
    pub main_address: Address,
    /// Custom fields (empty renders as `[]`).
    pub custom_fields: Map<String, Value>,
}

impl CorporateCustomer {
    /// The company with `id`.
    pub fn company(&self, id: u64) -> Option<&Company> {
        self.companies.iter().find(|c| c.id == id)
    }
}
