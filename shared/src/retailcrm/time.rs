//! RetailCRM datetimes: the `"Y-m-d H:i:s"` wire format and the conversion of these naive,
//! account-local values to UTC.
//!
//! The API sends datetimes without an offset (`"2024-01-15 10:20:30"`); they are in the
//! account's timezone, `GET /api/v5/settings` → `settings.timezone.value` (API-NOTES §10.6).
//! The models keep the naive value as sent; [`to_utc`] turns it into an instant once the
//! timezone is known.

use std::fmt;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset as _, TimeZone, Utc};
use chrono_tz::Tz;
use serde::de::{self, Deserializer, Visitor};

/// The API's datetime layout (`Y-m-d H:i:s` in PHP terms).
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Parses one `"Y-m-d H:i:s"` value.
pub fn parse_datetime(text: &str) -> Result<NaiveDateTime, chrono::ParseError> {
    NaiveDateTime::parse_from_str(text, DATETIME_FORMAT)
}

/// Formats a naive datetime the way the API expects it in filters (`filter[startDate]`).
pub fn format_datetime(value: &NaiveDateTime) -> String {
    value.format(DATETIME_FORMAT).to_string()
}

/// Converts a naive account-local datetime to UTC.
///
/// Deterministic at daylight-saving edges, where RetailCRM's naive value is itself ambiguous.
/// Both cases use the offset in force *before* the transition (the `fold=0` rule of PEP 495):
/// - **overlap** (clocks go back, the local time happens twice): the *earlier* instant, i.e. the
///   offset in force before the change;
/// - **gap** (clocks go forward, the local time never happens): the value is read with the
///   offset in force *before* the gap, so `02:30` in a `02:00 → 03:00` gap becomes the instant
///   shown as `03:30` after it — the same instant an unchanged clock would have shown.
pub fn to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _later) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // Walk back to the last local time before the gap; its offset is the one in force
            // before the transition. Real gaps are at most a few hours, so this ends quickly;
            // the 48 h bound only keeps a broken zone table from looping forever. At the edges
            // of chrono's calendar (a garbled `-262143-01-01 00:00:00`, where the zone's offset
            // leaves the calendar) the arithmetic is checked: the value is then read as UTC
            // rather than panicking the worker.
            let step = Duration::minutes(15);
            let mut probe = local;
            for _ in 0..(48 * 4) {
                let Some(earlier) = probe.checked_sub_signed(step) else {
                    break;
                };
                probe = earlier;
                if let Some(before) = tz.from_local_datetime(&probe).earliest() {
                    let offset =
                        Duration::seconds(i64::from(before.offset().fix().local_minus_utc()));
                    return match local.checked_sub_signed(offset) {
                        Some(instant) => Utc.from_utc_datetime(&instant),
                        None => Utc.from_utc_datetime(&local),
                    };
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

/// Required `"Y-m-d H:i:s"` field (for `#[serde(deserialize_with)]`).
pub fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
    opt_datetime(d)?.ok_or_else(|| de::Error::custom("expected a datetime, found null"))
}

/// Optional `"Y-m-d H:i:s"` field: a string in that layout or `null`.
pub fn opt_datetime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
    d.deserialize_option(OptDateTimeVisitor)
}

struct OptDateTimeVisitor;

impl<'de> Visitor<'de> for OptDateTimeVisitor {
    type Value = Option<NaiveDateTime>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a datetime as \"YYYY-MM-DD HH:MM:SS\" or null")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_datetime(v)
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> NaiveDateTime {
        parse_datetime(text).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&local(text))
    }

    #[test]
    fn moscow_is_utc_plus_three() {
        let tz: Tz = "Europe/Moscow".parse().unwrap();
        assert_eq!(
            to_utc(local("2024-01-15 10:20:30"), tz),
            utc("2024-01-15 07:20:30")
        );
    }

    #[test]
    fn overlap_takes_the_earlier_instant() {
        // Berlin 2024-10-27: 03:00 CEST → 02:00 CET, so 02:30 happens twice.
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            to_utc(local("2024-10-27 02:30:00"), tz),
            utc("2024-10-27 00:30:00")
        );
    }

    #[test]
    fn gap_uses_the_offset_before_it() {
        // Berlin 2024-03-31: 02:00 CET → 03:00 CEST, so 02:30 never happens.
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            to_utc(local("2024-03-31 02:30:00"), tz),
            utc("2024-03-31 01:30:00")
        );
        // Right after the gap the new offset applies (so a gap time maps after it, as with
        // PEP 495's fold=0; nothing RetailCRM writes can be in the gap except by mistake).
        assert_eq!(
            to_utc(local("2024-03-31 03:00:00"), tz),
            utc("2024-03-31 01:00:00")
        );
    }

    #[test]
    fn strict_format() {
        assert!(parse_datetime("2024-01-15T10:20:30").is_err());
        assert!(parse_datetime("2024-01-15").is_err());
        assert_eq!(
            format_datetime(&local("2024-01-05 01:02:03")),
            "2024-01-05 01:02:03"
        );
    }

    #[test]
    fn the_edges_of_the_calendar_do_not_panic() {
        // Regression (issue 10 property tests): the gap walk stepped below the first
        // representable datetime and panicked on `NaiveDateTime - TimeDelta`.
        // Either the zone's offset or, where that leaves the calendar, the value read as UTC.
        let near = |local: NaiveDateTime, zone: Tz| {
            let shift = to_utc(local, zone) - Utc.from_utc_datetime(&local);
            assert!(shift.num_hours().abs() <= 24, "{local} in {zone}: {shift}");
        };
        for zone in [
            chrono_tz::Europe::Moscow,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::America::St_Johns,
        ] {
            near(NaiveDateTime::MIN, zone);
            near(NaiveDateTime::MAX, zone);
        }
    }
}
