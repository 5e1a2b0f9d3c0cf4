//! The texts InfluxDB reads: line protocol for writes, InfluxQL for reads, each with its
//! own escaping. Pure functions, tested here against the syntax InfluxDB 1.x documents.

use std::fmt::Write as _;

use modelwatch_core::{DatasetScope, SeriesKey, TimeRange, Timestamp};

use super::{DATASET_TAG, MEASUREMENT, MODEL_TAG, VERSION_TAG};

/// The last millisecond InfluxDB can store: its timestamps are signed 64-bit
/// nanoseconds, up to 2262-04-11T23:47:16.854Z.
pub const MAX_MS: i64 = i64::MAX / 1_000_000 - 1;

/// A tag key or value, a field key or a measurement name in line protocol: commas,
/// equals signs, spaces and backslashes escaped.
pub fn key(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(c, ',' | '=' | ' ' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A string field value in line protocol.
pub fn string_field(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A series named by borrowed parts (model, version, metric, dataset): a batch's samples
/// are grouped and written without copying their names.
pub type SeriesRef<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

/// The parts of a sample's series.
pub fn series_of(sample: &modelwatch_core::Sample) -> SeriesRef<'_> {
    (
        sample.model.as_str(),
        sample.version.as_str(),
        sample.metric.as_str(),
        sample.dataset.as_ref().map(|d| d.as_str()),
    )
}

/// One sample as a line: `model_metrics,dataset=D,model=M,version=V METRIC=VALUE MS`,
/// tags in key order (as InfluxDB sorts them), the default dataset without its tag.
pub fn sample_line(series: SeriesRef<'_>, value: f64, timestamp: Timestamp, out: &mut String) {
    let (model, version, metric, dataset) = series;
    key(MEASUREMENT, out);
    if let Some(dataset) = dataset {
        out.push(',');
        out.push_str(DATASET_TAG);
        out.push('=');
        key(dataset, out);
    }
    out.push(',');
    out.push_str(MODEL_TAG);
    out.push('=');
    key(model, out);
    out.push(',');
    out.push_str(VERSION_TAG);
    out.push('=');
    key(version, out);
    out.push(' ');
    key(metric, out);
    // Rust prints the shortest text that reads back as the same f64, never with an
    // exponent; line protocol reads a number without `i` as a float.
    let _ = write!(out, "={value} {}", timestamp.as_millis());
    out.push('\n');
}

/// An InfluxQL identifier: double-quoted.
pub fn ident(text: &str) -> String {
    quoted(text, '"')
}

/// An InfluxQL string literal: single-quoted.
pub fn literal(text: &str) -> String {
    quoted(text, '\'')
}

/// `text` between `quote`s, with the quote and the backslash escaped.
fn quoted(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(quote);
    out
}

/// `time >= STARTms AND time < ENDms`, the end held to what InfluxDB can store.
pub fn time_range(range: TimeRange) -> String {
    let end = range.end.as_millis().min(MAX_MS + 1);
    format!(
        "time >= {}ms AND time < {end}ms",
        range.start.as_millis().min(end)
    )
}

/// The tag conditions naming one series (its metric is the field selected).
pub fn series_condition(series: &SeriesKey) -> String {
    format!(
        "{} = {} AND {} = {} AND {} = {}",
        ident(MODEL_TAG),
        literal(series.model.as_str()),
        ident(VERSION_TAG),
        literal(series.version.as_str()),
        ident(DATASET_TAG),
        // InfluxQL matches a point without the tag with the empty string.
        literal(series.dataset.as_ref().map_or("", |d| d.as_str())),
    )
}

/// The tag conditions of a series filter (`None` when it matches every series).
pub fn filter_condition(filter: &crate::SeriesFilter) -> Vec<String> {
    let mut conditions = Vec::new();
    if let Some(model) = &filter.model {
        conditions.push(format!(
            "{} = {}",
            ident(MODEL_TAG),
            literal(model.as_str())
        ));
    }
    if let Some(version) = &filter.version {
        conditions.push(format!(
            "{} = {}",
            ident(VERSION_TAG),
            literal(version.as_str())
        ));
    }
    if let DatasetScope::One(dataset) = &filter.dataset {
        conditions.push(format!(
            "{} = {}",
            ident(DATASET_TAG),
            literal(dataset.as_ref().map_or("", |d| d.as_str()))
        ));
    }
    conditions
}

/// `SELECT what FROM model_metrics WHERE conditions AND time … GROUP BY the series' tags`.
pub fn grouped_select(what: &str, conditions: &[String], range: TimeRange) -> String {
    let mut clauses: Vec<String> = conditions.to_vec();
    clauses.push(time_range(range));
    format!(
        "SELECT {what} FROM {} WHERE {} GROUP BY {}, {}, {}",
        ident(MEASUREMENT),
        clauses.join(" AND "),
        ident(MODEL_TAG),
        ident(VERSION_TAG),
        ident(DATASET_TAG)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_one_line_with_its_tags_sorted_and_exact_value() {
        let mut line = String::new();
        let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
        sample_line(
            (
                key.model.as_str(),
                key.version.as_str(),
                key.metric.as_str(),
                None,
            ),
            0.1 + 0.2,
            Timestamp::from_millis(1_500).unwrap(),
            &mut line,
        );
        assert_eq!(
            line,
            "model_metrics,model=fraud,version=v1 accuracy=0.30000000000000004 1500\n"
        );
        let mut line = String::new();
        sample_line(
            ("fraud", "v1", "accuracy", Some("eu-west")),
            10.0,
            Timestamp::from_millis(0).unwrap(),
            &mut line,
        );
        assert!(
            line.starts_with("model_metrics,dataset=eu-west,model="),
            "{line}"
        );
        assert!(line.ends_with(" accuracy=10 0\n"), "{line}");
    }

    #[test]
    fn special_characters_are_escaped() {
        let mut out = String::new();
        key(r"a b,c=d\e", &mut out);
        assert_eq!(out, r"a\ b\,c\=d\\e");
        assert_eq!(ident(r#"we"ird"#), r#""we\"ird""#);
        assert_eq!(literal("it's"), r"'it\'s'");
        let mut out = String::new();
        string_field(r#"{"a":"b\c"}"#, &mut out);
        assert_eq!(out, r#""{\"a\":\"b\\c\"}""#);
    }

    #[test]
    fn time_ranges_are_half_open_and_held_to_what_influxdb_stores() {
        assert_eq!(
            time_range(TimeRange::new(
                Timestamp::from_millis(10).unwrap(),
                Timestamp::from_millis(20).unwrap()
            )),
            "time >= 10ms AND time < 20ms"
        );
        assert_eq!(
            time_range(TimeRange::all()),
            format!("time >= 0ms AND time < {}ms", MAX_MS + 1)
        );
        assert!((MAX_MS + 1).checked_mul(1_000_000).is_some());
    }

    #[test]
    fn the_default_dataset_is_the_empty_tag() {
        let condition = series_condition(&SeriesKey::parse("m", "v1", "mae").unwrap());
        assert_eq!(
            condition,
            r#""model" = 'm' AND "version" = 'v1' AND "dataset" = ''"#
        );
    }
}
