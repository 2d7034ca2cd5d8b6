//! `FunnelStageSeen`: RetailCRM statuses (account-wide), which shops' funnels have them, and
//! the shops' names.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Conn;
use dealflow_shared::events::{FunnelStageSeen, IntegrationId};

use crate::store::values::{Columns as _, flag, micros};
use crate::store::{MAX_BINDS, Sql, StoreError};

/// Stage codes, per integration, whose group is new or changed: deals that relied on the stages
/// table for the group of those stages are re-derived.
pub(crate) type RegroupedStages = BTreeMap<IntegrationId, BTreeSet<String>>;

/// Applies the stage events of a batch (in bus order).
pub(crate) async fn apply(
    conn: &mut Conn<'_>,
    seen: &[(IntegrationId, &FunnelStageSeen)],
) -> Result<RegroupedStages, StoreError> {
    if seen.is_empty() {
        return Ok(RegroupedStages::new());
    }
    // The newest description of each stage and each shop; ties go to the later event.
    let mut stages: BTreeMap<(IntegrationId, &str), &FunnelStageSeen> = BTreeMap::new();
    let mut sites: BTreeMap<(IntegrationId, &str), &FunnelStageSeen> = BTreeMap::new();
    let mut memberships: BTreeSet<(IntegrationId, &str, &str)> = BTreeSet::new();
    for (id, s) in seen {
        newest(&mut stages, (*id, s.stage_code.as_str()), s);
        newest(&mut sites, (*id, s.site.as_str()), s);
        memberships.insert((*id, s.site.as_str(), s.stage_code.as_str()));
    }

    let mut regrouped = RegroupedStages::new();
    let by_integration = group_by_integration(stages.keys().copied());
    for (id, codes) in by_integration {
        let mut sql = Sql::new(
            "SELECT stage_code, group_code, observed_at FROM stages WHERE integration_id = ",
        );
        sql.bind(id.to_string())
            .push(" AND stage_code IN ")
            .bind_list(codes.iter().map(|c| (*c).to_owned()));
        let mut known = BTreeMap::new();
        for row in sql
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::query("reading stages"))?
        {
            known.insert(
                row.text("stage_code")?,
                (row.text("group_code")?, row.int("observed_at")?),
            );
        }
        for code in codes {
            let s = stages[&(id, code)];
            match known.get(code) {
                Some((_, observed)) if *observed > micros(s.observed_at) => {}
                Some((group, _)) if *group == s.group_code => {}
                _ => {
                    regrouped.entry(id).or_default().insert(code.to_owned());
                }
            }
        }
    }

    write_stages(conn, &stages).await?;
    write_memberships(conn, &memberships).await?;
    write_sites(conn, &sites).await?;
    Ok(regrouped)
}

fn newest<'a, K: Ord>(map: &mut BTreeMap<K, &'a FunnelStageSeen>, key: K, s: &'a FunnelStageSeen) {
    match map.get(&key) {
        Some(current) if current.observed_at > s.observed_at => {}
        _ => {
            map.insert(key, s);
        }
    }
}

fn group_by_integration<'a>(
    keys: impl Iterator<Item = (IntegrationId, &'a str)>,
) -> BTreeMap<IntegrationId, Vec<&'a str>> {
    let mut out: BTreeMap<IntegrationId, Vec<&str>> = BTreeMap::new();
    for (id, code) in keys {
        out.entry(id).or_default().push(code);
    }
    out
}

async fn write_stages(
    conn: &mut Conn<'_>,
    stages: &BTreeMap<(IntegrationId, &str), &FunnelStageSeen>,
) -> Result<(), StoreError> {
    let rows: Vec<_> = stages.iter().collect();
    for chunk in rows.chunks(MAX_BINDS / 9) {
        let mut sql = Sql::new(
            "INSERT INTO stages (integration_id, stage_code, stage_name, stage_ordering, active, \
             group_code, group_name, group_ordering, observed_at) VALUES ",
        );
        for (i, ((id, code), s)) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(id.to_string())
                    .v((*code).to_owned())
                    .v(s.stage_name.clone())
                    .v(s.stage_ordering)
                    .v(flag(s.active))
                    .v(s.group_code.clone())
                    .v(s.group_name.clone())
                    .v(s.group_ordering)
                    .v(micros(s.observed_at));
            });
        }
        sql.push(
            " ON CONFLICT (integration_id, stage_code) DO UPDATE SET \
             stage_name = excluded.stage_name, stage_ordering = excluded.stage_ordering, \
             active = excluded.active, group_code = excluded.group_code, \
             group_name = excluded.group_name, group_ordering = excluded.group_ordering, \
             observed_at = excluded.observed_at WHERE excluded.observed_at >= stages.observed_at",
        );
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing stages"))?;
    }
    Ok(())
}

async fn write_memberships(
    conn: &mut Conn<'_>,
    memberships: &BTreeSet<(IntegrationId, &str, &str)>,
) -> Result<(), StoreError> {
    let rows: Vec<_> = memberships.iter().collect();
    for chunk in rows.chunks(MAX_BINDS / 3) {
        let mut sql =
            Sql::new("INSERT INTO site_stages (integration_id, site, stage_code) VALUES ");
        for (i, (id, site, code)) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(id.to_string())
                    .v((*site).to_owned())
                    .v((*code).to_owned());
            });
        }
        sql.push(" ON CONFLICT (integration_id, site, stage_code) DO NOTHING");
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing funnel stages"))?;
    }
    Ok(())
}

async fn write_sites(
    conn: &mut Conn<'_>,
    sites: &BTreeMap<(IntegrationId, &str), &FunnelStageSeen>,
) -> Result<(), StoreError> {
    let rows: Vec<_> = sites.iter().collect();
    for chunk in rows.chunks(MAX_BINDS / 4) {
        let mut sql =
            Sql::new("INSERT INTO sites (integration_id, site, name, observed_at) VALUES ");
        for (i, ((id, site), s)) in chunk.iter().enumerate() {
            sql.row(i == 0, |r| {
                r.v(id.to_string())
                    .v((*site).to_owned())
                    .v(s.site_name.clone())
                    .v(micros(s.observed_at));
            });
        }
        // A description without a name keeps the name already known.
        sql.push(
            " ON CONFLICT (integration_id, site) DO UPDATE SET \
             name = COALESCE(excluded.name, sites.name), observed_at = excluded.observed_at \
             WHERE excluded.observed_at >= sites.observed_at",
        );
        sql.execute(&mut *conn)
            .await
            .map_err(StoreError::query("writing shops"))?;
    }
    Ok(())
}
