//! Observations: what a rule sees of one series at the time of one sample.
//!
//! Live evaluation and the backtest both build an observation *as of a sample*: a
//! threshold rule sees the sample's value, a degradation rule the detector's verdict on
//! the data up to and including that sample (windows computed for the instant just after
//! it). Live evaluation fetches those windows from the store, the backtest slices them out
//! of one preloaded range, and both hand identical points to the same pure function, which
//! is why a backtest agrees with live evaluation.

use std::time::Duration;

use modelwatch_core::alerting::{
    Condition, DegradationReading, Observation, Rule, SignificanceTest,
};
use modelwatch_core::detection::{
    self, detection_windows, Comparison, DegradationStatus, DetectionOptions, DetectionWindows,
    MetricWindows, Reference, Seasonality, WindowSpec,
};
use modelwatch_core::{MetricDefinition, Point, SeriesKey, TimeRange, Timestamp, Version};
use modelwatch_store::{MetricStore, StoreError};

/// The windows a degradation rule's check of the sample at `at` uses.
pub(crate) fn windows_at(at: Timestamp, baseline_window_hours: u32) -> DetectionWindows {
    let spec = WindowSpec {
        baseline_hours: baseline_window_hours,
        ..WindowSpec::default()
    };
    // The instant just after the sample: half-open windows then include it.
    detection_windows(at.saturating_add(Duration::from_millis(1)), &spec)
}

/// The earliest time a degradation rule's check of a sample at `at` looks at.
pub(crate) fn earliest_needed(at: Timestamp, baseline_window_hours: u32) -> Timestamp {
    let windows = windows_at(at, baseline_window_hours);
    windows.reference.map_or(windows.baseline.start, |(_, r)| {
        r.start.min(windows.baseline.start)
    })
}

/// The points of `points` (time-ordered) inside `range`.
pub(crate) fn slice(points: &[Point], range: TimeRange) -> &[Point] {
    let start = points.partition_point(|p| p.timestamp < range.start);
    let end = points.partition_point(|p| p.timestamp < range.end);
    &points[start..end.max(start)]
}

/// The degradation observation of the sample `latest`, given the windows' points.
pub(crate) fn degradation_observation(
    rule: &Rule,
    version: &Version,
    definition: &MetricDefinition,
    latest: &Point,
    baseline: &[Point],
    reference: Option<(Seasonality, &[Point])>,
    base: &DetectionOptions,
) -> Observation {
    let Condition::Degradation {
        max_degradation_percentage,
        ..
    } = &rule.condition
    else {
        return Observation::Value {
            at: latest.timestamp,
            value: latest.value,
        };
    };
    let options = DetectionOptions {
        min_degradation_percentage: *max_degradation_percentage,
        ..*base
    };
    let windows = MetricWindows {
        definition,
        baseline,
        comparison: Comparison::Latest(Some(latest)),
        reference: reference.map(|(seasonality, points)| Reference {
            seasonality,
            points,
        }),
    };
    let result = detection::check_degradation(&rule.model, version, &windows, &options);
    match (
        result.status,
        result.degradation_percentage,
        result.current_value,
        result.baseline_value,
    ) {
        (DegradationStatus::InsufficientData, ..) => Observation::NoData,
        (_, Some(degradation_percentage), Some(current_value), Some(baseline_value)) => {
            Observation::Degradation(DegradationReading {
                at: latest.timestamp,
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

/// The observation of `latest` for a live evaluation, fetching what a degradation check
/// needs from the store.
pub(crate) async fn live_observation(
    metrics: &dyn MetricStore,
    rule: &Rule,
    version: &Version,
    latest: &Point,
    base: &DetectionOptions,
) -> Result<Observation, StoreError> {
    let Condition::Degradation {
        baseline_window_hours,
        ..
    } = &rule.condition
    else {
        return Ok(Observation::Value {
            at: latest.timestamp,
            value: latest.value,
        });
    };
    let key = SeriesKey::new(rule.model.clone(), version.clone(), rule.metric.clone());
    let windows = windows_at(latest.timestamp, *baseline_window_hours);
    let definition = metrics.definition(&rule.metric).await?;
    let baseline = metrics.range(&key, windows.baseline).await?;
    let reference = match windows.reference {
        Some((seasonality, range)) => Some((seasonality, metrics.range(&key, range).await?)),
        None => None,
    };
    Ok(degradation_observation(
        rule,
        version,
        &definition,
        latest,
        &baseline,
        reference
            .as_ref()
            .map(|(s, points)| (*s, points.as_slice())),
        base,
    ))
}

/// Every observation of a rule for one version over `points`, the series' points from
/// `lookback` before the first sample to replay through the last (time-ordered). Only the
/// samples at or after `replay_from` are replayed.
pub(crate) fn replay_observations(
    rule: &Rule,
    version: &Version,
    definition: &MetricDefinition,
    points: &[Point],
    replay_from: Timestamp,
    base: &DetectionOptions,
) -> Vec<(Timestamp, Observation)> {
    let first = points.partition_point(|p| p.timestamp < replay_from);
    points[first..]
        .iter()
        .map(|latest| {
            let observation = match &rule.condition {
                Condition::Threshold { .. } => Observation::Value {
                    at: latest.timestamp,
                    value: latest.value,
                },
                Condition::Degradation {
                    baseline_window_hours,
                    ..
                } => {
                    let windows = windows_at(latest.timestamp, *baseline_window_hours);
                    degradation_observation(
                        rule,
                        version,
                        definition,
                        latest,
                        slice(points, windows.baseline),
                        windows
                            .reference
                            .map(|(seasonality, range)| (seasonality, slice(points, range))),
                        base,
                    )
                }
            };
            (latest.timestamp, observation)
        })
        .collect()
}
