//! Parsers for single configuration values; each returns the problem as a sentence.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, DatabaseUrl, vars};

/// An extra allowed RetailCRM URL pattern: `scheme://host[:port]`, where the port may be `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub scheme: String,
    pub host: String,
    /// `None` = any port.
    pub port: Option<u16>,
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not a pattern like http://127.0.0.1:* or https://crm.example.com");
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, "*")) => (host, None),
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                (host, Some(port.parse::<u16>().map_err(|_| bad())?))
            }
            _ => (rest, Some(if scheme == "https" { 443 } else { 80 })),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a (parsed, normalised) URL is allowed by this pattern.
    pub fn matches(&self, url: &Url) -> bool {
        let host = match url.host_str() {
            Some(h) => h.to_ascii_lowercase(),
            None => return false,
        };
        url.scheme() == self.scheme
            && host == self.host
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
    }
}

pub(super) fn read_file(path: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let err = |p: String| ConfigError::new(vars::CONFIG, p);
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("cannot read {path:?}: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| err(format!("{path:?} is not valid TOML: {e}")))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let name = format!("DEALFLOW_{}", key.to_ascii_uppercase());
        if !vars::ALL.contains(&name.as_str()) {
            return Err(err(format!("{path:?} has unknown key {key:?}")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| i.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            toml::Value::Table(t) => t
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect::<Vec<_>>()
                .join(";"),
            other => {
                return Err(err(format!(
                    "{path:?}: key {key:?} has an unsupported value {other}"
                )));
            }
        };
        out.insert(name, text);
    }
    Ok(out)
}

pub(super) fn public_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("must be an http(s) URL with a host, got {s:?}"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "must not carry credentials, a query or a fragment, got {s:?}"
        ));
    }
    Ok(url)
}

pub(super) fn brokers(s: &str) -> Result<String, String> {
    let list: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    for broker in &list {
        let ok = broker
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(format!(
                "{broker:?} is not host:port (expected a list like kafka-1:9092,kafka-2:9092)"
            ));
        }
    }
    Ok(list.join(","))
}

/// librdkafka properties written `key=value;key=value` (`DEALFLOW_KAFKA_PROPERTIES`).
pub fn properties(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!(
                "{p:?} is not key=value (separate properties with ';')"
            )),
        })
        .collect()
}

pub(super) fn topic_prefix(s: &str) -> Result<String, String> {
    let ok = s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "may use only letters, digits, '.', '_' and '-' (at most 100), got {s:?}"
        ))
    }
}

pub(super) fn database_url(s: &str) -> Result<DatabaseUrl, String> {
    if s.starts_with("sqlite:") {
        Ok(DatabaseUrl::Sqlite(SecretString::from(s.to_string())))
    } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(DatabaseUrl::Postgres(SecretString::from(s.to_string())))
    } else {
        // Never echo the value: a database URL may carry a password.
        Err("must start with sqlite:// or postgres://".to_string())
    }
}

pub(super) fn secret(s: &str, min_len: usize) -> Result<SecretString, String> {
    if s.len() < min_len {
        // The value is a secret: say what is wrong, never what it is.
        return Err(format!(
            "is too short: use at least {min_len} random characters"
        ));
    }
    Ok(SecretString::from(s.to_string()))
}

/// `90s`, `5m`, `1h`, `1h30m`, `500ms`; at least one second.
pub(super) fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("must be a duration like 30s, 5m or 1h, got {s:?}");
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    if total < Duration::from_secs(1) {
        return Err(format!("must be at least 1s, got {s:?}"));
    }
    Ok(total)
}
