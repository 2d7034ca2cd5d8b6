//! The account's health and parking: whether the worker is ready, backing off after a
//! transient failure, or parked after its key was rejected (see `failure` for which is which);
//! the health changes it publishes on the `health` topic (once per change, `ok` again on the
//! first success after a failure). [`AccountHealth`] owns that state; the worker publishes
//! its pending change (`flush_health`) and follows the integration's settings
//! (`follow_settings`), where a new key or URL ends parking.

use chrono::Utc;
use dealflow_shared::events::{Event, HealthStatus, IntegrationHealthChanged, IntegrationId};
use tokio::time::Instant;

use super::failure::{Failure, bus_failure};
use super::{CONFIG_CHECK, TICK, Worker};
use crate::metrics::EnricherMetrics;
use crate::settings::EnricherSettings;

/// What the worker may do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mode {
    /// Batches and sync steps run when due.
    Ready,
    /// After a transient failure: nothing is fetched until then.
    BackingOff { until: Instant },
    /// After a rejected key: nothing is fetched until the settings change or then.
    Parked { retry_at: Instant },
}

impl Mode {
    pub(super) fn label(self) -> &'static str {
        match self {
            Mode::Ready => "ready",
            Mode::BackingOff { .. } => "backing_off",
            Mode::Parked { .. } => "parked",
        }
    }
}

/// The account's mode, failure streak and health, and the health change not yet published.
#[derive(Debug)]
pub(super) struct AccountHealth {
    mode: Mode,
    /// Transient failures in a row.
    failures: u32,
    /// The health last queued for publication.
    status: Option<HealthStatus>,
    /// A health change waiting to be published.
    pending: Option<IntegrationHealthChanged>,
    /// For the `account_state` gauge.
    metrics: EnricherMetrics,
}

impl AccountHealth {
    /// A ready account (counted in the `account_state` gauge until [`AccountHealth::ended`]).
    pub(super) fn new(metrics: EnricherMetrics) -> Self {
        let mode = Mode::Ready;
        metrics.account_state(mode.label(), 1);
        Self {
            mode,
            failures: 0,
            status: None,
            pending: None,
            metrics,
        }
    }

    /// What the worker may do now.
    pub(super) fn mode(&self) -> Mode {
        self.mode
    }

    /// Moves to `mode`, keeping the `account_state` gauge in step.
    fn set_mode(&mut self, mode: Mode) {
        if self.mode.label() != mode.label() {
            self.metrics.account_state(self.mode.label(), -1);
            self.metrics.account_state(mode.label(), 1);
        }
        self.mode = mode;
    }

    /// Ready again once a pause or a parking ends.
    pub(super) fn ready_if_due(&mut self, now: Instant) {
        match self.mode {
            Mode::BackingOff { until } if now >= until => self.set_mode(Mode::Ready),
            Mode::Parked { retry_at } if now >= retry_at => self.set_mode(Mode::Ready),
            _ => {}
        }
    }

    /// New settings (a key or URL) end a pause or a parking, and the failure streak.
    pub(super) fn settings_changed(&mut self) {
        if !matches!(self.mode, Mode::Ready) {
            self.failures = 0;
            self.set_mode(Mode::Ready);
        }
    }

    /// The worker ends: it leaves the `account_state` gauge.
    pub(super) fn ended(&self) {
        self.metrics.account_state(self.mode.label(), -1);
    }

    /// A call to RetailCRM went through: the failure streak ends and the health is `ok`.
    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
        self.set(HealthStatus::Ok, None);
    }

    /// Reacts to a failed batch or sync step of `id`: a pause for transient failures (this
    /// account only), parking for a rejected key; fatal failures end the worker.
    pub(super) fn failed(
        &mut self,
        id: IntegrationId,
        settings: &EnricherSettings,
        failure: Failure,
    ) -> Result<(), Failure> {
        match failure {
            Failure::Fatal(error) => Err(Failure::Fatal(error)),
            Failure::Transient { health, message } => {
                self.failures += 1;
                let pause = settings.backoff(self.failures);
                tracing::warn!(
                    integration_id = %id, failures = self.failures,
                    pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    error = %message, "RetailCRM work failed; retrying this account later"
                );
                self.set_mode(Mode::BackingOff {
                    until: Instant::now() + pause,
                });
                if let Some(health) = health
                    && self.failures >= settings.unhealthy_after
                {
                    self.set(health, Some(message));
                }
                Ok(())
            }
            Failure::Park { health, message } => {
                tracing::warn!(integration_id = %id, error = %message, ?health, "account parked until its settings change");
                let retry_at = Instant::now() + settings.parked_retry;
                self.set_mode(Mode::Parked { retry_at });
                self.set(health, Some(message));
                Ok(())
            }
        }
    }

    /// Queues a health change for publication when it differs from the last one.
    fn set(&mut self, status: HealthStatus, message: Option<String>) {
        if self.status == Some(status) {
            return;
        }
        self.status = Some(status);
        self.pending = Some(IntegrationHealthChanged {
            status,
            message,
            checked_at: Utc::now(),
        });
    }

    /// Whether a health change waits to be published.
    pub(super) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }
}

impl Worker {
    /// A call to RetailCRM went through (see [`AccountHealth::succeeded`]).
    pub(super) fn succeeded(&mut self) {
        self.health.succeeded();
    }

    /// Reacts to a failed batch or sync step (see [`AccountHealth::failed`]).
    pub(super) fn react_to_failure(&mut self, failure: Failure) -> Result<(), Failure> {
        self.health.failed(self.id, &self.context.settings, failure)
    }

    /// Publishes a queued health change; a transient bus failure keeps it for the next tick.
    pub(super) async fn flush_health(&mut self) -> Result<(), Failure> {
        let Some(health) = self.health.pending.clone() else {
            return Ok(());
        };
        let (status, message) = (health.status, health.message.clone());
        let event = Event::IntegrationHealthChanged(health);
        match self.context.output.publish(self.id, vec![event]).await {
            Ok(()) => {
                self.health.pending = None;
                // The one line an operator reads for it: which integration, its new health and
                // why (the message never holds a secret).
                let label = serde_json::to_value(status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let reason = message.as_deref().unwrap_or("");
                if status == HealthStatus::Ok {
                    tracing::info!(integration_id = %self.id, health = %label, "integration health changed");
                } else {
                    tracing::warn!(integration_id = %self.id, health = %label, reason, "integration health changed: {reason}");
                }
                self.context.metrics.health_changed(&label);
                Ok(())
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(integration_id = %self.id, %error, "health change not published yet");
                Ok(())
            }
            Err(error) => Err(bus_failure(error)),
        }
    }

    /// Follows the integration's settings: a new key or URL ends parking; a removed or
    /// switched-off integration drops its waiting orders.
    pub(super) fn follow_settings(&mut self) {
        let parked = matches!(self.health.mode(), Mode::Parked { .. });
        self.next_config_check = Instant::now() + if parked { TICK } else { CONFIG_CHECK };
        let Some(current) = self.context.registry.get(self.id).filter(|c| c.active) else {
            let mut dropped = self.live.waiting.clear();
            dropped.append(&mut self.unlisted.orders.clear());
            if !dropped.is_empty() {
                tracing::info!(integration_id = %self.id, records = dropped.len(), "integration removed or switched off; its waiting orders are dropped");
                self.context
                    .metrics
                    .skipped("integration_gone", dropped.len());
            }
            self.finish(dropped);
            return;
        };
        let url_changed = current.crm_url != self.config.crm_url;
        let key_changed = current.api_key_sealed != self.config.api_key_sealed;
        self.config = current;
        if !(url_changed || key_changed) {
            return;
        }
        tracing::info!(integration_id = %self.id, url_changed, key_changed, "integration settings changed");
        self.crm = self.build_client();
        if url_changed {
            self.reference.forget();
        }
        self.health.settings_changed();
    }
}
