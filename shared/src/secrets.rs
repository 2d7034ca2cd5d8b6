//! Secrets at rest: sealing RetailCRM API keys and deriving webhook tokens.
//!
//! Both come from `DEALFLOW_SECRET_KEY` through HKDF-SHA256 with distinct labels, so the sealing
//! key and the token key are independent. API keys are sealed with XChaCha20-Poly1305 (random
//! 192-bit nonce, the integration id as associated data, so a sealed key cannot be moved to
//! another integration). Webhook tokens are never stored: a token is the integration id followed
//! by an HMAC of (id, rotation counter), recomputed wherever the URL is shown and checked in
//! constant time.
//!
//! Rotating the secret: configure the new one as `DEALFLOW_SECRET_KEY` and the old one as
//! `DEALFLOW_SECRET_KEY_PREVIOUS` ([`SecretKeys::with_previous`]). Sealed keys then open with
//! either (ingest re-seals the old ones under the new secret at start), webhook URLs made with
//! either are accepted, and new ones are made with the new secret; once every trigger uses its
//! new URL, drop the previous secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::events::{IntegrationId, SealedApiKey};

const SEALED_PREFIX: &str = "v1.";
const NONCE_LEN: usize = 24;
/// 160 bits of MAC: comfortably above DESIGN's 128-bit floor, short enough for a URL.
const TOKEN_MAC_LEN: usize = 20;

/// Why a sealed key could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the sealed API key is not in a known format")]
    Malformed,
    #[error(
        "the sealed API key does not open with this secret key (was DEALFLOW_SECRET_KEY changed?)"
    )]
    WrongKey,
}

/// Keys derived from `DEALFLOW_SECRET_KEY` (and, while rotating, the previous secret).
pub struct SecretKeys {
    current: KeySet,
    /// The secret being rotated out: still opens and verifies, never seals or signs.
    previous: Option<KeySet>,
}

/// The keys derived from one secret.
struct KeySet {
    seal: XChaCha20Poly1305,
    webhook: [u8; 32],
    /// Keys the hash under which tenant API tokens are kept (never the token itself).
    api_token: [u8; 32],
}

impl KeySet {
    fn derive(secret: &SecretString) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"dealflow"), secret.expose_secret().as_bytes());
        let mut seal = [0u8; 32];
        let mut webhook = [0u8; 32];
        hk.expand(b"dealflow api-key sealing v1", &mut seal)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(b"dealflow webhook token v1", &mut webhook)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut api_token = [0u8; 32];
        hk.expand(b"dealflow api token hash v1", &mut api_token)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            seal: XChaCha20Poly1305::new(&seal.into()),
            webhook,
            api_token,
        }
    }

    fn open(&self, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        self.seal.decrypt(XNonce::from_slice(nonce), payload).ok()
    }

    fn api_token_hash(&self, token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.api_token)
            .expect("HMAC takes any key length");
        mac.update(token.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn token_mac(&self, integration: IntegrationId, generation: u32) -> [u8; TOKEN_MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.webhook)
            .expect("HMAC takes any key length");
        mac.update(integration.0.as_bytes());
        mac.update(&generation.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; TOKEN_MAC_LEN];
        out.copy_from_slice(&full[..TOKEN_MAC_LEN]);
        out
    }
}

/// Which secret opened a sealed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedWith {
    /// The current secret.
    Current,
    /// The previous secret: seal the key again under the current one.
    Previous,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeys(..)")
    }
}

impl SecretKeys {
    /// Derives the sealing and webhook keys from the configured secret.
    pub fn derive(secret: &SecretString) -> Self {
        Self {
            current: KeySet::derive(secret),
            previous: None,
        }
    }

    /// Also accepts what the secret being rotated out sealed or signed (`None`: no rotation).
    pub fn with_previous(mut self, previous: Option<&SecretString>) -> Self {
        self.previous = previous.map(KeySet::derive);
        self
    }

    /// A fresh random secret (256 bits, base64url), for a first start without a configured one.
    pub fn generate_secret() -> SecretString {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Seals an API key for one integration.
    pub fn seal(&self, integration: IntegrationId, api_key: &SecretString) -> SealedApiKey {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: api_key.expose_secret().as_bytes(),
            aad: integration.0.as_bytes(),
        };
        let ciphertext = self
            .current
            .seal
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 encryption of a short message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        SealedApiKey(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Opens a sealed API key; fails with the wrong secret or for another integration.
    pub fn open(
        &self,
        integration: IntegrationId,
        sealed: &SealedApiKey,
    ) -> Result<SecretString, OpenError> {
        self.open_telling(integration, sealed).map(|(key, _)| key)
    }

    /// Opens a sealed API key and says which secret opened it (a key sealed with the previous
    /// secret should be sealed again).
    pub fn open_telling(
        &self,
        integration: IntegrationId,
        sealed: &SealedApiKey,
    ) -> Result<(SecretString, SealedWith), OpenError> {
        let encoded = sealed
            .0
            .strip_prefix(SEALED_PREFIX)
            .ok_or(OpenError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| OpenError::Malformed)?;
        if bytes.len() <= NONCE_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = integration.0.as_bytes();
        let (clear, with) = match self.current.open(nonce, ciphertext, aad) {
            Some(clear) => (clear, SealedWith::Current),
            None => {
                let previous = self.previous.as_ref().ok_or(OpenError::WrongKey)?;
                let clear = previous
                    .open(nonce, ciphertext, aad)
                    .ok_or(OpenError::WrongKey)?;
                (clear, SealedWith::Previous)
            }
        };
        let key = String::from_utf8(clear).map_err(|_| OpenError::Malformed)?;
        Ok((SecretString::from(key), with))
    }

    /// The keyed hash a tenant API token is kept as (HMAC-SHA256, hex), under the current secret.
    pub fn api_token_hash(&self, token: &str) -> String {
        self.current.api_token_hash(token)
    }

    /// The token's hash under the secret being rotated out, if any: a token issued before the
    /// rotation is found by this one until the previous secret is dropped.
    pub fn previous_api_token_hash(&self, token: &str) -> Option<String> {
        self.previous.as_ref().map(|set| set.api_token_hash(token))
    }

    /// The webhook token of an integration at a rotation counter.
    pub fn webhook_token(&self, integration: IntegrationId, generation: u32) -> String {
        let mut bytes = integration.0.as_bytes().to_vec();
        bytes.extend_from_slice(&self.current.token_mac(integration, generation));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Which integration a presented token claims to be; the caller then checks it with
    /// [`SecretKeys::verify_webhook_token`] against that integration's current generation.
    pub fn token_integration(token: &str) -> Option<IntegrationId> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != 16 + TOKEN_MAC_LEN {
            return None;
        }
        Uuid::from_slice(&bytes[..16]).ok().map(IntegrationId)
    }

    /// Constant-time check of a presented token.
    pub fn verify_webhook_token(
        &self,
        integration: IntegrationId,
        generation: u32,
        token: &str,
    ) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        if bytes.len() != 16 + TOKEN_MAC_LEN || bytes[..16] != *integration.0.as_bytes() {
            return false;
        }
        // Both sets are always checked, so the time taken does not tell which one matched.
        let presented = &bytes[16..];
        let current = presented.ct_eq(&self.current.token_mac(integration, generation));
        let previous = match &self.previous {
            Some(set) => presented.ct_eq(&set.token_mac(integration, generation)),
            None => subtle::Choice::from(0),
        };
        (current | previous).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> SecretKeys {
        SecretKeys::derive(&SecretString::from(secret.to_string()))
    }

    #[test]
    fn sealed_key_opens_only_with_the_right_secret_and_integration() {
        let a = keys("first secret, long enough to be a key");
        let b = keys("second secret, long enough to be a key");
        let id = IntegrationId::new();
        let sealed = a.seal(id, &SecretString::from("crm-api-key-1234".to_string()));
        assert!(!sealed.0.contains("crm-api-key"));
        assert_eq!(
            a.open(id, &sealed).unwrap().expose_secret(),
            "crm-api-key-1234"
        );
        assert_eq!(b.open(id, &sealed).unwrap_err(), OpenError::WrongKey);
        assert_eq!(
            a.open(IntegrationId::new(), &sealed).unwrap_err(),
            OpenError::WrongKey
        );
        assert_eq!(
            a.open(id, &SealedApiKey("v1.@@".into())).unwrap_err(),
            OpenError::Malformed
        );
        // Sealing twice gives different ciphertexts (random nonce).
        assert_ne!(
            sealed,
            a.seal(id, &SecretString::from("crm-api-key-1234".to_string()))
        );
    }

    #[test]
    fn webhook_tokens_are_recomputable_and_checked() {
        let k = keys("a secret for webhook tokens, long enough");
        let id = IntegrationId::new();
        let token = k.webhook_token(id, 0);
        assert_eq!(token, k.webhook_token(id, 0));
        assert_eq!(SecretKeys::token_integration(&token), Some(id));
        assert!(k.verify_webhook_token(id, 0, &token));
        assert!(
            !k.verify_webhook_token(id, 1, &token),
            "rotation invalidates old tokens"
        );
        assert!(!keys("another secret entirely, long enough").verify_webhook_token(id, 0, &token));
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert!(!k.verify_webhook_token(id, 0, std::str::from_utf8(&forged).unwrap()));
        assert!(SecretKeys::token_integration("short").is_none());
        // 16 id bytes + 20 MAC bytes, base64url without padding.
        assert_eq!(token.len(), 48);
    }

    #[test]
    fn rotation_keeps_old_keys_and_urls_working_until_the_previous_secret_is_dropped() {
        let old_secret = SecretString::from("the old secret, long enough to be a key");
        let new_secret = SecretString::from("the new secret, long enough to be a key");
        let old = SecretKeys::derive(&old_secret);
        let id = IntegrationId::new();
        let sealed_old = old.seal(id, &SecretString::from("crm-key-1".to_string()));
        let old_url_token = old.webhook_token(id, 0);

        let rotating = SecretKeys::derive(&new_secret).with_previous(Some(&old_secret));
        let (key, with) = rotating.open_telling(id, &sealed_old).unwrap();
        assert_eq!(
            (key.expose_secret(), with),
            ("crm-key-1", SealedWith::Previous)
        );
        let resealed = rotating.seal(id, &key);
        assert_eq!(
            rotating.open_telling(id, &resealed).unwrap().1,
            SealedWith::Current
        );
        assert!(rotating.verify_webhook_token(id, 0, &old_url_token));
        let new_url_token = rotating.webhook_token(id, 0);
        assert_ne!(new_url_token, old_url_token, "new URLs use the new secret");
        assert!(rotating.verify_webhook_token(id, 0, &new_url_token));

        let done = SecretKeys::derive(&new_secret);
        assert_eq!(done.open(id, &sealed_old).unwrap_err(), OpenError::WrongKey);
        assert_eq!(
            done.open(id, &resealed).unwrap().expose_secret(),
            "crm-key-1"
        );
        assert!(!done.verify_webhook_token(id, 0, &old_url_token));
        assert!(done.verify_webhook_token(id, 0, &new_url_token));
    }
}
