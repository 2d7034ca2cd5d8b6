//! Idempotency by construction: any batch cuts, crashes between the database commit and the
//! bus commit, and a whole stream delivered twice all end in the same rows; an older snapshot
//! never overwrites a newer one.

use chrono::Duration;
use dealflow_shared::events::{DealDeleted, Event};
use dealflow_synthetic::{self as synthetic, Source, Spec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::*;

both!(any_cuts_and_crashes_give_the_same_rows);
async fn any_cuts_and_crashes_give_the_same_rows(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 7,
        integrations: 3,
        orders_per_integration: 40,
    });
    bus.publish(&stream.events).await;

    // Once, in big batches.
    let (once, settings) = projector(&bus, &db).await;
    drive(&once, &bus, &settings, "once", || (10_000, false)).await;
    let reference = once.store().dump_tables().await.unwrap();
    assert!(reference["deals"].len() >= 100, "the stream makes deals");
    assert!(reference["deals"].iter().any(|r| r.contains("|deleted=1|")));

    // Cut at random points, crashing after a third of the database commits.
    let other = db.another().await;
    let (cut, settings_cut) = projector(&bus, &other).await;
    let mut rng = StdRng::seed_from_u64(99);
    let skipped = drive(&cut, &bus, &settings_cut, "cut", || {
        (rng.random_range(1..60), rng.random_bool(0.35))
    })
    .await;
    assert!(
        skipped > 0,
        "redelivered records were recognised as applied"
    );
    assert_same(&reference, &cut.store().dump_tables().await.unwrap());

    // The same stream delivered a second time (new offsets, same events).
    bus.publish(&stream.events).await;
    drive(&once, &bus, &settings, "once", || (250, false)).await;
    assert_same(
        &without_offsets(reference),
        &without_offsets(once.store().dump_tables().await.unwrap()),
    );
}

both!(an_older_snapshot_changes_nothing);
async fn an_older_snapshot_changes_nothing(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 3,
        integrations: 1,
        orders_per_integration: 3,
    });
    bus.publish(&stream.events).await;
    let id = stream.integrations[0];
    let newest = stream
        .events
        .iter()
        .filter_map(|(_, e)| match &e.event {
            Event::DealUpserted(d) if d.order_id == 10_000 => Some(d.clone()),
            _ => None,
        })
        .max_by_key(|d| d.observed_at)
        .unwrap();
    let app = App::spawn(bus.settings(&db), &bus).await;
    bus.wait_applied(&bus.settings(&db), &app.store).await;
    let before = app.store.dump_tables().await.unwrap();
    let path = format!("/integrations/{id}/deals/10000");

    // A different, older snapshot after the newer one: nothing changes.
    let mut older = newest.clone();
    older.observed_at -= Duration::hours(1);
    older.status_code = "cancel-other".into();
    older.status_group = Some("cancel".into());
    older.stage_entered_at = None;
    older.total_sum = "1.00".parse().unwrap();
    bus.send(Source::Deals, id, Event::DealUpserted(older))
        .await;
    bus.wait_applied(&bus.settings(&db), &app.store).await;
    assert_same(
        &view_only(before.clone()),
        &view_only(app.store.dump_tables().await.unwrap()),
    );
    // ... but the order's trace says it was fetched.
    let trace = app.ok(&format!("{path}/trace")).await;
    let last = trace["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "deal_upserted");
    assert_eq!(last["detail"], "stage cancel-other");

    // Deleted; an older snapshot does not bring it back, a newer one does.
    let deleted_at = newest.observed_at + Duration::minutes(5);
    let deletion = DealDeleted {
        order_id: 10_000,
        merged_into: Some(10_001),
        observed_at: deleted_at,
    };
    bus.send(Source::Deals, id, Event::DealDeleted(deletion))
        .await;
    let mut stale = newest.clone();
    stale.observed_at = deleted_at - Duration::minutes(1);
    bus.send(Source::Deals, id, Event::DealUpserted(stale))
        .await;
    bus.wait_applied(&bus.settings(&db), &app.store).await;
    let deal = app.ok(&path).await;
    assert_eq!(deal["deleted"], true);
    assert_eq!(deal["merged_into"], 10_001);
    // A later deletion that does not know the merge (a fetch after a duplicate webhook found
    // the order gone) keeps the merge target the history gave.
    let plain = DealDeleted {
        order_id: 10_000,
        merged_into: None,
        observed_at: deleted_at + Duration::seconds(30),
    };
    bus.send(Source::Deals, id, Event::DealDeleted(plain)).await;
    bus.wait_applied(&bus.settings(&db), &app.store).await;
    assert_eq!(app.ok(&path).await["merged_into"], 10_001);

    let mut back = newest.clone();
    back.observed_at = deleted_at + Duration::minutes(1);
    bus.send(Source::Deals, id, Event::DealUpserted(back)).await;
    bus.wait_applied(&bus.settings(&db), &app.store).await;
    assert_eq!(app.ok(&path).await["deleted"], false);

    // A deletion of an order never seen leaves a tombstone: a later-arriving older snapshot
    // stays deleted, and the tombstone is not listed on its own.
    let ghost = DealDeleted {
        order_id: 77,
        merged_into: None,
        observed_at: deleted_at,
    };
    bus.send(Source::Deals, id, Event::DealDeleted(ghost)).await;
    bus.wait_applied(&bus.settings(&db), &app.store).await;
    assert_eq!(
        app.error(&format!("/integrations/{id}/deals/77")).await.0,
        404
    );
    let mut late = newest.clone();
    late.order_id = 77;
    late.observed_at = deleted_at - Duration::hours(2);
    bus.send(Source::Deals, id, Event::DealUpserted(late)).await;
    bus.wait_applied(&bus.settings(&db), &app.store).await;
    assert_eq!(
        app.ok(&format!("/integrations/{id}/deals/77")).await["deleted"],
        true
    );
    app.stop().await.unwrap();
}
