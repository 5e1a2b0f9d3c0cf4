//! A check from the points of one series: the one function behind both `check` and a
//! degradation rule's observation, so the two agree at every instant.
//!
//! A caller reads the [`DetectionWindows::ranges`] of the windows for its "now" (or a
//! wider span holding them, as a rule replaying many samples does), and [`check_at`]
//! slices each window out of those points and runs the detector: the latest value or the
//! comparison window, the baseline, the seasonal guard, and in window mode the long-run
//! test's history.

use std::time::Duration;

use super::{
    Comparison, ComparisonWindow, DegradationResult, DetectionOptions, DetectionWindows, Detector,
    History, MetricWindows, Reference,
};
use crate::metric::MetricDefinition;
use crate::sample::{ModelName, Point, ValidationError, Version};
use crate::time::{TimeRange, Timestamp};

impl DetectionWindows {
    /// Every range a check over these windows reads, ordered, merged where they overlap.
    pub fn ranges(&self) -> Vec<TimeRange> {
        let comparison = match self.comparison {
            ComparisonWindow::Latest { search } => search,
            ComparisonWindow::Range(range) => range,
        };
        let mut ranges = vec![self.baseline, comparison];
        ranges.extend(self.reference.map(|(_, range)| range));
        ranges.extend(self.history);
        merge(ranges)
    }
}

/// Sorts `ranges` and merges those that overlap or touch; empty ones are dropped.
pub fn merge(mut ranges: Vec<TimeRange>) -> Vec<TimeRange> {
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

/// `value` as a significance level (`field` names it in the error): strictly between 0
/// and 0.5.
pub fn significance_level(field: &str, value: f64) -> Result<f64, ValidationError> {
    if value.is_finite() && value > 0.0 && value < 0.5 {
        Ok(value)
    } else {
        Err(ValidationError::new(
            field,
            format!("{value} is not a significance level between 0 and 0.5 (e.g. 0.01)"),
        ))
    }
}

impl DetectionOptions {
    /// These options with every test judged at `alpha`: the window tests, a single latest
    /// value and the long-run test (whose defaults differ, see the fields).
    pub fn with_alpha(self, alpha: f64) -> DetectionOptions {
        DetectionOptions {
            alpha,
            latest_value_alpha: alpha,
            long_run_alpha: alpha,
            ..self
        }
    }
}

/// The series being checked: its definition and its points, time-ordered, covering the
/// [`DetectionWindows::ranges`] of the check (more is fine).
#[derive(Debug, Clone, Copy)]
pub struct SeriesPoints<'a> {
    pub definition: &'a MetricDefinition,
    pub points: &'a [Point],
}

/// Checks one metric over `windows` (from [`super::detection_windows`] at some "now").
pub fn check_at(
    detector: &mut Detector,
    model: &ModelName,
    version: &Version,
    series: SeriesPoints<'_>,
    windows: &DetectionWindows,
    options: &DetectionOptions,
) -> DegradationResult {
    let baseline = slice(series.points, windows.baseline);
    let reference = windows.reference.map(|(seasonality, range)| Reference {
        seasonality,
        points: slice(series.points, range),
    });
    let metric_windows = match windows.comparison {
        ComparisonWindow::Latest { search } => MetricWindows {
            definition: series.definition,
            baseline,
            comparison: Comparison::Latest(slice(series.points, search).last()),
            reference,
            history: None,
        },
        ComparisonWindow::Range(range) => MetricWindows {
            definition: series.definition,
            baseline,
            comparison: Comparison::Window(slice(series.points, range)),
            reference,
            history: windows.history.map(|history| History {
                points: slice(series.points, history),
                end: range.end,
                window_minutes: usize::try_from(range.length_millis() / 60_000).unwrap_or(0),
            }),
        },
    };
    detector.check(model, version, &metric_windows, options)
}

/// The median gap between the last (at most) `count` points of `points` ending at `at`
/// (inclusive): a series' usual sampling interval, robust to a few gaps and bursts.
/// `None` with fewer than two points.
pub fn sampling_interval(points: &[Point], at: Timestamp, count: usize) -> Option<Duration> {
    let end = points.partition_point(|p| p.timestamp <= at);
    let recent = &points[end.saturating_sub(count.max(2))..end];
    let mut gaps: Vec<i64> = recent
        .windows(2)
        .map(|pair| pair[1].timestamp.millis_since(pair[0].timestamp))
        .collect();
    if gaps.is_empty() {
        return None;
    }
    let middle = gaps.len() / 2;
    let gap = *gaps.select_nth_unstable(middle).1;
    Some(Duration::from_millis(u64::try_from(gap).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{detection_windows, Seasonality, WindowSpec};

    const H: i64 = 3_600_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn window_mode_reads_the_long_run_history_which_holds_every_other_window() {
        let now = 30 * 24 * H;
        let spec = WindowSpec {
            comparison_hours: Some(2),
            seasonal: Some(Seasonality::Daily),
            ..WindowSpec::default()
        };
        assert_eq!(
            detection_windows(at(now), &spec).ranges(),
            [TimeRange::new(at(now - (168 + 16) * H), at(now))]
        );
    }

    #[test]
    fn latest_value_mode_reads_the_baseline_and_the_weekly_guard() {
        let now = 30 * 24 * H;
        let week = 168 * H;
        assert_eq!(
            detection_windows(at(now), &WindowSpec::default()).ranges(),
            [
                TimeRange::new(at(now - week - H), at(now - week + H)),
                TimeRange::new(at(now - 24 * H), at(now)),
            ]
        );
    }

    #[test]
    fn the_sampling_interval_is_the_median_gap() {
        let minute = 60_000;
        let mut points: Vec<Point> = (0..30)
            .map(|i| Point {
                timestamp: at(i * minute),
                value: 1.0,
                dataset: None,
            })
            .collect();
        // A burst and a gap do not move it.
        points.insert(
            5,
            Point {
                timestamp: at(4 * minute + 1),
                value: 1.0,
                dataset: None,
            },
        );
        points.retain(|p| p.timestamp != at(20 * minute));
        assert_eq!(
            sampling_interval(&points, at(29 * minute), 100),
            Some(Duration::from_secs(60))
        );
        assert_eq!(sampling_interval(&points[..1], at(0), 100), None);
    }
}
