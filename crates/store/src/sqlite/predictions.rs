//! Predictions and labels in SQLite (schema version 12): one row per prediction with its
//! label beside it, pending labels in a table of their own, all written by the writer
//! thread (so a label and its prediction cannot pass each other).

use async_trait::async_trait;
use modelwatch_core::predictions::{Label, Labelled, Prediction, PredictionConfig};
use modelwatch_core::{ModelName, TimeRange, Timestamp, Version};
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::predictions::{
    config_from_columns, dataset_column, dataset_from_column, output_columns, output_from_columns,
    window_minutes, LabelsWritten, PredictionSeries, PredictionStore, PredictionsWritten, Touched,
    WindowPairs,
};
use crate::StoreError;

fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt(format!("prediction time: {e}")))
}

#[async_trait]
impl PredictionStore for SqliteStore {
    async fn insert_predictions(
        &self,
        predictions: Vec<Prediction>,
    ) -> Result<PredictionsWritten, StoreError> {
        if predictions.is_empty() {
            return Ok(PredictionsWritten::default());
        }
        self.write(move |_, transaction| {
            let mut take_pending = transaction.prepare_cached(
                "DELETE FROM pending_labels WHERE model = ?1 AND id = ?2
                 RETURNING truth, label_ms, labels",
            )?;
            let mut exists = transaction
                .prepare_cached("SELECT 1 FROM predictions WHERE model = ?1 AND id = ?2")?;
            let mut insert = transaction.prepare_cached(
                "INSERT INTO predictions
                    (model, id, version, dataset, ts, class, score, value, truth, label_ms, labels)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut written = PredictionsWritten::default();
            for prediction in predictions {
                let (model, id) = (prediction.model.as_str(), prediction.id.as_str());
                if exists.exists(params![model, id])? {
                    written.duplicates += 1;
                    continue;
                }
                let pending: Option<(f64, Option<i64>, i64)> = take_pending
                    .query_row(params![model, id], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()?;
                let (class, score, value) = output_columns(&prediction.output);
                insert.execute(params![
                    model,
                    id,
                    prediction.version.as_str(),
                    dataset_column(prediction.dataset.as_ref()),
                    prediction.timestamp.as_millis(),
                    class,
                    score,
                    value,
                    pending.map(|p| p.0),
                    pending.and_then(|p| p.1),
                    pending.map_or(0, |p| p.2),
                ])?;
                written.accepted += 1;
                if pending.is_some() {
                    written.labelled += 1;
                }
                written.touched.insert(Touched {
                    series: PredictionSeries::of(&prediction),
                    timestamp: prediction.timestamp,
                });
            }
            Ok(written)
        })
        .await
    }

    async fn insert_labels(
        &self,
        labels: Vec<Label>,
        now: Timestamp,
    ) -> Result<LabelsWritten, StoreError> {
        if labels.is_empty() {
            return Ok(LabelsWritten::default());
        }
        self.write(move |_, transaction| {
            let mut join = transaction.prepare_cached(
                "UPDATE predictions SET truth = ?3, label_ms = ?4, labels = labels + 1
                 WHERE model = ?1 AND id = ?2
                 RETURNING labels, version, dataset, ts",
            )?;
            let mut keep = transaction.prepare_cached(
                "INSERT INTO pending_labels (model, id, truth, label_ms, received_ms, labels)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1)
                 ON CONFLICT (model, id) DO UPDATE SET truth = excluded.truth,
                    label_ms = excluded.label_ms, received_ms = excluded.received_ms,
                    labels = pending_labels.labels + 1
                 RETURNING labels",
            )?;
            let mut written = LabelsWritten::default();
            for label in &labels {
                let (model, id) = (label.model.as_str(), label.id.as_str());
                let label_ms = label.timestamp.map(Timestamp::as_millis);
                let joined: Option<(i64, String, String, i64)> = join
                    .query_row(params![model, id, label.truth, label_ms], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()?;
                if let Some((count, version, dataset, ts)) = joined {
                    if count == 1 {
                        written.labelled += 1;
                    } else {
                        written.duplicates += 1;
                    }
                    written.touched.insert(Touched {
                        series: PredictionSeries {
                            model: label.model.clone(),
                            version: Version::parse_owned(version).map_err(|e| {
                                StoreError::Corrupt(format!("prediction version: {e}"))
                            })?,
                            dataset: dataset_from_column(&dataset)?,
                        },
                        timestamp: timestamp(ts)?,
                    });
                    continue;
                }
                let count: i64 = keep.query_row(
                    params![model, id, label.truth, label_ms, now.as_millis()],
                    |row| row.get(0),
                )?;
                if count == 1 {
                    written.pending += 1;
                } else {
                    written.duplicates += 1;
                }
            }
            Ok(written)
        })
        .await
    }

    async fn window_pairs(
        &self,
        series: &PredictionSeries,
        range: TimeRange,
    ) -> Result<WindowPairs, StoreError> {
        let series = series.clone();
        self.read(move |connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT class, score, value, truth FROM predictions
                 WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND ts >= ?4 AND ts < ?5",
            )?;
            let mut rows = statement.query(params![
                series.model.as_str(),
                series.version.as_str(),
                dataset_column(series.dataset.as_ref()),
                range.start.as_millis(),
                range.end.as_millis(),
            ])?;
            let mut pairs = WindowPairs::default();
            while let Some(row) = rows.next()? {
                pairs.predicted += 1;
                let truth: Option<f64> = row.get(3)?;
                if let Some(truth) = truth {
                    pairs.labelled.push(Labelled {
                        output: output_from_columns(row.get(0)?, row.get(1)?, row.get(2)?)?,
                        truth,
                    });
                }
            }
            Ok(pairs)
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
                        (model, window_minutes, task, threshold, min_coverage)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (model) DO UPDATE SET window_minutes = excluded.window_minutes,
                        task = excluded.task, threshold = excluded.threshold,
                        min_coverage = excluded.min_coverage",
                )?
                .execute(params![
                    model.as_str(),
                    window_minutes(&config),
                    config.task.as_str(),
                    config.threshold,
                    config.min_coverage,
                ])?;
            Ok(())
        })
        .await
    }

    async fn prediction_configs(&self) -> Result<Vec<(ModelName, PredictionConfig)>, StoreError> {
        self.read(|connection, _| {
            let mut statement = connection.prepare_cached(
                "SELECT model, window_minutes, task, threshold, min_coverage
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
                    config_from_columns(row.get(1)?, &task, row.get(3)?, row.get(4)?)?,
                ));
            }
            Ok(configs)
        })
        .await
    }
}
