//! The projector on Kafka (nisshi, two partitions per topic): the same view as on the
//! embedded log, and a restart in the middle loses and duplicates nothing.

use dealflow_synthetic::{self as synthetic, Spec};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_the_view_matches_the_embedded_log() {
    let stream = synthetic::generate(&Spec {
        seed: 61,
        integrations: 3,
        orders_per_integration: 15,
    });
    // Reference: the embedded log into SQLite.
    let reference_db = Db::sqlite().await;
    let embedded = Bus::embedded().await;
    embedded.publish(&stream.events).await;
    let settings = embedded.settings(&reference_db);
    let app = App::spawn(settings.clone(), &embedded).await;
    embedded.wait_applied(&settings, &app.store).await;
    let reference = without_offsets(app.store.dump_tables().await.unwrap());
    app.stop().await.unwrap();

    // Kafka into PostgreSQL, stopped and restarted in the middle.
    let db = Db::postgres().await;
    let kafka = Bus::kafka().await;
    let (first, second) = stream.events.split_at(stream.events.len() / 2);
    kafka.publish(first).await;
    let mut settings = kafka.settings(&db);
    settings.batch_size = 50;
    let app = App::spawn(settings.clone(), &kafka).await;
    kafka.wait_applied(&settings, &app.store).await;
    app.stop().await.unwrap();
    kafka.publish(second).await;
    let app = App::spawn(settings.clone(), &kafka).await;
    kafka.wait_applied(&settings, &app.store).await;
    assert_same(
        &reference,
        &without_offsets(app.store.dump_tables().await.unwrap()),
    );
    app.stop().await.unwrap();
}
