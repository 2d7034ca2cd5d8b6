//! API keys: where a request carries its key, which methods (scopes or credentials) and
//! sites a key may use, and the checks that turn into `"apiKey" is missing.`,
//! `Wrong "apiKey" value` and `Access denied.`.

use axum::http::HeaderMap;

use crate::config::{KeyAccess, SiteAccess};
use crate::routes::endpoint::Endpoint;

/// Method paths (without version) granted by each scope, as `/api/credentials` lists them.
const SCOPE_CREDENTIALS: &[(&str, &[&str])] = &[
    (
        "order_read",
        &[
            "/api/orders",
            "/api/orders/{externalId}",
            "/api/orders/history",
            "/api/orders/statuses",
        ],
    ),
    (
        "customer_read",
        &[
            "/api/customers",
            "/api/customers/{externalId}",
            "/api/customers/history",
            "/api/customers-corporate",
            "/api/customers-corporate/{externalId}",
        ],
    ),
    (
        "reference_read",
        &[
            "/api/reference/statuses",
            "/api/reference/status-groups",
            "/api/reference/sites",
            "/api/reference/order-types",
            "/api/reference/order-methods",
            "/api/settings",
        ],
    ),
    ("user_read", &["/api/users", "/api/users/{id}"]),
];

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No key in the header nor the query.
    Missing,
    /// Unknown or revoked key.
    Wrong,
    /// The key may not call this method.
    Denied,
}

/// One key of an account.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The secret itself.
    pub key: String,
    /// What it may do.
    pub access: KeyAccess,
    /// Revoked keys answer `Wrong "apiKey" value` until restored.
    pub revoked: bool,
}

impl ApiKey {
    /// The method paths it may call: the explicit list, else the paths of its scopes.
    pub fn credentials(&self) -> Vec<String> {
        if let Some(explicit) = &self.access.credentials {
            return explicit.clone();
        }
        SCOPE_CREDENTIALS
            .iter()
            .filter(|(scope, _)| self.access.scopes.iter().any(|s| s == scope))
            .flat_map(|(_, paths)| paths.iter().map(|p| (*p).to_owned()))
            .collect()
    }

    /// Whether it may call `endpoint` (by scope, or by credential path for scope-less keys).
    pub fn allows(&self, endpoint: &Endpoint) -> bool {
        let Some(path) = endpoint.credential() else {
            return true;
        };
        endpoint
            .scope()
            .is_some_and(|scope| self.access.scopes.iter().any(|s| s == scope))
            || self.credentials().iter().any(|c| c == path)
    }

    /// Whether it may see the site `code`.
    pub fn sees_site(&self, code: &str) -> bool {
        match self.access.site_access {
            SiteAccess::Full => true,
            SiteAccess::Selective => self.access.sites_available.iter().any(|s| s == code),
        }
    }
}

/// The key a request carries: the `X-API-KEY` header, else the `apiKey` query parameter.
pub fn presented_key<'a>(headers: &'a HeaderMap, query_key: Option<&'a str>) -> Option<&'a str> {
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or(query_key)
        .filter(|k| !k.is_empty())
}

/// Finds the key and checks it may call `endpoint`.
pub fn authorize<'k>(
    keys: &'k [ApiKey],
    presented: Option<&str>,
    endpoint: &Endpoint,
) -> Result<&'k ApiKey, AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    let key = keys
        .iter()
        .find(|k| !k.revoked && k.key == presented)
        .ok_or(AuthError::Wrong)?;
    if key.allows(endpoint) {
        Ok(key)
    } else {
        Err(AuthError::Denied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[&str], credentials: Option<&[&str]>) -> ApiKey {
        ApiKey {
            key: "k".into(),
            access: KeyAccess {
                key: None,
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                credentials: credentials.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
                site_access: SiteAccess::Full,
                sites_available: Vec::new(),
            },
            revoked: false,
        }
    }

    #[test]
    fn scopes_and_credentials_both_grant() {
        let by_scope = key(&["order_read"], None);
        assert!(by_scope.allows(&Endpoint::OrdersHistory));
        assert!(!by_scope.allows(&Endpoint::UsersList));
        assert!(by_scope.allows(&Endpoint::Credentials));
        let old_key = key(&[], Some(&["/api/users/{id}"]));
        assert!(old_key.allows(&Endpoint::UserGet("1".into())));
        assert!(!old_key.allows(&Endpoint::UsersList));
    }

    #[test]
    fn missing_wrong_revoked_denied() {
        let mut keys = vec![key(&["order_read"], None)];
        let headers = HeaderMap::new();
        assert_eq!(
            authorize(&keys, presented_key(&headers, None), &Endpoint::OrdersList).unwrap_err(),
            AuthError::Missing
        );
        assert_eq!(
            authorize(&keys, Some("nope"), &Endpoint::OrdersList).unwrap_err(),
            AuthError::Wrong
        );
        assert_eq!(
            authorize(&keys, Some("k"), &Endpoint::Settings).unwrap_err(),
            AuthError::Denied
        );
        assert!(authorize(&keys, Some("k"), &Endpoint::OrdersList).is_ok());
        keys[0].revoked = true;
        assert_eq!(
            authorize(&keys, Some("k"), &Endpoint::OrdersList).unwrap_err(),
            AuthError::Wrong
        );
    }
}
