//! The OpenAPI document (`GET /api/openapi.json`) matches the routes: every documented
//! operation answers on a running all-in-one process with a documented success status, every
//! other method on a documented path is a `405`, and every route the routers declare under
//! `/api` (and the webhook) is documented.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Bus, System, truth_orders};

/// The router sources whose `.route("…")` paths must all be documented.
const ROUTER_SOURCES: &[&str] = &[
    "ingest/src/service.rs",
    "projector/src/api/mod.rs",
    "projector/src/service.rs",
    "src/allinone/mod.rs",
    "src/pages/mod.rs",
];

/// Every path literal passed to `.route(` in `source`.
fn declared_routes(source: &str) -> Vec<String> {
    let mut routes = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = rest[at + ".route(".len()..].trim_start();
        if let Some((literal, _)) = rest.strip_prefix('"').and_then(|l| l.split_once('"')) {
            routes.push(literal.to_owned());
        }
    }
    routes
}

/// Checks `value` against `schema` of the OpenAPI document `doc` (the subset utoipa writes:
/// `$ref`, `type` (one or several), `properties`/`required`, `items`, `oneOf`/`anyOf`/`allOf`,
/// `additionalProperties`), collecting what differs into `problems` with its JSON path.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        let target = &doc["components"]["schemas"][name];
        assert!(
            target.is_object(),
            "{at}: {reference} is not in the document"
        );
        return conforms(doc, target, value, at, problems);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = schema[key].as_array() {
            let fits = choices.iter().any(|choice| {
                let mut found = Vec::new();
                conforms(doc, choice, value, at, &mut found);
                found.is_empty()
            });
            if !fits {
                problems.push(format!("{at}: {value} fits none of the {key} choices"));
            }
            return;
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            conforms(doc, part, value, at, problems);
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let typed = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !typed {
        problems.push(format!("{at}: a {kind} where the document says {types:?}"));
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema["properties"].as_object();
            if let Some(properties) = properties {
                for (name, field) in fields {
                    match properties.get(name) {
                        Some(s) => conforms(doc, s, field, &format!("{at}.{name}"), problems),
                        None if schema.get("additionalProperties").is_some() => {}
                        None => problems.push(format!("{at}.{name}: not in the document")),
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (name, field) in fields {
                    conforms(doc, extra, field, &format!("{at}.{name}"), problems);
                }
            }
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                if !fields.contains_key(name) {
                    problems.push(format!("{at}.{name}: required by the document, missing"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    conforms(doc, item, v, &format!("{at}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

/// The request body a documented operation needs to succeed.
fn body_for(method: &Method, path: &str, system: &System) -> Option<Value> {
    let account = system.account();
    match (method.as_str(), path) {
        ("POST", "/api/v1/integrations") => Some(json!({
            "crm_url": account.url(), "api_key": account.api_key(), "backfill_days": 0
        })),
        ("PATCH", "/api/v1/integrations/{id}") => Some(json!({"active": true})),
        // No rule changed: answered with the mapping as it is.
        ("PATCH", "/api/v1/integrations/{id}/stage-mapping") => Some(json!({})),
        ("POST", "/api/v1/integrations/{id}/resync") => Some(json!({"since": "2024-01-01"})),
        ("POST", "/api/v1/tenants") => Some(json!({"name": "OpenAPI tenant"})),
        ("POST", "/api/v1/tenants/{id}/tokens") => Some(json!({"name": "OpenAPI token"})),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_matches_the_routes() {
    let system = System::start(Bus::Embedded, 10).await;

    // Served without the token: it holds no data.
    let response = system
        .http
        .get(format!("{}/api/openapi.json", system.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let components = &doc["components"];
    assert_eq!(components["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(components["securitySchemes"]["tenant"]["scheme"], "bearer");
    let error = &components["schemas"]["Error"]["properties"]["error"];
    assert!(!error.is_null(), "the error body is documented");
    for schema in ["Integration", "Deal", "Funnel", "Contact", "Manager"] {
        assert!(components["schemas"][schema].is_object(), "schema {schema}");
    }

    // Data for plausible parameters: an integration with one deal.
    let (id, hook) = system.connect(false).await;
    let webhook_token = hook.rsplit('/').next().unwrap().to_owned();
    let order = *truth_orders(system.account()).keys().next().unwrap();
    let sent = system
        .http
        .post(format!("{hook}?orderId={order}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    system
        .wait_deals(&id, "the deal of the webhook", |d| !d.is_empty())
        .await;
    // And a dead letter to retry: an order RetailCRM describes unreadably.
    let poison = *truth_orders(system.account()).keys().nth(1).unwrap();
    system.account().garble(poison, true).unwrap();
    let sent = system
        .http
        .post(format!("{hook}?orderId={poison}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let letter_id = dealflow_testkit::wait_for(crate::support::WAIT, "the dead letter", || async {
        let list = system
            .get(&format!("/integrations/{id}/dead-letters"))
            .await;
        list["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;

    // Every documented operation, deletions last (of the integration the POST creates).
    let paths = doc["paths"].as_object().unwrap();
    let mut operations: Vec<(Method, &String, &Value)> = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            if let Ok(method) = method.to_uppercase().parse::<Method>() {
                operations.push((method, path, operation));
            }
        }
    }
    // Creations first (a path's POST before its sub-paths use what it made), deletions last
    // and deepest first (a tenant's token is revoked before the tenant goes).
    operations.sort_by_key(|(method, path, _)| {
        let delete = *method == Method::DELETE;
        (
            delete,
            std::cmp::Reverse(if delete {
                (*path).clone()
            } else {
                String::new()
            }),
            (*path).clone(),
        )
    });
    assert!(operations.len() >= 14, "{} operations", operations.len());
    let mut created: Option<String> = None;
    let mut tenant: Option<String> = None;
    let mut token: Option<String> = None;
    let mut shapes_checked = 0;
    for (method, path, operation) in &operations {
        let target = match (method, &created) {
            _ if path.starts_with("/api/v1/tenants/") => tenant.clone().unwrap_or_default(),
            (&Method::DELETE, Some(created)) => created.clone(),
            _ => id.clone(),
        };
        let mut url = format!(
            "{}{}",
            system.base,
            path.replace("{id}", &target)
                .replace("{token_id}", token.as_deref().unwrap_or_default())
                .replace("{order_id}", &order.to_string())
                .replace("{letter_id}", &letter_id)
                .replace("{token}", &webhook_token)
        );
        if path.starts_with("/hooks/") {
            url.push_str(&format!("?orderId={order}"));
        }
        let mut request = system.http.request(method.clone(), &url);
        if operation.get("security").is_some() {
            request = request.bearer_auth(&system.token);
        }
        if let Some(body) = body_for(method, path, &system) {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {text}"
        );
        assert!(
            operation["responses"][status.as_str()].is_object(),
            "{method} {path} answered {status}, which the document does not list"
        );
        // The body has the documented shape: every field documented, every required one there,
        // nested objects and list items too (the handlers and the document use one type).
        let media = &operation["responses"][status.as_str()]["content"]["application/json"];
        if let Some(schema) = media.get("schema") {
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
            let mut problems = Vec::new();
            conforms(&doc, schema, &body, "$", &mut problems);
            assert!(
                problems.is_empty(),
                "{method} {path}: {problems:#?}\n{body}"
            );
            shapes_checked += 1;
        }
        if method == Method::POST {
            let made = || {
                let body: Value = serde_json::from_str(&text).unwrap();
                Some(body["id"].as_str().unwrap().to_owned())
            };
            match path.as_str() {
                "/api/v1/integrations" => created = made(),
                "/api/v1/tenants" => tenant = made(),
                "/api/v1/tenants/{id}/tokens" => token = made(),
                _ => {}
            }
        }
    }
    assert!(created.is_some(), "the document has the connect operation");
    assert!(
        tenant.is_some() && token.is_some(),
        "the document has the tenant operations"
    );
    assert!(
        shapes_checked >= 10,
        "{shapes_checked} JSON bodies checked against the document"
    );

    // No undocumented method is served on a documented path (the webhook takes any method
    // by design, DESIGN §4).
    let all = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    for (path, item) in paths.iter().filter(|(p, _)| !p.starts_with("/hooks/")) {
        for method in &all {
            if item.get(method.as_str().to_lowercase()).is_some() {
                continue;
            }
            let url = format!(
                "{}{}",
                system.base,
                path.replace("{id}", &id)
                    .replace("{order_id}", &order.to_string())
                    .replace("{letter_id}", &letter_id)
            );
            let status = system
                .http
                .request(method.clone(), &url)
                .bearer_auth(&system.token)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 405, "{method} {path} is served but not documented");
        }
    }

    // Every route the routers declare under /api, and the webhook, is documented.
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut checked = 0;
    for file in ROUTER_SOURCES {
        let source = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        for route in declared_routes(&source) {
            if route == "/api/openapi.json" {
                continue; // the document itself
            }
            if route.starts_with("/api") || route.starts_with("/hooks") {
                checked += 1;
                assert!(
                    documented.contains(route.as_str()),
                    "{route} (in {file}) is not in the OpenAPI document"
                );
            }
        }
    }
    assert!(checked >= 12, "found {checked} /api routes in the sources");
    system.stop().await;
}

#[test]
fn the_shape_check_finds_undocumented_missing_and_mistyped_fields() {
    let doc = json!({"components": {"schemas": {
        "Thing": {"type": "object", "required": ["id", "tags"], "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "owner": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Owner"}]},
        }},
        "Owner": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
    }}});
    let schema = json!({"$ref": "#/components/schemas/Thing"});
    let check = |value: Value| {
        let mut problems = Vec::new();
        conforms(&doc, &schema, &value, "$", &mut problems);
        problems
    };
    assert!(check(json!({"id": 1, "name": null, "tags": ["a"], "owner": {"id": 2}})).is_empty());
    let problems = check(json!({"id": "1", "tags": [3], "extra": true, "owner": {}}));
    let text = problems.join("\n");
    for expected in [
        "$.id: a string",
        "$.tags[0]: a integer",
        "$.extra: not in the document",
        "$.owner:",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(
        check(json!({"id": 1}))
            .join("")
            .contains("$.tags: required")
    );
}
