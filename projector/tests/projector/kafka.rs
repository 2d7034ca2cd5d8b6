//! The projector on Kafka (nisshi, two partitions per topic): the same view as on the
//! embedded log, a restart in the middle loses and duplicates nothing, and neither do members
//! of one group joining and leaving while records flow.

use std::time::Duration;

use dealflow_synthetic::{self as synthetic, Spec};
use dealflow_testkit::wait_for;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_the_view_matches_the_embedded_log() {
    let stream = synthetic::generate(&Spec {
        seed: 61,
        integrations: 3,
        orders_per_integration: 15,
    });
    let reference = embedded_view(&stream.events).await;

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

/// Two members of one group writing one PostgreSQL database, a member joining and the other
/// leaving while records flow: partitions move between them while each has a batch being
/// written and the next one read ahead (a revoked partition's batch may still commit; its new
/// owner waits on the offsets rows, then skips what was applied). The view ends as the
/// embedded log builds it: nothing lost, nothing counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_and_leaving_mid_stream_lose_nothing() {
    let stream = synthetic::generate(&Spec {
        seed: 62,
        // Keyed by integration over two partitions: with twelve, both partitions (and so
        // both members) get records but once in ~2,000 runs.
        integrations: 12,
        orders_per_integration: 8,
    });
    let reference = embedded_view(&stream.events).await;

    let db = Db::postgres().await;
    let kafka = Bus::kafka().await;
    let (first, rest) = stream.events.split_at(stream.events.len() / 3);
    let mut settings = kafka.settings(&db);
    settings.batch_size = 10;
    kafka.publish(first).await;
    let a = App::spawn(settings.clone(), &kafka).await;
    wait_for(WAIT, "the first member to apply", || async {
        (applied(&a).await > 0).then_some(())
    })
    .await;
    // The second member joins while the first is busy and records keep coming, a few at a
    // time, until the second has applied some of its share.
    let b = App::spawn(settings.clone(), &kafka).await;
    let mut chunks = rest.chunks(3);
    loop {
        let chunk = chunks
            .next()
            .expect("the second member to apply some records while they flowed");
        kafka.publish(chunk).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        if applied(&b).await > 0 {
            break;
        }
    }
    // The first leaves while the rest flows in.
    let publishing = async {
        for chunk in chunks {
            kafka.publish(chunk).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (stopped, ()) = tokio::join!(a.stop(), publishing);
    stopped.unwrap();
    kafka.wait_applied(&settings, &b.store).await;
    assert_same(
        &reference,
        &without_offsets(b.store.dump_tables().await.unwrap()),
    );
    b.stop().await.unwrap();
}

/// Records a member applied so far.
async fn applied(app: &App) -> u64 {
    app.metric("dealflow_projector_records_total{result=\"applied\"}")
        .await
}
