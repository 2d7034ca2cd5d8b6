//! The operator's cockpit end to end (issue 19): a re-sync of a range of days with its
//! progress in `GET …/sync` and `409` while it runs; a re-fetch that finds a change RetailCRM
//! recorded no history for; an order RetailCRM describes unreadably, dead-lettered, listed,
//! fixed and retried until it leaves the list; each order's trace telling all of it in order.

use chrono::NaiveDate;
use dealflow_simulator::OrderEdit;
use dealflow_testkit::wait_for;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::*;

fn kinds(trace: &Value) -> Vec<String> {
    trace["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn cockpit(bus: Bus) {
    let system = System::start(bus, 40).await;
    let (id, hook) = system.connect(false).await;
    let base = format!("/integrations/{id}");
    let truth = truth_orders(system.account());

    // A re-sync of the middle of the account's history.
    let created = |o: &Value| {
        NaiveDate::parse_from_str(&o["createdAt"].as_str().unwrap()[..10], "%Y-%m-%d").unwrap()
    };
    let mut days: Vec<NaiveDate> = truth.values().map(created).collect();
    days.sort_unstable();
    let (since, until) = (days[days.len() / 4], days[days.len() * 3 / 4]);
    let expected = truth
        .values()
        .filter(|o| (since..=until).contains(&created(o)))
        .count() as u64;
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{base}/resync"),
            json!({"since": until.to_string(), "until": since.to_string()}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_request")),
        "{body}"
    );
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{base}/resync"),
            json!({"since": since.to_string(), "until": until.to_string()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["until"], until.to_string());
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{base}/resync"),
            json!({"since": since.to_string()}),
        )
        .await;
    assert_eq!(status, 409, "one load at a time: {body}");
    assert_eq!(body["error"]["code"], "resync_in_progress");
    let sync = wait_for(WAIT, "the re-sync to finish", || async {
        let sync = system.get(&format!("{base}/sync")).await;
        (sync["load"]["kind"] == "resync" && !sync["load"]["finished_at"].is_null()).then_some(sync)
    })
    .await;
    let load = &sync["load"];
    assert_eq!(
        (&load["since"], &load["until"]),
        (&json!(since.to_string()), &json!(until.to_string()))
    );
    assert_eq!(load["orders_total"], expected, "{sync}");
    assert_eq!(load["orders_done"], expected);
    assert_eq!(load["phase"], "done");
    assert!(sync["reconcile_interval_s"].as_u64().unwrap() > 0);
    // Finished: another one may start.
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{base}/resync"),
            json!({"since": until.to_string()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    // A change RetailCRM keeps no history record of: only a re-fetch finds it.
    let order = *truth.keys().next().unwrap();
    assert_eq!(
        system
            .http
            .post(format!("{hook}?orderId={order}"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    system
        .wait_deals(&id, "the order's deal", |d| {
            d.iter().any(|d| d["order_id"] == order)
        })
        .await;
    let cost = Decimal::new(12_345, 2);
    system
        .account()
        .edit_order(
            order,
            &OrderEdit {
                delivery_cost: Some(cost),
                unrecorded: true,
                ..OrderEdit::default()
            },
            None,
        )
        .unwrap();
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{base}/deals/{order}/refetch"),
            json!({}),
        )
        .await;
    assert_eq!((status, &body["order_id"]), (202, &json!(order)), "{body}");
    // The request is in the next read of the trace (the 202 came once the read side had it).
    // The enricher may already have answered it by then: only its own steps may follow.
    let trace = system.get(&format!("{base}/deals/{order}/trace")).await;
    let after_request: Vec<String> = kinds(&trace)
        .into_iter()
        .skip_while(|k| k != "refetch_requested")
        .collect();
    assert_eq!(
        after_request.first().map(String::as_str),
        Some("refetch_requested"),
        "{trace:#}"
    );
    assert!(
        after_request[1..]
            .iter()
            .all(|k| k == "fetched" || k == "deal_upserted"),
        "{trace:#}"
    );
    wait_for(WAIT, "the re-fetched delivery cost", || async {
        let deal = system.get(&format!("{base}/deals/{order}")).await;
        (deal["delivery_cost"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap()
            == cost)
            .then_some(())
    })
    .await;
    let kinds_now = kinds(&system.get(&format!("{base}/deals/{order}/trace")).await);
    let at = kinds_now
        .iter()
        .rposition(|k| k == "refetch_requested")
        .unwrap();
    assert_eq!(
        kinds_now[..=at].first().map(String::as_str),
        Some("webhook_accepted"),
        "{kinds_now:?}"
    );
    assert_eq!(
        &kinds_now[at + 1..],
        ["fetched", "deal_upserted"],
        "{kinds_now:?}"
    );
    let (status, _) = system
        .send(Method::POST, &format!("{base}/deals/0/refetch"), json!({}))
        .await;
    assert_eq!(status, 400);

    // An order RetailCRM describes unreadably: dead-lettered, listed, then fixed and retried.
    let poison = *truth.keys().nth(1).unwrap();
    system.account().garble(poison, true).unwrap();
    system
        .http
        .post(format!("{hook}?orderId={poison}"))
        .send()
        .await
        .unwrap();
    let letter = wait_for(WAIT, "the dead letter", || async {
        let list = system.get(&format!("{base}/dead-letters")).await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["order_id"] == poison)
            .cloned()
    })
    .await;
    assert_eq!(letter["stage"], "enricher.fetch", "{letter}");
    assert!(!letter["error"].as_str().unwrap().is_empty());
    let trace = system.get(&format!("{base}/deals/{poison}/trace")).await;
    assert!(
        kinds(&trace).contains(&"dead_lettered".to_owned()),
        "{trace:#}"
    );
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{base}/dead-letters/0000000000000000/retry"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("dead_letter_not_found"))
    );
    system.account().garble(poison, false).unwrap();
    let letter_id = letter["id"].as_str().unwrap();
    let (status, body) = system
        .send(
            Method::POST,
            &format!("{base}/dead-letters/{letter_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!((status, &body["order_id"]), (202, &json!(poison)), "{body}");
    wait_for(WAIT, "the retried letter to leave the list", || async {
        let list = system.get(&format!("{base}/dead-letters")).await;
        (!list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["order_id"] == poison))
        .then_some(())
    })
    .await;
    let kinds_now = kinds(&system.get(&format!("{base}/deals/{poison}/trace")).await);
    let dead = kinds_now.iter().position(|k| k == "dead_lettered").unwrap();
    let retried = kinds_now
        .iter()
        .position(|k| k == "refetch_requested")
        .unwrap();
    assert!(dead < retried, "{kinds_now:?}");
    assert!(
        kinds_now[retried..].contains(&"deal_upserted".to_owned()),
        "{kinds_now:?}"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_on_the_embedded_log() {
    cockpit(Bus::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_on_kafka() {
    cockpit(Bus::kafka().await).await;
}
