//! Tenant scoping of the read API (issue 15, DESIGN §7.7) on both stores: a tenant token
//! lists and reads only its tenant's integrations, every route on another tenant's is `404
//! integration_not_found` (like an unknown id), the operator sees all, and a revocation
//! published by another process is refused here within 5 s.

use std::time::{Duration, Instant};

use dealflow_shared::bus::OutRecord;
use dealflow_shared::events::Event;
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::tenants::{
    TenantConfigured, TenantEvent, TenantId, TenantRecord, TenantTokenIssued, TenantTokenRevoked,
    token,
};
use dealflow_synthetic::{self as synthetic, Spec};
use dealflow_testkit::wait_until;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::support::*;

/// Publishes a tenant and a token for it as ingest would; the token in clear and its id.
async fn tenant_with_token(bus: &Bus, tenant: &TenantId) -> (String, Uuid) {
    let keys = SecretKeys::derive(&SecretString::from(SECRET));
    let (secret, hint) = token::generate();
    let token_id = Uuid::now_v7();
    let now = chrono::Utc::now();
    let records = [
        TenantRecord::new(TenantEvent::TenantConfigured(TenantConfigured {
            tenant_id: tenant.clone(),
            name: tenant.to_string(),
            created_at: now,
        })),
        TenantRecord::new(TenantEvent::TenantTokenIssued(TenantTokenIssued {
            token_id,
            tenant_id: tenant.clone(),
            name: "t".into(),
            token_hash: keys.api_token_hash(secret.expose_secret()),
            token_hint: hint,
            created_at: now,
        })),
    ];
    publish(bus, &records).await;
    (secret.expose_secret().to_string(), token_id)
}

async fn publish(bus: &Bus, records: &[TenantRecord]) {
    let out = records
        .iter()
        .map(|r| OutRecord::new(r.key(), r.encode()))
        .collect();
    bus.bus.publish(&bus.topics.tenants(), out).await.unwrap();
}

async fn get_as(app: &App, token: &str, path: &str) -> (u16, serde_json::Value) {
    let response = app
        .http
        .get(app.url(&format!("/api/v1{path}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

both!(a_tenant_token_reads_only_its_tenant);
async fn a_tenant_token_reads_only_its_tenant(db: Db) {
    let bus = Bus::embedded().await;
    let (ta, tb) = (TenantId("tenant-a".into()), TenantId("tenant-b".into()));
    let mut events = Vec::new();
    for (seed, tenant) in [(31, &ta), (32, &tb)] {
        let mut generated = synthetic::generate(&Spec {
            seed,
            integrations: 1,
            orders_per_integration: 12,
        });
        for (_, envelope) in &mut generated.events {
            if let Event::IntegrationConfigured(config) = &mut envelope.event {
                config.tenant_id = tenant.clone();
            }
        }
        events.push((generated.integrations[0].to_string(), generated));
    }
    for (_, generated) in &events {
        bus.publish(&generated.events).await;
    }
    let (token_a, token_a_id) = tenant_with_token(&bus, &ta).await;
    let (token_b, _) = tenant_with_token(&bus, &tb).await;
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    wait_until(WAIT, "readyz (tenants read)", || async {
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    let (ida, idb) = (&events[0].0, &events[1].0);
    let order_b = events[1].1.first_deal().order_id;

    let (status, list) = get_as(&app, &token_a, "/integrations").await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![ida.as_str()]);
    assert_eq!(list["items"][0]["tenant_id"], "tenant-a");
    assert_eq!(
        app.ok("/integrations").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the operator sees both"
    );

    let (_, page) = get_as(
        &app,
        &token_b,
        &format!("/integrations/{idb}/deals?limit=2"),
    )
    .await;
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    for path in [
        format!("/integrations/{idb}"),
        format!("/integrations/{idb}/deals"),
        format!("/integrations/{idb}/deals?limit=2&cursor={cursor}"),
        format!("/integrations/{idb}/deals.csv"),
        format!("/integrations/{idb}/deals/{order_b}"),
        format!("/integrations/{idb}/funnels"),
        format!("/integrations/{idb}/contacts"),
        format!("/integrations/{idb}/managers"),
        format!("/integrations/{idb}/deal-items.csv"),
        format!("/integrations/{idb}/stage-mapping"),
        format!("/integrations/{idb}/sync"),
        format!("/integrations/{idb}/deals/{order_b}/trace"),
        format!("/integrations/{idb}/dead-letters"),
    ] {
        let (status, own) = get_as(&app, &token_b, &path).await;
        assert_eq!(status, 200, "B reads its own {path}: {own}");
        let (status, body) = get_as(&app, &token_a, &path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("integration_not_found")),
            "A reads B's {path}"
        );
    }

    // A revocation published by another process (ingest) is refused here within 5 s.
    let revoked_at = Instant::now();
    publish(
        &bus,
        &[TenantRecord::new(TenantEvent::TenantTokenRevoked(
            TenantTokenRevoked {
                token_id: token_a_id,
                tenant_id: ta.clone(),
                revoked_at: chrono::Utc::now(),
            },
        ))],
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "the revoked token to be refused",
        || async { get_as(&app, &token_a, "/integrations").await.0 == 401 },
    )
    .await;
    let took = revoked_at.elapsed();
    assert!(took < Duration::from_secs(5), "revocation took {took:?}");
    assert_eq!(get_as(&app, &token_b, "/integrations").await.0, 200);
    app.stop().await.unwrap();
}
