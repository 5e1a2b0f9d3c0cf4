//! Sequential change detection for streams of frequent samples: a one-sided CUSUM in the
//! metric's worsening direction.
//!
//! The statistic accumulates how much each new value is worse than the baseline mean beyond
//! an allowance of half the smallest shift worth reporting (`shift_percentage` of the
//! baseline mean; one baseline standard deviation when the mean is zero), and resets at
//! zero. It raises an alarm when it exceeds `threshold_sigmas` baseline standard
//! deviations. The change is dated at the first sample after the statistic last left zero,
//! which is the maximum-likelihood change time for a step. Values that improve the metric
//! never raise an alarm.

use crate::metric::Direction;
use crate::sample::Point;
use crate::time::Timestamp;

use super::significance::Moments;

/// Tuning of [`cusum`]; the defaults detect a sustained 5 % worsening within a handful of
/// samples at typical noise while staying quiet on noise alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CusumOptions {
    /// The smallest sustained worsening worth detecting, in percent of the baseline mean.
    pub shift_percentage: f64,
    /// The alarm threshold in baseline standard deviations.
    pub threshold_sigmas: f64,
}

impl Default for CusumOptions {
    fn default() -> Self {
        CusumOptions {
            shift_percentage: 5.0,
            threshold_sigmas: 5.0,
        }
    }
}

/// A detected change in a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    /// The first sample of the change.
    pub started_at: Timestamp,
    /// The sample at which the alarm was raised.
    pub detected_at: Timestamp,
    /// Samples from `started_at` to `detected_at`, both included.
    pub samples: u64,
    /// The mean of those samples.
    pub mean_after_change: f64,
}

/// Runs the CUSUM over `stream` (time-ordered) against a baseline of mean `baseline.mean`
/// and standard deviation `baseline.std()`; returns the first alarm. A constant baseline
/// uses 1 % of its mean (or 1 when the mean is zero) as its scale so that the statistic
/// stays defined.
pub fn cusum(
    direction: Direction,
    baseline: Moments,
    stream: &[Point],
    options: &CusumOptions,
) -> Option<ChangePoint> {
    let mut sigma = baseline.std();
    if sigma <= 0.0 || !sigma.is_finite() {
        sigma = if baseline.mean != 0.0 {
            baseline.mean.abs() * 0.01
        } else {
            1.0
        };
    }
    let shift = if baseline.mean != 0.0 {
        baseline.mean.abs() * options.shift_percentage / 100.0
    } else {
        sigma
    };
    let allowance = shift / 2.0;
    let threshold = options.threshold_sigmas * sigma;
    let (mut statistic, mut start, mut sum) = (0.0f64, 0usize, 0.0f64);
    for (index, point) in stream.iter().enumerate() {
        if statistic == 0.0 {
            start = index;
            sum = 0.0;
        }
        statistic =
            (statistic + direction.worsening(baseline.mean, point.value) - allowance).max(0.0);
        sum += point.value;
        if statistic > threshold {
            let samples = index - start + 1;
            return Some(ChangePoint {
                started_at: stream[start].timestamp,
                detected_at: point.timestamp,
                samples: samples as u64,
                mean_after_change: sum / samples as f64,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                timestamp: Timestamp::from_millis(i as i64 * 60_000).unwrap(),
                value,
                dataset: None,
            })
            .collect()
    }

    fn baseline(mean: f64, std: f64) -> Moments {
        Moments {
            count: 100,
            mean,
            variance: std * std,
        }
    }

    #[test]
    fn dates_a_step_drop_at_its_first_sample() {
        // Baseline 100 ± 1; allowance 2.5, threshold 5. From index 3 each value adds
        // 10 − 2.5 = 7.5, so the alarm comes at index 3 itself.
        let s = stream(&[100.5, 99.5, 100.0, 90.0, 90.0, 90.0]);
        let change = cusum(
            Direction::HigherIsBetter,
            baseline(100.0, 1.0),
            &s,
            &CusumOptions::default(),
        )
        .unwrap();
        assert_eq!(change.started_at, s[3].timestamp);
        assert_eq!(change.detected_at, s[3].timestamp);
        assert_eq!(change.samples, 1);
        assert_eq!(change.mean_after_change, 90.0);
    }

    #[test]
    fn accumulates_small_shifts_and_ignores_improvements() {
        // Latency (lower is better) 100 ± 1 rising by 6: each value adds 6 − 2.5 = 3.5,
        // 7.0 > 5 at the second value.
        let s = stream(&[99.0, 101.0, 106.0, 106.0, 106.0]);
        let opts = CusumOptions::default();
        let change = cusum(Direction::LowerIsBetter, baseline(100.0, 1.0), &s, &opts).unwrap();
        assert_eq!(
            (change.started_at, change.detected_at),
            (s[2].timestamp, s[3].timestamp)
        );
        assert_eq!(change.samples, 2);
        assert!(cusum(Direction::HigherIsBetter, baseline(100.0, 1.0), &s, &opts).is_none());
        assert!(cusum(Direction::LowerIsBetter, baseline(100.0, 1.0), &[], &opts).is_none());
    }
}
