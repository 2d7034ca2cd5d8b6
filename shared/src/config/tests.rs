use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err(pairs: &[(&str, &str)]) -> String {
    Config::from_map(&env(pairs)).unwrap_err().to_string()
}

#[test]
fn defaults_follow_design() {
    let c = Config::from_map(&BTreeMap::new()).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    assert!(c.kafka.is_none());
    assert_eq!(c.topic_prefix, "dealflow.");
    match &c.database_url {
        DatabaseUrl::Sqlite(url) => {
            assert_eq!(url.expose_secret(), "sqlite://./data/dealflow.db?mode=rwc")
        }
        other => panic!("{other:?}"),
    }
    assert!(c.api_token.is_none() && c.secret_key.is_none());
    assert_eq!(c.crm_rps, 8);
    assert_eq!(c.reconcile_interval, Duration::from_secs(300));
    assert_eq!(c.log_format, LogFormat::Pretty);
}

#[test]
fn public_url_follows_the_listener_unless_set() {
    let c = Config::from_map(&env(&[(vars::LISTEN, "127.0.0.1:9000")])).unwrap();
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:9000/");
    let c = Config::from_map(&env(&[(vars::LISTEN, "0.0.0.0:9000")])).unwrap();
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:9000/");
    let c = Config::from_map(&env(&[
        (vars::LISTEN, "0.0.0.0:9000"),
        (vars::PUBLIC_URL, "https://df.example.com"),
    ]))
    .unwrap();
    assert_eq!(c.public_url.as_str(), "https://df.example.com/");
}

#[test]
fn every_bad_value_names_its_variable_in_one_line() {
    let cases = [
        (vars::LISTEN, "localhost"),
        (vars::PUBLIC_URL, "ftp://x"),
        (vars::KAFKA_BROKERS, "kafka-1"),
        (vars::TOPIC_PREFIX, "bad prefix!"),
        (vars::DATABASE_URL, "mysql://root:hunter2@db/x"),
        (vars::API_TOKEN, "short"),
        (vars::SECRET_KEY, "short"),
        (vars::SECRET_KEY_PREVIOUS, "short"),
        (vars::CRM_ALLOW_HOSTS, "127.0.0.1"),
        (vars::CRM_RPS, "20"),
        (vars::RECONCILE_INTERVAL, "5 minutes"),
        (vars::LOG_FORMAT, "xml"),
    ];
    for (var, value) in cases {
        let message = err(&[(var, value)]);
        assert!(message.starts_with(&format!("{var}: ")), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}

#[test]
fn secrets_are_never_echoed_in_errors() {
    assert!(!err(&[(vars::DATABASE_URL, "mysql://root:hunter2@db/x")]).contains("hunter2"));
    assert!(!err(&[(vars::API_TOKEN, "tiny-s3cret")]).contains("tiny-s3cret"));
    let c = Config::from_map(&env(&[(vars::API_TOKEN, "a-long-enough-token-value")])).unwrap();
    assert!(!format!("{c:?}").contains("a-long-enough-token-value"));
}

#[test]
fn kafka_settings_and_properties() {
    let c = Config::from_map(&env(&[
        (vars::KAFKA_BROKERS, "k1:9092, k2:9093"),
        (vars::KAFKA_PROPERTIES, "security.protocol=ssl; linger.ms=5"),
    ]))
    .unwrap();
    let kafka = c.kafka.unwrap();
    assert_eq!(kafka.brokers, "k1:9092,k2:9093");
    assert_eq!(kafka.properties["linger.ms"], "5");
    let message = err(&[(vars::KAFKA_PROPERTIES, "a=b")]);
    assert!(
        message.starts_with("DEALFLOW_KAFKA_PROPERTIES: "),
        "{message}"
    );
}

#[test]
fn empty_values_mean_unset_but_prefix_may_be_empty() {
    let c = Config::from_map(&env(&[(vars::KAFKA_BROKERS, ""), (vars::TOPIC_PREFIX, "")])).unwrap();
    assert!(c.kafka.is_none());
    assert_eq!(c.topic_prefix, "");
}

#[test]
fn durations_parse() {
    assert_eq!(parse::duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse::duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(
        parse::duration("1500ms").unwrap(),
        Duration::from_millis(1500)
    );
    assert!(parse::duration("500ms").is_err());
    assert!(parse::duration("m").is_err());
    assert!(parse::duration("10").is_err());
}

#[test]
fn host_patterns_match_scheme_host_and_port() {
    let any_port = HostPattern::parse("http://127.0.0.1:*").unwrap();
    assert!(any_port.matches(&Url::parse("http://127.0.0.1:4567/").unwrap()));
    assert!(!any_port.matches(&Url::parse("https://127.0.0.1:4567/").unwrap()));
    assert!(!any_port.matches(&Url::parse("http://127.0.0.2:4567/").unwrap()));
    let default_port = HostPattern::parse("https://crm.example.com").unwrap();
    assert!(default_port.matches(&Url::parse("https://CRM.example.com/").unwrap()));
    assert!(!default_port.matches(&Url::parse("https://crm.example.com:8443/").unwrap()));
    assert!(HostPattern::parse("http://user@host:*").is_err());
    let c = Config::from_map(&env(&[(
        vars::CRM_ALLOW_HOSTS,
        "http://127.0.0.1:*, https://crm.example.com",
    )]))
    .unwrap();
    assert_eq!(c.crm_allow_hosts.len(), 2);
}

#[test]
fn file_mirrors_environment_and_environment_wins() {
    let dir = std::env::temp_dir().join(format!("dealflow-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dealflow.toml");
    std::fs::write(
        &path,
        "crm_rps = 5\nlisten = \"0.0.0.0:9000\"\ncrm_allow_hosts = [\"http://127.0.0.1:*\"]\n[kafka_properties]\n\"linger.ms\" = \"3\"\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let c = Config::from_map(&env(&[
        (vars::CONFIG, file),
        (vars::LISTEN, "127.0.0.1:7000"),
        (vars::KAFKA_BROKERS, "k1:9092"),
    ]))
    .unwrap();
    assert_eq!(c.crm_rps, 5);
    assert_eq!(c.kafka.unwrap().properties["linger.ms"], "3");
    assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(c.crm_allow_hosts.len(), 1);
    // kafka_properties without brokers is a cross-field error naming the variable.
    let message = err(&[(vars::CONFIG, file)]);
    assert!(
        message.starts_with("DEALFLOW_KAFKA_PROPERTIES: "),
        "{message}"
    );

    std::fs::write(&path, "crm_rsp = 5\n").unwrap();
    let message = err(&[(vars::CONFIG, file)]);
    assert!(
        message.starts_with("DEALFLOW_CONFIG: ") && message.contains("crm_rsp"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
