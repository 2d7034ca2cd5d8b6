//! `dealflow check-config`: validate the configuration and show what would run.

use dealflow_shared::config::{Config, DatabaseUrl};

pub fn run() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let store = match config.database_url {
        DatabaseUrl::Sqlite(_) => "SQLite",
        DatabaseUrl::Postgres(_) => "PostgreSQL",
    };
    let bus = match &config.kafka {
        Some(k) => format!("Kafka at {}", k.brokers),
        None => format!("embedded log in {}", config.data_dir.display()),
    };
    let secret = |set: bool| {
        if set {
            "set (hidden)"
        } else {
            "generated in the data directory on first start"
        }
    };
    println!("configuration is valid");
    println!("  listen              {}", config.listen);
    println!("  public url          {}", config.public_url);
    if let Some(ingest) = &config.ingest_url {
        println!("  ingest url          {ingest}");
    }
    println!("  data dir            {}", config.data_dir.display());
    println!("  event bus           {bus}");
    println!("  topic prefix        {:?}", config.topic_prefix);
    println!("  read model          {store}");
    println!(
        "  api token           {}",
        secret(config.api_token.is_some())
    );
    println!(
        "  secret key          {}",
        secret(config.secret_key.is_some())
    );
    println!("  crm allow hosts     {}", config.crm_allow_hosts.len());
    println!(
        "  crm budget          {} requests/s per account",
        config.crm_rps
    );
    println!("  reconcile interval  {:?}", config.reconcile_interval);
    Ok(())
}
