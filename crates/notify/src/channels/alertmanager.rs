//! Prometheus Alertmanager: alerts POSTed to `/api/v2/alerts` with labels teams already
//! route on (`alertname`, `model`, `version`, `metric`, `severity`, `rule`), so
//! modelwatch joins an existing Alertmanager setup.
//!
//! A firing alert is sent with `endsAt` = now + the channel's `firing_ttl`: Alertmanager
//! resolves alerts it hears nothing about after `endsAt` (or its `resolve_timeout` when
//! there is none, 5 minutes by default — far shorter than a model regression lasts), so
//! the explicit horizon keeps it active until modelwatch sends the resolution, which
//! carries `endsAt` = the time it was resolved. Acknowledgement has no Alertmanager
//! counterpart and sends nothing.

use std::time::Duration;

use modelwatch_core::alerting::NotificationEvent;
use modelwatch_core::Timestamp;
use serde::Serialize;

use crate::message::{AlertKeys, AlertMessage};

pub const ALERTS_PATH: &str = "api/v2/alerts";

/// One alert of the `POST /api/v2/alerts` body (Alertmanager's `postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert<'a> {
    pub labels: Labels<'a>,
    pub annotations: Annotations<'a>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
}

/// The label set is the alert's identity in Alertmanager: it must be the same for the
/// firing and the resolving post, so only stable facts go in. A dataset other than the
/// default one is a label of its own (absent for the default dataset, as before).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Labels<'a> {
    pub alertname: &'a str,
    /// `alert_id`, `model`, `version`, `metric` and `dataset`.
    #[serde(flatten)]
    pub keys: AlertKeys<'a>,
    pub severity: &'static str,
    pub rule: &'a str,
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotations<'a> {
    pub summary: String,
    pub description: &'a str,
    pub p_value: String,
    pub dashboard: &'a str,
}

/// The postable alert, or `None` when the event means nothing to Alertmanager.
pub fn alert(m: &AlertMessage, now: Timestamp, firing_ttl: Duration) -> Option<PostableAlert<'_>> {
    let a = &m.alert;
    let ends_at = match m.event {
        NotificationEvent::Firing => now.saturating_add(firing_ttl),
        NotificationEvent::Acknowledged => return None,
        NotificationEvent::Resolved => a.resolved_at.unwrap_or(m.at).max(a.first_seen),
    };
    Some(PostableAlert {
        labels: Labels {
            alertname: &a.rule_name,
            keys: m.keys(),
            severity: a.severity.as_str(),
            rule: a.rule_id.as_str(),
            source: "modelwatch",
        },
        annotations: Annotations {
            summary: m.headline(),
            description: &a.message,
            p_value: m.p_value_text(),
            dashboard: &m.alert_url,
        },
        starts_at: a.first_seen.to_rfc3339(),
        ends_at: ends_at.to_rfc3339(),
        generator_url: &m.alert_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;

    #[test]
    fn firing_and_resolved_posts_share_labels_and_resolution_ends_it() {
        let now = Timestamp::from_millis(1_714_564_900_000).expect("time");
        let ttl = Duration::from_secs(3600);
        let json = |event| {
            serde_json::to_value(alert(&message(event), now, ttl).expect("posted")).expect("json")
        };
        let firing = json(NotificationEvent::Firing);
        let resolved = json(NotificationEvent::Resolved);
        assert_eq!(firing["labels"], resolved["labels"]);
        for label in [
            "alertname",
            "model",
            "version",
            "metric",
            "severity",
            "rule",
        ] {
            assert!(firing["labels"][label].is_string(), "{label}");
        }
        assert_eq!(firing["endsAt"], "2024-05-01T13:01:40.000Z");
        assert_eq!(resolved["endsAt"], "2024-05-01T12:01:00.000Z");
        assert_eq!(firing["startsAt"], "2024-05-01T12:00:00.000Z");
        assert!(alert(&message(NotificationEvent::Acknowledged), now, ttl).is_none());
    }
}
