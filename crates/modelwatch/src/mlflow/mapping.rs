//! The pure half of the MLflow import: MLflow's names and logged values become modelwatch
//! names and samples, and whatever cannot is described with its reason. No I/O.
//!
//! - registered model name → [`ModelName`], unchanged;
//! - version number → [`Version`], unchanged (`3`, as in MLflow's `models:/churn/3`);
//! - metric key → a built-in [`Metric`] when the name is one (`accuracy`, `rmse`, …),
//!   otherwise a custom metric of that name;
//! - each logged value → a [`Sample`] at the value's timestamp (ms);
//! - a custom metric's direction, when its name says it unambiguously
//!   ([`infer_direction`]: `val_loss`, `train_error`, `mae_holdout` are lower-is-better).
//!
//! modelwatch keeps one value per (series, timestamp); MLflow keeps every step, and a
//! fast training loop logs several steps within one millisecond. Of values sharing a
//! timestamp the one of the highest step is kept (the later one in the server's order on
//! a tie), and the others are reported, never dropped silently.

use std::collections::BTreeMap;

use modelwatch_core::{
    Direction, Metric, MetricDefinition, ModelName, Point, Sample, SeriesKey, Timestamp,
    ValidationError, Version,
};
use serde::Serialize;

use super::client::MetricValue;

/// Something of the registry that was not imported, and why. Names are MLflow's, as the
/// server sent them (they may be names modelwatch refuses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    pub reason: String,
}

impl Skipped {
    pub fn model(model: &str, reason: impl Into<String>) -> Self {
        Skipped {
            model: model.to_owned(),
            version: None,
            metric: None,
            reason: reason.into(),
        }
    }

    pub fn version(model: &str, version: &str, reason: impl Into<String>) -> Self {
        Skipped {
            version: Some(version.to_owned()),
            ..Skipped::model(model, reason)
        }
    }

    pub fn metric(model: &str, version: &str, metric: &str, reason: impl Into<String>) -> Self {
        Skipped {
            metric: Some(metric.to_owned()),
            ..Skipped::version(model, version, reason)
        }
    }

    /// `model/version/metric`, as far as known.
    pub fn path(&self) -> String {
        [
            Some(&self.model),
            self.version.as_ref(),
            self.metric.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("/")
    }
}

fn refused(what: &str, error: ValidationError) -> String {
    format!("modelwatch refuses this {what} name: {}", error.message)
}

/// A registered model's name as a modelwatch model name.
pub fn model_name(name: &str) -> Result<ModelName, String> {
    ModelName::parse(name).map_err(|e| refused("model", e))
}

/// An MLflow version number as a modelwatch version, spelled the same: MLflow's
/// versions are whole numbers, valid modelwatch names as they are, and keeping them
/// unchanged lets `churn 3` be found as `models:/churn/3` in MLflow without translation.
pub fn version_name(version: &str) -> Result<Version, String> {
    Version::parse(version).map_err(|e| refused("version", e))
}

/// A metric key as a built-in metric when the names match exactly, else a custom metric.
pub fn metric_name(key: &str) -> Result<Metric, String> {
    Metric::parse(key).map_err(|e| refused("metric", e))
}

/// Name parts that mean lower is better: losses, errors and error measures, and costs of
/// serving.
const LOWER_IS_BETTER: &[&str] = &[
    "loss",
    "error",
    "err",
    "mae",
    "mse",
    "rmse",
    "mape",
    "smape",
    "rmsle",
    "msle",
    "wer",
    "cer",
    "perplexity",
    "ppl",
    "latency",
    "regret",
    "nll",
    "logloss",
    "brier",
    "fpr",
    "fnr",
    "eer",
    "hamming",
];
/// Name parts that mean higher is better.
const HIGHER_IS_BETTER: &[&str] = &[
    "accuracy",
    "acc",
    "precision",
    "recall",
    "f1",
    "auc",
    "roc",
    "r2",
    "ndcg",
    "map",
    "mrr",
    "bleu",
    "rouge",
    "iou",
    "dice",
    "throughput",
    "tpr",
    "tnr",
    "specificity",
    "sensitivity",
    "hit",
    "hitrate",
];

/// A custom metric's direction from its name, and why, when the name says it without
/// doubt: one of its parts (split at `_ . - : + @ /`, trailing digits aside) or, for `loss` and
/// `error`, any part of the name (`valloss`) names a lower-is-better measure and none a
/// higher-is-better one, or the other way round. `None` when nothing or both match.
pub fn infer_direction(name: &str) -> Option<(Direction, String)> {
    let lower_name = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower_name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .collect();
    // `f1` as it is, `rmse2` as `rmse`.
    let word_of = |list: &[&str]| {
        parts.iter().find_map(|part| {
            let bare = part.trim_end_matches(|c: char| c.is_ascii_digit());
            [*part, bare]
                .into_iter()
                .find(|candidate| list.contains(candidate))
                .map(str::to_owned)
        })
    };
    let lower = word_of(LOWER_IS_BETTER).or_else(|| {
        ["loss", "error"]
            .into_iter()
            .find(|word| lower_name.contains(word))
            .map(str::to_owned)
    });
    let higher = word_of(HIGHER_IS_BETTER);
    match (lower, higher) {
        (Some(word), None) => Some((Direction::LowerIsBetter, format!("{word:?} in its name"))),
        (None, Some(word)) => Some((Direction::HigherIsBetter, format!("{word:?} in its name"))),
        _ => None,
    }
}

/// The samples of one series made from a metric's history, and what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSeries {
    /// In time order, one per timestamp.
    pub samples: Vec<Sample>,
    /// At most one item for refused values and one for values sharing a timestamp.
    pub skipped: Vec<Skipped>,
}

/// Maps the history of one metric of one version, checking each value against
/// `definition` (the built-in one, or the custom metric's as declared).
pub fn map_history(
    key: &SeriesKey,
    definition: &MetricDefinition,
    history: &[MetricValue],
) -> MappedSeries {
    // Valid values by timestamp; the later (step, server order) replaces the earlier.
    let mut kept: BTreeMap<Timestamp, (i64, f64)> = BTreeMap::new();
    let mut refused = 0u64;
    let mut first_refusal: Option<String> = None;
    let mut shared = 0u64;
    for value in history {
        let checked = Timestamp::from_millis(value.timestamp)
            .map_err(|e| format!("timestamp {}: {e}", value.timestamp))
            .and_then(|timestamp| {
                definition
                    .check_value(value.value)
                    .map(|()| timestamp)
                    .map_err(|e| e.message)
            });
        let timestamp = match checked {
            Ok(timestamp) => timestamp,
            Err(reason) => {
                refused += 1;
                first_refusal.get_or_insert(reason);
                continue;
            }
        };
        match kept.get_mut(&timestamp) {
            None => {
                kept.insert(timestamp, (value.step, value.value));
            }
            Some(slot) => {
                shared += 1;
                if value.step >= slot.0 {
                    *slot = (value.step, value.value);
                }
            }
        }
    }

    let (model, version, metric) = (
        key.model.as_str(),
        key.version.as_str(),
        key.metric.as_str(),
    );
    let total = history.len();
    let mut skipped = Vec::new();
    if let Some(first) = first_refusal {
        skipped.push(Skipped::metric(
            model,
            version,
            metric,
            format!("{refused} of {total} values refused, the first because: {first}"),
        ));
    }
    if shared > 0 {
        skipped.push(Skipped::metric(
            model,
            version,
            metric,
            format!(
                "{shared} of {total} values share their timestamp with another step's; \
                 modelwatch keeps one value per millisecond: the highest step's"
            ),
        ));
    }
    let samples = kept
        .into_iter()
        .map(|(timestamp, (_step, value))| Sample {
            model: key.model.clone(),
            version: key.version.clone(),
            metric: key.metric.clone(),
            value,
            timestamp,
            dataset: None,
        })
        .collect();
    MappedSeries { samples, skipped }
}

/// How samples compare with what a series already holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Samples at timestamps the series does not have yet.
    pub new: u64,
    /// Samples at stored timestamps whose stored value (or data set) differs.
    pub updated: u64,
    /// Samples stored already, exactly.
    pub unchanged: u64,
    /// The new and updated samples: the only ones worth writing.
    pub to_write: Vec<Sample>,
}

/// Sorts `samples` into new, updated and unchanged against `stored` (a series' points in
/// time order, as [`modelwatch_store::MetricStore::range`] returns them), so a re-import
/// writes nothing that is already there.
pub fn changes(samples: Vec<Sample>, stored: &[Point]) -> Changes {
    let mut changes = Changes::default();
    for sample in samples {
        match stored.binary_search_by_key(&sample.timestamp, |p| p.timestamp) {
            Err(_) => changes.new += 1,
            // Bitwise: an exact copy is unchanged, -0.0 against 0.0 is a change.
            Ok(at)
                if stored[at].value.to_bits() == sample.value.to_bits()
                    && stored[at].dataset == sample.dataset =>
            {
                changes.unchanged += 1;
                continue;
            }
            Ok(_) => changes.updated += 1,
        }
        changes.to_write.push(sample);
    }
    changes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use modelwatch_core::{Dataset, Direction, ValueRange};

    use super::*;

    fn key(metric: &str) -> SeriesKey {
        SeriesKey::parse("churn", "3", metric).unwrap()
    }

    fn value(value: f64, timestamp: i64, step: i64) -> MetricValue {
        MetricValue {
            value,
            timestamp,
            step,
        }
    }

    fn points(mapped: &MappedSeries) -> Vec<(i64, f64)> {
        mapped
            .samples
            .iter()
            .map(|s| (s.timestamp.as_millis(), s.value))
            .collect()
    }

    #[test]
    fn names_map_unchanged_and_built_ins_are_recognised() {
        assert_eq!(
            model_name("churn-model.v2").unwrap().as_str(),
            "churn-model.v2"
        );
        assert_eq!(version_name("12").unwrap().as_str(), "12");
        assert_eq!(metric_name("accuracy").unwrap(), Metric::Accuracy);
        assert_eq!(metric_name("f1_score").unwrap(), Metric::F1Score);
        assert_eq!(
            metric_name("val_loss").unwrap(),
            Metric::Custom("val_loss".into())
        );
    }

    #[test]
    fn names_modelwatch_refuses_say_why() {
        let reason = model_name("churn model").unwrap_err();
        assert!(
            reason.starts_with("modelwatch refuses this model name: "),
            "{reason}"
        );
        assert!(reason.contains("' '"), "{reason}");
        let reason = metric_name("val/loss").unwrap_err();
        assert!(reason.contains("'/'"), "{reason}");
        assert!(metric_name(&"x".repeat(200))
            .unwrap_err()
            .contains("at most 128"));
    }

    #[test]
    fn a_history_becomes_samples_in_time_order_with_exact_values() {
        let mapped = map_history(
            &key("accuracy"),
            &Metric::Accuracy.default_definition(),
            &[
                value(0.91, 2_000, 1),
                value(0.9, 1_000, 0),
                value(0.925, 3_000, 2),
            ],
        );
        assert_eq!(
            points(&mapped),
            [(1_000, 0.9), (2_000, 0.91), (3_000, 0.925)]
        );
        assert!(mapped.skipped.is_empty());
        assert_eq!(mapped.samples[0].series(), key("accuracy"));
        assert_eq!(mapped.samples[0].dataset, None);
    }

    #[test]
    fn values_sharing_a_timestamp_keep_the_highest_step_and_are_reported() {
        let mapped = map_history(
            &key("loss"),
            &Metric::Custom("loss".into()).default_definition(),
            &[
                value(0.5, 1_000, 2),
                value(0.7, 1_000, 1),
                value(0.4, 2_000, 3),
                // Same step twice: the later in the server's order wins.
                value(0.3, 2_000, 3),
            ],
        );
        assert_eq!(points(&mapped), [(1_000, 0.5), (2_000, 0.3)]);
        assert_eq!(mapped.skipped.len(), 1);
        assert_eq!(mapped.skipped[0].path(), "churn/3/loss");
        assert!(
            mapped.skipped[0]
                .reason
                .starts_with("2 of 4 values share their timestamp"),
            "{}",
            mapped.skipped[0].reason
        );
    }

    #[test]
    fn impossible_values_are_refused_and_the_rest_kept() {
        let mapped = map_history(
            &key("accuracy"),
            &Metric::Accuracy.default_definition(),
            &[
                value(0.9, 1_000, 0),
                value(f64::NAN, 2_000, 1),
                value(1.5, 3_000, 2),
                value(0.8, -5, 3),
            ],
        );
        assert_eq!(points(&mapped), [(1_000, 0.9)]);
        assert_eq!(mapped.skipped.len(), 1);
        assert_eq!(
            mapped.skipped[0].reason,
            "3 of 4 values refused, the first because: NaN is not a measurement"
        );
    }

    #[test]
    fn directions_are_inferred_only_from_unambiguous_names() {
        let direction = |name: &str| infer_direction(name).map(|(direction, _)| direction);
        for lower in [
            "val_loss",
            "train/loss",
            "valloss",
            "test_error",
            "mae_holdout",
            "rmse2",
            "eval.perplexity",
            "p99_latency_ms",
            "TrainLoss",
            "word-error-rate",
        ] {
            assert_eq!(direction(lower), Some(Direction::LowerIsBetter), "{lower}");
        }
        for higher in [
            "val_accuracy",
            "top5_acc",
            "ndcg@10",
            "eval_f1",
            "auc_holdout",
        ] {
            assert_eq!(
                direction(higher),
                Some(Direction::HigherIsBetter),
                "{higher}"
            );
        }
        for unknown in ["calibration", "score", "epoch", "accuracy_loss", "lr"] {
            assert_eq!(direction(unknown), None, "{unknown}");
        }
        let (_, reason) = infer_direction("val_loss").expect("inferred");
        assert_eq!(reason, "\"loss\" in its name");
    }

    #[test]
    fn a_declared_custom_range_applies() {
        let definition = MetricDefinition::custom(
            Metric::Custom("loss".into()),
            Direction::LowerIsBetter,
            ValueRange::NON_NEGATIVE,
        )
        .unwrap();
        let mapped = map_history(&key("loss"), &definition, &[value(-1.0, 1_000, 0)]);
        assert!(mapped.samples.is_empty());
        assert!(mapped.skipped[0]
            .reason
            .contains("outside the valid range of loss"));
    }

    #[test]
    fn changes_write_only_what_the_series_lacks_or_holds_differently() {
        let mapped = map_history(
            &key("accuracy"),
            &Metric::Accuracy.default_definition(),
            &[
                value(0.9, 1_000, 0),
                value(0.91, 2_000, 1),
                value(0.92, 3_000, 2),
            ],
        );
        let stored = [
            Point {
                timestamp: Timestamp::from_millis(1_000).unwrap(),
                value: 0.9,
                dataset: None,
            },
            Point {
                timestamp: Timestamp::from_millis(2_000).unwrap(),
                value: 0.91,
                dataset: Some(Dataset::parse("holdout").unwrap()),
            },
        ];
        let changes = changes(mapped.samples, &stored);
        assert_eq!((changes.new, changes.updated, changes.unchanged), (1, 1, 1));
        let written: Vec<i64> = changes
            .to_write
            .iter()
            .map(|s| s.timestamp.as_millis())
            .collect();
        assert_eq!(written, [2_000, 3_000]);
    }

    #[test]
    fn skipped_items_name_what_is_known() {
        assert_eq!(Skipped::model("m", "r").path(), "m");
        assert_eq!(Skipped::version("m", "2", "r").path(), "m/2");
        let json = serde_json::to_value(Skipped::version("m", "2", "no run")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "m", "version": "2", "reason": "no run"})
        );
    }
}
