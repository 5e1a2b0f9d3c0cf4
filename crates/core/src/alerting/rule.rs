//! Rules: what to watch, when it is a problem, and whom to tell.
//!
//! A [`Rule`] only exists validated. It is built from a [`RuleSpec`], the raw input form
//! in the seed's flat shape (`name`, `model`, `threshold_value` + `comparison_operator`
//! or `max_degradation_percentage`), which refuses unknown fields and turns every mistake
//! into a [`ValidationError`] naming the field. The seed's older names (`rule_name`,
//! `model_name`, …) are the edge's business: the HTTP API's request types accept them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ids::RuleId;
use crate::detection::changepoint::{
    ChangePointSettings, FalseAlarmInterval, MinShift, Sides, DEFAULT_FALSE_ALARM_INTERVAL,
    DEFAULT_MIN_SHIFT,
};
use crate::detection::{significance_level, Seasonality};
use crate::metric::{Direction, MetricScope};
use crate::sample::{check_name, Dataset, DatasetScope, ModelName, ValidationError, Version};
use crate::time::Timestamp;

/// How urgent an alert is; ordered so that `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                ValidationError::new(
                    "severity",
                    format!("{text:?} is not one of low, medium, high, critical"),
                )
            })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::parse(s)
    }
}

/// The seed's comparison operators. `Eq` matches within a tolerance because measured
/// values are floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComparisonOperator {
    Gt,
    Lt,
    Gte,
    Lte,
    Eq,
}

impl ComparisonOperator {
    pub const ALL: [ComparisonOperator; 5] = [
        ComparisonOperator::Gt,
        ComparisonOperator::Lt,
        ComparisonOperator::Gte,
        ComparisonOperator::Lte,
        ComparisonOperator::Eq,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComparisonOperator::Gt => "gt",
            ComparisonOperator::Lt => "lt",
            ComparisonOperator::Gte => "gte",
            ComparisonOperator::Lte => "lte",
            ComparisonOperator::Eq => "eq",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        ComparisonOperator::ALL
            .into_iter()
            .find(|op| op.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                ValidationError::new(
                    "comparison_operator",
                    format!("{text:?} is not one of gt, lt, gte, lte, eq"),
                )
            })
    }

    /// Whether `value` compared with `threshold` holds; `tolerance` is used by `Eq` only.
    pub fn holds(self, value: f64, threshold: f64, tolerance: f64) -> bool {
        match self {
            ComparisonOperator::Gt => value > threshold,
            ComparisonOperator::Lt => value < threshold,
            ComparisonOperator::Gte => value >= threshold,
            ComparisonOperator::Lte => value <= threshold,
            ComparisonOperator::Eq => (value - threshold).abs() <= tolerance,
        }
    }

    /// Words for messages: "below", "at or above", …
    pub fn describe(self) -> &'static str {
        match self {
            ComparisonOperator::Gt => "above",
            ComparisonOperator::Lt => "below",
            ComparisonOperator::Gte => "at or above",
            ComparisonOperator::Lte => "at or below",
            ComparisonOperator::Eq => "equal to",
        }
    }
}

impl fmt::Display for ComparisonOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `eq` without an explicit tolerance: exact up to floating-point noise.
pub const DEFAULT_EQ_TOLERANCE: f64 = 1e-9;
pub const DEFAULT_BASELINE_WINDOW_HOURS: u32 = 24;
pub const DEFAULT_COOLDOWN_MINUTES: u32 = 60;
pub const DEFAULT_SEVERITY: Severity = Severity::Medium;
/// A week; longer cooldowns are almost certainly a typo for something else.
pub const MAX_COOLDOWN_MINUTES: u32 = 7 * 24 * 60;
/// A year of baseline is the most the store keeps online.
pub const MAX_BASELINE_WINDOW_HOURS: u32 = 366 * 24;
pub const MAX_RULE_NAME_LEN: usize = 200;
pub const MAX_ANTI_FLAP_EVALUATIONS: u32 = 1000;
/// A week: a longer comparison window is a different question (compare versions).
pub const MAX_COMPARISON_HOURS: u32 = 7 * 24;

/// What a degradation rule compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComparisonMode {
    /// The best the quality benchmark supports for the series' sampling, chosen at each
    /// evaluation (see [`super::observe`]): the default of a new rule.
    Auto,
    /// Each new value on its own (a prediction interval): how rules stored before the
    /// comparison could be chosen keep working.
    Latest,
    /// The mean of the last `comparison_hours`, as `check --comparison-hours` does.
    Window,
}

impl ComparisonMode {
    pub const ALL: [ComparisonMode; 3] = [
        ComparisonMode::Auto,
        ComparisonMode::Latest,
        ComparisonMode::Window,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComparisonMode::Auto => "auto",
            ComparisonMode::Latest => "latest",
            ComparisonMode::Window => "window",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        ComparisonMode::ALL
            .into_iter()
            .find(|m| m.as_str() == text.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                ValidationError::new(
                    "comparison",
                    format!("{text:?} is not one of auto, latest, window"),
                )
            })
    }
}

fn parse_seasonality(text: &str) -> Result<Seasonality, ValidationError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "daily" => Ok(Seasonality::Daily),
        "weekly" => Ok(Seasonality::Weekly),
        _ => Err(ValidationError::new(
            "seasonal",
            format!("{text:?} is not one of daily, weekly"),
        )),
    }
}
/// What a change-point rule without a minimum shift gets: shifts of one noise unit. One
/// without a false-alarm interval keeps none and gets the detector's
/// [`DEFAULT_FALSE_ALARM_INTERVAL`] (90 days, at least 1,000 samples).
pub const DEFAULT_MIN_SHIFT_SD: f64 = 1.0;

/// When a rule's series is in trouble.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The latest value compared with a fixed threshold. With `clear_threshold` the alert
    /// only clears once the value is past that second line (hysteresis).
    Threshold {
        comparison_operator: ComparisonOperator,
        threshold_value: f64,
        tolerance: Option<f64>,
        clear_threshold: Option<f64>,
    },
    /// The degradation detector's verdict against a baseline, as `check` gives it with
    /// the same windows and significance level: breaching when the change is significant
    /// and worse than `max_degradation_percentage`. With `clear_percentage` the alert
    /// only clears once the degradation is back at or under it.
    Degradation {
        max_degradation_percentage: f64,
        baseline_window_hours: u32,
        clear_percentage: Option<f64>,
        comparison: ComparisonMode,
        /// The comparison window, with `comparison: window`.
        comparison_hours: Option<u32>,
        /// Take the baseline from the same hours one day or one week earlier.
        seasonal: Option<Seasonality>,
        /// The significance level of every test; `None`: the detector's defaults.
        alpha: Option<f64>,
    },
    /// A causal change-point detector on every sample
    /// ([`crate::detection::changepoint`]): breaching at the sample that completes the
    /// evidence of a sustained shift of the level in the watched direction, holding while
    /// the level stays shifted, clear once a shift the other way brings it back.
    ChangePoint(ChangePointCondition),
    /// Nothing reported for longer than a duration or a multiple of the series' usual
    /// interval ([`super::no_data`]): breaching once the silence reaches the limit, clear
    /// at the first sample back.
    NoData(NoDataCondition),
}

/// A no-data rule's limit as stored: a duration, a multiple of the usual interval, or both
/// (the silence must then exceed both).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoDataCondition {
    pub no_data_minutes: Option<f64>,
    pub no_data_intervals: Option<f64>,
}

/// The longest silence a no-data rule may allow: 30 days.
pub const MAX_NO_DATA_MINUTES: f64 = 30.0 * 24.0 * 60.0;
pub const MAX_NO_DATA_INTERVALS: f64 = 10_000.0;

/// Which kind of observation a condition needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    Threshold,
    Degradation,
    ChangePoint,
    NoData,
}

impl ConditionKind {
    pub const ALL: [ConditionKind; 4] = [
        ConditionKind::Threshold,
        ConditionKind::Degradation,
        ConditionKind::ChangePoint,
        ConditionKind::NoData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::Threshold => "threshold",
            ConditionKind::Degradation => "degradation",
            ConditionKind::ChangePoint => "change_point",
            ConditionKind::NoData => "no_data",
        }
    }
}

/// Which shifts a change-point rule reports: those that make the metric worse (its
/// direction says which way that is), or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeDirection {
    Worse,
    Both,
}

impl ChangeDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeDirection::Worse => "worse",
            ChangeDirection::Both => "both",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "worse" => Ok(ChangeDirection::Worse),
            "both" => Ok(ChangeDirection::Both),
            _ => Err(ValidationError::new(
                "change_direction",
                format!("{text:?} is not one of worse, both"),
            )),
        }
    }

    /// The detector's sides for a metric of `direction`.
    pub fn sides(self, direction: Direction) -> Sides {
        match (self, direction) {
            (ChangeDirection::Both, _) => Sides::Both,
            (ChangeDirection::Worse, Direction::HigherIsBetter) => Sides::Down,
            (ChangeDirection::Worse, Direction::LowerIsBetter) => Sides::Up,
        }
    }
}

/// A change-point rule's detector settings as stored: exactly one minimum shift and one
/// false-alarm interval (validation fills in the defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangePointCondition {
    pub change_direction: ChangeDirection,
    pub min_shift_percentage: Option<f64>,
    pub min_shift_sd: Option<f64>,
    pub false_alarm_interval_samples: Option<u64>,
    pub false_alarm_interval_hours: Option<f64>,
}

impl ChangePointCondition {
    /// The detector's settings for a metric of `direction`.
    pub fn settings(&self, direction: Direction) -> ChangePointSettings {
        ChangePointSettings {
            sides: self.change_direction.sides(direction),
            min_shift: match (self.min_shift_percentage, self.min_shift_sd) {
                (Some(p), _) => MinShift::Percent(p),
                (None, Some(sd)) => MinShift::Sd(sd),
                (None, None) => DEFAULT_MIN_SHIFT,
            },
            false_alarm_interval: match (
                self.false_alarm_interval_samples,
                self.false_alarm_interval_hours,
            ) {
                (Some(n), _) => FalseAlarmInterval::Samples(n),
                (None, Some(hours)) => FalseAlarmInterval::Millis((hours * 3_600_000.0) as i64),
                (None, None) => DEFAULT_FALSE_ALARM_INTERVAL,
            },
        }
    }
}

impl Condition {
    pub fn kind(&self) -> ConditionKind {
        match self {
            Condition::Threshold { .. } => ConditionKind::Threshold,
            Condition::Degradation { .. } => ConditionKind::Degradation,
            Condition::ChangePoint(_) => ConditionKind::ChangePoint,
            Condition::NoData(_) => ConditionKind::NoData,
        }
    }
}

/// Anti-flap settings: how many evaluations in a row it takes to fire and to clear.
///
/// The defaults (3 to fire, 3 to clear, no auto-resolve) are chosen so that a signal that
/// crosses its threshold 50 times notifies at most twice: a crossing must persist for
/// three evaluations before anything fires, and once an alert is open every later breach
/// only updates it until a person resolves it. With `auto_resolve` on, the rule's cooldown
/// bounds re-firing instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AntiFlap {
    /// Consecutive breaching evaluations before an alert fires (Prometheus' `for`).
    pub for_evaluations: u32,
    /// Consecutive clear evaluations before the condition counts as cleared.
    pub clear_after_evaluations: u32,
    /// Resolve the alert (as `modelwatch`) once the condition has cleared.
    pub auto_resolve: bool,
}

impl AntiFlap {
    pub const DEFAULT_FOR_EVALUATIONS: u32 = 3;
    pub const DEFAULT_CLEAR_AFTER_EVALUATIONS: u32 = 3;
}

impl Default for AntiFlap {
    fn default() -> Self {
        AntiFlap {
            for_evaluations: Self::DEFAULT_FOR_EVALUATIONS,
            clear_after_evaluations: Self::DEFAULT_CLEAR_AFTER_EVALUATIONS,
            auto_resolve: false,
        }
    }
}

/// A validated alert rule. `version: None` means every version of the model, each
/// evaluated on its own.
///
/// `dataset` says which datasets' series it watches: one dataset (`"canary"`; the
/// default dataset, written `"default"`, when none is given, which is what every rule
/// stored before rules had a dataset watched), or each dataset separately (`"*"`). A rule
/// for each dataset is evaluated per version × dataset, with a state and alerts of its
/// own for each: datasets are never mixed, and one degrading alerts for it alone.
///
/// It has no serde: the API maps it to its wire type, and the store to its record of a
/// rule (which also reads back rules stored under older names).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: RuleId,
    pub name: String,
    pub model: ModelName,
    pub version: Option<Version>,
    /// One metric, or `*` ([`MetricScope::Every`]): the version as a whole, for no-data
    /// rules only.
    pub metric: MetricScope,
    pub dataset: DatasetScope,
    pub severity: Severity,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub cooldown_minutes: u32,
    pub notify_channels: Vec<String>,
    pub condition: Condition,
    pub anti_flap: AntiFlap,
}

impl Rule {
    /// Validates `spec` into a new rule created at `now`.
    pub fn create(spec: RuleSpec, id: RuleId, now: Timestamp) -> Result<Rule, ValidationError> {
        spec.validate(id, now, now)
    }

    /// Applies `patch` and validates the result as a whole; id and creation time stay.
    pub fn update(&self, patch: RulePatch, now: Timestamp) -> Result<Rule, ValidationError> {
        let mut spec = RuleSpec::from(self);
        patch.apply_to(&mut spec)?;
        spec.validate(self.id.clone(), self.created_at, now)
    }

    pub fn with_enabled(&self, enabled: bool, now: Timestamp) -> Rule {
        Rule {
            enabled,
            updated_at: now,
            ..self.clone()
        }
    }

    /// Whether this rule watches `model`/`version`.
    pub fn applies_to(&self, model: &ModelName, version: &Version) -> bool {
        &self.model == model && self.version.as_ref().is_none_or(|v| v == version)
    }

    /// Whether this rule watches the series of `model`/`version` on `dataset` (`None`:
    /// the default dataset).
    pub fn watches(&self, model: &ModelName, version: &Version, dataset: Option<&Dataset>) -> bool {
        self.applies_to(model, version) && self.dataset.matches(dataset)
    }

    pub fn cooldown_millis(&self) -> i64 {
        i64::from(self.cooldown_minutes) * 60_000
    }
}

/// The fields of a rule as people give them, listed once: [`RuleSpec`] (a rule to
/// create) and [`RulePatch`] (a change to one) are both generated from this list, with
/// each field's documentation, so a field cannot be added to one and
/// forgotten in the other (and every mapping to them, in the HTTP API's types and the
/// CLI, is a full struct literal: the compiler asks for the new field there too).
///
/// - `required`: in a spec as they are; in a patch `Option` (absent: unchanged).
/// - `nullable`: `Option` in a spec (absent or `null`: the default); `Option<Option<_>>`
///   in a patch, where `null` (`Some(None)`) clears the value.
/// - `optional`: `Option` in both (absent: the default in a spec, unchanged in a patch).
macro_rules! rule_fields {
    (
        required { $($(#[$r_meta:meta])* $r_field:ident: $r_ty:ty,)* }
        nullable { $($(#[$n_meta:meta])* $n_field:ident: $n_ty:ty,)* }
        optional { $($(#[$o_meta:meta])* $o_field:ident: $o_ty:ty,)* }
    ) => {
        /// The raw input form of a rule in the seed's flat shape; an unknown field is
        /// refused. (The seed's older names, `rule_name`, `model_name`, `model_version`
        /// and `metric_type`, are accepted by the edge's request types, not here.)
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RuleSpec {
            $($(#[$r_meta])* pub $r_field: $r_ty,)*
            $($(#[$n_meta])* #[serde(default)] pub $n_field: Option<$n_ty>,)*
            $($(#[$o_meta])* #[serde(default)] pub $o_field: Option<$o_ty>,)*
        }

        /// A partial update in the same flat shape; absent fields keep their value, `null`
        /// clears a nullable one (`version: null` widens the rule to every version).
        /// Giving a field of another condition kind switches the rule to that kind.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RulePatch {
            $($(#[$r_meta])* #[serde(default)] pub $r_field: Option<$r_ty>,)*
            $(
                $(#[$n_meta])*
                #[serde(default, with = "double_option")]
                pub $n_field: Option<Option<$n_ty>>,
            )*
            $($(#[$o_meta])* #[serde(default)] pub $o_field: Option<$o_ty>,)*
        }

        impl RulePatch {
            /// Lays every field this patch gives over `spec`.
            fn overlay(self, spec: &mut RuleSpec) {
                $(if let Some(value) = self.$r_field { spec.$r_field = value; })*
                $(if let Some(value) = self.$n_field { spec.$n_field = value; })*
                $(if let Some(value) = self.$o_field { spec.$o_field = Some(value); })*
            }
        }
    };
}

rule_fields! {
    required {
        name: String,
        model: String,
        /// A metric's name, or `*` for every metric of the version (no-data rules only).
        metric: String,
    }
    nullable {
        /// One version; none: every version, each evaluated on its own.
        version: String,
    }
    optional {
        /// A dataset's name, `default` (the default, also when absent), or `*` for each
        /// dataset separately.
        dataset: String,
        severity: String,
        enabled: bool,
        cooldown_minutes: i64,
        notify_channels: Vec<String>,
        threshold_value: f64,
        comparison_operator: String,
        tolerance: f64,
        clear_threshold: f64,
        max_degradation_percentage: f64,
        baseline_window_hours: i64,
        clear_percentage: f64,
        /// `auto` (default), `latest` or `window` (with `comparison_hours`).
        comparison: String,
        comparison_hours: i64,
        /// `daily` or `weekly`.
        seasonal: String,
        alpha: f64,
        /// `threshold`, `degradation`, `change_point` or `no_data`; optional where the
        /// fields given say which (a change-point rule with every setting at its default
        /// needs it).
        condition_type: String,
        change_direction: String,
        min_shift_percentage: f64,
        min_shift_sd: f64,
        false_alarm_interval_samples: i64,
        false_alarm_interval_hours: f64,
        /// A no-data rule: the longest silence, in minutes.
        no_data_minutes: f64,
        /// A no-data rule: the longest silence, in multiples of the series' usual interval.
        no_data_intervals: f64,
        for_evaluations: i64,
        clear_after_evaluations: i64,
        auto_resolve: bool,
    }
}

impl RuleSpec {
    fn has_threshold_fields(&self) -> bool {
        self.threshold_value.is_some()
            || self.comparison_operator.is_some()
            || self.tolerance.is_some()
            || self.clear_threshold.is_some()
    }

    fn has_degradation_fields(&self) -> bool {
        self.max_degradation_percentage.is_some()
            || self.baseline_window_hours.is_some()
            || self.clear_percentage.is_some()
            || self.comparison.is_some()
            || self.comparison_hours.is_some()
            || self.seasonal.is_some()
            || self.alpha.is_some()
    }

    fn has_change_point_fields(&self) -> bool {
        self.change_direction.is_some()
            || self.min_shift_percentage.is_some()
            || self.min_shift_sd.is_some()
            || self.false_alarm_interval_samples.is_some()
            || self.false_alarm_interval_hours.is_some()
    }

    fn has_no_data_fields(&self) -> bool {
        self.no_data_minutes.is_some() || self.no_data_intervals.is_some()
    }

    fn clear_no_data_fields(&mut self) {
        self.no_data_minutes = None;
        self.no_data_intervals = None;
    }

    fn clear_change_point_fields(&mut self) {
        self.change_direction = None;
        self.min_shift_percentage = None;
        self.min_shift_sd = None;
        self.false_alarm_interval_samples = None;
        self.false_alarm_interval_hours = None;
    }

    fn clear_threshold_fields(&mut self) {
        self.threshold_value = None;
        self.comparison_operator = None;
        self.tolerance = None;
        self.clear_threshold = None;
    }

    fn clear_degradation_fields(&mut self) {
        self.max_degradation_percentage = None;
        self.baseline_window_hours = None;
        self.clear_percentage = None;
        self.comparison = None;
        self.comparison_hours = None;
        self.seasonal = None;
        self.alpha = None;
    }

    fn validate(
        self,
        id: RuleId,
        created_at: Timestamp,
        updated_at: Timestamp,
    ) -> Result<Rule, ValidationError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if name.chars().count() > MAX_RULE_NAME_LEN {
            return Err(ValidationError::new(
                "name",
                format!("is longer than {MAX_RULE_NAME_LEN} characters"),
            ));
        }
        let model = ModelName::parse(self.model.trim())?;
        let version = match self.version.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(version) => Some(Version::parse(version)?),
        };
        let metric = MetricScope::parse(&self.metric)?;
        let dataset = match self.dataset.as_deref() {
            None => DatasetScope::One(None),
            Some(text) => DatasetScope::parse_scope(text)?,
        };
        let severity = match &self.severity {
            None => DEFAULT_SEVERITY,
            Some(text) => Severity::parse(text)?,
        };
        let cooldown_minutes = match self.cooldown_minutes {
            None => DEFAULT_COOLDOWN_MINUTES,
            Some(minutes) => bounded("cooldown_minutes", minutes, 0, MAX_COOLDOWN_MINUTES)?,
        };
        let condition = self.condition()?;
        if metric == MetricScope::Every && condition.kind() != ConditionKind::NoData {
            return Err(ValidationError::new(
                "metric",
                format!(
                    "* (every metric of the version) applies only to no-data rules, not to a {} rule; name one metric",
                    condition.kind().as_str()
                ),
            ));
        }
        let notify_channels = validate_channels(self.notify_channels.unwrap_or_default())?;
        // A change-point rule breaches at the one sample that completes the evidence of a
        // shift, a no-data rule at the one instant its silence reaches the limit: each
        // fires there or not at all.
        let kind = condition.kind();
        let single_breach = matches!(kind, ConditionKind::ChangePoint | ConditionKind::NoData);
        // A no-data rule's alert is over when data returns: the first sample clears it,
        // and it resolves itself unless asked not to.
        let no_data = kind == ConditionKind::NoData;
        let anti_flap = AntiFlap {
            for_evaluations: match self.for_evaluations {
                None if single_breach => 1,
                None => AntiFlap::DEFAULT_FOR_EVALUATIONS,
                Some(n) if kind == ConditionKind::ChangePoint && n != 1 => {
                    return Err(ValidationError::new(
                        "for_evaluations",
                        "must be 1 for a change-point rule: its detector already waits for a sustained shift",
                    ))
                }
                Some(n) if no_data && n != 1 => {
                    return Err(ValidationError::new(
                        "for_evaluations",
                        "must be 1 for a no-data rule: its limit already says how long to wait",
                    ))
                }
                Some(n) => bounded("for_evaluations", n, 1, MAX_ANTI_FLAP_EVALUATIONS)?,
            },
            clear_after_evaluations: match self.clear_after_evaluations {
                None if no_data => 1,
                None => AntiFlap::DEFAULT_CLEAR_AFTER_EVALUATIONS,
                Some(n) => bounded("clear_after_evaluations", n, 1, MAX_ANTI_FLAP_EVALUATIONS)?,
            },
            auto_resolve: self.auto_resolve.unwrap_or(no_data),
        };
        Ok(Rule {
            id,
            name,
            model,
            version,
            metric,
            dataset,
            severity,
            enabled: self.enabled.unwrap_or(true),
            created_at,
            updated_at,
            cooldown_minutes,
            notify_channels,
            condition,
            anti_flap,
        })
    }

    fn condition(&self) -> Result<Condition, ValidationError> {
        let given: Vec<ConditionKind> = [
            (self.has_threshold_fields(), ConditionKind::Threshold),
            (self.has_degradation_fields(), ConditionKind::Degradation),
            (self.has_change_point_fields(), ConditionKind::ChangePoint),
            (self.has_no_data_fields(), ConditionKind::NoData),
        ]
        .into_iter()
        .filter_map(|(given, kind)| given.then_some(kind))
        .collect();
        let named = match self.condition_type.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                ConditionKind::ALL
                    .into_iter()
                    .find(|kind| kind.as_str() == text.to_ascii_lowercase().replace('-', "_"))
                    .ok_or_else(|| {
                        ValidationError::new(
                            "condition_type",
                            format!(
                                "{text:?} is not one of threshold, degradation, change_point, no_data"
                            ),
                        )
                    })?,
            ),
        };
        let kind = match (named, given.as_slice()) {
            (_, [_, _, ..]) => {
                return Err(ValidationError::new(
                    "condition",
                    "give either threshold_value with comparison_operator, max_degradation_percentage, change-point settings or no-data settings, not both",
                ))
            }
            (Some(named), [given]) if named != *given => {
                return Err(ValidationError::new(
                    "condition_type",
                    format!(
                        "is {} but the fields given are those of a {} condition",
                        named.as_str(),
                        given.as_str()
                    ),
                ))
            }
            (Some(named), _) => named,
            (None, [given]) => *given,
            (None, []) => {
                return Err(ValidationError::new(
                    "condition",
                    "give threshold_value with comparison_operator, max_degradation_percentage, no_data_minutes or no_data_intervals, or condition_type change_point",
                ))
            }
        };
        match kind {
            ConditionKind::Threshold => self.threshold_condition(),
            ConditionKind::Degradation => self.degradation_condition(),
            ConditionKind::ChangePoint => self.change_point_condition(),
            ConditionKind::NoData => self.no_data_condition(),
        }
    }

    fn no_data_condition(&self) -> Result<Condition, ValidationError> {
        if !self.has_no_data_fields() {
            return Err(ValidationError::new(
                "no_data_minutes",
                "a no-data rule needs no_data_minutes, no_data_intervals or both",
            ));
        }
        let no_data_minutes = self
            .no_data_minutes
            .map(|m| in_range("no_data_minutes", m, 1.0 / 60.0, MAX_NO_DATA_MINUTES))
            .transpose()?;
        let no_data_intervals = self
            .no_data_intervals
            .map(|n| in_range("no_data_intervals", n, 1.0, MAX_NO_DATA_INTERVALS))
            .transpose()?;
        Ok(Condition::NoData(NoDataCondition {
            no_data_minutes,
            no_data_intervals,
        }))
    }

    fn change_point_condition(&self) -> Result<Condition, ValidationError> {
        let change_direction = match &self.change_direction {
            None => ChangeDirection::Worse,
            Some(text) => ChangeDirection::parse(text)?,
        };
        let (min_shift_percentage, min_shift_sd) =
            match (self.min_shift_percentage, self.min_shift_sd) {
                (Some(_), Some(_)) => {
                    return Err(ValidationError::new(
                        "min_shift_sd",
                        "give min_shift_percentage or min_shift_sd, not both",
                    ))
                }
                (Some(p), None) => (
                    Some(in_range("min_shift_percentage", p, 0.01, 1000.0)?),
                    None,
                ),
                (None, Some(sd)) => (None, Some(in_range("min_shift_sd", sd, 0.05, 20.0)?)),
                (None, None) => (None, Some(DEFAULT_MIN_SHIFT_SD)),
            };
        let (false_alarm_interval_samples, false_alarm_interval_hours) = match (
            self.false_alarm_interval_samples,
            self.false_alarm_interval_hours,
        ) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "false_alarm_interval_hours",
                    "give false_alarm_interval_samples or false_alarm_interval_hours, not both",
                ))
            }
            (Some(n), None) => {
                let n = u64::try_from(n)
                    .ok()
                    .filter(|n| (10..=1_000_000_000).contains(n))
                    .ok_or_else(|| {
                        ValidationError::new(
                            "false_alarm_interval_samples",
                            format!("{n} is not between 10 and 1000000000"),
                        )
                    })?;
                (Some(n), None)
            }
            (None, Some(hours)) => (
                None,
                Some(in_range("false_alarm_interval_hours", hours, 0.01, 1e6)?),
            ),
            // No interval stated: the detector's default, which depends on the sampling.
            (None, None) => (None, None),
        };
        Ok(Condition::ChangePoint(ChangePointCondition {
            change_direction,
            min_shift_percentage,
            min_shift_sd,
            false_alarm_interval_samples,
            false_alarm_interval_hours,
        }))
    }

    fn threshold_condition(&self) -> Result<Condition, ValidationError> {
        let threshold_value = finite(
            "threshold_value",
            self.threshold_value.ok_or_else(|| {
                ValidationError::new("threshold_value", "is required with comparison_operator")
            })?,
        )?;
        let comparison_operator =
            ComparisonOperator::parse(self.comparison_operator.as_deref().ok_or_else(|| {
                ValidationError::new(
                    "comparison_operator",
                    "is required with threshold_value (one of gt, lt, gte, lte, eq)",
                )
            })?)?;
        let tolerance = match self.tolerance {
            None => None,
            Some(_) if comparison_operator != ComparisonOperator::Eq => {
                return Err(ValidationError::new(
                    "tolerance",
                    "applies only to comparison_operator eq",
                ))
            }
            Some(t) if !t.is_finite() || t < 0.0 => {
                return Err(ValidationError::new(
                    "tolerance",
                    format!("{t} is not a non-negative number"),
                ))
            }
            Some(t) => Some(t),
        };
        let clear_threshold = match self.clear_threshold {
            None => None,
            Some(clear) => {
                let clear = finite("clear_threshold", clear)?;
                // The clear line must lie on the healthy side of the firing line, or an
                // alert could clear while still breaching.
                let healthy_side = match comparison_operator {
                    ComparisonOperator::Lt | ComparisonOperator::Lte => clear >= threshold_value,
                    ComparisonOperator::Gt | ComparisonOperator::Gte => clear <= threshold_value,
                    ComparisonOperator::Eq => {
                        return Err(ValidationError::new(
                            "clear_threshold",
                            "does not apply to comparison_operator eq",
                        ))
                    }
                };
                if !healthy_side {
                    return Err(ValidationError::new(
                        "clear_threshold",
                        format!(
                            "{clear} must be on the healthy side of threshold_value {threshold_value} ({} it)",
                            if matches!(comparison_operator, ComparisonOperator::Lt | ComparisonOperator::Lte) {
                                "at or above"
                            } else {
                                "at or below"
                            }
                        ),
                    ));
                }
                Some(clear)
            }
        };
        Ok(Condition::Threshold {
            comparison_operator,
            threshold_value,
            tolerance,
            clear_threshold,
        })
    }

    fn degradation_condition(&self) -> Result<Condition, ValidationError> {
        let max = self.max_degradation_percentage.ok_or_else(|| {
            ValidationError::new(
                "max_degradation_percentage",
                "is required with the other degradation fields (baseline_window_hours, clear_percentage, comparison, comparison_hours, seasonal, alpha)",
            )
        })?;
        let max_degradation_percentage = percentage("max_degradation_percentage", max)?;
        let baseline_window_hours = match self.baseline_window_hours {
            None => DEFAULT_BASELINE_WINDOW_HOURS,
            Some(hours) => bounded("baseline_window_hours", hours, 1, MAX_BASELINE_WINDOW_HOURS)?,
        };
        let clear_percentage = match self.clear_percentage {
            None => None,
            Some(clear) => {
                let clear = percentage("clear_percentage", clear)?;
                if clear > max_degradation_percentage {
                    return Err(ValidationError::new(
                        "clear_percentage",
                        format!(
                            "{clear} must not exceed max_degradation_percentage {max_degradation_percentage}"
                        ),
                    ));
                }
                Some(clear)
            }
        };
        let comparison_hours = self
            .comparison_hours
            .map(|hours| bounded("comparison_hours", hours, 1, MAX_COMPARISON_HOURS))
            .transpose()?;
        let comparison =
            match (self.comparison.as_deref(), comparison_hours) {
                (None, None) => ComparisonMode::Auto,
                (None, Some(_)) => ComparisonMode::Window,
                (Some(text), hours) => {
                    let mode = ComparisonMode::parse(text)?;
                    match (mode, hours) {
                        (ComparisonMode::Window, None) => return Err(ValidationError::new(
                            "comparison_hours",
                            "is required with comparison window (the window's length, 1 to 168)",
                        )),
                        (ComparisonMode::Auto | ComparisonMode::Latest, Some(_)) => {
                            return Err(ValidationError::new(
                                "comparison_hours",
                                format!("applies only to comparison window, not {}", mode.as_str()),
                            ))
                        }
                        _ => mode,
                    }
                }
            };
        let seasonal = self
            .seasonal
            .as_deref()
            .map(parse_seasonality)
            .transpose()?;
        let alpha = self
            .alpha
            .map(|alpha| significance_level("alpha", alpha))
            .transpose()?;
        Ok(Condition::Degradation {
            max_degradation_percentage,
            baseline_window_hours,
            clear_percentage,
            comparison,
            comparison_hours,
            seasonal,
            alpha,
        })
    }
}

impl From<&Rule> for RuleSpec {
    fn from(rule: &Rule) -> Self {
        let mut spec = RuleSpec {
            name: rule.name.clone(),
            model: rule.model.to_string(),
            version: rule.version.as_ref().map(ToString::to_string),
            metric: rule.metric.to_string(),
            dataset: Some(rule.dataset.as_text().to_owned()),
            severity: Some(rule.severity.to_string()),
            enabled: Some(rule.enabled),
            cooldown_minutes: Some(i64::from(rule.cooldown_minutes)),
            notify_channels: Some(rule.notify_channels.clone()),
            for_evaluations: Some(i64::from(rule.anti_flap.for_evaluations)),
            clear_after_evaluations: Some(i64::from(rule.anti_flap.clear_after_evaluations)),
            auto_resolve: Some(rule.anti_flap.auto_resolve),
            ..RuleSpec::default()
        };
        match &rule.condition {
            Condition::Threshold {
                comparison_operator,
                threshold_value,
                tolerance,
                clear_threshold,
            } => {
                spec.comparison_operator = Some(comparison_operator.to_string());
                spec.threshold_value = Some(*threshold_value);
                spec.tolerance = *tolerance;
                spec.clear_threshold = *clear_threshold;
            }
            Condition::Degradation {
                max_degradation_percentage,
                baseline_window_hours,
                clear_percentage,
                comparison,
                comparison_hours,
                seasonal,
                alpha,
            } => {
                spec.max_degradation_percentage = Some(*max_degradation_percentage);
                spec.baseline_window_hours = Some(i64::from(*baseline_window_hours));
                spec.clear_percentage = *clear_percentage;
                spec.comparison = Some(comparison.as_str().to_owned());
                spec.comparison_hours = comparison_hours.map(i64::from);
                spec.seasonal = seasonal.map(|s| s.as_str().to_owned());
                spec.alpha = *alpha;
            }
            Condition::ChangePoint(condition) => {
                spec.condition_type = Some(ConditionKind::ChangePoint.as_str().to_owned());
                spec.change_direction = Some(condition.change_direction.as_str().to_owned());
                spec.min_shift_percentage = condition.min_shift_percentage;
                spec.min_shift_sd = condition.min_shift_sd;
                spec.false_alarm_interval_samples = condition
                    .false_alarm_interval_samples
                    .and_then(|n| i64::try_from(n).ok());
                spec.false_alarm_interval_hours = condition.false_alarm_interval_hours;
            }
            Condition::NoData(condition) => {
                spec.condition_type = Some(ConditionKind::NoData.as_str().to_owned());
                spec.no_data_minutes = condition.no_data_minutes;
                spec.no_data_intervals = condition.no_data_intervals;
            }
        }
        spec
    }
}

impl RulePatch {
    fn apply_to(self, spec: &mut RuleSpec) -> Result<(), ValidationError> {
        let touches_threshold = self.threshold_value.is_some()
            || self.comparison_operator.is_some()
            || self.tolerance.is_some()
            || self.clear_threshold.is_some();
        let touches_degradation = self.max_degradation_percentage.is_some()
            || self.baseline_window_hours.is_some()
            || self.clear_percentage.is_some()
            || self.comparison.is_some()
            || self.comparison_hours.is_some()
            || self.seasonal.is_some()
            || self.alpha.is_some();
        let named = |kind: ConditionKind| {
            self.condition_type
                .as_deref()
                .map(|t| t.trim().to_ascii_lowercase().replace('-', "_"))
                .as_deref()
                == Some(kind.as_str())
        };
        let touches_change_point = self.change_direction.is_some()
            || self.min_shift_percentage.is_some()
            || self.min_shift_sd.is_some()
            || self.false_alarm_interval_samples.is_some()
            || self.false_alarm_interval_hours.is_some()
            || named(ConditionKind::ChangePoint);
        let touches_no_data = self.no_data_minutes.is_some()
            || self.no_data_intervals.is_some()
            || named(ConditionKind::NoData);
        let touched: Vec<ConditionKind> = [
            (touches_threshold, ConditionKind::Threshold),
            (touches_degradation, ConditionKind::Degradation),
            (touches_change_point, ConditionKind::ChangePoint),
            (touches_no_data, ConditionKind::NoData),
        ]
        .into_iter()
        .filter_map(|(touches, kind)| touches.then_some(kind))
        .collect();
        if touched.len() > 1 {
            return Err(ValidationError::new(
                "condition",
                "an update may change a threshold, a degradation, a change-point or a no-data condition, not two",
            ));
        }
        if let Some(&kind) = touched.first() {
            let was = if spec.has_change_point_fields()
                || named_kind(spec) == Some(ConditionKind::ChangePoint)
            {
                Some(ConditionKind::ChangePoint)
            } else if spec.has_no_data_fields() {
                Some(ConditionKind::NoData)
            } else {
                None
            };
            // Switching kinds (or naming one) drops the other kinds' fields, the old
            // condition_type with them; an explicit one in the patch is laid on below.
            spec.condition_type = None;
            if kind != ConditionKind::Threshold {
                spec.clear_threshold_fields();
            }
            if kind != ConditionKind::Degradation {
                spec.clear_degradation_fields();
            }
            if kind != ConditionKind::ChangePoint {
                spec.clear_change_point_fields();
            }
            if kind != ConditionKind::NoData {
                spec.clear_no_data_fields();
            }
            // Change-point and no-data rules have anti-flap defaults of their own (fire at
            // once; a no-data alert resolves at the first sample back): a switch to or
            // from them starts from the new kind's defaults unless the patch sets them.
            let own_defaults = |k: Option<ConditionKind>| {
                matches!(k, Some(ConditionKind::ChangePoint | ConditionKind::NoData))
            };
            let switched = was != Some(kind);
            if switched
                && (own_defaults(was) || own_defaults(Some(kind)))
                && self.for_evaluations.is_none()
            {
                spec.for_evaluations = None;
            }
            let no_data = |k: Option<ConditionKind>| k == Some(ConditionKind::NoData);
            if switched && (no_data(was) || no_data(Some(kind))) {
                if self.clear_after_evaluations.is_none() {
                    spec.clear_after_evaluations = None;
                }
                if self.auto_resolve.is_none() {
                    spec.auto_resolve = None;
                }
            }
        }
        // A new window length implies window mode; another mode drops the old length.
        match (&self.comparison, self.comparison_hours) {
            (None, Some(_)) => spec.comparison = None,
            (Some(mode), None) if !mode.trim().eq_ignore_ascii_case("window") => {
                spec.comparison_hours = None;
            }
            _ => {}
        }
        self.overlay(spec);
        Ok(())
    }
}

/// The kind a spec's `condition_type` names, if any.
fn named_kind(spec: &RuleSpec) -> Option<ConditionKind> {
    let text = spec
        .condition_type
        .as_deref()?
        .trim()
        .to_ascii_lowercase()
        .replace('-', "_");
    ConditionKind::ALL.into_iter().find(|k| k.as_str() == text)
}

/// Distinguishes an absent field (with `#[serde(default)]`: `None`) from an explicit
/// `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

fn finite(field: &str, value: f64) -> Result<f64, ValidationError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ValidationError::new(field, "must be a finite number"))
    }
}

fn percentage(field: &str, value: f64) -> Result<f64, ValidationError> {
    if !value.is_finite() || value < 0.0 {
        return Err(ValidationError::new(
            field,
            format!("{value} is not a percentage (use a number of at least 0, e.g. 5.0 for 5%)"),
        ));
    }
    Ok(value)
}

fn in_range(field: &str, value: f64, min: f64, max: f64) -> Result<f64, ValidationError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ValidationError::new(
            field,
            format!("{value} is not between {min} and {max}"),
        ))
    }
}

fn bounded(field: &str, value: i64, min: u32, max: u32) -> Result<u32, ValidationError> {
    u32::try_from(value)
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            ValidationError::new(field, format!("{value} is not between {min} and {max}"))
        })
}

fn validate_channels(channels: Vec<String>) -> Result<Vec<String>, ValidationError> {
    let mut valid: Vec<String> = Vec::with_capacity(channels.len());
    for channel in channels {
        let channel = channel.trim().to_owned();
        check_name("notify_channels", &channel)?;
        if !valid.contains(&channel) {
            valid.push(channel);
        }
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn create(json: &str) -> Result<Rule, ValidationError> {
        let spec: RuleSpec = serde_json::from_str(json).unwrap();
        Rule::create(spec, RuleId::from_u32(1), at(1_000))
    }

    const LOW_ACCURACY: &str = r#""name":"low","model":"m","metric":"accuracy","threshold_value":0.9,"comparison_operator":"lt""#;

    #[test]
    fn a_rule_watches_the_default_dataset_unless_it_names_one_or_each() {
        let scope = |extra: &str| create(&format!("{{{LOW_ACCURACY}{extra}}}")).map(|r| r.dataset);
        let canary = Dataset::parse("canary").unwrap();
        assert_eq!(scope("").unwrap(), DatasetScope::One(None));
        assert_eq!(
            scope(r#","dataset":"default""#).unwrap(),
            DatasetScope::One(None)
        );
        assert_eq!(
            scope(r#","dataset":"canary""#).unwrap(),
            DatasetScope::One(Some(canary.clone()))
        );
        assert_eq!(scope(r#","dataset":"*""#).unwrap(), DatasetScope::Each);
        assert_eq!(
            scope(r#","dataset":"can ary""#).unwrap_err().field,
            "dataset"
        );
        let version = Version::parse("v1").unwrap();
        let model = ModelName::parse("m").unwrap();
        let each = create(&format!(r#"{{{LOW_ACCURACY},"dataset":"*"}}"#)).unwrap();
        assert!(each.watches(&model, &version, None));
        assert!(each.watches(&model, &version, Some(&canary)));
        let default = create(&format!("{{{LOW_ACCURACY}}}")).unwrap();
        assert!(default.watches(&model, &version, None));
        assert!(!default.watches(&model, &version, Some(&canary)));
    }

    #[test]
    fn an_update_moves_a_rule_to_another_dataset_or_back_to_the_default() {
        let rule = create(&format!("{{{LOW_ACCURACY}}}")).unwrap();
        let patch = |json: &str| serde_json::from_str::<RulePatch>(json).unwrap();
        let each = rule.update(patch(r#"{"dataset":"*"}"#), at(2_000)).unwrap();
        assert_eq!(each.dataset, DatasetScope::Each);
        let untouched = each
            .update(patch(r#"{"severity":"high"}"#), at(3_000))
            .unwrap();
        assert_eq!(untouched.dataset, DatasetScope::Each);
        let back = each
            .update(patch(r#"{"dataset":"default"}"#), at(4_000))
            .unwrap();
        assert_eq!(back.dataset, DatasetScope::One(None));
        assert_eq!(
            rule.update(patch(r#"{"dataset":"default "}"#), at(5_000))
                .unwrap()
                .dataset,
            DatasetScope::One(None)
        );
    }

    #[test]
    fn seed_threshold_rule_is_accepted_with_defaults() {
        let rule = create(
            r#"{"name":"Low Accuracy","model":"my_model","metric":"accuracy",
                "threshold_value":0.90,"comparison_operator":"lt","severity":"high"}"#,
        )
        .unwrap();
        assert_eq!(rule.name, "Low Accuracy");
        assert_eq!(rule.version, None);
        assert_eq!(rule.severity, Severity::High);
        assert_eq!(rule.cooldown_minutes, 60);
        assert!(rule.enabled);
        assert_eq!(rule.anti_flap, AntiFlap::default());
        assert_eq!(
            rule.condition,
            Condition::Threshold {
                comparison_operator: ComparisonOperator::Lt,
                threshold_value: 0.9,
                tolerance: None,
                clear_threshold: None
            }
        );
    }

    #[test]
    fn seed_degradation_rule_defaults_its_baseline_window_and_an_automatic_comparison() {
        let rule = create(
            r#"{"name":"Precision Drop","model":"m","version":"v2","metric":"precision",
                "max_degradation_percentage":5.0,"notify_channels":["slack","email","slack"]}"#,
        )
        .unwrap();
        assert_eq!(
            rule.condition,
            Condition::Degradation {
                max_degradation_percentage: 5.0,
                baseline_window_hours: 24,
                clear_percentage: None,
                comparison: ComparisonMode::Auto,
                comparison_hours: None,
                seasonal: None,
                alpha: None,
            }
        );
        assert_eq!(rule.notify_channels, ["slack", "email"]);
        assert_eq!(rule.version.unwrap().as_str(), "v2");
    }

    #[test]
    fn invalid_rules_are_refused_naming_the_field() {
        let base = r#""name":"r","model":"m","metric":"accuracy""#;
        for (extra, field) in [
            (
                r#""threshold_value":0.9,"comparison_operator":"below""#,
                "comparison_operator",
            ),
            (
                r#""threshold_value":0.9,"comparison_operator":"lt","max_degradation_percentage":5"#,
                "condition",
            ),
            (r#""severity":"high""#, "condition"),
            (
                r#""max_degradation_percentage":-5"#,
                "max_degradation_percentage",
            ),
            (r#""threshold_value":0.9"#, "comparison_operator"),
            (r#""comparison_operator":"gt""#, "threshold_value"),
            (
                r#""threshold_value":0.9,"comparison_operator":"lt","severity":"urgent""#,
                "severity",
            ),
            (
                r#""threshold_value":0.9,"comparison_operator":"lt","cooldown_minutes":-1"#,
                "cooldown_minutes",
            ),
            (
                r#""threshold_value":0.9,"comparison_operator":"lt","clear_threshold":0.8"#,
                "clear_threshold",
            ),
            (
                r#""threshold_value":0.9,"comparison_operator":"gt","tolerance":0.1"#,
                "tolerance",
            ),
            (
                r#""max_degradation_percentage":5,"clear_percentage":6"#,
                "clear_percentage",
            ),
            (
                r#""max_degradation_percentage":5,"baseline_window_hours":0"#,
                "baseline_window_hours",
            ),
            (
                r#""max_degradation_percentage":5,"for_evaluations":0"#,
                "for_evaluations",
            ),
            (
                r#""max_degradation_percentage":5,"notify_channels":["a b"]"#,
                "notify_channels",
            ),
        ] {
            let error = create(&format!("{{{base},{extra}}}")).unwrap_err();
            assert_eq!(error.field, field, "{extra}: {error}");
        }
        let error = create(
            r#"{"name":" ","model":"m","metric":"accuracy","max_degradation_percentage":5}"#,
        )
        .unwrap_err();
        assert_eq!(error.field, "name");
        let error = create(
            r#"{"name":"r","model":"a b","metric":"accuracy","max_degradation_percentage":5}"#,
        )
        .unwrap_err();
        assert_eq!(error.field, "model");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let error = serde_json::from_str::<RuleSpec>(
            r#"{"name":"r","modle_name":"m","metric":"accuracy","max_degradation_percentage":5}"#,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `modle_name`"),
            "{error}"
        );
    }

    #[test]
    fn update_keeps_identity_and_can_switch_condition_kind() {
        let rule = create(
            r#"{"name":"r","model":"m","version":"v1","metric":"accuracy","threshold_value":0.9,"comparison_operator":"lt"}"#,
        )
        .unwrap();
        let patch: RulePatch = serde_json::from_str(
            r#"{"max_degradation_percentage":7.5,"version":null,"severity":"critical"}"#,
        )
        .unwrap();
        let updated = rule.update(patch, at(5_000)).unwrap();
        assert_eq!(updated.id, rule.id);
        assert_eq!(updated.created_at, at(1_000));
        assert_eq!(updated.updated_at, at(5_000));
        assert_eq!(updated.version, None);
        assert_eq!(updated.severity, Severity::Critical);
        assert!(matches!(
            updated.condition,
            Condition::Degradation { max_degradation_percentage, .. } if max_degradation_percentage == 7.5
        ));
        let bad: RulePatch = serde_json::from_str(r#"{"cooldown_minutes":-3}"#).unwrap();
        assert_eq!(
            rule.update(bad, at(6_000)).unwrap_err().field,
            "cooldown_minutes"
        );
        assert!(!rule.with_enabled(false, at(7_000)).enabled);
    }

    #[test]
    fn degradation_rules_take_the_checks_windows_and_significance_level() {
        let rule = create(
            r#"{"name":"r","model":"m","metric":"latency","max_degradation_percentage":5,
                "comparison_hours":2,"seasonal":"weekly","alpha":0.001}"#,
        )
        .unwrap();
        assert!(matches!(
            rule.condition,
            Condition::Degradation {
                comparison: ComparisonMode::Window,
                comparison_hours: Some(2),
                seasonal: Some(Seasonality::Weekly),
                alpha: Some(alpha),
                ..
            } if alpha == 0.001
        ));
        let latest = create(
            r#"{"name":"r","model":"m","metric":"latency","max_degradation_percentage":5,"comparison":"latest"}"#,
        )
        .unwrap();
        assert!(matches!(
            latest.condition,
            Condition::Degradation {
                comparison: ComparisonMode::Latest,
                comparison_hours: None,
                ..
            }
        ));
        let base = r#""name":"r","model":"m","metric":"accuracy","max_degradation_percentage":5"#;
        for (extra, field) in [
            (r#""comparison":"window""#, "comparison_hours"),
            (
                r#""comparison":"latest","comparison_hours":2"#,
                "comparison_hours",
            ),
            (r#""comparison_hours":0"#, "comparison_hours"),
            (r#""comparison_hours":169"#, "comparison_hours"),
            (r#""comparison":"sometimes""#, "comparison"),
            (r#""seasonal":"hourly""#, "seasonal"),
            (r#""alpha":0"#, "alpha"),
            (r#""alpha":0.5"#, "alpha"),
        ] {
            let error = create(&format!("{{{base},{extra}}}")).unwrap_err();
            assert_eq!(error.field, field, "{extra}: {error}");
        }
        let error = create(
            r#"{"name":"r","model":"m","metric":"accuracy","threshold_value":0.9,"comparison_operator":"lt","alpha":0.01}"#,
        )
        .unwrap_err();
        assert_eq!(error.field, "condition");
    }

    #[test]
    fn an_update_switches_between_comparisons() {
        let rule = create(
            r#"{"name":"r","model":"m","metric":"accuracy","max_degradation_percentage":5,"comparison_hours":2}"#,
        )
        .unwrap();
        let mode = |rule: &Rule| match rule.condition {
            Condition::Degradation {
                comparison,
                comparison_hours,
                ..
            } => (comparison, comparison_hours),
            Condition::Threshold { .. } | Condition::ChangePoint(_) | Condition::NoData(_) => {
                panic!("not a degradation rule")
            }
        };
        let patch = |json: &str| serde_json::from_str::<RulePatch>(json).unwrap();
        let auto = rule
            .update(patch(r#"{"comparison":"auto"}"#), at(2_000))
            .unwrap();
        assert_eq!(mode(&auto), (ComparisonMode::Auto, None));
        let window = auto
            .update(patch(r#"{"comparison_hours":6}"#), at(3_000))
            .unwrap();
        assert_eq!(mode(&window), (ComparisonMode::Window, Some(6)));
    }

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::High < Severity::Critical);
        assert_eq!(Severity::parse("HIGH").unwrap(), Severity::High);
    }

    #[test]
    fn eq_uses_its_tolerance() {
        assert!(ComparisonOperator::Eq.holds(0.5000000001, 0.5, DEFAULT_EQ_TOLERANCE));
        assert!(!ComparisonOperator::Eq.holds(0.51, 0.5, 0.001));
        assert!(ComparisonOperator::Eq.holds(0.5005, 0.5, 0.001));
    }
}
