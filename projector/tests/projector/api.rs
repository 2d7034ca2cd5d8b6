//! The read API of DESIGN §4: every filter, pagination, errors, CSV, funnels, contacts,
//! managers, integrations with counters, bearer auth, and one integration's data never
//! served under another's id.

use std::collections::BTreeSet;

use dealflow_shared::events::Event;
use dealflow_synthetic::{self as synthetic, Source, Spec};
use dealflow_testkit::wait_until;
use serde_json::Value;

use crate::support::*;

async fn all_deals(app: &App, id: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/integrations/{id}/deals?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.ok(&path).await;
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit);
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(got.len(), limit, "a full page precedes a cursor");
                cursor = Some(c.to_owned());
            }
            None => return items,
        }
    }
}

fn order_ids(deals: &[Value]) -> Vec<u64> {
    deals
        .iter()
        .map(|d| d["order_id"].as_u64().unwrap())
        .collect()
}

both!(the_read_api_answers_every_filter_page_and_error);
async fn the_read_api_answers_every_filter_page_and_error(db: Db) {
    let bus = Bus::embedded().await;
    let a = synthetic::generate(&Spec {
        seed: 21,
        integrations: 1,
        orders_per_integration: 25,
    });
    let b = synthetic::generate(&Spec {
        seed: 22,
        integrations: 1,
        orders_per_integration: 35,
    });
    bus.publish(&a.events).await;
    bus.publish(&b.events).await;
    let (ida, idb) = (a.integrations[0].to_string(), b.integrations[0].to_string());
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;

    // Operations endpoints.
    let get = |path: &str| app.http.get(app.url(path)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    wait_until(WAIT, "readyz", || async {
        get("/readyz").await.unwrap().status() == 200
    })
    .await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("dealflow_projector_events_applied_total{type=\"DealUpserted\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("dealflow_projector_batch_records_bucket"));

    // Bearer token on every /api route.
    for path in [
        "/api/v1/integrations".to_owned(),
        format!("/api/v1/integrations/{ida}"),
        format!("/api/v1/integrations/{ida}/deals"),
        format!("/api/v1/integrations/{ida}/deals.csv"),
        format!("/api/v1/integrations/{ida}/deals/10000"),
        format!("/api/v1/integrations/{ida}/funnels"),
        format!("/api/v1/integrations/{ida}/contacts"),
        format!("/api/v1/integrations/{ida}/managers"),
    ] {
        assert_eq!(get(&path).await.unwrap().status(), 401, "{path}");
        let wrong = app
            .http
            .get(app.url(&path))
            .bearer_auth("not-the-token-at-all-000")
            .send();
        assert_eq!(wrong.await.unwrap().status(), 401, "{path}");
    }

    // Pagination: pages of 7 are the whole list, newest first, nothing twice.
    let everything = all_deals(&app, &ida, "", 500).await;
    let paged = all_deals(&app, &ida, "", 7).await;
    assert_eq!(paged, everything);
    assert!(everything.len() >= 20);
    let keys: Vec<(String, u64)> = everything
        .iter()
        .map(|d| {
            (
                d["created_at"].as_str().unwrap().to_owned(),
                d["order_id"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(keys, sorted);
    assert_eq!(
        order_ids(&everything)
            .into_iter()
            .collect::<BTreeSet<_>>()
            .len(),
        everything.len()
    );
    let default_page = app.ok(&format!("/integrations/{ida}/deals")).await;
    assert_eq!(
        default_page["items"].as_array().unwrap().len(),
        everything.len().min(50)
    );

    // Every filter, alone and combined, against the same predicate applied here.
    let median_update = {
        let mut times: Vec<&str> = everything
            .iter()
            .map(|d| d["updated_at"].as_str().unwrap())
            .collect();
        times.sort();
        times[times.len() / 2].to_owned()
    };
    type Check = Box<dyn Fn(&Value) -> bool>;
    let since = median_update.clone();
    let cases: Vec<(String, Check)> = vec![
        (
            "&site=shop-main".into(),
            Box::new(|d| d["site"] == "shop-main"),
        ),
        (
            "&funnel_id=shop-outlet".into(),
            Box::new(|d| d["funnel_id"] == "shop-outlet"),
        ),
        (
            "&stage=complete".into(),
            Box::new(|d| d["stage_code"] == "complete"),
        ),
        ("&outcome=won".into(), Box::new(|d| d["outcome"] == "won")),
        ("&outcome=lost".into(), Box::new(|d| d["outcome"] == "lost")),
        ("&outcome=open".into(), Box::new(|d| d["outcome"] == "open")),
        (
            "&manager_id=3".into(),
            Box::new(|d| d["manager"]["id"] == 3),
        ),
        (
            format!("&changed_since={}", median_update.replace('+', "%2B")),
            Box::new(move |d| d["updated_at"].as_str().unwrap() >= since.as_str()),
        ),
        ("&deleted=true".into(), Box::new(|d| d["deleted"] == true)),
        ("&deleted=false".into(), Box::new(|d| d["deleted"] == false)),
        (
            "&site=shop-main&outcome=won".into(),
            Box::new(|d| d["site"] == "shop-main" && d["outcome"] == "won"),
        ),
    ];
    for (query, check) in &cases {
        let expected: Vec<Value> = everything.iter().filter(|d| check(d)).cloned().collect();
        let got = all_deals(&app, &ida, query, 4).await;
        assert_eq!(order_ids(&got), order_ids(&expected), "filter {query}");
    }
    for query in [
        "&outcome=won",
        "&outcome=lost",
        "&outcome=open",
        "&deleted=true",
    ] {
        assert!(
            !all_deals(&app, &ida, query, 500).await.is_empty(),
            "the data has {query}"
        );
    }

    // Errors.
    let cases = [
        (
            format!("/integrations/{ida}/deals?limit=0"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?limit=501"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?limit=ten"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?cursor=garbage"),
            400,
            "invalid_cursor",
        ),
        (
            format!("/integrations/{ida}/deals?status=new"),
            400,
            "unknown_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?outcome=maybe"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?manager_id=boss"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?changed_since=yesterday"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?deleted=maybe"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals?site=a&site=b"),
            400,
            "invalid_parameter",
        ),
        (
            format!("/integrations/{ida}/deals.csv?limit=5"),
            400,
            "unknown_parameter",
        ),
        (
            format!("/integrations/{ida}/contacts?cursor=garbage"),
            400,
            "invalid_cursor",
        ),
        (
            format!("/integrations/{ida}/deals/abc"),
            400,
            "invalid_order_id",
        ),
        (
            format!("/integrations/{ida}/deals/999999"),
            404,
            "deal_not_found",
        ),
        (
            format!("/integrations/{}/deals", uuid::Uuid::now_v7()),
            404,
            "integration_not_found",
        ),
        (
            "/integrations/not-a-uuid/deals".to_owned(),
            404,
            "integration_not_found",
        ),
        (
            format!("/integrations/{}", uuid::Uuid::now_v7()),
            404,
            "integration_not_found",
        ),
    ];
    for (path, status, code) in cases {
        assert_eq!(app.error(&path).await, (status, code.to_owned()), "{path}");
    }

    // One deal, with its stage history oldest first.
    let one = app.ok(&format!("/integrations/{ida}/deals/10000")).await;
    let listed = everything.iter().find(|d| d["order_id"] == 10000).unwrap();
    let mut without_history = one.clone();
    without_history
        .as_object_mut()
        .unwrap()
        .remove("stage_history");
    assert_eq!(&without_history, listed);
    let history = one["stage_history"].as_array().unwrap();
    assert!(!history.is_empty());
    let times = instants(history, "entered_at");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(history.last().unwrap()["stage_code"], one["stage_code"]);
    assert!(one["created_at"].as_str().unwrap().ends_with('Z'));
    // The synthetic stream gives every order the client id `<order id>.1705302000`.
    assert_eq!(one["client_id"], "10000.1705302000");
    assert!(
        one["amount"].as_str().unwrap().contains('.'),
        "money is a decimal string"
    );
    for field in [
        "order_id",
        "number",
        "external_id",
        "site",
        "funnel_id",
        "funnel_name",
        "stage_code",
        "stage_name",
        "stage_group",
        "outcome",
        "amount",
        "currency",
        "total_sum",
        "delivery_cost",
        "manager",
        "contact",
        "company",
        "utm",
        "client_id",
        "custom_fields",
        "created_at",
        "stage_entered_at",
        "closed_at",
        "last_open_stage",
        "deleted",
        "merged_into",
        "updated_at",
    ] {
        assert!(one.get(field).is_some(), "deal JSON has {field}");
    }

    // One integration's data never under another's id.
    let everything_b = all_deals(&app, &idb, "", 500).await;
    assert!(order_ids(&everything_b).contains(&10_030));
    assert!(!order_ids(&everything).contains(&10_030));
    assert_eq!(
        app.error(&format!("/integrations/{ida}/deals/10030"))
            .await
            .0,
        404
    );
    assert_ne!(
        app.ok(&format!("/integrations/{idb}/deals/10000")).await,
        one
    );
    assert_eq!(
        app.ok(&format!("/integrations/{idb}/deals/10000")).await["order_id"],
        10000
    );

    // CSV: a header, then one row per deal (filters apply).
    let export = |file: &str, query: &str| {
        let url = app.url(&format!("/api/v1/integrations/{ida}/{file}{query}"));
        let request = app.http.get(url).bearer_auth(API_TOKEN).send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["content-type"],
                "text/csv; charset=utf-8"
            );
            response.text().await.unwrap()
        }
    };
    let csv = |query: &str| export("deals.csv", query);
    let text = csv("").await;
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "order_id,number,created_at,site,funnel_id,stage_code,stage_name,outcome,amount,currency,manager_name,contact_name,phones,emails,utm_source,utm_medium,utm_campaign,deleted,company,closed_at,last_open_stage,client_id,order_type,order_method,payment_status,paid_sum,purchase_sum,cf_colors,cf_gift_wrap,cf_note"
    );
    assert_eq!(lines.len(), everything.len() + 1);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first[0], everything[0]["order_id"].to_string());
    assert_eq!(first[8], everything[0]["amount"].as_str().unwrap());
    let text_of = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    assert_eq!(
        first[22..27],
        [
            text_of(&everything[0]["order_type"]),
            text_of(&everything[0]["order_method"]),
            text_of(&everything[0]["payment_status"]),
            text_of(&everything[0]["paid_sum"]),
            text_of(&everything[0]["purchase_sum"]),
        ]
    );
    // Custom fields in their `cf_<code>` columns, values flattened (and defused).
    assert!(
        lines.iter().any(|l| l.ends_with(",red; blue,true,")),
        "a multiselect joined with '; '"
    );
    assert!(
        lines.iter().any(|l| l.ends_with(",,,'=1+2")),
        "a formula defused"
    );

    // Order lines: one row per line of every deal, the same filters.
    let items = export("deal-items.csv", "").await;
    let rows: Vec<&str> = items.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows[0],
        "order_id,number,site,offer_id,article,name,quantity,price,sum,purchase_price,canceled"
    );
    let lines_total: usize = everything
        .iter()
        .map(|d| d["items"].as_array().unwrap().len())
        .sum();
    assert_eq!(rows.len(), lines_total + 1);
    assert!(lines_total > everything.len(), "several lines per deal");
    let first_item = &everything[0]["items"][0];
    let cells: Vec<&str> = rows[1].split(',').collect();
    assert_eq!(cells[0], everything[0]["order_id"].to_string());
    assert_eq!(cells[7], first_item["price"].as_str().unwrap());
    assert_eq!(cells[8], first_item["sum"].as_str().unwrap());
    assert!(
        rows.iter().any(|r| r.ends_with(",true")),
        "a cancelled line"
    );

    let won = csv("?outcome=won").await;
    let won_rows = won.split("\r\n").filter(|l| !l.is_empty()).count() - 1;
    assert_eq!(
        won_rows,
        everything.iter().filter(|d| d["outcome"] == "won").count()
    );

    // Funnels: one per shop, stages in (group, status) order.
    let funnels = app.ok(&format!("/integrations/{ida}/funnels")).await;
    let funnels = funnels.as_array().unwrap();
    assert_eq!(funnels.len(), 2);
    for funnel in funnels {
        let stages = funnel["stages"].as_array().unwrap();
        let codes: Vec<&str> = stages.iter().map(|s| s["code"].as_str().unwrap()).collect();
        assert_eq!(
            codes,
            [
                "new",
                "availability-confirmed",
                "assembling",
                "send-to-delivery",
                "delivering",
                "complete",
                "cancel-other",
                "no-product"
            ]
        );
        let orderings: Vec<u64> = stages
            .iter()
            .map(|s| s["ordering"].as_u64().unwrap())
            .collect();
        assert_eq!(orderings, (1..=8).collect::<Vec<_>>());
        let outcomes: Vec<&str> = stages
            .iter()
            .map(|s| s["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            [
                "open", "open", "open", "open", "open", "won", "lost", "lost"
            ]
        );
        assert_eq!(funnel["id"], funnel["site"]);
    }
    let names: Vec<&str> = funnels
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Main shop", "Outlet"]);

    // Contacts (paginated) and managers.
    let mut contacts = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .ok(&format!("/integrations/{ida}/contacts?limit=5{cursor}"))
            .await;
        contacts.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let expected_contacts: BTreeSet<u64> = everything
        .iter()
        .map(|d| d["contact"]["id"].as_u64().unwrap())
        .collect();
    let got_contacts: Vec<u64> = contacts.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(
        got_contacts.iter().copied().collect::<BTreeSet<_>>(),
        expected_contacts
    );
    assert_eq!(got_contacts.len(), expected_contacts.len());
    assert!(
        contacts
            .iter()
            .all(|c| c["kind"] == "person" && c["phones"].as_array().unwrap().len() == 1)
    );
    let managers = app.ok(&format!("/integrations/{ida}/managers")).await;
    let manager_ids: BTreeSet<u64> = managers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    let expected_managers: BTreeSet<u64> = everything
        .iter()
        .map(|d| d["manager"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(manager_ids, expected_managers);

    // Integrations with health and counters; never the key.
    let list = app.ok("/integrations").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let view = app.ok(&format!("/integrations/{ida}")).await;
    assert_eq!(view["id"], ida.as_str());
    assert_eq!(view["health"]["status"], "ok");
    assert_eq!(
        view["deals_count"],
        everything.iter().filter(|d| d["deleted"] == false).count()
    );
    assert!(
        view["webhook_url"]
            .as_str()
            .unwrap()
            .starts_with("https://dealflow.example.com/hooks/retailcrm/")
    );
    assert_eq!(view["last_reconciled_at"], Value::Null);
    let last_webhook = a
        .events
        .iter()
        .filter_map(|(_, e)| match &e.event {
            Event::OrderChanged(c) => Some(c.received_at),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!(
        view["last_webhook_at"],
        serde_json::to_value(last_webhook).unwrap()
    );
    assert!(
        !list.to_string().contains("synthetic"),
        "no sealed key in the output"
    );
    app.stop().await.unwrap();
}

both!(a_removed_integration_disappears_with_its_data);
async fn a_removed_integration_disappears_with_its_data(db: Db) {
    let bus = Bus::embedded().await;
    let stream = synthetic::generate(&Spec {
        seed: 31,
        integrations: 2,
        orders_per_integration: 5,
    });
    bus.publish(&stream.events).await;
    let (gone, kept) = (stream.integrations[0], stream.integrations[1]);
    let settings = bus.settings(&db);
    let app = App::spawn(settings.clone(), &bus).await;
    bus.wait_applied(&settings, &app.store).await;
    let removal = dealflow_shared::events::IntegrationRemoved {
        removed_at: synthetic::epoch(),
    };
    bus.send(
        Source::Integrations,
        gone,
        Event::IntegrationRemoved(removal),
    )
    .await;
    // Its events keep arriving (late): they are ignored.
    let late: Vec<_> = stream
        .events
        .iter()
        .filter(|(s, e)| *s == Source::Deals && e.integration_id == gone)
        .cloned()
        .collect();
    bus.publish(&late).await;
    bus.wait_applied(&settings, &app.store).await;
    assert_eq!(app.error(&format!("/integrations/{gone}")).await.0, 404);
    assert_eq!(
        app.error(&format!("/integrations/{gone}/deals")).await.0,
        404
    );
    let list = app.ok("/integrations").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], kept.to_string());
    let dump = app.store.dump_tables().await.unwrap();
    for (table, rows) in &dump {
        if table != "removed_integrations" {
            assert!(
                rows.iter().all(|r| !r.contains(&gone.to_string())),
                "{table} keeps rows of a removed integration"
            );
        }
    }
    app.stop().await.unwrap();
}
