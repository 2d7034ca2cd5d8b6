//! Markers are policy applied by the projector: toggling one re-derives every existing deal
//! from the stored facts, and toggling it back restores them exactly.

use chrono::Duration;
use dealflow_shared::events::{Event, FunnelStageSeen, Revenue};
use dealflow_synthetic::{self as synthetic, Source, Spec, epoch};
use rust_decimal::Decimal;
use serde_json::Value;

use dealflow_projector::ProjectorSettings;

use crate::support::*;

/// Every table but the integration's own settings row, which records the toggles.
fn deal_tables(
    app_dump: std::collections::BTreeMap<String, Vec<String>>,
) -> Vec<(String, Vec<String>)> {
    app_dump
        .into_iter()
        // The trace logs every event by design (a re-sent snapshot is "fetched" again).
        .filter(|(t, _)| t != "integrations" && t != "applied_offsets" && t != "order_traces")
        .collect()
}

async fn all_deals(app: &App, id: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/integrations/{id}/deals?limit=500{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.ok(&path).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

/// A stream of one integration (`orders` orders) applied by a running projector.
async fn one_integration(
    db: &Db,
    seed: u64,
    orders: usize,
) -> (Bus, synthetic::Generated, ProjectorSettings, App) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed,
        integrations: 1,
        orders_per_integration: orders,
    });
    bus.publish(&stream.events).await;
    let settings = bus.settings(db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    (bus, stream, settings, app)
}

both!(toggling_markers_rederives_and_toggling_back_restores);
async fn toggling_markers_rederives_and_toggling_back_restores(db: Db) {
    let bus = Bus::embedded().await;
    // Integration 0: one funnel per shop, amounts with delivery.
    let stream = synthetic::generate(&Spec {
        seed: 11,
        integrations: 1,
        orders_per_integration: 40,
    });
    bus.publish(&stream.events).await;
    let id = stream.integrations[0];
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    let original = deal_tables(app.store.dump_tables().await.unwrap());
    let deals = all_deals(&app, &id.to_string(), "").await;
    assert!(
        deals.len() >= 30,
        "the stream's deals are listed: {}",
        deals.len()
    );
    assert!(deals.iter().all(|d| d["amount"] == d["total_sum"]));
    assert!(
        deals
            .iter()
            .any(|d| dec(&d["delivery_cost"]) > Decimal::ZERO)
    );
    assert!(deals.iter().all(|d| d["funnel_id"] == d["site"]));
    let funnels = app.ok(&format!("/integrations/{id}/funnels")).await;
    assert_eq!(funnels.as_array().unwrap().len(), 2);

    let mut day = 0;
    let mut toggle = |default_funnel, include_delivery_cost| {
        day += 1;
        let config = synthetic::configured(
            default_funnel,
            include_delivery_cost,
            epoch() + Duration::days(day),
        );
        Event::IntegrationConfigured(config)
    };

    // Amount without delivery.
    bus.send(Source::Integrations, id, toggle(false, false))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let deals = all_deals(&app, &id.to_string(), "").await;
    assert!(
        deals.len() >= 30,
        "the stream's deals are listed: {}",
        deals.len()
    );
    assert!(
        deals
            .iter()
            .all(|d| dec(&d["amount"]) == dec(&d["total_sum"]) - dec(&d["delivery_cost"]))
    );
    assert!(deals.iter().all(|d| d["funnel_id"] == d["site"]));
    // Back: every deal row exactly as before.
    bus.send(Source::Integrations, id, toggle(false, true))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    assert_eq!(
        deal_tables(app.store.dump_tables().await.unwrap()),
        original
    );

    // One default funnel.
    bus.send(Source::Integrations, id, toggle(true, true)).await;
    bus.wait_applied(&settings, &app.store).await;
    let deals = all_deals(&app, &id.to_string(), "").await;
    assert!(
        deals.len() >= 30,
        "the stream's deals are listed: {}",
        deals.len()
    );
    assert!(
        deals
            .iter()
            .all(|d| d["funnel_id"] == "default" && d["funnel_name"] == "RetailCRM")
    );
    assert!(deals.iter().all(|d| d["amount"] == d["total_sum"]));
    let funnels = app.ok(&format!("/integrations/{id}/funnels")).await;
    assert_eq!(funnels.as_array().unwrap().len(), 1);
    assert_eq!(funnels[0]["id"], "default");
    assert_eq!(funnels[0]["name"], "RetailCRM");
    assert_eq!(funnels[0]["site"], Value::Null);
    assert_eq!(
        all_deals(&app, &id.to_string(), "&funnel_id=default")
            .await
            .len(),
        deals.len()
    );
    assert!(
        all_deals(&app, &id.to_string(), "&funnel_id=shop-main")
            .await
            .is_empty()
    );
    // Back.
    bus.send(Source::Integrations, id, toggle(false, true))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    assert_eq!(
        deal_tables(app.store.dump_tables().await.unwrap()),
        original
    );

    // Settings older than the current ones change nothing.
    let stale = synthetic::configured(true, false, epoch() + Duration::hours(1));
    bus.send(
        Source::Integrations,
        id,
        Event::IntegrationConfigured(stale),
    )
    .await;
    bus.wait_applied(&settings, &app.store).await;
    assert_eq!(
        deal_tables(app.store.dump_tables().await.unwrap()),
        original
    );
    let view = app.ok(&format!("/integrations/{id}")).await;
    assert_eq!(
        (
            view["default_funnel"].clone(),
            view["include_delivery_cost"].clone()
        ),
        (false.into(), true.into())
    );
    app.stop().await.unwrap();
}

both!(a_stage_group_learned_later_rederives_the_deal);
async fn a_stage_group_learned_later_rederives_the_deal(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 5,
        integrations: 1,
        orders_per_integration: 1,
    });
    let id = stream.integrations[0];
    // Only the settings: no stages known yet.
    bus.publish(&stream.only(&[Source::Integrations])).await;
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;

    // A deal whose snapshot does not name its status group, in a custom "returned" status.
    let mut deal = stream.first_deal();
    let opened = deal.created_at;
    deal.status_code = "new".into();
    deal.status_group = Some("new".into());
    deal.stage_entered_at = Some(opened);
    bus.send(Source::Deals, id, Event::DealUpserted(deal.clone()))
        .await;
    deal.status_code = "returned".into();
    deal.status_group = None;
    deal.stage_entered_at = Some(opened + Duration::hours(5));
    deal.observed_at += Duration::hours(6);
    bus.send(Source::Deals, id, Event::DealUpserted(deal.clone()))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let path = format!("/integrations/{id}/deals/{}", deal.order_id);
    let before = app.ok(&path).await;
    assert_eq!(before["outcome"], "open");
    assert_eq!(before["closed_at"], Value::Null);
    assert_eq!(before["stage_name"], Value::Null);

    // The enricher describes the status: it is a cancellation.
    let stage = FunnelStageSeen {
        site: deal.site.clone(),
        site_name: Some("Main shop".into()),
        stage_code: "returned".into(),
        stage_name: "Возврат".into(),
        stage_ordering: 30,
        active: false,
        group_code: "cancel".into(),
        group_name: Some("Отменён".into()),
        group_ordering: 60,
        observed_at: deal.observed_at,
    };
    bus.send(Source::Funnels, id, Event::FunnelStageSeen(stage))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let after = app.ok(&path).await;
    assert_eq!(after["outcome"], "lost");
    assert_eq!(after["stage_group"], "cancel");
    assert_eq!(after["stage_name"], "Возврат");
    assert_eq!(
        after["closed_at"],
        serde_json::to_value(opened + Duration::hours(5)).unwrap()
    );
    assert_eq!(after["last_open_stage"], "new");
    let history: Vec<_> = after["stage_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage_code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(history, ["new", "returned"]);
    app.stop().await.unwrap();
}

both!(the_revenue_setting_rederives_every_deal);
/// `revenue` (issue 16): `margin` and `paid` re-derive every stored deal in one statement, a
/// snapshot applied afterwards gets the same amount through the consumer's path, and `total`
/// restores every row exactly.
async fn the_revenue_setting_rederives_every_deal(db: Db) {
    let (bus, stream, settings, app) = one_integration(&db, 12, 40).await;
    let id = stream.integrations[0];
    let original = deal_tables(app.store.dump_tables().await.unwrap());
    let mut day = 0;
    let mut set = |revenue, include_delivery_cost| {
        day += 1;
        let mut config =
            synthetic::configured(false, include_delivery_cost, epoch() + Duration::days(day));
        config.revenue = revenue;
        Event::IntegrationConfigured(config)
    };
    let live = |deals: &[Value]| {
        deals
            .iter()
            .filter(|d| d["deleted"] == false)
            .cloned()
            .collect::<Vec<_>>()
    };
    let paid = |d: &Value| {
        d["paid_sum"]
            .as_str()
            .map_or(Decimal::ZERO, |s| s.parse().unwrap())
    };

    bus.send(Source::Integrations, id, set(Revenue::Margin, true))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let deals = live(&all_deals(&app, &id.to_string(), "").await);
    assert!(deals.len() >= 30, "{}", deals.len());
    for d in &deals {
        assert_eq!(
            dec(&d["amount"]),
            dec(&d["total_sum"]) - dec(&d["purchase_sum"]),
            "margin of {}",
            d["order_id"]
        );
    }
    assert!(
        deals
            .iter()
            .any(|d| dec(&d["amount"]) != dec(&d["total_sum"]))
    );
    let view = app.ok(&format!("/integrations/{id}")).await;
    assert_eq!(view["revenue"], "margin");

    bus.send(Source::Integrations, id, set(Revenue::Margin, false))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    for d in live(&all_deals(&app, &id.to_string(), "").await) {
        let net = dec(&d["total_sum"]) - dec(&d["delivery_cost"]);
        assert_eq!(dec(&d["amount"]), net - dec(&d["purchase_sum"]));
    }

    bus.send(Source::Integrations, id, set(Revenue::Paid, false))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let deals = live(&all_deals(&app, &id.to_string(), "").await);
    for d in &deals {
        assert_eq!(
            dec(&d["amount"]),
            paid(d),
            "the delivery marker does not apply"
        );
    }
    assert!(
        deals.iter().any(|d| paid(d) > Decimal::ZERO)
            && deals.iter().any(|d| paid(d) == Decimal::ZERO),
        "paid and unpaid deals"
    );
    // A snapshot applied now: the consumer's path agrees with the re-derivation.
    let mut again = stream.first_deal();
    again.observed_at += Duration::days(400);
    bus.send(Source::Deals, id, Event::DealUpserted(again.clone()))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let one = app
        .ok(&format!("/integrations/{id}/deals/{}", again.order_id))
        .await;
    assert_eq!(dec(&one["amount"]), paid(&one));

    // Back to the total (with delivery): the snapshot moved `updated_at` and `observed_at` of
    // that one deal, every other row is exactly as before.
    bus.send(Source::Integrations, id, set(Revenue::Total, true))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    for d in live(&all_deals(&app, &id.to_string(), "").await) {
        assert_eq!(d["amount"], d["total_sum"]);
    }
    let now = deal_tables(app.store.dump_tables().await.unwrap());
    let changed: usize = now
        .iter()
        .zip(&original)
        .map(|((_, a), (_, b))| a.iter().zip(b).filter(|(x, y)| x != y).count())
        .sum();
    assert!(
        changed <= 2,
        "only the re-sent deal's rows differ: {changed}"
    );
    app.stop().await.unwrap();
}

/// The most common stage code among `deals` that satisfy `pick`.
fn busiest_stage(deals: &[Value], pick: impl Fn(&Value) -> bool) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for d in deals.iter().filter(|d| pick(d)) {
        *counts
            .entry(d["stage_code"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(code, n)| (*n, code.clone()))
        .map(|(code, _)| code)
        .expect("a deal in such a stage")
}

both!(the_stage_mapping_rederives_every_deal);
/// The stage mapping (issue 16): an override and an exclusion re-derive every stored deal from
/// its facts and stage history — outcome, closure, exclusion, counts, funnels, CSV — a snapshot
/// applied afterwards agrees, and removing the rules restores every row exactly.
async fn the_stage_mapping_rederives_every_deal(db: Db) {
    let (bus, stream, settings, app) = one_integration(&db, 13, 80).await;
    let id = stream.integrations[0];
    let original = deal_tables(app.store.dump_tables().await.unwrap());
    let before = all_deals(&app, &id.to_string(), "").await;
    let count_before = app.ok(&format!("/integrations/{id}")).await["deals_count"]
        .as_u64()
        .unwrap();
    let live = |d: &Value| d["deleted"] == false;
    let won = busiest_stage(&before, |d| live(d) && d["outcome"] == "won");
    let open = busiest_stage(&before, |d| live(d) && d["outcome"] == "open");
    let spam = busiest_stage(&before, |d| {
        live(d) && d["outcome"] == "open" && d["stage_code"] != open.as_str()
    });
    let in_stage = |deals: &[Value], code: &str| -> Vec<Value> {
        deals
            .iter()
            .filter(|d| d["stage_code"] == code)
            .cloned()
            .collect()
    };

    let mapping = app.ok(&format!("/integrations/{id}/stage-mapping")).await;
    let items = mapping["items"].as_array().unwrap();
    assert!(items.len() >= 3, "{mapping}");
    assert!(items.iter().all(|i| i["outcome"] == i["default_outcome"]));
    assert!(items.iter().all(|i| i["excluded"] == false));

    // `won` now counts as lost, `open` as won, `spam` is left out.
    let rules = serde_json::json!({
        won.as_str(): {"outcome": "lost"},
        open.as_str(): {"outcome": "won"},
        spam.as_str(): {"excluded": true},
    });
    let mut config = synthetic::configured(false, true, epoch() + Duration::days(1));
    config.stage_mapping = serde_json::from_value(rules).unwrap();
    bus.send(
        Source::Integrations,
        id,
        Event::IntegrationConfigured(config),
    )
    .await;
    bus.wait_applied(&settings, &app.store).await;

    let listed = all_deals(&app, &id.to_string(), "").await;
    let everything = all_deals(&app, &id.to_string(), "&excluded=true").await;
    assert!(
        in_stage(&listed, &spam).is_empty(),
        "excluded deals are left out"
    );
    let spammed = in_stage(&everything, &spam);
    assert!(!spammed.is_empty());
    assert!(spammed.iter().all(|d| d["excluded"] == true));
    assert_eq!(listed.len() + spammed.len(), everything.len());
    let spammed_live = spammed.iter().filter(|d| live(d)).count() as u64;
    let view = app.ok(&format!("/integrations/{id}")).await;
    assert_eq!(view["deals_count"], count_before - spammed_live);
    for d in in_stage(&listed, &won) {
        assert_eq!(d["outcome"], "lost", "{}", d["order_id"]);
        assert!(d["closed_at"].is_string());
    }
    for d in in_stage(&listed, &open) {
        assert_eq!(d["outcome"], "won", "{}", d["order_id"]);
        assert!(
            d["closed_at"].is_string(),
            "closed once its stage counts as won"
        );
        let previous = &before
            .iter()
            .find(|b| b["order_id"] == d["order_id"])
            .unwrap();
        assert_eq!(previous["closed_at"], Value::Null);
    }
    let won_now = all_deals(&app, &id.to_string(), "&outcome=won").await;
    assert!(won_now.iter().all(|d| d["stage_code"] != won.as_str()));
    assert!(won_now.iter().any(|d| d["stage_code"] == open.as_str()));
    // The CSV follows the same filters.
    let rows = |csv: String| csv.split("\r\n").filter(|l| !l.is_empty()).count() - 1;
    let (status, csv) = app.text(&format!("/integrations/{id}/deals.csv")).await;
    assert_eq!(status, 200);
    assert_eq!(rows(csv), listed.len());
    let (_, csv) = app
        .text(&format!("/integrations/{id}/deals.csv?excluded=true"))
        .await;
    assert_eq!(rows(csv), everything.len());
    // Funnels: the override's outcome, no excluded stage.
    let funnels = app.ok(&format!("/integrations/{id}/funnels")).await;
    let stages: Vec<&Value> = funnels
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["stages"].as_array().unwrap())
        .collect();
    assert!(stages.iter().all(|s| s["code"] != spam.as_str()));
    assert!(
        stages
            .iter()
            .filter(|s| s["code"] == won.as_str())
            .all(|s| s["outcome"] == "lost")
    );
    let mapping = app.ok(&format!("/integrations/{id}/stage-mapping")).await;
    let item = |code: &str| {
        mapping["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["code"] == code)
            .unwrap()
            .clone()
    };
    assert_eq!(item(&won)["default_outcome"], "won");
    assert_eq!(item(&won)["outcome"], "lost");
    assert_eq!(item(&spam)["excluded"], true);

    // A snapshot applied now takes the consumer's path and agrees.
    let mut again = stream.first_deal();
    again.status_code = won.clone();
    again.status_group = Some("complete".into());
    again.observed_at += Duration::days(400);
    bus.send(Source::Deals, id, Event::DealUpserted(again.clone()))
        .await;
    bus.wait_applied(&settings, &app.store).await;
    let one = app
        .ok(&format!("/integrations/{id}/deals/{}", again.order_id))
        .await;
    assert_eq!(one["outcome"], "lost");

    // No rules: every row as before but the re-sent deal's.
    let config = synthetic::configured(false, true, epoch() + Duration::days(2));
    bus.send(
        Source::Integrations,
        id,
        Event::IntegrationConfigured(config),
    )
    .await;
    bus.wait_applied(&settings, &app.store).await;
    // Compared as sets: the re-sent snapshot added a stage history row (and described its
    // manager again).
    let now = deal_tables(app.store.dump_tables().await.unwrap());
    let rows = |dump: &[(String, Vec<String>)]| -> std::collections::BTreeSet<String> {
        dump.iter()
            .flat_map(|(t, rows)| rows.iter().map(move |r| format!("{t}: {r}")))
            .collect()
    };
    let (now, original) = (rows(&now), rows(&original));
    let new: Vec<&String> = now.difference(&original).collect();
    assert!(
        new.len() <= 3
            && new.iter().all(|r| r.starts_with("managers: ")
                || r.contains(&format!("order_id={}|", again.order_id))),
        "only the re-sent deal's rows differ: {new:#?}"
    );
    app.stop().await.unwrap();
}
