//! Dead letters: records that can never be processed, moved aside with where they came from.
//!
//! [`DeadLetters::send`] republishes the original bytes, under the original key, to the
//! dead-letter topic with the headers named by the `HEADER_*` constants, so an operator can
//! find, fix and replay them. A sliding-window cap turns a flood of dead letters (a bad deploy
//! that rejects everything) into a fatal error instead of draining the source topics.
//!
//! **Once per stage.** A consumer that crashes after dead-lettering a record but before its
//! offset commit meets the record again and dead-letters it again; the bus cannot make that
//! second publish disappear. So every letter carries a deterministic identity,
//! `HEADER_LETTER_ID` = source topic / partition / offset / stage, and readers of the
//! dead-letter topic count a letter once per identity ([`distinct_letters`]): one letter per
//! record and rejecting stage, whatever the crashes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{BusError, Delivered, EventBus, OutRecord, Position};

/// Header: the topic the record was read from.
pub const HEADER_SOURCE_TOPIC: &str = "source_topic";
/// Header: its partition, as decimal text.
pub const HEADER_SOURCE_PARTITION: &str = "source_partition";
/// Header: its offset, as decimal text.
pub const HEADER_SOURCE_OFFSET: &str = "source_offset";
/// Header: the processing stage that gave up on it (e.g. `enricher.map`).
pub const HEADER_STAGE: &str = "stage";
/// Header: why, as UTF-8 text (truncated to `MAX_ERROR_BYTES`).
pub const HEADER_ERROR: &str = "error";
/// Header: the letter's identity, `<source topic>/<partition>/<offset>/<stage>`: the same for
/// every copy a redelivery makes, different for every record and stage.
pub const HEADER_LETTER_ID: &str = "dead_letter_id";
/// Header: when the record was given up on (RFC 3339, UTC), for the per-integration list and
/// the order's trace; letters written before it existed have none.
pub const HEADER_AT: &str = "dead_lettered_at";

/// The id a letter has in the API (`GET …/dead-letters`, `POST …/dead-letters/{id}/retry`):
/// 16 hex digits of a SHA-256 of its identity header, the same for every copy, safe in a URL
/// path; a letter without the header is named by its own place on the dead-letter topic.
pub fn public_id(letter: &Delivered) -> String {
    use sha2::Digest as _;
    match letter.header(HEADER_LETTER_ID) {
        Some(identity) => {
            let digest = sha2::Sha256::digest(identity);
            digest[..8].iter().map(|b| format!("{b:02x}")).collect()
        }
        None => format!("p{}o{}", letter.partition, letter.offset),
    }
}

/// The identity of the letter `stage` writes for the record at `topic`/`partition`/`offset`.
pub fn letter_id(topic: &str, partition: i32, offset: i64, stage: &str) -> String {
    format!("{topic}/{partition}/{offset}/{stage}")
}

/// The letters of `records` (read from the dead-letter topic), each identity once (the first
/// copy); letters without the identity header (written before it existed) are all kept.
pub fn distinct_letters(records: Vec<Delivered>) -> Vec<Delivered> {
    let mut seen = std::collections::HashSet::new();
    records
        .into_iter()
        .filter(|record| match record.header(HEADER_LETTER_ID) {
            Some(id) => seen.insert(id.to_vec()),
            None => true,
        })
        .collect()
}

/// Longest `error` header kept; longer reasons are cut at a character boundary.
const MAX_ERROR_BYTES: usize = 4096;

/// At most `max` dead letters within any sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterCap {
    /// Dead letters allowed within the window.
    pub max: usize,
    /// The sliding window.
    pub window: Duration,
}

impl Default for DeadLetterCap {
    /// 100 per 10 minutes: plenty for the odd poison order, a halt for a systematic failure.
    fn default() -> Self {
        Self {
            max: 100,
            window: Duration::from_secs(600),
        }
    }
}

/// Publishes dead letters to one topic, within a cap.
#[derive(Debug)]
pub struct DeadLetters {
    bus: Arc<dyn EventBus>,
    topic: String,
    cap: DeadLetterCap,
    /// When recent dead letters were sent, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl DeadLetters {
    /// Dead letters go to `topic` (which must exist) on `bus`.
    pub fn new(bus: Arc<dyn EventBus>, topic: impl Into<String>, cap: DeadLetterCap) -> Self {
        Self {
            bus,
            topic: topic.into(),
            cap,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes `record` to the dead-letter topic and waits for the durable ack; the caller
    /// may then store its offset. Fails with [`BusError::DeadLetterCapReached`] (fatal, nothing
    /// published) once the cap is reached.
    #[tracing::instrument(
        skip_all,
        fields(topic = %record.topic, partition = record.partition, offset = record.offset, stage = %stage),
        err
    )]
    pub async fn send(
        &self,
        record: &Delivered,
        stage: &str,
        reason: &str,
    ) -> Result<Position, BusError> {
        self.check_cap()?;
        let letter = OutRecord {
            key: record.key.clone().unwrap_or_default(),
            payload: record.payload.clone(),
            headers: vec![
                (
                    HEADER_SOURCE_TOPIC.to_owned(),
                    record.topic.clone().into_bytes(),
                ),
                (
                    HEADER_SOURCE_PARTITION.to_owned(),
                    record.partition.to_string().into_bytes(),
                ),
                (
                    HEADER_SOURCE_OFFSET.to_owned(),
                    record.offset.to_string().into_bytes(),
                ),
                (HEADER_STAGE.to_owned(), stage.as_bytes().to_vec()),
                (
                    HEADER_LETTER_ID.to_owned(),
                    letter_id(&record.topic, record.partition, record.offset, stage).into_bytes(),
                ),
                (
                    HEADER_ERROR.to_owned(),
                    truncate(reason, MAX_ERROR_BYTES).as_bytes().to_vec(),
                ),
                (
                    HEADER_AT.to_owned(),
                    chrono::Utc::now().to_rfc3339().into_bytes(),
                ),
            ],
        };
        let position = self
            .bus
            .publish(&self.topic, vec![letter])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| BusError::fatal_msg("publishing a dead letter returned no position"))?;
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Instant::now());
        // The one line an operator reads for it: which integration and order, at which stage,
        // and why (the span adds the source topic, partition and offset).
        let about = LetterAbout::of(record);
        tracing::warn!(
            integration = about.integration.as_deref().unwrap_or("unknown"),
            order_id = about.order_id,
            stage,
            reason,
            "record dead-lettered: {}",
            about.describe(stage, reason)
        );
        Ok(position)
    }

    /// Fails when the window already holds `max` dead letters.
    fn check_cap(&self) -> Result<(), BusError> {
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.cap.window)
        {
            sent.pop_front();
        }
        if sent.len() >= self.cap.max {
            return Err(BusError::DeadLetterCapReached {
                count: sent.len(),
                window: self.cap.window,
            });
        }
        Ok(())
    }
}

/// What a dead letter is about, as far as its bytes tell: the integration (the envelope's, else
/// the record key) and the order (an order event's id, a RetailCRM order's `id`, or a history
/// record's `order.id`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LetterAbout {
    /// The integration id, as text (a key that is not an id stays as it is).
    pub integration: Option<String>,
    /// The order, when the bytes name one.
    pub order_id: Option<u64>,
}

impl LetterAbout {
    /// What the original bytes of `record` (a letter's payload) are about.
    pub fn of(record: &Delivered) -> Self {
        use crate::events::{Envelope, Event};
        if let Ok(envelope) = Envelope::decode(&record.payload) {
            let order_id = match &envelope.event {
                Event::OrderChanged(e) => Some(e.order_id),
                Event::DealUpserted(e) => Some(e.order_id),
                Event::DealDeleted(e) => Some(e.order_id),
                Event::DealStagesRecorded(e) => Some(e.order_id),
                _ => None,
            };
            return Self {
                integration: Some(envelope.integration_id.to_string()),
                order_id,
            };
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(&record.payload).ok();
        let order_id = json.as_ref().and_then(|v| {
            v.get("order")
                .and_then(|o| o.get("id"))
                .or_else(|| v.get("order_id"))
                .or_else(|| v.get("id"))
                .and_then(serde_json::Value::as_u64)
        });
        Self {
            integration: record.key.clone().filter(|k| !k.is_empty()),
            order_id,
        }
    }

    fn describe(&self, stage: &str, reason: &str) -> String {
        let integration = self
            .integration
            .as_deref()
            .unwrap_or("an unknown integration");
        match self.order_id {
            Some(order) => format!("order {order} of {integration} failed at {stage}: {reason}"),
            None => format!("a record of {integration} failed at {stage}: {reason}"),
        }
    }
}

/// The longest prefix of `text` within `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ChangeSource, Envelope, Event, IntegrationId, OrderChanged};

    fn delivered(key: &str, payload: Vec<u8>) -> Delivered {
        Delivered {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            key: Some(key.into()),
            payload,
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_letter_id_is_stable_across_copies_and_safe_in_a_path() {
        let mut letter = delivered("i-1", b"{}".to_vec());
        assert_eq!(public_id(&letter), "p0o7");
        letter.headers.push((
            HEADER_LETTER_ID.to_owned(),
            letter_id("dealflow.order-changed", 1, 42, "enricher.map").into_bytes(),
        ));
        let id = public_id(&letter);
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        letter.offset = 99; // another copy of the same letter, further down the topic
        assert_eq!(public_id(&letter), id);
    }

    #[test]
    fn a_letter_names_its_integration_and_order() {
        let id = IntegrationId::new();
        let change = Envelope::new(
            id,
            Event::OrderChanged(OrderChanged {
                order_id: 48213,
                source: ChangeSource::Webhook,
                received_at: chrono::Utc::now(),
            }),
        );
        let about = LetterAbout::of(&delivered("shop.retailcrm.ru", change.encode()));
        assert_eq!(about.integration, Some(id.to_string()));
        assert_eq!(about.order_id, Some(48213));
        assert_eq!(
            about.describe("enricher.map", "bad totalSumm"),
            format!("order 48213 of {id} failed at enricher.map: bad totalSumm")
        );
        // A RetailCRM order of a load, a history record, and bytes that are nothing.
        let order = LetterAbout::of(&delivered("i-1", br#"{"id": 7, "number": "7A"}"#.to_vec()));
        assert_eq!(
            (order.integration.as_deref(), order.order_id),
            (Some("i-1"), Some(7))
        );
        let history = LetterAbout::of(&delivered(
            "i-1",
            br#"{"id": 99, "order": {"id": 5}}"#.to_vec(),
        ));
        assert_eq!(history.order_id, Some(5));
        // An order of a load page the enricher could not map.
        let loaded = LetterAbout::of(&delivered(
            "i-1",
            br#"{"order_id": 3, "load": "backfill", "page": 2}"#.to_vec(),
        ));
        assert_eq!(loaded.order_id, Some(3));
        let junk = LetterAbout::of(&delivered("", b"\xff junk".to_vec()));
        assert_eq!(junk, LetterAbout::default());
        assert!(junk.describe("s", "r").contains("unknown integration"));
    }

    #[test]
    fn truncate_keeps_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("абв", 3), "а");
        assert_eq!(truncate("абв", 4), "аб");
    }
}
