//! Table upkeep on PostgreSQL (`store::upkeep`): the projector vacuums and analyzes the tables
//! it grows rather than leaving a fresh read model to plans made for empty tables.

use dealflow_projector::replay;
use dealflow_shared::config::DatabaseUrl;
use dealflow_synthetic::{self as synthetic, Spec};
use secrecy::ExposeSecret as _;
use sqlx::Connection as _;

use crate::support::*;

/// `(vacuum_count, analyze_count)` of the `deals` table, as the server counts manual runs.
async fn deals_upkept(db: &Db) -> (i64, i64) {
    let DatabaseUrl::Postgres(url) = &db.url else {
        panic!("PostgreSQL only");
    };
    let mut conn = sqlx::AnyConnection::connect(url.expose_secret())
        .await
        .unwrap();
    let row: (i64, i64) = sqlx::query_as(
        "SELECT vacuum_count, analyze_count FROM pg_stat_user_tables WHERE relname = 'deals'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_read_model_is_vacuumed_and_analyzed() {
    let db = Db::postgres().await;
    let bus = Bus::embedded().await;
    // About 2,400 events: past the first upkeep's 2,000 rows written.
    let stream = synthetic::generate(&Spec {
        seed: 5,
        integrations: 1,
        orders_per_integration: 400,
    });
    bus.publish(&stream.events).await;
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    // The upkeep runs beside the consumer, after the batch that made it due.
    dealflow_testkit::wait_until(WAIT, "the consumer's upkeep", || async {
        let (vacuumed, analyzed) = deals_upkept(&db).await;
        vacuumed > 0 && analyzed > 0
    })
    .await;
    app.stop().await.unwrap();

    // A replay ends with one, before it reports done.
    let before = deals_upkept(&db).await;
    replay(&settings, bus.bus.clone(), None, |_| {})
        .await
        .unwrap();
    let after = deals_upkept(&db).await;
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{before:?} → {after:?}"
    );
}
