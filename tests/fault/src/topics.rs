//! Reading a whole topic from the suite (a fresh consumer group each time): the dead letters
//! at the end, and the `health` topic when the read API of a deployment lags behind it.

use std::time::Duration;

use anyhow::Context;
use dealflow_shared::bus::Delivered;
use dealflow_shared::config::Config;
use dealflow_shared::wiring;

/// Every record of `topic` up to its current end.
pub async fn read_all(config: &Config, topic: &str) -> anyhow::Result<Vec<Delivered>> {
    let bus = wiring::open_bus(config, "dealflow-fault-reader")
        .await
        .context("opening the bus")?;
    let total: i64 = bus
        .end_offsets(topic)
        .await?
        .iter()
        .map(|(_, end)| end)
        .sum();
    let mut records = Vec::new();
    if total == 0 {
        return Ok(records);
    }
    let group = format!(
        "dealflow-fault-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let mut consumer = bus.subscribe(&group, &[topic.to_owned()]).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (records.len() as i64) < total {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "read {} of {total} records of {topic} within 60s",
            records.len()
        );
        records.extend(consumer.poll(500, Duration::from_secs(2)).await?);
    }
    Ok(records)
}
