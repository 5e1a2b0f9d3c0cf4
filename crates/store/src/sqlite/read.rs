//! Queries on the reader connections: decoding chunks back into points.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::RwLock;

use modelwatch_core::stats::Chart;
use modelwatch_core::{Dataset, DatasetScope, Point, SeriesKey, TimeRange, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};

use super::head;
use super::tables::SERIES_DATASET_IS_4;
use crate::codec::{self, sort_keeping_last, Columns};
use crate::{SeriesFilter, SeriesInfo, StoreError};

/// Ids and names that never change once written, shared by the readers.
#[derive(Debug, Default)]
pub struct Catalogue {
    series_ids: RwLock<HashMap<SeriesKey, i64>>,
    dataset_names: RwLock<HashMap<u32, Dataset>>,
}

impl Catalogue {
    fn series_id(
        &self,
        connection: &Connection,
        key: &SeriesKey,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self
            .series_ids
            .read()
            .ok()
            .and_then(|ids| ids.get(key).copied())
        {
            return Ok(Some(id));
        }
        let id: Option<i64> = connection
            .prepare_cached(&format!(
                "SELECT id FROM series WHERE model = ?1 AND version = ?2 AND metric = ?3 AND {}",
                SERIES_DATASET_IS_4
            ))?
            .query_row(
                params![
                    key.model.as_str(),
                    key.version.as_str(),
                    key.metric.as_str(),
                    key.dataset.as_ref().map(Dataset::as_str),
                ],
                |row| row.get(0),
            )
            .optional()?;
        if let (Some(id), Ok(mut ids)) = (id, self.series_ids.write()) {
            ids.insert(key.clone(), id);
        }
        Ok(id)
    }

    fn dataset(&self, connection: &Connection, id: u32) -> Result<Option<Dataset>, StoreError> {
        if id == 0 {
            return Ok(None);
        }
        if let Some(name) = self
            .dataset_names
            .read()
            .ok()
            .and_then(|names| names.get(&id).cloned())
        {
            return Ok(Some(name));
        }
        let name: String = connection
            .prepare_cached("SELECT name FROM datasets WHERE id = ?1")?
            .query_row([id], |row| row.get(0))?;
        let dataset =
            Dataset::parse(&name).map_err(|e| StoreError::Corrupt(format!("dataset name: {e}")))?;
        if let Ok(mut names) = self.dataset_names.write() {
            names.insert(id, dataset.clone());
        }
        Ok(Some(dataset))
    }

    fn to_points(
        &self,
        connection: &Connection,
        columns: Columns,
        range: TimeRange,
    ) -> Result<Vec<Point>, StoreError> {
        let mut points = Vec::with_capacity(columns.len());
        let mut last_dataset: (u32, Option<Dataset>) = (0, None);
        for ((&t, &value), &dataset) in columns
            .timestamps
            .iter()
            .zip(&columns.values)
            .zip(&columns.datasets)
        {
            if t < range.start.as_millis() || t >= range.end.as_millis() {
                continue;
            }
            if dataset != last_dataset.0 {
                last_dataset = (dataset, self.dataset(connection, dataset)?);
            }
            points.push(point_at(t, value, last_dataset.1.clone())?);
        }
        Ok(points)
    }

    /// One stored sample as a point, whatever its time: a range's end is exclusive, so
    /// the newest sample (possibly at the last representable millisecond) is converted
    /// without one.
    fn newest_point(
        &self,
        connection: &Connection,
        (t, value, dataset): (i64, f64, u32),
    ) -> Result<Point, StoreError> {
        point_at(t, value, self.dataset(connection, dataset)?)
    }

    /// Points of a series in `range`: its chunks, then the head (always newer), read in
    /// one snapshot so a concurrent compaction cannot hide or double points.
    pub fn range(
        &self,
        connection: &Connection,
        key: &SeriesKey,
        range: TimeRange,
    ) -> Result<Vec<Point>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let Some(series_id) = self.series_id(connection, key)? else {
            return Ok(Vec::new());
        };
        let columns = in_snapshot(connection, || {
            range_columns(connection, series_id, range, &mut HeadRows::Probed)
        })?;
        self.to_points(connection, columns, range)
    }

    /// The points of each request, as [`Catalogue::range`] gives them, all read in one
    /// snapshot. A head row that several series are read from is read whole once and
    /// searched in memory: probing it per series walks its overflow pages from the start
    /// every time, which made reading one new sample of each of 10,000 series quadratic.
    pub fn range_many(
        &self,
        connection: &Connection,
        requests: &[(SeriesKey, TimeRange)],
    ) -> Result<Vec<Vec<Point>>, StoreError> {
        if requests.len() < 2 {
            return requests
                .iter()
                .map(|(key, range)| self.range(connection, key, *range))
                .collect();
        }
        let mut ids = Vec::with_capacity(requests.len());
        for (key, range) in requests {
            ids.push(if range.is_empty() {
                None
            } else {
                self.series_id(connection, key)?
            });
        }
        let mut heads = HeadRows::Loaded(HashMap::new());
        let found = in_snapshot(connection, || {
            let mut found = Vec::with_capacity(requests.len());
            for ((_, range), id) in requests.iter().zip(&ids) {
                found.push(match id {
                    Some(series_id) => range_columns(connection, *series_id, *range, &mut heads)?,
                    None => Columns::default(),
                });
            }
            Ok(found)
        })?;
        found
            .into_iter()
            .zip(requests)
            .map(|(columns, (_, range))| self.to_points(connection, columns, *range))
            .collect()
    }

    /// Where a page of about `target` points starting at `range.start` ends, from the
    /// chunks' counts: chunks in order of their first time are taken while their counts
    /// fit, and the page ends where the next one starts (every chunk starting before
    /// that end was counted). The head is small and not counted.
    pub fn page_end(
        &self,
        connection: &Connection,
        key: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        if range.is_empty() {
            return Ok(range.end);
        }
        let Some(series_id) = self.series_id(connection, key)? else {
            return Ok(range.end);
        };
        page_end(connection, series_id, range, target)
    }

    /// Feeds one page of `key`'s points in `range` (as [`Catalogue::page_end`] ends it,
    /// at about `target` points) to `chart`, and says where the page ended. Chunks that
    /// follow each other in time, as they usually do, are decoded straight into the chart
    /// one at a time; only pieces written out of time order are gathered and sorted
    /// first, as [`Catalogue::range`] does.
    pub fn chart_page(
        &self,
        connection: &Connection,
        key: &SeriesKey,
        range: TimeRange,
        target: usize,
        chart: &mut Chart,
    ) -> Result<Timestamp, StoreError> {
        if range.is_empty() {
            return Ok(range.end);
        }
        let Some(series_id) = self.series_id(connection, key)? else {
            return Ok(range.end);
        };
        in_snapshot(connection, || {
            let end = page_end(connection, series_id, range, target)?;
            let page = TimeRange::new(range.start, end);
            let (start, end_ms) = (page.start.as_millis(), page.end.as_millis());
            let mut datasets: (u32, Option<Dataset>) = (0, None);
            let mut feed = |t: i64, value: f64, dataset: u32| -> Result<(), StoreError> {
                if t < start || t >= end_ms {
                    return Ok(());
                }
                if dataset != datasets.0 {
                    datasets = (dataset, self.dataset(connection, dataset)?);
                }
                let timestamp =
                    Timestamp::from_millis(t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                chart.push(timestamp, value, datasets.1.as_ref());
                Ok(())
            };
            let mut spans: Vec<(i64, i64)> = connection
                .prepare_cached(
                    "SELECT min_ms, max_ms FROM chunks
                     WHERE series_id = ?1 AND max_ms >= ?2 AND min_ms < ?3 ORDER BY id",
                )?
                .query_map(params![series_id, start, end_ms], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut in_head = Vec::new();
            for head_row in head_rows(connection, start, end_ms)? {
                if let Some(entry) = head::find(connection, head_row, series_id)? {
                    spans.push((entry.min_ms, entry.max_ms));
                    in_head.push((head_row, entry));
                }
            }
            if !spans.windows(2).all(|w| w[0].1 < w[1].0) {
                let columns = range_columns(connection, series_id, page, &mut HeadRows::Probed)?;
                for ((&t, &value), &dataset) in columns
                    .timestamps
                    .iter()
                    .zip(&columns.values)
                    .zip(&columns.datasets)
                {
                    feed(t, value, dataset)?;
                }
                return Ok(page.end);
            }
            let mut statement = connection.prepare_cached(
                "SELECT data FROM chunks
                 WHERE series_id = ?1 AND max_ms >= ?2 AND min_ms < ?3 ORDER BY id",
            )?;
            let mut rows = statement.query(params![series_id, start, end_ms])?;
            while let Some(row) = rows.next()? {
                let data = row
                    .get_ref(0)?
                    .as_blob()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                codec::for_each_point(data, &mut feed)?;
            }
            for (head_row, entry) in in_head {
                codec::for_each_point(&head::segment(connection, head_row, &entry)?, &mut feed)?;
            }
            Ok(page.end)
        })
    }
}

/// [`Catalogue::page_end`] of a series by its id.
fn page_end(
    connection: &Connection,
    series_id: i64,
    range: TimeRange,
    target: usize,
) -> Result<Timestamp, StoreError> {
    let (start, end) = (range.start.as_millis(), range.end.as_millis());
    let mut statement = connection.prepare_cached(
        "SELECT min_ms, count FROM chunks
         WHERE series_id = ?1 AND max_ms >= ?2 AND min_ms < ?3 ORDER BY min_ms",
    )?;
    let mut rows = statement.query(params![series_id, start, end])?;
    let mut counted: i64 = 0;
    let target = i64::try_from(target.max(1)).unwrap_or(i64::MAX);
    while let Some(row) = rows.next()? {
        let (min_ms, count): (i64, i64) = (row.get(0)?, row.get(1)?);
        if counted > 0 && counted.saturating_add(count) > target && min_ms > start {
            return Timestamp::from_millis(min_ms.min(end))
                .map_err(|e| StoreError::Corrupt(e.to_string()));
        }
        counted = counted.saturating_add(count);
    }
    Ok(range.end)
}

fn point_at(t: i64, value: f64, dataset: Option<Dataset>) -> Result<Point, StoreError> {
    let timestamp = Timestamp::from_millis(t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Point {
        timestamp,
        value,
        dataset,
    })
}

impl Catalogue {
    pub fn latest(
        &self,
        connection: &Connection,
        key: &SeriesKey,
    ) -> Result<Option<Point>, StoreError> {
        let Some(series_id) = self.series_id(connection, key)? else {
            return Ok(None);
        };
        let last = in_snapshot(connection, || {
            let mut best: Option<(i64, f64, u32)> = None;
            let data: Option<Vec<u8>> = connection
                .prepare_cached(
                    "SELECT data FROM chunks WHERE series_id = ?1 ORDER BY max_ms DESC, id DESC LIMIT 1",
                )?
                .query_row([series_id], |row| row.get(0))
                .optional()?;
            if let Some(data) = data {
                let mut columns = Columns::default();
                codec::decode_into(&data, &mut columns)?;
                best = last_point(&columns);
            }
            // Head rows are newer than every chunk, and later head rows newer than earlier
            // ones: on equal timestamps the later wins.
            let since = best.map_or(i64::MIN, |(t, _, _)| t);
            for head_row in head_rows(connection, since, i64::MAX)? {
                let mut columns = Columns::default();
                if head::read_series(connection, head_row, series_id, &mut columns)?.is_some() {
                    if let Some(candidate) = last_point(&columns) {
                        if best.is_none_or(|(t, _, _)| candidate.0 >= t) {
                            best = Some(candidate);
                        }
                    }
                }
            }
            Ok(best)
        })?;
        last.map(|newest| self.newest_point(connection, newest))
            .transpose()
    }
}

impl Catalogue {
    /// The newest point of many series at once: the head rows are read once for all of
    /// them (instead of probing every head row per series), and a series' newest chunk is
    /// decoded only when it is newer than what the head holds.
    pub fn latest_many(
        &self,
        connection: &Connection,
        keys: &[SeriesKey],
    ) -> Result<Vec<Option<Point>>, StoreError> {
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            ids.push(self.series_id(connection, key)?);
        }
        let wanted: std::collections::HashSet<i64> = ids.iter().flatten().copied().collect();
        let newest = in_snapshot(connection, || {
            // Later head rows win ties, so scan in id order and replace on >=.
            let mut best: HashMap<i64, (i64, f64, u32)> = HashMap::new();
            for head_row in head_rows(connection, i64::MIN, i64::MAX)? {
                let bytes = head::read_all(connection, head_row)?;
                for entry in head::entries(&bytes)? {
                    if !wanted.contains(&entry.series_id)
                        || best
                            .get(&entry.series_id)
                            .is_some_and(|(t, _, _)| *t > entry.max_ms)
                    {
                        continue;
                    }
                    let mut columns = Columns::default();
                    head::decode_entry(&bytes, &entry, &mut columns)?;
                    if let Some(point) = last_point(&columns) {
                        best.insert(entry.series_id, point);
                    }
                }
            }
            let mut newest_chunk =
                connection.prepare_cached("SELECT max_ms, id FROM chunks WHERE series_id = ?1 ORDER BY max_ms DESC, id DESC LIMIT 1")?;
            let mut chunk_data =
                connection.prepare_cached("SELECT data FROM chunks WHERE id = ?1")?;
            let mut found = Vec::with_capacity(ids.len());
            for id in &ids {
                let Some(series_id) = id else {
                    found.push(None);
                    continue;
                };
                let in_head = best.get(series_id).copied();
                let chunk: Option<(i64, i64)> = newest_chunk
                    .query_row([series_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let from_chunk = match (chunk, in_head) {
                    // The head is younger than every chunk: on equal times it wins.
                    (Some((max_ms, _)), Some((t, _, _))) if t >= max_ms => None,
                    (Some((_, chunk_id)), _) => {
                        let data: Vec<u8> = chunk_data.query_row([chunk_id], |row| row.get(0))?;
                        let mut columns = Columns::default();
                        codec::decode_into(&data, &mut columns)?;
                        last_point(&columns)
                    }
                    (None, _) => None,
                };
                found.push(from_chunk.or(in_head));
            }
            Ok(found)
        })?;
        newest
            .into_iter()
            .map(|point| {
                point
                    .map(|newest| self.newest_point(connection, newest))
                    .transpose()
            })
            .collect()
    }
}

fn last_point(columns: &Columns) -> Option<(i64, f64, u32)> {
    let last = columns.len().checked_sub(1)?;
    Some((
        columns.timestamps[last],
        columns.values[last],
        columns.datasets[last],
    ))
}

/// Ids of the head rows overlapping `[start, end)`, oldest first.
fn head_rows(connection: &Connection, start: i64, end: i64) -> Result<Vec<i64>, StoreError> {
    let mut statement = connection
        .prepare_cached("SELECT id FROM head WHERE max_ms >= ?1 AND min_ms < ?2 ORDER BY id")?;
    let ids = statement.query_map(params![start, end], |row| row.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// How a read finds a series in the head rows.
enum HeadRows {
    /// Binary search over the row's directory with incremental blob I/O: one series.
    Probed,
    /// Each row read whole once (its bytes and directory), then searched in memory.
    Loaded(HashMap<i64, (Vec<u8>, Vec<head::Entry>)>),
}

impl HeadRows {
    /// Decodes `series_id`'s points in the head row `row_id` into `into`; its entry when
    /// the series is there.
    fn read(
        &mut self,
        connection: &Connection,
        row_id: i64,
        series_id: i64,
        into: &mut Columns,
    ) -> Result<Option<head::Entry>, StoreError> {
        let loaded = match self {
            HeadRows::Probed => return head::read_series(connection, row_id, series_id, into),
            HeadRows::Loaded(loaded) => loaded,
        };
        let (bytes, entries) = match loaded.entry(row_id) {
            Entry::Occupied(row) => row.into_mut(),
            Entry::Vacant(row) => {
                let bytes = head::read_all(connection, row_id)?;
                let entries = head::entries(&bytes)?;
                row.insert((bytes, entries))
            }
        };
        let Ok(at) = entries.binary_search_by_key(&series_id, |e| e.series_id) else {
            return Ok(None);
        };
        head::decode_entry(bytes, &entries[at], into)?;
        Ok(Some(entries[at]))
    }
}

/// A series' columns in `range`: its chunks, then the head rows, inside the caller's
/// snapshot.
fn range_columns(
    connection: &Connection,
    series_id: i64,
    range: TimeRange,
    heads: &mut HeadRows,
) -> Result<Columns, StoreError> {
    let (start, end) = (range.start.as_millis(), range.end.as_millis());
    let mut columns = Columns::default();
    let mut spans: Vec<(i64, i64)> = Vec::new();
    {
        let mut statement = connection.prepare_cached(
            "SELECT min_ms, max_ms, data FROM chunks
             WHERE series_id = ?1 AND max_ms >= ?2 AND min_ms < ?3 ORDER BY id",
        )?;
        let mut rows = statement.query(params![series_id, start, end])?;
        // In write order, so that for equal timestamps the later write comes last.
        while let Some(row) = rows.next()? {
            spans.push((row.get(0)?, row.get(1)?));
            let data = row
                .get_ref(2)?
                .as_blob()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            codec::decode_into(data, &mut columns)?;
        }
    }
    for head_row in head_rows(connection, start, end)? {
        if let Some(entry) = heads.read(connection, head_row, series_id, &mut columns)? {
            spans.push((entry.min_ms, entry.max_ms));
        }
    }
    Ok(time_ordered(columns, spans))
}

/// Runs reads in one read transaction (one WAL snapshot).
fn in_snapshot<T>(
    connection: &Connection,
    read: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection.execute_batch("BEGIN DEFERRED")?;
    let result = read();
    let finished = connection.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let value = result?;
    finished?;
    Ok(value)
}

/// Points gathered piece by piece in write order, with each piece's time span: put them
/// in time order, resolving equal timestamps in favour of the later write.
fn time_ordered(columns: Columns, mut spans: Vec<(i64, i64)>) -> Columns {
    if spans.windows(2).all(|w| w[0].1 < w[1].0) {
        return columns;
    }
    spans.sort_unstable();
    if spans.windows(2).all(|w| w[0].1 < w[1].0) {
        sort_by_time(columns)
    } else {
        sort_keeping_last(columns)
    }
}

/// Disjoint chunks that arrived out of time order: reorder whole points by time.
fn sort_by_time(columns: Columns) -> Columns {
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_unstable_by_key(|&i| columns.timestamps[i]);
    let mut sorted = Columns::default();
    for i in order {
        sorted.push(
            columns.timestamps[i],
            columns.values[i],
            columns.datasets[i],
        );
    }
    sorted
}

pub fn list_series(
    connection: &Connection,
    filter: &SeriesFilter,
) -> Result<Vec<SeriesInfo>, StoreError> {
    in_snapshot(connection, || {
        let mut spans_in_head: HashMap<i64, (i64, i64)> = HashMap::new();
        for head_row in head_rows(connection, i64::MIN, i64::MAX)? {
            let bytes = head::read_all(connection, head_row)?;
            for entry in head::entries(&bytes)? {
                let span = spans_in_head
                    .entry(entry.series_id)
                    .or_insert((entry.min_ms, entry.max_ms));
                *span = (span.0.min(entry.min_ms), span.1.max(entry.max_ms));
            }
        }
        // The default dataset (no name) sorts first, as `None` does in Rust.
        let mut statement = connection.prepare_cached(
            "SELECT s.id, s.model, s.version, s.metric, min(c.min_ms), max(c.max_ms), d.name
             FROM series s LEFT JOIN chunks c ON c.series_id = s.id
                 LEFT JOIN datasets d ON d.id = s.dataset_id
             WHERE (?1 IS NULL OR s.model = ?1) AND (?2 IS NULL OR s.version = ?2)
               AND (?3 IS NULL OR s.metric = ?3)
               AND (?4 OR (CASE WHEN ?5 IS NULL THEN s.dataset_id = 0 ELSE d.name = ?5 END))
             GROUP BY s.id
             ORDER BY s.model, s.version, s.metric, d.name NULLS FIRST",
        )?;
        let (every_dataset, dataset) = match &filter.dataset {
            DatasetScope::Each => (true, None),
            DatasetScope::One(dataset) => (false, dataset.as_ref().map(Dataset::as_str)),
        };
        let mut rows = statement.query(params![
            filter.model.as_ref().map(|m| m.as_str()),
            filter.version.as_ref().map(|v| v.as_str()),
            filter.metric.as_ref().map(|m| m.as_str()),
            every_dataset,
            dataset,
        ])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            let series_id: i64 = row.get(0)?;
            let in_chunks: Option<(i64, i64)> = match (row.get(4)?, row.get(5)?) {
                (Some(first), Some(last)) => Some((first, last)),
                _ => None,
            };
            let span = match (in_chunks, spans_in_head.get(&series_id)) {
                (Some(a), Some(b)) => (a.0.min(b.0), a.1.max(b.1)),
                (Some(a), None) => a,
                (None, Some(b)) => *b,
                (None, None) => continue,
            };
            let (model, version, metric): (String, String, String) =
                (row.get(1)?, row.get(2)?, row.get(3)?);
            let corrupt = |e: &dyn std::fmt::Display| {
                StoreError::Corrupt(format!("series {model}/{version}/{metric}: {e}"))
            };
            let dataset: Option<String> = row.get(6)?;
            let dataset = dataset
                .map(Dataset::parse_owned)
                .transpose()
                .map_err(|e| corrupt(&e))?;
            let key = SeriesKey::parse(&model, &version, &metric)
                .map_err(|e| corrupt(&e))?
                .with_dataset(dataset);
            let first = Timestamp::from_millis(span.0).map_err(|e| corrupt(&e))?;
            let last = Timestamp::from_millis(span.1).map_err(|e| corrupt(&e))?;
            found.push(SeriesInfo {
                key,
                first_timestamp: first,
                last_timestamp: last,
            });
        }
        Ok(found)
    })
}

/// The condition of a [`SeriesFilter`] on `series s LEFT JOIN datasets d`, parameters 1
/// to 5 as [`filter_parameters`] gives them.
const SERIES_FILTER: &str = "(?1 IS NULL OR s.model = ?1) AND (?2 IS NULL OR s.version = ?2)
    AND (?3 IS NULL OR s.metric = ?3)
    AND (?4 OR (CASE WHEN ?5 IS NULL THEN s.dataset_id = 0 ELSE d.name = ?5 END))";

fn filter_parameters(
    filter: &SeriesFilter,
) -> (Option<&str>, Option<&str>, Option<&str>, bool, Option<&str>) {
    let (every_dataset, dataset) = match &filter.dataset {
        DatasetScope::Each => (true, None),
        DatasetScope::One(dataset) => (false, dataset.as_ref().map(Dataset::as_str)),
    };
    (
        filter.model.as_ref().map(|m| m.as_str()),
        filter.version.as_ref().map(|v| v.as_str()),
        filter.metric.as_ref().map(|m| m.as_str()),
        every_dataset,
        dataset,
    )
}

/// A window's stats in the chunks' own units (ms), built as points are decoded.
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    last_ms: i64,
    last: f64,
}

impl Accumulator {
    const EMPTY: Accumulator = Accumulator {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        last_ms: i64::MIN,
        last: f64::NAN,
    };

    fn push(&mut self, t: i64, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if t >= self.last_ms {
            self.last_ms = t;
            self.last = value;
        }
    }

    fn stats(&self) -> Result<Option<modelwatch_core::WindowStats>, StoreError> {
        if self.count == 0 {
            return Ok(None);
        }
        Ok(Some(modelwatch_core::WindowStats {
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            last_timestamp: Timestamp::from_millis(self.last_ms)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            last: self.last,
        }))
    }
}

/// One matching series of a cross-series read: its key, the spans of the pieces (chunks,
/// head entries) its window was read from, and their stats.
struct Window {
    key: SeriesKey,
    spans: Vec<(i64, i64)>,
    stats: Accumulator,
}

/// [`crate::MetricStore::aggregate_series`]: one query lists the matching series, one
/// more walks their chunks overlapping the window (the index on series and time finds
/// them; each is decoded once, straight into its series' stats), and each head row is
/// read once. A series whose pieces overlap in time (overwritten samples) is read again
/// alone and resolved as [`Catalogue::range`] resolves it: the last write wins.
pub fn aggregate_series(
    connection: &Connection,
    filter: &SeriesFilter,
    range: TimeRange,
) -> Result<Vec<crate::SeriesWindow>, StoreError> {
    if range.is_empty() {
        return Ok(Vec::new());
    }
    let (start, end) = (range.start.as_millis(), range.end.as_millis());
    let (model, version, metric, every_dataset, dataset) = filter_parameters(filter);
    in_snapshot(connection, || {
        let mut windows: Vec<Window> = Vec::new();
        let mut by_id: HashMap<i64, usize> = HashMap::new();
        {
            // The default dataset (no name) sorts first, as `None` does in Rust.
            let mut statement = connection.prepare_cached(&format!(
                "SELECT s.id, s.model, s.version, s.metric, d.name
                 FROM series s LEFT JOIN datasets d ON d.id = s.dataset_id
                 WHERE {SERIES_FILTER}
                 ORDER BY s.model, s.version, s.metric, d.name NULLS FIRST"
            ))?;
            let mut rows =
                statement.query(params![model, version, metric, every_dataset, dataset])?;
            while let Some(row) = rows.next()? {
                let (model, version, metric): (String, String, String) =
                    (row.get(1)?, row.get(2)?, row.get(3)?);
                let corrupt = |e: &dyn std::fmt::Display| {
                    StoreError::Corrupt(format!("series {model}/{version}/{metric}: {e}"))
                };
                let dataset: Option<String> = row.get(4)?;
                let dataset = dataset
                    .map(Dataset::parse_owned)
                    .transpose()
                    .map_err(|e| corrupt(&e))?;
                let key = SeriesKey::parse(&model, &version, &metric)
                    .map_err(|e| corrupt(&e))?
                    .with_dataset(dataset);
                by_id.insert(row.get(0)?, windows.len());
                windows.push(Window {
                    key,
                    spans: Vec::new(),
                    stats: Accumulator::EMPTY,
                });
            }
        }
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT c.series_id, c.min_ms, c.max_ms, c.data
                 FROM series s LEFT JOIN datasets d ON d.id = s.dataset_id
                     JOIN chunks c ON c.series_id = s.id AND c.max_ms >= ?6 AND c.min_ms < ?7
                 WHERE {SERIES_FILTER}"
            ))?;
            let mut rows = statement.query(params![
                model,
                version,
                metric,
                every_dataset,
                dataset,
                start,
                end
            ])?;
            while let Some(row) = rows.next()? {
                let Some(&at) = by_id.get(&row.get::<_, i64>(0)?) else {
                    continue;
                };
                let window = &mut windows[at];
                window.spans.push((row.get(1)?, row.get(2)?));
                let data = row
                    .get_ref(3)?
                    .as_blob()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let stats = &mut window.stats;
                codec::for_each_point(data, |t, value, _| {
                    if t >= start && t < end {
                        stats.push(t, value);
                    }
                    Ok(())
                })?;
            }
        }
        let mut columns = Columns::default();
        for head_row in head_rows(connection, start, end)? {
            let bytes = head::read_all(connection, head_row)?;
            for entry in head::entries(&bytes)? {
                if entry.max_ms < start || entry.min_ms >= end {
                    continue;
                }
                let Some(&at) = by_id.get(&entry.series_id) else {
                    continue;
                };
                columns.timestamps.clear();
                columns.values.clear();
                columns.datasets.clear();
                head::decode_entry(&bytes, &entry, &mut columns)?;
                let window = &mut windows[at];
                window.spans.push((entry.min_ms, entry.max_ms));
                for (&t, &value) in columns.timestamps.iter().zip(&columns.values) {
                    if t >= start && t < end {
                        window.stats.push(t, value);
                    }
                }
            }
        }
        let ids: HashMap<usize, i64> = by_id.into_iter().map(|(id, at)| (at, id)).collect();
        let mut heads = HeadRows::Loaded(HashMap::new());
        let mut found = Vec::new();
        for (at, mut window) in windows.into_iter().enumerate() {
            window.spans.sort_unstable();
            if !window.spans.windows(2).all(|w| w[0].1 < w[1].0) {
                // Pieces overlap: some timestamps were written more than once.
                let series_id = ids[&at];
                let columns = range_columns(connection, series_id, range, &mut heads)?;
                window.stats = Accumulator::EMPTY;
                for (&t, &value) in columns.timestamps.iter().zip(&columns.values) {
                    if t >= start && t < end {
                        window.stats.push(t, value);
                    }
                }
            }
            if let Some(stats) = window.stats.stats()? {
                found.push(crate::SeriesWindow {
                    key: window.key,
                    stats,
                });
            }
        }
        Ok(found)
    })
}
