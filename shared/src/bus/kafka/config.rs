//! Configuration of the Kafka backend: librdkafka properties come from here, never from literals
//! scattered through the code.
//!
//! Properties are layered: built-in defaults, then `properties` (every client), then
//! `producer_properties` / `consumer_properties` (then `follower_properties` for the consumers
//! that follow a settings topic). A few properties carry the delivery guarantees
//! (see [`KafkaBusConfig::validate`]) and cannot be overridden to anything else.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::bus::BusError;

/// librdkafka properties by name.
type Properties = BTreeMap<String, String>;

/// A property that carries a delivery guarantee, and the values it may take.
type Fixed = (&'static str, &'static [&'static str]);

const PRODUCER_FIXED: &[Fixed] = &[("enable.idempotence", &["true"]), ("acks", &["all", "-1"])];
const CONSUMER_FIXED: &[Fixed] = &[
    ("enable.auto.commit", &["false"]),
    ("enable.auto.offset.store", &["false"]),
];

/// How eagerly a consumer fetches: a live consumer is on the webhook → visible path, a
/// follower reads a settings topic (see [`KafkaBusConfig::follower_properties`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    Live,
    Follower,
}

/// Settings of the Kafka backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaBusConfig {
    /// Bootstrap servers, `host:port[,host:port…]` (`DEALFLOW_KAFKA_BROKERS`).
    pub brokers: String,
    /// `client.id` of every client, visible in broker logs and quotas.
    pub client_id: String,
    /// librdkafka properties for every client (producer, consumers, admin), over the defaults.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the producer only.
    pub producer_properties: BTreeMap<String, String>,
    /// librdkafka properties for consumers only.
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumers that follow a compacted settings topic (the
    /// registries, tenants, sync states), over `consumer_properties`: off the webhook →
    /// visible path, and most of a process's consumers.
    pub follower_properties: BTreeMap<String, String>,
    /// How long `publish` waits for every delivery report before failing with a timeout
    /// (transient). Also librdkafka's `message.timeout.ms` unless set explicitly.
    pub publish_timeout: Duration,
    /// Timeout of metadata, watermark, topic-creation and offset-commit requests.
    pub request_timeout: Duration,
    /// Replication factor of created topics; `-1` uses the broker's `default.replication.factor`.
    pub replication_factor: i32,
}

impl KafkaBusConfig {
    /// Defaults for `brokers`: client id `dealflow`, 10 s publish and request timeouts, the
    /// broker's default replication factor, and `broker.address.family=v4` (librdkafka may
    /// otherwise try `::1` for `localhost`; set it to `any` in `properties` for IPv6 clusters).
    pub fn new(brokers: impl Into<String>) -> Self {
        let properties = [("broker.address.family", "v4")];
        let producer_properties = [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // `publish` awaits every record, so a long wait to fill batches only adds latency;
            // but one millisecond lets the records of concurrent webhooks share a produce
            // request (fewer, fuller requests for the broker): ingest on nisshi, interleaved
            // against 0, 2 and 5 ms, went from 0.17× to 0.26× a bare handler at 64 connections
            // and 0.23× to 0.30× at 256 (5 ms: 0.12× / 0.35×; BENCHMARKS.md, 2026-12-04).
            ("linger.ms", "1"),
            // Same key → same partition as the Java client, so other producers agree.
            ("partitioner", "murmur2_random"),
            // Topics are created by `ensure_topics` only: a misspelt topic must not appear.
            ("allow.auto.create.topics", "false"),
        ];
        let consumer_properties = [
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            // A member that dies without leaving (kill -9, a lost node) holds its partitions
            // until its session expires; librdkafka's 45 s default would stop that work for
            // most of a minute (DESIGN §7.6 asks for 15 s). Heartbeats come from librdkafka's
            // own thread, so a busy poll loop does not expire a live member.
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1500"),
            // How long a fetch may wait at the broker for records. A broker that answers only
            // at the deadline (nisshi does, with records waiting) adds up to this to every hop;
            // 50 ms instead of librdkafka's 500 took the split layout's median webhook →
            // visible from ~800 to ~490 ms (BENCHMARKS.md, 2026-12-04), for 20 fetches a second
            // per idle consumer.
            ("fetch.wait.max.ms", "50"),
        ];
        // A process follows several settings topics, each with a consumer of its own that
        // fetches every `fetch.wait.max.ms` while idle: at 50 ms the split layout's followers
        // alone kept nisshi at 0.21–0.23 cores with no traffic (BENCHMARKS.md, 2026-12-05). A
        // settings change then reaches a follower up to 250 ms later on a broker that answers
        // at the deadline; a Kafka broker answers as soon as records arrive.
        let follower_properties = [("fetch.wait.max.ms", "250")];
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        Self {
            brokers: brokers.into(),
            client_id: "dealflow".to_owned(),
            properties: map(&properties),
            producer_properties: map(&producer_properties),
            consumer_properties: map(&consumer_properties),
            follower_properties: map(&follower_properties),
            publish_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            replication_factor: -1,
        }
    }

    /// Rejects settings that would break the delivery guarantees, or are set elsewhere.
    ///
    /// Fixed: `enable.idempotence=true`, `acks=all` (or `-1`), `enable.auto.commit=false`,
    /// `enable.auto.offset.store=false`; `bootstrap.servers`, `client.id` and `group.id` come
    /// from their own fields or calls, not from the property maps.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.brokers.trim().is_empty() {
            return Err(BusError::Config("no Kafka brokers configured".to_owned()));
        }
        if self.publish_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(BusError::Config(
                "Kafka publish and request timeouts must be positive".to_owned(),
            ));
        }
        if self.replication_factor == 0 || self.replication_factor < -1 {
            return Err(BusError::Config(format!(
                "Kafka replication factor must be positive or -1, not {}",
                self.replication_factor
            )));
        }
        let all = [
            &self.properties,
            &self.producer_properties,
            &self.consumer_properties,
            &self.follower_properties,
        ];
        for reserved in ["bootstrap.servers", "client.id", "group.id"] {
            if all.iter().any(|m| m.contains_key(reserved)) {
                return Err(BusError::Config(format!(
                    "librdkafka property {reserved} is set from its own setting, not as a property"
                )));
            }
        }
        // Checked in every map that reaches the client, so a weakening override is reported
        // even where a later map happens to restore the value.
        let checks: [(&[&Properties], &[Fixed]); 2] = [
            (
                &[&self.properties, &self.producer_properties],
                PRODUCER_FIXED,
            ),
            (
                &[
                    &self.properties,
                    &self.consumer_properties,
                    &self.follower_properties,
                ],
                CONSUMER_FIXED,
            ),
        ];
        for (maps, rules) in checks {
            for &(key, allowed) in rules {
                for value in maps.iter().filter_map(|m| m.get(key)) {
                    if !allowed.contains(&value.as_str()) {
                        return Err(BusError::Config(format!(
                            "librdkafka property {key}={value} would break at-least-once delivery; it must be {}",
                            allowed.join(" or ")
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds the operator's properties (`DEALFLOW_KAFKA_PROPERTIES`) for every client: they win
    /// over the built-in producer and consumer defaults, except the properties that carry the
    /// delivery guarantees (those are checked by [`KafkaBusConfig::validate`]).
    pub fn with_user_properties(mut self, user: &BTreeMap<String, String>) -> Self {
        let fixed = |table: &[Fixed], key: &str| table.iter().any(|(k, _)| *k == key);
        for key in user.keys() {
            if !fixed(PRODUCER_FIXED, key) {
                self.producer_properties.remove(key);
            }
            if !fixed(CONSUMER_FIXED, key) {
                self.consumer_properties.remove(key);
                self.follower_properties.remove(key);
            }
        }
        self.properties.extend(user.clone());
        self
    }

    /// The producer's librdkafka configuration.
    pub(super) fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        let timeout_ms = self.publish_timeout.as_millis().to_string();
        config.set("message.timeout.ms", timeout_ms);
        apply(&mut config, &self.properties);
        apply(&mut config, &self.producer_properties);
        // The guarantees, whatever the maps said (validate() reports conflicts first).
        config.set("enable.idempotence", "true");
        config
    }

    /// A consumer's librdkafka configuration, in `group` when given.
    pub(super) fn consumer(&self, group: Option<&str>) -> ClientConfig {
        self.consumer_paced(group, Pace::Live)
    }

    /// A consumer's librdkafka configuration at `pace`, in `group` when given.
    pub(super) fn consumer_paced(&self, group: Option<&str>, pace: Pace) -> ClientConfig {
        let mut config = self.base();
        apply(&mut config, &self.properties);
        apply(&mut config, &self.consumer_properties);
        if pace == Pace::Follower {
            apply(&mut config, &self.follower_properties);
        }
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        if let Some(group) = group {
            config.set("group.id", group);
        }
        config
    }

    /// The admin client's librdkafka configuration.
    pub(super) fn admin(&self) -> ClientConfig {
        let mut config = self.base();
        apply(&mut config, &self.properties);
        config
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        config
    }
}

fn apply(config: &mut ClientConfig, properties: &BTreeMap<String, String>) {
    for (key, value) in properties {
        config.set(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_properties_win_over_defaults_but_not_over_guarantees() {
        let user = BTreeMap::from([
            ("session.timeout.ms".to_owned(), "20000".to_owned()),
            ("linger.ms".to_owned(), "5".to_owned()),
        ]);
        let config = KafkaBusConfig::new("b:9092").with_user_properties(&user);
        let consumer = config.consumer(Some("g"));
        assert_eq!(consumer.get("session.timeout.ms"), Some("20000"));
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.producer().get("linger.ms"), Some("5"));
        let defaults = KafkaBusConfig::new("b:9092").consumer(Some("g"));
        assert_eq!(defaults.get("session.timeout.ms"), Some("6000"));
        assert_eq!(defaults.get("heartbeat.interval.ms"), Some("1500"));
    }

    #[test]
    fn followers_fetch_less_eagerly_unless_the_operator_says_otherwise() {
        let defaults = KafkaBusConfig::new("b:9092");
        let live = defaults.consumer(Some("g"));
        let follower = defaults.consumer_paced(Some("g"), Pace::Follower);
        assert_eq!(live.get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(follower.get("fetch.wait.max.ms"), Some("250"));
        assert_eq!(follower.get("session.timeout.ms"), Some("6000"));
        assert_eq!(follower.get("enable.auto.commit"), Some("false"));

        let user = BTreeMap::from([("fetch.wait.max.ms".to_owned(), "100".to_owned())]);
        let config = KafkaBusConfig::new("b:9092").with_user_properties(&user);
        assert_eq!(
            config.consumer(Some("g")).get("fetch.wait.max.ms"),
            Some("100")
        );
        assert_eq!(
            config
                .consumer_paced(Some("g"), Pace::Follower)
                .get("fetch.wait.max.ms"),
            Some("100")
        );
    }

    #[test]
    fn defaults_are_valid_and_carry_the_guarantees() {
        let config = KafkaBusConfig::new("127.0.0.1:9092");
        config.validate().unwrap();
        let producer = config.producer();
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("message.timeout.ms"), Some("10000"));
        assert_eq!(producer.get("broker.address.family"), Some("v4"));
        let consumer = config.consumer(Some("g"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("acks"), None);
    }

    #[test]
    fn overrides_apply_but_guarantees_cannot_be_weakened() {
        let mut config = KafkaBusConfig::new("b:9092");
        config
            .properties
            .insert("broker.address.family".into(), "any".into());
        config.validate().unwrap();
        assert_eq!(config.admin().get("broker.address.family"), Some("any"));

        config.producer_properties.insert("acks".into(), "1".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("acks=1"), "{err}");

        let mut config = KafkaBusConfig::new("b:9092");
        config
            .properties
            .insert("enable.auto.offset.store".into(), "true".into());
        assert!(config.validate().is_err());

        let mut config = KafkaBusConfig::new("b:9092");
        config
            .consumer_properties
            .insert("group.id".into(), "x".into());
        assert!(config.validate().is_err());

        let mut config = KafkaBusConfig::new("b:9092");
        config
            .follower_properties
            .insert("enable.auto.commit".into(), "true".into());
        assert!(config.validate().is_err());

        assert!(KafkaBusConfig::new(" ").validate().is_err());
    }
}
