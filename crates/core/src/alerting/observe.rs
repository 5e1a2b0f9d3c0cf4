//! Observations: what a rule sees of one series at the time of one sample.
//!
//! Live evaluation and the backtest both observe a rule *as of a sample*: a threshold
//! rule sees the sample's value, a degradation rule the verdict `check` gives at the
//! instant just after the sample, with the rule's windows and significance level (one
//! function, [`check_at`], decides both). Both read the ranges [`ranges_needed`] names,
//! hand the points to [`observe`], and replay the observations through
//! [`super::pass::plan`], which is why they agree.
//!
//! **Which samples are observed.** A threshold rule and a latest-value degradation rule
//! observe every sample. A rule comparing a window observes on a [`cadence`]: the first
//! sample of each slot of a twelfth of its window (10 minutes for a 2-hour window, as the
//! quality benchmark checks), slots offset per series so that thousands of rules do not
//! all read a week of history in the same pass. Consecutive window means overlap almost
//! entirely, so the samples between add nothing but cost.
//!
//! **`comparison: auto`** (a new rule's default) picks, at each observation, what the
//! quality benchmark (bench/quality/RESULTS.md) supports for the series' sampling,
//! measured as the median gap of its last 100 samples ([`auto_comparison_hours`]):
//! every 2 minutes or more often, a 2-hour window (with the long-run test once a week of
//! history is there); every 20 minutes or more often, a 6-hour window; sparser series,
//! the latest value. Its cadence is 10 minutes whatever it picks.
//!
//! A change-point rule observes every sample with its metric's direction: its detector,
//! kept in the rule's state, counts it during evaluation.

use std::time::Duration;

use super::condition::{DegradationReading, Observation, SignificanceTest};
use super::rule::{ComparisonMode, Condition, Rule};
use crate::detection::{
    self, check_at, detection_windows, sampling_interval, series::merge, ComparisonWindow,
    DegradationStatus, DetectionOptions, DetectionWindows, Detector, SeriesPoints, WindowSpec,
};
use crate::sample::{Point, Version};
use crate::time::{TimeRange, Timestamp};

pub use crate::detection::series::slice;

const MINUTE: Duration = Duration::from_secs(60);

/// The cadence of `comparison: auto`.
pub const AUTO_CADENCE: Duration = Duration::from_secs(10 * 60);
/// How many recent samples the sampling interval is measured on.
pub const SAMPLING_SAMPLES: usize = 100;

/// The comparison window (hours) `comparison: auto` picks for a series sampled every
/// `interval`; `None` is the latest value.
pub fn auto_comparison_hours(interval: Option<Duration>) -> Option<u32> {
    match interval {
        Some(gap) if gap <= 2 * MINUTE => Some(2),
        Some(gap) if gap <= 20 * MINUTE => Some(6),
        _ => None,
    }
}

/// How a degradation rule checks one series: what `check` would be given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DegradationCheck {
    pub spec: WindowSpec,
    pub options: DetectionOptions,
}

/// The check of a degradation rule (`None` for other rules) on a series sampled every
/// `sampling` (only `comparison: auto` looks at it), on top of the `base` options.
pub fn degradation_check(
    rule: &Rule,
    base: &DetectionOptions,
    sampling: Option<Duration>,
) -> Option<DegradationCheck> {
    let Condition::Degradation {
        max_degradation_percentage,
        baseline_window_hours,
        comparison,
        comparison_hours,
        seasonal,
        alpha,
        ..
    } = &rule.condition
    else {
        return None;
    };
    let comparison_hours = match comparison {
        ComparisonMode::Latest => None,
        ComparisonMode::Window => *comparison_hours,
        ComparisonMode::Auto => auto_comparison_hours(sampling),
    };
    let options = DetectionOptions {
        min_degradation_percentage: *max_degradation_percentage,
        ..*base
    };
    Some(DegradationCheck {
        spec: WindowSpec {
            baseline_hours: *baseline_window_hours,
            comparison_hours,
            seasonal: *seasonal,
            ..WindowSpec::default()
        },
        options: alpha.map_or(options, |alpha| options.with_alpha(alpha)),
    })
}

/// How often `rule` observes a series: `None` at every sample.
pub fn cadence(rule: &Rule) -> Option<Duration> {
    match &rule.condition {
        Condition::Degradation {
            comparison: ComparisonMode::Window,
            comparison_hours: Some(hours),
            ..
        } => Some((Duration::from_secs(3600) * *hours / 12).max(MINUTE)),
        Condition::Degradation {
            comparison: ComparisonMode::Auto,
            ..
        } => Some(AUTO_CADENCE),
        _ => None,
    }
}

/// The slot of `at` on `rule`'s cadence for `version`'s series, offset by a hash of the
/// series so rules are spread over the cadence; `None` without a cadence.
fn slot(rule: &Rule, version: &Version, at: Timestamp) -> Option<i64> {
    let every = i64::try_from(cadence(rule)?.as_millis()).unwrap_or(i64::MAX);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in [rule.model.as_str(), version.as_str(), rule.metric.as_str()]
        .join("\u{0}")
        .bytes()
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let phase = i64::try_from(hash % every.unsigned_abs()).unwrap_or(0);
    Some((at.as_millis() - phase).div_euclid(every))
}

/// Whether `rule` observes a sample at `at` when the last sample it observed was at
/// `last`: every newer sample without a cadence, the first of a later slot with one.
pub fn observes(rule: &Rule, version: &Version, last: Option<Timestamp>, at: Timestamp) -> bool {
    match last {
        None => true,
        Some(last) if at <= last => false,
        Some(last) => match (slot(rule, version, at), slot(rule, version, last)) {
            (Some(now), Some(before)) => now > before,
            _ => true,
        },
    }
}

/// The samples of `samples` (time-ordered, newer than `last`) that `rule` observes.
pub fn instants<'a>(
    rule: &Rule,
    version: &Version,
    mut last: Option<Timestamp>,
    samples: &'a [Point],
) -> Vec<&'a Point> {
    let mut found = Vec::new();
    for sample in samples {
        if observes(rule, version, last, sample.timestamp) {
            last = Some(sample.timestamp);
            found.push(sample);
        }
    }
    found
}

/// The windows of a check of the sample at `at`: those of the instant just after it, so
/// that half-open windows include it.
fn windows_at(at: Timestamp, spec: &WindowSpec) -> DetectionWindows {
    detection_windows(at.saturating_add(Duration::from_millis(1)), spec)
}

/// Whether observing `rule` at a sample needs more of its series than the sample itself
/// (a degradation rule's windows). A rule that does not observes each sample alone, so
/// the samples it counts are all it reads ([`ranges_needed`] is their range).
pub fn needs_windows(rule: &Rule) -> bool {
    matches!(rule.condition, Condition::Degradation { .. })
}

/// The ranges of its series that observing `rule` at samples from `first` to `last`
/// reads, ordered and without overlaps. The samples themselves are always inside.
pub fn ranges_needed(rule: &Rule, first: Timestamp, last: Timestamp) -> Vec<TimeRange> {
    let samples = TimeRange::new(first, last.saturating_add(Duration::from_millis(1)));
    let Some(check) = degradation_check(rule, &DetectionOptions::default(), None) else {
        return vec![samples];
    };
    let mut specs = vec![check.spec];
    if let Condition::Degradation {
        comparison: ComparisonMode::Auto,
        ..
    } = rule.condition
    {
        // Whatever auto picks; the history of the longest window holds all of them.
        specs = [Some(2), Some(6), None]
            .into_iter()
            .map(|comparison_hours| WindowSpec {
                comparison_hours,
                ..check.spec
            })
            .collect();
    }
    let mut ranges = vec![samples];
    for spec in specs {
        ranges.extend(spans(&windows_at(first, &spec), &windows_at(last, &spec)));
    }
    merge(ranges)
}

/// Each window from its place at the first instant to its place at the last.
fn spans(first: &DetectionWindows, last: &DetectionWindows) -> Vec<TimeRange> {
    let span = |a: TimeRange, b: TimeRange| TimeRange::new(a.start, b.end);
    let comparison = |w: &DetectionWindows| match w.comparison {
        ComparisonWindow::Latest { search } => search,
        ComparisonWindow::Range(range) => range,
    };
    let mut ranges = vec![
        span(first.baseline, last.baseline),
        span(comparison(first), comparison(last)),
    ];
    if let (Some((_, a)), Some((_, b))) = (first.reference, last.reference) {
        ranges.push(span(a, b));
    }
    if let (Some(a), Some(b)) = (first.history, last.history) {
        ranges.push(span(a, b));
    }
    ranges
}

/// What `check` says of `version`'s series at the instant just after `sample`, with the
/// windows and options of `rule` (`None` for a rule that is not a degradation rule).
/// `series` holds the points of [`ranges_needed`].
pub fn check_of_sample(
    rule: &Rule,
    version: &Version,
    series: SeriesPoints<'_>,
    sample: &Point,
    base: &DetectionOptions,
    detector: &mut Detector,
) -> Option<detection::DegradationResult> {
    let sampling = match rule.condition {
        Condition::Degradation {
            comparison: ComparisonMode::Auto,
            ..
        } => sampling_interval(series.points, sample.timestamp, SAMPLING_SAMPLES),
        _ => None,
    };
    let check = degradation_check(rule, base, sampling)?;
    let windows = windows_at(sample.timestamp, &check.spec);
    Some(check_at(
        detector,
        &rule.model,
        version,
        series,
        &windows,
        &check.options,
    ))
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
    if let Condition::ChangePoint(_) = &rule.condition {
        return Observation::Sample {
            at: sample.timestamp,
            value: sample.value,
            direction: series.definition.direction,
        };
    }
    match check_of_sample(rule, version, series, sample, base, detector) {
        Some(result) => reading(result, sample.timestamp),
        None => Observation::Value {
            at: sample.timestamp,
            value: sample.value,
        },
    }
}

/// What a degradation rule makes of `check`'s `result` for the sample at `at`.
pub fn reading(result: detection::DegradationResult, at: Timestamp) -> Observation {
    match (
        result.status,
        result.degradation_percentage,
        result.current_value,
        result.baseline_value,
    ) {
        (DegradationStatus::InsufficientData, ..) => Observation::NoData,
        (_, Some(degradation_percentage), Some(current_value), Some(baseline_value)) => {
            Observation::Degradation(DegradationReading {
                at,
                degradation_percentage,
                // The detector's severity is `none` exactly when the worsening is not
                // statistically supported.
                significant: result.severity != detection::Severity::None,
                current_value,
                baseline_value,
                test: Some(SignificanceTest {
                    p_value: result.p_value,
                    method: result.method,
                    alpha: result.alpha,
                }),
            })
        }
        // A zero baseline has no percentage to compare with the rule's.
        _ => Observation::NoData,
    }
}

/// The observations of `rule` for `version` at `instants` (samples of `series`, in time
/// order), each paired with its sample's time.
pub fn observations<'a>(
    rule: &Rule,
    version: &Version,
    series: SeriesPoints<'_>,
    instants: impl IntoIterator<Item = &'a Point>,
    base: &DetectionOptions,
) -> Vec<(Timestamp, Observation)> {
    let mut detector = Detector::default();
    instants
        .into_iter()
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

    fn degradation(extra: &str) -> Rule {
        rule(&format!(
            r#"{{"name":"r","model":"m","metric":"accuracy","max_degradation_percentage":5{extra}}}"#
        ))
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
        assert_eq!(cadence(&threshold), None);
    }

    #[test]
    fn only_degradation_rules_need_more_than_their_samples() {
        let t = 30 * 24 * H;
        let alone = [
            rule(
                r#"{"name":"r","model":"m","metric":"accuracy","threshold_value":0.9,"comparison_operator":"lt"}"#,
            ),
            rule(r#"{"name":"r","model":"m","metric":"accuracy","condition_type":"change_point"}"#),
            rule(r#"{"name":"r","model":"m","metric":"accuracy","no_data_minutes":60}"#),
        ];
        for rule in &alone {
            assert!(!needs_windows(rule));
            assert_eq!(
                ranges_needed(rule, at(t), at(t + H)),
                [TimeRange::new(at(t), at(t + H + 1))]
            );
        }
        assert!(needs_windows(&degradation(r#","comparison":"latest""#)));
        assert!(needs_windows(&degradation("")));
    }

    #[test]
    fn a_latest_value_rule_reads_its_baselines_and_the_weekly_guard_merged() {
        let latest = degradation(r#","comparison":"latest""#);
        let t = 30 * 24 * H;
        let week = 168 * H;
        assert_eq!(
            ranges_needed(&latest, at(t), at(t + 2 * H)),
            [
                TimeRange::new(at(t - week - H + 1), at(t + 2 * H - week + H + 1)),
                TimeRange::new(at(t - 24 * H + 1), at(t + 2 * H + 1)),
            ]
        );
    }

    #[test]
    fn window_and_auto_rules_read_the_long_run_history() {
        let t = 30 * 24 * H;
        let history = TimeRange::new(at(t - (168 + 16) * H + 1), at(t + H + 1));
        for rule in [degradation(r#","comparison_hours":3"#), degradation("")] {
            assert_eq!(ranges_needed(&rule, at(t), at(t + H)), [history]);
        }
    }

    #[test]
    fn auto_picks_by_the_series_sampling() {
        let minutes = |m: u64| Some(Duration::from_secs(60 * m));
        assert_eq!(auto_comparison_hours(minutes(1)), Some(2));
        assert_eq!(auto_comparison_hours(minutes(2)), Some(2));
        assert_eq!(auto_comparison_hours(minutes(5)), Some(6));
        assert_eq!(auto_comparison_hours(minutes(20)), Some(6));
        assert_eq!(auto_comparison_hours(minutes(60)), None);
        assert_eq!(auto_comparison_hours(None), None);
        let auto = degradation(r#","alpha":0.005,"seasonal":"daily""#);
        let check = degradation_check(&auto, &DetectionOptions::default(), minutes(1)).unwrap();
        assert_eq!(check.spec.comparison_hours, Some(2));
        assert_eq!(
            check.spec.seasonal,
            Some(crate::detection::Seasonality::Daily)
        );
        assert_eq!(
            (
                check.options.alpha,
                check.options.latest_value_alpha,
                check.options.long_run_alpha
            ),
            (0.005, 0.005, 0.005)
        );
        assert_eq!(check.options.min_degradation_percentage, 5.0);
    }

    #[test]
    fn a_window_rule_observes_the_first_sample_of_each_slot() {
        let rule = degradation(r#","comparison_hours":2"#);
        assert_eq!(cadence(&rule), Some(Duration::from_secs(600)));
        let v1 = Version::parse("v1").unwrap();
        let minute = 60_000;
        let samples: Vec<Point> = (0..60)
            .map(|i| Point {
                timestamp: at(1_700_000_000_000 + i * minute),
                value: 1.0,
                dataset: None,
            })
            .collect();
        let observed = instants(&rule, &v1, None, &samples);
        // The first sample, then one per 10-minute slot: 6 or 7 in an hour.
        assert!((6..=7).contains(&observed.len()), "{}", observed.len());
        for pair in observed.windows(2) {
            let gap = pair[1].timestamp.millis_since(pair[0].timestamp);
            assert!(gap <= 10 * minute, "{gap}");
        }
        // Live evaluation after any prefix agrees with one replay of the whole hour.
        let last = observed[2].timestamp;
        let rest: Vec<Point> = samples
            .iter()
            .filter(|p| p.timestamp > last)
            .cloned()
            .collect();
        let again = instants(&rule, &v1, Some(last), &rest);
        assert_eq!(
            again.iter().map(|p| p.timestamp).collect::<Vec<_>>(),
            observed[3..]
                .iter()
                .map(|p| p.timestamp)
                .collect::<Vec<_>>()
        );
    }
}
