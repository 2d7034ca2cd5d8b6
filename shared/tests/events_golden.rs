//! Golden files pin the wire shape of every event type and version (DESIGN §6).
//!
//! Each `golden/<Type>.v<N>.json` must decode into exactly the sample built here and the sample
//! must encode into exactly that JSON. Changing a payload struct without adding a version breaks
//! this test; so does deleting a golden file. `UPDATE_GOLDEN=1` rewrites the files (review the
//! diff: an existing version's file must never change).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use dealflow_shared::events::*;
use rust_decimal::Decimal;
use uuid::Uuid;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn sample(event_type: EventType) -> Envelope {
    let event = match event_type {
        EventType::OrderChanged => Event::OrderChanged(OrderChanged {
            order_id: 48213,
            source: ChangeSource::Refetch,
            received_at: at("2024-01-16T08:02:46.120Z"),
        }),
        EventType::IntegrationConfigured => Event::IntegrationConfigured(IntegrationConfigured {
            tenant_id: TenantId("01890a5d-ac96-774b-bcce-0000000000aa".into()),
            crm_url: "https://demo.retailcrm.ru/".into(),
            api_key_sealed: SealedApiKey("djEuAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
            api_key_hint: "x9Qa".into(),
            active: true,
            default_funnel: false,
            include_delivery_cost: true,
            revenue: Revenue::Margin,
            stage_mapping: BTreeMap::from([
                (
                    "spam".to_owned(),
                    StageRule {
                        outcome: None,
                        excluded: true,
                    },
                ),
                (
                    "return".to_owned(),
                    StageRule {
                        outcome: Some(StageOutcome::Lost),
                        excluded: false,
                    },
                ),
            ]),
            backfill_days: 30,
            webhook_token_generation: 0,
            history_since_id: Some(912340),
            resync: Some(ResyncRequested {
                since: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
                until: chrono::NaiveDate::from_ymd_opt(2024, 1, 10),
                requested_at: at("2024-01-20T10:00:00Z"),
            }),
            created_at: at("2024-01-15T07:00:00Z"),
            updated_at: at("2024-01-15T07:00:00Z"),
        }),
        EventType::IntegrationRemoved => Event::IntegrationRemoved(IntegrationRemoved {
            removed_at: at("2024-02-01T00:00:00Z"),
        }),
        EventType::DealUpserted => Event::DealUpserted(DealUpserted {
            order_id: 48213,
            number: Some("48213A".into()),
            external_id: Some("wc-10931".into()),
            site: "shop-main".into(),
            status_code: "send-to-delivery".into(),
            status_group: Some("delivery".into()),
            total_sum: Decimal::new(633000, 2),
            delivery_cost: Decimal::new(350, 0),
            currency: Some("RUB".into()),
            manager: Some(Manager {
                id: 17,
                name: Some("Ирина Петрова".into()),
                email: Some("irina@example.com".into()),
                phone: Some("+79161112233".into()),
            }),
            contact: Some(DealContact {
                id: Some(9021),
                name: Some("Анна Смирнова".into()),
                phones: vec!["+79161234567".into()],
                emails: vec!["anna@example.com".into()],
            }),
            company: None,
            utm: Utm {
                source: Some("google".into()),
                medium: Some("cpc".into()),
                campaign: Some("brand".into()),
                keyword: Some("купить чайник".into()),
                content: Some("ad_3".into()),
            },
            client_id: Some("1234567890.1705302000".into()),
            custom_fields: BTreeMap::from([("gift_wrap".to_string(), serde_json::json!(false))]),
            created_at: at("2024-01-15T07:20:30Z"),
            stage_entered_at: Some(at("2024-01-16T08:02:45Z")),
            observed_at: at("2024-01-16T08:02:47.500Z"),
            order_type: Some("eshop-individual".into()),
            order_method: Some("shopping-cart".into()),
            purchase_sum: Some(Decimal::new(410000, 2)),
            paid_sum: Some(Decimal::new(633000, 2)),
            paid_at: Some(at("2024-01-16T09:00:00Z")),
            items: vec![
                DealItem {
                    offer_id: Some(311),
                    article: Some("KT-20".into()),
                    name: Some("Чайник".into()),
                    quantity: Decimal::new(2, 0),
                    price: Decimal::new(299000, 2),
                    sum: Decimal::new(598000, 2),
                    purchase_price: Some(Decimal::new(205000, 2)),
                    canceled: false,
                },
                DealItem {
                    offer_id: None,
                    article: None,
                    name: Some("Упаковка".into()),
                    quantity: Decimal::new(15, 1),
                    price: Decimal::new(0, 2),
                    sum: Decimal::new(0, 2),
                    purchase_price: None,
                    canceled: true,
                },
            ],
        }),
        EventType::DealDeleted => Event::DealDeleted(DealDeleted {
            order_id: 48190,
            merged_into: Some(48213),
            observed_at: at("2024-01-16T08:03:00Z"),
        }),
        EventType::DealStagesRecorded => Event::DealStagesRecorded(DealStagesRecorded {
            order_id: 48213,
            stages: vec![
                StageRecorded {
                    stage_code: "assembling".into(),
                    entered_at: at("2024-01-16T08:02:45Z"),
                    history_id: 912377,
                },
                StageRecorded {
                    stage_code: "send-to-delivery".into(),
                    entered_at: at("2024-01-16T08:02:45Z"),
                    history_id: 912378,
                },
            ],
            observed_at: at("2024-01-16T08:05:00.100Z"),
        }),
        EventType::ContactUpserted => Event::ContactUpserted(ContactUpserted {
            contact_id: 9021,
            kind: ContactKind::Person,
            name: Some("Анна Смирнова".into()),
            phones: vec!["+79161234567".into()],
            emails: vec!["anna@example.com".into()],
            observed_at: at("2024-01-16T08:02:47.500Z"),
        }),
        EventType::FunnelStageSeen => Event::FunnelStageSeen(FunnelStageSeen {
            site: "shop-main".into(),
            site_name: Some("Main shop".into()),
            stage_code: "send-to-delivery".into(),
            stage_name: "Передан в доставку".into(),
            stage_ordering: 10,
            active: true,
            group_code: "delivery".into(),
            group_name: Some("Доставка".into()),
            group_ordering: 40,
            observed_at: at("2024-01-16T08:02:47.500Z"),
        }),
        EventType::IntegrationHealthChanged => {
            Event::IntegrationHealthChanged(IntegrationHealthChanged {
                status: HealthStatus::AuthFailed,
                message: Some("RetailCRM refused the API key (Wrong \"apiKey\" value).".into()),
                checked_at: at("2024-01-16T09:00:00Z"),
            })
        }
        EventType::SyncStateChanged => Event::SyncStateChanged(SyncStateChanged {
            history_cursor: Some(912388),
            last_reconciled_at: Some(at("2024-01-16T08:00:00Z")),
            backfill: Some(LoadProgress {
                kind: LoadKind::Backfill,
                since: chrono::NaiveDate::from_ymd_opt(2023, 12, 16).unwrap(),
                until: None,
                requested_at: at("2024-01-15T07:00:00Z"),
                pages_done: 12,
                pages_total: Some(50),
                orders_done: 1200,
                orders_total: Some(4987),
                started_at: at("2024-01-15T07:00:01Z"),
                finished_at: None,
                timeline: None,
            }),
            resync: Some(LoadProgress {
                kind: LoadKind::Resync,
                since: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
                until: chrono::NaiveDate::from_ymd_opt(2024, 1, 10),
                requested_at: at("2024-01-20T10:00:00Z"),
                pages_done: 3,
                pages_total: Some(3),
                orders_done: 250,
                orders_total: Some(250),
                started_at: at("2024-01-20T10:00:01Z"),
                finished_at: Some(at("2024-01-20T10:00:05Z")),
                timeline: Some(TimelineProgress {
                    cursor: Some(912100),
                    stop_at: Some(912388),
                    pages_done: 7,
                    pages_total: Some(10),
                    records_done: 700,
                    records_total: Some(1000),
                    stages_recorded: 212,
                    started_at: at("2024-01-20T10:00:05Z"),
                    finished_at: None,
                }),
            }),
            updated_at: at("2024-01-16T08:00:00.250Z"),
        }),
    };
    Envelope {
        id: Uuid::parse_str("01890a5d-ac96-774b-bcce-b302099a8057").unwrap(),
        integration_id: "01890a5d-ac96-774b-bcce-000000000001".parse().unwrap(),
        occurred_at: Utc.with_ymd_and_hms(2024, 1, 16, 8, 2, 47).unwrap(),
        event,
    }
}

fn golden_path(event_type: EventType, version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(format!("{}.v{version}.json", event_type.as_str()))
}

#[test]
fn every_type_matches_its_golden_file_both_ways() {
    for event_type in EventType::ALL {
        let sample = sample(event_type);
        let path = golden_path(event_type, event_type.current_version());
        let encoded: serde_json::Value = serde_json::from_slice(&sample.encode()).unwrap();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let pretty = serde_json::to_string_pretty(&encoded).unwrap() + "\n";
            std::fs::write(&path, pretty).unwrap();
        }
        let golden_bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("golden file {} missing: {e}", path.display()));
        let golden: serde_json::Value = serde_json::from_slice(&golden_bytes).unwrap();
        assert_eq!(
            encoded,
            golden,
            "{} encodes differently from its golden file",
            event_type.as_str()
        );
        let decoded = Envelope::decode(&golden_bytes).unwrap();
        assert_eq!(
            decoded,
            sample,
            "{} golden file decodes differently",
            event_type.as_str()
        );
        assert_eq!(golden["type"], event_type.as_str());
        assert_eq!(golden["version"], event_type.current_version());
    }
}

fn no_until(c: &mut IntegrationConfigured) {
    if let Some(resync) = c.resync.as_mut() {
        resync.until = None;
    }
}

/// What each older golden file must decode into: its content upcast to the current version.
fn upcast_sample(event_type: EventType, version: u32) -> Option<Envelope> {
    let mut envelope = sample(event_type);
    match (&mut envelope.event, version) {
        // v1 had no timeline pass and the sample's v1 file no re-sync.
        (Event::SyncStateChanged(s), 1) => s.resync = None,
        // v2 loads had no end day.
        (Event::SyncStateChanged(s), 2) => {
            if let Some(resync) = s.resync.as_mut() {
                resync.until = None;
            }
        }
        // v1 was written before tenants: its integration belongs to `default`.
        (Event::IntegrationConfigured(c), 1) => {
            c.tenant_id = TenantId::default_tenant();
            no_until(c);
            c.revenue = Revenue::Total;
            c.stage_mapping.clear();
        }
        // v2 had no revenue setting: the total, as before; nor a stage mapping.
        (Event::IntegrationConfigured(c), 2) => {
            no_until(c);
            c.revenue = Revenue::Total;
            c.stage_mapping.clear();
        }
        // v3 had no stage mapping: every status maps by its group.
        (Event::IntegrationConfigured(c), 3) => {
            no_until(c);
            c.stage_mapping.clear();
        }
        // v4 re-syncs had no end day: up to now.
        (Event::IntegrationConfigured(c), 4) => no_until(c),
        // v1 knew webhooks, history, backfill and re-sync; its golden file has a webhook.
        (Event::OrderChanged(OrderChanged { source, .. }), 1) => *source = ChangeSource::Webhook,
        // v1 carried no payments, purchase sum, order type or method, nor lines.
        (Event::DealUpserted(d), 1) => {
            d.order_type = None;
            d.order_method = None;
            d.purchase_sum = None;
            d.paid_sum = None;
            d.paid_at = None;
            d.items = Vec::new();
        }
        _ => return None,
    }
    Some(envelope)
}

#[test]
fn older_versions_keep_their_golden_files_and_decode_upcast() {
    let mut older = 0;
    for event_type in EventType::ALL {
        for version in 1..event_type.current_version() {
            let path = golden_path(event_type, version);
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("golden file {} missing: {e}", path.display()));
            let expected = upcast_sample(event_type, version)
                .unwrap_or_else(|| panic!("no upcast sample for {event_type:?} v{version}"));
            assert_eq!(
                Envelope::decode(&bytes).unwrap(),
                expected,
                "{} v{version} does not upcast as expected",
                event_type.as_str()
            );
            older += 1;
        }
    }
    assert!(older > 0, "SyncStateChanged v1 is an older version");
}

#[test]
fn a_v1_sync_state_with_a_finished_load_still_needs_its_timeline() {
    let bytes = std::fs::read(golden_path(EventType::SyncStateChanged, 1)).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    json["data"]["backfill"]["finished_at"] = "2024-01-15T08:00:00Z".into();
    let decoded = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap();
    let Event::SyncStateChanged(state) = decoded.event else {
        panic!("decoded {decoded:?}");
    };
    let backfill = state.backfill.unwrap();
    assert!(backfill.finished_at.is_some());
    assert_eq!(backfill.timeline, None);
    assert!(
        !backfill.is_complete(),
        "the timeline pass runs after an upgrade"
    );
}

#[test]
fn round_trip_preserves_every_event() {
    for event_type in EventType::ALL {
        let sample = sample(event_type);
        assert_eq!(Envelope::decode(&sample.encode()).unwrap(), sample);
        assert_eq!(sample.key(), "01890a5d-ac96-774b-bcce-000000000001");
    }
}

#[test]
fn money_travels_as_decimal_strings() {
    let bytes = sample(EventType::DealUpserted).encode();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["data"]["total_sum"], "6330.00");
    assert_eq!(json["data"]["delivery_cost"], "350");
}

#[test]
fn unknown_version_is_refused_with_a_clear_error() {
    let mut json: serde_json::Value =
        serde_json::from_slice(&sample(EventType::DealUpserted).encode()).unwrap();
    json["version"] = 7.into();
    let err = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnsupportedVersion { version: 7, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "unsupported version 7 of event type DealUpserted (this build reads versions 1..=2)"
    );
}

#[test]
fn unknown_type_and_bad_data_are_refused() {
    let mut json: serde_json::Value =
        serde_json::from_slice(&sample(EventType::OrderChanged).encode()).unwrap();
    json["type"] = "OrderChangd".into();
    let err = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "unknown event type \"OrderChangd\"");

    json["type"] = "OrderChanged".into();
    json["data"]["order_id"] = "not a number".into();
    let err = Envelope::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::InvalidData {
                event_type: "OrderChanged",
                ..
            }
        ),
        "{err}"
    );

    let err = Envelope::decode(b"\xff\x00 not json").unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(_)), "{err}");
}

/// The records of the `tenants` topic, one sample per type (their own envelope, no token in
/// clear: only its keyed hash).
fn tenant_samples() -> Vec<dealflow_shared::tenants::TenantRecord> {
    use dealflow_shared::tenants::*;
    let tenant = TenantId("01890a5d-ac96-774b-bcce-0000000000aa".into());
    let token_id = Uuid::parse_str("01890a5d-ac96-774b-bcce-0000000000bb").unwrap();
    let events = [
        TenantEvent::TenantConfigured(TenantConfigured {
            tenant_id: tenant.clone(),
            name: "Acme cabinet".into(),
            created_at: at("2024-01-15T07:00:00Z"),
        }),
        TenantEvent::TenantRemoved(TenantRemoved {
            tenant_id: tenant.clone(),
            removed_at: at("2024-02-01T00:00:00Z"),
        }),
        TenantEvent::TenantTokenIssued(TenantTokenIssued {
            token_id,
            tenant_id: tenant.clone(),
            name: "reporting".into(),
            token_hash: "5f1c3e0a9b7d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e".into(),
            token_hint: "dft_…Xy9Q".into(),
            created_at: at("2024-01-15T07:05:00Z"),
        }),
        TenantEvent::TenantTokenRevoked(TenantTokenRevoked {
            token_id,
            tenant_id: tenant.clone(),
            revoked_at: at("2024-01-20T10:00:00Z"),
        }),
        TenantEvent::TenantTokenUsed(TenantTokenUsed {
            token_id,
            tenant_id: tenant,
            used_at: at("2024-01-16T08:00:00Z"),
        }),
    ];
    events
        .into_iter()
        .map(|event| TenantRecord {
            id: Uuid::parse_str("01890a5d-ac96-774b-bcce-b302099a8057").unwrap(),
            occurred_at: at("2024-01-16T08:02:47Z"),
            event,
        })
        .collect()
}

#[test]
fn every_tenant_record_type_matches_its_golden_file_both_ways() {
    for sample in tenant_samples() {
        let name = sample.event.type_name();
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("golden")
            .join(format!("{name}.v1.json"));
        let encoded: serde_json::Value = serde_json::from_slice(&sample.encode()).unwrap();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let pretty = serde_json::to_string_pretty(&encoded).unwrap() + "\n";
            std::fs::write(&path, pretty).unwrap();
        }
        let golden_bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("golden file {} missing: {e}", path.display()));
        let golden: serde_json::Value = serde_json::from_slice(&golden_bytes).unwrap();
        assert_eq!(
            encoded, golden,
            "{name} encodes differently from its golden file"
        );
        let decoded = dealflow_shared::tenants::TenantRecord::decode(&golden_bytes).unwrap();
        assert_eq!(decoded, sample, "{name} golden file decodes differently");
        assert_eq!(golden["type"], name);
        assert_eq!(golden["version"], 1);
    }
}

#[test]
fn tenant_records_refuse_unknown_types_and_versions_by_name() {
    use dealflow_shared::tenants::TenantRecord;
    let mut json: serde_json::Value =
        serde_json::from_slice(&tenant_samples()[0].encode()).unwrap();
    json["version"] = 2.into();
    let err = TenantRecord::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported version 2 of event type TenantConfigured (this build reads versions 1..=1)"
    );
    json["type"] = "TenantRenamed".into();
    let err = TenantRecord::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "unknown event type \"TenantRenamed\"");
}
