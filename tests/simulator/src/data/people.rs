//! Generated people: individual customers, corporate customers with companies and contact
//! persons, and the contact details they type (mixed phone formats, emails with capitals).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Value, json};

use super::pools::{
    CITIES, COMPANIES, EMAIL_DOMAINS, FEMALE_FIRST, LAST, MALE_FIRST, PATRONYMIC, STREETS, UTM,
};
use crate::model::{Address, Company, CorporateCustomer, Customer, Site, Utm};

/// A generated person: names, contact details and an address.
#[derive(Debug, Clone)]
pub struct Person {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Patronymic.
    pub patronymic: Option<String>,
    /// `male`/`female`.
    pub sex: &'static str,
    /// Email as typed.
    pub email: Option<String>,
    /// Phones as typed.
    pub phones: Vec<String>,
    /// Home address.
    pub address: Address,
}

/// Writes a national number (`area` + 7 digits) the way people type it: with 8 or +7, with
/// or without brackets, dashes and spaces, or as bare ten digits.
pub fn format_phone(rng: &mut StdRng, area: &str, rest: u32) -> String {
    let r = format!("{rest:07}");
    let (a, b, c) = (&r[0..3], &r[3..5], &r[5..7]);
    match rng.random_range(0..6) {
        0 => format!("8 ({area}) {a}-{b}-{c}"),
        1 => format!("+7 {area} {a} {b}{c}"),
        2 => format!("{area}{r}"),
        3 => format!("+7{area}{r}"),
        4 => format!("8-{area}-{a}-{b}-{c}"),
        _ => format!("7({area}){r}"),
    }
}

/// A phone in the city's area codes.
pub fn phone(rng: &mut StdRng, areas: &[&str]) -> String {
    let area = areas.choose(rng).copied().unwrap_or("916");
    let rest = rng.random_range(1_000_000..10_000_000u32);
    format_phone(rng, area, rest)
}

fn email(rng: &mut StdRng, first: &str, last: &str) -> String {
    let domain = EMAIL_DOMAINS.choose(rng).copied().unwrap_or("mail.ru");
    let n = rng.random_range(1..99);
    match rng.random_range(0..4) {
        // Capitals as typed on phones: real data is full of them.
        0 => format!("{}.{}@{domain}", capitalize(first), capitalize(last)),
        1 => format!("{first}.{last}{n}@{domain}"),
        2 => format!("{}{last}{n}@{domain}", first.get(..1).unwrap_or("x")),
        _ => format!("{last}.{first}@{domain}"),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// An address in a city of `country` (any city when none matches).
pub fn address(
    rng: &mut StdRng,
    country: &str,
    id: Option<u64>,
) -> (Address, &'static [&'static str]) {
    let local: Vec<_> = CITIES.iter().filter(|c| c.0 == country).collect();
    let (country_iso, region, city, index, areas) = **local.choose(rng).unwrap_or(&&CITIES[0]);
    let street = STREETS.choose(rng).copied().unwrap_or("Ленина");
    let building = rng.random_range(1..120).to_string();
    let flat = rng
        .random_bool(0.8)
        .then(|| rng.random_range(1..300).to_string());
    let index = format!("{index}{:03}", rng.random_range(0..1000));
    let mut text = format!("{city}, ул. {street}, д. {building}");
    if let Some(flat) = &flat {
        text.push_str(&format!(", кв. {flat}"));
    }
    let address = Address {
        id,
        index,
        country_iso: country_iso.to_owned(),
        region: region.to_owned(),
        city: city.to_owned(),
        street: street.to_owned(),
        building,
        flat,
        text,
    };
    (address, areas)
}

/// A person living in `country`.
pub fn person(rng: &mut StdRng, country: &str, address_id: Option<u64>) -> Person {
    let female = rng.random_bool(0.55);
    let (first, first_latin) = if female {
        *FEMALE_FIRST.choose(rng).unwrap_or(&FEMALE_FIRST[0])
    } else {
        *MALE_FIRST.choose(rng).unwrap_or(&MALE_FIRST[0])
    };
    let (male_last, female_last, last_latin) = *LAST.choose(rng).unwrap_or(&LAST[0]);
    let patronymic = rng.random_bool(0.5).then(|| {
        let (m, f) = *PATRONYMIC.choose(rng).unwrap_or(&PATRONYMIC[0]);
        if female { f } else { m }.to_owned()
    });
    let (address, areas) = address(rng, country, address_id);
    let mut phones = vec![phone(rng, areas)];
    if rng.random_bool(0.2) {
        phones.push(phone(rng, areas));
    }
    let email = rng.random_bool(0.85).then(|| {
        let last = if female {
            format!("{last_latin}a")
        } else {
            last_latin.to_owned()
        };
        email(rng, first_latin, &last)
    });
    Person {
        first_name: first.to_owned(),
        last_name: if female { female_last } else { male_last }.to_owned(),
        patronymic,
        sex: if female { "female" } else { "male" },
        email,
        phones,
        address,
    }
}

/// A UTM source, or `None` for direct traffic.
pub fn utm(rng: &mut StdRng) -> Option<Utm> {
    if rng.random_bool(0.25) {
        return None;
    }
    let (source, medium, campaigns, keywords) = *UTM.choose(rng)?;
    Some(Utm {
        source: source.to_owned(),
        medium: medium.to_owned(),
        campaign: campaigns.choose(rng).map(|c| (*c).to_owned()),
        keyword: keywords.choose(rng).map(|k| (*k).to_owned()),
        content: rng
            .random_bool(0.3)
            .then(|| format!("ad_{}", rng.random_range(1..9))),
    })
}

/// A Google Analytics client id (`1234567890.1705302000`).
pub fn client_id(rng: &mut StdRng, at: NaiveDateTime) -> String {
    format!(
        "{}.{}",
        rng.random_range(1_000_000_000..2_000_000_000u64),
        at.and_utc().timestamp()
    )
}

/// Sequences for people ids (customers and corporate customers share one, as in RetailCRM).
#[derive(Debug)]
pub struct PeopleIds {
    /// Next customer / corporate customer id.
    pub customer: u64,
    /// Next company id.
    pub company: u64,
    /// Next stored address id.
    pub address: u64,
}

impl PeopleIds {
    fn next_customer(&mut self) -> u64 {
        self.customer += 1;
        self.customer
    }
    fn next_address(&mut self) -> u64 {
        self.address += 1;
        self.address
    }
}

/// Parameters for generating one customer.
#[derive(Debug, Clone, Copy)]
pub struct CustomerSeed<'a> {
    /// Shop.
    pub site: &'a Site,
    /// Card creation time.
    pub created_at: NaiveDateTime,
    /// Responsible manager.
    pub manager_id: Option<u64>,
    /// Contact person of a company.
    pub is_contact: bool,
}

/// One individual customer card.
pub fn customer(rng: &mut StdRng, ids: &mut PeopleIds, seed: CustomerSeed<'_>) -> Customer {
    let id = ids.next_customer();
    let address_id = ids.next_address();
    let p = person(rng, &seed.site.country_iso, Some(address_id));
    let mut custom_fields = Map::new();
    if rng.random_bool(0.2) {
        custom_fields.insert("birthday_discount".into(), json!(true));
    }
    Customer {
        id,
        external_id: (!seed.is_contact && rng.random_bool(0.7))
            .then(|| format!("{}u{}", seed.site.external_prefix, id)),
        site: seed.site.code.clone(),
        created_at: seed.created_at,
        manager_id: seed.manager_id,
        first_name: p.first_name,
        last_name: p.last_name,
        patronymic: p.patronymic,
        sex: Some(p.sex),
        email: p.email,
        phones: p.phones,
        address: Some(p.address),
        source: utm(rng),
        is_contact: seed.is_contact,
        vip: rng.random_bool(0.05),
        bad: rng.random_bool(0.02),
        custom_fields,
        combined_to: None,
        client_id: rng
            .random_bool(0.5)
            .then(|| client_id(rng, seed.created_at)),
    }
}

/// A corporate customer with one or two companies and one to three contact persons (the
/// contact persons are added to `customers`).
pub fn corporate(
    rng: &mut StdRng,
    ids: &mut PeopleIds,
    seed: CustomerSeed<'_>,
    customers: &mut BTreeMap<u64, Customer>,
) -> CorporateCustomer {
    let id = ids.next_customer();
    let (base, brand) = *COMPANIES.choose(rng).unwrap_or(&COMPANIES[0]);
    let count = rng.random_range(1..=2);
    let companies = (0..count)
        .map(|i| {
            ids.company += 1;
            let form = if i == 0 { "ООО" } else { "АО" };
            let (address, _) = address(rng, &seed.site.country_iso, None);
            Company {
                id: ids.company,
                name: format!("{form} «{base}»"),
                brand: brand.map(str::to_owned),
                external_id: rng
                    .random_bool(0.5)
                    .then(|| format!("company-{}", ids.company)),
                legal_name: format!(
                    "{} «{base}»",
                    if i == 0 {
                        "Общество с ограниченной ответственностью"
                    } else {
                        "Акционерное общество"
                    }
                ),
                inn: format!("77{:08}", rng.random_range(0..100_000_000u32)),
                kpp: format!("77{:07}", rng.random_range(0..10_000_000u32)),
                ogrn: format!("1{:012}", rng.random_range(0..1_000_000_000_000u64)),
                address,
                created_at: seed.created_at,
            }
        })
        .collect();
    let contacts = (0..rng.random_range(1..=3))
        .map(|i| {
            let contact = customer(
                rng,
                ids,
                CustomerSeed {
                    created_at: seed.created_at + Duration::minutes(i),
                    is_contact: true,
                    ..seed
                },
            );
            let contact_id = contact.id;
            customers.insert(contact_id, contact);
            contact_id
        })
        .collect();
    let address_id = ids.next_address();
    let (main_address, _) = address(rng, &seed.site.country_iso, Some(address_id));
    let mut custom_fields = Map::new();
    if rng.random_bool(0.5) {
        custom_fields.insert(
            "contract_number".into(),
            Value::String(format!("Д-{id}/24")),
        );
    }
    CorporateCustomer {
        id,
        external_id: rng.random_bool(0.6).then(|| format!("corp-{id}")),
        nick_name: format!(
            "{base}{}",
            brand.map(|b| format!(" ({b})")).unwrap_or_default()
        ),
        site: seed.site.code.clone(),
        created_at: seed.created_at,
        manager_id: seed.manager_id,
        companies,
        contacts,
        main_address,
        custom_fields,
    }
}
