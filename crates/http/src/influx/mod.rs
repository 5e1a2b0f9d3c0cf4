//! InfluxDB compatibility (issue 20): `/ping`, `/health` and `/ready` as the InfluxDB
//! clients (Python `influxdb` 1.x, `influxdb-client` 2.x, Telegraf) expect them, and
//! `/query` with the InfluxQL subset of [`influxql`] that Grafana's InfluxDB data source
//! sends, answered in InfluxDB 1.x JSON (`{"results": [{"statement_id": 0, "series":
//! [{"name", "tags", "columns", "values"}]}]}`); errors are `{"error": …}`.
//!
//! Every stored series is seen in both shapes of the [`InfluxMapping`] (see
//! [`crate::line_protocol`]): in the wide measurement (`model_metrics`) as the field
//! named by its metric, tagged model, version and dataset; in the narrow one
//! (`performance_metric`) as the field `value`, tagged model, version, metric and
//! dataset. The default dataset's tag value is `default`.
//!
//! A `SELECT` reads the points of the matching series in its time range (a few series at a
//! time, folded into time buckets aligned to the interval as InfluxDB aligns them, so
//! only the buckets are held) and takes a turn for expensive reads.
//!
//! `/api/v2/query` reads the Flux subset of [`flux`] over the same two shapes (its
//! `_measurement`, `_field` and tag columns), answered in InfluxDB 2.x's annotated CSV.

pub mod flux;
pub mod influxql;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelwatch_core::{Dataset, SeriesKey, TimeRange, Timestamp};
use modelwatch_store::{SeriesFilter, SeriesInfo};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::line_protocol::InfluxMapping;
use crate::AppState;
use influxql::{Aggregate, Condition, Fill, GroupTags, Select, Statement};

/// The InfluxDB version whose 1.x HTTP API `/query` follows (`X-Influxdb-Version`).
pub const INFLUXDB_VERSION: &str = "1.8.10";
/// The one database `SHOW DATABASES` lists (the `db` parameter is accepted and ignored).
pub const DATABASE: &str = "modelwatch";
/// Most time buckets one `SELECT … GROUP BY time()` may make per series.
pub const MAX_BUCKETS: i64 = 100_000;
/// Series read at once by a `SELECT`.
const READ_BATCH: usize = 64;

/// The routes of this module; their unknown query parameters are accepted (the clients
/// send `u`, `p`, `rp`, `chunked`, `pretty`, … which modelwatch has no use for).
pub(crate) const ROUTES: [&str; 5] = ["/ping", "/health", "/ready", "/query", "/api/v2/query"];

/// Whether a path is one anyone may fetch (InfluxDB's own need no credentials).
pub(crate) fn is_public(path: &str) -> bool {
    ROUTES[..3].contains(&path)
}

// ---- the wire ----

/// What `/query` answers: one result per statement.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfluxAnswer {
    pub results: Vec<InfluxResult>,
}

/// A statement's result: its series, or the error that stopped it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfluxResult {
    pub statement_id: usize,
    /// Absent when the statement found nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<InfluxSeries>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A cell of a row: a time (RFC 3339 text, or an integer with `epoch`), a number, a name,
/// a flag or null.
fn cell_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

fn rows_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::ArrayBuilder;
    ArrayBuilder::new()
        .items(utoipa::openapi::RefOr::T(utoipa::openapi::Schema::Array(
            ArrayBuilder::new()
                .items(utoipa::openapi::RefOr::T(cell_schema()))
                .build(),
        )))
        .build()
}

/// One series of a result: rows of `columns`, the first of which is `time` for a SELECT.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfluxSeries {
    pub name: String,
    /// The values of the `GROUP BY` tags; absent without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    pub columns: Vec<String>,
    #[schema(schema_with = rows_schema)]
    pub values: Vec<Vec<Value>>,
}

/// InfluxDB's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfluxErrorBody {
    pub error: String,
}

/// What `/health` says (InfluxDB 2.x's shape, which `influxdb-client` reads).
#[derive(Debug, Serialize, ToSchema)]
pub struct InfluxHealth {
    /// Always `influxdb`.
    pub name: String,
    pub message: String,
    /// `pass`, or `fail` when the store is not reachable.
    pub status: String,
    pub version: String,
    pub commit: String,
}

/// What `/ready` says (InfluxDB 2.x's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct InfluxReady {
    /// Always `ready`.
    pub status: String,
    /// When the server started, RFC 3339.
    pub started: String,
    /// How long it has been up, as a Go duration (`1h2m3s`).
    pub up: String,
}

fn influx_error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(InfluxErrorBody {
            error: message.into(),
        }),
    )
        .into_response();
    version_headers(response.headers_mut());
    response
}

fn version_headers(headers: &mut HeaderMap) {
    headers.insert(
        "x-influxdb-version",
        HeaderValue::from_static(INFLUXDB_VERSION),
    );
    headers.insert("x-influxdb-build", HeaderValue::from_static("OSS"));
}

// ---- the routes ----

/// InfluxDB's ping: 204 with `X-Influxdb-Version`. Never needs a token.
#[utoipa::path(get, path = "/ping", tag = "influxdb",
    responses((status = 204, description = "Up; `X-Influxdb-Version` names the InfluxDB API followed")))]
pub async fn ping() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    version_headers(response.headers_mut());
    response
}

/// InfluxDB 2.x's health check: `status` is `pass` while the store answers. Never needs a
/// token.
#[utoipa::path(get, path = "/health", tag = "influxdb",
    responses(
        (status = 200, body = InfluxHealth),
        (status = 503, description = "The store is not reachable (`status`: `fail`)", body = InfluxHealth),
    ))]
pub async fn health(State(state): State<AppState>) -> Response {
    let reachable = state.store().custom_metrics().await;
    let (status, pass, message) = match reachable {
        Ok(_) => (
            StatusCode::OK,
            "pass",
            "ready for queries and writes".to_owned(),
        ),
        Err(error) => {
            tracing::warn!(%error, "health check: store not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "fail",
                "the store is not reachable".to_owned(),
            )
        }
    };
    let body = InfluxHealth {
        name: "influxdb".into(),
        message,
        status: pass.into(),
        version: INFLUXDB_VERSION.into(),
        commit: format!("modelwatch {}", env!("CARGO_PKG_VERSION")),
    };
    let mut response = (status, Json(body)).into_response();
    version_headers(response.headers_mut());
    response
}

/// A Go duration (`1h2m3s`), as InfluxDB writes `up`.
fn go_duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// InfluxDB 2.x's readiness: since when the server is up. Never needs a token.
#[utoipa::path(get, path = "/ready", tag = "influxdb",
    responses((status = 200, body = InfluxReady)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let started = state.inner.started;
    let body = InfluxReady {
        status: "ready".into(),
        started: started.to_rfc3339(),
        up: go_duration(state.now().millis_since(started)),
    };
    let mut response = Json(body).into_response();
    version_headers(response.headers_mut());
    response
}

/// The parameters of `/query`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct QueryParameters {
    /// InfluxQL: one or more statements of the supported subset (see the README),
    /// separated by `;`.
    #[param(required = true)]
    q: String,
    /// Accepted and ignored: modelwatch has one database.
    db: Option<String>,
    /// Times as integers in this unit (`h`, `m`, `s`, `ms`, `u`, `ns`) instead of RFC 3339.
    epoch: Option<String>,
}

/// InfluxQL, like InfluxDB 1.x's `/query`: `SELECT` aggregates over time buckets, the
/// `SHOW` statements Grafana's editor sends, and `CREATE DATABASE` (accepted; there is
/// nothing to create). The parameters may also come as a form body, as Grafana posts them.
#[utoipa::path(method(get, post), path = "/query", tag = "influxdb",
    params(QueryParameters),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "For a POST: the parameters as a form instead of the query string"),
    responses(
        (status = 200, description = "One result per statement; a statement's `error` says why it failed", body = InfluxAnswer),
        (status = 400, description = "No query, a bad `epoch`, or InfluxQL outside the supported subset (named)", body = InfluxErrorBody),
        (status = 429, description = "Too many expensive reads at once; see Retry-After", body = ErrorBody),
        (status = 500, body = InfluxErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn query(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&state, raw.as_deref(), &headers, &body).await {
        Ok(answer) => {
            let mut response = Json(answer).into_response();
            version_headers(response.headers_mut());
            response
        }
        Err(Failure::Api(error)) => error.into_response(),
        Err(Failure::Bad(message)) => influx_error(StatusCode::BAD_REQUEST, message),
        Err(Failure::Store(error)) => {
            tracing::error!(%error, "influxql read failed");
            influx_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the store failed",
            )
        }
    }
}

/// A Flux query as InfluxDB 2.x's clients post it (`application/json`); a body of
/// `application/vnd.flux` is the query itself.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FluxRequest {
    /// Flux: one pipeline of the supported subset (see the README).
    pub query: String,
    /// `flux` (the only language; absent means flux too).
    #[serde(rename = "type")]
    pub language: Option<String>,
    /// Accepted as the clients send it; the answer is always annotated CSV with a header
    /// and the datatype, group and default annotations.
    pub dialect: Option<FluxDialect>,
}

/// The CSV dialect a client asks for (read and ignored: the clients ask for the default).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct FluxDialect {
    pub header: Option<bool>,
    pub delimiter: Option<String>,
    pub annotations: Option<Vec<String>>,
    pub comment_prefix: Option<String>,
    pub date_time_format: Option<String>,
}

/// InfluxDB 2.x's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct FluxErrorBody {
    /// `invalid` for a query this server does not read, `internal error` otherwise.
    pub code: String,
    pub message: String,
}

fn flux_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(FluxErrorBody {
            code: code.into(),
            message: message.into(),
        }),
    )
        .into_response();
    version_headers(response.headers_mut());
    response
}

/// Flux, like InfluxDB 2.x's `/api/v2/query`, for the Influx 2.x clients and Grafana's
/// Flux data source: `from |> range |> filter |> aggregateWindow |> mean/last/… |> limit
/// |> yield` over the same series as `/query`, answered in annotated CSV. `org` and the
/// bucket's name are accepted and ignored (modelwatch has one database).
#[utoipa::path(post, path = "/api/v2/query", tag = "influxdb",
    request_body(content = FluxRequest, description = "The query (JSON, as the clients send it; or the Flux text itself as `application/vnd.flux`)"),
    responses(
        (status = 200, description = "InfluxDB 2.x's annotated CSV: one table per series (its `_measurement`, `_field` and tags), `_start`, `_stop`, `_time`, `_value`", content_type = "text/csv", body = String),
        (status = 400, description = "No query, or Flux outside the supported subset (named)", body = FluxErrorBody),
        (status = 429, description = "Too many expensive reads at once; see Retry-After", body = ErrorBody),
        (status = 500, body = FluxErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn query_v2(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| !v.starts_with("application/vnd.flux"));
    let text = if json {
        match serde_json::from_slice::<FluxRequest>(&body) {
            Ok(request) if request.language.as_deref().is_some_and(|l| l != "flux") => {
                return flux_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "type: only flux queries are read here (InfluxQL goes to /query)",
                )
            }
            Ok(request) => request.query,
            Err(error) => {
                return flux_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("the body is not a query request: {error}"),
                )
            }
        }
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    if text.trim().is_empty() {
        return flux_error(StatusCode::BAD_REQUEST, "invalid", "query: empty");
    }
    let query = match flux::parse(&text, state.now().as_millis()) {
        Ok(query) => query,
        Err(error) => {
            return flux_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("error in query specification: {error}"),
            )
        }
    };
    match run_flux(&state, &query).await {
        Ok(csv) => {
            let mut response = (
                [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                csv,
            )
                .into_response();
            version_headers(response.headers_mut());
            response
        }
        Err(Failure::Api(error)) => error.into_response(),
        Err(Failure::Bad(message)) => flux_error(StatusCode::BAD_REQUEST, "invalid", message),
        Err(Failure::Store(error)) => {
            tracing::error!(%error, "flux read failed");
            flux_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "reading the store failed",
            )
        }
    }
}

/// One Flux table: its key columns (`_field`, `_measurement`, tags) and its series.
struct FluxTable {
    key: BTreeMap<String, String>,
    series: SeriesKey,
}

async fn run_flux(state: &AppState, query: &flux::Query) -> Result<String, Failure> {
    let _turn = state.expensive().await.map_err(Failure::Api)?;
    let mapping = state.influx_mapping();
    let all = state.store().list_series(&SeriesFilter::default()).await?;
    let range = TimeRange::new(timestamp(query.start), timestamp(query.stop));
    let mut tables = Vec::new();
    for shape in [Shape::Wide, Shape::Narrow] {
        for info in &all {
            if info.last_timestamp < range.start || info.first_timestamp >= range.end {
                continue;
            }
            let mut key = tags_of(mapping, shape, &info.key);
            key.insert(
                "_measurement".into(),
                measurement_of(mapping, shape).to_owned(),
            );
            key.insert(
                "_field".into(),
                field_of(mapping, shape, &info.key).to_owned(),
            );
            let matches = query
                .filters
                .iter()
                .all(|p| p.matches(&|column: &str| key.get(column).cloned()));
            if matches {
                tables.push(FluxTable {
                    key,
                    series: info.key.clone(),
                });
            }
        }
    }
    let mut csv = String::new();
    let mut number = 0usize;
    for batch in tables.chunks(READ_BATCH) {
        let requests: Vec<(SeriesKey, TimeRange)> =
            batch.iter().map(|t| (t.series.clone(), range)).collect();
        let found = state.store().range_many(&requests).await?;
        for (table, points) in batch.iter().zip(found) {
            let points: Vec<(i64, f64)> = points
                .iter()
                .map(|p| (p.timestamp.as_millis(), p.value))
                .collect();
            let rows = query
                .evaluate(&points)
                .map_err(|e| Failure::Bad(format!("error in query specification: {e}")))?;
            if rows.is_empty() {
                continue;
            }
            write_flux_table(&mut csv, query, number, &table.key, &rows);
            number += 1;
        }
    }
    csv.push_str("\r\n");
    Ok(csv)
}

/// One table in annotated CSV, its annotations and header first (a table's columns may
/// differ from the previous one's: the shapes have different tags).
fn write_flux_table(
    csv: &mut String,
    query: &flux::Query,
    number: usize,
    key: &BTreeMap<String, String>,
    rows: &flux::Rows,
) {
    use std::fmt::Write as _;
    let timed = rows.iter().any(|(t, _)| t.is_some());
    let counted = query.steps.iter().any(|step| {
        matches!(
            step,
            flux::Step::Reduce(flux::Function::Count)
                | flux::Step::Window {
                    function: flux::Function::Count,
                    ..
                }
        )
    });
    let value_type = if counted { "long" } else { "double" };
    let time_columns: &[(&str, &str, &str)] = if timed {
        &[
            ("_start", "dateTime:RFC3339", "true"),
            ("_stop", "dateTime:RFC3339", "true"),
            ("_time", "dateTime:RFC3339", "false"),
        ]
    } else {
        &[
            ("_start", "dateTime:RFC3339", "true"),
            ("_stop", "dateTime:RFC3339", "true"),
        ]
    };
    let mut datatypes = vec!["#datatype", "string", "long"];
    let mut groups = vec!["#group", "false", "false"];
    let mut names = vec!["", "result", "table"];
    for (name, datatype, group) in time_columns {
        names.push(name);
        datatypes.push(datatype);
        groups.push(group);
    }
    names.push("_value");
    datatypes.push(value_type);
    groups.push("false");
    for column in key.keys() {
        names.push(column);
        datatypes.push("string");
        groups.push("true");
    }
    let mut defaults = vec!["#default".to_owned(), csv_cell(&query.result)];
    defaults.extend(std::iter::repeat_n(String::new(), names.len() - 2));
    if number > 0 {
        csv.push_str("\r\n");
    }
    for line in [
        datatypes.join(","),
        groups.join(","),
        defaults.join(","),
        names.join(","),
    ] {
        csv.push_str(&line);
        csv.push_str("\r\n");
    }
    let (start, stop) = (rfc3339(query.start), rfc3339(query.stop));
    let key_cells: Vec<String> = key.values().map(|v| csv_cell(v)).collect();
    for (time, value) in rows {
        let _ = write!(csv, ",,{number},{start},{stop}");
        if timed {
            let _ = write!(csv, ",{}", time.map(rfc3339).unwrap_or_default());
        }
        match value {
            Some(v) if counted => {
                let _ = write!(csv, ",{}", *v as i64);
            }
            Some(v) => {
                let _ = write!(csv, ",{v}");
            }
            None => csv.push(','),
        }
        for cell in &key_cells {
            csv.push(',');
            csv.push_str(cell);
        }
        csv.push_str("\r\n");
    }
}

/// A CSV cell, quoted when it must be.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

enum Failure {
    Bad(String),
    Store(modelwatch_store::StoreError),
    Api(crate::ApiError),
}

impl From<modelwatch_store::StoreError> for Failure {
    fn from(error: modelwatch_store::StoreError) -> Self {
        Failure::Store(error)
    }
}

/// The request's parameters: the query string and, for a form POST, the form.
fn parameters(
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, Failure> {
    crate::edge::query_and_form_pairs(raw, headers, body).map_err(Failure::Bad)
}

/// How `epoch` writes times: ms per unit, or RFC 3339 (`None`).
#[derive(Debug, Clone, Copy)]
enum Epoch {
    Rfc3339,
    /// Divide ms by this.
    Coarser(i64),
    /// Multiply ms by this.
    Finer(i64),
}

impl Epoch {
    fn parse(text: Option<&str>) -> Result<Epoch, Failure> {
        Ok(match text {
            None | Some("") => Epoch::Rfc3339,
            Some("h") => Epoch::Coarser(3_600_000),
            Some("m") => Epoch::Coarser(60_000),
            Some("s") => Epoch::Coarser(1_000),
            Some("ms") => Epoch::Coarser(1),
            Some("u" | "µ" | "us") => Epoch::Finer(1_000),
            Some("n" | "ns") => Epoch::Finer(1_000_000),
            Some(other) => {
                return Err(Failure::Bad(format!(
                    "invalid parameter \"epoch\": {other:?} (use h, m, s, ms, u or ns)"
                )))
            }
        })
    }

    fn write(self, ms: i64) -> Value {
        match self {
            Epoch::Rfc3339 => Value::String(rfc3339(ms)),
            Epoch::Coarser(by) => json!(ms.div_euclid(by)),
            Epoch::Finer(by) => json!(ms.saturating_mul(by)),
        }
    }
}

/// RFC 3339 as InfluxDB writes it: no fraction when there is none.
fn rfc3339(ms: i64) -> String {
    let text = Timestamp::from_millis(ms)
        .map(Timestamp::to_rfc3339)
        .unwrap_or_else(|_| ms.to_string());
    match text.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => text,
    }
}

async fn run(
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<InfluxAnswer, Failure> {
    let pairs = parameters(raw, headers, body)?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let text = get("q")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| Failure::Bad("missing required parameter \"q\"".into()))?;
    let epoch = Epoch::parse(get("epoch"))?;
    let now = state.now().as_millis();
    let statements = influxql::parse(text, now).map_err(|e| Failure::Bad(e.to_string()))?;
    let mapping = state.influx_mapping();
    let _turn = if statements.iter().any(|s| matches!(s, Statement::Select(_))) {
        Some(state.expensive().await.map_err(Failure::Api)?)
    } else {
        None
    };
    let all = state.store().list_series(&SeriesFilter::default()).await?;
    let mut results = Vec::with_capacity(statements.len());
    for (statement_id, statement) in statements.iter().enumerate() {
        let found = match statement {
            Statement::Select(select) => {
                execute_select(state, mapping, &all, select, now, epoch).await?
            }
            other => Ok(show(mapping, &all, other)),
        };
        results.push(match found {
            Ok(series) => InfluxResult {
                statement_id,
                series: (!series.is_empty()).then_some(series),
                error: None,
            },
            Err(message) => InfluxResult {
                statement_id,
                series: None,
                error: Some(message),
            },
        });
    }
    Ok(InfluxAnswer { results })
}

// ---- the two shapes ----

/// Which of the mapping's shapes a measurement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Wide,
    Narrow,
}

fn shape_of(mapping: &InfluxMapping, measurement: &str) -> Option<Shape> {
    if measurement == mapping.wide.measurement {
        Some(Shape::Wide)
    } else if measurement == mapping.narrow.measurement {
        Some(Shape::Narrow)
    } else {
        None
    }
}

fn measurement_of(mapping: &InfluxMapping, shape: Shape) -> &str {
    match shape {
        Shape::Wide => &mapping.wide.measurement,
        Shape::Narrow => &mapping.narrow.measurement,
    }
}

/// A series' tags in a shape, sorted by key.
fn tags_of(mapping: &InfluxMapping, shape: Shape, key: &SeriesKey) -> BTreeMap<String, String> {
    let dataset = Dataset::name_of(key.dataset.as_ref()).to_owned();
    match shape {
        Shape::Wide => BTreeMap::from([
            (mapping.wide.model.clone(), key.model.to_string()),
            (mapping.wide.version.clone(), key.version.to_string()),
            (mapping.wide.dataset.clone(), dataset),
        ]),
        Shape::Narrow => BTreeMap::from([
            (mapping.narrow.model.clone(), key.model.to_string()),
            (mapping.narrow.version.clone(), key.version.to_string()),
            (mapping.narrow.metric.clone(), key.metric.to_string()),
            (mapping.narrow.dataset.clone(), dataset),
        ]),
    }
}

/// The field a series is in a shape.
fn field_of<'a>(mapping: &'a InfluxMapping, shape: Shape, key: &'a SeriesKey) -> &'a str {
    match shape {
        Shape::Wide => key.metric.as_str(),
        Shape::Narrow => &mapping.narrow.field,
    }
}

fn matches(condition: Option<&Condition>, tags: &BTreeMap<String, String>) -> bool {
    condition.is_none_or(|c| c.matches(&|key: &str| tags.get(key).cloned().unwrap_or_default()))
}

/// The shapes a `FROM` names (both without one), when the store has any series.
fn shapes(mapping: &InfluxMapping, all: &[SeriesInfo], from: Option<&str>) -> Vec<Shape> {
    if all.is_empty() {
        return Vec::new();
    }
    match from {
        None => vec![Shape::Wide, Shape::Narrow],
        Some(name) => shape_of(mapping, name).into_iter().collect(),
    }
}

fn one_column(name: &str, column: &str, values: Vec<Value>) -> InfluxSeries {
    InfluxSeries {
        name: name.to_owned(),
        tags: None,
        columns: vec![column.to_owned()],
        values: values.into_iter().map(|v| vec![v]).collect(),
    }
}

fn limited<T>(mut items: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(limit) = limit {
        items.truncate(limit);
    }
    items
}

/// The answer of a statement other than `SELECT`.
fn show(mapping: &InfluxMapping, all: &[SeriesInfo], statement: &Statement) -> Vec<InfluxSeries> {
    match statement {
        Statement::Select(_) => Vec::new(),
        Statement::CreateDatabase(_) => Vec::new(),
        Statement::ShowDatabases => vec![one_column("databases", "name", vec![json!(DATABASE)])],
        Statement::ShowRetentionPolicies => vec![InfluxSeries {
            name: String::new(),
            tags: None,
            columns: [
                "name",
                "duration",
                "shardGroupDuration",
                "replicaN",
                "default",
            ]
            .map(String::from)
            .to_vec(),
            values: vec![vec![
                json!("autogen"),
                json!("0s"),
                json!("168h0m0s"),
                json!(1),
                json!(true),
            ]],
        }],
        Statement::ShowMeasurements { matching, limit } => {
            let mut names: Vec<&str> = shapes(mapping, all, None)
                .into_iter()
                .map(|shape| measurement_of(mapping, shape))
                .filter(|name| matching.as_ref().is_none_or(|m| m.matches(name)))
                .collect();
            names.sort_unstable();
            let names = limited(names, *limit);
            if names.is_empty() {
                return Vec::new();
            }
            vec![one_column(
                "measurements",
                "name",
                names.into_iter().map(|n| json!(n)).collect(),
            )]
        }
        Statement::ShowTagKeys { from, limit } => shapes(mapping, all, from.as_deref())
            .into_iter()
            .map(|shape| {
                let keys: BTreeSet<String> = all
                    .first()
                    .map(|info| tags_of(mapping, shape, &info.key).into_keys().collect())
                    .unwrap_or_default();
                let keys = limited(keys.into_iter().map(|k| json!(k)).collect(), *limit);
                one_column(measurement_of(mapping, shape), "tagKey", keys)
            })
            .collect(),
        Statement::ShowFieldKeys { from } => shapes(mapping, all, from.as_deref())
            .into_iter()
            .map(|shape| {
                let fields: BTreeSet<&str> = all
                    .iter()
                    .map(|info| field_of(mapping, shape, &info.key))
                    .collect();
                InfluxSeries {
                    name: measurement_of(mapping, shape).to_owned(),
                    tags: None,
                    columns: vec!["fieldKey".into(), "fieldType".into()],
                    values: fields
                        .into_iter()
                        .map(|f| vec![json!(f), json!("float")])
                        .collect(),
                }
            })
            .collect(),
        Statement::ShowTagValues {
            from,
            keys,
            condition,
            limit,
        } => shapes(mapping, all, from.as_deref())
            .into_iter()
            .filter_map(|shape| {
                let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
                for info in all {
                    let tags = tags_of(mapping, shape, &info.key);
                    if !matches(condition.as_ref(), &tags) {
                        continue;
                    }
                    pairs.extend(tags.into_iter().filter(|(k, _)| keys.matches(k)));
                }
                let values: Vec<Vec<Value>> = pairs
                    .into_iter()
                    .map(|(k, v)| vec![json!(k), json!(v)])
                    .collect();
                let values = limited(values, *limit);
                (!values.is_empty()).then(|| InfluxSeries {
                    name: measurement_of(mapping, shape).to_owned(),
                    tags: None,
                    columns: vec!["key".into(), "value".into()],
                    values,
                })
            })
            .collect(),
    }
}

// ---- SELECT ----

/// One bucket's points of one column, across the group's series.
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: (i64, f64),
    last: (i64, f64),
}

impl Accumulator {
    fn new(t: i64, value: f64) -> Self {
        Accumulator {
            count: 1,
            sum: value,
            min: value,
            max: value,
            first: (t, value),
            last: (t, value),
        }
    }

    fn push(&mut self, t: i64, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if t < self.first.0 {
            self.first = (t, value);
        }
        if t >= self.last.0 {
            self.last = (t, value);
        }
    }

    fn value(&self, aggregate: Option<Aggregate>) -> Value {
        match aggregate {
            Some(Aggregate::Count) => json!(self.count),
            Some(Aggregate::Sum) => json!(self.sum),
            Some(Aggregate::Mean) => json!(self.sum / self.count as f64),
            Some(Aggregate::Min) => json!(self.min),
            Some(Aggregate::Max) => json!(self.max),
            Some(Aggregate::First) => json!(self.first.1),
            // A raw column's bucket is one timestamp: its (last written) value.
            Some(Aggregate::Last) | None => json!(self.last.1),
        }
    }
}

/// The tag values a series is grouped by.
type GroupKey = Vec<(String, String)>;

/// Where a point's bucket starts.
#[derive(Debug, Clone, Copy)]
enum Bucketing {
    /// `GROUP BY time(interval, offset)`.
    Every { interval: i64, offset: i64 },
    /// An aggregate over the whole range: one bucket at its start.
    Whole(i64),
    /// Raw points: a bucket per timestamp.
    Raw,
}

impl Bucketing {
    fn of(self, t: i64) -> i64 {
        match self {
            Bucketing::Every { interval, offset } => {
                (t - offset).div_euclid(interval) * interval + offset
            }
            Bucketing::Whole(start) => start,
            Bucketing::Raw => t,
        }
    }
}

/// Evaluates a `SELECT`; `Err` is the statement's error (the others still run).
async fn execute_select(
    state: &AppState,
    mapping: &InfluxMapping,
    all: &[SeriesInfo],
    select: &Select,
    now: i64,
    epoch: Epoch,
) -> Result<Result<Vec<InfluxSeries>, String>, Failure> {
    let Some(shape) = shape_of(mapping, &select.measurement) else {
        return Ok(Ok(Vec::new()));
    };
    let start = select.start.unwrap_or(Timestamp::MIN.as_millis());
    // InfluxDB bounds a GROUP BY time() query at now when it names no end.
    let end = select.end.unwrap_or(match select.interval {
        Some(_) => now.saturating_add(1),
        None => Timestamp::MAX.as_millis(),
    });
    let bucketing = match (select.interval, select.is_aggregate()) {
        (Some((interval, offset)), _) => Bucketing::Every { interval, offset },
        (None, true) => Bucketing::Whole(select.start.unwrap_or(0)),
        (None, false) => Bucketing::Raw,
    };
    if let Bucketing::Every { interval, .. } = bucketing {
        let buckets = (end - bucketing.of(start)).div_euclid(interval) + 1;
        if buckets > MAX_BUCKETS {
            return Ok(Err(format!(
                "GROUP BY time({interval}ms) over this range makes {buckets} buckets, more than \
                 {MAX_BUCKETS}; use a longer interval or a shorter range"
            )));
        }
    }
    let group_keys: Option<&[String]> = match &select.group_tags {
        GroupTags::Some(keys) => Some(keys),
        GroupTags::All => None,
    };
    let range = TimeRange::new(timestamp(start), timestamp(end));
    // Buckets per group, one map per column.
    let mut groups: BTreeMap<GroupKey, Vec<BTreeMap<i64, Accumulator>>> = BTreeMap::new();
    let fields: BTreeSet<&str> = select.columns.iter().map(|c| c.field.as_str()).collect();
    for field in fields {
        let columns: Vec<usize> = (0..select.columns.len())
            .filter(|i| select.columns[*i].field == field)
            .collect();
        let chosen: Vec<(&SeriesInfo, GroupKey)> = all
            .iter()
            .filter(|info| {
                info.last_timestamp >= range.start
                    && info.first_timestamp < range.end
                    && field_of(mapping, shape, &info.key) == field
            })
            .filter_map(|info| {
                let tags = tags_of(mapping, shape, &info.key);
                if !matches(select.condition.as_ref(), &tags) {
                    return None;
                }
                let key: GroupKey = match group_keys {
                    None => tags.into_iter().collect(),
                    Some(keys) => keys
                        .iter()
                        .map(|k| (k.clone(), tags.get(k).cloned().unwrap_or_default()))
                        .collect(),
                };
                Some((info, key))
            })
            .collect();
        for batch in chosen.chunks(READ_BATCH) {
            let requests: Vec<(SeriesKey, TimeRange)> = batch
                .iter()
                .map(|(info, _)| (info.key.clone(), range))
                .collect();
            let found = state.store().range_many(&requests).await?;
            for ((_, key), points) in batch.iter().zip(found) {
                if points.is_empty() {
                    continue;
                }
                let buckets = groups
                    .entry(key.clone())
                    .or_insert_with(|| vec![BTreeMap::new(); select.columns.len()]);
                for point in points {
                    let t = point.timestamp.as_millis();
                    let bucket = bucketing.of(t);
                    for column in &columns {
                        buckets[*column]
                            .entry(bucket)
                            .and_modify(|acc| acc.push(t, point.value))
                            .or_insert_with(|| Accumulator::new(t, point.value));
                    }
                }
            }
        }
    }
    let columns = column_names(select);
    let measurement = measurement_of(mapping, shape).to_owned();
    let grouped = !matches!(&select.group_tags, GroupTags::Some(keys) if keys.is_empty());
    Ok(Ok(groups
        .into_iter()
        .map(|(key, buckets)| InfluxSeries {
            name: measurement.clone(),
            tags: grouped.then(|| key.into_iter().collect()),
            columns: columns.clone(),
            values: rows(select, bucketing, start, end, &buckets, epoch),
        })
        .collect()))
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `time`, then each column's alias, aggregate or field name (a repeated name gets `_1`,
/// `_2`, … as InfluxDB names them).
fn column_names(select: &Select) -> Vec<String> {
    let mut names = vec!["time".to_owned()];
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for column in &select.columns {
        let base = column
            .alias
            .clone()
            .unwrap_or_else(|| match column.aggregate {
                Some(aggregate) => aggregate.name().to_owned(),
                None => column.field.clone(),
            });
        let count = seen.entry(base.clone()).or_insert(0);
        names.push(match *count {
            0 => base,
            n => format!("{base}_{n}"),
        });
        *count += 1;
    }
    names
}

/// A group's rows: every bucket of the range (`fill(null)`, a number, `previous`) or only
/// those with points (`fill(none)`, raw points), in time order or reversed, limited.
fn rows(
    select: &Select,
    bucketing: Bucketing,
    start: i64,
    end: i64,
    buckets: &[BTreeMap<i64, Accumulator>],
    epoch: Epoch,
) -> Vec<Vec<Value>> {
    let times: Vec<i64> = match (bucketing, select.fill) {
        (Bucketing::Every { interval, .. }, fill) if fill != Fill::None => {
            let first = bucketing.of(start);
            (0..)
                .map(|i| first + i * interval)
                .take_while(|t| *t < end)
                .collect()
        }
        _ => buckets
            .iter()
            .flat_map(|b| b.keys().copied())
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect(),
    };
    let mut previous: Vec<Value> = vec![Value::Null; select.columns.len()];
    let mut rows: Vec<Vec<Value>> = times
        .into_iter()
        .map(|t| {
            let mut row = Vec::with_capacity(select.columns.len() + 1);
            row.push(epoch.write(t));
            for (i, column) in select.columns.iter().enumerate() {
                let value = match buckets[i].get(&t) {
                    Some(acc) => acc.value(column.aggregate),
                    None => match select.fill {
                        Fill::Previous => previous[i].clone(),
                        Fill::Value(v) => json!(v),
                        Fill::Null | Fill::None => Value::Null,
                    },
                };
                previous[i] = value.clone();
                row.push(value);
            }
            row
        })
        .collect();
    if select.descending {
        rows.reverse();
    }
    limited(rows, select.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_to_the_interval_as_influxdb_aligns_them() {
        let every = Bucketing::Every {
            interval: 60_000,
            offset: 0,
        };
        // floor(t / interval) * interval: 1_700_000_040_000 is a whole minute
        // (28_333_334 * 60_000), and the next starts at 1_700_000_100_000.
        assert_eq!(every.of(1_700_000_059_999), 1_700_000_040_000);
        assert_eq!(every.of(1_700_000_039_999), 1_699_999_980_000);
        assert_eq!(every.of(1_699_999_980_000), 1_699_999_980_000);
        assert_eq!(every.of(-1), -60_000);
        let offset = Bucketing::Every {
            interval: 60_000,
            offset: 15_000,
        };
        // floor((t - offset) / interval) * interval + offset: a whole minute falls in
        // the bucket that began at :15 of the minute before.
        assert_eq!(offset.of(1_699_999_980_000), 1_699_999_935_000);
        assert_eq!(offset.of(1_699_999_995_000), 1_699_999_995_000);
    }

    #[test]
    fn times_are_written_as_influxdb_writes_them() {
        assert_eq!(rfc3339(1_714_564_800_000), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(1_714_564_800_250), "2024-05-01T12:00:00.250Z");
        let epoch = |unit| Epoch::parse(Some(unit)).ok().expect(unit);
        assert_eq!(epoch("ms").write(1_500), json!(1_500));
        assert_eq!(epoch("s").write(1_500), json!(1));
        assert_eq!(epoch("ns").write(1_500), json!(1_500_000_000));
        assert!(Epoch::parse(Some("fortnight")).is_err());
        assert_eq!(go_duration(3_723_000), "1h2m3s");
        assert_eq!(go_duration(59_000), "59s");
    }

    #[test]
    fn repeated_column_names_are_numbered() {
        let statement = influxql::parse(
            "SELECT mean(value), mean(value), max(value) AS top FROM m",
            0,
        )
        .expect("valid")
        .remove(0);
        let Statement::Select(select) = statement else {
            panic!("a select")
        };
        assert_eq!(column_names(&select), ["time", "mean", "mean_1", "top"]);
    }
}
