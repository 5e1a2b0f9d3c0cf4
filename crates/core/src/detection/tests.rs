//! Hand-computed fixtures: every field of the result is checked.

use super::*;
use crate::metric::Metric;

const MIN: i64 = 60_000;

fn points_from(start_min: i64, values: &[f64]) -> Vec<Point> {
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| Point {
            timestamp: Timestamp::from_millis((start_min + i as i64) * MIN).unwrap(),
            value,
            dataset: None,
        })
        .collect()
}

fn names() -> (ModelName, Version) {
    (
        ModelName::parse("fraud").unwrap(),
        Version::parse("v1").unwrap(),
    )
}

fn small_windows() -> DetectionOptions {
    DetectionOptions {
        min_baseline_samples: 3,
        min_comparison_samples: 3,
        ..DetectionOptions::default()
    }
}

fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a value");
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

#[test]
fn latest_accuracy_drop_is_a_critical_degradation_by_prediction_interval() {
    // Baseline 0.90, 0.92, 0.88: mean 0.9, s = 0.02. Latest 0.70 (also the last baseline
    // point, which must be left out). t = 0.2 / (0.02 · √(4/3)), df = 2, where
    // P(T ≥ t) = ½ − t / (2√(t² + 2)).
    let (model, version) = names();
    let definition = Metric::Accuracy.default_definition();
    let series = points_from(0, &[0.90, 0.92, 0.88, 0.70]);
    let windows = MetricWindows {
        definition: &definition,
        baseline: &series,
        comparison: Comparison::Latest(series.last()),
        reference: None,
        history: None,
    };
    let options = DetectionOptions {
        latest_value_alpha: 0.01,
        ..small_windows()
    };
    let r = check_degradation(&model, &version, &windows, &options);
    let t = 0.2 / (0.02 * (4.0f64 / 3.0).sqrt());
    let p = 0.5 - t / (2.0 * (t * t + 2.0).sqrt());
    close(r.current_value, 0.70);
    close(r.baseline_value, 0.90);
    close(r.absolute_change, -0.20);
    close(r.percentage_change, -200.0 / 9.0);
    close(r.degradation_percentage, 200.0 / 9.0);
    close(r.p_value, p);
    assert!(p < 0.01 && p > 0.005, "{p}");
    assert_eq!(r.reference_value, None);
    assert!(r.is_degraded);
    assert_eq!(r.severity, Severity::Critical);
    assert_eq!(r.status, DegradationStatus::Degraded);
    assert_eq!(r.method, "prediction_interval");
    assert_eq!(
        (
            r.baseline_samples,
            r.comparison_samples,
            r.reference_samples
        ),
        (3, 1, 0)
    );
    assert_eq!(r.change_started_at, None);
    assert_eq!((r.alpha, r.min_degradation_percentage), (0.01, 3.0));
    // At the default single-value level of 0.001 the same value is not enough evidence.
    let strict = check_degradation(&model, &version, &windows, &small_windows());
    assert_eq!(
        (strict.alpha, strict.is_degraded, strict.severity),
        (0.001, false, Severity::None)
    );
    assert_eq!(
        r.recommendation,
        "accuracy has dropped sharply: compare recent inputs with the training data, and consider rolling back to the previous version or retraining."
    );
}

#[test]
fn latency_rise_is_a_degradation_by_welch_and_is_dated() {
    // Baseline 98, 100, 102 (mean 100, var 4); comparison 118, 120, 122 (mean 120, var 4).
    // t = 20 / √(8/3), df = 4, and for df = 4
    // P(T ≥ t) = ½ − (3/8) · u · (1 − u² / 12) with u = t / √(1 + t²/4).
    let (model, version) = names();
    let definition = Metric::Latency.default_definition();
    let baseline = points_from(0, &[98.0, 100.0, 102.0]);
    let comparison = points_from(3, &[118.0, 120.0, 122.0]);
    let windows = MetricWindows {
        definition: &definition,
        baseline: &baseline,
        comparison: Comparison::Window(&comparison),
        reference: None,
        history: None,
    };
    let r = check_degradation(&model, &version, &windows, &small_windows());
    let t = 20.0 / (8.0f64 / 3.0).sqrt();
    let u = t / (1.0 + t * t / 4.0).sqrt();
    let p = 0.5 - 0.375 * u * (1.0 - u * u / 12.0);
    close(r.current_value, 120.0);
    close(r.baseline_value, 100.0);
    close(r.absolute_change, 20.0);
    close(r.percentage_change, 20.0);
    close(r.degradation_percentage, 20.0);
    assert!(
        (r.p_value.unwrap() - p).abs() < 1e-9,
        "{:?} vs {p}",
        r.p_value
    );
    assert!(r.is_degraded);
    // Exactly 20 % is still `high`; critical starts above it.
    assert_eq!(r.severity, Severity::High);
    assert_eq!(r.status, DegradationStatus::Degraded);
    // One baseline block of three is too few for batch means.
    assert_eq!(r.method, "welch_t");
    assert_eq!((r.baseline_samples, r.comparison_samples), (3, 3));
    // CUSUM: allowance 2.5, threshold 5 · 2 = 10; 118 − 100 − 2.5 = 15.5 alarms at once.
    assert_eq!(r.change_started_at, Some(comparison[0].timestamp));
    assert_eq!(
        r.recommendation,
        "latency has risen sharply: check for resource saturation, failing dependencies or a bad deployment, and scale out or roll back."
    );
}

#[test]
fn an_improvement_is_never_a_degradation() {
    let (model, version) = names();
    let definition = Metric::Latency.default_definition();
    let baseline = points_from(0, &[98.0, 100.0, 102.0]);
    let comparison = points_from(3, &[78.0, 80.0, 82.0]);
    let windows = MetricWindows {
        definition: &definition,
        baseline: &baseline,
        comparison: Comparison::Window(&comparison),
        reference: None,
        history: None,
    };
    let r = check_degradation(&model, &version, &windows, &small_windows());
    close(r.percentage_change, -20.0);
    close(r.degradation_percentage, 0.0);
    assert!(r.p_value.unwrap() > 0.99);
    assert!(!r.is_degraded);
    assert_eq!(
        (r.severity, r.status),
        (Severity::None, DegradationStatus::Ok)
    );
    assert_eq!(r.change_started_at, None);
    assert_eq!(
        r.recommendation,
        "No action needed: latency shows no statistically supported degradation."
    );
}

#[test]
fn zero_baseline_uses_the_range_and_never_emits_nan() {
    // Error rate 0, 0, 0 → 0.1, 0.1, 0.1: both windows constant, so p = 0. Percentages of
    // zero are undefined (null); 0.1 is 10 % of the range [0, 1] → high.
    let (model, version) = names();
    let definition = Metric::ErrorRate.default_definition();
    let baseline = points_from(0, &[0.0, 0.0, 0.0]);
    let comparison = points_from(3, &[0.1, 0.1, 0.1]);
    let windows = MetricWindows {
        definition: &definition,
        baseline: &baseline,
        comparison: Comparison::Window(&comparison),
        reference: None,
        history: None,
    };
    let r = check_degradation(&model, &version, &windows, &small_windows());
    close(r.absolute_change, 0.1);
    assert_eq!(
        (r.percentage_change, r.degradation_percentage),
        (None, None)
    );
    assert_eq!(r.p_value, Some(0.0));
    assert!(r.is_degraded);
    assert_eq!(r.severity, Severity::High);
    assert_eq!(r.status, DegradationStatus::Degraded);

    // 0 → 0.02 is 2 % of the range: real, but below the 3 % threshold.
    let small = points_from(3, &[0.02, 0.02, 0.02]);
    let windows = MetricWindows {
        comparison: Comparison::Window(&small),
        ..windows
    };
    let r = check_degradation(&model, &version, &windows, &small_windows());
    assert!(!r.is_degraded);
    assert_eq!(
        (r.severity, r.status),
        (Severity::Low, DegradationStatus::Ok)
    );
    assert_eq!(
        r.recommendation,
        "Keep watching error_rate: it is measurably worse, but by less than the 3% that counts as degraded."
    );
}

#[test]
fn single_sample_and_empty_windows_are_insufficient_data() {
    let (model, version) = names();
    let definition = Metric::Accuracy.default_definition();
    let one = points_from(0, &[0.9]);
    let windows = MetricWindows {
        definition: &definition,
        baseline: &one,
        comparison: Comparison::Window(&[]),
        reference: None,
        history: None,
    };
    let r = check_degradation(&model, &version, &windows, &DetectionOptions::default());
    assert_eq!(r.status, DegradationStatus::InsufficientData);
    close(r.baseline_value, 0.9);
    assert_eq!(
        (
            r.current_value,
            r.absolute_change,
            r.percentage_change,
            r.degradation_percentage
        ),
        (None, None, None, None)
    );
    assert_eq!(
        (r.p_value, r.method.as_str(), r.is_degraded, r.severity),
        (None, "none", false, Severity::None)
    );
    assert_eq!((r.baseline_samples, r.comparison_samples), (1, 0));
    assert_eq!(
        r.recommendation,
        "Not enough accuracy samples to judge; keep recording and check again once both windows hold enough data."
    );

    let nothing = MetricWindows {
        baseline: &[],
        comparison: Comparison::Latest(None),
        ..windows
    };
    let r = check_degradation(&model, &version, &nothing, &DetectionOptions::default());
    assert_eq!(r.status, DegradationStatus::InsufficientData);
    assert_eq!(
        (
            r.current_value,
            r.baseline_value,
            r.baseline_samples,
            r.comparison_samples
        ),
        (None, None, 0, 0)
    );

    // A latest value with a one-point baseline: values are reported, no verdict.
    let two = points_from(0, &[0.9, 0.5]);
    let latest = MetricWindows {
        baseline: &two,
        comparison: Comparison::Latest(two.last()),
        ..windows
    };
    let r = check_degradation(&model, &version, &latest, &DetectionOptions::default());
    assert_eq!(r.status, DegradationStatus::InsufficientData);
    close(r.degradation_percentage, 400.0 / 9.0);
    assert!(!r.is_degraded);
}

#[test]
fn the_weekly_reference_vetoes_a_change_that_was_there_last_week() {
    // Against yesterday the comparison is 10 % worse, but last week's same hours looked
    // exactly like it (a weekly cycle), so it is not a degradation.
    let (model, version) = names();
    let definition = Metric::Accuracy.default_definition();
    let baseline = points_from(100, &[0.90, 0.91, 0.89, 0.90, 0.91, 0.89]);
    let comparison = points_from(200, &[0.81, 0.80, 0.79]);
    let last_week = points_from(0, &[0.80, 0.81, 0.79]);
    let mut windows = MetricWindows {
        definition: &definition,
        baseline: &baseline,
        comparison: Comparison::Window(&comparison),
        reference: Some(Reference {
            seasonality: Seasonality::Weekly,
            points: &last_week,
        }),
        history: None,
    };
    let r = check_degradation(&model, &version, &windows, &small_windows());
    assert_eq!(r.method, "welch_t+weekly_reference");
    close(r.reference_value, 0.80);
    assert_eq!(r.reference_samples, 3);
    close(r.p_value, 0.5);
    assert!(!r.is_degraded);
    assert_eq!(
        (r.severity, r.status),
        (Severity::None, DegradationStatus::Ok)
    );

    // Without last week's data the guard steps aside.
    windows.reference = Some(Reference {
        seasonality: Seasonality::Weekly,
        points: &[],
    });
    let r = check_degradation(&model, &version, &windows, &small_windows());
    assert_eq!(r.method, "welch_t");
    assert!(r.is_degraded);
    assert_eq!(r.reference_value, None);
}

#[test]
fn batch_means_keep_a_wandering_series_from_alarming() {
    // A baseline that wanders between hourly levels 0.88 and 0.92 (tight within each
    // block): Welch alone calls a 0.875 comparison hugely significant, batch means do not.
    let (model, version) = names();
    let definition = Metric::Accuracy.default_definition();
    let mut values = Vec::new();
    for block in 0..8 {
        let level = if block % 2 == 0 { 0.88 } else { 0.92 };
        values.extend([level - 0.001, level, level + 0.001]);
    }
    let baseline = points_from(0, &values);
    let comparison = points_from(100, &[0.851, 0.85, 0.849]);
    let windows = MetricWindows {
        definition: &definition,
        baseline: &baseline,
        comparison: Comparison::Window(&comparison),
        reference: None,
        history: None,
    };
    let r = check_degradation(&model, &version, &windows, &small_windows());
    assert_eq!(r.method, "welch_t+batch_means");
    close(r.degradation_percentage, 5.0 / 0.9);
    assert!(r.p_value.unwrap() > 0.01, "{:?}", r.p_value);
    assert!(!r.is_degraded);
}

#[test]
fn check_all_metrics_checks_each_metric_in_order() {
    let (model, version) = names();
    let accuracy = Metric::Accuracy.default_definition();
    let latency = Metric::Latency.default_definition();
    let a = points_from(0, &[0.9, 0.9, 0.9]);
    let l = points_from(0, &[100.0, 100.0, 100.0]);
    let metrics = [
        MetricWindows {
            definition: &accuracy,
            baseline: &a,
            comparison: Comparison::Latest(None),
            reference: None,
            history: None,
        },
        MetricWindows {
            definition: &latency,
            baseline: &l,
            comparison: Comparison::Window(&l),
            reference: None,
            history: None,
        },
    ];
    let results = check_all_metrics(&model, &version, &metrics, &small_windows());
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].metric, Metric::Accuracy);
    assert_eq!(results[0].status, DegradationStatus::InsufficientData);
    assert_eq!(results[1].status, DegradationStatus::Ok);
    assert_eq!(results[1].p_value, Some(1.0));
}

#[test]
fn severity_bands_follow_the_seed() {
    assert_eq!(Severity::of_percentage(20.5), Severity::Critical);
    assert_eq!(Severity::of_percentage(20.0), Severity::High);
    assert_eq!(Severity::of_percentage(10.0), Severity::High);
    assert_eq!(Severity::of_percentage(9.99), Severity::Medium);
    assert_eq!(Severity::of_percentage(5.0), Severity::Medium);
    assert_eq!(Severity::of_percentage(4.99), Severity::Low);
}

/// 24 hours of an accuracy with a daily cycle of amplitude 0.05 around 0.9, a point every
/// 40 minutes from day 1 00:00 − 40 min, so the 12 blocks of 3 are centred on 00:00,
/// 02:00, …, 22:00. Within a block the values differ by ±0.001; the blocks alternate by
/// ±0.002 (a pattern orthogonal to the daily harmonic), so the fit leaves residuals of
/// exactly ±0.002 and the baseline mean is exactly 0.9.
fn daily_cycle_baseline() -> Vec<Point> {
    let day = 1440;
    (0..36)
        .map(|i: i64| {
            let minute = day - 40 + 40 * i;
            let theta = std::f64::consts::TAU * (minute % day) as f64 / day as f64;
            let jitter = 0.001 * ((i % 3) - 1) as f64;
            let alternate = if (i / 3) % 2 == 0 { 0.002 } else { -0.002 };
            Point {
                timestamp: Timestamp::from_millis(minute * MIN).unwrap(),
                value: 0.9 + 0.05 * theta.sin() + jitter + alternate,
                dataset: None,
            }
        })
        .collect()
}

#[test]
fn a_daily_cycle_in_the_baseline_sharpens_the_batch_means_test() {
    // The comparison, at 00:00 the next day where the cycle is at its mean, is 6 % below
    // the baseline mean 0.9. Plain batch means see block means spread by the cycle (sd
    // ≈ 0.035), so 0.054 is unremarkable; the daily fit predicts 0.9 there with a residual
    // sd of ≈ 0.0023, so the drop is plain.
    let (model, version) = names();
    let definition = Metric::Accuracy.default_definition();
    let baseline = daily_cycle_baseline();
    let comparison: Vec<Point> = [-40i64, 0, 40]
        .iter()
        .zip([0.845, 0.846, 0.847])
        .map(|(offset, value)| Point {
            timestamp: Timestamp::from_millis((2 * 1440 + offset) * MIN).unwrap(),
            value,
            dataset: None,
        })
        .collect();
    let windows = MetricWindows {
        definition: &definition,
        baseline: &baseline,
        comparison: Comparison::Window(&comparison),
        reference: None,
        history: None,
    };
    let r = check_degradation(&model, &version, &windows, &small_windows());
    assert_eq!(r.method, "welch_t+batch_means+daily_cycle");
    close(r.baseline_value, 0.9);
    close(r.degradation_percentage, 6.0);
    assert!(r.p_value.unwrap() < 1e-6, "{:?}", r.p_value);
    assert!(r.is_degraded);
    assert_eq!(r.severity, Severity::Medium);

    let without = DetectionOptions {
        daily_cycle_alpha: 0.0,
        ..small_windows()
    };
    let r = check_degradation(&model, &version, &windows, &without);
    assert_eq!(r.method, "welch_t+batch_means");
    assert!(r.p_value.unwrap() > 0.01, "{:?}", r.p_value);
    assert!(!r.is_degraded);
}
