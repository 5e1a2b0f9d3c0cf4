//! Prometheus remote write, version 1 (issue 20): `POST /api/v1/write` with a
//! snappy-compressed (block format) protobuf `WriteRequest`, as Prometheus's
//! `remote_write`, Grafana Agent and the Prometheus client libraries' pushers send it.
//!
//! Each series' labels are mapped to a sample's model, version, metric and dataset by a
//! [`LabelMapping`] (by default the labels `model`, `version`, `metric` — or the metric
//! name when there is no `metric` label — and `dataset`). A series without a model or
//! version label is not one of modelwatch's and is skipped (a Prometheus ships all it
//! scrapes, `up` and the like), and so are stale markers. Everything else must be a
//! valid sample, or the write is refused whole with 400 and a message naming the series,
//! which Prometheus logs and does not retry.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use modelwatch_core::{Dataset, Metric, ModelName, Sample, Timestamp, ValidationError, Version};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

/// The route.
pub const PATH: &str = "/api/v1/write";

/// The protobuf messages of remote write 1.0 (prometheus/prompb), shared with the
/// Prometheus metric store, which sends them; public for clients and tests that encode one.
pub use modelwatch_store::prometheus::proto;

/// Which labels of a remote-written series name its model, version, metric and dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMapping {
    pub model: String,
    pub version: String,
    /// The label naming the metric; the metric name (`__name__`) when a series has none.
    pub metric: String,
    pub dataset: String,
}

impl Default for LabelMapping {
    fn default() -> Self {
        LabelMapping {
            model: "model".into(),
            version: "version".into(),
            metric: "metric".into(),
            dataset: "dataset".into(),
        }
    }
}

/// Prometheus's stale marker: a NaN with this bit pattern ends a series; not a value.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// What a write request held.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub samples: Vec<Sample>,
    /// Series without the model or version label.
    pub skipped_series: usize,
}

/// Why a write request is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WriteError {
    #[error("the body is not snappy-compressed (block format): {0}")]
    Snappy(String),
    #[error("the body decompresses to {0} bytes, over the limit of {1}")]
    TooLarge(usize, usize),
    #[error("the body is not a remote-write WriteRequest (protobuf): {0}")]
    Protobuf(String),
    #[error("series {series}: {error}")]
    Invalid {
        series: String,
        error: ValidationError,
    },
}

fn describe(labels: &[proto::Label]) -> String {
    let name = labels
        .iter()
        .find(|l| l.name == "__name__")
        .map_or("", |l| l.value.as_str());
    let rest: Vec<String> = labels
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

/// Decompresses and decodes a request body into samples.
pub fn decode(
    body: &[u8],
    max_bytes: usize,
    mapping: &LabelMapping,
) -> Result<Decoded, WriteError> {
    let length = snap::raw::decompress_len(body).map_err(|e| WriteError::Snappy(e.to_string()))?;
    if length > max_bytes {
        return Err(WriteError::TooLarge(length, max_bytes));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| WriteError::Snappy(e.to_string()))?;
    let request = <proto::WriteRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| WriteError::Protobuf(e.to_string()))?;
    let mut decoded = Decoded::default();
    for series in request.timeseries {
        let label = |name: &str| {
            series
                .labels
                .iter()
                .find(|l| l.name == name && !l.value.is_empty())
                .map(|l| l.value.as_str())
        };
        let (Some(model), Some(version)) = (label(&mapping.model), label(&mapping.version)) else {
            decoded.skipped_series += 1;
            continue;
        };
        let invalid = |error| WriteError::Invalid {
            series: describe(&series.labels),
            error,
        };
        let metric = label(&mapping.metric)
            .or_else(|| label("__name__"))
            .unwrap_or("");
        let model = ModelName::parse(model).map_err(invalid)?;
        let version = Version::parse(version).map_err(invalid)?;
        let metric = Metric::parse(metric).map_err(invalid)?;
        let dataset =
            Dataset::parse_optional(label(&mapping.dataset).unwrap_or("")).map_err(invalid)?;
        for sample in &series.samples {
            if sample.value.to_bits() == STALE_NAN {
                continue;
            }
            let timestamp = Timestamp::from_millis(sample.timestamp)
                .map_err(|e| invalid(ValidationError::new("timestamp", e.to_string())))?;
            decoded.samples.push(Sample {
                model: model.clone(),
                version: version.clone(),
                metric: metric.clone(),
                value: sample.value,
                timestamp,
                dataset: dataset.clone(),
            });
        }
    }
    Ok(decoded)
}

/// Takes `Content-Encoding: snappy` off a remote write before the decompression layer
/// (which knows gzip only, and would refuse it with 415): the handler decompresses.
pub(crate) async fn take_snappy(mut request: Request, next: Next) -> Response {
    let snappy = request.uri().path() == PATH
        && request
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"snappy"));
    if snappy {
        request.headers_mut().remove(header::CONTENT_ENCODING);
    }
    next.run(request).await
}

/// Takes a Prometheus remote write (version 1: snappy-compressed protobuf) and stores its
/// samples. Series without the model or version label are skipped; the rest must be
/// valid samples or nothing is stored.
#[utoipa::path(post, path = "/api/v1/write", tag = "ingestion",
    request_body(
        content((String = "application/x-protobuf"), (String = "application/octet-stream")),
        description = "A snappy-compressed (block format) prometheus.WriteRequest, `Content-Encoding: snappy`"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Not a snappy-compressed WriteRequest, or a series' sample is invalid (named)", body = ErrorBody),
        (status = 413, description = "The body, compressed or decompressed, is over max_body_bytes", body = ErrorBody),
        (status = 415, description = "A Content-Type other than application/x-protobuf or application/octet-stream, or a Content-Encoding other than snappy or gzip", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn write(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        let essence = kind
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if !essence.eq_ignore_ascii_case("application/x-protobuf")
            && !essence.eq_ignore_ascii_case("application/octet-stream")
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "remote write takes Content-Type application/x-protobuf (snappy-compressed \
                 WriteRequest; application/octet-stream too), not {kind:?}"
            )));
        }
    }
    let decoded = decode(
        &body,
        state.inner.limits.max_body_bytes,
        state.remote_write_mapping(),
    )
    .map_err(|error| match &error {
        WriteError::TooLarge(..) => ApiError::PayloadTooLarge,
        WriteError::Invalid { error: invalid, .. } => {
            ApiError::bad_request(invalid.field.clone(), error.to_string())
        }
        _ => ApiError::bad_request("body", error.to_string()),
    })?;
    if decoded.skipped_series > 0 {
        tracing::debug!(
            skipped = decoded.skipped_series,
            "remote write: series without model or version labels skipped"
        );
    }
    if !decoded.samples.is_empty() {
        state
            .store_samples(decoded.samples, "remote_write", |index, error| {
                ApiError::bad_request(error.field.clone(), format!("sample {index}: {error}"))
            })
            .await?;
    }
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.headers_mut().insert(
        "x-modelwatch-skipped-series",
        HeaderValue::from(decoded.skipped_series),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn label(name: &str, value: &str) -> proto::Label {
        proto::Label {
            name: name.into(),
            value: value.into(),
        }
    }

    fn body(series: Vec<proto::TimeSeries>) -> Vec<u8> {
        let raw = proto::WriteRequest { timeseries: series }.encode_to_vec();
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("compresses")
    }

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> proto::TimeSeries {
        proto::TimeSeries {
            labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
            samples: samples
                .iter()
                .map(|(value, timestamp)| proto::Sample {
                    value: *value,
                    timestamp: *timestamp,
                })
                .collect(),
        }
    }

    #[test]
    fn labels_map_to_model_version_metric_and_dataset() {
        let decoded = decode(
            &body(vec![
                series(
                    &[
                        ("__name__", "accuracy"),
                        ("model", "fraud"),
                        ("version", "v1"),
                    ],
                    &[(0.9, 1000), (0.8, 2000)],
                ),
                series(
                    &[
                        ("__name__", "model_quality"),
                        ("metric", "precision"),
                        ("model", "fraud"),
                        ("version", "v1"),
                        ("dataset", "canary"),
                    ],
                    &[(0.7, 1000)],
                ),
                series(&[("__name__", "up"), ("job", "x")], &[(1.0, 1000)]),
            ]),
            1 << 20,
            &LabelMapping::default(),
        )
        .expect("decodes");
        assert_eq!(decoded.skipped_series, 1);
        assert_eq!(decoded.samples.len(), 3);
        assert_eq!(decoded.samples[1].value, 0.8);
        assert_eq!(decoded.samples[1].timestamp.as_millis(), 2000);
        assert_eq!(decoded.samples[2].metric.to_string(), "precision");
        assert_eq!(
            decoded.samples[2].dataset.as_ref().map(|d| d.to_string()),
            Some("canary".into())
        );
    }

    #[test]
    fn a_configured_mapping_reads_other_labels() {
        let mapping = LabelMapping {
            model: "model_name".into(),
            version: "model_version".into(),
            metric: "metric_type".into(),
            dataset: "dataset".into(),
        };
        let decoded = decode(
            &body(vec![series(
                &[
                    ("__name__", "performance_metric"),
                    ("model_name", "fraud"),
                    ("model_version", "v2"),
                    ("metric_type", "recall"),
                ],
                &[(0.5, 1000)],
            )]),
            1 << 20,
            &mapping,
        )
        .expect("decodes");
        assert_eq!(decoded.samples[0].version.to_string(), "v2");
        assert_eq!(decoded.samples[0].metric.to_string(), "recall");
    }

    #[test]
    fn stale_markers_are_skipped_and_bad_bodies_named() {
        let decoded = decode(
            &body(vec![series(
                &[("__name__", "accuracy"), ("model", "m"), ("version", "v")],
                &[(f64::from_bits(STALE_NAN), 1000), (0.5, 2000)],
            )]),
            1 << 20,
            &LabelMapping::default(),
        )
        .expect("decodes");
        assert_eq!(decoded.samples.len(), 1);
        assert!(matches!(
            decode(b"not snappy at all", 1 << 20, &LabelMapping::default()),
            Err(WriteError::Snappy(_) | WriteError::Protobuf(_))
        ));
        let big = body(vec![series(&[("model", "m")], &[(1.0, 1); 100])]);
        assert!(matches!(
            decode(&big, 10, &LabelMapping::default()),
            Err(WriteError::TooLarge(_, 10))
        ));
        let error = decode(
            &body(vec![series(
                &[("__name__", "accuracy"), ("model", "m"), ("version", "v")],
                &[(0.5, -99_999_999_999_999)],
            )]),
            1 << 20,
            &LabelMapping::default(),
        )
        .expect_err("out of range");
        assert!(error.to_string().contains("accuracy{"), "{error}");
    }
}
