//! Routes for machines: health checks, the Prometheus exposition (with the versions'
//! health, open alerts and degradation checks), the InfluxDB write endpoints and the
//! server-sent event stream.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::Stream;
use modelwatch_core::health::HealthOptions;
use modelwatch_core::{ModelName, SeriesKey, Version};
use modelwatch_engine::analysis;
use modelwatch_store::SeriesFilter;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::line_protocol::{self, Precision};
use crate::telemetry::{
    SeriesLabels, VersionGauges, VersionLabels, VersionSeverityLabels, CONTENT_TYPE,
};
use crate::wire::{AlertEvent, SeriesUpdate};
use crate::AppState;
use crate::Event;

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// ok (healthz) or ready (readyz)
    pub status: String,
}

/// The process is up. Never needs a token.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// The store is reachable and migrated. Never needs a token (a load balancer's probe).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "The store is not reachable", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Status>> {
    // Opening the store ran the migrations; a read proves it is still reachable.
    state
        .store()
        .custom_metrics()
        .await
        .map_err(|e| ApiError::Unavailable(format!("store not reachable: {e}")))?;
    Ok(Json(Status {
        status: "ready".into(),
    }))
}

/// modelwatch's own health and the latest value of every model metric, for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn exposition(State(state): State<AppState>) -> ApiResult<Response> {
    let store = state.store();
    // Per-series gauges for the first `metrics_series` series only: a scrape stays small
    // however many series there are (issue 15: 400,000 series made a 36 MB exposition
    // that took 15 s). The counts say how many there are and how many were left out.
    let series = store.list_series(&SeriesFilter::default()).await?;
    let shown = series.len().min(state.inner.limits.metrics_series);
    let keys: Vec<SeriesKey> = series[..shown].iter().map(|s| s.key.clone()).collect();
    let latest = store
        .latest_many(&keys)
        .await?
        .into_iter()
        .zip(&keys)
        .filter_map(|(point, key)| {
            point.map(|point| {
                (
                    SeriesLabels {
                        model: key.model.to_string(),
                        version: key.version.to_string(),
                        metric: key.metric.to_string(),
                    },
                    point.value,
                    point.timestamp.as_millis() as f64 / 1000.0,
                )
            })
        })
        .collect::<Vec<_>>();
    if let Some(notifications) = state.notifications() {
        notifications.sync_telemetry(&state.inner.telemetry);
    }
    let versions = version_gauges(&state, &keys).await;
    let text = state
        .inner
        .telemetry
        .render(latest, series.len(), series.len() - shown, &versions)
        .map_err(|e| ApiError::Internal(format!("cannot render metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// How often `/metrics` grades the versions afresh (health over the last 24 hours and each
/// metric's degradation check read windows of every metric); scrapes in between show the
/// last grading, and a change in the exported versions grades at once.
pub const GRADE_EVERY: Duration = Duration::from_secs(60);

/// The last grading of the exported versions.
#[derive(Debug)]
pub(crate) struct Graded {
    at: std::time::Instant,
    versions: Vec<(ModelName, Version)>,
    health: Vec<(VersionLabels, Option<f64>, String)>,
    degradation: Vec<(SeriesLabels, bool, Option<f64>)>,
}

/// The gauges of the versions of the exported series (`keys`, in order): open alerts by
/// severity (read at each scrape), health and degradation (graded as [`GRADE_EVERY`]
/// says). A version that cannot be graded is logged and left out; the scrape goes on.
async fn version_gauges(state: &AppState, keys: &[SeriesKey]) -> VersionGauges {
    let mut versions: Vec<(ModelName, Version)> = keys
        .iter()
        .map(|k| (k.model.clone(), k.version.clone()))
        .collect();
    versions.dedup();
    let exported: HashSet<(&ModelName, &Version)> = versions.iter().map(|(m, v)| (m, v)).collect();
    let open = match &state.inner.engine {
        Some(engine) => engine.open_alerts(None).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the open alerts for /metrics");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let mut counts: BTreeMap<(String, String, &'static str), u64> = BTreeMap::new();
    for alert in open
        .iter()
        .filter(|a| exported.contains(&(&a.model, &a.version)))
    {
        *counts
            .entry((
                alert.model.to_string(),
                alert.version.to_string(),
                alert.severity.as_str(),
            ))
            .or_default() += 1;
    }
    let open_alerts = counts
        .into_iter()
        .map(|((model, version, severity), n)| {
            (
                VersionSeverityLabels {
                    model,
                    version,
                    severity: severity.to_owned(),
                },
                n,
            )
        })
        .collect();

    let mut graded = state.inner.graded.lock().await;
    let fresh = graded
        .as_ref()
        .is_some_and(|g| g.at.elapsed() < GRADE_EVERY && g.versions == versions);
    if !fresh {
        *graded = Some(grade(state, keys, &versions, &open).await);
    }
    let graded = graded.as_ref();
    VersionGauges {
        health: graded.map(|g| g.health.clone()).unwrap_or_default(),
        open_alerts,
        degradation: graded.map(|g| g.degradation.clone()).unwrap_or_default(),
    }
}

/// One version's health on the default dataset over the 24 hours before `now`, with the
/// alerts open at `now` (`alerts` may hold others: they are left out), as `GET
/// /api/v1/models/{model}/versions/{version}/analysis?hours=24` grades it at that time.
/// `/metrics` and the PromQL health series ([`crate::promql`]) both read it.
pub(crate) async fn grade_version(
    state: &AppState,
    model: &ModelName,
    version: &Version,
    alerts: &[modelwatch_core::alerting::Alert],
    now: modelwatch_core::Timestamp,
) -> Result<analysis::VersionAnalysis, analysis::AnalysisError> {
    let open_then = alerts
        .iter()
        .filter(|a| {
            a.model == *model
                && a.version == *version
                && a.first_seen <= now
                && a.resolved_at.is_none_or(|resolved| resolved > now)
        })
        .map(|a| modelwatch_core::alerting::Alert {
            // Resolved since, but open at `now`.
            resolved_at: None,
            ..a.clone()
        })
        .collect();
    analysis::analyse_version(
        &**state.store(),
        model,
        version,
        None,
        analysis::window(Some(24.0), now),
        open_then,
        &HealthOptions::default(),
    )
    .await
}

/// The grade's name: excellent, good, fair, poor or unknown.
pub(crate) fn grade_name(analysed: &analysis::VersionAnalysis) -> String {
    analysed.history.overall_health.as_str().to_owned()
}

/// Grades each version on the default dataset over the last 24 hours ([`grade_version`]).
async fn grade(
    state: &AppState,
    keys: &[SeriesKey],
    versions: &[(ModelName, Version)],
    open: &[modelwatch_core::alerting::Alert],
) -> Graded {
    let mut health = Vec::new();
    let mut degradation = Vec::new();
    let exported: HashSet<&SeriesKey> = keys.iter().collect();
    let now = state.now();
    for (model, version) in versions {
        let analysed = match grade_version(state, model, version, open, now).await {
            Ok(analysed) => analysed,
            Err(error) => {
                tracing::warn!(%error, %model, %version, "cannot grade a version for /metrics");
                continue;
            }
        };
        let grade = grade_name(&analysed);
        health.push((
            VersionLabels {
                model: model.to_string(),
                version: version.to_string(),
            },
            analysed.history.health_score,
            grade,
        ));
        for check in &analysed.degradations {
            let key = SeriesKey::new(model.clone(), version.clone(), check.metric.clone());
            if !exported.contains(&key) {
                continue;
            }
            degradation.push((
                SeriesLabels {
                    model: model.to_string(),
                    version: version.to_string(),
                    metric: check.metric.to_string(),
                },
                check.is_degraded,
                check.degradation_percentage,
            ));
        }
    }
    Graded {
        at: std::time::Instant::now(),
        versions: versions.to_vec(),
        health,
        degradation,
    }
}

/// Unlike the other routes' queries, unknown parameters are accepted: InfluxDB clients
/// send ones modelwatch has no use for (`rp`, `u`, `p`, `consistency`, …).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    /// Timestamp precision: ns (default), us, ms, s (v1 also n, u, m, h).
    pub precision: Option<String>,
    /// Accepted and ignored (InfluxDB v1).
    pub db: Option<String>,
    /// Accepted and ignored (InfluxDB v2).
    pub org: Option<String>,
    /// Accepted and ignored (InfluxDB v2).
    pub bucket: Option<String>,
}

async fn write_lines(
    state: AppState,
    query: Result<Query<WriteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let Query(query) = query?;
    let body = body?;
    let precision = match query.precision.as_deref() {
        None | Some("") => Precision::Nanoseconds,
        Some(text) => Precision::parse(text)?,
    };
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request("body", format!("not UTF-8: {e}")))?;
    let line_error = |error: line_protocol::LineError| ApiError::BadRequest {
        field: format!("line {}: {}", error.line, error.field),
        message: error.message,
    };
    let now = state.now();
    let mapping = state.influx_mapping();
    let samples = match line_protocol::parse(text, precision, now, mapping) {
        Ok(parsed) => parsed.samples,
        Err(error) => {
            state.inner.telemetry.rejected("line_protocol", 1);
            return Err(line_error(error));
        }
    };
    state
        .store_samples(samples, "line_protocol", |index, error| {
            // Rare: the body is parsed again to name the sample's line and field.
            let origin = line_protocol::parse(text, precision, now, mapping)
                .ok()
                .and_then(|parsed| parsed.origin(index));
            match origin {
                Some((line, field)) => line_error(line_protocol::LineError {
                    line,
                    field,
                    message: error.message,
                }),
                None => error.into(),
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// InfluxDB v1 line protocol: measurement `model_metrics` (tags `model`, `version`,
/// `dataset`, one field per metric) or `performance_metric` (tags `model_name`,
/// `model_version`, `metric_type`, `dataset`, field `value`), as `[influx]` maps them.
/// gzip bodies accepted.
#[utoipa::path(
    post,
    path = "/write",
    tag = "ingestion",
    params(WriteQuery),
    request_body(content = String, content_type = "text/plain", description = "Line protocol"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "A bad line; the field names the line and part", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn write_v1(
    State(state): State<AppState>,
    query: Result<Query<WriteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    write_lines(state, query, body).await
}

/// InfluxDB v2 line protocol; same mapping as `/write`.
#[utoipa::path(
    post,
    path = "/api/v2/write",
    tag = "ingestion",
    params(WriteQuery),
    request_body(content = String, content_type = "text/plain", description = "Line protocol"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "A bad line; the field names the line and part", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    )
)]
pub async fn write_v2(
    State(state): State<AppState>,
    query: Result<Query<WriteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    write_lines(state, query, body).await
}

/// Server-sent events: `samples` (per series, coalesced), `alert_fired`, `alert_changed`.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    responses(
        (status = 200, description = "text/event-stream; `samples` events carry a SeriesUpdate, alert events an AlertEvent",
         content_type = "text/event-stream", body = SeriesUpdate),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(state.inner.events.subscribe()).map(|received| {
        let event = match received {
            Ok(event) => event,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                return Ok(SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{missed}}}")));
            }
        };
        let data = match &event {
            Event::Samples(update) => serde_json::to_string(&SeriesUpdate::from(&**update)),
            Event::Alert(alert) => serde_json::to_string(&AlertEvent::from(&**alert)),
        }
        .unwrap_or_else(|_| "{}".to_owned());
        Ok(SseEvent::default().event(event.name()).data(data))
    });
    // Something is sent at once: Firefox reports the stream open only when the first
    // bytes arrive, so without it a page would say "connecting" until the first
    // keep-alive. The retry field also sets the browser's reconnection delay.
    let hello = tokio_stream::once(Ok(SseEvent::default().retry(Duration::from_secs(3))));
    let stream = futures_util::StreamExt::take_until(hello.chain(stream), state.shutting_down());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
