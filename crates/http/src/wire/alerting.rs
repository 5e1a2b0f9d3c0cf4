//! Rules, alerts, their transitions, silences and the alert summary on the wire.

use modelwatch_core::alerting as domain;
use modelwatch_core::detection::Seasonality as DomainSeasonality;
use modelwatch_core::{Dataset, DatasetScope, Metric, MetricScope, ModelName, Timestamp, Version};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How urgent an alert is (low < medium < high < critical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl From<domain::Severity> for Severity {
    fn from(severity: domain::Severity) -> Self {
        match severity {
            domain::Severity::Low => Severity::Low,
            domain::Severity::Medium => Severity::Medium,
            domain::Severity::High => Severity::High,
            domain::Severity::Critical => Severity::Critical,
        }
    }
}

/// What happened to an alert: `active` and `acknowledged` alerts were (or may still be)
/// notified, `suppressed` ones were held back by a limit, `resolved` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Active,
    Acknowledged,
    Resolved,
    Suppressed,
}

impl From<domain::AlertStatus> for AlertStatus {
    fn from(status: domain::AlertStatus) -> Self {
        match status {
            domain::AlertStatus::Active => AlertStatus::Active,
            domain::AlertStatus::Acknowledged => AlertStatus::Acknowledged,
            domain::AlertStatus::Resolved => AlertStatus::Resolved,
            domain::AlertStatus::Suppressed => AlertStatus::Suppressed,
        }
    }
}

/// How a threshold rule compares a value with its line (`eq` within its tolerance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonOperator {
    Gt,
    Lt,
    Gte,
    Lte,
    Eq,
}

impl From<domain::ComparisonOperator> for ComparisonOperator {
    fn from(operator: domain::ComparisonOperator) -> Self {
        match operator {
            domain::ComparisonOperator::Gt => ComparisonOperator::Gt,
            domain::ComparisonOperator::Lt => ComparisonOperator::Lt,
            domain::ComparisonOperator::Gte => ComparisonOperator::Gte,
            domain::ComparisonOperator::Lte => ComparisonOperator::Lte,
            domain::ComparisonOperator::Eq => ComparisonOperator::Eq,
        }
    }
}

/// What a degradation rule compares with its baseline: chosen at each evaluation
/// (`auto`), each new value (`latest`), or the mean of `comparison_hours` (`window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonMode {
    Auto,
    Latest,
    Window,
}

impl From<domain::ComparisonMode> for ComparisonMode {
    fn from(mode: domain::ComparisonMode) -> Self {
        match mode {
            domain::ComparisonMode::Auto => ComparisonMode::Auto,
            domain::ComparisonMode::Latest => ComparisonMode::Latest,
            domain::ComparisonMode::Window => ComparisonMode::Window,
        }
    }
}

/// A cycle the baseline follows: the same hours one day or one week earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    Daily,
    Weekly,
}

impl From<DomainSeasonality> for Seasonality {
    fn from(seasonality: DomainSeasonality) -> Self {
        match seasonality {
            DomainSeasonality::Daily => Seasonality::Daily,
            DomainSeasonality::Weekly => Seasonality::Weekly,
        }
    }
}

/// Which shifts a change-point rule reports: only those that make the metric worse, or
/// both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeDirection {
    Worse,
    Both,
}

impl From<domain::ChangeDirection> for ChangeDirection {
    fn from(direction: domain::ChangeDirection) -> Self {
        match direction {
            domain::ChangeDirection::Worse => ChangeDirection::Worse,
            domain::ChangeDirection::Both => ChangeDirection::Both,
        }
    }
}

/// An alert rule. `version` null: every version of the model, each on its own.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rule {
    #[schema(value_type = String, pattern = r"^rule_[0-9a-f]{8}$", example = "rule_75e4c7c4")]
    pub id: domain::RuleId,
    pub name: String,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", required = true)]
    pub version: Option<Version>,
    /// One metric's name, or `*`: the whole version (no-data rules only), silent only
    /// when none of its metrics reports.
    #[schema(value_type = String, pattern = r"^([A-Za-z0-9_.:+@-]{1,128}|\*)$")]
    pub metric: MetricScope,
    /// One dataset's name, `default` (the default dataset), or `*`: each dataset
    /// separately, with a state and alerts of its own.
    #[serde(with = "modelwatch_core::sample::scope_serde")]
    #[schema(value_type = String, pattern = r"^([A-Za-z0-9_.:+@-]{1,128}|\*)$")]
    pub dataset: DatasetScope,
    pub severity: Severity,
    pub enabled: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    pub cooldown_minutes: u32,
    /// Configured channel names.
    pub notify_channels: Vec<String>,
    #[serde(flatten)]
    pub condition: RuleCondition,
    /// Breaching evaluations in a row before the rule fires.
    pub for_evaluations: u32,
    /// Clear evaluations in a row before an alert counts as recovered.
    pub clear_after_evaluations: u32,
    /// Whether a recovered alert resolves itself.
    pub auto_resolve: bool,
}

/// What a rule watches for, tagged by `condition_type`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "condition_type", rename_all = "snake_case")]
pub enum RuleCondition {
    Threshold {
        comparison_operator: ComparisonOperator,
        threshold_value: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        tolerance: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        clear_threshold: Option<f64>,
    },
    Degradation {
        max_degradation_percentage: f64,
        baseline_window_hours: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        clear_percentage: Option<f64>,
        comparison: ComparisonMode,
        #[serde(skip_serializing_if = "Option::is_none")]
        comparison_hours: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seasonal: Option<Seasonality>,
        #[serde(skip_serializing_if = "Option::is_none")]
        alpha: Option<f64>,
    },
    ChangePoint {
        change_direction: ChangeDirection,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_shift_percentage: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_shift_sd: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        false_alarm_interval_samples: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        false_alarm_interval_hours: Option<f64>,
    },
    NoData {
        /// The longest silence, in minutes.
        #[serde(skip_serializing_if = "Option::is_none")]
        no_data_minutes: Option<f64>,
        /// The longest silence, in multiples of the series' usual interval.
        #[serde(skip_serializing_if = "Option::is_none")]
        no_data_intervals: Option<f64>,
    },
}

impl From<&domain::Condition> for RuleCondition {
    fn from(condition: &domain::Condition) -> Self {
        match condition {
            domain::Condition::Threshold {
                comparison_operator,
                threshold_value,
                tolerance,
                clear_threshold,
            } => RuleCondition::Threshold {
                comparison_operator: (*comparison_operator).into(),
                threshold_value: *threshold_value,
                tolerance: *tolerance,
                clear_threshold: *clear_threshold,
            },
            domain::Condition::Degradation {
                max_degradation_percentage,
                baseline_window_hours,
                clear_percentage,
                comparison,
                comparison_hours,
                seasonal,
                alpha,
            } => RuleCondition::Degradation {
                max_degradation_percentage: *max_degradation_percentage,
                baseline_window_hours: *baseline_window_hours,
                clear_percentage: *clear_percentage,
                comparison: (*comparison).into(),
                comparison_hours: *comparison_hours,
                seasonal: seasonal.map(Into::into),
                alpha: *alpha,
            },
            domain::Condition::ChangePoint(condition) => RuleCondition::ChangePoint {
                change_direction: condition.change_direction.into(),
                min_shift_percentage: condition.min_shift_percentage,
                min_shift_sd: condition.min_shift_sd,
                false_alarm_interval_samples: condition.false_alarm_interval_samples,
                false_alarm_interval_hours: condition.false_alarm_interval_hours,
            },
            domain::Condition::NoData(condition) => RuleCondition::NoData {
                no_data_minutes: condition.no_data_minutes,
                no_data_intervals: condition.no_data_intervals,
            },
        }
    }
}

impl From<&domain::Rule> for Rule {
    fn from(rule: &domain::Rule) -> Self {
        Rule {
            id: rule.id.clone(),
            name: rule.name.clone(),
            model: rule.model.clone(),
            version: rule.version.clone(),
            metric: rule.metric.clone(),
            dataset: rule.dataset.clone(),
            severity: rule.severity.into(),
            enabled: rule.enabled,
            created_at: rule.created_at,
            updated_at: rule.updated_at,
            cooldown_minutes: rule.cooldown_minutes,
            notify_channels: rule.notify_channels.clone(),
            condition: (&rule.condition).into(),
            for_evaluations: rule.anti_flap.for_evaluations,
            clear_after_evaluations: rule.anti_flap.clear_after_evaluations,
            auto_resolve: rule.anti_flap.auto_resolve,
        }
    }
}

/// `POST /api/v1/rules` and `POST /api/v1/rules/backtest`: a rule to create (or replay),
/// in the seed's flat shape: a threshold rule gives `threshold_value` and
/// `comparison_operator`, a degradation rule `max_degradation_percentage`, a change-point
/// or no-data rule its `condition_type`. Any other field is refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// The rule's name.
    #[serde(alias = "rule_name")]
    pub name: String,
    /// The model watched (the seed's `model_name` works too).
    #[serde(alias = "model_name")]
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: String,
    /// One version (the seed's `model_version` works too); absent: every version, each on its own.
    #[serde(default, alias = "model_version")]
    pub version: Option<String>,
    /// The metric watched (the seed's `metric_type` works too), or `*`: the whole version,
    /// for no-data rules only.
    #[serde(alias = "metric_type")]
    #[schema(pattern = r"^([A-Za-z0-9_.:+@-]{1,128}|\*)$")]
    pub metric: String,
    /// A dataset's name, `default` (the default, also when absent), or `*` for each dataset separately, each with its own state and alerts.
    #[serde(default)]
    pub dataset: Option<String>,
    /// `low`, `medium` (default), `high` or `critical`.
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub cooldown_minutes: Option<i64>,
    /// Configured channel names.
    #[serde(default)]
    pub notify_channels: Option<Vec<String>>,
    #[serde(default)]
    pub threshold_value: Option<f64>,
    /// A threshold rule: `lt`, `lte`, `gt`, `gte` or `eq`.
    #[serde(default)]
    pub comparison_operator: Option<String>,
    #[serde(default)]
    pub tolerance: Option<f64>,
    #[serde(default)]
    pub clear_threshold: Option<f64>,
    #[serde(default)]
    pub max_degradation_percentage: Option<f64>,
    #[serde(default)]
    pub baseline_window_hours: Option<i64>,
    #[serde(default)]
    pub clear_percentage: Option<f64>,
    /// A degradation rule: `auto` (default), `latest` or `window` (with `comparison_hours`).
    #[serde(default)]
    pub comparison: Option<String>,
    #[serde(default)]
    pub comparison_hours: Option<i64>,
    /// A degradation rule: `daily` or `weekly`.
    #[serde(default)]
    pub seasonal: Option<String>,
    #[serde(default)]
    pub alpha: Option<f64>,
    /// `threshold`, `degradation`, `change_point` (or `change-point`) or `no_data` (or `no-data`); optional where the fields given say which.
    #[serde(default)]
    pub condition_type: Option<String>,
    /// A change-point rule: `worse` (default) or `both`.
    #[serde(default)]
    pub change_direction: Option<String>,
    #[serde(default)]
    pub min_shift_percentage: Option<f64>,
    #[serde(default)]
    pub min_shift_sd: Option<f64>,
    #[serde(default)]
    pub false_alarm_interval_samples: Option<i64>,
    #[serde(default)]
    pub false_alarm_interval_hours: Option<f64>,
    /// A no-data rule: the longest silence, in minutes.
    #[serde(default)]
    pub no_data_minutes: Option<f64>,
    /// A no-data rule: the longest silence, in multiples of the series' usual interval.
    #[serde(default)]
    pub no_data_intervals: Option<f64>,
    #[serde(default)]
    pub for_evaluations: Option<i64>,
    #[serde(default)]
    pub clear_after_evaluations: Option<i64>,
    #[serde(default)]
    pub auto_resolve: Option<bool>,
}

/// Maps a rule's wire fields to the domain's one for one, for a new rule and for a
/// change: each is a full destructuring and a full struct literal, so a field added on
/// one side only (or to the spec and not the patch) does not compile.
macro_rules! rule_fields_to_domain {
    ($($field:ident),* $(,)?) => {
        impl From<RuleRequest> for domain::RuleSpec {
            fn from(request: RuleRequest) -> Self {
                let RuleRequest { $($field),* } = request;
                domain::RuleSpec { $($field),* }
            }
        }

        impl From<RulePatchRequest> for domain::RulePatch {
            fn from(request: RulePatchRequest) -> Self {
                let RulePatchRequest { $($field),* } = request;
                domain::RulePatch { $($field),* }
            }
        }
    };
}

/// `PATCH /api/v1/rules/{id}`: the fields to change, as for [`RuleRequest`]; absent
/// fields keep their value, `version: null` widens the rule to every version, and a
/// field of another condition kind switches the rule to it. Any other field is refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatchRequest {
    #[serde(default, alias = "rule_name")]
    pub name: Option<String>,
    #[serde(default, alias = "model_name")]
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: Option<String>,
    /// One version; `null` widens the rule to every version.
    #[serde(default, alias = "model_version", deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Option<Option<String>>,
    /// A metric, or `*` (the whole version, no-data rules only).
    #[serde(default, alias = "metric_type")]
    #[schema(pattern = r"^([A-Za-z0-9_.:+@-]{1,128}|\*)$")]
    pub metric: Option<String>,
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub cooldown_minutes: Option<i64>,
    #[serde(default)]
    pub notify_channels: Option<Vec<String>>,
    #[serde(default)]
    pub threshold_value: Option<f64>,
    #[serde(default)]
    pub comparison_operator: Option<String>,
    #[serde(default)]
    pub tolerance: Option<f64>,
    #[serde(default)]
    pub clear_threshold: Option<f64>,
    #[serde(default)]
    pub max_degradation_percentage: Option<f64>,
    #[serde(default)]
    pub baseline_window_hours: Option<i64>,
    #[serde(default)]
    pub clear_percentage: Option<f64>,
    #[serde(default)]
    pub comparison: Option<String>,
    #[serde(default)]
    pub comparison_hours: Option<i64>,
    #[serde(default)]
    pub seasonal: Option<String>,
    #[serde(default)]
    pub alpha: Option<f64>,
    #[serde(default)]
    pub condition_type: Option<String>,
    #[serde(default)]
    pub change_direction: Option<String>,
    #[serde(default)]
    pub min_shift_percentage: Option<f64>,
    #[serde(default)]
    pub min_shift_sd: Option<f64>,
    #[serde(default)]
    pub false_alarm_interval_samples: Option<i64>,
    #[serde(default)]
    pub false_alarm_interval_hours: Option<f64>,
    #[serde(default)]
    pub no_data_minutes: Option<f64>,
    #[serde(default)]
    pub no_data_intervals: Option<f64>,
    #[serde(default)]
    pub for_evaluations: Option<i64>,
    #[serde(default)]
    pub clear_after_evaluations: Option<i64>,
    #[serde(default)]
    pub auto_resolve: Option<bool>,
}

/// A field given, `null` included: `Some(None)` for `null`, `None` when absent.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

rule_fields_to_domain!(
    name,
    model,
    version,
    metric,
    dataset,
    severity,
    enabled,
    cooldown_minutes,
    notify_channels,
    threshold_value,
    comparison_operator,
    tolerance,
    clear_threshold,
    max_degradation_percentage,
    baseline_window_hours,
    clear_percentage,
    comparison,
    comparison_hours,
    seasonal,
    alpha,
    condition_type,
    change_direction,
    min_shift_percentage,
    min_shift_sd,
    false_alarm_interval_samples,
    false_alarm_interval_hours,
    no_data_minutes,
    no_data_intervals,
    for_evaluations,
    clear_after_evaluations,
    auto_resolve,
);

/// `GET /api/v1/rules`: the rules, by id.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesResponse {
    pub rules: Vec<Rule>,
}

/// A significance test as the detector reported it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignificanceTest {
    /// The one-sided p-value of the worsening; null when the test could not produce a
    /// finite one.
    #[schema(required = true)]
    pub p_value: Option<f64>,
    /// The test(s) that produced it, e.g. `welch_t+batch_means`.
    pub method: String,
    /// The level it was judged at.
    pub alpha: f64,
}

impl From<&domain::SignificanceTest> for SignificanceTest {
    fn from(test: &domain::SignificanceTest) -> Self {
        SignificanceTest {
            p_value: test.p_value,
            method: test.method.clone(),
            alpha: test.alpha,
        }
    }
}

/// The line an alert crossed, tagged by `condition_type` like its rule's condition.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "condition_type", rename_all = "snake_case")]
pub enum Trigger {
    Threshold {
        comparison_operator: ComparisonOperator,
        threshold_value: f64,
    },
    Degradation {
        max_degradation_percentage: f64,
        degradation_percentage: f64,
        current_value: f64,
        baseline_value: f64,
        /// The test at the observation that fired or last updated the alert (absent in
        /// alerts stored before it was recorded).
        #[serde(skip_serializing_if = "Option::is_none")]
        test: Option<SignificanceTest>,
    },
    ChangePoint {
        change_direction: ChangeDirection,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_shift_percentage: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_shift_sd: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        false_alarm_interval_samples: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        false_alarm_interval_hours: Option<f64>,
        /// The first sample of the shift.
        #[schema(value_type = String, format = DateTime)]
        change_started_at: Timestamp,
        level_before: f64,
        level_after: f64,
        /// `level_after − level_before`, in the metric's units.
        shift: f64,
        /// The shift in percent of `|level_before|`; absent when that is zero.
        #[serde(skip_serializing_if = "Option::is_none")]
        shift_percentage: Option<f64>,
        /// The shift in noise units.
        shift_sd: f64,
        noise_sd: f64,
    },
    NoData {
        #[serde(skip_serializing_if = "Option::is_none")]
        no_data_minutes: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        no_data_intervals: Option<f64>,
        /// The newest sample before the silence.
        #[schema(value_type = String, format = DateTime)]
        last_sample_at: Timestamp,
        /// How long it had been silent when observed.
        silent_minutes: f64,
        /// The series' usual interval, once known.
        #[serde(skip_serializing_if = "Option::is_none")]
        usual_interval_minutes: Option<f64>,
        /// The longest silence the rule allowed.
        limit_minutes: f64,
        /// A rule on a whole version (`*`): the metrics seen last before the silence,
        /// newest first, each with its last sample's time.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        last_samples: Vec<LastSample>,
    },
}

/// A metric of a version and the time of its newest sample.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastSample {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub metric: Metric,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

impl From<&domain::no_data::LastSample> for LastSample {
    fn from(seen: &domain::no_data::LastSample) -> Self {
        LastSample {
            metric: seen.metric.clone(),
            at: seen.at,
        }
    }
}

impl From<&domain::Trigger> for Trigger {
    fn from(trigger: &domain::Trigger) -> Self {
        match trigger {
            domain::Trigger::Threshold {
                comparison_operator,
                threshold_value,
            } => Trigger::Threshold {
                comparison_operator: (*comparison_operator).into(),
                threshold_value: *threshold_value,
            },
            domain::Trigger::Degradation {
                max_degradation_percentage,
                degradation_percentage,
                current_value,
                baseline_value,
                test,
            } => Trigger::Degradation {
                max_degradation_percentage: *max_degradation_percentage,
                degradation_percentage: *degradation_percentage,
                current_value: *current_value,
                baseline_value: *baseline_value,
                test: test.as_ref().map(Into::into),
            },
            domain::Trigger::ChangePoint {
                condition,
                change_started_at,
                level_before,
                level_after,
                shift,
                shift_percentage,
                shift_sd,
                noise_sd,
            } => Trigger::ChangePoint {
                change_direction: condition.change_direction.into(),
                min_shift_percentage: condition.min_shift_percentage,
                min_shift_sd: condition.min_shift_sd,
                false_alarm_interval_samples: condition.false_alarm_interval_samples,
                false_alarm_interval_hours: condition.false_alarm_interval_hours,
                change_started_at: *change_started_at,
                level_before: *level_before,
                level_after: *level_after,
                shift: *shift,
                shift_percentage: *shift_percentage,
                shift_sd: *shift_sd,
                noise_sd: *noise_sd,
            },
            domain::Trigger::NoData {
                condition,
                last_sample_at,
                silent_minutes,
                usual_interval_minutes,
                limit_minutes,
                last_samples,
            } => Trigger::NoData {
                no_data_minutes: condition.no_data_minutes,
                no_data_intervals: condition.no_data_intervals,
                last_sample_at: *last_sample_at,
                silent_minutes: *silent_minutes,
                usual_interval_minutes: *usual_interval_minutes,
                limit_minutes: *limit_minutes,
                last_samples: last_samples.iter().map(Into::into).collect(),
            },
        }
    }
}

/// Why a firing notification was not queued, tagged by `reason`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum HoldReason {
    /// `enable_alerts` is off.
    AlertsDisabled,
    Silenced {
        #[schema(value_type = String, pattern = r"^silence_[0-9a-f]{8}$")]
        silence_id: domain::SilenceId,
    },
    BelowMinSeverity {
        min_severity_to_notify: Severity,
    },
    /// The rule names no channel to notify.
    NoChannels,
    MaxAlertsPerHour {
        limit: u32,
    },
    MaxAlertsPerModelPerHour {
        limit: u32,
    },
    /// The alert was notified already and its severity did not rise.
    AlreadyNotified,
    /// Someone acknowledged the alert and its severity did not rise.
    Acknowledged,
    /// The observation is older than the paging horizon.
    OlderThanHorizon,
}

impl From<&domain::HoldReason> for HoldReason {
    fn from(reason: &domain::HoldReason) -> Self {
        match reason {
            domain::HoldReason::AlertsDisabled => HoldReason::AlertsDisabled,
            domain::HoldReason::Silenced { silence_id } => HoldReason::Silenced {
                silence_id: silence_id.clone(),
            },
            domain::HoldReason::BelowMinSeverity {
                min_severity_to_notify,
            } => HoldReason::BelowMinSeverity {
                min_severity_to_notify: (*min_severity_to_notify).into(),
            },
            domain::HoldReason::NoChannels => HoldReason::NoChannels,
            domain::HoldReason::MaxAlertsPerHour { limit } => {
                HoldReason::MaxAlertsPerHour { limit: *limit }
            }
            domain::HoldReason::MaxAlertsPerModelPerHour { limit } => {
                HoldReason::MaxAlertsPerModelPerHour { limit: *limit }
            }
            domain::HoldReason::AlreadyNotified => HoldReason::AlreadyNotified,
            domain::HoldReason::Acknowledged => HoldReason::Acknowledged,
            domain::HoldReason::OlderThanHorizon => HoldReason::OlderThanHorizon,
        }
    }
}

/// One alert: a rule firing for one model version (and dataset). `value` and
/// `worst_value` are in the condition's terms: the metric value for threshold rules,
/// the degradation percentage for degradation rules.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$", example = "alert_08ae4e0f")]
    pub id: domain::AlertId,
    #[schema(value_type = String, pattern = r"^rule_[0-9a-f]{8}$", example = "rule_75e4c7c4")]
    pub rule_id: domain::RuleId,
    pub rule_name: String,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    /// The dataset whose series fired; absent for the default dataset.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub dataset: Option<Dataset>,
    /// The rule's metric, or `*` for an alert about the whole version.
    #[schema(value_type = String, pattern = r"^([A-Za-z0-9_.:+@-]{1,128}|\*)$")]
    pub metric: MetricScope,
    pub severity: Severity,
    pub status: AlertStatus,
    pub message: String,
    pub value: f64,
    pub worst_value: f64,
    pub trigger: Trigger,
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Timestamp,
    pub occurrences: u32,
    /// Whether a firing notification was queued for this alert.
    pub notified: bool,
    /// Why the last firing notification was not queued, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_reason: Option<HoldReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution_notes: Option<String>,
    /// For a metric computed from predictions and labels: the share of the window's
    /// predictions that had their label when the alert was decided (fired or last
    /// updated). Absent for pushed metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1)]
    pub label_coverage: Option<f64>,
}

impl From<&domain::Alert> for Alert {
    fn from(alert: &domain::Alert) -> Self {
        Alert {
            id: alert.id.clone(),
            rule_id: alert.rule_id.clone(),
            rule_name: alert.rule_name.clone(),
            model: alert.model.clone(),
            version: alert.version.clone(),
            dataset: alert.dataset.clone(),
            metric: alert.metric.clone(),
            severity: alert.severity.into(),
            status: alert.status.into(),
            message: alert.message.clone(),
            value: alert.value,
            worst_value: alert.worst_value,
            trigger: (&alert.trigger).into(),
            first_seen: alert.first_seen,
            last_seen: alert.last_seen,
            occurrences: alert.occurrences,
            notified: alert.notified,
            hold_reason: alert.hold_reason.as_ref().map(Into::into),
            acknowledged_by: alert.acknowledged_by.clone(),
            acknowledged_at: alert.acknowledged_at,
            resolved_by: alert.resolved_by.clone(),
            resolved_at: alert.resolved_at,
            resolution_notes: alert.resolution_notes.clone(),
            label_coverage: alert.label_coverage,
        }
    }
}

/// One change of an alert's status. `from` is null when the alert was created;
/// escalations and closing a suppressed alert keep the status and say so in `notes`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertTransition {
    #[schema(value_type = String, pattern = r"^alert_[0-9a-f]{8}$")]
    pub alert_id: domain::AlertId,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub by: String,
    #[schema(required = true)]
    pub from: Option<AlertStatus>,
    pub to: AlertStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl From<&domain::AlertTransition> for AlertTransition {
    fn from(transition: &domain::AlertTransition) -> Self {
        AlertTransition {
            alert_id: transition.alert_id.clone(),
            at: transition.at,
            by: transition.by.clone(),
            from: transition.from.map(Into::into),
            to: transition.to.into(),
            notes: transition.notes.clone(),
        }
    }
}

/// `GET /api/v1/alerts/{id}/history`: an alert's transitions, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertHistoryResponse {
    pub history: Vec<AlertTransition>,
}

/// A silence: notifications for a model (one version or metric, when given) muted from
/// `starts_at` until `ends_at`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    #[schema(value_type = String, pattern = r"^silence_[0-9a-f]{8}$", example = "silence_62b16460")]
    pub id: domain::SilenceId,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    /// null silences every version.
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", required = true)]
    pub version: Option<Version>,
    /// null silences every metric.
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", required = true)]
    pub metric: Option<Metric>,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&domain::Silence> for Silence {
    fn from(silence: &domain::Silence) -> Self {
        Silence {
            id: silence.id.clone(),
            model: silence.model.clone(),
            version: silence.version.clone(),
            metric: silence.metric.clone(),
            starts_at: silence.starts_at,
            ends_at: silence.ends_at,
            created_by: silence.created_by.clone(),
            comment: silence.comment.clone(),
            created_at: silence.created_at,
        }
    }
}

/// `POST /api/v1/silences`: a silence to add. `starts_at` defaults to now; give
/// `ends_at` or `duration_minutes`. The seed's `model_name`, `model_version` and
/// `metric_type` work too; any other field is refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    #[serde(alias = "model_name")]
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "recommender")]
    pub model: String,
    /// Only this version (absent or empty: every version).
    #[serde(default, alias = "model_version")]
    pub version: Option<String>,
    /// Only this metric (absent or empty: every metric).
    #[serde(default, alias = "metric_type")]
    pub metric: Option<String>,
    /// RFC 3339 or epoch milliseconds (default: now).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<Timestamp>,
    /// RFC 3339 or epoch milliseconds; or give `duration_minutes`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub duration_minutes: Option<i64>,
    pub created_by: String,
    pub comment: String,
}

impl From<SilenceRequest> for domain::SilenceSpec {
    fn from(request: SilenceRequest) -> Self {
        domain::SilenceSpec {
            model: request.model,
            version: request.version,
            metric: request.metric,
            starts_at: request.starts_at,
            ends_at: request.ends_at,
            duration_minutes: request.duration_minutes,
            created_by: request.created_by,
            comment: request.comment,
        }
    }
}

/// `GET /api/v1/silences`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilencesResponse {
    pub silences: Vec<Silence>,
}

/// Counts of the alerts alive in a window, by status and by severity.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSummary {
    /// The model counted; absent when every model is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: Option<ModelName>,
    pub total_count: u32,
    pub active_count: u32,
    pub acknowledged_count: u32,
    pub resolved_count: u32,
    pub suppressed_count: u32,
    pub critical_count: u32,
    pub high_count: u32,
    pub medium_count: u32,
    pub low_count: u32,
}

impl From<&domain::AlertSummary> for AlertSummary {
    fn from(summary: &domain::AlertSummary) -> Self {
        AlertSummary {
            model: summary.model.clone(),
            total_count: summary.total_count,
            active_count: summary.active_count,
            acknowledged_count: summary.acknowledged_count,
            resolved_count: summary.resolved_count,
            suppressed_count: summary.suppressed_count,
            critical_count: summary.critical_count,
            high_count: summary.high_count,
            medium_count: summary.medium_count,
            low_count: summary.low_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use modelwatch_store::alerts::records::{deserialize_alert, rule_from_body, serialize_alert};
    use serde_json::{json, Value};

    use super::*;

    /// The wire form of the alert read from `stored` is the alert's stored JSON, which
    /// is what the API answered with before it had wire types.
    fn same_alert_json(stored: Value) {
        let domain = deserialize_alert(stored).unwrap();
        let expected = serialize_alert(&domain, serde_json::value::Serializer).unwrap();
        assert_eq!(
            serde_json::to_value(Alert::from(&domain)).unwrap(),
            expected
        );
    }

    fn rule(condition: Value) -> Value {
        let mut rule = json!({
            "id": "rule_0000002a", "name": "latency", "model": "fraud", "version": null,
            "metric": "latency", "dataset": "*", "severity": "high", "enabled": true,
            "created_at": "2024-05-01T12:00:00.000Z", "updated_at": "2024-05-01T12:00:00.000Z",
            "cooldown_minutes": 30, "notify_channels": ["ops"],
            "for_evaluations": 2, "clear_after_evaluations": 3, "auto_resolve": true
        });
        for (field, value) in condition.as_object().unwrap() {
            rule[field] = value.clone();
        }
        rule
    }

    /// The domain rule `rule` describes, read as the store reads a stored rule (the
    /// core's `Rule` has no serde; the API's form of a rule is its stored form).
    fn domain_rule(rule: &Value) -> domain::Rule {
        rule_from_body(&rule.to_string()).unwrap()
    }

    #[test]
    fn every_rule_condition_has_the_domain_form() {
        for condition in [
            json!({"condition_type": "threshold", "comparison_operator": "gt", "threshold_value": 100.0, "tolerance": 0.5, "clear_threshold": 90.0}),
            json!({"condition_type": "threshold", "comparison_operator": "eq", "threshold_value": 1.0}),
            json!({"condition_type": "degradation", "max_degradation_percentage": 5.0, "baseline_window_hours": 24, "clear_percentage": 2.0, "comparison": "window", "comparison_hours": 2, "seasonal": "weekly", "alpha": 0.01}),
            json!({"condition_type": "degradation", "max_degradation_percentage": 5.0, "baseline_window_hours": 24, "comparison": "auto"}),
            json!({"condition_type": "change_point", "change_direction": "both", "min_shift_percentage": 3.0, "min_shift_sd": 1.5, "false_alarm_interval_samples": 500, "false_alarm_interval_hours": 12.0}),
            json!({"condition_type": "change_point", "change_direction": "worse"}),
            json!({"condition_type": "no_data", "no_data_minutes": 30.0, "no_data_intervals": 4.0}),
            json!({"condition_type": "no_data", "no_data_minutes": 30.0}),
        ] {
            let rule = rule(condition);
            assert_eq!(
                serde_json::to_value(Rule::from(&domain_rule(&rule))).unwrap(),
                rule
            );
        }
    }

    fn alert(trigger: Value, more: Value) -> Value {
        let mut alert = json!({
            "id": "alert_0000002a", "rule_id": "rule_00000007", "rule_name": "precision drop",
            "model": "fraud_detector", "version": "v2", "metric": "precision", "severity": "high",
            "status": "active", "message": "m", "value": 7.5, "worst_value": 7.5,
            "trigger": trigger, "first_seen": "2024-05-01T12:00:00.000Z",
            "last_seen": "2024-05-01T12:00:00.000Z", "occurrences": 1, "notified": true
        });
        for (field, value) in more.as_object().unwrap() {
            alert[field] = value.clone();
        }
        alert
    }

    #[test]
    fn every_alert_trigger_and_hold_reason_has_the_domain_form() {
        let degradation = json!({"condition_type": "degradation", "max_degradation_percentage": 5.0, "degradation_percentage": 7.5, "current_value": 0.87, "baseline_value": 0.94});
        for trigger in [
            json!({"condition_type": "threshold", "comparison_operator": "lt", "threshold_value": 0.9}),
            degradation.clone(),
            json!({"condition_type": "degradation", "max_degradation_percentage": 5.0, "degradation_percentage": 7.5, "current_value": 0.87, "baseline_value": 0.94, "test": {"p_value": null, "method": "welch_t", "alpha": 0.01}}),
            json!({"condition_type": "change_point", "change_direction": "worse", "min_shift_sd": 1.0, "false_alarm_interval_samples": 100, "change_started_at": "2024-05-01T11:00:00.000Z", "level_before": 0.9, "level_after": 0.8, "shift": -0.1, "shift_percentage": -11.1, "shift_sd": 4.0, "noise_sd": 0.025}),
            json!({"condition_type": "no_data", "no_data_intervals": 3.0, "last_sample_at": "2024-05-01T11:00:00.000Z", "silent_minutes": 60.0, "usual_interval_minutes": 5.0, "limit_minutes": 15.0}),
        ] {
            same_alert_json(alert(trigger, json!({})));
        }
        for reason in [
            json!({"reason": "alerts_disabled"}),
            json!({"reason": "silenced", "silence_id": "silence_00000001"}),
            json!({"reason": "below_min_severity", "min_severity_to_notify": "critical"}),
            json!({"reason": "no_channels"}),
            json!({"reason": "max_alerts_per_hour", "limit": 10}),
            json!({"reason": "max_alerts_per_model_per_hour", "limit": 3}),
            json!({"reason": "already_notified"}),
            json!({"reason": "acknowledged"}),
            json!({"reason": "older_than_horizon"}),
        ] {
            same_alert_json(alert(
                degradation.clone(),
                json!({"dataset": "canary", "status": "resolved", "hold_reason": reason,
                    "acknowledged_by": "ann", "acknowledged_at": "2024-05-01T12:01:00.000Z",
                    "resolved_by": "bob", "resolved_at": "2024-05-01T12:02:00.000Z",
                    "resolution_notes": "fixed"}),
            ));
        }
    }

    /// The webhook's body carries the alert as the API shows it. notify renders it from
    /// the domain alert (it cannot name these types: http depends on notify), so this
    /// pins the two to the same JSON for every trigger kind and the optional fields.
    #[test]
    fn the_webhook_body_s_alert_is_the_api_s_alert() {
        for trigger in [
            json!({"condition_type": "threshold", "comparison_operator": "lt", "threshold_value": 0.9}),
            json!({"condition_type": "degradation", "max_degradation_percentage": 5.0, "degradation_percentage": 7.5, "current_value": 0.87, "baseline_value": 0.94, "test": {"p_value": 0.001, "method": "welch_t", "alpha": 0.01}}),
            json!({"condition_type": "change_point", "change_direction": "worse", "min_shift_sd": 1.0, "false_alarm_interval_samples": 100, "change_started_at": "2024-05-01T11:00:00.000Z", "level_before": 0.9, "level_after": 0.8, "shift": -0.1, "shift_percentage": -11.1, "shift_sd": 4.0, "noise_sd": 0.025}),
            json!({"condition_type": "no_data", "no_data_intervals": 3.0, "last_sample_at": "2024-05-01T11:00:00.000Z", "silent_minutes": 60.0, "usual_interval_minutes": 5.0, "limit_minutes": 15.0}),
        ] {
            let stored = alert(
                trigger,
                json!({"dataset": "canary", "hold_reason": {"reason": "no_channels"},
                    "acknowledged_by": "ann", "acknowledged_at": "2024-05-01T12:01:00.000Z"}),
            );
            let domain = deserialize_alert(stored).unwrap();
            let message = modelwatch_notify::AlertMessage {
                dedup_key: "alert_0000002a:firing".into(),
                event: domain::NotificationEvent::Firing,
                alert: domain.clone(),
                at: domain.first_seen,
                alert_url: "http://127.0.0.1:7878/alerts/alert_0000002a".into(),
            };
            let body =
                serde_json::to_value(modelwatch_notify::channels::webhook::body(&message)).unwrap();
            assert_eq!(
                body["alert"],
                serde_json::to_value(Alert::from(&domain)).unwrap()
            );
        }
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn shown<W: Serialize>(wire: W) -> Value {
        serde_json::to_value(wire).unwrap()
    }

    #[test]
    fn transitions_silences_and_summaries_show_as_they_always_have() {
        let noon = at(1_714_564_800_000);
        let transition = domain::AlertTransition {
            alert_id: domain::AlertId::from_u32(42),
            at: noon,
            by: "modelwatch".into(),
            from: None,
            to: domain::AlertStatus::Active,
            notes: None,
        };
        assert_eq!(
            shown(AlertTransition::from(&transition)),
            json!({"alert_id": "alert_0000002a", "at": "2024-05-01T12:00:00.000Z", "by": "modelwatch", "from": null, "to": "active"})
        );
        let resolved = domain::AlertTransition {
            by: "ann".into(),
            from: Some(domain::AlertStatus::Active),
            to: domain::AlertStatus::Resolved,
            notes: Some("fixed".into()),
            ..transition
        };
        assert_eq!(
            shown(AlertTransition::from(&resolved)),
            json!({"alert_id": "alert_0000002a", "at": "2024-05-01T12:00:00.000Z", "by": "ann", "from": "active", "to": "resolved", "notes": "fixed"})
        );
        for (version, metric) in [(None, None), (Some("v1"), Some("f1_score"))] {
            let silence = domain::Silence {
                id: domain::SilenceId::from_u32(1),
                model: ModelName::parse("fraud").unwrap(),
                version: version.map(|v| Version::parse(v).unwrap()),
                metric: metric.map(|m| Metric::parse(m).unwrap()),
                starts_at: noon,
                ends_at: at(1_714_568_400_000),
                created_by: "ann".into(),
                comment: "deploy".into(),
                created_at: noon,
            };
            assert_eq!(
                shown(Silence::from(&silence)),
                json!({
                    "id": "silence_00000001", "model": "fraud", "version": version, "metric": metric,
                    "starts_at": "2024-05-01T12:00:00.000Z", "ends_at": "2024-05-01T13:00:00.000Z",
                    "created_by": "ann", "comment": "deploy", "created_at": "2024-05-01T12:00:00.000Z"
                })
            );
        }
        let summary = domain::AlertSummary {
            model: None,
            total_count: 3,
            active_count: 1,
            acknowledged_count: 1,
            resolved_count: 1,
            suppressed_count: 0,
            critical_count: 1,
            high_count: 1,
            medium_count: 1,
            low_count: 0,
        };
        let counts = json!({"total_count": 3, "active_count": 1, "acknowledged_count": 1,
            "resolved_count": 1, "suppressed_count": 0, "critical_count": 1, "high_count": 1,
            "medium_count": 1, "low_count": 0});
        assert_eq!(shown(AlertSummary::from(&summary)), counts);
        let one_model = domain::AlertSummary {
            model: Some(ModelName::parse("fraud").unwrap()),
            ..summary
        };
        let mut counts = counts;
        counts["model"] = json!("fraud");
        assert_eq!(shown(AlertSummary::from(&one_model)), counts);
    }

    #[test]
    fn a_silence_request_reads_into_the_core_spec() {
        let request: SilenceRequest = serde_json::from_value(
            json!({"model": "fraud", "duration_minutes": 60, "created_by": "ann", "comment": "c"}),
        )
        .unwrap();
        let spec = domain::SilenceSpec {
            model: "fraud".into(),
            duration_minutes: Some(60),
            created_by: "ann".into(),
            comment: "c".into(),
            ..domain::SilenceSpec::default()
        };
        assert_eq!(domain::SilenceSpec::from(request), spec);
        let request: SilenceRequest = serde_json::from_value(json!({"model": "fraud",
            "version": "v1", "metric": "latency", "starts_at": 1714564800000_i64,
            "ends_at": "2024-05-01T13:00:00Z", "created_by": "ann", "comment": "c"}))
        .unwrap();
        assert_eq!(
            domain::SilenceSpec::from(request),
            domain::SilenceSpec {
                model: "fraud".into(),
                version: Some("v1".into()),
                metric: Some("latency".into()),
                starts_at: Some(at(1_714_564_800_000)),
                ends_at: Some(at(1_714_568_400_000)),
                duration_minutes: None,
                created_by: "ann".into(),
                comment: "c".into(),
            }
        );
        for refused in [
            json!({"model": "fraud", "created_by": "ann", "comment": "c", "until": 5}),
            json!({"model": "fraud", "comment": "c"}),
        ] {
            assert!(serde_json::from_value::<SilenceRequest>(refused).is_err());
        }
    }

    /// The seed's names are the edge's: the request types take them, the core does not.
    #[test]
    fn the_seeds_names_are_read_by_the_request_types() {
        let seed_silence = json!({"model_name": "fraud", "model_version": "v1",
            "metric_type": "latency", "duration_minutes": 60, "created_by": "ann", "comment": "c"});
        let silence = json!({"model": "fraud", "version": "v1", "metric": "latency",
            "duration_minutes": 60, "created_by": "ann", "comment": "c"});
        let request: SilenceRequest = serde_json::from_value(seed_silence).unwrap();
        let current: SilenceRequest = serde_json::from_value(silence).unwrap();
        assert_eq!(
            domain::SilenceSpec::from(request),
            domain::SilenceSpec::from(current)
        );

        let seed_rule = json!({"rule_name": "drop", "model_name": "fraud", "model_version": "v2",
            "metric_type": "accuracy", "max_degradation_percentage": 5});
        let rule = json!({"name": "drop", "model": "fraud", "version": "v2",
            "metric": "accuracy", "max_degradation_percentage": 5});
        let request: RuleRequest = serde_json::from_value(seed_rule.clone()).unwrap();
        let spec: domain::RuleSpec = serde_json::from_value(rule).unwrap();
        assert_eq!(domain::RuleSpec::from(request), spec);
        assert!(serde_json::from_value::<domain::RuleSpec>(seed_rule).is_err());

        let seed_patch = json!({"rule_name": "d", "model_name": "f", "model_version": null,
            "metric_type": "latency"});
        let patch = json!({"name": "d", "model": "f", "version": null, "metric": "latency"});
        let request: RulePatchRequest = serde_json::from_value(seed_patch.clone()).unwrap();
        let expected: domain::RulePatch = serde_json::from_value(patch).unwrap();
        assert_eq!(domain::RulePatch::from(request), expected);
        assert_eq!(expected.version, Some(None));
        assert!(serde_json::from_value::<domain::RulePatch>(seed_patch).is_err());
    }

    #[test]
    fn a_rule_request_reads_as_the_core_spec_does() {
        // Every field of the spec, so a field added to it but not here fails.
        let every_field = serde_json::to_value(domain::RuleSpec::default()).unwrap();
        let request: RuleRequest = serde_json::from_value(every_field).unwrap();
        assert_eq!(domain::RuleSpec::from(request), domain::RuleSpec::default());
        for body in [
            json!({"name": "latency", "model": "fraud", "version": "v1", "metric": "latency",
                "threshold_value": 100.0, "comparison_operator": "gt", "severity": "low",
                "notify_channels": ["ops"], "cooldown_minutes": 5, "dataset": "*"}),
            json!({"name": "drop", "model": "fraud", "version": "v2",
                "metric": "accuracy", "max_degradation_percentage": 5,
                "comparison": "window", "comparison_hours": 2, "seasonal": "daily"}),
            json!({"name": "silent", "model": "fraud", "metric": "accuracy",
                "condition_type": "no-data", "no_data_minutes": 30.0}),
        ] {
            let request: RuleRequest = serde_json::from_value(body.clone()).unwrap();
            let spec: domain::RuleSpec = serde_json::from_value(body).unwrap();
            assert_eq!(domain::RuleSpec::from(request), spec);
        }
        for refused in [
            json!({"name": "n", "model": "m", "metric": "accuracy", "threshold_operator": "gt"}),
            json!({"name": "n", "metric": "accuracy"}),
        ] {
            assert!(serde_json::from_value::<RuleRequest>(refused.clone()).is_err());
            assert!(serde_json::from_value::<domain::RuleSpec>(refused).is_err());
        }
    }

    #[test]
    fn a_rule_patch_request_reads_as_the_core_patch_does() {
        // Every field of the patch, so a field added to it but not here fails.
        let every_field = serde_json::to_value(domain::RulePatch::default()).unwrap();
        let request: RulePatchRequest = serde_json::from_value(every_field.clone()).unwrap();
        let patch: domain::RulePatch = serde_json::from_value(every_field).unwrap();
        assert_eq!(domain::RulePatch::from(request), patch);
        for body in [
            json!({"cooldown_minutes": 30}),
            json!({"version": null, "enabled": false}),
            json!({"version": "v2", "condition_type": "change_point", "min_shift_sd": 2.0}),
        ] {
            let request: RulePatchRequest = serde_json::from_value(body.clone()).unwrap();
            let patch: domain::RulePatch = serde_json::from_value(body).unwrap();
            assert_eq!(domain::RulePatch::from(request), patch);
        }
        let refused = json!({"threshold_operator": "gt"});
        assert!(serde_json::from_value::<RulePatchRequest>(refused.clone()).is_err());
        assert!(serde_json::from_value::<domain::RulePatch>(refused).is_err());
    }
}
