//! Property tests of the webhook order-id parser (issue 10, poison input): any query, content
//! type and body — arbitrary bytes, invalid UTF-8, deep or huge JSON — gives a positive id or a
//! typed error, never a panic; and every well-formed request gives the documented answer.

use dealflow_ingest::order_id::{OrderIdError, extract};
use proptest::prelude::*;

const CONTENT_TYPES: [&str; 7] = [
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.api+json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
    "text/xml",
];

/// Any content type: a known one, or arbitrary text.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        proptest::sample::select(&CONTENT_TYPES[..]).prop_map(|c| Some(c.to_owned())),
        any::<String>().prop_map(Some),
    ]
}

/// Bodies that stress the JSON and form readers: raw bytes, deep nesting, long arrays, huge
/// numbers and JSON-looking text cut at any point.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (1usize..5_000).prop_map(|depth| {
            let mut body = "{\"a\":".repeat(depth);
            body.push('1');
            body.push_str(&"}".repeat(depth));
            body.into_bytes()
        }),
        (1usize..5_000)
            .prop_map(|depth| format!("{{\"orderId\":{}", "[".repeat(depth)).into_bytes()),
        (0usize..20_000).prop_map(|n| {
            format!("{{\"orderId\":1,\"pad\":[{}0]}}", "0,".repeat(n)).into_bytes()
        }),
        proptest::sample::select(
            &[
                "1e400",
                "-0",
                "18446744073709551616",
                "1180591620717411303424",
                "0.0",
                "\"\u{0660}\"",
                "true",
                "{}",
                "[]"
            ][..]
        )
        .prop_map(|v| format!("{{\"orderId\":{v}}}").into_bytes()),
        (any::<String>(), any::<usize>()).prop_map(|(s, cut)| {
            let full = format!("{{\"orderId\":\"{s}\",\"id\":{}}}", s.len());
            full.as_bytes()[..cut % (full.len() + 1)].to_vec()
        }),
    ]
}

/// Queries that are arbitrary text or carry arbitrary values in the id fields.
fn query() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(Some),
        ("(orderId|id|other)", any::<String>()).prop_map(|(k, v)| {
            Some(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair(&k, &v)
                    .finish(),
            )
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_and_ids_are_positive(
        q in query(),
        ct in content_type(),
        b in body(),
    ) {
        match extract(q.as_deref(), ct.as_deref(), &b) {
            Ok(id) => prop_assert!(id > 0),
            Err(
                OrderIdError::Missing
                | OrderIdError::NotPositiveInteger(_)
                | OrderIdError::Ambiguous(_)
                | OrderIdError::UnreadableBody,
            ) => {}
        }
    }

    #[test]
    fn an_error_quotes_at_most_40_characters_of_the_value(v in any::<String>()) {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("orderId", &v)
            .finish();
        if let Err(OrderIdError::NotPositiveInteger(quoted)) = extract(Some(&q), None, b"") {
            prop_assert!(quoted.chars().count() <= 40);
        }
    }

    #[test]
    fn a_well_formed_request_gives_its_id(
        id in 1u64..=u64::MAX,
        field in "(orderId|id)",
        place in 0usize..5,
        // Any other field name: `id` is itself an id field and would make the request
        // ambiguous (the extractor reads both `orderId` and `id`).
        extra in "[a-z]{1,8}".prop_filter("an id field is not an extra field", |e| e != "id"),
    ) {
        let (q, ct, b): (Option<String>, Option<&str>, Vec<u8>) = match place {
            0 => (Some(format!("{extra}=x&{field}={id}")), None, Vec::new()),
            1 => (None, Some("application/x-www-form-urlencoded"), format!("{field}={id}&{extra}=1").into_bytes()),
            2 => (None, Some("application/json"), format!("{{\"{field}\":{id},\"{extra}\":[1]}}").into_bytes()),
            3 => (None, Some("application/json; charset=utf-8"), format!("{{\"{field}\":\"{id}\"}}").into_bytes()),
            // The same id in the query and the body is one id, not two.
            _ => (Some(format!("orderId={id}")), None, format!(" {{\"id\": {id}}} ").into_bytes()),
        };
        prop_assert_eq!(extract(q.as_deref(), ct, &b), Ok(id));
    }

    #[test]
    fn two_different_ids_are_never_guessed(a in 1u64..1_000_000, b in 1u64..1_000_000) {
        prop_assume!(a != b);
        let q = format!("orderId={a}");
        let body = format!("{{\"id\":{b}}}");
        prop_assert!(matches!(
            extract(Some(&q), Some("application/json"), body.as_bytes()),
            Err(OrderIdError::Ambiguous(_))
        ));
    }
}
