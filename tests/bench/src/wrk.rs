//! Running `wrk` (the load generator, a second process) and reading its report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// One `wrk` run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// Completed requests per second.
    pub requests_per_sec: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Responses that were not 2xx/3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors.
    pub socket_errors: u64,
}

/// Runs `wrk -t<threads> -c<connections> -d<duration> --latency -s <script> <url>`.
pub fn run(
    url: &str,
    script: &Path,
    threads: usize,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk (is it installed? tests/bench/run.sh installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("reading wrk's report:\n{text}"))
}

/// Reads `Requests/sec`, the 50 % / 99 % lines of `--latency` and the error lines.
pub fn parse(report: &str) -> anyhow::Result<WrkResult> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in report.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = Some(rest.trim().parse::<f64>()?);
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50 = Some(duration(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = Some(duration(rest.trim())?);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    Ok(WrkResult {
        requests_per_sec: rps.context("no Requests/sec line")?,
        p50: p50.context("no 50% line")?,
        p99: p99.context("no 99% line")?,
        non_2xx,
        socket_errors,
    })
}

/// `812.00us`, `1.23ms`, `2.01s`, `1.5m` → a duration.
fn duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .context("a latency without a unit")?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        other => bail!("unknown latency unit {other:?}"),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:1/hooks/retailcrm/x
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  300.00us  12.00ms   90.00%
  Latency Distribution
     50%  700.00us
     75%    1.00ms
     90%    1.20ms
     99%    2.50ms
  1000000 requests in 10.00s, 100.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec: 100000.00
Transfer/sec:     10.00MB
";

    #[test]
    fn reads_throughput_percentiles_and_errors() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.requests_per_sec, 100_000.0);
        assert_eq!(r.p50, Duration::from_micros(700));
        assert_eq!(r.p99, Duration::from_micros(2500));
        assert_eq!(r.non_2xx, 5);
        assert_eq!(r.socket_errors, 3);
    }
}
