//! Histograms and gauges from a Prometheus text exposition (`/metrics`), enough to say where
//! the time of a benchmark went: the difference of two scrapes of a histogram gives the
//! count, mean and bucket-bounded quantiles of what happened in between.

use std::collections::BTreeMap;

/// One histogram series (a name and its labels other than `le`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound, cumulative count)`, ascending, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// What was observed between `earlier` and `self`.
    pub fn since(&self, earlier: Option<&Histogram>) -> Histogram {
        let Some(earlier) = earlier else {
            return self.clone();
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, n)| *n);
                    (*le, n - before)
                })
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    pub fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            f64::NAN
        }
    }

    /// The upper bound of the bucket holding quantile `q` (an upper bound of the quantile).
    pub fn quantile_bound(&self, q: f64) -> f64 {
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= rank && *n > 0.0)
            .map_or(f64::NAN, |(le, _)| *le)
    }
}

/// Every histogram of a scrape, keyed by `name{labels}` (without `le`).
pub fn histograms(text: &str) -> BTreeMap<String, Histogram> {
    let mut out: BTreeMap<String, Histogram> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut le = None;
        let others: Vec<&str> = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .filter(|l| match l.strip_prefix("le=") {
                Some(bound) => {
                    le = Some(bound.trim_matches('"').to_string());
                    false
                }
                None => true,
            })
            .collect();
        let key = |base: &str| format!("{base}{{{}}}", others.join(","));
        if let Some(base) = name.strip_suffix("_bucket") {
            let bound = match le.as_deref() {
                Some("+Inf") => f64::INFINITY,
                Some(b) => match b.parse() {
                    Ok(b) => b,
                    Err(_) => continue,
                },
                None => continue,
            };
            out.entry(key(base))
                .or_default()
                .buckets
                .push((bound, value));
        } else if let Some(base) = name.strip_suffix("_sum") {
            out.entry(key(base)).or_default().sum = value;
        } else if let Some(base) = name.strip_suffix("_count") {
            out.entry(key(base)).or_default().count = value;
        }
    }
    out.retain(|_, h| !h.buckets.is_empty());
    for h in out.values_mut() {
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The value of a sample without labels (a gauge or counter), or the sum over its label sets.
pub fn value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, v)) = line.rsplit_once(' ') else {
            continue;
        };
        let series_name = series.split('{').next().unwrap_or(series);
        if series_name == name
            && let Ok(v) = v.parse::<f64>()
        {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP enricher_stage_seconds Time spent per stage.
# TYPE enricher_stage_seconds histogram
enricher_stage_seconds_bucket{stage=\"fetch\",le=\"0.1\"} 2
enricher_stage_seconds_bucket{stage=\"fetch\",le=\"1\"} 9
enricher_stage_seconds_bucket{stage=\"fetch\",le=\"+Inf\"} 10
enricher_stage_seconds_sum{stage=\"fetch\"} 5.5
enricher_stage_seconds_count{stage=\"fetch\"} 10
enricher_waiting_orders 7
enricher_accounts{state=\"ready\"} 2
enricher_accounts{state=\"parked\"} 1
";

    #[test]
    fn reads_histograms_and_their_difference() {
        let now = histograms(SCRAPE);
        let fetch = &now["enricher_stage_seconds{stage=\"fetch\"}"];
        assert_eq!(fetch.count, 10.0);
        assert_eq!(fetch.mean(), 0.55);
        assert_eq!(fetch.quantile_bound(0.5), 1.0);
        assert_eq!(fetch.quantile_bound(0.2), 0.1);
        assert_eq!(fetch.quantile_bound(0.99), f64::INFINITY);
        let earlier = Histogram {
            buckets: vec![(0.1, 2.0), (1.0, 2.0), (f64::INFINITY, 2.0)],
            sum: 0.1,
            count: 2.0,
        };
        let between = fetch.since(Some(&earlier));
        assert_eq!(between.count, 8.0);
        assert_eq!(between.quantile_bound(0.5), 1.0);
    }

    #[test]
    fn reads_gauges_summed_over_labels() {
        assert_eq!(value(SCRAPE, "enricher_waiting_orders"), Some(7.0));
        assert_eq!(value(SCRAPE, "enricher_accounts"), Some(3.0));
        assert_eq!(value(SCRAPE, "enricher_consumer_lag"), None);
    }
}
