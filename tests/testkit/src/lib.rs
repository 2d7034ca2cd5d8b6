//! Test harness shared by dealflow's integration tests.
//!
//! - [`Broker`]: a real Kafka-protocol broker (the `nisshi` binary, see `KAFKA.md`) on a free
//!   port, killed when dropped; memory or SQLite storage, restartable.
//! - [`unique_prefix`]: topic and group names that never collide between tests.
//! - [`wait_until`] / [`wait_for`]: poll a condition with a deadline instead of sleeping.
//!
//! Kept free of dealflow crates so any of them can use it as a dev-dependency.

mod broker;
mod wait;

pub use broker::{Broker, Storage};
pub use wait::{wait_for, wait_until};

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
