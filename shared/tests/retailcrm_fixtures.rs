//! Every file in `shared/retailcrm/fixtures/` (real response bodies from the official clients'
//! test suites) must parse into the typed model of its endpoint, and error bodies must classify
//! into the right typed error. The table below names every fixture; a file it does not know
//! fails the test, so a new fixture cannot be skipped silently.
//!
//! The files live in the repository at `tests/fixtures/retailcrm/` (a copy of the shared docs'
//! set, with its licence README, so a fresh clone is self-contained), or `DEALFLOW_FIXTURES_DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};
use dealflow_shared::retailcrm::models::reference::ReferenceEntry;
use dealflow_shared::retailcrm::models::{
    Address, ApiErrors, ApiVersionsResponse, Company, Credentials, Customer, CustomerContact,
    CustomerCorporate, CustomerCorporateResponse, CustomerRef, CustomerResponse, ErrorEnvelope,
    OrderCustomer, OrderResponse, OrdersHistoryResponse, OrdersResponse, Pagination,
    SettingsResponse, SitesResponse, StatusGroupsResponse, StatusesResponse, UserGroup,
    UserResponse, UsersResponse,
};
use dealflow_shared::retailcrm::{Endpoint, RetailCrmError, parse_response, time};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn fixtures_dir() -> PathBuf {
    match std::env::var_os("DEALFLOW_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/retailcrm"
        )),
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn at(text: &str) -> NaiveDateTime {
    time::parse_datetime(text).unwrap()
}

/// A success body through the client's own parsing rules (typed error with a JSON path).
fn ok<T: DeserializeOwned>(name: &str, path: &str, body: &[u8]) -> T {
    parse_response(&Endpoint::get(path), 200, body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// An error body with the status the upstream mock replies with.
fn err(name: &str, path: &str, status: u16, body: &[u8]) -> RetailCrmError {
    let envelope: ErrorEnvelope =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{name}: envelope: {e}"));
    assert_eq!(envelope.success, Some(false), "{name}");
    assert!(envelope.error_msg.is_some(), "{name}");
    match parse_response::<serde_json::Value>(&Endpoint::get(path), status, body) {
        Ok(v) => panic!("{name}: an error body parsed as success: {v}"),
        Err(e) => e,
    }
}

/// For endpoints the client does not call: `{success: true, <key>: T}` with `T` typed.
fn section<T: DeserializeOwned>(name: &str, body: &[u8], key: &str) -> T {
    let mut value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        value.get("success"),
        Some(&serde_json::Value::Bool(true)),
        "{name}"
    );
    let part = value
        .remove(key)
        .unwrap_or_else(|| panic!("{name}: no `{key}`"));
    serde_path_to_error::deserialize(part)
        .unwrap_or_else(|e| panic!("{name}: {key}.{}: {}", e.path(), e.inner()))
}

fn pagination(name: &str, body: &[u8]) -> Pagination {
    section(name, body, "pagination")
}

/// `customers/history` and `customers-corporate/history` records (not called by the client;
/// typed here with the library's entity models).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerHistoryEntry<C> {
    id: i64,
    #[serde(deserialize_with = "time::datetime")]
    created_at: NaiveDateTime,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    field: String,
    #[serde(default)]
    old_value: serde_json::Value,
    #[serde(default)]
    new_value: serde_json::Value,
    customer: C,
    #[serde(default)]
    company: Option<Company>,
    #[serde(default)]
    customer_contact: Option<CustomerContact>,
    #[serde(default)]
    address: Option<Address>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Note {
    id: i64,
    text: String,
    #[serde(deserialize_with = "time::datetime")]
    created_at: NaiveDateTime,
    customer: CustomerRef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadedRef {
    #[serde(default)]
    id: Option<i64>,
    external_id: String,
}

type Check = fn(&str, &[u8]);

/// Every fixture with its check. Adding a file to the folder without a line here fails.
fn table() -> BTreeMap<&'static str, Check> {
    let mut t: BTreeMap<&'static str, Check> = BTreeMap::new();
    t.insert("orders-get.json", orders_get);
    t.insert("orders-edit.json", orders_edit);
    t.insert("orders-list.json", orders_list);
    t.insert("orders-history.json", orders_history);
    t.insert("orders-create.json", orders_create);
    t.insert("orders-create-minimal.json", orders_create_minimal);
    t.insert("orders-upload.json", orders_upload);
    t.insert(
        "orders-upload-partial-failure.json",
        orders_upload_partial_failure,
    );
    t.insert("orders-statuses.json", orders_statuses);
    t.insert("orders-combine.json", orders_combine);
    t.insert("reference-statuses.json", reference_statuses);
    t.insert("reference-status-groups.json", reference_status_groups);
    t.insert("reference-sites.json", reference_sites);
    t.insert("reference-order-types.json", |n, b| {
        dict(n, b, "orderTypes", 21, "1")
    });
    t.insert("reference-order-methods.json", |n, b| {
        dict(n, b, "orderMethods", 12, "2")
    });
    t.insert("reference-delivery-types.json", |n, b| {
        dict(n, b, "deliveryTypes", 4, "ozon-seller")
    });
    t.insert("reference-delivery-services.json", |n, b| {
        dict(n, b, "deliveryServices", 23, "avia")
    });
    t.insert("reference-payment-types.json", |n, b| {
        dict(n, b, "paymentTypes", 6, "7")
    });
    t.insert("reference-payment-statuses.json", |n, b| {
        dict(n, b, "paymentStatuses", 27, "paid")
    });
    t.insert("reference-product-statuses.json", |n, b| {
        dict(n, b, "productStatuses", 44, "otmena")
    });
    t.insert("reference-units.json", |n, b| {
        dict(n, b, "units", 107, "796")
    });
    t.insert("reference-stores.json", |n, b| list(n, b, "stores", 10));
    t.insert("reference-price-types.json", |n, b| {
        list(n, b, "priceTypes", 4)
    });
    t.insert("reference-currencies.json", |n, b| {
        list(n, b, "currencies", 3)
    });
    t.insert("reference-couriers.json", |n, b| list(n, b, "couriers", 1));
    t.insert("reference-legal-entities.json", |n, b| {
        list(n, b, "legalEntities", 4)
    });
    t.insert("reference-cost-groups.json", |n, b| {
        list(n, b, "costGroups", 6)
    });
    t.insert("reference-cost-items.json", |n, b| {
        list(n, b, "costItems", 17)
    });
    t.insert("reference-mg-channels.json", |n, b| {
        list(n, b, "mgChannels", 4)
    });
    t.insert("reference-countries.json", reference_countries);
    t.insert("users-get.json", users_get);
    t.insert("users-list.json", users_list);
    t.insert("user-groups.json", user_groups);
    t.insert("customers-get.json", customers_get);
    t.insert("customers-list.json", customers_list);
    t.insert("customers-history.json", customers_history);
    t.insert("customers-notes.json", customers_notes);
    t.insert("customers-upload.json", |n, b| uploaded(n, b, "test_10"));
    t.insert("customers-corporate-upload.json", |n, b| {
        uploaded(n, b, "test_20")
    });
    t.insert("customers-corporate-get.json", customers_corporate_get);
    t.insert(
        "customers-corporate-get-by-external-id.json",
        customers_corporate_get_by_ext,
    );
    t.insert("customers-corporate-list.json", customers_corporate_list);
    t.insert(
        "customers-corporate-history.json",
        customers_corporate_history,
    );
    t.insert(
        "customers-corporate-contacts.json",
        customers_corporate_contacts,
    );
    t.insert(
        "customers-corporate-addresses.json",
        customers_corporate_addresses,
    );
    t.insert(
        "customers-corporate-companies.json",
        customers_corporate_companies,
    );
    t.insert("api-versions.json", api_versions);
    t.insert("api-credentials.json", api_credentials);
    t.insert("api-system-info.json", api_system_info);
    t.insert("settings.json", settings);
    t.insert("settings-non-working-days.json", settings_non_working_days);
    t.insert("error-wrong-api-key.json", |n, b| {
        let e = err(n, "/api/credentials", 403, b);
        assert!(matches!(e, RetailCrmError::AuthFailed { .. }), "{n}: {e:?}");
    });
    t.insert("error-missing-api-key.json", |n, b| {
        let e = err(n, "/api/credentials", 400, b);
        assert!(matches!(e, RetailCrmError::AuthFailed { .. }), "{n}: {e:?}");
    });
    t.insert("error-access-denied.json", |n, b| {
        let e = err(n, "/api/api-versions", 403, b);
        match e {
            RetailCrmError::AccessDenied { endpoint, message } => {
                assert_eq!(endpoint.path, "/api/api-versions");
                assert_eq!(message, "Access denied.");
            }
            other => panic!("{n}: {other:?}"),
        }
    });
    t.insert("error-account-does-not-exist.json", |n, b| {
        let e = err(n, "/api/api-versions", 400, b);
        assert!(
            matches!(e, RetailCrmError::AccountNotFound { .. }),
            "{n}: {e:?}"
        );
    });
    t.insert("error-not-found.json", |n, b| {
        let e = err(n, "/api/v5/customers/1", 404, b);
        assert!(
            matches!(
                e,
                RetailCrmError::NotFound {
                    combined_to: None,
                    ..
                }
            ),
            "{n}: {e:?}"
        );
    });
    t.insert("error-validation.json", |n, b| {
        let e = err(n, "/api/v5/orders/create", 400, b);
        match e {
            RetailCrmError::BadRequest {
                status: 400,
                message,
                errors: ApiErrors::Fields(fields),
                ..
            } => {
                assert_eq!(message, "Errors in the entity format");
                assert_eq!(fields["name"], "name must be provided");
            }
            other => panic!("{n}: {other:?}"),
        }
    });
    t.insert("error-validation-errors-list.json", |n, b| {
        let e = err(n, "/api/v5/integration-modules/x/edit", 400, b);
        match e {
            RetailCrmError::BadRequest {
                errors: ApiErrors::Messages(list),
                ..
            } => assert_eq!(list[1], "Test error"),
            other => panic!("{n}: {other:?}"),
        }
    });
    t.insert("error-missing-parameter.json", |n, b| {
        let e = err(n, "/api/v5/customers/create", 400, b);
        assert!(
            matches!(&e, RetailCrmError::BadRequest { message, errors, .. }
                if message.contains("'externalId'") && errors.is_empty()),
            "{n}: {e:?}"
        );
    });
    t.insert("error-method-not-allowed.json", |n, b| {
        let e = err(n, "/api/api-versions", 405, b);
        assert!(
            matches!(e, RetailCrmError::BadRequest { status: 405, .. }),
            "{n}: {e:?}"
        );
    });
    t.insert("error-rate-limit.json", |n, b| {
        let e = err(n, "/api/v5/retry-test", 503, b);
        assert!(
            matches!(e, RetailCrmError::RateLimited { .. }),
            "{n}: {e:?}"
        );
        assert!(e.is_transient());
        // The message alone (e.g. behind a proxy that rewrote the status) is a rate limit too.
        let e = err(n, "/api/v5/retry-test", 400, b);
        assert!(
            matches!(e, RetailCrmError::RateLimited { .. }),
            "{n}: {e:?}"
        );
    });
    t
}

#[test]
fn every_fixture_parses_into_its_model() {
    let dir = fixtures_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "fixtures at {}: {e} (set DEALFLOW_FIXTURES_DIR)",
            dir.display()
        )
    });
    let table = table();
    let mut seen = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut failures = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "README.md" {
            continue;
        }
        let Some(check) = table.get(name.as_str()) else {
            unknown.push(name);
            continue;
        };
        let body = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&name, &body));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: {msg}"));
        }
        seen.insert(name);
    }
    let missing: Vec<_> = table.keys().filter(|k| !seen.contains(**k)).collect();
    assert!(
        unknown.is_empty(),
        "fixtures without a model in the table: {unknown:?}"
    );
    assert!(
        missing.is_empty(),
        "table entries without a fixture file: {missing:?}"
    );
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn orders_get(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/8123522898559160", b).order;
    assert_eq!(order.id, 6722);
    assert_eq!(order.number.as_deref(), Some("8123522898559160"));
    assert_eq!(order.external_id.as_deref(), Some("8123522898559160"));
    assert_eq!(order.total_summ, Some(dec("1")));
    assert_eq!(order.created_at, Some(at("2020-12-29 17:35:08")));
    assert_eq!(order.status.as_deref(), Some("delivering"));
    // payments: an object keyed by payment id.
    assert_eq!(order.payments.len(), 1);
    assert_eq!(order.payments[0].id, Some(4326));
    assert_eq!(order.payments[0].paid_at, Some(at("2020-12-29 17:35:12")));
    // customer and contact are both individuals here.
    let customer = order
        .customer
        .as_ref()
        .and_then(OrderCustomer::as_individual)
        .unwrap();
    assert_eq!(customer.id, 4976);
    assert_eq!(customer.custom_fields["galkatrue"], serde_json::json!(true));
    assert_eq!(order.contact.as_ref().unwrap().id, 4976);
    // The only float of the body.
    assert_eq!(order.items[0].discounts[0].amount, dec("0.5"));
    assert!(order.items[0].properties.is_empty());
    assert_eq!(order.links[0].order.id, 8170);
    assert_eq!(order.custom_fields["test_number"], serde_json::json!(0));
    assert_eq!(order.delivery_cost(), Some(Decimal::ZERO));
}

fn orders_edit(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/8123522898559160/edit", b).order;
    assert_eq!(order.id, 6722);
    assert_eq!(order.manager_comment.as_deref(), Some("Manager comment"));
    assert_eq!(
        order.payments.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![Some(4326)]
    );
    assert_eq!(order.payments[0].amount, Some(dec("1")));
}

fn orders_list(n: &str, b: &[u8]) {
    let body = ok::<OrdersResponse>(n, "/api/v5/orders", b);
    assert_eq!(body.pagination.total_count, 1);
    assert!(body.pagination.is_last_page());
    let order = &body.orders[0];
    assert_eq!(order.id, 7141);
    assert_eq!(order.external_id, None);
    assert!(order.payments.is_empty(), "payments: {{}}");
    assert_eq!(order.manager_id, Some(28));
    assert_eq!(
        order.custom_fields["multiselect"],
        serde_json::json!(["test1", "test3"])
    );
    assert_eq!(
        order.custom_fields["dictionary"],
        serde_json::json!("test2")
    );
    let customer = order
        .customer
        .as_ref()
        .and_then(OrderCustomer::as_individual)
        .unwrap();
    assert_eq!(customer.margin_summ, Some(dec("-1157.1")));
    assert_eq!(customer.total_summ, Some(dec("10224.4")));
    assert_eq!(customer.average_summ, Some(dec("681.63")));
    assert_eq!(customer.phones[0].number.as_deref(), Some("+79515151515"));
    assert_eq!(customer.address.as_ref().unwrap().region_id, Some(73));
    assert_eq!(order.items[0].price_type.as_ref().unwrap().code, "base");
    assert_eq!(order.items[0].external_ids[0].code, "moyskladOrder");
    assert_eq!(order.shipment_date, NaiveDate::from_ymd_opt(2021, 2, 25));
    assert_eq!(order.purchase_summ, Some(dec("60")));
}

fn orders_history(n: &str, b: &[u8]) {
    let body = ok::<OrdersHistoryResponse>(n, "/api/v5/orders/history", b);
    assert_eq!(body.generated_at, Some(at("2021-02-25 20:41:40")));
    assert_eq!(body.pagination.unwrap().total_count, 29733);
    assert_eq!(body.history.len(), 100);
    assert_eq!(body.history.iter().filter(|e| e.created).count(), 23);
    assert!(
        body.history.windows(2).all(|w| w[0].id < w[1].id),
        "ascending ids"
    );

    let first = &body.history[0];
    assert_eq!((first.id, first.created), (7038, true));
    assert_eq!(first.new_value, serde_json::json!({"code": "new"}));
    assert_eq!(first.api_key.map(|k| k.current), Some(false));
    let order = first.order.as_ref().unwrap();
    // totalSumm = summ + delivery.cost, to the cent.
    assert_eq!(order.total_summ, Some(dec("1395.16")));
    assert_eq!(order.summ, Some(dec("779")));
    assert_eq!(order.delivery_cost(), Some(dec("616.16")));
    assert!(order.custom_fields.is_empty(), "customFields: []");
    assert_eq!(
        order
            .delivery
            .as_ref()
            .unwrap()
            .address
            .as_ref()
            .unwrap()
            .country_iso
            .as_deref(),
        Some("")
    );

    let by_id = |id: i64| body.history.iter().find(|e| e.id == id).unwrap();
    // payments as a list in snapshots.
    let with_list = by_id(7039).order.as_ref().unwrap();
    assert_eq!(with_list.payments[0].id, Some(1422));
    assert_eq!(with_list.payments[0].amount, Some(dec("2663.96")));
    assert_eq!(with_list.total_summ, Some(dec("2663.96")));
    // Item properties as an object keyed by code.
    let props = &by_id(7105).order.as_ref().unwrap().items[0].properties;
    assert_eq!(props["size"].value.as_deref(), Some("S"));
    assert_eq!(
        by_id(7105).order.as_ref().unwrap().total_summ,
        Some(dec("60.17"))
    );
    // A stub order, a user, a float value, an item and a payment on side records.
    assert_eq!(by_id(7041).user.map(|u| u.id), Some(19));
    assert_eq!(by_id(7081).new_value, serde_json::json!(30470.4));
    assert_eq!(by_id(7043).item.as_ref().unwrap().id, Some(3635));
    assert_eq!(
        by_id(7051).payment.as_ref().unwrap().external_id.as_deref(),
        Some("11")
    );
    let mut stubs = body.history.iter().filter(|e| !e.created);
    assert!(stubs.all(|e| e.order.as_ref().is_some_and(|o| o.items.is_empty())));
}

fn orders_create(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/create", b).order;
    assert_eq!((order.id, order.number.as_deref()), (7146, Some("7146A")));
    // payments: an array here.
    assert_eq!(order.payments[0].id, Some(4554));
    assert_eq!(order.payments[0].status.as_deref(), Some("paid"));
    assert_eq!(order.payments[0].amount, Some(dec("1000")));
    assert_eq!(order.items[0].discounts[0].kind, "manual_product");
}

fn orders_create_minimal(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/create", b).order;
    assert_eq!(order.id, 1);
    assert!(order.items.is_empty() && order.payments.is_empty());
    assert!(order.custom_fields.is_empty());
    assert_eq!(
        order
            .delivery
            .as_ref()
            .unwrap()
            .address
            .as_ref()
            .unwrap()
            .text,
        None
    );
    let customer = order
        .customer
        .as_ref()
        .and_then(OrderCustomer::as_individual)
        .unwrap();
    assert_eq!(customer.email.as_deref(), Some(""));
    assert_eq!(order.contact.as_ref().unwrap().id, 4512);
}

fn orders_upload(n: &str, b: &[u8]) {
    let orders: Vec<dealflow_shared::retailcrm::models::Order> = section(n, b, "orders");
    assert_eq!(orders[0].id, 7146);
    assert_eq!(orders[0].payments.len(), 1);
    let uploaded: Vec<UploadedRef> = section(n, b, "uploadedOrders");
    assert_eq!(uploaded[0].external_id, "external_id_7146");
    let failed: Vec<UploadedRef> = section(n, b, "failedOrders");
    assert_eq!(failed.len(), 2);
}

fn orders_upload_partial_failure(n: &str, b: &[u8]) {
    let e = err(n, "/api/v5/orders/upload", 460, b);
    match e {
        RetailCrmError::BadRequest {
            status: 460,
            errors: ApiErrors::Messages(list),
            ..
        } => assert!(list[0].starts_with("items[0].offer.id: Offer with id 123123")),
        other => panic!("{n}: {other:?}"),
    }
}

fn orders_statuses(n: &str, b: &[u8]) {
    let body = ok::<serde_json::Value>(n, "/api/v5/orders/statuses", b);
    let orders: Vec<dealflow_shared::retailcrm::models::Order> =
        serde_json::from_value(body["orders"].clone()).unwrap();
    assert_eq!(
        (orders[0].id, orders[0].status.as_deref()),
        (6722, Some("delivering"))
    );
}

fn orders_combine(n: &str, b: &[u8]) {
    let envelope: ErrorEnvelope = serde_json::from_slice(b).unwrap();
    assert_eq!(envelope.success, Some(true));
    assert!(envelope.errors.is_empty() && envelope.error_msg.is_none());
    // success: true with an empty `errors` is a success for the client too.
    ok::<serde_json::Value>(n, "/api/v5/orders/combine", b);
}

fn reference_statuses(n: &str, b: &[u8]) {
    let statuses = ok::<StatusesResponse>(n, "/api/v5/reference/statuses", b).statuses;
    assert_eq!(statuses.len(), 39);
    assert_eq!(statuses.values().filter(|s| !s.active).count(), 16);
    assert_eq!(
        (statuses["3"].group.as_str(), statuses["3"].ordering),
        ("complete", 990)
    );
    assert_eq!(statuses["client-confirmed"].name, "Согласовано с клиентом");
}

fn reference_status_groups(n: &str, b: &[u8]) {
    let groups = ok::<StatusGroupsResponse>(n, "/api/v5/reference/status-groups", b).status_groups;
    let codes: Vec<_> = groups.keys().map(String::as_str).collect();
    assert_eq!(
        codes,
        [
            "approval",
            "assembling",
            "cancel",
            "complete",
            "delivery",
            "new"
        ]
    );
    assert!(groups["approval"].process && !groups["complete"].process);
    assert_eq!(groups["cancel"].ordering, 60);
    assert!(groups["complete"].statuses.contains(&"3".to_owned()));
}

fn reference_sites(n: &str, b: &[u8]) {
    let sites = ok::<SitesResponse>(n, "/api/v5/reference/sites", b).sites;
    assert_eq!(sites.len(), 2);
    assert_eq!(sites["test-ru"].catalog_id.as_deref(), Some("81"));
    assert_eq!(
        sites["test-ru"]
            .contragent
            .as_ref()
            .unwrap()
            .code
            .as_deref(),
        Some("Vog_Gallery")
    );
    assert_eq!(
        sites["test"].contragent.as_ref().unwrap().inn.as_deref(),
        Some("773719480254")
    );
    assert_eq!(sites["test"].currency.as_deref(), Some("RUB"));
}

fn dict(n: &str, b: &[u8], key: &str, len: usize, first_code: &str) {
    let entries: BTreeMap<String, ReferenceEntry> = section(n, b, key);
    assert_eq!(entries.len(), len, "{n}");
    assert_eq!(entries[first_code].code.as_deref(), Some(first_code), "{n}");
    assert!(
        entries.iter().all(|(k, e)| e.code.as_deref() == Some(k)),
        "{n}: keyed by code"
    );
}

fn list(n: &str, b: &[u8], key: &str, len: usize) {
    let entries: Vec<ReferenceEntry> = section(n, b, key);
    assert_eq!(entries.len(), len, "{n}");
    assert!(
        entries.iter().all(|e| e.code.is_some() || e.id.is_some()),
        "{n}"
    );
}

fn reference_countries(n: &str, b: &[u8]) {
    let countries: Vec<String> = section(n, b, "countriesIso");
    assert_eq!(countries.len(), 11);
    assert_eq!(countries[0], "RU");
}

fn users_get(n: &str, b: &[u8]) {
    let user = ok::<UserResponse>(n, "/api/v5/users/28", b).user;
    assert_eq!(user.id, 28);
    assert_eq!(user.status.as_deref(), Some("free"));
    assert_eq!((user.is_admin, user.is_manager), (Some(true), Some(true)));
    assert_eq!(user.groups[1].code.as_deref(), Some("director"));
    assert_eq!(user.display_name().as_deref(), Some("programmer"));
}

fn users_list(n: &str, b: &[u8]) {
    let body = ok::<UsersResponse>(n, "/api/v5/users", b);
    assert_eq!(body.pagination.total_count, 8);
    assert_eq!(body.users.len(), 1);
    assert_eq!(body.users[0].created_at, Some(at("2020-05-25 12:49:00")));
}

fn user_groups(n: &str, b: &[u8]) {
    let groups: Vec<UserGroup> = section(n, b, "groups");
    assert_eq!(
        groups[0].granted_order_types.last().map(String::as_str),
        Some("1")
    );
    assert_eq!(groups[1].granted_sites, ["aliexpress"]);
    assert_eq!(pagination(n, b).total_count, 2);
}

fn customers_get(n: &str, b: &[u8]) {
    let customer = ok::<CustomerResponse>(n, "/api/v5/customers/4770", b).customer;
    assert_eq!(customer.id, 4770);
    assert_eq!(customer.tags.len(), 4);
    assert_eq!(customer.tags[0].color.as_deref(), Some("#3e89b6"));
    assert_eq!(customer.address.as_ref().unwrap().id, Some(3492));
    assert_eq!(customer.total_summ, Some(dec("7057")));
    assert_eq!(customer.full_name().as_deref(), Some("Omega"));
}

fn customers_list(n: &str, b: &[u8]) {
    // The upstream body repeats `customFields` in one object (README caveat), which no
    // PHP-generated body can do; read it as other parsers do (the last key wins) before typing.
    let value: serde_json::Value = serde_json::from_slice(b).unwrap();
    let customers: Vec<Customer> = serde_json::from_value(value["customers"].clone()).unwrap();
    assert_eq!(customers[0].id, 1233);
    assert_eq!(customers[0].custom_fields.len(), 5);
    assert_eq!(
        customers[0].custom_fields["float_field"],
        serde_json::json!(3.8)
    );
    assert_eq!(pagination(n, b).total_count, 1);
}

fn customers_history(n: &str, b: &[u8]) {
    let history: Vec<CustomerHistoryEntry<Customer>> = section(n, b, "history");
    assert_eq!(history.len(), 100);
    assert_eq!(history.iter().filter(|e| e.created).count(), 9);
    let deleted: Vec<_> = history.iter().filter(|e| e.deleted).collect();
    assert_eq!(deleted.len(), 10);
    assert!(
        deleted
            .iter()
            .all(|e| e.field == "id" && e.new_value.is_null())
    );
    let first_deleted = deleted[0];
    assert_eq!(
        (first_deleted.id, first_deleted.old_value.as_i64()),
        (2735, Some(974))
    );
    assert_eq!(first_deleted.created_at, at("2018-10-16 18:07:18"));
    assert_eq!(first_deleted.customer.id, 974);
    assert_eq!(pagination(n, b).total_count, 28676);
}

fn customers_notes(n: &str, b: &[u8]) {
    let notes: Vec<Note> = section(n, b, "notes");
    assert_eq!(notes.len(), 2);
    assert_eq!((notes[0].id, notes[0].text.as_str()), (42, "note"));
    assert_eq!(notes[1].created_at, at("2019-08-06 18:05:27"));
    assert_eq!(notes[0].customer.kind.as_deref(), Some("customer"));
}

fn uploaded(n: &str, b: &[u8], external_id: &str) {
    let uploaded: Vec<UploadedRef> = section(n, b, "uploadedCustomers");
    assert_eq!(
        (uploaded[0].id, uploaded[0].external_id.as_str()),
        (Some(1), external_id)
    );
    let failed: Vec<UploadedRef> = section(n, b, "failedCustomers");
    assert_eq!(failed.len(), 2);
}

fn customers_corporate_get(n: &str, b: &[u8]) {
    let c = ok::<CustomerCorporateResponse>(n, "/api/v5/customers-corporate/5043", b)
        .customer_corporate;
    assert_eq!(c.id, 5043);
    assert_eq!(c.nick_name.as_deref(), Some("Test Corp Company"));
    assert_eq!(
        c.main_company.as_ref().unwrap().name.as_deref(),
        Some("Test Company")
    );
    assert_eq!(c.main_address.as_ref().unwrap().id, Some(3554));
    assert_eq!(c.manager_id, Some(24));
}

fn customers_corporate_get_by_ext(n: &str, b: &[u8]) {
    let c = ok::<CustomerCorporateResponse>(n, "/api/v5/customers-corporate/ext-id", b)
        .customer_corporate;
    assert_eq!(
        c.custom_fields["animal_multiselect"],
        serde_json::json!(["cat", "dog"])
    );
    assert_eq!(c.personal_discount, Some(dec("10")));
    assert_eq!(
        c.main_company.as_ref().unwrap().external_id.as_deref(),
        Some("company-ext-id")
    );
    assert_eq!(c.manager_id, None);
}

fn customers_corporate_list(n: &str, b: &[u8]) {
    let list: Vec<CustomerCorporate> = section(n, b, "customersCorporate");
    let contact = list[0].main_customer_contact.as_ref().unwrap();
    assert_eq!(contact.customer.as_ref().unwrap().id, 5042);
    assert_eq!(contact.companies[0].company.as_ref().unwrap().id, 771);
}

fn customers_corporate_history(n: &str, b: &[u8]) {
    let history: Vec<CustomerHistoryEntry<serde_json::Value>> = section(n, b, "history");
    assert_eq!(history.len(), 7);
    // The creation record carries a full corporate snapshot: it reads as the order's
    // polymorphic customer would.
    let created = history.iter().find(|e| e.created).unwrap();
    assert_eq!(created.new_value, serde_json::json!(5043));
    let snapshot: OrderCustomer = serde_json::from_value(created.customer.clone()).unwrap();
    let corporate = snapshot.as_corporate().unwrap();
    assert_eq!(corporate.companies[0].id, 772);
    assert_eq!(
        corporate.customer_contacts[0].customer.as_ref().unwrap().id,
        5039
    );
    assert!(corporate.companies[0].custom_fields.is_empty());
    // Side objects next to the customer.
    let with_address = history.iter().find(|e| e.field == "address").unwrap();
    let address = with_address.address.as_ref().unwrap();
    assert_eq!(
        (address.floor.as_deref(), address.block.as_deref()),
        (Some("1"), Some("1"))
    );
    let with_company = history.iter().find(|e| e.field == "company").unwrap();
    assert_eq!(
        with_company
            .company
            .as_ref()
            .unwrap()
            .contragent
            .as_ref()
            .unwrap()
            .kpp
            .as_deref(),
        Some("027043442")
    );
    let with_contact = history
        .iter()
        .find(|e| e.customer_contact.is_some())
        .unwrap();
    assert_eq!(with_contact.customer_contact.as_ref().unwrap().id, 944);
    assert!(
        history
            .iter()
            .all(|e| e.created_at >= at("2021-02-17 00:00:00"))
    );
}

fn customers_corporate_contacts(n: &str, b: &[u8]) {
    let contacts: Vec<CustomerContact> = section(n, b, "contacts");
    assert_eq!((contacts[0].id, contacts[0].is_main), (945, Some(false)));
    assert!(contacts[0].companies.is_empty());
    assert_eq!(
        contacts[0]
            .customer
            .as_ref()
            .unwrap()
            .external_id
            .as_deref(),
        Some("test_10")
    );
}

fn customers_corporate_addresses(n: &str, b: &[u8]) {
    let addresses: Vec<Address> = section(n, b, "addresses");
    assert_eq!(
        (addresses[0].id, addresses[0].is_main),
        (Some(3554), Some(true))
    );
    assert_eq!(pagination(n, b).current_page, 1);
}

fn customers_corporate_companies(n: &str, b: &[u8]) {
    let companies: Vec<Company> = section(n, b, "companies");
    let company = &companies[0];
    assert_eq!(
        (company.id, company.brand.as_deref()),
        (772, Some("Test Brand"))
    );
    assert_eq!(
        company.customer.as_ref().unwrap().kind.as_deref(),
        Some("customer_corporate")
    );
    assert_eq!(
        company
            .contragent
            .as_ref()
            .unwrap()
            .contragent_type
            .as_deref(),
        Some("legal-entity")
    );
    assert!(company.custom_fields.is_empty());
}

fn api_versions(n: &str, b: &[u8]) {
    let body = ok::<ApiVersionsResponse>(n, "/api/api-versions", b);
    assert_eq!(body.versions, ["3.0", "4.0", "5.0"]);
}

fn api_credentials(n: &str, b: &[u8]) {
    let c = ok::<Credentials>(n, "/api/credentials", b);
    assert!(c.has_full_site_access());
    assert!(c.has_scope("order_read") && !c.has_scope("user_read"));
    assert!(c.allows_method("/api/integration-modules/{code}"));
    assert!(c.sites_available.is_empty());
}

fn api_system_info(n: &str, b: &[u8]) {
    let version: String = section(n, b, "systemVersion");
    assert_eq!(version, "8.1.51");
    let url: String = section(n, b, "publicUrl");
    assert!(url.starts_with("https://"));
}

fn settings(n: &str, b: &[u8]) {
    let s = ok::<SettingsResponse>(n, "/api/v5/settings", b).settings;
    assert_eq!(s.time_zone().unwrap(), Some(chrono_tz::Europe::Moscow));
    assert_eq!(s.default_currency.as_ref().unwrap().value, "RUB");
    assert_eq!(
        s.timezone.as_ref().unwrap().updated_at,
        Some(at("2021-02-08 08:29:40"))
    );
    assert_eq!(s.work_times[0].day_type, "Sunday");
    assert!(s.non_working_days.is_empty());
}

fn settings_non_working_days(n: &str, b: &[u8]) {
    let s = ok::<SettingsResponse>(n, "/api/v5/settings", b).settings;
    assert_eq!(s.non_working_days[0].start_date, "01.02");
    assert_eq!(s.system_language.as_ref().unwrap().value, "RU");
}
