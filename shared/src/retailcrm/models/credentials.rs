//! What an API key may do: `GET /api/credentials` and `GET /api/api-versions`
//! (unversioned endpoints; API-NOTES §1).

use serde::Deserialize;

/// Body of `GET /api/credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Always `true` here.
    pub success: bool,
    /// Method paths the key may call, without the version (`/api/orders`,
    /// `/api/orders/{externalId}`, ...).
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Granted scopes (`order_read`, ...); absent on older keys, which only have
    /// `credentials`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `access_full` or `access_selective`.
    #[serde(default)]
    pub site_access: Option<String>,
    /// Sites the key reaches (with selective access).
    #[serde(default)]
    pub sites_available: Vec<String>,
}

impl Credentials {
    /// The key reaches every site of the account.
    pub fn has_full_site_access(&self) -> bool {
        self.site_access.as_deref() == Some("access_full")
    }

    /// The key has `scope` (false for keys without scopes).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_some_and(|s| s.iter().any(|x| x == scope))
    }

    /// The key may call `method` (an unversioned path such as `/api/orders/history`).
    pub fn allows_method(&self, method: &str) -> bool {
        self.credentials.iter().any(|x| x == method)
    }
}

/// Body of `GET /api/api-versions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiVersionsResponse {
    /// Always `true` here.
    pub success: bool,
    /// Versions as text, e.g. `"5.0"`.
    pub versions: Vec<String>,
}
