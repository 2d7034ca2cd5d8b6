//! Account settings: `GET /api/v5/settings` (API-NOTES §1). Keys are snake_case here, each
//! setting a `{value, updated_at}` pair.

use chrono_tz::Tz;
use serde::Deserialize;

/// The settings dealflow reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Settings {
    /// Base currency, e.g. `RUB`.
    #[serde(default)]
    pub default_currency: Option<SettingValue>,
    /// IANA timezone of every naive datetime of the account, e.g. `Europe/Moscow`.
    #[serde(default)]
    pub timezone: Option<SettingValue>,
}

impl Settings {
    /// The account timezone, parsed. `None` when the account has none set; an error when the
    /// name is not a known IANA zone.
    pub fn time_zone(&self) -> Result<Option<Tz>, UnknownTimeZone> {
        self.timezone
            .as_ref()
            .map(|s| {
                s.value
                    .parse::<Tz>()
                    .map_err(|_| UnknownTimeZone(s.value.clone()))
            })
            .transpose()
    }
}

/// The account's `settings.timezone.value` is not an IANA zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?} in the account settings")]
pub struct UnknownTimeZone(pub String);

/// One setting: `{value, updated_at}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SettingValue {
    /// The value.
    pub value: String,
}

/// Body of `GET /api/v5/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SettingsResponse {
    /// Always `true` here.
    pub success: bool,
    /// The settings.
    pub settings: Settings,
}
