//! The keyset cursor of the deal list: where the next page starts, as opaque text.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Where the next page starts: after this deal in (created_at, order_id) descending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DealCursor {
    pub(crate) created_at: i64,
    pub(crate) order_id: i64,
}

impl DealCursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("d1:{}:{}", self.created_at, self.order_id))
    }

    /// Parses the opaque text form.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let mut parts = raw.strip_prefix("d1:")?.split(':');
        let cursor = Self {
            created_at: parts.next()?.parse().ok()?,
            order_id: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = DealCursor {
            created_at: 1_705_302_000_000_000,
            order_id: 48213,
        };
        assert_eq!(DealCursor::decode(&cursor.encode()), Some(cursor));
        let bad_parts = ["d1:1:2:3", "d1:x:2", "d2:1:2", "1:2"].map(|t| URL_SAFE_NO_PAD.encode(t));
        for bad in ["", "abc", "!!!"]
            .iter()
            .copied()
            .chain(bad_parts.iter().map(String::as_str))
        {
            assert_eq!(DealCursor::decode(bad), None, "{bad}");
        }
    }
}
