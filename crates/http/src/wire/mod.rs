//! The wire contract: the JSON objects the API answers with, each with its complete
//! schema (required fields, enums, formats, the name and id patterns), mapped from the
//! core's domain types (issue 18).
//!
//! The domain types are the engine's and the stores' vocabulary; what a client sees is
//! defined here, once, and the OpenAPI document is derived from these same types, so the
//! document and the answers cannot drift apart. A type here owns its field names: a field
//! added to a domain type reaches the API only when it is added here too, and the tests
//! at the bottom of each file check that the wire form of a domain value is the JSON the
//! API has always answered with (field names are what the Python package and the
//! dashboard read).
//!
//! Conventions of the schemas: times are RFC 3339 text in UTC (`format: date-time`);
//! model, version, metric and dataset names match [`NAME_PATTERN`]; ids are a prefix and
//! eight lowercase hex digits (`rule_75e4c7c4`).

pub mod alerting;
pub mod analysis;
pub mod evaluation;
pub mod events;
pub mod predictions;
pub mod series;

pub use alerting::{
    Alert, AlertHistoryResponse, AlertStatus, AlertSummary, AlertTransition, ChangeDirection,
    ComparisonMode, ComparisonOperator, HoldReason, Rule, RuleCondition, RulePatchRequest,
    RuleRequest, RulesResponse, Seasonality, Severity, SignificanceTest, Silence, SilenceRequest,
    SilencesResponse, Trigger,
};
pub use analysis::{
    BacktestEvent, BacktestEventKind, BacktestReport, ConfidenceInterval, DegradationResult,
    DegradationSeverity, DegradationStatus, DegradationsResponse, Direction, MetricHistory,
    OverallHealth, PerformanceHistory, Trend, Verdict, VersionAnalysis, VersionBacktest,
    VersionComparison,
};
pub use evaluation::{
    ConditionKind, Decision, EvaluationReport, NotifyDecision, NotifyReason, PastBreachRecorded,
    RuleEvaluation, TargetKey, Unjudgeable,
};
pub use events::{AlertEvent, SeriesUpdate};
pub use predictions::{
    FlagOrNumber, LabelEvent, LabelsLogged, LabelsRequest, PredictionConfig,
    PredictionConfigRequest, PredictionEvent, PredictionTask, PredictionsLogged,
    PredictionsRequest,
};
pub use series::{
    AllTime, BucketOut, HoursWindow, MetricDefinition, MetricSummary, PointOut, SampleInput,
    SampleSummary, SeriesResponse, SeriesSamples, TimeInput, ValueRange, VersionSummaries,
};

/// What a model, version, metric or dataset name may be: 1 to 128 of these characters
/// (`modelwatch_core::name`). The schemas repeat it as a literal: utoipa takes only
/// literals.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9_.:+@-]{1,128}$";
