//! Every file in `shared/retailcrm/fixtures/` (real response bodies from the official clients'
//! test suites) must decode into the typed model of its endpoint, and the fields dealflow reads
//! must come out right; error bodies must classify into the right typed error. The models hold
//! only the fields dealflow reads (issue 18 item 6), so the assertions are on those fields: the
//! deal's facts (DESIGN §4/§5), contact and company, manager, funnel references, settings and
//! key access. Files for endpoints dealflow does not call are named too, as `unmodelled`.
//! The table names every fixture; a file it does not know fails the test, so a new fixture
//! cannot be skipped silently.
//!
//! The files live in the repository at `tests/fixtures/retailcrm/` (a copy of the shared docs'
//! set, with its licence README, so a fresh clone is self-contained), or `DEALFLOW_FIXTURES_DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

use chrono::NaiveDateTime;
use dealflow_shared::retailcrm::models::{
    ApiErrors, ApiVersionsResponse, Company, Credentials, Customer, CustomerCorporate,
    CustomerCorporateResponse, CustomerResponse, ErrorEnvelope, Order, OrderCustomer,
    OrderResponse, OrdersHistoryResponse, OrdersResponse, Pagination, SettingsResponse,
    SitesResponse, StatusGroupsResponse, StatusesResponse, UserResponse, UsersResponse,
};
use dealflow_shared::retailcrm::{Endpoint, RetailCrmError, parse_response, time};
use rust_decimal::Decimal;
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

/// The success body as JSON, with `success: true`.
fn body(name: &str, body: &[u8]) -> serde_json::Map<String, serde_json::Value> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        value.get("success"),
        Some(&serde_json::Value::Bool(true)),
        "{name}"
    );
    value
}

/// For bodies the client does not read whole: `{success: true, <key>: T}` with `T` typed.
fn section<T: DeserializeOwned>(name: &str, bytes: &[u8], key: &str) -> T {
    let part = body(name, bytes)
        .remove(key)
        .unwrap_or_else(|| panic!("{name}: no `{key}`"));
    serde_path_to_error::deserialize(part)
        .unwrap_or_else(|e| panic!("{name}: {key}.{}: {}", e.path(), e.inner()))
}

/// An endpoint dealflow does not call and whose body holds nothing it models: a success body
/// with its payload under the key [`UNMODELLED`] names, and nothing more is asserted.
fn unmodelled(name: &str, bytes: &[u8]) {
    let (_, key) = UNMODELLED.iter().find(|(f, _)| *f == name).unwrap();
    assert!(body(name, bytes).contains_key(*key), "{name}: no `{key}`");
}

fn pagination(name: &str, bytes: &[u8]) -> Pagination {
    section(name, bytes, "pagination")
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
    for (file, _) in UNMODELLED {
        t.insert(file, unmodelled);
    }
    t.insert("users-get.json", users_get);
    t.insert("users-list.json", users_list);
    t.insert("customers-get.json", customers_get);
    t.insert("customers-list.json", customers_list);
    t.insert("customers-history.json", customers_history);
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
        "customers-corporate-companies.json",
        customers_corporate_companies,
    );
    t.insert("api-versions.json", api_versions);
    t.insert("api-credentials.json", api_credentials);
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

/// Fixtures of endpoints dealflow does not call, holding no entity it models, with the key of
/// their payload.
const UNMODELLED: &[(&str, &str)] = &[
    ("reference-order-types.json", "orderTypes"),
    ("reference-order-methods.json", "orderMethods"),
    ("reference-delivery-types.json", "deliveryTypes"),
    ("reference-delivery-services.json", "deliveryServices"),
    ("reference-payment-types.json", "paymentTypes"),
    ("reference-payment-statuses.json", "paymentStatuses"),
    ("reference-product-statuses.json", "productStatuses"),
    ("reference-units.json", "units"),
    ("reference-stores.json", "stores"),
    ("reference-price-types.json", "priceTypes"),
    ("reference-currencies.json", "currencies"),
    ("reference-couriers.json", "couriers"),
    ("reference-legal-entities.json", "legalEntities"),
    ("reference-cost-groups.json", "costGroups"),
    ("reference-cost-items.json", "costItems"),
    ("reference-mg-channels.json", "mgChannels"),
    ("reference-countries.json", "countriesIso"),
    ("user-groups.json", "groups"),
    ("customers-notes.json", "notes"),
    ("customers-upload.json", "uploadedCustomers"),
    ("customers-corporate-upload.json", "uploadedCustomers"),
    ("customers-corporate-contacts.json", "contacts"),
    ("customers-corporate-addresses.json", "addresses"),
    ("api-system-info.json", "systemVersion"),
];

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

/// The deal facts every order fixture shares: what the enricher requires (`site`, `status`,
/// `createdAt`, `totalSumm`) is there.
fn required_facts(n: &str, order: &Order) {
    assert!(order.site.is_some(), "{n}: site");
    assert!(order.status.is_some(), "{n}: status");
    assert!(order.created_at.is_some(), "{n}: createdAt");
    assert!(order.total_summ.is_some(), "{n}: totalSumm");
}

fn orders_get(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/8123522898559160", b).order;
    required_facts(n, &order);
    assert_eq!(order.id, 6722);
    assert_eq!(order.number.as_deref(), Some("8123522898559160"));
    assert_eq!(order.external_id.as_deref(), Some("8123522898559160"));
    assert_eq!(order.site.as_deref(), Some("aliexpress"));
    assert_eq!(order.status.as_deref(), Some("delivering"));
    assert_eq!(order.status_updated_at, Some(at("2020-12-31 15:09:31")));
    assert_eq!(order.created_at, Some(at("2020-12-29 17:35:08")));
    assert_eq!(order.order_method.as_deref(), Some("shopping-cart"));
    assert_eq!(order.order_type, None);
    assert_eq!(order.currency.as_deref(), Some("RUB"));
    assert_eq!(order.total_summ, Some(dec("1")));
    assert_eq!(order.delivery_cost(), Some(Decimal::ZERO));
    assert_eq!(
        (order.prepay_sum, order.purchase_summ, order.full_paid_at),
        (Some(Decimal::ZERO), Some(Decimal::ZERO), None)
    );
    assert_eq!(
        (order.first_name.as_deref(), order.last_name.as_deref()),
        (Some("Kovalenko"), Some("Pavel"))
    );
    assert_eq!(order.custom_fields["test_number"], serde_json::json!(0));
    assert_eq!(order.custom_fields["galka"], serde_json::json!(false));
    // payments: an object keyed by payment id.
    assert_eq!(order.payments.len(), 1);
    assert_eq!(order.payments[0].amount, Some(Decimal::ZERO));
    assert_eq!(order.payments[0].paid_at, Some(at("2020-12-29 17:35:12")));
    assert_eq!(order.payments[0].status, None);
    // customer and contact are both individuals here.
    let customer = order
        .customer
        .as_ref()
        .and_then(OrderCustomer::as_individual)
        .unwrap();
    assert_eq!(customer.id, 4976);
    assert_eq!(customer.full_name().as_deref(), Some("Kovalenko Pavel"));
    assert!(customer.phones.is_empty());
    assert_eq!(order.contact.as_ref().unwrap().id, 4976);
    assert_eq!(order.company, None);
    let [item] = order.items.as_slice() else {
        panic!("{n}: one line")
    };
    let offer = item.offer.as_ref().unwrap();
    assert_eq!(offer.id, Some(1867352));
    assert_eq!(
        offer.display_name.as_deref(),
        Some("Test product/not for sale (do not order!)")
    );
    assert_eq!(offer.article, None);
    assert_eq!(
        (item.quantity, item.initial_price, item.discount_total),
        (Some(dec("1")), Some(dec("1")), Some(Decimal::ZERO))
    );
    assert_eq!(item.purchase_price, Some(Decimal::ZERO));
    assert!(!item.is_canceled);
}

fn orders_edit(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/8123522898559160/edit", b).order;
    required_facts(n, &order);
    assert_eq!(order.id, 6722);
    assert_eq!(order.payments.len(), 1);
    assert_eq!(order.payments[0].amount, Some(dec("1")));
    assert_eq!(order.items.len(), 1);
}

fn orders_list(n: &str, b: &[u8]) {
    let body = ok::<OrdersResponse>(n, "/api/v5/orders", b);
    assert_eq!(body.pagination.total_count, 1);
    assert!(body.pagination.is_last_page());
    let [order] = body.orders.as_slice() else {
        panic!("{n}: one order")
    };
    required_facts(n, order);
    assert_eq!((order.id, order.number.as_deref()), (7141, Some("7141C")));
    assert_eq!(order.external_id, None);
    assert!(order.payments.is_empty(), "payments: {{}}");
    assert_eq!(order.manager_id, Some(28));
    assert_eq!(
        (order.order_type.as_deref(), order.order_method.as_deref()),
        (Some("test"), Some("phone"))
    );
    assert_eq!(order.purchase_summ, Some(dec("60")));
    assert_eq!(order.phone.as_deref(), Some("+79515151515"));
    assert_eq!(order.email.as_deref(), Some("andrey@andrey.ru"));
    assert_eq!(order.patronymic.as_deref(), Some("В"));
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
    assert_eq!(customer.phones.len(), 1);
    assert_eq!(customer.phones[0].number.as_deref(), Some("+79515151515"));
    assert_eq!(customer.full_name().as_deref(), Some("Андрей М В"));
    let offer = order.items[0].offer.as_ref().unwrap();
    assert_eq!(offer.article.as_deref(), Some("14451445-14451445"));
    assert_eq!(
        (offer.name.as_deref(), offer.display_name.as_deref()),
        (Some("сбьорка№1445"), Some("сбьорка№1445123"))
    );
    assert_eq!(order.items[0].purchase_price, Some(dec("60")));
}

fn orders_history(n: &str, b: &[u8]) {
    let body = ok::<OrdersHistoryResponse>(n, "/api/v5/orders/history", b);
    assert_eq!(body.pagination.unwrap().total_count, 29733);
    assert_eq!(body.history.len(), 100);
    assert!(
        body.history.windows(2).all(|w| w[0].id < w[1].id),
        "ascending ids"
    );
    let created: Vec<_> = body.history.iter().filter(|e| e.created).collect();
    assert_eq!(created.len(), 23);
    for entry in &created {
        required_facts(n, entry.order.as_ref().unwrap());
    }
    assert!(
        body.history
            .iter()
            .all(|e| !e.deleted && e.combined_to.is_none())
    );

    let first = &body.history[0];
    assert_eq!((first.id, first.created), (7038, true));
    assert_eq!(first.field.as_deref(), Some("status"));
    assert_eq!(first.new_value, serde_json::json!({"code": "new"}));
    // The record's time, not the order's.
    assert_eq!(first.created_at, at("2018-10-02 13:30:06"));
    let order = first.order.as_ref().unwrap();
    assert_eq!(order.created_at, Some(at("2018-10-02 13:00:43")));
    // totalSumm = summ + delivery.cost, to the cent.
    assert_eq!(order.total_summ, Some(dec("1395.16")));
    assert_eq!(order.delivery_cost(), Some(dec("616.16")));
    assert!(order.custom_fields.is_empty(), "customFields: []");
    assert_eq!(
        (order.order_type.as_deref(), order.order_method.as_deref()),
        (Some("eshop-individual"), Some("shopping-cart"))
    );
    assert_eq!(order.items[0].initial_price, Some(dec("779")));
    assert_eq!(order.items[0].offer, None);

    let by_id = |id: i64| body.history.iter().find(|e| e.id == id).unwrap();
    // payments as a list in snapshots.
    let with_list = by_id(7039).order.as_ref().unwrap();
    assert_eq!(with_list.payments.len(), 1);
    assert_eq!(with_list.payments[0].status.as_deref(), Some("not-paid"));
    assert_eq!(with_list.payments[0].amount, Some(dec("2663.96")));
    assert_eq!(with_list.payments[0].paid_at, None);
    assert_eq!(with_list.total_summ, Some(dec("2663.96")));
    let customer = with_list
        .customer
        .as_ref()
        .and_then(OrderCustomer::as_individual)
        .unwrap();
    assert_eq!(customer.phones.len(), 3);
    // A float with more digits than money has keeps them all.
    let lines = &by_id(7105).order.as_ref().unwrap().items;
    assert_eq!(lines[0].initial_price, Some(dec("60.17310053999999")));
    assert_eq!(
        by_id(7105).order.as_ref().unwrap().total_summ,
        Some(dec("60.17"))
    );
    // Status records carry the new status as `{code}`.
    let statuses: Vec<_> = body
        .history
        .iter()
        .filter(|e| e.field.as_deref() == Some("status"))
        .collect();
    assert_eq!(statuses.len(), 33);
    assert!(statuses.iter().all(|e| e.new_value.get("code").is_some()));
    // Every record names its order; the others' are stubs or partial snapshots.
    assert!(body.history.iter().all(|e| e.order.is_some()));
}

fn orders_create(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/create", b).order;
    required_facts(n, &order);
    assert_eq!((order.id, order.number.as_deref()), (7146, Some("7146A")));
    // The paid facts of the deal value.
    assert_eq!(order.prepay_sum, Some(dec("1000")));
    assert_eq!(order.full_paid_at, Some(at("2021-02-25 14:05:06")));
    assert_eq!(order.purchase_summ, Some(dec("60")));
    // payments: an array here.
    assert_eq!(order.payments.len(), 1);
    assert_eq!(order.payments[0].status.as_deref(), Some("paid"));
    assert_eq!(order.payments[0].amount, Some(dec("1000")));
    assert_eq!(order.payments[0].paid_at, Some(at("2021-02-25 14:05:06")));
    assert_eq!(order.manager_id, Some(28));
    assert_eq!(order.phone.as_deref(), Some("89003005069"));
    let contact = order.contact.as_ref().unwrap();
    let phones: Vec<_> = contact.phones.iter().map(|p| p.number.as_deref()).collect();
    assert_eq!(phones, [Some("89003005069"), Some("+79515151515")]);
}

fn orders_create_minimal(n: &str, b: &[u8]) {
    let order = ok::<OrderResponse>(n, "/api/v5/orders/create", b).order;
    required_facts(n, &order);
    assert_eq!(order.id, 1);
    assert!(order.items.is_empty() && order.payments.is_empty());
    assert!(order.custom_fields.is_empty());
    assert_eq!(order.delivery_cost(), Some(Decimal::ZERO));
    let customer = order
        .customer
        .as_ref()
        .and_then(OrderCustomer::as_individual)
        .unwrap();
    assert_eq!(customer.email.as_deref(), Some(""));
    assert_eq!(customer.full_name(), None);
    assert_eq!(order.contact.as_ref().unwrap().id, 4512);
}

fn orders_upload(n: &str, b: &[u8]) {
    let orders: Vec<Order> = section(n, b, "orders");
    assert_eq!(orders.len(), 1);
    required_facts(n, &orders[0]);
    assert_eq!(orders[0].id, 7146);
    assert_eq!(orders[0].external_id.as_deref(), Some("external_id_7146"));
    assert_eq!(orders[0].payments.len(), 1);
    assert_eq!(orders[0].prepay_sum, Some(dec("1000")));
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
    let orders: Vec<Order> = section(n, b, "orders");
    assert_eq!(orders.len(), 1);
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
    assert!(statuses.iter().all(|(k, s)| *k == s.code), "keyed by code");
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
    assert_eq!(groups["cancel"].ordering, 60);
    assert_eq!(groups["new"].ordering, 10);
    assert_eq!(groups["complete"].name, "Выполнен");
    assert!(groups["complete"].active);
}

fn reference_sites(n: &str, b: &[u8]) {
    let sites = ok::<SitesResponse>(n, "/api/v5/reference/sites", b).sites;
    assert_eq!(sites.len(), 2);
    let shop = &sites["test-ru"];
    assert_eq!(
        (shop.code.as_str(), shop.name.as_str()),
        ("test-ru", "Test Shop")
    );
    assert_eq!(shop.country_iso.as_deref(), Some("RU"));
    assert_eq!(sites["test"].currency.as_deref(), Some("RUB"));
}

fn users_get(n: &str, b: &[u8]) {
    let user = ok::<UserResponse>(n, "/api/v5/users/28", b).user;
    assert_eq!(user.id, 28);
    assert_eq!(user.display_name().as_deref(), Some("programmer"));
    assert_eq!(user.email.as_deref(), Some("programmer@retailcrm.ru"));
    assert_eq!(user.phone, None);
}

fn users_list(n: &str, b: &[u8]) {
    let body = ok::<UsersResponse>(n, "/api/v5/users", b);
    assert_eq!(body.pagination.total_count, 8);
    assert_eq!(body.users.len(), 1);
    assert_eq!(body.users[0].id, 28);
}

fn customers_get(n: &str, b: &[u8]) {
    let customer = ok::<CustomerResponse>(n, "/api/v5/customers/4770", b).customer;
    assert_eq!(customer.id, 4770);
    assert_eq!(customer.full_name().as_deref(), Some("Omega"));
    assert_eq!(customer.email.as_deref(), Some("omega@omega.com"));
    let phones: Vec<_> = customer
        .phones
        .iter()
        .map(|p| p.number.as_deref())
        .collect();
    assert_eq!(phones, [Some("79094055045"), Some("+79094055044")]);
}

fn customers_list(n: &str, b: &[u8]) {
    // The upstream body repeats `customFields` in one object (README caveat), which no
    // PHP-generated body can do; read it as other parsers do (the last key wins) before typing.
    let value: serde_json::Value = serde_json::from_slice(b).unwrap();
    let customers: Vec<Customer> = serde_json::from_value(value["customers"].clone()).unwrap();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].id, 1233);
    assert_eq!(
        customers[0].full_name().as_deref(),
        Some("Иван Иванов Иванович23")
    );
    assert_eq!(
        customers[0].phones[0].number.as_deref(),
        Some("89229112322")
    );
    assert_eq!(pagination(n, b).total_count, 1);
}

fn customers_history(n: &str, b: &[u8]) {
    // dealflow does not read this feed; the customers inside it still decode.
    let history: Vec<serde_json::Value> = section(n, b, "history");
    assert_eq!(history.len(), 100);
    for record in &history {
        let customer: Customer = serde_json::from_value(record["customer"].clone())
            .unwrap_or_else(|e| panic!("{n}: record {}: {e}", record["id"]));
        assert!(customer.id > 0, "{n}");
    }
    assert_eq!(pagination(n, b).total_count, 28676);
}

fn customers_corporate_get(n: &str, b: &[u8]) {
    let c = ok::<CustomerCorporateResponse>(n, "/api/v5/customers-corporate/5043", b)
        .customer_corporate;
    assert_eq!(c.id, 5043);
    assert_eq!(c.nick_name.as_deref(), Some("Test Corp Company"));
    let company = c.main_company.as_ref().unwrap();
    assert_eq!(
        (company.id, company.name.as_deref()),
        (772, Some("Test Company"))
    );
}

fn customers_corporate_get_by_ext(n: &str, b: &[u8]) {
    let c = ok::<CustomerCorporateResponse>(n, "/api/v5/customers-corporate/ext-id", b)
        .customer_corporate;
    assert_eq!(
        (c.id, c.nick_name.as_deref()),
        (2346, Some("Test Customer 2"))
    );
    let company = c.main_company.as_ref().unwrap();
    assert_eq!((company.id, company.name.as_deref()), (26, Some("name")));
}

fn customers_corporate_list(n: &str, b: &[u8]) {
    let list: Vec<CustomerCorporate> = section(n, b, "customersCorporate");
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].nick_name.as_deref(),
        Some("Test Corporate Customer")
    );
    assert_eq!(list[0].main_company.as_ref().unwrap().id, 771);
}

fn customers_corporate_history(n: &str, b: &[u8]) {
    let history: Vec<serde_json::Value> = section(n, b, "history");
    assert_eq!(history.len(), 7);
    // The creation record carries a full corporate snapshot: it reads as the order's
    // polymorphic customer would.
    let created: Vec<_> = history.iter().filter(|e| e["created"] == true).collect();
    assert_eq!(created.len(), 1);
    let snapshot: OrderCustomer = serde_json::from_value(created[0]["customer"].clone()).unwrap();
    let corporate = snapshot.as_corporate().unwrap();
    assert_eq!(corporate.id, 5043);
    assert_eq!(corporate.nick_name.as_deref(), Some("Test Corp Company"));
}

fn customers_corporate_companies(n: &str, b: &[u8]) {
    let companies: Vec<Company> = section(n, b, "companies");
    assert_eq!(companies.len(), 1);
    assert_eq!(
        (companies[0].id, companies[0].name.as_deref()),
        (772, Some("Test Company"))
    );
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

fn settings(n: &str, b: &[u8]) {
    let s = ok::<SettingsResponse>(n, "/api/v5/settings", b).settings;
    assert_eq!(s.time_zone().unwrap(), Some(chrono_tz::Europe::Moscow));
    assert_eq!(s.default_currency.as_ref().unwrap().value, "RUB");
}

fn settings_non_working_days(n: &str, b: &[u8]) {
    let s = ok::<SettingsResponse>(n, "/api/v5/settings", b).settings;
    assert!(s.time_zone().unwrap().is_some());
    assert!(s.default_currency.is_some());
}
