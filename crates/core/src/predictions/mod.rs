//! Predictions and labels: what a model predicted for one request, and — later, in any
//! order — the ground truth for it, joined by `(model, id)`.
//!
//! A [`Prediction`] is a binary classification (a predicted class, a score, or both) or
//! a regression value; a [`Label`] carries the truth as a number (`0`/`1` for
//! classification). Their constructors validate, naming the bad field, so an event that
//! exists is well formed. [`PredictionConfig`] is what a model's metrics are computed
//! with (the tumbling window, the task, the score threshold, the minimum coverage), and
//! [`metrics`] computes a window's metrics from its joined pairs, as scikit-learn does.

pub mod metrics;
#[cfg(test)]
mod scikit_learn;

use std::fmt;
use std::time::Duration;

use crate::sample::validated_string_traits;
use crate::time::{TimeRange, Timestamp};
use crate::{Dataset, ModelName, ValidationError, Version};

pub use metrics::{compute, WindowMetrics};

/// Longest accepted prediction id, in characters.
pub const MAX_ID_LEN: usize = 256;

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
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let bad = || {
            ValidationError::new(
                Self::FIELD,
                format!("{text:?} is not a window length (like 30m, 1h or 1d)"),
            )
        };
        let number: u64 = number.parse().map_err(|_| bad())?;
        let minutes = match unit {
            "m" => Some(number),
            "h" => number.checked_mul(60),
            "d" => number.checked_mul(24 * 60),
            _ => return Err(bad()),
        };
        Self::from_minutes(minutes.ok_or_else(bad)?)
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
        let minutes = self.0.as_secs() / 60;
        if minutes.is_multiple_of(24 * 60) {
            write!(f, "{}d", minutes / (24 * 60))
        } else if minutes.is_multiple_of(60) {
            write!(f, "{}h", minutes / 60)
        } else {
            write!(f, "{minutes}m")
        }
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).expect("valid")
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
    }
}
