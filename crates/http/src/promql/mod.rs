//! The Prometheus-compatible read API (issue 20): `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values` and
//! `/api/v1/status/buildinfo`, so Grafana's Prometheus data source and `promtool` read
//! modelwatch. Answers and errors are Prometheus's own JSON (`{"status": "success",
//! "data": …}`, `{"status": "error", "errorType": "bad_data", "error": …}`).
//!
//! Two families of series are visible, with these labels:
//! - `modelwatch_model_metric{model, version, metric, dataset}`: every stored series (the
//!   name `/metrics` exports its latest values under), `dataset="default"` for the
//!   default dataset;
//! - `ALERTS{alertname, alertstate, severity, model, version, metric, dataset}`: 1 while an
//!   alert is open (`alertstate="firing"`), from its first breach to its resolution;
//! - `modelwatch_version_health_score{model, version}` (0 to 100) and
//!   `modelwatch_version_health_grade{model, version, grade}` (1 for the grade), the names
//!   `/metrics` exports them under: each version of the default dataset graded by the same
//!   function as `/metrics` and the dashboard ([`crate::ops::grade_version`]), as at each
//!   evaluation time (the 24 hours before it, the alerts open then). A query grades each
//!   version at most [`HEALTH_GRADINGS`] / versions times: a longer range is graded at
//!   every k-th step, each grading holding until the next.
//!
//! This module reads the series a query's selectors need from the store and the engine;
//! [`eval`] computes the answer without I/O.

pub mod eval;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelwatch_core::alerting::{Alert, AlertFilter};
use modelwatch_core::{
    Dataset, DatasetScope, Metric, ModelName, SeriesKey, TimeRange, Timestamp, Version,
};
use modelwatch_store::SeriesFilter;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::AppState;
use eval::{Instant, Labels, Query, Samples, Selector, Series, Steps};

/// The name of the stored series' family.
pub const MODEL_METRIC: &str = "modelwatch_model_metric";
/// The name of the alerts' family, as Prometheus names its own.
pub const ALERTS: &str = "ALERTS";
/// The name of the versions' health score family (0 to 100), as `/metrics` exports it.
pub const HEALTH_SCORE: &str = "modelwatch_version_health_score";
/// The name of the versions' health grade family (1 for the grade), as `/metrics` exports it.
pub const HEALTH_GRADE: &str = "modelwatch_version_health_grade";
/// At most this many gradings of a version (each reads 25 hours of its metrics) per
/// query, shared by the versions the query selects.
pub const HEALTH_GRADINGS: i64 = 500;

/// The Prometheus version whose HTTP API this one follows (buildinfo says it, so Grafana
/// picks the requests it sends).
pub const PROMETHEUS_VERSION: &str = "2.45.0";

/// Prometheus's default lookback of an instant selector.
const LOOKBACK_MS: i64 = 5 * 60 * 1000;
/// Prometheus's bound on a range query's points per series.
const MAX_POINTS: i64 = 11_000;

/// The routes of this API; their unknown query parameters are accepted (Grafana sends
/// ones modelwatch has no use for, and Prometheus ignores them), and a POST to them is a
/// read.
pub(crate) const ROUTES: [&str; 6] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/api/v1/label/{name}/values",
    "/api/v1/status/buildinfo",
];

/// Whether a request path is one of this API's (a POST to it only reads).
pub(crate) fn is_read(path: &str) -> bool {
    ROUTES[..4].contains(&path) || (path.starts_with("/api/v1/label/") && path.ends_with("/values"))
}

/// A Prometheus error answer.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// A parameter or the query is wrong or outside the subset (400 `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// The query could not be evaluated (422 `execution`).
    #[error("{0}")]
    Execution(String),
    /// Reading the store failed (500 `internal`).
    #[error("{0}")]
    Internal(String),
    /// A modelwatch answer, such as 429 when too many expensive reads run.
    #[error("{0}")]
    Api(ApiError),
}

impl From<eval::QueryError> for PromError {
    fn from(error: eval::QueryError) -> Self {
        match error {
            eval::QueryError::Parse(_) | eval::QueryError::Unsupported(_) => {
                PromError::BadData(error.to_string())
            }
            eval::QueryError::Execution(_) => PromError::Execution(error.to_string()),
        }
    }
}

impl From<modelwatch_store::StoreError> for PromError {
    fn from(error: modelwatch_store::StoreError) -> Self {
        PromError::Internal(error.to_string())
    }
}

/// Prometheus's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromErrorBody {
    /// Always `error`.
    pub status: String,
    /// `bad_data`, `execution` or `internal`.
    #[serde(rename = "errorType")]
    pub error_type: String,
    pub error: String,
}

/// `[time, "value"]`: Unix seconds and the value as text (`NaN`, `+Inf` too).
fn pair_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    ArrayBuilder::new()
        .items(
            OneOfBuilder::new()
                .item(ObjectBuilder::new().schema_type(Type::Number))
                .item(ObjectBuilder::new().schema_type(Type::String)),
        )
        .min_items(Some(2))
        .max_items(Some(2))
        .build()
}

fn pairs_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Array(
            pair_schema(),
        )))
        .build()
}

/// A query's `result`: a vector's samples, a matrix's series, or a scalar's pair (any of,
/// since an empty vector is an empty matrix too).
fn result_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, Ref};
    AnyOfBuilder::new()
        .item(ArrayBuilder::new().items(Ref::from_schema_name("PromVectorSample")))
        .item(ArrayBuilder::new().items(Ref::from_schema_name("PromMatrixSeries")))
        .item(pair_schema())
        .build()
        .into()
}

/// One sample of an instant vector (the shape of the answer; written with `json!`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PromVectorSample {
    pub metric: std::collections::BTreeMap<String, String>,
    #[schema(schema_with = pair_schema)]
    pub value: Value,
}

/// One series of a range query's matrix.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromMatrixSeries {
    pub metric: std::collections::BTreeMap<String, String>,
    #[schema(schema_with = pairs_schema)]
    pub values: Value,
}

/// A query's `data`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromQueryData {
    /// `vector`, `scalar` or `matrix`.
    #[serde(rename = "resultType")]
    pub result_type: String,
    #[schema(schema_with = result_schema)]
    pub result: Value,
}

/// The answer of `/api/v1/query` and `/api/v1/query_range`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromQueryAnswer {
    /// Always `success`.
    pub status: String,
    pub data: PromQueryData,
}

/// The answer of `/api/v1/series`: each series' labels.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromSeriesAnswer {
    pub status: String,
    pub data: Vec<std::collections::BTreeMap<String, String>>,
}

/// The answer of the label listings: names or values, sorted.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromNamesAnswer {
    pub status: String,
    pub data: Vec<String>,
}

/// What `/api/v1/status/buildinfo` says.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromBuildInfo {
    /// The Prometheus API version followed.
    pub version: String,
    /// modelwatch's own version.
    pub revision: String,
    pub branch: String,
    #[serde(rename = "buildUser")]
    pub build_user: String,
    #[serde(rename = "buildDate")]
    pub build_date: String,
    #[serde(rename = "goVersion")]
    pub go_version: String,
}

/// The answer of `/api/v1/status/buildinfo`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromBuildInfoAnswer {
    pub status: String,
    pub data: PromBuildInfo,
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let (status, kind) = match self {
            PromError::Api(error) => return error.into_response(),
            PromError::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            PromError::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            PromError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "prometheus api read failed");
        }
        let body = PromErrorBody {
            status: "error".into(),
            error_type: kind.into(),
            error: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// The parameters of a request: its query string and, for a POST, its form body, as
/// Prometheus reads them.
#[derive(Debug, Default)]
struct Parameters(Vec<(String, String)>);

impl Parameters {
    fn read(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<Self, PromError> {
        crate::edge::query_and_form_pairs(query, headers, body)
            .map(Parameters)
            .map_err(PromError::BadData)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str, PromError> {
        self.get(name)
            .ok_or_else(|| PromError::BadData(format!("invalid parameter \"{name}\": missing")))
    }

    /// A time: Unix seconds (with a fraction) or RFC 3339, in ms.
    fn time(&self, name: &str) -> Result<Option<i64>, PromError> {
        self.get(name)
            .map(|text| parse_time(name, text))
            .transpose()
    }

    /// A duration: seconds (with a fraction) or a PromQL duration (`1m`, `1h30m`), in ms.
    fn duration(&self, name: &str) -> Result<Option<i64>, PromError> {
        self.get(name)
            .map(|text| parse_duration(name, text))
            .transpose()
    }
}

fn parse_time(name: &str, text: &str) -> Result<i64, PromError> {
    let bad = || {
        PromError::BadData(format!(
            "invalid parameter \"{name}\": cannot parse {text:?} to a valid timestamp"
        ))
    };
    if let Ok(seconds) = text.parse::<f64>() {
        let ms = (seconds * 1000.0).round();
        let (min, max) = (
            Timestamp::MIN.as_millis() as f64,
            Timestamp::MAX.as_millis() as f64,
        );
        if !(ms.is_finite() && (min..=max).contains(&ms)) {
            return Err(bad());
        }
        return Ok(ms as i64);
    }
    Timestamp::parse(text)
        .map(Timestamp::as_millis)
        .map_err(|_| bad())
}

fn parse_duration(name: &str, text: &str) -> Result<i64, PromError> {
    let bad = || {
        PromError::BadData(format!(
            "invalid parameter \"{name}\": cannot parse {text:?} to a valid duration"
        ))
    };
    let ms = match text.parse::<f64>() {
        Ok(seconds) => (seconds * 1000.0).round(),
        Err(_) => promql_parser::util::parse_duration(text)
            .map_err(|_| bad())?
            .as_millis() as f64,
    };
    if !(ms.is_finite() && ms.abs() <= Timestamp::MAX.as_millis() as f64) {
        return Err(bad());
    }
    Ok(ms as i64)
}

/// The labels of a stored series.
fn series_labels(key: &SeriesKey) -> Labels {
    Labels::from([
        ("__name__".to_owned(), MODEL_METRIC.to_owned()),
        ("model".to_owned(), key.model.to_string()),
        ("version".to_owned(), key.version.to_string()),
        ("metric".to_owned(), key.metric.to_string()),
        (
            "dataset".to_owned(),
            Dataset::name_of(key.dataset.as_ref()).to_owned(),
        ),
    ])
}

/// The labels of an alert's `ALERTS` series.
fn alert_labels(alert: &Alert) -> Labels {
    Labels::from([
        ("__name__".to_owned(), ALERTS.to_owned()),
        ("alertname".to_owned(), alert.rule_name.clone()),
        ("alertstate".to_owned(), "firing".to_owned()),
        ("severity".to_owned(), alert.severity.as_str().to_owned()),
        ("model".to_owned(), alert.model.to_string()),
        ("version".to_owned(), alert.version.to_string()),
        ("metric".to_owned(), alert.metric.to_string()),
        (
            "dataset".to_owned(),
            Dataset::name_of(alert.dataset.as_ref()).to_owned(),
        ),
    ])
}

/// The labels of a version's health series (`name`: [`HEALTH_SCORE`] or [`HEALTH_GRADE`];
/// a grade series gets its `grade` label from its grading).
fn health_labels(name: &str, model: &ModelName, version: &Version) -> Labels {
    Labels::from([
        ("__name__".to_owned(), name.to_owned()),
        ("model".to_owned(), model.to_string()),
        ("version".to_owned(), version.to_string()),
    ])
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Every series the API shows: stored series with their labels and span, and alerts.
struct Catalog {
    stored: Vec<(SeriesKey, Arc<Labels>, i64, i64)>,
    alerts: Vec<(Arc<Labels>, i64, Option<i64>)>,
    /// The health series of the versions (listings only: without their `grade`, which
    /// takes a grading to know).
    health: Vec<Arc<Labels>>,
}

impl Catalog {
    /// The series alive in `[from, to]` (ms): stored series when `list_stored`, alerts
    /// only when some selector may match `ALERTS` (`selectors` empty: every series).
    async fn read(
        state: &AppState,
        selectors: &[&Selector],
        list_stored: bool,
        from: i64,
        to: i64,
    ) -> Result<Catalog, PromError> {
        let wants = |name: &str| {
            selectors.is_empty() || selectors.iter().any(|s| s.may_match("__name__", name))
        };
        let mut stored = Vec::new();
        let mut health = Vec::new();
        let wants_health = wants(HEALTH_SCORE) || wants(HEALTH_GRADE);
        // One selector's equality matchers narrow the listing (an equality no series can
        // satisfy lists nothing).
        let filter = match selectors {
            [selector] => filter_of(selector).ok(),
            _ => Some(SeriesFilter::default()),
        };
        if let (true, true, Some(filter)) =
            (list_stored, wants(MODEL_METRIC) || wants_health, filter)
        {
            let mut versions = BTreeSet::new();
            for info in state.store().list_series(&filter).await? {
                let (first, last) = (
                    info.first_timestamp.as_millis(),
                    info.last_timestamp.as_millis(),
                );
                if last < from || first > to {
                    continue;
                }
                if info.key.dataset.is_none() {
                    versions.insert((info.key.model.clone(), info.key.version.clone()));
                }
                let labels = Arc::new(series_labels(&info.key));
                stored.push((info.key, labels, first, last));
            }
            if !wants(MODEL_METRIC) {
                stored.clear();
            }
            if wants_health {
                for (model, version) in &versions {
                    for name in [HEALTH_SCORE, HEALTH_GRADE] {
                        health.push(Arc::new(health_labels(name, model, version)));
                    }
                }
            }
        }
        let mut alerts = Vec::new();
        if let (true, Some(engine)) = (wants(ALERTS), state.inner.engine.as_ref()) {
            let filter = AlertFilter {
                window: Some(TimeRange::new(
                    timestamp(from),
                    timestamp(to.saturating_add(1)),
                )),
                ..AlertFilter::default()
            };
            let found = engine
                .list_alerts(&filter)
                .await
                .map_err(|e| PromError::Internal(e.to_string()))?;
            for alert in found {
                alerts.push((
                    Arc::new(alert_labels(&alert)),
                    alert.first_seen.as_millis(),
                    alert.resolved_at.map(Timestamp::as_millis),
                ));
            }
        }
        Ok(Catalog {
            stored,
            alerts,
            health,
        })
    }

    /// Every label set matched by any of `selectors` (all of them when there is none).
    fn labels_matching<'a>(
        &'a self,
        selectors: &'a [&'a Selector],
    ) -> impl Iterator<Item = &'a Labels> {
        self.stored
            .iter()
            .map(|(_, labels, _, _)| labels.as_ref())
            .chain(self.alerts.iter().map(|(labels, _, _)| labels.as_ref()))
            .chain(self.health.iter().map(Arc::as_ref))
            .filter(move |labels| {
                selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
            })
    }
}

/// Reads the series each selector of `query` needs to be evaluated at `steps`.
async fn read_series(
    state: &AppState,
    query: &Query,
    steps: Steps,
    lookback_ms: i64,
) -> Result<Vec<Vec<Series>>, PromError> {
    let selectors: Vec<&Selector> = query.selectors().iter().collect();
    if selectors.is_empty() {
        return Ok(Vec::new());
    }
    let windows: Vec<(i64, i64)> = selectors
        .iter()
        .map(|s| s.window(steps, lookback_ms))
        .collect();
    let from = windows.iter().map(|w| w.0).min().unwrap_or(steps.start);
    let to = windows.iter().map(|w| w.1).max().unwrap_or(steps.end);
    let instant = steps.start == steps.end;
    let reduced: Vec<bool> = (0..selectors.len())
        .map(|index| instant && query.reduced_by_store(index))
        .collect();
    // Series reduced by the store need no listing of every stored series first.
    let list_stored = reduced.iter().any(|reduced| !reduced);
    let catalog = Catalog::read(state, &selectors, list_stored, from, to).await?;
    let health = health_series(state, &selectors, steps).await?;
    let mut data = Vec::with_capacity(selectors.len());
    for (index, (selector, (from, to))) in selectors.iter().zip(windows).enumerate() {
        let range = TimeRange::new(timestamp(from), timestamp(to.saturating_add(1)));
        let mut series = if reduced[index] {
            // `*_over_time` reads `(from, to]`.
            let window = TimeRange::new(
                timestamp(from.saturating_add(1)),
                timestamp(to.saturating_add(1)),
            );
            reduced_series(state, selector, window).await?
        } else {
            stored_points(state, &catalog, selector, (from, to), range).await?
        };
        series.extend(
            catalog
                .alerts
                .iter()
                .filter(|(labels, ..)| selector.matches(labels))
                .map(|(labels, first, resolved)| Series {
                    labels: Arc::clone(labels),
                    samples: Samples::Active {
                        from: *first,
                        until: *resolved,
                    },
                }),
        );
        series.extend(
            health
                .iter()
                .filter(|series| selector.matches(&series.labels))
                .cloned(),
        );
        data.push(series);
    }
    Ok(data)
}

/// The health series of the versions `selectors` may select, each graded at the times
/// they are evaluated at (`steps` moved by each selector's offset; at most
/// [`HEALTH_GRADINGS`] gradings in all: beyond that, every k-th step). Nothing (and no
/// read) when no selector may select a health family.
async fn health_series(
    state: &AppState,
    selectors: &[&Selector],
    steps: Steps,
) -> Result<Vec<Series>, PromError> {
    let health: Vec<&&Selector> = selectors
        .iter()
        .filter(|s| s.may_match("__name__", HEALTH_SCORE) || s.may_match("__name__", HEALTH_GRADE))
        .collect();
    if health.is_empty() {
        return Ok(Vec::new());
    }
    let versions: BTreeSet<(ModelName, Version)> = state
        .store()
        .list_series(&SeriesFilter::default())
        .await?
        .into_iter()
        .filter(|info| info.key.dataset.is_none())
        .map(|info| (info.key.model, info.key.version))
        .filter(|(model, version)| {
            health.iter().any(|s| {
                s.may_match("model", model.as_str()) && s.may_match("version", version.as_str())
            })
        })
        .collect();
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let per_version = (HEALTH_GRADINGS / versions.len() as i64 / health.len() as i64).max(1);
    let stride = (steps.count() + per_version - 1) / per_version;
    let times: BTreeSet<i64> = health
        .iter()
        .flat_map(|selector| {
            (0..steps.count())
                .step_by(usize::try_from(stride.max(1)).unwrap_or(usize::MAX))
                .map(move |i| (steps.start + i * steps.step).saturating_sub(selector.offset_ms))
        })
        .collect();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return Ok(Vec::new());
    };
    let alerts = match state.inner.engine.as_ref() {
        Some(engine) => engine
            .list_alerts(&AlertFilter {
                window: Some(TimeRange::new(
                    timestamp(first),
                    timestamp(last.saturating_add(1)),
                )),
                ..AlertFilter::default()
            })
            .await
            .map_err(|e| PromError::Internal(e.to_string()))?,
        None => Vec::new(),
    };
    let mut series = Vec::new();
    for (model, version) in &versions {
        let mut scores = Vec::with_capacity(times.len());
        let mut grades: Vec<(i64, String)> = Vec::with_capacity(times.len());
        for &t in &times {
            let analysed = crate::ops::grade_version(state, model, version, &alerts, timestamp(t))
                .await
                .map_err(|e| PromError::Internal(e.to_string()))?;
            scores.push((t, analysed.history.health_score));
            grades.push((t, crate::ops::grade_name(&analysed)));
        }
        series.push(Series {
            labels: Arc::new(health_labels(HEALTH_SCORE, model, version)),
            samples: Samples::Graded(scores),
        });
        let names: BTreeSet<&String> = grades.iter().map(|(_, grade)| grade).collect();
        for name in names {
            let mut labels = health_labels(HEALTH_GRADE, model, version);
            labels.insert("grade".to_owned(), name.clone());
            series.push(Series {
                labels: Arc::new(labels),
                samples: Samples::Graded(
                    grades
                        .iter()
                        .map(|(t, grade)| (*t, (grade == name).then_some(1.0)))
                        .collect(),
                ),
            });
        }
    }
    Ok(series)
}

/// The points in `range` of each stored series `selector` matches.
async fn stored_points(
    state: &AppState,
    catalog: &Catalog,
    selector: &Selector,
    (from, to): (i64, i64),
    range: TimeRange,
) -> Result<Vec<Series>, PromError> {
    let chosen: Vec<&(SeriesKey, Arc<Labels>, i64, i64)> = catalog
        .stored
        .iter()
        .filter(|(_, labels, first, last)| {
            *last >= from && *first <= to && selector.matches(labels)
        })
        .collect();
    let requests: Vec<(SeriesKey, TimeRange)> = chosen
        .iter()
        .map(|(key, ..)| (key.clone(), range))
        .collect();
    let found = state.store().range_many(&requests).await?;
    let series: Vec<Series> = chosen
        .into_iter()
        .zip(found)
        .map(|((_, labels, _, _), points)| Series {
            labels: Arc::clone(labels),
            samples: Samples::Points(
                points
                    .into_iter()
                    .map(|p| (p.timestamp.as_millis(), p.value))
                    .collect(),
            ),
        })
        .collect();
    Ok(series)
}

/// Each stored series `selector` matches, reduced by the store to its statistics over
/// `range` in one cross-series read (the selector's equality matchers narrow it).
async fn reduced_series(
    state: &AppState,
    selector: &Selector,
    range: TimeRange,
) -> Result<Vec<Series>, PromError> {
    if !selector.may_match("__name__", MODEL_METRIC) {
        return Ok(Vec::new());
    }
    // An equality matcher on a name no series can have matches nothing.
    let Ok(filter) = filter_of(selector) else {
        return Ok(Vec::new());
    };
    let windows = state.store().aggregate_series(&filter, range).await?;
    Ok(windows
        .into_iter()
        .filter_map(|window| {
            let labels = series_labels(&window.key);
            selector.matches(&labels).then(|| Series {
                labels: Arc::new(labels),
                samples: Samples::Window(window.stats),
            })
        })
        .collect())
}

/// The store filter of a selector's equality matchers on the series labels.
fn filter_of(selector: &Selector) -> Result<SeriesFilter, modelwatch_core::ValidationError> {
    Ok(SeriesFilter {
        model: selector.equal("model").map(ModelName::parse).transpose()?,
        version: selector.equal("version").map(Version::parse).transpose()?,
        metric: selector.equal("metric").map(Metric::parse).transpose()?,
        dataset: match selector.equal("dataset") {
            Some(name) => DatasetScope::parse(name)?,
            None => DatasetScope::Each,
        },
    })
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A value as Prometheus writes it: a string, `NaN`, `+Inf`, `-Inf`.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        value.to_string()
    }
}

fn lookback(parameters: &Parameters) -> Result<i64, PromError> {
    match parameters.duration("lookback_delta")? {
        None => Ok(LOOKBACK_MS),
        Some(ms) if ms > 0 => Ok(ms),
        Some(_) => Err(PromError::BadData(
            "invalid parameter \"lookback_delta\": must be positive".into(),
        )),
    }
}

/// The parameters of an instant query.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct InstantParameters {
    /// A PromQL expression of the supported subset (see the README).
    #[param(required = true)]
    query: String,
    /// Evaluation time: Unix seconds or RFC 3339; now when absent.
    time: Option<String>,
    /// How far back an instant selector looks for a sample (default `5m`).
    lookback_delta: Option<String>,
}

/// Evaluates a PromQL expression at one time, like Prometheus's `/api/v1/query`. The
/// parameters may also come as a form body (`application/x-www-form-urlencoded`).
#[utoipa::path(method(get, post), path = "/api/v1/query", tag = "prometheus",
    params(InstantParameters),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "For a POST: the parameters as a form instead of the query string"),
    responses(
        (status = 200, description = "`data`: `{resultType: vector|scalar, result}`", body = PromQueryAnswer),
        (status = 400, description = "Bad parameter, or PromQL outside the supported subset (named)", body = PromErrorBody),
        (status = 422, body = PromErrorBody),
        (status = 429, description = "Too many expensive reads at once; see Retry-After", body = ErrorBody),
        (status = 500, body = PromErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn query(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match instant_query(&state, raw.as_deref(), &headers, &body).await {
        Ok(data) => success(data),
        Err(error) => error.into_response(),
    }
}

async fn instant_query(
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, PromError> {
    let parameters = Parameters::read(raw, headers, body)?;
    let query = Query::parse(parameters.required("query")?)?;
    let t = parameters
        .time("time")?
        .unwrap_or_else(|| state.now().as_millis());
    let lookback = lookback(&parameters)?;
    let _turn = state.expensive().await.map_err(PromError::Api)?;
    let data = read_series(state, &query, Steps::at(t), lookback).await?;
    Ok(match eval::instant(&query, t, lookback, &data)? {
        Instant::Scalar(value) => json!({
            "resultType": "scalar",
            "result": [seconds(t), format_value(value)],
        }),
        Instant::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|(labels, value)| json!({
                "metric": labels.as_ref(),
                "value": [seconds(t), format_value(*value)],
            })).collect::<Vec<_>>(),
        }),
    })
}

/// The parameters of a range query.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RangeParameters {
    /// A PromQL expression of the supported subset (see the README).
    #[param(required = true)]
    query: String,
    /// Start: Unix seconds or RFC 3339.
    #[param(required = true)]
    start: String,
    /// End: Unix seconds or RFC 3339.
    #[param(required = true)]
    end: String,
    /// Step between evaluations: seconds or a duration (`1m`); at most 11,000 steps.
    #[param(required = true)]
    step: String,
    /// How far back an instant selector looks for a sample (default `5m`).
    lookback_delta: Option<String>,
}

/// Evaluates a PromQL expression at each step of a range, like Prometheus's
/// `/api/v1/query_range`. The parameters may also come as a form body.
#[utoipa::path(method(get, post), path = "/api/v1/query_range", tag = "prometheus",
    params(RangeParameters),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "For a POST: the parameters as a form instead of the query string"),
    responses(
        (status = 200, description = "`data`: `{resultType: matrix, result}`", body = PromQueryAnswer),
        (status = 400, description = "Bad parameter, or PromQL outside the supported subset (named)", body = PromErrorBody),
        (status = 422, body = PromErrorBody),
        (status = 429, description = "Too many expensive reads at once; see Retry-After", body = ErrorBody),
        (status = 500, body = PromErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn query_range(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match range_query(&state, raw.as_deref(), &headers, &body).await {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

/// The whole answer of a range query, written straight into bytes (a matrix of a million
/// points built as `serde_json::Value`s first took longer than evaluating it).
async fn range_query(
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<u8>, PromError> {
    let parameters = Parameters::read(raw, headers, body)?;
    let query = Query::parse(parameters.required("query")?)?;
    let start = parse_time("start", parameters.required("start")?)?;
    let end = parse_time("end", parameters.required("end")?)?;
    let step = parse_duration("step", parameters.required("step")?)?;
    if end < start {
        return Err(PromError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    if step <= 0 {
        return Err(PromError::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not \
             accepted. Try a positive integer"
                .into(),
        ));
    }
    let steps = Steps { start, end, step };
    if steps.count() > MAX_POINTS {
        return Err(PromError::BadData(format!(
            "exceeded maximum resolution of {MAX_POINTS} points per timeseries. Try decreasing \
             the query resolution (?step=XX)"
        )));
    }
    let lookback = lookback(&parameters)?;
    let _turn = state.expensive().await.map_err(PromError::Api)?;
    let data = read_series(state, &query, steps, lookback).await?;
    let matrix = eval::range(&query, steps, lookback, &data)?;
    drop(data);
    Ok(matrix_answer(&matrix))
}

/// `{"status":"success","data":{"resultType":"matrix","result":[…]}}` of a matrix, as
/// `serde_json` would write it.
fn matrix_answer(matrix: &eval::Matrix) -> Vec<u8> {
    let points: usize = matrix.iter().map(|(_, points)| points.len()).sum();
    let mut out: Vec<u8> = Vec::with_capacity(64 + 40 * points + 120 * matrix.len());
    out.extend_from_slice(br#"{"status":"success","data":{"resultType":"matrix","result":["#);
    for (index, (labels, points)) in matrix.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"metric":"#);
        // Writing into a Vec cannot fail, nor can serialising a map of strings.
        let _ = serde_json::to_writer(&mut out, labels.as_ref());
        out.extend_from_slice(br#","values":["#);
        for (at, (t, value)) in points.iter().enumerate() {
            if at > 0 {
                out.push(b',');
            }
            out.push(b'[');
            write_seconds(&mut out, *t);
            // A value's text is digits, `.`, `e`, signs, `NaN` or `Inf`: nothing to escape.
            out.extend_from_slice(b",\"");
            if value.is_finite() {
                write_finite(&mut out, *value);
            } else {
                out.extend_from_slice(format_value(*value).as_bytes());
            }
            out.extend_from_slice(b"\"]");
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}}");
    out
}

/// `ms` in seconds, as serde_json writes the `f64` (`1704110400.0`, `1704110400.25`), without
/// the float: a range answer is mostly timestamps.
fn write_seconds(out: &mut Vec<u8>, ms: i64) {
    if ms < 0 {
        out.push(b'-');
    }
    let (whole, fraction) = (ms.unsigned_abs() / 1000, ms.unsigned_abs() % 1000);
    out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    out.push(b'.');
    match fraction {
        0 => out.push(b'0'),
        _ => {
            let digits =
                [fraction / 100, fraction / 10 % 10, fraction % 10].map(|d| b'0' + d as u8);
            let used = if fraction % 10 != 0 {
                3
            } else if fraction % 100 != 0 {
                2
            } else {
                1
            };
            out.extend_from_slice(&digits[..used]);
        }
    }
}

/// A finite value as `Display` writes it (Prometheus' shortest digits, never an exponent),
/// by the faster writer where its notation is the same: plain digits, less a `.0`.
fn write_finite(out: &mut Vec<u8>, value: f64) {
    let mut buffer = zmij::Buffer::new();
    let text = buffer.format_finite(value);
    if text.contains(['e', 'E']) {
        out.extend_from_slice(value.to_string().as_bytes());
    } else {
        out.extend_from_slice(text.strip_suffix(".0").unwrap_or(text).as_bytes());
    }
}

/// The parameters of the series and label listings.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MatchParameters {
    /// A series selector (repeatable: `match[]=…&match[]=…`); series matching any.
    #[param(rename = "match[]")]
    matches: Option<Vec<String>>,
    /// Start: Unix seconds or RFC 3339; the beginning of time when absent.
    start: Option<String>,
    /// End: Unix seconds or RFC 3339; the end of time when absent.
    end: Option<String>,
}

/// The selectors of `match[]`, the time span, and the catalogue of series in it.
async fn matching(
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    required: bool,
) -> Result<(Vec<Query>, Catalog), PromError> {
    let parameters = Parameters::read(raw, headers, body)?;
    let texts = parameters.all("match[]");
    if required && texts.is_empty() {
        return Err(PromError::BadData("no match[] parameter provided".into()));
    }
    let queries = texts
        .iter()
        .map(|text| {
            let query = Query::parse(text)?;
            if query.as_selector().is_none() {
                return Err(PromError::BadData(format!(
                    "invalid parameter \"match[]\": {text:?} is not a series selector"
                )));
            }
            Ok(query)
        })
        .collect::<Result<Vec<_>, PromError>>()?;
    let from = parameters
        .time("start")?
        .unwrap_or(Timestamp::MIN.as_millis());
    let to = parameters
        .time("end")?
        .unwrap_or(Timestamp::MAX.as_millis());
    let selectors: Vec<&Selector> = queries.iter().filter_map(Query::as_selector).collect();
    let catalog = Catalog::read(state, &selectors, true, from, to).await?;
    Ok((queries, catalog))
}

/// The label sets of the series matching any `match[]` selector, like Prometheus's
/// `/api/v1/series`. The parameters may also come as a form body.
#[utoipa::path(method(get, post), path = "/api/v1/series", tag = "prometheus",
    params(MatchParameters),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "For a POST: the parameters as a form instead of the query string"),
    responses(
        (status = 200, description = "`data`: the label sets", body = PromSeriesAnswer),
        (status = 400, body = PromErrorBody),
        (status = 500, body = PromErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn series(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let (queries, catalog) = matching(&state, raw.as_deref(), &headers, &body, true).await?;
        let selectors: Vec<&Selector> = queries.iter().filter_map(Query::as_selector).collect();
        let found: BTreeSet<&Labels> = catalog.labels_matching(&selectors).collect();
        Ok::<_, PromError>(json!(found))
    };
    match answer.await {
        Ok(data) => success(data),
        Err(error) => error.into_response(),
    }
}

/// The label names of the series (matching any `match[]` selector, if given), like
/// Prometheus's `/api/v1/labels`. The parameters may also come as a form body.
#[utoipa::path(method(get, post), path = "/api/v1/labels", tag = "prometheus",
    params(MatchParameters),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "For a POST: the parameters as a form instead of the query string"),
    responses(
        (status = 200, description = "`data`: the label names, sorted", body = PromNamesAnswer),
        (status = 400, body = PromErrorBody),
        (status = 500, body = PromErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn labels(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        let (queries, catalog) = matching(&state, raw.as_deref(), &headers, &body, false).await?;
        let selectors: Vec<&Selector> = queries.iter().filter_map(Query::as_selector).collect();
        let names: BTreeSet<&String> = catalog
            .labels_matching(&selectors)
            .flat_map(|labels| labels.keys())
            .collect();
        Ok::<_, PromError>(json!(names))
    };
    match answer.await {
        Ok(data) => success(data),
        Err(error) => error.into_response(),
    }
}

/// The values of one label among the series (matching any `match[]` selector, if given),
/// like Prometheus's `/api/v1/label/{name}/values`.
#[utoipa::path(get, path = "/api/v1/label/{name}/values", tag = "prometheus",
    params(("name" = String, Path, description = "A label name, such as `model` or `__name__`"), MatchParameters),
    responses(
        (status = 200, description = "`data`: the values, sorted", body = PromNamesAnswer),
        (status = 400, body = PromErrorBody),
        (status = 500, body = PromErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let (queries, catalog) = matching(&state, raw.as_deref(), &headers, &[], false).await?;
        let selectors: Vec<&Selector> = queries.iter().filter_map(Query::as_selector).collect();
        let values: BTreeSet<&String> = catalog
            .labels_matching(&selectors)
            .filter_map(|labels| labels.get(&name))
            .collect();
        Ok::<_, PromError>(json!(values))
    };
    match answer.await {
        Ok(data) => success(data),
        Err(error) => error.into_response(),
    }
}

/// The Prometheus version whose API this follows, like Prometheus's
/// `/api/v1/status/buildinfo` (Grafana reads it to choose its requests).
#[utoipa::path(get, path = "/api/v1/status/buildinfo", tag = "prometheus",
    responses(
        (status = 200, description = "`data`: `{version, revision, branch, …}`; `version` is the Prometheus API version followed", body = PromBuildInfoAnswer),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn buildinfo() -> Response {
    success(json!({
        "version": PROMETHEUS_VERSION,
        "revision": format!("modelwatch {}", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_as_prometheus_writes_them() {
        assert_eq!(
            parse_time("time", "1714564800.5").ok(),
            Some(1_714_564_800_500)
        );
        assert_eq!(
            parse_time("time", "2024-05-01T12:00:00Z").ok(),
            Some(1_714_564_800_000)
        );
        for bad in ["1e300", "NaN", "inf", "", "soon"] {
            assert!(parse_time("time", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("step", "60").ok(), Some(60_000));
        assert_eq!(parse_duration("step", "1m30s").ok(), Some(90_000));
        assert_eq!(parse_duration("step", "0.5").ok(), Some(500));
        assert!(parse_duration("step", "1e300").is_err());
    }

    #[test]
    fn range_answers_write_numbers_as_before_only_faster() {
        fn written<T>(write: fn(&mut Vec<u8>, T), x: T) -> String {
            let mut out = Vec::new();
            write(&mut out, x);
            String::from_utf8(out).unwrap()
        }
        for ms in [
            0,
            1,
            10,
            100,
            120,
            999,
            1_000,
            1_500,
            -1,
            -500,
            -1_000,
            -1_250,
            1_704_110_400_000,
            1_704_110_400_001,
            1_704_110_400_010,
            1_704_110_400_250,
            253_402_300_799_999,
            -62_135_596_800_000,
        ] {
            let expected = serde_json::to_string(&seconds(ms)).unwrap();
            assert_eq!(written(write_seconds, ms), expected, "{ms} ms");
        }
        for value in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.892433,
            123.456,
            1e-5,
            1e-7,
            1.5e-300,
            5e-324,
            f64::MIN_POSITIVE,
            1e15,
            1e16,
            1e17,
            1.2345e21,
            123456789012345680.0,
            f64::MAX,
            f64::MIN,
            2f64.powi(53),
            1.0 / 3.0,
        ] {
            assert_eq!(written(write_finite, value), value.to_string(), "{value:e}");
        }
    }

    #[test]
    fn values_are_written_as_prometheus_writes_them() {
        assert_eq!(format_value(0.93), "0.93");
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn post_reads_of_every_route_are_reads() {
        for path in [
            "/api/v1/query",
            "/api/v1/query_range",
            "/api/v1/series",
            "/api/v1/labels",
            "/api/v1/label/model/values",
        ] {
            assert!(is_read(path), "{path}");
        }
        assert!(!is_read("/api/v1/metrics"));
        assert!(!is_read("/api/v1/write"));
    }
}
