//! Typed configuration from the environment (DESIGN §3), optionally mirrored by a TOML file.
//!
//! Everything is parsed and validated before any I/O, and a problem stops the process with
//! one line naming the variable: `DEALFLOW_CRM_RPS: must be a whole number from 1 to 10, got "20"`.
//! The file named by `DEALFLOW_CONFIG` may set the same keys in lower case without the prefix
//! (`crm_rps = 8`); the environment wins over the file. Secrets are `SecretString`s.

mod parse;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

pub use parse::HostPattern;
pub use parse::properties as parse_kafka_properties;

/// One configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.to_string(),
            problem: problem.into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where the read model lives.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite(SecretString),
    Postgres(SecretString),
}

/// The whole configuration of a dealflow process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Url,
    /// Where ingest's API answers (`--target projector`: the pages send integration changes
    /// there); `None` elsewhere.
    pub ingest_url: Option<Url>,
    pub data_dir: PathBuf,
    /// `None` = the embedded log under `data_dir`.
    pub kafka: Option<KafkaSettings>,
    pub topic_prefix: String,
    pub database_url: DatabaseUrl,
    /// `None` = generated once into the data directory (all-in-one mode).
    pub api_token: Option<SecretString>,
    /// `None` = generated once into the data directory (all-in-one mode).
    pub secret_key: Option<SecretString>,
    /// The secret key being rotated out: still opens sealed keys and accepts its webhook URLs.
    pub secret_key_previous: Option<SecretString>,
    pub crm_allow_hosts: Vec<HostPattern>,
    pub crm_rps: u32,
    pub reconcile_interval: Duration,
    pub log_format: LogFormat,
}

/// How to reach a Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// Extra librdkafka properties (`DEALFLOW_KAFKA_PROPERTIES="security.protocol=ssl;…"`).
    pub properties: BTreeMap<String, String>,
}

/// The names of every variable, in one place for messages and docs.
pub mod vars {
    pub const CONFIG: &str = "DEALFLOW_CONFIG";
    pub const LISTEN: &str = "DEALFLOW_LISTEN";
    pub const PUBLIC_URL: &str = "DEALFLOW_PUBLIC_URL";
    pub const INGEST_URL: &str = "DEALFLOW_INGEST_URL";
    pub const DATA_DIR: &str = "DEALFLOW_DATA_DIR";
    pub const KAFKA_BROKERS: &str = "DEALFLOW_KAFKA_BROKERS";
    pub const KAFKA_PROPERTIES: &str = "DEALFLOW_KAFKA_PROPERTIES";
    pub const TOPIC_PREFIX: &str = "DEALFLOW_TOPIC_PREFIX";
    pub const DATABASE_URL: &str = "DEALFLOW_DATABASE_URL";
    pub const API_TOKEN: &str = "DEALFLOW_API_TOKEN";
    pub const SECRET_KEY: &str = "DEALFLOW_SECRET_KEY";
    pub const SECRET_KEY_PREVIOUS: &str = "DEALFLOW_SECRET_KEY_PREVIOUS";
    pub const CRM_ALLOW_HOSTS: &str = "DEALFLOW_CRM_ALLOW_HOSTS";
    pub const CRM_RPS: &str = "DEALFLOW_CRM_RPS";
    pub const RECONCILE_INTERVAL: &str = "DEALFLOW_RECONCILE_INTERVAL";
    pub const LOG_FORMAT: &str = "DEALFLOW_LOG_FORMAT";

    /// Every variable a file may mirror.
    pub const ALL: [&str; 15] = [
        LISTEN,
        PUBLIC_URL,
        INGEST_URL,
        DATA_DIR,
        KAFKA_BROKERS,
        KAFKA_PROPERTIES,
        TOPIC_PREFIX,
        DATABASE_URL,
        API_TOKEN,
        SECRET_KEY,
        SECRET_KEY_PREVIOUS,
        CRM_ALLOW_HOSTS,
        CRM_RPS,
        RECONCILE_INTERVAL,
        LOG_FORMAT,
    ];
}

impl Config {
    /// Reads the process environment (and the `DEALFLOW_CONFIG` file when set).
    pub fn from_env() -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(name, _)| name.starts_with("DEALFLOW_"))
            .collect();
        Self::from_map(&env)
    }

    /// Reads configuration from a map of variables (tests use this instead of the process env).
    pub fn from_map(env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut values = match env.get(vars::CONFIG).filter(|p| !p.trim().is_empty()) {
            Some(path) => parse::read_file(path)?,
            None => BTreeMap::new(),
        };
        for (name, value) in env {
            values.insert(name.clone(), value.clone());
        }
        Self::from_values(&values)
    }

    fn from_values(v: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        // Empty means "not set" for every variable: `FOO= dealflow run` must not be a value.
        let get = |name: &str| v.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());

        let listen = match get(vars::LISTEN) {
            Some(s) => s.parse().map_err(|_| {
                ConfigError::new(
                    vars::LISTEN,
                    format!("must be host:port like 127.0.0.1:8080, got {s:?}"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        // Unset, the public URL follows the listener, so webhook URLs work on one machine.
        let default_public = match listen {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                format!("http://127.0.0.1:{}", a.port())
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => format!("http://[::1]:{}", a.port()),
            other => format!("http://{other}"),
        };
        let public_url = parse::public_url(get(vars::PUBLIC_URL).unwrap_or(&default_public))
            .map_err(|p| ConfigError::new(vars::PUBLIC_URL, p))?;
        let ingest_url = get(vars::INGEST_URL)
            .map(parse::public_url)
            .transpose()
            .map_err(|p| ConfigError::new(vars::INGEST_URL, p))?;
        let data_dir = PathBuf::from(get(vars::DATA_DIR).unwrap_or("./data"));
        let kafka = match get(vars::KAFKA_BROKERS) {
            Some(brokers) => Some(KafkaSettings {
                brokers: parse::brokers(brokers)
                    .map_err(|p| ConfigError::new(vars::KAFKA_BROKERS, p))?,
                properties: parse::properties(get(vars::KAFKA_PROPERTIES).unwrap_or(""))
                    .map_err(|p| ConfigError::new(vars::KAFKA_PROPERTIES, p))?,
            }),
            None if get(vars::KAFKA_PROPERTIES).is_some() => {
                return Err(ConfigError::new(
                    vars::KAFKA_PROPERTIES,
                    format!(
                        "is set but {} is empty; set both or neither",
                        vars::KAFKA_BROKERS
                    ),
                ));
            }
            None => None,
        };
        let topic_prefix = match v.get(vars::TOPIC_PREFIX) {
            Some(p) => parse::topic_prefix(p.trim())
                .map_err(|e| ConfigError::new(vars::TOPIC_PREFIX, e))?,
            None => "dealflow.".to_string(),
        };
        let database_url = match get(vars::DATABASE_URL) {
            Some(url) => {
                parse::database_url(url).map_err(|p| ConfigError::new(vars::DATABASE_URL, p))?
            }
            None => DatabaseUrl::Sqlite(SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("dealflow.db").display()
            ))),
        };
        let api_token = get(vars::API_TOKEN)
            .map(|t| parse::secret(t, 16).map_err(|p| ConfigError::new(vars::API_TOKEN, p)))
            .transpose()?;
        let secret_key = get(vars::SECRET_KEY)
            .map(|t| parse::secret(t, 32).map_err(|p| ConfigError::new(vars::SECRET_KEY, p)))
            .transpose()?;
        let secret_key_previous = get(vars::SECRET_KEY_PREVIOUS)
            .map(|t| {
                parse::secret(t, 32).map_err(|p| ConfigError::new(vars::SECRET_KEY_PREVIOUS, p))
            })
            .transpose()?;
        let crm_allow_hosts = get(vars::CRM_ALLOW_HOSTS)
            .map(|s| {
                s.split([',', ' '])
                    .filter(|p| !p.is_empty())
                    .map(HostPattern::parse)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|p| ConfigError::new(vars::CRM_ALLOW_HOSTS, p))?
            .unwrap_or_default();
        let crm_rps = match get(vars::CRM_RPS) {
            Some(s) => match s.parse::<u32>() {
                Ok(n @ 1..=10) => n,
                _ => {
                    return Err(ConfigError::new(
                        vars::CRM_RPS,
                        format!(
                            "must be a whole number from 1 to 10 (RetailCRM allows 10 requests/s), got {s:?}"
                        ),
                    ));
                }
            },
            None => 8,
        };
        let reconcile_interval = match get(vars::RECONCILE_INTERVAL) {
            Some(s) => {
                parse::duration(s).map_err(|p| ConfigError::new(vars::RECONCILE_INTERVAL, p))?
            }
            None => Duration::from_secs(300),
        };
        let log_format = match get(vars::LOG_FORMAT) {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    vars::LOG_FORMAT,
                    format!("must be \"json\" or \"pretty\", got {other:?}"),
                ));
            }
        };
        Ok(Self {
            listen,
            public_url,
            ingest_url,
            data_dir,
            kafka,
            topic_prefix,
            database_url,
            api_token,
            secret_key,
            secret_key_previous,
            crm_allow_hosts,
            crm_rps,
            reconcile_interval,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests;
