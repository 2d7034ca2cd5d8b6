//! Property tests of the mapping (issue 10, poison input): any order the decoder accepts — the
//! real fixture orders with values replaced by other types, extreme numbers and datetimes at
//! the edges of the calendar, in any account timezone — maps to a deal or to a typed
//! [`MapError`], never a panic.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use dealflow_enricher::mapping::{AccountView, MapError, map_order};
use dealflow_shared::retailcrm::models::{
    Dictionary, Order, Site, SitesResponse, Status, StatusesResponse, User, UserResponse,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let dir = std::env::var("DEALFLOW_FIXTURES_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/retailcrm").to_owned()
    });
    let bytes = std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_slice(&bytes).unwrap()
}

/// The fixture orders every case starts from.
static ORDERS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    let mut orders = vec![
        fixture("orders-get.json")["order"].clone(),
        fixture("orders-create.json")["order"].clone(),
    ];
    orders.extend(
        fixture("orders-list.json")["orders"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    orders
});

struct Account {
    sites: Dictionary<Site>,
    statuses: Dictionary<Status>,
    managers: HashMap<i64, Option<User>>,
}

static ACCOUNT: LazyLock<Account> = LazyLock::new(|| {
    let sites: SitesResponse = serde_json::from_value(fixture("reference-sites.json")).unwrap();
    let statuses: StatusesResponse =
        serde_json::from_value(fixture("reference-statuses.json")).unwrap();
    let user: UserResponse = serde_json::from_value(fixture("users-get.json")).unwrap();
    Account {
        sites: sites.sites,
        statuses: statuses.statuses,
        managers: HashMap::from([(user.user.id, Some(user.user)), (-5, None)]),
    }
});

/// Zones with odd offsets, half-hour and 45-minute ones, date-line ones and gaps.
const ZONES: [Tz; 7] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Moscow,
    chrono_tz::Pacific::Kiritimati,
    chrono_tz::Pacific::Pago_Pago,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::America::St_Johns,
    chrono_tz::Europe::London,
];

/// A datetime in RetailCRM's layout anywhere in chrono's calendar, as text.
fn datetime() -> impl Strategy<Value = Value> {
    (
        -262_143i32..=262_142,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi)| json!(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:00")))
}

/// A replacement of any type.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        datetime(),
        Just(json!(null)),
        Just(json!("")),
        Just(json!("   ")),
        Just(json!([])),
        Just(json!({})),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(|s| json!(s)),
        Just(json!("79228162514264337593543950335")),
        Just(json!(-9_223_372_036_854_775_808i64)),
        Just(json!("+7 (999) 000-00-00 ext. 12345678901234567890")),
    ]
}

const FIELDS: [&str; 16] = [
    "id",
    "createdAt",
    "statusUpdatedAt",
    "totalSumm",
    "site",
    "status",
    "currency",
    "managerId",
    "phone",
    "email",
    "customer",
    "contact",
    "company",
    "delivery",
    "source",
    "customFields",
];

/// A fixture order with up to four fields replaced (or removed).
fn order() -> impl Strategy<Value = Value> {
    (
        0..ORDERS.len(),
        proptest::collection::vec(
            (
                proptest::sample::select(&FIELDS[..]),
                proptest::option::weighted(0.9, value()),
            ),
            0..4,
        ),
    )
        .prop_map(|(i, changes)| {
            let mut order = ORDERS[i].clone();
            let fields = order.as_object_mut().unwrap();
            for (field, value) in changes {
                match value {
                    Some(v) => fields.insert(field.to_owned(), v),
                    None => fields.remove(field),
                };
            }
            order
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_readable_order_maps_or_is_a_typed_error(
        raw in order(),
        zone in proptest::sample::select(&ZONES[..]),
        currency in proptest::option::of("[A-Z]{3}"),
    ) {
        let Ok(order) = serde_json::from_value::<Order>(raw) else {
            return Ok(());
        };
        let view = AccountView {
            timezone: zone,
            default_currency: currency.as_deref(),
            sites: &ACCOUNT.sites,
            statuses: &ACCOUNT.statuses,
            managers: &ACCOUNT.managers,
        };
        let observed = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
        match map_order(&order, &view, observed) {
            Ok(mapped) => {
                prop_assert_eq!(i64::try_from(mapped.deal.order_id).ok(), Some(order.id));
                prop_assert!(!mapped.deal.site.trim().is_empty());
                prop_assert!(!mapped.deal.status_code.trim().is_empty());
            }
            Err(MapError::BadId(id)) => prop_assert!(id <= 0),
            Err(MapError::Missing { order_id, .. }) => prop_assert_eq!(order_id, order.id),
        }
    }
}

/// The first and last minutes of chrono's calendar, in every zone: converting them to UTC must
/// not step outside the calendar.
#[test]
fn the_edges_of_the_calendar_map_without_panicking() {
    for edge in [
        "-262143-01-01 00:00:00",
        "-262143-01-01 05:00:00",
        "+262142-12-31 23:59:59",
        "+262142-12-31 18:00:00",
    ] {
        for zone in ZONES {
            let mut raw = ORDERS[0].clone();
            raw["createdAt"] = json!(edge);
            raw["statusUpdatedAt"] = json!(edge);
            let order: Order = serde_json::from_value(raw).expect(edge);
            let view = AccountView {
                timezone: zone,
                default_currency: None,
                sites: &ACCOUNT.sites,
                statuses: &ACCOUNT.statuses,
                managers: &ACCOUNT.managers,
            };
            let observed = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
            let mapped = map_order(&order, &view, observed);
            assert!(mapped.is_ok(), "{edge} in {zone}: {mapped:?}");
        }
    }
}
