//! Markers and stage history, applied here (DESIGN §5): the policy that turns stored facts into
//! what the view shows. Pure functions, so the consumer and the marker re-derivation agree by
//! construction.

use std::collections::BTreeMap;

use dealflow_shared::events::{Revenue, StageRule};

/// The funnel every order belongs to when `default_funnel` is on.
pub const DEFAULT_FUNNEL_ID: &str = "default";
/// Its name.
pub const DEFAULT_FUNNEL_NAME: &str = "RetailCRM";

/// An integration's markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Markers {
    /// One funnel for every order (on) or one per shop (off).
    pub default_funnel: bool,
    /// Amount = total (on) or total − delivery (off).
    pub include_delivery_cost: bool,
    /// What the amount counts: the total, the margin or what was paid.
    pub revenue: Revenue,
}

/// The sums a deal's amount is picked from (DESIGN §5 "Revenue"), each computed from the
/// facts when they are stored: the total with and without delivery, the same minus the
/// purchase sum (none known counts as zero), and what was paid (none known counts as zero).
#[derive(Debug, Clone, Copy)]
pub struct Sums<T> {
    pub total: T,
    pub net: T,
    pub margin: T,
    pub margin_net: T,
    pub paid: T,
}

impl Default for Markers {
    /// What an integration gets when its settings have not been read yet (ingest's defaults);
    /// its deals are re-derived once they arrive.
    fn default() -> Self {
        Self {
            default_funnel: false,
            include_delivery_cost: true,
            revenue: Revenue::Total,
        }
    }
}

impl Markers {
    /// The deal's amount among its sums (in any representation: stored decimal strings, or
    /// the columns holding them when the store re-derives in one statement).
    pub fn amount<T>(self, sums: Sums<T>) -> T {
        match (self.revenue, self.include_delivery_cost) {
            (Revenue::Total, true) => sums.total,
            (Revenue::Total, false) => sums.net,
            (Revenue::Margin, true) => sums.margin,
            (Revenue::Margin, false) => sums.margin_net,
            (Revenue::Paid, _) => sums.paid,
        }
    }

    /// The funnel a deal of `site` belongs to.
    pub fn funnel_id(self, site: &str) -> String {
        if self.default_funnel {
            DEFAULT_FUNNEL_ID.to_owned()
        } else {
            site.to_owned()
        }
    }
}

/// Whether a deal is still open, won or lost.
pub use dealflow_shared::events::StageOutcome as Outcome;

/// The user's stage mapping (DESIGN §4 "stage-mapping"): per status code, an outcome other
/// than its group's, and whether deals in it are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping(pub BTreeMap<String, StageRule>);

impl Mapping {
    /// The outcome of a status: the user's override, else its group's default.
    pub fn outcome(&self, code: &str, group: Option<&str>) -> Outcome {
        self.0
            .get(code)
            .and_then(|rule| rule.outcome)
            .unwrap_or_else(|| Outcome::of_group(group))
    }

    /// Whether deals in this status are left out.
    pub fn excluded(&self, code: &str) -> bool {
        self.0.get(code).is_some_and(|rule| rule.excluded)
    }
}

/// One entry of a deal's stage history with its outcome resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entered {
    pub stage_code: String,
    /// Microseconds since the epoch.
    pub entered_at: i64,
    /// Where it stands among entries of the same instant ([`TimelineRank`]).
    pub rank: TimelineRank,
    pub outcome: Outcome,
}

/// What orders entries of the same instant in a timeline (DESIGN §5 "Stage timeline").
/// RetailCRM times have one-second resolution and automation rules change a status several
/// times within one, so the time alone does not order them; the stage code must not either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineRank {
    /// The `orders/history` record that reported the entry (the smallest, if several did).
    pub history_id: Option<i64>,
    /// When a snapshot first reported it (microseconds), if one did.
    pub observed_at: Option<i64>,
}

/// The sort key of a timeline entry: time, then RetailCRM's own order — history records by id;
/// entries only snapshots reported after them (a snapshot shows the latest status, and its
/// record gives it an id once reconciliation reads it), by fetch order. The code comes last
/// only to make the order total for entries that carry nothing else (rows written before ranks
/// existed).
pub fn timeline_key(
    entered_at: i64,
    rank: TimelineRank,
    stage_code: &str,
) -> (i64, bool, i64, i64, &str) {
    (
        entered_at,
        rank.history_id.is_none(),
        rank.history_id.unwrap_or_default(),
        rank.observed_at.unwrap_or(i64::MAX),
        stage_code,
    )
}

/// When a closed deal closed, and the open stage it left to get there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closure {
    pub closed_at: Option<i64>,
    pub last_open_stage: Option<String>,
}

/// `closed_at` and `last_open_stage` (DESIGN §4) from the history (any order) and the current
/// outcome: nothing while open; otherwise the last open stage in the history, and the time the
/// deal first entered a closed stage after it (a deal can move between closed stages, e.g.
/// from "cancelled" to "returned", without re-opening). Without history of the closing move,
/// the current stage's entry time stands in.
pub fn closure(history: &[Entered], current: Outcome, stage_entered_at: Option<i64>) -> Closure {
    if !current.is_closed() {
        return Closure::default();
    }
    let mut sorted: Vec<&Entered> = history.iter().collect();
    sorted.sort_by(|a, b| {
        timeline_key(a.entered_at, a.rank, &a.stage_code).cmp(&timeline_key(
            b.entered_at,
            b.rank,
            &b.stage_code,
        ))
    });
    let last_open = sorted.iter().rposition(|e| !e.outcome.is_closed());
    let after = last_open.map_or(0, |i| i + 1);
    let closed_at = sorted
        .get(after..)
        .and_then(|rest| rest.iter().find(|e| e.outcome.is_closed()))
        .map(|e| e.entered_at)
        .or(stage_entered_at);
    Closure {
        closed_at,
        last_open_stage: last_open.map(|i| sorted[i].stage_code.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entered(code: &str, at: i64, outcome: Outcome) -> Entered {
        Entered {
            stage_code: code.into(),
            entered_at: at,
            rank: TimelineRank::default(),
            outcome,
        }
    }

    fn recorded(code: &str, at: i64, history_id: i64, outcome: Outcome) -> Entered {
        Entered {
            rank: TimelineRank {
                history_id: Some(history_id),
                observed_at: None,
            },
            ..entered(code, at, outcome)
        }
    }

    #[test]
    fn changes_within_one_second_keep_retailcrms_order_not_the_alphabet() {
        // fresh → picking → done, the last two in the same second; "done" < "picking".
        let history = [
            recorded("picking", 5, 101, Outcome::Open),
            recorded("done", 5, 102, Outcome::Won),
            recorded("fresh", 1, 100, Outcome::Open),
        ];
        let c = closure(&history, Outcome::Won, Some(5));
        assert_eq!(c.last_open_stage.as_deref(), Some("picking"));
        assert_eq!(c.closed_at, Some(5));
        let mut keys: Vec<_> = history
            .iter()
            .map(|e| timeline_key(e.entered_at, e.rank, &e.stage_code))
            .collect();
        keys.sort();
        let codes: Vec<&str> = keys.iter().map(|k| k.4).collect();
        assert_eq!(codes, ["fresh", "picking", "done"]);
    }

    #[test]
    fn a_stage_only_a_snapshot_reported_follows_the_records_of_its_second() {
        let snapshot = TimelineRank {
            history_id: None,
            observed_at: Some(9),
        };
        let record = TimelineRank {
            history_id: Some(7),
            observed_at: None,
        };
        assert!(timeline_key(5, record, "zzz") < timeline_key(5, snapshot, "aaa"));
        let later_fetch = TimelineRank {
            history_id: None,
            observed_at: Some(10),
        };
        assert!(timeline_key(5, snapshot, "zzz") < timeline_key(5, later_fetch, "aaa"));
        assert!(timeline_key(4, snapshot, "zzz") < timeline_key(5, record, "aaa"));
    }

    #[test]
    fn amount_and_funnel_follow_the_markers() {
        let sums = Sums {
            total: "6330.00",
            net: "5980.00",
            margin: "2230.00",
            margin_net: "1880.00",
            paid: "1000.00",
        };
        let on = Markers {
            default_funnel: true,
            include_delivery_cost: true,
            revenue: Revenue::Total,
        };
        let off = Markers {
            default_funnel: false,
            include_delivery_cost: false,
            revenue: Revenue::Total,
        };
        assert_eq!(on.amount(sums), "6330.00");
        assert_eq!(off.amount(sums), "5980.00");
        let margin = |include_delivery_cost| Markers {
            include_delivery_cost,
            revenue: Revenue::Margin,
            ..on
        };
        assert_eq!(margin(true).amount(sums), "2230.00");
        assert_eq!(margin(false).amount(sums), "1880.00");
        for include_delivery_cost in [true, false] {
            let paid = Markers {
                include_delivery_cost,
                revenue: Revenue::Paid,
                ..on
            };
            assert_eq!(
                paid.amount(sums),
                "1000.00",
                "the delivery marker does not apply"
            );
        }
        assert_eq!(on.funnel_id("shop-main"), "default");
        assert_eq!(off.funnel_id("shop-main"), "shop-main");
    }

    #[test]
    fn outcome_comes_from_the_group() {
        assert_eq!(Outcome::of_group(Some("complete")), Outcome::Won);
        assert_eq!(Outcome::of_group(Some("cancel")), Outcome::Lost);
        assert_eq!(Outcome::of_group(Some("delivery")), Outcome::Open);
        assert_eq!(Outcome::of_group(None), Outcome::Open);
        for o in [Outcome::Open, Outcome::Won, Outcome::Lost] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }

    #[test]
    fn open_deals_have_no_closure() {
        let history = [entered("new", 1, Outcome::Open)];
        assert_eq!(
            closure(&history, Outcome::Open, Some(1)),
            Closure::default()
        );
    }

    #[test]
    fn closure_is_the_first_closed_stage_after_the_last_open_one() {
        let history = [
            entered("cancel-other", 5, Outcome::Lost),
            entered("new", 1, Outcome::Open),
            entered("assembling", 3, Outcome::Open),
            entered("returned", 7, Outcome::Lost),
        ];
        let c = closure(&history, Outcome::Lost, Some(7));
        assert_eq!(c.closed_at, Some(5));
        assert_eq!(c.last_open_stage.as_deref(), Some("assembling"));
    }

    #[test]
    fn a_reopened_deal_closes_again_later() {
        let history = [
            entered("new", 1, Outcome::Open),
            entered("cancel-other", 2, Outcome::Lost),
            entered("new", 3, Outcome::Open),
            entered("complete", 4, Outcome::Won),
        ];
        let c = closure(&history, Outcome::Won, Some(4));
        assert_eq!(c.closed_at, Some(4));
        assert_eq!(c.last_open_stage.as_deref(), Some("new"));
    }

    #[test]
    fn a_deal_created_closed_has_no_open_stage() {
        let c = closure(
            &[entered("complete", 9, Outcome::Won)],
            Outcome::Won,
            Some(9),
        );
        assert_eq!(c.closed_at, Some(9));
        assert_eq!(c.last_open_stage, None);
        let c = closure(&[], Outcome::Won, Some(4));
        assert_eq!(c.closed_at, Some(4));
        let c = closure(&[entered("new", 1, Outcome::Open)], Outcome::Lost, None);
        assert_eq!(c.closed_at, None);
        assert_eq!(c.last_open_stage.as_deref(), Some("new"));
    }
}
