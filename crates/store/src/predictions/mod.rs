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
//!
//! A prediction's **features** are not stored on its row: an accepted prediction's
//! features are folded into its window's [`FeatureSketches`] in the transaction that
//! stores it (the window taken from the [`ModelWindows`] the caller passes), beside the
//! window's sketch of scores. A raw row stays its output and label however many features
//! it had; the price is that a window's feature sketches are only ever added to, never
//! rebuilt from raw rows (a model whose window length changes keeps its old windows'
//! sketches as they were).
//!
//! **Dirty windows.** The transaction that stores predictions or labels also marks each
//! window they changed as dirty ([`DirtyWindow`]); the engine recomputes the dirty
//! windows afterwards and clears them once their revision and samples are written. A
//! crash (kill -9) between the two leaves the windows marked, and the next recomputation
//! (a later batch, or the evaluator's first tick after a restart) brings their metrics
//! up to the stored events: nothing acknowledged is lost from a window's metrics.

pub(crate) mod block;
#[cfg(test)]
pub(crate) mod conformance;
pub(crate) mod memory;

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use modelwatch_core::predictions::{
    FeatureSketches, JudgedBy, Label, Labelled, ModelWindows, Output, Prediction, PredictionConfig,
    Sketch,
};
use modelwatch_core::{Dataset, Metric, ModelName, TimeRange, Timestamp, Version};

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
    /// Refused: made before the model's raw predictions were pruned
    /// ([`PredictionStore::prune_predictions`]); their window is final.
    pub too_old: u64,
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

/// A window's predictions: how many, the labelled ones with their truth, and the sketch
/// of every prediction's score (labelled or not).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowPairs {
    pub predicted: u64,
    pub labelled: Vec<Labelled>,
    pub sketch: Sketch,
}

/// A window's sketch of its scores as stored, numbered by how many times it was recorded
/// (its drift is due while the number its drift was computed for is lower), with its
/// sketch of each feature.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSketch {
    pub series: PredictionSeries,
    pub window: TimeRange,
    pub sketch: Sketch,
    pub recorded: u32,
    pub features: FeatureSketches,
}

/// The features of a batch's accepted predictions, folded per window: what
/// [`PredictionStore::insert_predictions`] adds to each window's feature sketches.
#[derive(Debug, Default)]
pub(crate) struct FeatureFold(
    std::collections::BTreeMap<(PredictionSeries, Timestamp), (TimeRange, FeatureSketches)>,
);

impl FeatureFold {
    /// Counts an accepted prediction's features in its window (nothing without features).
    pub(crate) fn add(&mut self, prediction: &Prediction, windows: &ModelWindows) {
        if prediction.features.is_empty() {
            return;
        }
        let window = windows.window_of(&prediction.model, prediction.timestamp);
        self.0
            .entry((PredictionSeries::of(prediction), window.start))
            .or_insert_with(|| (window, FeatureSketches::new()))
            .1
            .add(&prediction.features);
    }

    /// Each window's series, range and the sketches to add to its own.
    pub(crate) fn into_windows(
        self,
    ) -> impl Iterator<Item = (PredictionSeries, TimeRange, FeatureSketches)> {
        self.0
            .into_iter()
            .map(|((series, _), (window, sketches))| (series, window, sketches))
    }
}

/// A window whose predictions or labels changed since its metrics were last recorded.
/// `marks` counts the changes: clearing it ([`PredictionStore::clear_dirty`]) with the
/// count read before the recomputation leaves it dirty when a change came in meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyWindow {
    pub series: PredictionSeries,
    pub window: TimeRange,
    pub marks: u64,
}

/// The windows of `touched`, each once, by series and start.
pub(crate) fn touched_windows(
    touched: &BTreeSet<Touched>,
    windows: &ModelWindows,
) -> std::collections::BTreeMap<(PredictionSeries, Timestamp), TimeRange> {
    let mut by_window = std::collections::BTreeMap::new();
    for touch in touched {
        let window = windows.window_of(&touch.series.model, touch.timestamp);
        by_window
            .entry((touch.series.clone(), window.start))
            .or_insert(window);
    }
    by_window
}

/// One window's recomputation as [`PredictionStore::record_windows`] takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRecord {
    pub series: PredictionSeries,
    pub window: TimeRange,
    pub sketch: Sketch,
    pub revision: NewRevision,
}

/// What one computation of a window gave, as [`PredictionStore::record_revision`] takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRevision {
    pub computed_at: Timestamp,
    pub predicted: u64,
    pub labelled: u64,
    /// The metrics defined for the window (coverage aside).
    pub values: Vec<(Metric, f64)>,
}

/// One computation of a window, numbered from 1 in the order they were recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRevision {
    pub revision: u32,
    pub computed_at: Timestamp,
    pub predicted: u64,
    pub labelled: u64,
    pub values: Vec<(Metric, f64)>,
}

impl WindowRevision {
    /// Labelled / predicted; 0 for a window without predictions.
    pub fn coverage(&self) -> f64 {
        if self.predicted == 0 {
            return 0.0;
        }
        self.labelled as f64 / self.predicted as f64
    }
}

/// When a window was judged (its metrics written for the rules), why, and on which
/// revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    pub at: Timestamp,
    pub revision: u32,
    pub by: JudgedBy,
}

/// A window of a series: its judgement and its revisions, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowHistory {
    pub series: PredictionSeries,
    pub window: TimeRange,
    pub judged: Option<Judged>,
    pub revisions: Vec<WindowRevision>,
}

impl WindowHistory {
    pub fn latest(&self) -> Option<&WindowRevision> {
        self.revisions.last()
    }
}

/// What recording a revision found: its number and the window's judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub revision: u32,
    pub judged: Option<Judged>,
}

/// Storage of predictions, labels and prediction configurations.
#[async_trait]
pub trait PredictionStore: Send + Sync + fmt::Debug {
    /// Stores the predictions (the first for each `(model, id)`; later ones are counted
    /// as duplicates), joins the pending labels waiting for them, adds the accepted
    /// ones' features to their window's feature sketches (windows by `windows`; the
    /// window's drift is due again once its score sketch is recorded) and marks their
    /// windows dirty. All or nothing.
    async fn insert_predictions(
        &self,
        predictions: Vec<Prediction>,
        windows: &ModelWindows,
    ) -> Result<PredictionsWritten, StoreError>;

    /// Joins each label to its prediction (the latest label wins) or, for an id without
    /// a prediction, keeps it pending, received at `now`; marks the windows (by
    /// `windows`) of the predictions joined dirty. All or nothing.
    async fn insert_labels(
        &self,
        labels: Vec<Label>,
        windows: &ModelWindows,
        now: Timestamp,
    ) -> Result<LabelsWritten, StoreError>;

    /// Every dirty window, by series and start.
    async fn dirty_windows(&self) -> Result<Vec<DirtyWindow>, StoreError>;

    /// Clears each window that was not marked again since it was read (its `marks`
    /// unchanged). One transaction.
    async fn clear_dirty(&self, windows: &[DirtyWindow]) -> Result<(), StoreError>;

    /// Records each window's sketch ([`Self::record_sketch`]) and revision
    /// ([`Self::record_revision`]); the backends that can do it in one transaction do.
    async fn record_windows(
        &self,
        windows: Vec<WindowRecord>,
    ) -> Result<Vec<Recorded>, StoreError> {
        let mut recorded = Vec::with_capacity(windows.len());
        for record in windows {
            self.record_sketch(&record.series, record.window, &record.sketch)
                .await?;
            recorded.push(
                self.record_revision(&record.series, record.window, record.revision)
                    .await?,
            );
        }
        Ok(recorded)
    }

    /// The predictions of `series` made in `range` and, of those, the labelled pairs.
    async fn window_pairs(
        &self,
        series: &PredictionSeries,
        range: TimeRange,
    ) -> Result<WindowPairs, StoreError>;

    /// Appends a revision to the window of `series` starting at `window.start` (created
    /// with its first revision).
    async fn record_revision(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        revision: NewRevision,
    ) -> Result<Recorded, StoreError>;

    /// The window of `series` starting at `start`, with every revision.
    async fn window_history(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
    ) -> Result<Option<WindowHistory>, StoreError>;

    /// Every window not judged yet, by series and start, each with its latest revision
    /// only; of `series` only, when given.
    async fn waiting_windows(
        &self,
        series: Option<&PredictionSeries>,
    ) -> Result<Vec<WindowHistory>, StoreError>;

    /// Records the window's judgement; `false` (and nothing changed) when it was judged
    /// already or does not exist.
    async fn judge_window(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        judged: Judged,
    ) -> Result<bool, StoreError>;

    /// Stores the sketch of the window of `series` starting at `window.start`, replacing
    /// the one before (its feature sketches stay): the window's drift is due again.
    async fn record_sketch(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        sketch: &Sketch,
    ) -> Result<(), StoreError>;

    /// The windows ended by `now` whose drift is due (see [`WindowSketch`]), by series
    /// and start; of `series` only, when given.
    async fn drift_due(
        &self,
        series: Option<&PredictionSeries>,
        now: Timestamp,
    ) -> Result<Vec<WindowSketch>, StoreError>;

    /// The reference of `series` at `now`: its earliest window ended by then holding at
    /// least `min_count` scores.
    async fn reference_sketch(
        &self,
        series: &PredictionSeries,
        min_count: u64,
        now: Timestamp,
    ) -> Result<Option<WindowSketch>, StoreError>;

    /// Records that the window's drift was computed at `at` from its sketch as recorded
    /// the `recorded`-th time (a later recording leaves its drift due).
    async fn drift_computed(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        recorded: u32,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Drops the raw predictions of `model` made before `before` (with their labels) and
    /// refuses, from then on, predictions of `model` made before it (counted as
    /// [`PredictionsWritten::too_old`]), so a window whose raw events went is never
    /// recomputed from what is left; its metrics, revisions and sketch stay. The cutoff
    /// only moves forward (an earlier one than the model's current does nothing).
    /// Returns how many predictions went.
    async fn prune_predictions(
        &self,
        model: &ModelName,
        before: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Every model with a computed window, in name order.
    async fn window_models(&self) -> Result<Vec<ModelName>, StoreError>;

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

/// A prediction's output as the rows before blocks stored it (SQLite 18, PostgreSQL 16):
/// `class` (0/1), `score`, `value` columns, the value set only for a regression. Tests
/// write such rows to migrate them.
#[cfg(test)]
pub(crate) fn output_columns(output: &Output) -> (Option<i64>, Option<f64>, Option<f64>) {
    match *output {
        Output::Classification { class, score } => (class.map(i64::from), score, None),
        Output::Regression { value } => (None, None, Some(value)),
    }
}

/// Reads those columns back (when migrating them into blocks).
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

/// A revision's metrics as stored: `name=value` joined by `;` (metric names have
/// neither), values written so that they read back exactly.
pub(crate) fn values_column(values: &[(Metric, f64)]) -> String {
    values
        .iter()
        .map(|(metric, value)| format!("{}={value:?}", metric.as_str()))
        .collect::<Vec<_>>()
        .join(";")
}

pub(crate) fn values_from_column(text: &str) -> Result<Vec<(Metric, f64)>, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("window revision metrics: {what}"));
    text.split(';')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| corrupt(format!("{part:?} is not name=value")))?;
            let metric = Metric::parse(name).map_err(|e| corrupt(e.to_string()))?;
            let value: f64 = value.parse().map_err(|_| corrupt(format!("{value:?}")))?;
            Ok((metric, value))
        })
        .collect()
}

/// A stored sketch read back.
pub(crate) fn sketch_from_column(text: &str) -> Result<Sketch, StoreError> {
    Sketch::decode(text).map_err(|e| StoreError::Corrupt(format!("window sketch: {}", e.message)))
}

/// Stored feature sketches read back.
pub(crate) fn feature_sketches_from_column(text: &str) -> Result<FeatureSketches, StoreError> {
    FeatureSketches::decode(text)
        .map_err(|e| StoreError::Corrupt(format!("window feature sketches: {}", e.message)))
}

/// A sketch's recording number read back.
pub(crate) fn recorded_from_column(number: i64) -> Result<u32, StoreError> {
    u32::try_from(number).map_err(|_| StoreError::Corrupt(format!("window sketch {number}")))
}

/// A judgement's columns read back: all three set, or none.
pub(crate) fn judged_from_columns(
    at_ms: Option<i64>,
    revision: Option<i64>,
    by: Option<&str>,
) -> Result<Option<Judged>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("window judgement: {what}"));
    match (at_ms, revision, by) {
        (None, None, None) => Ok(None),
        (Some(at_ms), Some(revision), Some(by)) => Ok(Some(Judged {
            at: Timestamp::from_millis(at_ms).map_err(|_| corrupt("time"))?,
            revision: u32::try_from(revision).map_err(|_| corrupt("revision"))?,
            by: JudgedBy::parse(by).ok_or_else(|| corrupt(by))?,
        })),
        _ => Err(corrupt("partly set")),
    }
}

/// A stored prediction configuration's columns read back.
pub(crate) fn config_from_columns(
    window_minutes: i64,
    task: &str,
    threshold: f64,
    min_coverage: f64,
    max_label_delay_minutes: i64,
) -> Result<PredictionConfig, StoreError> {
    use modelwatch_core::predictions::{LabelDelay, Task, WindowLength};
    let corrupt = |e: modelwatch_core::ValidationError| {
        StoreError::Corrupt(format!("prediction config: {}: {}", e.field, e.message))
    };
    let minutes = u64::try_from(window_minutes)
        .map_err(|_| StoreError::Corrupt(format!("prediction window {window_minutes}")))?;
    Ok(PredictionConfig::new(
        WindowLength::from_minutes(minutes).map_err(corrupt)?,
        Task::parse(task).map_err(corrupt)?,
        threshold,
        min_coverage,
    )
    .map_err(corrupt)?
    .with_max_label_delay(
        LabelDelay::from_minutes(u64::try_from(max_label_delay_minutes).unwrap_or(0))
            .map_err(corrupt)?,
    ))
}

/// A configuration's window in whole minutes, as stored.
pub(crate) fn window_minutes(config: &PredictionConfig) -> i64 {
    i64::try_from(config.window.as_duration().as_secs() / 60).unwrap_or(i64::MAX)
}
