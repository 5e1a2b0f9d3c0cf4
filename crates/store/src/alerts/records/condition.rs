//! The records of a rule's condition and anti-flap settings, flattened into the stored
//! rule, and of the small enums the stored rule and alert name by their snake-case names
//! (severity, comparison operator and mode, change direction, seasonality).

use modelwatch_core::alerting::{
    AntiFlap, ChangeDirection, ChangePointCondition, ComparisonMode, ComparisonOperator, Condition,
    NoDataCondition, Severity,
};
use modelwatch_core::detection::Seasonality;
use serde::{Deserialize, Serialize};

use super::option_record;

#[derive(Serialize, Deserialize)]
#[serde(remote = "Severity", rename_all = "snake_case")]
pub(crate) enum SeverityRecord {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "ComparisonOperator", rename_all = "snake_case")]
pub(crate) enum ComparisonOperatorRecord {
    Gt,
    Lt,
    Gte,
    Lte,
    Eq,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "ComparisonMode", rename_all = "snake_case")]
enum ComparisonModeRecord {
    Auto,
    Latest,
    Window,
}

/// A degradation rule stored before the comparison could be chosen compared the latest
/// value.
fn stored_default_comparison() -> ComparisonMode {
    ComparisonMode::Latest
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "ChangeDirection", rename_all = "snake_case")]
enum ChangeDirectionRecord {
    Worse,
    Both,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Seasonality", rename_all = "snake_case")]
enum SeasonalityRecord {
    Daily,
    Weekly,
}

option_record!(seasonal, Seasonality, "SeasonalityRecord");

#[derive(Serialize, Deserialize)]
#[serde(
    remote = "Condition",
    tag = "condition_type",
    rename_all = "snake_case"
)]
pub(crate) enum ConditionRecord {
    Threshold {
        #[serde(with = "ComparisonOperatorRecord")]
        comparison_operator: ComparisonOperator,
        threshold_value: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_threshold: Option<f64>,
    },
    Degradation {
        max_degradation_percentage: f64,
        baseline_window_hours: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_percentage: Option<f64>,
        #[serde(default = "stored_default_comparison", with = "ComparisonModeRecord")]
        comparison: ComparisonMode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comparison_hours: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "seasonal")]
        seasonal: Option<Seasonality>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alpha: Option<f64>,
    },
    ChangePoint(#[serde(with = "ChangePointConditionRecord")] ChangePointCondition),
    NoData(#[serde(with = "NoDataConditionRecord")] NoDataCondition),
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "ChangePointCondition")]
pub(crate) struct ChangePointConditionRecord {
    #[serde(with = "ChangeDirectionRecord")]
    change_direction: ChangeDirection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_shift_percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_shift_sd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    false_alarm_interval_samples: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    false_alarm_interval_hours: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "NoDataCondition")]
pub(crate) struct NoDataConditionRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_data_minutes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_data_intervals: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "AntiFlap")]
pub(crate) struct AntiFlapRecord {
    for_evaluations: u32,
    clear_after_evaluations: u32,
    auto_resolve: bool,
}
