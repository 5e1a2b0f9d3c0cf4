//! Samples in PostgreSQL: batched appends and index range reads.
//!
//! An append is one transaction: resolve (creating when new) the batch's series and
//! data set ids, then write all rows with one binary COPY straight into `samples`. When
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
    if write_batch(store, &mut client, &samples, Write::Copy).await? {
        return Ok(());
    }
    if write_batch(store, &mut client, &samples, Write::Upsert).await? {
        return Ok(());
    }
    Err(StoreError::Database(
        "the upsert of a batch reported a conflict".into(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Binary COPY: fails on a `(series, ts)` already stored.
    Copy,
    /// `INSERT … ON CONFLICT DO UPDATE`: later write wins.
    Upsert,
}

/// One transaction writing the batch; `Ok(false)` when a COPY met a stored timestamp
/// (nothing written).
async fn write_batch(
    store: &PostgresStore,
    client: &mut deadpool_postgres::Object,
    samples: &[Sample],
    write: Write,
) -> Result<bool, StoreError> {
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
    match write {
        Write::Copy => match copy_rows(&transaction, &rows).await {
            Ok(()) => {}
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                transaction.rollback().await.map_err(pg_error)?;
                return Ok(false);
            }
            Err(error) => return Err(pg_error(error)),
        },
        Write::Upsert => upsert_rows(&transaction, &rows).await?,
    }
    transaction.commit().await.map_err(pg_error)?;
    store.catalogue.learn_series(new_series);
    store.catalogue.learn_datasets(new_datasets);
    Ok(true)
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

async fn upsert_rows(transaction: &Transaction<'_>, rows: &[Row]) -> Result<(), StoreError> {
    let series: Vec<i32> = rows.iter().map(|r| r.series_id).collect();
    let times: Vec<i64> = rows.iter().map(|r| r.ts).collect();
    let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
    let datasets: Vec<Option<i32>> = rows.iter().map(|r| r.dataset_id).collect();
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

async fn points(
    store: &PostgresStore,
    client: &ClientWrapper,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<Point>, StoreError> {
    let mut points = Vec::with_capacity(rows.len());
    for row in rows {
        let dataset_id: Option<i32> = row.try_get(2).map_err(pg_error)?;
        let dataset = match dataset_id {
            Some(id) => Some(dataset_name(store, client, id).await?),
            None => None,
        };
        points.push(Point {
            timestamp: timestamp(row.try_get(0).map_err(pg_error)?)?,
            value: row.try_get(1).map_err(pg_error)?,
            dataset,
        });
    }
    Ok(points)
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
    // COPY takes no parameters; every value inlined here is an integer of ours.
    let query = format!(
        "COPY (SELECT ts, value, dataset_id FROM samples
               WHERE series_id = {id} AND ts >= {} AND ts < {} ORDER BY ts)
         TO STDOUT (FORMAT binary)",
        range.start.as_millis(),
        range.end.as_millis()
    );
    let mut stream = pin!(client.copy_out(query.as_str()).await.map_err(pg_error)?);
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.map_err(pg_error)?);
    }
    let rows = copy::decode(&data)?;
    let mut points = Vec::with_capacity(rows.len());
    for (ts, value, dataset_id) in rows {
        let dataset = match dataset_id {
            Some(id) => Some(dataset_name(store, &client, id).await?),
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

/// Time buckets over `range`: the points come from one binary COPY (an index range scan)
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

/// The time of the point `target` places after `range.start` (an index range scan of
/// `target` entries), or `range.end` when fewer remain.
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
    let offset = i64::try_from(target.max(1)).unwrap_or(i64::MAX);
    let row = client
        .query_opt(
            "SELECT ts FROM samples WHERE series_id = $1 AND ts >= $2 AND ts < $3
             ORDER BY ts OFFSET $4 LIMIT 1",
            &[
                &id,
                &range.start.as_millis(),
                &range.end.as_millis(),
                &offset,
            ],
        )
        .await
        .map_err(pg_error)?;
    match row {
        Some(row) => timestamp(row.try_get(0).map_err(pg_error)?),
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
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM samples WHERE series_id = $1 AND ts >= $2 AND ts < $3",
            &[&id, &range.start.as_millis(), &range.end.as_millis()],
        )
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    u64::try_from(count).map_err(|_| StoreError::Corrupt(format!("negative count {count}")))
}

/// Series per delete statement: their ids go in one array, so the primary key is probed
/// once per series.
/// (Tiny under test, so the conformance suite crosses statement boundaries.)
const PRUNE_SERIES_PER_STATEMENT: usize = if cfg!(test) { 2 } else { 1_000 };
/// Rows per delete statement: each statement is its own short transaction, so ingestion
/// and other servers are never blocked behind one huge delete.
const PRUNE_ROWS_PER_STATEMENT: i64 = if cfg!(test) { 700 } else { 50_000 };

/// Deletes the samples before `cutoff`, a bounded statement at a time. Several servers
/// may do it at once: a row is deleted (and counted) by exactly one of them, whichever
/// locks it first; the others skip it once it is gone. A group is done when a statement
/// *finds* fewer rows than its limit (not when it deletes fewer: rows another server
/// took from under it do not mean none are left).
pub(super) async fn delete_before(
    store: &PostgresStore,
    cutoff: Timestamp,
) -> Result<u64, StoreError> {
    let client = store.client().await?;
    let series_ids: Vec<i32> = client
        .query("SELECT id FROM series ORDER BY id", &[])
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg_error)?;
    let delete = client
        .prepare(
            "WITH batch AS (
                 SELECT series_id, ts FROM samples
                 WHERE series_id = ANY($1) AND ts < $2
                 LIMIT $3),
             gone AS (
                 DELETE FROM samples s USING batch b
                 WHERE s.series_id = b.series_id AND s.ts = b.ts
                 RETURNING 1)
             SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM gone)",
        )
        .await
        .map_err(pg_error)?;
    let mut removed = 0u64;
    for group in series_ids.chunks(PRUNE_SERIES_PER_STATEMENT) {
        loop {
            let row = client
                .query_one(
                    &delete,
                    &[&group, &cutoff.as_millis(), &PRUNE_ROWS_PER_STATEMENT],
                )
                .await
                .map_err(pg_error)?;
            let (found, deleted): (i64, i64) = (
                row.try_get(0).map_err(pg_error)?,
                row.try_get(1).map_err(pg_error)?,
            );
            removed += deleted.unsigned_abs();
            if found < PRUNE_ROWS_PER_STATEMENT {
                break;
            }
        }
    }
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
    let rows = client
        .query(
            "SELECT ts, value, dataset_id FROM samples WHERE series_id = $1 ORDER BY ts DESC LIMIT 1",
            &[&id],
        )
        .await
        .map_err(pg_error)?;
    Ok(points(store, &client, rows).await?.pop())
}

/// [`crate::MetricStore::aggregate_series`] in one statement: per matching series, one
/// index range scan aggregates the window and one index probe finds its newest sample.
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
    let rows = client
        .query(
            "SELECT s.model, s.version, s.metric, d.name, a.n, a.total, a.lo, a.hi, l.ts, l.value
             FROM series s
             LEFT JOIN datasets d ON d.id = s.dataset_id
             CROSS JOIN LATERAL
                 (SELECT ts, value FROM samples WHERE series_id = s.id AND ts >= $6 AND ts < $7
                  ORDER BY ts DESC LIMIT 1) l
             CROSS JOIN LATERAL
                 (SELECT count(*) AS n, sum(value) AS total, min(value) AS lo, max(value) AS hi
                  FROM samples WHERE series_id = s.id AND ts >= $6 AND ts < $7) a
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
                &range.start.as_millis(),
                &range.end.as_millis(),
            ],
        )
        .await
        .map_err(pg_error)?;
    rows.into_iter()
        .map(|row| {
            let dataset: Option<&str> = row.try_get(3).map_err(pg_error)?;
            let dataset = dataset
                .map(Dataset::parse)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("data set: {e}")))?;
            let count: i64 = row.try_get(4).map_err(pg_error)?;
            Ok(SeriesWindow {
                key: series_key(
                    row.try_get(0).map_err(pg_error)?,
                    row.try_get(1).map_err(pg_error)?,
                    row.try_get(2).map_err(pg_error)?,
                )?
                .with_dataset(dataset),
                stats: WindowStats {
                    count: u64::try_from(count).unwrap_or(0),
                    sum: row.try_get(5).map_err(pg_error)?,
                    min: row.try_get(6).map_err(pg_error)?,
                    max: row.try_get(7).map_err(pg_error)?,
                    last_timestamp: timestamp(row.try_get(8).map_err(pg_error)?)?,
                    last: row.try_get(9).map_err(pg_error)?,
                },
            })
        })
        .collect()
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
    // Two index probes per series instead of aggregating every sample. The default
    // dataset (no name) sorts first, as `None` does in Rust.
    let rows = client
        .query(
            "SELECT s.model, s.version, s.metric, f.ts, l.ts, d.name
             FROM series s
             LEFT JOIN datasets d ON d.id = s.dataset_id
             CROSS JOIN LATERAL
                 (SELECT ts FROM samples WHERE series_id = s.id ORDER BY ts LIMIT 1) f
             CROSS JOIN LATERAL
                 (SELECT ts FROM samples WHERE series_id = s.id ORDER BY ts DESC LIMIT 1) l
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
