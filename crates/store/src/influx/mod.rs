//! InfluxDB 1.x as the metric store (`influxdb://HOST:PORT/DATABASE`), through its HTTP
//! API: line protocol to `/write` in batches, InfluxQL to `/query`. It keeps samples and
//! the custom metrics' definitions; the alerting state lives in a relational store beside
//! it (`--alerts-db`).
//!
//! The data model is the one InfluxDB users would choose, and the one modelwatch's own
//! InfluxDB-compatible ingestion reads by default (`[influx.wide]`): one measurement,
//! `model_metrics`, tagged `model`, `version` and `dataset` (no tag for the default
//! dataset), with one float field per metric. A sample is one field of one point, so
//! InfluxDB's own rule (a point written again at its timestamp replaces the field)
//! is modelwatch's. Definitions are points of `modelwatch_metric_definitions`, tagged
//! `metric`, at time 0, one JSON string field `definition`.
//!
//! Reads push the work down: ranges as raw points, `latest` as `last()`, windows and
//! series listings as `count/sum/min/max` and `first/last` grouped by the series' tags,
//! chart buckets as `GROUP BY time()`. A request of many series is one HTTP request of
//! many statements.

pub mod testing;
mod text;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::stats::Downsampler;
use modelwatch_core::{
    Bucket, Dataset, Direction, Metric, MetricDefinition, ModelName, Point, Sample, SeriesKey,
    TimeRange, Timestamp, ValidationError, ValueRange, Version, WindowStats,
};
use serde::Deserialize;

use crate::known_series::KnownSeries;
use crate::{
    Capabilities, MetricStore, SeriesFilter, SeriesInfo, SeriesLimits, SeriesWindow, StoreError,
};

/// The measurement samples are points of.
pub const MEASUREMENT: &str = "model_metrics";
/// The measurement of the custom metrics' definitions.
pub const DEFINITIONS: &str = "modelwatch_metric_definitions";
pub const MODEL_TAG: &str = "model";
pub const VERSION_TAG: &str = "version";
pub const DATASET_TAG: &str = "dataset";

/// Metric names InfluxDB cannot take as a field of `model_metrics`: `time` is no field
/// key, and a field named as a tag makes queries ambiguous.
pub const RESERVED_METRICS: &[&str] = &["time", MODEL_TAG, VERSION_TAG, DATASET_TAG];

/// Lines per write request (InfluxDB recommends 5,000 to 10,000).
const LINES_PER_WRITE: usize = 5_000;
/// Statements per query request.
const STATEMENTS_PER_QUERY: usize = 200;

/// Whether a location names an InfluxDB database.
pub fn is_influx_location(location: &str) -> bool {
    location.starts_with("influxdb://")
}

/// `influxdb://[USER:PASSWORD@]HOST:PORT/DATABASE`, shown with the password masked.
#[derive(Clone)]
struct Location {
    base: String,
    database: String,
    credentials: Option<(String, String)>,
    shown: String,
}

impl Location {
    fn parse(location: &str) -> Result<Location, StoreError> {
        let invalid = |reason: &str| StoreError::Open {
            path: location.into(),
            reason: format!("{reason} (expected influxdb://HOST:PORT/DATABASE)"),
        };
        let rest = location
            .strip_prefix("influxdb://")
            .ok_or_else(|| invalid("not an influxdb:// location"))?;
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| invalid("no database named"))?;
        let database = database.trim_end_matches('/');
        if database.is_empty() || database.contains(['/', '?', '#']) {
            return Err(invalid("the database name is missing or not a plain name"));
        }
        let (credentials, host) = match authority.rsplit_once('@') {
            Some((user, host)) => {
                let (name, password) = user.split_once(':').unwrap_or((user, ""));
                (Some((name.to_owned(), password.to_owned())), host)
            }
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(invalid("no host named"));
        }
        let shown = match &credentials {
            Some((name, _)) => format!("influxdb://{name}:***@{host}/{database}"),
            None => location.to_owned(),
        };
        Ok(Location {
            base: format!("http://{host}"),
            database: database.to_owned(),
            credentials,
            shown,
        })
    }
}

/// InfluxDB 1.x as a [`MetricStore`].
pub struct InfluxStore {
    client: reqwest::Client,
    location: Location,
    limits: SeriesLimits,
    /// Loaded at the first write that may create series, when limits apply.
    known: tokio::sync::Mutex<Option<KnownSeries>>,
    /// Prunes of this process, one at a time, so their counts add up.
    prune: tokio::sync::Mutex<()>,
    closed: AtomicBool,
}

impl std::fmt::Debug for InfluxStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxStore")
            .field("location", &self.location.shown)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct QueryResponse {
    #[serde(default)]
    results: Vec<StatementResult>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<ResultSeries>,
    error: Option<String>,
    /// Rows were left out (the server's max-row-limit). A series split in pieces is
    /// `partial` on its own, and read piece after piece.
    #[serde(default)]
    partial: bool,
}

#[derive(Debug, Deserialize)]
struct ResultSeries {
    #[serde(default)]
    tags: HashMap<String, String>,
    columns: Vec<String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

impl ResultSeries {
    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

fn number(value: &serde_json::Value) -> Option<f64> {
    value.as_f64()
}

fn timestamp(value: &serde_json::Value) -> Result<Timestamp, StoreError> {
    value
        .as_i64()
        .and_then(|ms| Timestamp::from_millis(ms).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("InfluxDB answered a time of {value}")))
}

impl InfluxStore {
    /// Connects to the server, checks it answers, and creates the database when missing.
    pub async fn open(location: &str) -> Result<InfluxStore, StoreError> {
        let location = Location::parse(location)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| StoreError::Connect {
                location: location.shown.clone(),
                reason: e.to_string(),
            })?;
        let store = InfluxStore {
            client,
            location,
            limits: SeriesLimits::default(),
            known: tokio::sync::Mutex::new(None),
            prune: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        };
        let ping = store
            .client
            .get(format!("{}/ping", store.location.base))
            .send()
            .await
            .map_err(|e| store.connect_error(e))?;
        if !ping.status().is_success() {
            return Err(StoreError::Connect {
                location: store.location.shown.clone(),
                reason: format!("/ping answered {}", ping.status()),
            });
        }
        store
            .query_one(&format!(
                "CREATE DATABASE {}",
                text::ident(&store.location.database)
            ))
            .await?;
        Ok(store)
    }

    /// Refuses batches that would pass `limits` (default: [`SeriesLimits::default`]).
    pub fn with_series_limits(mut self, limits: SeriesLimits) -> Self {
        self.limits = limits;
        self
    }

    fn connect_error(&self, error: reqwest::Error) -> StoreError {
        StoreError::Connect {
            location: self.location.shown.clone(),
            reason: error.without_url().to_string(),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let builder = builder.query(&[("db", self.location.database.as_str())]);
        match &self.location.credentials {
            Some((user, password)) => builder.query(&[("u", user), ("p", password)]),
            None => builder,
        }
    }

    /// Runs statements (`;`-separated) and gives each statement's series, in order.
    async fn query(&self, statements: &[String]) -> Result<Vec<Vec<ResultSeries>>, StoreError> {
        self.check_open()?;
        let mut found = Vec::with_capacity(statements.len());
        for chunk in statements.chunks(STATEMENTS_PER_QUERY) {
            let q = chunk.join(";\n");
            let response = self
                .request(self.client.post(format!("{}/query", self.location.base)))
                .query(&[("epoch", "ms")])
                .form(&[("q", q.as_str())])
                .send()
                .await
                .map_err(|e| self.connect_error(e))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| self.connect_error(e))?;
            let parsed: QueryResponse = serde_json::from_slice(&body).map_err(|e| {
                StoreError::Database(format!(
                    "InfluxDB at {} answered {status} with what is not a query result ({e}): {}",
                    self.location.shown,
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ))
            })?;
            if let Some(error) = parsed.error {
                return Err(self.query_error(&error));
            }
            if parsed.results.len() != chunk.len() {
                return Err(StoreError::Database(format!(
                    "InfluxDB answered {} results to {} statements",
                    parsed.results.len(),
                    chunk.len()
                )));
            }
            for result in parsed.results {
                if let Some(error) = result.error {
                    return Err(self.query_error(&error));
                }
                if result.partial {
                    return Err(StoreError::Database(format!(
                        "InfluxDB at {} cut a result short (its max-row-limit); set \
                         [http] max-row-limit = 0",
                        self.location.shown
                    )));
                }
                found.push(result.series);
            }
        }
        Ok(found)
    }

    async fn query_one(&self, statement: &str) -> Result<Vec<ResultSeries>, StoreError> {
        let mut found = self.query(&[statement.to_owned()]).await?;
        Ok(found.pop().unwrap_or_default())
    }

    fn query_error(&self, error: &str) -> StoreError {
        StoreError::Database(format!("InfluxDB at {}: {error}", self.location.shown))
    }

    /// Writes lines (each ending in a newline) in requests of [`LINES_PER_WRITE`].
    async fn write_lines(&self, lines: &[String]) -> Result<(), StoreError> {
        for chunk in lines.chunks(LINES_PER_WRITE) {
            self.write_body(chunk.concat()).await?;
        }
        Ok(())
    }

    /// One write request of line protocol.
    async fn write_body(&self, body: String) -> Result<(), StoreError> {
        self.check_open()?;
        let response = self
            .request(self.client.post(format!("{}/write", self.location.base)))
            .query(&[("precision", "ms")])
            .body(body)
            .send()
            .await
            .map_err(|e| self.connect_error(e))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(StoreError::Database(format!(
                "InfluxDB at {} refused a write ({status}): {}",
                self.location.shown,
                body.trim()
            )));
        }
        Ok(())
    }

    /// The float fields of `model_metrics`: every metric with samples.
    async fn metric_fields(&self, only: Option<&Metric>) -> Result<Vec<Metric>, StoreError> {
        if let Some(metric) = only {
            return Ok(vec![metric.clone()]);
        }
        let found = self
            .query_one(&format!(
                "SHOW FIELD KEYS FROM {}",
                text::ident(MEASUREMENT)
            ))
            .await?;
        let mut metrics = Vec::new();
        for series in found {
            let (Some(key), Some(kind)) = (series.column("fieldKey"), series.column("fieldType"))
            else {
                continue;
            };
            for row in &series.values {
                let is_float = row.get(kind).and_then(|v| v.as_str()) == Some("float");
                if let (true, Some(name)) = (is_float, row.get(key).and_then(|v| v.as_str())) {
                    if let Ok(metric) = Metric::parse(name) {
                        metrics.push(metric);
                    }
                }
            }
        }
        Ok(metrics)
    }

    /// The series a grouped result names: its tags and the metric asked for.
    fn series_of(result: &ResultSeries, metric: &Metric) -> Result<SeriesKey, StoreError> {
        let tag = |name: &str| result.tags.get(name).map(String::as_str).unwrap_or("");
        let corrupt = |e: ValidationError| {
            StoreError::Corrupt(format!("a series of {MEASUREMENT} has an invalid tag: {e}"))
        };
        let dataset = match tag(DATASET_TAG) {
            "" => None,
            name => Some(Dataset::parse(name).map_err(corrupt)?),
        };
        Ok(SeriesKey {
            model: ModelName::parse(tag(MODEL_TAG)).map_err(corrupt)?,
            version: Version::parse(tag(VERSION_TAG)).map_err(corrupt)?,
            metric: metric.clone(),
            dataset,
        })
    }

    /// The first or last point of each series matching the filter, per metric field.
    fn selector_statements(
        selector: &str,
        metrics: &[Metric],
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Vec<String> {
        let conditions = text::filter_condition(filter);
        metrics
            .iter()
            .map(|metric| {
                text::grouped_select(
                    &format!("{selector}({})", text::ident(metric.as_str())),
                    &conditions,
                    range,
                )
            })
            .collect()
    }

    async fn load_known(&self) -> Result<KnownSeries, StoreError> {
        let listed = self.list_series(&SeriesFilter::default()).await?;
        Ok(KnownSeries::of(listed.into_iter().map(|info| info.key)))
    }

    /// Refuses a batch that would pass the series limits; counts its new series as
    /// known once it passes.
    async fn admit(&self, samples: &[Sample]) -> Result<(), StoreError> {
        if self.limits == SeriesLimits::UNLIMITED {
            return Ok(());
        }
        let mut known = self.known.lock().await;
        if known.is_none() {
            *known = Some(self.load_known().await?);
        }
        let Some(known) = known.as_mut() else {
            return Ok(());
        };
        // Each series of the batch once, its names copied only then.
        let mut seen: HashSet<text::SeriesRef<'_>> = HashSet::new();
        let batch = samples
            .iter()
            .filter(|sample| seen.insert(text::series_of(sample)))
            .map(Sample::series);
        known.admit(batch, &self.limits)
    }
}

/// Refuses what InfluxDB cannot hold: a time after 2262 or a metric named as a tag.
fn check_storable(samples: &[Sample]) -> Result<(), StoreError> {
    for (index, sample) in samples.iter().enumerate() {
        if sample.timestamp.as_millis() > text::MAX_MS {
            return Err(StoreError::InvalidSample {
                index,
                error: ValidationError::new(
                    "timestamp",
                    format!(
                        "{} ms is after the last time InfluxDB can store ({} ms, in 2262)",
                        sample.timestamp.as_millis(),
                        text::MAX_MS
                    ),
                ),
            });
        }
        check_metric_name(&sample.metric)
            .map_err(|error| StoreError::InvalidSample { index, error })?;
    }
    Ok(())
}

fn check_metric_name(metric: &Metric) -> Result<(), ValidationError> {
    if RESERVED_METRICS.contains(&metric.as_str()) {
        return Err(ValidationError::new(
            "metric",
            format!(
                "{metric:?} cannot be a metric in InfluxDB, where time, model, version and \
                 dataset name the point's time and tags",
                metric = metric.as_str()
            ),
        ));
    }
    Ok(())
}

fn direction_name(direction: Direction) -> &'static str {
    direction.as_str()
}

fn parse_direction(name: &str) -> Option<Direction> {
    [Direction::HigherIsBetter, Direction::LowerIsBetter]
        .into_iter()
        .find(|d| d.as_str() == name)
}

#[async_trait]
impl MetricStore for InfluxStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            last_timestamp: Timestamp::from_millis(text::MAX_MS).unwrap_or(Timestamp::MAX),
            reserved_metrics: RESERVED_METRICS,
            atomic_batches: false,
            exact_prune_counts_across_servers: false,
            replaces_samples: true,
            ..Capabilities::FULL
        }
    }

    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        check_storable(&samples)?;
        let custom = self.custom_metrics().await?;
        crate::validate_batch(&samples, &custom)?;
        self.admit(&samples).await?;
        // The last write of a point wins, in a batch as across batches.
        let mut last: HashMap<(text::SeriesRef<'_>, Timestamp), usize> =
            HashMap::with_capacity(samples.len());
        for (index, sample) in samples.iter().enumerate() {
            last.insert((text::series_of(sample), sample.timestamp), index);
        }
        let unique = last.len() == samples.len();
        let mut bodies = Vec::with_capacity(samples.len().div_ceil(LINES_PER_WRITE));
        let mut body = String::new();
        let mut lines = 0;
        for (index, sample) in samples.iter().enumerate() {
            let series = text::series_of(sample);
            if unique || last.get(&(series, sample.timestamp)) == Some(&index) {
                if lines == 0 {
                    body.reserve(LINES_PER_WRITE * 96);
                }
                text::sample_line(series, sample.value, sample.timestamp, &mut body);
                lines += 1;
                if lines == LINES_PER_WRITE {
                    bodies.push(std::mem::take(&mut body));
                    lines = 0;
                }
            }
        }
        if lines > 0 {
            bodies.push(body);
        }
        for body in bodies {
            self.write_body(body).await?;
        }
        Ok(())
    }

    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError> {
        let mut found = self.range_many(&[(series.clone(), range)]).await?;
        Ok(found.pop().unwrap_or_default())
    }

    async fn range_many(
        &self,
        requests: &[(SeriesKey, TimeRange)],
    ) -> Result<Vec<Vec<Point>>, StoreError> {
        let asked: Vec<usize> = (0..requests.len())
            .filter(|i| !requests[*i].1.is_empty())
            .collect();
        let statements: Vec<String> = asked
            .iter()
            .map(|i| {
                let (series, range) = &requests[*i];
                format!(
                    "SELECT {} FROM {} WHERE {} AND {}",
                    text::ident(series.metric.as_str()),
                    text::ident(MEASUREMENT),
                    text::series_condition(series),
                    text::time_range(*range)
                )
            })
            .collect();
        let results = self.query(&statements).await?;
        let mut found = vec![Vec::new(); requests.len()];
        for (i, result) in asked.into_iter().zip(results) {
            let dataset = &requests[i].0.dataset;
            let mut points = Vec::new();
            for series in result {
                let (Some(time), Some(value)) = (
                    series.column("time"),
                    series.column(requests[i].0.metric.as_str()),
                ) else {
                    continue;
                };
                for row in &series.values {
                    let (Some(t), Some(v)) = (row.get(time), row.get(value).and_then(number))
                    else {
                        continue;
                    };
                    points.push(Point {
                        timestamp: timestamp(t)?,
                        value: v,
                        dataset: dataset.clone(),
                    });
                }
            }
            found[i] = points;
        }
        Ok(found)
    }

    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError> {
        let mut found = self.latest_many(std::slice::from_ref(series)).await?;
        Ok(found.pop().flatten())
    }

    async fn latest_many(&self, series: &[SeriesKey]) -> Result<Vec<Option<Point>>, StoreError> {
        let statements: Vec<String> = series
            .iter()
            .map(|key| {
                format!(
                    "SELECT last({}) FROM {} WHERE {} AND {}",
                    text::ident(key.metric.as_str()),
                    text::ident(MEASUREMENT),
                    text::series_condition(key),
                    text::time_range(TimeRange::all())
                )
            })
            .collect();
        let results = self.query(&statements).await?;
        let mut found = Vec::with_capacity(series.len());
        for (key, result) in series.iter().zip(results) {
            let point = result.iter().find_map(|s| {
                let row = s.values.first()?;
                let t = row.get(s.column("time")?)?;
                let value = row.get(s.column("last")?).and_then(number)?;
                Some((t.clone(), value))
            });
            found.push(match point {
                Some((t, value)) => Some(Point {
                    timestamp: timestamp(&t)?,
                    value,
                    dataset: key.dataset.clone(),
                }),
                None => None,
            });
        }
        Ok(found)
    }

    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        if range.is_empty() {
            return Ok(range.end);
        }
        let found = self
            .query_one(&format!(
                "SELECT {} FROM {} WHERE {} AND {} LIMIT 1 OFFSET {}",
                text::ident(series.metric.as_str()),
                text::ident(MEASUREMENT),
                text::series_condition(series),
                text::time_range(range),
                target.max(1)
            ))
            .await?;
        for series in found {
            if let Some(t) = series
                .column("time")
                .and_then(|c| series.values.first()?.get(c).cloned())
            {
                return timestamp(&t);
            }
        }
        Ok(range.end)
    }

    async fn list_series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesInfo>, StoreError> {
        let metrics = self.metric_fields(filter.metric.as_ref()).await?;
        if metrics.is_empty() {
            return Ok(Vec::new());
        }
        let all = TimeRange::all();
        let mut statements = Self::selector_statements("first", &metrics, filter, all);
        statements.extend(Self::selector_statements("last", &metrics, filter, all));
        let results = self.query(&statements).await?;
        let (firsts, lasts) = results.split_at(metrics.len());
        let mut found: BTreeMap<SeriesKey, (Timestamp, Timestamp)> = BTreeMap::new();
        for (which, results) in [firsts, lasts].into_iter().enumerate() {
            for (metric, result) in metrics.iter().zip(results) {
                for series in result {
                    let Some(t) = series
                        .column("time")
                        .and_then(|c| series.values.first()?.get(c).cloned())
                    else {
                        continue;
                    };
                    let t = timestamp(&t)?;
                    let key = Self::series_of(series, metric)?;
                    let span = found.entry(key).or_insert((t, t));
                    if which == 0 {
                        span.0 = t;
                    } else {
                        span.1 = t;
                    }
                }
            }
        }
        Ok(found
            .into_iter()
            .filter(|(key, _)| filter.matches(key))
            .map(|(key, (first, last))| SeriesInfo {
                key,
                first_timestamp: first,
                last_timestamp: last,
            })
            .collect())
    }

    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<SeriesWindow>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let metrics = self.metric_fields(filter.metric.as_ref()).await?;
        if metrics.is_empty() {
            return Ok(Vec::new());
        }
        let conditions = text::filter_condition(filter);
        let mut statements: Vec<String> = metrics
            .iter()
            .map(|metric| {
                let field = text::ident(metric.as_str());
                text::grouped_select(
                    &format!(
                        "count({field}) AS \"count\", sum({field}) AS \"sum\", \
                         min({field}) AS \"min\", max({field}) AS \"max\""
                    ),
                    &conditions,
                    range,
                )
            })
            .collect();
        statements.extend(Self::selector_statements("last", &metrics, filter, range));
        let results = self.query(&statements).await?;
        let (reductions, lasts) = results.split_at(metrics.len());
        let mut last: HashMap<SeriesKey, (Timestamp, f64)> = HashMap::new();
        for (metric, result) in metrics.iter().zip(lasts) {
            for series in result {
                let (Some(time), Some(value)) = (series.column("time"), series.column("last"))
                else {
                    continue;
                };
                let Some(row) = series.values.first() else {
                    continue;
                };
                let (Some(t), Some(v)) = (row.get(time), row.get(value).and_then(number)) else {
                    continue;
                };
                last.insert(Self::series_of(series, metric)?, (timestamp(t)?, v));
            }
        }
        let mut found = Vec::new();
        for (metric, result) in metrics.iter().zip(reductions) {
            for series in result {
                let key = Self::series_of(series, metric)?;
                let Some(row) = series.values.first() else {
                    continue;
                };
                let get = |name: &str| {
                    series
                        .column(name)
                        .and_then(|c| row.get(c))
                        .and_then(number)
                };
                let (Some(count), Some(sum), Some(min), Some(max)) =
                    (get("count"), get("sum"), get("min"), get("max"))
                else {
                    continue;
                };
                let Some((last_timestamp, last)) = last.get(&key).copied() else {
                    continue;
                };
                if count < 1.0 || !filter.matches(&key) {
                    continue;
                }
                found.push(SeriesWindow {
                    key,
                    stats: WindowStats {
                        count: count as u64,
                        sum,
                        min,
                        max,
                        last_timestamp,
                        last,
                    },
                });
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn buckets(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        max_points: usize,
    ) -> Result<Vec<Bucket>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let field = text::ident(series.metric.as_str());
        let select = |what: &str| {
            format!(
                "SELECT {what} FROM {} WHERE {} AND {}",
                text::ident(MEASUREMENT),
                text::series_condition(series),
                text::time_range(range)
            )
        };
        let ends = self
            .query(&[
                select(&format!("first({field})")),
                select(&format!("last({field})")),
            ])
            .await?;
        let time_of = |result: &Vec<ResultSeries>| -> Option<serde_json::Value> {
            result
                .iter()
                .find_map(|s| s.values.first()?.get(s.column("time")?).cloned())
        };
        let (Some(first), Some(last)) = (time_of(&ends[0]), time_of(&ends[1])) else {
            return Ok(Vec::new());
        };
        let (first, last) = (timestamp(&first)?, timestamp(&last)?);
        // The buckets downsample() makes: equal widths from the first point (or the
        // range's start), aligned there with GROUP BY time's offset.
        let shape = Downsampler::new(range, first, last, max_points);
        let (start, width) = (shape.start(), shape.width());
        let end = Timestamp::from_millis(last.as_millis() + 1).unwrap_or(Timestamp::MAX);
        let bucketed = TimeRange::new(start, range.end.min(end));
        let statement = format!(
            "SELECT count({field}), mean({field}), min({field}), max({field}), \
             first({field}), last({field}) FROM {} WHERE {} AND {} \
             GROUP BY time({width}ms, {}ms) fill(none)",
            text::ident(MEASUREMENT),
            text::series_condition(series),
            text::time_range(bucketed),
            start.as_millis().rem_euclid(width)
        );
        let mut buckets = Vec::new();
        for result in self.query_one(&statement).await? {
            let columns = ["time", "count", "mean", "min", "max", "first", "last"]
                .map(|name| result.column(name));
            for row in &result.values {
                let value = |i: usize| columns[i].and_then(|c| row.get(c)).and_then(number);
                let Some(t) = columns[0].and_then(|c| row.get(c)) else {
                    continue;
                };
                let (Some(count), Some(mean), Some(min), Some(max), Some(first), Some(last)) =
                    (value(1), value(2), value(3), value(4), value(5), value(6))
                else {
                    continue;
                };
                if count < 1.0 {
                    continue;
                }
                buckets.push(Bucket {
                    start: timestamp(t)?,
                    count: count as u64,
                    mean,
                    min,
                    max,
                    first,
                    last,
                });
            }
        }
        Ok(buckets)
    }

    async fn count(&self, series: &SeriesKey, range: TimeRange) -> Result<u64, StoreError> {
        if range.is_empty() {
            return Ok(0);
        }
        let found = self
            .query_one(&format!(
                "SELECT count({}) FROM {} WHERE {} AND {}",
                text::ident(series.metric.as_str()),
                text::ident(MEASUREMENT),
                text::series_condition(series),
                text::time_range(range)
            ))
            .await?;
        Ok(found
            .iter()
            .find_map(|s| s.values.first()?.get(s.column("count")?).and_then(number))
            .unwrap_or(0.0) as u64)
    }

    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let _one_at_a_time = self.prune.lock().await;
        let before = TimeRange::new(Timestamp::MIN, cutoff);
        if before.is_empty() {
            return Ok(0);
        }
        let counted = self
            .query_one(&format!(
                "SELECT count(*) FROM {} WHERE {}",
                text::ident(MEASUREMENT),
                text::time_range(before)
            ))
            .await?;
        let removed: f64 = counted
            .iter()
            .flat_map(|s| {
                let counts: Vec<usize> = s
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.starts_with("count_"))
                    .map(|(i, _)| i)
                    .collect();
                s.values.iter().flat_map(move |row| {
                    counts
                        .iter()
                        .filter_map(|i| row.get(*i).and_then(number))
                        .collect::<Vec<_>>()
                })
            })
            .sum();
        if removed < 1.0 {
            return Ok(0);
        }
        self.query_one(&format!(
            "DELETE FROM {} WHERE time < {}ms",
            text::ident(MEASUREMENT),
            cutoff.as_millis().min(text::MAX_MS + 1)
        ))
        .await?;
        // Series whose samples all went are gone; count them afresh.
        *self.known.lock().await = None;
        Ok(removed as u64)
    }

    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError> {
        let definition =
            MetricDefinition::custom(definition.metric, definition.direction, definition.range)
                .map_err(StoreError::Invalid)?;
        check_metric_name(&definition.metric).map_err(StoreError::Invalid)?;
        let json = serde_json::json!({
            "direction": direction_name(definition.direction),
            "min": definition.range.min,
            "max": definition.range.max,
        })
        .to_string();
        let mut line = String::new();
        text::key(DEFINITIONS, &mut line);
        line.push_str(",metric=");
        text::key(definition.metric.as_str(), &mut line);
        line.push_str(" definition=");
        text::string_field(&json, &mut line);
        line.push_str(" 0\n");
        self.write_lines(&[line]).await
    }

    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError> {
        let found = self
            .query_one(&format!(
                "SELECT last(\"definition\") FROM {} GROUP BY \"metric\"",
                text::ident(DEFINITIONS)
            ))
            .await?;
        let mut definitions = Vec::new();
        for series in found {
            let Some(name) = series.tags.get("metric") else {
                continue;
            };
            let Some(json) = series
                .column("last")
                .and_then(|c| series.values.first()?.get(c)?.as_str().map(str::to_owned))
            else {
                continue;
            };
            let corrupt = || {
                StoreError::Corrupt(format!(
                    "the definition of metric {name:?} in {DEFINITIONS} is not one modelwatch wrote: {json}"
                ))
            };
            let value: serde_json::Value = serde_json::from_str(&json).map_err(|_| corrupt())?;
            let direction = value
                .get("direction")
                .and_then(|d| d.as_str())
                .and_then(parse_direction)
                .ok_or_else(corrupt)?;
            let bound = |name: &str| value.get(name).and_then(|v| v.as_f64());
            definitions.push(MetricDefinition {
                metric: Metric::parse(name).map_err(|_| corrupt())?,
                direction,
                range: ValueRange {
                    min: bound("min"),
                    max: bound("max"),
                },
            });
        }
        definitions.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(definitions)
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_host_database_and_credentials() {
        let plain = Location::parse("influxdb://127.0.0.1:8086/metrics").unwrap();
        assert_eq!(
            (plain.base.as_str(), plain.database.as_str()),
            ("http://127.0.0.1:8086", "metrics")
        );
        let secret = Location::parse("influxdb://alice:s3cret@db:8086/mw/").unwrap();
        assert_eq!(secret.database, "mw");
        assert_eq!(
            secret.credentials,
            Some(("alice".to_owned(), "s3cret".to_owned()))
        );
        assert_eq!(secret.shown, "influxdb://alice:***@db:8086/mw");
        for bad in [
            "influxdb://host:8086",
            "influxdb://host:8086/",
            "influxdb:///db",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
