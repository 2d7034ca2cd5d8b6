//! The embedded log's SQLite schema, its migration, and the header encoding.
//!
//! Tables:
//! - `topics`: one row per topic, with the next offset to assign (kept here rather than derived
//!   from `MAX(offset)` so offsets never repeat after retention deletes the tail's records);
//! - `records`: the log itself, keyed by `(topic_id, offset)`;
//! - `group_offsets`: the committed position per `(group, topic)`, i.e. the next offset to read.

use rusqlite::{Connection, TransactionBehavior};

use super::super::{BusError, Retention};

/// Schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const CREATE_V1: &str = "
CREATE TABLE topics (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    retention TEXT NOT NULL,
    next_offset INTEGER NOT NULL
);
CREATE TABLE records (
    topic_id INTEGER NOT NULL REFERENCES topics(id),
    offset INTEGER NOT NULL,
    key TEXT,
    payload BLOB NOT NULL,
    headers BLOB,
    appended_at_ms INTEGER NOT NULL,
    PRIMARY KEY (topic_id, offset)
);
CREATE TABLE group_offsets (
    group_name TEXT NOT NULL,
    topic_id INTEGER NOT NULL REFERENCES topics(id),
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic_id)
);
PRAGMA user_version = 1;
";

/// Creates the schema on a fresh file; refuses a file written by a newer version. Runs on the
/// writer's connection, before anything else writes.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), BusError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| BusError::fatal("reading the embedded log schema version", e))?;
    match version {
        0 => {
            let creating = |e| BusError::fatal("creating the embedded log schema", e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(creating)?;
            tx.execute_batch(CREATE_V1).map_err(creating)?;
            tx.commit().map_err(creating)
        }
        SCHEMA_VERSION => Ok(()),
        other => Err(BusError::fatal_msg(format!(
            "the embedded log file has schema version {other}, newer than this build's {SCHEMA_VERSION}"
        ))),
    }
}

/// Stored form of a [`Retention`].
pub(super) fn retention_to_sql(retention: Retention) -> String {
    match retention {
        Retention::Compacted => "compacted".to_owned(),
        Retention::Days(days) => format!("days:{days}"),
        Retention::Forever => "forever".to_owned(),
    }
}

/// Parses the stored form; unknown values keep everything (the safe reading).
pub(super) fn retention_from_sql(text: &str) -> Retention {
    match text {
        "compacted" => Retention::Compacted,
        other => other
            .strip_prefix("days:")
            .and_then(|d| d.parse().ok())
            .map_or(Retention::Forever, Retention::Days),
    }
}

/// Encodes headers as repeated `[u32 LE name length][name][u32 LE value length][value]`;
/// `None` when there are none (stored as NULL).
pub(super) fn encode_headers(headers: &[(String, Vec<u8>)]) -> Result<Option<Vec<u8>>, BusError> {
    if headers.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (name, value) in headers {
        for part in [name.as_bytes(), value.as_slice()] {
            let len = u32::try_from(part.len())
                .map_err(|_| BusError::fatal_msg(format!("header {name:?} is too large")))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(Some(out))
}

/// Decodes [`encode_headers`]' format.
pub(super) fn decode_headers(bytes: Option<&[u8]>) -> Result<Vec<(String, Vec<u8>)>, BusError> {
    let Some(mut rest) = bytes else {
        return Ok(Vec::new());
    };
    let mut headers = Vec::new();
    while !rest.is_empty() {
        let name = String::from_utf8(take_part(&mut rest)?).map_err(|_| corrupt())?;
        let value = take_part(&mut rest)?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn corrupt() -> BusError {
    BusError::fatal_msg("corrupt headers in the embedded log")
}

/// Splits one length-prefixed part off the front of `rest`.
fn take_part(rest: &mut &[u8]) -> Result<Vec<u8>, BusError> {
    let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| corrupt())?;
    if tail.len() < len {
        return Err(corrupt());
    }
    let (part, tail) = tail.split_at(len);
    *rest = tail;
    Ok(part.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let headers = vec![
            ("a".to_owned(), b"1".to_vec()),
            ("empty".to_owned(), Vec::new()),
            ("a".to_owned(), vec![0, 255, 7]),
        ];
        let encoded = encode_headers(&headers).unwrap();
        assert_eq!(decode_headers(encoded.as_deref()).unwrap(), headers);
        assert_eq!(encode_headers(&[]).unwrap(), None);
        assert!(decode_headers(None).unwrap().is_empty());
    }

    #[test]
    fn truncated_headers_are_an_error() {
        let encoded = encode_headers(&[("name".to_owned(), b"value".to_vec())])
            .unwrap()
            .unwrap();
        assert!(decode_headers(Some(&encoded[..encoded.len() - 1])).is_err());
        assert!(decode_headers(Some(&[1, 0])).is_err());
    }

    #[test]
    fn retention_round_trips() {
        for r in [Retention::Compacted, Retention::Days(7), Retention::Forever] {
            assert_eq!(retention_from_sql(&retention_to_sql(r)), r);
        }
    }
}
