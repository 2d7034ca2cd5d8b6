//! What statements run on: values, rows and write transactions for both backends.
//!
//! PostgreSQL goes through sqlx's `Any` driver; SQLite's reads and writes through rusqlite on
//! the calling thread: sqlx's SQLite driver runs each connection on a worker thread and hands every
//! row across a channel as an `AnyRow` carrying its columns' names, which made thread wake-ups
//! and allocations most of the projector's time on SQLite (BENCHMARKS.md, issue 20); SQLite
//! itself was a few percent. A SQLite statement here runs right on the calling task's thread:
//! live batches and page reads take a millisecond or so. Handing the runtime's worker over
//! (`block_in_place`), per statement or per large batch, cost more CPU than it saved and left
//! the process with dozens of threads, each with its own malloc arena: +70 MiB resident under
//! the live load, +90 MiB draining a backlog (BENCHMARKS.md, issue 20). A batch of thousands
//! of records (catching up) holds one worker for its ~100 ms; the other serves meanwhile.
//!
//! Values are bound with their SQL type even when null (`Int(None)` is a null BIGINT), since
//! PostgreSQL checks a parameter's type against its column.

use std::sync::Arc;

use dealflow_shared::sqlite_checkpoint::Checkpointer;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Arguments as _, Row as _};
use tokio::sync::OwnedMutexGuard;

use super::StoreError;
use super::values::Columns;

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Int(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Int(None) | Value::Text(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// The values as sqlx arguments.
pub(super) fn any_arguments(values: Vec<Value>) -> AnyArguments<'static> {
    let mut args = AnyArguments::default();
    for value in values {
        // None of these types can fail to encode; if one did, the statement would fail with a
        // clear "wrong number of parameters" error from the database.
        let _ = match value {
            Value::Int(v) => args.add(v),
            Value::Text(v) => args.add(v),
        };
    }
    args
}

/// A statement failure from either driver.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Checkpointer(#[from] dealflow_shared::sqlite_checkpoint::StartError),
}

impl DbError {
    /// SQLite's "busy" or "locked": another connection holds the lock; later may succeed.
    pub(super) fn sqlite_busy(&self) -> bool {
        matches!(
            self,
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                )
        )
    }
}

/// A row read by either driver.
pub(crate) enum Row {
    Any(AnyRow),
    Lite(LiteRow),
}

/// A row read through rusqlite: its values, with the statement's column names shared.
pub(crate) struct LiteRow {
    columns: Arc<[String]>,
    values: Vec<Cell>,
}

/// A value read through rusqlite.
#[derive(Debug)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    /// Not types of this schema (TEXT and BIGINT only); kept so an error can name them.
    Real,
    Blob,
}

impl Columns for Row {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.opt_text(column)?.ok_or_else(|| null(column))
    }

    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?.ok_or_else(|| null(column))
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        match self {
            Row::Any(row) => row
                .try_get(column)
                .map_err(StoreError::query("reading a text column")),
            Row::Lite(row) => match row.cell(column)? {
                Cell::Null => Ok(None),
                Cell::Text(v) => Ok(Some(v.clone())),
                other => Err(mismatch(column, "text", other)),
            },
        }
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        match self {
            Row::Any(row) => row
                .try_get(column)
                .map_err(StoreError::query("reading an integer column")),
            Row::Lite(row) => match row.cell(column)? {
                Cell::Null => Ok(None),
                Cell::Int(v) => Ok(Some(*v)),
                other => Err(mismatch(column, "integer", other)),
            },
        }
    }
}

impl LiteRow {
    /// Each column's name and value as text (`None`: NULL), in the statement's order.
    pub(super) fn texts(&self) -> Result<Vec<(&str, Option<String>)>, StoreError> {
        self.columns
            .iter()
            .zip(&self.values)
            .map(|(column, cell)| {
                let value = match cell {
                    Cell::Null => None,
                    Cell::Int(v) => Some(v.to_string()),
                    Cell::Text(v) => Some(v.clone()),
                    other => return Err(mismatch(column, "integer or text", other)),
                };
                Ok((column.as_str(), value))
            })
            .collect()
    }

    fn cell(&self, column: &str) -> Result<&Cell, StoreError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| &self.values[i])
            .ok_or_else(|| StoreError::Corrupt {
                what: "a column",
                detail: format!("no column {column} in the row"),
            })
    }
}

fn null(column: &str) -> StoreError {
    StoreError::Corrupt {
        what: "a column",
        detail: format!("{column} is null"),
    }
}

fn mismatch(column: &str, wanted: &str, found: &Cell) -> StoreError {
    StoreError::Corrupt {
        what: "a column's type",
        detail: format!("{column}: wanted {wanted}, found {found:?}"),
    }
}

/// A connection statements run on: sqlx's, or a SQLite write transaction's. The SQLite one is
/// borrowed `mut` although rusqlite needs only `&`: a `&Connection` (not `Sync`) held across an
/// await would make the consumer's future not `Send`.
pub(crate) enum Conn<'c> {
    Any(&'c mut AnyConnection),
    Lite(&'c mut rusqlite::Connection),
}

impl Conn<'_> {
    pub(super) fn is_postgres(&self) -> bool {
        match self {
            Conn::Any(conn) => conn.backend_name() == "PostgreSQL",
            Conn::Lite(_) => false,
        }
    }
}

/// Prepared statements kept per SQLite connection (each multi-row shape is one text).
pub(super) const LITE_STATEMENT_CACHE: usize = 100;

/// Runs a statement on SQLite, returning its rows when `rows` (none otherwise).
pub(super) fn lite_run(
    conn: &rusqlite::Connection,
    text: &str,
    args: &[Value],
    rows: bool,
) -> Result<Vec<Row>, DbError> {
    let mut statement = conn.prepare_cached(text)?;
    for (i, value) in args.iter().enumerate() {
        statement.raw_bind_parameter(i + 1, value)?;
    }
    if !rows {
        // Stepped to the end, so a statement with `RETURNING` finishes too.
        let mut cursor = statement.raw_query();
        while cursor.next()?.is_some() {}
        return Ok(Vec::new());
    }
    let columns: Arc<[String]> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let width = columns.len();
    let mut out = Vec::new();
    let mut cursor = statement.raw_query();
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            use rusqlite::types::ValueRef;
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(_) => Cell::Real,
                ValueRef::Blob(_) => Cell::Blob,
            });
        }
        out.push(Row::Lite(LiteRow {
            columns: columns.clone(),
            values,
        }));
    }
    Ok(out)
}

/// A write transaction: sqlx's on PostgreSQL, rusqlite's on SQLite.
pub(crate) enum WriteTx {
    Any(sqlx::Transaction<'static, Any>),
    Lite(LiteTx),
}

/// A SQLite write transaction on the store's one writer connection, rolled back if dropped
/// uncommitted.
pub(crate) struct LiteTx {
    conn: OwnedMutexGuard<rusqlite::Connection>,
    checkpointer: Arc<Checkpointer>,
    open: bool,
}

impl LiteTx {
    /// Takes the write lock at once (`IMMEDIATE`): a batch always writes, and taking it late
    /// could fail half way with "busy" where waiting at the start (`busy_timeout`) succeeds.
    pub(super) fn begin(
        conn: OwnedMutexGuard<rusqlite::Connection>,
        checkpointer: Arc<Checkpointer>,
    ) -> Result<Self, DbError> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Self {
            conn,
            checkpointer,
            open: true,
        })
    }
}

impl Drop for LiteTx {
    fn drop(&mut self) {
        if self.open {
            // Nothing to report to: the caller is already returning the error that left the
            // transaction unfinished.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl WriteTx {
    /// The connection to run the transaction's statements on.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            WriteTx::Any(tx) => Conn::Any(&mut *tx),
            WriteTx::Lite(tx) => Conn::Lite(&mut tx.conn),
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        match self {
            WriteTx::Any(tx) => Ok(tx.commit().await?),
            WriteTx::Lite(mut tx) => {
                tx.conn.execute_batch("COMMIT")?;
                tx.open = false;
                tx.checkpointer.committed();
                // After the commit: a checkpoint here delays the next batch, not this one's
                // offsets.
                tx.checkpointer.reset_if_due(&tx.conn);
                Ok(())
            }
        }
    }
}
