//! A process's Prometheus `/metrics` as the tests read it: the text, and one series' value.

/// The `/metrics` text served under `base` (`http://host:port`); panics unless it answers 200.
pub async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert!(
        response.status().is_success(),
        "GET /metrics: {}",
        response.status()
    );
    response.text().await.expect("the /metrics body")
}

/// The value of the series written exactly `series` (`name` or `name{labels}`) in `text`;
/// `None` while it is not exported.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.trim().parse().expect("a metric value is a number"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_found_by_its_whole_name_and_labels() {
        let text = "# HELP a_total A.\na_total{x=\"1\"} 3\na_total{x=\"10\"} 4\na_total_sum 2.5\n";
        assert_eq!(series_value(text, "a_total{x=\"1\"}"), Some(3.0));
        assert_eq!(series_value(text, "a_total{x=\"10\"}"), Some(4.0));
        assert_eq!(series_value(text, "a_total_sum"), Some(2.5));
        assert_eq!(
            series_value(text, "a_total"),
            None,
            "a prefix is not a series"
        );
    }
}
