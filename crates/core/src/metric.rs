//! Metrics: what is measured, which way is better, and which values are possible.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::name::{check_name, ValidationError};

/// Which way of change is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

impl Direction {
    /// How much worse `current` is than `baseline`, as a signed amount: positive means a
    /// degradation whatever the direction.
    pub fn worsening(self, baseline: f64, current: f64) -> f64 {
        match self {
            Direction::HigherIsBetter => baseline - current,
            Direction::LowerIsBetter => current - baseline,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher_is_better",
            Direction::LowerIsBetter => "lower_is_better",
        }
    }
}

/// The family a metric belongs to; recommendations and dashboards group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricFamily {
    Classification,
    Regression,
    Serving,
    Custom,
}

/// The closed interval of values a metric can take; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ValueRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl ValueRange {
    pub const UNBOUNDED: ValueRange = ValueRange {
        min: None,
        max: None,
    };
    pub const UNIT: ValueRange = ValueRange {
        min: Some(0.0),
        max: Some(1.0),
    };
    pub const NON_NEGATIVE: ValueRange = ValueRange {
        min: Some(0.0),
        max: None,
    };
    pub const AT_MOST_ONE: ValueRange = ValueRange {
        min: None,
        max: Some(1.0),
    };

    /// Checks that `value` is a finite number inside the range of `metric`.
    pub fn check(&self, metric: &Metric, value: f64) -> Result<(), ValidationError> {
        if value.is_nan() {
            return Err(ValidationError::new("value", "NaN is not a measurement"));
        }
        if value.is_infinite() {
            return Err(ValidationError::new(
                "value",
                "infinite values are not accepted",
            ));
        }
        if !self.contains(value) {
            return Err(ValidationError::new(
                "value",
                format!("{value} is outside the valid range of {metric} ({self})"),
            ));
        }
        Ok(())
    }

    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

impl fmt::Display for ValueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(min), Some(max)) => write!(f, "[{min}, {max}]"),
            (Some(min), None) => write!(f, ">= {min}"),
            (None, Some(max)) => write!(f, "<= {max}"),
            (None, None) => f.write_str("any finite number"),
        }
    }
}

/// A metric name: one of the built-in metrics, or a custom one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1Score,
    AucRoc,
    AucPr,
    Mae,
    Mse,
    Rmse,
    R2Score,
    Mape,
    Latency,
    Throughput,
    ErrorRate,
    /// A metric the built-ins do not cover; its direction and range come from a
    /// [`MetricDefinition`] (higher is better and unbounded when none is declared).
    Custom(String),
}

impl Metric {
    pub const BUILT_IN: [Metric; 14] = [
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::F1Score,
        Metric::AucRoc,
        Metric::AucPr,
        Metric::Mae,
        Metric::Mse,
        Metric::Rmse,
        Metric::R2Score,
        Metric::Mape,
        Metric::Latency,
        Metric::Throughput,
        Metric::ErrorRate,
    ];

    /// Parses a metric name: a built-in name, or any other valid name as a custom metric.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        check_name("metric", name)?;
        Ok(Metric::BUILT_IN
            .iter()
            .find(|m| m.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Metric::Custom(name.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1Score => "f1_score",
            Metric::AucRoc => "auc_roc",
            Metric::AucPr => "auc_pr",
            Metric::Mae => "mae",
            Metric::Mse => "mse",
            Metric::Rmse => "rmse",
            Metric::R2Score => "r2_score",
            Metric::Mape => "mape",
            Metric::Latency => "latency",
            Metric::Throughput => "throughput",
            Metric::ErrorRate => "error_rate",
            Metric::Custom(name) => name,
        }
    }

    pub fn is_custom(&self) -> bool {
        matches!(self, Metric::Custom(_))
    }

    /// The built-in metric `name` most likely misspells (`acuracy` → accuracy,
    /// `Precision` → precision, `f1score` → f1_score), if any: at most one edit away when
    /// either name has up to four letters, else two (case and `_`/`-` aside; a
    /// swap of neighbours counts once). A name with a digit or a sign (`@ : + .`) the
    /// built-in lacks is a different metric, not a typo (`precision@5`, `recall@10`).
    pub fn likely_misspelling_of(name: &str) -> Option<Metric> {
        let wanted = normalise(name);
        let mut best: Option<(usize, &Metric)> = None;
        for metric in &Metric::BUILT_IN {
            let builtin = metric.as_str();
            if builtin == name {
                return None;
            }
            let marks = |text: &str| {
                text.chars()
                    .filter(|c| c.is_ascii_digit() || "@:+.".contains(*c))
                    .collect::<Vec<_>>()
            };
            let own = marks(builtin);
            if marks(name).iter().any(|c| !own.contains(c)) {
                continue;
            }
            let builtin_chars = normalise(builtin);
            let limit = if wanted.len().min(builtin_chars.len()) <= 4 {
                1
            } else {
                2
            };
            let distance = edit_distance(&wanted, &builtin_chars);
            if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, metric));
            }
        }
        best.map(|(_, metric)| metric.clone())
    }

    pub fn family(&self) -> MetricFamily {
        use Metric::*;
        match self {
            Accuracy | Precision | Recall | F1Score | AucRoc | AucPr => {
                MetricFamily::Classification
            }
            Mae | Mse | Rmse | R2Score | Mape => MetricFamily::Regression,
            Latency | Throughput | ErrorRate => MetricFamily::Serving,
            Custom(_) => MetricFamily::Custom,
        }
    }

    /// The built-in definition; custom metrics get the default (higher is better, any value).
    pub fn default_definition(&self) -> MetricDefinition {
        let (direction, range) = self.defaults();
        MetricDefinition {
            metric: self.clone(),
            direction,
            range,
        }
    }

    /// The built-in valid range (unbounded for custom metrics until declared).
    pub fn default_range(&self) -> ValueRange {
        self.defaults().1
    }

    fn defaults(&self) -> (Direction, ValueRange) {
        use Metric::*;
        match self {
            Accuracy | Precision | Recall | F1Score | AucRoc | AucPr => {
                (Direction::HigherIsBetter, ValueRange::UNIT)
            }
            R2Score => (Direction::HigherIsBetter, ValueRange::AT_MOST_ONE),
            Throughput => (Direction::HigherIsBetter, ValueRange::NON_NEGATIVE),
            Mae | Mse | Rmse | Mape | Latency => {
                (Direction::LowerIsBetter, ValueRange::NON_NEGATIVE)
            }
            ErrorRate => (Direction::LowerIsBetter, ValueRange::UNIT),
            Custom(_) => (Direction::HigherIsBetter, ValueRange::UNBOUNDED),
        }
    }
}

/// Lower case without separators: how two names are compared for typos.
fn normalise(name: &str) -> Vec<char> {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[n][m]
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Metric {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::parse(s)
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Metric::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// What a rule watches: one metric, or the whole model version (`*`), whose samples of
/// every metric count together. Only no-data rules take `*`: a version is silent when
/// none of its metrics reports. `*` cannot be a metric's name (see [`Metric::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricScope {
    One(Metric),
    Every,
}

impl MetricScope {
    /// How [`MetricScope::Every`] is written.
    pub const EVERY: &'static str = "*";

    /// A metric's name, or `*` for every metric of the version.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text.trim() {
            Self::EVERY => Ok(MetricScope::Every),
            name => Metric::parse(name).map(MetricScope::One),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MetricScope::One(metric) => metric.as_str(),
            MetricScope::Every => Self::EVERY,
        }
    }

    /// The one metric, unless every metric is watched.
    pub fn metric(&self) -> Option<&Metric> {
        match self {
            MetricScope::One(metric) => Some(metric),
            MetricScope::Every => None,
        }
    }

    /// Whether samples of `metric` count.
    pub fn covers(&self, metric: &Metric) -> bool {
        self.metric().is_none_or(|m| m == metric)
    }
}

impl From<Metric> for MetricScope {
    fn from(metric: Metric) -> Self {
        MetricScope::One(metric)
    }
}

impl PartialEq<Metric> for MetricScope {
    fn eq(&self, other: &Metric) -> bool {
        self.metric() == Some(other)
    }
}

impl fmt::Display for MetricScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MetricScope {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MetricScope::parse(s)
    }
}

impl Serialize for MetricScope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MetricScope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        MetricScope::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// What modelwatch knows about a metric: its direction and valid range.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDefinition {
    pub metric: Metric,
    pub direction: Direction,
    pub range: ValueRange,
}

impl MetricDefinition {
    /// A declared custom metric. Built-in metrics keep their own definition.
    pub fn custom(
        metric: Metric,
        direction: Direction,
        range: ValueRange,
    ) -> Result<Self, ValidationError> {
        if !metric.is_custom() {
            return Err(ValidationError::new(
                "metric",
                format!(
                    "{metric} is a built-in metric; its direction and range cannot be redeclared"
                ),
            ));
        }
        let finite = |bound: Option<f64>| bound.is_none_or(f64::is_finite);
        if !finite(range.min) || !finite(range.max) {
            return Err(ValidationError::new(
                "range",
                "bounds must be finite numbers",
            ));
        }
        if let (Some(min), Some(max)) = (range.min, range.max) {
            if min > max {
                return Err(ValidationError::new(
                    "range",
                    format!("min {min} is greater than max {max}"),
                ));
            }
        }
        Ok(MetricDefinition {
            metric,
            direction,
            range,
        })
    }

    /// Checks that a value is finite and within the metric's range.
    pub fn check_value(&self, value: f64) -> Result<(), ValidationError> {
        self.range.check(&self.metric, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_round_trips_through_its_name() {
        for metric in Metric::BUILT_IN {
            assert_eq!(Metric::parse(metric.as_str()).unwrap(), metric);
        }
        assert_eq!(
            Metric::parse("queue_ms").unwrap(),
            Metric::Custom("queue_ms".into())
        );
    }

    #[test]
    fn directions_follow_the_seed() {
        use Direction::*;
        for (metric, direction) in [
            (Metric::Accuracy, HigherIsBetter),
            (Metric::R2Score, HigherIsBetter),
            (Metric::Throughput, HigherIsBetter),
            (Metric::Latency, LowerIsBetter),
            (Metric::ErrorRate, LowerIsBetter),
            (Metric::Mape, LowerIsBetter),
            (Metric::Custom("x".into()), HigherIsBetter),
        ] {
            assert_eq!(metric.default_definition().direction, direction, "{metric}");
        }
    }

    #[test]
    fn ranges_refuse_impossible_values() {
        let accuracy = Metric::Accuracy.default_definition();
        assert!(accuracy.check_value(1.0).is_ok());
        assert!(accuracy.check_value(1.01).is_err());
        assert!(accuracy.check_value(f64::NAN).is_err());
        assert!(Metric::Latency
            .default_definition()
            .check_value(-0.5)
            .is_err());
        assert!(Metric::R2Score
            .default_definition()
            .check_value(-3.0)
            .is_ok());
        assert!(Metric::R2Score
            .default_definition()
            .check_value(1.5)
            .is_err());
        let error = accuracy.check_value(f64::INFINITY).unwrap_err();
        assert_eq!(error.field, "value");
    }

    #[test]
    fn worsening_is_direction_aware() {
        assert_eq!(Direction::HigherIsBetter.worsening(0.9, 0.8), 0.9 - 0.8);
        assert_eq!(Direction::LowerIsBetter.worsening(100.0, 120.0), 20.0);
    }
}

#[cfg(test)]
mod misspelling_tests {
    use super::*;

    fn suggestion(name: &str) -> Option<String> {
        Metric::likely_misspelling_of(name).map(|m| m.as_str().to_owned())
    }

    #[test]
    fn near_misses_of_built_ins_are_named() {
        for (typo, meant) in [
            ("acuracy", "accuracy"),
            ("accuarcy", "accuracy"),
            ("Accuracy", "accuracy"),
            ("precison", "precision"),
            ("recal", "recall"),
            ("f1score", "f1_score"),
            ("f1-score", "f1_score"),
            ("latncy", "latency"),
            ("error-rate", "error_rate"),
            ("rsme", "rmse"),
            ("throughtput", "throughput"),
        ] {
            assert_eq!(suggestion(typo).as_deref(), Some(meant), "{typo}");
        }
    }

    #[test]
    fn other_metrics_are_not_typos() {
        for name in [
            "accuracy",
            "queue_ms",
            "precision@5",
            "recall@10",
            "val_loss",
            "auc",
            "f1",
            "latency_p99",
            "gpu_util",
            "drift_score",
        ] {
            assert_eq!(suggestion(name), None, "{name}");
        }
    }
}
