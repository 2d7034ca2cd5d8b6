//! Stage timelines as RetailCRM recorded them (DESIGN §5 "Stage timeline"), on each bus: a
//! backfill gives every loaded deal its whole timeline from `orders/history`, two changes
//! within one second keep RetailCRM's order (not the alphabet's), a status no webhook told of
//! still appears through reconciliation, and a replay rebuilds identical timelines.
//!
//! The expectation is always the simulator's own history (the `stages` of its truth), so
//! every deal's timeline is compared entry by entry, not just its last stage.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use dealflow_projector::{ProjectorSettings, Store, replay};
use dealflow_shared::retailcrm::time::to_utc;
use dealflow_shared::wiring;
use dealflow_testkit::wait_for;
use serde_json::{Value, json};

use crate::support::{Bus, System, WAIT, truth_orders};

/// `(stage code, entered at)` as the API shows a timeline.
type Timeline = Vec<(String, DateTime<Utc>)>;

/// The timeline RetailCRM's history gives each live order: its status records in id order,
/// converted from the account timezone, one entry per stay.
fn expected_timelines(system: &System) -> BTreeMap<u64, Timeline> {
    let truth = system.account().truth();
    let tz: chrono_tz::Tz = truth["timezone"].as_str().unwrap().parse().unwrap();
    truth["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["deleted"] == false)
        .map(|o| {
            let mut timeline: Timeline = Vec::new();
            for stage in o["stages"].as_array().unwrap() {
                let code = stage["code"].as_str().unwrap().to_owned();
                let local = NaiveDateTime::parse_from_str(
                    stage["at"].as_str().unwrap(),
                    "%Y-%m-%d %H:%M:%S",
                )
                .unwrap();
                if timeline.last().is_none_or(|(last, _)| *last != code) {
                    timeline.push((code, to_utc(local, tz)));
                }
            }
            (o["id"].as_u64().unwrap(), timeline)
        })
        .collect()
}

fn timeline_of(deal: &Value) -> Timeline {
    deal["stage_history"]
        .as_array()
        .unwrap_or_else(|| panic!("no stage_history in {deal}"))
        .iter()
        .map(|e| {
            let at = DateTime::parse_from_rfc3339(e["entered_at"].as_str().unwrap()).unwrap();
            (
                e["stage_code"].as_str().unwrap().to_owned(),
                at.with_timezone(&Utc),
            )
        })
        .collect()
}

/// Waits until every deal's timeline and stage are the simulator's; returns the deals. Prints
/// each new mismatch, so a timeout tells what was still wrong.
async fn wait_timelines(system: &System, id: &str, what: &str) -> BTreeMap<u64, Value> {
    let expected = expected_timelines(system);
    let truth = truth_orders(system.account());
    let last = std::sync::Mutex::new(String::new());
    wait_for(WAIT, what, || async {
        let mut deals = BTreeMap::new();
        for (order, timeline) in &expected {
            let response = system
                .http
                .get(format!(
                    "{}/api/v1/integrations/{id}/deals/{order}",
                    system.base
                ))
                .bearer_auth(&system.token)
                .send()
                .await
                .ok()?;
            let mismatch = if response.status() == 200 {
                let deal: Value = response.json().await.ok()?;
                let got = timeline_of(&deal);
                let stage = deal["stage_code"].clone();
                deals.insert(*order, deal);
                if got != *timeline {
                    Some(format!("order {order}: got {got:?}, want {timeline:?}"))
                } else if stage != truth[order]["status"] {
                    Some(format!(
                        "order {order}: stage {stage}, want {}",
                        truth[order]["status"]
                    ))
                } else {
                    None
                }
            } else {
                Some(format!("order {order}: {}", response.status()))
            };
            if let Some(mismatch) = mismatch {
                let mut last = last.lock().unwrap();
                if *last != mismatch {
                    eprintln!("{what}: {mismatch}");
                    *last = mismatch;
                }
                return None;
            }
        }
        Some(deals)
    })
    .await
}

/// Two statuses other than `current`, the first after the second in the alphabet.
fn reverse_alphabetical_pair(
    outcomes: &BTreeMap<String, String>,
    current: &str,
) -> (String, String) {
    let mut open: Vec<&String> = outcomes
        .iter()
        .filter(|(code, outcome)| *outcome == "open" && code.as_str() != current)
        .map(|(code, _)| code)
        .collect();
    open.sort();
    assert!(open.len() >= 2, "two open statuses besides {current}");
    (open[open.len() - 1].clone(), open[0].clone())
}

async fn timelines(bus: Bus) {
    let system =
        System::start_configured(bus, 1, 40, &[("DEALFLOW_RECONCILE_INTERVAL", "1s")]).await;
    let (id, hook) = system.connect_with(0, json!({"backfill_days": 3650})).await;

    // The backfill: every deal gets its whole timeline, with no webhook at all.
    let deals = wait_timelines(&system, &id, "backfilled timelines").await;
    assert_eq!(deals.len(), truth_orders(system.account()).len());
    let funnels = system.get(&format!("/integrations/{id}/funnels")).await;
    let outcomes: BTreeMap<String, String> = funnels
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["stages"].as_array().unwrap().iter())
        .map(|s| {
            (
                s["code"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut lost_checked = 0;
    for (order, deal) in &deals {
        let timeline = timeline_of(deal);
        if deal["outcome"] != "lost" {
            continue;
        }
        let last_open = timeline
            .iter()
            .rev()
            .find(|(code, _)| outcomes.get(code).is_some_and(|o| o == "open"));
        let Some((last_open, _)) = last_open else {
            continue;
        };
        let closed = timeline
            .iter()
            .skip_while(|(code, _)| code != last_open)
            .find(|(code, _)| outcomes.get(code).is_some_and(|o| o != "open"))
            .map(|(_, at)| at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        assert_eq!(
            deal["last_open_stage"], *last_open,
            "order {order}: {timeline:?}"
        );
        assert_eq!(
            deal["closed_at"].as_str().map(str::to_owned),
            closed,
            "order {order}"
        );
        lost_checked += 1;
    }
    assert!(
        lost_checked > 0,
        "a backfilled cancelled order with open stages before it"
    );

    // Two changes within one second, in reverse alphabetical order, then one webhook: the
    // snapshot shows only the second; history adds the first before it.
    let truth = truth_orders(system.account());
    let mut orders = truth.keys().copied();
    let quick = orders.next().unwrap();
    let current = truth[&quick]["status"].as_str().unwrap();
    let (first, second) = reverse_alphabetical_pair(&outcomes, current);
    let changed = system
        .account()
        .set_statuses(quick, &[&first, &second], None)
        .unwrap();
    assert_eq!(changed, 2);
    let truth_now = system.account().truth();
    let stages = &truth_now["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == quick)
        .unwrap()["stages"];
    let last_two: Vec<&Value> = stages.as_array().unwrap().iter().rev().take(2).collect();
    assert_eq!(
        last_two[0]["at"], last_two[1]["at"],
        "both in the same second"
    );
    let response = system
        .http
        .post(&hook)
        .form(&[("orderId", quick.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // A status no webhook told of (it lasted between two fetches), then another with one.
    let between = orders.next().unwrap();
    let now = truth[&between]["status"].as_str().unwrap();
    let (unseen, seen) = reverse_alphabetical_pair(&outcomes, now);
    system.account().set_status(between, &unseen, None).unwrap();
    system.account().set_status(between, &seen, None).unwrap();
    system
        .http
        .get(format!("{hook}?orderId={between}"))
        .send()
        .await
        .unwrap();

    // And a change with no webhook at all: reconciliation finds it.
    let silent = orders.next().unwrap();
    let was = truth[&silent]["status"].as_str().unwrap();
    let (target, _) = reverse_alphabetical_pair(&outcomes, was);
    system.account().set_status(silent, &target, None).unwrap();

    let deals = wait_timelines(&system, &id, "timelines after the changes").await;
    let tail = |order: u64, n: usize| -> Vec<String> {
        let t = timeline_of(&deals[&order]);
        t[t.len().saturating_sub(n)..]
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    };
    assert_eq!(tail(quick, 2), [first.clone(), second.clone()]);
    assert!(first > second, "the pair is in reverse alphabetical order");
    assert_eq!(tail(between, 2), [unseen, seen]);
    assert_eq!(tail(silent, 1), [target]);
    assert_eq!(deals[&quick]["stage_code"], second.as_str());

    // A replay rebuilds the same timelines (and deals) from the topics.
    let (dir, config, bus) = system.stop_keeping_bus().await;
    let store = Store::open(&config.database_url).await.unwrap();
    let before = store.dump_tables().await.unwrap();
    assert!(!before["stage_history"].is_empty());
    let secrets = wiring::load_or_generate_secrets(&config).unwrap();
    let settings = ProjectorSettings::from_config(&config, secrets.api_token, secrets.secret_key);
    let replay_bus = wiring::open_bus(&config, "dealflow-replay").await.unwrap();
    replay(&settings, replay_bus, None, |_| {}).await.unwrap();
    let after = store.dump_tables().await.unwrap();
    for table in ["stage_history", "deals"] {
        assert_eq!(after[table], before[table], "{table} after a replay");
    }
    store.close().await;
    drop((dir, bus));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelines_on_the_embedded_log() {
    timelines(Bus::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timelines_on_kafka() {
    timelines(Bus::kafka().await).await;
}

#[test]
fn the_pair_is_reverse_alphabetical_and_skips_the_current_status() {
    let outcomes: BTreeMap<String, String> =
        [("a", "open"), ("b", "open"), ("c", "open"), ("x", "lost")]
            .into_iter()
            .map(|(c, o)| (c.to_owned(), o.to_owned()))
            .collect();
    assert_eq!(
        reverse_alphabetical_pair(&outcomes, "c"),
        ("b".into(), "a".into())
    );
}
