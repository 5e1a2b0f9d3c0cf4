//! Degradation detection: is a metric of a model version worse now than it used to be?
//!
//! A check compares a **comparison** (the latest value, or the mean of a recent window)
//! with a **baseline** window (by default the 24 hours before; see [`windows`]). A result is
//! `degraded` only when the worsening is both
//!
//! 1. **large enough**: at least [`DetectionOptions::min_degradation_percentage`] of the
//!    baseline (alert rules pass their own `max_degradation_percentage`), and
//! 2. **statistically supported**: one-sided p-value below [`DetectionOptions::alpha`]
//!    (windows) or the stricter [`DetectionOptions::latest_value_alpha`] (a single value).
//!
//! The p-value comes from the test that fits the data ([`DegradationResult::method`]):
//!
//! * `prediction_interval`: latest-value mode; is one new value outside what the baseline
//!   distribution predicts (t with n − 1 degrees of freedom)?
//! * `welch_t`: window mode; Welch's unequal-variance t-test on the two windows' samples.
//! * `welch_t+batch_means`: window mode when the baseline holds at least
//!   [`DetectionOptions::min_batches`] blocks of the comparison window's size. Welch's test
//!   assumes independent samples; real metrics wander (autocorrelation) and cycle within a
//!   day, which makes it call tiny, meaningless differences significant. The batch-means
//!   test treats the comparison mean as one more draw from the baseline's block means, so
//!   it sees the variation between windows that really occurs. Both must agree: the
//!   p-value is the larger of the two (an intersection-union test, still valid at `alpha`).
//! * `welch_t+batch_means+daily_cycle`: as above when the baseline (at least 8 blocks over
//!   at least 20 hours) follows a daily cycle: a harmonic `a + b·sin θ + c·cos θ` of the
//!   time of day, fitted by least squares to the block means, is significant at
//!   [`DetectionOptions::daily_cycle_alpha`] (F-test) and explains at least
//!   [`DetectionOptions::daily_cycle_min_r_squared`] of their variance. The comparison mean
//!   is then judged against the fit's prediction for its time of day, with the residual
//!   spread (t with n − 3 degrees of freedom, scale s·√(1 + leverage)), instead of against
//!   the spread of all block means, which the cycle inflates: a 10 % drop at a daily peak
//!   is otherwise hidden for hours. The gate is strict (defaults 10⁻⁷ and 0.95) because a
//!   day of baseline cannot tell a cycle from a trend or a step; looser gates cost false
//!   alarms on the NAB series (bench/quality/RESULTS.md). Welch's test against the
//!   baseline mean still applies, so a result is only degraded when it is also worse than
//!   the reported `baseline_value`.
//! * `long_run_<scale>min+same_hours+week_ago`: window mode when the caller passes the
//!   [`DetectionWindows::history`] (a week and 16 hours) of a densely sampled series (at
//!   least every two minutes, see [`long_run`]) and the window is at most 16 hours long and
//!   spans at least five sampling intervals. The window and the 4, 8 and 16 hours ending
//!   now are each compared with the same clock hours of the six previous days, z-scored
//!   with a spread fitted to the history, and must also be worse than the same hours one
//!   week earlier; `<scale>` names the most significant window, the p-value is Bonferroni
//!   over the scales and `alpha` is [`DetectionOptions::long_run_alpha`]. It sees a
//!   sustained 5 % latency step that a 2-hour window hides in the wander, at fewer false
//!   alarms ([`long_run`] says how and why; bench/quality/RESULTS.md has the figures).
//!   The tests above (with the seasonal guard) still run beside it at a twentieth of its
//!   level, so a large sudden drop is reported within the hour even when a weekly cycle in
//!   the history widens the fitted spread; when they decide, the method is theirs followed
//!   by `+long_run_<scale>min` and the p-value is theirs times 20.
//! * `+daily_reference` / `+weekly_reference`: a seasonal guard (on by default, weekly).
//!   The comparison must also be worse, by the same tests and threshold, than the same
//!   hours one period earlier, so a weekend dip or a nightly trough that was there last
//!   week too is not a degradation. Ignored while that window has too little data.
//!
//! **Heavy-tailed metrics** (latency with spikes) keep the mean-based tests on purpose. On
//! the benchmark's latency streams the binding limit is the slow wander between two-hour
//! windows, not the spikes: 10 % trimmed means for the block means and Yuen's trimmed t
//! instead of Welch, or a median/MAD batch test, moved along the same trade-off between
//! false alarms and detections as changing `alpha` (figures in the git history of this file)
//! instead of improving it, so they were not adopted.
//!
//! Too little data (fewer than `min_baseline_samples` baseline values, or fewer than
//! `min_comparison_samples` comparison values in window mode, or no latest value) gives
//! status `insufficient_data` and never a verdict.
//!
//! **Zero baseline.** A percentage of zero is undefined: `percentage_change` and
//! `degradation_percentage` are then `None` (JSON `null`) and the absolute change is still
//! reported. Threshold and severity then measure the worsening as a percentage of the
//! metric's valid range when it is bounded (an error rate going from 0 to 0.08 is 8 % of
//! [0, 1]); for unbounded metrics any significant worsening is large enough, with severity
//! `high`.
//!
//! **Severity** is `none` unless the worsening is statistically supported; then by its size:
//! `critical` > 20 %, `high` 10–20 %, `medium` 5–10 % (lower bounds inclusive), `low`
//! below 5 %. A significant worsening below the threshold keeps its severity with status
//! `ok` — it is reported, not alarmed; with the default 3 % threshold a degraded result
//! can be `low` (3–5 %).
//!
//! **Start of the change.** For a degraded window, a CUSUM ([`sequential`]) over the
//! comparison samples dates the change (`change_started_at`); a change that began before
//! the comparison window is dated at its first sample.

pub mod changepoint;
pub mod long_run;
mod recommend;
pub mod sequential;
pub mod series;
pub mod significance;
pub mod windows;

use crate::metric::{Direction, Metric, MetricDefinition};
use crate::sample::{ModelName, Point, Version};
use crate::time::Timestamp;

pub use sequential::{cusum, ChangePoint, CusumOptions};
pub use series::{check_at, sampling_interval, significance_level, SeriesPoints};
pub use significance::Moments;
pub use windows::{detection_windows, ComparisonWindow, DetectionWindows, Seasonality, WindowSpec};

use significance::{
    daily_fit, fitted_prediction_worsening, prediction_worsening, timed_block_means,
    welch_worsening, Block,
};

/// When the long-run test runs, the window tests' p-value is multiplied by this: they then
/// fire at a twentieth of `long_run_alpha`, for large sudden drops.
const WINDOW_TESTS_BESIDE_LONG_RUN: f64 = 20.0;

/// Thresholds of a check. Alert rules override `min_degradation_percentage`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionOptions {
    /// One-sided significance level of window comparisons.
    pub alpha: f64,
    /// One-sided significance level when a single latest value is judged. Stricter, because
    /// one value is exposed to the real distribution's tails (spikes, skew) that a window
    /// mean averages away.
    pub latest_value_alpha: f64,
    /// The smallest worsening, in percent of the baseline, that counts as degraded. The
    /// default, 3, sits below the seed's 5 % "medium" band on purpose: a true 5 % drop is
    /// measured above 5 % only about half the time, so a 5 % threshold would miss half of
    /// the 5 % drops (see bench/quality/RESULTS.md); significance keeps the noise out.
    pub min_degradation_percentage: f64,
    pub min_baseline_samples: usize,
    /// In window mode; latest-value mode needs one value.
    pub min_comparison_samples: usize,
    /// Baseline blocks needed before the batch-means test joins Welch's test.
    pub min_batches: usize,
    /// Dating of the change; its shift is the `min_degradation_percentage`.
    pub cusum_threshold_sigmas: f64,
    /// The batch-means test allows for a daily cycle when a daily harmonic fitted to the
    /// baseline's block means is significant at this level (F-test) ...
    pub daily_cycle_alpha: f64,
    /// ... and explains at least this share of their variance (R²). `daily_cycle_alpha`
    /// 0 turns the adjustment off.
    pub daily_cycle_min_r_squared: f64,
    /// One-sided significance level of the long-run test ([`long_run`]), which replaces the
    /// window tests when a dense week of history is at hand; 0 turns it off. The default,
    /// 0.002, is a z of 3.29 on each of four scales.
    pub long_run_alpha: f64,
}

impl Default for DetectionOptions {
    fn default() -> Self {
        DetectionOptions {
            alpha: 0.01,
            latest_value_alpha: 0.001,
            min_degradation_percentage: 3.0,
            min_baseline_samples: 10,
            min_comparison_samples: 5,
            min_batches: 5,
            cusum_threshold_sigmas: CusumOptions::default().threshold_sigmas,
            daily_cycle_alpha: 1e-7,
            daily_cycle_min_r_squared: 0.95,
            long_run_alpha: 0.002,
        }
    }
}

/// How bad a statistically supported worsening is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The seed's bands: > 20 critical, [10, 20] high, [5, 10) medium, below 5 low.
    pub fn of_percentage(percentage: f64) -> Severity {
        if percentage > 20.0 {
            Severity::Critical
        } else if percentage >= 10.0 {
            Severity::High
        } else if percentage >= 5.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The verdict of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DegradationStatus {
    Ok,
    Degraded,
    InsufficientData,
}

/// What the baseline is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison<'a> {
    /// The latest value (`None` when the series has none). Baseline points at or after it
    /// are left out of the baseline, so the caller may pass a baseline that contains it.
    Latest(Option<&'a Point>),
    /// The points of the comparison window, time-ordered.
    Window(&'a [Point]),
}

/// The points of the seasonal guard's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference<'a> {
    pub seasonality: Seasonality,
    pub points: &'a [Point],
}

/// Everything one check of one metric needs, as fetched for [`DetectionWindows`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricWindows<'a> {
    pub definition: &'a MetricDefinition,
    /// Time-ordered.
    pub baseline: &'a [Point],
    pub comparison: Comparison<'a>,
    pub reference: Option<Reference<'a>>,
    /// Window mode: the week and more before the comparison window's end that the long-run
    /// test reads ([`DetectionWindows::history`]); `None` leaves it out.
    pub history: Option<History<'a>>,
}

/// The points of [`DetectionWindows::history`], with the comparison window they lead up to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct History<'a> {
    /// Time-ordered.
    pub points: &'a [Point],
    /// The comparison window's end ("now").
    pub end: Timestamp,
    pub window_minutes: usize,
}

/// The result of a check; also the JSON contract of `check`.
#[derive(Debug, Clone, PartialEq)]
pub struct DegradationResult {
    pub model: ModelName,
    pub version: Version,
    pub metric: Metric,
    pub direction: Direction,
    /// The latest value, or the comparison window's mean.
    pub current_value: Option<f64>,
    /// The baseline window's mean.
    pub baseline_value: Option<f64>,
    /// The seasonal guard window's mean, when it had enough data to take part.
    pub reference_value: Option<f64>,
    /// `current_value − baseline_value`.
    pub absolute_change: Option<f64>,
    /// `100 · absolute_change / |baseline_value|`; `None` for a zero baseline.
    pub percentage_change: Option<f64>,
    /// The worsening in percent of `|baseline_value|`, 0 for an improvement; `None` for a
    /// zero baseline.
    pub degradation_percentage: Option<f64>,
    pub is_degraded: bool,
    pub severity: Severity,
    pub recommendation: String,
    pub baseline_samples: u64,
    pub comparison_samples: u64,
    pub reference_samples: u64,
    /// One-sided p-value of the worsening; `None` without a test.
    pub p_value: Option<f64>,
    /// The test(s) behind `p_value` (see the module documentation), `none` without one.
    pub method: String,
    pub status: DegradationStatus,
    /// When a degraded comparison window's change began (CUSUM).
    pub change_started_at: Option<Timestamp>,
    /// The thresholds in force, so the output explains itself (`alpha` is
    /// `latest_value_alpha` in latest-value mode).
    pub alpha: f64,
    pub min_degradation_percentage: f64,
}

/// Checks one metric. Pure: the windows were chosen by [`detection_windows`] and fetched by
/// the caller.
pub fn check_degradation(
    model: &ModelName,
    version: &Version,
    windows: &MetricWindows<'_>,
    options: &DetectionOptions,
) -> DegradationResult {
    Detector::default().check(model, version, windows, options)
}

/// Checks every metric of a model version, reusing one scratch buffer across metrics.
pub fn check_all_metrics(
    model: &ModelName,
    version: &Version,
    metrics: &[MetricWindows<'_>],
    options: &DetectionOptions,
) -> Vec<DegradationResult> {
    let mut detector = Detector::default();
    metrics
        .iter()
        .map(|windows| detector.check(model, version, windows, options))
        .collect()
}

/// Reusable scratch space for checks; [`check_all_metrics`] keeps one for all metrics.
#[derive(Debug, Default)]
pub struct Detector {
    blocks: Vec<Block>,
    long_run: long_run::Scratch,
}

/// Worsening as a percentage of the scale a metric's changes are judged on: `|baseline|`,
/// or for a zero baseline the width of a bounded range. `None`: no scale (unbounded metric
/// at zero).
fn relative_worsening(definition: &MetricDefinition, baseline: f64, worsening: f64) -> Option<f64> {
    let scale = if baseline != 0.0 {
        baseline.abs()
    } else {
        match (definition.range.min, definition.range.max) {
            (Some(min), Some(max)) if max > min => max - min,
            _ => return None,
        }
    };
    Some(100.0 * worsening / scale).filter(|p| p.is_finite())
}

fn is_material(definition: &MetricDefinition, baseline: f64, current: f64, threshold: f64) -> bool {
    let worsening = definition.direction.worsening(baseline, current);
    worsening > 0.0
        && relative_worsening(definition, baseline, worsening).is_none_or(|p| p >= threshold)
}

fn finite(value: f64) -> Option<f64> {
    Some(value).filter(|v| v.is_finite())
}

impl Detector {
    pub fn check(
        &mut self,
        model: &ModelName,
        version: &Version,
        windows: &MetricWindows<'_>,
        options: &DetectionOptions,
    ) -> DegradationResult {
        let definition = windows.definition;
        let direction = definition.direction;
        let latest_mode = matches!(windows.comparison, Comparison::Latest(_));
        let (baseline_points, current) = match windows.comparison {
            Comparison::Latest(Some(latest)) => {
                let end = windows
                    .baseline
                    .partition_point(|p| p.timestamp < latest.timestamp);
                (&windows.baseline[..end], Moments::of([latest.value]))
            }
            Comparison::Latest(None) => (windows.baseline, None),
            Comparison::Window(points) => (
                windows.baseline,
                Moments::of(points.iter().map(|p| p.value)),
            ),
        };
        let baseline = Moments::of(baseline_points.iter().map(|p| p.value));

        let baseline_value = baseline.and_then(|m| finite(m.mean));
        let current_value = current.and_then(|m| finite(m.mean));
        let (absolute_change, percentage_change, degradation_percentage) =
            match (baseline_value, current_value) {
                (Some(b), Some(c)) => {
                    let worsening = direction.worsening(b, c);
                    let relative = (b != 0.0).then(|| b.abs());
                    (
                        finite(c - b),
                        relative.and_then(|scale| finite(100.0 * (c - b) / scale)),
                        relative.and_then(|scale| {
                            finite(if worsening > 0.0 {
                                100.0 * worsening / scale
                            } else {
                                0.0
                            })
                        }),
                    )
                }
                _ => (None, None, None),
            };

        let mut result = DegradationResult {
            model: model.clone(),
            version: version.clone(),
            metric: definition.metric.clone(),
            direction,
            current_value,
            baseline_value,
            reference_value: None,
            absolute_change,
            percentage_change,
            degradation_percentage,
            is_degraded: false,
            severity: Severity::None,
            recommendation: String::new(),
            baseline_samples: baseline.map_or(0, |m| m.count) as u64,
            comparison_samples: current.map_or(0, |m| m.count) as u64,
            reference_samples: 0,
            p_value: None,
            method: "none".to_owned(),
            status: DegradationStatus::InsufficientData,
            change_started_at: None,
            alpha: if latest_mode {
                options.latest_value_alpha
            } else {
                options.alpha
            },
            min_degradation_percentage: options.min_degradation_percentage,
        };

        let min_comparison = if latest_mode {
            1
        } else {
            options.min_comparison_samples.max(2)
        };
        let (Some(baseline), Some(current)) = (baseline, current) else {
            return self.finish(result);
        };
        if baseline.count < options.min_baseline_samples.max(2) || current.count < min_comparison {
            return self.finish(result);
        }

        let long_run = match (windows.comparison, windows.history) {
            (Comparison::Window(_), Some(history)) if options.long_run_alpha > 0.0 => {
                long_run::long_run_test(
                    &mut self.long_run,
                    direction,
                    history.points,
                    history.end,
                    history.window_minutes,
                    options.min_degradation_percentage,
                )
            }
            _ => None,
        };
        let window = self.window_tests(
            windows,
            baseline_points,
            baseline,
            current,
            &mut result,
            options,
        );
        let (p_value, method, material) = match long_run {
            // The window tests still run beside the long-run test, at a twentieth of its
            // level (their p-value is multiplied by 20): a large, sudden drop is then
            // reported within the hour even when the history's weekly cycle widens the
            // long-run test's spread. The pair's false-alarm level is at most 1.05 alpha.
            // The long-run test brings its own seasonal references (same hours on six days,
            // one week earlier).
            Some(verdict) => {
                result.alpha = options.long_run_alpha;
                let long_run_p = verdict.p_value;
                let (window_p, window_method, window_material) = window;
                let window_p = (window_p * WINDOW_TESTS_BESIDE_LONG_RUN).min(1.0);
                if window_material && window_p < long_run_p {
                    (
                        window_p,
                        format!("{window_method}+long_run_{}min", verdict.scale_minutes),
                        window_material,
                    )
                } else {
                    (
                        long_run_p,
                        format!("long_run_{}min+same_hours+week_ago", verdict.scale_minutes),
                        is_material(
                            definition,
                            baseline.mean,
                            current.mean,
                            options.min_degradation_percentage,
                        ),
                    )
                }
            }
            None => window,
        };
        let worsening = direction.worsening(baseline.mean, current.mean);
        let significant = worsening > 0.0 && p_value < result.alpha;
        result.is_degraded = significant && material;
        result.p_value = finite(p_value);
        result.method = method;
        result.severity = if significant {
            relative_worsening(definition, baseline.mean, worsening)
                .map_or(Severity::High, Severity::of_percentage)
        } else {
            Severity::None
        };
        result.status = if result.is_degraded {
            DegradationStatus::Degraded
        } else {
            DegradationStatus::Ok
        };
        if result.is_degraded {
            if let Comparison::Window(points) = windows.comparison {
                let cusum_options = CusumOptions {
                    shift_percentage: options.min_degradation_percentage,
                    threshold_sigmas: options.cusum_threshold_sigmas,
                };
                result.change_started_at = cusum(direction, baseline, points, &cusum_options)
                    .map(|change| change.started_at)
                    .or_else(|| points.first().map(|p| p.timestamp));
            }
        }
        self.finish(result)
    }

    /// The tests of the module documentation other than the long-run one: the p-value, the
    /// method, and whether the worsening is material against the baseline (and the seasonal
    /// guard's window, which it also fills in on `result`).
    fn window_tests(
        &mut self,
        windows: &MetricWindows<'_>,
        baseline_points: &[Point],
        baseline: Moments,
        current: Moments,
        result: &mut DegradationResult,
        options: &DetectionOptions,
    ) -> (f64, String, bool) {
        let definition = windows.definition;
        let direction = definition.direction;
        let latest_mode = matches!(windows.comparison, Comparison::Latest(_));
        let min_reference = options.min_comparison_samples.max(2);
        let reference = windows.reference.and_then(|r| {
            Moments::of(r.points.iter().map(|p| p.value))
                .filter(|m| m.count >= min_reference)
                .map(|m| (r.seasonality, m))
        });
        let (mut p_value, mut method) = if latest_mode {
            let p =
                prediction_worsening(direction, baseline, current.mean).map_or(1.0, |t| t.p_value);
            (p, String::from("prediction_interval"))
        } else {
            let welch = welch_worsening(direction, baseline, current).map_or(1.0, |t| t.p_value);
            timed_block_means(baseline_points, current.count, &mut self.blocks);
            match Moments::of(self.blocks.iter().map(|b| b.mean))
                .filter(|m| m.count >= options.min_batches.max(2))
            {
                Some(batches) => {
                    let cycle = match windows.comparison {
                        Comparison::Window(points) if options.daily_cycle_alpha > 0.0 => {
                            let at = points
                                .iter()
                                .map(|p| p.timestamp.as_millis() as f64)
                                .sum::<f64>()
                                / points.len() as f64;
                            daily_fit(&self.blocks, at).filter(|fit| {
                                fit.p_value < options.daily_cycle_alpha
                                    && fit.r_squared >= options.daily_cycle_min_r_squared
                            })
                        }
                        _ => None,
                    };
                    match cycle {
                        Some(fit) => {
                            let batch =
                                fitted_prediction_worsening(direction, &fit, current.mean).p_value;
                            (
                                welch.max(batch),
                                String::from("welch_t+batch_means+daily_cycle"),
                            )
                        }
                        None => {
                            let batch = prediction_worsening(direction, batches, current.mean)
                                .map_or(1.0, |t| t.p_value);
                            (welch.max(batch), String::from("welch_t+batch_means"))
                        }
                    }
                }
                None => (welch, String::from("welch_t")),
            }
        };

        let mut material = is_material(
            definition,
            baseline.mean,
            current.mean,
            options.min_degradation_percentage,
        );
        if let Some((cycle, reference)) = reference {
            let test = if latest_mode {
                prediction_worsening(direction, reference, current.mean)
            } else {
                welch_worsening(direction, reference, current)
            };
            p_value = p_value.max(test.map_or(1.0, |t| t.p_value));
            material &= is_material(
                definition,
                reference.mean,
                current.mean,
                options.min_degradation_percentage,
            );
            method.push('+');
            method.push_str(cycle.as_str());
            method.push_str("_reference");
            result.reference_value = finite(reference.mean);
            result.reference_samples = reference.count as u64;
        }

        (p_value, method, material)
    }

    fn finish(&self, mut result: DegradationResult) -> DegradationResult {
        result.recommendation = recommend::recommendation(
            &result.metric,
            result.direction,
            result.status,
            result.severity,
            result.min_degradation_percentage,
        );
        result
    }
}

#[cfg(test)]
mod tests;
