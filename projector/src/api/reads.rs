//! The read operations of the API as typed functions: the HTTP handlers answer with what these
//! return, and the pages call them directly (no JSON round trip through the router). Each
//! takes the integration id and the query string as the client sent them, so both get the
//! same validation and the same `{"error"}` answers.

use std::sync::Arc;
use std::time::Duration;

use dealflow_shared::events::IntegrationId;
use dealflow_shared::http::ApiError;
use dealflow_shared::secrets::SecretKeys;
use dealflow_shared::stages::StageMapping;
use dealflow_shared::tenants::Scope;
use dealflow_shared::views::{Integration, IntegrationList};
use url::Url;

use super::openapi::{ContactPage, ManagerList};
use super::params::{DEAL_FILTERS, Params};
use crate::derive::Markers;
use crate::read::cockpit::{DeadLetterView, SyncView, TraceItem};
use crate::read::deals::DealView;
use crate::read::funnels::FunnelView;
use crate::read::integrations::WebhookUrls;
use crate::read::{charts, cockpit, deals, funnels, integrations, people};
use crate::store::{Store, StoreError};

/// One page of deals, newest first by `created_at`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DealPage {
    pub items: Vec<DealView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The read model as the API shows it (cheap to clone).
#[derive(Debug, Clone)]
pub struct Reads {
    store: Store,
    keys: Arc<SecretKeys>,
    public_url: Url,
    /// Reported by `GET …/sync` (the enricher's setting; the same configuration).
    reconcile_interval: Duration,
}

pub(crate) fn internal(e: StoreError) -> ApiError {
    ApiError::internal(&e)
}

fn order_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_order_id",
            "The order id must be a positive integer.",
        )
    })
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "integration_not_found",
        "There is no integration with this id.",
    )
}

impl Reads {
    /// Reads of `store`; webhook URLs are derived from `keys` under `public_url`.
    pub fn new(store: Store, keys: Arc<SecretKeys>, public_url: Url) -> Self {
        Self {
            store,
            keys,
            public_url,
            reconcile_interval: Duration::from_secs(300),
        }
    }

    /// Reports `interval` as the reconciliation interval.
    pub fn with_reconcile_interval(mut self, interval: Duration) -> Self {
        self.reconcile_interval = interval;
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    fn urls(&self) -> WebhookUrls<'_> {
        WebhookUrls {
            keys: &self.keys,
            public_url: &self.public_url,
        }
    }

    /// The integration's id and markers, or `404 integration_not_found` — also when it
    /// belongs to a tenant `scope` may not see, so another tenant's ids reveal nothing. Every
    /// `/integrations/{id}/…` read passes through here.
    pub(crate) async fn resolve(
        &self,
        scope: &Scope,
        raw: &str,
    ) -> Result<(IntegrationId, Markers), ApiError> {
        let id: IntegrationId = raw.parse().map_err(|_| not_found())?;
        let (tenant, markers) = integrations::markers(&self.store, id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        if !scope.allows(&tenant) {
            return Err(not_found());
        }
        Ok((id, markers))
    }

    /// `GET /api/v1/integrations`: every integration `scope` may see, oldest first.
    pub async fn integrations(&self, scope: &Scope) -> Result<IntegrationList, ApiError> {
        let items = integrations::list(&self.store, &self.urls(), scope.tenant())
            .await
            .map_err(internal)?;
        Ok(IntegrationList { items })
    }

    /// `GET /api/v1/integrations/{id}`.
    pub async fn integration(&self, scope: &Scope, raw_id: &str) -> Result<Integration, ApiError> {
        let (id, _) = self.resolve(scope, raw_id).await?;
        integrations::get(&self.store, &self.urls(), id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)
    }

    /// `GET /api/v1/integrations/{id}/deals?…`: filters, `limit` and `cursor` from `query`.
    pub async fn deal_page(
        &self,
        scope: &Scope,
        raw_id: &str,
        query: Option<&str>,
    ) -> Result<DealPage, ApiError> {
        let allowed: Vec<&str> = ["limit", "cursor"]
            .iter()
            .chain(DEAL_FILTERS)
            .copied()
            .collect();
        let params = Params::parse(query, &allowed)?;
        let (limit, cursor, filter) = (
            params.limit()?,
            params.deal_cursor()?,
            params.deal_filter()?,
        );
        let (id, markers) = self.resolve(scope, raw_id).await?;
        let page = deals::page(&self.store, id, markers, &filter, cursor, limit)
            .await
            .map_err(internal)?;
        Ok(DealPage {
            items: page.items,
            next_cursor: page.next.map(|c| c.encode()),
        })
    }

    /// `GET /api/v1/integrations/{id}/deals/{order_id}`: the deal with its stage history.
    pub async fn deal(
        &self,
        scope: &Scope,
        raw_id: &str,
        raw_order_id: &str,
        query: Option<&str>,
    ) -> Result<DealView, ApiError> {
        Params::parse(query, &[])?;
        let (id, markers) = self.resolve(scope, raw_id).await?;
        let order_id = order_id(raw_order_id)?;
        deals::one(&self.store, id, markers, order_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::not_found("deal_not_found", "This integration has no such deal.")
            })
    }

    /// `GET /api/v1/integrations/{id}/sync`: the history cursor, reconciliation and the
    /// current or last historical load.
    pub async fn sync(
        &self,
        scope: &Scope,
        raw_id: &str,
        query: Option<&str>,
    ) -> Result<SyncView, ApiError> {
        Params::parse(query, &[])?;
        let (id, _) = self.resolve(scope, raw_id).await?;
        cockpit::sync(&self.store, id, self.reconcile_interval.as_secs())
            .await
            .map_err(internal)
    }

    /// `GET /api/v1/integrations/{id}/deals/{order_id}/trace`: the order's sync log, oldest
    /// first (also for an order that never became a deal: a dead letter, a missing order).
    pub async fn trace(
        &self,
        scope: &Scope,
        raw_id: &str,
        raw_order_id: &str,
        query: Option<&str>,
    ) -> Result<Vec<TraceItem>, ApiError> {
        Params::parse(query, &[])?;
        let (id, _) = self.resolve(scope, raw_id).await?;
        let order_id = order_id(raw_order_id)?;
        cockpit::trace(&self.store, id, order_id)
            .await
            .map_err(internal)
    }

    /// `GET /api/v1/integrations/{id}/dead-letters`: what could not be processed, newest first.
    pub async fn dead_letters(
        &self,
        scope: &Scope,
        raw_id: &str,
        query: Option<&str>,
    ) -> Result<Vec<DeadLetterView>, ApiError> {
        Params::parse(query, &[])?;
        let (id, _) = self.resolve(scope, raw_id).await?;
        cockpit::dead_letters(&self.store, id)
            .await
            .map_err(internal)
    }

    /// The deals page's charts: deals created per UTC day by outcome since `from`, and deals
    /// per current stage (code, count). Not an API route; the pages call it.
    pub async fn charts(
        &self,
        scope: &Scope,
        raw_id: &str,
        from: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<charts::DayCount>, Vec<(String, u64)>), ApiError> {
        let (id, _) = self.resolve(scope, raw_id).await?;
        let per_day = charts::created_per_day(&self.store, id, from)
            .await
            .map_err(internal)?;
        let per_stage = charts::per_stage(&self.store, id).await.map_err(internal)?;
        Ok((per_day, per_stage))
    }

    /// `GET /api/v1/integrations/{id}/funnels`: the funnels of the current marker.
    pub async fn funnels(
        &self,
        scope: &Scope,
        raw_id: &str,
        query: Option<&str>,
    ) -> Result<Vec<FunnelView>, ApiError> {
        Params::parse(query, &[])?;
        let (id, markers) = self.resolve(scope, raw_id).await?;
        let mapping = integrations::mapping(&self.store, id)
            .await
            .map_err(internal)?;
        funnels::list(&self.store, id, markers, &mapping)
            .await
            .map_err(internal)
    }

    /// `GET /api/v1/integrations/{id}/stage-mapping`: every status of the account with its
    /// default and effective outcome, in funnel order.
    pub async fn stage_mapping(
        &self,
        scope: &Scope,
        raw_id: &str,
        query: Option<&str>,
    ) -> Result<StageMapping, ApiError> {
        Params::parse(query, &[])?;
        let (id, _) = self.resolve(scope, raw_id).await?;
        let mapping = integrations::mapping(&self.store, id)
            .await
            .map_err(internal)?;
        funnels::stage_mapping(&self.store, id, &mapping)
            .await
            .map_err(internal)
    }

    /// `GET /api/v1/integrations/{id}/contacts?limit=&cursor=`.
    pub(crate) async fn contact_page(
        &self,
        scope: &Scope,
        raw_id: &str,
        query: Option<&str>,
    ) -> Result<ContactPage, ApiError> {
        let params = Params::parse(query, &["limit", "cursor"])?;
        let (limit, cursor) = (params.limit()?, params.contact_cursor()?);
        let (id, _) = self.resolve(scope, raw_id).await?;
        let (items, next) = people::contacts(&self.store, id, cursor.as_ref(), limit)
            .await
            .map_err(internal)?;
        Ok(ContactPage {
            items,
            next_cursor: next.map(|c| c.encode()),
        })
    }

    /// `GET /api/v1/integrations/{id}/managers`.
    pub(crate) async fn managers(
        &self,
        scope: &Scope,
        raw_id: &str,
        query: Option<&str>,
    ) -> Result<ManagerList, ApiError> {
        Params::parse(query, &[])?;
        let (id, _) = self.resolve(scope, raw_id).await?;
        let items = people::managers(&self.store, id).await.map_err(internal)?;
        Ok(ManagerList { items })
    }
}
