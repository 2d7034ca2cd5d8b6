//! Test harness shared by dealflow's integration tests.
//!
//! - [`Broker`]: a real Kafka-protocol broker (the `nisshi` binary, see `KAFKA.md`) on a free
//!   port, killed when dropped; memory or SQLite storage, restartable.
//! - [`unique_prefix`]: topic and group names that never collide between tests.
//! - [`wait_until`] / [`wait_for`]: poll a condition with a deadline instead of sleeping;
//! - [`unpooled_client`]: an HTTP client that never reuses a connection;
//! - [`metrics::scrape`] / [`metrics::series_value`]: a process's `/metrics` and one series.
//!
//! - [`captured_logs`] / [`bytes_contain`]: every log line of a test binary, to assert on;
//! - with the feature `bus`, `bus::TestBus`: a real event bus (embedded log or a broker of
//!   its own) with the topics of one test — the one home of the crates' bus harnesses.
//!
//! Without `bus` it is free of dealflow crates, so `dealflow-shared` itself can use it.

mod broker;
#[cfg(feature = "bus")]
pub mod bus;
mod logs;
pub mod metrics;
mod wait;

pub use broker::{Broker, Storage};
pub use logs::{bytes_contain, captured_logs};
pub use wait::{wait_for, wait_until};

/// An HTTP client whose every request opens a connection of its own and closes it after.
///
/// For requests the server answers by closing the connection (a 413 for a body it will not
/// read, an aborted upload) and for the request right after one: a pooled client may hand the
/// next request the connection the server just closed, which then fails with a broken pipe
/// or a reset depending on timing (a CI flake, issue 14).
pub fn unpooled_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a reqwest client with default TLS builds")
}

/// A prefix unique to this call (`t<32 hex digits>.`), for topic and group names.
pub fn unique_prefix() -> String {
    format!("t{}.", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_differ_and_are_valid_topic_names() {
        let (a, b) = (super::unique_prefix(), super::unique_prefix());
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        );
    }
}
