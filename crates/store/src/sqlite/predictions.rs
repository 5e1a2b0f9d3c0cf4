//! Predictions and labels in SQLite: raw predictions in columnar blocks with an id index
//! and labels by location (see `prediction_blocks.rs`), pending labels in a table of
//! their own, all written by the writer thread (so a label and its prediction cannot pass
//! each other); each window's revisions and judgement; each window's sketch of its scores
//! and of each feature.

use async_trait::async_trait;
use modelwatch_core::predictions::{
    FeatureSketches, Label, ModelWindows, Prediction, PredictionConfig, Sketch,
};
use modelwatch_core::{ModelName, TimeRange, Timestamp, Version};
use rusqlite::{params, OptionalExtension};

use super::prediction_blocks::{
    drop_predictions_before, read_window, store_labels, store_predictions,
};
use super::SqliteStore;
use crate::predictions::{
    config_from_columns, dataset_column, dataset_from_column, feature_sketches_from_column,
    judged_from_columns, recorded_from_column, sketch_from_column, touched_windows, values_column,
    values_from_column, window_minutes, DirtyWindow, FeatureFold, Judged, LabelsWritten,
    NewRevision, PredictionSeries, PredictionStore, PredictionsWritten, Recorded, Touched,
    WindowHistory, WindowPairs, WindowRecord, WindowRevision, WindowSketch,
};
use crate::StoreError;

pub(super) fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt(format!("prediction time: {e}")))
}

/// A series' key columns: model, version, dataset (empty text for the default).
pub(super) fn series_columns(series: &PredictionSeries) -> (&str, &str, &str) {
    (
        series.model.as_str(),
        series.version.as_str(),
        dataset_column(series.dataset.as_ref()),
    )
}

pub(super) fn series_from_columns(
    model: String,
    version: String,
    dataset: &str,
) -> Result<PredictionSeries, StoreError> {
    let corrupt = |e: modelwatch_core::ValidationError| {
        StoreError::Corrupt(format!("prediction window: {e}"))
    };
    Ok(PredictionSeries {
        model: ModelName::parse_owned(model).map_err(corrupt)?,
        version: Version::parse_owned(version).map_err(corrupt)?,
        dataset: dataset_from_column(dataset)?,
    })
}

fn revision_number(number: i64) -> Result<u32, StoreError> {
    u32::try_from(number).map_err(|_| StoreError::Corrupt(format!("window revision {number}")))
}

/// A revision from the row's columns from `first`: revision, computed_ms, predicted,
/// labelled, metrics.
fn revision_from_row(row: &rusqlite::Row<'_>, first: usize) -> Result<WindowRevision, StoreError> {
    let count =
        |n: i64| u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("window count {n}")));
    let metrics: String = row.get(first + 4)?;
    Ok(WindowRevision {
        revision: revision_number(row.get(first)?)?,
        computed_at: timestamp(row.get(first + 1)?)?,
        predicted: count(row.get(first + 2)?)?,
        labelled: count(row.get(first + 3)?)?,
        values: values_from_column(&metrics)?,
    })
}

/// A stored sketch from the row's columns: model, version, dataset, start_ms, end_ms,
/// sketch, recorded, features.
fn sketch_from_row(row: &rusqlite::Row<'_>) -> Result<WindowSketch, StoreError> {
    let sketch: String = row.get(5)?;
    let features: String = row.get(7)?;
    Ok(WindowSketch {
        series: series_from_columns(row.get(0)?, row.get(1)?, &row.get::<_, String>(2)?)?,
        window: TimeRange::new(timestamp(row.get(3)?)?, timestamp(row.get(4)?)?),
        sketch: sketch_from_column(&sketch)?,
        recorded: recorded_from_column(row.get(6)?)?,
        features: feature_sketches_from_column(&features)?,
    })
}

/// Adds a batch's feature sketches to their windows' (a window's row is created, with an
/// empty score sketch recorded 0 times, when its first features come before it).
pub(super) fn fold_features(
    transaction: &rusqlite::Transaction<'_>,
    fold: FeatureFold,
) -> Result<(), StoreError> {
    let mut stored = transaction.prepare_cached(
        "SELECT features FROM prediction_window_sketches
         WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND start_ms = ?4",
    )?;
    let mut write = transaction.prepare_cached(
        "INSERT INTO prediction_window_sketches
            (model, version, dataset, start_ms, end_ms, count, sketch, recorded, features)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, '', 0, ?6)
         ON CONFLICT (model, version, dataset, start_ms) DO UPDATE SET
            features = excluded.features",
    )?;
    for (series, window, added) in fold.into_windows() {
        let key = series_columns(&series);
        let start = window.start.as_millis();
        let text: Option<String> = stored
            .query_row(params![key.0, key.1, key.2, start], |row| row.get(0))
            .optional()?;
        let mut sketches = match text {
            Some(text) => feature_sketches_from_column(&text)?,
            None => FeatureSketches::new(),
        };
        sketches.merge(&added);
        write.execute(params![
            key.0,
            key.1,
            key.2,
            start,
            window.end.as_millis(),
            sketches.encode()
        ])?;
    }
    Ok(())
}

/// Marks the windows of `touched` dirty, in the transaction that touched them.
pub(super) fn mark_dirty(
    transaction: &rusqlite::Transaction<'_>,
    touched: &std::collections::BTreeSet<Touched>,
    windows: &ModelWindows,
) -> Result<(), StoreError> {
    let mut mark = transaction.prepare_cached(
        "INSERT INTO prediction_windows_dirty (model, version, dataset, start_ms, end_ms, marks)
         VALUES (?1, ?2, ?3, ?4, ?5, 1)
         ON CONFLICT (model, version, dataset, start_ms) DO UPDATE SET marks = marks + 1",
    )?;
    for ((series, start), window) in touched_windows(touched, windows) {
        let key = series_columns(&series);
        mark.execute(params![
            key.0,
            key.1,
            key.2,
            start.as_millis(),
            window.end.as_millis()
        ])?;
    }
    Ok(())
}

/// Stores a window's sketch of scores, replacing the one before (its feature sketches
/// stay): its drift is due again.
fn record_sketch_in(
    transaction: &rusqlite::Transaction<'_>,
    series: &PredictionSeries,
    window: TimeRange,
    sketch: &Sketch,
) -> Result<(), StoreError> {
    let key = series_columns(series);
    transaction
        .prepare_cached(
            "INSERT INTO prediction_window_sketches
                (model, version, dataset, start_ms, end_ms, count, sketch, recorded)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)
             ON CONFLICT (model, version, dataset, start_ms) DO UPDATE SET
                count = excluded.count, sketch = excluded.sketch,
                recorded = prediction_window_sketches.recorded + 1",
        )?
        .execute(params![
            key.0,
            key.1,
            key.2,
            window.start.as_millis(),
            window.end.as_millis(),
            i64::try_from(sketch.count()).unwrap_or(i64::MAX),
            sketch.encode(),
        ])?;
    Ok(())
}

/// Appends a revision to a window (created with its first).
fn record_revision_in(
    transaction: &rusqlite::Transaction<'_>,
    series: &PredictionSeries,
    window: TimeRange,
    revision: &NewRevision,
) -> Result<Recorded, StoreError> {
    let key = series_columns(series);
    let (number, at_ms, judged_revision, by): (i64, Option<i64>, Option<i64>, Option<String>) =
        transaction
            .prepare_cached(
                "INSERT INTO prediction_windows
                        (model, version, dataset, start_ms, end_ms, revisions)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1)
                     ON CONFLICT (model, version, dataset, start_ms)
                        DO UPDATE SET revisions = revisions + 1
                     RETURNING revisions, judged_ms, judged_revision, judged_by",
            )?
            .query_row(
                params![
                    key.0,
                    key.1,
                    key.2,
                    window.start.as_millis(),
                    window.end.as_millis()
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )?;
    transaction
        .prepare_cached(
            "INSERT INTO prediction_window_revisions (model, version, dataset, start_ms,
                revision, computed_ms, predicted, labelled, metrics)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            key.0,
            key.1,
            key.2,
            window.start.as_millis(),
            number,
            revision.computed_at.as_millis(),
            revision.predicted as i64,
            revision.labelled as i64,
            values_column(&revision.values),
        ])?;
    Ok(Recorded {
        revision: revision_number(number)?,
        judged: judged_from_columns(at_ms, judged_revision, by.as_deref())?,
    })
}

#[async_trait]
impl PredictionStore for SqliteStore {
    async fn insert_predictions(
        &self,
        predictions: Vec<Prediction>,
        windows: &ModelWindows,
    ) -> Result<PredictionsWritten, StoreError> {
        if predictions.is_empty() {
            return Ok(PredictionsWritten::default());
        }
        let windows = windows.clone();
        self.write(move |_, transaction| store_predictions(transaction, predictions, &windows))
            .await
    }

    async fn insert_labels(
        &self,
        labels: Vec<Label>,
        windows: &ModelWindows,
        now: Timestamp,
    ) -> Result<LabelsWritten, StoreError> {
        if labels.is_empty() {
            return Ok(LabelsWritten::default());
        }
        let windows = windows.clone();
        self.write(move |_, transaction| store_labels(transaction, &labels, &windows, now))
            .await
    }

    async fn dirty_windows(&self) -> Result<Vec<DirtyWindow>, StoreError> {
        self.read(|connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT model, version, dataset, start_ms, end_ms, marks
                 FROM prediction_windows_dirty ORDER BY model, version, dataset, start_ms",
            )?;
            let mut rows = statement.query([])?;
            let mut dirty = Vec::new();
            while let Some(row) = rows.next()? {
                let marks: i64 = row.get(5)?;
                dirty.push(DirtyWindow {
                    series: series_from_columns(
                        row.get(0)?,
                        row.get(1)?,
                        &row.get::<_, String>(2)?,
                    )?,
                    window: TimeRange::new(timestamp(row.get(3)?)?, timestamp(row.get(4)?)?),
                    marks: u64::try_from(marks)
                        .map_err(|_| StoreError::Corrupt(format!("dirty window marks {marks}")))?,
                });
            }
            Ok(dirty)
        })
        .await
    }

    async fn clear_dirty(&self, windows: &[DirtyWindow]) -> Result<(), StoreError> {
        if windows.is_empty() {
            return Ok(());
        }
        let windows = windows.to_vec();
        self.write(move |_, transaction| {
            let mut clear = transaction.prepare_cached(
                "DELETE FROM prediction_windows_dirty
                 WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND start_ms = ?4
                    AND marks = ?5",
            )?;
            for window in &windows {
                let key = series_columns(&window.series);
                clear.execute(params![
                    key.0,
                    key.1,
                    key.2,
                    window.window.start.as_millis(),
                    i64::try_from(window.marks).unwrap_or(i64::MAX)
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn record_windows(
        &self,
        windows: Vec<WindowRecord>,
    ) -> Result<Vec<Recorded>, StoreError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        // One transaction (one sync) for every window of a recomputation.
        self.write(move |_, transaction| {
            let mut recorded = Vec::with_capacity(windows.len());
            for record in &windows {
                record_sketch_in(transaction, &record.series, record.window, &record.sketch)?;
                recorded.push(record_revision_in(
                    transaction,
                    &record.series,
                    record.window,
                    &record.revision,
                )?);
            }
            Ok(recorded)
        })
        .await
    }

    async fn window_pairs(
        &self,
        series: &PredictionSeries,
        range: TimeRange,
    ) -> Result<WindowPairs, StoreError> {
        let series = series.clone();
        self.read(move |connection, _| read_window(connection, &series, range))
            .await
    }

    async fn record_revision(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        revision: NewRevision,
    ) -> Result<Recorded, StoreError> {
        let series = series.clone();
        self.write(move |_, transaction| {
            record_revision_in(transaction, &series, window, &revision)
        })
        .await
    }

    async fn window_history(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
    ) -> Result<Option<WindowHistory>, StoreError> {
        let series = series.clone();
        self.read(move |connection, _| {
            let key = series_columns(&series);
            let window: Option<(i64, Option<i64>, Option<i64>, Option<String>)> = connection
                .prepare_cached(
                    "SELECT end_ms, judged_ms, judged_revision, judged_by FROM prediction_windows
                     WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND start_ms = ?4",
                )?
                .query_row(params![key.0, key.1, key.2, start.as_millis()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .optional()?;
            let Some((end_ms, at_ms, judged_revision, by)) = window else {
                return Ok(None);
            };
            let mut statement = connection.prepare_cached(
                "SELECT revision, computed_ms, predicted, labelled, metrics
                 FROM prediction_window_revisions
                 WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND start_ms = ?4
                 ORDER BY revision",
            )?;
            let mut rows = statement.query(params![key.0, key.1, key.2, start.as_millis()])?;
            let mut revisions = Vec::new();
            while let Some(row) = rows.next()? {
                revisions.push(revision_from_row(row, 0)?);
            }
            Ok(Some(WindowHistory {
                series,
                window: TimeRange::new(start, timestamp(end_ms)?),
                judged: judged_from_columns(at_ms, judged_revision, by.as_deref())?,
                revisions,
            }))
        })
        .await
    }

    async fn waiting_windows(
        &self,
        series: Option<&PredictionSeries>,
    ) -> Result<Vec<WindowHistory>, StoreError> {
        let series = series.cloned();
        self.read(move |connection, _| {
            // One series reads its rows of the partial index only (issue 22's defect:
            // every batch logged read every waiting window).
            let filter = if series.is_some() {
                "AND w.model = ?1 AND w.version = ?2 AND w.dataset = ?3"
            } else {
                ""
            };
            let mut statement = connection.prepare_cached(&format!(
                "SELECT w.model, w.version, w.dataset, w.start_ms, w.end_ms,
                    r.revision, r.computed_ms, r.predicted, r.labelled, r.metrics
                 FROM prediction_windows w
                 JOIN prediction_window_revisions r ON r.model = w.model
                    AND r.version = w.version AND r.dataset = w.dataset
                    AND r.start_ms = w.start_ms AND r.revision = w.revisions
                 WHERE w.judged_ms IS NULL {filter}
                 ORDER BY w.model, w.version, w.dataset, w.start_ms"
            ))?;
            let mut rows = match &series {
                Some(series) => {
                    let key = series_columns(series);
                    statement.query(params![key.0, key.1, key.2])?
                }
                None => statement.query([])?,
            };
            let mut waiting = Vec::new();
            while let Some(row) = rows.next()? {
                let model: String = row.get(0)?;
                let version: String = row.get(1)?;
                let dataset: String = row.get(2)?;
                waiting.push(WindowHistory {
                    series: series_from_columns(model, version, &dataset)?,
                    window: TimeRange::new(timestamp(row.get(3)?)?, timestamp(row.get(4)?)?),
                    judged: None,
                    revisions: vec![revision_from_row(row, 5)?],
                });
            }
            Ok(waiting)
        })
        .await
    }

    async fn record_sketch(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        sketch: &Sketch,
    ) -> Result<(), StoreError> {
        let (series, sketch) = (series.clone(), sketch.clone());
        self.write(move |_, transaction| record_sketch_in(transaction, &series, window, &sketch))
            .await
    }

    async fn drift_due(
        &self,
        series: Option<&PredictionSeries>,
        now: Timestamp,
    ) -> Result<Vec<WindowSketch>, StoreError> {
        let series = series.cloned();
        self.read(move |connection, _| {
            let filter = if series.is_some() {
                "AND model = ?2 AND version = ?3 AND dataset = ?4"
            } else {
                ""
            };
            let mut statement = connection.prepare_cached(&format!(
                "SELECT model, version, dataset, start_ms, end_ms, sketch, recorded, features
                 FROM prediction_window_sketches
                 WHERE drift_of < recorded AND end_ms <= ?1 {filter}
                 ORDER BY model, version, dataset, start_ms"
            ))?;
            let mut rows = match &series {
                Some(series) => {
                    let key = series_columns(series);
                    statement.query(params![now.as_millis(), key.0, key.1, key.2])?
                }
                None => statement.query([now.as_millis()])?,
            };
            let mut due = Vec::new();
            while let Some(row) = rows.next()? {
                due.push(sketch_from_row(row)?);
            }
            Ok(due)
        })
        .await
    }

    async fn reference_sketch(
        &self,
        series: &PredictionSeries,
        min_count: u64,
        now: Timestamp,
    ) -> Result<Option<WindowSketch>, StoreError> {
        let series = series.clone();
        self.read(move |connection, _| {
            let key = series_columns(&series);
            let mut statement = connection.prepare_cached(
                "SELECT model, version, dataset, start_ms, end_ms, sketch, recorded, features
                 FROM prediction_window_sketches
                 WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND count >= ?4
                    AND end_ms <= ?5
                 ORDER BY start_ms LIMIT 1",
            )?;
            let mut rows = statement.query(params![
                key.0,
                key.1,
                key.2,
                i64::try_from(min_count).unwrap_or(i64::MAX),
                now.as_millis()
            ])?;
            match rows.next()? {
                Some(row) => Ok(Some(sketch_from_row(row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn drift_computed(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        recorded: u32,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let series = series.clone();
        self.write(move |_, transaction| {
            let key = series_columns(&series);
            transaction
                .prepare_cached(
                    "UPDATE prediction_window_sketches SET drift_of = ?5, drift_ms = ?6
                     WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND start_ms = ?4
                        AND drift_of < ?5",
                )?
                .execute(params![
                    key.0,
                    key.1,
                    key.2,
                    start.as_millis(),
                    i64::from(recorded),
                    at.as_millis()
                ])?;
            Ok(())
        })
        .await
    }

    async fn judge_window(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        judged: Judged,
    ) -> Result<bool, StoreError> {
        let series = series.clone();
        self.write(move |_, transaction| {
            let key = series_columns(&series);
            let changed = transaction
                .prepare_cached(
                    "UPDATE prediction_windows
                     SET judged_ms = ?5, judged_revision = ?6, judged_by = ?7
                     WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND start_ms = ?4
                        AND judged_ms IS NULL",
                )?
                .execute(params![
                    key.0,
                    key.1,
                    key.2,
                    start.as_millis(),
                    judged.at.as_millis(),
                    i64::from(judged.revision),
                    judged.by.as_str(),
                ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn prune_predictions(
        &self,
        model: &ModelName,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        let model = model.clone();
        self.write(move |_, transaction| {
            transaction
                .prepare_cached(
                    "INSERT INTO prediction_retention (model, pruned_before_ms) VALUES (?1, ?2)
                     ON CONFLICT (model) DO UPDATE
                     SET pruned_before_ms = max(pruned_before_ms, excluded.pruned_before_ms)",
                )?
                .execute(params![model.as_str(), before.as_millis()])?;
            let dropped = drop_predictions_before(transaction, &model)?;
            // A pruned window is final: never recomputed from what is left of it.
            transaction
                .prepare_cached(
                    "DELETE FROM prediction_windows_dirty WHERE model = ?1 AND start_ms < (
                        SELECT pruned_before_ms FROM prediction_retention WHERE model = ?1)",
                )?
                .execute([model.as_str()])?;
            Ok(dropped)
        })
        .await
    }

    async fn window_models(&self) -> Result<Vec<ModelName>, StoreError> {
        self.read(|connection, _| {
            let mut statement = connection
                .prepare_cached("SELECT DISTINCT model FROM prediction_windows ORDER BY model")?;
            let names = statement.query_map([], |row| row.get::<_, String>(0))?;
            names
                .map(|name| {
                    ModelName::parse_owned(name?)
                        .map_err(|e| StoreError::Corrupt(format!("prediction window: {e}")))
                })
                .collect()
        })
        .await
    }

    async fn expire_pending_labels(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.write(move |_, transaction| {
            let dropped = transaction
                .prepare_cached("DELETE FROM pending_labels WHERE received_ms < ?1")?
                .execute([cutoff.as_millis()])?;
            Ok(dropped as u64)
        })
        .await
    }

    async fn pending_labels(&self) -> Result<u64, StoreError> {
        self.read(|connection, _| {
            let count: i64 =
                connection
                    .query_row("SELECT count(*) FROM pending_labels", [], |row| row.get(0))?;
            Ok(count as u64)
        })
        .await
    }

    async fn set_prediction_config(
        &self,
        model: &ModelName,
        config: PredictionConfig,
    ) -> Result<(), StoreError> {
        let model = model.clone();
        self.write(move |_, transaction| {
            transaction
                .prepare_cached(
                    "INSERT INTO prediction_configs
                        (model, window_minutes, task, threshold, min_coverage,
                         max_label_delay_minutes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (model) DO UPDATE SET window_minutes = excluded.window_minutes,
                        task = excluded.task, threshold = excluded.threshold,
                        min_coverage = excluded.min_coverage,
                        max_label_delay_minutes = excluded.max_label_delay_minutes",
                )?
                .execute(params![
                    model.as_str(),
                    window_minutes(&config),
                    config.task.as_str(),
                    config.threshold,
                    config.min_coverage,
                    config.max_label_delay.minutes() as i64,
                ])?;
            Ok(())
        })
        .await
    }

    async fn prediction_configs(&self) -> Result<Vec<(ModelName, PredictionConfig)>, StoreError> {
        self.read(|connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT model, window_minutes, task, threshold, min_coverage,
                    max_label_delay_minutes
                 FROM prediction_configs ORDER BY model",
            )?;
            let mut rows = statement.query([])?;
            let mut configs = Vec::new();
            while let Some(row) = rows.next()? {
                let model: String = row.get(0)?;
                let task: String = row.get(2)?;
                configs.push((
                    ModelName::parse_owned(model)
                        .map_err(|e| StoreError::Corrupt(format!("prediction config: {e}")))?,
                    config_from_columns(row.get(1)?, &task, row.get(3)?, row.get(4)?, row.get(5)?)?,
                ));
            }
            Ok(configs)
        })
        .await
    }
}
