//! `modelwatch predictions …` and `modelwatch labels …`: log predictions and labels from
//! CSV or JSON Lines files, and set a model's prediction configuration.
//!
//! Every line is validated before anything is written (an error names the line and the
//! field); the events are then stored in batches, each batch's windows recomputed into
//! metric series by the engine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use modelwatch_core::predictions::{
    Label, Output, Prediction, PredictionConfig, PredictionId, Task, WindowLength,
};
use modelwatch_core::{Dataset, ModelName, Timestamp, ValidationError, Version};
use modelwatch_engine::predictions::{log_labels, log_predictions, Recomputed};
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

/// A class as files write it: 0/1, true/false.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Flag {
    fn class(&self) -> Result<bool, ValidationError> {
        match self {
            Flag::Bool(b) => Ok(*b),
            Flag::Number(n) if *n == 1.0 => Ok(true),
            Flag::Number(n) if *n == 0.0 => Ok(false),
            Flag::Text(t) if matches!(t.trim(), "1" | "true") => Ok(true),
            Flag::Text(t) if matches!(t.trim(), "0" | "false") => Ok(false),
            other => Err(ValidationError::new(
                "class",
                format!("{other:?} is not a class (use 0, 1, true or false)"),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrediction {
    id: String,
    model: String,
    version: String,
    #[serde(default)]
    dataset: Option<String>,
    timestamp: Timestamp,
    #[serde(default)]
    class: Option<Flag>,
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    value: Option<f64>,
}

impl RawPrediction {
    fn validate(self) -> Result<Prediction, ValidationError> {
        let output = match (self.value, self.class, self.score) {
            (Some(value), None, None) => Output::regression(value)?,
            (Some(_), _, _) => {
                return Err(ValidationError::new(
                    "value",
                    "a regression value goes without class or score",
                ))
            }
            (None, class, score) => {
                Output::classification(class.as_ref().map(Flag::class).transpose()?, score)?
            }
        };
        Ok(Prediction {
            id: PredictionId::parse_owned(self.id)?,
            model: ModelName::parse_owned(self.model)?,
            version: Version::parse_owned(self.version)?,
            dataset: match self.dataset {
                None => None,
                Some(name) => Dataset::parse_optional(&name)?,
            },
            timestamp: self.timestamp,
            output,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabel {
    id: String,
    model: String,
    label: Flag,
    #[serde(default)]
    timestamp: Option<Timestamp>,
}

impl RawLabel {
    fn validate(self) -> Result<Label, ValidationError> {
        let truth = match self.label {
            Flag::Bool(b) => f64::from(u8::from(b)),
            Flag::Number(n) => n,
            Flag::Text(text) => modelwatch_core::sample::parse_value(&text)
                .map_err(|e| ValidationError::new("label", e.message))?,
        };
        Label::new(
            PredictionId::parse_owned(self.id)?,
            ModelName::parse_owned(self.model)?,
            truth,
            self.timestamp,
        )
    }
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

#[derive(Debug, Default, Serialize)]
struct Logged {
    accepted: u64,
    duplicates: u64,
    /// Predictions: accepted ones whose pending label was joined. Labels: first labels
    /// joined to their prediction.
    labelled: u64,
    /// Labels kept waiting for their prediction.
    pending: u64,
    windows_recomputed: u64,
}

impl Logged {
    fn add(&mut self, recomputed: Recomputed) {
        self.windows_recomputed += recomputed.windows;
    }

    fn emit(&self, format: Format) -> Result<()> {
        let mut table = Table::new(&[
            "accepted",
            "duplicates",
            "labelled",
            "pending",
            "windows_recomputed",
        ]);
        table.push(vec![
            self.accepted.to_string(),
            self.duplicates.to_string(),
            self.labelled.to_string(),
            self.pending.to_string(),
            self.windows_recomputed.to_string(),
        ]);
        emit(format, self, &table)
    }
}

pub async fn predictions(
    stores: &Stores,
    command: PredictionsCommand,
    format: Format,
) -> Result<ExitCode> {
    match command {
        PredictionsCommand::Log(args) => {
            let events = read_all(&args.file, RawPrediction::validate)?;
            let mut logged = Logged::default();
            let mut events = events.into_iter().peekable();
            while events.peek().is_some() {
                let batch: Vec<Prediction> = events.by_ref().take(BATCH).collect();
                let (written, recomputed) = log_predictions(stores, batch).await?;
                logged.accepted += written.accepted;
                logged.duplicates += written.duplicates;
                logged.labelled += written.labelled;
                logged.add(recomputed);
            }
            logged.emit(format)?;
            Ok(ExitCode::SUCCESS)
        }
        PredictionsCommand::Config(args) => config(stores, args, format).await,
    }
}

pub async fn labels(stores: &Stores, command: LabelsCommand, format: Format) -> Result<ExitCode> {
    let LabelsCommand::Log(args) = command;
    let events = read_all(&args.file, RawLabel::validate)?;
    let mut logged = Logged::default();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let batch: Vec<Label> = events.by_ref().take(BATCH).collect();
        let (written, recomputed) = log_labels(stores, batch, crate::now()).await?;
        logged.accepted += written.labelled + written.pending;
        logged.duplicates += written.duplicates;
        logged.labelled += written.labelled;
        logged.pending += written.pending;
        logged.add(recomputed);
    }
    logged.emit(format)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct ConfigShown {
    model: String,
    window: String,
    task: &'static str,
    threshold: f64,
    min_coverage: f64,
    configured: bool,
}

async fn config(stores: &Stores, args: ConfigArgs, format: Format) -> Result<ExitCode> {
    let model = ModelName::parse(&args.model)?;
    let stored = stores.predictions.prediction_config(&model).await?;
    let changes = args.window.is_some()
        || args.task.is_some()
        || args.threshold.is_some()
        || args.min_coverage.is_some();
    let current = stored
        .unwrap_or_else(|| modelwatch_engine::predictions::default_config(Task::Classification));
    let config = if changes {
        let window = match &args.window {
            Some(text) => WindowLength::parse(text)?,
            None => current.window,
        };
        let task = match &args.task {
            Some(text) => Task::parse(text)?,
            None if stored.is_none() => bail!("task: a model's first configuration needs --task"),
            None => current.task,
        };
        let config = PredictionConfig::new(
            window,
            task,
            args.threshold.unwrap_or(current.threshold),
            args.min_coverage.unwrap_or(current.min_coverage),
        )?;
        stores
            .predictions
            .set_prediction_config(&model, config)
            .await?;
        config
    } else {
        current
    };
    let shown = ConfigShown {
        model: model.to_string(),
        window: config.window.to_string(),
        task: config.task.as_str(),
        threshold: config.threshold,
        min_coverage: config.min_coverage,
        configured: changes || stored.is_some(),
    };
    let mut table = Table::new(&["model", "window", "task", "threshold", "min_coverage"]);
    table.push(vec![
        shown.model.clone(),
        shown.window.clone(),
        shown.task.to_owned(),
        shown.threshold.to_string(),
        shown.min_coverage.to_string(),
    ]);
    emit(format, &shown, &table)?;
    Ok(ExitCode::SUCCESS)
}
