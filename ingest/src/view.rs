//! The integration JSON of DESIGN §4, as ingest knows it.
//!
//! ingest knows settings only; health, counters and timestamps of activity come from the
//! projector's read model, so here they are `pending`, `0` and `null`.

use dealflow_shared::events::{IntegrationConfigured, IntegrationId};
use dealflow_shared::views::{Health, Integration};

use crate::state::AppState;

/// The public view of one integration; never contains the key or its ciphertext.
pub fn integration_view(
    state: &AppState,
    id: IntegrationId,
    config: &IntegrationConfigured,
) -> Integration {
    let token = state
        .keys
        .webhook_token(id, config.webhook_token_generation);
    Integration {
        id,
        tenant_id: config.tenant_id.clone(),
        crm_url: config.crm_url.clone(),
        api_key_hint: config.api_key_hint.clone(),
        webhook_url: state.webhook_url(&token),
        active: config.active,
        default_funnel: config.default_funnel,
        include_delivery_cost: config.include_delivery_cost,
        revenue: config.revenue,
        backfill_days: config.backfill_days,
        created_at: config.created_at,
        health: Health::pending(),
        last_webhook_at: None,
        last_reconciled_at: None,
        deals_count: 0,
    }
}

/// `…` and the key's last four characters.
pub fn key_hint(api_key: &str) -> String {
    let chars: Vec<char> = api_key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_shows_only_the_last_four() {
        assert_eq!(key_hint("abcdefgh1234"), "…1234");
        assert_eq!(key_hint("ab"), "…ab");
    }
}
