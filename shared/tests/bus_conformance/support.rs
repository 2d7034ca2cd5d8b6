//! Harness and helpers shared by the conformance cases.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dealflow_shared::bus::{
    Consumer, Delivered, EmbeddedLog, EventBus, KafkaBus, KafkaBusConfig, OutRecord, Retention,
    TopicSpec,
};
use dealflow_testkit::{Broker, unique_prefix};
use tempfile::TempDir;
use tokio::time::Instant;

/// Upper bound for anything a test waits for.
pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// One poll's wait; loops poll again until [`WAIT`].
pub(crate) const POLL: Duration = Duration::from_millis(500);
pub(crate) const KAFKA_PARTITIONS: i32 = 3;
pub(crate) const SENTINEL: &str = "sentinel";

/// One backend under test, able to hand out fresh bus handles ("restarts").
pub(crate) enum Harness {
    Embedded { _dir: TempDir, file: PathBuf },
    Kafka { broker: Broker },
}

impl Harness {
    pub(crate) async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data").join("log.db");
        Self::Embedded { _dir: dir, file }
    }

    pub(crate) async fn kafka() -> Self {
        Self::Kafka {
            broker: Broker::start().await,
        }
    }

    /// A new handle on the same data. On the embedded log, drop the previous handle (and its
    /// consumers) first: the file has one owner at a time.
    pub(crate) async fn bus(&self) -> Arc<dyn EventBus> {
        match self {
            Self::Embedded { file, .. } => Arc::new(EmbeddedLog::open(file).await.unwrap()),
            Self::Kafka { broker } => Arc::new(KafkaBus::new(kafka_config(broker)).unwrap()),
        }
    }

    pub(crate) fn partitions(&self) -> i32 {
        match self {
            Self::Embedded { .. } => 1,
            Self::Kafka { .. } => KAFKA_PARTITIONS,
        }
    }

    /// Creates `names` under a fresh prefix and returns their full names.
    pub(crate) async fn topics(&self, bus: &dyn EventBus, names: &[&str]) -> Vec<String> {
        let prefix = unique_prefix();
        let specs: Vec<TopicSpec> = names
            .iter()
            .map(|n| {
                TopicSpec::new(
                    format!("{prefix}{n}"),
                    self.partitions(),
                    Retention::Forever,
                )
            })
            .collect();
        bus.ensure_topics(&specs).await.unwrap();
        specs.into_iter().map(|s| s.name).collect()
    }
}

pub(crate) fn kafka_config(broker: &Broker) -> KafkaBusConfig {
    let mut config = KafkaBusConfig::new(broker.bootstrap());
    config.replication_factor = 1;
    config
}

pub(crate) fn group() -> String {
    format!("{}group", unique_prefix())
}

pub(crate) fn text(record: &Delivered) -> String {
    String::from_utf8(record.payload.clone()).unwrap()
}

/// Publishes `n` records `"{tag}-{i}"` keyed `key-{i % 7}`; returns their payloads.
pub(crate) async fn publish_numbered(
    bus: &dyn EventBus,
    topic: &str,
    tag: &str,
    n: usize,
) -> Vec<String> {
    let payloads: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let records = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| OutRecord::new(format!("key-{}", i % 7), p.clone()))
        .collect();
    let positions = bus.publish(topic, records).await.unwrap();
    assert_eq!(positions.len(), n);
    payloads
}

/// Polls until `n` records arrived (or fails after [`WAIT`]); stores and commits them when
/// `commit` is set.
pub(crate) async fn consume(consumer: &mut dyn Consumer, n: usize, commit: bool) -> Vec<Delivered> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "received {} of {n} records: {:?}",
            out.len(),
            out.iter().map(text).collect::<Vec<_>>()
        );
        let batch = consumer.poll(n - out.len(), POLL).await.unwrap();
        if commit {
            for record in &batch {
                consumer.store(record).unwrap();
            }
            consumer.commit().await.unwrap();
        }
        out.extend(batch);
    }
    out
}

/// Publishes one sentinel to every partition of `topic`.
pub(crate) async fn publish_sentinels(bus: &dyn EventBus, topic: &str, partitions: i32) {
    let mut covered = BTreeSet::new();
    for i in 0..1000 {
        let record = OutRecord::new(format!("{SENTINEL}-{i}"), SENTINEL);
        let position = bus.publish(topic, vec![record]).await.unwrap()[0];
        covered.insert(position.partition);
        if covered.len() == usize::try_from(partitions).unwrap() {
            return;
        }
    }
    panic!("sentinels reached only partitions {covered:?}");
}

/// Reads until a sentinel arrived from every partition; returns the other records seen.
pub(crate) async fn read_to_sentinels(
    consumer: &mut dyn Consumer,
    partitions: i32,
) -> Vec<Delivered> {
    let deadline = Instant::now() + WAIT;
    let mut seen = BTreeSet::new();
    let mut others = Vec::new();
    while seen.len() < usize::try_from(partitions).unwrap() {
        assert!(
            Instant::now() < deadline,
            "sentinels seen from {seen:?} only"
        );
        for record in consumer.poll(100, POLL).await.unwrap() {
            if record.payload == SENTINEL.as_bytes() {
                seen.insert(record.partition);
            } else {
                others.push(record);
            }
        }
    }
    others
}

pub(crate) fn payload_set(records: &[Delivered]) -> BTreeSet<String> {
    records.iter().map(text).collect()
}
