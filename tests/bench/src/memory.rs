//! Memory and CPU of child processes, sampled from `/proc/<pid>/status` (`VmRSS`, `VmHWM`)
//! and `/proc/<pid>/stat` (user + system time) at a fixed interval while a benchmark runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One reading of one process.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Since the sampler started.
    pub at: Duration,
    /// Resident set size now.
    pub rss_kib: u64,
    /// The highest RSS so far (the kernel's high-water mark).
    pub hwm_kib: u64,
    /// CPU time used so far (user + system).
    pub cpu: Duration,
}

/// Reads `pid`'s memory and CPU now; `None` once it has exited.
pub fn read(pid: u32, at: Duration) -> Option<Reading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Reading {
        at,
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu: cpu_time(pid).unwrap_or_default(),
    })
}

/// utime + stime from `/proc/<pid>/stat` (fields 14 and 15, in clock ticks of 1/100 s: the
/// value of `CLK_TCK` on every Linux architecture this runs on).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The readings of one process over a run.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub readings: Vec<Reading>,
}

impl Series {
    pub fn last(&self) -> Option<Reading> {
        self.readings.last().copied()
    }
    /// The last reading at or before `at`.
    pub fn at(&self, at: Duration) -> Option<Reading> {
        self.readings.iter().rev().find(|r| r.at <= at).copied()
    }
    /// Cores used on average between two readings.
    pub fn cores(&self, from: Duration, to: Duration) -> f64 {
        match (self.at(from), self.at(to)) {
            (Some(a), Some(b)) if b.at > a.at => {
                (b.cpu.as_secs_f64() - a.cpu.as_secs_f64()) / (b.at - a.at).as_secs_f64()
            }
            _ => f64::NAN,
        }
    }
}

/// Samples processes in the background until [`Sampler::finish`].
pub struct Sampler {
    started: Instant,
    series: Arc<Mutex<Vec<Series>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Reads each `(label, pid)` every `every`.
    pub fn start(processes: Vec<(String, u32)>, every: Duration) -> Self {
        let started = Instant::now();
        let series = Arc::new(Mutex::new(
            processes
                .iter()
                .map(|(label, _)| Series {
                    label: label.clone(),
                    readings: Vec::new(),
                })
                .collect::<Vec<_>>(),
        ));
        let stop = CancellationToken::new();
        let task = {
            let (series, stop) = (series.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = stop.cancelled() => return,
                    }
                    let at = started.elapsed();
                    let mut series = series.lock().unwrap_or_else(|e| e.into_inner());
                    for ((_, pid), s) in processes.iter().zip(series.iter_mut()) {
                        if let Some(r) = read(*pid, at) {
                            s.readings.push(r);
                        }
                    }
                }
            })
        };
        Self {
            started,
            series,
            stop,
            task,
        }
    }

    /// Time since the sampler started (the `at` of readings).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sampling and returns every series.
    pub async fn finish(self) -> Vec<Series> {
        self.stop.cancel();
        let _ = self.task.await;
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.clone()
    }
}

/// `123.4 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let r = read(std::process::id(), Duration::ZERO).expect("own /proc entry");
        assert!(r.rss_kib > 0 && r.hwm_kib >= r.rss_kib, "{r:?}");
        // Burn a little CPU so the counter has something to show.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let later = read(std::process::id(), Duration::ZERO).unwrap();
        assert!(later.cpu > Duration::ZERO, "{later:?}");
    }

    #[test]
    fn a_gone_process_reads_as_none() {
        assert!(read(u32::MAX - 1, Duration::ZERO).is_none());
    }
}
