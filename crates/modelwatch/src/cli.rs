//! The command line: argument parsing, then one function per command.
//!
//! `main` → `run() -> anyhow::Result<ExitCode>`; errors are printed with their cause chain.
//! The wall clock is read here and passed inward.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use modelwatch_core::sample::RawSample;
use modelwatch_core::text::{elide, MAX_MESSAGE_CHARS};
use modelwatch_core::{
    Dataset, Direction, Metric, MetricDefinition, ModelName, Sample, SeriesKey, Summary, TimeRange,
    ValueRange, Version,
};
use modelwatch_engine::analysis::metrics_in;
use modelwatch_http::wire;
use modelwatch_store::{MetricStore, SeriesFilter};
use serde::Serialize;

use crate::import::{ImportReport, Importer, Progress, Rejection};
use crate::output::{count, emit, number, parse_hours, Format, Hours, Table};

#[derive(Debug, Parser)]
#[command(
    name = "modelwatch",
    version,
    about = "Model performance monitoring: record metrics, detect degradation, alert."
)]
pub struct Cli {
    /// The database: an SQLite file path (created when missing), `sqlite:PATH`,
    /// `postgres://…`, `influxdb://HOST:PORT/DATABASE` or `prometheus://HOST:PORT` (samples
    /// only), or `memory`.
    /// Default: modelwatch.db in the user's data directory.
    #[arg(long, env = "MODELWATCH_DB", global = true, value_name = "PATH")]
    pub db: Option<String>,

    /// Where rules, alerts, silences, the outbox, tokens and predictions live when not
    /// with the samples: an SQLite file path or `postgres://…`. Default: with the
    /// samples; for a store of samples only (InfluxDB), modelwatch-alerts.db beside the
    /// configuration file, else in the user's data directory.
    #[arg(long, env = "MODELWATCH_ALERTS_DB", global = true, value_name = "PATH")]
    pub alerts_db: Option<String>,

    /// Output format of listings; `table` on a terminal, `json` otherwise.
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,

    /// The configuration file (TOML; see examples/modelwatch.toml). Default:
    /// modelwatch.toml in the working directory, when it exists. Every command reads it.
    #[arg(long, env = "MODELWATCH_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record, list, import and declare metrics.
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// The models that have metrics.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Record a week of realistic demo metrics (several models, a degradation, a daily cycle).
    Demo,
    /// Check one metric of a model version for degradation (with significance).
    Check(crate::analysis_cli::CheckArgs),
    /// Health, each metric's summary and trend, and degradations of a model version.
    Monitor(crate::analysis_cli::MonitorArgs),
    /// Compare two versions of a model on one metric (champion vs challenger).
    Compare(crate::analysis_cli::CompareArgs),
    #[command(flatten)]
    Alerting(crate::alerts_cli::AlertingCommand),
    /// Move an installation to another database (e.g. SQLite to PostgreSQL), checking counts.
    Migrate(crate::migrate::MigrateArgs),
    /// Import registered models' metrics from an MLflow tracking server.
    #[command(subcommand)]
    Mlflow(crate::mlflow::MlflowCommand),
    /// Delete old samples and finished notifications once (for cron); `serve` does it
    /// hourly with its `[retention]` settings.
    Prune(crate::retention::PruneArgs),
    #[command(flatten)]
    Notifications(crate::notify_cli::NotifyCommand),
    /// Serve the HTTP API (JSON, OpenAPI, events, InfluxDB line protocol, Prometheus).
    Serve(crate::serve::ServeArgs),
    /// Manage the HTTP API's tokens.
    #[command(subcommand)]
    Tokens(crate::serve::TokensCommand),
    /// Log predictions (their metrics are computed per window as labels arrive) and set a
    /// model's prediction configuration.
    #[command(subcommand)]
    Predictions(crate::predictions_cli::PredictionsCommand),
    /// Log labels (ground truth) for logged predictions, in any order.
    #[command(subcommand)]
    Labels(crate::predictions_cli::LabelsCommand),
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Record one sample.
    Record(RecordArgs),
    /// Show a version's samples and summary of one metric, or a summary line per metric.
    History(HistoryArgs),
    /// Import samples from CSV (model,version,metric,value,timestamp[,dataset]) or JSON Lines.
    Import(ImportArgs),
    /// Declare a custom metric's direction and valid range.
    Define(DefineArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    pub model: String,
    pub version: String,
    /// A built-in metric (accuracy, precision, recall, f1_score, auc_roc, auc_pr, mae, mse, rmse,
    /// r2_score, mape, latency, throughput, error_rate) or a custom name.
    pub metric: String,
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// The data set the value was measured on.
    #[arg(long)]
    pub dataset: Option<String>,
    /// When it was measured: RFC 3339 or epoch milliseconds. Default: now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The model, as recorded.
    pub model: String,
    /// The model's version.
    pub version: String,
    /// One metric's samples and summary; without it, a summary line per metric.
    #[arg(long)]
    pub metric: Option<String>,
    /// How far back to look: hours (fractions too) or `all`.
    #[arg(long, default_value = "24", value_name = "HOURS|all", value_parser = parse_hours)]
    pub hours: Hours,
    /// The dataset (segment), e.g. prod or canary; `default` (the default) is the samples
    /// recorded without one. Datasets are never mixed.
    #[arg(long, value_name = "NAME|default")]
    pub dataset: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file, or `-` for standard input. `.jsonl`/`.ndjson` files (or content starting
    /// with `{`) are JSON Lines, anything else CSV; a CSV header line may name the columns.
    pub file: PathBuf,
    /// Print a line for every committed batch.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct DefineArgs {
    pub metric: String,
    /// A rise is a degradation (like latency); the default is higher-is-better.
    #[arg(long)]
    pub lower_is_better: bool,
    #[arg(long, allow_hyphen_values = true)]
    pub min: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    pub max: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every model version with its metrics and the time of its last sample.
    List,
}

impl Cli {
    /// The command line `args` (program name first), refusing what clap would accept and
    /// the command ignore: `--db` or `--alerts-db` typed on `migrate`, which names both
    /// its databases itself (a user who typed them expects them to be used).
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{parser::ValueSource, CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        if let Some(("migrate", migrate)) = matches.subcommand() {
            for (id, flag) in [("db", "--db"), ("alerts_db", "--alerts-db")] {
                if migrate.value_source(id) == Some(ValueSource::CommandLine) {
                    return Err(Cli::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "migrate does not use {flag}: name the source with --from (and \
                             --from-alerts-db) and the destination with --to (and --to-alerts-db)"
                        ),
                    ));
                }
            }
        }
        Cli::from_arg_matches(&matches)
    }
}

pub fn main() -> ExitCode {
    // Help and --version exit 0; a bad argument is an error like any other (exit 1), so
    // `check`'s 2 and 3 keep meaning degraded and insufficient data.
    let cli = match Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`modelwatch … | head`): it has what it wanted, as with
        // any Unix tool; nothing to say and nobody to say it to.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            note!("error: {}", elide(&format!("{error:#}"), MAX_MESSAGE_CHARS));
            ExitCode::FAILURE
        }
    }
}

/// Whether `error` comes from writing to a pipe whose reader has gone.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            Some(io.kind())
        } else if let Some(json) = cause.downcast_ref::<serde_json::Error>() {
            json.io_error_kind()
        } else if let Some(csv) = cause.downcast_ref::<csv::Error>() {
            match csv.kind() {
                csv::ErrorKind::Io(io) => Some(io.kind()),
                _ => None,
            }
        } else {
            None
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// The command line run from another program (the Python package's `modelwatch`
/// command): `args` with the program name first; returns the exit status. Help, version
/// and usage errors print as the binary prints them.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_args(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return error.exit_code();
        }
    };
    match run(cli) {
        Ok(code) if code == ExitCode::SUCCESS => 0,
        Ok(_) => 1,
        Err(error) if is_broken_pipe(&error) => 0,
        Err(error) => {
            note!("error: {}", elide(&format!("{error:#}"), MAX_MESSAGE_CHARS));
            1
        }
    }
}

/// Opens the samples' and the alerting state's stores the configuration names.
pub(crate) async fn open_stores(
    config: &crate::config::Config,
) -> Result<modelwatch_store::Stores> {
    let (location, alerts) = config.store.locations()?;
    modelwatch_store::open_split(&location, alerts.as_deref(), config.limits.series)
        .await
        .with_context(|| match &alerts {
            Some(alerts) => format!(
                "cannot open the database {} with the alerts database {}",
                crate::migrate::shown(&location),
                crate::migrate::shown(alerts)
            ),
            None => format!(
                "cannot open the database {}",
                crate::migrate::shown(&location)
            ),
        })
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let format = cli.format.unwrap_or_else(Format::default_for_stdout);
        let command = match cli.command {
            Command::Serve(args) => {
                return crate::serve::serve(args, cli.db, cli.alerts_db, cli.config).await
            }
            // Migration names both of its databases itself.
            Command::Migrate(args) => return crate::migrate::run(args, format).await,
            other => other,
        };
        // One discovery rule for every command: --config / MODELWATCH_CONFIG, else
        // ./modelwatch.toml; then MODELWATCH_* and the flags (config.rs).
        let config = crate::config::load(
            cli.config.as_deref(),
            |key| std::env::var(key).ok(),
            &crate::config::Overrides {
                db: cli.db.clone(),
                alerts_db: cli.alerts_db.clone(),
                ..crate::config::Overrides::default()
            },
        )?;
        let stores = open_stores(&config).await?;
        let outcome = match command {
            Command::Alerting(command) => {
                crate::alerts_cli::run(command, &stores, &config, format).await
            }
            Command::Monitor(args) => crate::analysis_cli::monitor(&stores, args, format).await,
            Command::Notifications(command) => {
                crate::notify_cli::run(command, &stores, &config, format).await
            }
            Command::Tokens(command) => crate::serve::tokens(&stores, command, format).await,
            Command::Prune(args) => crate::retention::prune_command(&stores, args, format).await,
            Command::Predictions(command) => {
                crate::predictions_cli::predictions(&stores, command, format).await
            }
            Command::Labels(command) => {
                crate::predictions_cli::labels(&stores, command, format).await
            }
            command => dispatch(command, Arc::clone(&stores.metrics), format).await,
        };
        stores
            .close()
            .await
            .context("cannot close the database cleanly")?;
        outcome
    })
}

async fn dispatch(
    command: Command,
    store: Arc<dyn MetricStore>,
    format: Format,
) -> Result<ExitCode> {
    match command {
        Command::Metrics(MetricsCommand::Record(args)) => record(&*store, args, format).await,
        Command::Metrics(MetricsCommand::History(args)) => history(&*store, args, format).await,
        Command::Metrics(MetricsCommand::Import(args)) => import(store, args, format).await,
        Command::Metrics(MetricsCommand::Define(args)) => define(&*store, args).await,
        Command::Models(ModelsCommand::List) => list_models(&*store, format).await,
        Command::Demo => demo(&*store, format).await,
        Command::Migrate(args) => crate::migrate::run(args, format).await,
        Command::Mlflow(command) => crate::mlflow::run(command, &*store, format).await,
        Command::Check(args) => crate::analysis_cli::check(&*store, args, format).await,
        Command::Compare(args) => crate::analysis_cli::compare(&*store, args, format).await,
        // `run` hands these the alert store too before getting here.
        Command::Alerting(_)
        | Command::Monitor(_)
        | Command::Notifications(_)
        | Command::Predictions(_)
        | Command::Labels(_)
        | Command::Prune(_) => {
            bail!("this command needs the alert store")
        }
        Command::Serve(_) | Command::Tokens(_) => {
            bail!("`run` handles serve and tokens before getting here")
        }
    }
}

async fn record(store: &dyn MetricStore, args: RecordArgs, format: Format) -> Result<ExitCode> {
    let now = crate::now().as_millis().to_string();
    let raw = RawSample {
        model: &args.model,
        version: &args.version,
        metric: &args.metric,
        value: &args.value,
        timestamp: args.at.as_deref().unwrap_or(&now),
        dataset: args.dataset.as_deref(),
    };
    let sample = Sample::parse_fields(&raw)?;
    store.append_one(sample.clone()).await?;
    let mut table = Table::new(&[
        "model",
        "version",
        "metric",
        "value",
        "timestamp",
        "dataset",
    ]);
    table.push(vec![
        sample.model.to_string(),
        sample.version.to_string(),
        sample.metric.to_string(),
        number(sample.value),
        sample.timestamp.to_string(),
        sample
            .dataset
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    ]);
    emit(format, &wire::SampleInput::from(&sample), &table)?;
    Ok(ExitCode::SUCCESS)
}

/// The samples of the last `hours` (or all), later ones included.
fn window(hours: Hours) -> TimeRange {
    TimeRange::new(
        hours.window(crate::now()).start,
        modelwatch_core::Timestamp::MAX,
    )
}

fn summary_row(metric: &Metric, summary: &Summary) -> Vec<String> {
    vec![
        metric.to_string(),
        summary.count.to_string(),
        number(summary.last_value),
        number(summary.mean),
        number(summary.min),
        number(summary.max),
        number(summary.std),
        number(summary.p50),
        number(summary.p95),
        summary.last_timestamp.to_string(),
    ]
}

const SUMMARY_HEADERS: [&str; 10] = [
    "metric",
    "count",
    "current",
    "mean",
    "min",
    "max",
    "std",
    "p50",
    "p95",
    "last_sample",
];

async fn history(store: &dyn MetricStore, args: HistoryArgs, format: Format) -> Result<ExitCode> {
    let model = ModelName::parse(&args.model)?;
    let version = Version::parse(&args.version)?;
    let dataset = crate::analysis_cli::dataset_arg(args.dataset.as_deref())?;
    let dataset_name = Dataset::name_of(dataset.as_ref());
    let range = window(args.hours);
    if let Some(metric) = &args.metric {
        let metric = Metric::parse(metric)?;
        let key = SeriesKey::new(model.clone(), version.clone(), metric.clone())
            .with_dataset(dataset.clone());
        let samples = store.range(&key, range).await?;
        let summary = Summary::of_points(&samples);
        let mut table = Table::new(&["timestamp", "value", "dataset"]);
        for point in &samples {
            table.push(vec![
                point.timestamp.to_string(),
                number(point.value),
                point
                    .dataset
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ]);
        }
        let history = wire::SeriesSamples {
            model: model.clone(),
            version: version.clone(),
            metric,
            dataset: dataset_name.to_owned(),
            hours: args.hours.0.into(),
            summary: summary.as_ref().map(Into::into),
            samples: samples.into_iter().map(Into::into).collect(),
        };
        emit(format, &history, &table)?;
        if format == Format::Table {
            match &summary {
                Some(s) => outln!(
                    "{} · mean {} · min {} · max {} · std {} · p50 {} · p95 {}",
                    count(s.count, "sample"),
                    number(s.mean),
                    number(s.min),
                    number(s.max),
                    number(s.std),
                    number(s.p50),
                    number(s.p95)
                )?,
                None => outln!("no samples of {key} in {}", args.hours.describe())?,
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut metrics = Vec::new();
    let mut table =
        Table::new(&SUMMARY_HEADERS).optional(&["p50", "p95", "std", "min", "max", "last_sample"]);
    for metric in metrics_in(store, &model, &version, dataset.as_ref()).await? {
        let key = SeriesKey::new(model.clone(), version.clone(), metric.clone())
            .with_dataset(dataset.clone());
        if let Some(summary) = store.summary(&key, range).await? {
            table.push(summary_row(&metric, &summary));
            let direction = store.definition(&metric).await?.direction;
            metrics.push(wire::MetricSummary {
                metric,
                direction: direction.into(),
                summary: (&summary).into(),
            });
        }
    }
    let empty = metrics.is_empty();
    emit(
        format,
        &wire::VersionSummaries {
            model: model.clone(),
            version: version.clone(),
            dataset: dataset_name.to_owned(),
            hours: args.hours.0.into(),
            metrics,
        },
        &table,
    )?;
    if empty && format == Format::Table {
        outln!(
            "no samples of {model} {version} in dataset {dataset_name} in {}",
            args.hours.describe()
        )?;
        let others: Vec<String> = store
            .datasets(&model, Some(&version))
            .await?
            .iter()
            .filter(|other| **other != dataset)
            .map(|other| Dataset::name_of(other.as_ref()).to_owned())
            .collect();
        if !others.is_empty() {
            outln!(
                "its other datasets: {} (choose one with --dataset)",
                others.join(", ")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports import progress on a terminal as a bar, elsewhere (with --verbose) as lines.
struct ImportProgress {
    bar: Option<ProgressBar>,
    verbose: bool,
    printed_rejections: u64,
}

const MAX_PRINTED_REJECTIONS: u64 = 100;

impl Progress for ImportProgress {
    fn bytes_read(&mut self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(total);
        }
    }

    fn committed(&mut self, through_line: u64, imported: u64) {
        if self.verbose {
            let line = format!("committed through line {through_line} ({imported} samples)");
            match &self.bar {
                Some(bar) => bar.println(line),
                None => note!("{line}"),
            }
        }
    }

    fn rejected(&mut self, rejection: &Rejection) {
        self.printed_rejections += 1;
        let line = match self.printed_rejections {
            n if n <= MAX_PRINTED_REJECTIONS => {
                format!(
                    "line {}: {}: {}",
                    rejection.line, rejection.field, rejection.reason
                )
            }
            n if n == MAX_PRINTED_REJECTIONS + 1 => {
                "… more rejected lines are counted but not shown".to_owned()
            }
            _ => return,
        };
        match &self.bar {
            Some(bar) => bar.println(line),
            None => note!("{line}"),
        }
    }
}

fn progress_bar(path: &Path) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let size = std::fs::metadata(path).ok()?.len();
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .ok()?,
    );
    Some(bar)
}

async fn import(store: Arc<dyn MetricStore>, args: ImportArgs, format: Format) -> Result<ExitCode> {
    let mut progress = ImportProgress {
        bar: progress_bar(&args.file),
        verbose: args.verbose,
        printed_rejections: 0,
    };
    let importer = Importer::new(store, &mut progress).await?;
    let report: ImportReport = importer.import_path(&args.file).await?;
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    let mut table = Table::new(&[
        "imported",
        "new",
        "replaced",
        "unchanged",
        "rejected",
        "batches",
    ]);
    table.push(vec![
        report.imported.to_string(),
        report.new.to_string(),
        report.replaced.to_string(),
        report.unchanged.to_string(),
        report.rejected.to_string(),
        report.batches.to_string(),
    ]);
    emit(format, &report, &table)?;
    if report.imported > 0 && report.unchanged == report.imported {
        note!(
            "all {} samples were stored already with these values: nothing changed",
            report.imported
        );
    }
    if report.rejected > 0 {
        note!(
            "{} line(s) rejected; the other {} samples were stored",
            report.rejected,
            report.imported
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn define(store: &dyn MetricStore, args: DefineArgs) -> Result<ExitCode> {
    let metric = Metric::parse(&args.metric)?;
    let direction = if args.lower_is_better {
        Direction::LowerIsBetter
    } else {
        Direction::HigherIsBetter
    };
    let definition = MetricDefinition::custom(
        metric,
        direction,
        ValueRange {
            min: args.min,
            max: args.max,
        },
    )?;
    store.define_metric(definition.clone()).await?;
    outln!(
        "{} is {}, valid values: {}",
        definition.metric,
        definition.direction.as_str(),
        definition.range
    )?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct ModelVersionRow {
    model: ModelName,
    version: Version,
    metrics: Vec<Metric>,
    /// Its datasets: `default` first, then by name.
    datasets: Vec<String>,
    first_timestamp: modelwatch_core::Timestamp,
    last_timestamp: modelwatch_core::Timestamp,
}

async fn list_models(store: &dyn MetricStore, format: Format) -> Result<ExitCode> {
    let mut rows: Vec<ModelVersionRow> = Vec::new();
    for series in store.list_series(&SeriesFilter::default()).await? {
        match rows.last_mut() {
            Some(row) if row.model == series.key.model && row.version == series.key.version => {
                if row.metrics.last() != Some(&series.key.metric) {
                    row.metrics.push(series.key.metric);
                }
                let dataset = Dataset::name_of(series.key.dataset.as_ref());
                if !row.datasets.iter().any(|d| d == dataset) {
                    row.datasets.push(dataset.to_owned());
                }
                row.first_timestamp = row.first_timestamp.min(series.first_timestamp);
                row.last_timestamp = row.last_timestamp.max(series.last_timestamp);
            }
            _ => rows.push(ModelVersionRow {
                model: series.key.model,
                version: series.key.version,
                metrics: vec![series.key.metric],
                datasets: vec![Dataset::name_of(series.key.dataset.as_ref()).to_owned()],
                first_timestamp: series.first_timestamp,
                last_timestamp: series.last_timestamp,
            }),
        }
    }
    let mut table = Table::new(&[
        "model",
        "version",
        "metrics",
        "datasets",
        "first_sample",
        "last_sample",
    ])
    .optional(&["first_sample"]);
    for row in rows.iter_mut() {
        // Listed default first, then by name.
        row.datasets
            .sort_by_key(|d| (d != Dataset::DEFAULT_NAME, d.clone()));
    }
    for row in &rows {
        table.push(vec![
            row.model.to_string(),
            row.version.to_string(),
            row.metrics
                .iter()
                .map(Metric::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            row.datasets.join(" "),
            row.first_timestamp.to_string(),
            row.last_timestamp.to_string(),
        ]);
    }
    emit(format, &rows, &table)?;
    if rows.is_empty() && format == Format::Table {
        outln!(
            "no metrics recorded yet: try `modelwatch metrics record my_model v1 accuracy 0.95`"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(store: &dyn MetricStore, format: Format) -> Result<ExitCode> {
    let samples = crate::demo::samples(crate::now());
    let count = samples.len();
    store.append(samples).await?;
    note!("recorded {count} demo samples (a week, every 5 minutes)");
    list_models(store, format).await?;
    if format == Format::Table {
        outln!("\nfraud_detector v2.1 over the last 24 hours (its accuracy is sliding):")?;
    }
    history(
        store,
        HistoryArgs {
            model: "fraud_detector".into(),
            version: "v2.1".into(),
            metric: None,
            hours: Hours::DAY,
            dataset: None,
        },
        format,
    )
    .await
}
