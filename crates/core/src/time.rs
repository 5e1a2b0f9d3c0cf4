//! Timestamps: UTC instants with millisecond precision.
//!
//! Inside the code a time is a [`Timestamp`]; plain integers of milliseconds appear only at
//! the wire (JSON `*_ms` fields, CSV) and in storage.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The earliest accepted instant: the Unix epoch.
const MIN_MS: i64 = 0;
/// The latest accepted instant: 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

/// A UTC instant with millisecond precision, between 1970-01-01 and 9999-12-31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("{0:?} is neither an RFC 3339 time (2024-05-01T12:00:00Z) nor epoch milliseconds")]
    Unparseable(String),
    #[error("{0} ms is outside the supported range 1970-01-01 to 9999-12-31")]
    OutOfRange(i64),
}

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(MIN_MS);
    pub const MAX: Timestamp = Timestamp(MAX_MS);

    /// Milliseconds since the Unix epoch, checked against the supported range.
    pub fn from_millis(ms: i64) -> Result<Self, TimestampError> {
        if (MIN_MS..=MAX_MS).contains(&ms) {
            Ok(Timestamp(ms))
        } else {
            Err(TimestampError::OutOfRange(ms))
        }
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (any offset, converted to UTC, sub-millisecond digits truncated)
    /// or a plain integer of epoch milliseconds.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let text = text.trim();
        if let Ok(ms) = text.parse::<i64>() {
            return Self::from_millis(ms);
        }
        let parsed = DateTime::parse_from_rfc3339(text)
            .map_err(|_| TimestampError::Unparseable(text.to_owned()))?;
        Self::from_millis(parsed.timestamp_millis())
    }

    /// Moves by a duration, saturating at the supported range.
    pub fn saturating_add(self, by: Duration) -> Self {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms).min(MAX_MS))
    }

    pub fn saturating_sub(self, by: Duration) -> Self {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms).max(MIN_MS))
    }

    /// The signed distance `self - earlier` in milliseconds.
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2024-05-01T12:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

/// On the wire a timestamp is an RFC 3339 string; either an RFC 3339 string or an integer
/// of epoch milliseconds is accepted.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// Reads either wire form and says what a timestamp is when it gets anything else (a
/// float, a boolean), rather than serde's "did not match any variant of untagged enum".
struct TimestampVisitor;

impl serde::de::Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RFC 3339 text (2024-05-01T12:00:00Z) or an integer of epoch milliseconds")
    }

    fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Timestamp, E> {
        Timestamp::from_millis(ms).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Timestamp, E> {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        Timestamp::from_millis(ms).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Timestamp, E> {
        Err(E::custom(format!(
            "{value} is not a timestamp: send RFC 3339 text (2024-05-01T12:00:00Z) or an \
             integer of epoch milliseconds (no fraction, no exponent)"
        )))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
        Timestamp::parse(text).map_err(E::custom)
    }
}

/// A half-open interval `[start, end)` of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl TimeRange {
    /// `[start, end)`; an `end` before `start` gives an empty range.
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        TimeRange {
            start,
            end: end.max(start),
        }
    }

    /// Every representable instant.
    pub fn all() -> Self {
        TimeRange {
            start: Timestamp::MIN,
            end: Timestamp::MAX,
        }
    }

    /// The `length` of time that ends at `end` (exclusive).
    pub fn ending_at(end: Timestamp, length: Duration) -> Self {
        TimeRange::new(end.saturating_sub(length), end)
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub fn length_millis(&self) -> i64 {
        self.end.millis_since(self.start)
    }
}

/// The most hours a span may cover: the whole supported range, 1970 to 9999.
pub const MAX_HOURS: f64 = MAX_MS as f64 / 3_600_000.0;

/// A client's number of hours (`--hours 1.5`, `?hours=36`) as a duration: positive,
/// finite and no longer than the supported range, so no figure a client sends can
/// overflow a conversion. The error names `field`.
pub fn hours_span(field: &str, hours: f64) -> Result<Duration, crate::ValidationError> {
    if !(hours.is_finite() && hours > 0.0 && hours <= MAX_HOURS) {
        return Err(crate::ValidationError::new(
            field,
            format!(
                "must be a positive number of hours up to {} (1970 to 9999), not {hours:?}",
                MAX_HOURS.floor()
            ),
        ));
    }
    Ok(Duration::from_millis((hours * 3_600_000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_spans_are_range_checked_not_overflowed() {
        assert_eq!(hours_span("hours", 1.5), Ok(Duration::from_secs(5400)));
        assert_eq!(
            hours_span("hours", MAX_HOURS).map(|d| d.as_millis()),
            Ok(MAX_MS as u128)
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, MAX_HOURS * 1.01] {
            let error = hours_span("hours", bad).unwrap_err();
            assert_eq!(error.field, "hours", "{bad}");
            assert!(error.message.contains("70389527"), "{}", error.message);
        }
    }

    #[test]
    fn parses_rfc3339_with_offset_into_utc_millis() {
        let t = Timestamp::parse("2024-01-01T13:00:00.123+01:00").unwrap();
        assert_eq!(t.as_millis(), 1_704_110_400_123);
        assert_eq!(t.to_rfc3339(), "2024-01-01T12:00:00.123Z");
    }

    #[test]
    fn parses_epoch_millis() {
        assert_eq!(
            Timestamp::parse("1704110400000").unwrap().as_millis(),
            1_704_110_400_000
        );
    }

    #[test]
    fn refuses_garbage_and_out_of_range() {
        assert!(matches!(
            Timestamp::parse("yesterday"),
            Err(TimestampError::Unparseable(_))
        ));
        assert!(matches!(
            Timestamp::parse("-5"),
            Err(TimestampError::OutOfRange(-5))
        ));
        assert!(Timestamp::from_millis(MAX_MS + 1).is_err());
    }

    #[test]
    fn json_refuses_floats_booleans_and_huge_integers_saying_what_a_timestamp_is() {
        for (json, says) in [
            ("1e20", "is not a timestamp"),
            ("1.5", "is not a timestamp"),
            ("true", "RFC 3339 text"),
            ("null", "RFC 3339 text"),
            ("18446744073709551615", "outside the supported range"),
            ("-1", "outside the supported range"),
        ] {
            let error = serde_json::from_str::<Timestamp>(json)
                .expect_err(json)
                .to_string();
            assert!(error.contains(says), "{json}: {error}");
            assert!(!error.contains("untagged"), "{json}: {error}");
        }
    }

    #[test]
    fn json_accepts_both_forms_and_writes_rfc3339() {
        let a: Timestamp = serde_json::from_str("1704110400000").unwrap();
        let b: Timestamp = serde_json::from_str("\"2024-01-01T12:00:00Z\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"2024-01-01T12:00:00.000Z\""
        );
    }

    #[test]
    fn range_is_half_open() {
        let r = TimeRange::new(Timestamp(10), Timestamp(20));
        assert!(r.contains(Timestamp(10)));
        assert!(!r.contains(Timestamp(20)));
        assert!(TimeRange::new(Timestamp(20), Timestamp(10)).is_empty());
    }
}
