//! Funnel stages from the account's reference data (DESIGN §5 "Funnel").
//!
//! Statuses are account-wide, so every shop's funnel has every status: one `FunnelStageSeen`
//! per (site, status), inactive statuses included (old orders still use them). The projector
//! orders stages by (group ordering, status ordering) and derives the outcome from the group.
//! [`StageMemory`] remembers what was emitted so a stage is emitted again only when its name,
//! group or ordering changes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dealflow_shared::events::FunnelStageSeen;
use dealflow_shared::retailcrm::models::{Dictionary, Site, Status, StatusGroup};

/// Every (site, status) stage of the account, in (site, group ordering, status ordering)
/// order. A status whose group is unknown is left out (and logged): without its group the
/// stage has no place in a funnel.
pub fn stages(
    sites: &Dictionary<Site>,
    statuses: &Dictionary<Status>,
    groups: &Dictionary<StatusGroup>,
    observed_at: DateTime<Utc>,
) -> Vec<FunnelStageSeen> {
    let mut placed: Vec<(&Status, &StatusGroup)> = Vec::with_capacity(statuses.len());
    for status in statuses.values() {
        match groups.get(&status.group) {
            Some(group) => placed.push((status, group)),
            None => tracing::warn!(
                status = %status.code, group = %status.group,
                "status belongs to an unknown group; no funnel stage for it"
            ),
        }
    }
    placed.sort_by(|(a, ga), (b, gb)| {
        (ga.ordering, &ga.code, a.ordering, &a.code).cmp(&(
            gb.ordering,
            &gb.code,
            b.ordering,
            &b.code,
        ))
    });
    let mut out = Vec::with_capacity(sites.len() * placed.len());
    for site in sites.values() {
        for (status, group) in &placed {
            out.push(FunnelStageSeen {
                site: site.code.clone(),
                site_name: Some(site.name.clone()),
                stage_code: status.code.clone(),
                stage_name: status.name.clone(),
                stage_ordering: status.ordering,
                active: status.active,
                group_code: group.code.clone(),
                group_name: Some(group.name.clone()),
                group_ordering: group.ordering,
                observed_at,
            });
        }
    }
    out
}

/// The stages emitted so far for one account (by site and status code).
#[derive(Debug, Default, Clone)]
pub struct StageMemory {
    emitted: HashMap<(String, String), FunnelStageSeen>,
}

impl StageMemory {
    /// The stages of `current` that were never emitted or changed since (the observation
    /// time aside).
    pub fn changed(&self, current: Vec<FunnelStageSeen>) -> Vec<FunnelStageSeen> {
        current
            .into_iter()
            .filter(|stage| {
                let key = (stage.site.clone(), stage.stage_code.clone());
                self.emitted
                    .get(&key)
                    .is_none_or(|seen| !same_stage(seen, stage))
            })
            .collect()
    }

    /// Records stages as emitted (call once the bus acknowledged them).
    pub fn remember(&mut self, emitted: &[FunnelStageSeen]) {
        for stage in emitted {
            let key = (stage.site.clone(), stage.stage_code.clone());
            self.emitted.insert(key, stage.clone());
        }
    }
}

fn same_stage(a: &FunnelStageSeen, b: &FunnelStageSeen) -> bool {
    FunnelStageSeen {
        observed_at: b.observed_at,
        ..a.clone()
    } == *b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: &str, group: &str, ordering: i64, active: bool) -> (String, Status) {
        let s = Status {
            code: code.into(),
            name: format!("Status {code}"),
            active,
            ordering,
            group: group.into(),
        };
        (code.into(), s)
    }

    fn group(code: &str, ordering: i64) -> (String, StatusGroup) {
        let g = StatusGroup {
            code: code.into(),
            name: format!("Group {code}"),
            active: true,
            ordering,
        };
        (code.into(), g)
    }

    fn site(code: &str) -> (String, Site) {
        let s: Site = serde_json::from_value(
            serde_json::json!({"code": code, "name": format!("Shop {code}")}),
        )
        .unwrap();
        (code.into(), s)
    }

    #[test]
    fn every_site_gets_every_status_in_funnel_order() {
        let sites = Dictionary::from([site("a"), site("b")]);
        let statuses = Dictionary::from([
            status("complete", "complete", 10, true),
            status("new", "new", 10, true),
            status("no-call", "cancel", 10, false),
            status("call-back", "new", 20, true),
            status("orphan", "missing", 1, true),
        ]);
        let groups =
            Dictionary::from([group("new", 10), group("complete", 50), group("cancel", 60)]);
        let all = stages(&sites, &statuses, &groups, Utc::now());
        let codes: Vec<(&str, &str)> = all
            .iter()
            .map(|s| (s.site.as_str(), s.stage_code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("a", "new"),
                ("a", "call-back"),
                ("a", "complete"),
                ("a", "no-call"),
                ("b", "new"),
                ("b", "call-back"),
                ("b", "complete"),
                ("b", "no-call"),
            ]
        );
        let no_call = &all[3];
        assert!(!no_call.active, "inactive statuses still map");
        assert_eq!(
            (no_call.group_code.as_str(), no_call.group_ordering),
            ("cancel", 60)
        );
        assert_eq!(no_call.site_name.as_deref(), Some("Shop a"));
    }

    #[test]
    fn memory_reports_only_new_or_changed_stages() {
        let sites = Dictionary::from([site("a")]);
        let groups = Dictionary::from([group("new", 10), group("approval", 20)]);
        let mut statuses = Dictionary::from([
            status("new", "new", 10, true),
            status("ok", "approval", 10, true),
        ]);
        let mut memory = StageMemory::default();
        let first = memory.changed(stages(&sites, &statuses, &groups, Utc::now()));
        assert_eq!(first.len(), 2);
        // Not remembered yet (the publish failed): everything is still new.
        assert_eq!(
            memory
                .changed(stages(&sites, &statuses, &groups, Utc::now()))
                .len(),
            2
        );
        memory.remember(&first);
        assert!(
            memory
                .changed(stages(&sites, &statuses, &groups, Utc::now()))
                .is_empty()
        );
        // A rename, a regrouping or a new ordering is a change.
        statuses.get_mut("ok").unwrap().name = "Approved".into();
        let renamed = memory.changed(stages(&sites, &statuses, &groups, Utc::now()));
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed[0].stage_name, "Approved");
        memory.remember(&renamed);
        statuses.get_mut("new").unwrap().group = "approval".into();
        statuses.get_mut("ok").unwrap().ordering = 5;
        assert_eq!(
            memory
                .changed(stages(&sites, &statuses, &groups, Utc::now()))
                .len(),
            2
        );
    }
}
