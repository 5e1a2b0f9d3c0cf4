//! Amazon CloudWatch as the metric store (`cloudwatch://REGION/NAMESPACE[?endpoint=URL]
//! [&resolution=1s]`): samples go in through `PutMetricData` (high-resolution metrics,
//! at most 1,000 a request), come out through `GetMetricData` (every statistic pushed
//! down: `SampleCount`, `Sum`, `Minimum`, `Maximum`, `Average`), and the catalogue
//! through `ListMetrics`. It keeps samples and the custom metrics' definitions; the
//! alerting state lives in a relational store beside it (`--alerts-db`).
//!
//! The data model is what a CloudWatch user would name: in the location's namespace, one
//! metric per modelwatch metric (`MetricName` = `accuracy`, `latency`, a custom name),
//! with the dimensions `Model`, `Version` and `Dataset` (`default` for the default
//! dataset), so the console's metric browser shows Namespace → Model, Version, Dataset →
//! metric. Definitions of custom metrics are the metric `ModelwatchMetricDefinition`
//! with the dimensions `Metric`, `Direction`, `Min` and `Max` (the last two when bounded),
//! valued at the time they are declared; no series has that set of dimensions.
//!
//! What CloudWatch cannot do is declared in [`Capabilities`]:
//! - it keeps time to the second: a sample is stored at the start of its second, and the
//!   samples of one second of a series are one point ([`Capabilities::resolution`]);
//! - it never replaces a value: a second datum at a stored time is aggregated with the
//!   first (their average is read back), so a different value at a stored second is
//!   refused before anything is written, and the same value again is a no-op (checked by
//!   reading first: two servers writing one second at once can still both land);
//! - it deletes nothing on request: its own retention (15 months) applies, and
//!   [`MetricStore::delete_samples_before`] removes nothing;
//! - a batch of more than 1,000 samples is several requests, not atomic.
//!
//! Reads find a series' points by narrowing: `SampleCount` over at most 1,000 periods
//! names the periods holding samples, then the same inside each, until a window is short
//! enough to read at the finest period CloudWatch keeps for its age. CloudWatch rolls
//! high-resolution data up as it ages (1 s for 3 hours, 1 minute for 15 days, 5 minutes
//! for 63 days, then an hour): with the default `resolution=aws` a point older than
//! 3 hours comes back as the average of its minute (and so on), stamped at the minute's
//! start. `resolution=1s` reads every age at one second: what an emulator without
//! roll-up keeps, or data younger than 3 hours.

pub mod credentials;
pub mod testing;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::{
    Dataset, Direction, Metric, MetricDefinition, ModelName, Point, Sample, SeriesKey, TimeRange,
    Timestamp, ValidationError, ValueRange, Version, WindowStats,
};

use crate::known_series::KnownSeries;
use crate::{
    Capabilities, MetricStore, SeriesFilter, SeriesInfo, SeriesLimits, SeriesWindow, StoreError,
};
use wire::{Client, GetMetricDataResponse, ListMetricsResponse, WireError};

pub const MODEL_DIMENSION: &str = "Model";
pub const VERSION_DIMENSION: &str = "Version";
pub const DATASET_DIMENSION: &str = "Dataset";
/// The metric of the custom metrics' definitions.
pub const DEFINITIONS: &str = "ModelwatchMetricDefinition";

/// The last time kept, 9989-12-31T23:59:59Z: a read's last coarse period (up to a
/// thousandth of all time, 8 years) must end before the year 10000 that CloudWatch's
/// (and its emulators') dates stop at.
pub const LAST_SECOND: i64 = 253_086_767_999;
/// Data items in one `PutMetricData` (CloudWatch's limit).
const PER_PUT: usize = 1_000;
/// Queries in one `GetMetricData` (CloudWatch's limit).
const PER_GET: usize = 500;
/// Periods a narrowing step splits its window into, at most.
const STEPS: i64 = 1_000;
/// A window of at most this many finest periods is read point by point.
const FINE_STEPS: i64 = 3_600;
/// A window is read point by point when its periods times its samples are at most
/// this: moto's read costs that (each period scans the window's samples); CloudWatch's
/// costs the points returned, so this only means more, smaller requests there.
const FINE_WORK: f64 = 100_000.0;
/// CloudWatch keeps no value beyond ±2^360.
const VALUE_LIMIT: f64 = 2.348_542_582_773_833_3e108;

/// Whether a location names CloudWatch.
pub fn is_cloudwatch_location(location: &str) -> bool {
    location.starts_with("cloudwatch://")
}

/// The finest period read at each age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    /// CloudWatch's roll-up schedule.
    Aws,
    /// One second at every age.
    Second,
}

/// `cloudwatch://REGION/NAMESPACE[?endpoint=URL][&resolution=aws|1s]`.
#[derive(Clone, Debug)]
struct Location {
    region: String,
    namespace: String,
    /// The endpoint the location names, if any.
    endpoint: Option<String>,
    resolution: Resolution,
    shown: String,
}

fn decode_component(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{text:?} has a bad %-escape"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8"))
}

impl Location {
    fn parse(location: &str) -> Result<Location, StoreError> {
        let invalid = |reason: String| {
            StoreError::Open {
            path: location.into(),
            reason: format!(
                "{reason} (expected cloudwatch://REGION/NAMESPACE[?endpoint=URL][&resolution=aws|1s])"
            ),
        }
        };
        let rest = location
            .strip_prefix("cloudwatch://")
            .ok_or_else(|| invalid("not a cloudwatch:// location".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (region, namespace) = path
            .split_once('/')
            .ok_or_else(|| invalid("no namespace named".into()))?;
        let namespace = decode_component(namespace.trim_end_matches('/')).map_err(invalid)?;
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(format!("{region:?} is not an AWS region")));
        }
        if namespace.is_empty()
            || namespace.len() > 255
            || namespace.starts_with("AWS/")
            || !namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c))
        {
            return Err(invalid(format!(
                "{namespace:?} is not a CloudWatch namespace of one's own (1 to 255 of \
                 letters, digits and . - _ / # : space, not starting with AWS/)"
            )));
        }
        let mut endpoint = None;
        let mut resolution = Resolution::Aws;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("{pair:?} is not NAME=VALUE")))?;
            let value = decode_component(value).map_err(invalid)?;
            match name {
                "endpoint" if value.starts_with("http://") || value.starts_with("https://") => {
                    endpoint = Some(value.trim_end_matches('/').to_owned())
                }
                "endpoint" => return Err(invalid(format!("endpoint {value:?} is not a URL"))),
                "resolution" => {
                    resolution = match value.as_str() {
                        "aws" => Resolution::Aws,
                        "1s" => Resolution::Second,
                        other => {
                            return Err(invalid(format!(
                                "resolution {other:?} is neither aws nor 1s"
                            )))
                        }
                    }
                }
                other => return Err(invalid(format!("unknown parameter {other:?}"))),
            }
        }
        Ok(Location {
            region: region.to_owned(),
            namespace,
            endpoint,
            resolution,
            shown: location.to_owned(),
        })
    }

    /// The endpoint: the location's, else `AWS_ENDPOINT_URL_CLOUDWATCH`, else
    /// `AWS_ENDPOINT_URL`, else the region's.
    fn endpoint(&self, env: impl Fn(&str) -> Option<String>) -> String {
        self.endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_CLOUDWATCH").filter(|v| !v.is_empty()))
            .or_else(|| env("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()))
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://monitoring.{}.amazonaws.com", self.region))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn time_text(second: i64) -> String {
    Timestamp::from_millis(second.clamp(0, LAST_SECOND + 1) * 1000)
        .unwrap_or(Timestamp::MIN)
        .to_rfc3339()
}

fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// A coarse period spanning `span` seconds in at most [`STEPS`] periods, no finer than
/// `finest`: a multiple of 60 s, as CloudWatch wants periods above a minute.
fn coarse_period(span: i64, finest: i64) -> i64 {
    let period = ceil_div(span.max(1), STEPS);
    (ceil_div(period, 60) * 60).max(finest)
}

/// A statistic `GetMetricData` reduces a period with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stat {
    SampleCount,
    Sum,
    Minimum,
    Maximum,
    Average,
}

impl Stat {
    fn as_str(self) -> &'static str {
        match self {
            Stat::SampleCount => "SampleCount",
            Stat::Sum => "Sum",
            Stat::Minimum => "Minimum",
            Stat::Maximum => "Maximum",
            Stat::Average => "Average",
        }
    }
}

/// One query of `GetMetricData`: a metric, its dimensions and a statistic.
type Query = (String, Vec<(&'static str, String)>, Stat);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edge {
    First,
    Last,
}

/// CloudWatch as a [`MetricStore`].
pub struct CloudWatchStore {
    client: Client,
    location: Location,
    limits: SeriesLimits,
    known: tokio::sync::Mutex<Option<KnownSeries>>,
    /// Series this process wrote: `ListMetrics` shows a new metric only minutes later.
    written: std::sync::Mutex<BTreeSet<SeriesKey>>,
    /// Definitions this process declared, by metric, with their time (as `written`).
    defined: std::sync::Mutex<BTreeMap<String, (i64, MetricDefinition)>>,
    /// One write at a time in this process: each reads what is stored before writing.
    writing: tokio::sync::Mutex<()>,
    last_definition: AtomicI64,
    closed: AtomicBool,
}

impl std::fmt::Debug for CloudWatchStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudWatchStore")
            .field("location", &self.location.shown)
            .finish_non_exhaustive()
    }
}

impl CloudWatchStore {
    /// Opens with credentials and the endpoint from the environment and the shared
    /// credentials file (see [`credentials`]), and checks CloudWatch answers.
    pub async fn open(location: &str) -> Result<CloudWatchStore, StoreError> {
        let env = |name: &str| std::env::var(name).ok();
        let parsed = Location::parse(location)?;
        let endpoint = parsed.endpoint(env);
        let credentials = credentials::resolve(
            env,
            |path| std::fs::read_to_string(path).ok(),
            std::env::var("HOME").ok(),
        )
        .map_err(|e| StoreError::Connect {
            location: location.to_owned(),
            reason: e.to_string(),
        })?;
        Self::open_with(location, endpoint, credentials).await
    }

    /// Opens with the endpoint and credentials given.
    pub async fn open_with(
        location: &str,
        endpoint: String,
        credentials: credentials::Credentials,
    ) -> Result<CloudWatchStore, StoreError> {
        let location = Location::parse(location)?;
        let client = Client::new(endpoint, location.region.clone(), credentials).map_err(|e| {
            StoreError::Connect {
                location: location.shown.clone(),
                reason: e.to_string(),
            }
        })?;
        let store = CloudWatchStore {
            client,
            location,
            limits: SeriesLimits::default(),
            known: tokio::sync::Mutex::new(None),
            written: std::sync::Mutex::new(BTreeSet::new()),
            defined: std::sync::Mutex::new(BTreeMap::new()),
            writing: tokio::sync::Mutex::new(()),
            last_definition: AtomicI64::new(0),
            closed: AtomicBool::new(false),
        };
        // One cheap call checks the endpoint, the credentials and the region.
        store
            .client
            .call(
                "ListMetrics",
                &[
                    ("Namespace".into(), store.location.namespace.clone()),
                    ("MetricName".into(), DEFINITIONS.into()),
                ],
            )
            .await
            .map_err(|e| StoreError::Connect {
                location: store.location.shown.clone(),
                reason: e.to_string(),
            })?;
        Ok(store)
    }

    /// Refuses batches that would pass `limits` (default: [`SeriesLimits::default`]).
    pub fn with_series_limits(mut self, limits: SeriesLimits) -> Self {
        self.limits = limits;
        self
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn error(&self, error: WireError) -> StoreError {
        match error {
            WireError::Transport(reason) => StoreError::Connect {
                location: self.location.shown.clone(),
                reason,
            },
            other => {
                StoreError::Database(format!("CloudWatch at {}: {other}", self.location.shown))
            }
        }
    }

    async fn call_xml<T: for<'de> serde::Deserialize<'de>>(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Result<T, StoreError> {
        self.check_open()?;
        self.client
            .call_xml(action, params)
            .await
            .map_err(|e| self.error(e))
    }

    /// The finest period CloudWatch keeps for data from `second` on.
    fn finest_period(&self, second: i64) -> i64 {
        if self.location.resolution == Resolution::Second {
            return 1;
        }
        let age = now_ms() / 1000 - second;
        match age {
            a if a < 3 * 3_600 => 1,
            a if a < 15 * 86_400 => 60,
            a if a < 63 * 86_400 => 300,
            _ => 3_600,
        }
    }

    // ---- names ----

    fn dimensions(key: &SeriesKey) -> [(&'static str, &str); 3] {
        [
            (MODEL_DIMENSION, key.model.as_str()),
            (VERSION_DIMENSION, key.version.as_str()),
            (DATASET_DIMENSION, Dataset::name_of(key.dataset.as_ref())),
        ]
    }

    fn key_of(metric: &str, dimensions: &[wire::Dimension]) -> Option<SeriesKey> {
        if dimensions.len() != 3 {
            return None;
        }
        let get = |name: &str| {
            dimensions
                .iter()
                .find(|d| d.name == name)
                .map(|d| d.value.as_str())
        };
        Some(SeriesKey {
            model: ModelName::parse(get(MODEL_DIMENSION)?).ok()?,
            version: Version::parse(get(VERSION_DIMENSION)?).ok()?,
            metric: Metric::parse(metric).ok()?,
            dataset: Dataset::parse_optional(get(DATASET_DIMENSION)?).ok()?,
        })
    }

    // ---- GetMetricData ----

    /// Each query's `(period start, value)`s over `[lo, hi)` seconds, in time order: a
    /// query is a metric, its dimensions and a statistic, all of one period.
    async fn get(
        &self,
        queries: &[Query],
        lo: i64,
        hi: i64,
        period: i64,
    ) -> Result<Vec<Vec<(i64, f64)>>, StoreError> {
        let mut found: Vec<Vec<(i64, f64)>> = vec![Vec::new(); queries.len()];
        if lo >= hi {
            return Ok(found);
        }
        for (chunk_index, chunk) in queries.chunks(PER_GET).enumerate() {
            let mut params: Vec<(String, String)> = vec![
                ("StartTime".into(), time_text(lo)),
                ("EndTime".into(), time_text(hi)),
                ("ScanBy".into(), "TimestampAscending".into()),
            ];
            for (i, (metric, dimensions, stat)) in chunk.iter().enumerate() {
                let p = format!("MetricDataQueries.member.{}", i + 1);
                params.push((format!("{p}.Id"), format!("q{i}")));
                params.push((format!("{p}.ReturnData"), "true".into()));
                params.push((
                    format!("{p}.MetricStat.Metric.Namespace"),
                    self.location.namespace.clone(),
                ));
                params.push((format!("{p}.MetricStat.Metric.MetricName"), metric.clone()));
                for (j, (name, value)) in dimensions.iter().enumerate() {
                    let d = format!("{p}.MetricStat.Metric.Dimensions.member.{}", j + 1);
                    params.push((format!("{d}.Name"), (*name).to_owned()));
                    params.push((format!("{d}.Value"), value.clone()));
                }
                params.push((format!("{p}.MetricStat.Period"), period.to_string()));
                params.push((format!("{p}.MetricStat.Stat"), stat.as_str().into()));
            }
            let mut token: Option<String> = None;
            loop {
                let mut asked = params.clone();
                if let Some(token) = &token {
                    asked.push(("NextToken".into(), token.clone()));
                }
                let answer: GetMetricDataResponse = self.call_xml("GetMetricData", &asked).await?;
                let result = answer.get_metric_data_result;
                for one in result.metric_data_results.member {
                    let Some(index) = one
                        .id
                        .strip_prefix('q')
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|i| *i < chunk.len())
                    else {
                        continue;
                    };
                    if one.timestamps.member.len() != one.values.member.len() {
                        return Err(StoreError::Database(format!(
                            "CloudWatch at {}: GetMetricData answered {} times and {} values",
                            self.location.shown,
                            one.timestamps.member.len(),
                            one.values.member.len()
                        )));
                    }
                    if one.status_code.as_deref() == Some("Forbidden") {
                        return Err(StoreError::Database(format!(
                            "CloudWatch at {}: GetMetricData was forbidden",
                            self.location.shown
                        )));
                    }
                    let target = &mut found[chunk_index * PER_GET + index];
                    for (time, value) in one.timestamps.member.iter().zip(one.values.member) {
                        let time = Timestamp::parse(time).map_err(|e| {
                            StoreError::Database(format!(
                                "CloudWatch at {}: GetMetricData answered the time {time:?}: {e}",
                                self.location.shown
                            ))
                        })?;
                        target.push((time.as_millis().div_euclid(1000), value));
                    }
                }
                token = result.next_token.filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }
        for one in &mut found {
            one.sort_by_key(|(t, _)| *t);
            one.dedup_by_key(|(t, _)| *t);
        }
        Ok(found)
    }

    fn query(key: &SeriesKey, stat: Stat) -> Query {
        (
            key.metric.as_str().to_owned(),
            Self::dimensions(key)
                .iter()
                .map(|(n, v)| (*n, (*v).to_owned()))
                .collect(),
            stat,
        )
    }

    /// The points of a series in `[lo, hi)` seconds, each `(second, value)`.
    async fn points(
        &self,
        key: &SeriesKey,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        let mut found = Vec::new();
        // Windows with the samples they hold, when known.
        let mut windows: Vec<(i64, i64, Option<f64>)> = vec![(lo, hi.min(LAST_SECOND + 1), None)];
        while let Some((lo, hi, count)) = windows.pop() {
            if lo >= hi {
                continue;
            }
            let finest = self.finest_period(lo);
            let periods = (hi - lo) / finest;
            let fine = periods <= 60
                || (periods <= FINE_STEPS
                    && count.is_some_and(|c| c * periods as f64 <= FINE_WORK));
            if fine {
                let start = lo.div_euclid(finest) * finest;
                let read = self
                    .get(&[Self::query(key, Stat::Average)], start, hi, finest)
                    .await?;
                found.extend(read.into_iter().flatten().filter(|(t, _)| *t < hi));
                continue;
            }
            // Neighbouring occupied periods are read together while the window stays
            // small: at most FINE_STEPS finest periods, and periods times samples at
            // most FINE_WORK (what an emulator's read costs).
            let mut merged: Vec<(i64, i64, Option<f64>)> = Vec::new();
            for (a, b, c) in self.occupied(key, lo, hi, finest).await? {
                match merged.last_mut() {
                    Some((first, last, Some(total)))
                        if (b - *first) / finest <= FINE_STEPS
                            && (*total + c) * ((b - *first) / finest) as f64 <= FINE_WORK =>
                    {
                        *last = b;
                        *total += c;
                    }
                    _ => merged.push((a, b, Some(c))),
                }
            }
            windows.extend(merged);
        }
        found.sort_by_key(|(t, _)| *t);
        Ok(found)
    }

    /// The periods of a coarse split of `[lo, hi)` that hold samples of `key`, clipped
    /// to it, in time order, with how many samples each holds.
    async fn occupied(
        &self,
        key: &SeriesKey,
        lo: i64,
        hi: i64,
        finest: i64,
    ) -> Result<Vec<(i64, i64, f64)>, StoreError> {
        let period = coarse_period(hi - lo, finest);
        let start = lo.div_euclid(period) * period;
        let end = (ceil_div(hi, period) * period).min(LAST_SECOND + 1);
        let counts = self
            .get(&[Self::query(key, Stat::SampleCount)], start, end, period)
            .await?;
        Ok(counts
            .into_iter()
            .flatten()
            .filter(|(_, count)| *count > 0.0)
            .map(|(t, count)| (t.max(lo), (t + period).min(hi), count))
            .filter(|(a, b, _)| a < b)
            .collect())
    }

    /// The first or last point of a series in `[lo, hi)` seconds.
    async fn edge(
        &self,
        key: &SeriesKey,
        lo: i64,
        hi: i64,
        edge: Edge,
    ) -> Result<Option<(i64, f64)>, StoreError> {
        // A stack: the window popped next is the one nearest the wanted edge.
        let mut windows = vec![(lo, hi.min(LAST_SECOND + 1))];
        while let Some((lo, hi)) = windows.pop() {
            if lo >= hi {
                continue;
            }
            let finest = self.finest_period(lo);
            if hi - lo <= FINE_STEPS * finest {
                let points = self.points(key, lo, hi).await?;
                let point = match edge {
                    Edge::First => points.first(),
                    Edge::Last => points.last(),
                };
                if let Some(point) = point {
                    return Ok(Some(*point));
                }
                continue;
            }
            let occupied = self
                .occupied(key, lo, hi, finest)
                .await?
                .into_iter()
                .map(|(a, b, _)| (a, b));
            match edge {
                Edge::Last => windows.extend(occupied),
                Edge::First => windows.extend(occupied.into_iter().rev()),
            }
        }
        Ok(None)
    }

    /// `[lo, hi)` seconds of a range of milliseconds: the seconds whose samples it holds.
    fn seconds_of(range: TimeRange) -> (i64, i64) {
        (
            ceil_div(range.start.as_millis(), 1000),
            ceil_div(range.end.as_millis(), 1000).min(LAST_SECOND + 1),
        )
    }

    fn point(key: &SeriesKey, (second, value): (i64, f64)) -> Option<Point> {
        Some(Point {
            timestamp: Timestamp::from_millis(second * 1000).ok()?,
            value,
            dataset: key.dataset.clone(),
        })
    }

    /// count, sum, min and max of each series over `[lo, hi)` seconds, in one period.
    async fn reductions(
        &self,
        keys: &[SeriesKey],
        lo: i64,
        hi: i64,
    ) -> Result<Vec<Option<[f64; 4]>>, StoreError> {
        if lo >= hi {
            return Ok(vec![None; keys.len()]);
        }
        // Longer than the window, so the one period holds it all and no second one
        // (past the window, perhaps past the last date) is formed.
        let period = coarse_period((hi - lo + 1) * STEPS, 1);
        let stats = [Stat::SampleCount, Stat::Sum, Stat::Minimum, Stat::Maximum];
        let queries: Vec<_> = keys
            .iter()
            .flat_map(|key| stats.iter().map(move |stat| Self::query(key, *stat)))
            .collect();
        let found = self.get(&queries, lo, hi, period).await?;
        Ok(found
            .chunks(stats.len())
            .map(|per_stat| {
                let mut reduced = [0.0; 4];
                for (i, values) in per_stat.iter().enumerate() {
                    reduced[i] = values.first()?.1;
                }
                (reduced[0] >= 1.0).then_some(reduced)
            })
            .collect())
    }

    // ---- ListMetrics ----

    /// The series `ListMetrics` names for a filter, with those this process wrote.
    async fn listed(&self, filter: &SeriesFilter) -> Result<BTreeSet<SeriesKey>, StoreError> {
        let mut params: Vec<(String, String)> =
            vec![("Namespace".into(), self.location.namespace.clone())];
        if let Some(metric) = &filter.metric {
            params.push(("MetricName".into(), metric.as_str().into()));
        }
        let mut dimensions: Vec<(&str, String)> = Vec::new();
        if let Some(model) = &filter.model {
            dimensions.push((MODEL_DIMENSION, model.as_str().into()));
        }
        if let Some(version) = &filter.version {
            dimensions.push((VERSION_DIMENSION, version.as_str().into()));
        }
        if let modelwatch_core::DatasetScope::One(dataset) = &filter.dataset {
            dimensions.push((DATASET_DIMENSION, Dataset::name_of(dataset.as_ref()).into()));
        }
        for (i, (name, value)) in dimensions.iter().enumerate() {
            params.push((format!("Dimensions.member.{}.Name", i + 1), (*name).into()));
            params.push((format!("Dimensions.member.{}.Value", i + 1), value.clone()));
        }
        let mut found = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let mut asked = params.clone();
            if let Some(token) = &token {
                asked.push(("NextToken".into(), token.clone()));
            }
            let answer: ListMetricsResponse = self.call_xml("ListMetrics", &asked).await?;
            let result = answer.list_metrics_result;
            for metric in result.metrics.member {
                if let Some(key) = Self::key_of(&metric.metric_name, &metric.dimensions.member) {
                    if filter.matches(&key) {
                        found.insert(key);
                    }
                }
            }
            token = result.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        if let Ok(written) = self.written.lock() {
            found.extend(written.iter().filter(|key| filter.matches(key)).cloned());
        }
        Ok(found)
    }

    async fn admit(&self, keys: &BTreeSet<SeriesKey>) -> Result<(), StoreError> {
        if self.limits == SeriesLimits::UNLIMITED {
            return Ok(());
        }
        let mut known = self.known.lock().await;
        if known.is_none() {
            *known = Some(KnownSeries::of(
                self.listed(&SeriesFilter::default()).await?,
            ));
        }
        let Some(known) = known.as_mut() else {
            return Ok(());
        };
        known.admit(keys.iter().cloned(), &self.limits)
    }

    // ---- PutMetricData ----

    async fn put(&self, items: Vec<Vec<(String, String)>>) -> Result<(), StoreError> {
        for chunk in items.chunks(PER_PUT) {
            let mut params: Vec<(String, String)> =
                vec![("Namespace".into(), self.location.namespace.clone())];
            for (i, item) in chunk.iter().enumerate() {
                let p = format!("MetricData.member.{}", i + 1);
                params.extend(item.iter().map(|(n, v)| (format!("{p}.{n}"), v.clone())));
            }
            self.check_open()?;
            self.client
                .call("PutMetricData", &params)
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// One data item: a metric, its dimensions, a time and a value, at one second.
    fn item(
        metric: &str,
        dimensions: &[(&str, &str)],
        second: i64,
        value: f64,
    ) -> Vec<(String, String)> {
        let mut item = vec![("MetricName".to_owned(), metric.to_owned())];
        for (j, (name, value)) in dimensions.iter().enumerate() {
            item.push((
                format!("Dimensions.member.{}.Name", j + 1),
                (*name).to_owned(),
            ));
            item.push((
                format!("Dimensions.member.{}.Value", j + 1),
                (*value).to_owned(),
            ));
        }
        item.push(("Timestamp".into(), time_text(second)));
        item.push(("Value".into(), format!("{value:?}")));
        item.push(("StorageResolution".into(), "1".into()));
        item
    }
}

fn direction_of(name: &str) -> Option<Direction> {
    [Direction::HigherIsBetter, Direction::LowerIsBetter]
        .into_iter()
        .find(|d| d.as_str() == name)
}

#[async_trait]
impl MetricStore for CloudWatchStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            last_timestamp: Timestamp::from_millis(LAST_SECOND * 1000).unwrap_or(Timestamp::MAX),
            reserved_metrics: &[],
            atomic_batches: false,
            exact_prune_counts_across_servers: true,
            replaces_samples: false,
            resolution: Duration::from_secs(1),
            deletes_samples: false,
        }
    }

    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        self.check_open()?;
        for (index, sample) in samples.iter().enumerate() {
            if sample.timestamp.as_millis() > LAST_SECOND * 1000 {
                return Err(StoreError::InvalidSample {
                    index,
                    error: ValidationError::new(
                        "timestamp",
                        format!(
                            "{} is after the last time modelwatch keeps in CloudWatch (the \
                             end of 9989)",
                            sample.timestamp
                        ),
                    ),
                });
            }
            if !sample.value.is_finite() || sample.value.abs() > VALUE_LIMIT {
                return Err(StoreError::InvalidSample {
                    index,
                    error: ValidationError::new(
                        "value",
                        format!("{} is beyond what CloudWatch keeps (±2^360)", sample.value),
                    ),
                });
            }
        }
        let custom = self.custom_metrics().await?;
        crate::validate_batch(&samples, &custom)?;
        // Each series' samples by second; the last write of a second in the batch wins.
        let mut series: BTreeMap<SeriesKey, BTreeMap<i64, (f64, usize)>> = BTreeMap::new();
        for (index, sample) in samples.iter().enumerate() {
            series.entry(sample.series()).or_default().insert(
                sample.timestamp.as_millis().div_euclid(1000),
                (sample.value, index),
            );
        }
        let keys: BTreeSet<SeriesKey> = series.keys().cloned().collect();
        self.admit(&keys).await?;
        let _one_writer = self.writing.lock().await;
        // CloudWatch aggregates a second datum at a stored time: what is stored again is
        // left out, a different value is refused.
        let mut conflict: Option<(usize, String)> = None;
        for (key, points) in series.iter_mut() {
            let (Some(&first), Some(&last)) = (points.keys().next(), points.keys().next_back())
            else {
                continue;
            };
            // Appending after a series' newest point (the usual case) needs no read of
            // the batch's span.
            let Some((newest, _)) = self.edge(key, first, LAST_SECOND + 1, Edge::Last).await?
            else {
                continue;
            };
            for (second, stored) in self.points(key, first, newest.min(last) + 1).await? {
                let Some((value, index)) = points.get(&second).copied() else {
                    continue;
                };
                if value.to_bits() == stored.to_bits() {
                    points.remove(&second);
                } else if conflict.as_ref().is_none_or(|(i, _)| index < *i) {
                    conflict = Some((
                        index,
                        format!(
                            "{key} already has {stored} at {}; CloudWatch cannot replace a \
                             stored value (it would average the two)",
                            time_text(second)
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
        let mut items = Vec::new();
        for (key, points) in &series {
            let dimensions = Self::dimensions(key);
            for (second, (value, _)) in points {
                items.push(Self::item(
                    key.metric.as_str(),
                    &dimensions,
                    *second,
                    *value,
                ));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        self.put(items).await?;
        if let Ok(mut written) = self.written.lock() {
            written.extend(keys);
        }
        Ok(())
    }

    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let (lo, hi) = Self::seconds_of(range);
        Ok(self
            .points(series, lo, hi)
            .await?
            .into_iter()
            .filter_map(|p| Self::point(series, p))
            .collect())
    }

    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError> {
        Ok(self
            .edge(series, 0, LAST_SECOND + 1, Edge::Last)
            .await?
            .and_then(|p| Self::point(series, p)))
    }

    async fn list_series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesInfo>, StoreError> {
        let mut found = Vec::new();
        for key in self.listed(filter).await? {
            let Some((first, _)) = self.edge(&key, 0, LAST_SECOND + 1, Edge::First).await? else {
                continue;
            };
            let Some((last, _)) = self.edge(&key, first, LAST_SECOND + 1, Edge::Last).await? else {
                continue;
            };
            let (Ok(first), Ok(last)) = (
                Timestamp::from_millis(first * 1000),
                Timestamp::from_millis(last * 1000),
            ) else {
                continue;
            };
            found.push(SeriesInfo {
                key,
                first_timestamp: first,
                last_timestamp: last,
            });
        }
        Ok(found)
    }

    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<SeriesWindow>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let (lo, hi) = Self::seconds_of(range);
        let keys: Vec<SeriesKey> = self.listed(filter).await?.into_iter().collect();
        let reduced = self.reductions(&keys, lo, hi).await?;
        let mut found = Vec::new();
        for (key, reduced) in keys.into_iter().zip(reduced) {
            let Some([count, sum, min, max]) = reduced else {
                continue;
            };
            let Some(last) = self.edge(&key, lo, hi, Edge::Last).await? else {
                continue;
            };
            let Some(last_point) = Self::point(&key, last) else {
                continue;
            };
            found.push(SeriesWindow {
                key,
                stats: WindowStats {
                    count: count as u64,
                    sum,
                    min,
                    max,
                    last_timestamp: last_point.timestamp,
                    last: last_point.value,
                },
            });
        }
        Ok(found)
    }

    async fn count(&self, series: &SeriesKey, range: TimeRange) -> Result<u64, StoreError> {
        if range.is_empty() {
            return Ok(0);
        }
        let (lo, hi) = Self::seconds_of(range);
        let reduced = self
            .reductions(std::slice::from_ref(series), lo, hi)
            .await?;
        Ok(reduced
            .first()
            .copied()
            .flatten()
            .map_or(0, |[count, ..]| count as u64))
    }

    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        // Counts per coarse period, summed until the target is reached.
        let (lo, hi) = Self::seconds_of(range);
        if lo >= hi {
            return Ok(range.end);
        }
        let period = coarse_period(hi - lo, 1);
        let start = lo.div_euclid(period) * period;
        let end = (ceil_div(hi, period) * period).min(LAST_SECOND + 1);
        let counts = self
            .get(
                &[Self::query(series, Stat::SampleCount)],
                start,
                end,
                period,
            )
            .await?;
        let mut total = 0.0;
        for (t, count) in counts.into_iter().flatten() {
            total += count;
            if total >= target.max(1) as f64 {
                let end_second = (t + period).min(hi);
                return Ok(Timestamp::from_millis(end_second * 1000)
                    .unwrap_or(range.end)
                    .min(range.end));
            }
        }
        Ok(range.end)
    }

    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.check_open()?;
        tracing::debug!(%cutoff, "cloudwatch deletes nothing on request; its own retention applies");
        Ok(0)
    }

    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError> {
        let definition =
            MetricDefinition::custom(definition.metric, definition.direction, definition.range)
                .map_err(StoreError::Invalid)?;
        let previous = self.last_definition.load(Ordering::Acquire);
        // A second apart: CloudWatch keeps time to the second.
        let at = (now_ms() / 1000 * 1000).max(previous + 1000);
        self.last_definition.fetch_max(at, Ordering::AcqRel);
        let bound = |b: Option<f64>| b.map(|b| format!("{b:?}"));
        let (min, max) = (bound(definition.range.min), bound(definition.range.max));
        let mut dimensions = vec![
            ("Metric", definition.metric.as_str()),
            ("Direction", definition.direction.as_str()),
        ];
        if let Some(min) = &min {
            dimensions.push(("Min", min.as_str()));
        }
        if let Some(max) = &max {
            dimensions.push(("Max", max.as_str()));
        }
        self.put(vec![Self::item(
            DEFINITIONS,
            &dimensions,
            at / 1000,
            at as f64,
        )])
        .await?;
        if let Ok(mut defined) = self.defined.lock() {
            defined.insert(definition.metric.as_str().to_owned(), (at, definition));
        }
        Ok(())
    }

    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError> {
        let answer: ListMetricsResponse = self
            .call_xml(
                "ListMetrics",
                &[
                    ("Namespace".into(), self.location.namespace.clone()),
                    ("MetricName".into(), DEFINITIONS.into()),
                ],
            )
            .await?;
        let mut listed: Vec<(MetricDefinition, Vec<(&'static str, String)>)> = Vec::new();
        for metric in answer.list_metrics_result.metrics.member {
            let get = |name: &str| {
                metric
                    .dimensions
                    .member
                    .iter()
                    .find(|d| d.name == name)
                    .map(|d| d.value.clone())
            };
            let corrupt = || {
                StoreError::Corrupt(format!(
                    "a {DEFINITIONS} metric is not one modelwatch wrote: {:?}",
                    metric.dimensions
                ))
            };
            let bound = |name: &str| -> Result<Option<f64>, StoreError> {
                get(name)
                    .map(|b| b.parse().map_err(|_| corrupt()))
                    .transpose()
            };
            let definition = MetricDefinition {
                metric: Metric::parse(&get("Metric").unwrap_or_default()).map_err(|_| corrupt())?,
                direction: direction_of(&get("Direction").unwrap_or_default())
                    .ok_or_else(corrupt)?,
                range: ValueRange {
                    min: bound("Min")?,
                    max: bound("Max")?,
                },
            };
            let dimensions = metric
                .dimensions
                .member
                .iter()
                .filter_map(|d| {
                    ["Metric", "Direction", "Min", "Max"]
                        .into_iter()
                        .find(|n| *n == d.name)
                        .map(|n| (n, d.value.clone()))
                })
                .collect();
            listed.push((definition, dimensions));
        }
        // Each definition's time is its value: the latest of a metric's wins.
        let now = now_ms() / 1000;
        let (lo, hi) = (
            now - 455 * 86_400,
            now.max(self.last_definition.load(Ordering::Acquire) / 1000) + 86_400,
        );
        let queries: Vec<_> = listed
            .iter()
            .map(|(_, dimensions)| (DEFINITIONS.to_owned(), dimensions.clone(), Stat::Maximum))
            .collect();
        let times = self
            .get(&queries, lo, hi, coarse_period((hi - lo) * STEPS, 1))
            .await?;
        let mut latest: BTreeMap<String, (i64, MetricDefinition)> = BTreeMap::new();
        for ((definition, _), time) in listed.into_iter().zip(times) {
            let Some(at) = time.iter().map(|(_, v)| *v as i64).max() else {
                continue;
            };
            let name = definition.metric.as_str().to_owned();
            if latest.get(&name).is_none_or(|(t, _)| at > *t) {
                latest.insert(name, (at, definition));
            }
        }
        if let Ok(defined) = self.defined.lock() {
            for (name, (at, definition)) in defined.iter() {
                if latest.get(name).is_none_or(|(t, _)| at > t) {
                    latest.insert(name.clone(), (*at, definition.clone()));
                }
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
    fn locations_name_the_region_namespace_and_endpoint() {
        let plain = Location::parse("cloudwatch://eu-west-1/ML/Models").unwrap();
        assert_eq!(
            (plain.region.as_str(), plain.namespace.as_str()),
            ("eu-west-1", "ML/Models")
        );
        assert_eq!(
            plain.endpoint(|_| None),
            "https://monitoring.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            plain.endpoint(|n| (n == "AWS_ENDPOINT_URL").then(|| "http://h:1/".into())),
            "http://h:1"
        );
        assert_eq!(
            plain.endpoint(|n| match n {
                "AWS_ENDPOINT_URL_CLOUDWATCH" => Some("http://cw:2".into()),
                _ => Some("http://h:1".into()),
            }),
            "http://cw:2"
        );
        let local = Location::parse(
            "cloudwatch://us-east-1/team%20ml?endpoint=http%3A%2F%2F127.0.0.1%3A5000&resolution=1s",
        )
        .unwrap();
        assert_eq!(local.namespace, "team ml");
        assert_eq!(
            local.endpoint(|_| Some("http://other".into())),
            "http://127.0.0.1:5000"
        );
        assert_eq!(local.resolution, Resolution::Second);
        for bad in [
            "cloudwatch://",
            "cloudwatch://us-east-1",
            "cloudwatch://us-east-1/",
            "cloudwatch://US/x",
            "cloudwatch://us-east-1/AWS/EC2",
            "cloudwatch://us-east-1/x?endpoint=ftp://a",
            "cloudwatch://us-east-1/x?resolution=2s",
            "cloudwatch://us-east-1/x?colour=blue",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coarse_periods_are_minutes_and_split_a_window_in_at_most_a_thousand() {
        assert_eq!(coarse_period(1, 1), 60);
        assert_eq!(coarse_period(3_600_000, 1), 3_600);
        assert_eq!(coarse_period(3_600_001, 1), 3_660);
        assert_eq!(coarse_period(10, 300), 300);
        assert_eq!(ceil_div(-1, 1000), 0);
        assert_eq!(ceil_div(1001, 1000), 2);
    }
}
