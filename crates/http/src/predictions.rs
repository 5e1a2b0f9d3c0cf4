//! Predictions and labels over HTTP (issue 22): `POST /api/v1/predictions`, `POST
//! /api/v1/predictions/labels` and a model's prediction configuration, thin adapters from
//! the [`wire::predictions`](crate::wire::predictions) bodies to the
//! [`modelwatch_engine::Engine`].
//!
//! Labels are under `/api/v1/predictions/labels`: `/api/v1/labels` is the Prometheus read
//! API's (label names, GET and POST as Grafana sends it).
//!
//! Every event of a body is validated before anything is stored; a bad one is named by
//! its index and field (`predictions[3].score`). The engine stores the batch (all or
//! nothing) and writes the metrics of every window it changed as ordinary samples, read
//! back through the metrics routes, and announced like any other samples (the event
//! stream, the evaluator). Labels are received at the server's clock.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use modelwatch_core::predictions::Task;
use modelwatch_engine::Engine;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::series::{parse_dataset, parse_model, parse_version};
use crate::wire::predictions::{
    validate_batch, LabelEvent, LabelsLogged, LabelsRequest, PredictionConfig,
    PredictionConfigRequest, PredictionEvent, PredictionWindow, PredictionsLogged,
    PredictionsRequest,
};
use crate::AppState;

fn engine(state: &AppState) -> ApiResult<&Engine> {
    state.inner.engine.as_ref().ok_or_else(|| {
        ApiError::Unavailable("predictions need the engine; this server has none".into())
    })
}

/// Parses a JSON body as a `T`, a bad one named by its path (`predictions[3].score`).
fn parse_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body?;
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut deserializer)
        .map_err(|error| crate::error::json_error(&error, "body"))?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request("body", format!("invalid JSON: {error}")))?;
    Ok(parsed)
}

/// Store predictions and recompute their windows' metrics.
#[utoipa::path(
    post,
    path = "/api/v1/predictions",
    tag = "predictions",
    request_body(content = PredictionsRequest, description = "{\"predictions\": [...]}: 1 to 10,000 predictions, every one validated before any is stored (all or nothing). A prediction whose id the model already has is counted as a duplicate and dropped. Its `features` (at most 32) are folded into its window's per-feature sketches, whose drift is written as drift_psi_feature_<name>, drift_ks_feature_<name> and drift_js_feature_<name>."),
    responses(
        (status = 200, description = "Stored (durably), and the windows they joined or counted in recomputed", body = PredictionsLogged),
        (status = 400, description = "A bad prediction, named by its index and field (predictions[3].score, predictions[3].features.amount), or a batch empty or over 10,000; nothing was stored", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub async fn log_predictions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<PredictionsLogged>> {
    let request: PredictionsRequest = parse_body(body)?;
    let predictions = validate_batch(
        "predictions",
        request.predictions,
        PredictionEvent::validate,
    )?;
    let logged = engine(&state)?
        .log_predictions(predictions, state.now())
        .await?;
    state.announce(&logged.samples);
    Ok(Json(PredictionsLogged::of(
        &logged.written,
        logged.recomputed,
    )))
}

/// Store labels (received now) and recompute the windows of the predictions they join.
#[utoipa::path(
    post,
    path = "/api/v1/predictions/labels",
    tag = "predictions",
    request_body(content = LabelsRequest, description = "{\"labels\": [...]}: 1 to 10,000 labels, every one validated before any is stored (all or nothing). A label whose prediction has not arrived is kept pending for it; a second label for an id replaces the first."),
    responses(
        (status = 200, description = "Stored (durably), and the windows of the predictions they joined recomputed", body = LabelsLogged),
        (status = 400, description = "A bad label, named by its index and field (labels[3].label), or a batch empty or over 10,000; nothing was stored", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub async fn log_labels(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<LabelsLogged>> {
    let request: LabelsRequest = parse_body(body)?;
    let labels = validate_batch("labels", request.labels, LabelEvent::validate)?;
    let logged = engine(&state)?.log_labels(labels, state.now()).await?;
    state.announce(&logged.samples);
    Ok(Json(LabelsLogged::of(&logged.written, logged.recomputed)))
}

/// A model's prediction configuration (the defaults, `configured: false`, for a model
/// without one).
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/prediction-config",
    tag = "predictions",
    params(("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")),
    responses(
        (status = 200, body = PredictionConfig),
        (status = 400, description = "A bad model name", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn get_prediction_config(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> ApiResult<Json<PredictionConfig>> {
    let model = parse_model(&model)?;
    let stored = engine(&state)?.prediction_config(&model).await?;
    let config = stored
        .unwrap_or_else(|| modelwatch_engine::predictions::default_config(Task::Classification));
    Ok(Json(PredictionConfig::of(
        &model,
        &config,
        stored.is_some(),
    )))
}

/// Set a model's prediction configuration: the fields given; the others keep their value.
#[utoipa::path(
    put,
    path = "/api/v1/models/{model}/prediction-config",
    tag = "predictions",
    params(("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$")),
    request_body(content = PredictionConfigRequest, description = "The fields to set; a model's first configuration needs its task. Windows already computed keep their values until one of their predictions or labels arrives."),
    responses(
        (status = 200, description = "The configuration now", body = PredictionConfig),
        (status = 400, description = "A bad field, named", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub async fn put_prediction_config(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<PredictionConfig>> {
    let model = parse_model(&model)?;
    let request: PredictionConfigRequest = parse_body(body)?;
    let engine = engine(&state)?;
    let stored = engine.prediction_config(&model).await?;
    let config = request.apply(stored)?;
    engine.set_prediction_config(&model, config).await?;
    Ok(Json(PredictionConfig::of(&model, &config, true)))
}

/// The query of a prediction window.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// The predictions' dataset: a name, or `default` (the default).
    #[param(pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$", example = "default")]
    pub dataset: Option<String>,
}

/// One window of a model version's predictions: every revision of its metrics (value,
/// coverage, when computed) and its judgement.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions/{version}/prediction-windows/{start}",
    tag = "predictions",
    params(
        ("model" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$"),
        ("version" = String, Path, pattern = r"^[A-Za-z0-9_.:+@-]{1,128}$"),
        ("start" = String, Path, description = "Any time in the window (RFC 3339 or epoch ms): the window holding it"),
        WindowQuery,
    ),
    responses(
        (status = 200, body = PredictionWindow),
        (status = 400, description = "A bad name or time", body = ErrorBody),
        (status = 404, description = "No prediction in that window", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn prediction_window(
    State(state): State<AppState>,
    Path((model, version, start)): Path<(String, String, String)>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> ApiResult<Json<PredictionWindow>> {
    let Query(query) = query?;
    let series = modelwatch_store::predictions::PredictionSeries {
        model: parse_model(&model)?,
        version: parse_version(&version)?,
        dataset: parse_dataset(query.dataset.as_deref())?,
    };
    let at = crate::series::parse_time("start", &start)?;
    let engine = engine(&state)?;
    let config = engine
        .prediction_config(&series.model)
        .await?
        .unwrap_or_else(|| modelwatch_engine::predictions::default_config(Task::Classification));
    let window = config.window.window_of(at);
    let history = engine
        .window_history(&series, window.start)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "{}/{} has no predictions in the window from {}",
                series.model, series.version, window.start
            ))
        })?;
    Ok(Json(PredictionWindow::of(&history)))
}
