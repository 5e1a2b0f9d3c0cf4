//! The single writer: one thread owns the write connection and applies write jobs in
//! batched transactions (group commit).
//!
//! Jobs that arrive while a transaction is being written wait and then go into the next
//! transaction together, so many small concurrent writes cost one fsync instead of one
//! each. When several jobs share a transaction, each runs inside its own savepoint: a
//! failing job is rolled back alone and its caller gets the error, the others commit (a
//! lone job's failure rolls back its transaction). A caller's future resolves only after
//! the COMMIT (with `synchronous = FULL`) has returned, so every acknowledged write is on
//! disk. After each commit the writer compacts series whose recent samples sit in many
//! small chunks (see [`SEALED_CHUNK_LEN`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, TryRecvError};

use modelwatch_core::{Dataset, MetricDefinition, ModelName, Sample};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use super::head;
use super::tables::{load_custom_metrics, SERIES_DATASET_IS_4};
use crate::codec::{self, sort_keeping_last, Columns};
use crate::{validate_batch, SeriesLimits, StoreError};

/// A chunk with at least this many points is final ("sealed"); smaller ones are merged
/// by compaction once a series has enough of them.
///
/// Only the small chunks younger than the series' youngest sealed chunk are merged
/// ("mergeable"): the merged chunk takes a new, higher id, and jumping a sealed chunk
/// would let an older write of a timestamp win over the sealed chunk's later one. Small
/// chunks older than a sealed one arise when compacting the head seals a chunk directly
/// (a series with many points in the head) and when pruning trims a sealed chunk
/// (`prune.rs`); they stay as they are.
pub const SEALED_CHUNK_LEN: i64 = 1024;
/// The largest chunk compaction writes.
const MAX_CHUNK_LEN: usize = 4096;
/// A series with this many small chunks is compacted even if they hold few points.
const MAX_SMALL_CHUNKS: u32 = 64;
/// The head is compacted once it holds this many batches or points.
const MAX_HEAD_ROWS: i64 = 16;
const MAX_HEAD_POINTS: i64 = 250_000;
/// At most this many jobs share one transaction.
const MAX_JOBS_PER_COMMIT: usize = 512;
/// At most this many series are compacted between two write transactions, so pending
/// writes are not held up for long.
const MAX_COMPACTIONS_PER_ROUND: usize = 256;

/// Work for the writer thread: runs inside a savepoint, then learns how the commit went.
pub trait WriteJob: Send {
    fn apply(
        &mut self,
        state: &mut WriterState,
        transaction: &Transaction<'_>,
    ) -> Result<(), StoreError>;
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

/// A job built from a closure; its result reaches the caller only once committed.
pub struct ClosureJob<T, F> {
    run: Option<F>,
    output: Option<Result<T, StoreError>>,
    reply: Option<oneshot::Sender<Result<T, StoreError>>>,
}

impl<T, F> ClosureJob<T, F> {
    pub fn new(run: F, reply: oneshot::Sender<Result<T, StoreError>>) -> Self {
        ClosureJob {
            run: Some(run),
            output: None,
            reply: Some(reply),
        }
    }
}

impl<T, F> WriteJob for ClosureJob<T, F>
where
    T: Send,
    F: FnOnce(&mut WriterState, &Transaction<'_>) -> Result<T, StoreError> + Send,
{
    fn apply(
        &mut self,
        state: &mut WriterState,
        transaction: &Transaction<'_>,
    ) -> Result<(), StoreError> {
        let run = self.run.take().ok_or(StoreError::Closed)?;
        let output = run(state, transaction);
        let failed = output
            .as_ref()
            .err()
            .map(|e| StoreError::Database(e.to_string()));
        self.output = Some(output);
        match failed {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn finish(mut self: Box<Self>, committed: Result<(), StoreError>) {
        let result = match (committed, self.output.take()) {
            (_, Some(Err(job_error))) => Err(job_error),
            (Err(commit_error), _) => Err(commit_error),
            (Ok(()), Some(output)) => output,
            (Ok(()), None) => Err(StoreError::Closed),
        };
        if let Some(reply) = self.reply.take() {
            // The caller may have gone away (e.g. a dropped HTTP request); the write stands.
            let _ = reply.send(result);
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct SmallChunks {
    chunks: u32,
    points: i64,
}

/// Caches the writer keeps between transactions. Entries learnt inside a transaction are
/// staged (a journal plus an index for lookups) and only kept once it commits, so a
/// rolled-back job leaves no stale id behind.
#[derive(Debug, Default)]
pub struct WriterState {
    series_ids: HashMap<String, i64>,
    /// Reused to build series cache keys without allocating per lookup.
    key_buffer: String,
    dataset_ids: HashMap<String, u32>,
    small_chunks: HashMap<i64, SmallChunks>,
    staged: Staged,
}

#[derive(Debug, Default)]
struct Staged {
    series_journal: Vec<(String, i64)>,
    dataset_journal: Vec<(String, u32)>,
    small_journal: Vec<(i64, SmallChunks)>,
    series: HashMap<String, i64>,
    datasets: HashMap<String, u32>,
    small: HashMap<i64, SmallChunks>,
}

#[derive(Debug, Clone, Copy)]
struct StageMark(usize, usize, usize);

impl Staged {
    fn series(&mut self, key: String, id: i64) {
        self.series.insert(key.clone(), id);
        self.series_journal.push((key, id));
    }

    fn dataset(&mut self, name: String, id: u32) {
        self.datasets.insert(name.clone(), id);
        self.dataset_journal.push((name, id));
    }

    fn small(&mut self, series_id: i64, small: SmallChunks) {
        self.small.insert(series_id, small);
        self.small_journal.push((series_id, small));
    }
}

impl WriterState {
    fn mark(&self) -> StageMark {
        StageMark(
            self.staged.series_journal.len(),
            self.staged.dataset_journal.len(),
            self.staged.small_journal.len(),
        )
    }

    /// Forgets what was staged since `mark` (a job rolled back to its savepoint); rare, so
    /// the indexes are simply rebuilt from the journals.
    fn rollback_to(&mut self, mark: StageMark) {
        let staged = &mut self.staged;
        staged.series_journal.truncate(mark.0);
        staged.dataset_journal.truncate(mark.1);
        staged.small_journal.truncate(mark.2);
        staged.series = staged.series_journal.iter().cloned().collect();
        staged.datasets = staged.dataset_journal.iter().cloned().collect();
        staged.small = staged.small_journal.iter().copied().collect();
    }

    fn commit_staged(&mut self) {
        let staged = std::mem::take(&mut self.staged);
        self.series_ids.extend(staged.series);
        self.dataset_ids.extend(staged.datasets);
        self.small_chunks.extend(staged.small);
    }

    fn discard_staged(&mut self) {
        self.staged = Staged::default();
    }

    /// Builds the cache key of a series in `key_buffer`.
    fn cache_key(&mut self, key: SeriesNames<'_>) {
        // Names cannot contain NUL (see core's name rules), so it separates them safely;
        // nor be empty, so "" is the default dataset unambiguously.
        self.key_buffer.clear();
        for (i, part) in [key.0, key.1, key.2, key.3.unwrap_or("")]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                self.key_buffer.push('\0');
            }
            self.key_buffer.push_str(part);
        }
    }

    /// The id of a series that exists (cached, or in the database), without creating it.
    fn existing_series_id(
        &mut self,
        transaction: &Transaction<'_>,
        key: SeriesNames<'_>,
    ) -> Result<Option<i64>, StoreError> {
        self.cache_key(key);
        if let Some(id) = self
            .series_ids
            .get(&self.key_buffer)
            .or_else(|| self.staged.series.get(&self.key_buffer))
        {
            return Ok(Some(*id));
        }
        let existing: Option<i64> = transaction
            .prepare_cached(&format!(
                "SELECT id FROM series WHERE model = ?1 AND version = ?2 AND metric = ?3 AND {}",
                SERIES_DATASET_IS_4
            ))?
            .query_row(params![key.0, key.1, key.2, key.3], |row| row.get(0))
            .optional()?;
        if let Some(id) = existing {
            self.learn_series(transaction, id)?;
        }
        Ok(existing)
    }

    /// Stages the series whose key is in `key_buffer` as `id`, with its small chunks.
    fn learn_series(&mut self, transaction: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
        let small = load_small_chunks(transaction, id)?;
        self.staged.small(id, small);
        let owned = self.key_buffer.clone();
        self.staged.series(owned, id);
        Ok(())
    }

    fn create_series(
        &mut self,
        transaction: &Transaction<'_>,
        key: SeriesNames<'_>,
        dataset: Option<&Dataset>,
    ) -> Result<i64, StoreError> {
        let dataset_id = self.dataset_id(transaction, dataset)?;
        transaction
            .prepare_cached(
                "INSERT INTO series (model, version, metric, dataset_id) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![key.0, key.1, key.2, dataset_id])?;
        let id = transaction.last_insert_rowid();
        self.cache_key(key);
        self.learn_series(transaction, id)?;
        Ok(id)
    }

    fn dataset_id(
        &mut self,
        transaction: &Transaction<'_>,
        dataset: Option<&Dataset>,
    ) -> Result<u32, StoreError> {
        let Some(dataset) = dataset else { return Ok(0) };
        let name = dataset.as_str();
        if let Some(id) = self
            .dataset_ids
            .get(name)
            .or_else(|| self.staged.datasets.get(name))
        {
            return Ok(*id);
        }
        transaction
            .prepare_cached("INSERT OR IGNORE INTO datasets (name) VALUES (?1)")?
            .execute([name])?;
        let id: i64 = transaction
            .prepare_cached("SELECT id FROM datasets WHERE name = ?1")?
            .query_row([name], |row| row.get(0))?;
        let id =
            u32::try_from(id).map_err(|_| StoreError::Corrupt("dataset id out of range".into()))?;
        self.staged.dataset(name.to_owned(), id);
        Ok(id)
    }

    fn small_chunks(&self, series_id: i64) -> SmallChunks {
        self.staged
            .small
            .get(&series_id)
            .or_else(|| self.small_chunks.get(&series_id))
            .copied()
            .unwrap_or_default()
    }

    fn note_chunk(&mut self, series_id: i64, points: usize) {
        if points as i64 >= SEALED_CHUNK_LEN {
            return;
        }
        let mut small = self.small_chunks(series_id);
        small.chunks += 1;
        small.points += points as i64;
        self.staged.small(series_id, small);
    }

    /// Re-reads a series' mergeable small chunks after chunks were deleted or trimmed.
    pub(super) fn reload_small_chunks(
        &mut self,
        transaction: &Transaction<'_>,
        series_id: i64,
    ) -> Result<(), StoreError> {
        let small = load_small_chunks(transaction, series_id)?;
        self.staged.small(series_id, small);
        Ok(())
    }

    fn needs_compaction(small: SmallChunks) -> bool {
        small.chunks >= MAX_SMALL_CHUNKS || (small.chunks >= 2 && small.points >= SEALED_CHUNK_LEN)
    }
}

/// A series' names: model, version, metric and dataset (`None`: the default one).
type SeriesNames<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

/// The condition selecting a series' mergeable small chunks (see [`SEALED_CHUNK_LEN`]);
/// binds the series id as `?1` and [`SEALED_CHUNK_LEN`] as `?2`.
const MERGEABLE_CHUNKS: &str = "series_id = ?1 AND count < ?2
    AND id > (SELECT coalesce(max(id), 0) FROM chunks WHERE series_id = ?1 AND count >= ?2)";

fn load_small_chunks(
    transaction: &Transaction<'_>,
    series_id: i64,
) -> Result<SmallChunks, StoreError> {
    let (chunks, points): (i64, i64) = transaction
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(count), 0) FROM chunks WHERE {MERGEABLE_CHUNKS}"
        ))?
        .query_row(params![series_id, SEALED_CHUNK_LEN], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(SmallChunks {
        chunks: u32::try_from(chunks).unwrap_or(u32::MAX),
        points,
    })
}

/// Runs jobs until every sender is gone, then returns (after the last commit).
pub fn run(mut connection: Connection, jobs: Receiver<Box<dyn WriteJob>>) {
    let mut state = WriterState::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        commit_batch(&mut connection, &mut state, batch);
        if let Err(error) = compact_some(&mut connection, &mut state) {
            state.discard_staged();
            eprintln!("modelwatch: compaction failed (will retry): {error}");
        }
    }
    // A clean close moves the log into the database and empties it, so a stopped
    // server's files are the database alone. Best effort: a reader still open may keep
    // part of the log, which the next start checkpoints.
    if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        eprintln!("modelwatch: emptying the write-ahead log at close failed: {error}");
    }
}

fn commit_batch(
    connection: &mut Connection,
    state: &mut WriterState,
    batch: Vec<Box<dyn WriteJob>>,
) {
    let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(error) => {
            let message = error.to_string();
            for job in batch {
                job.finish(Err(StoreError::Database(message.clone())));
            }
            return;
        }
    };
    // A lone job needs no savepoint: if it fails, the whole transaction is rolled back,
    // which undoes as much. A savepoint is not free: SQLite first copies every page the
    // job changes to a sub-journal (an evaluation pass changes every rule state's page).
    let alone = batch.len() == 1;
    let mut outcomes = Vec::with_capacity(batch.len());
    for mut job in batch {
        let mark = state.mark();
        let outcome = if alone {
            job.apply(state, &transaction)
        } else {
            run_in_savepoint(&transaction, state, job.as_mut())
        };
        if outcome.is_err() {
            state.rollback_to(mark);
        }
        outcomes.push((job, outcome));
    }
    if alone && outcomes.iter().any(|(_, outcome)| outcome.is_err()) {
        state.discard_staged();
        if let Err(error) = transaction.rollback() {
            eprintln!("modelwatch: rolling back a failed write failed: {error}");
        }
        for (job, outcome) in outcomes {
            job.finish(outcome);
        }
        return;
    }
    match transaction.commit() {
        Ok(()) => {
            state.commit_staged();
            for (job, outcome) in outcomes {
                job.finish(outcome);
            }
        }
        Err(error) => {
            state.discard_staged();
            let message = error.to_string();
            for (job, _) in outcomes {
                job.finish(Err(StoreError::Database(message.clone())));
            }
        }
    }
}

fn run_in_savepoint(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
    job: &mut dyn WriteJob,
) -> Result<(), StoreError> {
    transaction.execute_batch("SAVEPOINT job")?;
    match job.apply(state, transaction) {
        Ok(()) => {
            transaction.execute_batch("RELEASE job")?;
            Ok(())
        }
        Err(error) => {
            transaction.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(error)
        }
    }
}

/// Appends a batch as one chunk per series. Validation happens first, so an invalid
/// sample stops the batch before anything is written.
pub fn append(
    state: &mut WriterState,
    transaction: &Transaction<'_>,
    samples: &[Sample],
    limits: &SeriesLimits,
) -> Result<(), StoreError> {
    validate_batch(samples, &load_custom_metrics(transaction)?)?;
    // FxHash: the grouping hashes three names per sample, and SipHash's DoS resistance buys
    // nothing for keys that are already validated names of our own batch.
    let mut groups: FxHashMap<SeriesNames<'_>, Vec<usize>> = FxHashMap::default();
    for (index, sample) in samples.iter().enumerate() {
        groups
            .entry((
                sample.model.as_str(),
                sample.version.as_str(),
                sample.metric.as_str(),
                sample.dataset.as_ref().map(Dataset::as_str),
            ))
            .or_default()
            .push(index);
    }
    // Series that exist, then the new ones, checked against the limits before any is
    // created.
    let mut ids: FxHashMap<SeriesNames<'_>, i64> = FxHashMap::default();
    let mut new_by_model: BTreeMap<ModelName, usize> = BTreeMap::new();
    for (key, indices) in &groups {
        match state.existing_series_id(transaction, *key)? {
            Some(id) => {
                ids.insert(*key, id);
            }
            None => {
                *new_by_model
                    .entry(samples[indices[0]].model.clone())
                    .or_default() += 1
            }
        }
    }
    if !new_by_model.is_empty() {
        let count = |sql: &str, model: Option<&str>| -> Result<usize, StoreError> {
            let mut statement = transaction.prepare_cached(sql)?;
            let n: i64 = match model {
                Some(model) => statement.query_row([model], |row| row.get(0))?,
                None => statement.query_row([], |row| row.get(0))?,
            };
            Ok(usize::try_from(n).unwrap_or(0))
        };
        let existing = count("SELECT count(*) FROM series", None)?;
        limits.check(&new_by_model, existing, |model| {
            count(
                "SELECT count(*) FROM series WHERE model = ?1",
                Some(model.as_str()),
            )
        })?;
    }
    let mut series = Vec::with_capacity(groups.len());
    let (mut min_ms, mut max_ms, mut count) = (i64::MAX, i64::MIN, 0usize);
    for (key, mut indices) in groups {
        let series_id = match ids.get(&key) {
            Some(id) => *id,
            None => {
                let dataset = samples[indices[0]].dataset.as_ref();
                state.create_series(transaction, key, dataset)?
            }
        };
        // Every point of a series has the series' dataset.
        let dataset = state.dataset_id(transaction, samples[indices[0]].dataset.as_ref())?;
        // Stable sort keeps input order among equal timestamps; the last one wins.
        indices.sort_by_key(|&i| samples[i].timestamp);
        let mut columns = Columns::default();
        for (position, &i) in indices.iter().enumerate() {
            let sample = &samples[i];
            let next_same = indices
                .get(position + 1)
                .is_some_and(|&j| samples[j].timestamp == sample.timestamp);
            if next_same {
                continue;
            }
            columns.push(sample.timestamp.as_millis(), sample.value, dataset);
        }
        min_ms = min_ms.min(columns.timestamps[0]);
        max_ms = max_ms.max(columns.timestamps[columns.len() - 1]);
        count += columns.len();
        series.push((series_id, columns));
    }
    transaction
        .prepare_cached("INSERT INTO head (min_ms, max_ms, count, data) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![min_ms, max_ms, count as i64, head::encode(series)])?;
    Ok(())
}

pub(super) fn insert_chunk(
    transaction: &Transaction<'_>,
    series_id: i64,
    columns: &Columns,
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (columns.timestamps.first(), columns.timestamps.last()) else {
        return Ok(());
    };
    transaction
        .prepare_cached("INSERT INTO chunks (series_id, min_ms, max_ms, count, data) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![series_id, first, last, columns.len() as i64, codec::encode_sealed(columns)])?;
    Ok(())
}

pub fn define_metric(
    transaction: &Transaction<'_>,
    definition: &MetricDefinition,
) -> Result<(), StoreError> {
    let definition = MetricDefinition::custom(
        definition.metric.clone(),
        definition.direction,
        definition.range,
    )
    .map_err(StoreError::Invalid)?;
    transaction
        .prepare_cached(
            "INSERT INTO metric_definitions (metric, direction, min_value, max_value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (metric) DO UPDATE SET direction = excluded.direction,
                 min_value = excluded.min_value, max_value = excluded.max_value",
        )?
        .execute(params![
            definition.metric.as_str(),
            definition.direction.as_str(),
            definition.range.min,
            definition.range.max
        ])?;
    Ok(())
}

/// Moves the head into per-series chunks once it holds enough batches, then compacts up
/// to [`MAX_COMPACTIONS_PER_ROUND`] series with many small chunks, in one transaction.
fn compact_some(connection: &mut Connection, state: &mut WriterState) -> Result<(), StoreError> {
    let (head_rows, head_points): (i64, i64) = connection
        .prepare_cached("SELECT count(*), coalesce(sum(count), 0) FROM head")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if head_rows >= MAX_HEAD_ROWS || head_points >= MAX_HEAD_POINTS {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        compact_head(&transaction, state)?;
        transaction.commit()?;
        state.commit_staged();
    }
    let due: Vec<i64> = state
        .small_chunks
        .iter()
        .filter(|(_, small)| WriterState::needs_compaction(**small))
        .map(|(id, _)| *id)
        .take(MAX_COMPACTIONS_PER_ROUND)
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for series_id in due {
        let small = compact_series(&transaction, series_id)?;
        state.staged.small(series_id, small);
    }
    transaction.commit()?;
    state.commit_staged();
    Ok(())
}

/// Sorts every head row into per-series chunks and empties the head. All head rows go at
/// once, so every chunk stays older than every head row (readers rely on it).
pub(super) fn compact_head(
    transaction: &Transaction<'_>,
    state: &mut WriterState,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = {
        let mut statement = transaction.prepare_cached("SELECT id FROM head ORDER BY id")?;
        let ids = statement.query_map([], |row| row.get(0))?;
        ids.collect::<Result<_, _>>()?
    };
    let mut per_series: HashMap<i64, Columns> = HashMap::new();
    for id in ids {
        let bytes = head::read_all(transaction, id)?;
        for entry in head::entries(&bytes)? {
            head::decode_entry(
                &bytes,
                &entry,
                per_series.entry(entry.series_id).or_default(),
            )?;
        }
    }
    transaction.execute("DELETE FROM head", [])?;
    let mut per_series: Vec<(i64, Columns)> = per_series.into_iter().collect();
    per_series.sort_unstable_by_key(|(id, _)| *id);
    for (series_id, columns) in per_series {
        let columns = sort_keeping_last(columns);
        for piece in pieces(&columns) {
            insert_chunk(transaction, series_id, &piece)?;
            state.note_chunk(series_id, piece.len());
        }
    }
    Ok(())
}

/// Splits time-ordered columns into chunks of at most [`MAX_CHUNK_LEN`] points.
pub(super) fn pieces(columns: &Columns) -> impl Iterator<Item = Columns> + '_ {
    (0..columns.len()).step_by(MAX_CHUNK_LEN).map(|start| {
        let end = (start + MAX_CHUNK_LEN).min(columns.len());
        Columns {
            timestamps: columns.timestamps[start..end].to_vec(),
            values: columns.values[start..end].to_vec(),
            datasets: columns.datasets[start..end].to_vec(),
        }
    })
}

/// Merges a series' mergeable small chunks into as few chunks as possible. They are all
/// younger than every sealed chunk of the series, so the merged chunk taking a new,
/// higher id keeps "the later write wins" true for readers.
fn compact_series(
    transaction: &Transaction<'_>,
    series_id: i64,
) -> Result<SmallChunks, StoreError> {
    let mut rows: Vec<Vec<u8>> = Vec::new();
    {
        let mut statement = transaction.prepare_cached(&format!(
            "SELECT data FROM chunks WHERE {MERGEABLE_CHUNKS} ORDER BY id"
        ))?;
        let mut found = statement.query(params![series_id, SEALED_CHUNK_LEN])?;
        while let Some(row) = found.next()? {
            rows.push(row.get(0)?);
        }
    }
    if rows.len() < 2 {
        return load_small_chunks(transaction, series_id);
    }
    let mut merged = Columns::default();
    for data in &rows {
        codec::decode_into(data, &mut merged)?;
    }
    let merged = sort_keeping_last(merged);
    // The same rows as read above: this writer holds the database's write lock.
    transaction
        .prepare_cached(&format!("DELETE FROM chunks WHERE {MERGEABLE_CHUNKS}"))?
        .execute(params![series_id, SEALED_CHUNK_LEN])?;
    for piece in pieces(&merged) {
        insert_chunk(transaction, series_id, &piece)?;
    }
    load_small_chunks(transaction, series_id)
}
