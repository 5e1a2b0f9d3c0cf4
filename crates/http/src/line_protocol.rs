//! The InfluxDB line protocol, as Telegraf and the Influx client libraries send it.
//!
//! `measurement[,tag=value…] field=value[,field=value…] [timestamp]`, one point per line.
//! modelwatch maps it onto samples by an [`InfluxMapping`] (`[influx]` in the
//! configuration), which reads two shapes of point:
//!
//! - the *wide* shape, modelwatch's own: measurement `model_metrics`, tags `model` and
//!   `version` (both required) and `dataset` (optional); every field is one metric, its
//!   key the metric name, its value the sample value;
//! - the *narrow* shape, the product description's: measurement `performance_metric`,
//!   tags `model_name`, `model_version`, `metric_type` (all required) and `dataset`
//!   (optional); the one field `value` holds the sample value.
//!
//! In both, other tags (Telegraf's `host`, say) are ignored; values are floats, integers
//! `12i` or unsigned `12u` (strings and booleans are refused); the timestamp is an integer
//! in the request's precision (nanoseconds by default) and defaults to the time of the
//! request.
//!
//! Errors name the line and the part of it that is wrong, so a client can find it.

use modelwatch_core::{Dataset, Metric, ModelName, Sample, Timestamp, ValidationError, Version};

/// The measurement of modelwatch's own (wide) shape, by default.
pub const MEASUREMENT: &str = "model_metrics";
/// The measurement of the product description's (narrow) shape, by default.
pub const NARROW_MEASUREMENT: &str = "performance_metric";

/// modelwatch's own shape: every field of a point is a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WideShape {
    pub measurement: String,
    /// The tags naming the model, version and (optional) dataset.
    pub model: String,
    pub version: String,
    pub dataset: String,
}

/// The product description's shape: a tag names the metric, one field holds its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarrowShape {
    pub measurement: String,
    /// The tags naming the model, version, metric and (optional) dataset.
    pub model: String,
    pub version: String,
    pub metric: String,
    pub dataset: String,
    /// The field holding the value.
    pub field: String,
}

/// How InfluxDB points map to samples and back: the two measurements modelwatch reads
/// and writes (`/write`, `/api/v2/write`) and answers InfluxQL about (`/query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfluxMapping {
    pub wide: WideShape,
    pub narrow: NarrowShape,
}

impl Default for InfluxMapping {
    fn default() -> Self {
        InfluxMapping {
            wide: WideShape {
                measurement: MEASUREMENT.into(),
                model: "model".into(),
                version: "version".into(),
                dataset: "dataset".into(),
            },
            narrow: NarrowShape {
                measurement: NARROW_MEASUREMENT.into(),
                model: "model_name".into(),
                version: "model_version".into(),
                metric: "metric_type".into(),
                dataset: "dataset".into(),
                field: "value".into(),
            },
        }
    }
}

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

/// A parsed body: the samples and, at the same index, the line each came from, so that a
/// refusal of the store (a value outside its metric's declared range) can name the line
/// and field rather than a sample's index.
#[derive(Debug, Default)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    pub lines: Vec<usize>,
}

impl Parsed {
    /// The line and field of the sample at `index`, as a [`LineError`] names them.
    pub fn origin(&self, index: usize) -> Option<(usize, String)> {
        let line = *self.lines.get(index)?;
        let metric = &self.samples.get(index)?.metric;
        Some((line, format!("field {metric}")))
    }
}

/// Parses a whole request body; empty lines and `#` comments are skipped. Stops at the
/// first bad line, since a write is all or nothing.
pub fn parse(
    body: &str,
    precision: Precision,
    now: Timestamp,
    mapping: &InfluxMapping,
) -> Result<Parsed, LineError> {
    let mut parsed = Parsed::default();
    for (index, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        parse_line(line, index + 1, precision, now, mapping, &mut parsed)?;
    }
    Ok(parsed)
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
    mapping: &InfluxMapping,
    out: &mut Parsed,
) -> Result<(), LineError> {
    let (series, rest) = split_unescaped(line, b' ', false);
    let rest = rest
        .map(str::trim_start)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| error(number, "fields", "missing: a line needs at least one field"))?;
    let (fields, timestamp) = split_unescaped(rest, b' ', true);

    let mut parts = split_all(series, b',', false).into_iter();
    let measurement = unescape(parts.next().unwrap_or_default());
    // The tag names of the line's shape: (model, version, metric, dataset).
    let (wide, narrow) = (&mapping.wide, &mapping.narrow);
    let names: (&str, &str, Option<&str>, &str) = if measurement == wide.measurement.as_str() {
        (
            wide.model.as_str(),
            wide.version.as_str(),
            None,
            wide.dataset.as_str(),
        )
    } else if measurement == narrow.measurement.as_str() {
        (
            narrow.model.as_str(),
            narrow.version.as_str(),
            Some(narrow.metric.as_str()),
            narrow.dataset.as_str(),
        )
    } else {
        return Err(error(
            number,
            "measurement",
            format!(
                "{measurement:?} is neither {:?} nor {:?}",
                wide.measurement, narrow.measurement
            ),
        ));
    };
    let (mut model, mut version, mut metric, mut dataset) = (None, None, None, None);
    for tag in parts {
        let (key, value) = split_unescaped(tag, b'=', false);
        let value = value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| error(number, format!("tag {key}"), "needs key=value"))?;
        let key = unescape(key);
        let value = unescape(value);
        let named = |e: ValidationError| error(number, format!("tag {key}"), e.message);
        if key == names.0 {
            model = Some(ModelName::parse(&value).map_err(named)?);
        } else if key == names.1 {
            version = Some(Version::parse(&value).map_err(named)?);
        } else if Some(&*key) == names.2 {
            metric = Some(Metric::parse(&value).map_err(named)?);
        } else if key == names.3 {
            dataset = Dataset::parse_optional(&value).map_err(named)?;
        }
        // Telegraf adds host and others; they carry no meaning here.
    }
    let missing = |tag: &str| error(number, format!("tag {tag}"), "missing");
    let model = model.ok_or_else(|| missing(names.0))?;
    let version = version.ok_or_else(|| missing(names.1))?;
    let metric = match names.2 {
        Some(tag) => Some(metric.ok_or_else(|| missing(tag))?),
        None => None,
    };

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

    let mut metrics_of_line = std::collections::HashSet::new();
    for field in split_all(fields, b',', true) {
        let (key, value) = split_unescaped(field, b'=', true);
        let key = unescape(key);
        let value = value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| error(number, format!("field {key}"), "needs key=value"))?;
        let metric = match &metric {
            // The narrow shape: the tag named the metric, and only its value field counts.
            Some(metric) if key == narrow.field.as_str() => metric.clone(),
            Some(_) => {
                return Err(error(
                    number,
                    format!("field {key}"),
                    format!(
                        "{:?} points have one field, {:?}; tag {:?} names the metric",
                        narrow.measurement, narrow.field, narrow.metric
                    ),
                ))
            }
            None => {
                Metric::parse(&key).map_err(|e| error(number, format!("field {key}"), e.message))?
            }
        };
        let value =
            field_value(value).map_err(|message| error(number, format!("field {key}"), message))?;
        // One line is one point: a metric twice on it has no single value.
        if !metrics_of_line.insert(metric.clone()) {
            return Err(error(
                number,
                format!("field {key}"),
                "appears twice on the line; a line gives each metric one value",
            ));
        }
        out.lines.push(number);
        out.samples.push(Sample {
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
    // Integers are exact in the line protocol: one that does not fit its type is an
    // error, as InfluxDB makes it, not a float rounded to something else.
    if let Some(digits) = text.strip_suffix('i') {
        return digits
            .parse::<i64>()
            .map(|n| n as f64)
            .map_err(|_| format!("{text:?} is not a 64-bit signed integer"));
    }
    if let Some(digits) = text.strip_suffix('u') {
        return digits
            .parse::<u64>()
            .map(|n| n as f64)
            .map_err(|_| format!("{text:?} is not a 64-bit unsigned integer"));
    }
    let value: f64 = text
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
        parse(
            body,
            Precision::Nanoseconds,
            now(),
            &InfluxMapping::default(),
        )
        .map(|parsed| parsed.samples)
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
            &InfluxMapping::default(),
        )
        .expect("valid")
        .samples;
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

    #[test]
    fn integers_out_of_their_range_are_errors_not_rounded_floats() {
        for (value, says) in [
            ("99999999999999999999999i", "64-bit signed integer"),
            ("9223372036854775808i", "64-bit signed integer"),
            ("-1u", "64-bit unsigned integer"),
            ("18446744073709551616u", "64-bit unsigned integer"),
            ("1.5i", "64-bit signed integer"),
        ] {
            let error =
                one(&format!("model_metrics,model=m,version=v latency={value}")).expect_err(value);
            assert_eq!(error.field, "field latency", "{value}");
            assert!(error.message.contains(says), "{value}: {}", error.message);
        }
        let samples = one(
            "model_metrics,model=m,version=v latency=-9223372036854775808i,throughput=18446744073709551615u",
        )
        .expect("the extremes fit");
        assert_eq!(samples[0].value, i64::MIN as f64);
        assert_eq!(samples[1].value, u64::MAX as f64);
    }

    #[test]
    fn a_metric_twice_on_one_line_is_an_error_naming_it() {
        let error = one("model_metrics,model=m,version=v accuracy=0.9,accuracy=0.8")
            .expect_err("duplicate");
        assert_eq!((error.line, error.field.as_str()), (1, "field accuracy"));
        assert!(error.message.contains("twice"), "{}", error.message);
        // The same metric on two lines is two points.
        let samples = one("model_metrics,model=m,version=v accuracy=0.9 1000000\n\
             model_metrics,model=m,version=v accuracy=0.8 2000000")
        .expect("two lines");
        assert_eq!(samples.len(), 2);
    }

    #[test]
    fn every_sample_knows_its_line_and_field() {
        let parsed = parse(
            "# header\nmodel_metrics,model=m,version=v accuracy=0.9,latency=3i\n\n\
             model_metrics,model=m,version=v f1_score=0.5",
            Precision::Nanoseconds,
            now(),
            &InfluxMapping::default(),
        )
        .expect("valid");
        let origins: Vec<_> = (0..parsed.samples.len())
            .map(|index| parsed.origin(index).expect("every sample has one"))
            .collect();
        assert_eq!(
            origins,
            [
                (2, "field accuracy".to_owned()),
                (2, "field latency".to_owned()),
                (4, "field f1_score".to_owned())
            ]
        );
        assert_eq!(parsed.origin(3), None);
    }

    #[test]
    fn the_product_description_s_narrow_shape_is_one_metric_per_point() {
        let samples = one(
            "performance_metric,model_name=fraud,model_version=v2,metric_type=accuracy,host=a value=0.93 1714564800000000000",
        )
        .expect("valid");
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].model.as_str(), "fraud");
        assert_eq!(samples[0].version.as_str(), "v2");
        assert_eq!(samples[0].metric, Metric::Accuracy);
        assert_eq!(samples[0].value, 0.93);

        let error = one("performance_metric,model_name=m,model_version=v value=1")
            .expect_err("no metric tag");
        assert_eq!(error.field, "tag metric_type");
        let error =
            one("performance_metric,model_name=m,model_version=v,metric_type=accuracy other=1")
                .expect_err("another field");
        assert_eq!(error.field, "field other");
    }

    #[test]
    fn the_mapping_renames_measurements_and_tags() {
        let mut mapping = InfluxMapping::default();
        mapping.wide.measurement = "models".into();
        mapping.wide.model = "name".into();
        mapping.narrow.metric = "kind".into();
        let samples = parse(
            "models,name=m,version=v accuracy=0.5\nperformance_metric,model_name=m,model_version=v,kind=latency value=3",
            Precision::Nanoseconds,
            now(),
            &mapping,
        )
        .expect("valid")
        .samples;
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[1].metric, Metric::Latency);
        let error = parse(
            "model_metrics,model=m,version=v accuracy=0.5",
            Precision::Nanoseconds,
            now(),
            &mapping,
        )
        .expect_err("the default measurement is renamed");
        assert_eq!(error.field, "measurement");
    }
}
