//! `Database`: the embedded mode. Opens a store location as the CLI does (an SQLite file,
//! `sqlite:PATH`, `postgres://…` or `memory`) and answers the seed's calls with the same
//! engine functions the HTTP handlers call, returning the same wire types' JSON
//! (`modelwatch_http::wire`); so a `modelwatch.Client` against `modelwatch serve` on the
//! same database gets the same dicts. Safe beside a running server on the same file: the stores coordinate processes
//! (SQLite's lock, PostgreSQL's transactions and advisory locks).
//!
//! Writes of single samples go through [`WriteBehind`]; reads flush it first. Every call
//! that touches the store releases the GIL.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use modelwatch_core::alerting::{
    parse_hours_or_all, AlertConfig, AlertFilter, AlertId, AlertStatus, RuleSpec, Severity,
};
use modelwatch_core::detection::{DetectionOptions, WindowSpec};
use modelwatch_core::health::HealthOptions;
use modelwatch_core::predictions::Task;
use modelwatch_core::sample::timestamp_error;
use modelwatch_core::stats::Charted;
use modelwatch_core::{
    Dataset, Direction, Metric, MetricDefinition, ModelName, Sample, SeriesKey, TimeRange,
    Timestamp, ValueRange, Version,
};
use modelwatch_engine::analysis;
use modelwatch_engine::Engine;
use modelwatch_http::wire;
use modelwatch_http::wire::predictions::{
    from_json, validate_batch, LabelEvent, LabelsLogged, LabelsRequest, PredictionConfig,
    PredictionConfigRequest, PredictionEvent, PredictionsLogged, PredictionsRequest,
};
use modelwatch_store::Stores;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};
use tokio::sync::Notify;

use crate::buffer::{Pushed, WriteBehind};
use crate::convert::{python_to_json, to_python};
use crate::errors;

/// The wall clock in epoch milliseconds (what `record_metric` stamps by default).
#[pyfunction]
pub fn now_ms() -> i64 {
    modelwatch::now().as_millis()
}

#[pyclass(module = "modelwatch._native", frozen)]
#[derive(Debug)]
pub struct Database {
    location: String,
    alerts_location: Option<String>,
    runtime: tokio::runtime::Runtime,
    stores: Stores,
    engine: Engine,
    buffer: Arc<WriteBehind>,
    stop: Arc<Notify>,
    closed: AtomicBool,
}

fn validation<T>(result: Result<T, modelwatch_core::ValidationError>) -> PyResult<T> {
    result.map_err(errors::from_validation)
}

/// A timestamp argument: epoch milliseconds (int) or RFC 3339 / epoch-ms text.
fn timestamp(field: &str, value: &Bound<'_, PyAny>) -> PyResult<Timestamp> {
    let parsed = if value.is_instance_of::<PyInt>() {
        Timestamp::from_millis(value.extract::<i64>()?)
    } else if let Ok(text) = value.cast::<PyString>() {
        Timestamp::parse(&text.to_cow()?)
    } else {
        return Err(errors::validation(
            field,
            "must be epoch milliseconds (int), RFC 3339 text or a datetime",
        ));
    };
    parsed.map_err(|e| errors::validation(field, timestamp_error(e).message))
}

/// A column of numbers: little-endian bytes of 8-byte items (NumPy's `tobytes()`), or
/// any sequence the caller converted to a list.
fn column<T>(field: &str, value: &Bound<'_, PyAny>, from_le: fn([u8; 8]) -> T) -> PyResult<Vec<T>>
where
    for<'a, 'py> T: Copy + FromPyObject<'a, 'py>,
{
    if let Ok(bytes) = value.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        if bytes.len() % 8 != 0 {
            return Err(errors::validation(
                field,
                "byte length is not a multiple of 8",
            ));
        }
        return Ok(bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut item = [0u8; 8];
                item.copy_from_slice(chunk);
                from_le(item)
            })
            .collect());
    }
    value
        .extract::<Vec<T>>()
        .map_err(|_| errors::validation(field, "must be a sequence of numbers"))
}

impl Database {
    /// Runs `work` on the runtime with the GIL released.
    fn block<T: Send, F: Future<Output = T> + Send>(&self, py: Python<'_>, work: F) -> T {
        py.detach(|| self.runtime.block_on(work))
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(errors::store_error(format!(
                "the database {} is closed",
                self.location
            )));
        }
        Ok(())
    }

    /// Raises the failures of background writes since the last call, if any.
    fn report_failures(&self) -> PyResult<()> {
        let failures = self.buffer.take_failures();
        if failures.is_empty() {
            return Ok(());
        }
        Err(errors::store_error(format!(
            "queued samples were not stored: {}",
            failures.join("; ")
        )))
    }

    /// Appends what is queued (and `more`), durable on return; what the store refused
    /// is raised.
    fn write(&self, py: Python<'_>, more: Vec<Sample>) -> PyResult<()> {
        self.check_open()?;
        let store = Arc::clone(&self.stores.metrics);
        let refused = self
            .block(py, self.buffer.flush_then(&*store, more))
            .map_err(errors::from_store)?;
        self.report_failures()?;
        if refused.is_empty() {
            Ok(())
        } else {
            Err(errors::validation("value", refused.join("; ")))
        }
    }

    /// Before every read: what this handle wrote is visible to it.
    fn settle(&self, py: Python<'_>) -> PyResult<()> {
        self.write(py, Vec::new())
    }

    fn key(model: &str, version: &str, metric: &str) -> PyResult<SeriesKey> {
        validation(SeriesKey::parse(model, version, metric))
    }
}

#[pymethods]
impl Database {
    /// Opens (creating or migrating as the CLI does) the database at `location`; `None`
    /// is `MODELWATCH_DB`, else the CLI's default file. `alerts_location` keeps rules,
    /// alerts, silences, the outbox, tokens and predictions apart from the samples, as
    /// the CLI's `--alerts-db` (`None`: `MODELWATCH_ALERTS_DB`, else with the samples, or
    /// the CLI's default alerts file when `location` keeps only samples, e.g.
    /// `influxdb://…`). `alert_config` is the `[alerts]` section as a dict (the core's
    /// `AlertConfig` fields).
    #[new]
    #[pyo3(signature = (location=None, alert_config=None, alerts_location=None))]
    fn new(
        py: Python<'_>,
        location: Option<String>,
        alert_config: Option<&Bound<'_, PyAny>>,
        alerts_location: Option<String>,
    ) -> PyResult<Self> {
        let (location, alerts_location) = modelwatch::config::StoreConfig {
            db: location.or_else(|| std::env::var("MODELWATCH_DB").ok()),
            alerts_db: alerts_location.or_else(|| std::env::var("MODELWATCH_ALERTS_DB").ok()),
            config_dir: None,
        }
        .locations()
        .map_err(|e| errors::store_error(e.to_string()))?;
        let config = match alert_config {
            None => AlertConfig::default(),
            Some(config) => alert_config_from(config)?,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("modelwatch")
            .enable_all()
            .build()
            .map_err(|e| errors::store_error(format!("cannot start the async runtime: {e}")))?;
        for location in std::iter::once(&location).chain(&alerts_location) {
            if let Some(parent) =
                std::path::Path::new(location.strip_prefix("sqlite:").unwrap_or(location))
                    .parent()
                    .filter(|p| {
                        !p.as_os_str().is_empty()
                            && location != "memory"
                            && !location.contains("://")
                    })
            {
                // As the CLI's default location, a missing directory is created.
                let _ = std::fs::create_dir_all(parent);
            }
        }
        let stores = py
            .detach(|| {
                runtime.block_on(modelwatch_store::open_split(
                    &location,
                    alerts_location.as_deref(),
                    modelwatch_store::SeriesLimits::default(),
                ))
            })
            .map_err(errors::from_store)?;
        let engine = Engine::new(&stores, config);
        let buffer = Arc::new(WriteBehind::default());
        let stop = Arc::new(Notify::new());
        runtime.spawn(Arc::clone(&buffer).run(Arc::clone(&stores.metrics), Arc::clone(&stop)));
        Ok(Database {
            location,
            alerts_location,
            runtime,
            stores,
            engine,
            buffer,
            stop,
            closed: AtomicBool::new(false),
        })
    }

    #[getter]
    fn location(&self) -> &str {
        &self.location
    }

    /// Where the rules, alerts and tokens live when apart from the samples; `None`: with them.
    #[getter]
    fn alerts_location(&self) -> Option<&str> {
        self.alerts_location.as_deref()
    }

    /// Validates one sample and queues it; returns the sample's wire form.
    #[pyo3(signature = (model, version, metric, value, timestamp=None, dataset=None))]
    fn record(
        slf: &Bound<'_, Self>,
        model: &str,
        version: &str,
        metric: &str,
        value: f64,
        timestamp: Option<&Bound<'_, PyAny>>,
        dataset: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let (py, this) = (slf.py(), slf.get());
        this.check_open()?;
        this.report_failures()?;
        let sample = build_sample(model, version, metric, value, timestamp, dataset)?;
        let json = to_python(py, &wire::SampleInput::from(&sample))?;
        if this.buffer.push([sample]) == Pushed::FlushNow {
            this.write(py, Vec::new())?;
        }
        Ok(json)
    }

    /// Stores one series' values at their timestamps (epoch ms), durable on return.
    /// `values` and `timestamps` are little-endian float64 / int64 bytes or sequences.
    #[pyo3(signature = (model, version, metric, values, timestamps, dataset=None))]
    fn record_columns(
        slf: &Bound<'_, Self>,
        model: &str,
        version: &str,
        metric: &str,
        values: &Bound<'_, PyAny>,
        timestamps: &Bound<'_, PyAny>,
        dataset: Option<&str>,
    ) -> PyResult<usize> {
        let (py, this) = (slf.py(), slf.get());
        this.check_open()?;
        let samples = build_columns(model, version, metric, values, timestamps, dataset)?;
        let count = samples.len();
        this.write(py, samples)?;
        Ok(count)
    }

    /// Stores everything queued; returns once it is durable.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.write(py, Vec::new())
    }

    /// Samples queued and not yet stored.
    fn queued(&self) -> usize {
        self.buffer.queued()
    }

    /// Declares a custom metric's direction and range (`metrics define`).
    #[pyo3(signature = (metric, lower_is_better=false, min=None, max=None))]
    fn define_metric(
        &self,
        py: Python<'_>,
        metric: &str,
        lower_is_better: bool,
        min: Option<f64>,
        max: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        self.settle(py)?;
        let direction = if lower_is_better {
            Direction::LowerIsBetter
        } else {
            Direction::HigherIsBetter
        };
        let definition = validation(MetricDefinition::custom(
            validation(Metric::parse(metric))?,
            direction,
            ValueRange { min, max },
        ))?;
        let store = Arc::clone(&self.stores.metrics);
        let stored = definition.clone();
        self.block(py, async move { store.define_metric(stored).await })
            .map_err(errors::from_store)?;
        to_python(py, &wire::MetricDefinition::from(&definition))
    }

    /// The declared custom metrics.
    fn custom_metrics(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let store = Arc::clone(&self.stores.metrics);
        let definitions = self
            .block(py, async move { store.custom_metrics().await })
            .map_err(errors::from_store)?;
        let definitions: Vec<wire::MetricDefinition> = definitions.iter().map(Into::into).collect();
        to_python(py, &definitions)
    }

    /// Degradation check(s), as `GET …/degradation`: one metric, or every metric of the
    /// version (`metric=None`). Returns the list of results.
    #[pyo3(signature = (model, version, metric=None, baseline_hours=None, comparison_hours=None, dataset=None))]
    fn check_degradation(
        slf: &Bound<'_, Self>,
        model: &str,
        version: &str,
        metric: Option<&str>,
        baseline_hours: Option<u32>,
        comparison_hours: Option<u32>,
        dataset: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let (py, this) = (slf.py(), slf.get());
        this.settle(py)?;
        let model = validation(ModelName::parse(model))?;
        let version = validation(Version::parse(version))?;
        let dataset = validation(Dataset::parse_optional(dataset.unwrap_or_default()))?;
        let metric = metric
            .map(Metric::parse)
            .transpose()
            .map_err(errors::from_validation)?;
        let mut spec = WindowSpec::default();
        if let Some(hours) = baseline_hours {
            if hours == 0 {
                return Err(errors::validation(
                    "baseline_window_hours",
                    "must be positive",
                ));
            }
            spec.baseline_hours = hours;
        }
        if let Some(hours) = comparison_hours {
            if hours == 0 {
                return Err(errors::validation(
                    "comparison_window_hours",
                    "must be positive",
                ));
            }
            spec.comparison_hours = Some(hours);
        }
        let store = Arc::clone(&this.stores.metrics);
        let now = modelwatch::now();
        let results = this.block(py, async move {
            let options = DetectionOptions::default();
            if store
                .metrics(&model, &version)
                .await
                .map_err(errors::from_store)?
                .is_empty()
            {
                return Err(errors::not_found(format!(
                    "no samples of {model} {version}"
                )));
            }
            match metric {
                Some(metric) => {
                    let key = SeriesKey::new(model, version, metric).with_dataset(dataset);
                    if store
                        .latest(&key)
                        .await
                        .map_err(errors::from_store)?
                        .is_none()
                    {
                        return Err(errors::not_found(format!("no series {key}")));
                    }
                    analysis::check_degradation(&*store, &key, &spec, &options, now)
                        .await
                        .map(|result| vec![result])
                        .map_err(errors::from_analysis)
                }
                None => analysis::check_all_metrics(
                    &*store,
                    &model,
                    &version,
                    dataset.as_ref(),
                    &spec,
                    &options,
                    now,
                )
                .await
                .map_err(errors::from_analysis),
            }
        })?;
        let results: Vec<wire::DegradationResult> = results.iter().map(Into::into).collect();
        to_python(py, &results)
    }

    /// Performance history and health over the last `hours` (`GET …/history`).
    #[pyo3(signature = (model, version, hours=24.0, dataset=None))]
    fn performance_history(
        &self,
        py: Python<'_>,
        model: &str,
        version: &str,
        hours: f64,
        dataset: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        self.settle(py)?;
        let model = validation(ModelName::parse(model))?;
        let version = validation(Version::parse(version))?;
        let dataset = validation(Dataset::parse_optional(dataset.unwrap_or_default()))?;
        let range =
            analysis::last_hours(hours, modelwatch::now()).map_err(errors::from_analysis)?;
        let store = Arc::clone(&self.stores.metrics);
        let history = self.block(py, async move {
            if store
                .metrics(&model, &version)
                .await
                .map_err(errors::from_store)?
                .is_empty()
            {
                return Err(errors::not_found(format!(
                    "no samples of {model} {version}"
                )));
            }
            analysis::history(
                &*store,
                &model,
                &version,
                dataset.as_ref(),
                range,
                &HealthOptions::default(),
            )
            .await
            .map_err(errors::from_analysis)
        })?;
        to_python(py, &wire::PerformanceHistory::from(&history))
    }

    /// A series' points from `start` (default: 24 hours before `end` or now) to `end`
    /// (default: all), as the series route returns them without downsampling.
    #[pyo3(signature = (model, version, metric, start=None, end=None, dataset=None))]
    fn series(
        slf: &Bound<'_, Self>,
        model: &str,
        version: &str,
        metric: &str,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        dataset: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let (py, this) = (slf.py(), slf.get());
        this.settle(py)?;
        let key = Self::key(model, version, metric)?.with_dataset(validation(
            Dataset::parse_optional(dataset.unwrap_or_default()),
        )?);
        let to = end.map(|value| timestamp("to", value)).transpose()?;
        let from = match start {
            Some(value) => timestamp("from", value)?,
            None => to
                .unwrap_or_else(modelwatch::now)
                .saturating_sub(std::time::Duration::from_secs(24 * 3600)),
        };
        if to.is_some_and(|to| to < from) {
            return Err(errors::validation("to", "must not be before from"));
        }
        let store = Arc::clone(&this.stores.metrics);
        let series = this.block(py, async move {
            if store
                .latest(&key)
                .await
                .map_err(errors::from_store)?
                .is_none()
            {
                return Err(errors::not_found(format!("no series {key}")));
            }
            let points = store
                .range(&key, TimeRange::new(from, to.unwrap_or(Timestamp::MAX)))
                .await
                .map_err(errors::from_store)?;
            let direction = store
                .definition(&key.metric)
                .await
                .map_err(errors::from_store)?
                .direction;
            let count = points.len();
            Ok(wire::SeriesResponse::of(
                &key,
                direction,
                (from, to),
                count,
                Charted::Points(points),
            ))
        })?;
        to_python(py, &series)
    }

    /// Creates a rule from the seed's flat rule fields (a dict, as `POST /api/v1/rules`).
    fn create_rule(&self, py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let request: wire::RuleRequest = wire_value("rule", python_to_json(spec)?)?;
        let spec = RuleSpec::from(request);
        let now = modelwatch::now();
        let rule = self
            .block(py, self.engine.create_rule(spec, now))
            .map_err(errors::from_engine)?;
        to_python(py, &wire::Rule::from(&rule))
    }

    #[pyo3(signature = (model=None))]
    fn list_rules(&self, py: Python<'_>, model: Option<&str>) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let model = model
            .map(ModelName::parse)
            .transpose()
            .map_err(errors::from_validation)?;
        let rules = self
            .block(py, self.engine.list_rules(model.as_ref()))
            .map_err(errors::from_engine)?;
        let rules: Vec<wire::Rule> = rules.iter().map(Into::into).collect();
        to_python(py, &rules)
    }

    /// Evaluates the enabled rules of one model version now (the CLI's `evaluate MODEL
    /// VERSION`); returns the pass's report (`alerts_created`, `alerts_updated`, …).
    /// `alert_config` (the `[alerts]` fields) replaces the handle's settings for this pass.
    #[pyo3(signature = (model, version, alert_config=None))]
    fn evaluate_model(
        &self,
        py: Python<'_>,
        model: &str,
        version: &str,
        alert_config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.settle(py)?;
        let model = validation(ModelName::parse(model))?;
        let version = validation(Version::parse(version))?;
        let configured = alert_config
            .map(|config| alert_config_from(config).map(|config| Engine::new(&self.stores, config)))
            .transpose()?;
        let engine = configured.as_ref().unwrap_or(&self.engine);
        let now = modelwatch::now();
        let report = self
            .block(py, engine.evaluate_model(&model, &version, now))
            .map_err(errors::from_engine)?;
        to_python(py, &wire::EvaluationReport::from(&report))
    }

    fn get_alert(&self, py: Python<'_>, alert_id: &str) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let id = validation(AlertId::parse(alert_id))?;
        let alert = self
            .block(py, self.engine.alert(&id))
            .map_err(errors::from_engine)?;
        to_python(py, &wire::Alert::from(&alert))
    }

    fn acknowledge(&self, py: Python<'_>, alert_id: &str, by: &str) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let id = validation(AlertId::parse(alert_id))?;
        let now = modelwatch::now();
        let alert = self
            .block(py, self.engine.acknowledge(&id, by, now))
            .map_err(errors::from_engine)?;
        to_python(py, &wire::Alert::from(&alert))
    }

    #[pyo3(signature = (alert_id, by, notes=None))]
    fn resolve(
        &self,
        py: Python<'_>,
        alert_id: &str,
        by: &str,
        notes: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let id = validation(AlertId::parse(alert_id))?;
        let now = modelwatch::now();
        let alert = self
            .block(py, self.engine.resolve(&id, by, notes, now))
            .map_err(errors::from_engine)?;
        to_python(py, &wire::Alert::from(&alert))
    }

    /// Alerts newest first, as `GET /api/v1/alerts` lists them (every page): `status`
    /// one status or `open`; `hours` a positive whole number or `all` (default 24).
    #[pyo3(signature = (model=None, version=None, status=None, severity=None, hours=None))]
    fn list_alerts(
        &self,
        py: Python<'_>,
        model: Option<&str>,
        version: Option<&str>,
        status: Option<&str>,
        severity: Option<&str>,
        hours: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let open = status == Some("open");
        let filter = AlertFilter {
            model: model
                .map(ModelName::parse)
                .transpose()
                .map_err(errors::from_validation)?,
            version: version
                .map(Version::parse)
                .transpose()
                .map_err(errors::from_validation)?,
            status: match status {
                Some("open") | None => None,
                Some(text) => Some(validation(AlertStatus::parse(text))?),
            },
            severity: severity
                .map(Severity::parse)
                .transpose()
                .map_err(errors::from_validation)?,
            window: validation(parse_hours_or_all(hours.unwrap_or("24")))?
                .map(|hours| modelwatch_core::alerting::last_hours(hours, modelwatch::now())),
            ..AlertFilter::default()
        };
        let mut alerts = self
            .block(py, self.engine.list_alerts(&filter))
            .map_err(errors::from_engine)?;
        if open {
            alerts.retain(modelwatch_core::alerting::Alert::is_open);
        }
        let alerts: Vec<wire::Alert> = alerts.iter().map(Into::into).collect();
        to_python(py, &alerts)
    }

    /// Counts by status and severity (`GET /api/v1/alerts/summary`).
    #[pyo3(signature = (model=None, hours=None))]
    fn alert_summary(
        &self,
        py: Python<'_>,
        model: Option<&str>,
        hours: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let model = model
            .map(ModelName::parse)
            .transpose()
            .map_err(errors::from_validation)?;
        let hours = validation(parse_hours_or_all(hours.unwrap_or("24")))?;
        let now = modelwatch::now();
        let summary = self
            .block(py, self.engine.summary(model.as_ref(), hours, now))
            .map_err(errors::from_engine)?;
        to_python(py, &wire::AlertSummary::from(&summary))
    }

    /// Logs at most 10,000 predictions (dicts, as `POST /api/v1/predictions`' items), every
    /// one validated by the API's rules before any is stored; a bad one is named by its
    /// index and field (`predictions[3].score`).
    fn log_predictions(
        &self,
        py: Python<'_>,
        predictions: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let request: PredictionsRequest = wire_body("predictions", predictions)?;
        let predictions = validate_batch(
            "predictions",
            request.predictions,
            PredictionEvent::validate,
        )
        .map_err(errors::from_validation)?;
        let logged = self
            .block(
                py,
                self.engine.log_predictions(predictions, modelwatch::now()),
            )
            .map_err(errors::from_engine)?;
        to_python(
            py,
            &PredictionsLogged::of(&logged.written, logged.recomputed),
        )
    }

    /// Logs at most 10,000 labels (dicts, as `POST /api/v1/predictions/labels`' items),
    /// received now.
    fn log_labels(&self, py: Python<'_>, labels: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let request: LabelsRequest = wire_body("labels", labels)?;
        let labels = validate_batch("labels", request.labels, LabelEvent::validate)
            .map_err(errors::from_validation)?;
        let logged = self
            .block(py, self.engine.log_labels(labels, modelwatch::now()))
            .map_err(errors::from_engine)?;
        to_python(py, &LabelsLogged::of(&logged.written, logged.recomputed))
    }

    /// A model's prediction configuration (`GET /api/v1/models/{model}/prediction-config`).
    fn prediction_config(&self, py: Python<'_>, model: &str) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let model = validation(ModelName::parse(model))?;
        let stored = self
            .block(py, self.engine.prediction_config(&model))
            .map_err(errors::from_engine)?;
        let config = stored.unwrap_or_else(|| {
            modelwatch_engine::predictions::default_config(Task::Classification)
        });
        to_python(py, &PredictionConfig::of(&model, &config, stored.is_some()))
    }

    /// Sets the fields of `changes` (a dict, as the `PUT` route's body) of a model's
    /// prediction configuration; the others keep their value.
    fn set_prediction_config(
        &self,
        py: Python<'_>,
        model: &str,
        changes: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        self.check_open()?;
        let model = validation(ModelName::parse(model))?;
        let changes: PredictionConfigRequest = wire_value("config", python_to_json(changes)?)?;
        let config = self.block(py, async {
            let stored = self.engine.prediction_config(&model).await?;
            let config = changes.apply(stored)?;
            self.engine.set_prediction_config(&model, config).await?;
            Ok::<_, modelwatch_engine::EngineError>(config)
        });
        let config = config.map_err(errors::from_engine)?;
        to_python(py, &PredictionConfig::of(&model, &config, true))
    }

    /// Stores what is queued, stops the background writer and closes the store. Later
    /// calls raise; closing again does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let flushed = self.write(py, Vec::new());
        self.closed.store(true, Ordering::Release);
        self.stop.notify_one();
        let stores = &self.stores;
        self.block(py, async { stores.metrics.close().await })
            .map_err(errors::from_store)?;
        flushed
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // Not closed by Python: store what is queued, best effort.
            let store = Arc::clone(&self.stores.metrics);
            let buffer = Arc::clone(&self.buffer);
            let _ = self.runtime.block_on(async move {
                let _ = buffer.flush(&*store).await;
                store.close().await
            });
        }
    }
}

/// One sample from the seed's fields, validated as the store validates it (a custom
/// metric's declared range excepted: the store checks that when it writes).
fn build_sample(
    model: &str,
    version: &str,
    metric: &str,
    value: f64,
    timestamp: Option<&Bound<'_, PyAny>>,
    dataset: Option<&str>,
) -> PyResult<Sample> {
    let key = Database::key(model, version, metric)?;
    let timestamp = match timestamp {
        Some(value) => self::timestamp("timestamp", value)?,
        None => modelwatch::now(),
    };
    let dataset = validation(dataset.map(Dataset::parse_optional).transpose())?.flatten();
    if key.metric.default_definition().check_value(value).is_err() {
        return Err(errors::validation(
            "value",
            out_of_range(&key.metric, value),
        ));
    }
    Ok(Sample {
        model: key.model,
        version: key.version,
        metric: key.metric,
        value,
        timestamp,
        dataset,
    })
}

/// One series' samples from columns of values and epoch-ms timestamps.
fn build_columns(
    model: &str,
    version: &str,
    metric: &str,
    values: &Bound<'_, PyAny>,
    timestamps: &Bound<'_, PyAny>,
    dataset: Option<&str>,
) -> PyResult<Vec<Sample>> {
    let key = Database::key(model, version, metric)?;
    let values = column("values", values, f64::from_le_bytes)?;
    let timestamps = column("timestamps", timestamps, i64::from_le_bytes)?;
    if values.len() != timestamps.len() {
        return Err(errors::validation(
            "timestamps",
            format!("has {} items for {} values", timestamps.len(), values.len()),
        ));
    }
    let dataset = validation(dataset.map(Dataset::parse_optional).transpose())?.flatten();
    let definition = key.metric.default_definition();
    let mut samples = Vec::with_capacity(values.len());
    for (index, (&value, &ms)) in values.iter().zip(&timestamps).enumerate() {
        if definition.check_value(value).is_err() {
            return Err(errors::validation(
                format!("values[{index}]"),
                out_of_range(&key.metric, value),
            ));
        }
        let timestamp = Timestamp::from_millis(ms)
            .map_err(|e| errors::validation(format!("timestamps[{index}]"), e.to_string()))?;
        samples.push(Sample {
            model: key.model.clone(),
            version: key.version.clone(),
            metric: key.metric.clone(),
            value,
            timestamp,
            dataset: dataset.clone(),
        });
    }
    Ok(samples)
}

/// Validates one sample without storing it (the remote client queues its wire form).
#[pyfunction]
#[pyo3(signature = (model, version, metric, value, timestamp=None, dataset=None))]
pub fn validate_sample(
    py: Python<'_>,
    model: &str,
    version: &str,
    metric: &str,
    value: f64,
    timestamp: Option<&Bound<'_, PyAny>>,
    dataset: Option<&str>,
) -> PyResult<Py<PyAny>> {
    to_python(
        py,
        &wire::SampleInput::from(&build_sample(
            model, version, metric, value, timestamp, dataset,
        )?),
    )
}

/// Validates columns without storing them; returns the samples' wire forms.
#[pyfunction]
#[pyo3(signature = (model, version, metric, values, timestamps, dataset=None))]
pub fn validate_columns(
    py: Python<'_>,
    model: &str,
    version: &str,
    metric: &str,
    values: &Bound<'_, PyAny>,
    timestamps: &Bound<'_, PyAny>,
    dataset: Option<&str>,
) -> PyResult<Py<PyAny>> {
    let samples = build_columns(model, version, metric, values, timestamps, dataset)?;
    let samples: Vec<wire::SampleInput> = samples.iter().map(Into::into).collect();
    to_python(py, &samples)
}

/// A list of events as the API's body `{noun: [...]}`, a bad field named by its path
/// (`predictions[3].score`) as the API names it.
fn wire_body<T: serde::de::DeserializeOwned>(noun: &str, events: &Bound<'_, PyAny>) -> PyResult<T> {
    let mut body = serde_json::Map::new();
    body.insert(noun.to_owned(), python_to_json(events)?);
    wire_value(noun, serde_json::Value::Object(body))
}

fn wire_value<T: serde::de::DeserializeOwned>(
    whole: &str,
    value: serde_json::Value,
) -> PyResult<T> {
    from_json(value, whole).map_err(errors::from_validation)
}

/// The `[alerts]` settings from a dict of the core's `AlertConfig` fields, read as the
/// configuration file's section is.
fn alert_config_from(config: &Bound<'_, PyAny>) -> PyResult<AlertConfig> {
    serde_json::from_value::<modelwatch::config::RawAlerts>(python_to_json(config)?)
        .map(AlertConfig::from)
        .map_err(|e| errors::validation("config", e.to_string()))
}

/// The message of a value outside a built-in metric's range.
fn out_of_range(metric: &Metric, value: f64) -> String {
    match metric.default_definition().check_value(value) {
        Err(error) => error.message,
        Ok(()) => format!("{value} is not a valid {metric}"),
    }
}
