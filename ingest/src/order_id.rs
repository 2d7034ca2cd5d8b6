//! Reading the order id from a webhook request (DESIGN §4).
//!
//! RetailCRM's trigger action "HTTP request" sends GET or POST with its parameters either in the
//! URL or "in the body" (form-encoded); other senders use JSON. The id is read from the query,
//! then a form body, then a JSON body, in each from the field `orderId` or `id`. Every id found
//! anywhere must agree: two different ids in one request are ambiguous, never a guess.

use std::collections::BTreeSet;

/// Why no order id could be read. Every kind answers `400 invalid_order_id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderIdError {
    #[error("no order id: send orderId (or id) in the query, a form body or a JSON body")]
    Missing,
    #[error("order id {0:?} is not a positive integer")]
    NotPositiveInteger(String),
    #[error("the request carries different order ids ({0}); send exactly one")]
    Ambiguous(String),
    #[error("the request body is neither a form nor a JSON object")]
    UnreadableBody,
}

const FIELDS: [&str; 2] = ["orderId", "id"];

/// Reads the order id from the query string, the content type and the raw body.
pub fn extract(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<u64, OrderIdError> {
    let mut raw: Vec<String> = Vec::new();
    if let Some(query) = query {
        raw.extend(form_values(query.as_bytes()));
    }
    raw.extend(body_values(content_type, body)?);

    let mut ids = BTreeSet::new();
    for value in &raw {
        ids.insert(parse_id(value)?);
    }
    match ids.len() {
        0 => Err(OrderIdError::Missing),
        1 => Ok(ids.into_iter().next().expect("one element")),
        _ => Err(OrderIdError::Ambiguous(
            ids.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

fn form_values(bytes: &[u8]) -> Vec<String> {
    url::form_urlencoded::parse(bytes)
        .filter(|(k, _)| FIELDS.contains(&k.as_ref()))
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn body_values(content_type: Option<&str>, body: &[u8]) -> Result<Vec<String>, OrderIdError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let looks_json =
        mime == "application/json" || mime.ends_with("+json") || trimmed.starts_with(b"{");
    if looks_json {
        return json_values(trimmed);
    }
    if mime.is_empty() || mime == "application/x-www-form-urlencoded" || mime == "text/plain" {
        // A form body must be text; anything else is not a body we understand.
        std::str::from_utf8(trimmed).map_err(|_| OrderIdError::UnreadableBody)?;
        return Ok(form_values(trimmed));
    }
    // Other bodies (multipart, XML…) carry nothing we read; the query may still have the id.
    Ok(Vec::new())
}

fn json_values(body: &[u8]) -> Result<Vec<String>, OrderIdError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| OrderIdError::UnreadableBody)?;
    let object = value.as_object().ok_or(OrderIdError::UnreadableBody)?;
    Ok(FIELDS
        .iter()
        .filter_map(|f| object.get(*f))
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect())
}

fn parse_id(value: &str) -> Result<u64, OrderIdError> {
    let trimmed = value.trim();
    let is_digits = !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit());
    match trimmed.parse::<u64>() {
        Ok(id) if is_digits && id > 0 => Ok(id),
        _ => Err(OrderIdError::NotPositiveInteger(
            value.chars().take(40).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    #[test]
    fn every_accepted_form_gives_the_id() {
        assert_eq!(extract(Some("orderId=48213"), None, b""), Ok(48213));
        assert_eq!(extract(Some("id=7&utm=x"), None, b""), Ok(7));
        assert_eq!(extract(None, FORM, b"id=48213"), Ok(48213));
        assert_eq!(extract(None, FORM, b"orderId=5&site=shop"), Ok(5));
        assert_eq!(
            extract(None, None, b"orderId=5"),
            Ok(5),
            "a form body without a content type"
        );
        assert_eq!(extract(None, JSON, br#"{"orderId": 48213}"#), Ok(48213));
        assert_eq!(extract(None, JSON, br#"{"id": "48213"}"#), Ok(48213));
        assert_eq!(
            extract(None, None, br#" {"orderId": 9} "#),
            Ok(9),
            "JSON recognised by shape"
        );
        // The same id in several places is not ambiguous.
        assert_eq!(extract(Some("orderId=3"), FORM, b"id=3"), Ok(3));
    }

    #[test]
    fn missing_or_bad_ids_are_refused() {
        assert_eq!(extract(None, None, b""), Err(OrderIdError::Missing));
        assert_eq!(
            extract(Some("order=1"), FORM, b"x=1"),
            Err(OrderIdError::Missing)
        );
        for bad in [
            "0",
            "-4",
            "1.5",
            "abc",
            "",
            "%2B3",
            "3%20x",
            "99999999999999999999999",
        ] {
            let query = format!("orderId={bad}");
            assert!(
                matches!(
                    extract(Some(&query), None, b""),
                    Err(OrderIdError::NotPositiveInteger(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            extract(None, JSON, br#"{"orderId": 1.5}"#),
            Err(OrderIdError::NotPositiveInteger(_))
        ));
        assert!(matches!(
            extract(None, JSON, br#"{"orderId": null}"#),
            Err(OrderIdError::NotPositiveInteger(_))
        ));
        assert_eq!(
            extract(None, JSON, b"{not json"),
            Err(OrderIdError::UnreadableBody)
        );
        assert_eq!(
            extract(None, JSON, b"[1]"),
            Err(OrderIdError::UnreadableBody)
        );
        assert_eq!(
            extract(None, FORM, b"\xff\xfe"),
            Err(OrderIdError::UnreadableBody)
        );
    }

    #[test]
    fn two_different_ids_are_ambiguous() {
        assert_eq!(
            extract(Some("orderId=1&id=2"), None, b""),
            Err(OrderIdError::Ambiguous("1, 2".into()))
        );
        assert_eq!(
            extract(Some("orderId=1"), FORM, b"orderId=2"),
            Err(OrderIdError::Ambiguous("1, 2".into()))
        );
        assert_eq!(
            extract(Some("orderId=1"), JSON, br#"{"id": 2}"#),
            Err(OrderIdError::Ambiguous("1, 2".into()))
        );
        assert_eq!(
            extract(Some("orderId=1&orderId=2"), None, b""),
            Err(OrderIdError::Ambiguous("1, 2".into()))
        );
    }

    #[test]
    fn unrelated_bodies_leave_the_query_in_charge() {
        assert_eq!(
            extract(
                Some("orderId=12"),
                Some("multipart/form-data; boundary=x"),
                b"--x--"
            ),
            Ok(12)
        );
    }
}
