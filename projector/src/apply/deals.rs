//! `DealUpserted` / `DealDeleted` / `DealStagesRecorded`: facts folded with "newest snapshot
//! wins", the stage history as a set of (instant, stage) entries fed by snapshots and history
//! records alike, and the derived columns recomputed for every touched deal.
//!
//! Each integration's deals are loaded once per batch (one query), folded in memory in bus
//! order, derived with the integration's markers, and written back with multi-row upserts:
//! a handful of round trips per batch, whatever its size.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::store::Conn;
use dealflow_shared::events::{
    DealDeleted, DealStagesRecorded, DealUpserted, IntegrationId, Manager,
};

use super::deal_row::{self, DealRow, Derived, Facts};
use super::funnels::RegroupedStages;
use super::integrations;
use super::stage_history::{History, load_history, write_history};
use super::write_back::WriteBack;
use crate::derive::{Entered, Mapping, Markers, closure};
use crate::store::values::{Columns as _, id, micros};
use crate::store::{Dialect, MAX_BINDS, Sql, StoreError, cached_chunks};

/// A deal event of a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DealEvent<'a> {
    Upserted(&'a DealUpserted),
    Deleted(&'a DealDeleted),
    Stages(&'a DealStagesRecorded),
}

impl DealEvent<'_> {
    fn order_id(self) -> i64 {
        match self {
            DealEvent::Upserted(d) => id(d.order_id),
            DealEvent::Deleted(d) => id(d.order_id),
            DealEvent::Stages(d) => id(d.order_id),
        }
    }
}

/// How many deals of a remapped integration are re-derived per step (bounded memory).
const REMAP_CHUNK: usize = 2_000;

/// Applies the deal events of a batch (in bus order) and re-derives the deals whose stage
/// groups changed, and every deal of an integration whose stage mapping changed. Returns how
/// many deal rows were written.
pub(crate) async fn apply(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    events: &[(IntegrationId, DealEvent<'_>)],
    regrouped: &RegroupedStages,
    remapped: &BTreeSet<IntegrationId>,
    mut memo: Option<&mut WriteBack>,
) -> Result<usize, StoreError> {
    let mut by_integration: BTreeMap<IntegrationId, Vec<DealEvent<'_>>> = BTreeMap::new();
    for (integration, event) in events {
        by_integration.entry(*integration).or_default().push(*event);
    }
    for integration in regrouped.keys().chain(remapped) {
        by_integration.entry(*integration).or_default();
    }
    if by_integration.is_empty() {
        return Ok(0);
    }
    // Lock order: the integration rows first (shared), then its deals, everywhere.
    let ids: BTreeSet<IntegrationId> = by_integration.keys().copied().collect();
    let settings = integrations::markers(conn, dialect, &ids).await?;

    let mut written = 0;
    for (integration, events) in by_integration {
        let mut orders: BTreeSet<i64> = events.iter().map(|e| e.order_id()).collect();
        if let Some(codes) = regrouped.get(&integration) {
            // The lookup reads the tables: the memo's rows must be there.
            if let Some(memo) = memo.as_deref_mut() {
                written += memo
                    .sync_deals(conn, Some(&BTreeSet::from([integration])))
                    .await?;
            }
            orders.extend(relying_on_stages(conn, integration, codes).await?);
        }
        let (markers, mapping) = settings.get(&integration).cloned().unwrap_or_default();
        let step = Step {
            integration,
            markers,
            mapping: &mapping,
            groups: &stage_groups(conn, integration).await?,
        };
        let orders: Vec<i64> = orders.into_iter().collect();
        written += fold(conn, dialect, &step, &events, &orders, memo.as_deref_mut()).await?;
        if remapped.contains(&integration) {
            // Every other deal of the integration, written at once (the memo holds this
            // step's orders; a settings change emptied it before).
            let rest: Vec<i64> = all_orders(conn, integration)
                .await?
                .into_iter()
                .filter(|o| orders.binary_search(o).is_err())
                .collect();
            for chunk in rest.chunks(REMAP_CHUNK) {
                written += fold(conn, dialect, &step, &[], chunk, None).await?;
            }
        }
    }
    Ok(written)
}

/// What deriving one integration's deals needs besides the deals.
struct Step<'a> {
    integration: IntegrationId,
    markers: Markers,
    mapping: &'a Mapping,
    groups: &'a HashMap<String, String>,
}

/// Folds `events` into the rows of `orders` (which holds every order they name), derives
/// those rows again and writes the ones that changed — or hands them all to a replay's memo,
/// which writes them once they go cold. Returns how many rows were written.
async fn fold(
    conn: &mut Conn<'_>,
    dialect: Dialect,
    step: &Step<'_>,
    events: &[DealEvent<'_>],
    orders: &[i64],
    mut memo: Option<&mut WriteBack>,
) -> Result<usize, StoreError> {
    if orders.is_empty() {
        return Ok(0);
    }
    let integration = step.integration;
    let Loaded {
        stored,
        mut current,
        stored_histories,
        mut histories,
    } = match memo {
        Some(ref mut memo) => memo.take_deals(conn, dialect, integration, orders).await?,
        None => Loaded::read(conn, dialect, integration, orders).await?,
    };

    let mut rows: BTreeMap<i64, DealRow> = orders
        .iter()
        .map(|o| {
            let row = current.remove(o).unwrap_or_else(|| DealRow::empty(*o));
            (*o, row)
        })
        .collect();
    let mut managers: BTreeMap<u64, (&Manager, i64)> = BTreeMap::new();
    // The snapshot each row ends with, made into facts once (not at every newer snapshot).
    let mut newest: BTreeMap<i64, &DealUpserted> = BTreeMap::new();
    for event in events {
        let row = rows
            .get_mut(&event.order_id())
            .expect("every event's order is loaded");
        match event {
            DealEvent::Upserted(d) => {
                if upsert(row, d) {
                    newest.insert(row.order_id, d);
                }
                if let Some(at) = d.stage_entered_at {
                    histories
                        .entry(row.order_id)
                        .or_default()
                        .entry((micros(at), d.status_code.clone()))
                        .or_default()
                        .merge(&d.status_group, None, Some(micros(d.observed_at)));
                }
                if let Some(m) = &d.manager {
                    let at = micros(d.observed_at);
                    match managers.get(&m.id) {
                        Some((_, newest)) if *newest > at => {}
                        _ => {
                            managers.insert(m.id, (m, at));
                        }
                    }
                }
            }
            DealEvent::Deleted(d) => delete(row, d),
            DealEvent::Stages(d) => {
                let history = histories.entry(row.order_id).or_default();
                for stage in &d.stages {
                    history
                        .entry((micros(stage.entered_at), stage.stage_code.clone()))
                        .or_default()
                        .merge(&None, Some(id(stage.history_id)), None);
                }
            }
        }
    }

    for (order, d) in newest {
        if let Some(row) = rows.get_mut(&order) {
            row.facts = Some(Facts::of(d));
        }
    }
    let empty = History::new();
    for row in rows.values_mut() {
        let history = histories.get(&row.order_id).unwrap_or(&empty);
        row.derived = derive(row, step, history);
    }
    write_managers(conn, integration, &managers).await?;
    match memo {
        Some(memo) => {
            memo.put_deals(integration, rows, stored, histories, stored_histories);
            Ok(0)
        }
        None => {
            write_changed(
                conn,
                integration,
                &stored,
                &rows,
                &stored_histories,
                &histories,
            )
            .await
        }
    }
}

/// Deals as [`fold`] starts from: as stored, and as folded so far (the same, unless a replay's
/// memo held them), with their stage histories. An order with no row has none in `stored`.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub stored: BTreeMap<i64, DealRow>,
    pub current: BTreeMap<i64, DealRow>,
    pub stored_histories: BTreeMap<i64, History>,
    pub histories: BTreeMap<i64, History>,
}

impl Loaded {
    /// Reads the rows and histories of `orders` (locking the rows on PostgreSQL).
    pub(crate) async fn read(
        conn: &mut Conn<'_>,
        dialect: Dialect,
        integration: IntegrationId,
        orders: &[i64],
    ) -> Result<Self, StoreError> {
        let stored = deal_row::load(conn, dialect, integration, orders).await?;
        let stored_histories = load_history(conn, integration, orders).await?;
        Ok(Self {
            current: stored.clone(),
            histories: stored_histories.clone(),
            stored,
            stored_histories,
        })
    }
}

/// Writes the rows of `rows` that differ from `stored`, and the stage history entries that
/// differ from `stored_histories`. Returns how many rows were written.
pub(crate) async fn write_changed(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
    stored: &BTreeMap<i64, DealRow>,
    rows: &BTreeMap<i64, DealRow>,
    stored_histories: &BTreeMap<i64, History>,
    histories: &BTreeMap<i64, History>,
) -> Result<usize, StoreError> {
    let changed: Vec<&DealRow> = rows
        .values()
        .filter(|r| r.is_named())
        .filter(|r| stored.get(&r.order_id) != Some(*r))
        .collect();
    write_history(conn, integration, stored_histories, histories).await?;
    deal_row::write(conn, integration, &changed).await?;
    Ok(changed.len())
}

/// Every deal of the integration, by order id.
async fn all_orders(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
) -> Result<Vec<i64>, StoreError> {
    let mut sql = Sql::new("SELECT order_id FROM deals WHERE integration_id = ");
    sql.bind(integration.to_string()).push(" ORDER BY order_id");
    sql.fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("listing an integration's deals"))?
        .iter()
        .map(|row| row.int("order_id"))
        .collect()
}

/// The newer snapshot wins; an older or the same one changes nothing. Returns whether `d`
/// is now the row's snapshot (the caller sets the facts: nothing before that reads them).
fn upsert(row: &mut DealRow, d: &DealUpserted) -> bool {
    let at = micros(d.observed_at);
    if row.observed_at.is_some_and(|current| current >= at) {
        return false;
    }
    row.observed_at = Some(at);
    true
}

/// The newest deletion is kept; whether the deal counts as deleted is derived. A merge is
/// terminal in RetailCRM, so once a deletion said where the order was merged, a deletion that
/// does not know it (a fetch that found the order gone, after the history told of the merge)
/// keeps that target, in either arrival order, unless a newer snapshot brought the order back.
fn delete(row: &mut DealRow, d: &DealDeleted) {
    let at = micros(d.observed_at);
    let still_deleted = match (row.deleted_observed_at, row.observed_at) {
        (Some(deleted), Some(seen)) => deleted >= seen,
        (deleted, _) => deleted.is_some(),
    };
    let known = row.merged_into.filter(|_| still_deleted);
    if row.deleted_observed_at.is_some_and(|current| current >= at) {
        if still_deleted && known.is_none() {
            row.merged_into = d.merged_into.map(id);
        }
        return;
    }
    row.deleted_observed_at = Some(at);
    row.merged_into = d.merged_into.map(id).or(known);
}

/// Everything the view derives for a deal, from its facts, history, the stages' groups and the
/// integration's markers and stage mapping.
fn derive(row: &DealRow, step: &Step<'_>, history: &History) -> Derived {
    let (markers, mapping, groups) = (step.markers, step.mapping, step.groups);
    // Deleted unless a snapshot newer than the deletion arrived (the order came back).
    let deleted = match (row.deleted_observed_at, row.observed_at) {
        (Some(deleted), Some(seen)) => deleted >= seen,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let updated_at = row
        .observed_at
        .max(row.deleted_observed_at)
        .unwrap_or_default();
    let Some(f) = &row.facts else {
        return Derived {
            deleted,
            updated_at,
            ..Derived::default()
        };
    };
    let group_of = |code: &str, reported: &Option<String>| {
        reported.clone().or_else(|| groups.get(code).cloned())
    };
    let stage_group = group_of(&f.status_code, &f.status_group);
    let outcome = mapping.outcome(&f.status_code, stage_group.as_deref());
    let entries: Vec<Entered> = history
        .iter()
        .map(|((at, code), stay)| Entered {
            stage_code: code.clone(),
            entered_at: *at,
            rank: stay.rank,
            outcome: mapping.outcome(code, group_of(code, &stay.group).as_deref()),
        })
        .collect();
    let closure = closure(&entries, outcome, f.stage_entered_at);
    Derived {
        deleted,
        amount: Some(markers.amount(f.sums()).to_owned()),
        funnel_id: Some(markers.funnel_id(&f.site)),
        stage_group,
        outcome: Some(outcome.as_str().to_owned()),
        closed_at: closure.closed_at,
        last_open_stage: closure.last_open_stage,
        excluded: mapping.excluded(&f.status_code),
        updated_at,
    }
}

/// Deals whose group for one of `codes` came from the stages table (their snapshot did not
/// say), so a new or changed stage group changes them.
async fn relying_on_stages(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
    codes: &BTreeSet<String>,
) -> Result<Vec<i64>, StoreError> {
    let mut sql =
        Sql::new("SELECT order_id FROM deals WHERE status_group IS NULL AND integration_id = ");
    sql.bind(integration.to_string())
        .push(" AND status_code IN ")
        .bind_list(codes.iter().cloned())
        .push(
            " UNION SELECT order_id FROM stage_history WHERE stage_group IS NULL \
             AND integration_id = ",
        )
        .bind(integration.to_string())
        .push(" AND stage_code IN ")
        .bind_list(codes.iter().cloned());
    sql.fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("finding deals of regrouped stages"))?
        .iter()
        .map(|row| row.int("order_id"))
        .collect()
}

async fn stage_groups(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
) -> Result<HashMap<String, String>, StoreError> {
    let mut sql = Sql::new("SELECT stage_code, group_code FROM stages WHERE integration_id = ");
    sql.bind(integration.to_string());
    sql.fetch_all(&mut *conn)
        .await
        .map_err(StoreError::query("reading stage groups"))?
        .iter()
        .map(|row| Ok((row.text("stage_code")?, row.text("group_code")?)))
        .collect()
}

/// Managers as the newest snapshot naming them described them.
async fn write_managers(
    conn: &mut Conn<'_>,
    integration: IntegrationId,
    managers: &BTreeMap<u64, (&Manager, i64)>,
) -> Result<(), StoreError> {
    let rows: Vec<_> = managers.iter().collect();
    for chunk in cached_chunks(&rows, MAX_BINDS / 6) {
        let mut sql = Sql::new(
            "INSERT INTO managers (integration_id, manager_id, name, email, phone, observed_at) \
             VALUES ",
        );
        for (i, (manager_id, (m, at))) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(integration.to_string())
                    .v(id(**manager_id))
                    .v(m.name.clone())
                    .v(m.email.clone())
                    .v(m.phone.clone())
                    .v(*at);
            });
        }
        sql.push(
            " ON CONFLICT (integration_id, manager_id) DO UPDATE SET name = excluded.name, \
             email = excluded.email, phone = excluded.phone, observed_at = excluded.observed_at \
             WHERE excluded.observed_at >= managers.observed_at",
        );
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing managers"))?;
    }
    Ok(())
}
