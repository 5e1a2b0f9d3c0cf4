//! The configuration: a TOML file, then `MODELWATCH_*` environment variables, then
//! command-line flags, each overriding the one before. No global configuration: the
//! binary loads it once and passes sections on.
//!
//! One discovery rule for every command (`serve`, `channels`, `notify`, `alerts`, …):
//! the file named by `--config FILE` or `MODELWATCH_CONFIG` (an error if it cannot be
//! read), else `modelwatch.toml` in the working directory when it exists, else none (the
//! defaults). `examples/modelwatch.toml` is a commented example of every section.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:7878"
//! max_body_bytes = 10485760
//! request_timeout = "30s"
//! max_connections = 1024    # served at once; one more is answered 503 and closed
//! header_timeout = "10s"    # to send a request's headers; also how long an idle connection stays
//! max_expensive_reads = 2   # long reads (series, history, compare, checks) at once; default: cores
//! max_queued_reads = 16     # waiting for a turn; one more is answered 429 (default: 8 × the above)
//! log_level = "info"        # or a filter: "info,tower_http=debug"
//! log_format = "text"       # or "json"
//! auth = "tokens"           # or "off": whether the API and dashboard require a token
//!
//! [store]
//! db = "/var/lib/modelwatch/modelwatch.db"   # or postgres://…, influxdb://…, prometheus://…
//! alerts_db = "/var/lib/modelwatch/alerts.db" # rules, alerts, silences, outbox, tokens,
//!                           # predictions; default: with the samples, or beside this file
//!                           # (modelwatch-alerts.db) when `db` keeps only samples
//!
//! [evaluation]
//! interval = "60s"          # every enabled rule, this often
//! debounce = "1s"           # a series' rules, this long after new samples arrive
//!
//! [alerts]                  # the seed's global alert configuration
//! enable_alerts = true
//! max_alerts_per_hour = 10
//! max_alerts_per_model_per_hour = 5
//! min_severity_to_notify = "medium"
//!
//! [limits]                  # how many series there may be (a batch past one is refused, 422)
//! new_series_per_request = 1000
//! series_per_model = 10000
//! series = 100000
//! metrics_series = 1000     # /metrics exports the latest value of this many series at most
//!
//! [remote_write]            # which labels of a Prometheus remote write (POST /api/v1/write)
//! model = "model"           # name the model, version, metric and dataset (these are the
//! version = "version"       # defaults; a series without a metric label takes its
//! metric = "metric"         # metric name, __name__)
//! dataset = "dataset"
//!
//! [influx.wide]              # InfluxDB points (/write, /api/v2/write, /query): modelwatch's
//! measurement = "model_metrics"  # own shape, every field a metric (these are the defaults)
//! model = "model"
//! version = "version"
//! dataset = "dataset"
//!
//! [influx.narrow]            # the product description's shape: a tag names the metric
//! measurement = "performance_metric"
//! model = "model_name"
//! version = "model_version"
//! metric = "metric_type"
//! dataset = "dataset"
//! field = "value"
//!
//! [retention]               # what `serve` prunes at start-up and hourly
//! samples = "90d"           # default: kept forever
//! notifications = "30d"     # finished (delivered, failed, skipped) outbox rows; or "forever"
//! predictions = "30d"       # raw prediction events, once their window is final; default forever
//!
//! [notify]                  # the delivery worker (modelwatch-notify's RawNotify)
//! dashboard_url = "https://modelwatch.example.com"
//!
//! [channels.ops-hook]       # one table per channel (modelwatch-notify's RawChannel)
//! kind = "webhook"
//! url = "https://hooks.example.com/modelwatch"
//! ```
//!
//! Every section has a raw form (what the file says, `deny_unknown_fields`, everything
//! optional) and a validated form handed to constructors. Sections are independent: a
//! new one (say `[alerts]` or `[channels.*]`) adds a raw struct, a field of [`RawConfig`],
//! a validated struct and one line in [`RawConfig::validate`]. Errors name the key
//! (`server.listen`, or the environment variable / flag it came from).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use modelwatch_core::alerting::{AlertConfig, Severity};
use serde::Deserialize;

/// A configuration error naming the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause follows in the error chain (`…: No such file or directory`), once.
    #[error("cannot read the configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax, unknown keys and values the section's own types refuse; toml's message
    /// names the key and shows the line.
    #[error("the configuration file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("configuration key {key}: {message}")]
    Key { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The `[alerts]` section as written: the core's [`AlertConfig`] by the seed's names, each
/// optional (an absent one keeps the default). The Python package reads its `config`
/// dict with it too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    enable_alerts: Option<bool>,
    max_alerts_per_hour: Option<u32>,
    max_alerts_per_model_per_hour: Option<u32>,
    #[serde(default, deserialize_with = "deserialize_severity")]
    min_severity_to_notify: Option<Severity>,
}

/// A severity by its name (`low`, `medium`, `high`, `critical`), refused with the names
/// it may take.
fn deserialize_severity<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Severity>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Severity::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl From<RawAlerts> for AlertConfig {
    fn from(raw: RawAlerts) -> Self {
        let default = AlertConfig::default();
        AlertConfig {
            enable_alerts: raw.enable_alerts.unwrap_or(default.enable_alerts),
            max_alerts_per_hour: raw
                .max_alerts_per_hour
                .unwrap_or(default.max_alerts_per_hour),
            max_alerts_per_model_per_hour: raw
                .max_alerts_per_model_per_hour
                .unwrap_or(default.max_alerts_per_model_per_hour),
            min_severity_to_notify: raw
                .min_severity_to_notify
                .unwrap_or(default.min_severity_to_notify),
        }
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub evaluation: RawEvaluation,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub remote_write: RawRemoteWrite,
    #[serde(default)]
    pub influx: RawInflux,
    /// `[channels.NAME]`: the notify crate owns the tables and their validation.
    #[serde(default)]
    pub channels: modelwatch_notify::RawChannels,
    #[serde(default)]
    pub notify: modelwatch_notify::RawNotify,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_body_bytes: Option<u64>,
    /// e.g. "30s", "500ms", "2m".
    pub request_timeout: Option<String>,
    /// Connections served at once (default 1024).
    pub max_connections: Option<u64>,
    /// Time a client has to send a request's headers, and that an idle kept-alive
    /// connection stays open (default 10s).
    pub header_timeout: Option<String>,
    /// Expensive reads running at once (default: the number of cores, at least 2).
    pub max_expensive_reads: Option<u64>,
    /// Expensive reads waiting for a turn (default: 8 × max_expensive_reads).
    pub max_queued_reads: Option<u64>,
    /// A level (error, warn, info, debug, trace) or a tracing filter
    /// (`info,modelwatch_http=debug`).
    pub log_level: Option<String>,
    /// text or json
    pub log_format: Option<String>,
    /// off or tokens.
    pub auth: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// As `--db`: a file path, `sqlite:PATH`, `postgres://…`, `influxdb://…`,
    /// `prometheus://…` or `memory`.
    pub db: Option<String>,
    /// As `--alerts-db`: where the alerting state lives when not with the samples.
    pub alerts_db: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvaluation {
    /// How often every enabled rule is evaluated (default 60s).
    pub interval: Option<String>,
    /// How long after new samples of a series its rules are evaluated (default 1s).
    pub debounce: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// How long samples are kept, e.g. "90d"; "forever" (the default) keeps them all.
    pub samples: Option<String>,
    /// How long finished notifications are kept (default "30d"); "forever" keeps them.
    pub notifications: Option<String>,
    /// How long raw prediction events are kept (and longer, until their window is
    /// final); "forever" (the default) keeps them. Their windows' metrics stay.
    pub predictions: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// New series one request (or import batch) may create (default 1000).
    pub new_series_per_request: Option<u64>,
    /// Series one model may have (default 10000).
    pub series_per_model: Option<u64>,
    /// Series in the store (default 100000).
    pub series: Option<u64>,
    /// Series whose latest value `/metrics` exports (default 1000; 0: none).
    pub metrics_series: Option<u64>,
}

/// How many series there may be, and how many `/metrics` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub series: modelwatch_store::SeriesLimits,
    pub metrics_series: usize,
}

impl RawLimits {
    fn validate(self) -> Result<LimitsConfig, ConfigError> {
        let defaults = modelwatch_store::SeriesLimits::default();
        let count = |key: &str, value: Option<u64>, default: usize, least: u64| match value {
            None => Ok(default),
            Some(n) if n >= least => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Some(n) => Err(invalid(key, format!("must be at least {least}, not {n}"))),
        };
        Ok(LimitsConfig {
            series: modelwatch_store::SeriesLimits {
                new_per_batch: count(
                    "limits.new_series_per_request",
                    self.new_series_per_request,
                    defaults.new_per_batch,
                    1,
                )?,
                per_model: count(
                    "limits.series_per_model",
                    self.series_per_model,
                    defaults.per_model,
                    1,
                )?,
                total: count("limits.series", self.series, defaults.total, 1)?,
            },
            metrics_series: count(
                "limits.metrics_series",
                self.metrics_series,
                modelwatch_http::Limits::default().metrics_series,
                0,
            )?,
        })
    }
}

/// The labels of a Prometheus remote write naming a sample's model, version, metric and
/// dataset (modelwatch-http's `LabelMapping`); each defaults to its own name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteWrite {
    pub model: Option<String>,
    pub version: Option<String>,
    /// The metric's label; a series without it takes its metric name (`__name__`).
    pub metric: Option<String>,
    pub dataset: Option<String>,
}

impl RawRemoteWrite {
    fn validate(self) -> Result<modelwatch_http::remote_write::LabelMapping, ConfigError> {
        let defaults = modelwatch_http::remote_write::LabelMapping::default();
        // Prometheus's label-name syntax: [a-zA-Z_][a-zA-Z0-9_]*.
        let label = |key: &str, value: Option<String>, default: String| match value {
            None => Ok(default),
            Some(name)
                if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok(name)
            }
            Some(name) => Err(invalid(
                key,
                format!("{name:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            )),
        };
        Ok(modelwatch_http::remote_write::LabelMapping {
            model: label("remote_write.model", self.model, defaults.model)?,
            version: label("remote_write.version", self.version, defaults.version)?,
            metric: label("remote_write.metric", self.metric, defaults.metric)?,
            dataset: label("remote_write.dataset", self.dataset, defaults.dataset)?,
        })
    }
}

/// How InfluxDB points map to samples (modelwatch-http's `InfluxMapping`): the names of
/// the two shapes' measurements, tags and field; each defaults to the mapping's own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInflux {
    #[serde(default)]
    pub wide: RawInfluxWide,
    #[serde(default)]
    pub narrow: RawInfluxNarrow,
}

/// modelwatch's own shape: every field is a metric.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInfluxWide {
    pub measurement: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub dataset: Option<String>,
}

/// The product description's shape: a tag names the metric, one field holds the value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInfluxNarrow {
    pub measurement: Option<String>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub metric: Option<String>,
    pub dataset: Option<String>,
    pub field: Option<String>,
}

impl RawInflux {
    fn validate(self) -> Result<modelwatch_http::line_protocol::InfluxMapping, ConfigError> {
        use modelwatch_http::line_protocol::{InfluxMapping, NarrowShape, WideShape};
        let defaults = InfluxMapping::default();
        // A name the line protocol can carry without escapes, and InfluxQL without quotes
        // going wrong: no space, comma, equals sign, quote or backslash.
        let name = |key: &str, value: Option<String>, default: &str| match value {
            None => Ok(default.to_owned()),
            Some(name)
                if !name.is_empty()
                    && !name
                        .chars()
                        .any(|c| c.is_whitespace() || ",=\"'\\".contains(c)) =>
            {
                Ok(name)
            }
            Some(name) => Err(invalid(
                key,
                format!(
                    "{name:?} is not a measurement, tag or field name (not empty; no space, \
                     comma, equals sign, quote or backslash)"
                ),
            )),
        };
        let (wide, narrow) = (self.wide, self.narrow);
        let mapping = InfluxMapping {
            wide: WideShape {
                measurement: name(
                    "influx.wide.measurement",
                    wide.measurement,
                    &defaults.wide.measurement,
                )?,
                model: name("influx.wide.model", wide.model, &defaults.wide.model)?,
                version: name("influx.wide.version", wide.version, &defaults.wide.version)?,
                dataset: name("influx.wide.dataset", wide.dataset, &defaults.wide.dataset)?,
            },
            narrow: NarrowShape {
                measurement: name(
                    "influx.narrow.measurement",
                    narrow.measurement,
                    &defaults.narrow.measurement,
                )?,
                model: name("influx.narrow.model", narrow.model, &defaults.narrow.model)?,
                version: name(
                    "influx.narrow.version",
                    narrow.version,
                    &defaults.narrow.version,
                )?,
                metric: name(
                    "influx.narrow.metric",
                    narrow.metric,
                    &defaults.narrow.metric,
                )?,
                dataset: name(
                    "influx.narrow.dataset",
                    narrow.dataset,
                    &defaults.narrow.dataset,
                )?,
                field: name("influx.narrow.field", narrow.field, &defaults.narrow.field)?,
            },
        };
        if mapping.wide.measurement == mapping.narrow.measurement {
            return Err(invalid(
                "influx.narrow.measurement",
                format!(
                    "{:?} is also influx.wide.measurement; the two shapes need two measurements",
                    mapping.narrow.measurement
                ),
            ));
        }
        let wide_tags = [
            &mapping.wide.model,
            &mapping.wide.version,
            &mapping.wide.dataset,
        ];
        if wide_tags[0] == wide_tags[1]
            || wide_tags[0] == wide_tags[2]
            || wide_tags[1] == wide_tags[2]
        {
            return Err(invalid(
                "influx.wide",
                "model, version and dataset need three different tags",
            ));
        }
        let narrow_tags = [
            &mapping.narrow.model,
            &mapping.narrow.version,
            &mapping.narrow.metric,
            &mapping.narrow.dataset,
        ];
        let distinct: std::collections::BTreeSet<_> = narrow_tags.iter().collect();
        if distinct.len() < narrow_tags.len() {
            return Err(invalid(
                "influx.narrow",
                "model, version, metric and dataset need four different tags",
            ));
        }
        Ok(mapping)
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub alerts: AlertConfig,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub evaluation: EvaluationConfig,
    pub retention: RetentionConfig,
    pub limits: LimitsConfig,
    /// The labels a Prometheus remote write is read by.
    pub remote_write: modelwatch_http::remote_write::LabelMapping,
    /// How InfluxDB points map to samples.
    pub influx: modelwatch_http::line_protocol::InfluxMapping,
    /// Channels and delivery policy, validated by the notify crate.
    pub notify: modelwatch_notify::NotifyConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub connections: modelwatch_http::server::ConnectionLimits,
    pub reads: modelwatch_http::admission::ReadLimits,
    pub log_level: String,
    pub log_format: LogFormat,
    /// `None`: not configured, which `serve` accepts only while no token exists.
    pub auth: Option<AuthMode>,
}

/// Whether the server requires API tokens: chosen explicitly, never inferred from
/// whether tokens exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request is served without a token (on loopback by default).
    Off,
    /// Every request but `/healthz`, the dashboard's files and sign-in needs a token.
    Tokens,
}

impl AuthMode {
    pub fn parse(text: &str) -> Result<AuthMode, String> {
        match text.trim() {
            "off" => Ok(AuthMode::Off),
            "tokens" => Ok(AuthMode::Tokens),
            other => Err(format!("{other:?} is not off or tokens")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `None`: the default database in the user's data directory.
    pub db: Option<String>,
    /// Rules, alerts, silences, the outbox, tokens and predictions; `None`: with the
    /// samples, or a default file when `db` keeps only samples (see [`StoreConfig::locations`]).
    pub alerts_db: Option<String>,
    /// The directory of the configuration file read, if one was.
    pub config_dir: Option<PathBuf>,
}

/// The file name of the alerting state's default SQLite database, beside the
/// configuration file or in the user's data directory.
pub const DEFAULT_ALERTS_FILE: &str = "modelwatch-alerts.db";

impl StoreConfig {
    /// Where the samples live, and the alerting state when elsewhere. A store that keeps
    /// only samples (InfluxDB) without an `alerts_db` gets an SQLite file
    /// [`DEFAULT_ALERTS_FILE`] beside the configuration file read, else in the user's
    /// data directory (`modelwatch/`, beside the default database).
    pub fn locations(&self) -> anyhow::Result<(String, Option<String>)> {
        let db = match &self.db {
            Some(location) => location.clone(),
            None => default_database()?,
        };
        if self.alerts_db.is_some() || modelwatch_store::Backend::of(&db).is_relational() {
            return Ok((db, self.alerts_db.clone()));
        }
        let alerts = match &self.config_dir {
            Some(dir) => dir.join(DEFAULT_ALERTS_FILE),
            None => {
                use anyhow::Context as _;
                dirs::data_dir()
                    .context("no data directory for this user; pass --alerts-db PATH")?
                    .join("modelwatch")
                    .join(DEFAULT_ALERTS_FILE)
            }
        };
        if let Some(parent) = alerts.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        Ok((db, Some(alerts.to_string_lossy().into_owned())))
    }
}

#[derive(Debug, Clone)]
pub struct EvaluationConfig {
    pub interval: Duration,
    pub debounce: Duration,
}

/// How long `serve` keeps what it would otherwise keep forever; `None` keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    pub samples: Option<Duration>,
    /// Outbox rows in a final state (delivered, failed, skipped); pending rows always stay.
    pub notifications: Option<Duration>,
    /// Raw prediction events, dropped once their window is final and this old; the
    /// metrics computed from them stay.
    pub predictions: Option<Duration>,
}

impl Default for RetentionConfig {
    /// Samples are a model's history: never dropped unless asked. Finished notifications
    /// are only a delivery log: a month of it.
    fn default() -> Self {
        RetentionConfig {
            samples: None,
            notifications: Some(Duration::from_secs(30 * 86_400)),
            predictions: None,
        }
    }
}

/// The shortest retention accepted. A bare number is seconds, so "90" meant as days
/// would otherwise delete all but the last minute and a half of history.
pub const MIN_RETENTION: Duration = Duration::from_secs(3_600);

/// Parses a retention period ("90d", "720h"): at least [`MIN_RETENTION`].
pub fn parse_retention(text: &str) -> Result<Duration, String> {
    let period = parse_duration(text)?;
    if period < MIN_RETENTION {
        return Err(format!(
            "{text:?} is shorter than the 1h minimum (a bare number counts seconds; use e.g. 90d)"
        ));
    }
    Ok(period)
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub db: Option<String>,
    pub alerts_db: Option<String>,
    pub log_level: Option<String>,
    pub sample_retention: Option<String>,
    pub notification_retention: Option<String>,
    pub prediction_retention: Option<String>,
    pub auth: Option<String>,
}

/// The server's and the channels' durations are written alike ("30s", "500ms", "2m", "1h").
pub use modelwatch_notify::config::parse_duration;

impl RawConfig {
    /// Parses TOML text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Invalid {
            path: path.to_owned(),
            message: error.to_string(),
        })
    }

    /// Reads a file; a missing file is an error only when `required` (it was named).
    pub fn from_file(path: &Path, required: bool) -> Result<RawConfig, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => RawConfig::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(RawConfig::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Applies `MODELWATCH_*` variables; `lookup` is `std::env::var` in the binary.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = lookup("MODELWATCH_LISTEN") {
            self.server.listen = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_MAX_BODY_BYTES") {
            self.server.max_body_bytes = Some(v.trim().parse().map_err(|_| {
                invalid(
                    "MODELWATCH_MAX_BODY_BYTES",
                    format!("{v:?} is not a whole number"),
                )
            })?);
        }
        if let Some(v) = lookup("MODELWATCH_REQUEST_TIMEOUT") {
            self.server.request_timeout = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_LOG_LEVEL") {
            self.server.log_level = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_LOG_FORMAT") {
            self.server.log_format = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_AUTH") {
            self.server.auth = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_DB") {
            self.store.db = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_ALERTS_DB") {
            self.store.alerts_db = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_EVAL_INTERVAL") {
            self.evaluation.interval = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_EVAL_DEBOUNCE") {
            self.evaluation.debounce = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_SAMPLE_RETENTION") {
            self.retention.samples = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_NOTIFICATION_RETENTION") {
            self.retention.notifications = Some(v);
        }
        if let Some(v) = lookup("MODELWATCH_PREDICTION_RETENTION") {
            self.retention.predictions = Some(v);
        }
        Ok(())
    }

    pub fn apply_flags(&mut self, flags: &Overrides) {
        if let Some(v) = &flags.listen {
            self.server.listen = Some(v.clone());
        }
        if let Some(v) = &flags.db {
            self.store.db = Some(v.clone());
        }
        if let Some(v) = &flags.alerts_db {
            self.store.alerts_db = Some(v.clone());
        }
        if let Some(v) = &flags.log_level {
            self.server.log_level = Some(v.clone());
        }
        if let Some(v) = &flags.sample_retention {
            self.retention.samples = Some(v.clone());
        }
        if let Some(v) = &flags.notification_retention {
            self.retention.notifications = Some(v.clone());
        }
        if let Some(v) = &flags.prediction_retention {
            self.retention.predictions = Some(v.clone());
        }
        if let Some(v) = &flags.auth {
            self.server.auth = Some(v.clone());
        }
    }

    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(Config {
            alerts: self.alerts.into(),
            server: self.server.validate()?,
            store: StoreConfig {
                db: self.store.db,
                alerts_db: self.store.alerts_db,
                config_dir: None,
            },
            evaluation: self.evaluation.validate()?,
            retention: self.retention.validate()?,
            limits: self.limits.validate()?,
            remote_write: self.remote_write.validate()?,
            influx: self.influx.validate()?,
            // The notify crate's error already names the key (`channels.NAME.url`).
            notify: modelwatch_notify::NotifyConfig::from_raw(self.notify, self.channels).map_err(
                |e| ConfigError::Key {
                    key: e.key,
                    message: e.message,
                },
            )?,
        })
    }
}

fn duration(key: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|message| invalid(key, message)),
    }
}

impl RawServer {
    fn validate(self) -> Result<ServerConfig, ConfigError> {
        let listen = self.listen.as_deref().unwrap_or("127.0.0.1:7878");
        let listen: SocketAddr = listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("{listen:?} is not an address:port such as 127.0.0.1:7878"),
            )
        })?;
        let max_body_bytes = self.max_body_bytes.unwrap_or(10 * 1024 * 1024);
        if max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        let request_timeout = duration(
            "server.request_timeout",
            self.request_timeout.as_deref(),
            Duration::from_secs(30),
        )?;
        if request_timeout.is_zero() {
            return Err(invalid("server.request_timeout", "must be positive"));
        }
        let defaults = modelwatch_http::server::ConnectionLimits::default();
        let max_connections = match self.max_connections {
            None => defaults.max_connections,
            Some(n) if (1..=1_000_000).contains(&n) => n as usize,
            Some(n) => {
                return Err(invalid(
                    "server.max_connections",
                    format!("must be 1 to 1000000, not {n}"),
                ))
            }
        };
        let header_timeout = duration(
            "server.header_timeout",
            self.header_timeout.as_deref(),
            defaults.header_timeout,
        )?;
        if header_timeout.is_zero() {
            return Err(invalid("server.header_timeout", "must be positive"));
        }
        let count = |key: &str, value: Option<u64>, default: usize| match value {
            None => Ok(default),
            Some(n) if (1..=100_000).contains(&n) => Ok(n as usize),
            Some(n) => Err(invalid(key, format!("must be 1 to 100000, not {n}"))),
        };
        let concurrent = count(
            "server.max_expensive_reads",
            self.max_expensive_reads,
            modelwatch_http::admission::ReadLimits::default().concurrent,
        )?;
        let reads = modelwatch_http::admission::ReadLimits {
            concurrent,
            queued: count(
                "server.max_queued_reads",
                self.max_queued_reads,
                8 * concurrent,
            )?,
        };
        let log_format = match self.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "server.log_format",
                    format!("{other:?} is not text or json"),
                ))
            }
        };
        let auth = self
            .auth
            .as_deref()
            .map(AuthMode::parse)
            .transpose()
            .map_err(|message| invalid("server.auth", message))?;
        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            return Err(invalid("server.log_level", e.to_string()));
        }
        Ok(ServerConfig {
            listen,
            max_body_bytes: usize::try_from(max_body_bytes)
                .map_err(|_| invalid("server.max_body_bytes", "too large"))?,
            request_timeout,
            connections: modelwatch_http::server::ConnectionLimits {
                max_connections,
                header_timeout,
            },
            reads,
            log_level,
            log_format,
            auth,
        })
    }
}

impl RawEvaluation {
    fn validate(self) -> Result<EvaluationConfig, ConfigError> {
        let interval = duration(
            "evaluation.interval",
            self.interval.as_deref(),
            Duration::from_secs(60),
        )?;
        if interval < Duration::from_secs(1) {
            return Err(invalid("evaluation.interval", "must be at least 1s"));
        }
        let debounce = duration(
            "evaluation.debounce",
            self.debounce.as_deref(),
            Duration::from_secs(1),
        )?;
        Ok(EvaluationConfig { interval, debounce })
    }
}

impl RawRetention {
    fn validate(self) -> Result<RetentionConfig, ConfigError> {
        let defaults = RetentionConfig::default();
        let period = |key: &str, text: Option<String>, default: Option<Duration>| match text
            .as_deref()
            .map(str::trim)
        {
            None => Ok(default),
            Some("forever") => Ok(None),
            Some(text) => parse_retention(text)
                .map(Some)
                .map_err(|message| invalid(key, message)),
        };
        Ok(RetentionConfig {
            samples: period("retention.samples", self.samples, defaults.samples)?,
            notifications: period(
                "retention.notifications",
                self.notifications,
                defaults.notifications,
            )?,
            predictions: period(
                "retention.predictions",
                self.predictions,
                defaults.predictions,
            )?,
        })
    }
}

impl Config {
    /// Parses and validates TOML text alone (no environment, no flags).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        RawConfig::parse(text, path)?.validate()
    }
}

/// The file that discovery picks (see the module docs), when there is one to read.
pub const DEFAULT_FILE: &str = "modelwatch.toml";

/// File, then environment, then flags; validated. Without a named file,
/// `modelwatch.toml` in the working directory is read when it exists. Every command
/// loads its configuration through this.
pub fn load(
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let path = file.unwrap_or(Path::new(DEFAULT_FILE));
    let mut raw = RawConfig::from_file(path, file.is_some())?;
    raw.apply_env(env)?;
    raw.apply_flags(flags);
    let mut config = raw.validate()?;
    if path.is_file() {
        config.store.config_dir = Some(match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        });
    }
    Ok(config)
}

/// The database used without `--db` or `MODELWATCH_DB`: `modelwatch/modelwatch.db` in
/// the user's data directory.
pub fn default_database() -> anyhow::Result<String> {
    use anyhow::Context as _;
    let base = dirs::data_dir().context("no data directory for this user; pass --db PATH")?;
    Ok(base
        .join("modelwatch")
        .join("modelwatch.db")
        .to_string_lossy()
        .into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn alerts_section_takes_the_seed_names_and_defaults() {
        let config = Config::parse(
            "[alerts]\nmax_alerts_per_hour = 3\nmin_severity_to_notify = \"high\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.alerts.max_alerts_per_hour, 3);
        assert_eq!(config.alerts.max_alerts_per_model_per_hour, 5);
        assert_eq!(config.alerts.min_severity_to_notify, Severity::High);
        assert_eq!(
            Config::parse("", Path::new("c.toml")).unwrap().alerts,
            AlertConfig::default()
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_with_the_file_named() {
        for text in [
            "[alerts]\nmax_alerts = 3\n",
            "[alert]\n",
            "[alerts]\nmin_severity_to_notify = \"urgent\"\n",
            "[alerts]\nmax_alerts_per_hour = -1\n",
        ] {
            let error = Config::parse(text, Path::new("c.toml")).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("the configuration file c.toml is invalid"),
                "{error}"
            );
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_listen_on_loopback() {
        let config = RawConfig::default().validate().expect("valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(config.server.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(config.evaluation.interval, Duration::from_secs(60));
        assert_eq!(config.server.connections.max_connections, 1024);
        assert_eq!(
            config.server.connections.header_timeout,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_remote_write_label_mapping_is_read_and_checked() {
        let config = Config::parse(
            "[remote_write]\nmodel = \"model_name\"\nversion = \"model_version\"\nmetric = \"metric_type\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.remote_write.model, "model_name");
        assert_eq!(config.remote_write.version, "model_version");
        assert_eq!(config.remote_write.metric, "metric_type");
        assert_eq!(config.remote_write.dataset, "dataset");
        let defaults = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(
            defaults.remote_write,
            modelwatch_http::remote_write::LabelMapping::default()
        );
        let error = Config::parse(
            "[remote_write]\nmodel = \"model-name\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("remote_write.model"),
            "{error:#}"
        );
    }

    #[test]
    fn the_influx_mapping_is_read_and_checked() {
        let parse = |text: &str| Config::parse(text, Path::new("c.toml"));
        let config = parse(
            "[influx.narrow]\nmeasurement = \"perf\"\nmetric = \"kind\"\n[influx.wide]\nmodel = \"name\"\n",
        )
        .expect("valid");
        assert_eq!(config.influx.narrow.measurement, "perf");
        assert_eq!(config.influx.narrow.metric, "kind");
        assert_eq!(config.influx.narrow.model, "model_name");
        assert_eq!(config.influx.wide.model, "name");
        assert_eq!(config.influx.wide.measurement, "model_metrics");
        for (text, key) in [
            ("[influx.wide]\nmodel = \"a b\"\n", "influx.wide.model"),
            (
                "[influx.narrow]\nmeasurement = \"model_metrics\"\n",
                "influx.narrow.measurement",
            ),
            (
                "[influx.narrow]\nmetric = \"model_name\"\n",
                "influx.narrow",
            ),
        ] {
            let error = parse(text).expect_err(text);
            assert!(format!("{error:#}").contains(key), "{text}: {error:#}");
        }
    }

    #[test]
    fn series_limits_are_read_and_checked() {
        let config = Config::parse(
            "[limits]\nnew_series_per_request = 5\nseries_per_model = 50\nseries = 500\nmetrics_series = 0\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(
            config.limits.series,
            modelwatch_store::SeriesLimits {
                new_per_batch: 5,
                per_model: 50,
                total: 500
            }
        );
        assert_eq!(config.limits.metrics_series, 0);
        let defaults = Config::parse("", Path::new("c.toml")).unwrap().limits;
        assert_eq!(defaults.series, modelwatch_store::SeriesLimits::default());
        assert_eq!(defaults.metrics_series, 1000);
        let error = Config::parse("[limits]\nseries = 0\n", Path::new("c.toml")).unwrap_err();
        assert!(format!("{error:#}").contains("limits.series"), "{error:#}");
    }

    #[test]
    fn connection_limits_are_read_and_checked() {
        let config = Config::parse(
            "[server]\nmax_connections = 50\nheader_timeout = \"2s\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.server.connections.max_connections, 50);
        assert_eq!(
            config.server.connections.header_timeout,
            Duration::from_secs(2)
        );
        for (text, key) in [
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            (
                "[server]\nheader_timeout = \"0s\"\n",
                "server.header_timeout",
            ),
        ] {
            let error = Config::parse(text, Path::new("c.toml")).unwrap_err();
            assert!(format!("{error:#}").contains(key), "{error:#}");
        }
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:1\"\nlog_level = \"debug\"\n[store]\ndb = \"file.db\"\n",
        )
        .expect("write");
        let env = |key: &str| match key {
            "MODELWATCH_LISTEN" => Some("127.0.0.1:2".to_owned()),
            "MODELWATCH_DB" => Some("env.db".to_owned()),
            _ => None,
        };
        let flags = Overrides {
            listen: Some("127.0.0.1:3".into()),
            ..Overrides::default()
        };
        let config = load(Some(&path), env, &flags).expect("valid");
        assert_eq!(config.server.listen.port(), 3);
        assert_eq!(config.store.db.as_deref(), Some("env.db"));
        assert_eq!(config.server.log_level, "debug");
    }

    #[test]
    fn the_alerts_db_is_with_the_samples_unless_they_live_in_a_store_of_samples_only() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[store]\ndb = \"influxdb://127.0.0.1:8086/mw\"\n").expect("write");
        let none = |_: &str| None;
        let config = load(Some(&path), none, &Overrides::default()).expect("valid");
        let (db, alerts) = config.store.locations().expect("locations");
        assert_eq!(db, "influxdb://127.0.0.1:8086/mw");
        assert_eq!(
            alerts.map(PathBuf::from),
            Some(dir.path().join(DEFAULT_ALERTS_FILE)),
            "beside the configuration file"
        );

        let env = |key: &str| (key == "MODELWATCH_ALERTS_DB").then(|| "env-alerts.db".to_owned());
        let config = load(Some(&path), env, &Overrides::default()).expect("valid");
        assert_eq!(
            config.store.locations().expect("locations").1.as_deref(),
            Some("env-alerts.db")
        );
        let flags = Overrides {
            alerts_db: Some("flag-alerts.db".into()),
            db: Some("samples.db".into()),
            ..Overrides::default()
        };
        let config = load(Some(&path), env, &flags).expect("valid");
        assert_eq!(
            config.store.locations().expect("locations"),
            ("samples.db".to_owned(), Some("flag-alerts.db".to_owned()))
        );
        // A relational --db keeps everything, as before.
        let flags = Overrides {
            db: Some("samples.db".into()),
            ..Overrides::default()
        };
        let config = load(Some(&path), none, &flags).expect("valid");
        assert_eq!(
            config.store.locations().expect("locations"),
            ("samples.db".to_owned(), None)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[server]\nlisten = \"everywhere\"\n").expect("write");
        let error = load(Some(&path), no_env, &Overrides::default()).expect_err("bad");
        assert!(error.to_string().contains("server.listen"), "{error}");

        std::fs::write(&path, "[server]\nlisen = \"127.0.0.1:1\"\n").expect("write");
        let error = load(Some(&path), no_env, &Overrides::default()).expect_err("unknown");
        assert!(error.to_string().contains("lisen"), "{error}");

        std::fs::write(&path, "[evaluation]\ninterval = \"soon\"\n").expect("write");
        let error = load(Some(&path), no_env, &Overrides::default()).expect_err("bad");
        assert!(error.to_string().contains("evaluation.interval"), "{error}");
    }

    #[test]
    fn channels_and_notify_sections_are_validated_with_the_key_named() {
        let config = Config::parse(
            "[notify]\nmax_attempts = 3\n[channels.ops-hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"s3cret\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.notify.policy.max_attempts, 3);
        let hook = config.notify.channel("ops-hook").expect("channel");
        assert_eq!(hook.kind.name(), "webhook");
        assert!(!format!("{:?}", hook.summary()).contains("s3cret"));

        let error = Config::parse(
            "[channels.ops-hook]\nkind = \"webhook\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("channels.ops-hook.url"),
            "{error}"
        );
        let error = Config::parse("[notify]\nmax_attempts = 0\n", Path::new("c.toml")).unwrap_err();
        assert!(error.to_string().contains("notify.max_attempts"), "{error}");
        let error = Config::parse(
            "[channels.x]\nkind = \"slack\"\nurll = \"u\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("channels.x: unknown field `urll`"),
            "{error}"
        );
    }

    #[test]
    fn retention_keeps_samples_forever_unless_configured() {
        let defaults = Config::parse("", Path::new("c.toml")).unwrap().retention;
        assert_eq!(defaults.samples, None);
        assert_eq!(defaults.predictions, None);
        assert_eq!(
            defaults.notifications,
            Some(Duration::from_secs(30 * 86_400))
        );
        let config = Config::parse(
            "[retention]\nsamples = \"90d\"\nnotifications = \"forever\"\npredictions = \"14d\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(
            config.retention,
            RetentionConfig {
                samples: Some(Duration::from_secs(90 * 86_400)),
                notifications: None,
                predictions: Some(Duration::from_secs(14 * 86_400)),
            }
        );
        let env = |key: &str| (key == "MODELWATCH_SAMPLE_RETENTION").then(|| "48h".to_owned());
        let flags = Overrides {
            notification_retention: Some("7d".into()),
            ..Overrides::default()
        };
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[retention]\nsamples = \"90d\"\n").expect("write");
        let config = load(Some(&path), env, &flags).expect("valid");
        assert_eq!(
            config.retention.samples,
            Some(Duration::from_secs(48 * 3_600))
        );
        assert_eq!(
            config.retention.notifications,
            Some(Duration::from_secs(7 * 86_400))
        );
    }

    #[test]
    fn a_retention_too_short_to_be_meant_is_refused() {
        for text in ["90", "30m", "0s"] {
            let error = Config::parse(
                &format!("[retention]\nsamples = \"{text}\"\n"),
                Path::new("c.toml"),
            )
            .unwrap_err();
            assert!(error.to_string().contains("retention.samples"), "{error}");
        }
        assert!(parse_retention("1h").is_ok());
    }

    #[test]
    fn auth_is_off_or_tokens_from_file_environment_or_flag() {
        let config = Config::parse("[server]\nauth = \"tokens\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(config.server.auth, Some(AuthMode::Tokens));
        assert_eq!(
            Config::parse("", Path::new("c.toml")).unwrap().server.auth,
            None
        );
        let error = Config::parse("[server]\nauth = \"on\"\n", Path::new("c.toml")).unwrap_err();
        assert!(error.to_string().contains("server.auth"), "{error}");
        let env = |key: &str| (key == "MODELWATCH_AUTH").then(|| "tokens".to_owned());
        let flags = Overrides {
            auth: Some("off".into()),
            ..Overrides::default()
        };
        assert_eq!(
            load(None, env, &Overrides::default()).unwrap().server.auth,
            Some(AuthMode::Tokens)
        );
        assert_eq!(
            load(None, env, &flags).unwrap().server.auth,
            Some(AuthMode::Off)
        );
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let config = Config::parse(
            include_str!("../../../examples/modelwatch.toml"),
            Path::new("examples/modelwatch.toml"),
        )
        .unwrap();
        assert!(config.notify.channel("ops").is_some());
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:7878");
    }

    #[test]
    fn a_missing_file_states_its_cause_once() {
        let error = load(
            Some(Path::new("/nonexistent/m.toml")),
            no_env,
            &Overrides::default(),
        )
        .unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(error));
        assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("2 weeks").is_err());
    }
}
