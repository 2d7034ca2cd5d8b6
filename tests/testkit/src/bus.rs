//! A real event bus for one test (feature `bus`): the embedded log in a temporary directory,
//! or a nisshi broker of the test's own, with every topic created under a prefix no other test
//! uses. The crates' harnesses wrap it with what their tests need.

use std::sync::Arc;
use std::time::Duration;

use dealflow_shared::bus::{EmbeddedLog, EventBus, KafkaBus, KafkaBusConfig};
use dealflow_shared::topics::Topics;
use tempfile::TempDir;

use crate::{Broker, Storage, unique_prefix};

/// Partitions of each test topic on Kafka (more than one, so ordering by key is exercised).
const PARTITIONS: i32 = 2;
/// Publish and request timeouts of the Kafka client by default.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

/// A bus, the topics of one test on it, and what keeps it alive.
pub struct TestBus {
    pub bus: Arc<dyn EventBus>,
    pub topics: Topics,
    /// The broker, on Kafka (tests stop and restart it).
    pub broker: Option<Broker>,
    /// `embedded` or `kafka`, for messages.
    pub name: &'static str,
    _dir: Option<TempDir>,
}

impl std::fmt::Debug for TestBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestBus({}, {})", self.name, self.topics.prefix())
    }
}

impl TestBus {
    /// The embedded log in a fresh temporary directory.
    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = EmbeddedLog::open(dir.path().join("events.db"))
            .await
            .expect("the embedded log opens");
        Self::with(Arc::new(log), None, Some(dir), "embedded").await
    }

    /// A broker of its own with in-memory storage.
    pub async fn kafka() -> Self {
        Self::kafka_with(Storage::Memory, KAFKA_TIMEOUT).await
    }

    /// A broker of its own with `storage`, its client giving up on a publish or a request
    /// after `timeout` (short when a test waits for a failure).
    pub async fn kafka_with(storage: Storage, timeout: Duration) -> Self {
        let broker = Broker::start_with(storage).await;
        let mut config = KafkaBusConfig::new(broker.bootstrap());
        config.publish_timeout = timeout;
        config.request_timeout = timeout;
        let bus = KafkaBus::new(config).expect("a Kafka client for the test broker");
        Self::with(Arc::new(bus), Some(broker), None, "kafka").await
    }

    async fn with(
        bus: Arc<dyn EventBus>,
        broker: Option<Broker>,
        dir: Option<TempDir>,
        name: &'static str,
    ) -> Self {
        let topics = Topics::new(unique_prefix());
        bus.ensure_topics(&topics.specs(PARTITIONS))
            .await
            .expect("the test topics are created");
        Self {
            bus,
            topics,
            broker,
            name,
            _dir: dir,
        }
    }
}

/// Declares `pub struct $name(pub TestBus)`, dereferencing to [`TestBus`], for a crate's
/// harness to add its own helpers to (its tests keep writing `backend.bus`, `backend.topics`).
#[macro_export]
macro_rules! test_bus_wrapper {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(pub $crate::bus::TestBus);

        impl ::std::ops::Deref for $name {
            type Target = $crate::bus::TestBus;
            fn deref(&self) -> &$crate::bus::TestBus {
                &self.0
            }
        }

        impl ::std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $crate::bus::TestBus {
                &mut self.0
            }
        }
    };
}
