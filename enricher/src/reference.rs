//! One account's reference data, cached: timezone and currency (`settings`), statuses, status
//! groups, sites, and the users that manage its orders.
//!
//! Loaded when the account's worker starts (so the first webhook's batch pays nothing for it)
//! and again after the TTL; the dictionaries are also reloaded at once when an order names a
//! status or a site they do not have (a status created since).
//!
//! Users come from `GET /users` with each load (one call per 100 users, instead of one call
//! per manager in the middle of the first batches). That method is not part of the connect
//! check, which only asks for `/users/{id}`: a key without it is remembered
//! ([`UserListing::Refused`]) and its managers are looked up one by one as before. A manager
//! the list does not name (a user deleted or created since) is looked up by id, and every
//! answer is remembered until the next load, a deleted or unknown user as `None`.

use std::collections::HashMap;

use chrono_tz::Tz;
use dealflow_shared::retailcrm::models::{Dictionary, Order, Site, Status, StatusGroup, User};
use dealflow_shared::retailcrm::{PageLimit, RetailCrmError};
use tokio::time::Instant;

use crate::crm::Crm;
use crate::mapping::AccountView;

/// Users listed per load at most (`GET /users`, 100 per page); a larger account's other
/// managers are looked up by id when an order names them.
const MAX_USER_PAGES: u32 = 5;

/// Whether the account's key may list users (`GET /users`), as far as this worker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserListing {
    /// Not refused so far: list the users with each load.
    #[default]
    Allowed,
    /// The key may not list users (or the account has no such method): only `/users/{id}`.
    Refused,
}

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
    /// Loads settings and dictionaries (four calls), then the users (one call per 100 users
    /// while `listing` allows it; a failure there only means managers are looked up by id).
    pub async fn load(crm: &mut Crm, listing: &mut UserListing) -> Result<Self, RetailCrmError> {
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
        reference.list_users(crm, listing).await?;
        Ok(reference)
    }

    /// Remembers the users `GET /users` names. A refusal is remembered in `listing` (the key
    /// lacks the method); a transient failure is only logged (tried again with the next
    /// load). A rejected key or a gone account is returned: every other call would fail too.
    async fn list_users(
        &mut self,
        crm: &mut Crm,
        listing: &mut UserListing,
    ) -> Result<(), RetailCrmError> {
        if *listing == UserListing::Refused {
            return Ok(());
        }
        for page in 1..=MAX_USER_PAGES {
            match crm.users(page, PageLimit::Hundred).await {
                Ok(answer) => {
                    for user in answer.users {
                        self.managers.insert(user.id, Some(user));
                    }
                    if answer.pagination.is_last_page() {
                        return Ok(());
                    }
                }
                Err(
                    error @ (RetailCrmError::AuthFailed { .. }
                    | RetailCrmError::AccountNotFound { .. }),
                ) => return Err(error),
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, "users not listed this time; managers are looked up by id");
                    return Ok(());
                }
                Err(error) => {
                    tracing::info!(%error, "the API key may not list users; managers are looked up by id");
                    *listing = UserListing::Refused;
                    return Ok(());
                }
            }
        }
        Ok(())
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
