//! `modelwatch predictions …` and `modelwatch labels …`: log predictions and labels from
//! CSV or JSON Lines files, and set a model's prediction configuration.
//!
//! Every line is validated before anything is written (an error names the line and the
//! field), by the rules of the HTTP API's bodies (`modelwatch_http::wire::predictions`:
//! one parser for both); the events are then stored in batches, each batch's windows recomputed into
//! metric series by the engine.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use modelwatch_core::predictions::{Label, Prediction, Task};
use modelwatch_core::{ModelName, Timestamp, ValidationError, Version};
use modelwatch_engine::predictions::{
    recompute, store_labels, store_predictions, window_history, Recomputed,
};
use modelwatch_http::wire::predictions::{
    LabelEvent, LabelsLogged, PredictionConfig, PredictionConfigRequest, PredictionEvent,
    PredictionWindow, PredictionsLogged, CSV_FEATURE_COLUMN,
};
use modelwatch_store::predictions::PredictionSeries;
use modelwatch_store::Stores;
use serde::{Deserialize, Serialize};

use crate::output::{emit, Format, Table};

/// Events stored per batch (one transaction, one recomputation).
const BATCH: usize = 10_000;

#[derive(Debug, Subcommand)]
pub enum PredictionsCommand {
    /// Log predictions from CSV (a header line naming id, model, version, timestamp and
    /// class, score or value; dataset optional; features as `feature.<name>` columns,
    /// an empty cell leaving that feature out) or JSON Lines with the same fields
    /// (features as a `features` object: {"age": 41, "amount": 12.5}).
    Log(LogArgs),
    /// Show or set a model's prediction configuration (window, task, threshold, minimum
    /// label coverage, maximum label delay).
    Config(ConfigArgs),
    /// Show one window's revisions (each with its coverage and when it was computed) and
    /// its judgement.
    Window(WindowArgs),
}

#[derive(Debug, Args)]
pub struct WindowArgs {
    pub model: String,
    pub version: String,
    /// Any time in the window (RFC 3339 or epoch ms).
    pub at: String,
    /// The predictions' dataset (default: the default dataset).
    #[arg(long)]
    pub dataset: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LabelsCommand {
    /// Log labels from CSV (a header line naming id, model, label; timestamp optional) or
    /// JSON Lines with the same fields. `label` is 0 or 1 for a classification.
    Log(LogArgs),
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// The file, or `-` for standard input. `.jsonl`/`.ndjson` files (or content
    /// starting with `{`) are JSON Lines, anything else CSV.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    pub model: String,
    /// The tumbling window's length: 30m, 1h, 1d…
    #[arg(long)]
    pub window: Option<String>,
    /// classification or regression.
    #[arg(long)]
    pub task: Option<String>,
    /// A classification predicts the positive class when score >= threshold.
    #[arg(long, allow_hyphen_values = true)]
    pub threshold: Option<f64>,
    /// The label coverage a window needs before it is judged (0 to 1).
    #[arg(long)]
    pub min_coverage: Option<f64>,
    /// How long after its end a window is judged whatever its coverage (30m, 6h, 7d).
    #[arg(long)]
    pub max_label_delay: Option<String>,
}

/// A prediction's features in a CSV file: the `feature.<name>` columns (see
/// [`CSV_FEATURE_COLUMN`]), taken out of the record before the rest is read as its event.
type CsvFeatures<R> = fn(&mut R, BTreeMap<String, f64>);

fn with_features(event: &mut PredictionEvent, features: BTreeMap<String, f64>) {
    event.features = Some(features);
}

/// Reads every record of `file`, naming the line of the first bad one. In CSV, the
/// `feature.<name>` columns are given to `features` when it is set (and refused as
/// unknown fields otherwise).
fn read_all<R: for<'de> Deserialize<'de>, T>(
    file: &Path,
    validate: impl Fn(R) -> Result<T, ValidationError>,
    features: Option<CsvFeatures<R>>,
) -> Result<Vec<T>> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    let json_lines = file
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "ndjson")
        || text.trim_start().starts_with('{');
    let mut events = Vec::new();
    if json_lines {
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let raw: R =
                serde_json::from_str(line).with_context(|| format!("line {}", index + 1))?;
            events.push(validate(raw).with_context(|| format!("line {}", index + 1))?);
        }
        return Ok(events);
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().context("line 1")?.clone();
    let columns = FeatureColumns::of(&headers, features.is_some()).context("line 1")?;
    for (index, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = index + 2;
        let record = record.with_context(|| format!("line {line}"))?;
        let (rest, values) = columns
            .split(&record)
            .with_context(|| format!("line {line}"))?;
        let mut raw: R = rest
            .deserialize(Some(&columns.rest))
            .with_context(|| format!("line {line}"))?;
        if let (Some(attach), false) = (features, values.is_empty()) {
            attach(&mut raw, values);
        }
        events.push(validate(raw).with_context(|| format!("line {line}"))?);
    }
    Ok(events)
}

/// Which CSV columns are features (`feature.<name>`) and the header of the others.
struct FeatureColumns {
    /// By column: the feature it holds, if any.
    features: Vec<Option<String>>,
    rest: csv::StringRecord,
}

impl FeatureColumns {
    /// The columns of `headers`; with `split` false none is a feature.
    fn of(headers: &csv::StringRecord, split: bool) -> Result<Self, ValidationError> {
        let mut features = Vec::with_capacity(headers.len());
        let mut rest = csv::StringRecord::new();
        for header in headers {
            let feature = header
                .strip_prefix(CSV_FEATURE_COLUMN)
                .filter(|_| split)
                .map(str::to_owned);
            match &feature {
                Some(name) if features.iter().flatten().any(|seen| seen == name) => {
                    return Err(ValidationError::new(
                        "features",
                        format!("column {header:?} appears twice"),
                    ));
                }
                Some(_) => {}
                None => rest.push_field(header),
            }
            features.push(feature);
        }
        Ok(FeatureColumns { features, rest })
    }

    /// The record's other columns, and its non-empty feature cells as numbers (a cell
    /// that is not one is refused, naming `features.<name>`).
    fn split(
        &self,
        record: &csv::StringRecord,
    ) -> Result<(csv::StringRecord, BTreeMap<String, f64>), ValidationError> {
        let mut rest = csv::StringRecord::new();
        let mut values = BTreeMap::new();
        for (cell, feature) in record.iter().zip(&self.features) {
            match feature {
                None => rest.push_field(cell),
                Some(_) if cell.is_empty() => {}
                Some(name) => {
                    let value = modelwatch_core::sample::parse_value(cell)
                        .map_err(|e| ValidationError::new(format!("features.{name}"), e.message))?;
                    values.insert(name.clone(), value);
                }
            }
        }
        Ok((rest, values))
    }
}

/// Shows the counts of what was logged: its JSON form, or a table of the `columns` of
/// that form.
fn emit_counts<T: Serialize>(format: Format, logged: &T, columns: &[&'static str]) -> Result<()> {
    let value = serde_json::to_value(logged)?;
    let mut table = Table::new(columns);
    table.push(
        columns
            .iter()
            .map(|column| value[*column].to_string())
            .collect(),
    );
    emit(format, logged, &table)
}

pub async fn predictions(
    stores: &Stores,
    command: PredictionsCommand,
    format: Format,
) -> Result<ExitCode> {
    match command {
        PredictionsCommand::Log(args) => {
            let events = read_all(
                &args.file,
                PredictionEvent::validate,
                Some(with_features as CsvFeatures<PredictionEvent>),
            )?;
            let mut logged = PredictionsLogged::default();
            let mut events = events.into_iter().peekable();
            // Every batch stored (its windows left dirty), then each window recomputed
            // once: a file's cost does not grow with the windows each batch touches.
            while events.peek().is_some() {
                let batch: Vec<Prediction> = events.by_ref().take(BATCH).collect();
                let written = store_predictions(stores, batch).await?;
                logged.add(&PredictionsLogged::of(&written, Recomputed::default()));
            }
            let recomputed = recompute(stores, crate::now()).await?;
            logged.add(&PredictionsLogged::of(&Default::default(), recomputed));
            emit_counts(
                format,
                &logged,
                &[
                    "accepted",
                    "duplicates",
                    "labelled",
                    "too_old",
                    "windows_recomputed",
                    "windows_judged",
                    "samples_written",
                ],
            )?;
            Ok(ExitCode::SUCCESS)
        }
        PredictionsCommand::Config(args) => config(stores, args, format).await,
        PredictionsCommand::Window(args) => window(stores, args, format).await,
    }
}

pub async fn labels(stores: &Stores, command: LabelsCommand, format: Format) -> Result<ExitCode> {
    let LabelsCommand::Log(args) = command;
    let events = read_all(&args.file, LabelEvent::validate, None)?;
    let mut logged = LabelsLogged::default();
    let mut events = events.into_iter().peekable();
    // As for predictions: every batch stored, then each dirty window recomputed once.
    while events.peek().is_some() {
        let batch: Vec<Label> = events.by_ref().take(BATCH).collect();
        let written = store_labels(stores, batch, crate::now()).await?;
        logged.add(&LabelsLogged::of(&written, Recomputed::default()));
    }
    let recomputed = recompute(stores, crate::now()).await?;
    logged.add(&LabelsLogged::of(&Default::default(), recomputed));
    emit_counts(
        format,
        &logged,
        &[
            "accepted",
            "labelled",
            "pending",
            "duplicates",
            "windows_recomputed",
            "windows_judged",
            "samples_written",
        ],
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn config(stores: &Stores, args: ConfigArgs, format: Format) -> Result<ExitCode> {
    let model = ModelName::parse(&args.model)?;
    let stored = stores.predictions.prediction_config(&model).await?;
    let request = PredictionConfigRequest {
        window: args.window,
        task: args.task,
        threshold: args.threshold,
        min_coverage: args.min_coverage,
        max_label_delay: args.max_label_delay,
    };
    let shown = if request.is_empty() {
        let current = stored.unwrap_or_else(|| {
            modelwatch_engine::predictions::default_config(Task::Classification)
        });
        PredictionConfig::of(&model, &current, stored.is_some())
    } else {
        let config = request.apply(stored)?;
        stores
            .predictions
            .set_prediction_config(&model, config)
            .await?;
        PredictionConfig::of(&model, &config, true)
    };
    let mut table = Table::new(&[
        "model",
        "window",
        "task",
        "threshold",
        "min_coverage",
        "max_label_delay",
    ]);
    table.push(vec![
        shown.model.clone(),
        shown.window.clone(),
        shown.task.as_str().to_owned(),
        shown.threshold.to_string(),
        shown.min_coverage.to_string(),
        shown.max_label_delay.clone(),
    ]);
    emit(format, &shown, &table)?;
    Ok(ExitCode::SUCCESS)
}

/// One window's revisions, oldest first; the judged one marked.
async fn window(stores: &Stores, args: WindowArgs, format: Format) -> Result<ExitCode> {
    let series = PredictionSeries {
        model: ModelName::parse(&args.model)?,
        version: Version::parse(&args.version)?,
        dataset: crate::analysis_cli::dataset_arg(args.dataset.as_deref())?,
    };
    let at = Timestamp::parse(&args.at).map_err(|e| anyhow::anyhow!("at: {e}"))?;
    let config = stores
        .predictions
        .prediction_config(&series.model)
        .await?
        .unwrap_or_else(|| modelwatch_engine::predictions::default_config(Task::Classification));
    let start = config.window.window_of(at).start;
    let Some(history) = window_history(stores, &series, start).await? else {
        anyhow::bail!(
            "{}/{} has no predictions in the window from {start}",
            series.model,
            series.version
        );
    };
    let shown = PredictionWindow::of(&history);
    let mut table = Table::new(&[
        "revision",
        "computed_at",
        "predicted",
        "labelled",
        "coverage",
        "judged",
        "metrics",
    ]);
    for revision in &shown.revisions {
        let judged = shown
            .judged
            .as_ref()
            .filter(|j| j.revision == revision.revision)
            .map_or_else(String::new, |j| format!("{} at {}", j.by, j.judged_at));
        table.push(vec![
            revision.revision.to_string(),
            revision.computed_at.to_string(),
            revision.predicted.to_string(),
            revision.labelled.to_string(),
            format!("{:.4}", revision.coverage),
            judged,
            revision
                .metrics
                .iter()
                .map(|(name, value)| format!("{name}={value:.4}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    emit(format, &shown, &table)?;
    Ok(ExitCode::SUCCESS)
}
