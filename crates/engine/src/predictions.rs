//! Metrics from predictions: store a batch of predictions or labels, then recompute
//! every window the batch changed and write its metrics as ordinary samples.
//!
//! A window's metrics are samples of the series `(model, version, metric, dataset)` at
//! the window's start, plus a `label_coverage` sample (labelled / predicted). The store
//! marks every window a batch changed dirty in the batch's own transaction; after the
//! batch each dirty window is recomputed whole, once, and the samples overwrite the
//! window's previous ones (the store's later write wins): the latest value is always the
//! value of every label received so far. A window is cleared only after its revision and
//! samples are written, so a crash in between leaves it dirty and the next batch or
//! evaluator tick (the first one after a restart) recomputes it. A model without a
//! configuration gets [`default_config`]'s hourly windows, its task taken from the
//! window's outputs.
//!
//! **Drift** does not wait for labels: each recomputation also stores the window's
//! [`Sketch`](modelwatch_core::predictions::Sketch) of scores, and once a window has closed its drift from the series'
//! reference window (its first closed window with at least
//! [`MIN_REFERENCE_PREDICTIONS`] predictions) is written at once as `drift_psi_score`,
//! `drift_ks_score` and `drift_js_score` samples of the computed dataset, declared
//! *lower is better* unless a team declared them otherwise. A window recorded again
//! (late predictions) gets its drift again; windows before the reference get none.
//! Each named feature drifts the same way against its own sketch in that reference
//! window (when it holds at least [`MIN_REFERENCE_PREDICTIONS`] values of it), written as
//! `drift_psi_feature_<name>`, `drift_ks_feature_<name>` and `drift_js_feature_<name>`.
//!
//! The free functions work on [`Stores`] (the CLI); the [`Engine`]'s methods of the same
//! names on the engine's stores (the HTTP API).

use std::collections::BTreeSet;

use modelwatch_core::predictions::drift::MIN_REFERENCE_PREDICTIONS;
use modelwatch_core::predictions::metrics::coverage_metric;
use modelwatch_core::predictions::{
    compute, computed_dataset, drift, judge_in_order, Label, LabelDelay, Prediction,
    PredictionConfig, Task, WindowLength,
};
use modelwatch_core::predictions::{feature_drift, ModelWindows};
use modelwatch_core::{
    Direction, Metric, MetricDefinition, ModelName, Sample, Timestamp, ValueRange,
};
use modelwatch_store::predictions::{
    Judged, LabelsWritten, NewRevision, PredictionSeries, PredictionsWritten, WindowHistory,
    WindowRecord, WindowRevision,
};
use modelwatch_store::{MetricStore, PredictionStore, StoreError, Stores};

use crate::{Engine, EngineError};

/// What a recomputation wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recomputed {
    /// Windows recomputed.
    pub windows: u64,
    /// Windows judged: their samples written for the rules (this batch's or earlier
    /// ones that were waiting).
    pub judged: u64,
    /// Metric samples written (coverage and drift included).
    pub samples: u64,
}

/// The configuration of a model that has none: hourly windows, threshold 0.5, no minimum
/// coverage (a window is judged when it closes), a week's label delay; the task is read
/// from the window's outputs.
pub fn default_config(task: Task) -> PredictionConfig {
    PredictionConfig {
        window: WindowLength::DEFAULT,
        task,
        threshold: PredictionConfig::DEFAULT_THRESHOLD,
        min_coverage: 0.0,
        max_label_delay: LabelDelay::DEFAULT,
    }
}

/// Stores the predictions and recomputes (at `now`) the windows they joined or counted in.
pub async fn log_predictions(
    stores: &Stores,
    predictions: Vec<Prediction>,
    now: Timestamp,
) -> Result<(PredictionsWritten, Recomputed), StoreError> {
    let logged = Sink::of(stores).log_predictions(predictions, now).await?;
    Ok((logged.written, logged.recomputed))
}

/// Stores the labels (received at `now`) and recomputes the windows of the predictions
/// they joined.
pub async fn log_labels(
    stores: &Stores,
    labels: Vec<Label>,
    now: Timestamp,
) -> Result<(LabelsWritten, Recomputed), StoreError> {
    let logged = Sink::of(stores).log_labels(labels, now).await?;
    Ok((logged.written, logged.recomputed))
}

/// Stores the predictions without recomputing their windows (left dirty): a bulk load
/// stores every batch, then calls [`recompute`] once, so each window is computed once
/// however many batches touched it.
pub async fn store_predictions(
    stores: &Stores,
    predictions: Vec<Prediction>,
) -> Result<PredictionsWritten, StoreError> {
    let configs = stores.predictions.prediction_configs().await?;
    let windows = ModelWindows::of(configs.iter().map(|(model, config)| (model, config)));
    stores
        .predictions
        .insert_predictions(predictions, &windows)
        .await
}

/// Stores the labels (received at `now`) without recomputing their windows (left
/// dirty), as [`store_predictions`] does.
pub async fn store_labels(
    stores: &Stores,
    labels: Vec<Label>,
    now: Timestamp,
) -> Result<LabelsWritten, StoreError> {
    let configs = stores.predictions.prediction_configs().await?;
    let windows = ModelWindows::of(configs.iter().map(|(model, config)| (model, config)));
    stores
        .predictions
        .insert_labels(labels, &windows, now)
        .await
}

/// Recomputes every dirty window (each once) at `now`, recording a revision of each, and
/// judges the windows of their series that are due.
pub async fn recompute(stores: &Stores, now: Timestamp) -> Result<Recomputed, StoreError> {
    let configs = stores.predictions.prediction_configs().await?;
    Ok(Sink::of(stores).recompute(&configs, now).await?.0)
}

/// Recomputes the dirty windows (left by a crash between a batch and its
/// recomputation), judges the windows due at `now` (their coverage reached, or their
/// label delay passed) and writes the drift of the windows closed by then: returns how
/// many were judged and the samples written.
pub async fn judge_windows(
    stores: &Stores,
    now: Timestamp,
) -> Result<(u64, Vec<Sample>), StoreError> {
    Sink::of(stores).judge_due(now).await
}

/// Drops the raw predictions older than `keep` whose windows are final at `now` (see
/// [`PredictionConfig::raw_kept_from`]), model by model; returns how many went. The
/// windows' metrics, revisions and sketches stay, and predictions arriving later for a
/// pruned window are refused (counted as too old), so no metric is recomputed from
/// what is left of a window.
pub async fn prune_raw_predictions(
    stores: &Stores,
    keep: std::time::Duration,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let configs = stores.predictions.prediction_configs().await?;
    let mut removed = 0;
    for model in stores.predictions.window_models().await? {
        // A model without a configuration keeps the defaults' hourly windows and week of
        // label delay (its task does not matter here).
        let config =
            config_of(&configs, &model).unwrap_or_else(|| default_config(Task::Classification));
        let before = config.raw_kept_from(keep, now);
        removed += stores.predictions.prune_predictions(&model, before).await?;
    }
    Ok(removed)
}

/// A window of a series with every revision, if it was computed.
pub async fn window_history(
    stores: &Stores,
    series: &PredictionSeries,
    start: Timestamp,
) -> Result<Option<WindowHistory>, StoreError> {
    stores.predictions.window_history(series, start).await
}

/// What logging a batch did: the store's counts, the recomputation's, and the metric
/// samples it wrote (for whoever tells others that samples arrived).
#[derive(Debug, Clone, Default)]
pub struct Logged<W> {
    pub written: W,
    pub recomputed: Recomputed,
    pub samples: Vec<Sample>,
}

/// Where predictions are stored and their metrics written: the stores of [`Stores`] or
/// of an [`Engine`].
#[derive(Debug, Clone, Copy)]
struct Sink<'a> {
    predictions: &'a dyn PredictionStore,
    metrics: &'a dyn MetricStore,
    /// The engine's: one recomputation at a time (the CLI runs one anyway).
    recomputing: Option<&'a tokio::sync::Mutex<()>>,
}

impl<'a> Sink<'a> {
    fn of(stores: &'a Stores) -> Self {
        Sink {
            predictions: &*stores.predictions,
            metrics: &*stores.metrics,
            recomputing: None,
        }
    }

    async fn log_predictions(
        self,
        predictions: Vec<Prediction>,
        now: Timestamp,
    ) -> Result<Logged<PredictionsWritten>, StoreError> {
        let configs = self.predictions.prediction_configs().await?;
        let windows = ModelWindows::of(configs.iter().map(|(model, config)| (model, config)));
        let written = self
            .predictions
            .insert_predictions(predictions, &windows)
            .await?;
        let (recomputed, samples) = self.recompute(&configs, now).await?;
        Ok(Logged {
            written,
            recomputed,
            samples,
        })
    }

    async fn log_labels(
        self,
        labels: Vec<Label>,
        now: Timestamp,
    ) -> Result<Logged<LabelsWritten>, StoreError> {
        let configs = self.predictions.prediction_configs().await?;
        let windows = ModelWindows::of(configs.iter().map(|(model, config)| (model, config)));
        let written = self
            .predictions
            .insert_labels(labels, &windows, now)
            .await?;
        let (recomputed, samples) = self.recompute(&configs, now).await?;
        Ok(Logged {
            written,
            recomputed,
            samples,
        })
    }

    async fn judge_due(self, now: Timestamp) -> Result<(u64, Vec<Sample>), StoreError> {
        let configs = self.predictions.prediction_configs().await?;
        let (recomputed, mut samples) = self.recompute(&configs, now).await?;
        let (judged, judged_samples) = self.judge(&configs, None, now).await?;
        samples.extend(judged_samples);
        samples.extend(self.drift(None, now).await?);
        Ok((recomputed.judged + judged, samples))
    }

    /// Recomputes every dirty window at `now`: its pairs read once, its sketch and
    /// revision recorded (one store call for them all), the samples of the judged ones
    /// written, and only then the windows cleared (a crash before leaves them dirty);
    /// then judges and writes the drift of their series. Returns what it did and the
    /// samples it wrote.
    async fn recompute(
        self,
        configs: &[(ModelName, PredictionConfig)],
        now: Timestamp,
    ) -> Result<(Recomputed, Vec<Sample>), StoreError> {
        // Two at once could both read a window, and the older read be recorded last.
        let _one_at_a_time = match self.recomputing {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let dirty = self.predictions.dirty_windows().await?;
        let mut recomputed = Recomputed::default();
        if dirty.is_empty() {
            return Ok((recomputed, Vec::new()));
        }
        let mut records = Vec::with_capacity(dirty.len());
        for window in &dirty {
            let pairs = self
                .predictions
                .window_pairs(&window.series, window.window)
                .await?;
            let config = config_of(configs, &window.series.model).unwrap_or_else(|| {
                let task = pairs
                    .labelled
                    .first()
                    .map_or(Task::Classification, |pair| pair.output.task());
                default_config(task)
            });
            let metrics = compute(&config, pairs.predicted, &pairs.labelled);
            records.push(WindowRecord {
                series: window.series.clone(),
                window: window.window,
                sketch: pairs.sketch,
                revision: NewRevision {
                    computed_at: now,
                    predicted: metrics.predicted,
                    labelled: metrics.labelled,
                    values: metrics.values,
                },
            });
        }
        recomputed.windows = records.len() as u64;
        let revisions: Vec<NewRevision> = records.iter().map(|r| r.revision.clone()).collect();
        let recorded = self.predictions.record_windows(records).await?;
        let mut samples = Vec::new();
        for ((window, revision), recorded) in dirty.iter().zip(&revisions).zip(&recorded) {
            // A judged window's series follow its revisions; a waiting one's wait.
            if recorded.judged.is_some() {
                samples.extend(window_samples(
                    &window.series,
                    window.window.start,
                    revision.predicted,
                    revision.labelled,
                    &revision.values,
                )?);
            }
        }
        if !samples.is_empty() {
            // A window writes a dozen samples at most: the copy is cheap.
            self.metrics.append(samples.clone()).await?;
        }
        self.predictions.clear_dirty(&dirty).await?;
        // Only the series recomputed: the evaluator sees to the others.
        let series: BTreeSet<&PredictionSeries> =
            dirty.iter().map(|window| &window.series).collect();
        for series in series {
            let (judged, judged_samples) = self.judge(configs, Some(series), now).await?;
            recomputed.judged += judged;
            samples.extend(judged_samples);
            samples.extend(self.drift(Some(series), now).await?);
        }
        recomputed.samples = samples.len() as u64;
        Ok((recomputed, samples))
    }

    /// Judges the waiting windows due at `now` ([`judge_in_order`]): writes their latest
    /// revision's samples, then marks them judged (a crash in between judges them again,
    /// with the same samples). Returns how many were judged and the samples written.
    async fn judge(
        self,
        configs: &[(ModelName, PredictionConfig)],
        series: Option<&PredictionSeries>,
        now: Timestamp,
    ) -> Result<(u64, Vec<Sample>), StoreError> {
        let waiting = self.predictions.waiting_windows(series).await?;
        let mut due = Vec::new();
        for series in waiting.chunk_by(|a, b| a.series == b.series) {
            let Some(first) = series.first() else {
                continue;
            };
            let config = config_of(configs, &first.series.model)
                .unwrap_or_else(|| default_config(Task::Classification));
            let coverages = series.iter().map(|window| {
                (
                    window.window,
                    window.latest().map_or(0.0, WindowRevision::coverage),
                )
            });
            for (window, by) in series.iter().zip(judge_in_order(&config, coverages, now)) {
                due.push((window, by));
            }
        }
        let mut samples = Vec::new();
        for (window, _) in &due {
            if let Some(latest) = window.latest() {
                samples.extend(window_samples(
                    &window.series,
                    window.window.start,
                    latest.predicted,
                    latest.labelled,
                    &latest.values,
                )?);
            }
        }
        if !samples.is_empty() {
            self.metrics.append(samples.clone()).await?;
        }
        for (window, by) in &due {
            let judged = Judged {
                at: now,
                revision: window.latest().map_or(0, |r| r.revision),
                by: *by,
            };
            self.predictions
                .judge_window(&window.series, window.window.start, judged)
                .await?;
        }
        Ok((due.len() as u64, samples))
    }

    /// Writes the drift of the windows of `series` (of every series when `None`) closed
    /// by `now` whose sketch changed since their drift was last computed, against the
    /// series' reference; a series without a reference yet waits for one. Returns the
    /// samples written.
    async fn drift(
        self,
        series: Option<&PredictionSeries>,
        now: Timestamp,
    ) -> Result<Vec<Sample>, StoreError> {
        let due = self.predictions.drift_due(series, now).await?;
        let mut samples = Vec::new();
        let mut computed = Vec::new();
        for windows in due.chunk_by(|a, b| a.series == b.series) {
            let Some(first) = windows.first() else {
                continue;
            };
            let Some(reference) = self
                .predictions
                .reference_sketch(&first.series, MIN_REFERENCE_PREDICTIONS, now)
                .await?
            else {
                continue;
            };
            for window in windows {
                if window.window.start >= reference.window.start {
                    let sample = |metric: String, value: f64| -> Result<Sample, StoreError> {
                        drift_sample(&window.series, window.window.start, metric, value)
                    };
                    if let Some(drift) = drift(&reference.sketch, &window.sketch) {
                        for (metric, value) in drift.values() {
                            samples.push(sample(metric.to_owned(), value)?);
                        }
                    }
                    for (feature, drift) in feature_drift(&reference.features, &window.features) {
                        for (metric, value) in drift.feature_values(&feature) {
                            samples.push(sample(metric, value)?);
                        }
                    }
                }
                computed.push(window);
            }
        }
        if !samples.is_empty() {
            self.declare_drift_metrics(&samples).await?;
            self.metrics.append(samples.clone()).await?;
        }
        for window in computed {
            self.predictions
                .drift_computed(&window.series, window.window.start, window.recorded, now)
                .await?;
        }
        Ok(samples)
    }

    /// Declares the drift metrics of `samples` *lower is better*, at least 0, unless
    /// declared already (a team's own declaration stands).
    async fn declare_drift_metrics(self, samples: &[Sample]) -> Result<(), StoreError> {
        let declared = self.metrics.custom_metrics().await?;
        let written: BTreeSet<&Metric> = samples.iter().map(|sample| &sample.metric).collect();
        for metric in written {
            if declared
                .iter()
                .any(|definition| definition.metric == *metric)
            {
                continue;
            }
            let definition = MetricDefinition::custom(
                metric.clone(),
                Direction::LowerIsBetter,
                ValueRange::NON_NEGATIVE,
            )
            .map_err(StoreError::Invalid)?;
            self.metrics.define_metric(definition).await?;
        }
        Ok(())
    }
}

/// One drift statistic of a window as a sample of its computed dataset, at its start.
fn drift_sample(
    series: &PredictionSeries,
    start: Timestamp,
    metric: String,
    value: f64,
) -> Result<Sample, StoreError> {
    let dataset = computed_dataset(series.dataset.as_ref()).map_err(StoreError::Invalid)?;
    Ok(Sample {
        model: series.model.clone(),
        version: series.version.clone(),
        metric: Metric::parse(&metric).map_err(StoreError::Invalid)?,
        value,
        timestamp: start,
        dataset: Some(dataset),
    })
}

fn config_of(
    configs: &[(ModelName, PredictionConfig)],
    model: &ModelName,
) -> Option<PredictionConfig> {
    configs
        .iter()
        .find(|(m, _)| m == model)
        .map(|(_, config)| *config)
}

/// A window's metrics and coverage as samples of its computed dataset, at its start.
fn window_samples(
    series: &PredictionSeries,
    start: Timestamp,
    predicted: u64,
    labelled: u64,
    values: &[(Metric, f64)],
) -> Result<Vec<Sample>, StoreError> {
    let dataset = computed_dataset(series.dataset.as_ref()).map_err(StoreError::Invalid)?;
    let sample = |metric: Metric, value: f64| Sample {
        model: series.model.clone(),
        version: series.version.clone(),
        metric,
        value,
        timestamp: start,
        dataset: Some(dataset.clone()),
    };
    let mut samples = Vec::with_capacity(values.len() + 1);
    if predicted > 0 {
        samples.push(sample(
            coverage_metric(),
            labelled as f64 / predicted as f64,
        ));
    }
    samples.extend(
        values
            .iter()
            .map(|(metric, value)| sample(metric.clone(), *value)),
    );
    Ok(samples)
}

/// Predictions, labels and prediction configurations through the engine: the HTTP API's
/// calls.
impl Engine {
    fn sink(&self) -> Sink<'_> {
        Sink {
            predictions: &*self.predictions,
            metrics: &*self.metrics,
            recomputing: Some(&self.recomputing),
        }
    }

    /// Stores the predictions and recomputes (at `now`) the windows they joined or
    /// counted in.
    pub async fn log_predictions(
        &self,
        predictions: Vec<Prediction>,
        now: Timestamp,
    ) -> Result<Logged<PredictionsWritten>, EngineError> {
        Ok(self.sink().log_predictions(predictions, now).await?)
    }

    /// Judges the windows due at `now`: how many, and the samples written. The
    /// evaluator calls it before each pass, so a window whose label delay passed is
    /// judged without a label arriving.
    pub async fn judge_windows(&self, now: Timestamp) -> Result<(u64, Vec<Sample>), EngineError> {
        Ok(self.sink().judge_due(now).await?)
    }

    /// A window of a series with every revision, if it was computed.
    pub async fn window_history(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
    ) -> Result<Option<WindowHistory>, EngineError> {
        Ok(self.predictions.window_history(series, start).await?)
    }

    /// Stores the labels (received at `now`) and recomputes the windows of the
    /// predictions they joined.
    pub async fn log_labels(
        &self,
        labels: Vec<Label>,
        now: Timestamp,
    ) -> Result<Logged<LabelsWritten>, EngineError> {
        Ok(self.sink().log_labels(labels, now).await?)
    }

    /// A model's prediction configuration, if it has one.
    pub async fn prediction_config(
        &self,
        model: &ModelName,
    ) -> Result<Option<PredictionConfig>, EngineError> {
        Ok(self.predictions.prediction_config(model).await?)
    }

    /// Sets (or replaces) a model's prediction configuration. The windows already
    /// computed keep their values until a prediction or label of theirs arrives.
    pub async fn set_prediction_config(
        &self,
        model: &ModelName,
        config: PredictionConfig,
    ) -> Result<(), EngineError> {
        Ok(self
            .predictions
            .set_prediction_config(model, config)
            .await?)
    }
}
