//! The RetailCRM account URL a user enters: validated, normalised, and kept out of private
//! networks (DESIGN §4, §7.5).
//!
//! Accepted: `https://<account>.<retailcrm domain>/` (retailcrm.ru, .pro, .es, .io, simla.com,
//! simla.io), normalised to exactly that form; a missing scheme is read as `https://`. Refused:
//! other schemes, credentials, a query or fragment, a path, an explicit port, IP literals and
//! other domains — unless a `DEALFLOW_CRM_ALLOW_HOSTS` pattern allows the URL (tests and the
//! simulator). The host must also not resolve to a private, loopback, link-local or otherwise
//! non-public address unless a pattern allows it, so a user cannot point dealflow at internal
//! services; the RetailCRM client checks the addresses again at every connection
//! (`dealflow_shared::retailcrm::address`), since DNS may answer differently later.

use std::net::IpAddr;

use dealflow_shared::config::HostPattern;
pub use dealflow_shared::retailcrm::is_public;
use url::{Host, Url};

/// The domains RetailCRM accounts live under (the official modules' list).
pub const RETAILCRM_DOMAINS: [&str; 6] = [
    "retailcrm.ru",
    "retailcrm.pro",
    "retailcrm.es",
    "retailcrm.io",
    "simla.com",
    "simla.io",
];

/// Why a URL was refused; the message is shown to the user next to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmUrlError {
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error("the URL must start with https://")]
    NotHttps,
    #[error("the URL must not contain a user name or password")]
    Credentials,
    #[error("the URL must not contain a query (?…) or a fragment (#…)")]
    QueryOrFragment,
    #[error("use the account address only, like https://{host}/ (without {path:?})")]
    Path { host: String, path: String },
    #[error("the URL must not name a port")]
    Port,
    #[error(
        "{0:?} is not a RetailCRM account address (expected https://<account>.retailcrm.ru/ or another RetailCRM domain)"
    )]
    NotRetailCrm(String),
    #[error("{0:?} cannot be resolved")]
    Unresolvable(String),
    #[error("{0:?} resolves to a private or local address")]
    PrivateAddress(String),
}

/// The rules for RetailCRM URLs, with the operator's extra allowed patterns.
#[derive(Debug, Clone, Default)]
pub struct CrmUrlPolicy {
    allow: Vec<HostPattern>,
}

impl CrmUrlPolicy {
    pub fn new(allow: Vec<HostPattern>) -> Self {
        Self { allow }
    }

    /// Parses and normalises to `scheme://host[:port]/` without touching the network.
    pub fn normalise(&self, input: &str) -> Result<Url, CrmUrlError> {
        let input = input.trim();
        let with_scheme = if input.contains("://") {
            input.to_string()
        } else {
            format!("https://{input}")
        };
        let url = Url::parse(&with_scheme).map_err(|_| CrmUrlError::NotAUrl(input.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(CrmUrlError::Credentials);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(CrmUrlError::QueryOrFragment);
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => format!("[{ip}]"),
            None => return Err(CrmUrlError::NotAUrl(input.to_string())),
        };
        if url.path() != "/" && !url.path().is_empty() {
            return Err(CrmUrlError::Path {
                host,
                path: url.path().to_string(),
            });
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let normalised = Url::parse(&format!("{}://{host}{port}/", url.scheme()))
            .map_err(|_| CrmUrlError::NotAUrl(input.to_string()))?;
        if self.allowed_by_pattern(&normalised) {
            return Ok(normalised);
        }
        if url.scheme() != "https" {
            return Err(CrmUrlError::NotHttps);
        }
        if url.port().is_some() {
            return Err(CrmUrlError::Port);
        }
        if !is_retailcrm_host(&host) {
            return Err(CrmUrlError::NotRetailCrm(host));
        }
        Ok(normalised)
    }

    /// Whether an operator pattern allows this URL (and so also its private address).
    pub fn allowed_by_pattern(&self, url: &Url) -> bool {
        self.allow.iter().any(|p| p.matches(url))
    }

    /// Normalises, then checks every address the host resolves to is public.
    pub async fn validate(&self, input: &str) -> Result<Url, CrmUrlError> {
        let url = self.normalise(input)?;
        if self.allowed_by_pattern(&url) {
            return Ok(url);
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| CrmUrlError::Unresolvable(host.clone()))?
            .collect();
        ensure_public(&host, addrs.iter().map(|a| a.ip()))?;
        Ok(url)
    }
}

/// Every resolved address must be public: one private answer is enough to refuse, since the
/// HTTP client may pick any of them.
pub fn ensure_public(
    host: &str,
    addrs: impl IntoIterator<Item = IpAddr>,
) -> Result<(), CrmUrlError> {
    let mut any = false;
    for ip in addrs {
        any = true;
        if !is_public(ip) {
            return Err(CrmUrlError::PrivateAddress(host.to_string()));
        }
    }
    if any {
        Ok(())
    } else {
        Err(CrmUrlError::Unresolvable(host.to_string()))
    }
}

/// `<account>.<domain>` with exactly one DNS label before a RetailCRM domain.
fn is_retailcrm_host(host: &str) -> bool {
    RETAILCRM_DOMAINS.iter().any(|domain| {
        host.strip_suffix(domain)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|account| {
                !account.is_empty()
                    && account.len() <= 63
                    && !account.starts_with('-')
                    && !account.ends_with('-')
                    && account
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> CrmUrlPolicy {
        CrmUrlPolicy::default()
    }

    #[test]
    fn retailcrm_urls_are_normalised() {
        for (input, expected) in [
            ("https://demo.retailcrm.ru", "https://demo.retailcrm.ru/"),
            ("https://Demo.RetailCRM.ru/", "https://demo.retailcrm.ru/"),
            ("demo.simla.com", "https://demo.simla.com/"),
            (
                "  https://shop-1.retailcrm.pro:443/ ",
                "https://shop-1.retailcrm.pro/",
            ),
            ("https://acme.simla.io.", "https://acme.simla.io/"),
        ] {
            assert_eq!(
                strict().normalise(input).unwrap().as_str(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn everything_else_is_refused_with_its_reason() {
        let p = strict();
        assert_eq!(
            p.normalise("http://demo.retailcrm.ru/"),
            Err(CrmUrlError::NotHttps)
        );
        assert_eq!(
            p.normalise("https://user:pw@demo.retailcrm.ru/"),
            Err(CrmUrlError::Credentials)
        );
        assert_eq!(
            p.normalise("https://demo.retailcrm.ru/?x=1"),
            Err(CrmUrlError::QueryOrFragment)
        );
        assert_eq!(
            p.normalise("https://demo.retailcrm.ru/#a"),
            Err(CrmUrlError::QueryOrFragment)
        );
        assert!(matches!(
            p.normalise("https://demo.retailcrm.ru/orders/"),
            Err(CrmUrlError::Path { .. })
        ));
        assert_eq!(
            p.normalise("https://demo.retailcrm.ru:8443/"),
            Err(CrmUrlError::Port)
        );
        for host in [
            "https://retailcrm.ru/",
            "https://a.b.retailcrm.ru/",
            "https://evil.com/",
            "https://demo.retailcrm.ru.evil.com/",
            "https://evilretailcrm.ru/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://-x.retailcrm.ru/",
        ] {
            assert!(
                matches!(p.normalise(host), Err(CrmUrlError::NotRetailCrm(_))),
                "{host}"
            );
        }
        assert!(matches!(
            p.normalise("https://"),
            Err(CrmUrlError::NotAUrl(_))
        ));
        assert!(matches!(
            p.normalise("ftp://demo.retailcrm.ru/"),
            Err(CrmUrlError::NotHttps)
        ));
    }

    #[test]
    fn operator_patterns_allow_the_simulator() {
        let p = CrmUrlPolicy::new(vec![HostPattern::parse("http://127.0.0.1:*").unwrap()]);
        assert_eq!(
            p.normalise("http://127.0.0.1:4567").unwrap().as_str(),
            "http://127.0.0.1:4567/"
        );
        assert_eq!(
            p.normalise("http://127.0.0.2:4567/"),
            Err(CrmUrlError::NotHttps)
        );
        // Still no credentials or paths, even for allowed hosts.
        assert_eq!(
            p.normalise("http://u@127.0.0.1:4567/"),
            Err(CrmUrlError::Credentials)
        );
    }

    #[test]
    fn one_private_answer_refuses_the_host() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ensure_public("a.retailcrm.ru", [ip("8.8.8.8")]), Ok(()));
        assert_eq!(
            ensure_public("a.retailcrm.ru", [ip("8.8.8.8"), ip("10.0.0.5")]),
            Err(CrmUrlError::PrivateAddress("a.retailcrm.ru".into()))
        );
        assert_eq!(
            ensure_public("a.retailcrm.ru", []),
            Err(CrmUrlError::Unresolvable("a.retailcrm.ru".into()))
        );
    }

    #[tokio::test]
    async fn hosts_resolving_to_private_addresses_are_refused() {
        // `localhost` resolves to loopback on every machine, without network access.
        let p = CrmUrlPolicy::new(vec![HostPattern::parse("https://localhost").unwrap()]);
        assert!(
            p.validate("https://localhost/").await.is_ok(),
            "allowed by pattern"
        );
        // A pattern on another port does not allow it; then it is not a RetailCRM host either.
        assert!(strict().validate("https://localhost/").await.is_err());
    }
}
