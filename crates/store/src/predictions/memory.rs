//! Predictions and labels in memory: the same rules as the database backends, in maps.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use modelwatch_core::predictions::drift::score_of;
use modelwatch_core::predictions::{
    FeatureSketches, Features, Label, Labelled, ModelWindows, Prediction, PredictionConfig,
    PredictionId, Sketch,
};
use modelwatch_core::{ModelName, TimeRange, Timestamp};

use super::{
    touched_windows, DirtyWindow, FeatureFold, Judged, LabelsWritten, NewRevision,
    PredictionSeries, PredictionStore, PredictionsWritten, Recorded, Touched, WindowHistory,
    WindowPairs, WindowRevision, WindowSketch,
};
use crate::{MemoryStore, StoreError};

#[derive(Debug)]
struct Row {
    /// Without its features (they are in the window's feature sketches), as the database
    /// backends keep it.
    prediction: Prediction,
    truth: Option<f64>,
}

#[derive(Debug)]
struct Pending {
    truth: f64,
    received: Timestamp,
}

#[derive(Debug, Default)]
pub(crate) struct Tables {
    rows: HashMap<(ModelName, PredictionId), Row>,
    pending: HashMap<(ModelName, PredictionId), Pending>,
    configs: BTreeMap<ModelName, PredictionConfig>,
    windows: BTreeMap<(PredictionSeries, Timestamp), WindowHistory>,
    sketches: BTreeMap<(PredictionSeries, Timestamp), StoredSketch>,
    /// By model: predictions made before this were pruned, and are refused.
    pruned_before: HashMap<ModelName, Timestamp>,
    dirty: BTreeMap<(PredictionSeries, Timestamp), DirtyWindow>,
}

impl Tables {
    fn mark_dirty(
        &mut self,
        touched: &std::collections::BTreeSet<Touched>,
        windows: &ModelWindows,
    ) {
        for ((series, start), window) in touched_windows(touched, windows) {
            self.dirty
                .entry((series.clone(), start))
                .or_insert(DirtyWindow {
                    series,
                    window,
                    marks: 0,
                })
                .marks += 1;
        }
    }
}

#[derive(Debug)]
struct StoredSketch {
    sketch: WindowSketch,
    /// The recording its drift was computed for (0: never).
    drift_of: u32,
}

impl StoredSketch {
    /// A window's row before anything was recorded in it.
    fn empty(series: PredictionSeries, window: TimeRange) -> Self {
        StoredSketch {
            sketch: WindowSketch {
                series,
                window,
                sketch: Sketch::new(),
                recorded: 0,
                features: FeatureSketches::new(),
            },
            drift_of: 0,
        }
    }
}

impl MemoryStore {
    fn prediction_tables(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        self.predictions.lock().map_err(|_| {
            StoreError::Database("a thread panicked while holding the in-memory store".into())
        })
    }
}

#[async_trait]
impl PredictionStore for MemoryStore {
    async fn insert_predictions(
        &self,
        predictions: Vec<Prediction>,
        windows: &ModelWindows,
    ) -> Result<PredictionsWritten, StoreError> {
        let mut tables = self.prediction_tables()?;
        let mut written = PredictionsWritten::default();
        let mut features = FeatureFold::default();
        for mut prediction in predictions {
            if tables
                .pruned_before
                .get(&prediction.model)
                .is_some_and(|&cutoff| prediction.timestamp < cutoff)
            {
                written.too_old += 1;
                continue;
            }
            let key = (prediction.model.clone(), prediction.id.clone());
            if tables.rows.contains_key(&key) {
                written.duplicates += 1;
                continue;
            }
            written.accepted += 1;
            let truth = tables.pending.remove(&key).map(|pending| pending.truth);
            if truth.is_some() {
                written.labelled += 1;
            }
            written.touched.insert(Touched {
                series: PredictionSeries::of(&prediction),
                timestamp: prediction.timestamp,
            });
            features.add(&prediction, windows);
            prediction.features = Features::new();
            tables.rows.insert(key, Row { prediction, truth });
        }
        for (series, window, sketches) in features.into_windows() {
            tables
                .sketches
                .entry((series.clone(), window.start))
                .or_insert_with(|| StoredSketch::empty(series, window))
                .sketch
                .features
                .merge(&sketches);
        }
        tables.mark_dirty(&written.touched, windows);
        Ok(written)
    }

    async fn dirty_windows(&self) -> Result<Vec<DirtyWindow>, StoreError> {
        Ok(self.prediction_tables()?.dirty.values().cloned().collect())
    }

    async fn clear_dirty(&self, windows: &[DirtyWindow]) -> Result<(), StoreError> {
        let mut tables = self.prediction_tables()?;
        for window in windows {
            let key = (window.series.clone(), window.window.start);
            if tables
                .dirty
                .get(&key)
                .is_some_and(|d| d.marks == window.marks)
            {
                tables.dirty.remove(&key);
            }
        }
        Ok(())
    }

    async fn insert_labels(
        &self,
        labels: Vec<Label>,
        windows: &ModelWindows,
        now: Timestamp,
    ) -> Result<LabelsWritten, StoreError> {
        let mut tables = self.prediction_tables()?;
        let mut written = LabelsWritten::default();
        for label in labels {
            let key = (label.model, label.id);
            if let Some(row) = tables.rows.get_mut(&key) {
                if row.truth.replace(label.truth).is_some() {
                    written.duplicates += 1;
                } else {
                    written.labelled += 1;
                }
                written.touched.insert(Touched {
                    series: PredictionSeries::of(&row.prediction),
                    timestamp: row.prediction.timestamp,
                });
                continue;
            }
            let pending = Pending {
                truth: label.truth,
                received: now,
            };
            if tables.pending.insert(key, pending).is_some() {
                written.duplicates += 1;
            } else {
                written.pending += 1;
            }
        }
        tables.mark_dirty(&written.touched, windows);
        Ok(written)
    }

    async fn prune_predictions(
        &self,
        model: &ModelName,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tables = self.prediction_tables()?;
        let cutoff = tables
            .pruned_before
            .get(model)
            .map_or(before, |&current| current.max(before));
        tables.pruned_before.insert(model.clone(), cutoff);
        let kept = tables.rows.len();
        tables
            .rows
            .retain(|(of, _), row| of != model || row.prediction.timestamp >= cutoff);
        // A pruned window is final: never recomputed from what is left of it.
        tables
            .dirty
            .retain(|(series, start), _| series.model != *model || *start >= cutoff);
        Ok((kept - tables.rows.len()) as u64)
    }

    async fn window_models(&self) -> Result<Vec<ModelName>, StoreError> {
        let tables = self.prediction_tables()?;
        let mut models: Vec<ModelName> = tables
            .windows
            .keys()
            .map(|(series, _)| series.model.clone())
            .collect();
        models.dedup();
        Ok(models)
    }

    async fn window_pairs(
        &self,
        series: &PredictionSeries,
        range: TimeRange,
    ) -> Result<WindowPairs, StoreError> {
        let tables = self.prediction_tables()?;
        let mut pairs = WindowPairs::default();
        for row in tables.rows.values() {
            let prediction = &row.prediction;
            if prediction.model != series.model
                || prediction.version != series.version
                || prediction.dataset != series.dataset
                || !range.contains(prediction.timestamp)
            {
                continue;
            }
            pairs.predicted += 1;
            pairs.sketch.add(score_of(&prediction.output));
            if let Some(truth) = row.truth {
                pairs.labelled.push(Labelled {
                    output: prediction.output,
                    truth,
                });
            }
        }
        Ok(pairs)
    }

    async fn record_revision(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        revision: NewRevision,
    ) -> Result<Recorded, StoreError> {
        let mut tables = self.prediction_tables()?;
        let history = tables
            .windows
            .entry((series.clone(), window.start))
            .or_insert_with(|| WindowHistory {
                series: series.clone(),
                window,
                judged: None,
                revisions: Vec::new(),
            });
        let number = history.revisions.len() as u32 + 1;
        history.revisions.push(WindowRevision {
            revision: number,
            computed_at: revision.computed_at,
            predicted: revision.predicted,
            labelled: revision.labelled,
            values: revision.values,
        });
        Ok(Recorded {
            revision: number,
            judged: history.judged,
        })
    }

    async fn window_history(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
    ) -> Result<Option<WindowHistory>, StoreError> {
        Ok(self
            .prediction_tables()?
            .windows
            .get(&(series.clone(), start))
            .cloned())
    }

    async fn waiting_windows(
        &self,
        series: Option<&PredictionSeries>,
    ) -> Result<Vec<WindowHistory>, StoreError> {
        Ok(self
            .prediction_tables()?
            .windows
            .values()
            .filter(|history| history.judged.is_none())
            .filter(|history| series.is_none_or(|series| history.series == *series))
            .map(|history| WindowHistory {
                revisions: history.latest().cloned().into_iter().collect(),
                ..history.clone()
            })
            .collect())
    }

    async fn judge_window(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        judged: Judged,
    ) -> Result<bool, StoreError> {
        let mut tables = self.prediction_tables()?;
        match tables.windows.get_mut(&(series.clone(), start)) {
            Some(history) if history.judged.is_none() => {
                history.judged = Some(judged);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_sketch(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        sketch: &Sketch,
    ) -> Result<(), StoreError> {
        let mut tables = self.prediction_tables()?;
        let stored = tables
            .sketches
            .entry((series.clone(), window.start))
            .or_insert_with(|| StoredSketch::empty(series.clone(), window));
        stored.sketch.sketch = sketch.clone();
        stored.sketch.recorded += 1;
        Ok(())
    }

    async fn drift_due(
        &self,
        series: Option<&PredictionSeries>,
        now: Timestamp,
    ) -> Result<Vec<WindowSketch>, StoreError> {
        Ok(self
            .prediction_tables()?
            .sketches
            .values()
            .filter(|stored| stored.drift_of < stored.sketch.recorded)
            .filter(|stored| stored.sketch.window.end <= now)
            .filter(|stored| series.is_none_or(|series| stored.sketch.series == *series))
            .map(|stored| stored.sketch.clone())
            .collect())
    }

    async fn reference_sketch(
        &self,
        series: &PredictionSeries,
        min_count: u64,
        now: Timestamp,
    ) -> Result<Option<WindowSketch>, StoreError> {
        Ok(self
            .prediction_tables()?
            .sketches
            .values()
            .find(|stored| {
                stored.sketch.series == *series
                    && stored.sketch.window.end <= now
                    && stored.sketch.sketch.count() >= min_count
            })
            .map(|stored| stored.sketch.clone()))
    }

    async fn drift_computed(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        recorded: u32,
        _at: Timestamp,
    ) -> Result<(), StoreError> {
        if let Some(stored) = self
            .prediction_tables()?
            .sketches
            .get_mut(&(series.clone(), start))
        {
            stored.drift_of = stored.drift_of.max(recorded);
        }
        Ok(())
    }

    async fn expire_pending_labels(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let mut tables = self.prediction_tables()?;
        let before = tables.pending.len();
        tables
            .pending
            .retain(|_, pending| pending.received >= cutoff);
        Ok((before - tables.pending.len()) as u64)
    }

    async fn pending_labels(&self) -> Result<u64, StoreError> {
        Ok(self.prediction_tables()?.pending.len() as u64)
    }

    async fn set_prediction_config(
        &self,
        model: &ModelName,
        config: PredictionConfig,
    ) -> Result<(), StoreError> {
        self.prediction_tables()?
            .configs
            .insert(model.clone(), config);
        Ok(())
    }

    async fn prediction_configs(&self) -> Result<Vec<(ModelName, PredictionConfig)>, StoreError> {
        Ok(self
            .prediction_tables()?
            .configs
            .iter()
            .map(|(model, config)| (model.clone(), *config))
            .collect())
    }
}
