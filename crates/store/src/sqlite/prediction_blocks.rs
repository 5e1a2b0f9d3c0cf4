//! Raw predictions in SQLite as columnar blocks (schema 19; the layout in
//! `predictions/block.rs`): storing a batch, joining labels, reading a window, pruning,
//! and moving the rows of schema 18's `predictions` table into blocks.
//!
//! Tables: `prediction_blocks` (a series' predictions that one window received, found
//! by series and time), `prediction_ids` (a model's ids by the model's small integer
//! key, each to its location: block and slot), `prediction_labels` (a prediction's
//! latest label by location, with how many it received). A batch fills the open block
//! of each window it touches (one with fewer than [`BLOCK_OPEN`] predictions) or starts
//! one, and writes each block once, at the end of the batch.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use modelwatch_core::predictions::drift::score_of;
use modelwatch_core::predictions::{Label, Labelled, ModelWindows, Prediction};
use modelwatch_core::{ModelName, TimeRange, Timestamp};
use rusqlite::{params, OptionalExtension, Transaction};

use super::predictions::{
    fold_features, mark_dirty, series_columns, series_from_columns, timestamp,
};
use crate::predictions::block::{block_and_slot, location, Block, BLOCK_OPEN};
use crate::predictions::{
    config_from_columns, output_from_columns, FeatureFold, LabelsWritten, PredictionSeries,
    PredictionsWritten, Touched, WindowPairs,
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

/// The key of `model` in `prediction_models`, created when it has none.
fn model_key(
    transaction: &Transaction<'_>,
    keys: &mut HashMap<String, i64>,
    model: &str,
) -> Result<i64, StoreError> {
    if let Some(&key) = keys.get(model) {
        return Ok(key);
    }
    transaction
        .prepare_cached("INSERT INTO prediction_models (model) VALUES (?1) ON CONFLICT DO NOTHING")?
        .execute([model])?;
    let key: i64 = transaction
        .prepare_cached("SELECT key FROM prediction_models WHERE model = ?1")?
        .query_row([model], |row| row.get(0))?;
    keys.insert(model.to_owned(), key);
    Ok(key)
}

/// A new, empty block of the window (its row written now, its predictions at the end).
fn new_block(
    transaction: &Transaction<'_>,
    series: PredictionSeries,
    window: TimeRange,
) -> Result<Filling, StoreError> {
    let key = series_columns(&series);
    let block_key: i64 = transaction
        .prepare_cached(
            "INSERT INTO prediction_blocks
                (model, version, dataset, start_ms, end_ms, min_ms, max_ms, count, data)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, x'')
             RETURNING key",
        )?
        .query_row(
            params![
                key.0,
                key.1,
                key.2,
                window.start.as_millis(),
                window.end.as_millis()
            ],
            |row| row.get(0),
        )?;
    Ok(Filling {
        series,
        window,
        key: block_key,
        block: Block::default(),
        stored: 0,
    })
}

/// The window's latest block when it is still open (fewer than [`BLOCK_OPEN`]
/// predictions), else a new one.
fn open_block(
    transaction: &Transaction<'_>,
    series: PredictionSeries,
    window: TimeRange,
) -> Result<Filling, StoreError> {
    let key = series_columns(&series);
    let latest: Option<(i64, i64, Vec<u8>)> = transaction
        .prepare_cached(
            "SELECT key, count, data FROM prediction_blocks
             WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND start_ms = ?4
             ORDER BY key DESC LIMIT 1",
        )?
        .query_row(
            params![key.0, key.1, key.2, window.start.as_millis()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    match latest {
        Some((block_key, count, data)) if (count as usize) < BLOCK_OPEN => {
            let block = Block::decode(&data)?;
            let stored = block.len();
            Ok(Filling {
                series,
                window,
                key: block_key,
                block,
                stored,
            })
        }
        _ => new_block(transaction, series, window),
    }
}

/// Writes a block the batch filled (deletes it if it stayed empty).
fn save_block(transaction: &Transaction<'_>, filling: &Filling) -> Result<(), StoreError> {
    let Some((min, max)) = filling.block.span() else {
        transaction
            .prepare_cached("DELETE FROM prediction_blocks WHERE key = ?1")?
            .execute([filling.key])?;
        return Ok(());
    };
    if filling.block.len() == filling.stored {
        return Ok(());
    }
    transaction
        .prepare_cached(
            "UPDATE prediction_blocks SET min_ms = ?2, max_ms = ?3, count = ?4, data = ?5
             WHERE key = ?1",
        )?
        .execute(params![
            filling.key,
            min,
            max,
            filling.block.len() as i64,
            filling.block.encode()
        ])?;
    Ok(())
}

/// [`PredictionStore::insert_predictions`](crate::PredictionStore::insert_predictions)
/// in a transaction.
pub(super) fn store_predictions(
    transaction: &Transaction<'_>,
    predictions: Vec<Prediction>,
    windows: &ModelWindows,
) -> Result<PredictionsWritten, StoreError> {
    let mut take_pending = transaction.prepare_cached(
        "DELETE FROM pending_labels WHERE model = ?1 AND id = ?2
         RETURNING truth, label_ms, labels",
    )?;
    // A duplicate is the claim that changes nothing (one lookup, not two).
    let mut claim = transaction.prepare_cached(
        "INSERT INTO prediction_ids (model, id, location) VALUES (?1, ?2, ?3)
         ON CONFLICT (model, id) DO NOTHING",
    )?;
    let mut join = transaction.prepare_cached(
        "INSERT INTO prediction_labels (location, truth, label_ms, labels)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    // Read once per batch: the cutoffs, and whether any label is pending at all
    // (usually none: the pending table is not searched for every prediction).
    let cutoffs: HashMap<String, i64> = transaction
        .prepare_cached("SELECT model, pruned_before_ms FROM prediction_retention")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let any_pending: bool = transaction
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM pending_labels)")?
        .query_row([], |row| row.get(0))?;
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
        let model_key = model_key(transaction, &mut model_keys, model)?;
        let window = windows.window_of(&prediction.model, prediction.timestamp);
        // Consecutive predictions mostly share a window: the last one is tried first.
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
                    filling.push(open_block(
                        transaction,
                        PredictionSeries::of(&prediction),
                        window,
                    )?);
                    filling.len() - 1
                }
            };
        }
        if filling[last].block.is_full() {
            save_block(transaction, &filling[last])?;
            let series = filling[last].series.clone();
            filling[last] = new_block(transaction, series, window)?;
        }
        let block = &mut filling[last];
        let at = location(block.key, block.block.len());
        if claim.execute(params![model_key, id, at])? == 0 {
            written.duplicates += 1;
            continue;
        }
        block.block.push(ms, prediction.output);
        written.accepted += 1;
        // A stored prediction never has a pending label (its label joined it at once).
        if any_pending {
            let pending: Option<(f64, Option<i64>, i64)> = take_pending
                .query_row(params![model, id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            if let Some((truth, label_ms, labels)) = pending {
                join.execute(params![at, truth, label_ms, labels])?;
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
        save_block(transaction, block)?;
    }
    fold_features(transaction, features)?;
    mark_dirty(transaction, &written.touched, windows)?;
    Ok(written)
}

/// [`PredictionStore::insert_labels`](crate::PredictionStore::insert_labels) in a
/// transaction.
pub(super) fn store_labels(
    transaction: &Transaction<'_>,
    labels: &[Label],
    windows: &ModelWindows,
    now: Timestamp,
) -> Result<LabelsWritten, StoreError> {
    let mut find_model =
        transaction.prepare_cached("SELECT key FROM prediction_models WHERE model = ?1")?;
    let mut find = transaction
        .prepare_cached("SELECT location FROM prediction_ids WHERE model = ?1 AND id = ?2")?;
    let mut join = transaction.prepare_cached(
        "INSERT INTO prediction_labels (location, truth, label_ms, labels)
         VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (location) DO UPDATE SET truth = excluded.truth,
            label_ms = excluded.label_ms, labels = prediction_labels.labels + 1
         RETURNING labels",
    )?;
    let mut keep = transaction.prepare_cached(
        "INSERT INTO pending_labels (model, id, truth, label_ms, received_ms, labels)
         VALUES (?1, ?2, ?3, ?4, ?5, 1)
         ON CONFLICT (model, id) DO UPDATE SET truth = excluded.truth,
            label_ms = excluded.label_ms, received_ms = excluded.received_ms,
            labels = pending_labels.labels + 1
         RETURNING labels",
    )?;
    let mut read_block = transaction.prepare_cached(
        "SELECT model, version, dataset, data FROM prediction_blocks WHERE key = ?1",
    )?;
    let mut model_keys: HashMap<&str, Option<i64>> = HashMap::new();
    // The series and prediction times of each block a label joined (a block's times are
    // decoded once per batch, its outputs not at all).
    let mut blocks: HashMap<i64, (PredictionSeries, Vec<i64>)> = HashMap::new();
    let mut written = LabelsWritten::default();
    for label in labels {
        let (model, id) = (label.model.as_str(), label.id.as_str());
        let label_ms = label.timestamp.map(Timestamp::as_millis);
        let model_key = match model_keys.get(model) {
            Some(&key) => key,
            None => {
                let key: Option<i64> =
                    find_model.query_row([model], |row| row.get(0)).optional()?;
                model_keys.insert(model, key);
                key
            }
        };
        let found: Option<i64> = match model_key {
            Some(key) => find
                .query_row(params![key, id], |row| row.get(0))
                .optional()?,
            None => None,
        };
        let Some(at) = found else {
            let count: i64 = keep.query_row(
                params![model, id, label.truth, label_ms, now.as_millis()],
                |row| row.get(0),
            )?;
            if count == 1 {
                written.pending += 1;
            } else {
                written.duplicates += 1;
            }
            continue;
        };
        let count: i64 = join.query_row(params![at, label.truth, label_ms], |row| row.get(0))?;
        if count == 1 {
            written.labelled += 1;
        } else {
            written.duplicates += 1;
        }
        let (block_key, slot) = block_and_slot(at);
        let (series, times) = match blocks.entry(block_key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(unknown) => {
                let (model, version, dataset, data): (String, String, String, Vec<u8>) = read_block
                    .query_row([block_key], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?;
                let series = series_from_columns(model, version, &dataset)?;
                unknown.insert((series, Block::decode_times(&data)?))
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
    mark_dirty(transaction, &written.touched, windows)?;
    Ok(written)
}

/// The labels of a block by slot.
fn block_labels(
    connection: &rusqlite::Connection,
    block_key: i64,
    count: usize,
) -> Result<Vec<Option<f64>>, StoreError> {
    let mut truths = vec![None; count];
    let mut statement = connection.prepare_cached(
        "SELECT location, truth FROM prediction_labels WHERE location >= ?1 AND location < ?2",
    )?;
    let mut rows = statement.query(params![location(block_key, 0), location(block_key + 1, 0)])?;
    while let Some(row) = rows.next()? {
        let (_, slot) = block_and_slot(row.get(0)?);
        let truth: f64 = row.get(1)?;
        let entry = truths.get_mut(slot).ok_or_else(|| {
            StoreError::Corrupt(format!("label of block {block_key}: no slot {slot}"))
        })?;
        *entry = Some(truth);
    }
    Ok(truths)
}

/// [`PredictionStore::window_pairs`](crate::PredictionStore::window_pairs): the blocks
/// of the series holding a time of `range`, each decoded once, with their labels.
pub(super) fn read_window(
    connection: &rusqlite::Connection,
    series: &PredictionSeries,
    range: TimeRange,
) -> Result<WindowPairs, StoreError> {
    let key = series_columns(series);
    let mut statement = connection.prepare_cached(
        "SELECT key, data FROM prediction_blocks
         WHERE model = ?1 AND version = ?2 AND dataset = ?3 AND max_ms >= ?4 AND min_ms < ?5
            AND count > 0",
    )?;
    let mut rows = statement.query(params![
        key.0,
        key.1,
        key.2,
        range.start.as_millis(),
        range.end.as_millis(),
    ])?;
    let (start, end) = (range.start.as_millis(), range.end.as_millis());
    let mut pairs = WindowPairs::default();
    while let Some(row) = rows.next()? {
        let block_key: i64 = row.get(0)?;
        let data = row
            .get_ref(1)?
            .as_blob()
            .map_err(|e| StoreError::Corrupt(format!("prediction block {block_key}: {e}")))?;
        let block = Block::decode(data)?;
        let truths = block_labels(connection, block_key, block.len())?;
        for ((&ms, output), truth) in block.times.iter().zip(block.outputs).zip(truths) {
            if ms < start || ms >= end {
                continue;
            }
            pairs.predicted += 1;
            pairs.sketch.add(score_of(&output));
            if let Some(truth) = truth {
                pairs.labelled.push(Labelled { output, truth });
            }
        }
    }
    Ok(pairs)
}

/// Drops the predictions of `model` made before its retention cutoff, with their ids and
/// labels; a block holding predictions from both sides of the cutoff is rewritten with
/// those it keeps (as a new block: their ids and labels move to their new locations).
/// Returns how many went.
pub(super) fn drop_predictions_before(
    transaction: &Transaction<'_>,
    model: &ModelName,
) -> Result<u64, StoreError> {
    let cutoff: i64 = transaction
        .prepare_cached("SELECT pruned_before_ms FROM prediction_retention WHERE model = ?1")?
        .query_row([model.as_str()], |row| row.get(0))?;
    let blocks: Vec<(i64, String, String, i64, i64, Vec<u8>)> = transaction
        .prepare_cached(
            "SELECT key, version, dataset, start_ms, end_ms, data FROM prediction_blocks
             WHERE model = ?1 AND min_ms < ?2",
        )?
        .query_map(params![model.as_str(), cutoff], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    if blocks.is_empty() {
        return Ok(0);
    }
    let Some(model_key): Option<i64> = transaction
        .prepare_cached("SELECT key FROM prediction_models WHERE model = ?1")?
        .query_row([model.as_str()], |row| row.get(0))
        .optional()?
    else {
        return Err(StoreError::Corrupt(format!(
            "predictions of {model} without a model key"
        )));
    };
    // Each kept prediction's new location, by its old one.
    let mut moved: HashMap<i64, i64> = HashMap::new();
    let mut dropped = 0u64;
    let gone: HashSet<i64> = blocks.iter().map(|b| b.0).collect();
    for (key, version, dataset, start_ms, end_ms, data) in blocks {
        let block = Block::decode(&data)?;
        let kept = block.times.iter().filter(|&&ms| ms >= cutoff).count();
        dropped += (block.len() - kept) as u64;
        if kept > 0 {
            let series = series_from_columns(model.as_str().to_owned(), version, &dataset)?;
            let window = TimeRange::new(timestamp(start_ms)?, timestamp(end_ms)?);
            let mut rewritten = new_block(transaction, series, window)?;
            for (slot, (&ms, &output)) in block.times.iter().zip(&block.outputs).enumerate() {
                if ms >= cutoff {
                    let to = location(rewritten.key, rewritten.block.push(ms, output));
                    moved.insert(location(key, slot), to);
                }
            }
            save_block(transaction, &rewritten)?;
        }
        transaction
            .prepare_cached("DELETE FROM prediction_blocks WHERE key = ?1")?
            .execute([key])?;
    }
    // The labels of the kept predictions move; the rest go with their block.
    let mut move_label = transaction
        .prepare_cached("UPDATE prediction_labels SET location = ?2 WHERE location = ?1")?;
    let mut drop_labels = transaction
        .prepare_cached("DELETE FROM prediction_labels WHERE location >= ?1 AND location < ?2")?;
    for (&from, &to) in &moved {
        move_label.execute(params![from, to])?;
    }
    for &key in &gone {
        drop_labels.execute(params![location(key, 0), location(key + 1, 0)])?;
    }
    // One pass over the model's ids (no index by location: it would cost every
    // prediction its bytes for the sake of a rare prune).
    let ids: Vec<(String, i64)> = transaction
        .prepare_cached("SELECT id, location FROM prediction_ids WHERE model = ?1")?
        .query_map([model_key], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut relocate = transaction
        .prepare_cached("UPDATE prediction_ids SET location = ?3 WHERE model = ?1 AND id = ?2")?;
    let mut forget =
        transaction.prepare_cached("DELETE FROM prediction_ids WHERE model = ?1 AND id = ?2")?;
    for (id, at) in ids {
        if !gone.contains(&block_and_slot(at).0) {
            continue;
        }
        match moved.get(&at) {
            Some(&to) => relocate.execute(params![model_key, id, to])?,
            None => forget.execute(params![model_key, id])?,
        };
    }
    Ok(dropped)
}

/// Schema 19: the rows of `predictions` move into blocks, a block per series and window
/// (by each model's configured window, hourly without one) in time order, their ids into
/// the id index and their labels beside them; then the table goes.
pub(super) fn move_rows_into_blocks(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    let configs: Vec<(ModelName, modelwatch_core::predictions::PredictionConfig)> = transaction
        .prepare(
            "SELECT model, window_minutes, task, threshold, min_coverage,
                max_label_delay_minutes FROM prediction_configs",
        )?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, f64>(3)?,
                row.get::<_, f64>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?
        .map(|row| {
            let (model, minutes, task, threshold, min_coverage, delay) = row?;
            Ok((
                ModelName::parse_owned(model)
                    .map_err(|e| StoreError::Corrupt(format!("prediction config: {e}")))?,
                config_from_columns(minutes, &task, threshold, min_coverage, delay)?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let windows = ModelWindows::of(configs.iter().map(|(model, config)| (model, config)));
    let mut model_keys = HashMap::new();
    let mut claim = transaction
        .prepare("INSERT INTO prediction_ids (model, id, location) VALUES (?1, ?2, ?3)")?;
    let mut join = transaction.prepare(
        "INSERT INTO prediction_labels (location, truth, label_ms, labels)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut statement = transaction.prepare(
        "SELECT model, id, version, dataset, ts, class, score, value, truth, label_ms, labels
         FROM predictions ORDER BY model, version, dataset, ts, id",
    )?;
    let mut rows = statement.query([])?;
    let mut filling: Option<Filling> = None;
    while let Some(row) = rows.next()? {
        let model: String = row.get(0)?;
        let id: String = row.get(1)?;
        let series = series_from_columns(model, row.get(2)?, &row.get::<_, String>(3)?)?;
        let ms: i64 = row.get(4)?;
        let output = output_from_columns(row.get(5)?, row.get(6)?, row.get(7)?)?;
        let truth: Option<f64> = row.get(8)?;
        let window = windows.window_of(&series.model, timestamp(ms)?);
        let same = filling.as_ref().is_some_and(|f| {
            f.series == series && f.window.start == window.start && !f.block.is_full()
        });
        if !same {
            if let Some(done) = filling.take() {
                save_block(transaction, &done)?;
            }
            filling = Some(new_block(transaction, series.clone(), window)?);
        }
        let Some(block) = filling.as_mut() else {
            continue;
        };
        let model_key = model_key(transaction, &mut model_keys, series.model.as_str())?;
        let at = location(block.key, block.block.push(ms, output));
        claim.execute(params![model_key, id, at])?;
        if let Some(truth) = truth {
            let label_ms: Option<i64> = row.get(9)?;
            let labels: i64 = row.get(10)?;
            join.execute(params![at, truth, label_ms, labels])?;
        }
    }
    if let Some(done) = filling.take() {
        save_block(transaction, &done)?;
    }
    drop(rows);
    drop(statement);
    transaction.execute_batch("DROP INDEX predictions_by_window; DROP TABLE predictions;")?;
    Ok(())
}
