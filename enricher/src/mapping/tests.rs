//! Mapping on the real response bodies in `tests/fixtures/retailcrm/` (orders, history
//! snapshots, references, a user) and on hand-written corporate orders, which no fixture has.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use dealflow_shared::events::{Company, ContactKind, DealContact, Manager};
use dealflow_shared::retailcrm::models::{
    Order, OrderResponse, OrdersHistoryResponse, OrdersResponse, SettingsResponse, SitesResponse,
    StatusesResponse, User, UserResponse,
};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use super::*;

fn fixtures_dir() -> PathBuf {
    match std::env::var_os("DEALFLOW_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/retailcrm"
        )),
    }
}

/// A response body of `tests/fixtures/retailcrm/`, parsed.
pub(crate) fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = fixtures_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {name}: {e}"))
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The account of the fixtures: `settings.json`, `reference-*.json`, `users-get.json`.
pub(crate) struct Account {
    pub(crate) timezone: Tz,
    pub(crate) currency: String,
    pub(crate) sites: Dictionary<Site>,
    pub(crate) statuses: Dictionary<Status>,
    pub(crate) managers: HashMap<i64, Option<User>>,
}

impl Account {
    pub(crate) fn fixtures() -> Self {
        let settings: SettingsResponse = fixture("settings.json");
        let sites: SitesResponse = fixture("reference-sites.json");
        let statuses: StatusesResponse = fixture("reference-statuses.json");
        let user: UserResponse = fixture("users-get.json");
        Self {
            timezone: settings.settings.time_zone().unwrap().unwrap(),
            currency: settings.settings.default_currency.unwrap().value,
            sites: sites.sites,
            statuses: statuses.statuses,
            managers: HashMap::from([(user.user.id, Some(user.user))]),
        }
    }

    fn view(&self) -> AccountView<'_> {
        AccountView {
            timezone: self.timezone,
            default_currency: Some(&self.currency),
            sites: &self.sites,
            statuses: &self.statuses,
            managers: &self.managers,
        }
    }

    fn map(&self, order: &Order) -> Mapped {
        map_order(order, &self.view(), observed()).unwrap()
    }
}

fn observed() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn order_json(value: serde_json::Value) -> Order {
    serde_json::from_value(value).unwrap()
}

#[test]
fn single_order_facts_in_utc_and_decimals() {
    let account = Account::fixtures();
    let body: OrderResponse = fixture("orders-get.json");
    let Mapped { deal, contacts } = account.map(&body.order);
    assert_eq!(deal.order_id, 6722);
    assert_eq!(deal.number.as_deref(), Some("8123522898559160"));
    assert_eq!(deal.external_id.as_deref(), Some("8123522898559160"));
    assert_eq!(
        (deal.site.as_str(), deal.status_code.as_str()),
        ("aliexpress", "delivering")
    );
    assert_eq!(deal.status_group.as_deref(), Some("delivery"));
    assert_eq!((deal.total_sum, deal.delivery_cost), (dec("1"), dec("0")));
    assert_eq!(deal.currency.as_deref(), Some("RUB"));
    // Europe/Moscow is UTC+3 all year.
    assert_eq!(deal.created_at, utc("2020-12-29T14:35:08Z"));
    assert_eq!(deal.stage_entered_at, Some(utc("2020-12-31T12:09:31Z")));
    assert_eq!(deal.manager, None, "no managerId, no manager");
    assert_eq!(deal.company, None);
    assert_eq!(
        deal.custom_fields.get("galka"),
        Some(&serde_json::json!(false))
    );
    assert_eq!(deal.observed_at, observed());
    let contact = deal.contact.unwrap();
    assert_eq!(contact.id, Some(4976));
    assert_eq!(
        contact.name.as_deref(),
        Some("Kovalenko Pavel"),
        "first + last as on the order"
    );
    assert!(contact.phones.is_empty() && contact.emails.is_empty());
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        (contacts[0].contact_id, contacts[0].kind),
        (4976, ContactKind::Person)
    );
}

#[test]
fn listed_order_with_manager_phones_and_multiselect() {
    let account = Account::fixtures();
    let body: OrdersResponse = fixture("orders-list.json");
    let deal = account.map(&body.orders[0]).deal;
    assert_eq!(deal.status_group.as_deref(), Some("assembling"));
    assert_eq!(
        deal.manager,
        Some(Manager {
            id: 28,
            name: Some("programmer".into()),
            email: Some("programmer@retailcrm.ru".into()),
            phone: None,
        })
    );
    let contact = deal.contact.unwrap();
    assert_eq!(
        contact.phones,
        ["+79515151515"],
        "the order's phone and the card's are one"
    );
    assert_eq!(contact.emails, ["andrey@andrey.ru"]);
    assert_eq!(
        deal.custom_fields.get("multiselect"),
        Some(&serde_json::json!(["test1", "test3"]))
    );
    assert!(deal.external_id.is_none());
}

#[test]
fn order_phones_come_first_then_the_cards() {
    let account = Account::fixtures();
    let body: OrderResponse = fixture("orders-create.json");
    let contact = account.map(&body.order).deal.contact.unwrap();
    assert_eq!(contact.phones, ["+79003005069", "+79515151515"]);
    assert_eq!(contact.emails, ["testuser12345678901@example.com"]);
    assert_eq!(
        contact.name.as_deref(),
        Some("Test User Patronymic"),
        "patronymic when present"
    );
}

#[test]
fn minimal_order_contact_person_wins_and_empty_email_is_dropped() {
    let account = Account::fixtures();
    let body: OrderResponse = fixture("orders-create-minimal.json");
    let Mapped { deal, contacts } = account.map(&body.order);
    assert_eq!(
        deal.contact,
        Some(DealContact {
            id: Some(4512),
            name: None,
            phones: vec![],
            emails: vec![],
        }),
        "`contact` is the person, not the `customer`"
    );
    assert_eq!(
        deal.currency.as_deref(),
        Some("RUB"),
        "falls back to the account currency"
    );
    assert!(deal.custom_fields.is_empty(), "no customFields key at all");
    assert_eq!(contacts.len(), 1);
}

#[test]
fn every_history_snapshot_maps_with_its_quirks() {
    let account = Account::fixtures();
    let body: OrdersHistoryResponse = fixture("orders-history.json");
    let snapshots: Vec<&Order> = body
        .history
        .iter()
        .filter(|e| e.created)
        .filter_map(|e| e.order.as_ref())
        .collect();
    assert_eq!(snapshots.len(), 23);
    let deals: Vec<_> = snapshots.iter().map(|o| account.map(o).deal).collect();
    let first = deals.iter().find(|d| d.order_id == 2031).unwrap();
    // Floats in the JSON, exact decimals here.
    assert_eq!(
        (first.total_sum, first.delivery_cost),
        (dec("1395.16"), dec("616.16"))
    );
    assert!(
        first.custom_fields.is_empty(),
        "`customFields: []` is an empty map"
    );
    let contact = first.contact.as_ref().unwrap();
    assert_eq!(contact.emails, ["admin@mail.ru"]);
    assert!(
        contact.phones.iter().all(|p| p.starts_with('+')),
        "every kept phone is E.164: {:?}",
        contact.phones
    );
    let with_manager = deals.iter().find(|d| d.order_id == 2034).unwrap();
    assert_eq!(
        with_manager.manager,
        Some(Manager {
            id: 19,
            name: None,
            email: None,
            phone: None,
        }),
        "a manager never looked up still has its id"
    );
    let presta = deals.iter().find(|d| d.order_id == 2050).unwrap();
    assert_eq!(presta.total_sum, dec("60.17"));
    assert_eq!(presta.contact.as_ref().unwrap().phones, ["+79515120000"]);
}

#[test]
fn unknown_or_deleted_manager_keeps_its_id() {
    let mut account = Account::fixtures();
    account.managers.insert(77, None);
    let mut order: OrderResponse = fixture("orders-get.json");
    order.order.manager_id = Some(77);
    let manager = account.map(&order.order).deal.manager.unwrap();
    assert_eq!((manager.id, manager.name), (77, None));
}

#[test]
fn times_follow_the_account_timezone() {
    let mut account = Account::fixtures();
    account.timezone = chrono_tz::America::New_York;
    let body: OrderResponse = fixture("orders-get.json");
    let deal = account.map(&body.order).deal;
    // 29 December: EST, UTC−5.
    assert_eq!(deal.created_at, utc("2020-12-29T22:35:08Z"));
}

fn corporate_order(company: Option<serde_json::Value>, main_company: bool) -> Order {
    let mut customer = serde_json::json!({
        "type": "customer_corporate", "id": 501, "nickName": "Вектор",
        "customFields": [], "tags": []
    });
    if main_company {
        customer["mainCompany"] = serde_json::json!({"id": 88, "name": "ООО «Вектор»"});
    }
    let mut order = serde_json::json!({
        "id": 9001, "number": "9001B", "site": "test", "status": "new",
        "createdAt": "2024-01-15 10:20:30", "statusUpdatedAt": "2024-01-16 11:02:45",
        "totalSumm": 12500.5, "delivery": {"cost": "500.50", "address": []},
        "firstName": "", "lastName": "", "phone": "", "email": "",
        "customer": customer,
        "contact": {
            "type": "customer", "id": 777, "firstName": "Олег", "lastName": "Сидоров",
            "patronymic": "Петрович", "email": "Oleg@Vector.RU",
            "phones": [{"number": "8 (495) 765-43-21"}], "customFields": []
        },
        "customFields": [],
        "source": {"source": "yandex", "medium": "cpc", "campaign": "", "keyword": null}
    });
    if let Some(company) = company {
        order["company"] = company;
    }
    order_json(order)
}

#[test]
fn corporate_order_has_company_and_contact_person() {
    let account = Account::fixtures();
    let order = corporate_order(
        Some(serde_json::json!({"id": 90, "name": "ООО «Вектор-М»"})),
        true,
    );
    let Mapped { deal, contacts } = account.map(&order);
    assert_eq!(
        deal.company,
        Some(Company {
            id: 90,
            name: Some("ООО «Вектор-М»".into())
        })
    );
    let person = deal.contact.unwrap();
    assert_eq!(person.id, Some(777));
    assert_eq!(person.name.as_deref(), Some("Олег Сидоров Петрович"));
    assert_eq!(person.phones, ["+74957654321"]);
    assert_eq!(person.emails, ["oleg@vector.ru"]);
    assert_eq!(
        (deal.total_sum, deal.delivery_cost),
        (dec("12500.5"), dec("500.50"))
    );
    assert_eq!(deal.utm.source.as_deref(), Some("yandex"));
    assert_eq!(deal.utm.campaign, None, "empty UTM texts are absent");
    let kinds: Vec<_> = contacts.iter().map(|c| (c.contact_id, c.kind)).collect();
    assert_eq!(
        kinds,
        [(777, ContactKind::Person), (90, ContactKind::Company)]
    );
    assert_eq!(contacts[1].name.as_deref(), Some("ООО «Вектор-М»"));
}

#[test]
fn corporate_company_falls_back_to_main_company_then_nick_name() {
    let account = Account::fixtures();
    let main = account.map(&corporate_order(None, true)).deal.company;
    assert_eq!(
        main,
        Some(Company {
            id: 88,
            name: Some("ООО «Вектор»".into())
        })
    );
    let nick = account.map(&corporate_order(None, false)).deal.company;
    assert_eq!(
        nick,
        Some(Company {
            id: 501,
            name: Some("Вектор".into())
        })
    );
    let unnamed = corporate_order(Some(serde_json::json!({"id": 91})), true);
    assert_eq!(
        account.map(&unnamed).deal.company,
        Some(Company {
            id: 91,
            name: Some("Вектор".into())
        }),
        "a company without a name is shown under the customer's nick name"
    );
}

#[test]
fn phones_are_read_in_the_shop_country() {
    let mut account = Account::fixtures();
    account.sites.get_mut("test").unwrap().country_iso = Some("KZ".into());
    let mut order = corporate_order(None, true);
    order.phone = Some("8 (701) 234-56-78".into());
    let person = account.map(&order).deal.contact.unwrap();
    assert_eq!(person.phones, ["+77012345678", "+74957654321"]);
}

#[test]
fn orders_without_the_facts_of_a_deal_are_refused() {
    let account = Account::fixtures();
    let base: OrderResponse = fixture("orders-get.json");
    type Break = fn(&mut Order);
    let cases: [(&str, Break); 5] = [
        ("site", |o| o.site = Some(" ".into())),
        ("status", |o| o.status = None),
        ("createdAt", |o| o.created_at = None),
        ("totalSumm", |o| o.total_summ = None),
        ("id", |o| o.id = -4),
    ];
    for (field, break_it) in cases {
        let mut order = base.order.clone();
        break_it(&mut order);
        let error = map_order(&order, &account.view(), observed()).unwrap_err();
        let expected = if field == "id" {
            MapError::BadId(-4)
        } else {
            MapError::Missing {
                order_id: 6722,
                field,
            }
        };
        assert_eq!(error, expected);
    }
}

#[test]
fn value_facts_and_lines_from_the_fixtures() {
    let account = Account::fixtures();
    let body: OrderResponse = fixture("orders-create.json");
    let deal = account.map(&body.order).deal;
    assert_eq!(deal.order_type.as_deref(), Some("test"));
    assert_eq!(deal.order_method.as_deref(), Some("phone"));
    assert_eq!(deal.purchase_sum, Some(dec("60")));
    assert_eq!(deal.paid_sum, Some(dec("1000")));
    // `fullPaidAt` is account time (Europe/Moscow, UTC+3).
    assert_eq!(deal.paid_at, Some(utc("2021-02-25T11:05:06Z")));
    assert_eq!(
        deal.items,
        vec![DealItem {
            offer_id: Some(61121),
            article: Some("14451445-14451445".into()),
            name: Some("сбьорка№1445123".into()),
            quantity: dec("1"),
            price: dec("0"),
            sum: dec("0"),
            purchase_price: Some(dec("60")),
            canceled: false,
        }]
    );
    // An order never paid: no time, nothing paid; `payments` keyed by id is read too.
    let body: OrderResponse = fixture("orders-get.json");
    let deal = account.map(&body.order).deal;
    assert_eq!((deal.paid_sum, deal.paid_at), (Some(dec("0")), None));
    assert_eq!(deal.order_type, None);
    assert_eq!(deal.items.len(), 1);
    assert_eq!(
        deal.items[0].name.as_deref(),
        Some("Test product/not for sale (do not order!)")
    );
}

#[test]
fn lines_with_inexact_floats_discounts_and_no_offer() {
    let account = Account::fixtures();
    // As RetailCRM writes it: a float that is not exactly its decimal.
    let order: Order = serde_json::from_str(
        r#"{
        "id": 501, "site": "aliexpress", "status": "new", "createdAt": "2024-01-15 10:00:00",
        "totalSumm": 4185.18, "purchaseSumm": 2790.9000000000001, "prepaySum": 0.1,
        "items": [
            {"offer": {"id": 7, "name": "Чайник", "displayName": "", "article": " KT-7 "},
             "initialPrice": 1395.16, "discountTotal": 0.1, "quantity": 3,
             "purchasePrice": 930.3, "isCanceled": false},
            {"productName": "Упаковка", "initialPrice": "10", "quantity": 0.5, "isCanceled": true},
            {"offer": [], "initialPrice": 5}
        ]
    }"#,
    )
    .unwrap();
    let deal = account.map(&order).deal;
    assert_eq!(deal.purchase_sum, Some(dec("2790.9")));
    assert_eq!(deal.paid_sum, Some(dec("0.1")));
    let [kettle, wrap, bare] = <[DealItem; 3]>::try_from(deal.items).unwrap();
    // Price after the discount, sum = price × quantity, exact decimals.
    assert_eq!(
        (kettle.price, kettle.sum, kettle.quantity),
        (dec("1395.06"), dec("4185.18"), dec("3"))
    );
    assert_eq!(
        kettle.name.as_deref(),
        Some("Чайник"),
        "an empty displayName"
    );
    assert_eq!(kettle.article.as_deref(), Some("KT-7"));
    assert_eq!(kettle.purchase_price, Some(dec("930.3")));
    assert_eq!(
        (wrap.offer_id, wrap.name.as_deref()),
        (None, Some("Упаковка"))
    );
    assert_eq!((wrap.sum, wrap.canceled), (dec("5"), true));
    // No quantity: one piece; `[]` for an empty offer.
    assert_eq!(
        (bare.quantity, bare.sum, bare.name),
        (dec("1"), dec("5"), None)
    );
}
