//! Polling with a deadline: tests wait for a condition, never for a fixed time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Pause between two checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Checks `condition` until it holds; panics naming `what` if it does not within `within`.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(within, what, || {
        let check = condition();
        async move { check.await.then_some(()) }
    })
    .await;
}

/// Calls `probe` until it returns `Some`, and returns that; panics naming `what` if it keeps
/// returning `None` for `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let value = wait_for(Duration::from_secs(5), "the third call", || async {
            (calls.fetch_add(1, Ordering::SeqCst) >= 2).then_some(7)
        })
        .await;
        assert_eq!(value, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for never")]
    async fn panics_at_the_deadline() {
        wait_until(Duration::from_millis(50), "never", || async { false }).await;
    }
}
