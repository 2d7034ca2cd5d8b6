//! Tenant API tokens: how they are made, shown and recognised.
//!
//! A token is `dft_` followed by 256 random bits in base64url: the prefix lets secret scanners
//! (and people) recognise a leaked dealflow token, the randomness makes guessing hopeless. It is
//! shown once, in the response that issued it; afterwards only its keyed hash
//! ([`crate::secrets::SecretKeys::api_token_hash`]) and its hint exist anywhere.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::SecretString;

/// What every tenant token starts with.
pub const TOKEN_PREFIX: &str = "dft_";

/// A fresh token (shown once) with its hint.
pub fn generate() -> (SecretString, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hint = hint(&token);
    (SecretString::from(token), hint)
}

/// `dft_…` and the last four characters: enough to tell tokens apart, useless to an attacker.
pub fn hint(token: &str) -> String {
    let tail: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{TOKEN_PREFIX}…{tail}")
}

/// Whether a presented bearer value looks like a tenant token (it may still be unknown).
pub fn looks_like_tenant_token(presented: &str) -> bool {
    presented.starts_with(TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_distinct() {
        let (a, hint_a) = generate();
        let (b, _) = generate();
        let a = a.expose_secret();
        assert!(a.starts_with(TOKEN_PREFIX));
        // 32 bytes of base64url without padding: 43 characters, 256 bits.
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a, b.expose_secret());
        assert!(hint_a.starts_with("dft_…"));
        assert!(a.ends_with(hint_a.trim_start_matches("dft_…")));
        assert!(looks_like_tenant_token(a));
        assert!(!looks_like_tenant_token("operator-token"));
    }
}
