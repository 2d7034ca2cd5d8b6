//! The mapping rules of DESIGN §5 on simulator data, end to end through the enricher: times
//! from the account timezone to UTC, amounts as decimals, E.164 phones and lower-case emails,
//! corporate orders with their company and contact person, a deleted manager kept as an id
//! without a name, managers named by id when the key may not list users, contacts and a funnel
//! stage for every (site, status). The rules in detail,
//! on the fixtures, are unit tests in `src/mapping/tests.rs`.

mod support;

use std::collections::HashSet;
use std::str::FromStr;

use chrono::NaiveDateTime;
use dealflow_shared::events::{ContactKind, Event, IntegrationId};
use dealflow_shared::retailcrm::time::to_utc;
use dealflow_simulator::{KeyAccess, OrderEdit, SimConfig, Simulator};
use rust_decimal::Decimal;
use serde_json::Value;
use support::{App, Backend, Deals, WAIT, test_settings, truth_orders};

fn local(value: &Value) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(value.as_str().unwrap(), "%Y-%m-%d %H:%M:%S").unwrap()
}

fn decimal(value: &Value) -> Decimal {
    if value.is_null() {
        return Decimal::ZERO;
    }
    Decimal::from_str(value.to_string().trim_matches('"')).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_orders_map_by_the_rules() {
    let backend = Backend::embedded().await;
    let tz = chrono_tz::Asia::Yekaterinburg; // UTC+5, so a Moscow-only conversion would show
    let mut config = SimConfig::new(1, 80);
    config.accounts[0].timezone = tz;
    let sim = Simulator::start(config).await.unwrap();
    let account = sim.account(0);
    let truth = account.truth();
    let deleted_user = truth["deleted_user_ids"][0].as_u64().unwrap();
    let live: Vec<u64> = truth_orders(&truth)
        .iter()
        .filter(|o| !o.1)
        .map(|o| o.0)
        .collect();
    let edit = OrderEdit {
        manager_id: Some(Some(deleted_user)),
        ..OrderEdit::default()
    };
    account.edit_order(live[0], &edit, None).unwrap();
    let orders = truth_orders(&account.truth());
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let ids: Vec<u64> = orders.iter().map(|o| o.0).collect();
    backend.changes(id, &ids).await;

    let app = App::start(&backend, test_settings(&backend)).await;
    let mut deals_topic = backend.reader(&backend.topics.deals()).await;
    let envelopes = deals_topic
        .until(WAIT, "every order's deal", |e| {
            Deals::of(e, id).covers(&ids)
        })
        .await;
    let deals = Deals::of(&envelopes, id);
    let mut emails_checked = 0;
    let mut corporate = 0;
    let mut people = HashSet::new();
    let mut companies = HashSet::new();
    for (order_id, deleted, order) in &orders {
        if *deleted {
            assert!(deals.deleted.contains_key(order_id));
            continue;
        }
        let deal = deals.upserted[order_id].last().unwrap();
        assert_eq!(
            deal.created_at,
            to_utc(local(&order["createdAt"]), tz),
            "order {order_id}"
        );
        assert_eq!(
            deal.stage_entered_at,
            Some(to_utc(local(&order["statusUpdatedAt"]), tz))
        );
        assert_eq!(deal.total_sum, decimal(&order["totalSumm"]));
        assert_eq!(deal.delivery_cost, decimal(&order["delivery"]["cost"]));
        assert_eq!(deal.currency.as_deref(), order["currency"].as_str());
        assert_eq!(deal.site, order["site"].as_str().unwrap());
        assert!(
            deal.status_group.is_some(),
            "every simulator status has a group"
        );
        match order["managerId"].as_u64() {
            Some(m) if m == deleted_user => {
                let manager = deal.manager.as_ref().unwrap();
                assert_eq!(
                    (manager.id, manager.name.as_deref()),
                    (m, None),
                    "a deleted manager keeps its id"
                );
            }
            Some(m) => {
                let manager = deal.manager.as_ref().unwrap();
                assert_eq!(manager.id, m);
                assert!(manager.name.is_some(), "manager {m} resolved");
            }
            None => assert!(deal.manager.is_none()),
        }
        let contact = deal
            .contact
            .as_ref()
            .expect("every simulator order has a buyer");
        for email in &contact.emails {
            assert_eq!(*email, email.to_lowercase());
        }
        // The order's own e-mail (the simulator types some in mixed case) is there, lower-cased.
        if let Some(typed) = order["email"].as_str().filter(|e| !e.is_empty()) {
            assert!(
                contact.emails.contains(&typed.to_lowercase()),
                "order {order_id}: {typed} in {:?}",
                contact.emails
            );
            emails_checked += 1;
        }
        // Every phone the simulator types is a +7 number with ten national digits, in one of
        // many written forms: the order's own first, then the person's card, none lost.
        let person = if order["contact"].is_object() {
            &order["contact"]
        } else {
            &order["customer"]
        };
        let typed = [&order["phone"], &order["additionalPhone"]]
            .into_iter()
            .chain(
                person["phones"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| &p["number"]),
            )
            .filter_map(Value::as_str)
            .filter(|p| !p.trim().is_empty());
        let mut expected: Vec<String> = Vec::new();
        for phone in typed {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            let e164 = format!("+7{}", &digits[digits.len() - 10..]);
            if !expected.contains(&e164) {
                expected.push(e164);
            }
        }
        assert_eq!(contact.phones, expected, "order {order_id}");
        if order["customer"]["type"] == "customer_corporate" {
            corporate += 1;
            let company = deal
                .company
                .as_ref()
                .expect("a corporate order has a company");
            assert_eq!(Some(company.id), order["company"]["id"].as_u64());
            assert_eq!(
                contact.id,
                order["contact"]["id"].as_u64(),
                "the contact person"
            );
            companies.insert(company.id);
        } else {
            assert!(deal.company.is_none());
        }
        people.extend(contact.id);
    }
    assert!(corporate > 0, "the data set has corporate orders");
    assert!(emails_checked > 0, "some orders carry an e-mail");
    let mut contacts_topic = backend.reader(&backend.topics.contacts()).await;
    let contacts = contacts_topic
        .until(WAIT, "every contact", |e| {
            e.len() >= people.len() + companies.len()
        })
        .await;
    let seen: HashSet<(bool, u64)> = contacts
        .iter()
        .map(|e| match &e.event {
            Event::ContactUpserted(c) => (c.kind == ContactKind::Company, c.contact_id),
            other => panic!("unexpected on contacts: {other:?}"),
        })
        .collect();
    assert!(people.iter().all(|p| seen.contains(&(false, *p))));
    assert!(companies.iter().all(|c| seen.contains(&(true, *c))));

    let mut funnels = backend.reader(&backend.topics.funnels()).await;
    let sites = account.truth()["sites"].as_array().unwrap().len();
    let stages = funnels
        .until(WAIT, "the funnel stages", |e| !e.is_empty())
        .await;
    let stages: HashSet<(String, String)> = stages
        .iter()
        .map(|e| match &e.event {
            Event::FunnelStageSeen(s) => (s.site.clone(), s.stage_code.clone()),
            other => panic!("unexpected on funnels: {other:?}"),
        })
        .collect();
    assert_eq!(stages.len() % sites, 0, "every site has every status");
    for deal in deals.upserted.values().flatten() {
        assert!(
            stages.contains(&(deal.site.clone(), deal.status_code.clone())),
            "stage of {}",
            deal.order_id
        );
    }
    app.stop().await;
}

/// A key that may read single users but not list them (the connect check only asks for
/// `/users/{id}`): managers are still named, looked up one by one, and the refused listing is
/// asked once, not again with every batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_are_looked_up_by_id_when_the_key_may_not_list_users() {
    let backend = Backend::embedded().await;
    let sim = Simulator::start(SimConfig::new(1, 40)).await.unwrap();
    let account = sim.account(0);
    let credentials = [
        "/api/orders",
        "/api/orders/{externalId}",
        "/api/orders/history",
        "/api/customers",
        "/api/customers/{externalId}",
        "/api/customers-corporate",
        "/api/customers-corporate/{externalId}",
        "/api/reference/statuses",
        "/api/reference/status-groups",
        "/api/reference/sites",
        "/api/settings",
        "/api/users/{id}",
    ];
    let no_listing = KeyAccess {
        scopes: Vec::new(),
        credentials: Some(credentials.iter().map(|c| (*c).to_owned()).collect()),
        ..KeyAccess::default()
    };
    account.set_key_access(0, no_listing).unwrap();
    let id = IntegrationId::new();
    backend
        .configure(id, &account.url(), &account.api_key())
        .await;
    let orders = truth_orders(&account.truth());
    let ids: Vec<u64> = orders.iter().map(|o| o.0).collect();
    let app = App::start(&backend, test_settings(&backend)).await;
    let mut deals_topic = backend.reader(&backend.topics.deals()).await;
    // Two rounds of changes: the second batch must not ask for the list again.
    for round in 0..2 {
        backend.changes(id, &ids).await;
        deals_topic
            .until(WAIT, "every order's deal", |e| {
                Deals::of(e, id)
                    .upserted
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
                    >= orders.iter().filter(|o| !o.1).count() * (round + 1)
            })
            .await;
    }
    let deleted_users: HashSet<u64> = account.truth()["deleted_user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let deals = Deals::of(&deals_topic.envelopes(), id);
    let mut named = 0;
    for (order_id, _, order) in orders.iter().filter(|o| !o.1) {
        let deal = deals.upserted[order_id].last().unwrap();
        match order["managerId"].as_u64() {
            Some(m) if !deleted_users.contains(&m) => {
                let manager = deal.manager.as_ref().unwrap();
                assert_eq!(manager.id, m);
                assert!(manager.name.is_some(), "manager {m} named without the list");
                named += 1;
            }
            _ => {}
        }
    }
    assert!(named > 0, "the account's orders have managers");
    let counters = account.counters();
    let calls = |k: &str| counters.requests.get(k).copied().unwrap_or(0);
    assert_eq!(calls("GET /api/v5/users"), 1, "{counters:?}");
    assert!(calls("GET /api/v5/users/{id}") > 0, "{counters:?}");
    app.stop().await;
}
