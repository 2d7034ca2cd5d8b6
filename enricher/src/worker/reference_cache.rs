//! The account's reference data as its worker keeps it: loaded when the worker starts and
//! again after `reference_ttl`, the dictionaries reloaded once when a batch names a status or
//! site they lack, managers resolved through `/users/{id}` and cached (`crate::reference`);
//! and the funnel stages last published from it. Everything a batch names is resolved
//! before it is mapped ([`Worker::resolve_reference`]), so mapping (`mapped`) never calls
//! RetailCRM.

use chrono::Utc;
use dealflow_shared::retailcrm::RetailCrmError;
use dealflow_shared::retailcrm::models::Order;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::Worker;
use super::batch::client;
use super::failure::Failure;
use super::mapped::{Mapped, map_fetched};
use crate::crm::Crm;
use crate::mapping::StageMemory;
use crate::metrics::EnricherMetrics;
use crate::reference::{Reference, UserListing};

/// One account's cached reference data and the funnel stages published from it.
#[derive(Debug, Default)]
pub(super) struct ReferenceCache {
    data: Option<Reference>,
    /// Whether the key may list users (remembered once refused).
    user_listing: UserListing,
    /// The funnel stages last published.
    stages: StageMemory,
    /// The reference load whose stages were last published (nothing to compare until the
    /// reference data is loaded again).
    stages_synced: Option<Instant>,
}

impl ReferenceCache {
    /// The reference data, once loaded.
    pub(super) fn get(&self) -> Option<&Reference> {
        self.data.as_ref()
    }

    /// Whether the data was loaded less than `ttl` ago.
    pub(super) fn is_fresh(&self, ttl: Duration) -> bool {
        self.data
            .as_ref()
            .is_some_and(|r| r.loaded_at.elapsed() < ttl)
    }

    /// Forgets everything (the account's URL changed: it may be another account).
    pub(super) fn forget(&mut self) {
        self.data = None;
        self.stages = StageMemory::default();
        self.stages_synced = None;
    }

    /// Loads the reference data anew.
    async fn load(&mut self, crm: &mut Crm) -> Result<(), RetailCrmError> {
        self.data = Some(Reference::load(crm, &mut self.user_listing).await?);
        Ok(())
    }

    /// See [`Worker::resolve_reference`].
    async fn resolve(
        &mut self,
        crm: &mut Crm,
        orders: &[Order],
        started: Instant,
        metrics: &EnricherMetrics,
    ) -> Result<(), RetailCrmError> {
        if self.data.is_none() {
            self.load(crm).await?;
        }
        let reference = self.data.as_mut().expect("loaded above");
        if orders.iter().any(|o| !reference.knows(o)) && reference.loaded_at < started {
            let reload = Instant::now();
            reference.reload_dictionaries(crm).await?;
            metrics.stage("reference", reload.elapsed());
        }
        let managers = Instant::now();
        reference.resolve_managers(crm, orders).await?;
        metrics.stage("managers", managers.elapsed());
        Ok(())
    }

    /// Remembers the funnel stages of `mapped` once its events are acknowledged.
    pub(super) fn remember_stages(&mut self, mapped: &Mapped) {
        self.stages.remember(&mapped.new_stages);
        self.stages_synced = Some(mapped.loaded_at);
    }
}

impl Worker {
    /// Loads the account's reference data when the worker starts (or its URL changed), before
    /// any order asks for it: the first batch of a burst then goes out at once, and a key
    /// that no longer works shows in the integration's health before the first webhook.
    pub(super) async fn preload_reference(
        &mut self,
        abort: &CancellationToken,
    ) -> Result<(), Failure> {
        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => return Ok(()),
            result = self.ensure_reference() => result,
        };
        match result {
            Ok(()) => {
                self.succeeded();
                Ok(())
            }
            Err(failure) => self.react_to_failure(failure),
        }
    }

    /// Loads the reference data unless it is fresh.
    pub(super) async fn ensure_reference(&mut self) -> Result<(), Failure> {
        if !self.reference.is_fresh(self.context.settings.reference_ttl) {
            let started = Instant::now();
            let crm = client(&mut self.crm)?;
            self.reference.load(crm).await?;
            self.context.metrics.stage("reference", started.elapsed());
        }
        Ok(())
    }

    /// Makes sure the reference data names everything `orders` refer to, before they are
    /// mapped: loaded (if it never was), the dictionaries reloaded once when an order names a
    /// status or site that the data loaded before `started` does not know (a status created
    /// since), and every manager resolved through `/users/{id}` (cached per account). These
    /// are the only RetailCRM calls mapping needs; [`Worker::map_orders`] makes none.
    pub(super) async fn resolve_reference(
        &mut self,
        orders: &[Order],
        started: Instant,
    ) -> Result<(), Failure> {
        let crm = client(&mut self.crm)?;
        self.reference
            .resolve(crm, orders, started, &self.context.metrics)
            .await?;
        Ok(())
    }

    /// Maps fetched orders (and deleted ones) into events with the reference data as it is
    /// (no RetailCRM call): call after [`Worker::resolve_reference`]; publish, then
    /// [`ReferenceCache::remember_stages`].
    pub(super) fn map_orders(&self, orders: &[Order], deleted: &[(u64, Option<u64>)]) -> Mapped {
        let started = Instant::now();
        let cache = &self.reference;
        let reference = cache
            .get()
            .expect("resolve_reference loads the reference data");
        let mapped = map_fetched(
            reference,
            &cache.stages,
            cache.stages_synced,
            orders,
            deleted,
            Utc::now(),
        );
        self.context.metrics.stage("map", started.elapsed());
        mapped
    }
}
