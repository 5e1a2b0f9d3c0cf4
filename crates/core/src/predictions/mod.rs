//! Predictions and labels: what a model predicted for one request, and — later, in any
//! order — the ground truth for it, joined by `(model, id)`.
//!
//! A [`Prediction`] is a binary classification (a predicted class, a score, or both) or
//! a regression value; a [`Label`] carries the truth as a number (`0`/`1` for
//! classification). Their constructors validate, naming the bad field, so an event that
//! exists is well formed. [`PredictionConfig`] is what a model's metrics are computed
//! with (the tumbling window, the task, the score threshold, the minimum coverage), and
//! [`metrics`] computes a window's metrics from its joined pairs, as scikit-learn does;
//! [`drift`] how far a window's scores (and [`features`]) moved from a reference
//! window's, without labels.

pub mod drift;
pub mod features;
pub mod judging;
pub mod metrics;
#[cfg(test)]
mod scikit_learn;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::sample::validated_string_traits;
use crate::time::{TimeRange, Timestamp};
use crate::{Dataset, ModelName, ValidationError, Version};

pub use drift::{drift, feature_drift, Drift, Sketch};
pub use features::{FeatureName, FeatureSketches, Features};
pub use judging::{judge, judge_in_order, JudgedBy};
pub use metrics::{compute, WindowMetrics};

/// Longest accepted prediction id, in characters.
pub const MAX_ID_LEN: usize = 256;

/// The dataset a model's computed metrics are written to when its predictions are in
/// the default dataset; predictions of dataset `d` write to `predictions:d`
/// ([`computed_dataset`]). Computed and pushed metrics never share a series: a team that
/// pushes its own `accuracy` keeps it, and the computed `accuracy` sits beside it.
pub const COMPUTED_DATASET: &str = "predictions";

/// Whether pushed samples may not use `dataset`: it is where computed metrics go.
pub fn is_computed_dataset(dataset: &Dataset) -> bool {
    let name = dataset.as_str();
    name == COMPUTED_DATASET
        || name
            .strip_prefix(COMPUTED_DATASET)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// The predictions' dataset whose metrics `computed` holds (`None` inside: the default
/// dataset); `None` when `computed` is not a computed dataset.
pub fn predictions_dataset(computed: &Dataset) -> Option<Option<Dataset>> {
    let name = computed.as_str();
    if name == COMPUTED_DATASET {
        return Some(None);
    }
    let rest = name.strip_prefix(COMPUTED_DATASET)?.strip_prefix(':')?;
    Dataset::parse(rest).ok().map(Some)
}

/// Why a pushed sample is refused, if it is: its dataset is a computed one.
pub fn refuse_pushed(sample: &crate::Sample) -> Option<ValidationError> {
    let dataset = sample.dataset.as_ref()?;
    is_computed_dataset(dataset).then(|| {
        ValidationError::new(
            Dataset::FIELD,
            format!(
                "{:?} holds the metrics modelwatch computes from predictions; push to another dataset",
                dataset.as_str()
            ),
        )
    })
}

/// The dataset of the metrics computed from predictions in `dataset`: `predictions` for
/// the default dataset, `predictions:d` for `d`. Refused (field `dataset`) when `d` is a
/// computed dataset itself or too long to be prefixed.
pub fn computed_dataset(dataset: Option<&Dataset>) -> Result<Dataset, ValidationError> {
    match dataset {
        None => Dataset::parse(COMPUTED_DATASET),
        Some(dataset) if is_computed_dataset(dataset) => Err(ValidationError::new(
            Dataset::FIELD,
            format!("{:?} is where metrics computed from predictions go; predictions cannot be logged to it", dataset.as_str()),
        )),
        Some(dataset) => Dataset::parse(&format!("{COMPUTED_DATASET}:{dataset}")).map_err(|e| {
            ValidationError::new(
                Dataset::FIELD,
                format!("{:?} is too long for the dataset of its computed metrics ({})", dataset.as_str(), e.message),
            )
        }),
    }
}

/// A prediction's id as the client gives it (a request id, a transaction id): 1 to
/// [`MAX_ID_LEN`] characters, no control characters. Unique per model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PredictionId(String);

impl PredictionId {
    pub const FIELD: &'static str = "id";

    pub fn parse(id: &str) -> Result<Self, ValidationError> {
        Self::check(id)?;
        Ok(PredictionId(id.to_owned()))
    }

    /// [`Self::parse`] for text already owned: keeps its allocation.
    pub fn parse_owned(id: String) -> Result<Self, ValidationError> {
        Self::check(&id)?;
        Ok(PredictionId(id))
    }

    fn check(id: &str) -> Result<(), ValidationError> {
        if id.is_empty() {
            return Err(ValidationError::new(Self::FIELD, "must not be empty"));
        }
        let length = id.chars().count();
        if length > MAX_ID_LEN {
            return Err(ValidationError::new(
                Self::FIELD,
                format!("is {length} characters long; at most {MAX_ID_LEN} are allowed"),
            ));
        }
        if id.chars().any(char::is_control) {
            return Err(ValidationError::new(
                Self::FIELD,
                "must not contain control characters",
            ));
        }
        Ok(())
    }
}

validated_string_traits!(PredictionId);

/// What a model predicted. A classification has a class, a score, or both; which class
/// is counted as predicted is the class when given, else `score >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Output {
    Classification {
        /// The predicted class: `true` for the positive one.
        class: Option<bool>,
        /// The score of the positive class (a probability or any finite number).
        score: Option<f64>,
    },
    Regression {
        value: f64,
    },
}

impl Output {
    /// A binary classification; at least one of class and score, the score finite.
    pub fn classification(
        class: Option<bool>,
        score: Option<f64>,
    ) -> Result<Self, ValidationError> {
        if class.is_none() && score.is_none() {
            return Err(ValidationError::new(
                "class",
                "a classification needs a class, a score or both",
            ));
        }
        if let Some(score) = score {
            finite("score", score)?;
        }
        Ok(Output::Classification { class, score })
    }

    pub fn regression(value: f64) -> Result<Self, ValidationError> {
        finite("value", value)?;
        Ok(Output::Regression { value })
    }

    pub fn task(&self) -> Task {
        match self {
            Output::Classification { .. } => Task::Classification,
            Output::Regression { .. } => Task::Regression,
        }
    }
}

fn finite(field: &str, value: f64) -> Result<f64, ValidationError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ValidationError::new(
            field,
            format!("{value} is not a finite number"),
        ))
    }
}

/// A class written as a number: `0` or `1` (the truth of a classification label).
pub fn class_of(value: f64) -> Option<bool> {
    if value == 1.0 {
        Some(true)
    } else if value == 0.0 {
        Some(false)
    } else {
        None
    }
}

/// One prediction of one model version, at the time it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub id: PredictionId,
    pub model: ModelName,
    pub version: Version,
    /// `None`: the default dataset.
    pub dataset: Option<Dataset>,
    pub timestamp: Timestamp,
    pub output: Output,
    /// Named inputs whose drift is watched; folded into the window's sketches, not kept
    /// with the raw prediction.
    pub features: Features,
}

/// The ground truth for a prediction: `0`/`1` for a classification, the true value for a
/// regression. It may arrive before its prediction (kept pending for a while).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub id: PredictionId,
    pub model: ModelName,
    pub truth: f64,
    /// When the truth was observed, if the client says.
    pub timestamp: Option<Timestamp>,
}

impl Label {
    pub fn new(
        id: PredictionId,
        model: ModelName,
        truth: f64,
        timestamp: Option<Timestamp>,
    ) -> Result<Self, ValidationError> {
        finite("truth", truth)?;
        Ok(Label {
            id,
            model,
            truth,
            timestamp,
        })
    }
}

/// A prediction's output with its truth: one row of a window's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    pub output: Output,
    pub truth: f64,
}

/// What a model predicts: it decides which metrics its windows get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    Classification,
    Regression,
}

impl Task {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text.trim() {
            "classification" => Ok(Task::Classification),
            "regression" => Ok(Task::Regression),
            other => Err(ValidationError::new(
                "task",
                format!("{other:?} is not a task (use classification or regression)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The length of a tumbling window: whole minutes, from a minute to 366 days. Windows are
/// aligned to the Unix epoch, so a day's window runs from 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowLength(Duration);

impl WindowLength {
    pub const FIELD: &'static str = "window";
    pub const HOUR: WindowLength = WindowLength(Duration::from_secs(3600));
    /// The window of a model without a configuration.
    pub const DEFAULT: WindowLength = WindowLength::HOUR;
    const MAX_MINUTES: u64 = 366 * 24 * 60;

    pub fn from_minutes(minutes: u64) -> Result<Self, ValidationError> {
        if minutes == 0 || minutes > Self::MAX_MINUTES {
            return Err(ValidationError::new(
                Self::FIELD,
                format!("{minutes} minutes is not between 1 minute and 366 days"),
            ));
        }
        Ok(WindowLength(Duration::from_secs(minutes * 60)))
    }

    /// Reads `90m`, `1h`, `6h`, `1d`, `7d`.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::from_minutes(parse_minutes(Self::FIELD, "window length", text)?)
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    fn millis(self) -> i64 {
        // At most 366 days: far inside i64.
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// The window holding `t`: `[start, start + length)`, `start` a multiple of the
    /// length since the epoch.
    pub fn window_of(self, t: Timestamp) -> TimeRange {
        let ms = t.as_millis();
        let start = ms - ms.rem_euclid(self.millis());
        let start = Timestamp::from_millis(start).unwrap_or(Timestamp::MIN);
        TimeRange::new(start, start.saturating_add(self.0))
    }
}

impl fmt::Display for WindowLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_minutes(f, self.0)
    }
}

/// Whole minutes written as `90m`, `1h`, `7d`; `field` and `what` name it in errors.
fn parse_minutes(field: &str, what: &str, text: &str) -> Result<u64, ValidationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || {
        ValidationError::new(
            field,
            format!("{text:?} is not a {what} (like 30m, 1h or 1d)"),
        )
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let minutes = match unit {
        "m" => Some(number),
        "h" => number.checked_mul(60),
        "d" => number.checked_mul(24 * 60),
        _ => return Err(bad()),
    };
    minutes.ok_or_else(bad)
}

fn write_minutes(f: &mut fmt::Formatter<'_>, duration: Duration) -> fmt::Result {
    let minutes = duration.as_secs() / 60;
    if minutes.is_multiple_of(24 * 60) {
        write!(f, "{}d", minutes / (24 * 60))
    } else if minutes.is_multiple_of(60) {
        write!(f, "{}h", minutes / 60)
    } else {
        write!(f, "{minutes}m")
    }
}

/// Each model's window length, [`WindowLength::DEFAULT`] for a model without a
/// configuration: which window a prediction falls in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelWindows(BTreeMap<ModelName, WindowLength>);

impl ModelWindows {
    pub fn of<'a>(
        configs: impl IntoIterator<Item = (&'a ModelName, &'a PredictionConfig)>,
    ) -> Self {
        ModelWindows(
            configs
                .into_iter()
                .map(|(model, config)| (model.clone(), config.window))
                .collect(),
        )
    }

    pub fn length(&self, model: &ModelName) -> WindowLength {
        self.0.get(model).copied().unwrap_or(WindowLength::DEFAULT)
    }

    /// The window of a prediction of `model` made at `t`.
    pub fn window_of(&self, model: &ModelName, t: Timestamp) -> TimeRange {
        self.length(model).window_of(t)
    }
}

/// The longest a window waits for its labels before it is judged whatever its coverage:
/// whole minutes, from a minute to 366 days, counted from the window's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelDelay(Duration);

impl LabelDelay {
    pub const FIELD: &'static str = "max_label_delay";
    /// What a configuration without one waits: a week.
    pub const DEFAULT: LabelDelay = LabelDelay(Duration::from_secs(7 * 24 * 3600));

    pub fn from_minutes(minutes: u64) -> Result<Self, ValidationError> {
        if minutes == 0 || minutes > WindowLength::MAX_MINUTES {
            return Err(ValidationError::new(
                Self::FIELD,
                format!("{minutes} minutes is not between 1 minute and 366 days"),
            ));
        }
        Ok(LabelDelay(Duration::from_secs(minutes * 60)))
    }

    /// Reads `30m`, `6h`, `7d`.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::from_minutes(parse_minutes(Self::FIELD, "label delay", text)?)
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn minutes(self) -> u64 {
        self.0.as_secs() / 60
    }
}

impl fmt::Display for LabelDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_minutes(f, self.0)
    }
}

/// How a model's predictions become metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictionConfig {
    pub window: WindowLength,
    pub task: Task,
    /// A classification predicts the positive class when `score >= threshold` (and no
    /// class is given).
    pub threshold: f64,
    /// The label coverage (labelled / predicted) a window needs before it is judged.
    pub min_coverage: f64,
    /// How long after its end a window is judged whatever its coverage.
    pub max_label_delay: LabelDelay,
}

impl PredictionConfig {
    pub const DEFAULT_THRESHOLD: f64 = 0.5;

    pub fn new(
        window: WindowLength,
        task: Task,
        threshold: f64,
        min_coverage: f64,
    ) -> Result<Self, ValidationError> {
        finite("threshold", threshold)?;
        if !(0.0..=1.0).contains(&min_coverage) {
            return Err(ValidationError::new(
                "min_coverage",
                format!("{min_coverage} is not between 0 and 1"),
            ));
        }
        Ok(PredictionConfig {
            window,
            task,
            threshold,
            min_coverage,
            max_label_delay: LabelDelay::DEFAULT,
        })
    }

    pub fn with_max_label_delay(self, max_label_delay: LabelDelay) -> Self {
        PredictionConfig {
            max_label_delay,
            ..self
        }
    }

    /// How long after its start a window is judged at the latest: once it has ended and
    /// its label delay has passed, whatever its coverage. A rule on its metrics may first
    /// see the window's sample that late, and must still page for it.
    pub fn judged_within(&self) -> Duration {
        self.window.as_duration() + self.max_label_delay.as_duration()
    }

    /// Where raw predictions kept for `keep` start at `now`: the start of the earliest
    /// window that is not final. A window is final once it ended at least
    /// `max_label_delay` ago (no label is waited for any more) and it ended `keep` ago;
    /// every prediction before the returned time is in a final window, so dropping them
    /// changes no metric.
    pub fn raw_kept_from(&self, keep: Duration, now: Timestamp) -> Timestamp {
        let final_after = keep.max(self.max_label_delay.as_duration());
        self.window.window_of(now.saturating_sub(final_after)).start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).expect("valid")
    }

    #[test]
    fn raw_predictions_are_kept_until_their_window_is_final() {
        let hour = 3_600_000;
        let config = PredictionConfig::new(WindowLength::HOUR, Task::Classification, 0.5, 0.0)
            .expect("config")
            .with_max_label_delay(LabelDelay::from_minutes(120).expect("delay"));
        let now = at(100 * hour + hour / 2);
        // Kept a day: from the window holding now − 24 h.
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(config.raw_kept_from(day, now), at(76 * hour));
        // Kept an hour, but labels are waited for two: the window that ended 1.5 h ago
        // (98:00–99:00) may still take labels, so it stays with everything after it.
        let an_hour = Duration::from_secs(3600);
        assert_eq!(config.raw_kept_from(an_hour, now), at(98 * hour));
    }

    #[test]
    fn computed_metrics_have_datasets_of_their_own() {
        let named = |name: &str| Dataset::parse(name).expect("dataset");
        assert_eq!(
            computed_dataset(None).expect("default"),
            named("predictions")
        );
        assert_eq!(
            computed_dataset(Some(&named("shadow"))).expect("shadow"),
            named("predictions:shadow")
        );
        for computed in ["predictions", "predictions:shadow"] {
            assert!(is_computed_dataset(&named(computed)), "{computed}");
            assert_eq!(
                computed_dataset(Some(&named(computed))).unwrap_err().field,
                "dataset"
            );
        }
        assert_eq!(predictions_dataset(&named("predictions")), Some(None));
        assert_eq!(
            predictions_dataset(&named("predictions:shadow")),
            Some(Some(named("shadow")))
        );
        assert_eq!(predictions_dataset(&named("shadow")), None);
        for pushed in ["prediction", "predictions_v2", "shadow:predictions"] {
            assert!(!is_computed_dataset(&named(pushed)), "{pushed}");
        }
        assert_eq!(
            computed_dataset(Some(&named(&"d".repeat(120))))
                .unwrap_err()
                .field,
            "dataset"
        );
    }

    #[test]
    fn ids_are_checked_with_the_field_named() {
        assert_eq!(PredictionId::parse("").unwrap_err().field, "id");
        assert_eq!(PredictionId::parse("a\nb").unwrap_err().field, "id");
        assert!(PredictionId::parse(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(PredictionId::parse("req 42/α").is_ok());
    }

    #[test]
    fn outputs_need_a_class_or_a_finite_score() {
        assert_eq!(
            Output::classification(None, None).unwrap_err().field,
            "class"
        );
        assert_eq!(
            Output::classification(None, Some(f64::NAN))
                .unwrap_err()
                .field,
            "score"
        );
        assert_eq!(
            Output::regression(f64::INFINITY).unwrap_err().field,
            "value"
        );
        assert!(Output::classification(Some(true), None).is_ok());
        let id = PredictionId::parse("1").expect("id");
        let model = ModelName::parse("m").expect("model");
        assert_eq!(
            Label::new(id, model, f64::NAN, None).unwrap_err().field,
            "truth"
        );
    }

    #[test]
    fn a_model_without_a_configuration_has_the_default_window() {
        let daily = ModelName::parse("daily").expect("model");
        let config = PredictionConfig::new(
            WindowLength::parse("1d").expect("1d"),
            Task::Regression,
            0.5,
            0.0,
        )
        .expect("config");
        let windows = ModelWindows::of([(&daily, &config)]);
        let t = at(86_400_000 * 3 + 7_200_000 + 5);
        assert_eq!(windows.window_of(&daily, t).start, at(86_400_000 * 3));
        let other = ModelName::parse("other").expect("model");
        assert_eq!(windows.length(&other), WindowLength::DEFAULT);
        assert_eq!(
            windows.window_of(&other, t).start,
            at(86_400_000 * 3 + 7_200_000)
        );
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let hour = WindowLength::parse("1h").expect("1h");
        let window = hour.window_of(at(3_600_000 * 5 + 1_234));
        assert_eq!(window.start, at(3_600_000 * 5));
        assert_eq!(window.end, at(3_600_000 * 6));
        assert_eq!(hour.window_of(at(3_600_000 * 6)).start, at(3_600_000 * 6));
        assert_eq!(WindowLength::parse("1d").expect("1d").to_string(), "1d");
        assert_eq!(WindowLength::parse("90m").expect("90m").to_string(), "90m");
        for bad in [
            "",
            "1",
            "0h",
            "1.5h",
            "367d",
            "h",
            "1w",
            "99999999999999999999d",
        ] {
            assert_eq!(
                WindowLength::parse(bad).unwrap_err().field,
                "window",
                "{bad}"
            );
        }
    }

    #[test]
    fn config_checks_threshold_and_coverage() {
        let window = WindowLength::parse("1d").expect("1d");
        assert!(PredictionConfig::new(window, Task::Classification, 0.5, 0.8).is_ok());
        assert_eq!(
            PredictionConfig::new(window, Task::Classification, 0.5, 1.5)
                .unwrap_err()
                .field,
            "min_coverage"
        );
        assert_eq!(
            PredictionConfig::new(window, Task::Regression, f64::NAN, 0.5)
                .unwrap_err()
                .field,
            "threshold"
        );
        assert_eq!(Task::parse("ranking").unwrap_err().field, "task");
        assert_eq!(LabelDelay::parse("7d").expect("7d"), LabelDelay::DEFAULT);
        assert_eq!(LabelDelay::parse("36h").expect("36h").to_string(), "36h");
        for bad in ["0m", "1w", "", "400d"] {
            assert_eq!(
                LabelDelay::parse(bad).unwrap_err().field,
                "max_label_delay",
                "{bad}"
            );
        }
    }
}
