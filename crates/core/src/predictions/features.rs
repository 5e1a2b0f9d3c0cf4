//! A prediction's named features, and a window's sketch of each.
//!
//! A prediction may carry up to [`MAX_FEATURES`] named numbers (`age = 41`, `amount =
//! 12.5`): the inputs whose drift is watched while labels are late. A [`FeatureName`]
//! follows the metric-name rules (letters, digits and `_ . - : + @`) and is short enough
//! for its drift metrics' names ([`feature_metric`](super::drift::feature_metric)), so
//! it can appear in them as it is. Values are finite.
//!
//! Features are not kept with the raw prediction: each is folded, as it arrives, into its
//! window's [`FeatureSketches`] (one mergeable [`Sketch`] per feature), so a raw
//! prediction stays a few bytes however many features it has.

use std::collections::BTreeMap;

use crate::name::{check_name, MAX_NAME_LEN};
use crate::sample::validated_string_traits;
use crate::ValidationError;

use super::drift::FEATURE_METRIC_PREFIX_LEN;
use super::Sketch;

/// The most features one prediction may carry.
pub const MAX_FEATURES: usize = 32;

/// The longest feature name: what fits in its drift metrics' names.
pub const MAX_FEATURE_NAME_LEN: usize = MAX_NAME_LEN - FEATURE_METRIC_PREFIX_LEN;

/// A feature's name: 1 to [`MAX_FEATURE_NAME_LEN`] letters, digits and `_ . - : + @`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureName(String);

impl FeatureName {
    pub const FIELD: &'static str = "features";

    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        Self::check(name)?;
        Ok(FeatureName(name.to_owned()))
    }

    /// [`Self::parse`] for text already owned: keeps its allocation.
    pub fn parse_owned(name: String) -> Result<Self, ValidationError> {
        Self::check(&name)?;
        Ok(FeatureName(name))
    }

    fn check(name: &str) -> Result<(), ValidationError> {
        check_name(Self::FIELD, name).map_err(|e| {
            ValidationError::new(Self::FIELD, format!("feature name {}", e.message))
        })?;
        let length = name.chars().count();
        if length > MAX_FEATURE_NAME_LEN {
            return Err(ValidationError::new(
                Self::FIELD,
                format!(
                    "feature name {name:?} is {length} characters long; at most {MAX_FEATURE_NAME_LEN} are allowed"
                ),
            ));
        }
        Ok(())
    }
}

validated_string_traits!(FeatureName);

/// A prediction's features: at most [`MAX_FEATURES`], each name once, every value finite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features(BTreeMap<FeatureName, f64>);

impl Features {
    pub const FIELD: &'static str = "features";

    pub fn new() -> Self {
        Features::default()
    }

    /// Validates `(name, value)` pairs: a bad name or too many is refused with field
    /// `features`, a value that is not finite with field `features.<name>`.
    pub fn parse<I>(pairs: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = (String, f64)>,
    {
        let mut features = BTreeMap::new();
        for (name, value) in pairs {
            if features.len() == MAX_FEATURES {
                return Err(ValidationError::new(
                    Self::FIELD,
                    format!(
                        "more than {MAX_FEATURES} features; at most {MAX_FEATURES} are allowed"
                    ),
                ));
            }
            let name = FeatureName::parse_owned(name)?;
            if !value.is_finite() {
                return Err(ValidationError::new(
                    format!("{}.{name}", Self::FIELD),
                    format!("{value} is not a finite number"),
                ));
            }
            if features.insert(name.clone(), value).is_some() {
                return Err(ValidationError::new(
                    Self::FIELD,
                    format!("feature {name:?} is given twice"),
                ));
            }
        }
        Ok(Features(features))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(feature, _)| feature.as_str() == name)
            .map(|(_, value)| *value)
    }

    /// By name.
    pub fn iter(&self) -> impl Iterator<Item = (&FeatureName, f64)> {
        self.0.iter().map(|(name, value)| (name, *value))
    }
}

/// A window's sketch of each feature its predictions carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureSketches(BTreeMap<FeatureName, Sketch>);

impl FeatureSketches {
    pub const FIELD: &'static str = "feature sketches";

    pub fn new() -> Self {
        FeatureSketches::default()
    }

    /// Counts each of a prediction's features in its feature's sketch.
    pub fn add(&mut self, features: &Features) {
        for (name, value) in features.iter() {
            self.0.entry(name.clone()).or_default().add(value);
        }
    }

    /// Adds every count of `other`, feature by feature.
    pub fn merge(&mut self, other: &FeatureSketches) {
        for (name, sketch) in &other.0 {
            self.0.entry(name.clone()).or_default().merge(sketch);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Features sketched.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, name: &FeatureName) -> Option<&Sketch> {
        self.0.get(name)
    }

    /// By name.
    pub fn iter(&self) -> impl Iterator<Item = (&FeatureName, &Sketch)> {
        self.0.iter()
    }

    /// As text: `name=sketch` by name, joined by `;` (feature names hold neither; a
    /// sketch is `bucket:count,…`, see [`Sketch::encode`]).
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(name, sketch)| format!("{name}={}", sketch.encode()))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Reads [`Self::encode`]'s text back; refused (field `feature sketches`) unless each
    /// part is a feature name, `=` and a sketch, each name once.
    pub fn decode(text: &str) -> Result<Self, ValidationError> {
        let bad = |message: String| ValidationError::new(Self::FIELD, message);
        let mut sketches = BTreeMap::new();
        for part in text.split(';').filter(|part| !part.is_empty()) {
            let (name, sketch) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not name=sketch")))?;
            let name = FeatureName::parse(name).map_err(|e| bad(e.message))?;
            let sketch =
                Sketch::decode(sketch).map_err(|e| bad(format!("{name}: {}", e.message)))?;
            if sketches.insert(name.clone(), sketch).is_some() {
                return Err(bad(format!("{name:?} appears twice")));
            }
        }
        Ok(FeatureSketches(sketches))
    }
}

impl FromIterator<(FeatureName, Sketch)> for FeatureSketches {
    fn from_iter<I: IntoIterator<Item = (FeatureName, Sketch)>>(pairs: I) -> Self {
        let mut sketches = FeatureSketches::new();
        for (name, sketch) in pairs {
            sketches.0.entry(name).or_default().merge(&sketch);
        }
        sketches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(pairs: &[(&str, f64)]) -> Result<Features, ValidationError> {
        Features::parse(pairs.iter().map(|(name, value)| (name.to_string(), *value)))
    }

    #[test]
    fn features_are_checked_with_the_field_named() {
        let ok = features(&[("age", 41.0), ("amount", 12.5)]).expect("valid");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.get("age"), Some(41.0));
        assert_eq!(features(&[]).expect("none"), Features::new());

        let nan = features(&[("age", 41.0), ("amount", f64::NAN)]).unwrap_err();
        assert_eq!(nan.field, "features.amount");
        assert!(nan.message.contains("not a finite number"), "{nan}");
        let infinite = features(&[("age", f64::INFINITY)]).unwrap_err();
        assert_eq!(infinite.field, "features.age");

        for bad in ["", "a b", "age;1", "x=y", "é"] {
            let error = features(&[(bad, 1.0)]).unwrap_err();
            assert_eq!(error.field, "features", "{bad:?}");
            assert!(error.message.starts_with("feature name"), "{error}");
        }
        let longest = "f".repeat(MAX_FEATURE_NAME_LEN);
        assert!(features(&[(&longest, 1.0)]).is_ok());
        let too_long = "f".repeat(MAX_FEATURE_NAME_LEN + 1);
        assert_eq!(features(&[(&too_long, 1.0)]).unwrap_err().field, "features");
        assert_eq!(
            features(&[("age", 1.0), ("age", 2.0)]).unwrap_err().field,
            "features"
        );

        let names: Vec<String> = (0..=MAX_FEATURES).map(|n| format!("f{n}")).collect();
        let at_most: Vec<(&str, f64)> = names[..MAX_FEATURES]
            .iter()
            .map(|n| (n.as_str(), 1.0))
            .collect();
        assert_eq!(features(&at_most).expect("32").len(), MAX_FEATURES);
        let over: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        let error = features(&over).unwrap_err();
        assert_eq!(error.field, "features");
        assert!(error.message.contains("at most 32"), "{error}");
    }

    #[test]
    fn each_feature_gets_a_sketch_of_its_own() {
        let mut window = FeatureSketches::new();
        window.add(&features(&[("age", 41.0), ("amount", 12.5)]).expect("valid"));
        window.add(&features(&[("age", 30.0)]).expect("valid"));
        window.add(&Features::new());
        let age = FeatureName::parse("age").expect("name");
        let amount = FeatureName::parse("amount").expect("name");
        assert_eq!(window.len(), 2);
        let ages: Sketch = [41.0, 30.0].into_iter().collect();
        assert_eq!(window.get(&age), Some(&ages));
        assert_eq!(window.get(&amount).map(Sketch::count), Some(1));

        let mut late = FeatureSketches::new();
        late.add(&features(&[("amount", 12.5), ("tenure", 3.0)]).expect("valid"));
        window.merge(&late);
        assert_eq!(window.get(&amount).map(Sketch::count), Some(2));
        assert_eq!(window.len(), 3);

        assert_eq!(
            FeatureSketches::decode(&window.encode()).expect("decodes"),
            window
        );
        assert_eq!(
            FeatureSketches::decode("").expect("empty"),
            FeatureSketches::new()
        );
        for bad in ["age", "a b=1:1", "age=1:0", "age=1:1;age=2:1", "=1:1"] {
            assert_eq!(
                FeatureSketches::decode(bad).unwrap_err().field,
                "feature sketches",
                "{bad}"
            );
        }
    }
}
