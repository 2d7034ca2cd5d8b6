//! Stage timelines on both stores: history records and snapshots of the same change are one
//! entry, changes within one second keep RetailCRM's order (history id), a stage only the
//! history knows is in the timeline and in `last_open_stage`, and the result does not depend
//! on the order the sources arrive in.

use chrono::{DateTime, Duration, Utc};
use dealflow_shared::events::{DealStagesRecorded, DealUpserted, Event, StageRecorded};
use dealflow_synthetic::{self as synthetic, Source, Spec};
use serde_json::Value;

use crate::support::*;

fn stage(code: &str, at: DateTime<Utc>, history_id: u64) -> StageRecorded {
    StageRecorded {
        stage_code: code.into(),
        entered_at: at,
        history_id,
    }
}

fn timeline(deal: &Value) -> Vec<(String, String)> {
    deal["stage_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["stage_code"].as_str().unwrap().to_owned(),
                e["entered_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

both!(history_and_snapshots_make_one_timeline_in_retailcrms_order);
async fn history_and_snapshots_make_one_timeline_in_retailcrms_order(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 5,
        integrations: 1,
        orders_per_integration: 1,
    });
    let id = stream.integrations[0];
    bus.publish(&stream.only(&[Source::Integrations, Source::Funnels]))
        .await;
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    let mut deal: DealUpserted = stream.first_deal();
    let opened = deal.created_at;
    let busy = opened + Duration::hours(3);
    // The order was new, then went new → send-to-delivery → assembling → cancel-other, the
    // last three within one second ("send-to-delivery" sorts after "assembling"). The only
    // snapshot shows the end; the history tells the rest, in two pages.
    deal.status_code = "cancel-other".into();
    deal.status_group = Some("cancel".into());
    deal.stage_entered_at = Some(busy);
    deal.observed_at = busy + Duration::seconds(30);
    let first_page = DealStagesRecorded {
        order_id: deal.order_id,
        stages: vec![
            stage("new", opened, 500),
            stage("send-to-delivery", busy, 731),
        ],
        observed_at: busy + Duration::minutes(5),
    };
    let second_page = DealStagesRecorded {
        order_id: deal.order_id,
        stages: vec![
            stage("assembling", busy, 732),
            stage("cancel-other", busy, 733),
        ],
        observed_at: busy + Duration::minutes(5),
    };
    let path = format!("/integrations/{id}/deals/{}", deal.order_id);
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let expected = vec![
        ("new".to_owned(), at(opened)),
        ("send-to-delivery".to_owned(), at(busy)),
        ("assembling".to_owned(), at(busy)),
        ("cancel-other".to_owned(), at(busy)),
    ];

    // The snapshot alone: one entry, the stage it is in.
    bus.send(Source::Deals, id, Event::DealUpserted(deal.clone()))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let alone = app.ok(&path).await;
    assert_eq!(timeline(&alone), [("cancel-other".to_owned(), at(busy))]);
    assert_eq!(alone["last_open_stage"], Value::Null);

    // The history: every stage in RetailCRM's order, the snapshot's entry merged with its
    // record; the stage before the loss is the last open one (a history-only stage).
    bus.send(
        Source::Deals,
        id,
        Event::DealStagesRecorded(second_page.clone()),
    )
    .await;
    bus.send(
        Source::Deals,
        id,
        Event::DealStagesRecorded(first_page.clone()),
    )
    .await;
    bus.wait_applied(&settings, &app.store).await;
    let full = app.ok(&path).await;
    assert_eq!(timeline(&full), expected);
    assert_eq!(full["last_open_stage"], "assembling");
    assert_eq!(full["closed_at"], at(busy));
    let rows = app.store.dump_tables().await.unwrap()["stage_history"].clone();
    assert_eq!(rows.len(), 4, "one row per (stage, instant): {rows:?}");

    // Everything again, in another order: nothing changes.
    bus.send(Source::Deals, id, Event::DealStagesRecorded(first_page))
        .await;
    bus.send(Source::Deals, id, Event::DealUpserted(deal)).await;
    bus.send(Source::Deals, id, Event::DealStagesRecorded(second_page))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    assert_eq!(app.ok(&path).await, full);
    assert_eq!(
        app.store.dump_tables().await.unwrap()["stage_history"],
        rows
    );
    app.stop().await.unwrap();
}
