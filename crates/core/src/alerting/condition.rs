//! Observations and verdicts: what one evaluation saw, and whether that breaches the
//! rule's condition.
//!
//! The verdict depends on whether an alert is already open, because hysteresis makes the
//! line for clearing differ from the line for firing: between the two lines an open alert
//! [`Verdict::Holds`] instead of clearing.

use super::rule::{ComparisonOperator, Condition, ConditionKind, DEFAULT_EQ_TOLERANCE};
use crate::detection::changepoint::Change;
use crate::metric::Direction;
use crate::time::Timestamp;

/// What the engine measured for one rule and model version at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// No data in the window; the rule's counters are left as they are.
    NoData,
    /// The value a threshold rule compares: normally the newest sample, observed at `at`.
    Value { at: Timestamp, value: f64 },
    /// The degradation detector's verdict, computed from data up to `at`.
    Degradation(DegradationReading),
    /// One sample for a change-point rule, with the direction of its metric; evaluation
    /// counts it with the rule's detector (kept in the rule's state) into a
    /// [`Observation::ChangePoint`].
    Sample {
        at: Timestamp,
        value: f64,
        direction: Direction,
    },
    /// A change-point detector's reading after counting the sample at `at`.
    ChangePoint(ChangePointReading),
    /// A no-data rule's look at its series at `at`: a sample (fresh) or a silence.
    Freshness(FreshnessReading),
}

/// How long a no-data rule's series has been silent at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct FreshnessReading {
    pub at: Timestamp,
    /// The newest sample at `at` (`at` itself when observing a sample).
    pub last_sample_at: Timestamp,
    /// The series' usual interval (see [`super::no_data::Cadence`]), once known.
    pub usual_interval_ms: Option<u64>,
    /// The longest silence the rule allows, once known.
    pub limit_ms: Option<u64>,
    /// A rule on a whole version: the metrics seen last, newest first.
    pub last_samples: Vec<super::no_data::LastSample>,
}

impl FreshnessReading {
    pub fn silent_ms(&self) -> u64 {
        u64::try_from(self.at.millis_since(self.last_sample_at)).unwrap_or(0)
    }

    /// Whether this reading is of a sample rather than of a silence.
    pub fn is_sample(&self) -> bool {
        self.at == self.last_sample_at
    }
}

/// What a change-point rule's detector made of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePointReading {
    pub at: Timestamp,
    pub value: f64,
    /// The shift this sample completed the evidence for, if any.
    pub change: Option<Change>,
    /// Whether `change` is in a direction the rule watches.
    pub watched: bool,
    /// Whether the last shift reported (this one or an earlier one) was watched: the level
    /// is still shifted, nothing has brought it back.
    pub shifted: bool,
}

/// The degradation detector's output that a degradation rule needs. `degradation_percentage`
/// is positive when the metric got worse, whatever its direction.
#[derive(Debug, Clone, PartialEq)]
pub struct DegradationReading {
    pub at: Timestamp,
    pub degradation_percentage: f64,
    pub significant: bool,
    pub current_value: f64,
    pub baseline_value: f64,
    /// The test behind `significant`, carried onto the alert so notifications can say how
    /// sure the detector was.
    pub test: Option<SignificanceTest>,
}

/// A significance test's result as the detector reported it: the one-sided p-value of
/// the worsening, the test(s) that produced it (the detector's `method`, e.g.
/// `welch_t+batch_means`) and the level it was judged at.
#[derive(Debug, Clone, PartialEq)]
pub struct SignificanceTest {
    /// `None` when the test could not produce a finite p-value.
    pub p_value: Option<f64>,
    pub method: String,
    pub alpha: f64,
}

impl Observation {
    /// The time of the newest data this observation was computed from.
    pub fn observed_at(&self) -> Option<Timestamp> {
        match self {
            Observation::NoData => None,
            Observation::Value { at, .. } => Some(*at),
            Observation::Degradation(reading) => Some(reading.at),
            Observation::Sample { at, .. } => Some(*at),
            Observation::ChangePoint(reading) => Some(reading.at),
            Observation::Freshness(reading) => Some(reading.at),
        }
    }

    pub fn kind(&self) -> Option<ConditionKind> {
        match self {
            Observation::NoData => None,
            Observation::Value { .. } => Some(ConditionKind::Threshold),
            Observation::Degradation(_) => Some(ConditionKind::Degradation),
            Observation::Sample { .. } | Observation::ChangePoint(_) => {
                Some(ConditionKind::ChangePoint)
            }
            Observation::Freshness(_) => Some(ConditionKind::NoData),
        }
    }

    /// The number an alert reports and ranks by: the value for threshold rules, the
    /// degradation percentage for degradation rules, the shift in noise units for
    /// change-point rules (none without a shift), the silence in minutes for no-data
    /// rules.
    pub fn condition_value(&self) -> Option<f64> {
        match self {
            Observation::NoData => None,
            Observation::Value { value, .. } => Some(*value),
            Observation::Degradation(reading) => Some(reading.degradation_percentage),
            Observation::Sample { .. } => None,
            Observation::ChangePoint(reading) => reading.change.map(|c| c.shift_sd),
            Observation::Freshness(reading) => Some(reading.silent_ms() as f64 / 60_000.0),
        }
    }
}

/// What an observation means for a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Breaches,
    /// Inside the hysteresis band while an alert is open: neither breaching nor clear.
    Holds,
    Clear,
}

/// Why an observation could not be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjudgeable {
    NoData,
    NotFinite,
    WrongKind {
        expected: ConditionKind,
        got: ConditionKind,
    },
}

impl Condition {
    /// Judges `observation`; `alert_open` selects the clearing line when hysteresis is set.
    pub fn verdict(
        &self,
        observation: &Observation,
        alert_open: bool,
    ) -> Result<Verdict, Unjudgeable> {
        match (self, observation) {
            (_, Observation::NoData) => Err(Unjudgeable::NoData),
            (
                Condition::Threshold {
                    comparison_operator,
                    threshold_value,
                    tolerance,
                    clear_threshold,
                },
                Observation::Value { value, .. },
            ) => {
                if !value.is_finite() {
                    return Err(Unjudgeable::NotFinite);
                }
                let tolerance = tolerance.unwrap_or(DEFAULT_EQ_TOLERANCE);
                if comparison_operator.holds(*value, *threshold_value, tolerance) {
                    return Ok(Verdict::Breaches);
                }
                match clear_threshold {
                    Some(clear)
                        if alert_open && still_unhealthy(*comparison_operator, *value, *clear) =>
                    {
                        Ok(Verdict::Holds)
                    }
                    _ => Ok(Verdict::Clear),
                }
            }
            (
                Condition::Degradation {
                    max_degradation_percentage,
                    clear_percentage,
                    ..
                },
                Observation::Degradation(reading),
            ) => {
                if !reading.degradation_percentage.is_finite() {
                    return Err(Unjudgeable::NotFinite);
                }
                let percentage = reading.degradation_percentage;
                if reading.significant && percentage > *max_degradation_percentage {
                    return Ok(Verdict::Breaches);
                }
                match clear_percentage {
                    Some(clear) if alert_open && reading.significant && percentage > *clear => {
                        Ok(Verdict::Holds)
                    }
                    _ => Ok(Verdict::Clear),
                }
            }
            (Condition::ChangePoint(_), Observation::ChangePoint(reading)) => {
                if !reading.value.is_finite() {
                    return Err(Unjudgeable::NotFinite);
                }
                if reading.change.is_some() && reading.watched {
                    Ok(Verdict::Breaches)
                } else if reading.shifted && alert_open {
                    Ok(Verdict::Holds)
                } else {
                    Ok(Verdict::Clear)
                }
            }
            (Condition::NoData(_), Observation::Freshness(reading)) => {
                if reading.is_sample() {
                    return Ok(Verdict::Clear);
                }
                match reading.limit_ms {
                    None => Err(Unjudgeable::NoData),
                    Some(limit) if reading.silent_ms() >= limit => Ok(Verdict::Breaches),
                    Some(_) => Ok(Verdict::Clear),
                }
            }
            (condition, observation) => Err(Unjudgeable::WrongKind {
                expected: condition.kind(),
                got: observation.kind().unwrap_or(condition.kind()),
            }),
        }
    }

    /// Whether `candidate` is worse than `worst` for this condition, so alerts can keep
    /// their worst value: lower is worse for `lt`/`lte`, higher for `gt`/`gte` and for
    /// degradation percentages, closer to the target for `eq`.
    pub fn is_worse(&self, candidate: f64, worst: f64) -> bool {
        match self {
            Condition::Threshold {
                comparison_operator,
                threshold_value,
                ..
            } => match comparison_operator {
                ComparisonOperator::Lt | ComparisonOperator::Lte => candidate < worst,
                ComparisonOperator::Gt | ComparisonOperator::Gte => candidate > worst,
                ComparisonOperator::Eq => {
                    (candidate - threshold_value).abs() < (worst - threshold_value).abs()
                }
            },
            Condition::Degradation { .. } => candidate > worst,
            Condition::ChangePoint(_) => candidate.abs() > worst.abs(),
            Condition::NoData(_) => candidate > worst,
        }
    }
}

/// Whether `value` has not yet crossed back over the clearing line `clear`.
fn still_unhealthy(operator: ComparisonOperator, value: f64, clear: f64) -> bool {
    match operator {
        ComparisonOperator::Lt | ComparisonOperator::Lte => value < clear,
        ComparisonOperator::Gt | ComparisonOperator::Gte => value > clear,
        ComparisonOperator::Eq => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: f64) -> Observation {
        Observation::Value {
            at: Timestamp::MIN,
            value: v,
        }
    }

    fn degradation(percentage: f64, significant: bool) -> Observation {
        Observation::Degradation(DegradationReading {
            at: Timestamp::MIN,
            degradation_percentage: percentage,
            significant,
            current_value: 0.0,
            baseline_value: 0.0,
            test: None,
        })
    }

    fn below(threshold: f64, clear: Option<f64>) -> Condition {
        Condition::Threshold {
            comparison_operator: ComparisonOperator::Lt,
            threshold_value: threshold,
            tolerance: None,
            clear_threshold: clear,
        }
    }

    #[test]
    fn hysteresis_band_holds_only_while_an_alert_is_open() {
        let condition = below(0.90, Some(0.92));
        assert_eq!(
            condition.verdict(&value(0.89), false),
            Ok(Verdict::Breaches)
        );
        assert_eq!(condition.verdict(&value(0.91), false), Ok(Verdict::Clear));
        assert_eq!(condition.verdict(&value(0.91), true), Ok(Verdict::Holds));
        assert_eq!(condition.verdict(&value(0.92), true), Ok(Verdict::Clear));
    }

    #[test]
    fn degradation_needs_significance_and_size() {
        let condition = Condition::Degradation {
            max_degradation_percentage: 5.0,
            baseline_window_hours: 24,
            clear_percentage: Some(2.0),
            comparison: crate::alerting::rule::ComparisonMode::Auto,
            comparison_hours: None,
            seasonal: None,
            alpha: None,
        };
        assert_eq!(
            condition.verdict(&degradation(6.0, true), false),
            Ok(Verdict::Breaches)
        );
        assert_eq!(
            condition.verdict(&degradation(6.0, false), false),
            Ok(Verdict::Clear)
        );
        assert_eq!(
            condition.verdict(&degradation(3.0, true), true),
            Ok(Verdict::Holds)
        );
        assert_eq!(
            condition.verdict(&degradation(3.0, false), true),
            Ok(Verdict::Clear)
        );
        assert_eq!(
            condition.verdict(&degradation(1.0, true), true),
            Ok(Verdict::Clear)
        );
    }

    #[test]
    fn unjudgeable_observations_say_why() {
        let condition = below(0.9, None);
        assert_eq!(
            condition.verdict(&Observation::NoData, false),
            Err(Unjudgeable::NoData)
        );
        assert_eq!(
            condition.verdict(&value(f64::NAN), false),
            Err(Unjudgeable::NotFinite)
        );
        assert_eq!(
            condition.verdict(&degradation(1.0, true), false),
            Err(Unjudgeable::WrongKind {
                expected: ConditionKind::Threshold,
                got: ConditionKind::Degradation
            })
        );
    }

    #[test]
    fn worst_value_follows_the_operator() {
        assert!(below(0.9, None).is_worse(0.5, 0.8));
        let above = Condition::Threshold {
            comparison_operator: ComparisonOperator::Gt,
            threshold_value: 100.0,
            tolerance: None,
            clear_threshold: None,
        };
        assert!(above.is_worse(300.0, 200.0));
        assert!(!above.is_worse(150.0, 200.0));
    }
}
