//! Predictions and labels in PostgreSQL: the tables of SQLite's, raw predictions in
//! columnar blocks (see `prediction_blocks.rs`).
//! Every write of predictions or labels holds one advisory lock for its transaction, so
//! a label and its prediction arriving at two servers at once cannot both miss each
//! other (the label left pending beside its prediction).

use async_trait::async_trait;
use modelwatch_core::predictions::{
    FeatureSketches, Label, ModelWindows, Prediction, PredictionConfig, Sketch,
};
use modelwatch_core::{ModelName, TimeRange, Timestamp, Version};

use super::prediction_blocks::{
    drop_predictions_before, read_window, store_labels, store_predictions,
};
use super::{pg_error, PostgresStore};
use crate::predictions::{
    config_from_columns, dataset_column, dataset_from_column, feature_sketches_from_column,
    judged_from_columns, recorded_from_column, sketch_from_column, touched_windows, values_column,
    values_from_column, window_minutes, DirtyWindow, FeatureFold, Judged, LabelsWritten,
    NewRevision, PredictionSeries, PredictionStore, PredictionsWritten, Recorded, Touched,
    WindowHistory, WindowPairs, WindowRevision, WindowSketch,
};
use crate::StoreError;

/// Held by every transaction writing predictions or labels.
const PREDICTION_LOCK: i64 = 0x6D77_6174_0000_0003;

pub(super) fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt(format!("prediction time: {e}")))
}

pub(super) fn series_columns(series: &PredictionSeries) -> (&str, &str, &str) {
    (
        series.model.as_str(),
        series.version.as_str(),
        dataset_column(series.dataset.as_ref()),
    )
}

fn revision_number(number: i32) -> Result<u32, StoreError> {
    u32::try_from(number).map_err(|_| StoreError::Corrupt(format!("window revision {number}")))
}

/// A revision from the row's columns from `first`: revision, computed_ms, predicted,
/// labelled, metrics.
fn revision_from_row(
    row: &tokio_postgres::Row,
    first: usize,
) -> Result<WindowRevision, StoreError> {
    let count =
        |n: i64| u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("window count {n}")));
    let metrics: &str = row.try_get(first + 4).map_err(pg_error)?;
    Ok(WindowRevision {
        revision: revision_number(row.try_get(first).map_err(pg_error)?)?,
        computed_at: timestamp(row.try_get(first + 1).map_err(pg_error)?)?,
        predicted: count(row.try_get(first + 2).map_err(pg_error)?)?,
        labelled: count(row.try_get(first + 3).map_err(pg_error)?)?,
        values: values_from_column(metrics)?,
    })
}

/// The series and window of a row whose columns start model, version, dataset,
/// start_ms, end_ms; `what` names the row in a corruption error.
fn series_window_from_row(
    row: &tokio_postgres::Row,
    what: &str,
) -> Result<(PredictionSeries, TimeRange), StoreError> {
    let corrupt = |e: modelwatch_core::ValidationError| StoreError::Corrupt(format!("{what}: {e}"));
    let model: String = row.try_get(0).map_err(pg_error)?;
    let version: String = row.try_get(1).map_err(pg_error)?;
    let dataset: &str = row.try_get(2).map_err(pg_error)?;
    let series = PredictionSeries {
        model: ModelName::parse_owned(model).map_err(corrupt)?,
        version: Version::parse_owned(version).map_err(corrupt)?,
        dataset: dataset_from_column(dataset)?,
    };
    let window = TimeRange::new(
        timestamp(row.try_get(3).map_err(pg_error)?)?,
        timestamp(row.try_get(4).map_err(pg_error)?)?,
    );
    Ok((series, window))
}

/// A stored sketch from the row's columns: model, version, dataset, start_ms, end_ms,
/// sketch, recorded, features.
fn sketch_from_row(row: &tokio_postgres::Row) -> Result<WindowSketch, StoreError> {
    let (series, window) = series_window_from_row(row, "window sketch")?;
    let sketch: &str = row.try_get(5).map_err(pg_error)?;
    let recorded: i32 = row.try_get(6).map_err(pg_error)?;
    let features: &str = row.try_get(7).map_err(pg_error)?;
    Ok(WindowSketch {
        series,
        window,
        sketch: sketch_from_column(sketch)?,
        recorded: recorded_from_column(i64::from(recorded))?,
        features: feature_sketches_from_column(features)?,
    })
}

/// Adds a batch's feature sketches to their windows' (a window's row is created, with an
/// empty score sketch recorded 0 times, when its first features come before it). Run
/// under the prediction lock, so no two batches fold into one window at once.
pub(super) async fn fold_features(
    transaction: &tokio_postgres::Transaction<'_>,
    fold: FeatureFold,
) -> Result<(), StoreError> {
    let mut windows = fold.into_windows().peekable();
    if windows.peek().is_none() {
        return Ok(());
    }
    let stored = transaction
        .prepare(
            "SELECT features FROM prediction_window_sketches
             WHERE model = $1 AND version = $2 AND dataset = $3 AND start_ms = $4
             FOR UPDATE",
        )
        .await
        .map_err(pg_error)?;
    let write = transaction
        .prepare(
            "INSERT INTO prediction_window_sketches
                (model, version, dataset, start_ms, end_ms, count, sketch, recorded, features)
             VALUES ($1, $2, $3, $4, $5, 0, '', 0, $6)
             ON CONFLICT (model, version, dataset, start_ms) DO UPDATE SET
                features = excluded.features",
        )
        .await
        .map_err(pg_error)?;
    for (series, window, added) in windows {
        let (model, version, dataset) = series_columns(&series);
        let start = window.start.as_millis();
        let row = transaction
            .query_opt(&stored, &[&model, &version, &dataset, &start])
            .await
            .map_err(pg_error)?;
        let mut sketches = match row {
            Some(row) => feature_sketches_from_column(row.try_get(0).map_err(pg_error)?)?,
            None => FeatureSketches::new(),
        };
        sketches.merge(&added);
        transaction
            .execute(
                &write,
                &[
                    &model,
                    &version,
                    &dataset,
                    &start,
                    &window.end.as_millis(),
                    &sketches.encode(),
                ],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

/// Marks the windows of `touched` dirty, in the transaction that touched them.
pub(super) async fn mark_dirty(
    transaction: &tokio_postgres::Transaction<'_>,
    touched: &std::collections::BTreeSet<Touched>,
    windows: &ModelWindows,
) -> Result<(), StoreError> {
    let touched = touched_windows(touched, windows);
    if touched.is_empty() {
        return Ok(());
    }
    let mark = transaction
        .prepare(
            "INSERT INTO prediction_windows_dirty
                (model, version, dataset, start_ms, end_ms, marks)
             VALUES ($1, $2, $3, $4, $5, 1)
             ON CONFLICT (model, version, dataset, start_ms)
                DO UPDATE SET marks = prediction_windows_dirty.marks + 1",
        )
        .await
        .map_err(pg_error)?;
    for ((series, start), window) in touched {
        let (model, version, dataset) = series_columns(&series);
        transaction
            .execute(
                &mark,
                &[
                    &model,
                    &version,
                    &dataset,
                    &start.as_millis(),
                    &window.end.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

#[async_trait]
impl PredictionStore for PostgresStore {
    async fn insert_predictions(
        &self,
        predictions: Vec<Prediction>,
        windows: &ModelWindows,
    ) -> Result<PredictionsWritten, StoreError> {
        if predictions.is_empty() {
            return Ok(PredictionsWritten::default());
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&PREDICTION_LOCK])
            .await
            .map_err(pg_error)?;
        let written = store_predictions(&transaction, predictions, windows).await?;
        transaction.commit().await.map_err(pg_error)?;
        Ok(written)
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
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&PREDICTION_LOCK])
            .await
            .map_err(pg_error)?;
        let written = store_labels(&transaction, &labels, windows, now).await?;
        transaction.commit().await.map_err(pg_error)?;
        Ok(written)
    }

    async fn dirty_windows(&self) -> Result<Vec<DirtyWindow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT model, version, dataset, start_ms, end_ms, marks
                 FROM prediction_windows_dirty ORDER BY model, version, dataset, start_ms",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let (series, window) = series_window_from_row(row, "dirty prediction window")?;
                let marks: i64 = row.try_get(5).map_err(pg_error)?;
                Ok(DirtyWindow {
                    series,
                    window,
                    marks: u64::try_from(marks)
                        .map_err(|_| StoreError::Corrupt(format!("dirty window marks {marks}")))?,
                })
            })
            .collect()
    }

    async fn clear_dirty(&self, windows: &[DirtyWindow]) -> Result<(), StoreError> {
        if windows.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let clear = transaction
            .prepare(
                "DELETE FROM prediction_windows_dirty
                 WHERE model = $1 AND version = $2 AND dataset = $3 AND start_ms = $4
                    AND marks = $5",
            )
            .await
            .map_err(pg_error)?;
        for window in windows {
            let (model, version, dataset) = series_columns(&window.series);
            transaction
                .execute(
                    &clear,
                    &[
                        &model,
                        &version,
                        &dataset,
                        &window.window.start.as_millis(),
                        &i64::try_from(window.marks).unwrap_or(i64::MAX),
                    ],
                )
                .await
                .map_err(pg_error)?;
        }
        transaction.commit().await.map_err(pg_error)?;
        Ok(())
    }

    async fn window_pairs(
        &self,
        series: &PredictionSeries,
        range: TimeRange,
    ) -> Result<WindowPairs, StoreError> {
        let client = self.client().await?;
        read_window(&client, series, range).await
    }

    async fn record_revision(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        revision: NewRevision,
    ) -> Result<Recorded, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let (model, version, dataset) = series_columns(series);
        // The upsert locks the window's row: concurrent revisions get distinct numbers.
        let row = transaction
            .query_one(
                "INSERT INTO prediction_windows
                    (model, version, dataset, start_ms, end_ms, revisions)
                 VALUES ($1, $2, $3, $4, $5, 1)
                 ON CONFLICT (model, version, dataset, start_ms)
                    DO UPDATE SET revisions = prediction_windows.revisions + 1
                 RETURNING revisions, judged_ms, judged_revision, judged_by",
                &[
                    &model,
                    &version,
                    &dataset,
                    &window.start.as_millis(),
                    &window.end.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
        let number: i32 = row.try_get(0).map_err(pg_error)?;
        let judged = judged_from_columns(
            row.try_get(1).map_err(pg_error)?,
            row.try_get::<_, Option<i32>>(2)
                .map_err(pg_error)?
                .map(i64::from),
            row.try_get(3).map_err(pg_error)?,
        )?;
        transaction
            .execute(
                "INSERT INTO prediction_window_revisions (model, version, dataset, start_ms,
                    revision, computed_ms, predicted, labelled, metrics)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &model,
                    &version,
                    &dataset,
                    &window.start.as_millis(),
                    &number,
                    &revision.computed_at.as_millis(),
                    &(revision.predicted as i64),
                    &(revision.labelled as i64),
                    &values_column(&revision.values),
                ],
            )
            .await
            .map_err(pg_error)?;
        transaction.commit().await.map_err(pg_error)?;
        Ok(Recorded {
            revision: revision_number(number)?,
            judged,
        })
    }

    async fn window_history(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
    ) -> Result<Option<WindowHistory>, StoreError> {
        let client = self.client().await?;
        let (model, version, dataset) = series_columns(series);
        let Some(window) = client
            .query_opt(
                "SELECT end_ms, judged_ms, judged_revision, judged_by FROM prediction_windows
                 WHERE model = $1 AND version = $2 AND dataset = $3 AND start_ms = $4",
                &[&model, &version, &dataset, &start.as_millis()],
            )
            .await
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let rows = client
            .query(
                "SELECT revision, computed_ms, predicted, labelled, metrics
                 FROM prediction_window_revisions
                 WHERE model = $1 AND version = $2 AND dataset = $3 AND start_ms = $4
                 ORDER BY revision",
                &[&model, &version, &dataset, &start.as_millis()],
            )
            .await
            .map_err(pg_error)?;
        Ok(Some(WindowHistory {
            series: series.clone(),
            window: TimeRange::new(start, timestamp(window.try_get(0).map_err(pg_error)?)?),
            judged: judged_from_columns(
                window.try_get(1).map_err(pg_error)?,
                window
                    .try_get::<_, Option<i32>>(2)
                    .map_err(pg_error)?
                    .map(i64::from),
                window.try_get(3).map_err(pg_error)?,
            )?,
            revisions: rows
                .iter()
                .map(|row| revision_from_row(row, 0))
                .collect::<Result<_, _>>()?,
        }))
    }

    async fn waiting_windows(
        &self,
        series: Option<&PredictionSeries>,
    ) -> Result<Vec<WindowHistory>, StoreError> {
        let client = self.client().await?;
        // One series reads its rows of the partial index only (issue 22's defect: every
        // batch logged read every waiting window).
        let select = "SELECT w.model, w.version, w.dataset, w.start_ms, w.end_ms,
                    r.revision, r.computed_ms, r.predicted, r.labelled, r.metrics
                 FROM prediction_windows w
                 JOIN prediction_window_revisions r ON r.model = w.model
                    AND r.version = w.version AND r.dataset = w.dataset
                    AND r.start_ms = w.start_ms AND r.revision = w.revisions
                 WHERE w.judged_ms IS NULL";
        let order = "ORDER BY w.model, w.version, w.dataset, w.start_ms";
        let rows = match series {
            Some(series) => {
                let (model, version, dataset) = series_columns(series);
                client
                    .query(
                        &format!(
                            "{select} AND w.model = $1 AND w.version = $2 AND w.dataset = $3 {order}"
                        ),
                        &[&model, &version, &dataset],
                    )
                    .await
            }
            None => client.query(&format!("{select} {order}"), &[]).await,
        }
        .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let (series, window) = series_window_from_row(row, "prediction window")?;
                Ok(WindowHistory {
                    series,
                    window,
                    judged: None,
                    revisions: vec![revision_from_row(row, 5)?],
                })
            })
            .collect()
    }

    async fn judge_window(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        judged: Judged,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let (model, version, dataset) = series_columns(series);
        let revision = i32::try_from(judged.revision)
            .map_err(|_| StoreError::Corrupt(format!("window revision {}", judged.revision)))?;
        let changed = client
            .execute(
                "UPDATE prediction_windows
                 SET judged_ms = $5, judged_revision = $6, judged_by = $7
                 WHERE model = $1 AND version = $2 AND dataset = $3 AND start_ms = $4
                    AND judged_ms IS NULL",
                &[
                    &model,
                    &version,
                    &dataset,
                    &start.as_millis(),
                    &judged.at.as_millis(),
                    &revision,
                    &judged.by.as_str(),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(changed == 1)
    }

    async fn record_sketch(
        &self,
        series: &PredictionSeries,
        window: TimeRange,
        sketch: &Sketch,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let (model, version, dataset) = series_columns(series);
        client
            .execute(
                "INSERT INTO prediction_window_sketches
                    (model, version, dataset, start_ms, end_ms, count, sketch, recorded)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1)
                 ON CONFLICT (model, version, dataset, start_ms) DO UPDATE SET
                    count = excluded.count, sketch = excluded.sketch,
                    recorded = prediction_window_sketches.recorded + 1",
                &[
                    &model,
                    &version,
                    &dataset,
                    &window.start.as_millis(),
                    &window.end.as_millis(),
                    &i64::try_from(sketch.count()).unwrap_or(i64::MAX),
                    &sketch.encode(),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn drift_due(
        &self,
        series: Option<&PredictionSeries>,
        now: Timestamp,
    ) -> Result<Vec<WindowSketch>, StoreError> {
        let client = self.client().await?;
        let select = "SELECT model, version, dataset, start_ms, end_ms, sketch, recorded, features
                 FROM prediction_window_sketches
                 WHERE drift_of < recorded AND end_ms <= $1";
        let order = "ORDER BY model, version, dataset, start_ms";
        let now = now.as_millis();
        let rows = match series {
            Some(series) => {
                let (model, version, dataset) = series_columns(series);
                client
                    .query(
                        &format!(
                            "{select} AND model = $2 AND version = $3 AND dataset = $4 {order}"
                        ),
                        &[&now, &model, &version, &dataset],
                    )
                    .await
            }
            None => client.query(&format!("{select} {order}"), &[&now]).await,
        }
        .map_err(pg_error)?;
        rows.iter().map(sketch_from_row).collect()
    }

    async fn reference_sketch(
        &self,
        series: &PredictionSeries,
        min_count: u64,
        now: Timestamp,
    ) -> Result<Option<WindowSketch>, StoreError> {
        let client = self.client().await?;
        let (model, version, dataset) = series_columns(series);
        let row = client
            .query_opt(
                "SELECT model, version, dataset, start_ms, end_ms, sketch, recorded, features
                 FROM prediction_window_sketches
                 WHERE model = $1 AND version = $2 AND dataset = $3 AND count >= $4
                    AND end_ms <= $5
                 ORDER BY start_ms LIMIT 1",
                &[
                    &model,
                    &version,
                    &dataset,
                    &i64::try_from(min_count).unwrap_or(i64::MAX),
                    &now.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
        row.as_ref().map(sketch_from_row).transpose()
    }

    async fn drift_computed(
        &self,
        series: &PredictionSeries,
        start: Timestamp,
        recorded: u32,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let (model, version, dataset) = series_columns(series);
        let recorded = i32::try_from(recorded)
            .map_err(|_| StoreError::Corrupt(format!("window sketch {recorded}")))?;
        client
            .execute(
                "UPDATE prediction_window_sketches SET drift_of = $5, drift_ms = $6
                 WHERE model = $1 AND version = $2 AND dataset = $3 AND start_ms = $4
                    AND drift_of < $5",
                &[
                    &model,
                    &version,
                    &dataset,
                    &start.as_millis(),
                    &recorded,
                    &at.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn prune_predictions(
        &self,
        model: &ModelName,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        // Under the inserts' lock: a batch sees the cutoff before or after, never half.
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&PREDICTION_LOCK])
            .await
            .map_err(pg_error)?;
        transaction
            .execute(
                "INSERT INTO prediction_retention (model, pruned_before_ms) VALUES ($1, $2)
                 ON CONFLICT (model) DO UPDATE
                 SET pruned_before_ms = greatest(prediction_retention.pruned_before_ms,
                                                 excluded.pruned_before_ms)",
                &[&model.as_str(), &before.as_millis()],
            )
            .await
            .map_err(pg_error)?;
        let dropped = drop_predictions_before(&transaction, model).await?;
        // A pruned window is final: never recomputed from what is left of it.
        transaction
            .execute(
                "DELETE FROM prediction_windows_dirty WHERE model = $1 AND start_ms < (
                    SELECT pruned_before_ms FROM prediction_retention WHERE model = $1)",
                &[&model.as_str()],
            )
            .await
            .map_err(pg_error)?;
        transaction.commit().await.map_err(pg_error)?;
        Ok(dropped)
    }

    async fn window_models(&self) -> Result<Vec<ModelName>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "SELECT DISTINCT model FROM prediction_windows ORDER BY model",
                &[],
            )
            .await
            .map_err(pg_error)?
            .into_iter()
            .map(|row| {
                let name: String = row.try_get(0).map_err(pg_error)?;
                ModelName::parse_owned(name)
                    .map_err(|e| StoreError::Corrupt(format!("prediction window: {e}")))
            })
            .collect()
    }

    async fn expire_pending_labels(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM pending_labels WHERE received_ms < $1",
                &[&cutoff.as_millis()],
            )
            .await
            .map_err(pg_error)
    }

    async fn pending_labels(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM pending_labels", &[])
            .await
            .map_err(pg_error)?;
        let count: i64 = row.try_get(0).map_err(pg_error)?;
        Ok(count as u64)
    }

    async fn set_prediction_config(
        &self,
        model: &ModelName,
        config: PredictionConfig,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO prediction_configs
                    (model, window_minutes, task, threshold, min_coverage,
                     max_label_delay_minutes)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (model) DO UPDATE SET window_minutes = excluded.window_minutes,
                    task = excluded.task, threshold = excluded.threshold,
                    min_coverage = excluded.min_coverage,
                    max_label_delay_minutes = excluded.max_label_delay_minutes",
                &[
                    &model.as_str(),
                    &window_minutes(&config),
                    &config.task.as_str(),
                    &config.threshold,
                    &config.min_coverage,
                    &(config.max_label_delay.minutes() as i64),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn prediction_configs(&self) -> Result<Vec<(ModelName, PredictionConfig)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT model, window_minutes, task, threshold, min_coverage,
                    max_label_delay_minutes
                 FROM prediction_configs ORDER BY model",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let model: String = row.try_get(0).map_err(pg_error)?;
                let task: &str = row.try_get(2).map_err(pg_error)?;
                Ok((
                    ModelName::parse_owned(model)
                        .map_err(|e| StoreError::Corrupt(format!("prediction config: {e}")))?,
                    config_from_columns(
                        row.try_get(1).map_err(pg_error)?,
                        task,
                        row.try_get(3).map_err(pg_error)?,
                        row.try_get(4).map_err(pg_error)?,
                        row.try_get(5).map_err(pg_error)?,
                    )?,
                ))
            })
            .collect()
    }
}
