//! Integrations published straight to the `integrations` topic, as ingest's settings API
//! would have, for benches that start without a connect round trip.

use chrono::Utc;
use dealflow_shared::bus::{EventBus, OutRecord};
use dealflow_shared::events::{Envelope, Event, IntegrationConfigured, IntegrationId};
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::topics::Topics;
use secrecy::SecretString;

/// Where an integration points and with which key.
pub struct Seed<'a> {
    /// The secret key the bench's dealflow runs with (seals the API key).
    pub secret_key: &'a str,
    /// The RetailCRM account URL.
    pub crm_url: String,
    /// The account's API key, sealed before it is published.
    pub api_key: &'a str,
    /// The history cursor: the account's last id means "no catch-up".
    pub history_since_id: Option<u64>,
}

/// Publishes an active integration without backfill.
pub async fn publish_integration(
    bus: &dyn EventBus,
    topics: &Topics,
    id: IntegrationId,
    seed: Seed<'_>,
) -> anyhow::Result<()> {
    let keys = SecretKeys::derive(&SecretString::from(seed.secret_key.to_owned()));
    let now = Utc::now();
    let config = IntegrationConfigured {
        tenant_id: dealflow_shared::events::TenantId::default_tenant(),
        crm_url: seed.crm_url,
        api_key_sealed: keys.seal(id, &SecretString::from(seed.api_key.to_owned())),
        api_key_hint: "bench".into(),
        active: true,
        default_funnel: false,
        include_delivery_cost: true,
        revenue: dealflow_shared::events::Revenue::Total,
        stage_mapping: Default::default(),
        backfill_days: 0,
        webhook_token_generation: 0,
        history_since_id: seed.history_since_id,
        resync: None,
        created_at: now,
        updated_at: now,
    };
    let envelope = Envelope::new(id, Event::IntegrationConfigured(config));
    bus.publish(
        &topics.integrations(),
        vec![OutRecord::new(envelope.key(), envelope.encode())],
    )
    .await?;
    Ok(())
}

/// Connects a simulated account as of now (its history cursor at the account's last record,
/// so only later changes are reconciled): publishes a new integration and returns its id.
pub async fn connect_account(
    bus: &dyn EventBus,
    topics: &Topics,
    secret_key: &str,
    account: &dealflow_simulator::AccountHandle,
) -> anyhow::Result<IntegrationId> {
    let id = IntegrationId::new();
    let seed = Seed {
        secret_key,
        crm_url: account.url(),
        api_key: &account.api_key(),
        history_since_id: account.inspect(|s| s.history.last_id()),
    };
    publish_integration(bus, topics, id, seed).await?;
    Ok(id)
}

/// Waits until the `i`-th send of an open-loop load paced `step` apart from `started` is due;
/// counts it in `late` when it is over 100 ms behind (the load generator could not keep up).
pub async fn pace(
    started: tokio::time::Instant,
    step: std::time::Duration,
    i: usize,
    late: &mut usize,
) -> anyhow::Result<()> {
    let due = started + step * u32::try_from(i)?;
    let now = tokio::time::Instant::now();
    if due > now {
        tokio::time::sleep_until(due).await;
    } else if now - due > std::time::Duration::from_millis(100) {
        *late += 1;
    }
    Ok(())
}
