//! Samples, series and metric definitions on the wire: the sample `POST /api/v1/metrics`
//! reads (and the CLI and the Python package show for a recorded one), a series' points
//! as `GET …/metrics/{metric}` answers them (and the Python package's `history`), a
//! custom metric's declaration, and the summaries `modelwatch metrics history` prints.

use modelwatch_core::stats::{Charted, Summary};
use modelwatch_core::{
    Bucket, Dataset, Direction as DomainDirection, Metric, MetricDefinition as DomainDefinition,
    ModelName, Point, Sample, SeriesKey, Timestamp, Version,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::analysis::Direction;

/// One sample as sent to the API: the library's and the CLI's field names (the seed's
/// `model_name`, `model_version`, `metric_type`, `metric_value` are accepted too). The
/// Python package's records of samples are this type's JSON, with the time always given.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleInput {
    #[serde(alias = "model_name")]
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector")]
    pub model: ModelName,
    #[serde(alias = "model_version")]
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1")]
    pub version: Version,
    /// A built-in metric (accuracy, precision, recall, f1_score, auc_roc, auc_pr, mae, mse,
    /// rmse, r2_score, mape, latency, throughput, error_rate) or a custom name.
    #[serde(alias = "metric_type")]
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "accuracy")]
    pub metric: Metric,
    #[serde(alias = "metric_value")]
    pub value: f64,
    /// RFC 3339 or epoch milliseconds; default: when the server receives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<TimeInput>)]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub dataset: Option<Dataset>,
}

/// RFC 3339 text (`2024-05-01T12:00:00Z`) or epoch milliseconds. Untagged: the document
/// says a string or an integer, as [`Timestamp`] reads them (tagged, it would document
/// `{"Text": …}` objects the API refuses).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // exists for the OpenAPI document only
pub enum TimeInput {
    Text(String),
    EpochMillis(i64),
}

impl SampleInput {
    /// The sample, at `now` when it did not say when it was measured.
    pub fn into_sample(self, now: Timestamp) -> Sample {
        Sample {
            model: self.model,
            version: self.version,
            metric: self.metric,
            value: self.value,
            timestamp: self.timestamp.unwrap_or(now),
            dataset: self.dataset,
        }
    }
}

impl From<&Sample> for SampleInput {
    fn from(sample: &Sample) -> Self {
        SampleInput {
            model: sample.model.clone(),
            version: sample.version.clone(),
            metric: sample.metric.clone(),
            value: sample.value,
            timestamp: Some(sample.timestamp),
            dataset: sample.dataset.clone(),
        }
    }
}

/// One point of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointOut {
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
}

impl From<Point> for PointOut {
    fn from(point: Point) -> Self {
        PointOut {
            timestamp: point.timestamp.to_rfc3339(),
            value: point.value,
            dataset: point.dataset.map(|d| d.to_string()),
        }
    }
}

/// The points of one bucket of a downsampled series.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketOut {
    /// Start of the bucket (inclusive).
    #[schema(format = DateTime)]
    pub start: String,
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub first: f64,
    pub last: f64,
}

impl From<Bucket> for BucketOut {
    fn from(bucket: Bucket) -> Self {
        BucketOut {
            start: bucket.start.to_rfc3339(),
            count: bucket.count,
            mean: bucket.mean,
            min: bucket.min,
            max: bucket.max,
            first: bucket.first,
            last: bucket.last,
        }
    }
}

/// A series' points over a time range: every point, or (`downsampled`) buckets.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesResponse {
    pub model: String,
    pub version: String,
    pub metric: String,
    /// The dataset: a name, or `default`.
    pub dataset: String,
    pub direction: Direction,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// Points in the range before any downsampling.
    pub count: usize,
    /// Whether `buckets` (true) or `points` (false) holds the data.
    pub downsampled: bool,
    pub points: Vec<PointOut>,
    pub buckets: Vec<BucketOut>,
}

impl SeriesResponse {
    /// `key`'s `count` points from `from` to `to` (`None`: no end), charted.
    pub fn of(
        key: &SeriesKey,
        direction: DomainDirection,
        (from, to): (Timestamp, Option<Timestamp>),
        count: usize,
        charted: Charted,
    ) -> Self {
        let downsampled = matches!(charted, Charted::Buckets(_));
        let (points, buckets) = match charted {
            Charted::Points(points) => {
                (points.into_iter().map(PointOut::from).collect(), Vec::new())
            }
            Charted::Buckets(buckets) => (
                Vec::new(),
                buckets.into_iter().map(BucketOut::from).collect(),
            ),
        };
        SeriesResponse {
            model: key.model.to_string(),
            version: key.version.to_string(),
            metric: key.metric.to_string(),
            dataset: Dataset::name_of(key.dataset.as_ref()).to_owned(),
            direction: direction.into(),
            from: from.to_rfc3339(),
            to: to.map(|t| t.to_rfc3339()),
            count,
            downsampled,
            points,
            buckets,
        }
    }
}

/// The values a metric may take; `null` is unbounded on that side.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ValueRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A metric's direction and valid range (a declared custom metric's, `metrics define`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricDefinition {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "queue_ms")]
    pub metric: Metric,
    pub direction: Direction,
    pub range: ValueRange,
}

impl From<&DomainDefinition> for MetricDefinition {
    fn from(definition: &DomainDefinition) -> Self {
        MetricDefinition {
            metric: definition.metric.clone(),
            direction: definition.direction.into(),
            range: ValueRange {
                min: definition.range.min,
                max: definition.range.max,
            },
        }
    }
}

/// How far back a window reaches: a number of hours, or `all` (any time).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HoursWindow {
    Hours(f64),
    All(AllTime),
}

/// Any time: the word `all`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllTime {
    All,
}

impl From<Option<f64>> for HoursWindow {
    fn from(hours: Option<f64>) -> Self {
        hours.map_or(HoursWindow::All(AllTime::All), HoursWindow::Hours)
    }
}

/// Descriptive statistics of a series' values in a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SampleSummary {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for a single value.
    pub std: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    #[schema(value_type = String, format = DateTime)]
    pub first_timestamp: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_timestamp: Timestamp,
    /// The value at `last_timestamp`.
    pub last_value: f64,
}

impl From<&Summary> for SampleSummary {
    fn from(summary: &Summary) -> Self {
        let Summary {
            count,
            mean,
            min,
            max,
            std,
            p50,
            p90,
            p95,
            p99,
            first_timestamp,
            last_timestamp,
            last_value,
        } = *summary;
        SampleSummary {
            count,
            mean,
            min,
            max,
            std,
            p50,
            p90,
            p95,
            p99,
            first_timestamp,
            last_timestamp,
            last_value,
        }
    }
}

/// `modelwatch metrics history --metric`: one series' samples in a window, summarised.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesSamples {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub metric: Metric,
    /// The dataset: a name, or `default`.
    pub dataset: String,
    pub hours: HoursWindow,
    /// Absent (`null`) when the window has no sample.
    pub summary: Option<SampleSummary>,
    pub samples: Vec<PointOut>,
}

/// One metric's summary, as `modelwatch metrics history` without `--metric` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricSummary {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub metric: Metric,
    pub direction: Direction,
    #[serde(flatten)]
    pub summary: SampleSummary,
}

/// `modelwatch metrics history` without `--metric`: every metric of a version summarised.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSummaries {
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub model: ModelName,
    #[schema(value_type = String, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")]
    pub version: Version,
    /// The dataset: a name, or `default`.
    pub dataset: String,
    pub hours: HoursWindow,
    pub metrics: Vec<MetricSummary>,
}

#[cfg(test)]
mod tests {
    use modelwatch_core::ValueRange as DomainRange;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sample_reads_the_seeds_names_and_shows_the_current_ones() {
        let seed = json!({"model_name": "m", "model_version": "v1", "metric_type": "latency",
            "metric_value": 12.5, "timestamp": 0});
        let input: SampleInput = serde_json::from_value(seed).unwrap();
        let sample = input.into_sample(Timestamp::from_millis(5).unwrap());
        assert_eq!(sample.metric, Metric::Latency);
        assert_eq!(
            serde_json::to_value(SampleInput::from(&sample)).unwrap(),
            json!({"model": "m", "version": "v1", "metric": "latency", "value": 12.5,
                "timestamp": "1970-01-01T00:00:00.000Z"})
        );
    }

    #[test]
    fn a_summary_and_its_window_read_as_the_cli_has_always_printed_them() {
        let summary = Summary {
            count: 2,
            mean: 2.0,
            min: 1.0,
            max: 3.0,
            std: 1.5,
            p50: 2.0,
            p90: 2.5,
            p95: 2.75,
            p99: 2.95,
            first_timestamp: Timestamp::from_millis(0).unwrap(),
            last_timestamp: Timestamp::from_millis(60_000).unwrap(),
            last_value: 3.0,
        };
        assert_eq!(
            serde_json::to_value(SampleSummary::from(&summary)).unwrap(),
            json!({"count": 2, "mean": 2.0, "min": 1.0, "max": 3.0, "std": 1.5, "p50": 2.0,
                "p90": 2.5, "p95": 2.75, "p99": 2.95,
                "first_timestamp": "1970-01-01T00:00:00.000Z",
                "last_timestamp": "1970-01-01T00:01:00.000Z", "last_value": 3.0})
        );
        assert_eq!(
            serde_json::to_value(HoursWindow::from(Some(0.5))).unwrap(),
            json!(0.5)
        );
        assert_eq!(
            serde_json::to_value(HoursWindow::from(None)).unwrap(),
            json!("all")
        );
    }

    #[test]
    fn a_metric_definition_has_its_direction_and_both_bounds() {
        let definition = DomainDefinition::custom(
            Metric::parse("queue_ms").unwrap(),
            DomainDirection::LowerIsBetter,
            DomainRange {
                min: Some(0.0),
                max: None,
            },
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(MetricDefinition::from(&definition)).unwrap(),
            json!({"metric": "queue_ms", "direction": "lower_is_better",
                "range": {"min": 0.0, "max": null}})
        );
    }
}
