//! modelwatch's HTTP face: the JSON API under `/api/v1`, its OpenAPI document, the
//! server-sent event stream, predictions and labels, InfluxDB line-protocol ingestion and
//! InfluxQL reads, the Prometheus exposition, read API and remote write.
//!
//! [`router`] builds the whole application from an [`AppState`]; tests call it without a
//! socket, and the binary serves it. Only this crate knows wire formats: the core's
//! types are mapped to JSON here, store and validation errors to HTTP statuses in
//! [`error`]. The OpenAPI document is generated from the handlers' annotations by the
//! same calls that register the routes, so the two cannot drift.

pub mod admission;
pub mod alerting;
pub mod auth;
mod edge;
pub mod error;
pub mod evaluator;
pub mod import;
pub mod influx;
pub mod line_protocol;
pub mod notifications;
pub mod ops;
pub mod predictions;
pub mod promql;
pub mod remote_write;
pub mod series;
pub mod server;
pub mod telemetry;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use modelwatch_core::{Sample, Timestamp};
use modelwatch_engine::events::Arrivals;
use modelwatch_store::{MetricStore, TokenStore};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{generate_token, Authenticator};
pub use error::{ApiError, ApiResult};
pub use modelwatch_engine::events::{Event, EventHub};
pub use modelwatch_engine::Clock;
pub use notifications::Notifications;
pub use telemetry::Telemetry;

/// Limits of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, after gzip decompression (for a streamed import, its longest line).
    pub max_body_bytes: usize,
    /// Longest time a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Expensive reads running and waiting at once.
    pub reads: admission::ReadLimits,
    /// Series whose latest value `/metrics` exports as a gauge, at most (the first, by
    /// model, version and metric); 0 exports none.
    pub metrics_series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            reads: admission::ReadLimits::default(),
            metrics_series: 1_000,
        }
    }
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn MetricStore>,
    auth: Option<Authenticator>,
    events: EventHub,
    telemetry: Telemetry,
    limits: Limits,
    /// Turns for expensive reads.
    admission: admission::Admission,
    clock: Clock,
    /// Rules, alerts and silences; `None` answers their routes with 503.
    engine: Option<modelwatch_engine::Engine>,
    /// Flips to true once when the server starts shutting down; ends event streams.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Set once by the binary when it delivers notifications.
    notifications: std::sync::OnceLock<Notifications>,
    /// Which labels of a remote write name model, version, metric and dataset; set once
    /// by the binary from its configuration, the default mapping otherwise.
    remote_write_mapping: std::sync::OnceLock<remote_write::LabelMapping>,
    /// How InfluxDB points map to samples (writes and `/query`); set once by the binary
    /// from its configuration, the default mapping otherwise.
    influx_mapping: std::sync::OnceLock<line_protocol::InfluxMapping>,
    /// When the state was made: what `/ready` reports as the start.
    started: Timestamp,
    /// The versions' health and degradation gauges of `/metrics`, graded at most every
    /// [`ops::GRADE_EVERY`].
    graded: tokio::sync::Mutex<Option<ops::Graded>>,
}

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl AppState {
    /// `tokens`: where API tokens live; `None` turns authentication off altogether.
    /// Must be called inside a tokio runtime (the event hub starts a task).
    pub fn new(
        store: Arc<dyn MetricStore>,
        tokens: Option<Arc<dyn TokenStore>>,
        limits: Limits,
        clock: Clock,
        engine: Option<modelwatch_engine::Engine>,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store,
                auth: tokens.map(Authenticator::new),
                events: EventHub::start(),
                telemetry: Telemetry::default(),
                admission: admission::Admission::new(limits.reads),
                limits,
                started: clock.now(),
                clock,
                engine,
                shutdown: tokio::sync::watch::Sender::new(false),
                notifications: std::sync::OnceLock::new(),
                remote_write_mapping: std::sync::OnceLock::new(),
                influx_mapping: std::sync::OnceLock::new(),
                graded: tokio::sync::Mutex::new(None),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn MetricStore> {
        &self.inner.store
    }

    pub fn events(&self) -> &EventHub {
        &self.inner.events
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// Exposes notification channels and deliveries; a second call changes nothing.
    pub fn set_notifications(&self, notifications: Notifications) {
        let _ = self.inner.notifications.set(notifications);
    }

    pub fn notifications(&self) -> Option<&Notifications> {
        self.inner.notifications.get()
    }

    /// Sets the label mapping of remote writes (`POST /api/v1/write`); only the first call
    /// (before the first remote write) counts.
    pub fn set_remote_write_mapping(&self, mapping: remote_write::LabelMapping) {
        let _ = self.inner.remote_write_mapping.set(mapping);
    }

    pub fn remote_write_mapping(&self) -> &remote_write::LabelMapping {
        self.inner
            .remote_write_mapping
            .get_or_init(remote_write::LabelMapping::default)
    }

    /// Sets how InfluxDB points map to samples (`/write`, `/api/v2/write`, `/query`); only
    /// the first call (before the first of those requests) counts.
    pub fn set_influx_mapping(&self, mapping: line_protocol::InfluxMapping) {
        let _ = self.inner.influx_mapping.set(mapping);
    }

    pub fn influx_mapping(&self) -> &line_protocol::InfluxMapping {
        self.inner
            .influx_mapping
            .get_or_init(line_protocol::InfluxMapping::default)
    }

    /// Ends the event streams, so a graceful shutdown is not held up by open connections.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] was called.
    pub fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.inner.shutdown.subscribe();
        async move {
            // An error means the state is gone, which is a shutdown too.
            let _ = receiver.wait_for(|down| *down).await;
        }
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The clock the server reads "now" from (the evaluation loop reads it too).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// A turn for an expensive read (see [`admission`]): held until dropped.
    pub(crate) async fn expensive(&self) -> ApiResult<admission::Turn> {
        self.inner.admission.enter().await
    }

    /// Counts samples stored by someone else (the engine, from predictions) and tells
    /// the event hub, as [`AppState::store_samples`] does for its own.
    pub(crate) fn announce(&self, samples: &[Sample]) {
        self.inner
            .telemetry
            .samples_ingested
            .inc_by(samples.len() as u64);
        self.inner.events.samples_stored(Arrivals::of(samples));
    }

    /// Stores samples (all or nothing), counts them and tells the event hub. A sample the
    /// store refuses (its value outside its metric's declared range) is named by `locate`
    /// from its index, in the terms of the request's own format.
    pub(crate) async fn store_samples(
        &self,
        samples: Vec<Sample>,
        format: &str,
        locate: impl FnOnce(usize, modelwatch_core::ValidationError) -> ApiError,
    ) -> ApiResult<usize> {
        let count = samples.len();
        if let Some((index, error)) = samples.iter().enumerate().find_map(|(index, sample)| {
            modelwatch_core::predictions::refuse_pushed(sample).map(|error| (index, error))
        }) {
            self.inner.telemetry.rejected(format, count as u64);
            return Err(locate(index, error));
        }
        let arrivals = Arrivals::of(&samples);
        match self.inner.store.append(samples).await {
            Ok(()) => {
                self.inner.telemetry.samples_ingested.inc_by(count as u64);
                self.inner.events.samples_stored(arrivals);
                Ok(count)
            }
            Err(error) => {
                if matches!(
                    error,
                    modelwatch_store::StoreError::InvalidSample { .. }
                        | modelwatch_store::StoreError::Invalid(_)
                        | modelwatch_store::StoreError::TooManySeries(_)
                ) {
                    self.inner.telemetry.rejected(format, count as u64);
                }
                match error {
                    modelwatch_store::StoreError::InvalidSample { index, error } => {
                        Err(locate(index, error))
                    }
                    other => Err(other.into()),
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "modelwatch",
        description = "Model performance monitoring: samples, models, rules, alerts, silences and events. \
                       Errors are {\"error\": {\"code\", \"message\", \"field\"}}."
    ),
    // Schemas no route answers with: the event stream's, PromQL's, and the wire types
    // only the CLI and the Python package give (a custom metric's declaration).
    components(schemas(
        wire::AlertEvent,
        wire::MetricDefinition,
        promql::PromVectorSample,
        promql::PromMatrixSeries
    ))
)]
struct ApiDoc;

/// Every documented route; the OpenAPI document is collected from exactly these.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(series::ingest))
        .routes(routes!(series::list_models))
        .routes(routes!(series::list_versions))
        .routes(routes!(series::series_points))
        .routes(routes!(series::aggregate))
        .routes(routes!(predictions::log_predictions))
        .routes(routes!(predictions::log_labels))
        .routes(routes!(
            predictions::get_prediction_config,
            predictions::put_prediction_config
        ))
        .routes(routes!(predictions::prediction_window))
        .routes(routes!(alerting::version_history))
        .routes(routes!(alerting::version_analysis))
        .routes(routes!(alerting::degradation))
        .routes(routes!(alerting::evaluate))
        .routes(routes!(alerting::compare))
        .routes(routes!(alerting::list_rules, alerting::create_rule))
        .routes(routes!(
            alerting::get_rule,
            alerting::patch_rule,
            alerting::delete_rule
        ))
        .routes(routes!(alerting::backtest_rule))
        .routes(routes!(alerting::backtest_unsaved_rule))
        .routes(routes!(alerting::list_alerts))
        .routes(routes!(alerting::alert_summary))
        .routes(routes!(alerting::get_alert))
        .routes(routes!(alerting::acknowledge))
        .routes(routes!(alerting::resolve))
        .routes(routes!(alerting::alert_history))
        .routes(routes!(alerting::list_silences, alerting::create_silence))
        .routes(routes!(alerting::delete_silence))
        .routes(routes!(auth::session, auth::sign_in, auth::sign_out))
        .routes(routes!(notifications::list_channels))
        .routes(routes!(notifications::test_channel))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(ops::events))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::exposition))
        .routes(routes!(ops::write_v1))
        .routes(routes!(ops::write_v2))
        .routes(routes!(remote_write::write))
        .routes(routes!(import::import))
        .routes(routes!(promql::query))
        .routes(routes!(promql::query_range))
        .routes(routes!(promql::series))
        .routes(routes!(promql::labels))
        .routes(routes!(promql::label_values))
        .routes(routes!(promql::buildinfo))
        .routes(routes!(influx::ping))
        .routes(routes!(influx::health))
        .routes(routes!(influx::ready))
        .routes(routes!(influx::query))
        .routes(routes!(influx::query_v2))
}

/// The routes that take a turn for expensive reads ([`admission`]) and may answer 429.
const EXPENSIVE: [(&str, utoipa::openapi::HttpMethod); 8] = {
    use utoipa::openapi::HttpMethod::{Get, Post};
    [
        (
            "/api/v1/models/{model}/versions/{version}/metrics/{metric}",
            Get,
        ),
        ("/api/v1/models/{model}/versions/{version}/history", Get),
        ("/api/v1/models/{model}/versions/{version}/analysis", Get),
        ("/api/v1/models/{model}/versions/{version}/degradation", Get),
        ("/api/v1/models/{model}/compare", Get),
        ("/api/v1/rules/{id}/backtest", Post),
        ("/api/v1/rules/backtest", Post),
        ("/api/v1/series/aggregate", Get),
    ]
};

/// The routes that store samples (predictions and labels: their windows' metrics), and
/// may answer 422 when a series limit refuses them.
const INGEST: [&str; 6] = [
    "/api/v1/metrics",
    "/api/v1/predictions",
    "/api/v1/predictions/labels",
    "/write",
    "/api/v2/write",
    remote_write::PATH,
];

/// Answers every route may give whatever it does: 400 for a query parameter it does not
/// take (but the InfluxDB writes), 503 when the request time-out passes, and 429 on the
/// expensive ones, both with `Retry-After` and the error body; 422 on
/// the writes when a series limit refuses them; 415 on the routes that take a body, for a
/// `Content-Encoding` other than gzip (the decompression layer answers it for any route).
fn document_load_answers(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in document.paths.paths.iter_mut() {
        let operations = [
            (utoipa::openapi::HttpMethod::Get, &mut item.get),
            (utoipa::openapi::HttpMethod::Post, &mut item.post),
            (utoipa::openapi::HttpMethod::Put, &mut item.put),
            (utoipa::openapi::HttpMethod::Patch, &mut item.patch),
            (utoipa::openapi::HttpMethod::Delete, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let responses = &mut operation.responses.responses;
            if !edge::LENIENT.contains(&path.as_str()) {
                responses.entry("400".into()).or_insert_with(|| {
                    error("A query parameter this route does not take, named as the field").into()
                });
            }
            responses.entry("503".into()).or_insert_with(|| {
                error(
                    "The request time-out passed, or the server is shutting down; see Retry-After",
                )
                .into()
            });
            if operation.request_body.is_some() {
                responses.entry("415".into()).or_insert_with(|| {
                    error("A Content-Encoding other than gzip; nothing was read").into()
                });
            }
            if method == utoipa::openapi::HttpMethod::Post && INGEST.contains(&path.as_str()) {
                responses.entry("422".into()).or_insert_with(|| {
                    error("A series limit ([limits]) refuses the write; nothing was stored").into()
                });
            }
            if EXPENSIVE.contains(&(path.as_str(), method)) {
                responses.entry("429".into()).or_insert_with(|| {
                    error("Too many expensive reads at once; try again after Retry-After").into()
                });
            }
        }
    }
}

/// What `GET /api/openapi.json` answers: an OpenAPI 3 document (its own schema is
/// OpenAPI's, not repeated here).
fn openapi_document_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "openapi",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^3[.]")),
        )
        .property("info", ObjectBuilder::new().schema_type(Type::Object))
        .property("paths", ObjectBuilder::new().schema_type(Type::Object))
        .required("openapi")
        .required("info")
        .required("paths")
        .build()
}

/// The OpenAPI 3 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut document) = api().split_for_parts();
    document.paths.paths.insert(
        "/api/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .tag("operations")
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("OpenAPI 3 document")
                        .content(
                            "application/json",
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(openapi_document_schema()))
                                .build(),
                        ),
                )
                .response(
                    "401",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("No valid token (serve --auth tokens)")
                        .content(
                            "application/json",
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                                .build(),
                        ),
                ),
        ),
    );
    document_load_answers(&mut document);
    document
}

async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.inner.limits.request_timeout;
    // A streamed import has no length limit, so no limit on its whole time either: it
    // stops when no part of its body arrives for the time-out instead.
    if request.uri().path() == import::PATH {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        // A store write already handed to the writer still commits; only the answer is lost.
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; GET /api/openapi.json lists them".into())
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (routes, _) = api().split_for_parts();
    // Rendered once: the document is a constant of the build.
    let document: Arc<str> = openapi()
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"))
        .into();
    let parameters = Arc::new(edge::QueryParameters::of(&openapi()));
    routes
        .route(
            "/api/openapi.json",
            get(move || {
                let document = Arc::clone(&document);
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        document.to_string(),
                    )
                }
            }),
        )
        // The dashboard: the embedded front end at `/` (crates/dashboard).
        .merge(modelwatch_dashboard::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            parameters,
            edge::refuse_unknown_parameters,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ))
        // Limits the decompressed body, so a small gzip bomb cannot get past it.
        .layer(DefaultBodyLimit::max(state.inner.limits.max_body_bytes))
        .layer(RequestDecompressionLayer::new())
        // Snappy is part of a remote write's body format, not a transport encoding.
        .layer(middleware::from_fn(remote_write::take_snappy))
        // Every error with the JSON body, also those the layers above answer (405, 415).
        .layer(middleware::from_fn(edge::json_error_bodies))
        // The last guard: a bug that panics answers 500 with the JSON error body, logged,
        // instead of dropping the connection.
        .layer(CatchPanicLayer::custom(panicked))
        .layer(TraceLayer::new_for_http().make_span_with(edge::request_span))
        .with_state(state)
}

fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    ApiError::Internal(format!("handler panicked: {what}")).into_response()
}
