//! The records of an alert: the `alerts.body` column ([`Alert`] without its revision,
//! which the store keeps beside it) and the outbox's `payload` ([`EventFacts`], what the
//! alert said at a notification's event, or an alert snapshot in rows written before
//! facts).

use super::condition::{
    ChangePointConditionRecord, ComparisonOperatorRecord, NoDataConditionRecord, SeverityRecord,
};
use modelwatch_core::alerting::no_data::LastSample;
use modelwatch_core::alerting::{
    Alert, AlertId, AlertStatus, ChangePointCondition, ComparisonOperator, EventFacts, HoldReason,
    NoDataCondition, RuleId, Severity, SignificanceTest, SilenceId, Trigger,
};
use modelwatch_core::sample::deserialize_optional_dataset;
use modelwatch_core::{Dataset, Metric, MetricScope, ModelName, Timestamp, Version};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{option_record, read_json, vec_record, write_json};
use crate::StoreError;

/// The `body` of `alert` (its revision is not in it).
pub(crate) fn alert_body(alert: &Alert) -> Result<String, StoreError> {
    write_json(alert, |alert, json| AlertRecord::serialize(alert, json))
}

/// The alert a `body` holds, with revision 0.
pub(crate) fn alert_from_body(body: &str) -> Result<Alert, StoreError> {
    read_json(body, |json| AlertRecord::deserialize(json))
}

/// Writes `alert` as it is stored, for `#[serde(serialize_with = …)]`: the webhook's
/// body carries it (as the API shows alerts, which is the stored form; the HTTP API's
/// tests pin the two together).
pub fn serialize_alert<S: Serializer>(alert: &Alert, serializer: S) -> Result<S::Ok, S::Error> {
    AlertRecord::serialize(alert, serializer)
}

/// Reads an alert in its stored form (tests and tools building alerts from JSON).
pub fn deserialize_alert<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Alert, D::Error> {
    AlertRecord::deserialize(deserializer)
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Alert")]
pub(crate) struct AlertRecord {
    id: AlertId,
    rule_id: RuleId,
    rule_name: String,
    model: ModelName,
    version: Version,
    /// Absent for the default dataset (so alerts stored before rules had datasets read
    /// back byte for byte).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_optional_dataset"
    )]
    dataset: Option<Dataset>,
    metric: MetricScope,
    #[serde(with = "SeverityRecord")]
    severity: Severity,
    #[serde(with = "AlertStatusRecord")]
    status: AlertStatus,
    message: String,
    value: f64,
    worst_value: f64,
    #[serde(with = "TriggerRecord")]
    trigger: Trigger,
    first_seen: Timestamp,
    last_seen: Timestamp,
    occurrences: u32,
    notified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hold_reason")]
    hold_reason: Option<HoldReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acknowledged_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolved_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolution_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label_coverage: Option<f64>,
    /// Kept by the store beside the body.
    #[serde(skip)]
    revision: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "AlertStatus", rename_all = "snake_case")]
enum AlertStatusRecord {
    Active,
    Acknowledged,
    Resolved,
    Suppressed,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Trigger", tag = "condition_type", rename_all = "snake_case")]
enum TriggerRecord {
    Threshold {
        #[serde(with = "ComparisonOperatorRecord")]
        comparison_operator: ComparisonOperator,
        threshold_value: f64,
    },
    Degradation {
        max_degradation_percentage: f64,
        degradation_percentage: f64,
        current_value: f64,
        baseline_value: f64,
        /// Absent in alerts stored before it was recorded, and left out when absent, so
        /// such alerts read back byte for byte.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "test")]
        test: Option<SignificanceTest>,
    },
    ChangePoint {
        #[serde(flatten, with = "ChangePointConditionRecord")]
        condition: ChangePointCondition,
        change_started_at: Timestamp,
        level_before: f64,
        level_after: f64,
        shift: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shift_percentage: Option<f64>,
        shift_sd: f64,
        noise_sd: f64,
    },
    NoData {
        #[serde(flatten, with = "NoDataConditionRecord")]
        condition: NoDataCondition,
        last_sample_at: Timestamp,
        silent_minutes: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usual_interval_minutes: Option<f64>,
        limit_minutes: f64,
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "last_samples")]
        last_samples: Vec<LastSample>,
    },
}

option_record!(test, SignificanceTest, "SignificanceTestRecord");
option_record!(hold_reason, HoldReason, "HoldReasonRecord");
vec_record!(last_samples, LastSample, "LastSampleRecord");

#[derive(Serialize, Deserialize)]
#[serde(remote = "SignificanceTest")]
struct SignificanceTestRecord {
    p_value: Option<f64>,
    method: String,
    alpha: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "LastSample")]
pub(crate) struct LastSampleRecord {
    metric: Metric,
    at: Timestamp,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "HoldReason", tag = "reason", rename_all = "snake_case")]
enum HoldReasonRecord {
    AlertsDisabled,
    Silenced {
        silence_id: SilenceId,
    },
    BelowMinSeverity {
        #[serde(with = "SeverityRecord")]
        min_severity_to_notify: Severity,
    },
    NoChannels,
    MaxAlertsPerHour {
        limit: u32,
    },
    MaxAlertsPerModelPerHour {
        limit: u32,
    },
    AlreadyNotified,
    Acknowledged,
    OlderThanHorizon,
}

/// What an alert said at a notification's event; its identity is the stored alert's.
#[derive(Serialize, Deserialize)]
#[serde(remote = "EventFacts", deny_unknown_fields)]
struct EventFactsRecord {
    #[serde(with = "AlertStatusRecord")]
    status: AlertStatus,
    #[serde(with = "SeverityRecord")]
    severity: Severity,
    message: String,
    value: f64,
    worst_value: f64,
    #[serde(with = "TriggerRecord")]
    trigger: Trigger,
    last_seen: Timestamp,
    occurrences: u32,
    notified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hold_reason")]
    hold_reason: Option<HoldReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acknowledged_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acknowledged_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolved_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolution_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label_coverage: Option<f64>,
}

/// The outbox `payload` column's current format: `{"facts": …}`.
#[derive(Serialize)]
struct FactsPayload<'a> {
    #[serde(with = "EventFactsRecord")]
    facts: &'a EventFacts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredFacts {
    #[serde(with = "EventFactsRecord")]
    facts: EventFacts,
}

/// The payload of rows written before facts: the alert, under `alert`.
#[derive(Serialize)]
struct SnapshotPayload<'a> {
    #[serde(with = "AlertRecord")]
    alert: &'a Alert,
}

/// The `payload` column of `facts`.
pub(crate) fn facts_payload(facts: &EventFacts) -> Result<String, StoreError> {
    crate::alerts::to_json(&FactsPayload { facts })
}

/// The `payload` column of a snapshot read from a row written before facts, as it is
/// written back.
pub(crate) fn snapshot_payload(alert: &Alert) -> Result<String, StoreError> {
    crate::alerts::to_json(&SnapshotPayload { alert })
}

/// The facts a payload holds (`{"facts": …}`).
pub(crate) fn facts_from_payload(value: serde_json::Value) -> serde_json::Result<EventFacts> {
    StoredFacts::deserialize(value).map(|stored| stored.facts)
}

/// The alert a payload written before facts holds.
pub(crate) fn snapshot_from_payload(value: serde_json::Value) -> serde_json::Result<Alert> {
    AlertRecord::deserialize(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as this and earlier versions wrote them, one of each trigger and with every
    /// optional field: each reads back and is written again byte for byte (a degradation
    /// alert stored before alerts carried their test, and alerts of the default dataset,
    /// have neither field).
    const STORED: [&str; 5] = [
        r#"{"id":"alert_0000002a","rule_id":"rule_00000007","rule_name":"precision drop","model":"fraud_detector","version":"v2","metric":"precision","severity":"high","status":"active","message":"m","value":7.5,"worst_value":7.5,"trigger":{"condition_type":"degradation","max_degradation_percentage":5.0,"degradation_percentage":7.5,"current_value":0.87,"baseline_value":0.94},"first_seen":"2024-05-01T12:00:00.000Z","last_seen":"2024-05-01T12:00:00.000Z","occurrences":1,"notified":true}"#,
        r#"{"id":"alert_0000002b","rule_id":"rule_00000007","rule_name":"precision drop","model":"fraud_detector","version":"v2","dataset":"canary","metric":"precision","severity":"critical","status":"resolved","message":"m","value":7.5,"worst_value":9.25,"trigger":{"condition_type":"degradation","max_degradation_percentage":5.0,"degradation_percentage":7.5,"current_value":0.87,"baseline_value":0.94,"test":{"p_value":0.0012,"method":"welch_t+batch_means","alpha":0.01}},"first_seen":"2024-05-01T12:00:00.000Z","last_seen":"2024-05-01T12:05:00.000Z","occurrences":2,"notified":false,"hold_reason":{"reason":"silenced","silence_id":"silence_00000001"},"acknowledged_by":"ann","acknowledged_at":"2024-05-01T12:01:00.000Z","resolved_by":"bob","resolved_at":"2024-05-01T12:02:00.000Z","resolution_notes":"fixed","label_coverage":0.75}"#,
        r#"{"id":"alert_0000002c","rule_id":"rule_00000001","rule_name":"slow","model":"fraud","version":"v1","metric":"latency","severity":"medium","status":"suppressed","message":"m","value":300.0,"worst_value":320.5,"trigger":{"condition_type":"threshold","comparison_operator":"gt","threshold_value":250.0},"first_seen":"2024-05-01T12:00:00.000Z","last_seen":"2024-05-01T12:00:00.000Z","occurrences":1,"notified":false,"hold_reason":{"reason":"max_alerts_per_model_per_hour","limit":3}}"#,
        r#"{"id":"alert_0000002d","rule_id":"rule_00000003","rule_name":"shift","model":"fraud","version":"v1","metric":"accuracy","severity":"high","status":"acknowledged","message":"m","value":-0.1,"worst_value":-0.1,"trigger":{"condition_type":"change_point","change_direction":"worse","min_shift_sd":1.0,"false_alarm_interval_samples":100,"change_started_at":"2024-05-01T11:00:00.000Z","level_before":0.9,"level_after":0.8,"shift":-0.1,"shift_percentage":-11.1,"shift_sd":4.0,"noise_sd":0.025},"first_seen":"2024-05-01T12:00:00.000Z","last_seen":"2024-05-01T12:00:00.000Z","occurrences":1,"notified":true,"hold_reason":{"reason":"below_min_severity","min_severity_to_notify":"critical"}}"#,
        r#"{"id":"alert_0000002e","rule_id":"rule_00000004","rule_name":"quiet","model":"fraud","version":"v1","metric":"*","severity":"critical","status":"active","message":"m","value":60.0,"worst_value":60.0,"trigger":{"condition_type":"no_data","no_data_intervals":3.0,"last_sample_at":"2024-05-01T11:00:00.000Z","silent_minutes":60.0,"usual_interval_minutes":5.0,"limit_minutes":15.0,"last_samples":[{"metric":"latency","at":"2024-05-01T11:00:00.000Z"}]},"first_seen":"2024-05-01T12:00:00.000Z","last_seen":"2024-05-01T12:00:00.000Z","occurrences":1,"notified":true,"hold_reason":{"reason":"no_channels"}}"#,
    ];

    #[test]
    fn stored_alerts_of_every_trigger_read_back_and_are_rewritten_byte_for_byte() {
        for body in STORED {
            let alert = alert_from_body(body).unwrap();
            assert_eq!(alert_body(&alert).unwrap(), body);
            assert_eq!(alert.revision, 0);
        }
        let old = alert_from_body(STORED[0]).unwrap();
        assert!(matches!(
            old.trigger,
            Trigger::Degradation { test: None, .. }
        ));
        assert_eq!(old.dataset, None);
        let full = alert_from_body(STORED[1]).unwrap();
        assert!(matches!(
            &full.trigger,
            Trigger::Degradation { test: Some(test), .. } if test.p_value == Some(0.0012)
        ));
        assert_eq!(full.status, AlertStatus::Resolved);
        assert_eq!(
            full.hold_reason,
            Some(HoldReason::Silenced {
                silence_id: SilenceId::from_u32(1)
            })
        );
        let quiet = alert_from_body(STORED[4]).unwrap();
        assert!(
            matches!(&quiet.trigger, Trigger::NoData { last_samples, .. } if last_samples.len() == 1)
        );
    }

    #[test]
    fn every_hold_reason_reads_back_and_is_rewritten_byte_for_byte() {
        for reason in [
            r#"{"reason":"alerts_disabled"}"#,
            r#"{"reason":"silenced","silence_id":"silence_00000001"}"#,
            r#"{"reason":"below_min_severity","min_severity_to_notify":"critical"}"#,
            r#"{"reason":"no_channels"}"#,
            r#"{"reason":"max_alerts_per_hour","limit":10}"#,
            r#"{"reason":"max_alerts_per_model_per_hour","limit":3}"#,
            r#"{"reason":"already_notified"}"#,
            r#"{"reason":"acknowledged"}"#,
            r#"{"reason":"older_than_horizon"}"#,
        ] {
            let body = STORED[2].replace(
                r#"{"reason":"max_alerts_per_model_per_hour","limit":3}"#,
                reason,
            );
            assert_eq!(alert_body(&alert_from_body(&body).unwrap()).unwrap(), body);
        }
    }

    /// Outbox payloads: the facts of an alert at an event, and the snapshots of rows
    /// written before facts.
    #[test]
    fn stored_payloads_read_back_and_are_rewritten_byte_for_byte() {
        let facts = r#"{"facts":{"status":"acknowledged","severity":"high","message":"m","value":7.5,"worst_value":7.5,"trigger":{"condition_type":"degradation","max_degradation_percentage":5.0,"degradation_percentage":7.5,"current_value":0.87,"baseline_value":0.94},"last_seen":"2024-05-01T12:00:00.000Z","occurrences":1,"notified":true,"hold_reason":{"reason":"no_channels"},"acknowledged_by":"ann","acknowledged_at":"2024-05-01T12:01:00.000Z","label_coverage":0.5}}"#;
        let read = facts_from_payload(serde_json::from_str(facts).unwrap()).unwrap();
        assert_eq!(read.status, AlertStatus::Acknowledged);
        assert_eq!(facts_payload(&read).unwrap(), facts);
        let unknown = facts.replace(r#""label_coverage""#, r#""surprise""#);
        assert!(facts_from_payload(serde_json::from_str(&unknown).unwrap()).is_err());

        let snapshot = format!(r#"{{"alert":{}}}"#, STORED[1]);
        let value: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
        let alert = snapshot_from_payload(value["alert"].clone()).unwrap();
        assert_eq!(snapshot_payload(&alert).unwrap(), snapshot);
    }
}
