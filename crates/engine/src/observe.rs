//! Observations: what a rule sees of one series at the time of one sample.
//!
//! Live evaluation and the backtest both build an observation *as of a sample*: a
//! threshold rule sees the sample's value, a degradation rule the detector's verdict on
//! the data up to and including that sample (windows computed for the instant just after
//! it). Live evaluation fetches those windows from the store, the backtest slices them out
//! of one preloaded range, and both hand identical points to the same pure function, which
//! is why a backtest agrees with live evaluation.

use std::collections::HashMap;
use std::time::Duration;

use modelwatch_core::alerting::{
    Condition, DegradationReading, Observation, Rule, SignificanceTest,
};
use modelwatch_core::detection::{
    self, detection_windows, Comparison, DegradationStatus, DetectionOptions, DetectionWindows,
    MetricWindows, Reference, Seasonality, WindowSpec,
};
use modelwatch_core::{Metric, MetricDefinition, Point, SeriesKey, TimeRange, Timestamp, Version};
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
        history: None,
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

/// How many checks read their windows in one store call: enough that the round trip is
/// negligible, few enough to bound the points held at once (two days' minutes per check).
const CHECKS_PER_READ: usize = 256;

/// One check of a live pass: a rule's observation of the newest sample of one version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveCheck<'a> {
    pub rule: &'a Rule,
    pub version: &'a Version,
    pub latest: &'a Point,
}

/// The observations of many live checks, in order. Degradation checks fetch their windows
/// from the store and hand them to the same pure function the backtest uses; they read
/// them in bulk, two reads in flight at a time so that
/// both reader threads decode while this task runs the detector.
pub(crate) async fn live_observations(
    metrics: &dyn MetricStore,
    checks: &[LiveCheck<'_>],
    base: &DetectionOptions,
) -> Result<Vec<Observation>, StoreError> {
    let mut definitions: HashMap<&Metric, MetricDefinition> = HashMap::new();
    for check in checks {
        if matches!(check.rule.condition, Condition::Degradation { .. })
            && !definitions.contains_key(&check.rule.metric)
        {
            let definition = metrics.definition(&check.rule.metric).await?;
            definitions.insert(&check.rule.metric, definition);
        }
    }
    let mut observations = Vec::with_capacity(checks.len());
    let mut groups = checks.chunks(CHECKS_PER_READ);
    while let Some(first) = groups.next() {
        let second = groups.next().unwrap_or(&[]);
        let (first_windows, second_windows) =
            tokio::join!(read_windows(metrics, first), read_windows(metrics, second));
        for (group, windows) in [(first, first_windows?), (second, second_windows?)] {
            for (check, windows) in group.iter().zip(windows) {
                observations.push(match (windows, definitions.get(&check.rule.metric)) {
                    (Some((baseline, reference)), Some(definition)) => degradation_observation(
                        check.rule,
                        check.version,
                        definition,
                        check.latest,
                        &baseline,
                        reference
                            .as_ref()
                            .map(|(seasonality, points)| (*seasonality, points.as_slice())),
                        base,
                    ),
                    _ => Observation::Value {
                        at: check.latest.timestamp,
                        value: check.latest.value,
                    },
                });
            }
        }
    }
    Ok(observations)
}

/// A degradation check's baseline and seasonal-reference points.
type Windows = (Vec<Point>, Option<(Seasonality, Vec<Point>)>);

/// The windows of each degradation check of `group` (None for threshold checks), in one
/// store call.
async fn read_windows(
    metrics: &dyn MetricStore,
    group: &[LiveCheck<'_>],
) -> Result<Vec<Option<Windows>>, StoreError> {
    let mut requests = Vec::new();
    let mut layout = Vec::with_capacity(group.len());
    for check in group {
        let Condition::Degradation {
            baseline_window_hours,
            ..
        } = &check.rule.condition
        else {
            layout.push(None);
            continue;
        };
        let key = SeriesKey::new(
            check.rule.model.clone(),
            check.version.clone(),
            check.rule.metric.clone(),
        );
        let windows = windows_at(check.latest.timestamp, *baseline_window_hours);
        requests.push((key.clone(), windows.baseline));
        let seasonality = windows.reference.map(|(seasonality, range)| {
            requests.push((key, range));
            seasonality
        });
        layout.push(Some(seasonality));
    }
    if requests.is_empty() {
        return Ok(layout.into_iter().map(|_| None).collect());
    }
    let mut points = metrics.range_many(&requests).await?.into_iter();
    let mut next = || {
        points
            .next()
            .ok_or_else(|| StoreError::Database("range_many answered too few ranges".into()))
    };
    layout
        .into_iter()
        .map(|shape| {
            let Some(seasonality) = shape else {
                return Ok(None);
            };
            let baseline = next()?;
            let reference = match seasonality {
                Some(seasonality) => Some((seasonality, next()?)),
                None => None,
            };
            Ok(Some((baseline, reference)))
        })
        .collect()
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
