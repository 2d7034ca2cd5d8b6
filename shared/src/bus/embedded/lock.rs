//! The one-process guard of the embedded log: an advisory lock on `<file>.lock`.
//!
//! It keeps a second process (or a second open in this one) from writing the same file. The
//! writer thread holds the lock until it has closed its connections, so a reopen in this process
//! waits briefly for the previous instance to finish closing instead of failing at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bus::BusError;

/// How long `open` waits for the lock held by a closing instance in this process.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Takes the advisory lock next to the database, waiting briefly for a closing instance.
pub(super) async fn lock_file(path: &Path) -> Result<File, BusError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| BusError::fatal(format!("opening {}", lock_path.display()), e))?;
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(LOCK_RETRY).await;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(BusError::fatal_msg(format!(
                    "the embedded log {} is in use by another process (lock {} is held)",
                    path.display(),
                    lock_path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(BusError::fatal(
                    format!("locking {}", lock_path.display()),
                    e,
                ));
            }
        }
    }
}
