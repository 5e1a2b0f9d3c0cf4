//! Metrics from predictions: store a batch of predictions or labels, then recompute
//! every window the batch changed and write its metrics as ordinary samples.
//!
//! A window's metrics are samples of the series `(model, version, metric, dataset)` at
//! the window's start, plus a `label_coverage` sample (labelled / predicted). A window is
//! recomputed whole each time one of its predictions or labels arrives, and the samples
//! overwrite the window's previous ones (the store's later write wins): the latest value
//! is always the value of every label received so far. A model without a configuration
//! gets [`default_config`]'s hourly windows, its task taken from the window's outputs.

use std::collections::BTreeSet;

use modelwatch_core::predictions::metrics::COVERAGE_METRIC;
use modelwatch_core::predictions::{
    compute, Label, Prediction, PredictionConfig, Task, WindowLength,
};
use modelwatch_core::{Metric, ModelName, Sample, Timestamp};
use modelwatch_store::predictions::{LabelsWritten, PredictionSeries, PredictionsWritten, Touched};
use modelwatch_store::{StoreError, Stores};

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
    let written = stores.predictions.insert_predictions(predictions).await?;
    let recomputed = recompute(stores, &written.touched).await?;
    Ok((written, recomputed))
}

/// Stores the labels (received at `now`) and recomputes the windows of the predictions
/// they joined.
pub async fn log_labels(
    stores: &Stores,
    labels: Vec<Label>,
    now: Timestamp,
) -> Result<(LabelsWritten, Recomputed), StoreError> {
    let written = stores.predictions.insert_labels(labels, now).await?;
    let recomputed = recompute(stores, &written.touched).await?;
    Ok((written, recomputed))
}

/// Recomputes the window of each touched prediction (each window once) and writes its
/// metrics.
pub async fn recompute(
    stores: &Stores,
    touched: &BTreeSet<Touched>,
) -> Result<Recomputed, StoreError> {
    let configs = stores.predictions.prediction_configs().await?;
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
        let pairs = stores.predictions.window_pairs(&series, range).await?;
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
        stores.metrics.append(samples).await?;
    }
    Ok(recomputed)
}
