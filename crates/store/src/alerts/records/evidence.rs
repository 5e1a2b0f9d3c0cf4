//! The record of a change-point detector's evidence ([`Evidence`]): three columns,
//! with times as epoch milliseconds and the gaps between them.
//!
//! A detector keeps up to 256 samples of evidence, and a rule's state is written after
//! every sample it counts, so the evidence is most of what an evaluator writes. As a list
//! of objects with RFC 3339 times a sample took about 85 bytes; as columns about 35:
//!
//! ```json
//! {"first_ms": 1700000000000, "gaps_ms": [60000, 60000], "value": [0.95, 0.96, 0.94],
//!  "residual": [0.1, 0.52, -0.3]}
//! ```
//!
//! Values and residuals are written exactly (shortest round-trip), so a state read back
//! counts the next samples as the one written would have. States stored before this form
//! (a list of `{"at", "value", "residual"}` objects) still read: the form is told by the
//! JSON's shape, an array or an object.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use modelwatch_core::detection::changepoint::Evidence;
use modelwatch_core::Timestamp;

/// The columns as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Columns {
    first_ms: i64,
    gaps_ms: Vec<i64>,
    value: Vec<f64>,
    residual: Vec<f64>,
}

/// Writes `evidence` as columns (see the module documentation).
pub(crate) fn serialize<S: Serializer>(
    evidence: &[Evidence],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let first_ms = evidence.first().map_or(0, |e| e.at.as_millis());
    let gaps_ms: Vec<i64> = evidence
        .windows(2)
        .map(|pair| pair[1].at.as_millis() - pair[0].at.as_millis())
        .collect();
    let mut columns = serializer.serialize_struct("Evidence", 4)?;
    columns.serialize_field("first_ms", &first_ms)?;
    columns.serialize_field("gaps_ms", &gaps_ms)?;
    columns.serialize_field("value", &Column(evidence, |e| e.value))?;
    columns.serialize_field("residual", &Column(evidence, |e| e.residual))?;
    columns.end()
}

/// One numeric field of every sample, written as an array.
struct Column<'a>(&'a [Evidence], fn(&Evidence) -> f64);

impl Serialize for Column<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(self.1))
    }
}

/// Reads either form (see the module documentation).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Evidence>, D::Error> {
    deserializer.deserialize_any(EvidenceVisitor)
}

/// One sample of the list form, written before the columns.
#[derive(Deserialize)]
struct Sample {
    at: Timestamp,
    value: f64,
    residual: f64,
}

struct EvidenceVisitor;

impl<'de> Visitor<'de> for EvidenceVisitor {
    type Value = Vec<Evidence>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("change-point evidence: columns, or a list of samples")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut evidence = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Sample {
            at,
            value,
            residual,
        }) = seq.next_element()?
        {
            evidence.push(Evidence {
                at,
                value,
                residual,
            });
        }
        Ok(evidence)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let columns = Columns::deserialize(de::value::MapAccessDeserializer::new(map))?;
        from_columns(columns).map_err(de::Error::custom)
    }
}

fn from_columns(columns: Columns) -> Result<Vec<Evidence>, String> {
    let n = columns.value.len();
    if columns.residual.len() != n || columns.gaps_ms.len() != n.saturating_sub(1) {
        return Err(format!(
            "evidence columns disagree: {} values, {} residuals, {} gaps",
            n,
            columns.residual.len(),
            columns.gaps_ms.len()
        ));
    }
    let mut at_ms = columns.first_ms;
    let mut evidence = Vec::with_capacity(n);
    for (i, (value, residual)) in columns.value.into_iter().zip(columns.residual).enumerate() {
        if i > 0 {
            at_ms = at_ms
                .checked_add(columns.gaps_ms[i - 1])
                .ok_or_else(|| "evidence time out of range".to_owned())?;
        }
        let at = Timestamp::from_millis(at_ms).map_err(|e| e.to_string())?;
        evidence.push(Evidence {
            at,
            value,
            residual,
        });
    }
    Ok(evidence)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample(ms: i64, value: f64, residual: f64) -> Evidence {
        Evidence {
            at: Timestamp::from_millis(ms).unwrap_or_else(|e| panic!("{e}")),
            value,
            residual,
        }
    }

    fn written(evidence: &[Evidence]) -> serde_json::Value {
        serialize(evidence, serde_json::value::Serializer).unwrap()
    }

    #[test]
    fn evidence_is_written_as_columns_with_gaps_and_read_back_exactly() {
        let evidence = vec![
            sample(1_700_000_000_000, 0.95, 0.1 + 0.2),
            sample(1_700_000_060_000, 0.960_000_000_000_1, -1.0 / 3.0),
            sample(1_700_000_060_001, 1e-300, 2.5),
        ];
        let json = written(&evidence);
        assert_eq!(
            json,
            json!({
                "first_ms": 1_700_000_000_000_i64,
                "gaps_ms": [60_000, 1],
                "value": [0.95, 0.960_000_000_000_1, 1e-300],
                "residual": [0.1 + 0.2, -1.0 / 3.0, 2.5],
            })
        );
        assert_eq!(deserialize(json).unwrap(), evidence);
    }

    #[test]
    fn columns_that_disagree_are_refused() {
        let columns =
            json!({"first_ms": 0, "gaps_ms": [1], "value": [1.0, 2.0], "residual": [1.0]});
        let error = deserialize(columns).map(|_| ()).unwrap_err();
        assert!(error.to_string().contains("disagree"), "{error}");
    }
}
