//! PagerDuty Events API v2: `trigger` when an alert fires, `acknowledge` and `resolve`
//! as it moves through its lifecycle, all with the same `dedup_key` (derived from the
//! alert id) so every event of one alert lands on one incident, however often it is
//! retried.

use modelwatch_core::alerting::{NotificationEvent, Severity};
use serde_json::{json, Value};

use crate::message::{round, AlertMessage};

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

pub fn event(routing_key: &str, m: &AlertMessage) -> Value {
    let action = match m.event {
        NotificationEvent::Firing => "trigger",
        NotificationEvent::Acknowledged => "acknowledge",
        NotificationEvent::Resolved => "resolve",
    };
    if m.event != NotificationEvent::Firing {
        // acknowledge and resolve carry only the key: the incident already has the rest.
        return json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": dedup_key(m),
        });
    }
    let a = &m.alert;
    let figures = m.figures();
    let summary: String = m.headline().chars().take(1024).collect();
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(m),
        "payload": {
            "summary": summary,
            "source": match &a.dataset {
                None => format!("modelwatch/{}/{}", a.model.as_str(), a.version.as_str()),
                Some(dataset) => format!(
                    "modelwatch/{}/{}/{dataset}",
                    a.model.as_str(),
                    a.version.as_str()
                ),
            },
            "severity": severity(a.severity),
            "timestamp": m.at.to_rfc3339(),
            "component": a.model.as_str(),
            "group": a.version.as_str(),
            "class": a.metric.to_string(),
            "custom_details": {
                "alert_id": a.id.as_str(),
                "rule": a.rule_name,
                "rule_id": a.rule_id.as_str(),
                "model": a.model.as_str(),
                "version": a.version.as_str(),
                "metric": a.metric.to_string(),
                "modelwatch_severity": a.severity.as_str(),
                "current": round(figures.current),
                figures.reference_label: figures.reference.map(round),
                "change_percent": figures.change_percent.map(|c| (c * 10.0).round() / 10.0),
                "p_value": m.p_value(),
                "significance": m.p_value_text(),
                "test": m.test_name(),
                "message": a.message,
            },
        },
        "links": [{"href": m.alert_url, "text": "Open in modelwatch"}],
        "client": "modelwatch",
        "client_url": m.alert_url,
    });
    // A dataset other than the default one is named among the details.
    if let (Some(dataset), Some(details)) = (
        &a.dataset,
        event["payload"]["custom_details"].as_object_mut(),
    ) {
        details.insert("dataset".into(), json!(dataset.as_str()));
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;

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
        .map(|e| event("R0UT1NGKEY", &message(e)))
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
