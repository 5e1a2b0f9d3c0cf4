//! Samples: one measured value of one metric of one model version at one time.
//!
//! Names are newtypes whose only constructors validate them, so a [`Sample`] that exists is
//! well formed: names are non-empty, at most [`MAX_NAME_LEN`] characters, and use only
//! characters that are safe in URLs, CSV and Prometheus labels.

use std::fmt;

use serde::Deserialize;

use crate::metric::{Metric, MetricDefinition};
use crate::time::{Timestamp, TimestampError};

pub(crate) use crate::name::check_name;
pub use crate::name::{ValidationError, MAX_NAME_LEN};

/// What every validated string newtype (`ModelName`, `AlertId`, …) shares: reading it as
/// text, printing it, and parsing it from text, `FromStr` or serde alike, through the type's
/// own `parse`, so no path into the type skips validation.
macro_rules! validated_string_traits {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::sample::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse_owned(text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use validated_string_traits;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const FIELD: &'static str = $field;

            pub fn parse(name: &str) -> Result<Self, ValidationError> {
                check_name($field, name)?;
                Ok($name(name.to_owned()))
            }

            /// [`Self::parse`] for text already owned: keeps its allocation.
            pub fn parse_owned(name: String) -> Result<Self, ValidationError> {
                check_name($field, &name)?;
                Ok($name(name))
            }

        }

        validated_string_traits!($name);
    };
}

name_type!(
    /// The name of a model, e.g. `fraud_detector`.
    ModelName,
    "model"
);
name_type!(
    /// A model version, e.g. `v2.1`.
    Version,
    "version"
);
/// A named dataset (segment) a sample was measured on, e.g. `prod`, `canary` or
/// `holdout-2024-05`: a dimension of the series, so samples of two datasets at one time
/// are two samples and detection never mixes them.
///
/// Samples sent without a dataset belong to the *default dataset*. It has no `Dataset`
/// value (it is `None` wherever a dataset is optional) and is written
/// [`Dataset::DEFAULT_NAME`] where one has to be named (filters, listings); so `default`
/// is not a name a `Dataset` can have, and a sample tagged `default` is in the default
/// dataset ([`Dataset::parse_optional`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dataset(String);

impl Dataset {
    pub const FIELD: &'static str = "dataset";
    /// How the default dataset is written.
    pub const DEFAULT_NAME: &'static str = "default";

    /// A named dataset; `default` is refused (see [`Dataset::parse_optional`]).
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        Self::check(name)?;
        Ok(Dataset(name.to_owned()))
    }

    /// [`Self::parse`] for text already owned: keeps its allocation.
    pub fn parse_owned(name: String) -> Result<Self, ValidationError> {
        Self::check(&name)?;
        Ok(Dataset(name))
    }

    /// A dataset as samples and filters name it: empty text and `default` are the
    /// default dataset (`None`).
    pub fn parse_optional(name: &str) -> Result<Option<Self>, ValidationError> {
        match name.trim() {
            "" | Self::DEFAULT_NAME => Ok(None),
            name => Self::parse(name).map(Some),
        }
    }

    /// The name of an optional dataset: its own, or `default`.
    pub fn name_of(dataset: Option<&Dataset>) -> &str {
        dataset.map_or(Self::DEFAULT_NAME, Dataset::as_str)
    }

    fn check(name: &str) -> Result<(), ValidationError> {
        check_name(Self::FIELD, name)?;
        if name == Self::DEFAULT_NAME {
            return Err(ValidationError::new(
                Self::FIELD,
                "\"default\" is the default dataset, which samples without a dataset belong to",
            ));
        }
        Ok(())
    }
}

validated_string_traits!(Dataset);

/// Reads an optional dataset the way samples carry one: absent, null, empty or
/// `default` are the default dataset.
pub fn deserialize_optional_dataset<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Dataset>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => Dataset::parse_optional(&text).map_err(serde::de::Error::custom),
    }
}

/// Which datasets a read, a listing or a rule covers: each dataset (every one, each on its
/// own — never mixed), or one of them (`None`: the default dataset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum DatasetScope {
    #[default]
    Each,
    One(Option<Dataset>),
}

impl DatasetScope {
    /// A filter as users write it: a dataset name, or `default`.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        Dataset::parse_optional(name).map(DatasetScope::One)
    }

    /// An optional filter: absent is [`DatasetScope::Each`].
    pub fn parse_filter(name: Option<&str>) -> Result<Self, ValidationError> {
        name.map_or(Ok(DatasetScope::Each), Self::parse)
    }

    pub fn matches(&self, dataset: Option<&Dataset>) -> bool {
        match self {
            DatasetScope::Each => true,
            DatasetScope::One(one) => one.as_ref() == dataset,
        }
    }

    /// How [`DatasetScope::Each`] is written where a scope is stored or given as text
    /// (a rule's `dataset`): `*`, which no dataset name can contain.
    pub const EACH: &'static str = "*";

    /// A scope as rules write it: `*` for each dataset, else a dataset name, with empty
    /// text and `default` meaning the default dataset.
    pub fn parse_scope(text: &str) -> Result<Self, ValidationError> {
        match text.trim() {
            Self::EACH => Ok(DatasetScope::Each),
            name => Self::parse(name),
        }
    }

    /// The text [`Self::parse_scope`] reads back: `*`, `default` or the dataset's name.
    pub fn as_text(&self) -> &str {
        match self {
            DatasetScope::Each => Self::EACH,
            DatasetScope::One(one) => Dataset::name_of(one.as_ref()),
        }
    }
}

/// Serde for a rule's scope: a string as [`DatasetScope::parse_scope`] reads it, written
/// as [`DatasetScope::as_text`] gives it; absent is the default dataset (rules stored
/// before rules had a dataset watched the default one).
pub mod scope_serde {
    use super::DatasetScope;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        scope: &DatasetScope,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(scope.as_text())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DatasetScope, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(DatasetScope::One(None)),
            Some(text) => DatasetScope::parse_scope(&text).map_err(serde::de::Error::custom),
        }
    }

    /// The scope of a rule that names none: the default dataset.
    pub fn default_dataset() -> DatasetScope {
        DatasetScope::One(None)
    }
}

/// One time series: a metric of a model version on a dataset (`None`: the default one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub model: ModelName,
    pub version: Version,
    pub metric: Metric,
    pub dataset: Option<Dataset>,
}

impl SeriesKey {
    /// A series of the default dataset.
    pub fn new(model: ModelName, version: Version, metric: Metric) -> Self {
        SeriesKey {
            model,
            version,
            metric,
            dataset: None,
        }
    }

    /// The same metric of the same version on `dataset`.
    pub fn with_dataset(mut self, dataset: Option<Dataset>) -> Self {
        self.dataset = dataset;
        self
    }

    /// Parses the three names, reporting the first bad one (a series of the default
    /// dataset).
    pub fn parse(model: &str, version: &str, metric: &str) -> Result<Self, ValidationError> {
        Ok(SeriesKey::new(
            ModelName::parse(model)?,
            Version::parse(version)?,
            Metric::parse(metric)?,
        ))
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.model, self.version, self.metric)?;
        match &self.dataset {
            Some(dataset) => write!(f, " [{dataset}]"),
            None => Ok(()),
        }
    }
}

/// A value of a series at a time, as stored and returned by range queries.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub timestamp: Timestamp,
    pub value: f64,
    pub dataset: Option<Dataset>,
}

/// One measurement. Its JSON forms belong to the edges (the HTTP API's sample type,
/// which also accepts the seed's longer names); the stores keep it in columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub model: ModelName,
    pub version: Version,
    pub metric: Metric,
    pub value: f64,
    pub timestamp: Timestamp,
    /// The dataset measured on; absent (or `default`) for the default dataset.
    pub dataset: Option<Dataset>,
}

impl Sample {
    /// The series the sample belongs to: its dataset is part of it.
    pub fn series(&self) -> SeriesKey {
        SeriesKey {
            model: self.model.clone(),
            version: self.version.clone(),
            metric: self.metric.clone(),
            dataset: self.dataset.clone(),
        }
    }

    pub fn point(&self) -> Point {
        Point {
            timestamp: self.timestamp,
            value: self.value,
            dataset: self.dataset.clone(),
        }
    }

    /// Checks the value against the metric's definition (finite, within range).
    pub fn check(&self, definition: &MetricDefinition) -> Result<(), ValidationError> {
        definition.check_value(self.value)
    }

    /// Builds a sample from text fields (CLI arguments, CSV cells), naming the first bad
    /// field. The value is checked against the built-in definition of the metric.
    pub fn parse_fields(fields: &RawSample<'_>) -> Result<Sample, ValidationError> {
        let key = SeriesKey::parse(fields.model, fields.version, fields.metric)?;
        let value = parse_value(fields.value)?;
        let timestamp = Timestamp::parse(fields.timestamp).map_err(timestamp_error)?;
        let dataset = match fields.dataset {
            None => None,
            Some(name) => Dataset::parse_optional(name)?,
        };
        let sample = Sample {
            model: key.model,
            version: key.version,
            metric: key.metric,
            value,
            timestamp,
            dataset,
        };
        if let Some(error) = crate::predictions::refuse_pushed(&sample) {
            return Err(error);
        }
        sample.check(&sample.metric.default_definition())?;
        Ok(sample)
    }
}

/// Text fields of a sample before validation.
#[derive(Debug, Clone, Copy)]
pub struct RawSample<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub metric: &'a str,
    pub value: &'a str,
    pub timestamp: &'a str,
    pub dataset: Option<&'a str>,
}

/// Parses a measured value; NaN and infinities are refused here already.
pub fn parse_value(text: &str) -> Result<f64, ValidationError> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| ValidationError::new("value", format!("{text:?} is not a number")))?;
    if !value.is_finite() {
        return Err(ValidationError::new(
            "value",
            format!("{text:?} is not a finite number"),
        ));
    }
    Ok(value)
}

pub fn timestamp_error(error: TimestampError) -> ValidationError {
    ValidationError::new("timestamp", error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(value: &'a str, timestamp: &'a str) -> RawSample<'a> {
        RawSample {
            model: "fraud",
            version: "v1",
            metric: "accuracy",
            value,
            timestamp,
            dataset: None,
        }
    }

    #[test]
    fn names_are_checked_with_the_field_named() {
        assert_eq!(ModelName::parse("").unwrap_err().field, "model");
        assert_eq!(
            Version::parse(&"v".repeat(129)).unwrap_err().field,
            "version"
        );
        assert!(ModelName::parse("fraud detector")
            .unwrap_err()
            .message
            .contains("' '"));
        assert!(ModelName::parse("fraud_detector-2.1:prod@eu+x").is_ok());
    }

    #[test]
    fn parse_fields_rejects_each_kind_of_bad_value() {
        for (value, expect) in [
            ("NaN", "value"),
            ("inf", "value"),
            ("abc", "value"),
            ("1.5", "value"),
        ] {
            assert_eq!(
                Sample::parse_fields(&raw(value, "0")).unwrap_err().field,
                expect,
                "{value}"
            );
        }
        assert_eq!(
            Sample::parse_fields(&raw("0.5", "soon")).unwrap_err().field,
            "timestamp"
        );
        let sample = Sample::parse_fields(&raw("0.95", "2024-01-01T00:00:00Z")).unwrap();
        assert_eq!(sample.value, 0.95);
    }

    #[test]
    fn the_default_dataset_is_absent_and_named_default() {
        assert!(Dataset::parse("default").is_err());
        assert_eq!(Dataset::parse_optional("default").unwrap(), None);
        assert_eq!(Dataset::parse_optional(" ").unwrap(), None);
        let prod = Dataset::parse_optional("prod").unwrap();
        assert_eq!(Dataset::name_of(prod.as_ref()), "prod");
        assert_eq!(Dataset::name_of(None), "default");
        let mut raw = raw("0.5", "0");
        raw.dataset = Some("default");
        assert_eq!(Sample::parse_fields(&raw).unwrap().dataset, None);
    }

    #[test]
    fn a_sample_of_a_dataset_is_in_that_dataset_s_series() {
        let mut sample = Sample::parse_fields(&raw("0.5", "0")).unwrap();
        let default_series = sample.series();
        assert_eq!(
            default_series,
            SeriesKey::parse("fraud", "v1", "accuracy").unwrap()
        );
        sample.dataset = Some(Dataset::parse("canary").unwrap());
        let canary = sample.series();
        assert_ne!(canary, default_series);
        assert_eq!(canary.to_string(), "fraud/v1/accuracy [canary]");
        assert!(DatasetScope::Each.matches(canary.dataset.as_ref()));
        assert!(!DatasetScope::parse("default")
            .unwrap()
            .matches(canary.dataset.as_ref()));
        assert!(DatasetScope::parse("canary")
            .unwrap()
            .matches(canary.dataset.as_ref()));
    }
}
