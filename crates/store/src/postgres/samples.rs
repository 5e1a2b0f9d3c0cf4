//! Samples in PostgreSQL: batched appends and index range reads of the head (`samples`)
//! and the sealed chunks (`sample_chunks`; see `chunks.rs`).
//!
//! An append is one transaction: resolve (creating when new) the batch's series and
//! data set ids; write a series' long run of points that overlaps nothing stored (a bulk
//! import) straight as chunks, and the other rows with one binary COPY into the head,
//! `samples`; once committed, seal the heads that have grown enough. When
//! the COPY hits an existing `(series, ts)` — a re-import, a late correction — the
//! transaction is rolled back and the batch written again, in a new one, as one
//! multi-row `INSERT … ON CONFLICT DO UPDATE` from arrays, which gives "later write
//! wins". New data, the common case, thus costs BEGIN, one COPY and COMMIT; overwrites
//! pay for a second transaction. (A savepoint around the COPY would spare that, at two
//! more round trips on every append.)
//!
//! Where ingestion time goes (1,000 series, 10,000-sample batches): the server's side
//! of the COPY dominates, and of that the primary-key index most — COPYing the same
//! rows into the table without its index takes a quarter of the time. The client's
//! side is kept small: series ids are looked up once per distinct series of a batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::pin;

use futures_util::StreamExt;

use deadpool_postgres::ClientWrapper;
use modelwatch_core::stats::downsample;
use modelwatch_core::{
    Bucket, Dataset, DatasetScope, Direction, Metric, MetricDefinition, ModelName, Point, Sample,
    SeriesKey, TimeRange, Timestamp, ValueRange, Version, WindowStats,
};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};

use super::chunks::{self, StoredPoint};
use super::{copy, pg_error, Catalogue, PostgresStore};
use crate::{validate_batch, SeriesFilter, SeriesInfo, SeriesLimits, SeriesWindow, StoreError};

/// One row of `samples`.
#[derive(Debug, Clone, Copy)]
struct Row {
    series_id: i32,
    ts: i64,
    value: f64,
    dataset_id: Option<i32>,
}

pub(super) async fn append(store: &PostgresStore, samples: Vec<Sample>) -> Result<(), StoreError> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut client = store.client().await?;
    // Built-in metrics cannot be redefined, so the definitions matter only for custom ones.
    let custom = if samples.iter().any(|s| s.metric.is_custom()) {
        custom_metrics(&client).await?
    } else {
        Vec::new()
    };
    validate_batch(&samples, &custom)?;
    // New timestamps, the common case, take one COPY. A batch that hits a stored one is
    // rolled back whole and written again with an upsert: dearer for that batch, but
    // cheaper overall than guarding every COPY with a savepoint (two more round trips).
    let due = match write_batch(store, &mut client, &samples, Write::Copy).await? {
        Some(due) => due,
        None => write_batch(store, &mut client, &samples, Write::Upsert)
            .await?
            .ok_or_else(|| {
                StoreError::Database("the upsert of a batch reported a conflict".into())
            })?,
    };
    // The batch is committed; sealing is a separate transaction per series, so a failure
    // here leaves the rows in the head, where they are read as well.
    for series_id in due {
        chunks::seal_head(&mut client, series_id).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Binary COPY: fails on a `(series, ts)` already stored.
    Copy,
    /// `INSERT … ON CONFLICT DO UPDATE`: later write wins.
    Upsert,
}

/// One transaction writing the batch; `Ok(None)` when a COPY met a stored timestamp
/// (nothing written), else the series whose head is due for sealing.
async fn write_batch(
    store: &PostgresStore,
    client: &mut deadpool_postgres::Object,
    samples: &[Sample],
    write: Write,
) -> Result<Option<Vec<i32>>, StoreError> {
    let transaction = client.transaction().await.map_err(pg_error)?;
    let (dataset_ids, new_datasets) =
        resolve_datasets(&transaction, &store.catalogue, samples).await?;
    let (series_ids, new_series) = resolve_series(
        &transaction,
        &store.catalogue,
        samples,
        &dataset_ids,
        &store.series_limits,
    )
    .await?;
    let mut rows: Vec<Row> = Vec::with_capacity(samples.len());
    for (sample, series_id) in samples.iter().zip(series_ids) {
        let dataset_id =
            match &sample.dataset {
                Some(dataset) => Some(*dataset_ids.get(dataset).ok_or_else(|| {
                    StoreError::Database("a data set id was not assigned".into())
                })?),
                None => None,
            };
        rows.push(Row {
            series_id,
            ts: sample.timestamp.as_millis(),
            value: sample.value,
            dataset_id,
        });
    }
    let rows = keep_last_per_key(rows);
    let rows = match write {
        Write::Copy => {
            let (head, runs) = claim_chunk_runs(&transaction, rows).await?;
            let mut new_chunks = chunks::NewChunks::default();
            for run in &runs {
                let points: Vec<StoredPoint> =
                    run.iter().map(|r| (r.ts, r.value, r.dataset_id)).collect();
                new_chunks.add(run[0].series_id, &points);
            }
            new_chunks.insert(&transaction).await?;
            let copied = if head.is_empty() {
                Ok(())
            } else if store.copy_in {
                copy_rows(&transaction, &head).await
            } else {
                insert_rows(&transaction, &head).await
            };
            match copied {
                Ok(()) => {}
                Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    transaction.rollback().await.map_err(pg_error)?;
                    return Ok(None);
                }
                Err(error) => return Err(pg_error(error)),
            }
            head
        }
        Write::Upsert => {
            upsert_rows(&transaction, &rows).await?;
            rows
        }
    };
    transaction.commit().await.map_err(pg_error)?;
    store.catalogue.learn_series(new_series);
    store.catalogue.learn_datasets(new_datasets);
    Ok(Some(
        store.head_growth.grew(rows.iter().map(|r| r.series_id)),
    ))
}

/// A batch's run of one series at least this long is written straight as chunks when it
/// overlaps nothing stored (a bulk import, a backfill): the head would seal it at once.
const CHUNK_RUN_POINTS: usize = chunks::SEAL_AT;

/// Splits sorted, deduplicated rows into the head's and the runs to write as chunks: runs
/// of [`CHUNK_RUN_POINTS`] or more whose series' lock this transaction gets without
/// waiting (a writer never waits here, so it cannot deadlock with one waiting on rows it
/// wrote) and whose span overlaps no stored point (checked after the lock is held, by a
/// later statement: its snapshot sees what the lock's last holder committed).
async fn claim_chunk_runs(
    transaction: &Transaction<'_>,
    rows: Vec<Row>,
) -> Result<(Vec<Row>, Vec<Vec<Row>>), StoreError> {
    let long_runs: Vec<&[Row]> = rows
        .chunk_by(|a, b| a.series_id == b.series_id)
        .filter(|run| run.len() >= CHUNK_RUN_POINTS)
        .collect();
    if long_runs.is_empty() {
        return Ok((rows, Vec::new()));
    }
    let ids: Vec<i32> = long_runs.iter().map(|run| run[0].series_id).collect();
    let locked: Vec<i32> = transaction
        .query(
            "SELECT id FROM unnest($1::integer[]) AS k (id)
             WHERE pg_try_advisory_xact_lock($2, k.id)",
            &[&ids, &chunks::SERIES_LOCK],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg_error)?;
    let candidates: Vec<&[Row]> = long_runs
        .into_iter()
        .filter(|run| locked.contains(&run[0].series_id))
        .collect();
    let ids: Vec<i32> = candidates.iter().map(|run| run[0].series_id).collect();
    let firsts: Vec<i64> = candidates.iter().map(|run| run[0].ts).collect();
    let lasts: Vec<i64> = candidates.iter().map(|run| run[run.len() - 1].ts).collect();
    let overlapping: Vec<i32> = transaction
        .query(
            "SELECT k.id FROM unnest($1::integer[], $2::bigint[], $3::bigint[]) AS k (id, lo, hi)
             WHERE EXISTS (SELECT 1 FROM samples
                           WHERE series_id = k.id AND ts >= k.lo AND ts <= k.hi)
                OR EXISTS (SELECT 1 FROM sample_chunks
                           WHERE series_id = k.id AND last_ts >= k.lo AND first_ts <= k.hi)",
            &[&ids, &firsts, &lasts],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg_error)?;
    let as_chunks: Vec<i32> = ids
        .into_iter()
        .filter(|id| !overlapping.contains(id))
        .collect();
    if as_chunks.is_empty() {
        return Ok((rows, Vec::new()));
    }
    let mut head = Vec::with_capacity(rows.len());
    let mut runs = Vec::with_capacity(as_chunks.len());
    for run in rows.chunk_by(|a, b| a.series_id == b.series_id) {
        if as_chunks.contains(&run[0].series_id) {
            runs.push(run.to_vec());
        } else {
            head.extend_from_slice(run);
        }
    }
    Ok((head, runs))
}

/// Sorts rows by (series, time) and keeps, of rows with the same key, the one that came
/// last in the batch: a batch may repeat a timestamp, and the later sample wins. Sorted
/// rows also reach the primary-key index in order.
fn keep_last_per_key(mut rows: Vec<Row>) -> Vec<Row> {
    // `sort_by_key` is stable: equal keys keep their batch order.
    rows.sort_by_key(|r| (r.series_id, r.ts));
    rows.dedup_by(|later, kept| {
        let same = (later.series_id, later.ts) == (kept.series_id, kept.ts);
        if same {
            *kept = *later;
        }
        same
    });
    rows
}

async fn copy_rows(
    transaction: &Transaction<'_>,
    rows: &[Row],
) -> Result<(), tokio_postgres::Error> {
    let sink = transaction
        .copy_in("COPY samples (series_id, ts, value, dataset_id) FROM STDIN (FORMAT binary)")
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::INT4, Type::INT8, Type::FLOAT8, Type::INT4],
    ));
    for row in rows {
        writer
            .as_mut()
            .write(&[&row.series_id, &row.ts, &row.value, &row.dataset_id])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// What [`copy_rows`] does, for a server without `COPY … FROM STDIN`: fails the same way
/// on a stored `(series, ts)`.
async fn insert_rows(
    transaction: &Transaction<'_>,
    rows: &[Row],
) -> Result<(), tokio_postgres::Error> {
    let (series, times, values, datasets) = columns(rows);
    transaction
        .execute(
            "INSERT INTO samples (series_id, ts, value, dataset_id)
             SELECT * FROM unnest($1::integer[], $2::bigint[], $3::double precision[], $4::integer[])",
            &[&series, &times, &values, &datasets],
        )
        .await?;
    Ok(())
}

type Columns = (Vec<i32>, Vec<i64>, Vec<f64>, Vec<Option<i32>>);

fn columns(rows: &[Row]) -> Columns {
    (
        rows.iter().map(|r| r.series_id).collect(),
        rows.iter().map(|r| r.ts).collect(),
        rows.iter().map(|r| r.value).collect(),
        rows.iter().map(|r| r.dataset_id).collect(),
    )
}

async fn upsert_rows(transaction: &Transaction<'_>, rows: &[Row]) -> Result<(), StoreError> {
    let (series, times, values, datasets) = columns(rows);
    transaction
        .execute(
            "INSERT INTO samples (series_id, ts, value, dataset_id)
             SELECT * FROM unnest($1::integer[], $2::bigint[], $3::double precision[], $4::integer[])
             ON CONFLICT (series_id, ts) DO UPDATE
                 SET value = excluded.value, dataset_id = excluded.dataset_id",
            &[&series, &times, &values, &datasets],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// The series id of each sample, in order, creating the missing series; also returns
/// the ids not cached yet, to cache once the transaction commits. Series are looked up
/// once per distinct series, by reference: a batch names few series many times, and a
/// key built per sample cost more than the COPY's client side.
async fn resolve_series(
    transaction: &Transaction<'_>,
    catalogue: &Catalogue,
    samples: &[Sample],
    dataset_ids: &HashMap<Dataset, i32>,
    limits: &SeriesLimits,
) -> Result<(Vec<i32>, Vec<(SeriesKey, i32)>), StoreError> {
    type Names<'a> = (&'a ModelName, &'a Version, &'a Metric, Option<&'a Dataset>);
    fn names(s: &Sample) -> Names<'_> {
        (&s.model, &s.version, &s.metric, s.dataset.as_ref())
    }
    let mut distinct: HashMap<Names<'_>, Option<i32>> = HashMap::new();
    for sample in samples {
        distinct.entry(names(sample)).or_insert(None);
    }
    // Sorted, so concurrent writers creating overlapping series lock them in one order.
    let mut missing = BTreeSet::new();
    for ((model, version, metric, dataset), id) in distinct.iter_mut() {
        let key = SeriesKey::new((*model).clone(), (*version).clone(), (*metric).clone())
            .with_dataset(dataset.cloned());
        match catalogue.series_id(&key) {
            Some(found) => *id = Some(found),
            None => {
                missing.insert(key);
            }
        }
    }
    let mut learnt = Vec::new();
    if !missing.is_empty() {
        let models: Vec<&str> = missing.iter().map(|k| k.model.as_str()).collect();
        let versions: Vec<&str> = missing.iter().map(|k| k.version.as_str()).collect();
        let metrics: Vec<&str> = missing.iter().map(|k| k.metric.as_str()).collect();
        // 0 is the default dataset (see the schema).
        let datasets = missing
            .iter()
            .map(|k| match &k.dataset {
                None => Ok(0),
                Some(dataset) => dataset_ids
                    .get(dataset)
                    .copied()
                    .ok_or_else(|| StoreError::Database("a data set id was not assigned".into())),
            })
            .collect::<Result<Vec<i32>, StoreError>>()?;
        // The series this batch creates, checked against the limits in its transaction:
        // a refusal rolls them back with the rest.
        let created = transaction
            .query(
                "INSERT INTO series (model, version, metric, dataset_id)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[])
                 ON CONFLICT DO NOTHING RETURNING model",
                &[&models, &versions, &metrics, &datasets],
            )
            .await
            .map_err(pg_error)?;
        if !created.is_empty() {
            let mut new_by_model: BTreeMap<ModelName, usize> = BTreeMap::new();
            for row in &created {
                let model: String = row.try_get(0).map_err(pg_error)?;
                let model = ModelName::parse(&model)
                    .map_err(|e| StoreError::Corrupt(format!("series model: {e}")))?;
                *new_by_model.entry(model).or_default() += 1;
            }
            let new: usize = new_by_model.values().sum();
            let count = |row: tokio_postgres::Row| -> Result<usize, StoreError> {
                let n: i64 = row.try_get(0).map_err(pg_error)?;
                Ok(usize::try_from(n).unwrap_or(0))
            };
            let total = count(
                transaction
                    .query_one("SELECT count(*) FROM series", &[])
                    .await
                    .map_err(pg_error)?,
            )?;
            let names: Vec<&str> = new_by_model.keys().map(ModelName::as_str).collect();
            let mut per_model: HashMap<String, usize> = HashMap::new();
            for row in transaction
                .query(
                    "SELECT model, count(*) FROM series WHERE model = ANY($1) GROUP BY model",
                    &[&names],
                )
                .await
                .map_err(pg_error)?
            {
                let model: String = row.try_get(0).map_err(pg_error)?;
                let n: i64 = row.try_get(1).map_err(pg_error)?;
                per_model.insert(model, usize::try_from(n).unwrap_or(0));
            }
            // The counts include what this batch just created.
            limits.check(&new_by_model, total - new, |model| {
                let with_new = per_model.get(model.as_str()).copied().unwrap_or(0);
                Ok(with_new - new_by_model.get(model).copied().unwrap_or(0))
            })?;
        }
        let found = transaction
            .query(
                "SELECT s.id, k.i
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[])
                     WITH ORDINALITY AS k (model, version, metric, dataset_id, i)
                 JOIN series s ON s.model = k.model AND s.version = k.version
                     AND s.metric = k.metric AND s.dataset_id = k.dataset_id",
                &[&models, &versions, &metrics, &datasets],
            )
            .await
            .map_err(pg_error)?;
        let missing: Vec<SeriesKey> = missing.into_iter().collect();
        for row in found {
            let id: i32 = row.try_get(0).map_err(pg_error)?;
            let ordinal: i64 = row.try_get(1).map_err(pg_error)?;
            let key = usize::try_from(ordinal - 1)
                .ok()
                .and_then(|i| missing.get(i))
                .ok_or_else(|| StoreError::Database("a series id was not assigned".into()))?;
            learnt.push((key.clone(), id));
        }
        for (key, id) in &learnt {
            let names = (&key.model, &key.version, &key.metric, key.dataset.as_ref());
            if let Some(slot) = distinct.get_mut(&names) {
                *slot = Some(*id);
            }
        }
    }
    let ids = samples
        .iter()
        .map(|s| {
            distinct
                .get(&names(s))
                .copied()
                .flatten()
                .ok_or_else(|| StoreError::Database("a series id was not assigned".into()))
        })
        .collect::<Result<Vec<i32>, StoreError>>()?;
    Ok((ids, learnt))
}

async fn resolve_datasets(
    transaction: &Transaction<'_>,
    catalogue: &Catalogue,
    samples: &[Sample],
) -> Result<(HashMap<Dataset, i32>, Vec<(Dataset, i32)>), StoreError> {
    let mut ids = HashMap::new();
    let mut missing = BTreeSet::new();
    for dataset in samples.iter().filter_map(|s| s.dataset.as_ref()) {
        if ids.contains_key(dataset) || missing.contains(dataset) {
            continue;
        }
        match catalogue.dataset_id(dataset) {
            Some(id) => {
                ids.insert(dataset.clone(), id);
            }
            None => {
                missing.insert(dataset.clone());
            }
        }
    }
    if missing.is_empty() {
        return Ok((ids, Vec::new()));
    }
    let names: Vec<&str> = missing.iter().map(|d| d.as_str()).collect();
    transaction
        .execute(
            "INSERT INTO datasets (name) SELECT * FROM unnest($1::text[]) ON CONFLICT DO NOTHING",
            &[&names],
        )
        .await
        .map_err(pg_error)?;
    let found = transaction
        .query(
            "SELECT id, name FROM datasets WHERE name = ANY ($1::text[])",
            &[&names],
        )
        .await
        .map_err(pg_error)?;
    let mut learnt = Vec::with_capacity(found.len());
    for row in found {
        let id: i32 = row.try_get(0).map_err(pg_error)?;
        let name: &str = row.try_get(1).map_err(pg_error)?;
        let dataset = Dataset::parse(name)
            .map_err(|e| StoreError::Corrupt(format!("data set {name:?}: {e}")))?;
        ids.insert(dataset.clone(), id);
        learnt.push((dataset, id));
    }
    Ok((ids, learnt))
}

fn series_key(model: &str, version: &str, metric: &str) -> Result<SeriesKey, StoreError> {
    SeriesKey::parse(model, version, metric)
        .map_err(|e| StoreError::Corrupt(format!("series {model}/{version}/{metric}: {e}")))
}

fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt(format!("sample time {ms}: {e}")))
}

/// The id of a stored series, or `None` when it has never been written.
async fn find_series(
    store: &PostgresStore,
    client: &ClientWrapper,
    key: &SeriesKey,
) -> Result<Option<i32>, StoreError> {
    if let Some(id) = store.catalogue.series_id(key) {
        return Ok(Some(id));
    }
    // A dataset name no dataset has matches nothing.
    let statement = client
        .prepare_cached(
            "SELECT id FROM series WHERE model = $1 AND version = $2 AND metric = $3
               AND dataset_id = CASE WHEN $4::text IS NULL THEN 0
                                     ELSE (SELECT id FROM datasets WHERE name = $4) END",
        )
        .await
        .map_err(pg_error)?;
    let row = client
        .query_opt(
            &statement,
            &[
                &key.model.as_str(),
                &key.version.as_str(),
                &key.metric.as_str(),
                &key.dataset.as_ref().map(Dataset::as_str),
            ],
        )
        .await
        .map_err(pg_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i32 = row.try_get(0).map_err(pg_error)?;
    store.catalogue.learn_series([(key.clone(), id)]);
    Ok(Some(id))
}

/// The data set of a stored id, loading the (small) data set table when the id is new
/// to this process.
async fn dataset_name(
    store: &PostgresStore,
    client: &ClientWrapper,
    id: i32,
) -> Result<Dataset, StoreError> {
    if let Some(dataset) = store.catalogue.dataset_name(id) {
        return Ok(dataset);
    }
    let rows = client
        .query("SELECT id, name FROM datasets", &[])
        .await
        .map_err(pg_error)?;
    let mut learnt = Vec::with_capacity(rows.len());
    for row in rows {
        let name: &str = row.try_get(1).map_err(pg_error)?;
        let dataset = Dataset::parse(name)
            .map_err(|e| StoreError::Corrupt(format!("data set {name:?}: {e}")))?;
        learnt.push((dataset, row.try_get(0).map_err(pg_error)?));
    }
    store.catalogue.learn_datasets(learnt);
    store
        .catalogue
        .dataset_name(id)
        .ok_or_else(|| StoreError::Corrupt(format!("sample refers to unknown data set {id}")))
}

/// Points of stored rows, data set ids resolved to names.
async fn points(
    store: &PostgresStore,
    client: &ClientWrapper,
    stored: Vec<StoredPoint>,
) -> Result<Vec<Point>, StoreError> {
    let mut points = Vec::with_capacity(stored.len());
    for (ts, value, dataset_id) in stored {
        let dataset = match dataset_id {
            Some(id) => Some(dataset_name(store, client, id).await?),
            None => None,
        };
        points.push(Point {
            timestamp: timestamp(ts)?,
            value,
            dataset,
        });
    }
    Ok(points)
}

/// The stored points of a series in `range`, head and chunks read by one statement (one
/// snapshot: a concurrent sealing moves rows from one to the other) as one binary COPY.
async fn read_stored(
    client: &ClientWrapper,
    id: i32,
    range: TimeRange,
) -> Result<Vec<StoredPoint>, StoreError> {
    let (start, end) = (range.start.as_millis(), range.end.as_millis());
    // COPY takes no parameters; every value inlined here is an integer of ours.
    let query = format!(
        "COPY (SELECT ts, value, dataset_id, NULL::bytea FROM samples
               WHERE series_id = {id} AND ts >= {start} AND ts < {end}
               UNION ALL
               SELECT NULL, NULL, NULL, data FROM sample_chunks
               WHERE series_id = {id} AND last_ts >= {start} AND first_ts < {end})
         TO STDOUT (FORMAT binary)"
    );
    let mut stream = pin!(client.copy_out(query.as_str()).await.map_err(pg_error)?);
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.map_err(pg_error)?);
    }
    let (head, sealed) = copy::decode_head_and_chunks(&data)?;
    chunks::merge_read(head, &sealed, start, end)
}

pub(super) async fn range(
    store: &PostgresStore,
    series: &SeriesKey,
    range: TimeRange,
) -> Result<Vec<Point>, StoreError> {
    if range.is_empty() {
        return Ok(Vec::new());
    }
    let client = store.client().await?;
    let Some(id) = find_series(store, &client, series).await? else {
        return Ok(Vec::new());
    };
    let stored = read_stored(&client, id, range).await?;
    points(store, &client, stored).await
}

/// Time buckets over `range`: the points come from one binary COPY (index range scans of
/// the head and of the chunks, of which only those overlapping the range are decoded)
/// and are bucketed by [`downsample`], so the buckets are exactly those of every other
/// backend. Measured against aggregating with `GROUP BY` in PostgreSQL, this is faster
/// on PostgreSQL 15: the ordered aggregates that first/last need sort every bucket.
pub(super) async fn buckets(
    store: &PostgresStore,
    series: &SeriesKey,
    range: TimeRange,
    max_points: usize,
) -> Result<Vec<Bucket>, StoreError> {
    let points = self::range(store, series, range).await?;
    Ok(downsample(&points, range, max_points))
}

/// The time of the point `target` places after `range.start`, or `range.end` when fewer
/// remain.
pub(super) async fn page_end(
    store: &PostgresStore,
    series: &SeriesKey,
    range: TimeRange,
    target: usize,
) -> Result<Timestamp, StoreError> {
    if range.is_empty() {
        return Ok(range.end);
    }
    let client = store.client().await?;
    let Some(id) = find_series(store, &client, series).await? else {
        return Ok(range.end);
    };
    let stored = read_stored(&client, id, range).await?;
    match stored.get(target.max(1)) {
        Some(&(ts, _, _)) => timestamp(ts),
        None => Ok(range.end),
    }
}

pub(super) async fn count(
    store: &PostgresStore,
    series: &SeriesKey,
    range: TimeRange,
) -> Result<u64, StoreError> {
    if range.is_empty() {
        return Ok(0);
    }
    let client = store.client().await?;
    let Some(id) = find_series(store, &client, series).await? else {
        return Ok(0);
    };
    // A timestamp may be both in the head and in a chunk: counted once, as read.
    let stored = read_stored(&client, id, range).await?;
    Ok(stored.len() as u64)
}

/// Deletes the samples before `cutoff`, a series at a time (one short transaction
/// each, holding that series' lock, so ingestion and other servers are never blocked
/// behind one huge delete): the head's rows before it, the chunks entirely before it,
/// and the points before it of the chunk straddling it, written again without them.
/// Several servers may prune at once: the series' lock lets one of them remove (and
/// count) a sample, and the others find it gone. A timestamp both in the head and in a
/// chunk is counted once. A head left holding [`chunks::SEAL_AT`] rows or more is sealed,
/// so a database written before chunks existed is compressed as retention goes by.
pub(super) async fn delete_before(
    store: &PostgresStore,
    cutoff: Timestamp,
) -> Result<u64, StoreError> {
    let mut client = store.client().await?;
    let cutoff = cutoff.as_millis();
    // Series holding anything before the cutoff: two index probes each (chunks never
    // overlap, so the one with the first end also has the first start).
    let series_ids: Vec<i32> = client
        .query(
            "SELECT id FROM series s
             WHERE EXISTS (SELECT 1 FROM samples WHERE series_id = s.id AND ts < $1)
                OR (SELECT first_ts FROM sample_chunks WHERE series_id = s.id
                    ORDER BY last_ts LIMIT 1) < $1
             ORDER BY id",
            &[&cutoff],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg_error)?;
    let mut removed = 0u64;
    for series_id in series_ids {
        removed += prune_series(&mut client, series_id, cutoff).await?;
    }
    Ok(removed)
}

async fn prune_series(
    client: &mut deadpool_postgres::Object,
    series_id: i32,
    cutoff: i64,
) -> Result<u64, StoreError> {
    let transaction = client.transaction().await.map_err(pg_error)?;
    chunks::lock_series(&transaction, series_id).await?;
    let head: Vec<i64> = chunks::take_head_rows(&transaction, series_id, cutoff)
        .await?
        .iter()
        .map(|p| p.0)
        .collect();
    let mut removed = head.len() as u64;
    let overlapping = transaction
        .query(
            "SELECT first_ts, last_ts, count FROM sample_chunks
             WHERE series_id = $1 AND first_ts < $2",
            &[&series_id, &cutoff],
        )
        .await
        .map_err(pg_error)?;
    for row in overlapping {
        let (first, last, count): (i64, i64, i32) = (
            row.try_get(0).map_err(pg_error)?,
            row.try_get(1).map_err(pg_error)?,
            row.try_get(2).map_err(pg_error)?,
        );
        let head_inside =
            head.partition_point(|&ts| ts < first) < head.partition_point(|&ts| ts <= last);
        if last < cutoff && !head_inside {
            removed += u64::try_from(count).unwrap_or(0);
            continue;
        }
        // Decoded only when it straddles the cutoff or shares a timestamp with the head.
        let data = transaction
            .query_one(
                "SELECT data FROM sample_chunks WHERE series_id = $1 AND last_ts = $2",
                &[&series_id, &last],
            )
            .await
            .map_err(pg_error)?;
        let mut points = Vec::new();
        chunks::decode_into(data.try_get(0).map_err(pg_error)?, &mut points)?;
        let kept_from = points.partition_point(|p| p.0 < cutoff);
        removed += points[..kept_from]
            .iter()
            .filter(|p| head.binary_search(&p.0).is_err())
            .count() as u64;
        if last >= cutoff {
            let kept = &points[kept_from..];
            transaction
                .execute(
                    "DELETE FROM sample_chunks WHERE series_id = $1 AND last_ts = $2",
                    &[&series_id, &last],
                )
                .await
                .map_err(pg_error)?;
            chunks::insert_chunks(&transaction, series_id, kept).await?;
        }
    }
    transaction
        .execute(
            "DELETE FROM sample_chunks WHERE series_id = $1 AND last_ts < $2",
            &[&series_id, &cutoff],
        )
        .await
        .map_err(pg_error)?;
    transaction.commit().await.map_err(pg_error)?;
    chunks::seal_head(client, series_id).await?;
    Ok(removed)
}

pub(super) async fn latest(
    store: &PostgresStore,
    series: &SeriesKey,
) -> Result<Option<Point>, StoreError> {
    let client = store.client().await?;
    let Some(id) = find_series(store, &client, series).await? else {
        return Ok(None);
    };
    // The head's newest row and the newest chunk, in one statement (one snapshot).
    let rows = client
        .query(
            "(SELECT ts, value, dataset_id, NULL::bytea FROM samples
              WHERE series_id = $1 ORDER BY ts DESC LIMIT 1)
             UNION ALL
             (SELECT NULL, NULL, NULL, data FROM sample_chunks
              WHERE series_id = $1 ORDER BY last_ts DESC LIMIT 1)",
            &[&id],
        )
        .await
        .map_err(pg_error)?;
    let mut head = Vec::new();
    let mut sealed = Vec::new();
    for row in &rows {
        match row.try_get::<_, Option<&[u8]>>(3).map_err(pg_error)? {
            Some(data) => chunks::decode_into(data, &mut sealed)?,
            None => head.push((
                row.try_get(0).map_err(pg_error)?,
                row.try_get(1).map_err(pg_error)?,
                row.try_get(2).map_err(pg_error)?,
            )),
        }
    }
    let newest = match (head.pop(), sealed.into_iter().max_by_key(|p| p.0)) {
        (Some(head), Some(sealed)) if sealed.0 > head.0 => sealed,
        (Some(head), _) => head,
        (None, sealed) => match sealed {
            Some(sealed) => sealed,
            None => return Ok(None),
        },
    };
    Ok(points(store, &client, vec![newest]).await?.pop())
}

/// [`crate::MetricStore::aggregate_series`]: the matching series, then their head rows
/// and chunks in the window in one statement (one snapshot), reduced here.
pub(super) async fn aggregate_series(
    store: &PostgresStore,
    filter: &SeriesFilter,
    range: TimeRange,
) -> Result<Vec<SeriesWindow>, StoreError> {
    if range.is_empty() {
        return Ok(Vec::new());
    }
    let client = store.client().await?;
    let (every_dataset, dataset) = match &filter.dataset {
        DatasetScope::Each => (true, None),
        DatasetScope::One(dataset) => (false, dataset.as_ref().map(Dataset::as_str)),
    };
    let matching = client
        .query(
            "SELECT s.id, s.model, s.version, s.metric, d.name
             FROM series s
             LEFT JOIN datasets d ON d.id = s.dataset_id
             WHERE ($1::text IS NULL OR s.model = $1)
               AND ($2::text IS NULL OR s.version = $2)
               AND ($3::text IS NULL OR s.metric = $3)
               AND ($4 OR (CASE WHEN $5::text IS NULL THEN s.dataset_id = 0
                                ELSE d.name = $5 END))
             ORDER BY s.model, s.version, s.metric, d.name NULLS FIRST",
            &[
                &filter.model.as_ref().map(|m| m.as_str()),
                &filter.version.as_ref().map(|v| v.as_str()),
                &filter.metric.as_ref().map(|m| m.as_str()),
                &every_dataset,
                &dataset,
            ],
        )
        .await
        .map_err(pg_error)?;
    let ids = matching
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<i32>, _>>()
        .map_err(pg_error)?;
    let (start, end) = (range.start.as_millis(), range.end.as_millis());
    let rows = client
        .query(
            "SELECT series_id, ts, value, NULL::bytea FROM samples
             WHERE series_id = ANY($1) AND ts >= $2 AND ts < $3
             UNION ALL
             SELECT series_id, NULL, NULL, data FROM sample_chunks
             WHERE series_id = ANY($1) AND last_ts >= $2 AND first_ts < $3",
            &[&ids, &start, &end],
        )
        .await
        .map_err(pg_error)?;
    let mut stored: HashMap<i32, (Vec<StoredPoint>, Vec<&[u8]>)> = HashMap::new();
    for row in &rows {
        let id: i32 = row.try_get(0).map_err(pg_error)?;
        let entry = stored.entry(id).or_default();
        match row.try_get::<_, Option<&[u8]>>(3).map_err(pg_error)? {
            Some(data) => entry.1.push(data),
            None => entry.0.push((
                row.try_get(1).map_err(pg_error)?,
                row.try_get(2).map_err(pg_error)?,
                None,
            )),
        }
    }
    let mut windows = Vec::new();
    for row in &matching {
        let id: i32 = row.try_get(0).map_err(pg_error)?;
        let Some((head, sealed)) = stored.remove(&id) else {
            continue;
        };
        let mut stats: Option<WindowStats> = None;
        for (ts, value, _) in chunks::merge_read(head, &sealed, start, end)? {
            let at = timestamp(ts)?;
            match &mut stats {
                Some(stats) => stats.push(at, value),
                None => stats = Some(WindowStats::of(at, value)),
            }
        }
        let Some(stats) = stats else {
            continue;
        };
        let dataset: Option<&str> = row.try_get(4).map_err(pg_error)?;
        let dataset = dataset
            .map(Dataset::parse)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("data set: {e}")))?;
        windows.push(SeriesWindow {
            key: series_key(
                row.try_get(1).map_err(pg_error)?,
                row.try_get(2).map_err(pg_error)?,
                row.try_get(3).map_err(pg_error)?,
            )?
            .with_dataset(dataset),
            stats,
        });
    }
    Ok(windows)
}

pub(super) async fn list_series(
    store: &PostgresStore,
    filter: &SeriesFilter,
) -> Result<Vec<SeriesInfo>, StoreError> {
    let client = store.client().await?;
    let (every_dataset, dataset) = match &filter.dataset {
        DatasetScope::Each => (true, None),
        DatasetScope::One(dataset) => (false, dataset.as_ref().map(Dataset::as_str)),
    };
    // Four index probes per series (the first and last of the head and of the chunks)
    // instead of aggregating every sample; `least` and `greatest` skip NULLs. The
    // default dataset (no name) sorts first, as `None` does in Rust.
    let rows = client
        .query(
            "SELECT s.model, s.version, s.metric, least(f.head, f.sealed),
                 greatest(l.head, l.sealed), d.name
             FROM series s
             LEFT JOIN datasets d ON d.id = s.dataset_id
             CROSS JOIN LATERAL (SELECT
                 (SELECT ts FROM samples WHERE series_id = s.id ORDER BY ts LIMIT 1) AS head,
                 (SELECT first_ts FROM sample_chunks WHERE series_id = s.id
                  ORDER BY last_ts LIMIT 1) AS sealed) f
             CROSS JOIN LATERAL (SELECT
                 (SELECT ts FROM samples WHERE series_id = s.id ORDER BY ts DESC LIMIT 1) AS head,
                 (SELECT last_ts FROM sample_chunks WHERE series_id = s.id
                  ORDER BY last_ts DESC LIMIT 1) AS sealed) l
             WHERE (f.head IS NOT NULL OR f.sealed IS NOT NULL)
               AND ($1::text IS NULL OR s.model = $1)
               AND ($2::text IS NULL OR s.version = $2)
               AND ($3::text IS NULL OR s.metric = $3)
               AND ($4 OR (CASE WHEN $5::text IS NULL THEN s.dataset_id = 0
                                ELSE d.name = $5 END))
             ORDER BY s.model, s.version, s.metric, d.name NULLS FIRST",
            &[
                &filter.model.as_ref().map(|m| m.as_str()),
                &filter.version.as_ref().map(|v| v.as_str()),
                &filter.metric.as_ref().map(|m| m.as_str()),
                &every_dataset,
                &dataset,
            ],
        )
        .await
        .map_err(pg_error)?;
    rows.into_iter()
        .map(|row| {
            let dataset: Option<&str> = row.try_get(5).map_err(pg_error)?;
            let dataset = dataset
                .map(Dataset::parse)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("data set: {e}")))?;
            Ok(SeriesInfo {
                key: series_key(
                    row.try_get(0).map_err(pg_error)?,
                    row.try_get(1).map_err(pg_error)?,
                    row.try_get(2).map_err(pg_error)?,
                )?
                .with_dataset(dataset),
                first_timestamp: timestamp(row.try_get(3).map_err(pg_error)?)?,
                last_timestamp: timestamp(row.try_get(4).map_err(pg_error)?)?,
            })
        })
        .collect()
}

pub(super) async fn define_metric(
    store: &PostgresStore,
    definition: MetricDefinition,
) -> Result<(), StoreError> {
    let definition =
        MetricDefinition::custom(definition.metric, definition.direction, definition.range)
            .map_err(StoreError::Invalid)?;
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO metric_definitions (metric, direction, min_value, max_value)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (metric) DO UPDATE SET direction = excluded.direction,
                 min_value = excluded.min_value, max_value = excluded.max_value",
            &[
                &definition.metric.as_str(),
                &definition.direction.as_str(),
                &definition.range.min,
                &definition.range.max,
            ],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
}

pub(super) async fn custom_metrics(client: &Client) -> Result<Vec<MetricDefinition>, StoreError> {
    let rows = client
        .query(
            "SELECT metric, direction, min_value, max_value FROM metric_definitions ORDER BY metric",
            &[],
        )
        .await
        .map_err(pg_error)?;
    rows.into_iter()
        .map(|row| {
            let name: &str = row.try_get(0).map_err(pg_error)?;
            let direction: &str = row.try_get(1).map_err(pg_error)?;
            let metric = Metric::parse(name)
                .map_err(|e| StoreError::Corrupt(format!("metric definition: {e}")))?;
            let direction = match direction {
                "lower_is_better" => Direction::LowerIsBetter,
                _ => Direction::HigherIsBetter,
            };
            Ok(MetricDefinition {
                metric,
                direction,
                range: ValueRange {
                    min: row.try_get(2).map_err(pg_error)?,
                    max: row.try_get(3).map_err(pg_error)?,
                },
            })
        })
        .collect()
}
