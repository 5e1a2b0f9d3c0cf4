//! The analyses on the wire: backtest reports, degradation checks, version comparisons,
//! performance histories and version analyses.

use modelwatch_core::alerting as domain;
use modelwatch_core::compare as domain_compare;
use modelwatch_core::detection as domain_detection;
use modelwatch_core::health as domain_health;
use modelwatch_core::{
    Dataset, Direction as DomainDirection, Metric, ModelName, Timestamp, Version,
};
use modelwatch_engine::analysis as domain_analysis;
use modelwatch_engine::backtest as domain_backtest;
use serde::Serialize;
use utoipa::ToSchema;

use super::alerting::{Alert, Rule, Severity};

/// Whether a larger value of a metric is better (accuracy) or worse (latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

impl From<DomainDirection> for Direction {
    fn from(direction: DomainDirection) -> Self {
        match direction {
            DomainDirection::HigherIsBetter => Direction::HigherIsBetter,
            DomainDirection::LowerIsBetter => Direction::LowerIsBetter,
        }
    }
}

/// What a would-be alert did in a backtest, tagged by `event`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BacktestEventKind {
    Fired {
        severity: Severity,
    },
    /// The condition cleared for long enough; without auto-resolve the alert stays open.
    ConditionCleared,
    AutoResolved,
    /// A breach that would have fired but fell within the cooldown (once per cooldown).
    HeldByCooldown {
        #[schema(value_type = String, format = DateTime)]
        until: Timestamp,
    },
    /// A change-point rule's detector found another shift while its alert was open.
    Shifted,
}

impl From<domain::BacktestEventKind> for BacktestEventKind {
    fn from(kind: domain::BacktestEventKind) -> Self {
        match kind {
            domain::BacktestEventKind::Fired { severity } => BacktestEventKind::Fired {
                severity: severity.into(),
            },
            domain::BacktestEventKind::ConditionCleared => BacktestEventKind::ConditionCleared,
            domain::BacktestEventKind::AutoResolved => BacktestEventKind::AutoResolved,
            domain::BacktestEventKind::HeldByCooldown { until } => {
                BacktestEventKind::HeldByCooldown { until }
            }
            domain::BacktestEventKind::Shifted => BacktestEventKind::Shifted,
        }
    }
}

/// One event of a backtest.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestEvent {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Which would-be alert, numbered from 1 in the order they fire.
    pub alert_number: u32,
    #[schema(required = true)]
    pub value: Option<f64>,
    /// For a change-point rule's firing or shift: when the shift began.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub change_started_at: Option<Timestamp>,
    #[serde(flatten)]
    pub kind: BacktestEventKind,
}

impl From<&domain::BacktestEvent> for BacktestEvent {
    fn from(event: &domain::BacktestEvent) -> Self {
        BacktestEvent {
            at: event.at,
            alert_number: event.alert_number,
            value: event.value,
            change_started_at: event.change_started_at,
            kind: event.kind.into(),
        }
    }
}

/// The replay of one version's series on one dataset.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionBacktest {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    /// The dataset replayed; absent for the default dataset.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub dataset: Option<Dataset>,
    /// Samples replayed.
    pub samples: usize,
    /// Alerts that would have fired.
    pub alerts: u32,
    pub events: Vec<BacktestEvent>,
}

/// A rule replayed over stored samples: when it would have fired and resolved.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestReport {
    /// The rule replayed (an unsaved rule has the placeholder id `rule_00000000`).
    pub rule: Rule,
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub to: Timestamp,
    pub versions: Vec<VersionBacktest>,
}

impl From<&domain_backtest::BacktestReport> for BacktestReport {
    fn from(report: &domain_backtest::BacktestReport) -> Self {
        BacktestReport {
            rule: (&report.rule).into(),
            from: report.from,
            to: report.to,
            versions: report
                .versions
                .iter()
                .map(|version| VersionBacktest {
                    version: version.version.clone(),
                    dataset: version.dataset.clone(),
                    samples: version.samples,
                    alerts: version.alerts,
                    events: version.events.iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}

/// How bad a degradation is: `none` when it is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DegradationSeverity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl From<domain_detection::Severity> for DegradationSeverity {
    fn from(severity: domain_detection::Severity) -> Self {
        match severity {
            domain_detection::Severity::None => DegradationSeverity::None,
            domain_detection::Severity::Low => DegradationSeverity::Low,
            domain_detection::Severity::Medium => DegradationSeverity::Medium,
            domain_detection::Severity::High => DegradationSeverity::High,
            domain_detection::Severity::Critical => DegradationSeverity::Critical,
        }
    }
}

/// A degradation check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DegradationStatus {
    Ok,
    Degraded,
    InsufficientData,
}

impl From<domain_detection::DegradationStatus> for DegradationStatus {
    fn from(status: domain_detection::DegradationStatus) -> Self {
        match status {
            domain_detection::DegradationStatus::Ok => DegradationStatus::Ok,
            domain_detection::DegradationStatus::Degraded => DegradationStatus::Degraded,
            domain_detection::DegradationStatus::InsufficientData => {
                DegradationStatus::InsufficientData
            }
        }
    }
}

/// One metric's degradation check: its comparison window (or latest value) against its
/// baseline, with the significance test behind the verdict. Values a check could not
/// compute are null.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradationResult {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub metric: Metric,
    pub direction: Direction,
    /// The latest value, or the comparison window's mean.
    #[schema(required = true)]
    pub current_value: Option<f64>,
    /// The baseline window's mean.
    #[schema(required = true)]
    pub baseline_value: Option<f64>,
    /// The seasonal guard window's mean, when it had enough data to take part.
    #[schema(required = true)]
    pub reference_value: Option<f64>,
    /// `current_value − baseline_value`.
    #[schema(required = true)]
    pub absolute_change: Option<f64>,
    /// `100 · absolute_change / |baseline_value|`; null for a zero baseline.
    #[schema(required = true)]
    pub percentage_change: Option<f64>,
    /// The worsening in percent of `|baseline_value|`, 0 for an improvement.
    #[schema(required = true)]
    pub degradation_percentage: Option<f64>,
    pub is_degraded: bool,
    pub severity: DegradationSeverity,
    pub recommendation: String,
    pub baseline_samples: u64,
    pub comparison_samples: u64,
    pub reference_samples: u64,
    /// One-sided p-value of the worsening; null without a test.
    #[schema(required = true)]
    pub p_value: Option<f64>,
    /// The test(s) behind `p_value`, `none` without one.
    pub method: String,
    pub status: DegradationStatus,
    /// When a degraded comparison window's change began (CUSUM).
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub change_started_at: Option<Timestamp>,
    /// The significance level in force.
    pub alpha: f64,
    pub min_degradation_percentage: f64,
}

impl From<&domain_detection::DegradationResult> for DegradationResult {
    fn from(result: &domain_detection::DegradationResult) -> Self {
        DegradationResult {
            model: result.model.clone(),
            version: result.version.clone(),
            metric: result.metric.clone(),
            direction: result.direction.into(),
            current_value: result.current_value,
            baseline_value: result.baseline_value,
            reference_value: result.reference_value,
            absolute_change: result.absolute_change,
            percentage_change: result.percentage_change,
            degradation_percentage: result.degradation_percentage,
            is_degraded: result.is_degraded,
            severity: result.severity.into(),
            recommendation: result.recommendation.clone(),
            baseline_samples: result.baseline_samples,
            comparison_samples: result.comparison_samples,
            reference_samples: result.reference_samples,
            p_value: result.p_value,
            method: result.method.clone(),
            status: result.status.into(),
            change_started_at: result.change_started_at,
            alpha: result.alpha,
            min_degradation_percentage: result.min_degradation_percentage,
        }
    }
}

/// `GET /api/v1/models/{model}/versions/{version}/degradation`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DegradationsResponse {
    pub results: Vec<DegradationResult>,
}

/// Which version a comparison favours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    ChallengerBetter,
    ChampionBetter,
    NoSignificantDifference,
    InsufficientData,
}

impl From<domain_compare::Verdict> for Verdict {
    fn from(verdict: domain_compare::Verdict) -> Self {
        match verdict {
            domain_compare::Verdict::ChallengerBetter => Verdict::ChallengerBetter,
            domain_compare::Verdict::ChampionBetter => Verdict::ChampionBetter,
            domain_compare::Verdict::NoSignificantDifference => Verdict::NoSignificantDifference,
            domain_compare::Verdict::InsufficientData => Verdict::InsufficientData,
        }
    }
}

/// An interval of the difference `challenger − champion`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfidenceInterval {
    pub lower: f64,
    pub upper: f64,
    /// The confidence level, e.g. 0.95.
    pub level: f64,
}

/// Champion (`a`) against challenger (`b`) on one metric over the same hours. Values a
/// comparison could not compute are null.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionComparison {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub metric: Metric,
    pub direction: Direction,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub champion: Version,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub challenger: Version,
    #[schema(required = true)]
    pub champion_mean: Option<f64>,
    #[schema(required = true)]
    pub challenger_mean: Option<f64>,
    pub champion_samples: u64,
    pub challenger_samples: u64,
    /// `challenger_mean − champion_mean`.
    #[schema(required = true)]
    pub difference: Option<f64>,
    /// `100 · difference / |champion_mean|`; null for a zero champion mean.
    #[schema(required = true)]
    pub difference_percentage: Option<f64>,
    #[schema(required = true)]
    pub confidence_interval: Option<ConfidenceInterval>,
    /// Two-sided p-value of "the means are equal".
    #[schema(required = true)]
    pub p_value: Option<f64>,
    pub method: String,
    pub verdict: Verdict,
    pub summary: String,
}

impl From<&domain_compare::VersionComparison> for VersionComparison {
    fn from(comparison: &domain_compare::VersionComparison) -> Self {
        VersionComparison {
            model: comparison.model.clone(),
            metric: comparison.metric.clone(),
            direction: comparison.direction.into(),
            champion: comparison.champion.clone(),
            challenger: comparison.challenger.clone(),
            champion_mean: comparison.champion_mean,
            challenger_mean: comparison.challenger_mean,
            champion_samples: comparison.champion_samples,
            challenger_samples: comparison.challenger_samples,
            difference: comparison.difference,
            difference_percentage: comparison.difference_percentage,
            confidence_interval: comparison.confidence_interval.map(|interval| {
                ConfidenceInterval {
                    lower: interval.lower,
                    upper: interval.upper,
                    level: interval.level,
                }
            }),
            p_value: comparison.p_value,
            method: comparison.method.clone(),
            verdict: comparison.verdict.into(),
            summary: comparison.summary.clone(),
        }
    }
}

/// Where a metric is heading over the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Improving,
    Stable,
    Degrading,
}

impl From<domain_health::Trend> for Trend {
    fn from(trend: domain_health::Trend) -> Self {
        match trend {
            domain_health::Trend::Improving => Trend::Improving,
            domain_health::Trend::Stable => Trend::Stable,
            domain_health::Trend::Degrading => Trend::Degrading,
        }
    }
}

/// A version's grade; `unknown` when no metric had enough data for a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverallHealth {
    Excellent,
    Good,
    Fair,
    Poor,
    Unknown,
}

impl From<domain_health::OverallHealth> for OverallHealth {
    fn from(health: domain_health::OverallHealth) -> Self {
        match health {
            domain_health::OverallHealth::Excellent => OverallHealth::Excellent,
            domain_health::OverallHealth::Good => OverallHealth::Good,
            domain_health::OverallHealth::Fair => OverallHealth::Fair,
            domain_health::OverallHealth::Poor => OverallHealth::Poor,
            domain_health::OverallHealth::Unknown => OverallHealth::Unknown,
        }
    }
}

/// One metric's history over the range. Values that need more data are null.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricHistory {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub metric: Metric,
    pub direction: Direction,
    pub count: u64,
    /// The newest value.
    #[schema(required = true)]
    pub current_value: Option<f64>,
    #[schema(required = true)]
    pub mean: Option<f64>,
    #[schema(required = true)]
    pub min: Option<f64>,
    #[schema(required = true)]
    pub max: Option<f64>,
    /// Sample standard deviation.
    #[schema(required = true)]
    pub std: Option<f64>,
    pub trend: Trend,
    /// Fitted change over the range, in percent of the fitted first value.
    #[schema(required = true)]
    pub change_percentage: Option<f64>,
    /// Theil–Sen slope in metric units per day.
    #[schema(required = true)]
    pub slope_per_day: Option<f64>,
    /// Two-sided Mann–Kendall p-value.
    #[schema(required = true)]
    pub trend_p_value: Option<f64>,
    /// Buckets the trend was computed on.
    pub trend_points: u64,
    /// This metric's part of the health formula; null without a trend.
    #[schema(required = true)]
    pub health_score: Option<f64>,
    /// Alerts of this metric not resolved yet.
    pub open_alerts: u32,
}

impl From<&domain_health::MetricHistory> for MetricHistory {
    fn from(history: &domain_health::MetricHistory) -> Self {
        MetricHistory {
            metric: history.metric.clone(),
            direction: history.direction.into(),
            count: history.count,
            current_value: history.current_value,
            mean: history.mean,
            min: history.min,
            max: history.max,
            std: history.std,
            trend: history.trend.into(),
            change_percentage: history.change_percentage,
            slope_per_day: history.slope_per_day,
            trend_p_value: history.trend_p_value,
            trend_points: history.trend_points,
            health_score: history.health_score,
            open_alerts: history.open_alerts,
        }
    }
}

/// The performance history and health of a model version over a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PerformanceHistory {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub to: Timestamp,
    pub metric_summaries: Vec<MetricHistory>,
    pub overall_health: OverallHealth,
    /// Mean of the metric scores, 0 to 100.
    #[schema(required = true)]
    pub health_score: Option<f64>,
    pub health_trend: Trend,
    /// Why the grade is what it is, one sentence per metric that matters.
    pub health_reasons: Vec<String>,
    pub health_formula: String,
    /// Samples across all metrics in the range.
    pub total_snapshots: u64,
}

impl From<&domain_health::PerformanceHistory> for PerformanceHistory {
    fn from(history: &domain_health::PerformanceHistory) -> Self {
        PerformanceHistory {
            model: history.model.clone(),
            version: history.version.clone(),
            from: history.from,
            to: history.to,
            metric_summaries: history.metric_summaries.iter().map(Into::into).collect(),
            overall_health: history.overall_health.into(),
            health_score: history.health_score,
            health_trend: history.health_trend.into(),
            health_reasons: history.health_reasons.clone(),
            health_formula: history.health_formula.clone(),
            total_snapshots: history.total_snapshots,
        }
    }
}

/// A version's analysis: `history` (summaries, trends, grade and reasons),
/// `degradations` (each metric's last hour against the 24 hours before) and
/// `open_alerts`, computed together so they agree.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionAnalysis {
    pub history: PerformanceHistory,
    pub degradations: Vec<DegradationResult>,
    pub open_alerts: Vec<Alert>,
}

impl From<&domain_analysis::VersionAnalysis> for VersionAnalysis {
    fn from(analysis: &domain_analysis::VersionAnalysis) -> Self {
        VersionAnalysis {
            history: (&analysis.history).into(),
            degradations: analysis.degradations.iter().map(Into::into).collect(),
            open_alerts: analysis.open_alerts.iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use modelwatch_core::alerting::{AntiFlap, ComparisonOperator, Condition};
    use modelwatch_core::{DatasetScope, MetricScope};
    use serde_json::{json, Value};

    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn shown<W: Serialize>(wire: W) -> Value {
        serde_json::to_value(wire).unwrap()
    }

    /// The core's values are built field by field (they have no serde); the JSON is what
    /// the API has always answered with.
    #[test]
    fn a_backtest_report_shows_as_it_always_has() {
        let rule = domain::Rule {
            id: domain::RuleId::from_u32(0),
            name: "latency".into(),
            model: ModelName::parse("fraud").unwrap(),
            version: Some(Version::parse("v1").unwrap()),
            metric: MetricScope::One(Metric::Latency),
            dataset: DatasetScope::One(None),
            severity: domain::Severity::Low,
            enabled: true,
            created_at: at(1_714_564_800_000),
            updated_at: at(1_714_564_800_000),
            cooldown_minutes: 0,
            notify_channels: Vec::new(),
            condition: Condition::Threshold {
                comparison_operator: ComparisonOperator::Gt,
                threshold_value: 100.0,
                tolerance: None,
                clear_threshold: None,
            },
            anti_flap: AntiFlap {
                for_evaluations: 1,
                clear_after_evaluations: 1,
                auto_resolve: false,
            },
        };
        let event = |minute: i64, value: Option<f64>, kind| domain::BacktestEvent {
            at: at(1_714_557_600_000 + minute * 60_000),
            alert_number: 1,
            value,
            change_started_at: None,
            kind,
        };
        use domain::BacktestEventKind as K;
        let events = vec![
            event(
                0,
                Some(120.0),
                K::Fired {
                    severity: domain::Severity::Low,
                },
            ),
            event(
                5,
                Some(130.0),
                K::HeldByCooldown {
                    until: at(1_714_561_200_000),
                },
            ),
            domain::BacktestEvent {
                change_started_at: Some(at(1_714_554_000_000)),
                ..event(10, None, K::Shifted)
            },
            event(15, Some(90.0), K::ConditionCleared),
            event(20, Some(80.0), K::AutoResolved),
        ];
        let report = domain_backtest::BacktestReport {
            rule,
            from: at(0),
            to: at(1_714_564_800_000),
            versions: vec![
                domain_backtest::VersionBacktest {
                    version: Version::parse("v1").unwrap(),
                    dataset: None,
                    samples: 5,
                    alerts: 1,
                    events,
                },
                domain_backtest::VersionBacktest {
                    version: Version::parse("v1").unwrap(),
                    dataset: Some(Dataset::parse("canary").unwrap()),
                    samples: 0,
                    alerts: 0,
                    events: Vec::new(),
                },
            ],
        };
        assert_eq!(
            shown(BacktestReport::from(&report)),
            json!({
                "rule": {
                    "id": "rule_00000000", "name": "latency", "model": "fraud", "version": "v1",
                    "metric": "latency", "dataset": "default", "severity": "low", "enabled": true,
                    "created_at": "2024-05-01T12:00:00.000Z", "updated_at": "2024-05-01T12:00:00.000Z",
                    "cooldown_minutes": 0, "notify_channels": [], "condition_type": "threshold",
                    "comparison_operator": "gt", "threshold_value": 100.0,
                    "for_evaluations": 1, "clear_after_evaluations": 1, "auto_resolve": false
                },
                "from": "1970-01-01T00:00:00.000Z",
                "to": "2024-05-01T12:00:00.000Z",
                "versions": [
                    {"version": "v1", "samples": 5, "alerts": 1, "events": [
                        {"at": "2024-05-01T10:00:00.000Z", "alert_number": 1, "value": 120.0, "event": "fired", "severity": "low"},
                        {"at": "2024-05-01T10:05:00.000Z", "alert_number": 1, "value": 130.0, "event": "held_by_cooldown", "until": "2024-05-01T11:00:00.000Z"},
                        {"at": "2024-05-01T10:10:00.000Z", "alert_number": 1, "value": null, "change_started_at": "2024-05-01T09:00:00.000Z", "event": "shifted"},
                        {"at": "2024-05-01T10:15:00.000Z", "alert_number": 1, "value": 90.0, "event": "condition_cleared"},
                        {"at": "2024-05-01T10:20:00.000Z", "alert_number": 1, "value": 80.0, "event": "auto_resolved"}
                    ]},
                    {"version": "v1", "dataset": "canary", "samples": 0, "alerts": 0, "events": []}
                ]
            })
        );
    }

    #[test]
    fn degradation_results_and_comparisons_show_as_they_always_have() {
        use domain_detection::{DegradationStatus as St, Severity as Sev};
        use modelwatch_core::Direction as Dir;
        for (direction, severity, status, number) in [
            (Dir::HigherIsBetter, Sev::None, St::InsufficientData, None),
            (Dir::LowerIsBetter, Sev::Critical, St::Degraded, Some(12.5)),
            (Dir::HigherIsBetter, Sev::Medium, St::Ok, Some(0.0)),
        ] {
            let result = domain_detection::DegradationResult {
                model: ModelName::parse("fraud").unwrap(),
                version: Version::parse("v1").unwrap(),
                metric: Metric::Accuracy,
                direction,
                current_value: number,
                baseline_value: number,
                reference_value: number,
                absolute_change: number,
                percentage_change: number,
                degradation_percentage: number,
                is_degraded: status == St::Degraded,
                severity,
                recommendation: "r".into(),
                baseline_samples: 10,
                comparison_samples: 1,
                reference_samples: 0,
                p_value: number,
                method: "none".into(),
                status,
                change_started_at: number.map(|_| at(1_714_561_200_000)),
                alpha: 0.01,
                min_degradation_percentage: 5.0,
            };
            let (direction, severity, status) = match status {
                St::InsufficientData => ("higher_is_better", "none", "insufficient_data"),
                St::Degraded => ("lower_is_better", "critical", "degraded"),
                St::Ok => ("higher_is_better", "medium", "ok"),
            };
            assert_eq!(
                shown(DegradationResult::from(&result)),
                json!({
                    "model": "fraud", "version": "v1", "metric": "accuracy", "direction": direction,
                    "current_value": number, "baseline_value": number, "reference_value": number,
                    "absolute_change": number, "percentage_change": number,
                    "degradation_percentage": number, "is_degraded": status == "degraded",
                    "severity": severity, "recommendation": "r", "baseline_samples": 10,
                    "comparison_samples": 1, "reference_samples": 0, "p_value": number,
                    "method": "none", "status": status,
                    "change_started_at": if number.is_none() { json!(null) } else { json!("2024-05-01T11:00:00.000Z") },
                    "alpha": 0.01, "min_degradation_percentage": 5.0
                })
            );
        }
        use domain_compare::Verdict as V;
        for (verdict, name, interval) in [
            (
                V::ChallengerBetter,
                "challenger_better",
                Some(domain_compare::ConfidenceInterval {
                    lower: 0.01,
                    upper: 0.03,
                    level: 0.95,
                }),
            ),
            (V::ChampionBetter, "champion_better", None),
            (
                V::NoSignificantDifference,
                "no_significant_difference",
                None,
            ),
            (V::InsufficientData, "insufficient_data", None),
        ] {
            let comparison = domain_compare::VersionComparison {
                model: ModelName::parse("fraud").unwrap(),
                metric: Metric::Latency,
                direction: Dir::LowerIsBetter,
                champion: Version::parse("v1").unwrap(),
                challenger: Version::parse("v2").unwrap(),
                champion_mean: Some(0.9),
                challenger_mean: None,
                champion_samples: 10,
                challenger_samples: 0,
                difference: None,
                difference_percentage: None,
                confidence_interval: interval,
                p_value: Some(0.2),
                method: "welch_t".into(),
                verdict,
                summary: "s".into(),
            };
            let interval = interval.map_or(
                json!(null),
                |_| json!({"lower": 0.01, "upper": 0.03, "level": 0.95}),
            );
            assert_eq!(
                shown(VersionComparison::from(&comparison)),
                json!({
                    "model": "fraud", "metric": "latency", "direction": "lower_is_better",
                    "champion": "v1", "challenger": "v2", "champion_mean": 0.9,
                    "challenger_mean": null, "champion_samples": 10, "challenger_samples": 0,
                    "difference": null, "difference_percentage": null,
                    "confidence_interval": interval, "p_value": 0.2, "method": "welch_t",
                    "verdict": name, "summary": "s"
                })
            );
        }
    }

    #[test]
    fn a_performance_history_shows_as_it_always_has() {
        use domain_health::{OverallHealth as H, Trend as T};
        for (health, trend, number) in [
            (H::Unknown, T::Stable, None),
            (H::Excellent, T::Improving, Some(97.5)),
            (H::Poor, T::Degrading, Some(-3.0)),
        ] {
            let history = domain_health::PerformanceHistory {
                model: ModelName::parse("fraud").unwrap(),
                version: Version::parse("v1").unwrap(),
                from: at(1_714_561_200_000),
                to: at(1_714_564_800_000),
                metric_summaries: vec![domain_health::MetricHistory {
                    metric: Metric::Accuracy,
                    direction: modelwatch_core::Direction::HigherIsBetter,
                    count: 3,
                    current_value: number,
                    mean: number,
                    min: number,
                    max: number,
                    std: number,
                    trend,
                    change_percentage: number,
                    slope_per_day: number,
                    trend_p_value: number,
                    trend_points: 3,
                    health_score: number,
                    open_alerts: 1,
                }],
                overall_health: health,
                health_score: number,
                health_trend: trend,
                health_reasons: vec!["r".into()],
                health_formula: "f".into(),
                total_snapshots: 3,
            };
            let trend = match trend {
                T::Stable => "stable",
                T::Improving => "improving",
                T::Degrading => "degrading",
            };
            assert_eq!(
                shown(PerformanceHistory::from(&history)),
                json!({
                    "model": "fraud", "version": "v1", "from": "2024-05-01T11:00:00.000Z",
                    "to": "2024-05-01T12:00:00.000Z",
                    "metric_summaries": [{
                        "metric": "accuracy", "direction": "higher_is_better", "count": 3,
                        "current_value": number, "mean": number, "min": number, "max": number,
                        "std": number, "trend": trend, "change_percentage": number,
                        "slope_per_day": number, "trend_p_value": number, "trend_points": 3,
                        "health_score": number, "open_alerts": 1
                    }],
                    "overall_health": health.as_str(), "health_score": number, "health_trend": trend,
                    "health_reasons": ["r"], "health_formula": "f", "total_snapshots": 3
                })
            );
        }
    }
}
