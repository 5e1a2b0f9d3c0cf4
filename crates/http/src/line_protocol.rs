//! The InfluxDB line protocol, as Telegraf and the Influx client libraries send it.
//!
//! `measurement[,tag=value…] field=value[,field=value…] [timestamp]`, one point per line.
//! modelwatch maps it onto samples like this:
//!
//! - the measurement must be `model_metrics`;
//! - tag `model` and tag `version` name the model version (both required), tag `dataset`
//!   is optional, other tags (Telegraf's `host`, say) are ignored;
//! - every field is one metric: its key is the metric name, its value the sample value
//!   (float, integer `12i` or unsigned `12u`; strings and booleans are refused);
//! - the timestamp is an integer in the request's precision (nanoseconds by default)
//!   and defaults to the time of the request.
//!
//! Errors name the line and the part of it that is wrong, so a client can find it.

use modelwatch_core::{Dataset, Metric, ModelName, Sample, Timestamp, ValidationError, Version};

/// The measurement modelwatch reads.
pub const MEASUREMENT: &str = "model_metrics";

/// What a line-protocol timestamp counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// Parses both the v1 (`n`, `u`, `ms`, `s`, `m`, `h`) and the v2 (`ns`, `us`, `ms`, `s`)
    /// spellings.
    pub fn parse(text: &str) -> Result<Precision, ValidationError> {
        Ok(match text {
            "n" | "ns" => Precision::Nanoseconds,
            "u" | "us" | "µ" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            other => {
                return Err(ValidationError::new(
                    "precision",
                    format!("{other:?} is not a precision (use ns, us, ms, s, m or h)"),
                ))
            }
        })
    }

    fn to_millis(self, value: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(value.div_euclid(1_000_000)),
            Precision::Microseconds => Some(value.div_euclid(1_000)),
            Precision::Milliseconds => Some(value),
            Precision::Seconds => value.checked_mul(1_000),
            Precision::Minutes => value.checked_mul(60_000),
            Precision::Hours => value.checked_mul(3_600_000),
        }
    }
}

/// A bad line: its number (from 1), the part that is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {field}: {message}")]
pub struct LineError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

fn error(line: usize, field: impl Into<String>, message: impl Into<String>) -> LineError {
    LineError {
        line,
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a whole request body; empty lines and `#` comments are skipped. Stops at the
/// first bad line, since a write is all or nothing.
pub fn parse(body: &str, precision: Precision, now: Timestamp) -> Result<Vec<Sample>, LineError> {
    let mut samples = Vec::new();
    for (index, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_line(line, index + 1, precision, now, &mut samples)?;
    }
    Ok(samples)
}

/// Splits at the first unescaped, unquoted `separator`.
fn split_unescaped(text: &str, separator: u8, honour_quotes: bool) -> (&str, Option<&str>) {
    let bytes = text.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'"' if honour_quotes => in_quotes = !in_quotes,
            byte if byte == separator && !in_quotes => {
                return (&text[..i], Some(&text[i + 1..]));
            }
            _ => {}
        }
        i += 1;
    }
    (text, None)
}

/// Splits on every unescaped, unquoted `separator`.
fn split_all(text: &str, separator: u8, honour_quotes: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let (part, tail) = split_unescaped(rest, separator, honour_quotes);
        parts.push(part);
        match tail {
            Some(tail) => rest = tail,
            None => return parts,
        }
    }
}

fn unescape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\\') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next @ (',' | '=' | ' ' | '\\' | '"')) => out.push(next),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out.into()
}

fn parse_line(
    line: &str,
    number: usize,
    precision: Precision,
    now: Timestamp,
    out: &mut Vec<Sample>,
) -> Result<(), LineError> {
    let (series, rest) = split_unescaped(line, b' ', false);
    let rest = rest
        .map(str::trim_start)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| error(number, "fields", "missing: a line needs at least one field"))?;
    let (fields, timestamp) = split_unescaped(rest, b' ', true);

    let mut parts = split_all(series, b',', false).into_iter();
    let measurement = unescape(parts.next().unwrap_or_default());
    if measurement != MEASUREMENT {
        return Err(error(
            number,
            "measurement",
            format!("{measurement:?} is not {MEASUREMENT:?}"),
        ));
    }
    let (mut model, mut version, mut dataset) = (None, None, None);
    for tag in parts {
        let (key, value) = split_unescaped(tag, b'=', false);
        let value = value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| error(number, format!("tag {key}"), "needs key=value"))?;
        let value = unescape(value);
        let named = |e: ValidationError| error(number, format!("tag {}", e.field), e.message);
        match key {
            "model" => model = Some(ModelName::parse(&value).map_err(named)?),
            "version" => version = Some(Version::parse(&value).map_err(named)?),
            "dataset" => dataset = Some(Dataset::parse(&value).map_err(named)?),
            _ => {} // Telegraf adds host and others; they carry no meaning here.
        }
    }
    let model = model.ok_or_else(|| error(number, "tag model", "missing"))?;
    let version = version.ok_or_else(|| error(number, "tag version", "missing"))?;

    let timestamp = match timestamp.map(str::trim).filter(|t| !t.is_empty()) {
        None => now,
        Some(text) => {
            let raw: i64 = text
                .parse()
                .map_err(|_| error(number, "timestamp", format!("{text:?} is not an integer")))?;
            precision
                .to_millis(raw)
                .and_then(|ms| Timestamp::from_millis(ms).ok())
                .ok_or_else(|| {
                    error(
                        number,
                        "timestamp",
                        format!("{text} is out of range for {precision:?}"),
                    )
                })?
        }
    };

    for field in split_all(fields, b',', true) {
        let (key, value) = split_unescaped(field, b'=', true);
        let key = unescape(key);
        let value = value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| error(number, format!("field {key}"), "needs key=value"))?;
        let metric =
            Metric::parse(&key).map_err(|e| error(number, format!("field {key}"), e.message))?;
        let value =
            field_value(value).map_err(|message| error(number, format!("field {key}"), message))?;
        out.push(Sample {
            model: model.clone(),
            version: version.clone(),
            metric,
            value,
            timestamp,
            dataset: dataset.clone(),
        });
    }
    Ok(())
}

fn field_value(text: &str) -> Result<f64, String> {
    if text.starts_with('"') {
        return Err("string values are not metrics; send a number".into());
    }
    if matches!(
        text,
        "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false" | "False" | "FALSE"
    ) {
        return Err("boolean values are not metrics; send a number".into());
    }
    let number = text
        .strip_suffix('i')
        .or_else(|| text.strip_suffix('u'))
        .unwrap_or(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !value.is_finite() {
        return Err(format!("{text:?} is not a finite number"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000).expect("valid")
    }

    fn one(body: &str) -> Result<Vec<Sample>, LineError> {
        parse(body, Precision::Nanoseconds, now())
    }

    #[test]
    fn a_line_with_several_fields_gives_a_sample_per_metric() {
        let samples = one(
            "model_metrics,model=fraud,version=v2,dataset=canary,host=a accuracy=0.93,latency=41i 1714564800000000000",
        )
        .expect("valid");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].model.as_str(), "fraud");
        assert_eq!(samples[0].metric, Metric::Accuracy);
        assert_eq!(samples[0].value, 0.93);
        assert_eq!(samples[0].timestamp.as_millis(), 1_714_564_800_000);
        assert_eq!(samples[1].metric, Metric::Latency);
        assert_eq!(samples[1].value, 41.0);
        assert_eq!(
            samples[1].dataset.as_ref().map(|d| d.as_str()),
            Some("canary")
        );
    }

    #[test]
    fn missing_timestamp_is_now_and_precision_scales() {
        let samples = one("model_metrics,model=m,version=v accuracy=1").expect("valid");
        assert_eq!(samples[0].timestamp, now());
        let samples = parse(
            "model_metrics,model=m,version=v accuracy=1 1714564800",
            Precision::Seconds,
            now(),
        )
        .expect("valid");
        assert_eq!(samples[0].timestamp.as_millis(), 1_714_564_800_000);
    }

    #[test]
    fn escaped_spaces_and_commas_in_tags() {
        let samples = one("model_metrics,model=a\\ b,version=v accuracy=1");
        // A space is not allowed in a model name: the error names the tag.
        let error = samples.expect_err("space in name");
        assert_eq!(error.line, 1);
        assert_eq!(error.field, "tag model");
    }

    #[test]
    fn errors_name_line_and_part() {
        let body =
            "model_metrics,model=m,version=v accuracy=0.9\n\nmodel_metrics,model=m accuracy=0.9";
        let error = one(body).expect_err("missing version");
        assert_eq!((error.line, error.field.as_str()), (3, "tag version"));

        let error = one("cpu,model=m,version=v usage=1").expect_err("measurement");
        assert_eq!(error.field, "measurement");

        let error = one("model_metrics,model=m,version=v accuracy=\"high\"").expect_err("string");
        assert_eq!(error.field, "field accuracy");

        let error = one("model_metrics,model=m,version=v accuracy=0.9 soon").expect_err("time");
        assert_eq!(error.field, "timestamp");

        let error = one("model_metrics,model=m,version=v").expect_err("no fields");
        assert_eq!(error.field, "fields");

        let error = one("model_metrics,model=m,version=v accuracy=true").expect_err("bool");
        assert_eq!(error.field, "field accuracy");
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let samples = one("# hello\n\nmodel_metrics,model=m,version=v accuracy=0.5 1000000\n")
            .expect("valid");
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].timestamp.as_millis(), 1);
    }
}
