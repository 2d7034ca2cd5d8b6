//! The deals page's charts as inline SVG, drawn on the server (no script, no build step):
//! deals created per day over the last 30 days, stacked by outcome, and the funnel — deals per
//! current stage in funnel order. Every bar carries a `<title>`, so hovering tells the figure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{Days, NaiveDate};
use dealflow_projector::read::charts::DayCount;

/// Days the daily chart shows (today included).
pub const DAYS: u64 = 30;

const OUTCOMES: [(&str, &str); 3] = [("won", "#2e9e4f"), ("lost", "#d1453b"), ("open", "#2d5bd7")];

/// Escapes text for SVG (stage names come from RetailCRM).
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Stacked columns of deals created per day, `DAYS` days up to `today`.
pub fn per_day(counts: &[DayCount], today: NaiveDate) -> String {
    let first = today - Days::new(DAYS - 1);
    let mut by_day: BTreeMap<NaiveDate, BTreeMap<&str, u64>> = BTreeMap::new();
    for c in counts.iter().filter(|c| c.day >= first && c.day <= today) {
        *by_day
            .entry(c.day)
            .or_default()
            .entry(c.outcome.as_str())
            .or_default() += c.count;
    }
    let max = by_day
        .values()
        .map(|o| o.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, left, bottom) = (720.0, 180.0, 36.0, 22.0);
    let plot = height - bottom - 8.0;
    let step = (width - left) / DAYS as f64;
    let mut svg = format!(
        r#"<svg id="chart-per-day" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="Deals created per day, last {DAYS} days, by outcome">"#
    );
    let _ = write!(
        svg,
        r##"<text x="2" y="12" font-size="10" fill="#67707d">{max}</text><line x1="{left}" y1="{base}" x2="{width}" y2="{base}" stroke="#b9c0cb"/>"##,
        base = height - bottom
    );
    for i in 0..DAYS {
        let day = first + Days::new(i);
        let x = left + i as f64 * step;
        let mut y = height - bottom;
        if let Some(outcomes) = by_day.get(&day) {
            for (outcome, color) in OUTCOMES {
                let n = outcomes.get(outcome).copied().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let h = plot * n as f64 / max as f64;
                y -= h;
                let _ = write!(
                    svg,
                    r#"<rect class="bar {outcome}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"><title>{day}: {n} {outcome}</title></rect>"#,
                    w = step * 0.8
                );
            }
        }
        if i % 5 == 0 || i == DAYS - 1 {
            let _ = write!(
                svg,
                r##"<text x="{x:.1}" y="{ty}" font-size="10" fill="#67707d">{}</text>"##,
                day.format("%d.%m"),
                ty = height - 6.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One horizontal bar per stage (name, deals), in the order given (the funnel's).
pub fn funnel(stages: &[(String, u64)]) -> String {
    let max = stages.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row = 22.0;
    let (width, label) = (720.0, 230.0);
    let height = row * stages.len().max(1) as f64 + 4.0;
    let mut svg = format!(
        r#"<svg id="chart-funnel" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="Deals per current stage">"#
    );
    for (i, (name, n)) in stages.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let w =
            ((width - label - 60.0) * *n as f64 / max as f64).max(if *n > 0 { 2.0 } else { 0.0 });
        let name = esc(name);
        let _ = write!(
            svg,
            r##"<text x="{tx}" y="{ty:.1}" font-size="12" text-anchor="end" fill="#1d2330">{name}</text><rect class="stage" x="{label}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#2d5bd7"><title>{name}: {n}</title></rect><text x="{nx:.1}" y="{ty:.1}" font-size="12" fill="#67707d">{n}</text>"##,
            tx = label - 8.0,
            ty = y + 14.0,
            h = row - 6.0,
            nx = label + w + 6.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The stages that hold deals, in funnel order (the stage mapping lists every status in it),
/// named; a stage the mapping does not know yet comes last under its code.
pub fn in_funnel_order(
    statuses: &[dealflow_shared::stages::StageMappingItem],
    counts: &[(String, u64)],
) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<&str, u64> = counts.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    let mut out = Vec::new();
    for s in statuses {
        if let Some(n) = counts.remove(s.code.as_str()) {
            out.push((s.name.clone(), n));
        }
    }
    out.extend(counts.into_iter().map(|(code, n)| (code.to_owned(), n)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
    }

    #[test]
    fn the_daily_chart_stacks_outcomes_and_leaves_out_older_days() {
        let counts = vec![
            DayCount {
                day: day(1),
                outcome: "won".into(),
                count: 9,
            },
            DayCount {
                day: day(30),
                outcome: "won".into(),
                count: 2,
            },
            DayCount {
                day: day(30),
                outcome: "lost".into(),
                count: 1,
            },
            DayCount {
                day: day(31),
                outcome: "open".into(),
                count: 4,
            },
        ];
        let svg = per_day(&counts, day(31));
        assert!(svg.starts_with("<svg id=\"chart-per-day\""));
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("<title>2024-03-30: 2 won</title>"));
        assert!(svg.contains("<title>2024-03-31: 4 open</title>"));
        assert!(!svg.contains("2024-03-01"), "day 1 is 31 days back");
        // The tallest day (4, or 2 + 1 stacked) sets the scale.
        assert!(svg.contains(">4</text>"));
    }

    #[test]
    fn the_funnel_has_a_bar_per_stage_and_escapes_names() {
        let svg = funnel(&[("Новый".into(), 10), ("<b>&".into(), 0)]);
        assert_eq!(svg.matches("class=\"stage\"").count(), 2);
        assert!(svg.contains("<title>Новый: 10</title>"));
        assert!(svg.contains("&lt;b&gt;&amp;"));
        assert!(!svg.contains("<b>"));
    }
}
