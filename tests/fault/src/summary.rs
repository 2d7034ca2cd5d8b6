//! The summary table: faults injected by type with their checked effect, orders and stage
//! histories checked, mismatches, dead letters, the secrets scan; and the verdict.

use std::collections::BTreeMap;

use crate::faults::Record;
use crate::secrets::Scan;
use crate::verify::Report;

/// Everything the verdict depends on.
#[derive(Debug, Default)]
pub struct Summary {
    pub seed: u64,
    pub faults: Vec<Record>,
    /// Processes that exited without being killed, and other failures outside the table.
    pub problems: Vec<String>,
    pub reports: Vec<(String, Report)>,
    /// Per deployment: (poison injected, dead letters found, problems).
    pub dead_letters: Vec<(String, usize, usize, Vec<String>)>,
    pub webhooks: Vec<(String, crate::chaos::SenderStats)>,
    pub script: crate::scenario::ScriptStats,
    pub scan: Scan,
    pub converged_after: Option<f64>,
}

impl Summary {
    /// Prints the table and returns whether the suite passed.
    pub fn print(&self) -> bool {
        let line = "-".repeat(96);
        println!("\n{line}\nFAULT SUITE SUMMARY (seed {})\n{line}", self.seed);
        println!(
            "change script: {} status changes, {} edits, {} created, {} deleted, {} merges ({} refused); \
             webhooks planned {} ({} duplicates, {} never sent)",
            self.script.status_changes,
            self.script.edits,
            self.script.created,
            self.script.deleted,
            self.script.merged,
            self.script.refused,
            self.script.planned_webhooks,
            self.script.duplicates,
            self.script.never_sent,
        );
        for (name, s) in &self.webhooks {
            println!(
                "webhooks to {name}: {} sent, {} accepted (202), {} unanswered (process down), {} other",
                s.sent, s.accepted, s.unanswered, s.other
            );
        }
        println!(
            "\n{:<34} {:>8} {:>9}  example effect",
            "fault", "injected", "verified"
        );
        let mut by_kind: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for r in &self.faults {
            by_kind.entry(r.kind).or_default().push(r);
        }
        for (kind, records) in &by_kind {
            let verified = records.iter().filter(|r| r.verified).count();
            let example = records.iter().find(|r| !r.verified).unwrap_or(&records[0]);
            println!(
                "{kind:<34} {:>8} {:>9}  {} at {:.0}s: {}",
                records.len(),
                verified,
                example.target,
                example.at,
                example.effect
            );
        }
        let faults_ok = self.faults.iter().all(|r| r.verified);
        for exit in &self.problems {
            println!("PROBLEM: {exit}");
        }

        println!();
        let mut mismatches = 0;
        for (name, r) in &self.reports {
            println!(
                "{name:<10} orders checked {:>5}, stage histories checked {:>5}, mismatches {}",
                r.orders_checked,
                r.histories_checked,
                r.mismatches.len()
            );
            for m in r.mismatches.iter().take(25) {
                println!("    {m}");
            }
            mismatches += r.mismatches.len();
        }
        match self.converged_after {
            Some(s) => println!("converged {s:.0}s after the faults stopped"),
            None => println!("did NOT converge within the wait"),
        }
        let mut dead_ok = true;
        for (name, injected, found, problems) in &self.dead_letters {
            println!(
                "{name:<10} dead letters: {found} found, {injected} made invalid on purpose{}",
                if problems.is_empty() {
                    ", exactly those"
                } else {
                    ""
                }
            );
            for p in problems {
                println!("    {p}");
            }
            dead_ok &= problems.is_empty();
        }
        println!(
            "secrets scan: {} files and {} texts ({:.1} MB): {} finding(s)",
            self.scan.files,
            self.scan.texts,
            self.scan.bytes as f64 / 1e6,
            self.scan.findings.len()
        );
        for f in self.scan.findings.iter().take(25) {
            println!("    {} in clear in {}", f.secret, f.place);
        }
        let orders: usize = self.reports.iter().map(|(_, r)| r.orders_checked).sum();
        let passed = faults_ok
            && self.problems.is_empty()
            && mismatches == 0
            && self.converged_after.is_some()
            && dead_ok
            && self.scan.findings.is_empty();
        println!(
            "{line}\nfaults injected: {} ({} verified) | orders checked: {orders} | mismatches: {mismatches} | {}\n{line}",
            self.faults.len(),
            self.faults.iter().filter(|r| r.verified).count(),
            if passed { "PASSED" } else { "FAILED" }
        );
        passed
    }
}
