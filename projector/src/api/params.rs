//! Query parameters of the read API, parsed strictly: an unknown, repeated or malformed
//! parameter is a `400` naming it, never silently ignored (a typo in a filter would otherwise
//! return the unfiltered list). Empty values count as absent, as HTML forms send them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dealflow_shared::http::ApiError;

use crate::derive::Outcome;
use crate::read::deals::{DealCursor, DealFilter};
use crate::read::people::ContactCursor;

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page.
pub const MAX_LIMIT: usize = 500;

/// The parameters of a request, each present at most once.
#[derive(Debug)]
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses a raw query string, accepting only `allowed` names.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut out = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!(
                        "Unknown query parameter {name:?}; this endpoint accepts: {}.",
                        allowed.join(", ")
                    ),
                ));
            }
            if out
                .insert(name.to_string(), value.trim().to_owned())
                .is_some()
            {
                return Err(invalid(&name, "is given more than once"));
            }
        }
        out.retain(|_, v| !v.is_empty());
        Ok(Self(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit`: 1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(text) => match text.parse::<usize>() {
                Ok(n @ 1..=MAX_LIMIT) => Ok(n),
                _ => Err(invalid(
                    "limit",
                    &format!("must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"),
                )),
            },
        }
    }

    /// `cursor` of the deals list.
    pub fn deal_cursor(&self) -> Result<Option<DealCursor>, ApiError> {
        self.get("cursor")
            .map(|c| DealCursor::decode(c).ok_or_else(bad_cursor))
            .transpose()
    }

    /// `cursor` of the contacts list.
    pub fn contact_cursor(&self) -> Result<Option<ContactCursor>, ApiError> {
        self.get("cursor")
            .map(|c| ContactCursor::decode(c).ok_or_else(bad_cursor))
            .transpose()
    }

    /// A `true`/`false` parameter, if given.
    fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|d| match d {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(name, &format!("must be true or false, got {d:?}"))),
            })
            .transpose()
    }

    /// The deal filters of DESIGN §4.
    pub fn deal_filter(&self) -> Result<DealFilter, ApiError> {
        let text = |name| self.get(name).map(str::to_owned);
        Ok(DealFilter {
            site: text("site"),
            funnel_id: text("funnel_id"),
            stage: text("stage"),
            outcome: self
                .get("outcome")
                .map(|o| {
                    Outcome::parse(o).ok_or_else(|| {
                        invalid("outcome", &format!("must be open, won or lost, got {o:?}"))
                    })
                })
                .transpose()?,
            manager_id: self
                .get("manager_id")
                .map(|m| {
                    m.parse::<u64>().map_err(|_| {
                        invalid("manager_id", &format!("must be a manager id, got {m:?}"))
                    })
                })
                .transpose()?,
            changed_since: self
                .get("changed_since")
                .map(|t| {
                    DateTime::parse_from_rfc3339(t)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| {
                            invalid(
                                "changed_since",
                                &format!(
                                    "must be an RFC 3339 time like 2024-01-15T07:20:30Z, got {t:?}"
                                ),
                            )
                        })
                })
                .transpose()?,
            deleted: self.boolean("deleted")?,
            with_excluded: self.boolean("excluded")?.unwrap_or(false),
        })
    }
}

/// Names accepted by the deal list and its CSV export.
pub(crate) const DEAL_FILTERS: &[&str] = &[
    "site",
    "funnel_id",
    "stage",
    "outcome",
    "manager_id",
    "changed_since",
    "deleted",
    "excluded",
];

fn invalid(name: &str, problem: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_parameter",
        format!("Query parameter {name:?} {problem}."),
    )
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "The cursor is not one this API returned; start again without it.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["limit", "cursor", "outcome", "deleted", "changed_since"];

    #[test]
    fn parses_limits_and_filters() {
        let p = Params::parse(
            Some("limit=10&outcome=won&deleted=false&changed_since=2024-01-15T10:20:30%2B03:00"),
            ALL,
        )
        .unwrap();
        assert_eq!(p.limit().unwrap(), 10);
        let f = p.deal_filter().unwrap();
        assert_eq!(f.outcome, Some(Outcome::Won));
        assert_eq!(f.deleted, Some(false));
        assert_eq!(
            f.changed_since.unwrap().to_rfc3339(),
            "2024-01-15T07:20:30+00:00"
        );
        assert_eq!(
            Params::parse(None, ALL).unwrap().limit().unwrap(),
            DEFAULT_LIMIT
        );
        assert_eq!(
            Params::parse(Some("limit="), ALL).unwrap().limit().unwrap(),
            DEFAULT_LIMIT
        );
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        let code = |q: &str| {
            Params::parse(Some(q), ALL)
                .and_then(|p| p.limit().and(p.deal_filter()).and(p.deal_cursor()))
                .unwrap_err()
                .code
        };
        assert_eq!(code("limit=0"), "invalid_parameter");
        assert_eq!(code("limit=501"), "invalid_parameter");
        assert_eq!(code("limit=ten"), "invalid_parameter");
        assert_eq!(code("outcome=maybe"), "invalid_parameter");
        assert_eq!(code("deleted=yes"), "invalid_parameter");
        assert_eq!(code("changed_since=yesterday"), "invalid_parameter");
        assert_eq!(code("outcome=won&outcome=lost"), "invalid_parameter");
        assert_eq!(code("status=new"), "unknown_parameter");
        assert_eq!(code("cursor=nope"), "invalid_cursor");
    }
}
