//! Records made invalid on purpose, and the dead-letter topic that must end up holding exactly
//! them. The poison goes straight into the `order-changed` topic (a producer with a bug, or
//! bytes damaged in transit): bytes that are no event envelope, and a well-formed envelope of
//! the wrong event type. The enricher must dead-letter each with its original bytes and keep
//! going. Everything the simulator serves is valid, so nothing else may be dead-lettered.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::Utc;
use dealflow_shared::bus::{HEADER_STAGE, OutRecord};
use dealflow_shared::config::Config;
use dealflow_shared::events::{DealDeleted, Envelope, Event, IntegrationId};
use dealflow_shared::topics::Topics;
use dealflow_shared::wiring;

/// The poison payloads for one deployment (`tag` keeps them distinct per run and deployment).
pub fn payloads(tag: &str, integration: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let id: IntegrationId = integration
        .parse()
        .with_context(|| format!("integration id {integration}"))?;
    let wrong_type = Envelope::new(
        id,
        Event::DealDeleted(DealDeleted {
            order_id: 1,
            merged_into: None,
            observed_at: Utc::now(),
        }),
    );
    Ok(vec![
        format!("{{not an envelope: fault suite {tag} #1").into_bytes(),
        format!("fault suite {tag} #2: \u{0}\u{1} binary junk").into_bytes(),
        wrong_type.encode(),
    ])
}

/// Publishes the poison into `order-changed`, keyed by the integration (its partition).
pub async fn inject(
    config: &Config,
    integration: &str,
    payloads: &[Vec<u8>],
) -> anyhow::Result<()> {
    let bus = wiring::open_bus(config, "dealflow-fault-poison")
        .await
        .context("opening the bus to inject poison")?;
    let topic = Topics::new(config.topic_prefix.clone()).order_changed();
    let records = payloads
        .iter()
        .map(|p| OutRecord::new(integration, p.clone()))
        .collect();
    bus.publish(&topic, records)
        .await
        .context("publishing the poison")?;
    Ok(())
}

/// Every payload in the dead-letter topic, with the stage header of each of its letters
/// (`enricher.decode`, `projector.decode`, …): each letter once, however many copies crashes
/// before an offset commit left (DESIGN §6, `distinct_letters`).
pub async fn dead_letters(config: &Config) -> anyhow::Result<BTreeMap<Vec<u8>, Vec<String>>> {
    let topic = Topics::new(config.topic_prefix.clone()).dead_letter();
    let mut found: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    let copies = crate::topics::read_all(config, &topic).await?;
    for record in dealflow_shared::bus::distinct_letters(copies) {
        let stage = record
            .header(HEADER_STAGE)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_else(|| "no stage header".to_owned());
        found.entry(record.payload).or_default().push(stage);
    }
    Ok(found)
}
