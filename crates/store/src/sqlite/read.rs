//! Queries on the reader connections: decoding chunks back into points.

use std::collections::HashMap;
use std::sync::RwLock;

use modelwatch_core::{
    Dataset, Direction, Metric, MetricDefinition, Point, SeriesKey, TimeRange, Timestamp,
    ValueRange,
};
use rusqlite::{params, Connection, OptionalExtension};

use super::writer::sort_keeping_last;
use crate::codec::{self, Columns};
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
            .prepare_cached(
                "SELECT id FROM series WHERE model = ?1 AND version = ?2 AND metric = ?3",
            )?
            .query_row(
                params![
                    key.model.as_str(),
                    key.version.as_str(),
                    key.metric.as_str()
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
            let timestamp =
                Timestamp::from_millis(t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            points.push(Point {
                timestamp,
                value,
                dataset: last_dataset.1.clone(),
            });
        }
        Ok(points)
    }

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
        let mut statement = connection.prepare_cached(
            "SELECT min_ms, max_ms, data FROM chunks
             WHERE series_id = ?1 AND max_ms >= ?2 AND min_ms < ?3 ORDER BY id",
        )?;
        let mut rows = statement.query(params![
            series_id,
            range.start.as_millis(),
            range.end.as_millis()
        ])?;
        let mut chunks: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        while let Some(row) = rows.next()? {
            chunks.push((row.get(0)?, row.get(1)?, row.get(2)?));
        }
        let mut columns = Columns::default();
        // In id order, so that for equal timestamps the later write comes last.
        for (_, _, data) in &chunks {
            codec::decode_into(data, &mut columns)?;
        }
        let mut spans: Vec<(i64, i64)> = chunks.iter().map(|(min, max, _)| (*min, *max)).collect();
        let in_order = spans.windows(2).all(|w| w[0].1 < w[1].0);
        if !in_order {
            spans.sort_unstable();
            let disjoint = spans.windows(2).all(|w| w[0].1 < w[1].0);
            columns = if disjoint {
                sort_by_time(columns)
            } else {
                sort_keeping_last(columns)
            };
        }
        self.to_points(connection, columns, range)
    }

    pub fn latest(
        &self,
        connection: &Connection,
        key: &SeriesKey,
    ) -> Result<Option<Point>, StoreError> {
        let Some(series_id) = self.series_id(connection, key)? else {
            return Ok(None);
        };
        let data: Option<Vec<u8>> = connection
            .prepare_cached("SELECT data FROM chunks WHERE series_id = ?1 ORDER BY max_ms DESC, id DESC LIMIT 1")?
            .query_row([series_id], |row| row.get(0))
            .optional()?;
        let Some(data) = data else { return Ok(None) };
        let mut columns = Columns::default();
        codec::decode_into(&data, &mut columns)?;
        Ok(self.to_points(connection, columns, TimeRange::all())?.pop())
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
    let mut statement = connection.prepare_cached(
        "SELECT s.model, s.version, s.metric, min(c.min_ms), max(c.max_ms)
         FROM series s JOIN chunks c ON c.series_id = s.id
         WHERE (?1 IS NULL OR s.model = ?1) AND (?2 IS NULL OR s.version = ?2) AND (?3 IS NULL OR s.metric = ?3)
         GROUP BY s.id
         ORDER BY s.model, s.version, s.metric",
    )?;
    let mut rows = statement.query(params![
        filter.model.as_ref().map(|m| m.as_str()),
        filter.version.as_ref().map(|v| v.as_str()),
        filter.metric.as_ref().map(|m| m.as_str()),
    ])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let model: String = row.get(0)?;
        let version: String = row.get(1)?;
        let metric: String = row.get(2)?;
        let corrupt = |e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("series {model}/{version}/{metric}: {e}"))
        };
        let key = SeriesKey::parse(&model, &version, &metric).map_err(|e| corrupt(&e))?;
        let first = Timestamp::from_millis(row.get(3)?).map_err(|e| corrupt(&e))?;
        let last = Timestamp::from_millis(row.get(4)?).map_err(|e| corrupt(&e))?;
        found.push(SeriesInfo {
            key,
            first_timestamp: first,
            last_timestamp: last,
        });
    }
    Ok(found)
}

pub fn load_custom_metrics(connection: &Connection) -> Result<Vec<MetricDefinition>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT metric, direction, min_value, max_value FROM metric_definitions ORDER BY metric",
    )?;
    let mut rows = statement.query([])?;
    let mut definitions = Vec::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let direction: String = row.get(1)?;
        let metric = Metric::parse(&name)
            .map_err(|e| StoreError::Corrupt(format!("metric definition: {e}")))?;
        let direction = match direction.as_str() {
            "lower_is_better" => Direction::LowerIsBetter,
            _ => Direction::HigherIsBetter,
        };
        definitions.push(MetricDefinition {
            metric,
            direction,
            range: ValueRange {
                min: row.get(2)?,
                max: row.get(3)?,
            },
        });
    }
    Ok(definitions)
}
