//! Lifecycle: the transitions people make — acknowledge and resolve — each returning the
//! new alert and the history record, or a typed error for an impossible transition.

use super::alert::{Alert, AlertStatus, AlertTransition};
use super::ids::AlertId;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("no alert has id {0}")]
    UnknownAlert(AlertId),
    #[error("alert {id} is already resolved (by {by} at {at})")]
    AlreadyResolved {
        id: AlertId,
        by: String,
        at: Timestamp,
    },
    #[error("alert {id} is already acknowledged (by {by} at {at})")]
    AlreadyAcknowledged {
        id: AlertId,
        by: String,
        at: Timestamp,
    },
    #[error("alert {0} was suppressed and never notified, so there is nothing to acknowledge; resolve it instead")]
    SuppressedNotAcknowledgeable(AlertId),
    #[error("who is {action} alert {id}? `by` must not be empty")]
    MissingActor { id: AlertId, action: &'static str },
}

fn actor(alert: &Alert, by: &str, action: &'static str) -> Result<String, LifecycleError> {
    let by = by.trim();
    if by.is_empty() {
        return Err(LifecycleError::MissingActor {
            id: alert.id.clone(),
            action,
        });
    }
    Ok(by.to_owned())
}

fn refuse_if_closed(alert: &Alert) -> Result<(), LifecycleError> {
    match (alert.resolved_at, &alert.resolved_by) {
        (Some(at), by) => Err(LifecycleError::AlreadyResolved {
            id: alert.id.clone(),
            by: by.clone().unwrap_or_default(),
            at,
        }),
        (None, _) => Ok(()),
    }
}

/// `active → acknowledged`. Acknowledging stops re-notification unless the severity rises.
pub fn acknowledge(
    alert: &Alert,
    by: &str,
    now: Timestamp,
) -> Result<(Alert, AlertTransition), LifecycleError> {
    let by = actor(alert, by, "acknowledging")?;
    refuse_if_closed(alert)?;
    match alert.status {
        AlertStatus::Active => {}
        AlertStatus::Acknowledged => {
            return Err(LifecycleError::AlreadyAcknowledged {
                id: alert.id.clone(),
                by: alert.acknowledged_by.clone().unwrap_or_default(),
                at: alert.acknowledged_at.unwrap_or(now),
            })
        }
        AlertStatus::Suppressed => {
            return Err(LifecycleError::SuppressedNotAcknowledgeable(
                alert.id.clone(),
            ))
        }
        // An alert resolved without `resolved_at` cannot be built here, but answer sanely.
        AlertStatus::Resolved => {
            return Err(LifecycleError::AlreadyResolved {
                id: alert.id.clone(),
                by: alert.resolved_by.clone().unwrap_or_default(),
                at: now,
            })
        }
    }
    let mut next = alert.clone();
    next.status = AlertStatus::Acknowledged;
    next.acknowledged_by = Some(by.clone());
    next.acknowledged_at = Some(now);
    let transition = AlertTransition {
        alert_id: alert.id.clone(),
        at: now,
        by,
        from: Some(alert.status),
        to: next.status,
        notes: None,
    };
    Ok((next, transition))
}

/// `active | acknowledged → resolved`. Resolving an open suppressed alert closes it but
/// keeps its `suppressed` status, so the summary still counts what the limits stopped.
pub fn resolve(
    alert: &Alert,
    by: &str,
    notes: Option<&str>,
    now: Timestamp,
) -> Result<(Alert, AlertTransition), LifecycleError> {
    let by = actor(alert, by, "resolving")?;
    refuse_if_closed(alert)?;
    let notes = notes
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let mut next = alert.clone();
    if alert.status != AlertStatus::Suppressed {
        next.status = AlertStatus::Resolved;
    }
    next.resolved_by = Some(by.clone());
    next.resolved_at = Some(now);
    next.resolution_notes = notes.clone();
    let transition = AlertTransition {
        alert_id: alert.id.clone(),
        at: now,
        by,
        from: Some(alert.status),
        to: next.status,
        notes,
    };
    Ok((next, transition))
}
