//! The stage mapping (DESIGN §4 "stage-mapping"): every status of an account with its default
//! and effective outcome, built the same way by ingest (answering a `PATCH`, from the statuses
//! it follows on the `funnels` topic) and by the projector (answering a `GET`, from its read
//! model), so the two answers cannot drift apart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::bus::{BusError, EventBus};
use crate::events::{Event, FunnelStageSeen, IntegrationId, StageOutcome, StageRule};
use crate::follow::{CaughtUp, Followed};

/// One RetailCRM status as the mapping lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: String,
    pub name: String,
    pub group: String,
    pub group_ordering: i64,
    pub ordering: i64,
}

/// One row of the mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageMappingItem {
    /// The RetailCRM status code.
    pub code: String,
    pub name: String,
    /// Its status group.
    pub group: String,
    /// What the group gives: `won` for `complete`, `lost` for `cancel`, `open` otherwise.
    #[schema(value_type = String, example = "open")]
    pub default_outcome: StageOutcome,
    /// The effective outcome: the user's override, else `default_outcome`.
    #[schema(value_type = String, example = "open")]
    pub outcome: StageOutcome,
    /// Deals in this status are left out of lists, CSVs and counts (unless `excluded=true`).
    pub excluded: bool,
}

/// `GET`/`PATCH /api/v1/integrations/{id}/stage-mapping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StageMapping {
    /// Every status of the account in funnel order (status group ordering, status ordering).
    pub items: Vec<StageMappingItem>,
}

impl StageMapping {
    /// The mapping of `statuses` (any order) under `rules`.
    pub fn of(mut statuses: Vec<Status>, rules: &BTreeMap<String, StageRule>) -> Self {
        statuses.sort_by(|a, b| {
            (a.group_ordering, a.ordering, &a.code).cmp(&(b.group_ordering, b.ordering, &b.code))
        });
        let items = statuses
            .into_iter()
            .map(|s| {
                let default_outcome = StageOutcome::of_group(Some(&s.group));
                let rule = rules.get(&s.code).copied().unwrap_or_default();
                StageMappingItem {
                    default_outcome,
                    outcome: rule.outcome.unwrap_or(default_outcome),
                    excluded: rule.excluded,
                    code: s.code,
                    name: s.name,
                    group: s.group,
                }
            })
            .collect();
        Self { items }
    }
}

/// A change of one status' rule: a key left out keeps what it was; `outcome: null` returns to
/// the group's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageRulePatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "lost")]
    pub outcome: Option<Option<StageOutcome>>,
    #[serde(default)]
    pub excluded: Option<bool>,
}

/// `PATCH /api/v1/integrations/{id}/stage-mapping`: rule changes by status code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct StageMappingPatch(pub BTreeMap<String, StageRulePatch>);

/// Tells `"outcome": null` (`Some(None)`) from a missing key (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<StageOutcome>>, D::Error> {
    Option::<StageOutcome>::deserialize(d).map(Some)
}

impl StageRulePatch {
    /// `rule` with this change.
    pub fn applied_to(self, rule: StageRule) -> StageRule {
        StageRule {
            outcome: self.outcome.unwrap_or(rule.outcome),
            excluded: self.excluded.unwrap_or(rule.excluded),
        }
    }
}

/// Applies `patch` to `rules`, dropping rules that no longer change anything.
pub fn patch_rules(rules: &mut BTreeMap<String, StageRule>, patch: &StageMappingPatch) {
    for (code, change) in &patch.0 {
        let rule = change.applied_to(rules.get(code).copied().unwrap_or_default());
        if rule.is_effective() {
            rules.insert(code.clone(), rule);
        } else {
            rules.remove(code);
        }
    }
}

/// One account's statuses by code, each with when it was described (microseconds).
type AccountStatuses = BTreeMap<String, (Status, i64)>;

/// The statuses of every integration's account, followed from the `funnels` topic (cheap to
/// clone; clones share the state). ingest holds no database, and this is how it knows which
/// status codes a mapping may name.
#[derive(Debug, Clone, Default)]
pub struct StatusCatalog {
    statuses: Arc<RwLock<HashMap<IntegrationId, AccountStatuses>>>,
    ready: CaughtUp,
    followed: Followed,
}

impl StatusCatalog {
    /// Every status of the integration's account known so far.
    pub fn statuses(&self, id: IntegrationId) -> Vec<Status> {
        self.statuses
            .read()
            .expect("status catalog lock")
            .get(&id)
            .map(|s| s.values().map(|(s, _)| s.clone()).collect())
            .unwrap_or_default()
    }

    /// The codes of `codes` the account does not have, after reading the topic to its end
    /// when some looked unknown (the enricher may have seen a new status a moment ago).
    pub async fn unknown_among<'a>(
        &self,
        id: IntegrationId,
        codes: impl Iterator<Item = &'a String> + Clone,
    ) -> Vec<String> {
        let unknown = |catalog: &Self| -> Vec<String> {
            let statuses = catalog.statuses.read().expect("status catalog lock");
            let known = statuses.get(&id);
            codes
                .clone()
                .filter(|c| !known.is_some_and(|k| k.contains_key(*c)))
                .cloned()
                .collect()
        };
        if unknown(self).is_empty() {
            return Vec::new();
        }
        self.followed.catch_up().await;
        unknown(self)
    }

    /// Applies one stage description (the newest by `observed_at` wins).
    pub fn apply(&self, id: IntegrationId, seen: &FunnelStageSeen) {
        let at = seen.observed_at.timestamp_micros();
        let mut statuses = self.statuses.write().expect("status catalog lock");
        let of_account = statuses.entry(id).or_default();
        if of_account
            .get(&seen.stage_code)
            .is_some_and(|(_, newest)| *newest > at)
        {
            return;
        }
        let status = Status {
            code: seen.stage_code.clone(),
            name: seen.stage_name.clone(),
            group: seen.group_code.clone(),
            group_ordering: seen.group_ordering,
            ordering: seen.stage_ordering,
        };
        of_account.insert(seen.stage_code.clone(), (status, at));
    }

    /// Whether the topic has been read to its end once.
    pub fn is_ready(&self) -> bool {
        self.ready.is_ready()
    }

    /// Reads the `funnels` topic to its end, then follows it until `shutdown` (`group` unique
    /// per process; nothing is committed).
    pub async fn follow(
        self,
        bus: Arc<dyn EventBus>,
        topic: String,
        group: String,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        self.followed
            .follow_envelopes(bus, &topic, &group, &self.ready, shutdown, |envelope| {
                if let Event::FunnelStageSeen(seen) = &envelope.event {
                    self.apply(envelope.integration_id, seen);
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: &str, group: &str, group_ordering: i64, ordering: i64) -> Status {
        Status {
            code: code.into(),
            name: code.to_uppercase(),
            group: group.into(),
            group_ordering,
            ordering,
        }
    }

    #[test]
    fn items_come_in_funnel_order_with_rules_applied() {
        let statuses = vec![
            status("complete", "complete", 3, 1),
            status("new", "new", 1, 1),
            status("spam", "cancel", 4, 2),
            status("cancel-other", "cancel", 4, 1),
            status("return", "complete", 3, 2),
        ];
        let rules = BTreeMap::from([
            (
                "return".to_owned(),
                StageRule {
                    outcome: Some(StageOutcome::Lost),
                    excluded: false,
                },
            ),
            (
                "spam".to_owned(),
                StageRule {
                    outcome: None,
                    excluded: true,
                },
            ),
        ]);
        let mapping = StageMapping::of(statuses, &rules);
        let rows: Vec<(&str, StageOutcome, StageOutcome, bool)> = mapping
            .items
            .iter()
            .map(|i| (i.code.as_str(), i.default_outcome, i.outcome, i.excluded))
            .collect();
        use StageOutcome::*;
        assert_eq!(
            rows,
            vec![
                ("new", Open, Open, false),
                ("complete", Won, Won, false),
                ("return", Won, Lost, false),
                ("cancel-other", Lost, Lost, false),
                ("spam", Lost, Lost, true),
            ]
        );
    }

    #[test]
    fn a_patch_keeps_what_it_leaves_out_and_null_returns_to_the_default() {
        let mut rules = BTreeMap::new();
        let patch: StageMappingPatch =
            serde_json::from_str(r#"{"return": {"outcome": "lost"}, "spam": {"excluded": true}}"#)
                .unwrap();
        patch_rules(&mut rules, &patch);
        assert_eq!(rules["return"].outcome, Some(StageOutcome::Lost));
        assert!(rules["spam"].excluded);

        let patch: StageMappingPatch =
            serde_json::from_str(r#"{"return": {"excluded": true}, "spam": {"outcome": null}}"#)
                .unwrap();
        patch_rules(&mut rules, &patch);
        assert_eq!(
            rules["return"],
            StageRule {
                outcome: Some(StageOutcome::Lost),
                excluded: true
            }
        );
        assert!(rules["spam"].excluded, "excluded was left out: kept");

        let patch: StageMappingPatch = serde_json::from_str(
            r#"{"return": {"outcome": null, "excluded": false}, "spam": {"excluded": false}}"#,
        )
        .unwrap();
        patch_rules(&mut rules, &patch);
        assert!(rules.is_empty(), "rules that change nothing are dropped");
    }

    #[test]
    fn a_patch_refuses_unknown_outcomes_and_keys() {
        for bad in [
            r#"{"x": {"outcome": "maybe"}}"#,
            r#"{"x": {"outcome": "won", "hidden": true}}"#,
            r#"{"x": {"excluded": "yes"}}"#,
        ] {
            assert!(
                serde_json::from_str::<StageMappingPatch>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
