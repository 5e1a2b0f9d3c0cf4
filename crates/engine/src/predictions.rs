//! Metrics from predictions: store a batch of predictions or labels, then recompute
//! every window the batch changed and write its metrics as ordinary samples.
//!
//! A window's metrics are samples of the series `(model, version, metric, dataset)` at
//! the window's start, plus a `label_coverage` sample (labelled / predicted). A window is
//! recomputed whole each time one of its predictions or labels arrives, and the samples
//! overwrite the window's previous ones (the store's later write wins): the latest value
//! is always the value of every label received so far. A model without a configuration
//! gets [`default_config`]'s hourly windows, its task taken from the window's outputs.
//!
//! The free functions work on [`Stores`] (the CLI); the [`Engine`]'s methods of the same
//! names on the engine's stores (the HTTP API).

use std::collections::BTreeSet;

use modelwatch_core::predictions::metrics::COVERAGE_METRIC;
use modelwatch_core::predictions::{
    compute, Label, Prediction, PredictionConfig, Task, WindowLength,
};
use modelwatch_core::{Metric, ModelName, Sample, Timestamp};
use modelwatch_store::predictions::{LabelsWritten, PredictionSeries, PredictionsWritten, Touched};
use modelwatch_store::{MetricStore, PredictionStore, StoreError, Stores};

use crate::{Engine, EngineError};

/// What a recomputation wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recomputed {
    /// Windows recomputed.
    pub windows: u64,
    /// Metric samples written (coverage included).
    pub samples: u64,
}

/// The configuration of a model that has none: hourly windows, threshold 0.5, no minimum
/// coverage; the task is read from the window's outputs.
pub fn default_config(task: Task) -> PredictionConfig {
    PredictionConfig {
        window: WindowLength::HOUR,
        task,
        threshold: PredictionConfig::DEFAULT_THRESHOLD,
        min_coverage: 0.0,
    }
}

/// Stores the predictions and recomputes the windows they joined or counted in.
pub async fn log_predictions(
    stores: &Stores,
    predictions: Vec<Prediction>,
) -> Result<(PredictionsWritten, Recomputed), StoreError> {
    let logged = Sink::of(stores).log_predictions(predictions).await?;
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

/// Recomputes the window of each touched prediction (each window once) and writes its
/// metrics.
pub async fn recompute(
    stores: &Stores,
    touched: &BTreeSet<Touched>,
) -> Result<Recomputed, StoreError> {
    Ok(Sink::of(stores).recompute(touched).await?.0)
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
}

impl<'a> Sink<'a> {
    fn of(stores: &'a Stores) -> Self {
        Sink {
            predictions: &*stores.predictions,
            metrics: &*stores.metrics,
        }
    }

    async fn log_predictions(
        self,
        predictions: Vec<Prediction>,
    ) -> Result<Logged<PredictionsWritten>, StoreError> {
        let written = self.predictions.insert_predictions(predictions).await?;
        let (recomputed, samples) = self.recompute(&written.touched).await?;
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
        let written = self.predictions.insert_labels(labels, now).await?;
        let (recomputed, samples) = self.recompute(&written.touched).await?;
        Ok(Logged {
            written,
            recomputed,
            samples,
        })
    }

    /// The recomputation and the samples it wrote.
    async fn recompute(
        self,
        touched: &BTreeSet<Touched>,
    ) -> Result<(Recomputed, Vec<Sample>), StoreError> {
        let configs = self.predictions.prediction_configs().await?;
        let config_of = |model: &ModelName| {
            configs
                .iter()
                .find(|(m, _)| m == model)
                .map(|(_, config)| *config)
        };
        let mut windows: BTreeSet<(PredictionSeries, Timestamp, Timestamp)> = BTreeSet::new();
        for touch in touched {
            let length = config_of(&touch.series.model)
                .map_or_else(|| default_config(Task::Classification).window, |c| c.window);
            let range = length.window_of(touch.timestamp);
            windows.insert((touch.series.clone(), range.start, range.end));
        }
        let mut recomputed = Recomputed::default();
        let mut samples = Vec::new();
        for (series, start, end) in windows {
            let range = modelwatch_core::TimeRange::new(start, end);
            let pairs = self.predictions.window_pairs(&series, range).await?;
            let config = config_of(&series.model).unwrap_or_else(|| {
                let task = pairs
                    .labelled
                    .first()
                    .map_or(Task::Classification, |pair| pair.output.task());
                default_config(task)
            });
            let metrics = compute(&config, pairs.predicted, &pairs.labelled);
            recomputed.windows += 1;
            let sample = |metric: Metric, value: f64| Sample {
                model: series.model.clone(),
                version: series.version.clone(),
                metric,
                value,
                timestamp: start,
                dataset: series.dataset.clone(),
            };
            if let Some(coverage) = metrics.coverage() {
                samples.push(sample(Metric::Custom(COVERAGE_METRIC.into()), coverage));
            }
            for (metric, value) in metrics.values {
                samples.push(sample(metric, value));
            }
        }
        recomputed.samples = samples.len() as u64;
        if !samples.is_empty() {
            // A window writes a dozen samples at most: the copy is cheap.
            self.metrics.append(samples.clone()).await?;
        }
        Ok((recomputed, samples))
    }
}

/// Predictions, labels and prediction configurations through the engine: the HTTP API's
/// calls.
impl Engine {
    fn sink(&self) -> Sink<'_> {
        Sink {
            predictions: &*self.predictions,
            metrics: &*self.metrics,
        }
    }

    /// Stores the predictions and recomputes the windows they joined or counted in.
    pub async fn log_predictions(
        &self,
        predictions: Vec<Prediction>,
    ) -> Result<Logged<PredictionsWritten>, EngineError> {
        Ok(self.sink().log_predictions(predictions).await?)
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
