//! Storage for modelwatch: the contract every backend fulfils, and the backends.
//!
//! [`MetricStore`] is the seed's `TimeSeriesStore`: append samples (a batch is atomic),
//! read a series back over a time range, its latest value, the catalogue of models,
//! versions and metrics, and window summaries and time buckets. It is async because the
//! PostgreSQL backend is; the SQLite backend runs its blocking work on a writer thread and
//! a small reader pool. Every backend runs the same conformance suite (`conformance.rs`).
//!
//! Only this crate knows SQL.

pub mod alerts;
pub mod cloudwatch;
mod codec;
mod decoded;
pub mod influx;
mod known_series;
pub mod memory;
mod open;
pub mod postgres;
pub mod predictions;
pub mod prometheus;
mod served;
pub mod sqlite;
pub mod tokens;

#[cfg(test)]
pub(crate) mod conformance;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use modelwatch_core::stats::{downsample, Chart};
use modelwatch_core::{
    Bucket, Dataset, DatasetScope, Metric, MetricDefinition, ModelName, Point, Sample, SeriesKey,
    Summary, TimeRange, Timestamp, ValidationError, Version, WindowStats,
};

pub use alerts::AlertStore;
pub use cloudwatch::CloudWatchStore;
pub use influx::InfluxStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use predictions::PredictionStore;
pub use prometheus::PrometheusStore;
pub use sqlite::SqliteStore;
pub use tokens::{NewToken, Scope, TokenHash, TokenInfo, TokenStore};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A sample of a batch is invalid; nothing of the batch was stored.
    #[error("sample {index} of the batch: {error}")]
    InvalidSample {
        index: usize,
        error: ValidationError,
    },
    #[error("{0}")]
    Invalid(ValidationError),
    #[error(
        "the database at {path} has schema version {found}, newer than the {supported} this modelwatch \
         understands; upgrade modelwatch to open it"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path} is not a modelwatch database (it is an SQLite file of another application)")]
    ForeignDatabase { path: PathBuf },
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// A database server (PostgreSQL, InfluxDB) did not answer; `location` says which.
    #[error("cannot connect to {location}: {reason}")]
    Connect { location: String, reason: String },
    #[error(
        "unsupported store location {0:?}: use a file path, sqlite:PATH, postgres://…, influxdb://…, prometheus://…, cloudwatch://… or memory"
    )]
    UnsupportedLocation(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("the store has been shut down")]
    Closed,
    /// A part of the store that this backend does not have yet.
    #[error(
        "{what} is not available on the PostgreSQL backend yet; use an SQLite database for it"
    )]
    NotYetOnPostgres { what: &'static str },
    #[error("no {kind} has id {id}")]
    NotFound { kind: &'static str, id: String },
    /// A batch would create more series than a [`SeriesLimits`] allows; nothing of it
    /// was written.
    #[error("{0}")]
    TooManySeries(SeriesLimitExceeded),
    /// A time-series store keeps only samples: the alerting state needs a relational
    /// location beside it.
    #[error(
        "{location} keeps only samples; name a relational database for rules, alerts and \
         tokens with --alerts-db (an SQLite file or postgres://…)"
    )]
    AlertsDbRequired { location: String },
    #[error(
        "{location} cannot keep rules, alerts and tokens; the alerts database must be an \
         SQLite file, postgres://… or memory"
    )]
    NotRelational { location: String },
    #[error("a {kind} with id {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Database(error.to_string())
    }
}

/// How many series may exist (issue 15: one line-protocol line with 400,000 fields made
/// 400,000 series). Every backend refuses a batch that would pass one, writing nothing,
/// with [`StoreError::TooManySeries`]. Several servers creating series at once may pass
/// `per_model` and `total` by what they create together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// New series one batch (one request, one import batch) may create.
    pub new_per_batch: usize,
    /// Series one model may have.
    pub per_model: usize,
    /// Series the store may hold.
    pub total: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            new_per_batch: 1_000,
            per_model: 10_000,
            total: 100_000,
        }
    }
}

/// Which of the [`SeriesLimits`] a batch would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesLimit {
    NewPerBatch,
    PerModel,
    Total,
}

impl SeriesLimit {
    /// The limit's name in modelwatch's configuration file.
    pub fn config_key(self) -> &'static str {
        match self {
            SeriesLimit::NewPerBatch => "limits.new_series_per_request",
            SeriesLimit::PerModel => "limits.series_per_model",
            SeriesLimit::Total => "limits.series",
        }
    }
}

/// A batch refused by [`SeriesLimits`]: which limit, its value, and what the batch would
/// have made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesLimitExceeded {
    pub limit: SeriesLimit,
    pub allowed: usize,
    /// The series (new ones, or in all) there would have been.
    pub would_be: usize,
    /// The model, for `PerModel`.
    pub model: Option<ModelName>,
}

impl fmt::Display for SeriesLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.limit.config_key();
        match (self.limit, &self.model) {
            (SeriesLimit::NewPerBatch, _) => write!(
                f,
                "the batch would create {} new series; at most {} may be created at once ({key})",
                self.would_be, self.allowed
            ),
            (SeriesLimit::PerModel, Some(model)) => write!(
                f,
                "model {model} would have {} series; a model may have at most {} ({key})",
                self.would_be, self.allowed
            ),
            (SeriesLimit::PerModel, None) | (SeriesLimit::Total, _) => write!(
                f,
                "there would be {} series; the store holds at most {} ({key})",
                self.would_be, self.allowed
            ),
        }
    }
}

impl SeriesLimits {
    /// No limit: what a migration copies into its target.
    pub const UNLIMITED: SeriesLimits = SeriesLimits {
        new_per_batch: usize::MAX,
        per_model: usize::MAX,
        total: usize::MAX,
    };

    /// Checks a batch creating `new` series (each model's new series in `new_by_model`)
    /// in a store of `existing` series, each model's count given by `existing_in`.
    pub fn check(
        &self,
        new_by_model: &std::collections::BTreeMap<ModelName, usize>,
        existing: usize,
        mut existing_in: impl FnMut(&ModelName) -> Result<usize, StoreError>,
    ) -> Result<(), StoreError> {
        let new: usize = new_by_model.values().sum();
        if new == 0 {
            return Ok(());
        }
        let refuse = |limit, allowed, would_be, model: Option<&ModelName>| {
            Err(StoreError::TooManySeries(SeriesLimitExceeded {
                limit,
                allowed,
                would_be,
                model: model.cloned(),
            }))
        };
        if new > self.new_per_batch {
            return refuse(SeriesLimit::NewPerBatch, self.new_per_batch, new, None);
        }
        if existing.saturating_add(new) > self.total {
            return refuse(SeriesLimit::Total, self.total, existing + new, None);
        }
        if self.per_model == usize::MAX {
            return Ok(());
        }
        for (model, added) in new_by_model {
            let would_be = existing_in(model)?.saturating_add(*added);
            if would_be > self.per_model {
                return refuse(SeriesLimit::PerModel, self.per_model, would_be, Some(model));
            }
        }
        Ok(())
    }
}

/// A series and the span of time its samples cover.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesInfo {
    pub key: SeriesKey,
    pub first_timestamp: Timestamp,
    pub last_timestamp: Timestamp,
}

/// Narrows a series listing; `None` (and [`DatasetScope::Each`]) matches everything.
#[derive(Debug, Clone, Default)]
pub struct SeriesFilter {
    pub model: Option<ModelName>,
    pub version: Option<Version>,
    pub metric: Option<Metric>,
    pub dataset: DatasetScope,
}

impl SeriesFilter {
    pub fn matches(&self, key: &SeriesKey) -> bool {
        self.model.as_ref().is_none_or(|m| *m == key.model)
            && self.version.as_ref().is_none_or(|v| *v == key.version)
            && self.metric.as_ref().is_none_or(|m| *m == key.metric)
            && self.dataset.matches(key.dataset.as_ref())
    }
}

/// One series' samples in a window, reduced (see [`MetricStore::aggregate_series`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesWindow {
    pub key: SeriesKey,
    pub stats: WindowStats,
}

/// What a write did to its samples: stored at a new timestamp of their series, replaced
/// a different stored point, or matched the stored point exactly.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WriteCounts {
    pub new: u64,
    pub replaced: u64,
    pub unchanged: u64,
}

impl WriteCounts {
    pub fn total(&self) -> u64 {
        self.new + self.replaced + self.unchanged
    }
}

impl std::ops::AddAssign for WriteCounts {
    fn add_assign(&mut self, other: WriteCounts) {
        self.new += other.new;
        self.replaced += other.replaced;
        self.unchanged += other.unchanged;
    }
}

/// What a backend can hold and promise, where backends differ. The conformance suite
/// checks each backend against what it declares, so a store that cannot do something
/// refuses it as documented rather than doing it differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The last time a sample may have; later ones are refused (`InvalidSample`, field
    /// `timestamp`) and nothing of their batch is written.
    pub last_timestamp: Timestamp,
    /// Metric names the store cannot hold; samples and definitions of them are refused
    /// (field `metric`).
    pub reserved_metrics: &'static [&'static str],
    /// Whether a batch is all or nothing when the store fails part way (an invalid sample
    /// is always refused before anything is written, whatever this says).
    pub atomic_batches: bool,
    /// Whether prunes by several servers at once count each sample once between them
    /// (within one server they always do).
    pub exact_prune_counts_across_servers: bool,
    /// Whether a sample at a timestamp its series already has replaces the stored value.
    /// When not (Prometheus), writing the stored value again is a no-op and a different
    /// value is refused (`InvalidSample`, field `timestamp`) with nothing of its batch
    /// written.
    pub replaces_samples: bool,
    /// The finest time the store keeps: samples of a series within one such interval
    /// are one point, stored at the interval's start (CloudWatch: a second). Timestamps
    /// read back are multiples of it.
    pub resolution: std::time::Duration,
    /// Whether [`MetricStore::delete_samples_before`] deletes. When not (CloudWatch,
    /// whose own retention applies), it removes nothing and returns 0.
    pub deletes_samples: bool,
}

impl Capabilities {
    /// A relational backend: any time modelwatch accepts, any metric name, transactions.
    pub const FULL: Capabilities = Capabilities {
        last_timestamp: Timestamp::MAX,
        reserved_metrics: &[],
        atomic_batches: true,
        exact_prune_counts_across_servers: true,
        replaces_samples: true,
        resolution: std::time::Duration::from_millis(1),
        deletes_samples: true,
    };
}

/// The storage contract. Samples are identified by series and timestamp: appending a
/// sample at a timestamp the series already has replaces the stored value (so a
/// re-import is idempotent). A series is a metric of a model version on one dataset
/// (`SeriesKey::dataset`, `None` for the default one): samples of two datasets at one
/// time are two samples, and every read names its dataset.
#[async_trait]
pub trait MetricStore: Send + Sync + fmt::Debug {
    /// What this backend can hold and promise (see [`Capabilities`]).
    fn capabilities(&self) -> Capabilities {
        Capabilities::FULL
    }

    /// Stores all samples or, when any is invalid or the write fails, none.
    /// Returns once the samples are durable.
    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError>;

    /// The points of a series in `range`, in time order.
    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError>;

    /// The points of each `(series, range)` request, in request order. Backends answer it
    /// in one round trip where they can: a degradation pass reads two windows for each of
    /// thousands of series.
    async fn range_many(
        &self,
        requests: &[(SeriesKey, TimeRange)],
    ) -> Result<Vec<Vec<Point>>, StoreError> {
        let mut found = Vec::with_capacity(requests.len());
        for (series, range) in requests {
            found.push(self.range(series, *range).await?);
        }
        Ok(found)
    }

    /// The point with the greatest timestamp.
    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError>;

    /// Where a page of about `target` points of `series` that starts at `range.start`
    /// ends: a time in `(range.start, range.end]` such that `[range.start, end)` holds
    /// about `target` points (a few more at most, never many), or `range.end` when fewer
    /// remain. How [`Pages`] reads a long range without holding it all. Backends answer
    /// from their indexes; this default (one page of everything) is for wrappers.
    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        let _ = (series, target);
        Ok(range.end)
    }

    /// Feeds the points of `series` in `range` to `chart`, in time order, and gives it
    /// back. Read a page at a time, as [`Pages`] reads (a call dropped between pages
    /// stops reading); a backend may decode straight into the chart, holding no page of
    /// points at all (SQLite does).
    async fn chart(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        mut chart: Chart,
    ) -> Result<Chart, StoreError> {
        let mut next = range.start;
        while next < range.end {
            let end =
                next_page_end(self, series, TimeRange::new(next, range.end), PAGE_POINTS).await?;
            for point in self.range(series, TimeRange::new(next, end)).await? {
                chart.push(point.timestamp, point.value, point.dataset.as_ref());
            }
            next = end;
        }
        Ok(chart)
    }

    /// Every series matching the filter, ordered by model, version, metric, dataset (the
    /// default dataset first, then by name).
    async fn list_series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesInfo>, StoreError>;

    /// The latest point of each series, in order. Backends answer it in one round trip
    /// where they can: rule evaluation asks for thousands at once.
    async fn latest_many(&self, series: &[SeriesKey]) -> Result<Vec<Option<Point>>, StoreError> {
        let mut found = Vec::with_capacity(series.len());
        for key in series {
            found.push(self.latest(key).await?);
        }
        Ok(found)
    }

    /// Every series matching `filter` that has samples in `range`, with the count, sum,
    /// minimum, maximum and newest sample of its samples there (each timestamp once, as
    /// last written), in [`MetricStore::list_series`] order. A cross-series read: the
    /// overview, PromQL `*_over_time` instant queries and `/api/v1/series/aggregate` ask
    /// for thousands of series at once, so backends answer it in one query or one pass
    /// over their chunks; this default reads each series.
    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<SeriesWindow>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let requests: Vec<(SeriesKey, TimeRange)> = self
            .list_series(filter)
            .await?
            .into_iter()
            .map(|info| (info.key, range))
            .collect();
        let found = self.range_many(&requests).await?;
        Ok(requests
            .into_iter()
            .zip(found)
            .filter_map(|((key, _), points)| {
                WindowStats::of_points(&points).map(|stats| SeriesWindow { key, stats })
            })
            .collect())
    }

    /// Deletes every sample, of every series, with a timestamp before `cutoff`; samples
    /// at or after it stay. Returns how many samples were removed (each (series,
    /// timestamp) once, however many times it was written). Series and metric definitions
    /// stay. Idempotent, and safe while other writers (or another process pruning) run:
    /// backends work in bounded steps so ingestion is never held up for long.
    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError>;

    /// Declares (or redeclares) a custom metric's direction and range.
    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError>;

    /// The declared custom metrics.
    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError>;

    /// Flushes and stops background work; later calls fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The definition that applies to a metric: declared for custom metrics, built in otherwise.
    async fn definition(&self, metric: &Metric) -> Result<MetricDefinition, StoreError> {
        if metric.is_custom() {
            if let Some(found) = self
                .custom_metrics()
                .await?
                .into_iter()
                .find(|d| d.metric == *metric)
            {
                return Ok(found);
            }
        }
        Ok(metric.default_definition())
    }

    /// What appending `samples` would do to each of them, judged against what is stored
    /// now: a sample at a timestamp its series lacks is new; one at a stored timestamp
    /// replaces a different point or leaves an equal one unchanged. Samples of the batch
    /// are judged in order, each against the stored points and the batch's earlier
    /// samples (the last write wins, as `append` does), so the counts add up to the
    /// batch's length. Built on [`MetricStore::range_many`], so every backend answers
    /// alike; one read per series over the batch's time span.
    async fn classify(&self, samples: &[Sample]) -> Result<WriteCounts, StoreError> {
        let mut spans: HashMap<SeriesKey, (Timestamp, Timestamp)> = HashMap::new();
        for sample in samples {
            spans
                .entry(sample.series())
                .and_modify(|(first, last)| {
                    *first = (*first).min(sample.timestamp);
                    *last = (*last).max(sample.timestamp);
                })
                .or_insert((sample.timestamp, sample.timestamp));
        }
        let requests: Vec<(SeriesKey, TimeRange)> = spans
            .into_iter()
            .map(|(series, (first, last))| {
                let end = last.saturating_add(std::time::Duration::from_millis(1));
                (series, TimeRange::new(first, end))
            })
            .collect();
        let found = self.range_many(&requests).await?;
        let mut current: HashMap<(SeriesKey, Timestamp), Point> = HashMap::new();
        for ((series, _), points) in requests.into_iter().zip(found) {
            for point in points {
                current.insert((series.clone(), point.timestamp), point);
            }
        }
        let mut counts = WriteCounts::default();
        for sample in samples {
            let point = sample.point();
            match current.insert((sample.series(), sample.timestamp), point.clone()) {
                None => counts.new += 1,
                Some(stored) if stored == point => counts.unchanged += 1,
                Some(_) => counts.replaced += 1,
            }
        }
        Ok(counts)
    }

    /// Appends like [`MetricStore::append`] and says what the batch changed (see
    /// [`MetricStore::classify`]). The judgement is made just before the write: a writer
    /// storing the same points meanwhile can make a "new" sample a replacement.
    async fn append_counted(&self, samples: Vec<Sample>) -> Result<WriteCounts, StoreError> {
        let counts = self.classify(&samples).await?;
        self.append(samples).await?;
        Ok(counts)
    }

    async fn append_one(&self, sample: Sample) -> Result<(), StoreError> {
        self.append(vec![sample])
            .await
            .map_err(|error| match error {
                StoreError::InvalidSample { error, .. } => StoreError::Invalid(error),
                other => other,
            })
    }

    /// How many samples a series has in `range` (a migration checks its copy with it).
    async fn count(&self, series: &SeriesKey, range: TimeRange) -> Result<u64, StoreError> {
        Ok(self.range(series, range).await?.len() as u64)
    }

    /// Count, mean, min, max, standard deviation and percentiles of a window.
    async fn summary(
        &self,
        series: &SeriesKey,
        range: TimeRange,
    ) -> Result<Option<Summary>, StoreError> {
        Ok(Summary::of_points(&self.range(series, range).await?))
    }

    /// At most `max_points` time buckets over `range` (for charts).
    async fn buckets(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        max_points: usize,
    ) -> Result<Vec<Bucket>, StoreError> {
        Ok(downsample(
            &self.range(series, range).await?,
            range,
            max_points,
        ))
    }

    async fn models(&self) -> Result<Vec<ModelName>, StoreError> {
        let mut models: Vec<ModelName> = self
            .list_series(&SeriesFilter::default())
            .await?
            .into_iter()
            .map(|s| s.key.model)
            .collect();
        models.dedup();
        Ok(models)
    }

    async fn versions(&self, model: &ModelName) -> Result<Vec<Version>, StoreError> {
        let filter = SeriesFilter {
            model: Some(model.clone()),
            ..SeriesFilter::default()
        };
        let mut versions: Vec<Version> = self
            .list_series(&filter)
            .await?
            .into_iter()
            .map(|s| s.key.version)
            .collect();
        versions.dedup();
        Ok(versions)
    }

    async fn metrics(
        &self,
        model: &ModelName,
        version: &Version,
    ) -> Result<Vec<Metric>, StoreError> {
        let filter = SeriesFilter {
            model: Some(model.clone()),
            version: Some(version.clone()),
            ..SeriesFilter::default()
        };
        let mut metrics: Vec<Metric> = self
            .list_series(&filter)
            .await?
            .into_iter()
            .map(|s| s.key.metric)
            .collect();
        metrics.dedup();
        Ok(metrics)
    }

    /// The datasets a model (or one of its versions) has samples of, the default one
    /// (`None`) first, then by name.
    async fn datasets(
        &self,
        model: &ModelName,
        version: Option<&Version>,
    ) -> Result<Vec<Option<Dataset>>, StoreError> {
        let filter = SeriesFilter {
            model: Some(model.clone()),
            version: version.cloned(),
            ..SeriesFilter::default()
        };
        let mut datasets: Vec<Option<Dataset>> = self
            .list_series(&filter)
            .await?
            .into_iter()
            .map(|s| s.key.dataset)
            .collect();
        datasets.sort();
        datasets.dedup();
        Ok(datasets)
    }
}

/// Points of a page of [`Pages`]: about 2.6 MB of points, a few milliseconds of work.
pub const PAGE_POINTS: usize = 65_536;

/// A series over a time range, read a page of about [`PAGE_POINTS`] points at a time, in
/// time order: what a request over a long range holds at once is one page, and a request
/// dropped between pages (its client gone, its time-out passed) stops reading.
#[derive(Debug)]
pub struct Pages<'a> {
    store: &'a dyn MetricStore,
    series: &'a SeriesKey,
    next: Timestamp,
    end: Timestamp,
    target: usize,
}

impl<'a> Pages<'a> {
    pub fn new(store: &'a dyn MetricStore, series: &'a SeriesKey, range: TimeRange) -> Self {
        Pages {
            store,
            series,
            next: range.start,
            end: range.end,
            target: PAGE_POINTS,
        }
    }

    /// Pages of about `target` points instead (tests cross page boundaries with it).
    pub fn with_target(mut self, target: usize) -> Self {
        self.target = target.max(1);
        self
    }

    /// The next page's points (possibly none, within a gap); `None` once the range is
    /// read.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Point>>, StoreError> {
        if self.next >= self.end {
            return Ok(None);
        }
        let rest = TimeRange::new(self.next, self.end);
        let end = next_page_end(self.store, self.series, rest, self.target).await?;
        let points = self
            .store
            .range(self.series, TimeRange::new(self.next, end))
            .await?;
        self.next = end;
        Ok(Some(points))
    }
}

/// Where the page of about `target` points that starts at `rest.start` ends: always
/// after its start, even should a backend answer the start itself.
async fn next_page_end<S: MetricStore + ?Sized>(
    store: &S,
    series: &SeriesKey,
    rest: TimeRange,
    target: usize,
) -> Result<Timestamp, StoreError> {
    let end = store
        .page_end(series, rest, target)
        .await?
        .clamp(rest.start, rest.end);
    Ok(if end <= rest.start { rest.end } else { end })
}

/// Checks every sample of a batch against the metric definitions, naming the first bad one.
pub(crate) fn validate_batch(
    samples: &[Sample],
    custom: &[MetricDefinition],
) -> Result<(), StoreError> {
    // Undeclared custom names already found not to be typos: a batch repeats a few names,
    // and the edit distances cost more than the rest of ingestion (issue 15's bisect).
    let mut not_typos: HashSet<&str> = HashSet::new();
    for (index, sample) in samples.iter().enumerate() {
        // Ranges are looked up, never cloned: this runs for every sample ingested.
        let declared = match &sample.metric {
            metric @ Metric::Custom(name) => {
                let found = custom.iter().find(|d| d.metric == *metric).map(|d| d.range);
                // An undeclared name one typo away from a built-in would otherwise start
                // a custom series of its own, silently.
                if found.is_none() && not_typos.insert(name.as_str()) {
                    if let Some(meant) = Metric::likely_misspelling_of(name) {
                        return Err(StoreError::InvalidSample {
                            index,
                            error: ValidationError::new(
                                "metric",
                                format!(
                                    "{name:?} is not a built-in metric; did you mean {meant}? \
                                     (a custom metric of that name must be declared first: \
                                     modelwatch metrics define {name})"
                                ),
                            ),
                        });
                    }
                }
                found
            }
            _ => None,
        };
        let range = declared.unwrap_or_else(|| sample.metric.default_range());
        range
            .check(&sample.metric, sample.value)
            .map_err(|error| StoreError::InvalidSample { index, error })?;
    }
    Ok(())
}

/// Every store modelwatch uses: samples, alerting (rules, alerts, silences, outbox), API
/// tokens, and predictions with their labels. Opened from one location, one backend object
/// implements every trait, so they share one database and one writer; composed
/// ([`Stores::compose`]), the samples live in one backend and the alerting state in a
/// relational one.
#[derive(Debug, Clone)]
pub struct Stores {
    pub metrics: Arc<dyn MetricStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub predictions: Arc<dyn PredictionStore>,
}

impl Stores {
    /// Every view of one backend.
    pub fn of<S: MetricStore + AlertStore + TokenStore + PredictionStore + 'static>(
        store: Arc<S>,
    ) -> Stores {
        Stores {
            metrics: store.clone(),
            alerts: store.clone(),
            tokens: store.clone(),
            predictions: store,
        }
    }

    /// Samples in `metrics`; rules, alerts, silences, the outbox, tokens and predictions
    /// in `relational` (whose own samples go unused).
    pub fn compose(metrics: Arc<dyn MetricStore>, relational: Stores) -> Stores {
        Stores {
            metrics,
            ..relational
        }
    }

    /// Flushes and stops background work (see [`MetricStore::close`]) of the samples'
    /// backend and, when it is another, the alerting state's. Closing is idempotent, so
    /// one backend closed twice is closed once.
    pub async fn close(&self) -> Result<(), StoreError> {
        let metrics = self.metrics.close().await;
        let alerts = self.alerts.close_alerting().await;
        metrics.and(alerts)
    }
}

pub use open::{open, open_split, open_with, Backend};
