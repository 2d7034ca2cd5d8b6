//! The account's health and parking: whether the worker is ready, backing off after a
//! transient failure, or parked after its key was rejected (see `failure` for which is which);
//! the health changes it publishes on the `health` topic (once per change, `ok` again on the
//! first success after a failure); and following the integration's settings, where a new key
//! or URL ends parking.

use chrono::Utc;
use dealflow_shared::events::{Event, HealthStatus, IntegrationHealthChanged};
use tokio::time::Instant;

use super::failure::{Failure, bus_failure};
use super::{CONFIG_CHECK, TICK, Worker};
use crate::mapping::StageMemory;

/// What the worker may do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mode {
    Ready,
    BackingOff { until: Instant },
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

impl Worker {
    /// Moves to `mode`, keeping the `account_state` gauge in step.
    pub(super) fn set_mode(&mut self, mode: Mode) {
        if self.mode.label() != mode.label() {
            self.context.metrics.account_state(self.mode.label(), -1);
            self.context.metrics.account_state(mode.label(), 1);
        }
        self.mode = mode;
    }

    /// A call to RetailCRM went through: the failure streak ends and the health is `ok`.
    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
        self.set_health(HealthStatus::Ok, None);
    }

    /// Reacts to a failed batch or sync step: a pause for transient failures (this account
    /// only), parking for a rejected key; fatal failures end the worker.
    pub(super) fn react_to_failure(&mut self, failure: Failure) -> Result<(), Failure> {
        match failure {
            Failure::Fatal(error) => Err(Failure::Fatal(error)),
            Failure::Transient { health, message } => {
                self.failures += 1;
                let pause = self.context.settings.backoff(self.failures);
                tracing::warn!(
                    integration_id = %self.id, failures = self.failures,
                    pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    error = %message, "RetailCRM work failed; retrying this account later"
                );
                self.set_mode(Mode::BackingOff {
                    until: Instant::now() + pause,
                });
                if let Some(health) = health
                    && self.failures >= self.context.settings.unhealthy_after
                {
                    self.set_health(health, Some(message));
                }
                Ok(())
            }
            Failure::Park { health, message } => {
                tracing::warn!(integration_id = %self.id, error = %message, ?health, "account parked until its settings change");
                let retry_at = Instant::now() + self.context.settings.parked_retry;
                self.set_mode(Mode::Parked { retry_at });
                self.set_health(health, Some(message));
                Ok(())
            }
        }
    }

    /// Queues a health change for publication when it differs from the last one.
    pub(super) fn set_health(&mut self, status: HealthStatus, message: Option<String>) {
        if self.health == Some(status) {
            return;
        }
        self.health = Some(status);
        self.pending_health = Some(IntegrationHealthChanged {
            status,
            message,
            checked_at: Utc::now(),
        });
    }

    /// Publishes a queued health change; a transient bus failure keeps it for the next tick.
    pub(super) async fn flush_health(&mut self) -> Result<(), Failure> {
        let Some(health) = self.pending_health.clone() else {
            return Ok(());
        };
        let event = Event::IntegrationHealthChanged(health);
        match self.context.output.publish(self.id, vec![event]).await {
            Ok(()) => {
                self.pending_health = None;
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
        let parked = matches!(self.mode, Mode::Parked { .. });
        self.next_config_check = Instant::now() + if parked { TICK } else { CONFIG_CHECK };
        let Some(current) = self.context.registry.get(self.id).filter(|c| c.active) else {
            let mut dropped = self.waiting.clear();
            dropped.append(&mut self.unlisted.clear());
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
            self.reference = None;
            self.stages = StageMemory::default();
            self.stages_synced = None;
        }
        if !matches!(self.mode, Mode::Ready) {
            self.failures = 0;
            self.set_mode(Mode::Ready);
        }
    }
}
