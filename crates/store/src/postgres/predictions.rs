//! Predictions and labels in PostgreSQL (migration 9): the tables of SQLite's schema 12.
//! Every write of predictions or labels holds one advisory lock for its transaction, so
//! a label and its prediction arriving at two servers at once cannot both miss each
//! other (the label left pending beside its prediction).

use async_trait::async_trait;
use modelwatch_core::predictions::{Label, Labelled, Prediction, PredictionConfig};
use modelwatch_core::{ModelName, TimeRange, Timestamp, Version};

use super::{pg_error, PostgresStore};
use crate::predictions::{
    config_from_columns, dataset_column, dataset_from_column, output_columns, output_from_columns,
    window_minutes, LabelsWritten, PredictionSeries, PredictionStore, PredictionsWritten, Touched,
    WindowPairs,
};
use crate::StoreError;

/// Held by every transaction writing predictions or labels.
const PREDICTION_LOCK: i64 = 0x6D77_6174_0000_0003;

fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt(format!("prediction time: {e}")))
}

#[async_trait]
impl PredictionStore for PostgresStore {
    async fn insert_predictions(
        &self,
        predictions: Vec<Prediction>,
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
        // The pending label (if any) moves onto the new row. A duplicate never has one:
        // a label for a stored prediction joins it at once, under the same lock.
        let insert = transaction
            .prepare(
                "WITH taken AS (
                    DELETE FROM pending_labels WHERE model = $1 AND id = $2
                    RETURNING truth, label_ms, labels)
                 INSERT INTO predictions
                    (model, id, version, dataset, ts, class, score, value, truth, label_ms, labels)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8,
                    (SELECT truth FROM taken), (SELECT label_ms FROM taken),
                    coalesce((SELECT labels FROM taken), 0)
                 ON CONFLICT (model, id) DO NOTHING
                 RETURNING labels",
            )
            .await
            .map_err(pg_error)?;
        let mut written = PredictionsWritten::default();
        for prediction in predictions {
            let (class, score, value) = output_columns(&prediction.output);
            let class = class.map(|c| c as i16);
            let inserted = transaction
                .query_opt(
                    &insert,
                    &[
                        &prediction.model.as_str(),
                        &prediction.id.as_str(),
                        &prediction.version.as_str(),
                        &dataset_column(prediction.dataset.as_ref()),
                        &prediction.timestamp.as_millis(),
                        &class,
                        &score,
                        &value,
                    ],
                )
                .await
                .map_err(pg_error)?;
            let Some(row) = inserted else {
                written.duplicates += 1;
                continue;
            };
            written.accepted += 1;
            let labels: i32 = row.try_get(0).map_err(pg_error)?;
            if labels > 0 {
                written.labelled += 1;
            }
            written.touched.insert(Touched {
                series: PredictionSeries::of(&prediction),
                timestamp: prediction.timestamp,
            });
        }
        transaction.commit().await.map_err(pg_error)?;
        Ok(written)
    }

    async fn insert_labels(
        &self,
        labels: Vec<Label>,
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
        let join = transaction
            .prepare(
                "UPDATE predictions SET truth = $3, label_ms = $4, labels = labels + 1
                 WHERE model = $1 AND id = $2
                 RETURNING labels, version, dataset, ts",
            )
            .await
            .map_err(pg_error)?;
        let keep = transaction
            .prepare(
                "INSERT INTO pending_labels (model, id, truth, label_ms, received_ms, labels)
                 VALUES ($1, $2, $3, $4, $5, 1)
                 ON CONFLICT (model, id) DO UPDATE SET truth = excluded.truth,
                    label_ms = excluded.label_ms, received_ms = excluded.received_ms,
                    labels = pending_labels.labels + 1
                 RETURNING labels",
            )
            .await
            .map_err(pg_error)?;
        let mut written = LabelsWritten::default();
        for label in &labels {
            let label_ms = label.timestamp.map(Timestamp::as_millis);
            let joined = transaction
                .query_opt(
                    &join,
                    &[
                        &label.model.as_str(),
                        &label.id.as_str(),
                        &label.truth,
                        &label_ms,
                    ],
                )
                .await
                .map_err(pg_error)?;
            if let Some(row) = joined {
                let count: i32 = row.try_get(0).map_err(pg_error)?;
                if count == 1 {
                    written.labelled += 1;
                } else {
                    written.duplicates += 1;
                }
                let version: String = row.try_get(1).map_err(pg_error)?;
                let dataset: &str = row.try_get(2).map_err(pg_error)?;
                written.touched.insert(Touched {
                    series: PredictionSeries {
                        model: label.model.clone(),
                        version: Version::parse_owned(version)
                            .map_err(|e| StoreError::Corrupt(format!("prediction version: {e}")))?,
                        dataset: dataset_from_column(dataset)?,
                    },
                    timestamp: timestamp(row.try_get(3).map_err(pg_error)?)?,
                });
                continue;
            }
            let row = transaction
                .query_one(
                    &keep,
                    &[
                        &label.model.as_str(),
                        &label.id.as_str(),
                        &label.truth,
                        &label_ms,
                        &now.as_millis(),
                    ],
                )
                .await
                .map_err(pg_error)?;
            let count: i32 = row.try_get(0).map_err(pg_error)?;
            if count == 1 {
                written.pending += 1;
            } else {
                written.duplicates += 1;
            }
        }
        transaction.commit().await.map_err(pg_error)?;
        Ok(written)
    }

    async fn window_pairs(
        &self,
        series: &PredictionSeries,
        range: TimeRange,
    ) -> Result<WindowPairs, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT class, score, value, truth FROM predictions
                 WHERE model = $1 AND version = $2 AND dataset = $3 AND ts >= $4 AND ts < $5",
                &[
                    &series.model.as_str(),
                    &series.version.as_str(),
                    &dataset_column(series.dataset.as_ref()),
                    &range.start.as_millis(),
                    &range.end.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
        let mut pairs = WindowPairs {
            predicted: rows.len() as u64,
            labelled: Vec::new(),
        };
        for row in &rows {
            let truth: Option<f64> = row.try_get(3).map_err(pg_error)?;
            let Some(truth) = truth else { continue };
            let class: Option<i16> = row.try_get(0).map_err(pg_error)?;
            pairs.labelled.push(Labelled {
                output: output_from_columns(
                    class.map(i64::from),
                    row.try_get(1).map_err(pg_error)?,
                    row.try_get(2).map_err(pg_error)?,
                )?,
                truth,
            });
        }
        Ok(pairs)
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
                    (model, window_minutes, task, threshold, min_coverage)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (model) DO UPDATE SET window_minutes = excluded.window_minutes,
                    task = excluded.task, threshold = excluded.threshold,
                    min_coverage = excluded.min_coverage",
                &[
                    &model.as_str(),
                    &window_minutes(&config),
                    &config.task.as_str(),
                    &config.threshold,
                    &config.min_coverage,
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
                "SELECT model, window_minutes, task, threshold, min_coverage
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
                    )?,
                ))
            })
            .collect()
    }
}
