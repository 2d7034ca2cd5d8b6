//! Account settings: `GET /api/v5/settings` (API-NOTES §1). Keys are snake_case here, each
//! setting a `{value, updated_at}` pair.

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::retailcrm::time;

/// The settings dealflow reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Settings {
    /// Base currency, e.g. `RUB`.
    #[serde(default)]
    pub default_currency: Option<SettingValue>,
    /// Interface language, e.g. `RU`.
    #[serde(default)]
    pub system_language: Option<SettingValue>,
    /// IANA timezone of every naive datetime of the account, e.g. `Europe/Moscow`.
    #[serde(default)]
    pub timezone: Option<SettingValue>,
    /// Working hours per weekday.
    #[serde(default)]
    pub work_times: Vec<WorkTime>,
    /// Non-working periods as `"MM.DD"` texts.
    #[serde(default)]
    pub non_working_days: Vec<NonWorkingDays>,
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
    /// When it was last changed (account-local).
    #[serde(default, deserialize_with = "time::opt_datetime")]
    pub updated_at: Option<NaiveDateTime>,
}

/// `work_times[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkTime {
    /// `Monday`, ...
    pub day_type: String,
    /// `"HH:MM"`.
    #[serde(default)]
    pub start_time: Option<String>,
    /// `"HH:MM"`.
    #[serde(default)]
    pub end_time: Option<String>,
    /// `"HH:MM"`.
    #[serde(default)]
    pub lunch_start_time: Option<String>,
    /// `"HH:MM"`.
    #[serde(default)]
    pub lunch_end_time: Option<String>,
}

/// `non_working_days[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NonWorkingDays {
    /// `"MM.DD"`.
    pub start_date: String,
    /// `"MM.DD"`.
    pub end_date: String,
}

/// Body of `GET /api/v5/settings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SettingsResponse {
    /// Always `true` here.
    pub success: bool,
    /// The settings.
    pub settings: Settings,
}
