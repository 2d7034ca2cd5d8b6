//! Is a RetailCRM API key enough for dealflow? (DESIGN §4, "A key is enough when…")
//!
//! A key must reach every shop (`siteAccess: access_full`) and either carry the scopes dealflow
//! needs or, for older keys without scopes, list every method dealflow calls. When it falls
//! short, the answer names exactly what to enable, so the user can fix it in one visit to
//! RetailCRM's key settings.

use std::collections::BTreeSet;

use dealflow_shared::retailcrm::models::Credentials;

/// Scopes a key needs (RetailCRM's names).
pub const REQUIRED_SCOPES: [&str; 4] =
    ["order_read", "customer_read", "reference_read", "user_read"];

/// Methods an older key without scopes must list (paths without the API version).
pub const REQUIRED_METHODS: [&str; 10] = [
    "/api/orders",
    "/api/orders/{externalId}",
    "/api/orders/history",
    "/api/reference/statuses",
    "/api/reference/status-groups",
    "/api/reference/sites",
    "/api/users/{id}",
    "/api/customers/{externalId}",
    "/api/customers-corporate/{externalId}",
    "/api/settings",
];

/// What a key lacks, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MissingAccess {
    pub scopes: Vec<String>,
    pub methods: Vec<String>,
    /// Shops the key cannot see (empty with `limited_to` set when the shop list is unknown).
    pub shops: Vec<String>,
    /// The shops a selective key is limited to.
    pub limited_to: Option<Vec<String>>,
}

impl MissingAccess {
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
            && self.methods.is_empty()
            && self.shops.is_empty()
            && self.limited_to.is_none()
    }

    /// One sentence for the `crm_insufficient_access` error.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        if !self.scopes.is_empty() {
            parts.push(format!("enable the scopes {}", self.scopes.join(", ")));
        }
        if !self.methods.is_empty() {
            parts.push(format!("allow the methods {}", self.methods.join(", ")));
        }
        if !self.shops.is_empty() {
            parts.push(format!(
                "give it access to the shops {}",
                self.shops.join(", ")
            ));
        } else if let Some(limited) = &self.limited_to {
            parts.push(format!(
                "give it access to all shops (it is limited to {})",
                if limited.is_empty() {
                    "none".to_string()
                } else {
                    limited.join(", ")
                }
            ));
        }
        format!(
            "The API key is not enough for dealflow: {}.",
            parts.join("; ")
        )
    }
}

/// Compares a key's credentials with what dealflow needs. `all_shops` is the account's shop
/// list when it could be read (it names the shops a selective key misses).
pub fn check(credentials: &Credentials, all_shops: Option<&[String]>) -> MissingAccess {
    let mut missing = MissingAccess::default();
    let missing_scopes: Vec<String> = REQUIRED_SCOPES
        .iter()
        .filter(|s| !credentials.has_scope(s))
        .map(|s| s.to_string())
        .collect();
    let missing_methods: Vec<String> = REQUIRED_METHODS
        .iter()
        .filter(|m| !credentials.allows_method(m))
        .map(|m| m.to_string())
        .collect();
    let has_scopes = credentials.scopes.as_ref().is_some_and(|s| !s.is_empty());
    if !missing_scopes.is_empty() && !missing_methods.is_empty() {
        // Report in the vocabulary of the key's own settings page.
        if has_scopes {
            missing.scopes = missing_scopes;
        } else {
            missing.methods = missing_methods;
        }
    }
    if !credentials.has_full_site_access() {
        let available: BTreeSet<&str> = credentials
            .sites_available
            .iter()
            .map(String::as_str)
            .collect();
        // Only `access_full` is enough: shops created later would be invisible otherwise.
        // Name the missing shops when the shop list shows them (it may list only what the key
        // sees), else say what the key is limited to.
        missing.shops = all_shops
            .unwrap_or_default()
            .iter()
            .filter(|s| !available.contains(s.as_str()))
            .cloned()
            .collect();
        if missing.shops.is_empty() {
            missing.limited_to = Some(credentials.sites_available.clone());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(
        scopes: Option<&[&str]>,
        methods: &[&str],
        site_access: &str,
        sites: &[&str],
    ) -> Credentials {
        Credentials {
            success: true,
            credentials: methods.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            site_access: Some(site_access.to_string()),
            sites_available: sites.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_full_key_with_scopes_is_enough() {
        let c = creds(Some(&REQUIRED_SCOPES), &[], "access_full", &[]);
        assert!(check(&c, None).is_empty());
    }

    #[test]
    fn an_old_key_listing_every_method_is_enough() {
        let c = creds(None, &REQUIRED_METHODS, "access_full", &[]);
        assert!(check(&c, None).is_empty());
    }

    #[test]
    fn missing_scopes_are_named() {
        // The fixture's key: no user_read.
        let c = creds(
            Some(&["order_read", "customer_read", "reference_read"]),
            &[],
            "access_full",
            &[],
        );
        let m = check(&c, None);
        assert_eq!(m.scopes, vec!["user_read"]);
        assert_eq!(
            m.message(),
            "The API key is not enough for dealflow: enable the scopes user_read."
        );
    }

    #[test]
    fn missing_methods_are_named_for_keys_without_scopes() {
        let c = creds(
            None,
            &["/api/orders", "/api/orders/history"],
            "access_full",
            &[],
        );
        let m = check(&c, None);
        assert!(m.scopes.is_empty());
        assert_eq!(m.methods.len(), REQUIRED_METHODS.len() - 2);
        assert!(m.message().contains("/api/users/{id}"));
    }

    #[test]
    fn shops_a_selective_key_cannot_see_are_named() {
        let c = creds(Some(&REQUIRED_SCOPES), &[], "access_selective", &["shop-a"]);
        let all = vec!["shop-a".to_string(), "shop-b".to_string()];
        let m = check(&c, Some(&all));
        assert_eq!(m.shops, vec!["shop-b"]);
        assert!(m.message().ends_with("give it access to the shops shop-b."));
        let m = check(&c, None);
        assert!(m.message().contains("limited to shop-a"));
        // A shop list that shows only what the key sees still refuses a selective key.
        let m = check(&c, Some(&all[..1]));
        assert!(!m.is_empty());
        assert!(
            m.message().contains("all shops (it is limited to shop-a)"),
            "{}",
            m.message()
        );
    }
}
