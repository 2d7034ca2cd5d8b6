//! Calls to dealflow's HTTP API. Every error body the suite receives is kept, so the secrets
//! scan can check that none of them echoes a key or a token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::deploy::Integration;

/// The suite's HTTP client with the run's bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    pub http: reqwest::Client,
    token: String,
    error_bodies: Arc<Mutex<Vec<String>>>,
}

impl Api {
    pub fn new(token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("a default reqwest client builds"),
            token: token.to_owned(),
            error_bodies: Arc::default(),
        }
    }

    /// Every non-2xx body seen so far.
    pub fn error_bodies(&self) -> Vec<String> {
        self.error_bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Keeps an error body (any caller that reads a non-2xx answer reports it here).
    pub fn keep_error(&self, context: &str, status: u16, body: String) {
        self.error_bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{context} → {status}: {body}"));
    }

    /// A JSON call with the bearer token; `(status, body)`.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            self.keep_error(&format!("{method} {url}"), status, text.clone());
        }
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// GET that must succeed.
    pub async fn get(&self, url: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(Method::GET, url, None).await?;
        if status != 200 {
            bail!("GET {url}: {status} {body}");
        }
        Ok(body)
    }

    /// Connects a RetailCRM account; backfills every order of the last `backfill_days`.
    pub async fn connect(
        &self,
        write_base: &str,
        account: usize,
        crm_url: &str,
        api_key: &str,
        backfill_days: u32,
        tenant: Option<&str>,
    ) -> anyhow::Result<Integration> {
        let mut request = json!({
            "crm_url": crm_url, "api_key": api_key, "default_funnel": false,
            "include_delivery_cost": true, "active": true, "backfill_days": backfill_days,
        });
        if let Some(tenant) = tenant {
            request["tenant_id"] = tenant.into();
        }
        let (status, body) = self
            .call(
                Method::POST,
                &format!("{write_base}/api/v1/integrations"),
                Some(request),
            )
            .await?;
        if status != 201 {
            bail!("connecting account {account}: {status} {body}");
        }
        let text = |f: &str| {
            body[f]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("no {f} in {body}"))
        };
        Ok(Integration {
            account,
            id: text("id")?,
            webhook_url: text("webhook_url")?,
        })
    }

    /// Sets an integration's key again (after it was restored in RetailCRM): a settings change
    /// is what unparks the account at once.
    pub async fn set_key(
        &self,
        write_base: &str,
        integration: &str,
        api_key: &str,
    ) -> anyhow::Result<()> {
        let (status, body) = self
            .call(
                Method::PATCH,
                &format!("{write_base}/api/v1/integrations/{integration}"),
                Some(json!({ "api_key": api_key })),
            )
            .await?;
        if status != 200 {
            bail!("setting the key of {integration}: {status} {body}");
        }
        Ok(())
    }

    /// The integration's health status (`ok`, `auth_failed`, …) as the read API reports it.
    pub async fn health(&self, read_base: &str, integration: &str) -> anyhow::Result<String> {
        let body = self
            .get(&format!("{read_base}/api/v1/integrations/{integration}"))
            .await?;
        Ok(body["health"]["status"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned())
    }

    /// Every deal of an integration (deleted ones included), through keyset pagination.
    pub async fn all_deals(
        &self,
        read_base: &str,
        integration: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let mut deals = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("?limit=500&cursor={c}"),
                None => "?limit=500".to_owned(),
            };
            let page = self
                .get(&format!(
                    "{read_base}/api/v1/integrations/{integration}/deals{query}"
                ))
                .await?;
            deals.extend(
                page["items"]
                    .as_array()
                    .context("deals page without items")?
                    .iter()
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(deals),
            }
        }
    }

    /// One deal with its stage history.
    pub async fn deal(
        &self,
        read_base: &str,
        integration: &str,
        order: u64,
    ) -> anyhow::Result<Value> {
        self.get(&format!(
            "{read_base}/api/v1/integrations/{integration}/deals/{order}"
        ))
        .await
    }

    /// Sends one webhook (in one of the forms RetailCRM triggers use); the status, or `None`
    /// when nothing answered (the process was down).
    pub async fn webhook(&self, url: &str, order: u64, form: u8) -> Option<u16> {
        let request = match form % 3 {
            0 => self.http.get(format!("{url}?orderId={order}")),
            1 => self.http.post(url).form(&[("id", order.to_string())]),
            _ => self.http.post(url).json(&json!({ "orderId": order })),
        };
        let response = request.timeout(Duration::from_secs(10)).send().await.ok()?;
        let status = response.status().as_u16();
        if status != 202 {
            let body = response.text().await.unwrap_or_default();
            // The URL holds the webhook token: the context names the order only.
            self.keep_error(&format!("webhook for order {order}"), status, body);
        }
        Some(status)
    }

    /// `/metrics` of a process.
    pub async fn metrics(&self, base: &str) -> anyhow::Result<String> {
        let response = self.http.get(format!("{base}/metrics")).send().await?;
        Ok(response.text().await?)
    }
}
