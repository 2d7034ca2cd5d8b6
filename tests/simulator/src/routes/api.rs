//! Unversioned methods (`/api/credentials`, `/api/api-versions`), settings and references.

use serde_json::{Value, json};

use super::Ctx;
use crate::config::SiteAccess;
use crate::render::reference;

/// `GET /api/credentials`: what the presented key may do.
pub fn credentials(ctx: &Ctx<'_>) -> Value {
    let access = &ctx.key.access;
    let sites: Vec<&str> = ctx
        .store
        .sites
        .iter()
        .map(|s| s.code.as_str())
        .filter(|code| ctx.key.sees_site(code))
        .collect();
    let site_access = match access.site_access {
        SiteAccess::Full => "access_full",
        SiteAccess::Selective => "access_selective",
    };
    json!({
        "success": true,
        "scopes": access.scopes,
        "credentials": ctx.key.credentials(),
        "siteAccess": site_access,
        "sitesAvailable": sites,
    })
}

/// `GET /api/api-versions`.
pub fn versions() -> Value {
    json!({ "success": true, "versions": ["3.0", "4.0", "5.0"] })
}

/// `GET /api/v5/settings`.
pub fn settings(ctx: &Ctx<'_>) -> Value {
    json!({ "success": true, "settings": reference::settings(ctx.store) })
}

/// `GET /api/v5/reference/statuses`.
pub fn statuses(ctx: &Ctx<'_>) -> Value {
    json!({ "success": true, "statuses": reference::statuses(ctx.store) })
}

/// `GET /api/v5/reference/status-groups`.
pub fn status_groups(ctx: &Ctx<'_>) -> Value {
    json!({ "success": true, "statusGroups": reference::status_groups(ctx.store) })
}

/// `GET /api/v5/reference/sites`: only the sites the key sees.
pub fn sites(ctx: &Ctx<'_>) -> Value {
    let mut all = reference::sites(ctx.store);
    if let Some(map) = all.as_object_mut() {
        map.retain(|code, _| ctx.key.sees_site(code));
    }
    json!({ "success": true, "sites": all })
}
