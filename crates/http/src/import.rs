//! Bulk import in VictoriaMetrics' JSON-lines format (issue 21): `POST /api/v1/import`,
//! one series per line with its values and timestamps as arrays,
//! `{"metric": {"__name__": "…", "model": "…", "version": "…"}, "values": [0.91, …],
//! "timestamps": [1704110400000, …]}` — what `vmctl` and VictoriaMetrics'
//! `/api/v1/export` produce.
//!
//! The body is streamed, never buffered whole, so an import has no length limit (only a
//! single line is bounded, by `max_body_bytes`). Lines are parsed into batches that a
//! second task commits while the next batch is parsed: parsing and the durable commit
//! overlap on one connection. A line's labels map to a sample's model, version, metric
//! and dataset as remote write's do ([`LabelMapping`]: `metric`, or the metric name when
//! there is none).
//!
//! An import is not one transaction: each batch is acknowledged (fsynced) when its
//! commit returns. A line that cannot be stored ends the import with 400 naming the line
//! and field (`line 3.values[2]`) and saying how many samples were stored: the lines
//! before a line that cannot be read are; a value the store refuses (out of the metric's
//! range) refuses its whole batch, so only the batches before it are.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use modelwatch_core::{Dataset, Metric, ModelName, Sample, Timestamp, ValidationError, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::remote_write::LabelMapping;
use crate::AppState;

/// The route.
pub const PATH: &str = "/api/v1/import";

/// Samples committed together: large enough that a commit's fsync is amortised, small
/// enough that the batches in flight (one parsed, one committing) stay a few MiB.
const BATCH_SAMPLES: usize = 32 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    /// How many samples were stored.
    pub accepted: usize,
    /// How many series lines were read.
    pub lines: usize,
}

/// One line: a series' labels and its samples as two arrays of equal length.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesLine<'a> {
    #[serde(borrow)]
    metric: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    values: Vec<f64>,
    timestamps: Vec<i64>,
}

/// Where a sample of a batch came from: the first sample of `line` is at `start`.
#[derive(Debug, Clone, Copy)]
struct LineStart {
    start: usize,
    line: usize,
}

#[derive(Debug, Default)]
struct Batch {
    samples: Vec<Sample>,
    lines: Vec<LineStart>,
}

/// A line's samples, or why it cannot be stored (its field, and the message).
fn parse_line(text: &[u8], mapping: &LabelMapping) -> Result<Vec<Sample>, ValidationError> {
    let line: SeriesLine<'_> = serde_json::from_slice(text).map_err(|error| {
        // Parsed again only to name the field (`values[2]`).
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        match serde_path_to_error::deserialize::<_, SeriesLine<'_>>(&mut deserializer) {
            Err(located) => {
                let path = located.path().to_string();
                let field = if path == "." { String::new() } else { path };
                ValidationError::new(field, located.inner().to_string())
            }
            Ok(_) => ValidationError::new("", error.to_string()),
        }
    })?;
    let label = |name: &str| {
        line.metric
            .get(name)
            .map(|value| value.as_ref())
            .filter(|value| !value.is_empty())
    };
    let required = |name: &str, what: &str| {
        label(name).ok_or_else(|| {
            ValidationError::new(
                "metric",
                format!(
                    "no {name:?} label, which names the {what} (labels: {:?})",
                    line.metric.keys().collect::<Vec<_>>()
                ),
            )
        })
    };
    let in_metric = |error: ValidationError| {
        ValidationError::new(format!("metric.{}", error.field), error.message)
    };
    let model = ModelName::parse(required(&mapping.model, "model")?).map_err(in_metric)?;
    let version = Version::parse(required(&mapping.version, "version")?).map_err(in_metric)?;
    let metric = label(&mapping.metric)
        .or_else(|| label("__name__"))
        .ok_or_else(|| {
            ValidationError::new(
                "metric",
                format!(
                    "no {:?} label and no __name__: nothing names the metric",
                    mapping.metric
                ),
            )
        })?;
    let metric = Metric::parse(metric).map_err(in_metric)?;
    let dataset =
        Dataset::parse_optional(label(&mapping.dataset).unwrap_or("")).map_err(in_metric)?;
    if line.values.len() != line.timestamps.len() {
        return Err(ValidationError::new(
            "timestamps",
            format!(
                "{} timestamps for {} values: the two arrays pair up one to one",
                line.timestamps.len(),
                line.values.len()
            ),
        ));
    }
    line.values
        .iter()
        .zip(&line.timestamps)
        .enumerate()
        .map(|(index, (&value, &at))| {
            let timestamp = Timestamp::from_millis(at).map_err(|error| {
                ValidationError::new(format!("timestamps[{index}]"), error.to_string())
            })?;
            Ok(Sample {
                model: model.clone(),
                version: version.clone(),
                metric: metric.clone(),
                value,
                timestamp,
                dataset: dataset.clone(),
            })
        })
        .collect()
}

/// Why an import stopped before the end of its body.
enum Stop {
    /// A line that cannot be stored: its number and what is wrong.
    Line(usize, ValidationError),
    Other(ApiError),
}

impl Stop {
    /// The answer, once `stored` (the samples committed before the stop) is known.
    fn into_error(self, stored: usize) -> ApiError {
        match self {
            Stop::Other(error) => error,
            Stop::Line(line, error) => {
                let field = match error.field.is_empty() {
                    true => format!("line {line}"),
                    false => format!("line {line}.{}", error.field),
                };
                ApiError::bad_request(
                    field,
                    format!(
                        "{}; the import stopped at this line: the first {stored} samples \
                         were stored, none after them",
                        error.message
                    ),
                )
            }
        }
    }
}

/// The line and value index of a batch's sample `index`.
fn locate(lines: &[LineStart], index: usize) -> (usize, usize) {
    let at = lines
        .partition_point(|l| l.start <= index)
        .saturating_sub(1);
    let line = lines
        .get(at)
        .copied()
        .unwrap_or(LineStart { start: 0, line: 0 });
    (line.line, index - line.start)
}

/// Commits batches in arrival order until the parser is done or a commit fails; says
/// how many samples it stored and what stopped it.
async fn commit(state: AppState, mut batches: mpsc::Receiver<Batch>) -> (usize, Option<ApiError>) {
    let mut stored = 0;
    while let Some(Batch { samples, lines }) = batches.recv().await {
        let count = samples.len();
        let result = state
            .store_samples(samples, "import", |index, error| {
                let (line, position) = locate(&lines, index);
                let field = match error.field.as_str() {
                    "timestamp" => format!("timestamps[{position}]"),
                    "value" => format!("values[{position}]"),
                    other => other.to_owned(),
                };
                Stop::Line(line, ValidationError::new(field, error.message)).into_error(stored)
            })
            .await;
        match result {
            Ok(_) => stored += count,
            Err(error) => return (stored, Some(error)),
        }
    }
    (stored, None)
}

/// Imports series in VictoriaMetrics' JSON-lines format, streamed.
#[utoipa::path(
    post,
    path = "/api/v1/import",
    tag = "ingestion",
    request_body(
        content((String = "application/x-ndjson"), (String = "application/json"), (String = "text/plain")),
        description = "One series per line: {\"metric\": {labels}, \"values\": [...], \"timestamps\": [ms, ...]} \
                       (VictoriaMetrics' /api/v1/import). Labels map as remote write's do: model, version, \
                       metric (or __name__), dataset. Streamed, any length; gzip with Content-Encoding: gzip."),
    responses(
        (status = 200, description = "Every line stored (durably)", body = ImportResponse),
        (status = 400, description = "A line that cannot be stored, named with its field (line 3.values[2]); the message says how many samples before it were stored", body = ErrorBody),
        (status = 413, description = "One line longer than max_body_bytes", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn import(State(state): State<AppState>, body: Body) -> Response {
    let (answer, body_left) = run_import(&state, body).await;
    match answer {
        Ok(imported) => Json(imported).into_response(),
        Err(error) => {
            let mut response = error.into_response();
            // The rest of the body is not read: the connection cannot carry another
            // request, and a client that pools connections must be told.
            if body_left {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// Reads, parses and stores the body; says whether part of it was left unread.
async fn run_import(state: &AppState, body: Body) -> (ApiResult<ImportResponse>, bool) {
    let mapping = state.remote_write_mapping().clone();
    let max_line = state.inner.limits.max_body_bytes;
    let idle = state.inner.limits.request_timeout;
    // One batch waits while one commits: parsing runs ahead by at most a batch.
    let (sender, receiver) = mpsc::channel::<Batch>(1);
    let committer = tokio::spawn(commit(state.clone(), receiver));
    let mut chunks = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut batch = Batch::default();
    let mut lines = 0usize;
    let mut stop: Option<Stop> = None;
    let mut committer_stopped = false;
    let mut end_of_body = false;
    while !end_of_body && stop.is_none() && !committer_stopped {
        let chunk = match tokio::time::timeout(idle, chunks.next()).await {
            Err(_) => {
                stop = Some(Stop::Other(ApiError::bad_request(
                    "body",
                    format!("no part of the body arrived for {idle:?}; the import stopped"),
                )));
                break;
            }
            Ok(Some(Err(error))) => {
                stop = Some(Stop::Other(ApiError::bad_request(
                    "body",
                    format!("the body could not be read: {error}"),
                )));
                break;
            }
            Ok(Some(Ok(bytes))) => bytes,
            Ok(None) => {
                end_of_body = true;
                axum::body::Bytes::new()
            }
        };
        let mut rest: &[u8] = &chunk;
        loop {
            let text: Cow<'_, [u8]> = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let line = &rest[..end];
                    rest = &rest[end + 1..];
                    if pending.is_empty() {
                        Cow::Borrowed(line)
                    } else {
                        pending.extend_from_slice(line);
                        Cow::Owned(std::mem::take(&mut pending))
                    }
                }
                // The last line needs no newline.
                None if end_of_body && !pending.is_empty() => {
                    Cow::Owned(std::mem::take(&mut pending))
                }
                None => {
                    pending.extend_from_slice(rest);
                    if pending.len() > max_line {
                        stop = Some(Stop::Other(ApiError::PayloadTooLarge));
                    }
                    break;
                }
            };
            lines += 1;
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_line(&text, &mapping) {
                Ok(samples) => {
                    batch.lines.push(LineStart {
                        start: batch.samples.len(),
                        line: lines,
                    });
                    batch.samples.extend(samples);
                }
                Err(error) => {
                    stop = Some(Stop::Line(lines, error));
                    break;
                }
            }
            if batch.samples.len() >= BATCH_SAMPLES
                && sender.send(std::mem::take(&mut batch)).await.is_err()
            {
                // The committer stopped on an error; its result says which.
                committer_stopped = true;
                break;
            }
        }
    }
    // The lines before a bad one are stored too; after a failed commit nothing more is.
    let flush = match &stop {
        None | Some(Stop::Line(..)) => !committer_stopped,
        Some(Stop::Other(_)) => false,
    };
    if flush && !batch.samples.is_empty() {
        // An error here means the committer stopped; its result says why.
        let _ = sender.send(batch).await;
    }
    drop(sender);
    let answer = match committer.await {
        Err(error) => Err(ApiError::Internal(format!(
            "the import's commit task failed: {error}"
        ))),
        Ok((_, Some(error))) => Err(error),
        Ok((stored, None)) => match stop {
            Some(stop) => Err(stop.into_error(stored)),
            None => Ok(ImportResponse {
                accepted: stored,
                lines,
            }),
        },
    };
    (answer, !end_of_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> LabelMapping {
        LabelMapping::default()
    }

    #[test]
    fn a_line_maps_labels_and_pairs_values_with_timestamps() {
        let samples = parse_line(
            br#"{"metric":{"__name__":"model_perf","model":"m","version":"v1","metric":"accuracy","dataset":"prod"},"values":[0.9,0.8],"timestamps":[1000,2000]}"#,
            &mapping(),
        )
        .unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].model.as_str(), "m");
        assert_eq!(samples[1].metric.as_str(), "accuracy");
        assert_eq!(samples[1].timestamp.as_millis(), 2000);
        assert_eq!(samples[1].value, 0.8);
        assert_eq!(
            samples[0].dataset.as_ref().map(Dataset::as_str),
            Some("prod")
        );
    }

    #[test]
    fn the_metric_name_names_the_metric_when_no_metric_label() {
        let samples = parse_line(
            br#"{"metric":{"__name__":"latency_p99_ms","model":"m","version":"v1"},"values":[12.5],"timestamps":[1000]}"#,
            &mapping(),
        )
        .unwrap();
        assert_eq!(samples[0].metric.as_str(), "latency_p99_ms");
    }

    #[test]
    fn bad_lines_name_the_field() {
        let field = |text: &str| parse_line(text.as_bytes(), &mapping()).unwrap_err().field;
        assert_eq!(
            field(
                r#"{"metric":{"version":"v1","metric":"accuracy"},"values":[1],"timestamps":[1]}"#
            ),
            "metric"
        );
        assert_eq!(
            field(
                r#"{"metric":{"model":"m","version":"v1","metric":"accuracy"},"values":[1,2],"timestamps":[1]}"#
            ),
            "timestamps"
        );
        assert_eq!(
            field(
                r#"{"metric":{"model":"m","version":"v1","metric":"accuracy"},"values":[1,"x"],"timestamps":[1,2]}"#
            ),
            "values[1]"
        );
        assert_eq!(
            field(
                r#"{"metric":{"model":"m","version":"v1","metric":"accuracy"},"values":[1],"timestamps":[1],"extra":1}"#
            ),
            "extra"
        );
        assert_eq!(field("not json"), "");
        assert_eq!(
            field(
                r#"{"metric":{"model":"bad name","version":"v1","metric":"accuracy"},"values":[1],"timestamps":[1]}"#
            ),
            "metric.model"
        );
    }

    #[test]
    fn a_batch_locates_its_samples_by_line() {
        let lines = [
            LineStart { start: 0, line: 1 },
            LineStart { start: 3, line: 4 },
        ];
        assert_eq!(locate(&lines, 0), (1, 0));
        assert_eq!(locate(&lines, 2), (1, 2));
        assert_eq!(locate(&lines, 3), (4, 0));
        assert_eq!(locate(&lines, 9), (4, 6));
    }
}
