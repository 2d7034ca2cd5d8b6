//! Capturing every log line of a test binary, so a test can assert what never appears (an API
//! key, a webhook token) as well as what does.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every log line of this test binary at TRACE, without colours, from a subscriber installed by
/// the first caller. Logs of other tests of the same binary land here too, which only makes a
/// "never appears" check stricter. Panics if the binary installed another subscriber first (a
/// binary that captures must not also honour `TEST_LOG`).
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .try_init()
            .expect("a capturing test binary installs no other subscriber (unset TEST_LOG)");
        buffer
    })
    .clone()
}

/// Whether `haystack` (captured logs, a payload, a file) holds `needle`; an empty needle is
/// never found.
pub fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
