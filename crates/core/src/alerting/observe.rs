//! Observations: what a rule sees of one series at the time of one sample.
//!
//! Live evaluation and the backtest both observe a rule *as of a sample*: a threshold
//! rule sees the sample's value, a degradation rule the detector's verdict on the data up
//! to and including that sample (windows computed for the instant just after it). Both
//! read the ranges [`ranges_needed`] names, hand the points to [`observe`], and replay the
//! observations through [`super::pass::plan`], which is why they agree.

use std::time::Duration;

use super::condition::{DegradationReading, Observation, SignificanceTest};
use super::rule::{Condition, Rule};
use crate::detection::{
    self, detection_windows, Comparison, DegradationStatus, DetectionOptions, DetectionWindows,
    Detector, MetricWindows, Reference, WindowSpec,
};
use crate::metric::MetricDefinition;
use crate::sample::{Point, Version};
use crate::time::{TimeRange, Timestamp};

/// The windows a degradation rule's check of the sample at `at` uses.
pub fn windows_at(at: Timestamp, baseline_window_hours: u32) -> DetectionWindows {
    let spec = WindowSpec {
        baseline_hours: baseline_window_hours,
        ..WindowSpec::default()
    };
    // The instant just after the sample: half-open windows then include it.
    detection_windows(at.saturating_add(Duration::from_millis(1)), &spec)
}

/// The ranges of its series that observing `rule` at samples from `first` to `last`
/// reads, ordered and without overlaps. The samples themselves are always inside.
pub fn ranges_needed(rule: &Rule, first: Timestamp, last: Timestamp) -> Vec<TimeRange> {
    let samples = TimeRange::new(first, last.saturating_add(Duration::from_millis(1)));
    let Condition::Degradation {
        baseline_window_hours,
        ..
    } = &rule.condition
    else {
        return vec![samples];
    };
    let (early, late) = (
        windows_at(first, *baseline_window_hours),
        windows_at(last, *baseline_window_hours),
    );
    let mut ranges = vec![
        samples,
        TimeRange::new(early.baseline.start, late.baseline.end),
    ];
    if let (Some((_, a)), Some((_, b))) = (early.reference, late.reference) {
        ranges.push(TimeRange::new(a.start, b.end));
    }
    merge(ranges)
}

/// Sorts `ranges` and merges those that overlap or touch.
fn merge(mut ranges: Vec<TimeRange>) -> Vec<TimeRange> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<TimeRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => {
                *last = TimeRange::new(last.start, last.end.max(range.end));
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// The points of `points` (time-ordered) inside `range`.
pub fn slice(points: &[Point], range: TimeRange) -> &[Point] {
    let start = points.partition_point(|p| p.timestamp < range.start);
    let end = points.partition_point(|p| p.timestamp < range.end);
    &points[start..end.max(start)]
}

/// What [`observe`] reads: a series' definition and its points in the ranges
/// [`ranges_needed`] named, time-ordered.
#[derive(Debug, Clone, Copy)]
pub struct SeriesPoints<'a> {
    pub definition: &'a MetricDefinition,
    pub points: &'a [Point],
}

/// The observation of `rule` for `version` at the sample `sample`.
pub fn observe(
    rule: &Rule,
    version: &Version,
    series: SeriesPoints<'_>,
    sample: &Point,
    base: &DetectionOptions,
    detector: &mut Detector,
) -> Observation {
    let Condition::Degradation {
        max_degradation_percentage,
        baseline_window_hours,
        ..
    } = &rule.condition
    else {
        return Observation::Value {
            at: sample.timestamp,
            value: sample.value,
        };
    };
    let windows = windows_at(sample.timestamp, *baseline_window_hours);
    let options = DetectionOptions {
        min_degradation_percentage: *max_degradation_percentage,
        ..*base
    };
    let windows = MetricWindows {
        definition: series.definition,
        baseline: slice(series.points, windows.baseline),
        comparison: Comparison::Latest(Some(sample)),
        reference: windows.reference.map(|(seasonality, range)| Reference {
            seasonality,
            points: slice(series.points, range),
        }),
        history: None,
    };
    let result = detector.check(&rule.model, version, &windows, &options);
    match (
        result.status,
        result.degradation_percentage,
        result.current_value,
        result.baseline_value,
    ) {
        (DegradationStatus::InsufficientData, ..) => Observation::NoData,
        (_, Some(degradation_percentage), Some(current_value), Some(baseline_value)) => {
            Observation::Degradation(DegradationReading {
                at: sample.timestamp,
                degradation_percentage,
                // The detector's severity is `none` exactly when the worsening is not
                // statistically supported.
                significant: result.severity != detection::Severity::None,
                current_value,
                baseline_value,
                test: Some(SignificanceTest {
                    p_value: result.p_value,
                    method: result.method.clone(),
                    alpha: result.alpha,
                }),
            })
        }
        // A zero baseline has no percentage to compare with the rule's.
        _ => Observation::NoData,
    }
}

/// Every observation of `rule` for `version` at the samples of `series` inside
/// `instants` (the other points are the windows' lookback), each paired with its
/// sample's time.
pub fn observations(
    rule: &Rule,
    version: &Version,
    series: SeriesPoints<'_>,
    instants: TimeRange,
    base: &DetectionOptions,
) -> Vec<(Timestamp, Observation)> {
    let mut detector = Detector::default();
    slice(series.points, instants)
        .iter()
        .map(|sample| {
            let observation = observe(rule, version, series, sample, base, &mut detector);
            (sample.timestamp, observation)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::{RuleId, RuleSpec};

    const H: i64 = 3_600_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn rule(json: &str) -> Rule {
        let spec: RuleSpec = serde_json::from_str(json).unwrap();
        Rule::create(spec, RuleId::from_u32(1), at(0)).unwrap()
    }

    #[test]
    fn a_threshold_rule_reads_only_its_samples() {
        let threshold = rule(
            r#"{"name":"r","model":"m","metric":"accuracy","threshold_value":0.9,"comparison_operator":"lt"}"#,
        );
        let t = 30 * 24 * H;
        assert_eq!(
            ranges_needed(&threshold, at(t), at(t + H)),
            [TimeRange::new(at(t), at(t + H + 1))]
        );
    }

    #[test]
    fn a_degradation_rule_reads_its_baselines_and_the_weekly_guard_merged() {
        let degradation =
            rule(r#"{"name":"r","model":"m","metric":"accuracy","max_degradation_percentage":5}"#);
        let t = 30 * 24 * H;
        let week = 168 * H;
        assert_eq!(
            ranges_needed(&degradation, at(t), at(t + 2 * H)),
            [
                TimeRange::new(at(t - week - H + 1), at(t + 2 * H - week + H + 1)),
                TimeRange::new(at(t - 24 * H + 1), at(t + 2 * H + 1)),
            ]
        );
    }
}
