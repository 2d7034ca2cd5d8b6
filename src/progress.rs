//! Progress of a long command (`dealflow replay`, `dealflow reprocess`): on a terminal a bar
//! with the count, the rate and an ETA (indicatif); elsewhere (a log, CI) one line every few
//! seconds with the same figures, so a captured run still shows where it was.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// One operation's progress (shareable: updates take `&self`).
#[derive(Debug)]
pub struct Progress {
    what: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    /// Progress of `what` (a plural noun: "records"), with a bar when stderr is a terminal.
    pub fn new(what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{wide_bar} {human_pos}/{human_len} {msg} ({per_sec}, ETA {eta})",
                )
                .expect("a valid progress template"),
            );
            bar.set_message(what.to_string());
            bar
        });
        Self {
            what: what.to_string(),
            bar,
            started: Instant::now(),
            last_line: Mutex::new(None),
        }
    }

    /// `done` of `total` so far.
    pub fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let mut last = self.last_line.lock().expect("progress lock");
        if last.is_some_and(|at| at.elapsed() < LINE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        println!("  {}", self.line(done, total));
    }

    /// Clears the bar; the caller prints the summary.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// How long since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// `1234 / 5000 records (24%), 812/s, ETA 4s`.
    fn line(&self, done: u64, total: u64) -> String {
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        let rate = per_second(done, self.elapsed());
        let eta = match rate {
            r if r > 0.0 => format!("{:.0}s", total.saturating_sub(done) as f64 / r),
            _ => "unknown".to_string(),
        };
        format!(
            "{done} / {total} {} ({percent}%), {rate:.0}/s, ETA {eta}",
            self.what
        )
    }
}

/// `count` per second over `elapsed` (0 for no time at all).
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_count_the_share_and_an_eta() {
        let progress = Progress {
            what: "records".into(),
            bar: None,
            started: Instant::now() - Duration::from_secs(10),
            last_line: Mutex::new(None),
        };
        let line = progress.line(250, 1000);
        assert!(
            line.starts_with("250 / 1000 records (25%), 25/s, ETA "),
            "{line}"
        );
        let eta: f64 = line
            .rsplit("ETA ")
            .next()
            .unwrap()
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!((29.0..=31.0).contains(&eta), "{line}");
        assert!(progress.line(0, 0).contains("(100%)"));
        assert!(progress.line(0, 10).ends_with("ETA unknown"));
    }
}
