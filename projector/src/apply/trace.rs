//! Each order's sync log (DESIGN §4 `GET …/deals/{order_id}/trace`): what happened to the order
//! and when, built from the events that mention it, so a replay rebuilds it.
//!
//! | event | entry |
//! |---|---|
//! | `OrderChanged` webhook / history / refetch, retry | `webhook_accepted` / `history_seen` / `refetch_requested` |
//! | `DealStagesRecorded` | `history_seen` (the status records read) |
//! | `DealUpserted` | `fetched` (when the enricher read it), then `deal_upserted` (with the stage) |
//! | `DealDeleted` | `deal_deleted` |
//! | a dead letter | `dead_lettered` (with the stage and the reason) |
//!
//! An entry's key (its event's id and kind, or the letter's id) makes it once whatever the
//! redeliveries and orders entries of the same instant. How entries are stored and which are
//! kept: [`crate::store::traces`].

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Conn;
use dealflow_shared::events::{ChangeSource, Envelope, Event, IntegrationId};

use super::letters::Letter;
use super::write_back::WriteBack;
use crate::store::traces::{self, StoredEntry};
use crate::store::values::{Columns as _, id, micros};
use crate::store::{Dialect, MAX_BINDS, Sql, Store, StoreError, cached_chunks};

/// One entry of an order's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TraceEntry {
    pub integration_id: IntegrationId,
    pub order_id: u64,
    pub key: String,
    pub at: i64,
    pub kind: &'static str,
    pub source: String,
    pub detail: String,
}

/// The entries the events and letters of one batch add.
pub(super) fn entries(envelopes: &[&Envelope], letters: &[Letter]) -> Vec<TraceEntry> {
    let mut out = Vec::new();
    for e in envelopes {
        let mut add = |order_id: u64, n: u8, at, kind, source: &str, detail: String| {
            out.push(TraceEntry {
                integration_id: e.integration_id,
                order_id,
                key: format!("{}/{n}", e.id),
                at: micros(at),
                kind,
                source: source.to_owned(),
                detail,
            });
        };
        match &e.event {
            Event::OrderChanged(c) => {
                let (kind, source, detail) = match c.source {
                    ChangeSource::Webhook => (
                        "webhook_accepted",
                        "webhook",
                        "RetailCRM's trigger called the webhook",
                    ),
                    ChangeSource::History => (
                        "history_seen",
                        "history",
                        "reconciliation found a change in orders/history",
                    ),
                    ChangeSource::Refetch => {
                        ("refetch_requested", "refetch", "a re-fetch was asked for")
                    }
                    ChangeSource::Retry => (
                        "refetch_requested",
                        "retry",
                        "a dead letter of the order was retried",
                    ),
                    ChangeSource::Backfill | ChangeSource::Resync => (
                        "refetch_requested",
                        if c.source == ChangeSource::Backfill {
                            "backfill"
                        } else {
                            "resync"
                        },
                        "a historical load queued the order",
                    ),
                };
                add(
                    c.order_id,
                    0,
                    c.received_at,
                    kind,
                    source,
                    detail.to_owned(),
                );
            }
            Event::DealStagesRecorded(s) => {
                let codes: Vec<&str> = s.stages.iter().map(|s| s.stage_code.as_str()).collect();
                add(
                    s.order_id,
                    0,
                    s.observed_at,
                    "history_seen",
                    "history",
                    format!("status records read: {}", codes.join(" → ")),
                );
            }
            Event::DealUpserted(d) => {
                let currency = d.currency.as_deref().unwrap_or("");
                add(
                    d.order_id,
                    1,
                    d.observed_at,
                    "fetched",
                    "enricher",
                    format!(
                        "RetailCRM answered: status {}, total {} {currency}",
                        d.status_code, d.total_sum
                    )
                    .trim_end()
                    .to_owned(),
                );
                add(
                    d.order_id,
                    2,
                    e.occurred_at.max(d.observed_at),
                    "deal_upserted",
                    "enricher",
                    format!("stage {}", d.status_code),
                );
            }
            Event::DealDeleted(d) => add(
                d.order_id,
                0,
                d.observed_at,
                "deal_deleted",
                "enricher",
                match d.merged_into {
                    Some(into) => format!("merged into order {into}"),
                    None => "deleted in RetailCRM".to_owned(),
                },
            ),
            _ => {}
        }
    }
    for l in letters {
        if let Some(order_id) = l.order_id {
            out.push(TraceEntry {
                integration_id: l.integration_id,
                order_id,
                key: format!("dl/{}", l.letter_id),
                at: micros(l.at),
                kind: "dead_lettered",
                source: l.stage.clone(),
                detail: l.error.clone(),
            });
        }
    }
    out
}

/// Orders' trace rows read per statement (a power of two: the padded `IN` list stays within
/// the bound values' limits and its text repeats).
pub(super) const LOAD_CHUNK: usize = 4_096;

/// Records `entries`: the row of each order they touch is read (locked on PostgreSQL, where
/// another projector member may write the same order's trace from another partition), merged
/// in memory and written back if anything was new. A replay merges into its memo instead.
pub(super) async fn apply(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    entries: &[TraceEntry],
    memo: Option<&mut WriteBack>,
) -> Result<(), StoreError> {
    let mut touched: BTreeMap<IntegrationId, BTreeMap<i64, Vec<StoredEntry>>> = BTreeMap::new();
    for t in entries {
        touched
            .entry(t.integration_id)
            .or_default()
            .entry(id(t.order_id))
            .or_default()
            .push(StoredEntry::new(
                t.at,
                t.key.clone(),
                t.kind,
                &t.source,
                &t.detail,
            ));
    }
    match memo {
        Some(memo) => memo.merge_traces(conn, dialect, touched).await,
        None => store_entries(conn, dialect, touched).await,
    }
}

/// Merges `new` entries into the stored traces of their orders.
pub(crate) async fn store_entries(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    new: BTreeMap<IntegrationId, BTreeMap<i64, Vec<StoredEntry>>>,
) -> Result<(), StoreError> {
    for (integration, mut orders) in new {
        let ids: Vec<i64> = orders.keys().copied().collect();
        for chunk in ids.chunks(LOAD_CHUNK) {
            let pending: BTreeMap<i64, Vec<StoredEntry>> = chunk
                .iter()
                .filter_map(|o| orders.remove_entry(o))
                .collect();
            merge_and_write(conn, dialect, integration, pending).await?;
        }
    }
    Ok(())
}

/// The stored entries (as text) of `orders` (at most [`LOAD_CHUNK`]) that have a row, locked
/// on PostgreSQL.
pub(super) async fn read_rows(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    integration: IntegrationId,
    orders: &[i64],
) -> Result<BTreeMap<i64, String>, StoreError> {
    let mut sql = Sql::new("SELECT order_id, entries FROM order_traces WHERE integration_id = ");
    sql.bind(integration.to_string())
        .push(" AND order_id IN ")
        .bind_list(orders.iter().copied())
        .push(" ORDER BY order_id")
        .push(dialect.for_update());
    let mut stored = BTreeMap::new();
    for row in sql
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("reading order traces"))?
    {
        stored.insert(row.int("order_id")?, row.text("entries")?);
    }
    Ok(stored)
}

/// Merges new entries into the stored rows of some orders of one integration (at most
/// [`LOAD_CHUNK`]) and writes the rows that changed.
async fn merge_and_write(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    integration: IntegrationId,
    pending: BTreeMap<i64, Vec<StoredEntry>>,
) -> Result<(), StoreError> {
    let orders: Vec<i64> = pending.keys().copied().collect();
    let stored = read_rows(conn, dialect, integration, &orders).await?;
    let (mut updated, mut created) = (Vec::new(), Vec::new());
    for (order, new) in pending {
        let (mut entries, exists) = match stored.get(&order) {
            Some(text) => (traces::decode(text)?, true),
            None => (Vec::new(), false),
        };
        if traces::merge(&mut entries, new) {
            if exists {
                updated.push((order, entries))
            } else {
                created.push((order, entries))
            }
        }
    }
    write_rows(conn, dialect, integration, updated, created).await
}

/// Writes whole traces: `updated` over their stored rows, `created` as new rows. A created row
/// another member inserted meanwhile (from another partition) is merged into theirs instead.
pub(super) async fn write_rows(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    integration: IntegrationId,
    updated: Vec<(i64, Vec<StoredEntry>)>,
    created: Vec<(i64, Vec<StoredEntry>)>,
) -> Result<(), StoreError> {
    let encode = |rows: &[(i64, Vec<StoredEntry>)]| -> Vec<(i64, String)> {
        rows.iter()
            .map(|(order, entries)| (*order, traces::encode(entries)))
            .collect()
    };
    for chunk in cached_chunks(&encode(&updated), MAX_BINDS / 3) {
        write(
            conn,
            integration,
            chunk,
            " DO UPDATE SET entries = excluded.entries",
        )
        .await?;
    }
    let mut inserted = BTreeSet::new();
    for chunk in cached_chunks(&encode(&created), MAX_BINDS / 3) {
        for row in write(conn, integration, chunk, " DO NOTHING RETURNING order_id").await? {
            inserted.insert(row.int("order_id")?);
        }
    }
    // Once at most: the row now exists, so the second round reads, locks and updates it.
    let lost: BTreeMap<i64, Vec<StoredEntry>> = created
        .into_iter()
        .filter(|(order, _)| !inserted.contains(order))
        .collect();
    if !lost.is_empty() {
        Box::pin(merge_and_write(conn, dialect, integration, lost)).await?;
    }
    Ok(())
}

/// Upserts `(order, entries)` rows with the given conflict clause.
async fn write(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
    rows: &[(i64, String)],
    on_conflict: &str,
) -> Result<Vec<crate::store::Row>, StoreError> {
    let mut sql = Sql::new("INSERT INTO order_traces (integration_id, order_id, entries) VALUES ");
    for (i, (order, entries)) in rows.iter().enumerate() {
        sql.row(i == 0, |r| {
            r.v(integration.to_string()).v(*order).v(entries.clone());
        });
    }
    sql.push(" ON CONFLICT (integration_id, order_id)")
        .push(on_conflict);
    sql.fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("writing order traces"))
}

/// Rows of the former `deal_trace` table moved per statement.
const MOVE_PAGE: usize = 20_000;

/// Moves the rows of the former one-row-per-entry `deal_trace` table (migration 6) into
/// `order_traces` and drops it, in one transaction; nothing to do once it is gone. Runs at
/// every start after the migrations, so a crash half way leaves the table to move again.
pub(crate) async fn move_entry_rows(store: &Store) -> Result<(), StoreError> {
    move_entry_rows_in_pages(store, MOVE_PAGE).await
}

async fn move_entry_rows_in_pages(store: &Store, page: usize) -> Result<(), StoreError> {
    let mut tx = store
        .begin_write()
        .await
        .map_err(StoreError::query("starting to move order traces"))?;
    let mut conn = tx.conn();
    let exists = match store.dialect() {
        Dialect::Postgres => {
            "SELECT 1 AS found FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename = 'deal_trace'"
        }
        Dialect::Sqlite => {
            "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'deal_trace'"
        }
    };
    let found = Sql::new(exists)
        .fetch_optional(&mut conn)
        .await
        .map_err(StoreError::query("looking for the former order traces"))?;
    if found.is_none() {
        return Ok(());
    }
    tracing::info!("moving order traces to one row per order (once, after upgrading)");
    let mut after: Option<(String, i64, String)> = None;
    let mut moved = 0;
    loop {
        let mut sql = Sql::new(
            "SELECT integration_id, order_id, entry_key, at, kind, source, detail FROM deal_trace",
        );
        if let Some((integration, order, key)) = &after {
            sql.push(" WHERE (integration_id, order_id, entry_key) > (")
                .bind(integration.clone())
                .push(", ")
                .bind(*order)
                .push(", ")
                .bind(key.clone())
                .push(")");
        }
        sql.push(&format!(
            " ORDER BY integration_id, order_id, entry_key LIMIT {page}"
        ));
        let rows = sql
            .fetch_all(&mut conn)
            .await
            .map_err(StoreError::query("reading the former order traces"))?;
        let Some(last) = rows.last() else { break };
        after = Some((
            last.text("integration_id")?,
            last.int("order_id")?,
            last.text("entry_key")?,
        ));
        let mut new: BTreeMap<IntegrationId, BTreeMap<i64, Vec<StoredEntry>>> = BTreeMap::new();
        for row in &rows {
            let text = row.text("integration_id")?;
            let integration = text.parse().map_err(|_| StoreError::Corrupt {
                what: "an integration id",
                detail: format!("{text:?} in deal_trace"),
            })?;
            new.entry(integration)
                .or_default()
                .entry(row.int("order_id")?)
                .or_default()
                .push(StoredEntry::new(
                    row.int("at")?,
                    row.text("entry_key")?,
                    &row.text("kind")?,
                    &row.text("source")?,
                    &row.text("detail")?,
                ));
        }
        // A page may end inside an order: the next page's entries merge into its row.
        store_entries(&mut conn, store.dialect(), new).await?;
        moved += rows.len();
        tracing::info!(entries = moved, "order traces moved so far");
    }
    Sql::new("DROP TABLE deal_trace")
        .execute(&mut conn)
        .await
        .map_err(StoreError::query("dropping the former order traces"))?;
    tx.commit()
        .await
        .map_err(StoreError::query("moving order traces"))?;
    tracing::info!(entries = moved, "order traces moved to one row per order");
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Against real databases: SQLite in a temporary file and a fresh PostgreSQL database
    //! on 127.0.0.1:5432 (as the projector's integration tests).

    use std::time::Duration;

    use dealflow_shared::config::DatabaseUrl;
    use secrecy::SecretString;
    use sqlx::{Connection as _, Executor as _};

    use super::*;
    use crate::store::traces::decode;

    const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

    /// A fresh PostgreSQL database's store, and its name for [`drop_postgres`].
    async fn postgres() -> (Store, String) {
        sqlx::any::install_default_drivers();
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        admin(&format!("CREATE DATABASE {name}")).await;
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let store = Store::open(&DatabaseUrl::Postgres(SecretString::from(url)))
            .await
            .unwrap();
        (store, name)
    }

    async fn drop_postgres(store: Store, name: &str) {
        store.close().await;
        admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }

    async fn admin(statement: &str) {
        let mut admin = sqlx::AnyConnection::connect(PG_ADMIN).await.unwrap();
        admin.execute(statement).await.unwrap();
        admin.close().await.unwrap();
    }

    async fn sqlite(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
        Store::open(&DatabaseUrl::Sqlite(SecretString::from(url)))
            .await
            .unwrap()
    }

    async fn stored(store: &Store, integration: IntegrationId, order: i64) -> Vec<StoredEntry> {
        let mut sql = Sql::new("SELECT entries FROM order_traces WHERE integration_id = ");
        sql.bind(integration.to_string())
            .push(" AND order_id = ")
            .bind(order);
        match sql.read_optional(store).await.unwrap() {
            Some(row) => decode(&row.text("entries").unwrap()).unwrap(),
            None => Vec::new(),
        }
    }

    fn entry(key: &str, at: i64) -> StoredEntry {
        StoredEntry::new(at, key.to_owned(), "webhook_accepted", "webhook", "d")
    }

    #[tokio::test]
    async fn traces_kept_one_row_per_entry_are_moved_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (pg, name) = postgres().await;
        for store in [sqlite(&dir).await, pg] {
            let (a, b) = (IntegrationId::new(), IntegrationId::new());
            // The table as migration 6 made it, with rows an earlier version wrote.
            let mut tx = store.begin_write().await.unwrap();
            let mut conn = tx.conn();
            Sql::new(
                "CREATE TABLE deal_trace (integration_id TEXT NOT NULL, order_id BIGINT NOT NULL, \
                 entry_key TEXT NOT NULL, at BIGINT NOT NULL, kind TEXT NOT NULL, \
                 source TEXT NOT NULL, detail TEXT NOT NULL, \
                 PRIMARY KEY (integration_id, order_id, entry_key))",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            let mut rows: Vec<(IntegrationId, i64, String, i64)> = vec![
                (a, 7, "a/0".to_owned(), 10),
                (a, 7, "b/1".to_owned(), 5),
                (b, 7, "c/0".to_owned(), 1),
            ];
            rows.extend((0..250).map(|i| (a, 8, format!("w{i:03}/0"), i)));
            for chunk in rows.chunks(100) {
                let mut sql = Sql::new("INSERT INTO deal_trace VALUES ");
                for (i, (integration, order, key, at)) in chunk.iter().enumerate() {
                    sql.row(i == 0, |r| {
                        r.v(integration.to_string())
                            .v(*order)
                            .v(key.clone())
                            .v(*at)
                            .v("webhook_accepted".to_owned())
                            .v("webhook".to_owned())
                            .v("d".to_owned());
                    });
                }
                sql.execute(&mut conn).await.unwrap();
            }
            tx.commit().await.unwrap();

            // Pages of 7 rows: orders span pages.
            move_entry_rows_in_pages(&store, 7).await.unwrap();
            let keys = |entries: Vec<StoredEntry>| -> Vec<String> {
                entries.iter().map(|e| e.key().to_owned()).collect()
            };
            assert_eq!(keys(stored(&store, a, 7).await), ["b/1", "a/0"]);
            assert_eq!(keys(stored(&store, b, 7).await), ["c/0"]);
            let long = stored(&store, a, 8).await;
            assert_eq!(long.len(), 200, "the newest 200 kept");
            assert_eq!(long[0].key(), "w050/0");
            assert!(
                Sql::new("SELECT 1 FROM deal_trace")
                    .read_optional(&store)
                    .await
                    .is_err(),
                "the former table is gone"
            );
            // Nothing to do at the next start.
            move_entry_rows(&store).await.unwrap();
            assert_eq!(stored(&store, a, 8).await, long);
            if store.dialect() == Dialect::Postgres {
                drop_postgres(store, &name).await;
            }
        }
    }

    /// Two projector members (two transactions) write the first entries of one order's trace
    /// at once: the second waits on the first's new row, finds it there and merges into it
    /// rather than losing either side's entries.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_creating_one_order_trace_together_lose_no_entry() {
        let (store, name) = postgres().await;
        let integration = IntegrationId::new();
        let one = |key: &str, at: i64| {
            BTreeMap::from([(integration, BTreeMap::from([(3_i64, vec![entry(key, at)])]))])
        };
        let mut first = store.writer().begin().await.unwrap();
        store_entries(
            &mut Conn::Any(&mut first),
            Dialect::Postgres,
            one("first", 1),
        )
        .await
        .unwrap();
        let second = tokio::spawn({
            let store = store.clone();
            let entries = one("second", 2);
            async move {
                let mut tx = store.writer().begin().await.unwrap();
                store_entries(&mut Conn::Any(&mut tx), Dialect::Postgres, entries)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        });
        // Until the second waits for the first's row (a lock wait, seen by the server).
        let waiting = "SELECT count(*) AS n FROM pg_stat_activity \
                       WHERE datname = current_database() AND wait_event_type = 'Lock'";
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let n = Sql::new(waiting)
                .read_optional(&store)
                .await
                .unwrap()
                .unwrap()
                .int("n")
                .unwrap();
            if n > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the second never waited"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        first.commit().await.unwrap();
        second.await.unwrap();
        let keys: Vec<String> = stored(&store, integration, 3)
            .await
            .iter()
            .map(|e| e.key().to_owned())
            .collect();
        assert_eq!(keys, ["first", "second"]);
        drop_postgres(store, &name).await;
    }
}
