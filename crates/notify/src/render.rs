//! From an outbox row to the alert a notification speaks of: the stored alert as it stood
//! at the row's event ([`EventFacts::as_of_event`]), or a [`RenderError`] saying why there
//! is none. Nothing is guessed: a row that cannot be rendered is failed with the reason,
//! never sent with other content.

use modelwatch_core::alerting::{Alert, AlertId};
use modelwatch_store::alerts::OutboxPayload;

/// Why a notification cannot be rendered. Permanent: the row is failed with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("alert {0} no longer exists")]
    AlertGone(AlertId),
    /// The row's `payload` column holds neither facts nor an alert snapshot.
    #[error("cannot render: {0}")]
    Unreadable(String),
    /// A row of the previous format whose snapshot is of another alert than the row's.
    #[error("cannot render: the row's alert snapshot is of {found}, not {expected}")]
    SnapshotOfAnotherAlert { expected: AlertId, found: AlertId },
    #[error("cannot render the {channel} body: {error}")]
    Body {
        channel: &'static str,
        error: String,
    },
}

/// The alert as it stood at the event of a row: the stored alert with the row's facts, or
/// for a row written before facts, the snapshot it carries.
pub fn alert_as_of_event(payload: &OutboxPayload, stored: &Alert) -> Result<Alert, RenderError> {
    match payload {
        OutboxPayload::Facts(facts) => Ok(facts.as_of_event(stored)),
        OutboxPayload::Snapshot(snapshot) if snapshot.id == stored.id => Ok((**snapshot).clone()),
        OutboxPayload::Snapshot(snapshot) => Err(RenderError::SnapshotOfAnotherAlert {
            expected: stored.id.clone(),
            found: snapshot.id.clone(),
        }),
        OutboxPayload::Unreadable { error, .. } => Err(RenderError::Unreadable(error.clone())),
    }
}

/// `value` as JSON bytes, for `channel`'s body.
pub(crate) fn body_bytes(
    channel: &'static str,
    value: &impl serde::Serialize,
) -> Result<Vec<u8>, RenderError> {
    serde_json::to_vec(value).map_err(|e| RenderError::Body {
        channel,
        error: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::alert;
    use modelwatch_core::alerting::{AlertStatus, EventFacts};

    fn facts(alert: &Alert) -> OutboxPayload {
        OutboxPayload::Facts(EventFacts::of(alert))
    }

    #[test]
    fn facts_render_the_alert_as_it_stood_and_unreadable_rows_say_why() {
        let fired = alert();
        let mut now = fired.clone();
        now.status = AlertStatus::Resolved;
        now.value = 1.0;
        assert_eq!(alert_as_of_event(&facts(&fired), &now), Ok(fired.clone()));
        let old = OutboxPayload::Snapshot(Box::new(fired.clone()));
        assert_eq!(alert_as_of_event(&old, &now), Ok(fired.clone()));
        let mut other = fired.clone();
        other.id = AlertId::from_u32(1);
        assert_eq!(
            alert_as_of_event(&OutboxPayload::Snapshot(Box::new(other)), &now)
                .map_err(|e| e.to_string()),
            Err(
                "cannot render: the row's alert snapshot is of alert_00000001, not alert_3f9a1c2b"
                    .into()
            )
        );
        let unreadable = OutboxPayload::Unreadable {
            text: "{}".into(),
            error: "payload holds neither facts nor an alert: missing field `id`".into(),
        };
        assert_eq!(
            alert_as_of_event(&unreadable, &now).map_err(|e| e.to_string()),
            Err(
                "cannot render: payload holds neither facts nor an alert: missing field `id`"
                    .into()
            )
        );
    }
}
