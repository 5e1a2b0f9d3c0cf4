//! Silences: mute notifications for a model (optionally one version or metric) for a
//! while, saying who and why. Evaluation still records alerts; nothing is notified.

use super::ids::SilenceId;
use crate::metric::{Metric, MetricScope};
use crate::sample::{ModelName, ValidationError, Version};
use crate::time::{TimeRange, Timestamp};

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: SilenceId,
    pub model: ModelName,
    /// `None` silences every version.
    pub version: Option<Version>,
    /// `None` silences every metric.
    pub metric: Option<Metric>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub created_at: Timestamp,
}

impl Silence {
    pub fn period(&self) -> TimeRange {
        TimeRange::new(self.starts_at, self.ends_at)
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.period().contains(now)
    }

    /// Whether this silence mutes `model`/`version`/`metric` at `now`. An alert about a
    /// whole version (metric `*`) is muted only by a silence of every metric: one metric
    /// silenced says nothing about the others.
    pub fn mutes(
        &self,
        model: &ModelName,
        version: &Version,
        metric: &MetricScope,
        now: Timestamp,
    ) -> bool {
        self.is_active(now)
            && &self.model == model
            && self.version.as_ref().is_none_or(|v| v == version)
            && self.metric.as_ref().is_none_or(|m| metric == m)
    }

    /// Ends the silence early; a silence that already ended keeps its end.
    pub fn expire(&self, now: Timestamp) -> Silence {
        Silence {
            ends_at: self.ends_at.min(now).max(self.starts_at),
            ..self.clone()
        }
    }
}

/// The first of `silences` muting the series at `now`.
pub fn muting_silence<'a>(
    silences: &'a [Silence],
    model: &ModelName,
    version: &Version,
    metric: &MetricScope,
    now: Timestamp,
) -> Option<&'a Silence> {
    silences
        .iter()
        .find(|s| s.mutes(model, version, metric, now))
}

/// The raw input form of a silence. `starts_at` defaults to now; give `ends_at` or
/// `duration_minutes`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SilenceSpec {
    pub model: String,
    pub version: Option<String>,
    pub metric: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub duration_minutes: Option<i64>,
    pub created_by: String,
    pub comment: String,
}

impl SilenceSpec {
    pub fn validate(self, id: SilenceId, now: Timestamp) -> Result<Silence, ValidationError> {
        let model = ModelName::parse(self.model.trim())?;
        let version = match self.version.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(Version::parse(v)?),
        };
        let metric = match self.metric.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(m) => Some(Metric::parse(m)?),
        };
        let starts_at = self.starts_at.unwrap_or(now);
        let ends_at = match (self.ends_at, self.duration_minutes) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "ends_at",
                    "give ends_at or duration_minutes, not both",
                ))
            }
            (None, None) => {
                return Err(ValidationError::new(
                    "ends_at",
                    "is required (or give duration_minutes)",
                ))
            }
            (Some(ends_at), None) => ends_at,
            (None, Some(minutes)) if minutes <= 0 => {
                return Err(ValidationError::new(
                    "duration_minutes",
                    format!("{minutes} is not a positive number of minutes"),
                ))
            }
            (None, Some(minutes)) => starts_at.saturating_add(std::time::Duration::from_secs(
                u64::try_from(minutes)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(60),
            )),
        };
        if ends_at <= starts_at {
            return Err(ValidationError::new(
                "ends_at",
                format!("{ends_at} is not after starts_at {starts_at}"),
            ));
        }
        let created_by = self.created_by.trim().to_owned();
        if created_by.is_empty() {
            return Err(ValidationError::new("created_by", "must say who silences"));
        }
        let comment = self.comment.trim().to_owned();
        if comment.is_empty() {
            return Err(ValidationError::new("comment", "must say why"));
        }
        Ok(Silence {
            id,
            model,
            version,
            metric,
            starts_at,
            ends_at,
            created_by,
            comment,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn silence(version: Option<&str>, metric: Option<&str>) -> Silence {
        SilenceSpec {
            model: "fraud".into(),
            version: version.map(Into::into),
            metric: metric.map(Into::into),
            starts_at: Some(at(1_000)),
            ends_at: Some(at(2_000)),
            created_by: "ana@example.com".into(),
            comment: "retraining".into(),
            ..SilenceSpec::default()
        }
        .validate(SilenceId::from_u32(1), at(500))
        .unwrap()
    }

    #[test]
    fn silence_mutes_only_its_scope_and_period() {
        let model = ModelName::parse("fraud").unwrap();
        let v1 = Version::parse("v1").unwrap();
        let v2 = Version::parse("v2").unwrap();
        let accuracy = MetricScope::One(Metric::Accuracy);
        let latency = MetricScope::One(Metric::Latency);
        let whole_model = silence(None, None);
        assert!(whole_model.mutes(&model, &v2, &latency, at(1_000)));
        assert!(!whole_model.mutes(&model, &v1, &accuracy, at(999)));
        assert!(!whole_model.mutes(&model, &v1, &accuracy, at(2_000)));
        let narrow = silence(Some("v1"), Some("accuracy"));
        assert!(narrow.mutes(&model, &v1, &accuracy, at(1_500)));
        assert!(!narrow.mutes(&model, &v2, &accuracy, at(1_500)));
        assert!(!narrow.mutes(&model, &v1, &latency, at(1_500)));
        assert!(!narrow.mutes(
            &ModelName::parse("other").unwrap(),
            &v1,
            &accuracy,
            at(1_500)
        ));
        assert!(!narrow.expire(at(1_200)).is_active(at(1_500)));
    }

    #[test]
    fn a_silence_of_one_metric_does_not_mute_an_alert_about_the_whole_version() {
        let model = ModelName::parse("fraud").unwrap();
        let v1 = Version::parse("v1").unwrap();
        let every = MetricScope::Every;
        assert!(!silence(Some("v1"), Some("accuracy")).mutes(&model, &v1, &every, at(1_500)));
        assert!(silence(Some("v1"), None).mutes(&model, &v1, &every, at(1_500)));
        assert!(silence(None, None).mutes(&model, &v1, &every, at(1_500)));
    }

    #[test]
    fn silences_need_an_end_an_author_and_a_reason() {
        let base = SilenceSpec {
            model: "fraud".into(),
            created_by: "ana".into(),
            comment: "deploy".into(),
            duration_minutes: Some(30),
            ..SilenceSpec::default()
        };
        let ok = base
            .clone()
            .validate(SilenceId::from_u32(2), at(0))
            .unwrap();
        assert_eq!(ok.ends_at, at(30 * 60_000));
        for (spec, field) in [
            (
                SilenceSpec {
                    duration_minutes: None,
                    ..base.clone()
                },
                "ends_at",
            ),
            (
                SilenceSpec {
                    duration_minutes: Some(0),
                    ..base.clone()
                },
                "duration_minutes",
            ),
            (
                SilenceSpec {
                    created_by: " ".into(),
                    ..base.clone()
                },
                "created_by",
            ),
            (
                SilenceSpec {
                    comment: String::new(),
                    ..base.clone()
                },
                "comment",
            ),
            (
                SilenceSpec {
                    duration_minutes: None,
                    starts_at: Some(at(5)),
                    ends_at: Some(at(5)),
                    ..base.clone()
                },
                "ends_at",
            ),
        ] {
            assert_eq!(
                spec.validate(SilenceId::from_u32(3), at(0))
                    .unwrap_err()
                    .field,
                field
            );
        }
    }
}
