//! any_vs_native: what sqlx's `Any` driver costs against the native drivers on the projector's
//! shapes — 20,480 rows of 48 columns (a deal row's width) upserted twice by multi-row
//! statements of 512 rows, then read back by `IN`-lists of 512 ids — on SQLite (a temporary
//! file) and PostgreSQL (a scratch table in `--postgres`), three interleaved rounds.
//! Not part of the product: it measures whether leaving `Any` would pay (BENCHMARKS.md).
//!
//! `cargo run --release -p dealflow-projector --example any_vs_native [-- postgres://…]`

use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _, Row as _};

/// Columns besides the key, a third of them integers (as in `deals`).
const COLUMNS: usize = 48;
const ROWS: i64 = 20_480;
/// Rows per statement (a power of two, as the projector's `cached_chunks`).
const CHUNK: usize = 512;
const KEY: &str = "0190f0b0-aaaa-bbbb-cccc-000000000001";

/// The statements' texts for one backend.
struct Texts {
    create: String,
    upsert: String,
    select: String,
}

impl Texts {
    fn new(postgres: bool) -> Self {
        let mut n = 0;
        let names: Vec<String> = (0..COLUMNS).map(|i| format!("c{i}")).collect();
        let types: Vec<String> = (0..COLUMNS)
            .map(|i| format!("c{i} {}", if i % 3 == 0 { "BIGINT" } else { "TEXT" }))
            .collect();
        let rows: Vec<String> = (0..CHUNK)
            .map(|_| format!("({})", holes(postgres, &mut n, COLUMNS + 2)))
            .collect();
        let updates: Vec<String> = names
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let upsert = format!(
            "INSERT INTO t (k, id, {}) VALUES {} ON CONFLICT (k, id) DO UPDATE SET {}",
            names.join(", "),
            rows.join(", "),
            updates.join(", ")
        );
        n = 0;
        let key = holes(postgres, &mut n, 1);
        let select = format!(
            "SELECT * FROM t WHERE k = {key} AND id IN ({})",
            holes(postgres, &mut n, CHUNK)
        );
        let create = format!(
            "CREATE TABLE t (k TEXT NOT NULL, id BIGINT NOT NULL, {}, PRIMARY KEY (k, id))",
            types.join(", ")
        );
        Self {
            create,
            upsert,
            select,
        }
    }
}

/// `count` placeholders numbered on from `n` (PostgreSQL) or `?` (SQLite).
fn holes(postgres: bool, n: &mut usize, count: usize) -> String {
    (0..count)
        .map(|_| {
            *n += 1;
            if postgres {
                format!("${n}")
            } else {
                "?".to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upserts every row twice (the second pass updates), then reads them all; returns both times.
macro_rules! measure {
    ($conn:expr, $texts:expr) => {{
        let conn = $conn;
        let texts: &Texts = $texts;
        conn.execute("DROP TABLE IF EXISTS t").await?;
        conn.execute(texts.create.as_str()).await?;
        let started = Instant::now();
        for pass in 0..2 {
            let mut tx = conn.begin().await?;
            for start in (0..ROWS).step_by(CHUNK) {
                let mut query = sqlx::query(&texts.upsert);
                for id in start..start + CHUNK as i64 {
                    query = query.bind(KEY).bind(id);
                    for i in 0..COLUMNS {
                        query = if i % 3 == 0 {
                            query.bind(id * 7 + pass)
                        } else {
                            query.bind(format!("value {i} of {id}, pass {pass}"))
                        };
                    }
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        let written = started.elapsed();
        let started = Instant::now();
        let mut read = 0;
        for start in (0..ROWS).step_by(CHUNK) {
            let mut query = sqlx::query(&texts.select).bind(KEY);
            for id in start..start + CHUNK as i64 {
                query = query.bind(id);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let text: String = row.try_get("c1")?;
                read += usize::from(!text.is_empty());
            }
        }
        anyhow::ensure!(read == ROWS as usize, "read {read} rows");
        let took = started.elapsed();
        conn.execute("DROP TABLE t").await?;
        anyhow::Ok((written, took))
    }};
}

fn report(label: &str, (written, read): (Duration, Duration)) {
    println!("{label:<22} upsert 2 × {ROWS} rows {written:>8.2?}   read {ROWS} rows {read:>8.2?}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let postgres = std::env::args()
        .nth(1)
        .filter(|a| a.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let (on_sqlite, on_postgres) = (Texts::new(false), Texts::new(true));
    for round in 1..=3 {
        println!("round {round}");
        let mut conn = sqlx::AnyConnection::connect(&sqlite).await?;
        report("SQLite, Any", measure!(&mut conn, &on_sqlite)?);
        let mut conn = sqlx::SqliteConnection::connect(&sqlite).await?;
        report("SQLite, native", measure!(&mut conn, &on_sqlite)?);
        let mut conn = sqlx::AnyConnection::connect(&postgres).await?;
        report("PostgreSQL, Any", measure!(&mut conn, &on_postgres)?);
        let mut conn = sqlx::PgConnection::connect(&postgres).await?;
        report("PostgreSQL, native", measure!(&mut conn, &on_postgres)?);
    }
    Ok(())
}
