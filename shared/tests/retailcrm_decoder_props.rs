//! Property tests of the RetailCRM order decoder (issue 10, poison input): the real order bodies
//! of `tests/fixtures/retailcrm/`, mutated — truncated at any byte, a byte flipped, any value
//! replaced by a wrong type, a huge number (`1e400`, 2^70), deep nesting, `[]` for an object,
//! invalid UTF-8 — decode through [`parse_response`] into the model, or into a typed error;
//! never a panic. A value replaced in well-formed JSON that makes decoding fail is named by the
//! error's JSON path (the path of the replaced value, or of an enclosing field).

use std::sync::LazyLock;

use dealflow_shared::retailcrm::models::{OrderResponse, OrdersHistoryResponse, OrdersResponse};
use dealflow_shared::retailcrm::{Endpoint, RetailCrmError, parse_response};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let dir = std::env::var("DEALFLOW_FIXTURES_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/retailcrm").to_owned()
    });
    let bytes = std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_slice(&bytes).unwrap()
}

static ORDER_GET: LazyLock<Value> = LazyLock::new(|| fixture("orders-get.json"));
static ORDERS_LIST: LazyLock<Value> = LazyLock::new(|| fixture("orders-list.json"));
static HISTORY: LazyLock<Value> = LazyLock::new(|| fixture("orders-history.json"));

/// Every value's path, in `serde_path_to_error`'s notation (`order.items[0].offer.id`).
fn paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                out.push(path.clone());
                paths(v, &path, out);
            }
        }
        _ => {}
    }
}

fn at_path<'a>(value: &'a mut Value, path: &str) -> &'a mut Value {
    let mut current = value;
    for segment in path.split('.') {
        let (key, indices) = segment.split_once('[').unwrap_or((segment, ""));
        if !key.is_empty() {
            current = current.get_mut(key).unwrap();
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().unwrap();
            current = current.get_mut(i).unwrap();
        }
    }
    current
}

const MARK: &str = "@@mutated@@";

/// Replacement texts, spliced in raw so they can be what `serde_json::Value` cannot hold.
fn replacement() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(
            &[
                "1e400",
                "-1e400",
                "1180591620717411303424",
                "-1180591620717411303424",
                "18446744073709551616",
                "9223372036854775808",
                "-9223372036854775809",
                "0",
                "-1",
                "1.5",
                "null",
                "true",
                "[]",
                "{}",
                "[{}]",
                "\"\"",
                "\"x\"",
                "\"2024-13-45 99:99:99\"",
                "\"+262143-12-31 23:59:59\"",
                "\"-262144-01-01 00:00:00\"",
                "\"0000-01-01 00:00:00\"",
                "\"9999-12-31 23:59:59\"",
                "\"\\ud800\"",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        (1usize..3_000).prop_map(|d| format!("{}1{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        (1usize..3_000)
            .prop_map(|d| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d)).into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|mut b| {
            // A string holding arbitrary bytes, often invalid UTF-8.
            b.retain(|c| *c != b'"' && *c != b'\\');
            [&b"\""[..], &b, &b"\""[..]].concat()
        }),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Replace(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Flip(at, b)),
        (any::<usize>(), replacement()).prop_map(|(at, r)| Mutation::Replace(at, r)),
    ]
}

/// The mutated body, and the path of the replaced value when there is one.
fn apply(base: &Value, mutation: &Mutation) -> (Vec<u8>, Option<String>) {
    let text = serde_json::to_vec(base).unwrap();
    match mutation {
        Mutation::Truncate(at) => (text[..at % (text.len() + 1)].to_vec(), None),
        Mutation::Flip(at, byte) => {
            let mut text = text;
            let i = at % text.len();
            text[i] = *byte;
            (text, None)
        }
        Mutation::Replace(at, raw) => {
            let mut all = Vec::new();
            paths(base, "", &mut all);
            let path = all[at % all.len()].clone();
            let mut value = base.clone();
            *at_path(&mut value, &path) = Value::String(MARK.into());
            let text = serde_json::to_string(&value).unwrap();
            let quoted = format!("\"{MARK}\"");
            let (before, after) = text.split_once(&quoted).unwrap();
            let body = [before.as_bytes(), raw, after.as_bytes()].concat();
            (body, Some(path))
        }
    }
}

fn check<T: DeserializeOwned>(base: &Value, mutation: &Mutation) -> Result<(), TestCaseError> {
    let (body, replaced) = apply(base, mutation);
    let endpoint = Endpoint::get("/api/v5/orders");
    match parse_response::<T>(&endpoint, 200, &body) {
        Ok(_) => {}
        Err(RetailCrmError::InvalidResponse { path, message, .. }) => {
            prop_assert!(!path.is_empty() && !message.is_empty());
            let well_formed = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
            if let (Some(replaced), true) = (replaced, well_formed) {
                // The error names the replaced value, a field inside it (deep nesting) or a
                // field enclosing it (an untagged or lenient field reports where its
                // alternatives began).
                prop_assert!(
                    replaced.starts_with(&path) || path.starts_with(&replaced) || path == ".",
                    "replaced `{replaced}`, error at `{path}`: {message}"
                );
            }
        }
        // A replaced `success` (or a flipped byte there) turns the body into an error envelope
        // or a non-JSON answer: still a typed error.
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_mutated_order_decodes_or_is_a_typed_error(m in mutation()) {
        check::<OrderResponse>(&ORDER_GET, &m)?;
    }

    #[test]
    fn a_mutated_order_list_decodes_or_is_a_typed_error(m in mutation()) {
        check::<OrdersResponse>(&ORDERS_LIST, &m)?;
    }

    #[test]
    fn a_mutated_history_decodes_or_is_a_typed_error(m in mutation()) {
        check::<OrdersHistoryResponse>(&HISTORY, &m)?;
    }

    #[test]
    fn arbitrary_bytes_are_a_typed_error(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let endpoint = Endpoint::get("/api/v5/orders/1");
        prop_assert!(parse_response::<OrderResponse>(&endpoint, 200, &body).is_err());
    }
}
