//! `modelwatch predictions …` and `modelwatch labels …`: log predictions and labels from
//! CSV or JSON Lines files, and set a model's prediction configuration.
//!
//! Every line is validated before anything is written (an error names the line and the
//! field), by the rules of the HTTP API's bodies (`modelwatch_http::wire::predictions`:
//! one parser for both); the events are then stored in batches, each batch's windows recomputed into
//! metric series by the engine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use modelwatch_core::predictions::{Label, Prediction, Task};
use modelwatch_core::{ModelName, ValidationError};
use modelwatch_engine::predictions::{log_labels, log_predictions};
use modelwatch_http::wire::predictions::{
    LabelEvent, LabelsLogged, PredictionConfig, PredictionConfigRequest, PredictionEvent,
    PredictionsLogged,
};
use modelwatch_store::Stores;
use serde::{Deserialize, Serialize};

use crate::output::{emit, Format, Table};

/// Events stored per batch (one transaction, one recomputation).
const BATCH: usize = 10_000;

#[derive(Debug, Subcommand)]
pub enum PredictionsCommand {
    /// Log predictions from CSV (a header line naming id, model, version, timestamp and
    /// class, score or value; dataset optional) or JSON Lines with the same fields.
    Log(LogArgs),
    /// Show or set a model's prediction configuration (window, task, threshold, minimum
    /// label coverage).
    Config(ConfigArgs),
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
}

/// Reads every record of `file`, naming the line of the first bad one.
fn read_all<R: for<'de> Deserialize<'de>, T>(
    file: &Path,
    validate: impl Fn(R) -> Result<T, ValidationError>,
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
    for (index, record) in reader.deserialize::<R>().enumerate() {
        // Line 1 is the header.
        let line = index + 2;
        let raw = record.with_context(|| format!("line {line}"))?;
        events.push(validate(raw).with_context(|| format!("line {line}"))?);
    }
    Ok(events)
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
            let events = read_all(&args.file, PredictionEvent::validate)?;
            let mut logged = PredictionsLogged::default();
            let mut events = events.into_iter().peekable();
            while events.peek().is_some() {
                let batch: Vec<Prediction> = events.by_ref().take(BATCH).collect();
                let (written, recomputed) = log_predictions(stores, batch).await?;
                logged.add(&PredictionsLogged::of(&written, recomputed));
            }
            emit_counts(
                format,
                &logged,
                &[
                    "accepted",
                    "duplicates",
                    "labelled",
                    "windows_recomputed",
                    "samples_written",
                ],
            )?;
            Ok(ExitCode::SUCCESS)
        }
        PredictionsCommand::Config(args) => config(stores, args, format).await,
    }
}

pub async fn labels(stores: &Stores, command: LabelsCommand, format: Format) -> Result<ExitCode> {
    let LabelsCommand::Log(args) = command;
    let events = read_all(&args.file, LabelEvent::validate)?;
    let mut logged = LabelsLogged::default();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let batch: Vec<Label> = events.by_ref().take(BATCH).collect();
        let (written, recomputed) = log_labels(stores, batch, crate::now()).await?;
        logged.add(&LabelsLogged::of(&written, recomputed));
    }
    emit_counts(
        format,
        &logged,
        &[
            "accepted",
            "labelled",
            "pending",
            "duplicates",
            "windows_recomputed",
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
    let mut table = Table::new(&["model", "window", "task", "threshold", "min_coverage"]);
    table.push(vec![
        shown.model.clone(),
        shown.window.clone(),
        shown.task.as_str().to_owned(),
        shown.threshold.to_string(),
        shown.min_coverage.to_string(),
    ]);
    emit(format, &shown, &table)?;
    Ok(ExitCode::SUCCESS)
}
