//! Rotating `DEALFLOW_SECRET_KEY`: API keys sealed with the previous secret are sealed again
//! under the current one, so the previous secret can be dropped without anyone entering their
//! RetailCRM key again (SECURITY.md, "Rotation").
//!
//! Runs once per start, after the registry has read the `integrations` topic to its end. Each
//! re-sealed key is published as a new `IntegrationConfigured` with nothing else changed but
//! `updated_at`; several ingest processes doing it at once only write equivalent versions.

use dealflow_shared::secrets::SealedWith;

use crate::api::{next_update, store};
use crate::state::AppState;

/// Re-seals every key that only the previous secret opens; returns how many were re-sealed.
/// A key that opens with neither secret is left alone (the enricher reports it).
pub(crate) async fn reseal_rotated_keys(state: &AppState) -> usize {
    let mut resealed = 0;
    for (id, mut config) in state.registry.list() {
        let Ok((key, SealedWith::Previous)) = state.keys.open_telling(id, &config.api_key_sealed)
        else {
            continue;
        };
        config.api_key_sealed = state.keys.seal(id, &key);
        config.updated_at = next_update(config.updated_at);
        match store(state, id, config).await {
            Ok(_) => {
                resealed += 1;
                tracing::info!(integration_id = %id, "API key sealed again under the new secret key");
            }
            Err(e) => tracing::warn!(
                integration_id = %id,
                error = ?e,
                "could not re-seal the API key under the new secret key; retried at the next start"
            ),
        }
    }
    resealed
}
