//! A channel's test: one synthetic, clearly labelled low-severity notification, sent now
//! and reported — what `modelwatch channels test NAME` and the dashboard's "Send test"
//! (`POST /api/v1/channels/{name}/test`) do. Nothing is written to the outbox.

use modelwatch_core::alerting::{
    Alert, AlertId, AlertStatus, NotificationEvent, RuleId, Severity, Trigger,
};
use modelwatch_core::{Metric, ModelName, Timestamp, ValidationError, Version};
use serde::Serialize;

use crate::channels::Sender;
use crate::config::ChannelConfig;
use crate::message::AlertMessage;

/// What a test send did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestOutcome {
    pub channel: String,
    pub kind: String,
    pub target: String,
    pub ok: bool,
    /// Whether the worker would try again after this error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

/// A low-severity alert that says what it is, so nobody acts on it.
pub fn synthetic_alert(now: Timestamp) -> Result<Alert, ValidationError> {
    Ok(Alert {
        id: AlertId::from_u32(0),
        rule_id: RuleId::from_u32(0),
        rule_name: "modelwatch test notification".into(),
        model: ModelName::parse("modelwatch")?,
        version: Version::parse("test")?,
        dataset: None,
        metric: Metric::parse("accuracy")?.into(),
        severity: Severity::Low,
        status: AlertStatus::Active,
        message: "A test notification sent from modelwatch (channels test); nothing is wrong."
            .into(),
        value: 0.0,
        worst_value: 0.0,
        trigger: Trigger::Degradation {
            max_degradation_percentage: 5.0,
            degradation_percentage: 0.0,
            current_value: 1.0,
            baseline_value: 1.0,
            test: None,
        },
        first_seen: now,
        last_seen: now,
        occurrences: 1,
        notified: true,
        hold_reason: None,
        acknowledged_by: None,
        acknowledged_at: None,
        resolved_by: None,
        resolved_at: None,
        resolution_notes: None,
        label_coverage: None,
        revision: 0,
    })
}

/// Sends the test notification to `channel` and says how it went.
pub async fn send_test(
    sender: &Sender,
    channel: &ChannelConfig,
    dashboard: &reqwest::Url,
    now: Timestamp,
) -> TestOutcome {
    let summary = channel.summary();
    let started = std::time::Instant::now();
    let result = match synthetic_alert(now) {
        // A dedup key of its own per test, so receivers that deduplicate show every test.
        Ok(alert) => {
            let message = AlertMessage::new(
                format!("test-{}", now.as_millis()),
                NotificationEvent::Firing,
                alert,
                now,
                dashboard,
            );
            sender
                .send(channel, &[message], now)
                .await
                .map_err(|e| (e.is_retryable(), e.to_string()))
        }
        Err(error) => Err((false, error.to_string())),
    };
    TestOutcome {
        channel: summary.name,
        kind: summary.kind,
        target: summary.target,
        ok: result.is_ok(),
        retryable: result.as_ref().err().map(|(retryable, _)| *retryable),
        error: result.err().map(|(_, error)| error),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}
