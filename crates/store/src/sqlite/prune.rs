//! Retention: deleting the samples before a cutoff, in bounded write jobs.
//!
//! Samples live in per-series chunks and in the head (`head.rs`). The head is compacted
//! first when it holds samples before the cutoff, so only chunks need pruning. Then,
//! series by series, chunks entirely before the cutoff are deleted, and a chunk
//! straddling it is rewritten in place with the points at or after the cutoff.
//!
//! Why rewrite rather than hide: a read-side "nothing before T" mark would also hide
//! samples written before T *after* the prune (a backfill), and would have to be applied
//! by every query. Rewriting keeps the stored data the only truth. The rewrite keeps the
//! chunk's id, because readers resolve equal timestamps by chunk id (write order): a new
//! id would make the trimmed points win over later writes. A sealed chunk trimmed below
//! [`SEALED_CHUNK_LEN`](super::SEALED_CHUNK_LEN) is not merged by compaction while a
//! younger sealed chunk exists (see `writer.rs`), for the same reason.
//!
//! Every step is one ordinary write job through the writer thread, so pruning shares the
//! one-writer invariant and holds the write lock only for a bounded amount of work.

use modelwatch_core::Timestamp;
use rusqlite::{params, Transaction};

use super::writer::{self, WriterState};
use super::SqliteStore;
use crate::codec::{self, Columns};
use crate::StoreError;

/// At most about this many chunks are deleted or rewritten per write job (a series is
/// always pruned in one job, so that its count is exact: a timestamp written twice sits
/// in two chunks and is counted once). Tiny under test, so the conformance suite crosses
/// job boundaries.
const CHUNKS_PER_JOB: usize = if cfg!(test) { 2 } else { 2_048 };

/// What one job did, and the series to continue after.
struct Step {
    removed: u64,
    continue_after: Option<i64>,
}

pub(super) async fn delete_samples_before(
    store: &SqliteStore,
    cutoff: Timestamp,
) -> Result<u64, StoreError> {
    let cutoff = cutoff.as_millis();
    store
        .write(move |state, transaction| compact_head_holding_before(state, transaction, cutoff))
        .await?;
    let mut removed = 0u64;
    let mut after_series = i64::MIN;
    loop {
        let step = store
            .write(move |state, transaction| prune_some(state, transaction, cutoff, after_series))
            .await?;
        removed += step.removed;
        match step.continue_after {
            Some(series_id) => after_series = series_id,
            None => return Ok(removed),
        }
    }
}

/// Compacting moves *all* head rows (the head must stay younger than every chunk), so it
/// runs only when some head row holds a sample before the cutoff.
fn compact_head_holding_before(
    state: &mut WriterState,
    transaction: &Transaction<'_>,
    cutoff: i64,
) -> Result<(), StoreError> {
    let holds_old: bool = transaction
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM head WHERE min_ms < ?1)")?
        .query_row([cutoff], |row| row.get(0))?;
    if holds_old {
        writer::compact_head(transaction, state)?;
    }
    Ok(())
}

fn prune_some(
    state: &mut WriterState,
    transaction: &Transaction<'_>,
    cutoff: i64,
    mut after_series: i64,
) -> Result<Step, StoreError> {
    let mut removed = 0u64;
    let mut chunks = 0usize;
    let mut next_series = transaction.prepare_cached(
        "SELECT series_id FROM chunks WHERE series_id > ?1 AND min_ms < ?2
         ORDER BY series_id LIMIT 1",
    )?;
    while chunks < CHUNKS_PER_JOB {
        let found: Option<i64> = next_series
            .query_map(params![after_series, cutoff], |row| row.get(0))?
            .next()
            .transpose()?;
        let Some(series_id) = found else {
            return Ok(Step {
                removed,
                continue_after: None,
            });
        };
        let pruned = prune_series(transaction, series_id, cutoff)?;
        state.reload_small_chunks(transaction, series_id)?;
        removed += pruned.samples;
        chunks += pruned.chunks;
        after_series = series_id;
    }
    Ok(Step {
        removed,
        continue_after: Some(after_series),
    })
}

struct Pruned {
    /// Distinct timestamps removed.
    samples: u64,
    /// Chunks deleted or rewritten.
    chunks: usize,
}

fn prune_series(
    transaction: &Transaction<'_>,
    series_id: i64,
    cutoff: i64,
) -> Result<Pruned, StoreError> {
    let mut old_chunks: Vec<(i64, Vec<u8>)> = Vec::new();
    {
        let mut statement = transaction.prepare_cached(
            "SELECT id, data FROM chunks WHERE series_id = ?1 AND min_ms < ?2 ORDER BY id",
        )?;
        let mut rows = statement.query(params![series_id, cutoff])?;
        while let Some(row) = rows.next()? {
            old_chunks.push((row.get(0)?, row.get(1)?));
        }
    }
    // Every chunk holding a timestamp before the cutoff starts before it, so all copies of
    // such a timestamp are among these chunks and deduplicating them gives an exact count.
    let mut removed_timestamps: Vec<i64> = Vec::new();
    for (chunk_id, data) in &old_chunks {
        let mut columns = Columns::default();
        codec::decode_into(data, &mut columns)?;
        let kept = points_from(&columns, cutoff);
        removed_timestamps.extend(columns.timestamps.iter().filter(|&&t| t < cutoff));
        match kept.timestamps.first() {
            None => {
                transaction
                    .prepare_cached("DELETE FROM chunks WHERE id = ?1")?
                    .execute([chunk_id])?;
            }
            // The chunk's max_ms is its last point, which is kept: only min_ms changes.
            Some(first) => {
                transaction
                    .prepare_cached(
                        "UPDATE chunks SET min_ms = ?2, count = ?3, data = ?4 WHERE id = ?1",
                    )?
                    .execute(params![
                        chunk_id,
                        first,
                        kept.len() as i64,
                        codec::encode_sealed(&kept)
                    ])?;
            }
        }
    }
    removed_timestamps.sort_unstable();
    removed_timestamps.dedup();
    Ok(Pruned {
        samples: removed_timestamps.len() as u64,
        chunks: old_chunks.len(),
    })
}

/// The points of time-ordered columns at or after `cutoff`.
fn points_from(columns: &Columns, cutoff: i64) -> Columns {
    let start = columns.timestamps.partition_point(|&t| t < cutoff);
    Columns {
        timestamps: columns.timestamps[start..].to_vec(),
        values: columns.values[start..].to_vec(),
        datasets: columns.datasets[start..].to_vec(),
    }
}
