//! `replay` rebuilds the read model from the topics and ends with identical tables.

use std::sync::Mutex;

use dealflow_projector::{ReplayProgress, replay};
use dealflow_synthetic::{self as synthetic, Spec};

use crate::support::*;

both!(replay_reproduces_identical_tables);
async fn replay_reproduces_identical_tables(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 41,
        integrations: 3,
        orders_per_integration: 30,
    });
    bus.publish(&stream.events).await;
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    app.stop().await.unwrap();
    let store = db.store().await;
    let before = store.dump_tables().await.unwrap();
    assert!(before["deals"].len() >= 80);

    // Everything.
    let reports = Mutex::new(Vec::new());
    let report = replay(&settings, bus.bus.clone(), None, |p: ReplayProgress| {
        reports.lock().unwrap().push(p);
    })
    .await
    .unwrap();
    assert_same(&before, &store.dump_tables().await.unwrap());
    let reports = reports.into_inner().unwrap();
    let last = reports.last().unwrap();
    assert!(last.finished);
    assert_eq!(last.records_read, last.records_total);
    assert_eq!(report.records_read, last.records_total);
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].records_read <= w[1].records_read)
    );

    // One integration.
    replay(
        &settings,
        bus.bus.clone(),
        Some(stream.integrations[1]),
        |_| {},
    )
    .await
    .unwrap();
    assert_same(&before, &store.dump_tables().await.unwrap());

    // Into an empty database: the same view.
    let fresh = db.another().await;
    let mut fresh_settings = settings.clone();
    fresh_settings.database_url = fresh.url.clone();
    replay(&fresh_settings, bus.bus.clone(), None, |_| {})
        .await
        .unwrap();
    assert_same(&before, &fresh.store().await.dump_tables().await.unwrap());

    // A projector started afterwards finds nothing left to do.
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    assert_same(&before, &app.store.dump_tables().await.unwrap());
    app.stop().await.unwrap();
    store.close().await;
}

both!(a_replay_in_small_steps_writes_what_its_memo_held);
/// A replay keeps the rows of hot orders in memory between its steps and writes them once they
/// go cold (`apply::write_back`): with steps of a few records its memo holds a few orders, so
/// it writes, forgets and reads back all the time — and must still end with the same tables,
/// through settings changes (re-derived in SQL), a regrouped stage and dead letters (whose
/// resolution reads deals in SQL) in the middle of the stream.
async fn a_replay_in_small_steps_writes_what_its_memo_held(db: Db) {
    use chrono::{Duration, Utc};
    use dealflow_shared::bus::{DeadLetterCap, DeadLetters, Delivered};
    use dealflow_shared::events::{
        ChangeSource, Envelope, Event, OrderChanged, Revenue, StageOutcome, StageRule,
    };
    use dealflow_synthetic::Source;

    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 43,
        integrations: 2,
        orders_per_integration: 40,
    });
    let (first, second) = (stream.integrations[0], stream.integrations[1]);
    let half = stream.events.len() / 2;
    bus.publish(&stream.events[..half]).await;
    // Copies of the first settings (no change) put the change below late in its topic, so
    // a replay meets it with the memo full.
    for _ in 0..60 {
        bus.send(
            Source::Integrations,
            first,
            Event::IntegrationConfigured(synthetic::configured(false, true, synthetic::epoch())),
        )
        .await;
    }
    // Mid-stream: the first integration's revenue and stage mapping change (every deal
    // re-derived in SQL), a stage moves to another group.
    let mut settings_change =
        synthetic::configured(false, true, synthetic::epoch() + Duration::days(3));
    settings_change.revenue = Revenue::Paid;
    settings_change.stage_mapping = [(
        "send-to-delivery".to_owned(),
        StageRule {
            outcome: Some(StageOutcome::Won),
            excluded: false,
        },
    )]
    .into_iter()
    .collect();
    bus.send(
        Source::Integrations,
        first,
        Event::IntegrationConfigured(settings_change),
    )
    .await;
    let regrouped = stream
        .events
        .iter()
        .find_map(|(_, e)| match &e.event {
            Event::FunnelStageSeen(s) if e.integration_id == second => Some(s.clone()),
            _ => None,
        })
        .expect("a stage of the second integration");
    let mut moved = regrouped.clone();
    moved.group_code = "approval".to_owned();
    moved.observed_at = synthetic::epoch() + Duration::days(3);
    bus.send(Source::Funnels, second, Event::FunnelStageSeen(moved))
        .await;
    // Dead letters about an order of each integration: one is fetched again afterwards (the
    // letter resolves), the other is not.
    let letters = DeadLetters::new(
        bus.bus.clone(),
        bus.topics.dead_letter(),
        DeadLetterCap::default(),
    );
    let now = Utc::now();
    for (id, order) in [(first, 10_003_u64), (second, 10_004)] {
        let change = Envelope::new(
            id,
            Event::OrderChanged(OrderChanged {
                order_id: order,
                source: ChangeSource::Webhook,
                received_at: now,
            }),
        );
        let poison = Delivered {
            topic: bus.topics.order_changed(),
            partition: 0,
            offset: 5,
            key: Some(id.to_string()),
            payload: change.encode(),
            headers: Vec::new(),
        };
        letters
            .send(&poison, "enricher.map", "totalSumm is not a number")
            .await
            .unwrap();
    }
    let mut again = stream
        .events
        .iter()
        .filter_map(|(_, e)| match &e.event {
            Event::DealUpserted(d) if e.integration_id == first && d.order_id == 10_003 => {
                Some(d.clone())
            }
            _ => None,
        })
        .max_by_key(|d| d.observed_at)
        .expect("a snapshot of the lettered order");
    again.observed_at = now + Duration::seconds(1);
    bus.publish(&stream.events[half..]).await;
    // Last on its topic: a replay still holds it in memory when it resolves the letter.
    bus.send(Source::Deals, first, Event::DealUpserted(again))
        .await;

    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    app.stop().await.unwrap();
    let store = db.store().await;
    let before = store.dump_tables().await.unwrap();
    assert_eq!(before["dead_letters"].len(), 2);
    assert!(
        before["dead_letters"]
            .iter()
            .any(|l| l.ends_with("resolved_at=∅")),
        "one letter stays open: {:?}",
        before["dead_letters"]
    );

    // Steps of 7 records write and read back all the time; steps of 60 keep more orders
    // across the settings change and the letters.
    for step in [7, 60] {
        let mut small = settings.clone();
        small.replay_batch_size = step;
        replay(&small, bus.bus.clone(), None, |_| {}).await.unwrap();
        assert_same(&before, &store.dump_tables().await.unwrap());
        replay(&small, bus.bus.clone(), Some(first), |_| {})
            .await
            .unwrap();
        assert_same(&before, &store.dump_tables().await.unwrap());
        let fresh = db.another().await;
        small.database_url = fresh.url.clone();
        replay(&small, bus.bus.clone(), None, |_| {}).await.unwrap();
        assert_same(&before, &fresh.store().await.dump_tables().await.unwrap());
    }
    store.close().await;
}
