//! The newest sync state per integration (DESIGN §4 `GET …/sync`), kept as the event's JSON.

use std::collections::BTreeMap;

use crate::store::Conn;
use dealflow_shared::events::{IntegrationId, SyncStateChanged};

use crate::store::values::micros;
use crate::store::{Sql, StoreError};

/// Stores each integration's state unless a newer one (by `updated_at`) is already stored.
pub(super) async fn apply(
    conn: &mut Conn<'_>,
    states: BTreeMap<IntegrationId, &SyncStateChanged>,
) -> Result<(), StoreError> {
    if states.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("INSERT INTO sync_states (integration_id, state, updated_at) VALUES ");
    for (i, (id, state)) in states.iter().enumerate() {
        // Plain structs of strings, numbers and dates always serialise.
        let json = serde_json::to_string(state).expect("a sync state serialises");
        sql.row(i == 0, |r| {
            r.v(id.to_string()).v(json).v(micros(state.updated_at));
        });
    }
    sql.push(
        " ON CONFLICT (integration_id) DO UPDATE SET state = excluded.state, \
         updated_at = excluded.updated_at WHERE excluded.updated_at >= sync_states.updated_at",
    );
    sql.execute(&mut *conn)
        .await
        .map_err(StoreError::query("recording sync states"))?;
    Ok(())
}
