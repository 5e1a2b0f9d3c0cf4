//! Samples in and out: ingestion (`POST /api/v1/metrics`), the model catalogue and a
//! series' points, downsampled on the server.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use modelwatch_core::alerting::no_data;
use modelwatch_core::stats::{Chart, Charted};
use modelwatch_core::{
    Dataset, DatasetScope, Metric, ModelName, Sample, SeriesKey, TimeRange, Timestamp,
    ValidationError, Version,
};
use modelwatch_store::{MetricStore, Pages, SeriesFilter, SeriesInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

pub use crate::wire::series::{SampleInput, TimeInput};

/// The body of `POST /api/v1/metrics`: one sample, or `{"samples": [...]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"model": "fraud_detector", "version": "v2.1", "metric": "latency", "value": 41.5}))]
pub struct IngestBody {
    /// A batch, stored all or nothing. Leave out for a single sample.
    pub samples: Option<Vec<SampleInput>>,
    #[serde(alias = "model_name")]
    #[schema(value_type = Option<String>)]
    pub model: Option<ModelName>,
    #[serde(alias = "model_version")]
    #[schema(value_type = Option<String>)]
    pub version: Option<Version>,
    #[serde(alias = "metric_type")]
    #[schema(value_type = Option<String>)]
    pub metric: Option<Metric>,
    #[serde(alias = "metric_value")]
    pub value: Option<f64>,
    #[serde(default)]
    #[schema(value_type = Option<TimeInput>)]
    pub timestamp: Option<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub dataset: Option<Dataset>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    /// How many samples were stored.
    pub accepted: usize,
}

/// Parses an ingestion body. The fast path deserialises straight into samples; only when
/// that fails is the body parsed again, tracking the path, to name the bad field
/// (`samples[3].value`).
pub(crate) fn parse_ingest(body: &[u8], now: Timestamp) -> ApiResult<Vec<Sample>> {
    let parsed: IngestBody = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Err(located::<IngestBody>(body, "body")
                .unwrap_or_else(|| ApiError::bad_request("body", error.to_string())))
        }
    };
    let single = parsed.model.is_some()
        || parsed.version.is_some()
        || parsed.metric.is_some()
        || parsed.value.is_some()
        || parsed.timestamp.is_some()
        || parsed.dataset.is_some();
    match (parsed.samples, single) {
        (Some(_), true) => Err(ApiError::bad_request(
            "samples",
            "send either one sample or {\"samples\": [...]}, not both",
        )),
        (Some(samples), false) => Ok(samples.into_iter().map(|s| s.into_sample(now)).collect()),
        (None, _) => {
            let missing = |field: &str| ApiError::bad_request(field, "missing");
            Ok(vec![Sample {
                model: parsed.model.ok_or_else(|| missing("model"))?,
                version: parsed.version.ok_or_else(|| missing("version"))?,
                metric: parsed.metric.ok_or_else(|| missing("metric"))?,
                value: parsed.value.ok_or_else(|| missing("value"))?,
                timestamp: parsed.timestamp.unwrap_or(now),
                dataset: parsed.dataset,
            }])
        }
    }
}

/// The error of parsing `body` as a `T`, with its path; `None` if it parses.
fn located<T: serde::de::DeserializeOwned>(body: &[u8], whole: &str) -> Option<ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let error = serde_path_to_error::deserialize::<_, T>(&mut deserializer).err()?;
    Some(crate::error::json_error(&error, whole).into())
}

/// One sample as a JSON object, by the rules of `POST /api/v1/metrics`: the same names
/// (the seed's longer ones too), types (`"value": "0.5"` and `"model": 5` are refused)
/// and no unknown fields. `metrics import` reads JSON Lines with it, so a line the API
/// refuses is refused there too. The error's field is `line` for a line that is not
/// a JSON object.
pub fn parse_sample(text: &str) -> Result<SampleInput, ValidationError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let sample = serde_path_to_error::deserialize::<_, SampleInput>(&mut deserializer)
        .map_err(|error| crate::error::json_error(&error, "line"))?;
    deserializer
        .end()
        .map_err(|error| ValidationError::new("line", error.to_string()))?;
    Ok(sample)
}

/// Store one sample or an atomic batch.
#[utoipa::path(
    post,
    path = "/api/v1/metrics",
    tag = "metrics",
    request_body(content = IngestBody, description = "One sample, or {\"samples\": [...]} (all or nothing). gzip bodies are accepted with Content-Encoding: gzip."),
    responses(
        (status = 200, description = "Stored (durably)", body = IngestResponse),
        (status = 400, description = "A bad sample; the field names it (samples[i].field for a batch)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestResponse>> {
    let body = body?;
    let samples = match parse_ingest(&body, state.now()) {
        Ok(samples) => samples,
        Err(error) => {
            state.inner.telemetry.rejected("json", 1);
            return Err(error);
        }
    };
    let single = !body
        .windows(b"\"samples\"".len())
        .any(|w| w == b"\"samples\"");
    let accepted = state
        .store_samples(samples, "json", |index, error| {
            // A lone sample's field is named without the batch index.
            let field = match single {
                true => error.field,
                false => format!("samples[{index}].{}", error.field),
            };
            ApiError::bad_request(field, error.message)
        })
        .await?;
    Ok(Json(IngestResponse { accepted }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelEntry {
    pub model: String,
    pub versions: Vec<String>,
    /// The datasets (segments) it has samples of: `default` (samples sent without one)
    /// first, then by name.
    pub datasets: Vec<String>,
    /// RFC 3339: the first and last sample of any of its series.
    pub first_timestamp: String,
    pub last_timestamp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    pub models: Vec<ModelEntry>,
}

/// Every model that has samples, with its versions.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    tag = "models",
    responses((status = 200, body = ModelsResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_models(State(state): State<AppState>) -> ApiResult<Json<ModelsResponse>> {
    let series = state.store().list_series(&SeriesFilter::default()).await?;
    let models = group_series(
        &series,
        |s| s.key.model.as_str(),
        |s| s.key.version.as_str(),
    )
    .into_iter()
    .map(|group| ModelEntry {
        datasets: datasets_of(&series, |s| s.key.model.as_str() == group.key),
        model: group.key.to_owned(),
        versions: group.members,
        first_timestamp: group.first.to_rfc3339(),
        last_timestamp: group.last.to_rfc3339(),
    })
    .collect();
    Ok(Json(ModelsResponse { models }))
}

/// The datasets of the series `of` picks, `default` first, then by name.
fn datasets_of(series: &[SeriesInfo], of: impl Fn(&SeriesInfo) -> bool) -> Vec<String> {
    let found: std::collections::BTreeSet<Option<&Dataset>> = series
        .iter()
        .filter(|s| of(s))
        .map(|s| s.key.dataset.as_ref())
        .collect();
    found
        .into_iter()
        .map(|dataset| Dataset::name_of(dataset).to_owned())
        .collect()
}

/// A dataset filter as queries write it: a name, or `default` (absent: the default).
pub(crate) fn parse_dataset(text: Option<&str>) -> ApiResult<Option<Dataset>> {
    Ok(text.map(Dataset::parse_optional).transpose()?.flatten())
}

/// Runs of consecutive series sharing a key (the listing is ordered by model, version,
/// metric), with their distinct members in order and the span of their samples.
struct SeriesGroup<'a> {
    key: &'a str,
    members: Vec<String>,
    first: Timestamp,
    last: Timestamp,
}

fn group_series<'a>(
    series: &'a [SeriesInfo],
    key: impl Fn(&'a SeriesInfo) -> &'a str,
    member: impl Fn(&'a SeriesInfo) -> &'a str,
) -> Vec<SeriesGroup<'a>> {
    let mut groups: Vec<SeriesGroup<'a>> = Vec::new();
    for info in series {
        let (key, member) = (key(info), member(info));
        match groups.last_mut() {
            Some(group) if group.key == key => {
                if group.members.last().map(String::as_str) != Some(member) {
                    group.members.push(member.to_owned());
                }
                group.first = group.first.min(info.first_timestamp);
                group.last = group.last.max(info.last_timestamp);
            }
            _ => groups.push(SeriesGroup {
                key,
                members: vec![member.to_owned()],
                first: info.first_timestamp,
                last: info.last_timestamp,
            }),
        }
    }
    groups
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionEntry {
    pub version: String,
    pub metrics: Vec<String>,
    /// The datasets (segments) it has samples of: `default` first, then by name.
    pub datasets: Vec<String>,
    pub first_timestamp: String,
    /// RFC 3339: the version's newest sample, of any metric.
    pub last_timestamp: String,
    /// The usual interval between samples of its freshest series, in seconds: the median
    /// of its last 32 gaps (absent with fewer than four samples).
    pub usual_interval_seconds: Option<f64>,
    /// Nothing for longer than 5 usual intervals, and at least 10 minutes (24 hours when
    /// the usual interval is unknown): the version has stopped reporting.
    pub stale: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsResponse {
    pub model: String,
    pub versions: Vec<VersionEntry>,
}

pub(crate) fn parse_model(text: &str) -> ApiResult<ModelName> {
    Ok(ModelName::parse(text)?)
}

pub(crate) fn parse_version(text: &str) -> ApiResult<Version> {
    Ok(Version::parse(text)?)
}

/// A model's versions, with their metrics.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions",
    tag = "models",
    params(("model" = String, Path, description = "Model name", pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector")),
    responses(
        (status = 200, body = VersionsResponse),
        (status = 400, body = ErrorBody), (status = 404, description = "No such model", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn list_versions(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> ApiResult<Json<VersionsResponse>> {
    let model = parse_model(&model)?;
    let filter = SeriesFilter {
        model: Some(model.clone()),
        ..SeriesFilter::default()
    };
    let series = state.store().list_series(&filter).await?;
    let groups = group_series(
        &series,
        |s| s.key.version.as_str(),
        |s| s.key.metric.as_str(),
    );
    // Each version's freshest series (the newest sample of any of its metrics).
    let mut freshest: Vec<&SeriesInfo> = Vec::with_capacity(groups.len());
    for info in &series {
        match freshest.last_mut() {
            Some(last) if last.key.version == info.key.version => {
                if info.last_timestamp > last.last_timestamp {
                    *last = info;
                }
            }
            _ => freshest.push(info),
        }
    }
    let intervals = usual_intervals(state.store().as_ref(), &freshest).await?;
    let now = state.now();
    let versions: Vec<VersionEntry> = groups
        .into_iter()
        .zip(intervals)
        .map(|(group, usual)| VersionEntry {
            datasets: datasets_of(&series, |s| s.key.version.as_str() == group.key),
            version: group.key.to_owned(),
            metrics: group.members,
            first_timestamp: group.first.to_rfc3339(),
            last_timestamp: group.last.to_rfc3339(),
            usual_interval_seconds: usual.map(|d| d.as_secs_f64()),
            stale: no_data::is_stale(group.last, usual, now),
        })
        .collect();
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("no model {model}")));
    }
    Ok(Json(VersionsResponse {
        model: model.to_string(),
        versions,
    }))
}

/// The usual interval of each series (see [`no_data::usual_interval_of`]), read from its
/// newest samples: an hour before its last one, then a week, then half a year for those
/// with fewer than four samples so far, so a dense series is never read far back.
async fn usual_intervals(
    store: &dyn MetricStore,
    series: &[&SeriesInfo],
) -> ApiResult<Vec<Option<std::time::Duration>>> {
    const HOUR: u64 = 3600;
    let mut found = vec![None; series.len()];
    let mut pending: Vec<usize> = (0..series.len()).collect();
    for span in [HOUR, 7 * 24 * HOUR, 183 * 24 * HOUR] {
        if pending.is_empty() {
            break;
        }
        let requests: Vec<(SeriesKey, TimeRange)> = pending
            .iter()
            .map(|&i| {
                let last = series[i].last_timestamp;
                let end = last.saturating_add(std::time::Duration::from_millis(1));
                let start = last.saturating_sub(std::time::Duration::from_secs(span));
                (series[i].key.clone(), TimeRange::new(start, end))
            })
            .collect();
        let answered = store.range_many(&requests).await?;
        let mut next = Vec::new();
        for (i, points) in pending.into_iter().zip(answered) {
            let times: Vec<Timestamp> = points.iter().map(|p| p.timestamp).collect();
            match no_data::usual_interval_of(&times) {
                Some(usual) => found[i] = Some(usual),
                None => next.push(i),
            }
        }
        pending = next;
    }
    Ok(found)
}

/// The default and the largest `max_points`.
pub const DEFAULT_MAX_POINTS: usize = 1_000;
pub const LIMIT_MAX_POINTS: usize = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Start (inclusive), RFC 3339 or epoch ms. Default: 24 hours before `to` (or now).
    #[param(example = "2026-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// End (exclusive), RFC 3339 or epoch ms. Default: no end.
    #[param(example = "2030-01-01T00:00:00Z")]
    pub to: Option<String>,
    /// At most this many points (default 1000, at most 100000); more are downsampled into
    /// buckets that keep each bucket's minimum and maximum.
    #[param(minimum = 1, maximum = 100000, example = 1000)]
    pub max_points: Option<usize>,
    /// The dataset (segment): a name, or `default` (default: the default dataset,
    /// samples sent without one).
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "default")]
    pub dataset: Option<String>,
}

pub use crate::wire::series::{BucketOut, PointOut, SeriesResponse};

/// Reads `key` over `range` into a chart of at most `max_points` points, or as many
/// buckets: however long the range, a request holds little (issue 15). `latest` is the
/// series' newest time, which usually bounds the buckets' span.
async fn read_chart(
    store: &dyn MetricStore,
    key: &SeriesKey,
    range: TimeRange,
    latest: Timestamp,
    max_points: usize,
) -> ApiResult<(usize, Charted)> {
    let last = if latest < range.end {
        (latest >= range.start).then_some(latest)
    } else {
        last_time_in(store, key, range).await?
    };
    let Some(last) = last else {
        return Ok((0, Charted::Points(Vec::new())));
    };
    let chart = store
        .chart(key, range, Chart::new(range, last, max_points))
        .await?;
    Ok((chart.count(), chart.finish()))
}

/// The time of the last point in `range`, looking back from its end over windows that
/// grow fourfold from a minute, each read a page at a time.
async fn last_time_in(
    store: &dyn MetricStore,
    key: &SeriesKey,
    range: TimeRange,
) -> ApiResult<Option<Timestamp>> {
    let mut width = std::time::Duration::from_secs(60);
    let mut end = range.end;
    while end > range.start {
        let start = end.saturating_sub(width).max(range.start);
        let mut pages = Pages::new(store, key, TimeRange::new(start, end));
        let mut last = None;
        while let Some(page) = pages.next_page().await? {
            if let Some(point) = page.last() {
                last = Some(point.timestamp);
            }
        }
        if last.is_some() {
            return Ok(last);
        }
        end = start;
        width = width.saturating_mul(4);
    }
    Ok(None)
}

pub(crate) fn parse_time(field: &str, text: &str) -> ApiResult<Timestamp> {
    Timestamp::parse(text).map_err(|e| ApiError::bad_request(field, e.to_string()))
}

/// A series' points over a time range, downsampled to at most `max_points`.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions/{version}/metrics/{metric}",
    tag = "models",
    params(
        ("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector"), ("version" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1"), ("metric" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "accuracy"),
        SeriesQuery
    ),
    responses(
        (status = 200, body = SeriesResponse),
        (status = 400, body = ErrorBody), (status = 404, description = "No such series", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn series_points(
    State(state): State<AppState>,
    Path((model, version, metric)): Path<(String, String, String)>,
    query: Result<Query<SeriesQuery>, QueryRejection>,
) -> ApiResult<Json<SeriesResponse>> {
    let Query(query) = query?;
    let key = SeriesKey::new(
        parse_model(&model)?,
        parse_version(&version)?,
        Metric::parse(&metric)?,
    )
    .with_dataset(parse_dataset(query.dataset.as_deref())?);
    let to = query
        .to
        .as_deref()
        .map(|t| parse_time("to", t))
        .transpose()?;
    let from = match query.from.as_deref() {
        Some(text) => parse_time("from", text)?,
        None => to
            .unwrap_or_else(|| state.now())
            .saturating_sub(std::time::Duration::from_secs(24 * 3600)),
    };
    if to.is_some_and(|to| to < from) {
        return Err(ApiError::bad_request("to", "must not be before from"));
    }
    let max_points = query.max_points.unwrap_or(DEFAULT_MAX_POINTS);
    if max_points == 0 || max_points > LIMIT_MAX_POINTS {
        return Err(ApiError::bad_request(
            "max_points",
            format!("must be between 1 and {LIMIT_MAX_POINTS}"),
        ));
    }
    let _turn = state.expensive().await?;
    let store = &**state.store();
    let Some(latest) = store.latest(&key).await? else {
        return Err(ApiError::NotFound(format!("no series {key}")));
    };
    let range = TimeRange::new(from, to.unwrap_or(Timestamp::MAX));
    let direction = store.definition(&key.metric).await?.direction;
    let (count, charted) = read_chart(store, &key, range, latest.timestamp, max_points).await?;
    Ok(Json(SeriesResponse::of(
        &key,
        direction,
        (from, to),
        count,
        charted,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AggregateQuery {
    /// Only this model's series (default: every model).
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector")]
    pub model: Option<String>,
    /// Only this version's series.
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1")]
    pub version: Option<String>,
    /// Only this metric's series.
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "accuracy")]
    pub metric: Option<String>,
    /// Only this dataset's series: a name, or `default` (default: every dataset).
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "default")]
    pub dataset: Option<String>,
    /// Start (inclusive), RFC 3339 or epoch ms. Default: 1 hour before `to`.
    #[param(example = "2026-01-01T00:00:00Z")]
    pub from: Option<String>,
    /// End (exclusive), RFC 3339 or epoch ms. Default: now.
    #[param(example = "2026-01-01T01:00:00Z")]
    pub to: Option<String>,
}

/// One series' samples in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesAggregate {
    pub model: String,
    pub version: String,
    pub metric: String,
    pub dataset: String,
    /// Samples in the window (each timestamp once, as last written); at least 1.
    pub count: u64,
    pub mean: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The newest sample's value and time (RFC 3339).
    pub last: f64,
    pub last_timestamp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AggregateResponse {
    pub from: String,
    pub to: String,
    /// Every matching series with at least one sample in the window, ordered by model,
    /// version, metric and dataset.
    pub series: Vec<SeriesAggregate>,
}

/// Every matching series' count, mean, sum, minimum, maximum and newest value over one
/// window, computed by the store in one pass (the overview's question, and Prometheus's
/// `avg_over_time` over many series).
#[utoipa::path(
    get,
    path = "/api/v1/series/aggregate",
    tag = "models",
    params(AggregateQuery),
    responses(
        (status = 200, body = AggregateResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn aggregate(
    State(state): State<AppState>,
    query: Result<Query<AggregateQuery>, QueryRejection>,
) -> ApiResult<Json<AggregateResponse>> {
    let Query(query) = query?;
    let filter = SeriesFilter {
        model: query.model.as_deref().map(parse_model).transpose()?,
        version: query.version.as_deref().map(parse_version).transpose()?,
        metric: query.metric.as_deref().map(Metric::parse).transpose()?,
        dataset: DatasetScope::parse_filter(query.dataset.as_deref())?,
    };
    let to = match query.to.as_deref() {
        Some(text) => parse_time("to", text)?,
        None => state.now(),
    };
    let from = match query.from.as_deref() {
        Some(text) => parse_time("from", text)?,
        None => to.saturating_sub(std::time::Duration::from_secs(3600)),
    };
    if to < from {
        return Err(ApiError::bad_request("to", "must not be before from"));
    }
    let _turn = state.expensive().await?;
    let windows = state
        .store()
        .aggregate_series(&filter, TimeRange::new(from, to))
        .await?;
    let series = windows
        .into_iter()
        .map(|window| {
            let stats = window.stats;
            SeriesAggregate {
                model: window.key.model.to_string(),
                version: window.key.version.to_string(),
                metric: window.key.metric.to_string(),
                dataset: Dataset::name_of(window.key.dataset.as_ref()).to_owned(),
                count: stats.count,
                mean: stats.sum / stats.count.max(1) as f64,
                sum: stats.sum,
                min: stats.min,
                max: stats.max,
                last: stats.last,
                last_timestamp: stats.last_timestamp.to_rfc3339(),
            }
        })
        .collect();
    Ok(Json(AggregateResponse {
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        series,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_millis(1_000).expect("valid")
    }

    #[test]
    fn single_sample_without_timestamp_is_now() {
        let samples = parse_ingest(
            br#"{"model":"m","version":"v","metric":"accuracy","value":0.5}"#,
            now(),
        )
        .expect("valid");
        assert_eq!(samples[0].timestamp, now());
    }

    #[test]
    fn batch_error_names_the_sample_and_field() {
        let error = parse_ingest(
            br#"{"samples":[{"model":"m","version":"v","metric":"accuracy","value":0.5},{"model":"m n","version":"v","metric":"accuracy","value":0.5}]}"#,
            now(),
        )
        .expect_err("bad name");
        match error {
            ApiError::BadRequest { field, .. } => assert_eq!(field, "samples[1].model"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_sample_missing_value_names_value() {
        let error = parse_ingest(br#"{"model":"m","version":"v","metric":"accuracy"}"#, now())
            .expect_err("missing");
        match error {
            ApiError::BadRequest { field, .. } => assert_eq!(field, "value"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let error = parse_ingest(br#"{"model":"m","colour":"red"}"#, now()).expect_err("unknown");
        match error {
            ApiError::BadRequest { field, .. } => assert_eq!(field, "colour"),
            other => panic!("{other:?}"),
        }
    }

    /// Read a page at a time, a series gives exactly what one read and `downsample` give:
    /// over several pages, with `to` inside the data (found by looking back), beyond it,
    /// and `from` before the first point; in memory and in SQLite, whose chunks are
    /// decoded straight into the chart, also once late samples overlap earlier ones.
    #[tokio::test]
    async fn paged_downsampling_matches_the_whole_read() {
        use modelwatch_store::{MemoryStore, SqliteStore};
        let dir = tempfile::tempdir().expect("dir");
        let sqlite = SqliteStore::open(dir.path().join("m.db"))
            .await
            .expect("open");
        let key = SeriesKey::parse("m", "v1", "latency").expect("key");
        let sample = |ms: i64, value: f64| Sample {
            model: key.model.clone(),
            version: key.version.clone(),
            metric: key.metric.clone(),
            value,
            timestamp: Timestamp::from_millis(ms).expect("time"),
            dataset: None,
        };
        // 150,000 points a second apart, then a gap of a day, then 5,000 more.
        let samples: Vec<Sample> = (0..155_000i64)
            .map(|i| {
                let ms = 1_000_000 + i * 1000 + if i >= 150_000 { 86_400_000 } else { 0 };
                sample(ms, (i % 977) as f64)
            })
            .collect();
        // Then late ones, between and over earlier points.
        let late: Vec<Sample> = (0..50i64)
            .map(|i| sample(1_000_500 + i * 2_000_000, 5_000.0 + i as f64))
            .chain((0..50i64).map(|i| sample(2_000_000 + i * 1_000_000, 0.5)))
            .collect();
        let at = |ms| Timestamp::from_millis(ms).expect("time");
        let memory = MemoryStore::new();
        let stores: [(&str, &dyn MetricStore); 2] = [("memory", &memory), ("sqlite", &sqlite)];
        for (phase, extra) in [("in order", samples), ("with late samples", late)] {
            for (name, store) in stores {
                // In batches, so SQLite has both chunks (several pages of them) and a head.
                for batch in extra.chunks(5_000) {
                    store.append(batch.to_vec()).await.expect("append");
                }
                let latest = store.latest(&key).await.expect("latest").expect("some");
                for (range, max_points) in [
                    (TimeRange::all(), 1000),
                    (TimeRange::new(at(0), at(120_000_000)), 500),
                    (TimeRange::new(at(50_000_000), at(160_000_000)), 999),
                    (TimeRange::new(at(2_000_000), at(2_050_000)), 1000),
                    (TimeRange::new(at(1), at(2)), 10),
                ] {
                    let (count, charted) =
                        read_chart(store, &key, range, latest.timestamp, max_points)
                            .await
                            .expect("read");
                    let whole = store.range(&key, range).await.expect("range");
                    let context = format!("{name}, {phase}, {range:?}");
                    assert_eq!(count, whole.len(), "{context}");
                    let expected = if whole.len() > max_points {
                        Charted::Buckets(modelwatch_core::stats::downsample(
                            &whole, range, max_points,
                        ))
                    } else {
                        Charted::Points(whole)
                    };
                    assert_eq!(charted, expected, "{context}");
                }
            }
        }
    }
}
