//! Streaming import of samples from CSV or JSON Lines.
//!
//! The file is read once, in constant memory: good lines are gathered into batches of
//! [`BATCH_SIZE`] and committed while the next batch is parsed; bad lines are reported
//! with their line number and reason and do not stop the import. A batch is committed
//! atomically, so after a crash every batch reported as committed is fully stored and no
//! other line is.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use modelwatch_core::sample::RawSample;
use modelwatch_core::text::{elide, MAX_MESSAGE_CHARS};
use modelwatch_core::{Metric, MetricDefinition, Sample, ValidationError};
use modelwatch_store::{MetricStore, StoreError, WriteCounts};
use serde::Serialize;

pub const BATCH_SIZE: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    JsonLines,
}

impl InputFormat {
    /// By extension, else by the first non-blank byte (`{` means JSON Lines).
    pub fn detect(path: &Path, first_bytes: &[u8]) -> InputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson" | "json") => InputFormat::JsonLines,
            Some("csv") => InputFormat::Csv,
            _ => match first_bytes.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => InputFormat::JsonLines,
                _ => InputFormat::Csv,
            },
        }
    }
}

/// A line that was not imported.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportReport {
    pub imported: u64,
    /// Of the imported samples: at a timestamp their series did not have yet.
    pub new: u64,
    /// At a stored timestamp, with a different value: the file's value replaced it.
    pub replaced: u64,
    /// At a stored timestamp with the same value: a re-import of the same data.
    pub unchanged: u64,
    pub rejected: u64,
    pub batches: u64,
    /// The first rejections (all of them up to a limit), in line order.
    pub rejections: Vec<Rejection>,
}

/// What the importer tells its caller as it goes.
pub trait Progress {
    fn bytes_read(&mut self, _total: u64) {}
    fn committed(&mut self, _through_line: u64, _imported: u64) {}
    fn rejected(&mut self, _rejection: &Rejection) {}
}

/// Where a sample came from, so the store's verdict can be mapped back to a line.
struct Pending {
    samples: Vec<Sample>,
    lines: Vec<u64>,
    last_line: u64,
}

const MAX_KEPT_REJECTIONS: usize = 1_000;

/// The batch being committed: its lines, its size, and the store's answer.
type InFlight = tokio::task::JoinHandle<(Pending, usize, Result<WriteCounts, StoreError>)>;

#[allow(missing_debug_implementations)]
pub struct Importer<'p> {
    store: Arc<dyn MetricStore>,
    definitions: HashMap<Metric, MetricDefinition>,
    report: ImportReport,
    progress: &'p mut dyn Progress,
    in_flight: Option<InFlight>,
}

impl<'p> Importer<'p> {
    pub async fn new(
        store: Arc<dyn MetricStore>,
        progress: &'p mut dyn Progress,
    ) -> Result<Self, StoreError> {
        let definitions = store
            .custom_metrics()
            .await?
            .into_iter()
            .map(|d| (d.metric.clone(), d))
            .collect();
        Ok(Importer {
            store,
            definitions,
            report: ImportReport::default(),
            progress,
            in_flight: None,
        })
    }

    /// Imports a whole file (`-` for standard input).
    pub async fn import_path(mut self, path: &Path) -> anyhow::Result<ImportReport> {
        let reader: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(
                File::open(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
            )
        };
        let mut reader = BufReader::with_capacity(
            1 << 20,
            CountingReader {
                inner: reader,
                count: 0,
            },
        );
        let format = InputFormat::detect(path, reader.fill_buf()?);
        match format {
            InputFormat::Csv => self.import_csv(reader).await?,
            InputFormat::JsonLines => self.import_json_lines(reader).await?,
        }
        Ok(self.report)
    }

    async fn import_csv(&mut self, reader: BufReader<CountingReader>) -> anyhow::Result<()> {
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let mut columns = Columns::default();
        let mut record = csv::StringRecord::new();
        let mut pending = Pending {
            samples: Vec::with_capacity(BATCH_SIZE),
            lines: Vec::with_capacity(BATCH_SIZE),
            last_line: 0,
        };
        let mut first = true;
        loop {
            let line = csv.position().line();
            match csv.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(error) => {
                    self.reject(
                        line,
                        ValidationError::new("line", format!("unreadable CSV: {error}")),
                    );
                    continue;
                }
            }
            if first {
                first = false;
                if let Some(header) = Columns::from_header(&record) {
                    columns = header?;
                    continue;
                }
            }
            if record.iter().all(str::is_empty) {
                continue;
            }
            match columns.sample(&record, &self.definitions) {
                Ok(sample) => {
                    pending.samples.push(sample);
                    pending.lines.push(line);
                }
                Err(error) => self.reject(line, error),
            }
            pending.last_line = line;
            if pending.samples.len() >= BATCH_SIZE {
                self.progress.bytes_read(csv.get_ref().get_ref().count);
                pending = self.submit(pending).await?;
            }
        }
        self.progress.bytes_read(csv.get_ref().get_ref().count);
        self.submit(pending).await?;
        self.drain().await
    }

    async fn import_json_lines(
        &mut self,
        mut reader: BufReader<CountingReader>,
    ) -> anyhow::Result<()> {
        let mut pending = Pending {
            samples: Vec::with_capacity(BATCH_SIZE),
            lines: Vec::with_capacity(BATCH_SIZE),
            last_line: 0,
        };
        let mut text = String::new();
        let mut line = 0u64;
        loop {
            text.clear();
            let read = match reader.read_line(&mut text) {
                Ok(read) => read,
                Err(error) => {
                    line += 1;
                    self.reject(
                        line,
                        ValidationError::new("line", format!("unreadable: {error}")),
                    );
                    skip_line(&mut reader)?;
                    continue;
                }
            };
            if read == 0 {
                break;
            }
            line += 1;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                continue;
            }
            match parse_json_sample(trimmed, &self.definitions) {
                Ok(sample) => {
                    pending.samples.push(sample);
                    pending.lines.push(line);
                }
                Err(error) => self.reject(line, error),
            }
            pending.last_line = line;
            if pending.samples.len() >= BATCH_SIZE {
                self.progress.bytes_read(reader.get_ref().count);
                pending = self.submit(pending).await?;
            }
        }
        self.progress.bytes_read(reader.get_ref().count);
        self.submit(pending).await?;
        self.drain().await
    }

    fn reject(&mut self, line: u64, error: ValidationError) {
        // What echoes the file is cut to a readable size (a 10 MB field is not printed).
        let rejection = Rejection {
            line,
            field: elide(&error.field, 200).into_owned(),
            reason: elide(&error.message, MAX_MESSAGE_CHARS).into_owned(),
        };
        self.progress.rejected(&rejection);
        self.report.rejected += 1;
        if self.report.rejections.len() < MAX_KEPT_REJECTIONS {
            self.report.rejections.push(rejection);
        }
    }

    /// Hands a batch to the store and returns an empty one to fill, keeping at most one
    /// batch in flight so parsing overlaps with committing.
    async fn submit(&mut self, pending: Pending) -> anyhow::Result<Pending> {
        self.drain().await?;
        let last_line = pending.last_line;
        if pending.samples.is_empty() {
            return Ok(Pending {
                samples: pending.samples,
                lines: pending.lines,
                last_line,
            });
        }
        let store = Arc::clone(&self.store);
        self.in_flight = Some(tokio::spawn(async move {
            let mut pending = pending;
            let samples = std::mem::take(&mut pending.samples);
            let count = samples.len();
            // Judged and written one batch at a time (the previous one has committed), so
            // a timestamp repeated in a later batch counts against the earlier one.
            let result = store.append_counted(samples).await;
            (pending, count, result)
        }));
        Ok(Pending {
            samples: Vec::with_capacity(BATCH_SIZE),
            lines: Vec::with_capacity(BATCH_SIZE),
            last_line,
        })
    }

    /// Waits for the batch in flight. Lines are checked against the metric definitions
    /// before they are sent, so the store refuses a batch only when a definition changed
    /// during the import: then the whole batch is reported as rejected, naming the line.
    async fn drain(&mut self) -> anyhow::Result<()> {
        let Some(task) = self.in_flight.take() else {
            return Ok(());
        };
        let (pending, count, result) = task.await?;
        match result {
            Ok(counts) => {
                self.report.imported += count as u64;
                self.report.new += counts.new;
                self.report.replaced += counts.replaced;
                self.report.unchanged += counts.unchanged;
                self.report.batches += 1;
                self.progress
                    .committed(pending.last_line, self.report.imported);
                Ok(())
            }
            Err(StoreError::InvalidSample { index, error }) => {
                let culprit = pending
                    .lines
                    .get(index)
                    .copied()
                    .unwrap_or(pending.last_line);
                for line in pending.lines {
                    let reason = if line == culprit {
                        error.clone()
                    } else {
                        ValidationError::new(
                            "line",
                            format!("not stored: its batch was refused because of line {culprit}"),
                        )
                    };
                    self.reject(line, reason);
                }
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }
}

fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    let mut sink = Vec::new();
    reader.read_until(b'\n', &mut sink)?;
    Ok(())
}

struct CountingReader {
    inner: Box<dyn Read + Send>,
    count: u64,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Which CSV column holds which field. Without a header: model, version, metric, value,
/// timestamp, dataset.
#[derive(Debug, Clone, Copy)]
struct Columns {
    model: usize,
    version: usize,
    metric: usize,
    value: usize,
    timestamp: usize,
    dataset: Option<usize>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            model: 0,
            version: 1,
            metric: 2,
            value: 3,
            timestamp: 4,
            dataset: Some(5),
        }
    }
}

impl Columns {
    /// The column names a header may use, each with the field it is.
    const NAMES: [(&'static str, &'static str); 12] = [
        ("model", "model"),
        ("model_name", "model"),
        ("version", "version"),
        ("model_version", "version"),
        ("metric", "metric"),
        ("metric_type", "metric"),
        ("value", "value"),
        ("metric_value", "value"),
        ("timestamp", "timestamp"),
        ("timestamp_ms", "timestamp"),
        ("time", "timestamp"),
        ("dataset", "dataset"),
    ];

    /// A first line that names a column and has no number where a data line has its
    /// value is a header. Every cell of it must then name a column: an unknown one (a
    /// misspelling, a column modelwatch does not read) stops the import before anything
    /// is stored, rather than being read as data or ignored.
    fn from_header(record: &csv::StringRecord) -> Option<anyhow::Result<Columns>> {
        let field_of = |cell: &str| {
            let cell = cell.to_ascii_lowercase();
            Columns::NAMES
                .iter()
                .find(|(name, _)| *name == cell)
                .map(|(_, field)| *field)
        };
        let names_a_column = record.iter().any(|cell| field_of(cell).is_some());
        let value_is_a_number = record
            .get(Columns::default().value)
            .is_some_and(|cell| cell.parse::<f64>().is_ok());
        if !names_a_column || value_is_a_number {
            return None;
        }
        Some((|| {
            let unknown: Vec<&str> = record
                .iter()
                .filter(|cell| field_of(cell).is_none())
                .collect();
            if !unknown.is_empty() {
                let known: Vec<&str> = Columns::NAMES.iter().map(|(name, _)| *name).collect();
                anyhow::bail!(
                    "line 1: the CSV header names unknown column{} {}; the columns are {}",
                    if unknown.len() == 1 { "" } else { "s" },
                    unknown
                        .iter()
                        .map(|name| format!("{:?}", elide(name, 100)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    known.join(", ")
                );
            }
            let find = |wanted: &str| {
                let mut found = record
                    .iter()
                    .enumerate()
                    .filter(|(_, cell)| field_of(cell) == Some(wanted));
                let first = found.next().map(|(index, _)| index);
                match found.next() {
                    Some(_) => Err(anyhow::anyhow!(
                        "line 1: the CSV header names the {wanted} column twice"
                    )),
                    None => Ok(first),
                }
            };
            let required = |wanted: &str| {
                find(wanted)?
                    .ok_or_else(|| anyhow::anyhow!("line 1: the CSV header has no {wanted} column"))
            };
            Ok(Columns {
                model: required("model")?,
                version: required("version")?,
                metric: required("metric")?,
                value: required("value")?,
                timestamp: required("timestamp")?,
                dataset: find("dataset")?,
            })
        })())
    }

    fn sample(
        &self,
        record: &csv::StringRecord,
        definitions: &HashMap<Metric, MetricDefinition>,
    ) -> Result<Sample, ValidationError> {
        let cell = |index: usize, field: &str| {
            record.get(index).ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!("missing (the line has {} fields)", record.len()),
                )
            })
        };
        let raw = RawSample {
            model: cell(self.model, "model")?,
            version: cell(self.version, "version")?,
            metric: cell(self.metric, "metric")?,
            value: cell(self.value, "value")?,
            timestamp: cell(self.timestamp, "timestamp")?,
            dataset: self.dataset.and_then(|i| record.get(i)),
        };
        let sample = Sample::parse_fields(&raw)?;
        check_declared(&sample, definitions)?;
        Ok(sample)
    }
}

fn check_declared(
    sample: &Sample,
    definitions: &HashMap<Metric, MetricDefinition>,
) -> Result<(), ValidationError> {
    match definitions.get(&sample.metric) {
        Some(definition) => sample.check(definition),
        None => sample.check(&sample.metric.default_definition()),
    }
}

/// One JSON Lines line, by the HTTP API's rules ([`modelwatch_http::series::parse_sample`]),
/// and a timestamp is required: a line in a file has no time of arrival to default to.
fn parse_json_sample(
    text: &str,
    definitions: &HashMap<Metric, MetricDefinition>,
) -> Result<Sample, ValidationError> {
    let input = modelwatch_http::series::parse_sample(text)?;
    let Some(timestamp) = input.timestamp else {
        return Err(ValidationError::new(
            "timestamp",
            "missing: an imported sample must say when it was measured",
        ));
    };
    let sample = input.into_sample(timestamp);
    check_declared(&sample, definitions)?;
    Ok(sample)
}
