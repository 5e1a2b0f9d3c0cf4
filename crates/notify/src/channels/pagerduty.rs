//! PagerDuty Events API v2: `trigger` when an alert fires, `acknowledge` and `resolve`
//! as it moves through its lifecycle, all with the same `dedup_key` (derived from the
//! alert id) so every event of one alert lands on one incident, however often it is
//! retried.

use modelwatch_core::alerting::{NotificationEvent, Severity};
use serde::Serialize;

use crate::message::{round, AlertKeys, AlertMessage, Labelled};

/// The incident key of an alert: stable across retries, restarts and servers.
pub fn dedup_key(m: &AlertMessage) -> String {
    format!("modelwatch/{}", m.alert.id)
}

/// PagerDuty knows critical, error, warning and info.
pub fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

/// An Events API v2 event. `acknowledge` and `resolve` carry only the key: the incident
/// already has the rest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<'a> {
    pub routing_key: &'a str,
    pub event_action: Action,
    pub dedup_key: String,
    #[serde(flatten)]
    pub trigger: Option<Trigger<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

/// What a `trigger` event carries besides the key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger<'a> {
    pub payload: Payload<'a>,
    pub links: [Link<'a>; 1],
    pub client: &'static str,
    pub client_url: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload<'a> {
    pub summary: String,
    pub source: String,
    pub severity: &'static str,
    pub timestamp: String,
    pub component: &'a str,
    pub group: &'a str,
    pub class: &'a str,
    pub custom_details: CustomDetails<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomDetails<'a> {
    /// `alert_id`, `model`, `version`, `metric` and `dataset`.
    #[serde(flatten)]
    pub keys: AlertKeys<'a>,
    pub rule: &'a str,
    pub rule_id: &'a str,
    pub modelwatch_severity: &'static str,
    pub current: f64,
    /// `baseline`, `threshold`, `before the shift` or `minutes silent, limit`.
    #[serde(flatten)]
    pub reference: Labelled,
    pub change_percent: Option<f64>,
    pub p_value: Option<f64>,
    pub significance: String,
    pub test: &'a str,
    pub message: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link<'a> {
    pub href: &'a str,
    pub text: &'static str,
}

pub fn event<'a>(routing_key: &'a str, m: &'a AlertMessage) -> Event<'a> {
    let event_action = match m.event {
        NotificationEvent::Firing => Action::Trigger,
        NotificationEvent::Acknowledged => Action::Acknowledge,
        NotificationEvent::Resolved => Action::Resolve,
    };
    Event {
        routing_key,
        event_action,
        dedup_key: dedup_key(m),
        trigger: (event_action == Action::Trigger).then(|| trigger(m)),
    }
}

fn trigger(m: &AlertMessage) -> Trigger<'_> {
    let a = &m.alert;
    let figures = m.figures();
    let source = match &a.dataset {
        None => format!("modelwatch/{}/{}", a.model.as_str(), a.version.as_str()),
        Some(dataset) => format!(
            "modelwatch/{}/{}/{dataset}",
            a.model.as_str(),
            a.version.as_str()
        ),
    };
    Trigger {
        payload: Payload {
            summary: m.headline().chars().take(1024).collect(),
            source,
            severity: severity(a.severity),
            timestamp: m.at.to_rfc3339(),
            component: a.model.as_str(),
            group: a.version.as_str(),
            class: a.metric.as_str(),
            custom_details: CustomDetails {
                keys: m.keys(),
                rule: &a.rule_name,
                rule_id: a.rule_id.as_str(),
                modelwatch_severity: a.severity.as_str(),
                current: round(figures.current),
                reference: figures.labelled_reference(round),
                change_percent: figures.change_percent.map(|c| (c * 10.0).round() / 10.0),
                p_value: m.p_value(),
                significance: m.p_value_text(),
                test: m.test_name(),
                message: &a.message,
            },
        },
        links: [Link {
            href: &m.alert_url,
            text: "Open in modelwatch",
        }],
        client: "modelwatch",
        client_url: &m.alert_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;
    use serde_json::Value;

    /// The Events API v2 schema's required fields and enumerations.
    fn assert_valid_event(e: &Value) {
        assert!(e["routing_key"].as_str().is_some_and(|k| !k.is_empty()));
        let action = e["event_action"].as_str().expect("event_action");
        assert!(["trigger", "acknowledge", "resolve"].contains(&action));
        let key = e["dedup_key"].as_str().expect("dedup_key");
        assert!(!key.is_empty() && key.len() <= 255);
        if action == "trigger" {
            let p = &e["payload"];
            let summary = p["summary"].as_str().expect("summary");
            assert!(!summary.is_empty() && summary.len() <= 1024);
            assert!(p["source"].as_str().is_some_and(|s| !s.is_empty()));
            assert!(["critical", "error", "warning", "info"]
                .contains(&p["severity"].as_str().expect("severity")));
            assert!(p["custom_details"].is_object());
        }
    }

    #[test]
    fn lifecycle_events_share_one_dedup_key() {
        let events: Vec<Value> = [
            NotificationEvent::Firing,
            NotificationEvent::Acknowledged,
            NotificationEvent::Resolved,
        ]
        .into_iter()
        .map(|e| serde_json::to_value(event("R0UT1NGKEY", &message(e))).expect("json"))
        .collect();
        for e in &events {
            assert_valid_event(e);
            assert_eq!(e["dedup_key"], "modelwatch/alert_3f9a1c2b");
        }
        let actions: Vec<&str> = events
            .iter()
            .filter_map(|e| e["event_action"].as_str())
            .collect();
        assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
        let trigger = &events[0]["payload"];
        assert_eq!(trigger["severity"], "error");
        assert_eq!(trigger["custom_details"]["baseline"], 0.94);
        assert_eq!(trigger["custom_details"]["p_value"], 0.0012);
        assert_eq!(trigger["custom_details"]["test"], "welch_t+batch_means");
    }
}
