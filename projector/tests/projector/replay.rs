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
