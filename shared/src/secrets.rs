//! Secrets at rest: sealing RetailCRM API keys and deriving webhook tokens.
//!
//! Both come from `DEALFLOW_SECRET_KEY` through HKDF-SHA256 with distinct labels, so the sealing
//! key and the token key are independent. API keys are sealed with XChaCha20-Poly1305 (random
//! 192-bit nonce, the integration id as associated data, so a sealed key cannot be moved to
//! another integration). Webhook tokens are never stored: a token is the integration id followed
//! by an HMAC of (id, rotation counter), recomputed wherever the URL is shown and checked in
//! constant time.

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

/// Keys derived from `DEALFLOW_SECRET_KEY`.
pub struct SecretKeys {
    seal: XChaCha20Poly1305,
    webhook: [u8; 32],
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeys(..)")
    }
}

impl SecretKeys {
    /// Derives the sealing and webhook keys from the configured secret.
    pub fn derive(secret: &SecretString) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"dealflow"), secret.expose_secret().as_bytes());
        let mut seal = [0u8; 32];
        let mut webhook = [0u8; 32];
        hk.expand(b"dealflow api-key sealing v1", &mut seal)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(b"dealflow webhook token v1", &mut webhook)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            seal: XChaCha20Poly1305::new(&seal.into()),
            webhook,
        }
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
        let payload = Payload {
            msg: ciphertext,
            aad: integration.0.as_bytes(),
        };
        let clear = self
            .seal
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| OpenError::WrongKey)?;
        String::from_utf8(clear)
            .map(SecretString::from)
            .map_err(|_| OpenError::Malformed)
    }

    /// The webhook token of an integration at a rotation counter.
    pub fn webhook_token(&self, integration: IntegrationId, generation: u32) -> String {
        let mut bytes = integration.0.as_bytes().to_vec();
        bytes.extend_from_slice(&self.token_mac(integration, generation));
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
        let expected = self.token_mac(integration, generation);
        bytes[16..].ct_eq(&expected).into()
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
}
