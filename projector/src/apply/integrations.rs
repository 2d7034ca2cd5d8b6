//! Integration-level events: settings (with the marker re-derivation), removal, health and
//! webhook activity.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Conn;
use dealflow_shared::events::{
    ChangeSource, IntegrationConfigured, IntegrationHealthChanged, IntegrationId, OrderChanged,
};

use crate::derive::{DEFAULT_FUNNEL_ID, Mapping, Markers, Sums};
use crate::store::values::{Columns as _, flag, micros};
use crate::store::{Dialect, Sql, StoreError};

/// Tables whose rows belong to one integration, with the column naming it.
const PER_INTEGRATION: &[(&str, &str)] = &[
    ("integrations", "id"),
    ("integration_health", "integration_id"),
    ("integration_activity", "integration_id"),
    ("deals", "integration_id"),
    ("stage_history", "integration_id"),
    ("stages", "integration_id"),
    ("site_stages", "integration_id"),
    ("sites", "integration_id"),
    ("contacts", "integration_id"),
    ("managers", "integration_id"),
    ("sync_states", "integration_id"),
    ("order_traces", "integration_id"),
    ("dead_letters", "integration_id"),
];

/// Which of `ids` were removed by their owner (their events are ignored from then on).
pub(crate) async fn removed_among(
    conn: &mut Conn<'_>,
    ids: &BTreeSet<IntegrationId>,
) -> Result<BTreeSet<IntegrationId>, StoreError> {
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut sql = Sql::new("SELECT id FROM removed_integrations WHERE id IN ");
    sql.bind_list(ids.iter().map(ToString::to_string));
    let rows = sql
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("reading removed integrations"))?;
    rows.iter()
        .map(|row| {
            let id = row.text("id")?;
            id.parse().map_err(|_| StoreError::Corrupt {
                what: "an integration id",
                detail: id,
            })
        })
        .collect()
}

/// Records the removal and deletes every row of the integration.
pub(crate) async fn remove(
    conn: &mut Conn<'_>,
    id: IntegrationId,
    removed_at: i64,
) -> Result<(), StoreError> {
    let mut sql = Sql::new("INSERT INTO removed_integrations (id, removed_at) VALUES (");
    sql.bind(id.to_string())
        .push(", ")
        .bind(removed_at)
        .push(") ON CONFLICT (id) DO NOTHING");
    sql.execute(&mut *conn)
        .await
        .map_err(StoreError::query("recording a removal"))?;
    for (table, column) in PER_INTEGRATION {
        let mut sql = Sql::new(&format!("DELETE FROM {table} WHERE {column} = "));
        sql.bind(id.to_string());
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("deleting a removed integration"))?;
    }
    Ok(())
}

/// What applying settings changed.
#[derive(Debug, Default)]
pub(crate) struct Configured {
    /// Integrations whose deals were re-derived for new markers (here, in one statement each).
    pub rederived: usize,
    /// Integrations whose stage mapping changed: every deal's outcome, closure and exclusion
    /// follow from its stage history, which the deals step re-derives.
    pub remapped: BTreeSet<IntegrationId>,
}

/// Applies the newest settings of each integration (by `updated_at`), and re-derives every
/// existing deal of an integration whose markers changed, in this transaction, from the stored
/// facts; says which integrations' stage mappings changed.
pub(crate) async fn configure(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    configs: BTreeMap<IntegrationId, &IntegrationConfigured>,
) -> Result<Configured, StoreError> {
    let mut out = Configured::default();
    if configs.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new(
        "SELECT id, default_funnel, include_delivery_cost, revenue, stage_mapping, updated_at \
         FROM integrations WHERE id IN ",
    );
    sql.bind_list(configs.keys().map(ToString::to_string));
    sql.push(" ORDER BY id").push(dialect.for_update());
    let rows = sql
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("reading integration settings"))?;
    let mut existing = BTreeMap::new();
    for row in &rows {
        existing.insert(
            row.text("id")?,
            (
                crate::read::integrations::stored_markers(row)?,
                crate::read::integrations::stored_mapping(row)?,
                row.int("updated_at")?,
            ),
        );
    }

    let mut rederive = Vec::new();
    for (id, config) in configs {
        let key = id.to_string();
        let markers = Markers {
            default_funnel: config.default_funnel,
            include_delivery_cost: config.include_delivery_cost,
            revenue: config.revenue,
        };
        let mapping = Mapping(config.stage_mapping.clone());
        match existing.get(&key) {
            // An older (or the same) version: nothing to do.
            Some((_, _, updated_at)) if *updated_at > micros(config.updated_at) => continue,
            Some((old, old_mapping, _)) => {
                if *old != markers {
                    rederive.push((key.clone(), markers));
                }
                if *old_mapping != mapping {
                    out.remapped.insert(id);
                }
            }
            // Deals that arrived before their settings were derived with the defaults.
            None => {
                rederive.push((key.clone(), markers));
                if mapping != Mapping::default() {
                    out.remapped.insert(id);
                }
            }
        }
        upsert(conn, &key, config).await?;
    }
    for (id, markers) in &rederive {
        rederive_deals(conn, id, *markers).await?;
    }
    out.rederived = rederive.len();
    Ok(out)
}

async fn upsert(
    conn: &mut Conn<'_>,
    id: &str,
    c: &IntegrationConfigured,
) -> Result<(), StoreError> {
    let mut sql = Sql::new(
        "INSERT INTO integrations (id, tenant_id, crm_url, api_key_hint, active, default_funnel, \
         include_delivery_cost, revenue, stage_mapping, backfill_days, webhook_token_generation, \
         created_at, updated_at) VALUES (",
    );
    sql.bind(id.to_owned())
        .push(", ")
        .bind(c.tenant_id.to_string())
        .push(", ")
        .bind(c.crm_url.clone())
        .push(", ")
        .bind(c.api_key_hint.clone())
        .push(", ")
        .bind(flag(c.active))
        .push(", ")
        .bind(flag(c.default_funnel))
        .push(", ")
        .bind(flag(c.include_delivery_cost))
        .push(", ")
        .bind(c.revenue.as_str().to_owned())
        .push(", ")
        .bind(serde_json::to_string(&c.stage_mapping).unwrap_or_else(|_| "{}".to_owned()))
        .push(", ")
        .bind(i64::from(c.backfill_days))
        .push(", ")
        .bind(i64::from(c.webhook_token_generation))
        .push(", ")
        .bind(micros(c.created_at))
        .push(", ")
        .bind(micros(c.updated_at))
        .push(
            ") ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, \
             crm_url = excluded.crm_url, \
             api_key_hint = excluded.api_key_hint, active = excluded.active, \
             default_funnel = excluded.default_funnel, \
             include_delivery_cost = excluded.include_delivery_cost, \
             revenue = excluded.revenue, stage_mapping = excluded.stage_mapping, \
             backfill_days = excluded.backfill_days, \
             webhook_token_generation = excluded.webhook_token_generation, \
             created_at = excluded.created_at, updated_at = excluded.updated_at \
             WHERE excluded.updated_at >= integrations.updated_at",
        );
    sql.execute(&mut *conn)
        .await
        .map_err(StoreError::query("writing integration settings"))?;
    Ok(())
}

/// The marker policy of [`Markers`] as one set-based statement over the stored facts, so a
/// million deals re-derive without leaving the database. Every sum the amount may be was
/// computed from the same facts when they were stored ([`Sums`]), so both paths give the same
/// amount; rows stored before a sum existed fall back as [`Facts::sums`](super::deal_row)
/// reads them.
async fn rederive_deals(conn: &mut Conn<'_>, id: &str, markers: Markers) -> Result<(), StoreError> {
    let amount = markers.amount(Sums {
        total: "total_sum",
        net: "net_sum",
        margin: "COALESCE(margin_sum, total_sum)",
        margin_net: "COALESCE(margin_net_sum, net_sum)",
        paid: "COALESCE(paid_sum, '0')",
    });
    let mut sql = Sql::new("UPDATE deals SET funnel_id = CASE WHEN site IS NULL THEN NULL WHEN ");
    sql.bind(flag(markers.default_funnel))
        .push(" = 1 THEN ")
        .bind(DEFAULT_FUNNEL_ID.to_owned())
        .push(&format!(
            " ELSE site END, amount = CASE WHEN total_sum IS NULL THEN NULL ELSE {amount} END \
             WHERE integration_id = "
        ))
        .bind(id.to_owned());
    sql.execute(&mut *conn)
        .await
        .map_err(StoreError::query("re-deriving deals after a marker change"))?;
    Ok(())
}

/// The markers and stage mapping of each integration (defaults for those not configured yet),
/// read-locked so a concurrent settings change waits for this transaction or this one sees its
/// result.
pub(crate) async fn markers(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    ids: &BTreeSet<IntegrationId>,
) -> Result<BTreeMap<IntegrationId, (Markers, Mapping)>, StoreError> {
    let mut out: BTreeMap<IntegrationId, (Markers, Mapping)> =
        ids.iter().map(|id| (*id, Default::default())).collect();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut sql = Sql::new(
        "SELECT id, default_funnel, include_delivery_cost, revenue, stage_mapping \
         FROM integrations WHERE id IN ",
    );
    sql.bind_list(ids.iter().map(ToString::to_string));
    sql.push(" ORDER BY id").push(dialect.for_share());
    for row in sql
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("reading markers"))?
    {
        let id = row.text("id")?;
        if let Ok(id) = id.parse::<IntegrationId>() {
            out.insert(
                id,
                (
                    crate::read::integrations::stored_markers(&row)?,
                    crate::read::integrations::stored_mapping(&row)?,
                ),
            );
        }
    }
    Ok(out)
}

/// The newest health of each integration (by `checked_at`).
pub(crate) async fn health(
    conn: &mut Conn<'_>,
    newest: BTreeMap<IntegrationId, &IntegrationHealthChanged>,
) -> Result<(), StoreError> {
    for (id, h) in newest {
        let status = serde_json::to_value(h.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "pending".to_owned());
        let mut sql = Sql::new(
            "INSERT INTO integration_health (integration_id, status, message, checked_at) VALUES (",
        );
        sql.bind(id.to_string())
            .push(", ")
            .bind(status)
            .push(", ")
            .bind(h.message.clone())
            .push(", ")
            .bind(micros(h.checked_at))
            .push(
                ") ON CONFLICT (integration_id) DO UPDATE SET status = excluded.status, \
                 message = excluded.message, checked_at = excluded.checked_at \
                 WHERE excluded.checked_at >= integration_health.checked_at",
            );
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing integration health"))?;
    }
    Ok(())
}

/// The latest webhook per integration (only webhook-sourced changes count).
pub(crate) fn latest_webhooks<'a>(
    changes: impl IntoIterator<Item = (IntegrationId, &'a OrderChanged)>,
) -> BTreeMap<IntegrationId, i64> {
    let mut out: BTreeMap<IntegrationId, i64> = BTreeMap::new();
    for (id, change) in changes {
        if change.source == ChangeSource::Webhook {
            let at = micros(change.received_at);
            let entry = out.entry(id).or_insert(at);
            *entry = (*entry).max(at);
        }
    }
    out
}

/// Moves `last_webhook_at` forward (never back).
pub(crate) async fn webhooks(
    conn: &mut Conn<'_>,
    latest: BTreeMap<IntegrationId, i64>,
) -> Result<(), StoreError> {
    for (id, at) in latest {
        let mut sql =
            Sql::new("INSERT INTO integration_activity (integration_id, last_webhook_at) VALUES (");
        sql.bind(id.to_string()).push(", ").bind(at).push(
            ") ON CONFLICT (integration_id) DO UPDATE SET last_webhook_at = \
             excluded.last_webhook_at WHERE integration_activity.last_webhook_at IS NULL \
             OR excluded.last_webhook_at > integration_activity.last_webhook_at",
        );
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing webhook activity"))?;
    }
    Ok(())
}

/// `last_reconciled_at` per integration from its newest sync state (never moves backwards).
pub(crate) async fn reconciled(
    conn: &mut Conn<'_>,
    latest: BTreeMap<IntegrationId, i64>,
) -> Result<(), StoreError> {
    for (id, at) in latest {
        let mut sql = Sql::new(
            "INSERT INTO integration_activity (integration_id, last_reconciled_at) VALUES (",
        );
        sql.bind(id.to_string()).push(", ").bind(at).push(
            ") ON CONFLICT (integration_id) DO UPDATE SET last_reconciled_at = \
             excluded.last_reconciled_at WHERE integration_activity.last_reconciled_at IS NULL \
             OR excluded.last_reconciled_at > integration_activity.last_reconciled_at",
        );
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing reconciliation activity"))?;
    }
    Ok(())
}
