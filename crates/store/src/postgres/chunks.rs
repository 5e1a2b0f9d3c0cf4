//! Sealed chunks: a series' points compressed by the chunk codec (`crate::codec`, the
//! one SQLite seals with), one `bytea` row of `sample_chunks` per chunk.
//!
//! `samples` is the head: every append lands there (one binary COPY, unique per
//! `(series, ts)`). When a series' head holds [`SEAL_AT`] rows, they are sealed: deleted
//! from the head and merged into the chunks, in one transaction. Invariants:
//! - chunks of a series never overlap in time (so `(series_id, last_ts)` is a key, and
//!   one index range scan finds the chunks a range overlaps);
//! - a head row is newer than a chunk point at its timestamp, so readers merge with the
//!   head winning. (Sealing deletes the rows it seals; a later write of a sealed
//!   timestamp lands in the head again.)
//!
//! Several servers may share the database: whatever rewrites a series' chunks (sealing,
//! pruning, bulk chunk writes) holds that series' transaction-scoped advisory lock, and
//! readers take head and chunks in one statement, so from one snapshot. Sealing is
//! idempotent and crash-safe: it is one transaction that moves rows, so a crash leaves
//! them in the head, and a second sealer finds nothing left to seal.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_postgres::Transaction;

use super::pg_error;
use crate::codec::{self, Columns};
use crate::StoreError;

/// Head rows of one series at which they are sealed into chunks. (Tiny under test, so
/// the conformance suite reads chunks, head and their overlaps.)
pub(super) const SEAL_AT: usize = if cfg!(test) { 3 } else { 1_024 };
/// Most points in one chunk: pco codes a few thousand points near their entropy, and a
/// read decodes at most one chunk more than it needs.
pub(super) const MAX_CHUNK_POINTS: usize = if cfg!(test) { 5 } else { 4_096 };
/// First key of the per-series advisory locks ("mwck" in ASCII); the second is the
/// series id.
pub(super) const SERIES_LOCK: i32 = 0x6D77_636B;

/// Rows this process wrote to each series' head since it last sealed it: when a series
/// reaches [`SEAL_AT`], its head is counted for real and sealed. (Other servers' writes
/// are not seen here; the count is a trigger, [`seal_head`] decides.)
#[derive(Debug, Default)]
pub(crate) struct HeadGrowth(Mutex<HashMap<i32, usize>>);

impl HeadGrowth {
    /// Adds written rows, one series id per row; returns the series now due for sealing
    /// (and starts their count again).
    pub(super) fn grew(&self, series_ids: impl IntoIterator<Item = i32>) -> Vec<i32> {
        let Ok(mut growth) = self.0.lock() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        for id in series_ids {
            let rows = growth.entry(id).or_default();
            *rows += 1;
            if *rows == SEAL_AT {
                due.push(id);
            }
        }
        for id in &due {
            growth.remove(id);
        }
        due
    }
}

/// One stored point: time, value and data set id (`None` for the default data set).
pub(super) type StoredPoint = (i64, f64, Option<i32>);

/// Holds the series' chunk lock until the transaction ends.
pub(super) async fn lock_series(
    transaction: &Transaction<'_>,
    series_id: i32,
) -> Result<(), StoreError> {
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&SERIES_LOCK, &series_id],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

fn columns_of(points: &[StoredPoint]) -> Columns {
    let mut columns = Columns::default();
    for &(ts, value, dataset) in points {
        // Data set ids are positive (an identity column); 0 is the codec's "none".
        let dataset = dataset.and_then(|id| u32::try_from(id).ok()).unwrap_or(0);
        columns.push(ts, value, dataset);
    }
    columns
}

/// Decodes a chunk, appending its points to `into`.
pub(super) fn decode_into(bytes: &[u8], into: &mut Vec<StoredPoint>) -> Result<(), StoreError> {
    codec::for_each_point(bytes, |ts, value, dataset| {
        let dataset = match dataset {
            0 => None,
            id => Some(
                i32::try_from(id).map_err(|_| StoreError::Corrupt("chunk data set id".into()))?,
            ),
        };
        into.push((ts, value, dataset));
        Ok(())
    })
}

/// Sorts by time (a stable sort: of equal times, the later keeps its place after).
fn sort_by_time(points: &mut [StoredPoint]) {
    if !points.windows(2).all(|w| w[0].0 <= w[1].0) {
        points.sort_by_key(|p| p.0);
    }
}

/// Points of `older` and `newer`, each sorted by time with unique times, merged in time
/// order; at a time both hold, `newer`'s point.
pub(super) fn merge_newer_wins(
    older: Vec<StoredPoint>,
    newer: Vec<StoredPoint>,
) -> Vec<StoredPoint> {
    if older.is_empty() {
        return newer;
    }
    if newer.is_empty() {
        return older;
    }
    let mut merged = Vec::with_capacity(older.len() + newer.len());
    let mut older = older.into_iter().peekable();
    let mut newer = newer.into_iter().peekable();
    loop {
        match (older.peek(), newer.peek()) {
            (Some(o), Some(n)) => {
                if o.0 < n.0 {
                    merged.extend(older.next());
                } else {
                    if o.0 == n.0 {
                        older.next();
                    }
                    merged.extend(newer.next());
                }
            }
            (Some(_), None) => merged.extend(older.by_ref()),
            (None, Some(_)) => merged.extend(newer.by_ref()),
            (None, None) => break,
        }
    }
    merged
}

/// Head rows and chunks as read in one statement: the points of `range` (`[start, end)`
/// in milliseconds), sorted, with the head winning at equal times.
pub(super) fn merge_read(
    mut head: Vec<StoredPoint>,
    chunks: &[&[u8]],
    start: i64,
    end: i64,
) -> Result<Vec<StoredPoint>, StoreError> {
    sort_by_time(&mut head);
    if chunks.is_empty() {
        return Ok(head);
    }
    let mut sealed = Vec::new();
    for chunk in chunks {
        decode_into(chunk, &mut sealed)?;
    }
    sealed.retain(|p| p.0 >= start && p.0 < end);
    sort_by_time(&mut sealed);
    Ok(merge_newer_wins(sealed, head))
}

/// Chunks to insert, as the columns of one `INSERT … SELECT FROM unnest(…)`.
#[derive(Debug, Default)]
pub(super) struct NewChunks {
    series: Vec<i32>,
    firsts: Vec<i64>,
    lasts: Vec<i64>,
    counts: Vec<i32>,
    data: Vec<Vec<u8>>,
}

impl NewChunks {
    /// Adds sorted points with unique times as chunks of at most [`MAX_CHUNK_POINTS`],
    /// split evenly.
    pub(super) fn add(&mut self, series_id: i32, points: &[StoredPoint]) {
        if points.is_empty() {
            return;
        }
        let pieces = points.len().div_ceil(MAX_CHUNK_POINTS);
        for piece in points.chunks(points.len().div_ceil(pieces)) {
            let (Some(first), Some(last)) = (piece.first(), piece.last()) else {
                continue;
            };
            self.series.push(series_id);
            self.firsts.push(first.0);
            self.lasts.push(last.0);
            self.counts
                .push(i32::try_from(piece.len()).unwrap_or(i32::MAX));
            self.data.push(codec::encode_sealed(&columns_of(piece)));
        }
    }

    /// Writes them. The caller holds each series' lock and has made room for them (no
    /// chunk of a series overlaps their span).
    pub(super) async fn insert(self, transaction: &Transaction<'_>) -> Result<(), StoreError> {
        if self.series.is_empty() {
            return Ok(());
        }
        transaction
            .execute(
                "INSERT INTO sample_chunks (series_id, first_ts, last_ts, count, data)
                 SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bigint[],
                                      $4::integer[], $5::bytea[])",
                &[
                    &self.series,
                    &self.firsts,
                    &self.lasts,
                    &self.counts,
                    &self.data,
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}

/// Writes sorted points with unique times of one series as chunks (see [`NewChunks`]).
pub(super) async fn insert_chunks(
    transaction: &Transaction<'_>,
    series_id: i32,
    points: &[StoredPoint],
) -> Result<(), StoreError> {
    let mut chunks = NewChunks::default();
    chunks.add(series_id, points);
    chunks.insert(transaction).await
}

/// Merges sorted points with unique times into the series' chunks, the points winning
/// at equal times: the chunks overlapping their span are decoded, merged with them and
/// written again. The caller holds the series' lock.
pub(super) async fn merge_into_chunks(
    transaction: &Transaction<'_>,
    series_id: i32,
    points: Vec<StoredPoint>,
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(());
    };
    let overlapped = transaction
        .query(
            "DELETE FROM sample_chunks WHERE series_id = $1 AND last_ts >= $2 AND first_ts <= $3
             RETURNING data",
            &[&series_id, &first.0, &last.0],
        )
        .await
        .map_err(pg_error)?;
    let mut sealed = Vec::new();
    for row in &overlapped {
        decode_into(row.try_get(0).map_err(pg_error)?, &mut sealed)?;
    }
    sort_by_time(&mut sealed);
    let merged = merge_newer_wins(sealed, points);
    insert_chunks(transaction, series_id, &merged).await
}

/// Takes the series' head rows before `end` out of the head: locks them in time order
/// (the order every writer locks rows in, so that an overwrite of one of them cannot
/// deadlock with this), then deletes exactly those. A concurrent overwrite waits for this
/// transaction, then finds its row gone and inserts it into the head again.
pub(super) async fn take_head_rows(
    transaction: &Transaction<'_>,
    series_id: i32,
    end: i64,
) -> Result<Vec<StoredPoint>, StoreError> {
    let rows = transaction
        .query(
            "SELECT ts, value, dataset_id FROM samples WHERE series_id = $1 AND ts < $2
             ORDER BY ts FOR UPDATE",
            &[&series_id, &end],
        )
        .await
        .map_err(pg_error)?;
    let points = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(pg_error)?,
                row.try_get(1).map_err(pg_error)?,
                row.try_get(2).map_err(pg_error)?,
            ))
        })
        .collect::<Result<Vec<StoredPoint>, StoreError>>()?;
    if points.is_empty() {
        return Ok(points);
    }
    let times: Vec<i64> = points.iter().map(|p| p.0).collect();
    transaction
        .execute(
            "DELETE FROM samples WHERE series_id = $1 AND ts = ANY($2)",
            &[&series_id, &times],
        )
        .await
        .map_err(pg_error)?;
    Ok(points)
}

/// Seals the series' head into chunks when it holds at least [`SEAL_AT`] rows (another
/// server may have sealed it since this one counted its writes).
pub(super) async fn seal_head(
    client: &mut deadpool_postgres::Object,
    series_id: i32,
) -> Result<(), StoreError> {
    let transaction = client.transaction().await.map_err(pg_error)?;
    lock_series(&transaction, series_id).await?;
    let held: i64 = transaction
        .query_one(
            "SELECT count(*) FROM samples WHERE series_id = $1",
            &[&series_id],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    if usize::try_from(held).unwrap_or(0) < SEAL_AT {
        return transaction.commit().await.map_err(pg_error);
    }
    let points = take_head_rows(&transaction, series_id, i64::MAX).await?;
    merge_into_chunks(&transaction, series_id, points).await?;
    transaction.commit().await.map_err(pg_error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_series_is_due_once_per_seal_at_rows() {
        let growth = HeadGrowth::default();
        assert!(growth.grew(std::iter::repeat_n(7, SEAL_AT - 1)).is_empty());
        assert_eq!(growth.grew([8, 7, 8]), vec![7]);
        assert!(growth.grew(std::iter::repeat_n(7, SEAL_AT - 1)).is_empty());
    }

    #[test]
    fn merging_keeps_time_order_and_the_newer_point_at_equal_times() {
        let older = vec![(1, 1.0, None), (3, 3.0, None), (5, 5.0, Some(2))];
        let newer = vec![(0, 0.5, None), (3, 30.0, None), (6, 6.0, None)];
        assert_eq!(
            merge_newer_wins(older, newer),
            vec![
                (0, 0.5, None),
                (1, 1.0, None),
                (3, 30.0, None),
                (5, 5.0, Some(2)),
                (6, 6.0, None)
            ]
        );
    }

    #[test]
    fn a_read_keeps_chunk_points_of_the_range_only_and_prefers_the_head() {
        let chunk = codec::encode_sealed(&columns_of(&[
            (1, 1.0, None),
            (2, 2.0, Some(7)),
            (3, 3.0, None),
            (4, 4.0, None),
        ]));
        let head = vec![(3, 33.0, None), (2, 22.0, Some(7))];
        let read = merge_read(head, &[&chunk], 2, 4).unwrap();
        assert_eq!(read, vec![(2, 22.0, Some(7)), (3, 33.0, None)]);
    }

    /// Rows of the head and chunks of every series, as stored.
    async fn stored_counts(url: &str) -> (i64, i64) {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM samples), (SELECT count(*) FROM sample_chunks)",
                &[],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        (row.get(0), row.get(1))
    }

    /// Servers sharing a database write the same series at once, some points twice with
    /// other values, in batches that seal heads and write chunks straight: each timestamp
    /// reads back once, with a value one of its writers wrote, and the same from both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn servers_on_one_database_seal_and_read_consistently() {
        use crate::conformance::{at, sample};
        use crate::MetricStore;
        use modelwatch_core::{SeriesKey, TimeRange};

        let database = crate::postgres::testing::TestDatabase::create("chunks_servers").await;
        let one = std::sync::Arc::new(crate::PostgresStore::open(database.url()).await.unwrap());
        let two = std::sync::Arc::new(crate::PostgresStore::open(database.url()).await.unwrap());
        let mut writers = Vec::new();
        for (n, store) in [one.clone(), two.clone(), one.clone(), two.clone()]
            .into_iter()
            .enumerate()
        {
            writers.push(tokio::spawn(async move {
                for batch in 0..20i64 {
                    // Long runs (chunks straight), short ones (head), overlapping writers.
                    let len = if batch % 3 == 0 { 12 } else { 2 };
                    let start = (batch * 7 + n as i64 * 3) % 100;
                    let samples = (start..start + len)
                        .map(|t| sample("fraud", "v1", "latency", (n * 1000) as f64 + t as f64, t))
                        .collect();
                    store.append(samples).await.unwrap();
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let key = SeriesKey::parse("fraud", "v1", "latency").unwrap();
        let everything = TimeRange::new(at(0), at(1_000));
        let from_one = one.range(&key, everything).await.unwrap();
        let from_two = two.range(&key, everything).await.unwrap();
        assert_eq!(from_one, from_two);
        assert!(from_one.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        for point in &from_one {
            let t = point.timestamp.as_millis();
            assert_eq!(point.value as i64 % 1000, t, "{point:?}");
        }
        assert_eq!(
            one.count(&key, everything).await.unwrap(),
            from_one.len() as u64
        );
        let (_, chunks) = stored_counts(database.url()).await;
        assert!(chunks > 0, "nothing was sealed");
        // Pruning from both at once removes each point once.
        let cutoff = at(50);
        let before = one
            .count(&key, TimeRange::new(at(0), cutoff))
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            one.delete_samples_before(cutoff),
            two.delete_samples_before(cutoff)
        );
        assert_eq!(a.unwrap() + b.unwrap(), before);
        let left = two.range(&key, everything).await.unwrap();
        assert_eq!(left, from_one[from_one.len() - left.len()..].to_vec());
        assert!(left.iter().all(|p| p.timestamp >= cutoff));
    }

    /// A database written before chunks existed (schema 12: every sample a row) reads
    /// the same after the migration, and its series are sealed as they are written to.
    #[tokio::test]
    async fn samples_of_a_schema_12_database_are_read_then_sealed() {
        use crate::conformance::{at, sample};
        use crate::MetricStore;
        use modelwatch_core::{SeriesKey, TimeRange};

        let database = crate::postgres::testing::TestDatabase::create("chunks_v13").await;
        let (mut client, connection) =
            tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
        let driver = tokio::spawn(connection);
        let location = super::super::Location::new(database.url());
        super::super::schema::migrate_to(&mut client, &location, 12)
            .await
            .unwrap();
        client
            .batch_execute(
                "INSERT INTO series (model, version, metric) VALUES ('fraud', 'v1', 'latency');
                 INSERT INTO samples (series_id, ts, value)
                     SELECT 1, t, t * 0.5 FROM generate_series(1, 10) AS t;",
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        let store = crate::PostgresStore::open(database.url()).await.unwrap();
        let key = SeriesKey::parse("fraud", "v1", "latency").unwrap();
        let everything = TimeRange::new(at(0), at(1_000));
        let want: Vec<(i64, f64)> = (1..=10).map(|t| (t, t as f64 * 0.5)).collect();
        let read = |points: Vec<modelwatch_core::Point>| -> Vec<(i64, f64)> {
            points
                .iter()
                .map(|p| (p.timestamp.as_millis(), p.value))
                .collect()
        };
        assert_eq!(read(store.range(&key, everything).await.unwrap()), want);
        // Overwrite two old points, one at a time: the head is sealed, merging them in.
        for t in [3, 11, 12] {
            store
                .append(vec![sample("fraud", "v1", "latency", 100.0, t)])
                .await
                .unwrap();
        }
        let (head, chunks) = stored_counts(database.url()).await;
        assert_eq!(head, 0);
        assert!(chunks > 0);
        let mut want = want;
        want[2].1 = 100.0;
        want.extend([(11, 100.0), (12, 100.0)]);
        assert_eq!(read(store.range(&key, everything).await.unwrap()), want);
        let latest = store.latest(&key).await.unwrap().unwrap();
        assert_eq!((latest.timestamp, latest.value), (at(12), 100.0));
    }
}
