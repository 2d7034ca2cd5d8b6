//! The operator's views (issue 19, DESIGN §4): `GET …/sync` from the enricher's sync state,
//! an order's trace in order from every event that mentions it, and the dead letters of an
//! integration, one per letter whatever the copies, leaving the list once the order got
//! through. All three rebuilt by a replay (the replay tests compare every table).

use chrono::{Duration, NaiveDate, Utc};
use dealflow_shared::bus::{DeadLetterCap, DeadLetters, Delivered};
use dealflow_shared::events::{
    ChangeSource, Envelope, Event, LoadKind, LoadProgress, OrderChanged, SyncStateChanged,
    TimelineProgress,
};
use dealflow_synthetic::{self as synthetic, Source, Spec};

use crate::support::*;

both!(sync_trace_and_dead_letters);

async fn sync_trace_and_dead_letters(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 19,
        integrations: 1,
        orders_per_integration: 3,
    });
    bus.publish(&stream.events).await;
    let id = stream.integrations[0];
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    let base = format!("/integrations/{id}");

    // Sync: nothing reported yet, then a running re-sync (newer than the finished backfill).
    let sync = app.ok(&format!("{base}/sync")).await;
    assert_eq!(sync["load"], serde_json::Value::Null);
    assert_eq!(sync["reconcile_interval_s"], 300);
    let now = Utc::now();
    let load = |kind, since: NaiveDate, started: chrono::DateTime<Utc>, done: bool| {
        let mut timeline = TimelineProgress::starting(None);
        timeline.finished_at = done.then_some(started);
        LoadProgress {
            kind,
            since,
            until: (kind == LoadKind::Resync).then(|| since + chrono::Days::new(9)),
            requested_at: started,
            pages_done: 2,
            pages_total: Some(4),
            orders_done: 200,
            orders_total: Some(350),
            started_at: started,
            finished_at: done.then_some(started),
            timeline: done.then_some(timeline),
        }
    };
    let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let state = SyncStateChanged {
        history_cursor: Some(4242),
        last_reconciled_at: Some(now - Duration::seconds(30)),
        backfill: Some(load(
            LoadKind::Backfill,
            day,
            now - Duration::hours(2),
            true,
        )),
        resync: Some(load(
            LoadKind::Resync,
            day,
            now - Duration::minutes(1),
            false,
        )),
        updated_at: now,
    };
    bus.send(
        Source::SyncState,
        id,
        Event::SyncStateChanged(state.clone()),
    )
    .await;
    // An older report arriving late changes nothing.
    let mut stale = state.clone();
    stale.history_cursor = Some(1);
    stale.updated_at = now - Duration::minutes(5);
    bus.send(Source::SyncState, id, Event::SyncStateChanged(stale))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let sync = app.ok(&format!("{base}/sync")).await;
    assert_eq!(sync["history_since_id"], 4242);
    let load = &sync["load"];
    assert_eq!(load["kind"], "resync");
    assert_eq!(load["since"], "2024-03-01");
    assert_eq!(load["until"], "2024-03-10");
    assert_eq!(
        (&load["pages_done"], &load["pages_total"]),
        (&2.into(), &4.into())
    );
    assert_eq!(
        (&load["orders_done"], &load["orders_total"]),
        (&200.into(), &350.into())
    );
    assert_eq!(load["finished_at"], serde_json::Value::Null);
    assert_eq!(load["phase"], "orders");

    // Trace: a webhook, the snapshot it fetched, a dead letter, a retry, the snapshot after it.
    let order = 10_001_u64;
    let snapshot = stream
        .events
        .iter()
        .filter_map(|(_, e)| match &e.event {
            Event::DealUpserted(d) if d.order_id == order => Some(d.clone()),
            _ => None,
        })
        .max_by_key(|d| d.observed_at)
        .unwrap();
    let t0 = snapshot.observed_at + Duration::minutes(1);
    let change = |source, at| {
        Envelope::new(
            id,
            Event::OrderChanged(OrderChanged {
                order_id: order,
                source,
                received_at: at,
            }),
        )
    };
    let webhook = change(ChangeSource::Webhook, t0);
    bus.publish(&[(Source::OrderChanged, webhook.clone())])
        .await;
    let mut fetched = snapshot.clone();
    fetched.observed_at = t0 + Duration::seconds(1);
    fetched.status_code = "assembling".into();
    bus.send(Source::Deals, id, Event::DealUpserted(fetched.clone()))
        .await;
    // The enricher gives up on the next change of the order: twice the same letter (a crash
    // between the letter and the offset commit), and one about a page of no single order.
    let letters = DeadLetters::new(
        bus.bus.clone(),
        bus.topics.dead_letter(),
        DeadLetterCap::default(),
    );
    let poison = Delivered {
        topic: bus.topics.order_changed(),
        partition: 0,
        offset: 77,
        key: Some(id.to_string()),
        payload: change(ChangeSource::Webhook, t0 + Duration::seconds(2)).encode(),
        headers: Vec::new(),
    };
    for _ in 0..2 {
        letters
            .send(&poison, "enricher.map", "totalSumm is not a number")
            .await
            .unwrap();
    }
    let page = Delivered {
        topic: "retailcrm:orders".into(),
        partition: -1,
        offset: -1,
        key: Some(id.to_string()),
        payload: br#"{"load": "resync", "since": "2024-03-01", "page": 3}"#.to_vec(),
        headers: Vec::new(),
    };
    letters
        .send(&page, "enricher.load", "unreadable page")
        .await
        .unwrap();
    bus.wait_applied(&settings, &app.store).await;

    let listed = app.ok(&format!("{base}/dead-letters")).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "one row per letter: {listed}");
    let about_order = items
        .iter()
        .find(|l| l["order_id"] == order)
        .expect("the order's letter");
    assert_eq!(about_order["stage"], "enricher.map");
    assert_eq!(about_order["error"], "totalSumm is not a number");
    assert_eq!(about_order["id"].as_str().unwrap().len(), 16);
    assert!(items.iter().any(|l| l["order_id"].is_null()));
    // Newest first.
    let times = instants(items, "at");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // The retry, and the order fetched after it: the letter leaves the list.
    let retry_at = Utc::now();
    bus.publish(&[(Source::OrderChanged, change(ChangeSource::Retry, retry_at))])
        .await;
    let mut after = fetched.clone();
    after.observed_at = retry_at + Duration::seconds(1);
    after.status_code = "complete".into();
    bus.send(Source::Deals, id, Event::DealUpserted(after))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let listed = app.ok(&format!("{base}/dead-letters")).await;
    let left: Vec<&serde_json::Value> = listed["items"].as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 1, "{listed}");
    assert!(left[0]["order_id"].is_null());

    let trace = app.ok(&format!("{base}/deals/{order}/trace")).await;
    let kinds: Vec<(&str, &str)> = trace["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["source"].as_str().unwrap()))
        .collect();
    let tail = &kinds[kinds.len() - 7..];
    assert_eq!(
        tail,
        [
            ("webhook_accepted", "webhook"),
            ("fetched", "enricher"),
            ("deal_upserted", "enricher"),
            ("dead_lettered", "enricher.map"),
            ("refetch_requested", "retry"),
            ("fetched", "enricher"),
            ("deal_upserted", "enricher"),
        ],
        "{trace:#}"
    );
    let items = trace["items"].as_array().unwrap();
    let last = &items[items.len() - 1];
    assert_eq!(last["detail"], "stage complete");
    let times = instants(items, "at");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );

    // An order dealflow never heard of has an empty trace; a bad id is 400.
    let none = app.ok(&format!("{base}/deals/999999/trace")).await;
    assert_eq!(none["items"], serde_json::json!([]));
    assert_eq!(app.error(&format!("{base}/deals/x/trace")).await.0, 400);
    app.stop().await.unwrap();
}

both!(a_trace_keeps_the_newest_entries);

async fn a_trace_keeps_the_newest_entries(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 20,
        integrations: 1,
        orders_per_integration: 1,
    });
    bus.publish(&stream.events).await;
    let id = stream.integrations[0];
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    let start = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
    // 250 webhooks for one order, in two batches' worth.
    let webhooks: Vec<(Source, Envelope)> = (0..250)
        .map(|i| {
            (
                Source::OrderChanged,
                Envelope::new(
                    id,
                    Event::OrderChanged(OrderChanged {
                        order_id: 5,
                        source: ChangeSource::Webhook,
                        received_at: start + Duration::seconds(i),
                    }),
                ),
            )
        })
        .collect();
    bus.publish(&webhooks).await;
    bus.wait_applied(&settings, &app.store).await;
    let trace = app.ok(&format!("/integrations/{id}/deals/5/trace")).await;
    let items = trace["items"].as_array().unwrap();
    assert_eq!(items.len(), 200, "the newest 200 are kept");
    let first =
        (start + Duration::seconds(50)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert_eq!(items[0]["at"].as_str().unwrap(), first);
    app.stop().await.unwrap();
}
