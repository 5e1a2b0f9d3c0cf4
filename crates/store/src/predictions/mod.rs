//! Predictions and their labels, joined by `(model, id)`, and each model's prediction
//! configuration.
//!
//! A prediction's label lives on the prediction's own row, so joining a label costs one
//! keyed update and a window's pairs are one index range scan by (model, version,
//! dataset, time). A label whose prediction has not arrived is kept in a pending table
//! until it does (then moved onto the row) or until [`PredictionStore::expire_pending_labels`]
//! drops it. Duplicates: the **first prediction** for an id wins (a later one is counted
//! and dropped: a prediction is a fact of the past); the **latest label** wins (a label is
//! a correction), and every label an id receives is counted on its row.

#[cfg(test)]
pub(crate) mod conformance;
pub(crate) mod memory;

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use modelwatch_core::predictions::{Label, Labelled, Output, Prediction, PredictionConfig};
use modelwatch_core::{Dataset, ModelName, TimeRange, Timestamp, Version};

use crate::StoreError;

/// The predictions of one model version on one dataset: the metrics' series, less the metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PredictionSeries {
    pub model: ModelName,
    pub version: Version,
    /// `None`: the default dataset.
    pub dataset: Option<Dataset>,
}

impl PredictionSeries {
    pub fn of(prediction: &Prediction) -> Self {
        PredictionSeries {
            model: prediction.model.clone(),
            version: prediction.version.clone(),
            dataset: prediction.dataset.clone(),
        }
    }
}

/// A prediction time of a series whose window a write changed (its coverage or pairs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Touched {
    pub series: PredictionSeries,
    pub timestamp: Timestamp,
}

/// What a batch of predictions did. `accepted + duplicates` is the batch's length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PredictionsWritten {
    /// Stored: the first prediction for its id.
    pub accepted: u64,
    /// Dropped: the id already had a prediction (stored, or earlier in the batch).
    pub duplicates: u64,
    /// Of the accepted, those whose label was pending and is now joined.
    pub labelled: u64,
    /// The (series, prediction time) of every accepted prediction.
    pub touched: BTreeSet<Touched>,
}

/// What a batch of labels did. `labelled + pending + duplicates` is the batch's length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelsWritten {
    /// The first label of a stored prediction, joined to it.
    pub labelled: u64,
    /// The first label of an id without a prediction yet: kept pending.
    pub pending: u64,
    /// A label for an id that already had one (joined or pending); it replaced it.
    pub duplicates: u64,
    /// The (series, prediction time) of every prediction whose label changed.
    pub touched: BTreeSet<Touched>,
}

/// A window's predictions: how many, and the labelled ones with their truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowPairs {
    pub predicted: u64,
    pub labelled: Vec<Labelled>,
}

/// Storage of predictions, labels and prediction configurations.
#[async_trait]
pub trait PredictionStore: Send + Sync + fmt::Debug {
    /// Stores the predictions (the first for each `(model, id)`; later ones are counted
    /// as duplicates) and joins the pending labels waiting for them. All or nothing.
    async fn insert_predictions(
        &self,
        predictions: Vec<Prediction>,
    ) -> Result<PredictionsWritten, StoreError>;

    /// Joins each label to its prediction (the latest label wins) or, for an id without
    /// a prediction, keeps it pending, received at `now`. All or nothing.
    async fn insert_labels(
        &self,
        labels: Vec<Label>,
        now: Timestamp,
    ) -> Result<LabelsWritten, StoreError>;

    /// The predictions of `series` made in `range` and, of those, the labelled pairs.
    async fn window_pairs(
        &self,
        series: &PredictionSeries,
        range: TimeRange,
    ) -> Result<WindowPairs, StoreError>;

    /// Drops the pending labels received before `cutoff` (their prediction never came);
    /// returns how many.
    async fn expire_pending_labels(&self, cutoff: Timestamp) -> Result<u64, StoreError>;

    /// How many labels are pending.
    async fn pending_labels(&self) -> Result<u64, StoreError>;

    /// Sets (or replaces) a model's prediction configuration.
    async fn set_prediction_config(
        &self,
        model: &ModelName,
        config: PredictionConfig,
    ) -> Result<(), StoreError>;

    /// Every model's prediction configuration, by model.
    async fn prediction_configs(&self) -> Result<Vec<(ModelName, PredictionConfig)>, StoreError>;

    async fn prediction_config(
        &self,
        model: &ModelName,
    ) -> Result<Option<PredictionConfig>, StoreError> {
        Ok(self
            .prediction_configs()
            .await?
            .into_iter()
            .find(|(m, _)| m == model)
            .map(|(_, config)| config))
    }
}

/// A prediction's output as stored: `class` (0/1), `score`, `value` columns, the value
/// set only for a regression.
pub(crate) fn output_columns(output: &Output) -> (Option<i64>, Option<f64>, Option<f64>) {
    match *output {
        Output::Classification { class, score } => (class.map(i64::from), score, None),
        Output::Regression { value } => (None, None, Some(value)),
    }
}

/// Reads the stored columns back.
pub(crate) fn output_from_columns(
    class: Option<i64>,
    score: Option<f64>,
    value: Option<f64>,
) -> Result<Output, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("prediction output: {what}"));
    match (class, score, value) {
        (None, None, Some(value)) => Ok(Output::Regression { value }),
        (None, None, None) => Err(corrupt("no class, score or value")),
        (class, score, None) => Ok(Output::Classification {
            class: match class {
                None => None,
                Some(0) => Some(false),
                Some(1) => Some(true),
                Some(other) => return Err(corrupt(&format!("class {other}"))),
            },
            score,
        }),
        (_, _, Some(_)) => Err(corrupt("both a class or score and a value")),
    }
}

/// A dataset as the prediction tables store it: empty text for the default dataset.
pub(crate) fn dataset_column(dataset: Option<&Dataset>) -> &str {
    dataset.map_or("", Dataset::as_str)
}

pub(crate) fn dataset_from_column(text: &str) -> Result<Option<Dataset>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    Dataset::parse(text)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("prediction dataset: {e}")))
}

/// A stored prediction configuration's columns read back.
pub(crate) fn config_from_columns(
    window_minutes: i64,
    task: &str,
    threshold: f64,
    min_coverage: f64,
) -> Result<PredictionConfig, StoreError> {
    use modelwatch_core::predictions::{Task, WindowLength};
    let corrupt = |e: modelwatch_core::ValidationError| {
        StoreError::Corrupt(format!("prediction config: {}: {}", e.field, e.message))
    };
    let minutes = u64::try_from(window_minutes)
        .map_err(|_| StoreError::Corrupt(format!("prediction window {window_minutes}")))?;
    PredictionConfig::new(
        WindowLength::from_minutes(minutes).map_err(corrupt)?,
        Task::parse(task).map_err(corrupt)?,
        threshold,
        min_coverage,
    )
    .map_err(corrupt)
}

/// A configuration's window in whole minutes, as stored.
pub(crate) fn window_minutes(config: &PredictionConfig) -> i64 {
    i64::try_from(config.window.as_duration().as_secs() / 60).unwrap_or(i64::MAX)
}
