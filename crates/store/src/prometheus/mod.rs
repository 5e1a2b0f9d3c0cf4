//! Prometheus as the metric store (`prometheus://HOST:PORT[/PATH][?LABEL=VALUE&…]`):
//! samples go in through the remote-write receiver (`/api/v1/write`, version 1:
//! snappy-compressed protobuf, one request per batch, which Prometheus commits whole or
//! not at all); they come out through the HTTP API: raw points through remote read
//! (`/api/v1/read`, the API that returns samples as stored), everything reduced as PromQL
//! (`/api/v1/query`, `/api/v1/query_range`), the catalogue through `/api/v1/series`. It
//! keeps samples and the custom metrics' definitions; the alerting state lives in a
//! relational store beside it (`--alerts-db`).
//!
//! The data model is the one modelwatch already shows Prometheus users: one family,
//! `modelwatch_model_metric{model, version, metric, dataset}` — the name its `/metrics`
//! exports and its own PromQL API answers, and what its remote-write receiver reads back
//! by default — with `dataset="default"` for the default dataset. One family rather than
//! a name per metric because metric names are free-form (`queue-ms`, `p99.latency` are
//! no Prometheus names) and a dashboard written against modelwatch's PromQL API then
//! works unchanged on Prometheus. The location's `LABEL=VALUE` pairs are added to every
//! series written and matched on every read (as Prometheus's `external_labels`), so
//! several modelwatch deployments share one Prometheus; a series with labels beyond these
//! (the same family scraped from `/metrics`, with `job` and `instance`) is not one of
//! this store's and is not read. Definitions are `modelwatch_metric_definition{metric,
//! direction, min, max}` samples at the time they are declared (their value too).
//!
//! What Prometheus cannot do is declared in [`Capabilities`]: it never replaces a value
//! at a stored timestamp (writing the same value again is a no-op; a different one is
//! refused before anything is written), it accepts samples only within its out-of-order
//! window of its newest sample, PromQL ranges are Go durations (so times end in 2199),
//! and pruning needs its admin API (`--web.enable-admin-api`).
//!
//! PromQL of Prometheus 2 has no function giving a sample's own time in a range, so the
//! first and last point of a series are found by narrowing: a subquery of
//! `timestamp(count_over_time(…))` names the first or last of 1,000 windows holding a
//! sample, then the same inside that window, until a window of a minute is left, which
//! is read raw. Many series are one query per step (`or` of `@`-pinned subqueries).

pub mod proto;
pub mod testing;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::{
    Dataset, Direction, Metric, MetricDefinition, ModelName, Point, Sample, SeriesKey, TimeRange,
    Timestamp, ValidationError, ValueRange, Version, WindowStats,
};
use prost::Message;
use serde::Deserialize;

use crate::known_series::KnownSeries;
use crate::{
    Capabilities, MetricStore, SeriesFilter, SeriesInfo, SeriesLimits, SeriesWindow, StoreError,
};

/// The family every sample is a series of.
pub const FAMILY: &str = "modelwatch_model_metric";
/// The family of the custom metrics' definitions.
pub const DEFINITIONS: &str = "modelwatch_metric_definition";
pub const MODEL_LABEL: &str = "model";
pub const VERSION_LABEL: &str = "version";
pub const METRIC_LABEL: &str = "metric";
pub const DATASET_LABEL: &str = "dataset";
const OWN_LABELS: [&str; 4] = [MODEL_LABEL, VERSION_LABEL, METRIC_LABEL, DATASET_LABEL];
const DEFINITION_LABELS: [&str; 4] = [METRIC_LABEL, "direction", "min", "max"];

/// The last time kept in Prometheus, 2199-12-31T23:59:59.999Z: PromQL's range selectors
/// are Go durations (at most 292 years), and reads span from 1970.
pub const LAST_MS: i64 = 7_258_118_399_999;

/// Windows a narrowing step splits its span into.
const STEPS: i64 = 1_000;
/// A window this short is read raw.
const FINE_MS: i64 = 60_000;
/// Subqueries joined in one query, and queries in one remote read.
const PER_REQUEST: usize = 100;

/// Whether a location names a Prometheus server.
pub fn is_prometheus_location(location: &str) -> bool {
    location.starts_with("prometheus://")
}

/// `prometheus://HOST:PORT[/PATH][?LABEL=VALUE&…]`.
#[derive(Clone, Debug)]
struct Location {
    base: String,
    /// Labels of every series this store writes and reads, sorted by name.
    labels: Vec<(String, String)>,
    shown: String,
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl Location {
    fn parse(location: &str) -> Result<Location, StoreError> {
        let invalid = |reason: String| StoreError::Open {
            path: location.into(),
            reason: format!("{reason} (expected prometheus://HOST:PORT[/PATH][?LABEL=VALUE&…])"),
        };
        let rest = location
            .strip_prefix("prometheus://")
            .ok_or_else(|| invalid("not a prometheus:// location".into()))?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let address = address.trim_end_matches('/');
        if address.is_empty() || address.starts_with('/') || address.contains('@') {
            return Err(invalid("no host named, or credentials in it".into()));
        }
        let mut labels = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("{pair:?} is not LABEL=VALUE")))?;
            if !is_label_name(name)
                || OWN_LABELS.contains(&name)
                || DEFINITION_LABELS.contains(&name)
            {
                return Err(invalid(format!(
                    "{name:?} cannot be a label of the location (a Prometheus label name, \
                     not model, version, metric, dataset, direction, min or max)"
                )));
            }
            if value.is_empty() {
                return Err(invalid(format!("label {name} has no value")));
            }
            labels.push((name.to_owned(), value.to_owned()));
        }
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        Ok(Location {
            base: format!("http://{address}"),
            labels,
            shown: location.to_owned(),
        })
    }
}

/// Equality matchers: a selector in PromQL or remote read.
#[derive(Clone, Debug)]
struct Matchers(Vec<(String, String)>);

/// A PromQL string literal.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

impl Matchers {
    fn promql(&self) -> String {
        let matchers: Vec<String> = self
            .0
            .iter()
            .map(|(name, value)| format!("{name}={}", quote(value)))
            .collect();
        format!("{{{}}}", matchers.join(","))
    }

    fn proto(&self) -> Vec<proto::LabelMatcher> {
        self.0
            .iter()
            .map(|(name, value)| proto::LabelMatcher {
                kind: 0,
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

/// Seconds as PromQL and the HTTP API take them, to the millisecond.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn millis_of_seconds(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

type Labels = BTreeMap<String, String>;

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct VectorItem {
    metric: Labels,
    value: (serde_json::Value, String),
}

#[derive(Debug, Deserialize)]
struct MatrixItem {
    metric: Labels,
    values: Vec<(f64, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edge {
    First,
    Last,
}

/// A span of time (`lo..=hi`, milliseconds) of the series some matchers select.
#[derive(Clone, Debug)]
struct Window {
    matchers: Matchers,
    /// The one series it is of, once known.
    key: Option<SeriesKey>,
    lo: i64,
    hi: i64,
}

/// Prometheus as a [`MetricStore`].
pub struct PrometheusStore {
    client: reqwest::Client,
    location: Location,
    limits: SeriesLimits,
    known: tokio::sync::Mutex<Option<KnownSeries>>,
    prune: tokio::sync::Mutex<()>,
    /// The time of the last definition written, so a later one is later.
    last_definition: AtomicI64,
    closed: AtomicBool,
}

impl std::fmt::Debug for PrometheusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusStore")
            .field("location", &self.location.shown)
            .finish_non_exhaustive()
    }
}

impl PrometheusStore {
    /// Connects, checks the server answers its query API and takes remote writes.
    pub async fn open(location: &str) -> Result<PrometheusStore, StoreError> {
        let location = Location::parse(location)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| StoreError::Connect {
                location: location.shown.clone(),
                reason: e.to_string(),
            })?;
        let store = PrometheusStore {
            client,
            location,
            limits: SeriesLimits::default(),
            known: tokio::sync::Mutex::new(None),
            prune: tokio::sync::Mutex::new(()),
            last_definition: AtomicI64::new(0),
            closed: AtomicBool::new(false),
        };
        let info = store
            .client
            .get(store.url("/api/v1/status/buildinfo"))
            .send()
            .await
            .map_err(|e| store.connect_error(e))?;
        if !info.status().is_success() {
            return Err(StoreError::Connect {
                location: store.location.shown.clone(),
                reason: format!("/api/v1/status/buildinfo answered {}", info.status()),
            });
        }
        store.remote_write(Vec::new()).await?;
        Ok(store)
    }

    /// Refuses batches that would pass `limits` (default: [`SeriesLimits::default`]).
    pub fn with_series_limits(mut self, limits: SeriesLimits) -> Self {
        self.limits = limits;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.location.base)
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

    fn database_error(&self, what: &str, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Database(format!(
            "Prometheus at {}: {what}: {detail}",
            self.location.shown
        ))
    }

    // ---- names ----

    fn family(&self, name: &str, own: &[(&str, &str)]) -> Matchers {
        let mut matchers = vec![("__name__".to_owned(), name.to_owned())];
        matchers.extend(own.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
        matchers.extend(self.location.labels.iter().cloned());
        Matchers(matchers)
    }

    fn series_matchers(&self, key: &SeriesKey) -> Matchers {
        self.family(
            FAMILY,
            &[
                (MODEL_LABEL, key.model.as_str()),
                (VERSION_LABEL, key.version.as_str()),
                (METRIC_LABEL, key.metric.as_str()),
                (DATASET_LABEL, Dataset::name_of(key.dataset.as_ref())),
            ],
        )
    }

    fn filter_matchers(&self, filter: &SeriesFilter) -> Matchers {
        let mut own = Vec::new();
        if let Some(model) = &filter.model {
            own.push((MODEL_LABEL, model.as_str()));
        }
        if let Some(version) = &filter.version {
            own.push((VERSION_LABEL, version.as_str()));
        }
        if let Some(metric) = &filter.metric {
            own.push((METRIC_LABEL, metric.as_str()));
        }
        if let modelwatch_core::DatasetScope::One(dataset) = &filter.dataset {
            own.push((DATASET_LABEL, Dataset::name_of(dataset.as_ref())));
        }
        self.family(FAMILY, &own)
    }

    /// The labels of a series written, sorted by name (as remote write wants them).
    fn labels_of(&self, key: &SeriesKey) -> Vec<proto::Label> {
        let mut labels: Vec<proto::Label> = self
            .series_matchers(key)
            .0
            .into_iter()
            .map(|(name, value)| proto::Label { name, value })
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels
    }

    /// Whether a series' labels (its name aside) are the location's and `own`, no more.
    fn is_ours<'a>(&self, labels: impl Iterator<Item = (&'a str, &'a str)>, own: &[&str]) -> bool {
        let mut extra = 0;
        for (name, value) in labels {
            if name == "__name__" || own.contains(&name) {
                continue;
            }
            match self.location.labels.iter().find(|(n, _)| n == name) {
                Some((_, wanted)) if wanted == value => extra += 1,
                _ => return false,
            }
        }
        extra == self.location.labels.len()
    }

    /// The series a label set names, when it is one of this store's.
    fn key_of<'a>(
        &self,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Option<SeriesKey> {
        if !self.is_ours(labels.clone(), &OWN_LABELS) {
            return None;
        }
        let get = |name: &str| {
            labels
                .clone()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
                .unwrap_or("")
        };
        let key = parse_key(
            get(MODEL_LABEL),
            get(VERSION_LABEL),
            get(METRIC_LABEL),
            get(DATASET_LABEL),
        );
        if key.is_none() {
            tracing::debug!(labels = ?labels.collect::<Vec<_>>(), "prometheus: a series of {FAMILY} with labels modelwatch cannot read is skipped");
        }
        key
    }

    fn key_of_map(&self, labels: &Labels) -> Option<SeriesKey> {
        self.key_of(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    fn key_of_proto(&self, labels: &[proto::Label]) -> Option<SeriesKey> {
        self.key_of(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
    }

    // ---- the HTTP API ----

    async fn api(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<serde_json::Value, StoreError> {
        self.check_open()?;
        let response = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .map_err(|e| self.connect_error(e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.connect_error(e))?;
        let answer: ApiAnswer = serde_json::from_slice(&body).map_err(|e| {
            self.database_error(
                &format!("{path} answered {status} with what is not an API answer ({e})"),
                String::from_utf8_lossy(&body[..body.len().min(300)]),
            )
        })?;
        if answer.status != "success" {
            return Err(self.database_error(
                path,
                format!(
                    "{} ({})",
                    answer.error.unwrap_or_default(),
                    answer.error_type.unwrap_or_default()
                ),
            ));
        }
        Ok(answer.data)
    }

    /// An instant query's vector.
    async fn instant(&self, expr: &str, at_ms: i64) -> Result<Vec<(Labels, f64)>, StoreError> {
        let data = self
            .api(
                "/api/v1/query",
                &[("query", expr.to_owned()), ("time", seconds(at_ms))],
            )
            .await?;
        let data: QueryData = serde_json::from_value(data)
            .map_err(|e| self.database_error("a query answered no result", e))?;
        if data.result_type != "vector" {
            return Err(self.database_error("a query answered", format!("a {}", data.result_type)));
        }
        let items: Vec<VectorItem> = serde_json::from_value(data.result)
            .map_err(|e| self.database_error("a query answered an unreadable vector", e))?;
        items
            .into_iter()
            .map(|item| {
                let value = item.value.1.parse::<f64>().map_err(|e| {
                    self.database_error("a query answered a value that is no number", e)
                })?;
                Ok((item.metric, value))
            })
            .collect()
    }

    /// A range query's matrix: each series' `(time ms, value)` steps.
    async fn range_query(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<(Labels, Vec<(i64, f64)>)>, StoreError> {
        let data = self
            .api(
                "/api/v1/query_range",
                &[
                    ("query", expr.to_owned()),
                    ("start", seconds(start_ms)),
                    ("end", seconds(end_ms)),
                    ("step", seconds(step_ms)),
                ],
            )
            .await?;
        let data: QueryData = serde_json::from_value(data)
            .map_err(|e| self.database_error("a range query answered no result", e))?;
        let items: Vec<MatrixItem> = serde_json::from_value(data.result)
            .map_err(|e| self.database_error("a range query answered an unreadable matrix", e))?;
        items
            .into_iter()
            .map(|item| {
                let steps = item
                    .values
                    .iter()
                    .map(|(t, v)| {
                        v.parse::<f64>()
                            .map(|v| (millis_of_seconds(*t), v))
                            .map_err(|e| self.database_error("a range query answered", e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((item.metric, steps))
            })
            .collect()
    }

    /// The label sets of the series the matchers select.
    async fn series_labels(&self, matchers: &Matchers) -> Result<Vec<Labels>, StoreError> {
        let data = self
            .api("/api/v1/series", &[("match[]", matchers.promql())])
            .await?;
        serde_json::from_value(data).map_err(|e| self.database_error("/api/v1/series answered", e))
    }

    /// Remote read: each query's series with their samples, in query order.
    async fn remote_read(
        &self,
        queries: Vec<proto::Query>,
    ) -> Result<Vec<Vec<proto::TimeSeries>>, StoreError> {
        let mut found = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(PER_REQUEST) {
            self.check_open()?;
            let request = proto::ReadRequest {
                queries: chunk.to_vec(),
            };
            let body = snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .map_err(|e| self.database_error("a remote read could not be compressed", e))?;
            let response = self
                .client
                .post(self.url("/api/v1/read"))
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .header("X-Prometheus-Remote-Read-Version", "0.1.0")
                .body(body)
                .send()
                .await
                .map_err(|e| self.connect_error(e))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|e| self.connect_error(e))?;
            if !status.is_success() {
                return Err(self.database_error(
                    &format!("a remote read (/api/v1/read) answered {status}"),
                    String::from_utf8_lossy(&body[..body.len().min(300)]).trim(),
                ));
            }
            let raw = snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map_err(|e| self.database_error("a remote read answered what is not snappy", e))?;
            let answer = proto::ReadResponse::decode(raw.as_slice()).map_err(|e| {
                self.database_error("a remote read answered what is not a ReadResponse", e)
            })?;
            if answer.results.len() != chunk.len() {
                return Err(self.database_error(
                    "a remote read answered",
                    format!(
                        "{} results to {} queries",
                        answer.results.len(),
                        chunk.len()
                    ),
                ));
            }
            found.extend(answer.results.into_iter().map(|r| r.timeseries));
        }
        Ok(found)
    }

    /// One remote write of these series (with none: checks the receiver is on).
    async fn remote_write(&self, series: Vec<proto::TimeSeries>) -> Result<(), StoreError> {
        self.check_open()?;
        let body = snap::raw::Encoder::new()
            .compress_vec(&proto::WriteRequest { timeseries: series }.encode_to_vec())
            .map_err(|e| self.database_error("a remote write could not be compressed", e))?;
        let response = self
            .client
            .post(self.url("/api/v1/write"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(|e| self.connect_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let hint = if status == reqwest::StatusCode::NOT_FOUND {
            " (start Prometheus with --web.enable-remote-write-receiver)"
        } else if text.contains("out of bounds") || text.contains("out of order") {
            " (a sample older than Prometheus's out-of-order window of its newest sample; \
             set storage.tsdb.out_of_order_time_window in its configuration)"
        } else {
            ""
        };
        Err(self.database_error(
            &format!("a remote write was refused ({status}){hint}"),
            text.trim(),
        ))
    }

    // ---- reads ----

    /// Each query's points of the one series `key`, with `lo..=hi` timestamps.
    async fn read_points(
        &self,
        requests: &[(SeriesKey, i64, i64)],
    ) -> Result<Vec<Vec<Point>>, StoreError> {
        let queries: Vec<proto::Query> = requests
            .iter()
            .map(|(key, lo, hi)| proto::Query {
                start_timestamp_ms: *lo,
                end_timestamp_ms: *hi,
                matchers: self.series_matchers(key).proto(),
            })
            .collect();
        let results = self.remote_read(queries).await?;
        let mut found = Vec::with_capacity(requests.len());
        for ((key, _, _), series) in requests.iter().zip(results) {
            let mut points = Vec::new();
            for one in series {
                if self.key_of_proto(&one.labels).as_ref() != Some(key) {
                    continue;
                }
                for s in one.samples {
                    if let Ok(timestamp) = Timestamp::from_millis(s.timestamp) {
                        points.push(Point {
                            timestamp,
                            value: s.value,
                            dataset: key.dataset.clone(),
                        });
                    }
                }
            }
            points.sort_by_key(|p| p.timestamp);
            found.push(points);
        }
        Ok(found)
    }

    /// Every series of a filter with its points in `lo..=hi` (read raw).
    async fn read_filtered(
        &self,
        matchers: &Matchers,
        lo: i64,
        hi: i64,
    ) -> Result<BTreeMap<SeriesKey, Vec<Point>>, StoreError> {
        let mut results = self
            .remote_read(vec![proto::Query {
                start_timestamp_ms: lo,
                end_timestamp_ms: hi,
                matchers: matchers.proto(),
            }])
            .await?;
        let mut found = BTreeMap::new();
        for one in results.pop().unwrap_or_default() {
            let Some(key) = self.key_of_proto(&one.labels) else {
                continue;
            };
            let mut points: Vec<Point> = one
                .samples
                .iter()
                .filter_map(|s| {
                    Some(Point {
                        timestamp: Timestamp::from_millis(s.timestamp).ok()?,
                        value: s.value,
                        dataset: key.dataset.clone(),
                    })
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by_key(|p| p.timestamp);
            found.insert(key, points);
        }
        Ok(found)
    }

    /// The subquery naming, of `window`'s 1,000 sub-windows, the first or last one that
    /// holds a sample; with the offset that maps its answer back to a window's end.
    fn narrowing(window: &Window, edge: Edge) -> (String, i64, i64) {
        let span = window.hi - window.lo + 1;
        let step = (span + STEPS - 1) / STEPS;
        let windows = (span + step - 1) / step;
        // Windows [end - step + 1, end], their ends `first_end + j * step`.
        let first_end = match edge {
            Edge::First => window.lo + step - 1,
            Edge::Last => window.hi - (windows - 1) * step,
        };
        let last_end = first_end + (windows - 1) * step;
        let offset = (step - last_end.rem_euclid(step)) % step;
        let at = last_end + offset;
        let reduce = match edge {
            Edge::First => "min_over_time",
            Edge::Last => "max_over_time",
        };
        let offset_text = if offset > 0 {
            format!(" offset {offset}ms")
        } else {
            String::new()
        };
        let expr = format!(
            "{reduce}(timestamp(count_over_time({}[{}ms]{offset_text}))[{}ms:{step}ms] @ {})",
            window.matchers.promql(),
            step - 1,
            (windows - 1) * step,
            seconds(at)
        );
        (expr, step, offset)
    }

    /// The first or last point in each window, of every series its matchers select.
    async fn edges(
        &self,
        mut windows: Vec<Window>,
        edge: Edge,
    ) -> Result<BTreeMap<SeriesKey, Point>, StoreError> {
        let mut found: BTreeMap<SeriesKey, Point> = BTreeMap::new();
        let better = |new: &Point, old: &Point| match edge {
            Edge::First => new.timestamp < old.timestamp,
            Edge::Last => new.timestamp > old.timestamp,
        };
        while !windows.is_empty() {
            windows.retain(|w| w.lo <= w.hi);
            let (fine, coarse): (Vec<Window>, Vec<Window>) =
                windows.into_iter().partition(|w| w.hi - w.lo < FINE_MS);
            // Fine windows: read raw.
            let (single, filtered): (Vec<Window>, Vec<Window>) =
                fine.into_iter().partition(|w| w.key.is_some());
            let requests: Vec<(SeriesKey, i64, i64)> = single
                .into_iter()
                .filter_map(|w| Some((w.key?, w.lo, w.hi)))
                .collect();
            let mut raw: Vec<(SeriesKey, Vec<Point>)> = Vec::new();
            for ((key, _, _), points) in requests.iter().zip(self.read_points(&requests).await?) {
                raw.push((key.clone(), points));
            }
            for window in filtered {
                raw.extend(
                    self.read_filtered(&window.matchers, window.lo, window.hi)
                        .await?,
                );
            }
            for (key, points) in raw {
                let point = match edge {
                    Edge::First => points.into_iter().next(),
                    Edge::Last => points.into_iter().next_back(),
                };
                if let Some(point) = point {
                    match found.get(&key) {
                        Some(old) if !better(&point, old) => {}
                        _ => {
                            found.insert(key, point);
                        }
                    }
                }
            }
            // Coarse windows: one narrowing step each, many per query.
            let mut next = Vec::new();
            for chunk in coarse.chunks(PER_REQUEST) {
                let parts: Vec<(String, i64, i64)> =
                    chunk.iter().map(|w| Self::narrowing(w, edge)).collect();
                let expr = parts
                    .iter()
                    .map(|(e, _, _)| e.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ");
                let at = chunk.iter().map(|w| w.hi).max().unwrap_or(0);
                for (labels, value) in self.instant(&expr, at).await? {
                    let Some(key) = self.key_of_map(&labels) else {
                        continue;
                    };
                    // The window (and its step) this series was narrowed in.
                    let Some((window, (_, step, offset))) = chunk
                        .iter()
                        .zip(&parts)
                        .find(|(w, _)| w.key.as_ref().is_none_or(|k| *k == key))
                    else {
                        continue;
                    };
                    let end = millis_of_seconds(value) - offset;
                    next.push(Window {
                        matchers: self.series_matchers(&key),
                        key: Some(key),
                        lo: (end - step + 1).max(window.lo),
                        hi: end.min(window.hi),
                    });
                }
            }
            windows = next;
        }
        Ok(found)
    }

    fn whole(
        &self,
        matchers: Matchers,
        key: Option<SeriesKey>,
        range: TimeRange,
    ) -> Option<Window> {
        let lo = range.start.as_millis();
        let hi = (range.end.as_millis() - 1).min(LAST_MS);
        (!range.is_empty() && lo <= hi).then_some(Window {
            matchers,
            key,
            lo,
            hi,
        })
    }

    async fn load_known(&self) -> Result<KnownSeries, StoreError> {
        let listed = self
            .series_labels(&self.filter_matchers(&SeriesFilter::default()))
            .await?;
        Ok(KnownSeries::of(
            listed.iter().filter_map(|labels| self.key_of_map(labels)),
        ))
    }

    /// Refuses a batch that would pass the series limits; counts its new series as
    /// known once it passes.
    async fn admit(
        &self,
        series: &BTreeMap<SeriesKey, BTreeMap<i64, (f64, usize)>>,
    ) -> Result<(), StoreError> {
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
        known.admit(series.keys().cloned(), &self.limits)
    }

    /// count, sum, min and max of each series in `window` (at least a minute long), as
    /// one PromQL query.
    async fn reductions(
        &self,
        window: &Window,
    ) -> Result<HashMap<SeriesKey, [f64; 4]>, StoreError> {
        let selector = format!("{}[{}ms]", window.matchers.promql(), window.hi - window.lo);
        let expr = ["count", "sum", "min", "max"]
            .iter()
            .map(|f| {
                format!("label_replace({f}_over_time({selector}), \"__mw\", \"{f}\", \"\", \"\")")
            })
            .collect::<Vec<_>>()
            .join(" or ");
        let mut found: HashMap<SeriesKey, [f64; 4]> = HashMap::new();
        for (mut labels, value) in self.instant(&expr, window.hi).await? {
            let Some(which) = labels.remove("__mw") else {
                continue;
            };
            let Some(key) = self.key_of_map(&labels) else {
                continue;
            };
            let slot = match which.as_str() {
                "count" => 0,
                "sum" => 1,
                "min" => 2,
                _ => 3,
            };
            found.entry(key).or_insert([f64::NAN; 4])[slot] = value;
        }
        Ok(found)
    }

    /// Where a page of about `target` points from `lo` ends (exclusive), within `lo..=hi`.
    async fn page_end_in(
        &self,
        key: &SeriesKey,
        mut lo: i64,
        mut hi: i64,
        mut target: usize,
    ) -> Result<Option<i64>, StoreError> {
        loop {
            if lo > hi {
                return Ok(None);
            }
            if hi - lo < FINE_MS {
                let points = self.read_points(&[(key.clone(), lo, hi)]).await?;
                return Ok(points
                    .into_iter()
                    .next()
                    .and_then(|p| p.get(target).map(|p| p.timestamp.as_millis())));
            }
            let span = hi - lo + 1;
            let step = (span + STEPS - 1) / STEPS;
            let windows = (span + step - 1) / step;
            let first_end = lo + step - 1;
            let expr = format!(
                "count_over_time({}[{}ms])",
                self.series_matchers(key).promql(),
                step - 1
            );
            let counts = self
                .range_query(&expr, first_end, first_end + (windows - 1) * step, step)
                .await?;
            let Some((_, steps)) = counts
                .into_iter()
                .find(|(l, _)| self.key_of_map(l).as_ref() == Some(key))
            else {
                return Ok(None);
            };
            let mut crossed = None;
            for (end, count) in steps {
                let count = count as usize;
                if count > target {
                    crossed = Some(end);
                    break;
                }
                target -= count;
            }
            let Some(end) = crossed else {
                return Ok(None);
            };
            lo = (end - step + 1).max(lo);
            hi = end.min(hi);
        }
    }
}

fn parse_key(model: &str, version: &str, metric: &str, dataset: &str) -> Option<SeriesKey> {
    Some(SeriesKey {
        model: ModelName::parse(model).ok()?,
        version: Version::parse(version).ok()?,
        metric: Metric::parse(metric).ok()?,
        dataset: Dataset::parse_optional(dataset).ok()?,
    })
}

fn direction_of(name: &str) -> Option<Direction> {
    [Direction::HigherIsBetter, Direction::LowerIsBetter]
        .into_iter()
        .find(|d| d.as_str() == name)
}

#[async_trait]
impl MetricStore for PrometheusStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            last_timestamp: Timestamp::from_millis(LAST_MS).unwrap_or(Timestamp::MAX),
            reserved_metrics: &[],
            atomic_batches: true,
            exact_prune_counts_across_servers: false,
            replaces_samples: false,
            ..Capabilities::FULL
        }
    }

    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        for (index, sample) in samples.iter().enumerate() {
            if sample.timestamp.as_millis() > LAST_MS {
                return Err(StoreError::InvalidSample {
                    index,
                    error: ValidationError::new(
                        "timestamp",
                        format!(
                            "{} ms is after the last time modelwatch keeps in Prometheus \
                             ({LAST_MS} ms, the end of 2199: PromQL ranges are at most 292 years)",
                            sample.timestamp.as_millis()
                        ),
                    ),
                });
            }
        }
        let custom = self.custom_metrics().await?;
        crate::validate_batch(&samples, &custom)?;
        // Each series' samples by time; the last write of a time in the batch wins.
        let mut series: BTreeMap<SeriesKey, BTreeMap<i64, (f64, usize)>> = BTreeMap::new();
        for (index, sample) in samples.iter().enumerate() {
            series
                .entry(sample.series())
                .or_default()
                .insert(sample.timestamp.as_millis(), (sample.value, index));
        }
        self.admit(&series).await?;
        // Prometheus keeps the first value written at a time: what is stored again is
        // left out, a different value is refused.
        let spans: Vec<(SeriesKey, i64, i64)> = series
            .iter()
            .filter_map(|(key, points)| {
                Some((
                    key.clone(),
                    *points.keys().next()?,
                    *points.keys().next_back()?,
                ))
            })
            .collect();
        let stored = self.read_points(&spans).await?;
        let mut conflict: Option<(usize, String)> = None;
        for ((key, _, _), stored) in spans.iter().zip(stored) {
            let Some(points) = series.get_mut(key) else {
                continue;
            };
            for point in stored {
                let t = point.timestamp.as_millis();
                let Some((value, index)) = points.get(&t).copied() else {
                    continue;
                };
                if value.to_bits() == point.value.to_bits() {
                    points.remove(&t);
                } else if conflict.as_ref().is_none_or(|(i, _)| index < *i) {
                    conflict = Some((
                        index,
                        format!(
                            "{key} already has {} at {t} ms; Prometheus cannot replace a stored \
                             value (it keeps the first one written)",
                            point.value
                        ),
                    ));
                }
            }
        }
        if let Some((index, message)) = conflict {
            return Err(StoreError::InvalidSample {
                index,
                error: ValidationError::new("timestamp", message),
            });
        }
        let timeseries: Vec<proto::TimeSeries> = series
            .iter()
            .filter(|(_, points)| !points.is_empty())
            .map(|(key, points)| proto::TimeSeries {
                labels: self.labels_of(key),
                samples: points
                    .iter()
                    .map(|(t, (value, _))| proto::Sample {
                        value: *value,
                        timestamp: *t,
                    })
                    .collect(),
            })
            .collect();
        if timeseries.is_empty() {
            return Ok(());
        }
        self.remote_write(timeseries).await
    }

    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError> {
        let mut found = self.range_many(&[(series.clone(), range)]).await?;
        Ok(found.pop().unwrap_or_default())
    }

    async fn range_many(
        &self,
        requests: &[(SeriesKey, TimeRange)],
    ) -> Result<Vec<Vec<Point>>, StoreError> {
        let asked: Vec<(usize, (SeriesKey, i64, i64))> = requests
            .iter()
            .enumerate()
            .filter_map(|(i, (key, range))| {
                let window = self.whole(Matchers(Vec::new()), None, *range)?;
                Some((i, (key.clone(), window.lo, window.hi)))
            })
            .collect();
        let reads: Vec<(SeriesKey, i64, i64)> = asked.iter().map(|(_, r)| r.clone()).collect();
        let mut found = vec![Vec::new(); requests.len()];
        for ((i, _), points) in asked.iter().zip(self.read_points(&reads).await?) {
            found[*i] = points;
        }
        Ok(found)
    }

    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError> {
        let mut found = self.latest_many(std::slice::from_ref(series)).await?;
        Ok(found.pop().flatten())
    }

    async fn latest_many(&self, series: &[SeriesKey]) -> Result<Vec<Option<Point>>, StoreError> {
        let windows: Vec<Window> = series
            .iter()
            .filter_map(|key| {
                self.whole(
                    self.series_matchers(key),
                    Some(key.clone()),
                    TimeRange::all(),
                )
            })
            .collect();
        let mut found = self.edges(windows, Edge::Last).await?;
        Ok(series.iter().map(|key| found.remove(key)).collect())
    }

    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        let Some(window) = self.whole(Matchers(Vec::new()), None, range) else {
            return Ok(range.end);
        };
        Ok(
            match self
                .page_end_in(series, window.lo, window.hi, target.max(1))
                .await?
            {
                Some(ms) => Timestamp::from_millis(ms).unwrap_or(range.end),
                None => range.end,
            },
        )
    }

    async fn list_series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesInfo>, StoreError> {
        let Some(window) = self.whole(self.filter_matchers(filter), None, TimeRange::all()) else {
            return Ok(Vec::new());
        };
        let (firsts, lasts) = tokio::try_join!(
            self.edges(vec![window.clone()], Edge::First),
            self.edges(vec![window], Edge::Last)
        )?;
        Ok(firsts
            .into_iter()
            .filter(|(key, _)| filter.matches(key))
            .filter_map(|(key, first)| {
                let last = lasts.get(&key)?.timestamp;
                Some(SeriesInfo {
                    key,
                    first_timestamp: first.timestamp,
                    last_timestamp: last,
                })
            })
            .collect())
    }

    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<SeriesWindow>, StoreError> {
        let Some(window) = self.whole(self.filter_matchers(filter), None, range) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        if window.hi - window.lo < FINE_MS {
            for (key, points) in self
                .read_filtered(&window.matchers, window.lo, window.hi)
                .await?
            {
                if let (true, Some(stats)) = (filter.matches(&key), WindowStats::of_points(&points))
                {
                    found.push(SeriesWindow { key, stats });
                }
            }
            return Ok(found);
        }
        let (reduced, lasts) = tokio::try_join!(
            self.reductions(&window),
            self.edges(vec![window.clone()], Edge::Last)
        )?;
        for (key, last) in lasts {
            let Some([count, sum, min, max]) = reduced.get(&key).copied() else {
                continue;
            };
            if !filter.matches(&key) || count.is_nan() || count < 1.0 {
                continue;
            }
            found.push(SeriesWindow {
                key,
                stats: WindowStats {
                    count: count as u64,
                    sum,
                    min,
                    max,
                    last_timestamp: last.timestamp,
                    last: last.value,
                },
            });
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn count(&self, series: &SeriesKey, range: TimeRange) -> Result<u64, StoreError> {
        let Some(window) = self.whole(self.series_matchers(series), Some(series.clone()), range)
        else {
            return Ok(0);
        };
        if window.hi - window.lo < FINE_MS {
            return Ok(self.range(series, range).await?.len() as u64);
        }
        let reduced = self.reductions(&window).await?;
        Ok(reduced.get(series).map_or(0, |r| r[0] as u64))
    }

    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let _one_at_a_time = self.prune.lock().await;
        let all = self.filter_matchers(&SeriesFilter::default());
        let Some(window) = self.whole(all.clone(), None, TimeRange::new(Timestamp::MIN, cutoff))
        else {
            return Ok(0);
        };
        let removed: u64 = if window.hi - window.lo < FINE_MS {
            self.read_filtered(&all, window.lo, window.hi)
                .await?
                .values()
                .map(|p| p.len() as u64)
                .sum()
        } else {
            self.reductions(&window)
                .await?
                .values()
                .map(|r| if r[0].is_nan() { 0 } else { r[0] as u64 })
                .sum()
        };
        if removed == 0 {
            return Ok(0);
        }
        self.api(
            "/api/v1/admin/tsdb/delete_series",
            &[
                ("match[]", all.promql()),
                ("start", seconds(window.lo)),
                ("end", seconds(window.hi)),
            ],
        )
        .await
        .or_else(|error| match error {
            // The admin API answers 204 with no body.
            StoreError::Database(text) if text.contains("EOF while parsing") => {
                Ok(serde_json::Value::Null)
            }
            StoreError::Database(text) => Err(StoreError::Database(format!(
                "{text} (pruning needs Prometheus's admin API: --web.enable-admin-api)"
            ))),
            other => Err(other),
        })?;
        *self.known.lock().await = None;
        Ok(removed)
    }

    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError> {
        let definition =
            MetricDefinition::custom(definition.metric, definition.direction, definition.range)
                .map_err(StoreError::Invalid)?;
        let previous = self.last_definition.load(Ordering::Acquire);
        let at = now_ms().max(previous + 1);
        self.last_definition.fetch_max(at, Ordering::AcqRel);
        let bound = |b: Option<f64>| b.map(|b| b.to_string()).unwrap_or_default();
        let (min, max) = (bound(definition.range.min), bound(definition.range.max));
        let mut labels: Vec<proto::Label> = self
            .family(
                DEFINITIONS,
                &[
                    (METRIC_LABEL, definition.metric.as_str()),
                    ("direction", definition.direction.as_str()),
                    ("min", &min),
                    ("max", &max),
                ],
            )
            .0
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| proto::Label { name, value })
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        self.remote_write(vec![proto::TimeSeries {
            labels,
            samples: vec![proto::Sample {
                value: at as f64,
                timestamp: at,
            }],
        }])
        .await
    }

    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError> {
        let at = now_ms().max(self.last_definition.load(Ordering::Acquire)) + 60_000;
        let expr = format!(
            "max_over_time({}[{at}ms])",
            self.family(DEFINITIONS, &[]).promql()
        );
        let mut latest: BTreeMap<String, (f64, MetricDefinition)> = BTreeMap::new();
        for (labels, value) in self.instant(&expr, at).await? {
            if !self.is_ours(
                labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                &DEFINITION_LABELS,
            ) {
                continue;
            }
            let get = |name: &str| labels.get(name).map(String::as_str).unwrap_or("");
            let corrupt = || {
                StoreError::Corrupt(format!(
                    "a {DEFINITIONS} series is not one modelwatch wrote: {labels:?}"
                ))
            };
            let bound = |name: &str| -> Result<Option<f64>, StoreError> {
                match get(name) {
                    "" => Ok(None),
                    text => text.parse().map(Some).map_err(|_| corrupt()),
                }
            };
            let definition = MetricDefinition {
                metric: Metric::parse(get(METRIC_LABEL)).map_err(|_| corrupt())?,
                direction: direction_of(get("direction")).ok_or_else(corrupt)?,
                range: ValueRange {
                    min: bound("min")?,
                    max: bound("max")?,
                },
            };
            let name = definition.metric.as_str().to_owned();
            if latest.get(&name).is_none_or(|(at, _)| value > *at) {
                latest.insert(name, (value, definition));
            }
        }
        Ok(latest.into_values().map(|(_, d)| d).collect())
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
    fn locations_name_the_server_and_labels() {
        let plain = Location::parse("prometheus://127.0.0.1:9090").unwrap();
        assert_eq!(plain.base, "http://127.0.0.1:9090");
        assert!(plain.labels.is_empty());
        let labelled =
            Location::parse("prometheus://prom:9090/prefix/?env=staging&cluster=eu").unwrap();
        assert_eq!(labelled.base, "http://prom:9090/prefix");
        assert_eq!(
            labelled.labels,
            [
                ("cluster".into(), "eu".into()),
                ("env".into(), "staging".into())
            ]
        );
        for bad in [
            "prometheus://",
            "prometheus://h:9090?model=x",
            "prometheus://h:9090?__name__=x",
            "prometheus://h:9090?env",
            "prometheus://h:9090?env=",
            "prometheus://h:9090?1x=y",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_quote_their_values() {
        let matchers = Matchers(vec![
            ("__name__".into(), FAMILY.into()),
            ("model".into(), "a\"b\\c".into()),
        ]);
        assert_eq!(
            matchers.promql(),
            r#"{__name__="modelwatch_model_metric",model="a\"b\\c"}"#
        );
        assert_eq!(seconds(1_700_000_000_123), "1700000000.123");
        assert_eq!(seconds(5), "0.005");
    }

    #[test]
    fn narrowing_windows_end_at_the_span_end_or_start() {
        let window = |lo, hi| Window {
            matchers: Matchers(vec![("__name__".into(), FAMILY.into())]),
            key: None,
            lo,
            hi,
        };
        // Last: the windows end at hi, so the query's step (at - offset) maps to hi.
        let (expr, step, offset) = PrometheusStore::narrowing(&window(0, 999_999), Edge::Last);
        assert_eq!(step, 1_000);
        assert_eq!((999_999 + offset) % step, 0);
        assert!(
            expr.starts_with("max_over_time(timestamp(count_over_time("),
            "{expr}"
        );
        // First: the first window starts at lo.
        let (_, step, offset) = PrometheusStore::narrowing(&window(123, 1_000_122), Edge::First);
        assert_eq!((123 + step - 1 + offset) % step, 0);
    }
}
