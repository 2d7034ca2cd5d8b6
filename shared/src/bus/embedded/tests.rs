//! Tests of the embedded log as a whole that need its internals (the checkpoint threshold); the
//! behaviour shared with Kafka is in the bus conformance suite.

use super::*;
use crate::bus::Retention;

/// Under a steady stream of commits the WAL starts over instead of growing with everything
/// ever written, and every record stays readable, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_continuous_writes() {
    const PUBLISHES: usize = 400;
    const RECORDS: usize = 20;
    const PAYLOAD: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let wal = dir.path().join("log.db-wal");
    let log = EmbeddedLog::open(&path).await.unwrap();
    let topic = "steady".to_owned();
    log.ensure_topics(&[TopicSpec::new(&topic, 1, Retention::Forever)])
        .await
        .unwrap();
    let mut largest_wal = 0;
    for p in 0..PUBLISHES {
        let records = (0..RECORDS)
            .map(|r| {
                OutRecord::new(
                    format!("k{r}"),
                    vec![u8::try_from(p % 256).unwrap(); PAYLOAD],
                )
            })
            .collect();
        log.publish(&topic, records).await.unwrap();
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        // Paced, so the background checkpointer passes many times during the test.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let written = u64::try_from(PUBLISHES * RECORDS * PAYLOAD).unwrap();
    assert!(
        largest_wal < written / 2,
        "the WAL reached {largest_wal} bytes for {written} bytes of records: it never started over \
         (reset threshold {} frames)",
        writer::WAL_RESET_FRAMES
    );

    let mut consumer = log
        .subscribe("reader", std::slice::from_ref(&topic))
        .await
        .unwrap();
    let mut next = 0;
    while next < PUBLISHES * RECORDS {
        let batch = consumer.poll(1000, Duration::from_secs(5)).await.unwrap();
        assert!(!batch.is_empty(), "records missing after offset {next}");
        for record in batch {
            assert_eq!(record.offset, i64::try_from(next).unwrap());
            assert_eq!(
                record.payload[0],
                u8::try_from((next / RECORDS) % 256).unwrap()
            );
            next += 1;
        }
    }
}
