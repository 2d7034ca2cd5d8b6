//! Tenant tokens through a whole deployment (issue 15): a token issued through the write side
//! (ingest) works on the read side (the projector, another process in the split layout); a
//! revoked one is refused by the read side within 5 s; the kept one still works after every
//! kill and restart of the run; both are secrets the scan looks for.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::json;

use crate::api::Api;

/// DESIGN §4: a revoked token is refused by every process within 5 s.
pub const REVOCATION_BOUND: Duration = Duration::from_secs(5);

/// The tokens of one deployment's tenant (`Debug` never prints them).
#[derive(Clone)]
pub struct TenantTokens {
    pub tenant: String,
    /// Works for the whole run (checked again at its end).
    pub kept: String,
    /// Revoked at the start.
    pub revoked: String,
    /// How long the read side took to refuse the revoked token.
    pub revoked_after: Duration,
}

impl std::fmt::Debug for TenantTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTokens")
            .field("tenant", &self.tenant)
            .field("revoked_after", &self.revoked_after)
            .finish_non_exhaustive()
    }
}

/// `GET /api/v1/integrations` at `base` with `token`: the status.
async fn status_with(api: &Api, base: &str, token: &str) -> anyhow::Result<u16> {
    let response = api
        .http
        .get(format!("{base}/api/v1/integrations"))
        .bearer_auth(token)
        .send()
        .await
        .context("GET /api/v1/integrations with a tenant token")?;
    let status = response.status().as_u16();
    if status != 200 {
        api.keep_error(
            "a tenant token's call",
            status,
            response.text().await.unwrap_or_default(),
        );
    }
    Ok(status)
}

/// Waits (at most `bound`) until `base` answers `want` to `token`; how long it took.
async fn until(
    api: &Api,
    base: &str,
    token: &str,
    want: u16,
    bound: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if status_with(api, base, token).await? == want {
            return Ok(started.elapsed());
        }
        if started.elapsed() > bound {
            bail!("{base} did not answer {want} to a tenant token within {bound:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a tenant with two tokens through `write_base`, shows both work on both sides, then
/// revokes one and measures how long `read_base` takes to refuse it.
pub async fn issue_and_revoke(
    api: &Api,
    write_base: &str,
    read_base: &str,
) -> anyhow::Result<TenantTokens> {
    let (status, tenant) = api
        .call(
            Method::POST,
            &format!("{write_base}/api/v1/tenants"),
            Some(json!({"name": "fault suite"})),
        )
        .await?;
    if status != 201 {
        bail!("creating a tenant: {status} {tenant}");
    }
    let tenant = tenant["id"].as_str().context("a tenant id")?.to_owned();
    let mut issued = Vec::new();
    for name in ["kept", "revoked"] {
        let (status, body) = api
            .call(
                Method::POST,
                &format!("{write_base}/api/v1/tenants/{tenant}/tokens"),
                Some(json!({"name": name})),
            )
            .await?;
        if status != 201 {
            bail!("issuing a tenant token: {status}");
        }
        let token = body["token"].as_str().context("a token")?.to_owned();
        let id = body["id"].as_str().context("a token id")?.to_owned();
        issued.push((id, token));
    }
    for (_, token) in &issued {
        until(api, write_base, token, 200, REVOCATION_BOUND).await?;
        until(api, read_base, token, 200, REVOCATION_BOUND).await?;
    }
    let (revoked_id, revoked) = issued.pop().expect("two tokens");
    let (_, kept) = issued.pop().expect("two tokens");
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{write_base}/api/v1/tenants/{tenant}/tokens/{revoked_id}"),
            None,
        )
        .await?;
    if status != 204 {
        bail!("revoking a tenant token: {status}");
    }
    let revoked_after = until(api, read_base, &revoked, 401, REVOCATION_BOUND).await?;
    until(api, write_base, &revoked, 401, Duration::ZERO).await?;
    Ok(TenantTokens {
        tenant,
        kept,
        revoked,
        revoked_after,
    })
}

/// At the end of the run: the kept token still works on both sides, the revoked one still
/// does not (tenants and tokens survived every restart).
pub async fn still_right(
    api: &Api,
    write_base: &str,
    read_base: &str,
    tokens: &TenantTokens,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (side, base) in [("write side", write_base), ("read side", read_base)] {
        for (what, token, want) in [
            ("kept", &tokens.kept, 200),
            ("revoked", &tokens.revoked, 401),
        ] {
            match status_with(api, base, token).await {
                Ok(status) if status == want => {}
                Ok(status) => problems.push(format!(
                    "the {what} tenant token got {status} from the {side} after the faults"
                )),
                Err(e) => problems.push(format!("the {what} tenant token on the {side}: {e:#}")),
            }
        }
    }
    problems
}
