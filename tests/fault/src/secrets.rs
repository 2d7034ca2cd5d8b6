//! The secrets scan: no RetailCRM API key and no webhook token may appear in clear in any
//! captured log line, `/metrics` output, error body the suite received, URL sent to RetailCRM,
//! row of the read model or file under a data directory, across the whole fault run.

use std::path::{Path, PathBuf};

/// One secret to look for.
#[derive(Debug, Clone)]
pub struct Needle {
    /// What it is, for the report (never the value itself).
    pub label: String,
    pub value: String,
}

/// Where a secret was found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub secret: String,
    pub place: String,
}

/// What was searched and what was found.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: usize,
    pub bytes: u64,
    pub texts: usize,
    pub findings: Vec<Finding>,
}

impl Scan {
    fn check(&mut self, needles: &[Needle], haystack: &[u8], place: &str) {
        for n in needles {
            if !n.value.is_empty()
                && haystack
                    .windows(n.value.len())
                    .any(|w| w == n.value.as_bytes())
            {
                self.findings.push(Finding {
                    secret: n.label.clone(),
                    place: place.to_owned(),
                });
            }
        }
    }

    /// Searches an in-memory text (a `/metrics` answer, an error body, a database dump…).
    pub fn text(&mut self, needles: &[Needle], text: &str, place: &str) {
        self.texts += 1;
        self.bytes += text.len() as u64;
        self.check(needles, text.as_bytes(), place);
    }

    /// Searches every file under `root` (logs, SQLite files and their WAL, the broker's data).
    pub fn tree(&mut self, needles: &[Needle], root: &Path) -> anyhow::Result<()> {
        let mut stack: Vec<PathBuf> = vec![root.to_owned()];
        while let Some(path) = stack.pop() {
            // A file can vanish between the listing and the read (SQLite's -shm, a WAL
            // checkpoint): what is gone holds nothing.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)?.flatten() {
                    stack.push(entry.path());
                }
            } else if meta.is_file() {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                self.files += 1;
                self.bytes += bytes.len() as u64;
                self.check(needles, &bytes, &path.display().to_string());
            }
        }
        Ok(())
    }
}

/// The webhook token of a webhook URL (its last path segment).
pub fn token_of(webhook_url: &str) -> String {
    webhook_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_secret_in_a_text_and_a_file() {
        let needles = vec![Needle {
            label: "key".into(),
            value: "s3cr3tkey".into(),
        }];
        let mut scan = Scan::default();
        scan.text(&needles, "nothing here", "a");
        assert!(scan.findings.is_empty());
        scan.text(&needles, "x-api-key: s3cr3tkey", "b");
        assert_eq!(scan.findings.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f.db"), b"\0\0s3cr3tkey\0").unwrap();
        scan.tree(&needles, dir.path()).unwrap();
        assert_eq!(scan.findings.len(), 2);
        assert_eq!(scan.files, 1);
    }

    #[test]
    fn the_token_is_the_last_segment() {
        assert_eq!(token_of("http://h:1/webhooks/retailcrm/abc123"), "abc123");
    }
}
