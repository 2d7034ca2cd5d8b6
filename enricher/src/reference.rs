//! One account's reference data, cached: timezone and currency (`settings`), statuses, status
//! groups, sites, and the users that manage its orders.
//!
//! Loaded on the account's first batch and again after the TTL; the dictionaries are also
//! reloaded at once when an order names a status or a site they do not have (a status created
//! since). Users are looked up one by one (`/users/{id}`, the method every key that passed the
//! connect check may call) and remembered, a deleted or unknown one as `None`.

use std::collections::HashMap;

use chrono_tz::Tz;
use dealflow_shared::retailcrm::RetailCrmError;
use dealflow_shared::retailcrm::models::{Dictionary, Order, Site, Status, StatusGroup, User};
use tokio::time::Instant;

use crate::crm::Crm;
use crate::mapping::AccountView;

/// The cached reference data of one account.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The zone of the account's naive datetimes (UTC when the account names none).
    pub timezone: Tz,
    /// `settings.default_currency`.
    pub default_currency: Option<String>,
    /// Sites by code.
    pub sites: Dictionary<Site>,
    /// Statuses by code.
    pub statuses: Dictionary<Status>,
    /// Status groups by code.
    pub groups: Dictionary<StatusGroup>,
    /// Users looked up so far (`None`: unknown or deleted).
    pub managers: HashMap<i64, Option<User>>,
    /// When the dictionaries were last loaded.
    pub loaded_at: Instant,
}

impl Reference {
    /// Loads settings and dictionaries (four calls).
    pub async fn load(crm: &mut Crm) -> Result<Self, RetailCrmError> {
        let settings = crm.settings().await?;
        let timezone = match settings.time_zone() {
            Ok(Some(tz)) => tz,
            Ok(None) => {
                tracing::warn!("the account names no timezone; reading its datetimes as UTC");
                Tz::UTC
            }
            Err(error) => {
                tracing::error!(%error, "reading the account's datetimes as UTC");
                Tz::UTC
            }
        };
        let mut reference = Self {
            timezone,
            default_currency: settings.default_currency.map(|c| c.value),
            sites: Dictionary::new(),
            statuses: Dictionary::new(),
            groups: Dictionary::new(),
            managers: HashMap::new(),
            loaded_at: Instant::now(),
        };
        reference.reload_dictionaries(crm).await?;
        Ok(reference)
    }

    /// Reloads statuses, status groups and sites (three calls).
    pub async fn reload_dictionaries(&mut self, crm: &mut Crm) -> Result<(), RetailCrmError> {
        self.statuses = crm.statuses().await?;
        self.groups = crm.status_groups().await?;
        self.sites = crm.sites().await?;
        self.loaded_at = Instant::now();
        Ok(())
    }

    /// Whether the order's status and site are in the dictionaries.
    pub fn knows(&self, order: &Order) -> bool {
        let status_known = order
            .status
            .as_ref()
            .is_none_or(|s| self.statuses.contains_key(s));
        let site_known = order
            .site
            .as_ref()
            .is_none_or(|s| self.sites.contains_key(s));
        status_known && site_known
    }

    /// Looks up every manager of `orders` not seen yet. A user the API does not find (deleted)
    /// or cannot describe is remembered as unknown; any other failure is returned.
    pub async fn resolve_managers(
        &mut self,
        crm: &mut Crm,
        orders: &[Order],
    ) -> Result<(), RetailCrmError> {
        let mut missing: Vec<i64> = orders
            .iter()
            .filter_map(|o| o.manager_id)
            .filter(|id| *id > 0 && !self.managers.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for id in missing {
            let user = match crm.user(id).await {
                Ok(user) => Some(user),
                Err(RetailCrmError::NotFound { .. }) => None,
                Err(error @ RetailCrmError::InvalidResponse { .. }) => {
                    tracing::warn!(user_id = id, %error, "manager unreadable; kept as unknown");
                    None
                }
                Err(error) => return Err(error),
            };
            self.managers.insert(id, user);
        }
        Ok(())
    }

    /// The view mapping reads.
    pub fn view(&self) -> AccountView<'_> {
        AccountView {
            timezone: self.timezone,
            default_currency: self.default_currency.as_deref(),
            sites: &self.sites,
            statuses: &self.statuses,
            managers: &self.managers,
        }
    }
}
