//! The run's figures from what was recorded: each change's lag to the first deal event that
//! shows it, every account's reconciliation gaps from the simulator's history calls, and the
//! process's memory and CPU per phase. Pure functions, tested here.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::e2e::percentile;
use crate::memory::Series;

/// `delivery.cost` of version `v` of an order is `BASE + v` (generated costs are far below).
pub(super) const BASE: u64 = 1_000_000;
/// History calls closer than this are one reconciliation (its pages, a retry after a 503).
pub(super) const SAME_READ: Duration = Duration::from_secs(2);
/// A gap this much over the interval counts as missed: the enricher schedules the next read
/// one interval after the last one *began*, but the counters are sampled every 250 ms and a
/// read may wait for a budget token, so a gap measured here can sit a little over it.
pub(super) const SLACK: Duration = Duration::from_secs(1);

/// The process's memory and CPU over the run (RSS from `/proc/<pid>/status`).
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub at_ready_kib: u64,
    /// Once every account's worker had loaded its reference data, before the load.
    pub loaded_kib: u64,
    pub peak_kib: u64,
    pub end_kib: u64,
    pub hwm_kib: u64,
    pub cores_warm_up: f64,
    pub cores_load: f64,
    pub cores_run: f64,
    /// `(time since ready, RSS)` every 10 s, and the last reading.
    pub timeline: Vec<(Duration, u64)>,
}

/// Lags from a webhook's acknowledgement to the first deal event showing its version.
#[derive(Debug, Clone, Default)]
pub struct Lags {
    pub sent: usize,
    pub acknowledged: usize,
    /// Sent more than 100 ms after their time (the load generator shares the cores).
    pub late: usize,
    pub seen: usize,
    pub p50: Duration,
    pub p99: Duration,
    /// The worst account's worst lag, and that account.
    pub worst: Duration,
    pub worst_account: usize,
    /// Accounts with an acknowledged change never shown by a deal event.
    pub accounts_unseen: usize,
}

/// Every account's reconciliations as the simulator saw them.
#[derive(Debug, Clone, Default)]
pub struct Reconciliations {
    /// `GET /orders/history` calls over all accounts, and the reads they make up.
    pub calls: u64,
    pub reads: usize,
    /// Reads per account: fewest and most.
    pub fewest: usize,
    pub most: usize,
    /// The largest gap of any account (from connecting to its first read, between two reads,
    /// or from its last read to the end when that is over the interval), and the account.
    pub largest: Duration,
    pub largest_account: usize,
    /// The largest gaps from connecting to the first read, and between two reads.
    pub largest_first: Duration,
    pub largest_between: Duration,
    pub p99: Duration,
    pub median: Duration,
    /// Accounts with a gap over the interval, and over the interval + [`SLACK`].
    pub over: usize,
    pub missed: usize,
    /// The enricher's own counter (`reconciliations_total`, complete and yielded).
    pub counted: Option<f64>,
}

/// One order change: the edit in the simulator, then its webhook.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub(super) account: usize,
    pub(super) order: u64,
    pub(super) version: u64,
    pub(super) acknowledged: Option<DateTime<Utc>>,
}

/// When the phases of the run ended: on the sampler's clock, and `end` as an instant.
#[derive(Debug)]
pub(super) struct Phases {
    /// Every account's reference data loaded.
    pub(super) loaded: Duration,
    /// The load ran from `from` to `to`.
    pub(super) from: Duration,
    pub(super) to: Duration,
    pub(super) late: usize,
    /// How long after the load the enricher's queues were empty.
    pub(super) drained: Option<Duration>,
    pub(super) end: Instant,
}

/// Per (account, order): the versions its deal events showed, with their `occurred_at`.
pub(super) type Shown = HashMap<(usize, u64), Vec<(u64, DateTime<Utc>)>>;

/// The version a `delivery.cost` stands for (`"1000007.00"` → 7); `None` for generated costs.
pub(super) fn version_of(cost: &str) -> Option<u64> {
    let whole = cost.split('.').next()?.parse::<u64>().ok()?;
    whole.checked_sub(BASE).filter(|v| *v > 0)
}

/// When each change's version (or a later one) first showed in a deal event of its order.
pub(super) fn first_shown(changes: &[Change], shown: &Shown) -> Vec<Option<DateTime<Utc>>> {
    changes
        .iter()
        .map(|c| {
            shown
                .get(&(c.account, c.order))?
                .iter()
                .filter(|(version, _)| *version >= c.version)
                .map(|(_, at)| *at)
                .min()
        })
        .collect()
}

/// The lags of the acknowledged changes (`late` is the caller's).
pub(super) fn lags(changes: &[Change], shown: &[Option<DateTime<Utc>>], accounts: usize) -> Lags {
    let mut worst = vec![Duration::ZERO; accounts];
    let mut unseen = vec![false; accounts];
    let mut all = Vec::with_capacity(changes.len());
    for (change, at) in changes.iter().zip(shown) {
        let Some(acknowledged) = change.acknowledged else {
            continue;
        };
        match at {
            Some(at) => {
                // A fetch for an earlier webhook can show the edit before this one's ack: 0.
                let lag = (*at - acknowledged).to_std().unwrap_or_default();
                worst[change.account] = worst[change.account].max(lag);
                all.push(lag);
            }
            None => unseen[change.account] = true,
        }
    }
    all.sort_unstable();
    let (worst_account, worst) = worst
        .iter()
        .copied()
        .enumerate()
        .max_by_key(|(_, lag)| *lag)
        .unwrap_or_default();
    Lags {
        sent: changes.len(),
        acknowledged: changes.iter().filter(|c| c.acknowledged.is_some()).count(),
        late: 0,
        seen: all.len(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        worst,
        worst_account,
        accounts_unseen: unseen.iter().filter(|u| **u).count(),
    }
}

/// For a diagnosis: how many lags were over 1 s in each 5 s of the load (do they gather
/// where every account's reconciliation runs at once?).
pub(super) fn slow_by_window(changes: &[Change], shown: &[Option<DateTime<Utc>>]) -> Vec<usize> {
    let Some(start) = changes.iter().filter_map(|c| c.acknowledged).min() else {
        return Vec::new();
    };
    let mut windows = Vec::new();
    for (change, at) in changes.iter().zip(shown) {
        let (Some(acknowledged), Some(at)) = (change.acknowledged, at) else {
            continue;
        };
        if (*at - acknowledged).num_milliseconds() > 1000 {
            let window = usize::try_from((acknowledged - start).num_seconds() / 5).unwrap_or(0);
            if windows.len() <= window {
                windows.resize(window + 1, 0);
            }
            windows[window] += 1;
        }
    }
    windows
}

/// History calls closer than [`SAME_READ`] merged into one read, dated by its first call.
fn reads(calls: &[Instant]) -> Vec<Instant> {
    let mut reads = Vec::new();
    let mut previous: Option<Instant> = None;
    for &call in calls {
        if previous.is_none_or(|p| call.saturating_duration_since(p) >= SAME_READ) {
            reads.push(call);
        }
        previous = Some(call);
    }
    reads
}

/// An account's gaps: from connecting to its first read, between reads, and from its last
/// read to `end` when that is already over `interval` (a read that should have come).
fn gaps(reads: &[Instant], connected: Instant, end: Instant, interval: Duration) -> Vec<Duration> {
    let mut gaps = Vec::with_capacity(reads.len() + 1);
    let mut previous = connected;
    for &read in reads {
        gaps.push(read.saturating_duration_since(previous));
        previous = read;
    }
    let tail = end.saturating_duration_since(previous);
    if tail > interval {
        gaps.push(tail);
    }
    gaps
}

/// Every account's reads and gaps, summed up.
pub(super) fn reconciliations(
    history: &[Vec<Instant>],
    connected: &[Instant],
    end: Instant,
    interval: Duration,
) -> Reconciliations {
    let mut r = Reconciliations {
        fewest: usize::MAX,
        ..Reconciliations::default()
    };
    let mut all = Vec::new();
    for (account, (calls, &since)) in history.iter().zip(connected).enumerate() {
        let reads = reads(calls);
        r.reads += reads.len();
        r.fewest = r.fewest.min(reads.len());
        r.most = r.most.max(reads.len());
        if let Some(first) = reads.first() {
            r.largest_first = r.largest_first.max(first.saturating_duration_since(since));
        }
        for pair in reads.windows(2) {
            r.largest_between = r.largest_between.max(pair[1] - pair[0]);
        }
        let gaps = gaps(&reads, since, end, interval);
        let largest = gaps.iter().copied().max().unwrap_or_default();
        if largest > r.largest {
            r.largest = largest;
            r.largest_account = account;
        }
        r.over += usize::from(largest > interval);
        r.missed += usize::from(largest > interval + SLACK);
        all.extend(gaps);
    }
    r.fewest = r.fewest.min(r.most);
    all.sort_unstable();
    r.median = percentile(&all, 0.50);
    r.p99 = percentile(&all, 0.99);
    r
}

/// RSS at each phase and the cores used in each.
pub(super) fn resources(series: &Series, phases: &Phases) -> Resources {
    let rss = |at| series.at(at).map_or(0, |r| r.rss_kib);
    let first = series.readings.first().map_or(Duration::ZERO, |r| r.at);
    let last = series.last();
    Resources {
        at_ready_kib: series.readings.first().map_or(0, |r| r.rss_kib),
        loaded_kib: rss(phases.loaded),
        peak_kib: series.readings.iter().map(|r| r.rss_kib).max().unwrap_or(0),
        end_kib: last.map_or(0, |r| r.rss_kib),
        hwm_kib: last.map_or(0, |r| r.hwm_kib),
        cores_warm_up: series.cores(first, phases.loaded),
        cores_load: series.cores(phases.from, phases.to),
        cores_run: series.cores(first, last.map_or(first, |r| r.at)),
        timeline: every_ten_seconds(series),
    }
}

/// One RSS reading every 10 s, and the last one.
fn every_ten_seconds(series: &Series) -> Vec<(Duration, u64)> {
    let mut out = Vec::new();
    let mut next = Duration::ZERO;
    for (i, r) in series.readings.iter().enumerate() {
        if r.at >= next || i + 1 == series.readings.len() {
            out.push((r.at, r.rss_kib));
            next = r.at + Duration::from_secs(10);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_name_versions() {
        assert_eq!(version_of("1000007.00"), Some(7));
        assert_eq!(version_of("1000012"), Some(12));
        assert_eq!(version_of("350.50"), None);
        assert_eq!(version_of("1000000"), None);
    }

    #[test]
    fn a_change_shows_at_the_first_event_of_its_version_or_later() {
        let at = |s| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let change = |version| Change {
            account: 0,
            order: 5,
            version,
            acknowledged: Some(at(100)),
        };
        let changes = vec![change(1), change(2), change(3)];
        let shown = Shown::from([((0, 5), vec![(2, at(103)), (1, at(101)), (2, at(102))])]);
        let first = first_shown(&changes, &shown);
        assert_eq!(first, vec![Some(at(101)), Some(at(102)), None]);
        let l = lags(&changes, &first, 2);
        assert_eq!((l.seen, l.accounts_unseen), (2, 1));
        assert_eq!((l.worst, l.worst_account), (Duration::from_secs(2), 0));
    }

    #[test]
    fn gaps_cover_connect_reads_and_an_overdue_tail() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_millis(n);
        // Two calls 500 ms apart are one read; 30 s is the interval.
        let calls = [s(30_000), s(30_500), s(60_200), s(91_500)];
        let reads = reads(&calls);
        assert_eq!(reads, vec![s(30_000), s(60_200), s(91_500)]);
        let interval = Duration::from_secs(30);
        let ms = Duration::from_millis;
        assert_eq!(
            gaps(&reads, t0, s(100_000), interval),
            vec![ms(30_000), ms(30_200), ms(31_300)]
        );
        // No read since 40 s: the open tail counts.
        assert_eq!(
            gaps(&reads[..1], t0, s(75_000), interval),
            vec![ms(30_000), ms(45_000)]
        );
        let r = reconciliations(
            &[calls.to_vec(), Vec::new()],
            &[t0, t0],
            s(100_000),
            interval,
        );
        assert_eq!((r.reads, r.fewest, r.most), (3, 0, 3));
        assert_eq!((r.largest, r.largest_account), (ms(100_000), 1));
        assert_eq!((r.over, r.missed), (2, 2));
        assert_eq!(
            (r.largest_first, r.largest_between),
            (ms(30_000), ms(31_300))
        );
    }
}
