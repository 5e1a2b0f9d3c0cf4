//! The notification outbox: which delivery records an evaluation or a transition writes,
//! one per channel, in the same transaction as the alert change.
//!
//! Each record carries a `dedup_key` that is unique per alert, event, severity and
//! channel, so two evaluators racing on the same alert insert it once (`INSERT … ON
//! CONFLICT DO NOTHING`). Acknowledged and resolved events go only to alerts whose firing
//! was notified: nobody needs to hear that an alert they never saw was closed.

use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertStatus, AlertTransition};
use super::ids::AlertId;
use super::rule::Severity;
use super::state::{Decision, Evaluation};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationEvent {
    Firing,
    Acknowledged,
    Resolved,
}

impl NotificationEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::Firing => "firing",
            NotificationEvent::Acknowledged => "acknowledged",
            NotificationEvent::Resolved => "resolved",
        }
    }
}

/// One durable delivery to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub dedup_key: String,
    pub alert_id: AlertId,
    pub channel: String,
    pub event: NotificationEvent,
    pub severity: Severity,
    pub created_at: Timestamp,
}

fn entries(
    channels: &[String],
    alert: &Alert,
    event: NotificationEvent,
    at: Timestamp,
) -> Vec<OutboxEntry> {
    channels
        .iter()
        .map(|channel| OutboxEntry {
            dedup_key: match event {
                NotificationEvent::Firing => {
                    format!(
                        "{}:{}:{}:{channel}",
                        alert.id,
                        event.as_str(),
                        alert.severity
                    )
                }
                _ => format!("{}:{}:{channel}", alert.id, event.as_str()),
            },
            alert_id: alert.id.clone(),
            channel: channel.clone(),
            event,
            severity: alert.severity,
            created_at: at,
        })
        .collect()
}

/// The deliveries an evaluation enqueues: firing when its decision notifies, resolved when
/// it auto-resolved a notified alert.
pub fn for_evaluation(
    channels: &[String],
    evaluation: &Evaluation,
    now: Timestamp,
) -> Vec<OutboxEntry> {
    let Some(write) = &evaluation.alert else {
        return Vec::new();
    };
    let alert = write.alert();
    let event = match &evaluation.decision {
        Decision::Fired { notify, .. } | Decision::Updated { notify, .. } if notify.notifies() => {
            NotificationEvent::Firing
        }
        Decision::AutoResolved { .. } if alert.notified => NotificationEvent::Resolved,
        _ => return Vec::new(),
    };
    entries(channels, alert, event, now)
}

/// The deliveries a person's transition enqueues (`alert` is the alert after it).
pub fn for_transition(
    channels: &[String],
    alert: &Alert,
    transition: &AlertTransition,
) -> Vec<OutboxEntry> {
    if !alert.notified {
        return Vec::new();
    }
    let event = match transition.to {
        AlertStatus::Acknowledged => NotificationEvent::Acknowledged,
        AlertStatus::Resolved => NotificationEvent::Resolved,
        AlertStatus::Active | AlertStatus::Suppressed => return Vec::new(),
    };
    entries(channels, alert, event, transition.at)
}
