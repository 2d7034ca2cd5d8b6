//! Account-local time: every RetailCRM datetime is naive (`Y-m-d H:i:s`) in the account
//! timezone, so the simulator keeps naive local times and converts only at the edges.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;

/// RetailCRM "date/time" format.
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// RetailCRM "date" format.
pub const DATE_FORMAT: &str = "%Y-%m-%d";

/// Formats a datetime the way the API does.
pub fn fmt_datetime(dt: NaiveDateTime) -> String {
    dt.format(DATETIME_FORMAT).to_string()
}

/// Formats a date the way the API does.
pub fn fmt_date(d: NaiveDate) -> String {
    d.format(DATE_FORMAT).to_string()
}

/// Parses a filter value: `Y-m-d H:i:s`, or `Y-m-d` meaning the start of that day (or its last
/// second when `end_of_day`, for `…To` filters).
pub fn parse_filter_datetime(value: &str, end_of_day: bool) -> Option<NaiveDateTime> {
    let value = value.trim();
    if let Ok(dt) = NaiveDateTime::parse_from_str(value, DATETIME_FORMAT) {
        return Some(dt);
    }
    let date = NaiveDate::parse_from_str(value, DATE_FORMAT).ok()?;
    let time = if end_of_day {
        NaiveTime::from_hms_opt(23, 59, 59)?
    } else {
        NaiveTime::MIN
    };
    Some(date.and_time(time))
}

/// Parses a datetime given to a control (`Y-m-d H:i:s` only).
pub fn parse_datetime(value: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(value.trim(), DATETIME_FORMAT).ok()
}

/// The account's wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    tz: Tz,
}

impl Clock {
    /// A clock in `tz`.
    pub fn new(tz: Tz) -> Self {
        Self { tz }
    }

    /// The account timezone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Now, naive in the account timezone, whole seconds (the API has no fractions).
    pub fn now(&self) -> NaiveDateTime {
        self.local(Utc::now())
    }

    /// An instant as naive account-local time, whole seconds.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        let local = at.with_timezone(&self.tz).naive_local();
        local.with_nanosecond(0).unwrap_or(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_dates_accept_date_and_datetime() {
        let from = parse_filter_datetime("2024-01-15", false).unwrap();
        assert_eq!(fmt_datetime(from), "2024-01-15 00:00:00");
        let to = parse_filter_datetime("2024-01-15", true).unwrap();
        assert_eq!(fmt_datetime(to), "2024-01-15 23:59:59");
        let exact = parse_filter_datetime("2024-01-15 10:20:30", true).unwrap();
        assert_eq!(fmt_datetime(exact), "2024-01-15 10:20:30");
        assert!(parse_filter_datetime("15.01.2024", false).is_none());
    }

    #[test]
    fn local_time_follows_the_zone() {
        let at = DateTime::parse_from_rfc3339("2024-01-15T07:20:30.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let moscow = Clock::new(chrono_tz::Europe::Moscow).local(at);
        assert_eq!(fmt_datetime(moscow), "2024-01-15 10:20:30");
        let vladivostok = Clock::new(chrono_tz::Asia::Vladivostok).local(at);
        assert_eq!(fmt_datetime(vladivostok), "2024-01-15 17:20:30");
    }
}
