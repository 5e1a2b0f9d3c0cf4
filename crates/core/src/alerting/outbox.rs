//! The notification outbox: which delivery records an evaluation or a transition writes,
//! one per channel, in the same transaction as the alert change.
//!
//! Each record carries a `dedup_key` that is unique per alert, event, severity and
//! channel, so two evaluators racing on the same alert insert it once (`INSERT … ON
//! CONFLICT DO NOTHING`). Acknowledged and resolved events go only to alerts whose firing
//! was notified: nobody needs to hear that an alert they never saw was closed.
//!
//! Each record also carries the [`EventFacts`]: what the alert said at the event. The
//! alert itself keeps changing (an update, an acknowledgement, a resolution) before the
//! notification goes out; delivery renders the stored alert as it stood at the event
//! from them ([`EventFacts::as_of_event`]).

use super::alert::{Alert, AlertStatus, AlertTransition, Trigger};
use super::ids::AlertId;
use super::limits::HoldReason;
use super::rule::Severity;
use super::state::{Decision, Evaluation};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// What an alert said when a notification's event happened: every part of it that can
/// change afterwards. Its identity (id, rule, model, version, dataset, metric, first
/// seen) cannot, so it is not repeated; the stored alert supplies it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFacts {
    pub status: AlertStatus,
    pub severity: Severity,
    pub message: String,
    pub value: f64,
    pub worst_value: f64,
    pub trigger: Trigger,
    pub last_seen: Timestamp,
    pub occurrences: u32,
    pub notified: bool,
    pub hold_reason: Option<HoldReason>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolution_notes: Option<String>,
    pub label_coverage: Option<f64>,
}

impl EventFacts {
    /// The facts of `alert` as it is now.
    pub fn of(alert: &Alert) -> EventFacts {
        EventFacts {
            status: alert.status,
            severity: alert.severity,
            message: alert.message.clone(),
            value: alert.value,
            worst_value: alert.worst_value,
            trigger: alert.trigger.clone(),
            last_seen: alert.last_seen,
            occurrences: alert.occurrences,
            notified: alert.notified,
            hold_reason: alert.hold_reason.clone(),
            acknowledged_by: alert.acknowledged_by.clone(),
            acknowledged_at: alert.acknowledged_at,
            resolved_by: alert.resolved_by.clone(),
            resolved_at: alert.resolved_at,
            resolution_notes: alert.resolution_notes.clone(),
            label_coverage: alert.label_coverage,
        }
    }

    /// `stored` (the alert as it is now) as it stood at the event: its identity with
    /// these facts.
    pub fn as_of_event(&self, stored: &Alert) -> Alert {
        let EventFacts {
            status,
            severity,
            message,
            value,
            worst_value,
            trigger,
            last_seen,
            occurrences,
            notified,
            hold_reason,
            acknowledged_by,
            acknowledged_at,
            resolved_by,
            resolved_at,
            resolution_notes,
            label_coverage,
        } = self.clone();
        Alert {
            id: stored.id.clone(),
            rule_id: stored.rule_id.clone(),
            rule_name: stored.rule_name.clone(),
            model: stored.model.clone(),
            version: stored.version.clone(),
            dataset: stored.dataset.clone(),
            metric: stored.metric.clone(),
            first_seen: stored.first_seen,
            status,
            severity,
            message,
            value,
            worst_value,
            trigger,
            last_seen,
            occurrences,
            notified,
            hold_reason,
            acknowledged_by,
            acknowledged_at,
            resolved_by,
            resolved_at,
            resolution_notes,
            label_coverage,
            revision: stored.revision,
        }
    }
}

/// One durable delivery to do.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub dedup_key: String,
    pub alert_id: AlertId,
    pub channel: String,
    pub event: NotificationEvent,
    pub severity: Severity,
    pub created_at: Timestamp,
    /// What the alert said at the event.
    pub facts: EventFacts,
}

/// The deliveries of `event` of `alert` at `at`, one per channel. Evaluations and
/// transitions choose the event ([`for_evaluation`], [`for_transition`]); tools and tests
/// that write rows themselves call this.
pub fn entries(
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
            facts: EventFacts::of(alert),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::summary::tests::alert;

    #[test]
    fn facts_restore_the_alert_as_it_stood_at_the_event() {
        let fired = alert(7, 1_000);
        let facts = EventFacts::of(&fired);
        let mut later = fired.clone();
        later.value = 0.25;
        later.worst_value = 0.25;
        later.occurrences = 9;
        later.severity = Severity::Critical;
        later.status = AlertStatus::Resolved;
        later.resolved_by = Some("bob".into());
        later.resolved_at = Some(fired.first_seen);
        assert_eq!(facts.as_of_event(&later), fired);
        assert_eq!(EventFacts::of(&later).as_of_event(&fired), later);
    }
}
