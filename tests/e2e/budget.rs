//! The account's budget in the all-in-one (issue 17, DESIGN §7.4): `DEALFLOW_CRM_RPS=10`, the
//! documented maximum, starts; and two integrations connected to one RetailCRM account (two
//! tenants, say) share its budget, so the account never sees more than 10 requests in any
//! sliding second and never answers 503, while both load every order.

use serde_json::json;

use crate::support::{Bus, System, truth_orders};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_integrations_on_one_account_share_its_ten_per_second() {
    let system =
        System::start_configured(Bus::Embedded, 1, 400, &[("DEALFLOW_CRM_RPS", "10")]).await;
    let (status, tenant) = system
        .send(reqwest::Method::POST, "/tenants", json!({"name": "second"}))
        .await;
    assert_eq!(status, 201, "{tenant}");
    let backfill = json!({"backfill_days": 3650});
    let (first, _) = system.connect_with(0, backfill.clone()).await;
    let mut second_settings = backfill;
    second_settings["tenant_id"] = tenant["id"].clone();
    let (second, _) = system.connect_with(0, second_settings).await;
    let want = truth_orders(system.account()).len();
    for id in [&first, &second] {
        system
            .wait_deals(id, "every order of the shared account", |d| d.len() >= want)
            .await;
    }
    let counters = system.account().counters();
    assert!(counters.total > 10, "{counters:?}");
    assert!(counters.max_per_second <= 10, "{counters:?}");
    assert_eq!(counters.rate_limited, 0, "{counters:?}");
    system.stop().await;
}
