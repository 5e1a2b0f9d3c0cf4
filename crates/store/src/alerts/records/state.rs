//! The record of a rule state's `detail` column: [`StateDetail`] with its past breaches,
//! the change-point detector's memory and the no-data cadence.
//!
//! Every field has a default, so a state stored before a field existed reads back as it
//! was; fields at their default are left out, so an empty detail is `{}` (and the stores
//! write no column at all for it).

use modelwatch_core::alerting::no_data::{Cadence, LastSample};
use modelwatch_core::alerting::{AlertId, PastBreach, StateDetail};
use modelwatch_core::detection::changepoint::{
    BeforeChange, Change, ChangePointState, Cusum, DailyProfile,
};
use modelwatch_core::Timestamp;
use serde::{Deserialize, Serialize};

use super::{evidence, option_record, read_json, vec_record, write_json};
use crate::StoreError;

/// The `detail` column of `detail`.
pub fn detail_to_json(detail: &StateDetail) -> Result<String, StoreError> {
    write_json(detail, |detail, json| {
        StateDetailRecord::serialize(detail, json)
    })
}

/// The detail a `detail` column holds.
pub fn detail_from_json(text: &str) -> Result<StateDetail, StoreError> {
    read_json(text, |json| StateDetailRecord::deserialize(json))
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "StateDetail")]
struct StateDetailRecord {
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "past_breaches")]
    past_breaches: Vec<PastBreach>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "change_point"
    )]
    change_point: Option<ChangePointState>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "cadence")]
    cadence: Option<Cadence>,
}

vec_record!(past_breaches, PastBreach, "PastBreachRecord");
option_record!(change_point, ChangePointState, "ChangePointRecord");
option_record!(cadence, Cadence, "CadenceRecord");

#[derive(Serialize, Deserialize)]
#[serde(remote = "PastBreach")]
struct PastBreachRecord {
    would_have_fired_at: Timestamp,
    value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cleared_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alert_id: Option<AlertId>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Cadence")]
struct CadenceRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_sample_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gaps_ms: Vec<u64>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "super::alert::last_samples"
    )]
    last_samples: Vec<LastSample>,
}

/// A change-point detector's whole memory. Its evidence is stored as columns
/// ([`evidence`]).
#[derive(Serialize, Deserialize)]
#[serde(remote = "ChangePointState")]
struct ChangePointRecord {
    last_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    learning: Vec<f64>,
    samples: u64,
    level: f64,
    scale: f64,
    spread: f64,
    interval_ms: Option<f64>,
    settling: u32,
    #[serde(default)]
    previous_residual: f64,
    #[serde(default)]
    lag_product: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_level: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wander: Option<f64>,
    #[serde(with = "CusumRecord")]
    up: Cusum,
    #[serde(with = "CusumRecord")]
    down: Cusum,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "evidence")]
    evidence: Vec<modelwatch_core::detection::changepoint::Evidence>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "change")]
    last_change: Option<Change>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "before_change"
    )]
    before_change: Option<BeforeChange>,
    #[serde(default, skip_serializing_if = "is_zero")]
    alarms: u32,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    typical_log_shift: f64,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    peak_deviation: f64,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "change")]
    last_outlier: Option<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "profile")]
    daily: Option<DailyProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "profile")]
    weekly: Option<DailyProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_value: Option<f64>,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    resolution: f64,
}

option_record!(change, Change, "ChangeRecord");
option_record!(before_change, BeforeChange, "BeforeChangeRecord");
option_record!(profile, DailyProfile, "DailyProfileRecord");

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn is_zero_f64(value: &f64) -> bool {
    *value == 0.0
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Cusum")]
struct CusumRecord {
    statistic: f64,
    started_at: Option<Timestamp>,
    samples: u64,
    value_sum: f64,
    reference: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "DailyProfile")]
struct DailyProfileRecord {
    since: Timestamp,
    bins: Vec<f64>,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    error_without: f64,
    #[serde(default)]
    error_with: f64,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    error_daily: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "BeforeChange")]
struct BeforeChangeRecord {
    level: f64,
    level_after: f64,
    spread: f64,
    samples: u64,
    wander: Option<f64>,
    since: u64,
    value_sum: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Change")]
struct ChangeRecord {
    started_at: Timestamp,
    detected_at: Timestamp,
    samples: u64,
    upward: bool,
    level_before: f64,
    level_after: f64,
    shift: f64,
    shift_percentage: Option<f64>,
    shift_sd: f64,
    noise_sd: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    outlier: bool,
}

#[cfg(test)]
mod tests {
    use modelwatch_core::alerting::backtest;
    use modelwatch_core::detection::changepoint::Evidence;

    use super::*;

    /// Details as this and earlier versions wrote them: each reads back and is written
    /// again byte for byte, so a change to the core's types that would change the stored
    /// format fails here.
    const STORED: [&str; 4] = [
        r#"{}"#,
        r#"{"past_breaches":[{"would_have_fired_at":"2024-05-01T12:00:00.000Z","value":0.8,"cleared_at":"2024-05-01T13:00:00.000Z"},{"would_have_fired_at":"2024-05-02T12:00:00.000Z","value":null,"alert_id":"alert_00000003"}]}"#,
        r#"{"cadence":{"last_sample_at":"2024-05-01T12:00:00.000Z","gaps_ms":[60000,60000,61000],"last_samples":[{"metric":"latency","at":"2024-05-01T12:00:00.000Z"},{"metric":"accuracy","at":"2024-05-01T11:59:00.000Z"}]}}"#,
        r#"{"change_point":{"last_at":"2024-05-01T12:00:00.000Z","samples":120,"level":0.91,"scale":0.012,"spread":0.0095,"interval_ms":60000.0,"settling":0,"previous_residual":0.25,"lag_product":0.01,"slow_level":0.905,"wander":1.2,"up":{"statistic":0.0,"started_at":null,"samples":0,"value_sum":0.0,"reference":0.0},"down":{"statistic":2.5,"started_at":"2024-05-01T11:58:00.000Z","samples":3,"value_sum":2.61,"reference":0.91},"evidence":{"first_ms":1714564680000,"gaps_ms":[60000,60000],"value":[0.87,0.87,0.87],"residual":[-0.5,-0.25,1e-300]},"last_change":{"started_at":"2024-05-01T10:00:00.000Z","detected_at":"2024-05-01T10:05:00.000Z","samples":6,"upward":false,"level_before":0.95,"level_after":0.91,"shift":-0.04,"shift_percentage":-4.2,"shift_sd":3.3,"noise_sd":0.012},"before_change":{"level":0.95,"level_after":0.91,"spread":0.01,"samples":100,"wander":null,"since":4,"value_sum":3.64},"alarms":2,"typical_log_shift":1.1,"peak_deviation":4.5,"last_outlier":{"started_at":"2024-05-01T09:00:00.000Z","detected_at":"2024-05-01T09:00:00.000Z","samples":1,"upward":true,"level_before":0.95,"level_after":0.99,"shift":0.04,"shift_percentage":null,"shift_sd":3.0,"noise_sd":0.012,"outlier":true},"daily":{"since":"2024-04-28T00:00:00.000Z","bins":[0.1,-0.1],"active":true,"error_without":1.5,"error_with":0.5},"weekly":{"since":"2024-04-28T00:00:00.000Z","bins":[0.2],"active":false,"error_without":1.5,"error_with":0.7,"error_daily":0.6},"last_value":0.87,"resolution":0.01},"cadence":{"gaps_ms":[60000]}}"#,
    ];

    #[test]
    fn stored_details_read_back_and_are_rewritten_byte_for_byte() {
        for text in STORED {
            let detail = detail_from_json(text).unwrap();
            assert_eq!(detail_to_json(&detail).unwrap(), text);
        }
        let detail = detail_from_json(STORED[3]).unwrap();
        let state = detail.change_point.unwrap();
        assert_eq!(state.evidence.len(), 3);
        assert_eq!(state.evidence[2].value, 0.87);
        assert_eq!(state.evidence[2].residual, 1e-300);
        assert_eq!(state.down.samples, 3);
        assert!(state.last_outlier.unwrap().outlier);
        assert_eq!(detail.cadence.unwrap().gaps_ms, vec![60000]);
    }

    /// A state stored before a field existed reads back with the field's default.
    #[test]
    fn a_detector_stored_before_profiles_and_outliers_reads_back() {
        let mut old: serde_json::Value = serde_json::from_str(STORED[3]).unwrap();
        let state = old["change_point"].as_object_mut().unwrap();
        for field in [
            "daily",
            "weekly",
            "peak_deviation",
            "last_value",
            "resolution",
        ] {
            assert!(state.remove(field).is_some(), "{field}");
        }
        let read = detail_from_json(&old.to_string()).unwrap();
        let state = read.change_point.unwrap();
        assert_eq!((state.daily, state.weekly), (None, None));
        assert_eq!(state.peak_deviation, 0.0);
        assert_eq!(state.last_value, None);
    }

    #[test]
    fn evidence_stored_as_a_list_of_samples_still_reads() {
        let stored = r#"{"change_point":{"samples":0,"level":0.0,"scale":0.0,"spread":0.0,"settling":0,
            "up":{"statistic":0.0,"samples":0,"value_sum":0.0,"reference":0.0},
            "down":{"statistic":0.0,"samples":0,"value_sum":0.0,"reference":0.0},
            "evidence":[{"at":"2023-11-14T22:13:20.000Z","value":0.95,"residual":0.25},
                {"at":1700000060000,"value":0.96,"residual":-0.5}]}}"#;
        let read = detail_from_json(stored).unwrap().change_point.unwrap();
        let at = |ms| Timestamp::from_millis(ms).unwrap();
        assert_eq!(
            read.evidence,
            vec![
                Evidence {
                    at: at(1_700_000_000_000),
                    value: 0.95,
                    residual: 0.25
                },
                Evidence {
                    at: at(1_700_000_060_000),
                    value: 0.96,
                    residual: -0.5
                },
            ]
        );
    }

    /// The detector's memory after a real run, written and read back, is the memory it
    /// was, to the last bit: a state stored by one evaluator resumes exactly in another.
    #[test]
    fn a_detector_s_memory_reads_back_exactly() {
        let detail = backtest_detail();
        let state = detail.change_point.as_ref().unwrap();
        assert!(!state.evidence.is_empty() || state.last_change.is_some());
        let text = detail_to_json(&detail).unwrap();
        assert_eq!(detail_from_json(&text).unwrap(), detail);
    }

    /// The detail a change-point rule keeps after a series that shifts, with noise.
    fn backtest_detail() -> StateDetail {
        use modelwatch_core::alerting::{Observation, Rule, RuleId, RuleSpec, SeriesState};
        use modelwatch_core::{Direction, Version};
        let spec = RuleSpec {
            name: "shift".into(),
            model: "fraud".into(),
            metric: "accuracy".into(),
            condition_type: Some("change_point".into()),
            ..RuleSpec::default()
        };
        let at = |minute: i64| Timestamp::from_millis(1_714_521_600_000 + minute * 60_000).unwrap();
        let rule = Rule::create(spec, RuleId::from_u32(1), at(0)).unwrap();
        let observations: Vec<(Timestamp, Observation)> = (1..600i64)
            .map(|i| {
                let noise = ((i * 7919) % 13) as f64 / 1000.0;
                let value = if i >= 400 { 0.85 } else { 0.9 } + noise;
                let observation = Observation::Sample {
                    at: at(i),
                    value,
                    direction: Direction::HigherIsBetter,
                };
                (at(i), observation)
            })
            .collect();
        let version = Version::parse("v1").unwrap();
        backtest(&rule, &version, &observations, SeriesState::default())
            .final_state
            .detail
    }
}
