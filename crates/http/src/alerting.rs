//! Rules, alerts, silences and the store-backed analyses (history, degradation,
//! comparison) over HTTP: thin adapters from JSON and query strings to the
//! [`modelwatch_engine::Engine`], answering with the [`wire`] types.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use modelwatch_core::alerting::{
    Alert, AlertFilter, AlertId, AlertStatus, LifecycleError, ListingPosition, RuleId, RulePatch,
    RuleSpec, Severity, SilenceId,
};
use modelwatch_core::compare::CompareOptions;
use modelwatch_core::detection::{significance_level, DetectionOptions, Seasonality, WindowSpec};
use modelwatch_core::health::HealthOptions;
use modelwatch_core::{
    Dataset, DatasetScope, Metric, ModelName, SeriesKey, TimeRange, Timestamp, Version,
};
use modelwatch_engine::analysis::{self, AnalysisError};
use modelwatch_engine::events::AlertChange;
use modelwatch_engine::{Engine, EngineError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::series::{parse_dataset, parse_model, parse_time, parse_version};
use crate::{wire, AppState};

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(error) => error.into(),
            EngineError::Invalid(error) => error.into(),
            EngineError::Lifecycle(LifecycleError::UnknownAlert(id)) => {
                ApiError::NotFound(format!("no alert has id {id}"))
            }
            EngineError::Lifecycle(LifecycleError::MissingActor { .. }) => {
                ApiError::bad_request("by", "must not be empty")
            }
            EngineError::Lifecycle(other) => ApiError::Conflict(other.to_string()),
            EngineError::UnknownRule(id) => ApiError::NotFound(format!("no rule has id {id}")),
            EngineError::UnknownSilence(id) => {
                ApiError::NotFound(format!("no silence has id {id}"))
            }
            EngineError::Contention(what) => ApiError::Conflict(format!(
                "{what} kept changing while being written; try again"
            )),
            deleted @ EngineError::Deleted { .. } => ApiError::Conflict(deleted.to_string()),
            EngineError::Analysis(error) => error.into(),
        }
    }
}

impl From<AnalysisError> for ApiError {
    fn from(error: AnalysisError) -> Self {
        match error {
            AnalysisError::Store(error) => error.into(),
            unknown @ AnalysisError::UnknownSeries { .. } => {
                ApiError::NotFound(unknown.to_string())
            }
            AnalysisError::Invalid(error) => error.into(),
            too_many @ AnalysisError::TooManyPoints { .. } => {
                ApiError::bad_request("range", too_many.to_string())
            }
        }
    }
}

/// An analysis' error, a range too large for it named as the parameter that sets it.
fn analysis_error(field: &'static str) -> impl Fn(AnalysisError) -> ApiError {
    move |error| match error {
        too_many @ AnalysisError::TooManyPoints { .. } => {
            ApiError::bad_request(field, too_many.to_string())
        }
        other => other.into(),
    }
}

fn engine(state: &AppState) -> ApiResult<&Engine> {
    state
        .inner
        .engine
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("alerting is not configured on this server".into()))
}

fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|error| {
        let message = error.to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field `"))
            .map(str::to_owned)
            .or_else(|| {
                message
                    .split_once(": ")
                    .map(|(f, _)| f.to_owned())
                    .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            })
            .unwrap_or_else(|| "body".to_owned());
        ApiError::bad_request(field, message)
    })
}

/// Refuses channel names the server has no channel for, naming the configured ones. A
/// server without notifications set up (tests of the router alone) checks nothing.
fn check_channels(state: &AppState, channels: &[String]) -> ApiResult<()> {
    let Some(notifications) = state.notifications() else {
        return Ok(());
    };
    let known = notifications.channel_names();
    for channel in channels {
        if !known.iter().any(|k| k == channel) {
            return Err(ApiError::bad_request(
                "notify_channels",
                format!(
                    "no channel named {channel:?} (configured: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

fn rule_id(text: &str) -> ApiResult<RuleId> {
    Ok(RuleId::parse(text)?)
}

fn alert_id(text: &str) -> ApiResult<AlertId> {
    Ok(AlertId::parse(text)?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RulesQuery {
    /// Only this model's rules.
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector")]
    pub model: Option<String>,
}

/// The rules, by id.
#[utoipa::path(get, path = "/api/v1/rules", tag = "rules", params(RulesQuery),
    responses((status = 200, body = wire::RulesResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_rules(
    State(state): State<AppState>,
    query: Result<Query<RulesQuery>, QueryRejection>,
) -> ApiResult<Json<wire::RulesResponse>> {
    let Query(query) = query?;
    let model = query.model.as_deref().map(parse_model).transpose()?;
    let rules = engine(&state)?.list_rules(model.as_ref()).await?;
    Ok(Json(wire::RulesResponse {
        rules: rules.iter().map(wire::Rule::from).collect(),
    }))
}

/// Creates a rule (the seed's rule JSON). A `notify_channels` name the server has no
/// channel for is refused (its notifications would stay pending forever).
#[utoipa::path(post, path = "/api/v1/rules", tag = "rules",
    request_body(content = wire::RuleRequest, description = "A rule, as these fields: name (or rule_name), model (or model_name), version (or model_version; absent: every version), metric (or metric_type; * for the whole version, no-data rules only: silent only when none of its metrics reports), dataset (a dataset's name, default (the default dataset, also when absent), or * for each dataset separately, each with its own state and alerts), severity (low, medium, high, critical), enabled, cooldown_minutes, notify_channels (configured channel names), for_evaluations, clear_after_evaluations, auto_resolve; a threshold rule adds threshold_value and comparison_operator (lt, lte, gt, gte, eq), optionally tolerance and clear_threshold; a degradation rule adds max_degradation_percentage, optionally baseline_window_hours, clear_percentage, comparison (auto, latest or window), comparison_hours, seasonal (daily or weekly) and alpha; a change-point rule adds condition_type (change-point), optionally change_direction (worse or both), min_shift_sd or min_shift_percentage, and false_alarm_interval_samples or false_alarm_interval_hours (for_evaluations is 1); a no-data rule adds condition_type (no-data) with no_data_minutes (the longest silence), no_data_intervals (a multiple of the series' usual interval, the median gap of its recent samples, never under a minute) or both (the silence must exceed both); for_evaluations is 1 and it resolves itself at the first sample back unless auto_resolve is false. Any other field is refused.", example = json!({"name": "fuzz latency", "model": "fraud_detector", "version": "v2.1", "metric": "latency", "threshold_value": 100.0, "comparison_operator": "gt", "severity": "low"})),
    responses((status = 201, description = "The rule", body = wire::Rule),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_rule(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<wire::Rule>)> {
    let spec = RuleSpec::from(json_body::<wire::RuleRequest>(body)?);
    check_channels(&state, spec.notify_channels.as_deref().unwrap_or_default())?;
    let rule = engine(&state)?.create_rule(spec, state.now()).await?;
    Ok((StatusCode::CREATED, Json(wire::Rule::from(&rule))))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = String, Path, pattern = r"^rule_[0-9a-f]{8}$", example = "rule_75e4c7c4")),
    responses((status = 200, description = "The rule", body = wire::Rule), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Rule>> {
    let rule = engine(&state)?.rule(&rule_id(&id)?).await?;
    Ok(Json(wire::Rule::from(&rule)))
}

/// Changes some fields of a rule (including `enabled`).
#[utoipa::path(patch, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = String, Path, pattern = r"^rule_[0-9a-f]{8}$", example = "rule_75e4c7c4")),
    request_body(content = wire::RulePatchRequest, description = "The fields to change, as for POST /api/v1/rules (dataset: a name, default, or * for each dataset separately)", example = json!({"cooldown_minutes": 30})),
    responses((status = 200, description = "The rule", body = wire::Rule), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The rule was deleted while this request changed it", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn patch_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<wire::Rule>> {
    let patch = RulePatch::from(json_body::<wire::RulePatchRequest>(body)?);
    check_channels(&state, patch.notify_channels.as_deref().unwrap_or_default())?;
    let rule = engine(&state)?
        .update_rule(&rule_id(&id)?, patch, state.now())
        .await?;
    Ok(Json(wire::Rule::from(&rule)))
}

/// Deletes a rule; its alerts and their history stay.
#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = String, Path, pattern = r"^rule_[0-9a-f]{8}$", example = "rule_75e4c7c4")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    engine(&state)?.delete_rule(&rule_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BacktestQuery {
    /// Start, RFC 3339 or epoch ms (default: 7 days before `to`).
    pub from: Option<String>,
    /// End (default: now).
    pub to: Option<String>,
    /// Replay on this dataset (`default` for the default one) or on each dataset
    /// separately (`*`) instead of the rule's own.
    pub dataset: Option<String>,
}

/// Replays a rule over stored samples: when it would have fired and resolved.
#[utoipa::path(post, path = "/api/v1/rules/{id}/backtest", tag = "rules", params(("id" = String, Path, pattern = r"^rule_[0-9a-f]{8}$", example = "rule_75e4c7c4"), BacktestQuery),
    responses((status = 200, description = "The backtest report", body = wire::BacktestReport), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn backtest_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<BacktestQuery>, QueryRejection>,
) -> ApiResult<Json<wire::BacktestReport>> {
    let Query(query) = query?;
    let range = backtest_range(&state, &query)?;
    let _turn = state.expensive().await?;
    let report = match query.dataset.as_deref() {
        None => engine(&state)?.backtest(&rule_id(&id)?, range).await?,
        Some(text) => {
            let scope = DatasetScope::parse_scope(text)?;
            engine(&state)?
                .backtest_on(&rule_id(&id)?, range, scope)
                .await?
        }
    };
    Ok(Json(wire::BacktestReport::from(&report)))
}

/// Replays a rule that is not saved, so its effect can be seen before saving it (the
/// dashboard's rule preview). Nothing is stored; the report's rule has a placeholder id.
#[utoipa::path(post, path = "/api/v1/rules/backtest", tag = "rules", params(BacktestQuery),
    request_body(content = wire::RuleRequest, description = "A rule, as for POST /api/v1/rules", example = json!({"name": "fuzz latency", "model": "fraud_detector", "version": "v2.1", "metric": "latency", "threshold_value": 100.0, "comparison_operator": "gt", "severity": "low"})),
    responses((status = 200, description = "The backtest report", body = wire::BacktestReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn backtest_unsaved_rule(
    State(state): State<AppState>,
    query: Result<Query<BacktestQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<wire::BacktestReport>> {
    let Query(query) = query?;
    let mut spec = RuleSpec::from(json_body::<wire::RuleRequest>(body)?);
    if let Some(dataset) = query.dataset.clone() {
        spec.dataset = Some(dataset);
    }
    let range = backtest_range(&state, &query)?;
    let _turn = state.expensive().await?;
    let report = engine(&state)?
        .backtest_spec(spec, range, state.now())
        .await?;
    Ok(Json(wire::BacktestReport::from(&report)))
}

fn backtest_range(state: &AppState, query: &BacktestQuery) -> ApiResult<TimeRange> {
    let to = match query.to.as_deref() {
        Some(text) => parse_time("to", text)?,
        None => state.now(),
    };
    let from = match query.from.as_deref() {
        Some(text) => parse_time("from", text)?,
        None => to.saturating_sub(std::time::Duration::from_secs(7 * 24 * 3600)),
    };
    if to < from {
        return Err(ApiError::bad_request("to", "must not be before from"));
    }
    Ok(TimeRange::new(from, to))
}

/// The default and the largest page of alerts.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    pub model: Option<String>,
    /// Only this version's alerts.
    pub version: Option<String>,
    /// active, acknowledged, resolved, suppressed, or open (not resolved yet, whatever
    /// the status)
    pub status: Option<String>,
    /// low, medium, high or critical
    pub severity: Option<String>,
    /// Alerts alive at some point of the last `hours` (a positive number, fractions too:
    /// 0.5 is half an hour; default 24), or `all` for alerts of any time.
    #[param(value_type = Option<String>, pattern = "^([0-9]*[.]?[0-9]+|all)$", example = "168")]
    pub hours: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page: this page lists the alerts after it. Alerts
    /// fired between the requests neither shift nor repeat rows, as they do with `offset`.
    /// Opaque to clients (today `<first_seen epoch ms>.<alert id>`); not with `offset`.
    #[param(example = "1714561200000.alert_0000002a")]
    pub cursor: Option<String>,
    /// How many alerts to skip. Alerts fired between two requests shift the pages, so
    /// one may be skipped or listed twice; `cursor` does not have that problem.
    pub offset: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub alerts: Vec<wire::Alert>,
    /// Alerts matching the filter, over all pages.
    pub total: usize,
    /// How many of those `total` alerts have each severity (every severity is present), so
    /// a client can count all matching alerts without reading every page.
    pub by_severity: SeverityCounts,
    pub limit: usize,
    /// Where this page starts among the matching alerts (with `cursor`: how many match
    /// before it now).
    pub offset: usize,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<usize>,
    /// Pass as `cursor` for the next page, when there is one: the way to read every page
    /// while alerts fire. An opaque string.
    #[schema(example = "1714561200000.alert_0000002a")]
    pub next_cursor: Option<String>,
}

/// Alerts per severity.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SeverityCounts {
    pub low: usize,
    pub medium: usize,
    pub high: usize,
    pub critical: usize,
}

impl SeverityCounts {
    fn count(alerts: &[Alert]) -> Self {
        let mut counts = SeverityCounts::default();
        for alert in alerts {
            *match alert.severity {
                Severity::Low => &mut counts.low,
                Severity::Medium => &mut counts.medium,
                Severity::High => &mut counts.high,
                Severity::Critical => &mut counts.critical,
            } += 1;
        }
        counts
    }
}

/// The `status` of an alert listing: one status, or every open alert.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StatusFilter {
    Is(AlertStatus),
    /// Not resolved yet ([`Alert::is_open`]): active, acknowledged, or suppressed and not
    /// closed — what someone on call has to look at.
    Open,
}

fn parse_status(text: &str) -> ApiResult<StatusFilter> {
    if text == "open" {
        return Ok(StatusFilter::Open);
    }
    AlertStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .map(StatusFilter::Is)
        .ok_or_else(|| {
            ApiError::bad_request(
                "status",
                format!("{text:?} is not active, acknowledged, resolved, suppressed or open"),
            )
        })
}

/// `hours` when given, else the last 24 hours.
fn window_hours(text: Option<&str>) -> ApiResult<Option<f64>> {
    text.map_or(Ok(Some(24.0)), parse_hours)
}

/// `hours`: how far back a listing reaches; `None` is any time.
fn parse_hours(text: &str) -> ApiResult<Option<f64>> {
    Ok(modelwatch_core::alerting::parse_hours_or_all(text)?)
}

/// `cursor`: the listing position a page ended at, written by [`cursor`].
fn parse_cursor(text: &str) -> ApiResult<ListingPosition> {
    let malformed = || {
        ApiError::bad_request(
            "cursor",
            format!("{text:?} is not a cursor this server gave out (a page's next_cursor)"),
        )
    };
    let (ms, id) = text.split_once('.').ok_or_else(malformed)?;
    let ms = ms.parse::<i64>().map_err(|_| malformed())?;
    Ok(ListingPosition {
        first_seen: Timestamp::from_millis(ms).map_err(|_| malformed())?,
        id: AlertId::parse(id).map_err(|_| malformed())?,
    })
}

/// The `next_cursor` of a page that ends at `alert`. Plain text rather than encoded:
/// both parts are already URL-safe, and clients are told to treat it as opaque.
fn cursor(alert: &Alert) -> String {
    format!("{}.{}", alert.first_seen.as_millis(), alert.id)
}

fn parse_severity(text: &str) -> ApiResult<Severity> {
    Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            ApiError::bad_request(
                "severity",
                format!("{text:?} is not low, medium, high or critical"),
            )
        })
}

/// Alerts, newest first (by when they fired, then by id), a page at a time: follow
/// `next_cursor` (or, as before cursors, `next_offset`). `total` and `by_severity` count
/// every matching alert, not only the page.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertsQuery),
    responses((status = 200, body = AlertPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_alerts(
    State(state): State<AppState>,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> ApiResult<Json<AlertPage>> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = match (query.cursor.as_deref(), query.offset) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "offset",
                "cannot be combined with cursor; a cursor already says where the page starts",
            ))
        }
        (Some(text), None) => Some(parse_cursor(text)?),
        (None, _) => None,
    };
    let hours = window_hours(query.hours.as_deref())?;
    let status = query.status.as_deref().map(parse_status).transpose()?;
    let filter = AlertFilter {
        model: query.model.as_deref().map(parse_model).transpose()?,
        version: query.version.as_deref().map(parse_version).transpose()?,
        status: match status {
            Some(StatusFilter::Is(status)) => Some(status),
            Some(StatusFilter::Open) | None => None,
        },
        severity: query.severity.as_deref().map(parse_severity).transpose()?,
        window: hours.map(|hours| modelwatch_core::alerting::last_hours(hours, state.now())),
        ..AlertFilter::default()
    };
    let mut alerts = engine(&state)?.list_alerts(&filter).await?;
    if status == Some(StatusFilter::Open) {
        alerts.retain(Alert::is_open);
    }
    let total = alerts.len();
    // The store lists in the core's listing order, so the alerts after a cursor are
    // the ones from the first alert after its position on.
    let offset = match &after {
        Some(position) => alerts
            .iter()
            .position(|alert| position.precedes(alert))
            .unwrap_or(total),
        None => query.offset.unwrap_or(0),
    };
    let start = offset.min(total);
    let page = &alerts[start..total.min(start.saturating_add(limit))];
    let end = start + page.len();
    let more = end < total;
    Ok(Json(AlertPage {
        alerts: page.iter().map(wire::Alert::from).collect(),
        total,
        by_severity: SeverityCounts::count(&alerts),
        limit,
        offset,
        next_offset: more.then_some(end),
        next_cursor: page.last().filter(|_| more).map(cursor),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    pub model: Option<String>,
    /// Alerts alive at some point of the last `hours` (a positive number, fractions too:
    /// 0.5 is half an hour; default 24), or `all` for alerts of any time.
    #[param(value_type = Option<String>, pattern = "^([0-9]*[.]?[0-9]+|all)$", example = "168")]
    pub hours: Option<String>,
}

/// Counts by status and severity, as `alerts summary` prints them.
#[utoipa::path(get, path = "/api/v1/alerts/summary", tag = "alerts", params(SummaryQuery),
    responses((status = 200, description = "The summary", body = wire::AlertSummary), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn alert_summary(
    State(state): State<AppState>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> ApiResult<Json<wire::AlertSummary>> {
    let Query(query) = query?;
    let model = query.model.as_deref().map(parse_model).transpose()?;
    let hours = window_hours(query.hours.as_deref())?;
    let summary = engine(&state)?
        .summary(model.as_ref(), hours, state.now())
        .await?;
    Ok(Json(wire::AlertSummary::from(&summary)))
}

/// One alert.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", params(("id" = String, Path, pattern = r"^alert_[0-9a-f]{8}$", example = "alert_08ae4e0f")),
    responses((status = 200, description = "The alert", body = wire::Alert), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Alert>> {
    let alert = engine(&state)?.alert(&alert_id(&id)?).await?;
    Ok(Json(wire::Alert::from(&alert)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    /// Who acknowledges (the seed's `acknowledged_by` works too).
    #[serde(alias = "acknowledged_by")]
    pub by: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// Who resolves (the seed's `resolved_by` works too).
    #[serde(alias = "resolved_by")]
    pub by: String,
    /// What was done (the seed's `resolution_notes` works too).
    #[serde(alias = "resolution_notes")]
    pub notes: Option<String>,
}

/// active → acknowledged.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts", params(("id" = String, Path, pattern = r"^alert_[0-9a-f]{8}$", example = "alert_08ae4e0f")),
    request_body = AcknowledgeBody,
    responses((status = 200, description = "The alert", body = wire::Alert), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Impossible transition", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<wire::Alert>> {
    let body: AcknowledgeBody = json_body(body)?;
    let alert = engine(&state)?
        .acknowledge(&alert_id(&id)?, &body.by, state.now())
        .await?;
    state
        .events()
        .alert(AlertChange::Acknowledged, alert.clone());
    Ok(Json(wire::Alert::from(&alert)))
}

/// active | acknowledged → resolved.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts", params(("id" = String, Path, pattern = r"^alert_[0-9a-f]{8}$", example = "alert_08ae4e0f")),
    request_body = ResolveBody,
    responses((status = 200, description = "The alert", body = wire::Alert), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Impossible transition", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<wire::Alert>> {
    let body: ResolveBody = json_body(body)?;
    let alert = engine(&state)?
        .resolve(
            &alert_id(&id)?,
            &body.by,
            body.notes.as_deref(),
            state.now(),
        )
        .await?;
    state.events().alert(AlertChange::Resolved, alert.clone());
    Ok(Json(wire::Alert::from(&alert)))
}

/// An alert's transitions, oldest first.
#[utoipa::path(get, path = "/api/v1/alerts/{id}/history", tag = "alerts", params(("id" = String, Path, pattern = r"^alert_[0-9a-f]{8}$", example = "alert_08ae4e0f")),
    responses((status = 200, body = wire::AlertHistoryResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn alert_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::AlertHistoryResponse>> {
    let history = engine(&state)?.history(&alert_id(&id)?).await?;
    Ok(Json(wire::AlertHistoryResponse {
        history: history.iter().map(wire::AlertTransition::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SilencesQuery {
    /// Include silences that are over.
    pub include_expired: Option<bool>,
}

/// Current and future silences.
#[utoipa::path(get, path = "/api/v1/silences", tag = "silences", params(SilencesQuery),
    responses((status = 200, body = wire::SilencesResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_silences(
    State(state): State<AppState>,
    query: Result<Query<SilencesQuery>, QueryRejection>,
) -> ApiResult<Json<wire::SilencesResponse>> {
    let Query(query) = query?;
    let silences = engine(&state)?
        .list_silences(query.include_expired.unwrap_or(false), state.now())
        .await?;
    Ok(Json(wire::SilencesResponse {
        silences: silences.iter().map(wire::Silence::from).collect(),
    }))
}

/// Adds a silence.
#[utoipa::path(post, path = "/api/v1/silences", tag = "silences",
    request_body(content = wire::SilenceRequest, description = "model, version?, metric?, starts_at?, ends_at or duration_minutes, created_by, comment",
        example = json!({"model": "recommender", "metric": "latency", "duration_minutes": 60, "created_by": "api-fuzz", "comment": "load test"})),
    responses((status = 201, description = "The silence", body = wire::Silence), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_silence(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<wire::Silence>)> {
    let request: wire::SilenceRequest = json_body(body)?;
    let silence = engine(&state)?
        .add_silence(request.into(), state.now())
        .await?;
    Ok((StatusCode::CREATED, Json(wire::Silence::from(&silence))))
}

/// Ends a silence now.
#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "silences", params(("id" = String, Path, pattern = r"^silence_[0-9a-f]{8}$", example = "silence_62b16460")),
    responses((status = 200, description = "The silence, ended", body = wire::Silence), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Silence>> {
    let id = SilenceId::parse(&id)?;
    let silence = engine(&state)?.expire_silence(&id, state.now()).await?;
    Ok(Json(wire::Silence::from(&silence)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The last `hours` (more than 0 and at most 70389527, fractions too; default 24),
    /// or `all` for the version's whole history.
    #[param(value_type = Option<String>, pattern = "^([0-9]*[.]?[0-9]+|all)$", example = "168")]
    pub hours: Option<String>,
    /// The dataset (segment) to analyse: a name, or `default` (the default, for samples
    /// sent without one). Datasets are never mixed.
    pub dataset: Option<String>,
}

/// The version's analysis of one dataset over the last `hours`, with its open alerts
/// when the server has alerting: [`analysis::analyse_version`].
async fn analyse(
    state: &AppState,
    model: &str,
    version: &str,
    query: &HistoryQuery,
) -> ApiResult<analysis::VersionAnalysis> {
    let (model, version) = (parse_model(model)?, parse_version(version)?);
    let dataset = parse_dataset(query.dataset.as_deref())?;
    let range = analysis::window(window_hours(query.hours.as_deref())?, state.now());
    let _turn = state.expensive().await?;
    no_samples_is_not_found(state, &model, &version, dataset.as_ref()).await?;
    let open_alerts = match &state.inner.engine {
        Some(engine) => engine.open_alerts(Some(&model)).await?,
        None => Vec::new(),
    };
    analysis::analyse_version(
        &**state.store(),
        &model,
        &version,
        dataset.as_ref(),
        range,
        open_alerts,
        &HealthOptions::default(),
    )
    .await
    .map_err(analysis_error("hours"))
}

/// A 404 naming the dataset when a version has no samples in it.
async fn no_samples_is_not_found(
    state: &AppState,
    model: &ModelName,
    version: &Version,
    dataset: Option<&Dataset>,
) -> ApiResult<()> {
    if !analysis::metrics_in(&**state.store(), model, version, dataset)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    Err(ApiError::NotFound(match dataset {
        None => format!("no samples of {model} {version}"),
        Some(dataset) => format!("no samples of {model} {version} in dataset {dataset}"),
    }))
}

/// Performance history and health of a model version (the `history` of its analysis:
/// degradation checks and open alerts folded into the trends and the grade).
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/history", tag = "models",
    params(("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector"), ("version" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1"), HistoryQuery),
    responses((status = 200, description = "The performance history", body = wire::PerformanceHistory), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn version_history(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<wire::PerformanceHistory>> {
    let Query(query) = query?;
    let analysis = analyse(&state, &model, &version, &query).await?;
    Ok(Json(wire::PerformanceHistory::from(&analysis.history)))
}

/// A model version's analysis, as the dashboard's model page and `modelwatch monitor`
/// show it: `history` (summaries, trends, grade and reasons over the last `hours`),
/// `degradations` (each metric's last hour against the 24 hours before) and
/// `open_alerts`, computed together so they agree.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/analysis", tag = "models",
    params(("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector"), ("version" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1"), HistoryQuery),
    responses((status = 200, body = wire::VersionAnalysis), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn version_analysis(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<wire::VersionAnalysis>> {
    let Query(query) = query?;
    let analysis = analyse(&state, &model, &version, &query).await?;
    Ok(Json(wire::VersionAnalysis::from(&analysis)))
}

/// Evaluates the enabled rules of one model version now, as `modelwatch evaluate MODEL
/// VERSION` does: the prediction windows due judged, then every sample not yet counted,
/// in bounded passes run back to back (the
/// server also evaluates on its own: every interval, and shortly after samples arrive over
/// HTTP). Alerts it creates or changes go to the event stream.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/evaluate", tag = "rules",
    params(("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector"), ("version" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1")),
    responses((status = 200, description = "The passes, reported together", body = wire::EvaluationReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn evaluate(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> ApiResult<Json<wire::EvaluationReport>> {
    let (model, version) = (parse_model(&model)?, parse_version(&version)?);
    let engine = engine(&state)?;
    let (report, judged) = engine
        .judge_and_evaluate(Some((&model, &version)), state.now())
        .await?;
    state.announce(&judged);
    modelwatch_engine::evaluator::publish(state.events(), &report);
    Ok(Json(wire::EvaluationReport::from(&report)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DegradationQuery {
    /// One metric; default: every metric of the version.
    pub metric: Option<String>,
    /// The baseline window in hours, 1 to 8784 (default 24).
    pub baseline_hours: Option<u32>,
    /// The comparison window in hours, 1 to 8784; default: the latest value.
    pub comparison_hours: Option<u32>,
    /// `daily` or `weekly`: the baseline is the same hours one day or week earlier.
    pub seasonal: Option<String>,
    /// The significance level of every test, between 0 and 0.5 (default: the detector's).
    pub alpha: Option<f64>,
    /// The dataset (segment) to check: a name, or `default` (the default).
    pub dataset: Option<String>,
}

/// Degradation check(s) with significance.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/degradation", tag = "models",
    params(("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector"), ("version" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1"), DegradationQuery),
    responses((status = 200, body = wire::DegradationsResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn degradation(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    query: Result<Query<DegradationQuery>, QueryRejection>,
) -> ApiResult<Json<wire::DegradationsResponse>> {
    let Query(query) = query?;
    let (model, version) = (parse_model(&model)?, parse_version(&version)?);
    let dataset = parse_dataset(query.dataset.as_deref())?;
    let mut spec = WindowSpec::default();
    if let Some(hours) = query.baseline_hours {
        spec.baseline_hours = hours;
    }
    spec.comparison_hours = query.comparison_hours.or(spec.comparison_hours);
    spec.seasonal = match query.seasonal.as_deref() {
        None => None,
        Some("daily") => Some(Seasonality::Daily),
        Some("weekly") => Some(Seasonality::Weekly),
        Some(other) => {
            return Err(ApiError::bad_request(
                "seasonal",
                format!("{other:?} is not daily or weekly"),
            ))
        }
    };
    spec.validate()?;
    let _turn = state.expensive().await?;
    let options = DetectionOptions::default();
    let options = match query.alpha {
        Some(alpha) => options.with_alpha(significance_level("alpha", alpha)?),
        None => options,
    };
    let store = &**state.store();
    let now: Timestamp = state.now();
    no_samples_is_not_found(&state, &model, &version, dataset.as_ref()).await?;
    let results = match query.metric.as_deref() {
        Some(metric) => {
            let key = SeriesKey::new(model, version, Metric::parse(metric)?).with_dataset(dataset);
            if store.latest(&key).await?.is_none() {
                return Err(ApiError::NotFound(format!("no series {key}")));
            }
            vec![
                analysis::check_degradation(store, &key, &spec, &options, now)
                    .await
                    .map_err(analysis_error("baseline_hours"))?,
            ]
        }
        None => analysis::check_all_metrics(
            store,
            &model,
            &version,
            dataset.as_ref(),
            &spec,
            &options,
            now,
        )
        .await
        .map_err(analysis_error("baseline_hours"))?,
    };
    Ok(Json(wire::DegradationsResponse {
        results: results.iter().map(wire::DegradationResult::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The champion version.
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.0")]
    pub a: String,
    /// The challenger version.
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "v2.1")]
    pub b: String,
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "accuracy")]
    pub metric: String,
    /// The last `hours`, more than 0 and at most 70389527 (default 24).
    #[param(exclusive_minimum = 0.0, maximum = 70389527.0, example = 24)]
    pub hours: Option<f64>,
    /// The dataset (segment) both versions are compared on: a name, or `default`.
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "default")]
    pub dataset: Option<String>,
}

/// Champion vs challenger on one metric.
#[utoipa::path(get, path = "/api/v1/models/{model}/compare", tag = "models",
    params(("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "fraud_detector"), CompareQuery),
    responses((status = 200, description = "The comparison", body = wire::VersionComparison), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn compare(
    State(state): State<AppState>,
    Path(model): Path<String>,
    query: Result<Query<CompareQuery>, QueryRejection>,
) -> ApiResult<Json<wire::VersionComparison>> {
    let Query(query) = query?;
    let model = parse_model(&model)?;
    let a = modelwatch_core::Version::parse(&query.a)
        .map_err(|e| ApiError::bad_request("a", e.message))?;
    let b = modelwatch_core::Version::parse(&query.b)
        .map_err(|e| ApiError::bad_request("b", e.message))?;
    let metric = Metric::parse(&query.metric)?;
    let dataset = parse_dataset(query.dataset.as_deref())?;
    let range = analysis::last_hours(query.hours.unwrap_or(24.0), state.now())?;
    let _turn = state.expensive().await?;
    let matchup = analysis::Matchup {
        model: &model,
        champion: &a,
        challenger: &b,
        metric: &metric,
        dataset: dataset.as_ref(),
    };
    let comparison =
        analysis::compare(&**state.store(), matchup, range, &CompareOptions::default())
            .await
            .map_err(analysis_error("hours"))?;
    Ok(Json(wire::VersionComparison::from(&comparison)))
}
