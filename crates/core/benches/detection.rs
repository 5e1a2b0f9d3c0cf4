//! Speed of the pure detection path: `check_all_metrics` over one week of per-minute data
//! for 15 metrics (the budget is 10 ms), also with the long-run test, which reads a week and
//! 16 hours, and `performance_history` over the same data.
//! Run with `cargo bench -p modelwatch-core --bench detection`; prints medians.

use std::hint::black_box;
use std::time::{Duration, Instant};

use modelwatch_core::detection::{
    check_all_metrics, detection_windows, long_run, Comparison, ComparisonWindow, DetectionOptions,
    History, MetricWindows, WindowSpec,
};
use modelwatch_core::health::{performance_history, HealthOptions, MetricSeries};
use modelwatch_core::{Metric, MetricDefinition, ModelName, Point, TimeRange, Timestamp, Version};

const METRICS: usize = 15;
const WEEK_MINUTES: i64 = 7 * 24 * 60;
/// What the long-run test reads: a week and 16 hours.
const SERIES_MINUTES: i64 = long_run::HISTORY_MINUTES as i64;
const REPETITIONS: usize = 51;

fn slice(points: &[Point], range: TimeRange) -> &[Point] {
    let start = points.partition_point(|p| p.timestamp < range.start);
    let end = points.partition_point(|p| p.timestamp < range.end);
    &points[start..end.max(start)]
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(mut run: impl FnMut()) -> Duration {
    run();
    median(
        (0..REPETITIONS)
            .map(|_| {
                let started = Instant::now();
                run();
                started.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let definitions: Vec<MetricDefinition> = (0..METRICS)
        .map(|i| Metric::BUILT_IN[i % Metric::BUILT_IN.len()].default_definition())
        .collect();
    // A cheap deterministic wiggle: the values' distribution does not change the cost.
    let series: Vec<Vec<Point>> = (0..METRICS)
        .map(|m| {
            (0..SERIES_MINUTES)
                .filter_map(|minute| {
                    let value =
                        0.5 + 0.1 * ((minute * 7919 + m as i64 * 104_729) % 1000) as f64 / 1000.0;
                    Timestamp::from_millis(minute * 60_000)
                        .ok()
                        .map(|timestamp| Point {
                            timestamp,
                            value,
                            dataset: None,
                        })
                })
                .collect()
        })
        .collect();
    let model = ModelName::parse("bench").unwrap_or_else(|_| unreachable!());
    let version = Version::parse("v1").unwrap_or_else(|_| unreachable!());
    let now = Timestamp::from_millis(SERIES_MINUTES * 60_000).unwrap_or(Timestamp::MAX);
    let options = DetectionOptions::default();

    for (label, comparison_hours, with_history) in [
        ("1 h window", Some(1), false),
        ("latest value", None, false),
        ("1 h window + long-run test (7 d 16 h read)", Some(1), true),
    ] {
        // The baseline covers the rest of the week, so every sample is read once.
        let spec = WindowSpec {
            baseline_hours: 167,
            comparison_hours,
            ..WindowSpec::default()
        };
        let windows = detection_windows(now, &spec);
        let elapsed = time(|| {
            let inputs: Vec<MetricWindows<'_>> = definitions
                .iter()
                .zip(&series)
                .map(|(definition, points)| MetricWindows {
                    definition,
                    baseline: slice(points, windows.baseline),
                    comparison: match windows.comparison {
                        ComparisonWindow::Range(range) => Comparison::Window(slice(points, range)),
                        ComparisonWindow::Latest { search } => {
                            Comparison::Latest(slice(points, search).last())
                        }
                    },
                    reference: None,
                    history: match (windows.comparison, windows.history) {
                        (ComparisonWindow::Range(range), Some(history)) if with_history => {
                            Some(History {
                                points: slice(points, history),
                                end: range.end,
                                window_minutes: 60,
                            })
                        }
                        _ => None,
                    },
                })
                .collect();
            black_box(check_all_metrics(
                &model,
                &version,
                black_box(&inputs),
                &options,
            ));
        });
        println!(
            "check_all_metrics, {METRICS} metrics x {WEEK_MINUTES} per-minute samples, {label}: median {:.3} ms over {REPETITIONS} runs (budget 10 ms)",
            elapsed.as_secs_f64() * 1e3
        );
    }

    let week_start =
        Timestamp::from_millis((SERIES_MINUTES - WEEK_MINUTES) * 60_000).unwrap_or(Timestamp::MIN);
    let range = TimeRange::new(week_start, now);
    let elapsed = time(|| {
        let metrics: Vec<MetricSeries<'_>> = definitions
            .iter()
            .zip(&series)
            .map(|(definition, points)| MetricSeries {
                definition,
                points: slice(points, range),
            })
            .collect();
        black_box(performance_history(
            &model,
            &version,
            range,
            black_box(&metrics),
            &HealthOptions::default(),
        ));
    });
    println!(
        "performance_history, {METRICS} metrics x {WEEK_MINUTES} per-minute samples: median {:.3} ms over {REPETITIONS} runs",
        elapsed.as_secs_f64() * 1e3
    );
}
