//! How the worker's RetailCRM and bus work can fail, and what the worker does about it
//! (STYLE "Errors": every failure is classified before an offset moves).
//!
//! - [`Failure::Transient`]: a timeout, a 5xx, RetailCRM's 503 limit, an unexpected answer no
//!   single order explains (unreadable reference data, a refused request), or a transient bus
//!   error. The work is put back (its records stay held) and the
//!   account backs off exponentially (`backoff`), this account only; after `unhealthy_after`
//!   failures in a row its health is reported (`rate_limited`, `unreachable`; never for our
//!   own bus, which is no fault of the account). The first success ends the streak.
//! - [`Failure::Park`]: the key is rejected, access is denied, the account is gone, or the
//!   stored key cannot be opened. Nothing is fetched until the integration's settings change
//!   or `parked_retry` passes; orders keep queueing and the health says why.
//! - [`Failure::Fatal`]: a bus failure that is not transient (the dead-letter cap reached, a
//!   topic gone), or a lost list-call task: the worker ends, tells the intake, and the
//!   enricher stops loudly.
//!
//! An answer that one order's data can cause ([`is_unreadable`]) is none of these: the caller
//! isolates that order (halving a batch, or skipping a load page) and dead-letters it, so one
//! poison order costs itself and nobody else.

use dealflow_shared::bus::BusError;
use dealflow_shared::events::HealthStatus;
use dealflow_shared::retailcrm::{RetailCrmError, Unavailability};

use crate::error::EnricherError;

/// How a step of the worker (a batch, a lookup, a sync step) failed, which decides what the
/// worker does next.
#[derive(Debug)]
pub(super) enum Failure {
    /// Worth retrying after a pause. `health` is what to report if it keeps happening
    /// (`None` for our own bus, which is no fault of the account).
    Transient {
        health: Option<HealthStatus>,
        message: String,
    },
    /// The account cannot be served until its settings change (key rejected, access denied,
    /// no such account): its work is parked.
    Park {
        health: HealthStatus,
        message: String,
    },
    /// The enricher must stop.
    Fatal(EnricherError),
}

impl From<RetailCrmError> for Failure {
    fn from(error: RetailCrmError) -> Self {
        let message = error.to_string();
        match error {
            RetailCrmError::AuthFailed { .. } => Failure::Park {
                health: HealthStatus::AuthFailed,
                message,
            },
            RetailCrmError::AccessDenied { .. } => Failure::Park {
                health: HealthStatus::AccessDenied,
                message,
            },
            RetailCrmError::AccountNotFound { .. } => Failure::Park {
                health: HealthStatus::Unreachable,
                message,
            },
            // Not the account's fault: this member was fenced from it mid-call (DESIGN §7.4).
            RetailCrmError::Unavailable {
                reason: Unavailability::Fenced,
                ..
            } => Failure::Transient {
                health: None,
                message,
            },
            RetailCrmError::RateLimited { .. } => Failure::Transient {
                health: Some(HealthStatus::RateLimited),
                message,
            },
            e if e.is_transient() => Failure::Transient {
                health: Some(HealthStatus::Unreachable),
                message,
            },
            // An unreadable reference or a refused request is an account-wide problem that
            // no single order causes: retry it later rather than dead-letter everything.
            _ => {
                tracing::error!(error = %message, "RetailCRM answered unexpectedly; retrying later");
                Failure::Transient {
                    health: Some(HealthStatus::Unreachable),
                    message,
                }
            }
        }
    }
}

/// A bus failure: transient ones are retried, anything else stops the enricher.
pub(super) fn bus_failure(error: BusError) -> Failure {
    if error.is_transient() {
        Failure::Transient {
            health: None,
            message: error.to_string(),
        }
    } else {
        Failure::Fatal(error.into())
    }
}

/// An error that one order's data can cause: isolate the order rather than retry.
pub(super) fn is_unreadable(error: &RetailCrmError) -> bool {
    matches!(
        error,
        RetailCrmError::InvalidResponse { .. }
            | RetailCrmError::BadRequest { .. }
            | RetailCrmError::InvalidRequest(_)
    )
}

#[cfg(test)]
mod tests {
    use dealflow_shared::retailcrm::Endpoint;

    use super::*;

    fn classify(error: RetailCrmError) -> (&'static str, Option<HealthStatus>) {
        match Failure::from(error) {
            Failure::Park { health, .. } => ("park", Some(health)),
            Failure::Transient { health, .. } => ("retry", health),
            Failure::Fatal(_) => ("fatal", None),
        }
    }

    #[test]
    fn rejected_keys_park_and_outages_retry() {
        let endpoint = || Endpoint::get("/api/v5/orders");
        let auth = RetailCrmError::AuthFailed {
            endpoint: endpoint(),
            message: "Wrong \"apiKey\" value.".into(),
        };
        assert_eq!(classify(auth), ("park", Some(HealthStatus::AuthFailed)));
        let denied = RetailCrmError::AccessDenied {
            endpoint: endpoint(),
            message: "Access denied.".into(),
        };
        assert_eq!(classify(denied), ("park", Some(HealthStatus::AccessDenied)));
        let gone = RetailCrmError::AccountNotFound {
            endpoint: endpoint(),
            detail: "Account does not exist.".into(),
        };
        assert_eq!(classify(gone), ("park", Some(HealthStatus::Unreachable)));
        let limited = RetailCrmError::RateLimited {
            endpoint: endpoint(),
            attempts: 5,
        };
        assert_eq!(
            classify(limited),
            ("retry", Some(HealthStatus::RateLimited))
        );
        let down = RetailCrmError::Unavailable {
            endpoint: endpoint(),
            attempts: 5,
            reason: Unavailability::Timeout,
        };
        assert_eq!(classify(down), ("retry", Some(HealthStatus::Unreachable)));
        let fenced = RetailCrmError::Unavailable {
            endpoint: endpoint(),
            attempts: 1,
            reason: Unavailability::Fenced,
        };
        assert_eq!(classify(fenced), ("retry", None), "no fault of the account");
    }

    #[test]
    fn only_answers_one_order_can_cause_are_isolated() {
        let unreadable = RetailCrmError::InvalidResponse {
            endpoint: Endpoint::get("/api/v5/orders"),
            path: "orders[3].totalSumm".into(),
            message: "invalid value".into(),
        };
        assert!(is_unreadable(&unreadable));
        assert!(is_unreadable(&RetailCrmError::InvalidRequest(
            "too many ids".into()
        )));
        let limited = RetailCrmError::RateLimited {
            endpoint: Endpoint::get("/api/v5/orders"),
            attempts: 1,
        };
        assert!(!is_unreadable(&limited));
    }

    #[test]
    fn bus_failures_retry_unless_fatal() {
        let timeout = BusError::Timeout {
            operation: "publish".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert!(matches!(
            bus_failure(timeout),
            Failure::Transient { health: None, .. }
        ));
        let cap = BusError::DeadLetterCapReached {
            count: 100,
            window: std::time::Duration::from_secs(600),
        };
        assert!(matches!(bus_failure(cap), Failure::Fatal(_)));
    }
}
