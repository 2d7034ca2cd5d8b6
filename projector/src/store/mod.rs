//! The read model store: PostgreSQL through sqlx's `Any` driver, SQLite through rusqlite
//! ([`db`] says why); one schema and one set of migrations for both (`projector/migrations`,
//! TEXT and BIGINT columns only, applied by sqlx on both).
//!
//! Writes go through a small writer pool (one connection on SQLite, which has one writer
//! anyway), reads through separate connections, so a long read (a CSV export) never waits
//! behind the consumer and the consumer never waits behind a page.

mod db;
mod sql;
pub(crate) mod traces;
pub(crate) mod upkeep;
pub(crate) mod values;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dealflow_shared::config::DatabaseUrl;
use dealflow_shared::sqlite_checkpoint::{self, Checkpointer};
use dealflow_shared::sqlite_readers::ReadConnections;
use secrecy::ExposeSecret;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Column as _, Executor as _, Row as _, ValueRef as _};

pub use db::DbError;
pub(crate) use db::{Conn, Row, WriteTx};
pub(crate) use sql::{MAX_BINDS, Sql, cached_chunks};
use values::Columns as _;

/// The migrations of the read model (`projector/migrations`), embedded at build time. Listed
/// here rather than through `sqlx::migrate!`, which would pull sqlx's proc-macro crate (and a
/// second build of every driver) into the workspace for one `include_str!`.
fn migrator() -> Migrator {
    let migration = |version, description, sql| {
        Migration::new(
            version,
            Cow::Borrowed(description),
            MigrationType::Simple,
            Cow::Borrowed(sql),
            false,
        )
    };
    Migrator {
        migrations: Cow::Owned(vec![
            migration(
                1,
                "read model",
                include_str!("../../migrations/0001_read_model.sql"),
            ),
            migration(
                2,
                "stage order",
                include_str!("../../migrations/0002_stage_order.sql"),
            ),
            migration(
                3,
                "tenants",
                include_str!("../../migrations/0003_tenants.sql"),
            ),
            migration(
                4,
                "deal value",
                include_str!("../../migrations/0004_deal_value.sql"),
            ),
            migration(
                5,
                "stage mapping",
                include_str!("../../migrations/0005_stage_mapping.sql"),
            ),
            migration(
                6,
                "cockpit",
                include_str!("../../migrations/0006_cockpit.sql"),
            ),
            migration(
                7,
                "order traces",
                include_str!("../../migrations/0007_order_traces.sql"),
            ),
            migration(
                8,
                "fewer deal indexes",
                include_str!("../../migrations/0008_fewer_deal_indexes.sql"),
            ),
        ]),
        ..Migrator::DEFAULT
    }
}

/// Which database the store runs on; the few statements that differ ask this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The row-lock suffix of a `SELECT` that is about to be rewritten in the same transaction.
    /// PostgreSQL needs it when two projector members touch the same rows (a marker change and
    /// a deal of the same integration on different partitions); SQLite has one writer.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// Like [`for_update`](Self::for_update), for rows that are read but not rewritten.
    pub(crate) fn for_share(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR SHARE",
            Dialect::Sqlite => "",
        }
    }
}

/// A read model store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the read model database: {0}")]
    Connect(#[source] DbError),
    #[error("cannot migrate the read model database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("read model query failed ({what}): {source}")]
    Query {
        what: &'static str,
        #[source]
        source: DbError,
    },
    #[error("unexpected value in the read model ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    /// Wraps a query failure, naming what was being done.
    pub(crate) fn query<E: Into<DbError>>(what: &'static str) -> impl FnOnce(E) -> StoreError {
        move |source| StoreError::Query {
            what,
            source: source.into(),
        }
    }

    /// True when retrying the same work later may succeed: the connection dropped, the pool
    /// was exhausted, PostgreSQL chose this transaction as a deadlock or serialization victim,
    /// or SQLite was busy.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect(e) | StoreError::Query { source: e, .. } => match e {
                DbError::Sqlx(e) => transient(e),
                DbError::Sqlite(_) => e.sqlite_busy(),
                DbError::Checkpointer(_) => false,
            },
            StoreError::Migrate(_) | StoreError::Corrupt { .. } => false,
        }
    }
}

fn transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            // PostgreSQL: serialization failure, deadlock, lock timeout, connection
            // exceptions (08…), shutdown (57P…), too many connections.
            if matches!(code.as_ref(), "40001" | "40P01" | "55P03" | "53300")
                || code.starts_with("08")
                || code.starts_with("57P")
            {
                return true;
            }
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
        }
        _ => false,
    }
}

/// The read model database.
#[derive(Debug, Clone)]
pub struct Store {
    reader: AnyPool,
    writer: AnyPool,
    /// SQLite only: the connection write transactions run on ([`db`]).
    lite_writer: Option<LiteWriter>,
    /// SQLite only: the connections reads run on ([`db`]).
    lite_readers: Option<Arc<ReadConnections>>,
    dialect: Dialect,
}

impl Store {
    /// Connects (creating a SQLite file when the URL says `mode=rwc`) and migrates.
    #[tracing::instrument(skip_all, err)]
    pub async fn open(url: &DatabaseUrl) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, dialect) = match url {
            DatabaseUrl::Postgres(url) => (url.expose_secret(), Dialect::Postgres),
            DatabaseUrl::Sqlite(url) => (url.expose_secret(), Dialect::Sqlite),
        };
        let (writers, readers) = match dialect {
            Dialect::Postgres => (2, 8),
            Dialect::Sqlite => (1, 4),
        };
        let connect = |e: sqlx::Error| StoreError::Connect(e.into());
        let writer = pool(dialect, writers).connect(url).await.map_err(connect)?;
        let reader = pool(dialect, readers).connect(url).await.map_err(connect)?;
        migrator().run(&writer).await.map_err(StoreError::Migrate)?;
        let (lite_writer, lite_readers) = match dialect {
            Dialect::Postgres => (None, None),
            Dialect::Sqlite => {
                let readers = (0..readers)
                    .map(|_| open_lite(url))
                    .collect::<Result<Vec<_>, _>>()?;
                (
                    Some(LiteWriter::open(url)?),
                    Some(Arc::new(ReadConnections::new(readers))),
                )
            }
        };
        let store = Self {
            reader,
            writer,
            lite_writer,
            lite_readers,
            dialect,
        };
        crate::apply::trace::move_entry_rows(&store).await?;
        if dialect == Dialect::Sqlite {
            // Migrated: from here on rusqlite's connections do everything, and sqlx's (a
            // thread each, with its own page cache) would only sit idle.
            store.writer.close().await;
            store.reader.close().await;
        }
        Ok(store)
    }

    /// The backend.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// SQLite's read connections.
    pub(crate) fn lite_readers(&self) -> Option<&ReadConnections> {
        self.lite_readers.as_deref()
    }

    /// The pool for reads on PostgreSQL (on SQLite it is closed once migrated).
    pub(crate) fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// The sqlx pool for writes on PostgreSQL (tests only: see [`Self::begin_write`]; on
    /// SQLite it is closed once migrated).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Starts a write transaction (the consumer's batches, a replay, start-up moves).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, DbError> {
        match &self.lite_writer {
            Some(writer) => Ok(WriteTx::Lite(db::LiteTx::begin(
                writer.conn.clone().lock_owned().await,
                writer.checkpointer.clone(),
            )?)),
            None => Ok(WriteTx::Any(self.writer.begin().await?)),
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        match &self.lite_readers {
            Some(readers) => readers
                .read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
                .await
                .is_ok(),
            None => self.reader.execute("SELECT 1").await.is_ok(),
        }
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// The next offset the read model expects on every (topic, partition) it has applied.
    pub async fn applied_offsets(&self) -> Result<BTreeMap<(String, i32), i64>, StoreError> {
        let rows = Sql::new("SELECT topic, partition_id, next_offset FROM applied_offsets")
            .read_all(self)
            .await
            .map_err(StoreError::query("reading applied offsets"))?;
        rows.iter()
            .map(|row| {
                let partition = i32::try_from(row.int("partition_id")?).unwrap_or_default();
                Ok(((row.text("topic")?, partition), row.int("next_offset")?))
            })
            .collect()
    }

    /// Every row of every read model table as text, in primary-key order, keyed by table name:
    /// two stores with the same dump hold the same view. For tests and diagnostics (comparing a
    /// replayed store with the original).
    pub async fn dump_tables(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let mut out = BTreeMap::new();
        for (table, order) in TABLES {
            let rows = Sql::new(&format!("SELECT * FROM {table} ORDER BY {order}"))
                .read_all(self)
                .await
                .map_err(StoreError::query("dumping a table"))?;
            let lines = rows.iter().map(row_text).collect::<Result<Vec<_>, _>>()?;
            out.insert((*table).to_owned(), lines);
        }
        Ok(out)
    }
}

/// The read model tables with their primary keys (for dumps and full replays).
pub(crate) const TABLES: &[(&str, &str)] = &[
    ("applied_offsets", "topic, partition_id"),
    ("integrations", "id"),
    ("removed_integrations", "id"),
    ("integration_health", "integration_id"),
    ("integration_activity", "integration_id"),
    ("deals", "integration_id, order_id"),
    (
        "stage_history",
        "integration_id, order_id, entered_at, stage_code",
    ),
    ("stages", "integration_id, stage_code"),
    ("site_stages", "integration_id, site, stage_code"),
    ("sites", "integration_id, site"),
    ("contacts", "integration_id, kind, contact_id"),
    ("managers", "integration_id, manager_id"),
    ("sync_states", "integration_id"),
    ("order_traces", "integration_id, order_id"),
    ("dead_letters", "integration_id, letter_id"),
];

fn pool(dialect: Dialect, max: u32) -> AnyPoolOptions {
    let options = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10));
    match dialect {
        Dialect::Postgres => options,
        // WAL lets the reader pool read while the writer holds a transaction; the default
        // synchronous=FULL keeps every committed batch on disk before its offsets move.
        Dialect::Sqlite => options.after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        }),
    }
}

/// WAL frames after which the writer makes the WAL start over ([`sqlite_checkpoint`]).
#[cfg(not(test))]
const WAL_RESET_FRAMES: u64 = sqlite_checkpoint::WAL_RESET_FRAMES;
/// Small in unit tests, so a test sees the WAL start over without writing 32 MiB.
#[cfg(test)]
const WAL_RESET_FRAMES: u64 = 256;

/// SQLite's one writing connection, and the checkpointer that keeps WAL checkpoints off its
/// commits ([`sqlite_checkpoint`]).
#[derive(Debug, Clone)]
struct LiteWriter {
    conn: Arc<tokio::sync::Mutex<rusqlite::Connection>>,
    checkpointer: Arc<Checkpointer>,
}

impl LiteWriter {
    fn open(url: &str) -> Result<Self, StoreError> {
        let conn = open_lite(url)?;
        let setting_up = |e: rusqlite::Error| StoreError::Connect(e.into());
        sqlite_checkpoint::writer_pragmas(&conn).map_err(setting_up)?;
        let checkpointer = Checkpointer::start(&lite_path(url)?, "read model", WAL_RESET_FRAMES)
            .map_err(|e| StoreError::Connect(DbError::Checkpointer(e)))?;
        Ok(Self {
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            checkpointer: Arc::new(checkpointer),
        })
    }
}

/// The file of a sqlx `sqlite:` URL.
fn lite_path(url: &str) -> Result<std::path::PathBuf, StoreError> {
    use std::str::FromStr as _;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Connect(e.into()))?;
    Ok(options.get_filename().to_owned())
}

/// A SQLite connection for a sqlx `sqlite:` URL, set up as sqlx sets up its own (WAL, a busy
/// timeout, foreign keys on, `synchronous=FULL` by default).
fn open_lite(url: &str) -> Result<rusqlite::Connection, StoreError> {
    let opening = |e: rusqlite::Error| StoreError::Connect(e.into());
    let conn = rusqlite::Connection::open(lite_path(url)?).map_err(opening)?;
    conn.set_prepared_statement_cache_capacity(db::LITE_STATEMENT_CACHE);
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .map_err(opening)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(opening)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(opening)?;
    Ok(conn)
}

/// One row as `col=value|col=value…` (columns in table order, NULL as `∅`).
fn row_text(row: &Row) -> Result<String, StoreError> {
    let row = match row {
        Row::Any(row) => row,
        Row::Lite(row) => {
            let parts: Vec<String> = row
                .texts()?
                .into_iter()
                .map(|(column, value)| format!("{column}={}", value.as_deref().unwrap_or("∅")))
                .collect();
            return Ok(parts.join("|"));
        }
    };
    let mut parts = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(StoreError::query("reading a dumped value"))?;
        let value = if raw.is_null() {
            "∅".to_owned()
        } else if let Ok(v) = row.try_get::<i64, _>(i) {
            v.to_string()
        } else {
            row.try_get::<String, _>(i)
                .map_err(StoreError::query("reading a dumped value"))?
        };
        parts.push(format!("{}={value}", column.name()));
    }
    Ok(parts.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Under back-to-back batches the read model's WAL starts over (the checkpoints that used to
    /// run inside commits now run beside them), and every committed row stays readable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_read_model_wal_starts_over_under_continuous_batches() {
        const BATCHES: usize = 300;
        const ROWS: usize = 20;
        const ENTRY: usize = 1000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = Store::open(&DatabaseUrl::Sqlite(url.into())).await.unwrap();
        let wal = dir.path().join("read.db-wal");
        let mut largest_wal = 0;
        for batch in 0..BATCHES {
            let mut tx = store.begin_write().await.unwrap();
            let mut sql =
                Sql::new("INSERT INTO order_traces (integration_id, order_id, entries) VALUES ");
            for row in 0..ROWS {
                let order = i64::try_from(batch * ROWS + row).unwrap();
                sql.row(row == 0, |r| {
                    r.v("wal-test").v(order).v("x".repeat(ENTRY));
                });
            }
            sql.execute(&mut tx.conn()).await.unwrap();
            tx.commit().await.unwrap();
            largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            // Paced, so the background checkpointer passes many times during the test.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let written = u64::try_from(BATCHES * ROWS * ENTRY).unwrap();
        assert!(
            largest_wal < written / 2,
            "the WAL reached {largest_wal} bytes for {written} bytes of rows: it never started \
             over (reset threshold {WAL_RESET_FRAMES} frames)"
        );
        let row =
            Sql::new("SELECT COUNT(*) AS n FROM order_traces WHERE integration_id = 'wal-test'")
                .read_optional(&store)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            row.int("n").unwrap(),
            i64::try_from(BATCHES * ROWS).unwrap()
        );
    }
}
