//! Property tests of the envelope decoder every consumer runs first (issue 10, poison input):
//! the golden envelopes of `shared/golden/`, truncated, with a byte replaced or a value spliced
//! in, and arbitrary bytes, decode to an envelope or a typed [`DecodeError`], never a panic;
//! whatever decodes encodes and decodes again to the same envelope.

use std::sync::LazyLock;

use dealflow_shared::events::Envelope;
use proptest::prelude::*;

static GOLDEN: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
});

const SPLICES: [&str; 10] = [
    "1e400",
    "-1",
    "18446744073709551616",
    "null",
    "[]",
    "{}",
    "\"\"",
    "\"\\ud800\"",
    "\"9999999-01-01T00:00:00Z\"",
    "\"-262143-01-01T00:00:00Z\"",
];

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..GOLDEN.len(),
        any::<usize>(),
        0u8..3,
        any::<u8>(),
        0..SPLICES.len(),
    )
        .prop_map(|(file, at, kind, byte, splice)| {
            let mut bytes = GOLDEN[file].clone();
            let at = at % bytes.len();
            match kind {
                0 => bytes.truncate(at),
                1 => bytes[at] = byte,
                _ => {
                    // Replace the value after the `at`-th colon with a splice.
                    if let Some(colon) = bytes[at..].iter().position(|b| *b == b':') {
                        let start = at + colon + 1;
                        let end = bytes[start..]
                            .iter()
                            .position(|b| matches!(b, b',' | b'}'))
                            .map_or(bytes.len(), |e| start + e);
                        bytes.splice(start..end, SPLICES[splice].bytes());
                    }
                }
            }
            bytes
        })
}

fn decodes_or_is_typed(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(envelope) = Envelope::decode(bytes) {
        let again = Envelope::decode(&envelope.encode());
        prop_assert_eq!(again.ok(), Some(envelope));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_mutated_golden_envelope_decodes_or_is_a_typed_error(bytes in mutated()) {
        decodes_or_is_typed(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_decode_or_are_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        decodes_or_is_typed(&bytes)?;
    }
}
