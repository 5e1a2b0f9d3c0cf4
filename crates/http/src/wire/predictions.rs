//! Predictions, labels and a model's prediction configuration on the wire (issue 22): the
//! one parser of a prediction event and a label event, shared by `POST
//! /api/v1/predictions`, `POST /api/v1/predictions/labels`, the Python package's embedded
//! mode and the CLI's `predictions log` / `labels log` files (JSON Lines and CSV), so every
//! way in takes the same fields by the same rules; and what those calls answer.
//!
//! An event is read into its raw form ([`PredictionEvent`], [`LabelEvent`]: the field
//! names, types and no unknown fields) and then validated into the core's
//! [`Prediction`](domain::Prediction) or [`Label`](domain::Label), the error naming the
//! field. Callers validate every event of a batch before writing any.

use modelwatch_core::predictions as domain;
use modelwatch_core::predictions::{Features, Output, PredictionId, Task, WindowLength};
use modelwatch_core::{Dataset, ModelName, Timestamp, ValidationError, Version};
use modelwatch_engine::predictions::Recomputed;
use modelwatch_store::predictions::{LabelsWritten, PredictionsWritten};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Events one request may carry at most (as many as the CLI stores per batch).
pub const MAX_EVENTS: usize = 10_000;

/// A class or a label as JSON and CSV write it: a boolean, a number, or the text of
/// either (`"1"`, `"true"`, `"0.25"`).
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum FlagOrNumber {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl FlagOrNumber {
    /// The class it names: `true`/`1` the positive one, `false`/`0` the negative one.
    fn class(&self) -> Result<bool, ValidationError> {
        match self {
            FlagOrNumber::Bool(b) => Ok(*b),
            FlagOrNumber::Number(n) if *n == 1.0 => Ok(true),
            FlagOrNumber::Number(n) if *n == 0.0 => Ok(false),
            FlagOrNumber::Text(t) if matches!(t.trim(), "1" | "true") => Ok(true),
            FlagOrNumber::Text(t) if matches!(t.trim(), "0" | "false") => Ok(false),
            other => Err(ValidationError::new(
                "class",
                format!("{} is not a class (use 0, 1, true or false)", other.shown()),
            )),
        }
    }

    /// The number it is: a boolean is 0 or 1.
    fn number(self, field: &str) -> Result<f64, ValidationError> {
        match self {
            FlagOrNumber::Bool(b) => Ok(f64::from(u8::from(b))),
            FlagOrNumber::Number(n) => Ok(n),
            FlagOrNumber::Text(text) => modelwatch_core::sample::parse_value(&text)
                .map_err(|e| ValidationError::new(field, e.message)),
        }
    }

    fn shown(&self) -> String {
        match self {
            FlagOrNumber::Bool(b) => b.to_string(),
            FlagOrNumber::Number(n) => n.to_string(),
            FlagOrNumber::Text(t) => format!("{t:?}"),
        }
    }
}

/// CSV files name a prediction's features in columns `feature.<name>` (`feature.age`); an
/// empty cell leaves that feature out of that prediction. JSON gives them as `features`.
pub const CSV_FEATURE_COLUMN: &str = "feature.";

/// One prediction: what a model version predicted for one request, at the time it made
/// it. A classification gives `class`, `score` or both; a regression gives `value` alone.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "req-8812", "model": "fraud_detector", "version": "v2.1", "timestamp": "2024-05-01T12:00:00Z", "score": 0.91, "features": {"age": 41, "amount": 12.5}}))]
pub struct PredictionEvent {
    /// The request's id (1 to 256 characters, no control characters), unique per model:
    /// its label names it.
    #[schema(min_length = 1, max_length = 256, example = "req-8812")]
    pub id: String,
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector")]
    pub model: String,
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1")]
    pub version: String,
    /// A dataset's name; absent (or `default`): the default dataset.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub dataset: Option<String>,
    /// When the prediction was made (RFC 3339 or epoch milliseconds): its window.
    #[schema(value_type = super::series::TimeInput)]
    pub timestamp: Timestamp,
    /// The predicted class: `true`/`1` for the positive one, `false`/`0`.
    #[serde(default)]
    #[schema(value_type = Option<FlagOrNumber>)]
    pub class: Option<FlagOrNumber>,
    /// The positive class' score (a probability or any finite number); the class is
    /// `score >= threshold` when no class is given.
    #[serde(default)]
    pub score: Option<f64>,
    /// A regression's predicted value (without class or score).
    #[serde(default)]
    pub value: Option<f64>,
    /// Up to 32 of the request's inputs, by name: finite numbers whose distribution per
    /// window is compared with the reference window's (`drift_psi_feature_<name>`,
    /// `drift_ks_feature_<name>`, `drift_js_feature_<name>`). A name is 1 to 110 letters,
    /// digits and `_ . - : + @`. Only their per-window sketches are kept, not the values.
    #[serde(default)]
    #[schema(example = json!({"age": 41, "amount": 12.5}))]
    pub features: Option<std::collections::BTreeMap<String, f64>>,
}

impl PredictionEvent {
    /// The prediction, or the first field that is wrong.
    pub fn validate(self) -> Result<domain::Prediction, ValidationError> {
        let output = match (self.value, self.class, self.score) {
            (Some(value), None, None) => Output::regression(value)?,
            (Some(_), _, _) => {
                return Err(ValidationError::new(
                    "value",
                    "a regression value goes without class or score",
                ))
            }
            (None, class, score) => {
                Output::classification(class.as_ref().map(FlagOrNumber::class).transpose()?, score)?
            }
        };
        Ok(domain::Prediction {
            id: PredictionId::parse_owned(self.id)?,
            model: ModelName::parse_owned(self.model)?,
            version: Version::parse_owned(self.version)?,
            dataset: match self.dataset {
                None => None,
                Some(name) => {
                    let dataset = Dataset::parse_optional(&name)?;
                    // Its metrics need a dataset of their own.
                    modelwatch_core::predictions::computed_dataset(dataset.as_ref())?;
                    dataset
                }
            },
            timestamp: self.timestamp,
            output,
            features: Features::parse(self.features.unwrap_or_default())?,
        })
    }
}

/// The ground truth of one prediction, sent when it is known (before its prediction
/// too: it is kept pending for a while).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "req-8812", "model": "fraud_detector", "label": 1}))]
pub struct LabelEvent {
    /// The id of the prediction it labels.
    #[schema(min_length = 1, max_length = 256, example = "req-8812")]
    pub id: String,
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector")]
    pub model: String,
    /// The truth: `0`/`1` (or `false`/`true`) for a classification, the true value for
    /// a regression.
    #[schema(value_type = FlagOrNumber)]
    pub label: FlagOrNumber,
    /// When the truth was observed (RFC 3339 or epoch milliseconds), if known.
    #[serde(default)]
    #[schema(value_type = Option<super::series::TimeInput>)]
    pub timestamp: Option<Timestamp>,
}

impl LabelEvent {
    /// The label, or the first field that is wrong.
    pub fn validate(self) -> Result<domain::Label, ValidationError> {
        let truth = self.label.number("label")?;
        let id = PredictionId::parse_owned(self.id)?;
        let model = ModelName::parse_owned(self.model)?;
        domain::Label::new(id, model, truth, self.timestamp).map_err(|error| match error.field {
            // The core calls the truth by its name; the wire calls it `label`.
            field if field == "truth" => ValidationError::new("label", error.message),
            _ => error,
        })
    }
}

/// The body of `POST /api/v1/predictions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictionsRequest {
    /// 1 to 10,000 predictions, every one validated before any is stored.
    #[schema(min_items = 1, max_items = 10000)]
    pub predictions: Vec<PredictionEvent>,
}

/// The body of `POST /api/v1/predictions/labels`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelsRequest {
    /// 1 to 10,000 labels, every one validated before any is stored.
    #[schema(min_items = 1, max_items = 10000)]
    pub labels: Vec<LabelEvent>,
}

/// Validates every event of a batch of `noun` (`predictions`, `labels`), naming the first
/// bad one's index and field (`predictions[3].score`); an empty batch, or one over
/// [`MAX_EVENTS`], is refused too.
pub fn validate_batch<R, T>(
    noun: &str,
    events: Vec<R>,
    validate: impl Fn(R) -> Result<T, ValidationError>,
) -> Result<Vec<T>, ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::new(noun, "must not be empty"));
    }
    if events.len() > MAX_EVENTS {
        return Err(ValidationError::new(
            noun,
            format!(
                "{} events; at most {MAX_EVENTS} are taken per request",
                events.len()
            ),
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            validate(event).map_err(|error| {
                ValidationError::new(format!("{noun}[{index}].{}", error.field), error.message)
            })
        })
        .collect()
}

/// A JSON value as a `T` (the body of a call that comes as a value: an embedded
/// caller's objects), a bad field named by its path (`predictions[3].score`) or `whole`.
pub fn from_json<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    whole: &str,
) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(value).map_err(|error| crate::error::json_error(&error, whole))
}

/// What a batch of predictions did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct PredictionsLogged {
    /// Stored: the first prediction for its id.
    pub accepted: u64,
    /// Dropped: the id already had a prediction (stored, or earlier in the batch).
    pub duplicates: u64,
    /// Of the accepted, those whose pending label was joined to them.
    pub labelled: u64,
    /// Refused: made in a window whose raw predictions were pruned (older than the
    /// `[retention] predictions` period); the window's metrics are final.
    pub too_old: u64,
    /// Windows whose metrics were recomputed (a revision recorded for each).
    pub windows_recomputed: u64,
    /// Windows judged: their metrics written to their series for the rules (a window is
    /// judged once it has closed and its coverage reached the model's `min_coverage`
    /// or its `max_label_delay` passed; windows of a series in order).
    pub windows_judged: u64,
    /// Metric samples written (label coverage included).
    pub samples_written: u64,
}

impl PredictionsLogged {
    pub fn of(written: &PredictionsWritten, recomputed: Recomputed) -> Self {
        PredictionsLogged {
            accepted: written.accepted,
            duplicates: written.duplicates,
            labelled: written.labelled,
            too_old: written.too_old,
            windows_recomputed: recomputed.windows,
            windows_judged: recomputed.judged,
            samples_written: recomputed.samples,
        }
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, other: &PredictionsLogged) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.labelled += other.labelled;
        self.too_old += other.too_old;
        self.windows_recomputed += other.windows_recomputed;
        self.windows_judged += other.windows_judged;
        self.samples_written += other.samples_written;
    }
}

/// What a batch of labels did. `labelled + pending + duplicates` is the batch's length.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct LabelsLogged {
    /// Stored: `labelled + pending`.
    pub accepted: u64,
    /// The first label of a stored prediction, joined to it.
    pub labelled: u64,
    /// The first label of an id without a prediction yet: kept pending for it.
    pub pending: u64,
    /// A label for an id that already had one (joined or pending); it replaced it.
    pub duplicates: u64,
    /// Windows whose metrics were recomputed (a revision recorded for each).
    pub windows_recomputed: u64,
    /// Windows judged: their metrics written to their series for the rules (a window is
    /// judged once it has closed and its coverage reached the model's `min_coverage`
    /// or its `max_label_delay` passed; windows of a series in order).
    pub windows_judged: u64,
    /// Metric samples written (label coverage included).
    pub samples_written: u64,
}

impl LabelsLogged {
    pub fn of(written: &LabelsWritten, recomputed: Recomputed) -> Self {
        LabelsLogged {
            accepted: written.labelled + written.pending,
            labelled: written.labelled,
            pending: written.pending,
            duplicates: written.duplicates,
            windows_recomputed: recomputed.windows,
            windows_judged: recomputed.judged,
            samples_written: recomputed.samples,
        }
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, other: &LabelsLogged) {
        self.accepted += other.accepted;
        self.labelled += other.labelled;
        self.pending += other.pending;
        self.duplicates += other.duplicates;
        self.windows_recomputed += other.windows_recomputed;
        self.windows_judged += other.windows_judged;
        self.samples_written += other.samples_written;
    }
}

/// What a model predicts: it decides which metrics its windows get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PredictionTask {
    Classification,
    Regression,
}

impl PredictionTask {
    pub fn as_str(self) -> &'static str {
        match self {
            PredictionTask::Classification => "classification",
            PredictionTask::Regression => "regression",
        }
    }
}

impl From<Task> for PredictionTask {
    fn from(task: Task) -> Self {
        match task {
            Task::Classification => PredictionTask::Classification,
            Task::Regression => PredictionTask::Regression,
        }
    }
}

/// The body of `PUT /api/v1/models/{model}/prediction-config` (and the CLI's
/// `predictions config` flags): the fields to set. A field left out keeps its value (for
/// a model without a configuration: hourly windows, threshold 0.5, no minimum coverage);
/// a model's first configuration needs its `task`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"window": "1h", "task": "classification", "threshold": 0.6, "min_coverage": 0.8}))]
pub struct PredictionConfigRequest {
    /// The tumbling window's length: whole minutes, hours or days (`30m`, `1h`, `1d`),
    /// from a minute to 366 days.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]+[mhd]$", example = "1h")]
    pub window: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<PredictionTask>)]
    pub task: Option<String>,
    /// A classification predicts the positive class when `score >= threshold`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// The label coverage (labelled / predicted, 0 to 1) a window needs before it is
    /// judged.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_coverage: Option<f64>,
    /// How long after its end a window is judged whatever its coverage (`30m`, `6h`,
    /// `7d`; a minute to 366 days; a week unless set).
    #[serde(default)]
    #[schema(pattern = r"^[0-9]+[mhd]$", example = "7d")]
    pub max_label_delay: Option<String>,
}

impl PredictionConfigRequest {
    /// Whether it sets nothing.
    pub fn is_empty(&self) -> bool {
        self.window.is_none()
            && self.task.is_none()
            && self.threshold.is_none()
            && self.min_coverage.is_none()
            && self.max_label_delay.is_none()
    }

    /// The configuration it makes of `stored` (the model's, if it has one).
    pub fn apply(
        self,
        stored: Option<domain::PredictionConfig>,
    ) -> Result<domain::PredictionConfig, ValidationError> {
        let current = stored.unwrap_or_else(|| {
            modelwatch_engine::predictions::default_config(Task::Classification)
        });
        let window = match &self.window {
            Some(text) => WindowLength::parse(text)?,
            None => current.window,
        };
        let task = match &self.task {
            Some(text) => Task::parse(text)?,
            None if stored.is_none() => {
                return Err(ValidationError::new(
                    "task",
                    "a model's first configuration needs its task",
                ))
            }
            None => current.task,
        };
        let max_label_delay = match &self.max_label_delay {
            Some(text) => domain::LabelDelay::parse(text)?,
            None => current.max_label_delay,
        };
        Ok(domain::PredictionConfig::new(
            window,
            task,
            self.threshold.unwrap_or(current.threshold),
            self.min_coverage.unwrap_or(current.min_coverage),
        )?
        .with_max_label_delay(max_label_delay))
    }
}

/// A model's prediction configuration: how its predictions and labels become metrics.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PredictionConfig {
    #[schema(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: String,
    /// The tumbling window's length (`30m`, `1h`, `1d`).
    #[schema(pattern = r"^[0-9]+[mhd]$", example = "1h")]
    pub window: String,
    pub task: PredictionTask,
    /// A classification predicts the positive class when `score >= threshold`.
    pub threshold: f64,
    /// The label coverage a window needs before it is judged.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_coverage: f64,
    /// How long after its end a window is judged whatever its coverage.
    #[schema(pattern = r"^[0-9]+[mhd]$", example = "7d")]
    pub max_label_delay: String,
    /// False: the model has no configuration and these are the defaults (the task is
    /// then read from each window's predictions).
    pub configured: bool,
}

impl PredictionConfig {
    pub fn of(model: &ModelName, config: &domain::PredictionConfig, configured: bool) -> Self {
        PredictionConfig {
            model: model.to_string(),
            window: config.window.to_string(),
            task: config.task.into(),
            threshold: config.threshold,
            min_coverage: config.min_coverage,
            max_label_delay: config.max_label_delay.to_string(),
            configured,
        }
    }
}

/// One computation of a window's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WindowRevision {
    /// 1 for the first computation, one more for each later one.
    pub revision: u32,
    /// When it was computed (when the prediction or label that changed the window
    /// arrived).
    #[schema(value_type = String, format = DateTime)]
    pub computed_at: Timestamp,
    pub predicted: u64,
    pub labelled: u64,
    /// `labelled / predicted`.
    pub coverage: f64,
    /// The metrics defined for the window then, by name.
    #[schema(value_type = std::collections::BTreeMap<String, f64>)]
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// When and why a window was judged, and on which revision.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WindowJudgement {
    #[schema(value_type = String, format = DateTime)]
    pub judged_at: Timestamp,
    /// The revision the rules saw.
    pub revision: u32,
    /// `coverage` (it reached the model's minimum) or `label_delay` (the model's maximum
    /// label delay passed).
    #[schema(value_type = String, pattern = "^(coverage|label_delay)$")]
    pub by: String,
    /// The coverage it was judged on.
    pub coverage: f64,
}

/// A window of a model version's predictions (`GET
/// /api/v1/models/{model}/versions/{version}/prediction-windows/{start}`): every
/// revision of its metrics, oldest first, and its judgement (absent while it waits).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PredictionWindow {
    pub model: String,
    pub version: String,
    /// The predictions' dataset (`default` for the default one).
    pub dataset: String,
    /// Where its metrics go (`predictions`, or `predictions:<dataset>`).
    pub metrics_dataset: String,
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judged: Option<WindowJudgement>,
    pub revisions: Vec<WindowRevision>,
}

impl PredictionWindow {
    pub fn of(history: &modelwatch_store::predictions::WindowHistory) -> Self {
        let series = &history.series;
        let revisions: Vec<WindowRevision> = history
            .revisions
            .iter()
            .map(|revision| WindowRevision {
                revision: revision.revision,
                computed_at: revision.computed_at,
                predicted: revision.predicted,
                labelled: revision.labelled,
                coverage: revision.coverage(),
                metrics: revision
                    .values
                    .iter()
                    .map(|(metric, value)| (metric.as_str().to_owned(), *value))
                    .collect(),
            })
            .collect();
        PredictionWindow {
            model: series.model.to_string(),
            version: series.version.to_string(),
            dataset: Dataset::name_of(series.dataset.as_ref()).to_owned(),
            metrics_dataset: domain::computed_dataset(series.dataset.as_ref())
                .map_or_else(|_| String::new(), |d| d.to_string()),
            start: history.window.start,
            end: history.window.end,
            judged: history.judged.map(|judged| WindowJudgement {
                judged_at: judged.at,
                revision: judged.revision,
                by: judged.by.as_str().to_owned(),
                coverage: revisions
                    .iter()
                    .find(|r| r.revision == judged.revision)
                    .map_or(0.0, |r| r.coverage),
            }),
            revisions,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn prediction(json: &str) -> Result<domain::Prediction, ValidationError> {
        serde_json::from_str::<PredictionEvent>(json)
            .unwrap()
            .validate()
    }

    #[test]
    fn a_classification_takes_a_class_a_score_or_both() {
        let scored = prediction(
            r#"{"id":"a","model":"m","version":"v1","timestamp":"2024-05-01T12:00:00Z","score":0.7,"class":"1"}"#,
        )
        .unwrap();
        assert_eq!(
            scored.output,
            Output::Classification {
                class: Some(true),
                score: Some(0.7)
            }
        );
        let neither =
            prediction(r#"{"id":"a","model":"m","version":"v1","timestamp":1714564800000}"#)
                .unwrap_err();
        assert_eq!(neither.field, "class");
        let both = prediction(
            r#"{"id":"a","model":"m","version":"v1","timestamp":1714564800000,"value":2,"score":0.1}"#,
        )
        .unwrap_err();
        assert_eq!(both.field, "value");
        let two = prediction(
            r#"{"id":"a","model":"m","version":"v1","timestamp":1714564800000,"class":2}"#,
        )
        .unwrap_err();
        assert_eq!(two.field, "class");
    }

    #[test]
    fn features_are_named_numbers_checked_by_name() {
        let featured = prediction(
            r#"{"id":"a","model":"m","version":"v1","timestamp":1,"score":0.7,"features":{"age":41,"amount":12.5}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                featured.features.get("age"),
                featured.features.get("amount")
            ),
            (Some(41.0), Some(12.5))
        );
        let none = prediction(r#"{"id":"a","model":"m","version":"v1","timestamp":1,"score":0.7}"#);
        assert!(none.unwrap().features.is_empty());
        let events: Vec<PredictionEvent> = serde_json::from_str(
            r#"[{"id":"a","model":"m","version":"v1","timestamp":1,"score":0.7},
                {"id":"b","model":"m","version":"v1","timestamp":1,"score":0.7,"features":{"a b":1}}]"#,
        )
        .unwrap();
        let error = validate_batch("predictions", events, PredictionEvent::validate).unwrap_err();
        assert_eq!(error.field, "predictions[1].features");
        assert!(error.message.contains("feature name"), "{error}");
        let many: String = (0..33)
            .map(|n| format!(r#""f{n}":1"#))
            .collect::<Vec<_>>()
            .join(",");
        let error = prediction(&format!(
            r#"{{"id":"a","model":"m","version":"v1","timestamp":1,"score":0.7,"features":{{{many}}}}}"#
        ))
        .unwrap_err();
        assert_eq!(error.field, "features");
    }

    #[test]
    fn a_bad_event_of_a_batch_is_named_by_its_index_and_field() {
        let events: Vec<LabelEvent> = serde_json::from_str(
            r#"[{"id":"a","model":"m","label":1},{"id":"","model":"m","label":true}]"#,
        )
        .unwrap();
        let error = validate_batch("labels", events, LabelEvent::validate).unwrap_err();
        assert_eq!(error.field, "labels[1].id");
        let error = validate_batch("labels", Vec::new(), LabelEvent::validate).unwrap_err();
        assert_eq!(error.field, "labels");
    }

    #[test]
    fn a_first_configuration_needs_its_task_and_later_ones_keep_what_they_leave_out() {
        let error = PredictionConfigRequest::default().apply(None).unwrap_err();
        assert_eq!(error.field, "task");
        let first = PredictionConfigRequest {
            task: Some("regression".into()),
            window: Some("1d".into()),
            ..Default::default()
        }
        .apply(None)
        .unwrap();
        let later = PredictionConfigRequest {
            min_coverage: Some(0.5),
            ..Default::default()
        }
        .apply(Some(first))
        .unwrap();
        assert_eq!(
            (later.task, later.window.to_string(), later.min_coverage),
            (Task::Regression, "1d".to_owned(), 0.5)
        );
    }
}
