//! retailcrm-parse: how long reading a RetailCRM answer into its model takes (the enricher
//! reads every order it fetches this way). Not a test: it prints microseconds per body.
//!
//! `cargo bench -p dealflow-shared --bench retailcrm-parse`

use std::time::{Duration, Instant};

use dealflow_shared::retailcrm::models::history::OrdersHistoryResponse;
use dealflow_shared::retailcrm::models::order::{OrderResponse, OrdersResponse};
use dealflow_shared::retailcrm::{Endpoint, parse_response};
use serde::de::DeserializeOwned;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/retailcrm");

/// Parses `file` over and over for about a second and prints the time per body.
fn time<T: DeserializeOwned>(file: &str, path: &str) {
    let body = std::fs::read(format!("{FIXTURES}/{file}")).expect("a fixture");
    let endpoint = Endpoint::get(path);
    let started = Instant::now();
    let mut parsed = 0_u32;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            let value: T = parse_response(&endpoint, 200, &body).expect("a valid fixture");
            std::hint::black_box(value);
        }
        parsed += 100;
    }
    let each = started.elapsed() / parsed;
    println!(
        "{file}: {} bytes, {:.1} µs per body ({parsed} parsed)",
        body.len(),
        each.as_secs_f64() * 1e6
    );
}

fn main() {
    for _ in 0..3 {
        time::<OrdersResponse>("orders-list.json", "/api/v5/orders");
        time::<OrderResponse>("orders-get.json", "/api/v5/orders/1");
        time::<OrdersHistoryResponse>("orders-history.json", "/api/v5/orders/history");
    }
}
