//! Unit tests of tenant tokens: look-up by keyed hash, revocation, removal, rotation of the
//! secret, pages sessions and the scope each request gets.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::*;
use crate::http::BearerAuth;
use crate::metrics::Metrics;
use crate::secrets::SecretKeys;

const OPERATOR: &str = "operator-token-0123456789";

fn keys(secret: &str) -> Arc<SecretKeys> {
    Arc::new(SecretKeys::derive(&SecretString::from(secret.to_string())))
}

fn at(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn tenant(registry: &TenantRegistry, name: &str) -> TenantId {
    let id = TenantId::generate();
    registry.apply(&TenantRecord::new(TenantEvent::TenantConfigured(
        TenantConfigured {
            tenant_id: id.clone(),
            name: name.into(),
            created_at: at(0),
        },
    )));
    id
}

/// Issues a token as ingest does; returns its id and the token in clear.
fn issue(registry: &TenantRegistry, tenant: &TenantId) -> (Uuid, String) {
    let (secret, hint) = token::generate();
    let token_id = Uuid::now_v7();
    registry.apply(&TenantRecord::new(TenantEvent::TenantTokenIssued(
        TenantTokenIssued {
            token_id,
            tenant_id: tenant.clone(),
            name: "t".into(),
            token_hash: registry.keys().api_token_hash(secret.expose_secret()),
            token_hint: hint,
            created_at: at(1),
        },
    )));
    (token_id, secret.expose_secret().to_string())
}

fn revoke(registry: &TenantRegistry, tenant: &TenantId, token_id: Uuid) {
    registry.apply(&TenantRecord::new(TenantEvent::TenantTokenRevoked(
        TenantTokenRevoked {
            token_id,
            tenant_id: tenant.clone(),
            revoked_at: at(5),
        },
    )));
}

fn authenticator(registry: &TenantRegistry) -> Authenticator {
    Authenticator::new(
        BearerAuth::new(SecretString::from(OPERATOR)),
        registry.clone(),
        &Metrics::new(),
    )
}

#[test]
fn a_token_acts_for_its_tenant_only() {
    let registry = TenantRegistry::new(keys("secret-one-long-enough-0123456789"));
    let (a, b) = (tenant(&registry, "A"), tenant(&registry, "B"));
    let (token_id, token) = issue(&registry, &a);
    let auth = authenticator(&registry);

    let scope = auth.authenticate(&token).unwrap();
    assert_eq!(
        scope,
        Scope::Tenant {
            tenant_id: a.clone(),
            token_id
        }
    );
    assert!(scope.allows(&a));
    assert!(!scope.allows(&b));
    assert!(scope.require_operator().is_err());

    let operator = auth.authenticate(OPERATOR).unwrap();
    assert!(operator.allows(&a) && operator.allows(&b) && operator.require_operator().is_ok());
    assert_eq!(
        auth.authenticate("dft_not-a-token"),
        Err(AuthFailure::Unknown)
    );
    assert_eq!(auth.authenticate("guess"), Err(AuthFailure::Unknown));
}

#[test]
fn revocation_and_tenant_removal_refuse_the_token() {
    let registry = TenantRegistry::new(keys("secret-one-long-enough-0123456789"));
    let a = tenant(&registry, "A");
    let (revoked_id, revoked) = issue(&registry, &a);
    let (_, kept) = issue(&registry, &a);
    revoke(&registry, &a, revoked_id);
    let auth = authenticator(&registry);
    assert_eq!(auth.authenticate(&revoked), Err(AuthFailure::Revoked));
    assert!(auth.authenticate(&kept).is_ok());
    assert_eq!(
        registry.tokens(&a).len(),
        1,
        "revoked tokens are not listed"
    );

    registry.apply(&TenantRecord::new(TenantEvent::TenantRemoved(
        TenantRemoved {
            tenant_id: a.clone(),
            removed_at: at(9),
        },
    )));
    assert_eq!(auth.authenticate(&kept), Err(AuthFailure::TenantRemoved));
    // A stale record of the removed tenant never brings it back.
    registry.apply(&TenantRecord::new(TenantEvent::TenantConfigured(
        TenantConfigured {
            tenant_id: a.clone(),
            name: "A".into(),
            created_at: at(0),
        },
    )));
    assert!(registry.tenant(&a).is_none());
}

#[test]
fn tokens_issued_before_a_secret_rotation_still_work() {
    let old = "secret-old-long-enough-0123456789";
    let registry = TenantRegistry::new(keys(old));
    let a = tenant(&registry, "A");
    let (_, token) = issue(&registry, &a);

    let rotated = Arc::new(
        SecretKeys::derive(&SecretString::from("secret-new-long-enough-0123456789"))
            .with_previous(Some(&SecretString::from(old))),
    );
    let after = TenantRegistry::new(rotated);
    // The records as the topic holds them, read by a process on the new secret.
    for tenant in registry.tenants() {
        after.apply(&TenantRecord::new(TenantEvent::TenantConfigured(tenant)));
    }
    for t in registry.tokens(&a) {
        after.apply(&TenantRecord::new(TenantEvent::TenantTokenIssued(t.issued)));
    }
    assert!(after.identify(&token).is_ok());
    let without_previous = TenantRegistry::new(keys("secret-new-long-enough-0123456789"));
    for t in registry.tokens(&a) {
        without_previous.apply(&TenantRecord::new(TenantEvent::TenantTokenIssued(t.issued)));
    }
    assert_eq!(
        without_previous.identify(&token).unwrap_err(),
        TokenRefusal::Unknown
    );
}

#[test]
fn a_pages_session_is_derived_and_ends_with_its_token() {
    let registry = TenantRegistry::new(keys("secret-one-long-enough-0123456789"));
    let a = tenant(&registry, "A");
    let (token_id, token) = issue(&registry, &a);
    let auth = authenticator(&registry);

    let session = auth.session_value(&token).unwrap();
    assert!(!session.contains(&token) && !session.contains(&token[4..]));
    assert!(matches!(
        auth.authenticate_session(&session),
        Ok(Scope::Tenant { tenant_id, .. }) if tenant_id == a
    ));
    assert!(
        auth.authenticate_session(&token).is_err(),
        "a token is not a session"
    );
    // The stored hash alone (what the events hold) does not make a session.
    let hash = registry.keys().api_token_hash(&token);
    assert!(
        auth.authenticate_session(&format!("t.{token_id}.{hash}"))
            .is_err()
    );
    let mut forged = session.clone();
    forged.pop();
    forged.push('0');
    if forged != session {
        assert!(auth.authenticate_session(&forged).is_err());
    }

    revoke(&registry, &a, token_id);
    assert_eq!(
        auth.authenticate_session(&session),
        Err(AuthFailure::Revoked)
    );
    let operator_session = auth.session_value(OPERATOR).unwrap();
    assert_eq!(
        auth.authenticate_session(&operator_session),
        Ok(Scope::Operator)
    );
}

#[test]
fn use_marks_keep_the_latest_time_even_before_their_token_is_read() {
    let registry = TenantRegistry::new(keys("secret-one-long-enough-0123456789"));
    let a = tenant(&registry, "A");
    let (secret, hint) = token::generate();
    let token_id = Uuid::now_v7();
    let used = |secs| {
        TenantRecord::new(TenantEvent::TenantTokenUsed(TenantTokenUsed {
            token_id,
            tenant_id: a.clone(),
            used_at: at(secs),
        }))
    };
    registry.apply(&used(30));
    registry.apply(&TenantRecord::new(TenantEvent::TenantTokenIssued(
        TenantTokenIssued {
            token_id,
            tenant_id: a.clone(),
            name: "t".into(),
            token_hash: registry.keys().api_token_hash(secret.expose_secret()),
            token_hint: hint,
            created_at: at(1),
        },
    )));
    registry.apply(&used(20));
    assert_eq!(registry.tokens(&a)[0].last_used_at, Some(at(30)));
    registry.apply(&used(90));
    assert_eq!(registry.tokens(&a)[0].last_used_at, Some(at(90)));
}

#[test]
fn records_are_keyed_per_tenant_and_per_token() {
    let tenant_id = TenantId("t1".into());
    let token_id = Uuid::now_v7();
    let configured = TenantRecord::new(TenantEvent::TenantConfigured(TenantConfigured {
        tenant_id: tenant_id.clone(),
        name: "n".into(),
        created_at: at(0),
    }));
    let revoked = TenantRecord::new(TenantEvent::TenantTokenRevoked(TenantTokenRevoked {
        token_id,
        tenant_id: tenant_id.clone(),
        revoked_at: at(0),
    }));
    let used = TenantRecord::new(TenantEvent::TenantTokenUsed(TenantTokenUsed {
        token_id,
        tenant_id,
        used_at: at(0),
    }));
    assert_eq!(configured.key(), "tenant/t1");
    assert_eq!(revoked.key(), format!("token/{token_id}"));
    // A use mark must never replace a revocation under compaction.
    assert_ne!(used.key(), revoked.key());
}
