//! The split deployment's scratch PostgreSQL database: created per run, its connections cut
//! during the run (`pg_terminate_backend`, the effect counted), searched for secrets and
//! dropped at the end.

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};

/// A scratch database on a server reached through an admin URL.
#[derive(Debug)]
pub struct Scratch {
    admin: PgConnectOptions,
    pub name: String,
}

impl Scratch {
    /// Creates `dealflow_fault_<seed>_<pid>`.
    pub async fn create(admin_url: &str, seed: u64) -> anyhow::Result<Self> {
        let admin: PgConnectOptions = admin_url.parse().context("the PostgreSQL admin URL")?;
        let name = format!("dealflow_fault_{}_{}", seed % 1_000_000, std::process::id());
        let mut conn = admin.connect().await.context("connecting to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self { admin, name })
    }

    /// The URL the projector gets.
    pub fn url(&self) -> String {
        let host = self.admin.get_host();
        let port = self.admin.get_port();
        let user = self.admin.get_username();
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }

    async fn admin(&self) -> anyhow::Result<PgConnection> {
        self.admin
            .connect()
            .await
            .context("connecting to PostgreSQL")
    }

    /// Terminates every backend connected to the scratch database; returns how many died.
    pub async fn cut_connections(&self) -> anyhow::Result<i64> {
        let mut conn = self.admin().await?;
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS killed, count(*) AS seen \
             FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .context("terminating the scratch database's backends")?;
        Ok(row.try_get::<i64, _>("killed")?)
    }

    /// Every row of every table of the scratch database, as text (for the secrets scan).
    pub async fn dump_text(&self) -> anyhow::Result<String> {
        let options = self.admin.clone().database(&self.name);
        let mut conn = options.connect().await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await?;
        let mut out = String::new();
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
                    .fetch_all(&mut conn)
                    .await?;
            for row in rows {
                out.push_str(&table);
                out.push(' ');
                out.push_str(&row);
                out.push('\n');
            }
        }
        conn.close().await?;
        Ok(out)
    }

    /// Drops the database (its remaining connections are terminated first).
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let mut conn = self.admin().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        Ok(())
    }
}
