//! Raw predictions in PostgreSQL as columnar blocks (migration 17; SQLite's schema 19,
//! see `sqlite/prediction_blocks.rs` and `predictions/block.rs`): storing a batch,
//! joining labels, reading a window, pruning, and moving the rows of `predictions` into
//! blocks. Every write runs under the prediction lock, so a block is read, filled and
//! written by one transaction at a time.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use modelwatch_core::predictions::drift::score_of;
use modelwatch_core::predictions::{Label, Labelled, ModelWindows, Prediction, PredictionConfig};
use modelwatch_core::{ModelName, TimeRange, Timestamp, Version};
use tokio_postgres::{Client, Transaction};

use super::pg_error;
use super::predictions::{fold_features, mark_dirty, series_columns, timestamp};
use crate::predictions::block::{block_and_slot, location, Block, BLOCK_OPEN};
use crate::predictions::{
    config_from_columns, dataset_from_column, output_from_columns, FeatureFold, LabelsWritten,
    PredictionSeries, PredictionsWritten, Touched, WindowPairs,
};
use crate::StoreError;

/// A block being filled by a batch: written once, when the batch ends.
struct Filling {
    series: PredictionSeries,
    window: TimeRange,
    key: i64,
    block: Block,
    /// How many predictions the block held when the batch opened it.
    stored: usize,
}

impl Filling {
    fn holds(&self, prediction: &Prediction, start: Timestamp) -> bool {
        self.window.start == start
            && self.series.model == prediction.model
            && self.series.version == prediction.version
            && self.series.dataset == prediction.dataset
    }
}

fn series_from_columns(
    model: String,
    version: String,
    dataset: &str,
) -> Result<PredictionSeries, StoreError> {
    let corrupt =
        |e: modelwatch_core::ValidationError| StoreError::Corrupt(format!("prediction block: {e}"));
    Ok(PredictionSeries {
        model: ModelName::parse_owned(model).map_err(corrupt)?,
        version: Version::parse_owned(version).map_err(corrupt)?,
        dataset: dataset_from_column(dataset)?,
    })
}

/// The key of `model` in `prediction_models`, created when it has none.
async fn model_key(
    transaction: &Transaction<'_>,
    keys: &mut HashMap<String, i64>,
    model: &str,
) -> Result<i64, StoreError> {
    if let Some(&key) = keys.get(model) {
        return Ok(key);
    }
    transaction
        .execute(
            "INSERT INTO prediction_models (model) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&model],
        )
        .await
        .map_err(pg_error)?;
    let key: i64 = transaction
        .query_one(
            "SELECT key FROM prediction_models WHERE model = $1",
            &[&model],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    keys.insert(model.to_owned(), key);
    Ok(key)
}

/// A new, empty block of the window (its row written now, its predictions at the end).
async fn new_block(
    transaction: &Transaction<'_>,
    series: PredictionSeries,
    window: TimeRange,
) -> Result<Filling, StoreError> {
    let (model, version, dataset) = series_columns(&series);
    let key: i64 = transaction
        .query_one(
            "INSERT INTO prediction_blocks
                (model, version, dataset, start_ms, end_ms, min_ms, max_ms, count, data)
             VALUES ($1, $2, $3, $4, $5, 0, 0, 0, '\\x')
             RETURNING key",
            &[
                &model,
                &version,
                &dataset,
                &window.start.as_millis(),
                &window.end.as_millis(),
            ],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    Ok(Filling {
        series,
        window,
        key,
        block: Block::default(),
        stored: 0,
    })
}

/// The window's latest block when it is still open (fewer than [`BLOCK_OPEN`]
/// predictions), else a new one.
async fn open_block(
    transaction: &Transaction<'_>,
    series: PredictionSeries,
    window: TimeRange,
) -> Result<Filling, StoreError> {
    let (model, version, dataset) = series_columns(&series);
    let latest = transaction
        .query_opt(
            "SELECT key, count, data FROM prediction_blocks
             WHERE model = $1 AND version = $2 AND dataset = $3 AND start_ms = $4
             ORDER BY key DESC LIMIT 1",
            &[&model, &version, &dataset, &window.start.as_millis()],
        )
        .await
        .map_err(pg_error)?;
    if let Some(row) = latest {
        let count: i32 = row.try_get(1).map_err(pg_error)?;
        if (count as usize) < BLOCK_OPEN {
            let block = Block::decode(row.try_get(2).map_err(pg_error)?)?;
            let stored = block.len();
            return Ok(Filling {
                series,
                window,
                key: row.try_get(0).map_err(pg_error)?,
                block,
                stored,
            });
        }
    }
    new_block(transaction, series, window).await
}

/// Writes a block the batch filled (deletes it if it stayed empty).
async fn save_block(transaction: &Transaction<'_>, filling: &Filling) -> Result<(), StoreError> {
    let Some((min, max)) = filling.block.span() else {
        transaction
            .execute(
                "DELETE FROM prediction_blocks WHERE key = $1",
                &[&filling.key],
            )
            .await
            .map_err(pg_error)?;
        return Ok(());
    };
    if filling.block.len() == filling.stored {
        return Ok(());
    }
    transaction
        .execute(
            "UPDATE prediction_blocks SET min_ms = $2, max_ms = $3, count = $4, data = $5
             WHERE key = $1",
            &[
                &filling.key,
                &min,
                &max,
                &(filling.block.len() as i32),
                &filling.block.encode(),
            ],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// [`PredictionStore::insert_predictions`](crate::PredictionStore::insert_predictions)
/// in a transaction holding the prediction lock.
pub(super) async fn store_predictions(
    transaction: &Transaction<'_>,
    predictions: Vec<Prediction>,
    windows: &ModelWindows,
) -> Result<PredictionsWritten, StoreError> {
    let take_pending = transaction
        .prepare(
            "DELETE FROM pending_labels WHERE model = $1 AND id = $2
             RETURNING truth, label_ms, labels",
        )
        .await
        .map_err(pg_error)?;
    // A duplicate is the claim that changes nothing (one lookup, not two).
    let claim = transaction
        .prepare(
            "INSERT INTO prediction_ids (model, id, location) VALUES ($1, $2, $3)
             ON CONFLICT (model, id) DO NOTHING",
        )
        .await
        .map_err(pg_error)?;
    let join = transaction
        .prepare(
            "INSERT INTO prediction_labels (location, truth, label_ms, labels)
             VALUES ($1, $2, $3, $4)",
        )
        .await
        .map_err(pg_error)?;
    let cutoffs: HashMap<String, i64> = transaction
        .query(
            "SELECT model, pruned_before_ms FROM prediction_retention",
            &[],
        )
        .await
        .map_err(pg_error)?
        .into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg_error)?;
    let any_pending: bool = transaction
        .query_one("SELECT EXISTS (SELECT 1 FROM pending_labels)", &[])
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    let mut written = PredictionsWritten::default();
    let mut features = FeatureFold::default();
    let mut model_keys = HashMap::new();
    let mut filling: Vec<Filling> = Vec::new();
    let mut last = 0;
    for prediction in predictions {
        let (model, id) = (prediction.model.as_str(), prediction.id.as_str());
        let ms = prediction.timestamp.as_millis();
        if cutoffs.get(model).is_some_and(|&cutoff| ms < cutoff) {
            written.too_old += 1;
            continue;
        }
        let model_key = model_key(transaction, &mut model_keys, model).await?;
        let window = windows.window_of(&prediction.model, prediction.timestamp);
        if !filling
            .get(last)
            .is_some_and(|f| f.holds(&prediction, window.start))
        {
            last = match filling
                .iter()
                .position(|f| f.holds(&prediction, window.start))
            {
                Some(at) => at,
                None => {
                    let series = PredictionSeries::of(&prediction);
                    filling.push(open_block(transaction, series, window).await?);
                    filling.len() - 1
                }
            };
        }
        if filling[last].block.is_full() {
            save_block(transaction, &filling[last]).await?;
            let series = filling[last].series.clone();
            filling[last] = new_block(transaction, series, window).await?;
        }
        let at = location(filling[last].key, filling[last].block.len());
        let claimed = transaction
            .execute(&claim, &[&model_key, &id, &at])
            .await
            .map_err(pg_error)?;
        if claimed == 0 {
            written.duplicates += 1;
            continue;
        }
        filling[last].block.push(ms, prediction.output);
        written.accepted += 1;
        // A stored prediction never has a pending label (its label joined it at once,
        // under the same lock).
        if any_pending {
            let pending = transaction
                .query_opt(&take_pending, &[&model, &id])
                .await
                .map_err(pg_error)?;
            if let Some(row) = pending {
                let truth: f64 = row.try_get(0).map_err(pg_error)?;
                let label_ms: Option<i64> = row.try_get(1).map_err(pg_error)?;
                let labels: i32 = row.try_get(2).map_err(pg_error)?;
                transaction
                    .execute(&join, &[&at, &truth, &label_ms, &labels])
                    .await
                    .map_err(pg_error)?;
                written.labelled += 1;
            }
        }
        features.add(&prediction, windows);
        written.touched.insert(Touched {
            series: PredictionSeries::of(&prediction),
            timestamp: prediction.timestamp,
        });
    }
    for block in &filling {
        save_block(transaction, block).await?;
    }
    fold_features(transaction, features).await?;
    mark_dirty(transaction, &written.touched, windows).await?;
    Ok(written)
}

/// [`PredictionStore::insert_labels`](crate::PredictionStore::insert_labels) in a
/// transaction holding the prediction lock.
pub(super) async fn store_labels(
    transaction: &Transaction<'_>,
    labels: &[Label],
    windows: &ModelWindows,
    now: Timestamp,
) -> Result<LabelsWritten, StoreError> {
    let find = transaction
        .prepare(
            "SELECT i.location FROM prediction_ids i
             JOIN prediction_models m ON m.key = i.model
             WHERE m.model = $1 AND i.id = $2",
        )
        .await
        .map_err(pg_error)?;
    let join = transaction
        .prepare(
            "INSERT INTO prediction_labels (location, truth, label_ms, labels)
             VALUES ($1, $2, $3, 1)
             ON CONFLICT (location) DO UPDATE SET truth = excluded.truth,
                label_ms = excluded.label_ms, labels = prediction_labels.labels + 1
             RETURNING labels",
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
    let read_block = transaction
        .prepare("SELECT model, version, dataset, data FROM prediction_blocks WHERE key = $1")
        .await
        .map_err(pg_error)?;
    let mut blocks: HashMap<i64, (PredictionSeries, Vec<i64>)> = HashMap::new();
    let mut written = LabelsWritten::default();
    for label in labels {
        let (model, id) = (label.model.as_str(), label.id.as_str());
        let label_ms = label.timestamp.map(Timestamp::as_millis);
        let found = transaction
            .query_opt(&find, &[&model, &id])
            .await
            .map_err(pg_error)?;
        let Some(found) = found else {
            let row = transaction
                .query_one(
                    &keep,
                    &[&model, &id, &label.truth, &label_ms, &now.as_millis()],
                )
                .await
                .map_err(pg_error)?;
            let count: i32 = row.try_get(0).map_err(pg_error)?;
            if count == 1 {
                written.pending += 1;
            } else {
                written.duplicates += 1;
            }
            continue;
        };
        let at: i64 = found.try_get(0).map_err(pg_error)?;
        let count: i32 = transaction
            .query_one(&join, &[&at, &label.truth, &label_ms])
            .await
            .map_err(pg_error)?
            .try_get(0)
            .map_err(pg_error)?;
        if count == 1 {
            written.labelled += 1;
        } else {
            written.duplicates += 1;
        }
        let (block_key, slot) = block_and_slot(at);
        let (series, times) = match blocks.entry(block_key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(unknown) => {
                let row = transaction
                    .query_one(&read_block, &[&block_key])
                    .await
                    .map_err(pg_error)?;
                let series = series_from_columns(
                    row.try_get(0).map_err(pg_error)?,
                    row.try_get(1).map_err(pg_error)?,
                    row.try_get(2).map_err(pg_error)?,
                )?;
                let times = Block::decode_times(row.try_get(3).map_err(pg_error)?)?;
                unknown.insert((series, times))
            }
        };
        let ms = times.get(slot).ok_or_else(|| {
            StoreError::Corrupt(format!("prediction location {at}: no slot {slot}"))
        })?;
        written.touched.insert(Touched {
            series: series.clone(),
            timestamp: timestamp(*ms)?,
        });
    }
    mark_dirty(transaction, &written.touched, windows).await?;
    Ok(written)
}

/// [`PredictionStore::window_pairs`](crate::PredictionStore::window_pairs): the blocks
/// of the series holding a time of `range`, each decoded once, with their labels.
pub(super) async fn read_window(
    client: &Client,
    series: &PredictionSeries,
    range: TimeRange,
) -> Result<WindowPairs, StoreError> {
    let (model, version, dataset) = series_columns(series);
    let (start, end) = (range.start.as_millis(), range.end.as_millis());
    let blocks = client
        .query(
            "SELECT key, data FROM prediction_blocks
             WHERE model = $1 AND version = $2 AND dataset = $3 AND max_ms >= $4
                AND min_ms < $5 AND count > 0",
            &[&model, &version, &dataset, &start, &end],
        )
        .await
        .map_err(pg_error)?;
    let keys: Vec<i64> = blocks
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg_error)?;
    let labels = client
        .query(
            "SELECT l.location, l.truth FROM unnest($1::bigint[]) AS b(key)
             JOIN prediction_labels l
                ON l.location >= b.key * 65536 AND l.location < (b.key + 1) * 65536",
            &[&keys],
        )
        .await
        .map_err(pg_error)?;
    let mut truths: HashMap<i64, f64> = HashMap::with_capacity(labels.len());
    for row in &labels {
        truths.insert(
            row.try_get(0).map_err(pg_error)?,
            row.try_get(1).map_err(pg_error)?,
        );
    }
    let mut pairs = WindowPairs::default();
    for (row, &key) in blocks.iter().zip(&keys) {
        let block = Block::decode(row.try_get(1).map_err(pg_error)?)?;
        for (slot, (&ms, &output)) in block.times.iter().zip(&block.outputs).enumerate() {
            if ms < start || ms >= end {
                continue;
            }
            pairs.predicted += 1;
            pairs.sketch.add(score_of(&output));
            if let Some(&truth) = truths.get(&location(key, slot)) {
                pairs.labelled.push(Labelled { output, truth });
            }
        }
    }
    Ok(pairs)
}

/// Drops the predictions of `model` made before its retention cutoff, with their ids and
/// labels; a block holding predictions from both sides of the cutoff is rewritten with
/// those it keeps (as a new block: their ids and labels move). Returns how many went.
pub(super) async fn drop_predictions_before(
    transaction: &Transaction<'_>,
    model: &ModelName,
) -> Result<u64, StoreError> {
    let cutoff: i64 = transaction
        .query_one(
            "SELECT pruned_before_ms FROM prediction_retention WHERE model = $1",
            &[&model.as_str()],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    let blocks = transaction
        .query(
            "SELECT key, version, dataset, start_ms, end_ms, data FROM prediction_blocks
             WHERE model = $1 AND min_ms < $2",
            &[&model.as_str(), &cutoff],
        )
        .await
        .map_err(pg_error)?;
    if blocks.is_empty() {
        return Ok(0);
    }
    let mut moved: HashMap<i64, i64> = HashMap::new();
    let mut gone: HashSet<i64> = HashSet::new();
    let mut dropped = 0u64;
    for row in &blocks {
        let key: i64 = row.try_get(0).map_err(pg_error)?;
        gone.insert(key);
        let block = Block::decode(row.try_get(5).map_err(pg_error)?)?;
        let kept = block.times.iter().filter(|&&ms| ms >= cutoff).count();
        dropped += (block.len() - kept) as u64;
        if kept > 0 {
            let series = series_from_columns(
                model.as_str().to_owned(),
                row.try_get(1).map_err(pg_error)?,
                row.try_get(2).map_err(pg_error)?,
            )?;
            let window = TimeRange::new(
                timestamp(row.try_get(3).map_err(pg_error)?)?,
                timestamp(row.try_get(4).map_err(pg_error)?)?,
            );
            let mut rewritten = new_block(transaction, series, window).await?;
            for (slot, (&ms, &output)) in block.times.iter().zip(&block.outputs).enumerate() {
                if ms >= cutoff {
                    let to = location(rewritten.key, rewritten.block.push(ms, output));
                    moved.insert(location(key, slot), to);
                }
            }
            save_block(transaction, &rewritten).await?;
        }
    }
    let gone: Vec<i64> = gone.into_iter().collect();
    let (from, to): (Vec<i64>, Vec<i64>) = moved.into_iter().unzip();
    transaction
        .execute(
            "UPDATE prediction_labels l SET location = m.to_location
             FROM unnest($1::bigint[], $2::bigint[]) AS m(from_location, to_location)
             WHERE l.location = m.from_location",
            &[&from, &to],
        )
        .await
        .map_err(pg_error)?;
    transaction
        .execute(
            "UPDATE prediction_ids i SET location = m.to_location
             FROM unnest($1::bigint[], $2::bigint[]) AS m(from_location, to_location),
                prediction_models pm
             WHERE pm.model = $3 AND i.model = pm.key AND i.location = m.from_location",
            &[&from, &to, &model.as_str()],
        )
        .await
        .map_err(pg_error)?;
    transaction
        .execute(
            "DELETE FROM prediction_ids i USING prediction_models pm
             WHERE pm.model = $2 AND i.model = pm.key
                AND i.location / 65536 = ANY($1::bigint[])",
            &[&gone, &model.as_str()],
        )
        .await
        .map_err(pg_error)?;
    transaction
        .execute(
            "DELETE FROM prediction_labels WHERE location / 65536 = ANY($1::bigint[])",
            &[&gone],
        )
        .await
        .map_err(pg_error)?;
    transaction
        .execute(
            "DELETE FROM prediction_blocks WHERE key = ANY($1::bigint[])",
            &[&gone],
        )
        .await
        .map_err(pg_error)?;
    Ok(dropped)
}

/// Migration 17: the rows of `predictions` move into blocks, a block per series and
/// window (by each model's configured window, hourly without one) in time order, their
/// ids into the id index and their labels beside them; then the table goes.
pub(super) async fn move_rows_into_blocks(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    let mut configs: Vec<(ModelName, PredictionConfig)> = Vec::new();
    for row in transaction
        .query(
            "SELECT model, window_minutes, task, threshold, min_coverage,
                max_label_delay_minutes FROM prediction_configs",
            &[],
        )
        .await
        .map_err(pg_error)?
    {
        let model: String = row.try_get(0).map_err(pg_error)?;
        let task: &str = row.try_get(2).map_err(pg_error)?;
        configs.push((
            ModelName::parse_owned(model)
                .map_err(|e| StoreError::Corrupt(format!("prediction config: {e}")))?,
            config_from_columns(
                row.try_get(1).map_err(pg_error)?,
                task,
                row.try_get(3).map_err(pg_error)?,
                row.try_get(4).map_err(pg_error)?,
                row.try_get(5).map_err(pg_error)?,
            )?,
        ));
    }
    let windows = ModelWindows::of(configs.iter().map(|(model, config)| (model, config)));
    let claim = transaction
        .prepare("INSERT INTO prediction_ids (model, id, location) VALUES ($1, $2, $3)")
        .await
        .map_err(pg_error)?;
    let join = transaction
        .prepare(
            "INSERT INTO prediction_labels (location, truth, label_ms, labels)
             VALUES ($1, $2, $3, $4)",
        )
        .await
        .map_err(pg_error)?;
    let rows = transaction
        .query(
            "SELECT model, id, version, dataset, ts, class, score, value, truth, label_ms, labels
             FROM predictions ORDER BY model, version, dataset, ts, id",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let mut model_keys = HashMap::new();
    let mut filling: Option<Filling> = None;
    for row in &rows {
        let id: &str = row.try_get(1).map_err(pg_error)?;
        let series = series_from_columns(
            row.try_get(0).map_err(pg_error)?,
            row.try_get(2).map_err(pg_error)?,
            row.try_get(3).map_err(pg_error)?,
        )?;
        let ms: i64 = row.try_get(4).map_err(pg_error)?;
        let class: Option<i16> = row.try_get(5).map_err(pg_error)?;
        let output = output_from_columns(
            class.map(i64::from),
            row.try_get(6).map_err(pg_error)?,
            row.try_get(7).map_err(pg_error)?,
        )?;
        let window = windows.window_of(&series.model, timestamp(ms)?);
        let same = filling.as_ref().is_some_and(|f| {
            f.series == series && f.window.start == window.start && !f.block.is_full()
        });
        if !same {
            if let Some(done) = filling.take() {
                save_block(transaction, &done).await?;
            }
            filling = Some(new_block(transaction, series.clone(), window).await?);
        }
        let Some(block) = filling.as_mut() else {
            continue;
        };
        let model_key = model_key(transaction, &mut model_keys, series.model.as_str()).await?;
        let at = location(block.key, block.block.push(ms, output));
        transaction
            .execute(&claim, &[&model_key, &id, &at])
            .await
            .map_err(pg_error)?;
        let truth: Option<f64> = row.try_get(8).map_err(pg_error)?;
        if let Some(truth) = truth {
            let label_ms: Option<i64> = row.try_get(9).map_err(pg_error)?;
            let labels: i32 = row.try_get(10).map_err(pg_error)?;
            transaction
                .execute(&join, &[&at, &truth, &label_ms, &labels])
                .await
                .map_err(pg_error)?;
        }
    }
    if let Some(done) = filling.take() {
        save_block(transaction, &done).await?;
    }
    transaction
        .batch_execute("DROP TABLE predictions")
        .await
        .map_err(pg_error)?;
    Ok(())
}
