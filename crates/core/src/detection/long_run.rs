//! The long-run test: window mode on dense series with a week of history.
//!
//! A real metric wanders: traffic mix, time of day and upstream load move it for hours at a
//! time. Between two 2-hour windows that wander dwarfs the per-sample noise, so a test that
//! only sees the comparison window and the day before it cannot tell a 5 % step from a
//! wander and must either alarm on noise or miss steps (bench/quality/CEILING.md measured
//! that ceiling). This test sees more, in three ways:
//!
//! 1. **Longer scales.** Besides the comparison window (`W`), the windows of 4, 8 and 16
//!    hours ending now (those longer than `W`): a sustained change keeps adding evidence,
//!    a wander averages out.
//! 2. **The spread of those windows, fitted.** From six days of history before the longest
//!    window (spikes winsorised at ± 3 robust standard deviations from the median of their
//!    half hour, the mean time-of-day profile removed), the variance of 5 … 240-minute block means is measured
//!    and fitted with white noise plus one exponentially correlated wander:
//!    `V(L) = white / L + slow · g(L / τ)`, `g(x) = 2/x · (1 − (1 − e^(−x)) / x)`, with `L`
//!    in minutes. Hundreds of short blocks pin the model down far better than the nine
//!    16-hour blocks six days hold; the model then gives the spread of every scale.
//! 3. **Seasonal references.** Each scale's window is compared with the mean of the same
//!    clock hours on each of the six previous days (a daily cycle cancels), z-scored with
//!    the fitted spread, and must also be worse than the same hours one week earlier (a
//!    weekend dip that was there last week too is not a degradation).
//!
//! A scale fires when its window is at least the minimum worsening worse than both
//! references and its z-score is significant; the p-value is the smallest scale's
//! Bonferroni-adjusted one-sided normal tail. Data is put on a grid of bin means whose width
//! is the series' median sampling interval rounded up to one or two minutes; the test needs
//! at least [`MIN_DENSITY`] of the grid's bins to hold a sample and a comparison window of
//! at least five bins. Series sampled less often than every two minutes (see [`WIDTHS`] for
//! why), shorter or gappier histories, and comparison windows longer than 16 hours fall
//! back to the window tests of [`super`].
//!
//! The model matches the benchmark's generator in form (white noise plus one wander), which
//! is also the textbook first-order model of a metric; a metric with longer memory makes
//! the extrapolation to 16 hours optimistic. The NAB series in bench/quality/RESULTS.md are
//! the check on real data.

use crate::metric::Direction;
use crate::sample::Point;
use crate::time::Timestamp;

use super::significance::normal_upper_tail;

const MINUTE_MS: i64 = 60_000;
const HOUR: usize = 60;
const DAY: usize = 24 * HOUR;
const WEEK: usize = 7 * DAY;
/// The longer scales, minutes.
const LONG_SCALES: [usize; 3] = [4 * HOUR, 8 * HOUR, 16 * HOUR];
const LONGEST_SCALE: usize = 16 * HOUR;
/// History the spread is fitted on, before the longest window.
const FIT_SPAN: usize = 6 * DAY;
/// Days averaged by the same-clock-hours reference.
const SAME_HOURS_DAYS: usize = 6;
/// Block lengths (minutes) whose mean variance is measured for the fit.
const FIT_SCALES: [usize; 6] = [5, 15, 30, 60, 120, 240];
/// Correlation times (minutes) tried for the wander; the best weighted least-squares fit
/// wins.
const FIT_TAUS: [f64; 14] = [
    10.0, 20.0, 30.0, 45.0, 60.0, 80.0, 100.0, 120.0, 150.0, 180.0, 240.0, 360.0, 480.0, 720.0,
];
/// Share of the grid's bins that must hold a sample.
pub const MIN_DENSITY: f64 = 0.8;
/// Bins the comparison window must span, as a window test needs samples.
const MIN_WINDOW_BINS: usize = 5;
/// Winsorising limit, robust standard deviations from the local level.
const WINSOR_SIGMAS: f64 = 3.0;
/// Minutes whose median is the local level spikes are measured from.
const LEVEL_BLOCK: usize = 30;

/// The minutes of history the test reads before `now`: the longest window, its week-ago
/// reference and the fitted span all fit in it.
pub const HISTORY_MINUTES: usize = WEEK + LONGEST_SCALE;

/// What the test concluded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongRunVerdict {
    /// Bonferroni-adjusted one-sided p-value of the most significant scale that is worse by
    /// the minimum against both references; 1 when none is.
    pub p_value: f64,
    /// That scale, in minutes.
    pub scale_minutes: usize,
}

/// Buffers a check reuses: a week of per-minute data takes about 1 MB of them, which
/// [`super::Detector`] keeps across the metrics of a `check_all_metrics`.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Bin means, NaN for an empty bin; winsorised in place.
    values: Vec<f64>,
    counts: Vec<f64>,
    /// Medians and gaps.
    work: Vec<f64>,
    levels: Vec<f64>,
    sums: Vec<f64>,
    present: Vec<f64>,
    residual_sums: Vec<f64>,
    residual_present: Vec<f64>,
    profile: Vec<(f64, u32)>,
}

/// Bins of `width` minutes ending at `now`: bin `i` of `n` covers
/// `[now − (n − i)·width, now − (n − i − 1)·width)`, as prefix sums of the present bins'
/// values and of their presence.
struct Grid<'a> {
    width: usize,
    sums: &'a [f64],
    present: &'a [f64],
}

impl Grid<'_> {
    fn len(&self) -> usize {
        self.sums.len() - 1
    }

    /// Mean over bins `[start, end)`, `None` when too few hold a sample.
    fn mean(&self, start: usize, end: usize) -> Option<f64> {
        let present = self.present[end] - self.present[start];
        (present >= MIN_DENSITY * (end - start) as f64)
            .then(|| (self.sums[end] - self.sums[start]) / present)
    }

    /// Mean over the `minutes` ending `back` minutes before now (both multiples of the
    /// width).
    fn window(&self, minutes: usize, back: usize) -> Option<f64> {
        let end = self.len().checked_sub(back / self.width)?;
        self.mean(end.checked_sub(minutes / self.width)?, end)
    }
}

/// Prefix sums of `values` (NaN = empty) and of their presence.
fn prefix_sums(values: impl Iterator<Item = f64>, sums: &mut Vec<f64>, present: &mut Vec<f64>) {
    sums.clear();
    present.clear();
    let (mut sum, mut count) = (0.0, 0.0);
    sums.push(sum);
    present.push(count);
    for value in values {
        if !value.is_nan() {
            sum += value;
            count += 1.0;
        }
        sums.push(sum);
        present.push(count);
    }
}

/// Bin widths (minutes) the grid may take. Coarser grids were measured and rejected: with
/// fewer than 15 samples per half hour the local level that spikes are clipped against is
/// itself a spike, and the fit has too few short scales. On the benchmark's 20-minute
/// latency streams false alarms rose fivefold (6 h window: 2.4 → 12.2 per 1000 checks), and
/// on the NAB series (5-minute data) the standard score fell from 25.8 to 15.9.
const WIDTHS: [usize; 2] = [1, 2];

/// The grid's bin width for a series: the smallest of [`WIDTHS`] that is not shorter than
/// the median gap between its samples. `None` for series sampled less often than every two
/// minutes.
fn bin_width(history: &[Point], work: &mut Vec<f64>) -> Option<usize> {
    work.clear();
    work.extend(
        history
            .windows(2)
            .map(|pair| (pair[1].timestamp.as_millis() - pair[0].timestamp.as_millis()) as f64),
    );
    if work.is_empty() {
        return None;
    }
    let gap = median(work);
    WIDTHS
        .into_iter()
        .find(|width| (*width as i64 * MINUTE_MS) as f64 >= gap)
}

fn median(values: &mut [f64]) -> f64 {
    let middle = values.len() / 2;
    *values.select_nth_unstable_by(middle, f64::total_cmp).1
}

/// Bins `history` (time-ordered, the [`HISTORY_MINUTES`] before `now`) into
/// `scratch.values` as `width`-minute bin means, winsorised (module documentation). `None`
/// when the fitted span is too sparse.
fn bin(history: &[Point], now: Timestamp, width: usize, scratch: &mut Scratch) -> Option<()> {
    let Scratch {
        values,
        counts,
        work,
        levels,
        ..
    } = scratch;
    let bin_ms = (width as i64) * MINUTE_MS;
    let count = HISTORY_MINUTES / width;
    let start_ms = now.as_millis() - (count as i64) * bin_ms;
    values.clear();
    values.resize(count, 0.0);
    counts.clear();
    counts.resize(count, 0.0);
    for point in history {
        let offset = point.timestamp.as_millis() - start_ms;
        if (0..(count as i64) * bin_ms).contains(&offset) && point.value.is_finite() {
            let bin = (offset / bin_ms) as usize;
            values[bin] += point.value;
            counts[bin] += 1.0;
        }
    }
    for (value, n) in values.iter_mut().zip(counts.iter()) {
        *value = if *n > 0.0 { *value / n } else { f64::NAN };
    }
    let (fit_start, fit_end) = fit_span(width);
    let fitted = values[fit_start..fit_end]
        .iter()
        .filter(|v| !v.is_nan())
        .count();
    if (fitted as f64) < MIN_DENSITY * (fit_end - fit_start) as f64 {
        return None;
    }
    // Spikes are clipped against the level of their own half hour, not a global one, so a
    // real step, a weekend dip or a daily peak is never mistaken for a spike and clipped.
    let level_block = (LEVEL_BLOCK / width).max(1);
    levels.clear();
    for block in values.chunks(level_block) {
        work.clear();
        work.extend(block.iter().filter(|v| !v.is_nan()));
        levels.push(if work.is_empty() {
            f64::NAN
        } else {
            median(work)
        });
    }
    work.clear();
    work.extend(
        (fit_start..fit_end)
            .map(|i| (values[i] - levels[i / level_block]).abs())
            .filter(|d| !d.is_nan()),
    );
    let limit = WINSOR_SIGMAS * 1.4826 * median(work);
    if limit > 0.0 {
        for (i, value) in values.iter_mut().enumerate() {
            let level = levels[i / level_block];
            if !(value.is_nan() || level.is_nan()) {
                *value = value.clamp(level - limit, level + limit);
            }
        }
    }
    Some(())
}

/// The bins the spread is fitted on: the six days before the longest window.
fn fit_span(width: usize) -> (usize, usize) {
    let end = (HISTORY_MINUTES - LONGEST_SCALE) / width;
    (end - FIT_SPAN / width, end)
}

/// Variance of the mean over `x` correlation times of a unit-variance AR(1) process.
fn ar1_mean_variance(x: f64) -> f64 {
    2.0 / x * (1.0 + (-x).exp_m1() / x)
}

/// White noise plus one exponentially correlated wander (module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
struct SpreadModel {
    white: f64,
    slow: f64,
    tau: f64,
}

impl SpreadModel {
    /// Fits the model to `values` (whole days of minute bins; `None` = empty bin) after
    /// removing their mean time-of-day profile. The profile takes `1/days` of every
    /// component's variance with it, which the fitted columns allow for.
    fn fit(
        values: &[f64],
        width: usize,
        profile: &mut Vec<(f64, u32)>,
        sums: &mut Vec<f64>,
        present: &mut Vec<f64>,
    ) -> Option<SpreadModel> {
        let day = DAY / width;
        let days = values.len() / day;
        profile.clear();
        profile.resize(day, (0.0, 0));
        for (i, v) in values.iter().enumerate() {
            if !v.is_nan() {
                profile[i % day].0 += v;
                profile[i % day].1 += 1;
            }
        }
        prefix_sums(
            values.iter().enumerate().map(|(i, v)| {
                let (profile_sum, n) = profile[i % day];
                v - profile_sum / f64::from(n.max(1))
            }),
            sums,
            present,
        );
        let residuals = Grid {
            width,
            sums,
            present,
        };
        let span = (values.len() * width) as f64;
        let shrink = 1.0 - 1.0 / days as f64;
        let mut observed = Vec::with_capacity(FIT_SCALES.len());
        let mut previous_bins = 0;
        for minutes in FIT_SCALES {
            let bins = (minutes / width).max(1);
            if bins == previous_bins {
                continue;
            }
            previous_bins = bins;
            let scale = bins * width;
            // Overlapping blocks use the history better than disjoint ones; a step of an
            // eighth of the scale gets most of that at little cost.
            let step = ((scale / 8).max(5).min(scale) / width).max(1);
            let (mut n, mut sum, mut sum_of_squares) = (0.0, 0.0, 0.0);
            for mean in (0..=values.len() - bins)
                .step_by(step)
                .filter_map(|s| residuals.mean(s, s + bins))
            {
                n += 1.0;
                sum += mean;
                sum_of_squares += mean * mean;
            }
            if n < 2.0 {
                return None;
            }
            let centre = sum / n;
            let variance = (sum_of_squares / n - centre * centre).max(0.0);
            // A variance from `span / scale` independent blocks has a relative error of
            // about √(2 · scale / span): squared relative residuals weighed by the blocks.
            let weight = span / scale as f64 / variance.max(f64::MIN_POSITIVE).powi(2);
            observed.push((scale as f64, variance, weight));
        }
        let columns = |scale: f64, tau: f64| {
            (
                shrink * (1.0 / scale),
                shrink * ar1_mean_variance(scale / tau),
            )
        };
        let residual = |white: f64, slow: f64, tau: f64| {
            observed
                .iter()
                .map(|&(scale, variance, weight)| {
                    let (f1, f2) = columns(scale, tau);
                    weight * (variance - white * f1 - slow * f2).powi(2)
                })
                .sum::<f64>()
        };
        let mut best: Option<(f64, SpreadModel)> = None;
        for tau in FIT_TAUS {
            let (mut s11, mut s12, mut s22, mut r1, mut r2) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &(scale, variance, weight) in &observed {
                let (f1, f2) = columns(scale, tau);
                s11 += weight * f1 * f1;
                s12 += weight * f1 * f2;
                s22 += weight * f2 * f2;
                r1 += weight * f1 * variance;
                r2 += weight * f2 * variance;
            }
            let determinant = s11 * s22 - s12 * s12;
            let (mut white, mut slow) = (
                (r1 * s22 - r2 * s12) / determinant,
                (r2 * s11 - r1 * s12) / determinant,
            );
            // A negative component means the other alone fits better: refit it alone.
            if !(white >= 0.0 && slow >= 0.0) {
                let (white_alone, slow_alone) = ((r1 / s11).max(0.0), (r2 / s22).max(0.0));
                (white, slow) = if residual(white_alone, 0.0, tau) <= residual(0.0, slow_alone, tau)
                {
                    (white_alone, 0.0)
                } else {
                    (0.0, slow_alone)
                };
            }
            let fit = residual(white, slow, tau);
            if fit.is_finite() && best.is_none_or(|(b, _)| fit < b) {
                best = Some((fit, SpreadModel { white, slow, tau }));
            }
        }
        best.map(|(_, model)| model)
    }

    /// Variance of a `minutes`-long mean.
    fn variance(&self, minutes: f64) -> f64 {
        self.white / minutes + self.slow * ar1_mean_variance(minutes / self.tau)
    }
}

/// Runs the test on `history` (the [`HISTORY_MINUTES`] before `now`, time-ordered) for a
/// comparison window of `window_minutes`, in buffers kept across calls. `None` when it does
/// not apply: window longer than 16 hours or shorter than five sampling intervals, too
/// sparse a series, or a history that cannot be fitted (constant values).
pub fn long_run_test(
    scratch: &mut Scratch,
    direction: Direction,
    history: &[Point],
    now: Timestamp,
    window_minutes: usize,
    min_worsening_percentage: f64,
) -> Option<LongRunVerdict> {
    let width = bin_width(history, &mut scratch.work)?;
    let window_fits = window_minutes <= LONGEST_SCALE
        && window_minutes.is_multiple_of(width)
        && window_minutes / width >= MIN_WINDOW_BINS;
    if !window_fits {
        return None;
    }
    bin(history, now, width, scratch)?;
    let Scratch {
        values,
        sums,
        present,
        residual_sums,
        residual_present,
        profile,
        ..
    } = scratch;
    let (fit_start, fit_end) = fit_span(width);
    let model = SpreadModel::fit(
        &values[fit_start..fit_end],
        width,
        profile,
        residual_sums,
        residual_present,
    )?;
    prefix_sums(values.iter().copied(), sums, present);
    let grid = Grid {
        width,
        sums,
        present,
    };
    // The comparison window itself must have the density the grid asks for.
    grid.window(window_minutes, 0)?;
    let scales: Vec<usize> = std::iter::once(window_minutes)
        .chain(LONG_SCALES.into_iter().filter(|s| *s > window_minutes))
        .collect();
    let worsening = |base: f64, current: f64| {
        (base != 0.0).then(|| 100.0 * direction.worsening(base, current) / base.abs())
    };
    let mut best = LongRunVerdict {
        p_value: 1.0,
        scale_minutes: window_minutes,
    };
    for &scale in &scales {
        let Some(current) = grid.window(scale, 0) else {
            continue;
        };
        let same_hours: Option<Vec<f64>> = (1..=SAME_HOURS_DAYS)
            .map(|days| grid.window(scale, days * DAY))
            .collect();
        let Some(same_hours) = same_hours else {
            continue;
        };
        let same_hours = same_hours.iter().sum::<f64>() / SAME_HOURS_DAYS as f64;
        let Some(week_ago) = grid.window(scale, WEEK) else {
            continue;
        };
        let material =
            |base: f64| worsening(base, current).is_some_and(|p| p >= min_worsening_percentage);
        if !(material(same_hours) && material(week_ago)) {
            continue;
        }
        // Windows a day apart are practically independent (the wander forgets in hours),
        // so the same-hours mean adds 1/days of the window's variance.
        let spread = (model.variance(scale as f64) * (1.0 + 1.0 / SAME_HOURS_DAYS as f64)).sqrt();
        let z = direction.worsening(same_hours, current) / spread;
        let p_value = (normal_upper_tail(z) * scales.len() as f64).min(1.0);
        if p_value.is_finite() && p_value < best.p_value {
            best = LongRunVerdict {
                p_value,
                scale_minutes: scale,
            };
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test at the default 3 % minimum worsening, in fresh buffers.
    fn run(
        direction: Direction,
        history: &[Point],
        now: Timestamp,
        window_minutes: usize,
    ) -> Option<LongRunVerdict> {
        long_run_test(
            &mut Scratch::default(),
            direction,
            history,
            now,
            window_minutes,
            3.0,
        )
    }

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_millis(minute * MINUTE_MS).unwrap()
    }

    /// SplitMix64 with Box–Muller: reproducible noise without a dependency.
    struct Noise(u64);

    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let u1 = self.uniform().max(f64::MIN_POSITIVE);
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
        }
    }

    /// Per-minute latency-like values: 10 % white noise and a 2 % wander with a two-hour
    /// correlation time, worse by `step` from minute `from` on.
    fn series(seed: u64, minutes: i64, step: Option<(i64, f64)>) -> Vec<Point> {
        let mut noise = Noise(seed);
        let phi = (-1.0f64 / 120.0).exp();
        let mut wander = 0.0;
        (0..minutes)
            .map(|m| {
                wander = phi * wander + 0.02 * (1.0 - phi * phi).sqrt() * noise.normal();
                let change = step.map_or(0.0, |(from, p)| if m >= from { p } else { 0.0 });
                Point {
                    timestamp: at(m),
                    value: 120.0 * (1.0 + change + wander + 0.1 * noise.normal()),
                    dataset: None,
                }
            })
            .collect()
    }

    #[test]
    fn a_sustained_step_is_found_and_quiet_weeks_are_not() {
        let minutes = HISTORY_MINUTES as i64 + 60;
        let now = at(minutes);
        let mut quiet_p_values = Vec::new();
        for seed in 0..20 {
            let quiet = series(seed, minutes, None);
            let verdict = run(Direction::LowerIsBetter, &quiet, now, 120).unwrap();
            quiet_p_values.push(verdict.p_value);
        }
        assert!(
            quiet_p_values.iter().all(|p| *p > 0.002),
            "{quiet_p_values:?}"
        );

        let stepped = series(7, minutes, Some((minutes - 12 * 60, 0.08)));
        // The same series sampled every 2 minutes is judged on a 2-minute grid.
        let every_two: Vec<Point> = stepped.iter().skip(1).step_by(2).cloned().collect();
        let verdict = run(Direction::LowerIsBetter, &every_two, now, 120).unwrap();
        assert!(verdict.p_value < 1e-4, "{verdict:?}");
        let verdict = run(Direction::LowerIsBetter, &stepped, now, 120).unwrap();
        assert!(verdict.p_value < 1e-4, "{verdict:?}");
        // The same rise is an improvement for a higher-is-better metric.
        let verdict = run(Direction::HigherIsBetter, &stepped, now, 120).unwrap();
        assert_eq!(verdict.p_value, 1.0);
    }

    #[test]
    fn a_sudden_large_drop_is_decided_by_the_window_tests_beside_it() {
        use crate::detection::{
            check_degradation, detection_windows, Comparison, ComparisonWindow, DegradationStatus,
            DetectionOptions, History, MetricWindows, Reference, WindowSpec,
        };
        use crate::metric::Metric;
        use crate::sample::{ModelName, Version};
        use crate::time::TimeRange;

        // Per-minute accuracy around 0.9 whose history holds a two-day 8 % dip (a weekend),
        // which widens the long-run test's fitted spread, then 15 % lower in the last hour.
        let minutes = HISTORY_MINUTES as i64 + 60;
        let mut noise = Noise(11);
        let points: Vec<Point> = (0..minutes)
            .map(|m| {
                let day = m / DAY as i64;
                let weekend = if (2..4).contains(&day) { -0.08 } else { 0.0 };
                let drop = if m >= minutes - 60 { -0.15 } else { 0.0 };
                Point {
                    timestamp: at(m),
                    value: 0.9 * (1.0 + weekend + drop + 0.02 * noise.normal()),
                    dataset: None,
                }
            })
            .collect();
        let now = at(minutes);
        let spec = WindowSpec {
            comparison_hours: Some(1),
            ..WindowSpec::default()
        };
        let windows = detection_windows(now, &spec);
        let slice = |range: TimeRange| {
            let start = points.partition_point(|p| p.timestamp < range.start);
            let end = points.partition_point(|p| p.timestamp < range.end);
            &points[start..end]
        };
        let (ComparisonWindow::Range(window), Some(history)) =
            (windows.comparison, windows.history)
        else {
            panic!("window mode has a comparison range and a history");
        };
        let definition = Metric::Accuracy.default_definition();
        let input = MetricWindows {
            definition: &definition,
            baseline: slice(windows.baseline),
            comparison: Comparison::Window(slice(window)),
            reference: windows.reference.map(|(seasonality, range)| Reference {
                seasonality,
                points: slice(range),
            }),
            history: Some(History {
                points: slice(history),
                end: window.end,
                window_minutes: 60,
            }),
        };
        let result = check_degradation(
            &ModelName::parse("m").unwrap(),
            &Version::parse("v").unwrap(),
            &input,
            &DetectionOptions::default(),
        );
        assert_eq!(result.status, DegradationStatus::Degraded, "{result:?}");
        assert!(
            result.method.starts_with("welch_t") && result.method.ends_with("+long_run_60min"),
            "{}",
            result.method
        );
        assert!(result.p_value.unwrap() < DetectionOptions::default().long_run_alpha);
    }

    #[test]
    fn does_not_apply_without_enough_dense_history() {
        let minutes = HISTORY_MINUTES as i64;
        let now = at(minutes);
        let full = series(1, minutes, None);
        assert!(run(Direction::LowerIsBetter, &full, now, 120).is_some());
        let short = &full[3 * DAY..];
        assert_eq!(run(Direction::LowerIsBetter, short, now, 120), None);
        let every_five: Vec<Point> = full.iter().step_by(5).cloned().collect();
        assert_eq!(run(Direction::LowerIsBetter, &every_five, now, 120), None);
        let every_two: Vec<Point> = full.iter().step_by(2).cloned().collect();
        assert!(run(Direction::LowerIsBetter, &every_two, now, 120).is_some());
        // Five bins at the least: a 9-minute window on a 2-minute grid is too short.
        assert_eq!(run(Direction::LowerIsBetter, &every_two, now, 9), None);
        assert_eq!(run(Direction::LowerIsBetter, &full, now, 17 * 60), None);
        assert_eq!(run(Direction::LowerIsBetter, &full, now, 4), None);
        let constant: Vec<Point> = full
            .iter()
            .map(|p| Point {
                value: 1.0,
                ..p.clone()
            })
            .collect();
        assert_eq!(run(Direction::LowerIsBetter, &constant, now, 120), None);
    }

    #[test]
    fn the_fit_recovers_the_spread_of_long_windows() {
        // Six days of the generator above: the fitted spread of a 16-hour mean is within a
        // quarter of the true one (2 % wander over 8 correlation times, 10 % white noise).
        let values: Vec<f64> = series(3, FIT_SPAN as i64, None)
            .iter()
            .map(|p| p.value / 120.0 - 1.0)
            .collect();
        let mut scratch = Scratch::default();
        let model = SpreadModel::fit(
            &values,
            1,
            &mut scratch.profile,
            &mut scratch.sums,
            &mut scratch.present,
        )
        .unwrap();
        let truth = 0.0004 * ar1_mean_variance(8.0) + 0.01 / 960.0;
        let ratio = (model.variance(960.0) / truth).sqrt();
        assert!((0.75..1.25).contains(&ratio), "{model:?}: {ratio}");
        assert!((ar1_mean_variance(1e-9) - 1.0).abs() < 1e-6);
        assert!((ar1_mean_variance(100.0) - 0.0198).abs() < 1e-9);
    }
}
