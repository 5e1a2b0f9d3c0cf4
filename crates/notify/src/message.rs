//! What a channel renders: one alert at one point of its lifecycle, with the numbers a
//! person wants first (current vs baseline, change, p-value) and a link to the dashboard.
//! Pure: built from the outbox row, the alert and the dashboard URL.
//!
//! The p-value comes from the alert itself: a degradation alert carries the detector's
//! significance test of the observation that fired (or last updated) it. Threshold rules
//! run no test, and messages say so instead of showing a blank.

use modelwatch_core::alerting::{
    no_data_words, Alert, NotificationEvent, SignificanceTest, Trigger,
};
use modelwatch_core::stats::format_p_value;
use modelwatch_core::{MetricScope, Timestamp};
use reqwest::Url;

/// One notification to render.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMessage {
    /// The outbox row's key: stable across retries, so receivers can deduplicate.
    pub dedup_key: String,
    pub event: NotificationEvent,
    /// The alert as of the event.
    pub alert: Alert,
    /// When the event happened (the outbox row's creation).
    pub at: Timestamp,
    /// The alert on the dashboard.
    pub alert_url: String,
}

impl AlertMessage {
    pub fn new(
        dedup_key: impl Into<String>,
        event: NotificationEvent,
        alert: Alert,
        at: Timestamp,
        dashboard: &Url,
    ) -> AlertMessage {
        let alert_url = alert_url(dashboard, &alert);
        AlertMessage {
            dedup_key: dedup_key.into(),
            event,
            alert,
            at,
            alert_url,
        }
    }

    /// The alert and its series, for bodies machines read.
    pub fn keys(&self) -> AlertKeys<'_> {
        let a = &self.alert;
        AlertKeys {
            alert_id: a.id.as_str(),
            model: a.model.as_str(),
            version: a.version.as_str(),
            metric: a.metric.as_str(),
            dataset: a.dataset.as_ref().map(|d| d.as_str()),
        }
    }

    /// Current value, what it is compared with, and the signed relative change in percent.
    pub fn figures(&self) -> Figures {
        match self.alert.trigger {
            Trigger::Degradation {
                current_value,
                baseline_value,
                degradation_percentage,
                ..
            } => {
                let change = if baseline_value != 0.0 {
                    (current_value - baseline_value) / baseline_value.abs() * 100.0
                } else {
                    -degradation_percentage
                };
                Figures {
                    current: current_value,
                    reference: Some(baseline_value),
                    reference_label: "baseline",
                    change_percent: Some(change),
                }
            }
            Trigger::ChangePoint {
                level_before,
                level_after,
                shift_percentage,
                ..
            } => Figures {
                current: level_after,
                reference: Some(level_before),
                reference_label: "before the shift",
                change_percent: shift_percentage,
            },
            Trigger::NoData {
                silent_minutes,
                limit_minutes,
                ..
            } => Figures {
                current: silent_minutes,
                reference: Some(limit_minutes),
                reference_label: "minutes silent, limit",
                change_percent: None,
            },
            Trigger::Threshold {
                threshold_value, ..
            } => {
                let change = (threshold_value != 0.0)
                    .then(|| (self.alert.value - threshold_value) / threshold_value.abs() * 100.0);
                Figures {
                    current: self.alert.value,
                    reference: Some(threshold_value),
                    reference_label: "threshold",
                    change_percent: change,
                }
            }
        }
    }

    /// "FIRING", "ACKNOWLEDGED", "RESOLVED".
    pub fn state_word(&self) -> &'static str {
        match self.event {
            NotificationEvent::Firing => "FIRING",
            NotificationEvent::Acknowledged => "ACKNOWLEDGED",
            NotificationEvent::Resolved => "RESOLVED",
        }
    }

    /// The version as messages name it: `v2.1`, or `v2.1 [canary]` when the alert is of a
    /// dataset other than the default one.
    pub fn version_words(&self) -> String {
        let a = &self.alert;
        match &a.dataset {
            None => a.version.as_str().to_owned(),
            Some(dataset) => format!("{} [{dataset}]", a.version),
        }
    }

    /// One line: `[FIRING] high: fraud_detector v2.1 precision 0.870 (baseline 0.940, -7.4%)`,
    /// or for a silence `[FIRING] high: fraud-model v2 accuracy: no data for 47 min (usual
    /// interval 1 min)`.
    pub fn headline(&self) -> String {
        let a = &self.alert;
        if let Trigger::NoData {
            silent_minutes,
            usual_interval_minutes,
            ..
        } = a.trigger
        {
            let watched = match &a.metric {
                MetricScope::One(metric) => metric.as_str(),
                MetricScope::Every => "(every metric)",
            };
            return format!(
                "[{}] {}: {} {} {watched}: {}",
                self.state_word(),
                a.severity,
                a.model.as_str(),
                self.version_words(),
                no_data_words(silent_minutes, usual_interval_minutes)
            );
        }
        format!(
            "[{}] {}: {} {} {} {}",
            self.state_word(),
            a.severity,
            a.model.as_str(),
            self.version_words(),
            a.metric,
            self.figures().describe()
        )
    }

    /// Who did what, for follow-ups: "acknowledged by alice", "resolved by modelwatch".
    pub fn actor_line(&self) -> Option<String> {
        let a = &self.alert;
        match self.event {
            NotificationEvent::Firing => None,
            NotificationEvent::Acknowledged => Some(format!(
                "acknowledged by {}",
                a.acknowledged_by.as_deref().unwrap_or("someone")
            )),
            NotificationEvent::Resolved => {
                let mut line = format!(
                    "resolved by {}",
                    a.resolved_by.as_deref().unwrap_or("someone")
                );
                if let Some(notes) = &a.resolution_notes {
                    line.push_str(": ");
                    line.push_str(notes);
                }
                Some(line)
            }
        }
    }

    /// The statistics behind the alert.
    pub fn evidence(&self) -> Evidence<'_> {
        match &self.alert.trigger {
            Trigger::Threshold { .. } => Evidence::ThresholdRule,
            Trigger::Degradation {
                test: Some(test), ..
            } => Evidence::Tested(test),
            Trigger::Degradation { test: None, .. } => Evidence::NotRecorded,
            Trigger::ChangePoint {
                change_started_at,
                shift_sd,
                ..
            } => Evidence::ChangePoint {
                started_at: *change_started_at,
                shift_sd: *shift_sd,
            },
            Trigger::NoData { last_sample_at, .. } => Evidence::NoData {
                last_sample_at: *last_sample_at,
            },
        }
    }

    /// The p-value, when a test produced one.
    pub fn p_value(&self) -> Option<f64> {
        match self.evidence() {
            Evidence::Tested(test) => test.p_value,
            Evidence::NotRecorded
            | Evidence::ThresholdRule
            | Evidence::ChangePoint { .. }
            | Evidence::NoData { .. } => None,
        }
    }

    /// What the p-value field says: `0.0012 (welch_t+batch_means, alpha 0.01)`, or why
    /// there is none: `none (threshold rule)`.
    pub fn p_value_text(&self) -> String {
        match self.evidence() {
            Evidence::Tested(test) => {
                let p = test
                    .p_value
                    .map_or_else(|| "not computed".to_owned(), format_p_value);
                format!("{p} ({}, alpha {})", test.method, test.alpha)
            }
            Evidence::NotRecorded => "not recorded".into(),
            Evidence::ThresholdRule => "none (threshold rule)".into(),
            Evidence::ChangePoint {
                started_at,
                shift_sd,
            } => format!(
                "none (change point: a shift of {shift_sd:+.1} sd that began {})",
                started_at.to_rfc3339()
            ),
            Evidence::NoData { last_sample_at } => format!(
                "none (no-data rule: last sample at {})",
                last_sample_at.to_rfc3339()
            ),
        }
    }

    /// The test's name for machine-read payloads: the detector's method, `threshold rule`
    /// or `not recorded`.
    pub fn test_name(&self) -> &str {
        match self.evidence() {
            Evidence::Tested(test) => &test.method,
            Evidence::NotRecorded => "not recorded",
            Evidence::ThresholdRule => "threshold rule",
            Evidence::ChangePoint { .. } => "change point",
            Evidence::NoData { .. } => "no data",
        }
    }

    /// The level the p-value was judged at, when there was a test.
    pub fn alpha(&self) -> Option<f64> {
        match self.evidence() {
            Evidence::Tested(test) => Some(test.alpha),
            Evidence::NotRecorded
            | Evidence::ThresholdRule
            | Evidence::ChangePoint { .. }
            | Evidence::NoData { .. } => None,
        }
    }
}

/// The statistics behind an alert, as far as a message can state them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Evidence<'a> {
    /// A degradation rule: the detector's significance test.
    Tested(&'a SignificanceTest),
    /// A degradation alert stored before tests were recorded on alerts.
    NotRecorded,
    /// A threshold rule compares a value with a line; no test applies.
    ThresholdRule,
    /// A change-point rule: a sequential test found a shift that began at `started_at`.
    ChangePoint {
        started_at: modelwatch_core::Timestamp,
        shift_sd: f64,
    },
    /// A no-data rule: the series reported nothing since `last_sample_at`.
    NoData {
        last_sample_at: modelwatch_core::Timestamp,
    },
}

/// The numbers of an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub current: f64,
    pub reference: Option<f64>,
    /// "baseline" (degradation rules), "threshold" (threshold rules) or "before the
    /// shift" (change-point rules).
    pub reference_label: &'static str,
    pub change_percent: Option<f64>,
}

impl Figures {
    /// The reference under its label, as a body's field: `"baseline": 0.94`.
    pub fn labelled_reference(&self, round_to: fn(f64) -> f64) -> Labelled {
        Labelled {
            label: self.reference_label,
            value: self.reference.map(round_to),
        }
    }

    pub fn describe(&self) -> String {
        let mut text = format!("{}", round(self.current));
        if let Some(reference) = self.reference {
            text.push_str(&format!(" ({} {}", self.reference_label, round(reference)));
            if let Some(change) = self.change_percent {
                text.push_str(&format!(", {}", percent(change)));
            }
            text.push(')');
        }
        text
    }
}

/// The alert and the series it is of, flattened into the bodies machines read
/// (Alertmanager's labels, PagerDuty's details) under the same names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertKeys<'a> {
    pub alert_id: &'a str,
    pub model: &'a str,
    pub version: &'a str,
    pub metric: &'a str,
    /// Only for a dataset other than the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<&'a str>,
}

/// A figure whose field name depends on the rule's kind ("baseline", "threshold",
/// "before the shift", …), flattened into a body as `"label": value` (`null` when absent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    pub label: &'static str,
    pub value: Option<f64>,
}

impl serde::Serialize for Labelled {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.label, &self.value)?;
        map.end()
    }
}

/// Four significant decimals are what a metric reading needs; more is noise in a message.
pub fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

pub fn percent(change: f64) -> String {
    format!("{change:+.1}%")
}

/// `{dashboard}/alerts/{id}`.
pub fn alert_url(dashboard: &Url, alert: &Alert) -> String {
    let base = dashboard.as_str().trim_end_matches('/');
    format!("{base}/alerts/{}", alert.id)
}

/// The subject / header of a digest.
pub fn digest_title(messages: &[AlertMessage]) -> String {
    let firing = messages
        .iter()
        .filter(|m| m.event == NotificationEvent::Firing)
        .count();
    let other = messages.len() - firing;
    match (firing, other) {
        (f, 0) => format!("{f} alerts firing"),
        (0, o) => format!("{o} alert updates"),
        (f, o) => format!("{f} alerts firing, {o} updates"),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A degradation alert as the engine writes it, for the payload tests.
    use super::*;
    use modelwatch_core::alerting::{AlertId, AlertStatus, RuleId, Severity};
    use modelwatch_core::{Metric, ModelName, Version};

    pub fn alert() -> Alert {
        Alert {
            id: AlertId::from_u32(0x3f9a_1c2b),
            rule_id: RuleId::from_u32(42),
            rule_name: "precision drop".into(),
            model: ModelName::parse("fraud_detector").expect("name"),
            version: Version::parse("v2.1").expect("version"),
            dataset: None,
            metric: Metric::parse("precision").expect("metric").into(),
            severity: Severity::High,
            status: AlertStatus::Active,
            message: "precision degraded 7.4% below its baseline".into(),
            value: 7.4468,
            worst_value: 7.4468,
            trigger: Trigger::Degradation {
                max_degradation_percentage: 5.0,
                degradation_percentage: 7.4468,
                current_value: 0.87,
                baseline_value: 0.94,
                test: Some(SignificanceTest {
                    p_value: Some(0.0012),
                    method: "welch_t+batch_means".into(),
                    alpha: 0.01,
                }),
            },
            first_seen: Timestamp::from_millis(1_714_564_800_000).expect("time"),
            last_seen: Timestamp::from_millis(1_714_564_800_000).expect("time"),
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
        }
    }

    pub fn message(event: NotificationEvent) -> AlertMessage {
        let dashboard = Url::parse("http://127.0.0.1:7878/").expect("url");
        let mut alert = alert();
        let at = Timestamp::from_millis(1_714_564_860_000).expect("time");
        match event {
            NotificationEvent::Firing => {}
            NotificationEvent::Acknowledged => {
                alert.status = AlertStatus::Acknowledged;
                alert.acknowledged_by = Some("alice".into());
                alert.acknowledged_at = Some(at);
            }
            NotificationEvent::Resolved => {
                alert.status = AlertStatus::Resolved;
                alert.resolved_by = Some("bob".into());
                alert.resolved_at = Some(at);
                alert.resolution_notes = Some("rolled back".into());
            }
        }
        AlertMessage::new(
            format!("{}:{}:team", alert.id, event.as_str()),
            event,
            alert,
            at,
            &dashboard,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::message;
    use super::*;

    #[test]
    fn headline_shows_current_baseline_and_change() {
        let m = message(NotificationEvent::Firing);
        assert_eq!(
            m.headline(),
            "[FIRING] high: fraud_detector v2.1 precision 0.87 (baseline 0.94, -7.4%)"
        );
        assert_eq!(m.alert_url, "http://127.0.0.1:7878/alerts/alert_3f9a1c2b");
        assert_eq!(m.p_value_text(), "0.0012 (welch_t+batch_means, alpha 0.01)");
        assert_eq!(m.p_value(), Some(0.0012));
    }

    #[test]
    fn a_silence_reads_how_long_and_against_what_usual_interval() {
        let mut m = message(NotificationEvent::Firing);
        m.alert.model = modelwatch_core::ModelName::parse("fraud-model").expect("name");
        m.alert.version = modelwatch_core::Version::parse("v2").expect("version");
        m.alert.value = 47.2;
        m.alert.trigger = Trigger::NoData {
            condition: modelwatch_core::alerting::NoDataCondition {
                no_data_minutes: None,
                no_data_intervals: Some(5.0),
            },
            last_sample_at: Timestamp::from_millis(1_714_562_000_000).expect("time"),
            silent_minutes: 47.2,
            usual_interval_minutes: Some(1.0),
            limit_minutes: 5.0,
            last_samples: Vec::new(),
        };
        assert_eq!(
            m.headline(),
            "[FIRING] high: fraud-model v2 precision: no data for 47 min (usual interval 1 min)"
        );
        assert_eq!(
            m.p_value_text(),
            "none (no-data rule: last sample at 2024-05-01T11:13:20.000Z)"
        );
        assert_eq!(m.test_name(), "no data");
        m.alert.metric = MetricScope::Every;
        assert_eq!(
            m.headline(),
            "[FIRING] high: fraud-model v2 (every metric): no data for 47 min (usual interval 1 min)"
        );
    }

    #[test]
    fn threshold_rules_say_no_test_applies_and_old_alerts_say_not_recorded() {
        let mut m = message(NotificationEvent::Firing);
        m.alert.trigger = Trigger::Threshold {
            comparison_operator: modelwatch_core::alerting::ComparisonOperator::Lt,
            threshold_value: 0.9,
        };
        assert_eq!(m.p_value_text(), "none (threshold rule)");
        assert_eq!((m.p_value(), m.test_name()), (None, "threshold rule"));
        let mut old = message(NotificationEvent::Firing);
        if let Trigger::Degradation { test, .. } = &mut old.alert.trigger {
            *test = None;
        }
        assert_eq!(old.p_value_text(), "not recorded");
    }

    #[test]
    fn follow_ups_say_who_and_why() {
        assert_eq!(
            message(NotificationEvent::Resolved).actor_line().as_deref(),
            Some("resolved by bob: rolled back")
        );
        assert_eq!(
            message(NotificationEvent::Acknowledged)
                .actor_line()
                .as_deref(),
            Some("acknowledged by alice")
        );
    }
}
