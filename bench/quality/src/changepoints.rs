//! Change-point detectors on the benchmark: the goal scenarios, NAB with the official
//! scorer, event F1 / covering against offline binary segmentation, and the survey of
//! causal methods that chose the detector (`crates/core/src/detection/changepoint.rs`).
//!
//! Every method runs causally, sample by sample, and reports alarms as (row of the alarm,
//! row where it says the change began). The production detector with its default
//! constants runs as a change-point **rule** through the alerting core's replay (the
//! backtest, which live evaluation shares), so its rows are what the alert path does. The survey's methods share the production
//! detector's robust learning and noise tracking so that only the statistic differs:
//! - `cusum`: the production detector (Huberised two-sided CUSUM, adaptive reference);
//! - `page_hinkley`: the same CUSUM around the running mean since the last alarm
//!   (Page–Hinkley: no forgetting);
//! - `glr`: window-limited GLR for a mean shift of unknown size (the last 100 samples,
//!   statistic `max_s (Σ_{s..t} r)² / 2(t − s + 1)`) against the same adaptive reference;
//! - `bocpd`: Bayesian online change-point detection (Adams & MacKay 2007), Gaussian
//!   observations (Student-t with 3 degrees of freedom, so spikes do not start runs) with the robust scale, a normal prior on each run's mean centred on the
//!   reference (sd 2 noise units), hazard 1/250, run lengths truncated at 300; alarm when
//!   the probability that the current run is under 10 samples old passes a threshold,
//!   the change dated at the most probable recent run start.

use modelwatch_core::detection::changepoint::{
    ChangePointSettings, ChangePointState, FalseAlarmInterval, MinShift, Sides, Tuning,
};
use modelwatch_core::{Point, Timestamp};

use crate::synthetic::Rng;

/// One alarm: the row it fired at and the row it dates the change to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub row: usize,
    pub onset: usize,
}

/// A causal method with its sensitivity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Cusum(ChangePointSettings, Tuning),
    PageHinkley(ChangePointSettings),
    /// Threshold on the GLR statistic.
    Glr(f64),
    /// Threshold on P(run shorter than 10 samples).
    Bocpd(f64),
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Cusum(..) => "cusum",
            Method::PageHinkley(..) => "page_hinkley",
            Method::Glr(..) => "glr",
            Method::Bocpd(..) => "bocpd",
        }
    }
}

fn row_of(points: &[Point], at: Timestamp) -> usize {
    points.partition_point(|p| p.timestamp < at)
}

/// Runs `method` over `points` for `sides`.
pub fn run(method: &Method, points: &[Point], sides: Sides) -> Vec<Alarm> {
    match method {
        Method::Cusum(settings, tuning) => {
            let settings = ChangePointSettings { sides, ..*settings };
            cusum(points, &settings, tuning)
        }
        Method::PageHinkley(settings) => {
            let settings = ChangePointSettings { sides, ..*settings };
            let tuning = Tuning {
                level_rate: 0.0,
                ..Tuning::default()
            };
            cusum(points, &settings, &tuning)
        }
        Method::Glr(threshold) => glr(points, sides, *threshold),
        Method::Bocpd(threshold) => bocpd(points, sides, *threshold),
    }
}

/// The production detector as a user gets it: a change-point rule with these settings,
/// replayed by the alerting core's one replay (`observations` then `backtest`, as `alerts
/// backtest` and live evaluation run it); its alarms are the samples where it fires or
/// folds another shift into its open alert.
fn rule_alarms(points: &[Point], settings: &ChangePointSettings) -> Vec<Alarm> {
    use modelwatch_core::alerting::observe::observations;
    use modelwatch_core::alerting::{
        backtest, BacktestEventKind, Rule, RuleId, RuleSpec, SeriesState,
    };
    use modelwatch_core::detection::DetectionOptions;
    use modelwatch_core::detection::SeriesPoints;
    use modelwatch_core::{Direction, Metric, MetricDefinition, ValueRange, Version};
    let (direction, change_direction) = match settings.sides {
        Sides::Down => (Direction::HigherIsBetter, "worse"),
        Sides::Up => (Direction::LowerIsBetter, "worse"),
        Sides::Both => (Direction::HigherIsBetter, "both"),
    };
    let (min_shift_percentage, min_shift_sd) = match settings.min_shift {
        MinShift::Percent(p) => (Some(p), None),
        MinShift::Sd(sd) => (None, Some(sd)),
    };
    let (false_alarm_interval_samples, false_alarm_interval_hours) =
        match settings.false_alarm_interval {
            FalseAlarmInterval::Samples(n) => (i64::try_from(n).ok(), None),
            FalseAlarmInterval::Millis(ms) => (None, Some(ms as f64 / 3_600_000.0)),
            // A rule states no interval to get the default, the only `Longest` it uses.
            FalseAlarmInterval::Longest { .. } => (None, None),
        };
    let spec = RuleSpec {
        name: "bench".into(),
        model: "bench".into(),
        metric: "bench_value".into(),
        condition_type: Some("change_point".into()),
        change_direction: Some(change_direction.into()),
        min_shift_percentage,
        min_shift_sd,
        false_alarm_interval_samples,
        false_alarm_interval_hours,
        ..RuleSpec::default()
    };
    let (Ok(rule), Ok(definition), Ok(version)) = (
        Rule::create(spec, RuleId::from_u32(1), Timestamp::MIN),
        MetricDefinition::custom(
            Metric::Custom("bench_value".into()),
            direction,
            ValueRange::UNBOUNDED,
        ),
        Version::parse("v1"),
    ) else {
        eprintln!("bench rule refused");
        return Vec::new();
    };
    let series = SeriesPoints {
        definition: &definition,
        points,
    };
    let observed = observations(
        &rule,
        &version,
        series,
        points,
        &DetectionOptions::default(),
    );
    backtest(&rule, &version, &observed, SeriesState::default())
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                BacktestEventKind::Fired { .. } | BacktestEventKind::Shifted
            )
        })
        .map(|e| Alarm {
            row: row_of(points, e.at),
            onset: row_of(points, e.change_started_at.unwrap_or(e.at)),
        })
        .collect()
}

/// The rows where `method` (the change-point detector only) reports a single outlying
/// sample rather than a shift: alarms all the same, but not change points.
pub fn outlier_rows(method: &Method, points: &[Point], sides: Sides) -> Vec<usize> {
    let Method::Cusum(settings, tuning) = method else {
        return Vec::new();
    };
    let settings = ChangePointSettings { sides, ..*settings };
    let mut state = ChangePointState::default();
    points
        .iter()
        .enumerate()
        .filter_map(|(row, point)| {
            state
                .observe(&settings, tuning, point.timestamp, point.value)
                .filter(|change| change.outlier)
                .map(|_| row)
        })
        .collect()
}

fn cusum(points: &[Point], settings: &ChangePointSettings, tuning: &Tuning) -> Vec<Alarm> {
    if *tuning == Tuning::default() {
        return rule_alarms(points, settings);
    }
    let mut state = ChangePointState::default();
    let mut alarms = Vec::new();
    for (row, point) in points.iter().enumerate() {
        if let Some(change) = state
            .observe(settings, tuning, point.timestamp, point.value)
            .filter(|change| settings.sides.watches(change.upward))
        {
            alarms.push(Alarm {
                row,
                onset: row_of(points, change.started_at),
            });
        }
    }
    alarms
}

/// The production detector's robust level and scale, for the survey's other statistics:
/// learning of 30 samples (median, MAD), then the clipped updates of the core detector.
struct Reference {
    learning: Vec<f64>,
    level: f64,
    spread: f64,
    n: f64,
    rate: f64,
    previous: f64,
    lag_product: f64,
}

impl Reference {
    fn new() -> Reference {
        Reference {
            learning: Vec::new(),
            level: 0.0,
            spread: 0.0,
            n: 0.0,
            rate: Tuning::default().level_rate,
            previous: 0.0,
            lag_product: 0.0,
        }
    }

    fn scale(&self) -> f64 {
        (self.spread / 0.795_640_4).max(1e-9 * self.level.abs().max(1e-300))
    }

    /// The core detector's widening for autocorrelated residuals.
    fn inflation(&self) -> f64 {
        let rho = self.lag_product.clamp(0.0, 0.9);
        ((1.0 + rho) / (1.0 - rho)).sqrt()
    }

    /// Feeds a value; `Some(standardised residual before the update)` once learnt,
    /// widened for autocorrelation as the core detector does.
    fn feed(&mut self, value: f64) -> Option<f64> {
        if self.n == 0.0 {
            self.learning.push(value);
            if self.learning.len() >= 30 {
                let mut values = std::mem::take(&mut self.learning);
                values.sort_by(f64::total_cmp);
                self.level = values[values.len() / 2];
                let mut dev: Vec<f64> = values.iter().map(|v| (v - self.level).abs()).collect();
                dev.sort_by(f64::total_cmp);
                let mut scale = 1.4826 * dev[dev.len() / 2];
                if scale <= 0.0 {
                    scale = 1.2533 * dev.iter().sum::<f64>() / dev.len() as f64;
                }
                self.spread = scale * 0.795_640_4;
                self.n = values.len() as f64;
            }
            return None;
        }
        let scale = self.scale();
        let inflation = self.inflation();
        let r = (value - self.level) / scale;
        let clipped = r.clamp(-3.0, 3.0);
        self.lag_product += self.rate / 4.0 * (clipped * self.previous - self.lag_product);
        self.previous = clipped;
        self.n += 1.0;
        self.level += (1.0 / self.n).max(self.rate) * r.clamp(-3.0, 3.0) * scale;
        self.spread +=
            self.rate / 4.0 * ((value - self.level).abs().min(3.0 * scale) - self.spread);
        Some(r / inflation)
    }

    fn rearm(&mut self, level: f64, samples: f64) {
        self.level = level;
        self.n = samples;
    }
}

fn glr(points: &[Point], sides: Sides, threshold: f64) -> Vec<Alarm> {
    const WINDOW: usize = 100;
    let mut reference = Reference::new();
    let mut residuals: Vec<f64> = Vec::new();
    let mut alarms = Vec::new();
    let mut settling = 0u32;
    for (row, point) in points.iter().enumerate() {
        let level = reference.level;
        let scale = reference.scale() * reference.inflation();
        let Some(r) = reference.feed(point.value) else {
            continue;
        };
        residuals.push(r.clamp(-5.0, 5.0));
        if residuals.len() > WINDOW {
            residuals.remove(0);
        }
        if settling > 0 {
            settling -= 1;
            residuals.clear();
            continue;
        }
        let (mut best, mut best_start, mut sum) = (0.0f64, 0usize, 0.0f64);
        for (back, value) in residuals.iter().rev().enumerate() {
            sum += value;
            let signed_ok = match sides {
                Sides::Up => sum > 0.0,
                Sides::Down => sum < 0.0,
                Sides::Both => true,
            };
            let statistic = sum * sum / (2.0 * (back + 1) as f64);
            if signed_ok && statistic > best {
                best = statistic;
                best_start = back;
            }
        }
        if best > threshold {
            let onset = row - best_start;
            let n = best_start + 1;
            let mean: f64 = residuals[residuals.len() - n..].iter().sum::<f64>() / n as f64;
            reference.rearm(level + mean * scale, n as f64);
            alarms.push(Alarm { row, onset });
            residuals.clear();
            settling = Tuning::default().settle_samples;
        }
    }
    alarms
}

fn bocpd(points: &[Point], sides: Sides, threshold: f64) -> Vec<Alarm> {
    const HAZARD: f64 = 1.0 / 250.0;
    const MAX_RUN: usize = 300;
    const RECENT: usize = 10;
    const PRIOR_SD: f64 = 2.0;
    let mut reference = Reference::new();
    // Per run length: probability, posterior mean and variance of the run's mean (in
    // noise units relative to the reference level at learning).
    let mut runs: Vec<(f64, f64, f64)> = Vec::new();
    let mut alarms = Vec::new();
    let mut settling = 0u32;
    // Samples since the run-length distribution (re)started: all its mass is on short
    // runs until more than RECENT have come.
    let mut observed = 0usize;
    for (row, point) in points.iter().enumerate() {
        let Some(r) = reference.feed(point.value) else {
            continue;
        };
        let x = r;
        if runs.is_empty() {
            runs.push((1.0, 0.0, PRIOR_SD * PRIOR_SD));
        }
        observed += 1;
        let mut next: Vec<(f64, f64, f64)> = Vec::with_capacity(runs.len() + 1);
        // A new run starts with the prior around the current reference.
        next.push((0.0, 0.0, PRIOR_SD * PRIOR_SD));
        let mut change_mass = 0.0;
        for &(p, mean, var) in &runs {
            let predictive_var = var + 1.0;
            // Student-t (3 degrees of freedom) rather than Gaussian: a spike is then
            // poorly explained by every run alike instead of favouring a new one.
            let z2 = (x - mean).powi(2) / predictive_var;
            let likelihood = (1.0 + z2 / 3.0).powf(-2.0) / predictive_var.sqrt();
            let joint = p * likelihood;
            change_mass += joint * HAZARD;
            let post_var = 1.0 / (1.0 / var + 1.0);
            let post_mean = post_var * (mean / var + x);
            next.push((joint * (1.0 - HAZARD), post_mean, post_var));
        }
        next[0].0 = change_mass;
        let norm: f64 = next.iter().map(|r| r.0).sum();
        for run in &mut next {
            run.0 /= norm.max(1e-300);
        }
        next.truncate(MAX_RUN);
        runs = next;
        if settling > 0 {
            settling -= 1;
            continue;
        }
        let recent: f64 = runs.iter().take(RECENT).map(|r| r.0).sum();
        if recent > threshold && observed > 2 * RECENT {
            // The most probable recent run start, and the direction of its mean.
            let (age, &(_, mean, _)) = runs
                .iter()
                .enumerate()
                .skip(1)
                .take(RECENT - 1)
                .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                .unwrap_or((1, &runs[0]));
            let wanted = match sides {
                Sides::Up => mean > 0.0,
                Sides::Down => mean < 0.0,
                Sides::Both => true,
            };
            if wanted {
                alarms.push(Alarm {
                    row,
                    onset: row + 1 - age.min(row + 1),
                });
                let scale = reference.scale() * reference.inflation();
                let level = reference.level;
                reference.rearm(level + mean * scale, age as f64);
                runs = vec![(1.0, 0.0, PRIOR_SD * PRIOR_SD)];
                observed = 0;
                settling = Tuning::default().settle_samples;
            }
        }
    }
    alarms
}

/// `Tuning::default()`, or the comma-separated `MODELWATCH_CP_TUNING` (learning samples,
/// level rate, settle samples, interval factor, clip fraction, and optionally slow level
/// rate, the unwatched side's interval factor, likelihood onset (1/0), revert samples,
/// revert z, early revert samples, early revert z, the autocorrelation's shrinkage in
/// standard errors, its cap, the minimum samples since the onset of an alarm, the cap on
/// the clip's excess over `k`, sequential early looks (1/0), the novelty rule's alarms and
/// ratio, and the daily profile's bins, memory in days, days before it may switch on, and
/// the error ratios to switch it on and off) to try others.
pub fn tuning() -> Tuning {
    let mut tuning = positional_tuning();
    // `MODELWATCH_CP_SET`: `name=value` pairs, comma-separated, for the newer constants.
    for pair in std::env::var("MODELWATCH_CP_SET")
        .unwrap_or_default()
        .split(',')
    {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            eprintln!("ignoring MODELWATCH_CP_SET's {pair}");
            continue;
        };
        match name.trim() {
            "weekly_bins" => tuning.weekly_bins = value as u32,
            "weekly_memory_weeks" => tuning.weekly_memory_weeks = value,
            "weekly_min_weeks" => tuning.weekly_min_weeks = value,
            "weekly_on_ratio" => tuning.weekly_on_ratio = value,
            "outlier_ratio" => tuning.outlier_ratio = value,
            "max_autocorrelation" => tuning.max_autocorrelation = value,
            "autocorrelation_shrink" => tuning.autocorrelation_shrink = value,
            "clip_fraction" => tuning.clip_fraction = value,
            "interval_factor" => tuning.interval_factor = value,
            "max_clip_excess" => tuning.max_clip_excess = value,
            "settle_samples" => tuning.settle_samples = value as u32,
            "learning_samples" => tuning.learning_samples = value as u32,
            "level_rate" => tuning.level_rate = value,
            "slow_level_rate" => tuning.slow_level_rate = value,
            "resolution_floor" => tuning.resolution_floor = value,
            "novelty_after" => tuning.novelty_after = value as u32,
            "novelty_ratio" => tuning.novelty_ratio = value,
            other => eprintln!("ignoring MODELWATCH_CP_SET's unknown {other}"),
        }
    }
    tuning
}

fn positional_tuning() -> Tuning {
    let Ok(text) = std::env::var("MODELWATCH_CP_TUNING") else {
        return Tuning::default();
    };
    let v: Vec<f64> = text
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect();
    if v.len() < 5 {
        eprintln!("ignoring MODELWATCH_CP_TUNING: 5 numbers expected");
        return Tuning::default();
    }
    let default = Tuning::default();
    Tuning {
        learning_samples: v[0] as u32,
        level_rate: v[1],
        settle_samples: v[2] as u32,
        interval_factor: v[3],
        clip_fraction: v[4],
        slow_level_rate: v.get(5).copied().unwrap_or(default.slow_level_rate),
        unwatched_interval_factor: v
            .get(6)
            .copied()
            .unwrap_or(default.unwatched_interval_factor),
        likelihood_onset: v.get(7).map_or(default.likelihood_onset, |x| *x > 0.0),
        revert_samples: v.get(8).map_or(default.revert_samples, |x| *x as u32),
        revert_z: v.get(9).copied().unwrap_or(default.revert_z),
        revert_early_samples: v
            .get(10)
            .map_or(default.revert_early_samples, |x| *x as u32),
        revert_early_z: v.get(11).copied().unwrap_or(default.revert_early_z),
        autocorrelation_shrink: v.get(12).copied().unwrap_or(default.autocorrelation_shrink),
        max_autocorrelation: v.get(13).copied().unwrap_or(default.max_autocorrelation),
        min_alarm_samples: v.get(14).map_or(default.min_alarm_samples, |x| *x as u64),
        max_clip_excess: v.get(15).copied().unwrap_or(default.max_clip_excess),
        revert_sequential: v.get(16).map_or(default.revert_sequential, |x| *x > 0.0),
        novelty_after: v.get(17).map_or(default.novelty_after, |x| *x as u32),
        novelty_ratio: v.get(18).copied().unwrap_or(default.novelty_ratio),
        daily_bins: v.get(19).map_or(default.daily_bins, |x| *x as u32),
        daily_memory_days: v.get(20).copied().unwrap_or(default.daily_memory_days),
        daily_min_days: v.get(21).copied().unwrap_or(default.daily_min_days),
        daily_on_ratio: v.get(22).copied().unwrap_or(default.daily_on_ratio),
        daily_off_ratio: v.get(23).copied().unwrap_or(default.daily_off_ratio),
        ..default
    }
}

/// The default settings of a change-point rule.
pub fn default_settings() -> ChangePointSettings {
    ChangePointSettings {
        sides: Sides::Both,
        min_shift: modelwatch_core::detection::changepoint::DEFAULT_MIN_SHIFT,
        false_alarm_interval: modelwatch_core::detection::changepoint::DEFAULT_FALSE_ALARM_INTERVAL,
    }
}

pub fn settings(min_shift: MinShift, samples: u64) -> ChangePointSettings {
    ChangePointSettings {
        sides: Sides::Both,
        min_shift,
        false_alarm_interval: FalseAlarmInterval::Samples(samples),
    }
}

/// A labelled synthetic series for event scoring.
#[derive(Debug, Clone)]
pub struct EventSeries {
    pub values: Vec<f64>,
    pub truth: Vec<usize>,
}

/// Series of 1,500 samples of unit white noise around 100 with 0–4 changes (at least 120
/// samples apart, after the first 150): steps of 1.5–4 sd either way, ramps of 2–5 sd over
/// 20–100 samples (labelled at their start), variance changes by a factor 2–3 either way;
/// and isolated spikes of 5–10 sd on 0.5 % of samples, which are not changes.
pub fn event_series(count: usize, seed: u64) -> Vec<EventSeries> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let n = 1500;
            let changes = (rng.uniform() * 5.0) as usize;
            let mut truth: Vec<usize> = Vec::new();
            while truth.len() < changes {
                let at = 150 + (rng.uniform() * (n - 250) as f64) as usize;
                if truth.iter().all(|&t| t.abs_diff(at) >= 120) {
                    truth.push(at);
                }
            }
            truth.sort_unstable();
            let kinds: Vec<(usize, f64, f64)> = truth
                .iter()
                .map(|_| {
                    let kind = (rng.uniform() * 3.0) as usize;
                    let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                    match kind {
                        0 => (0, sign * (1.5 + 2.5 * rng.uniform()), 0.0),
                        1 => (
                            1,
                            sign * (2.0 + 3.0 * rng.uniform()),
                            20.0 + 80.0 * rng.uniform(),
                        ),
                        _ => {
                            let factor = 2.0 + rng.uniform();
                            (2, if sign > 0.0 { factor } else { 1.0 / factor }, 0.0)
                        }
                    }
                })
                .collect();
            let (mut level, mut sd) = (100.0, 1.0);
            let mut values = Vec::with_capacity(n);
            let mut ramp: Option<(usize, f64, f64)> = None; // start, per-sample, length
            let mut next = 0;
            for i in 0..n {
                if next < truth.len() && truth[next] == i {
                    match kinds[next] {
                        (0, size, _) => level += size,
                        (1, size, length) => ramp = Some((i, size / length, length)),
                        (_, factor, _) => sd *= factor,
                    }
                    next += 1;
                }
                if let Some((start, per, length)) = ramp {
                    if ((i - start) as f64) < length {
                        level += per;
                    } else {
                        ramp = None;
                    }
                }
                let mut value = level + sd * rng.normal();
                if rng.uniform() < 0.005 {
                    let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                    value += sign * (5.0 + 5.0 * rng.uniform());
                }
                values.push(value);
            }
            EventSeries { values, truth }
        })
        .collect()
}

pub fn as_points(values: &[f64], interval_ms: i64) -> Vec<Point> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, &value)| {
            Some(Point {
                timestamp: Timestamp::from_millis(i as i64 * interval_ms).ok()?,
                value,
                dataset: None,
            })
        })
        .collect()
}

/// What one method did on one set of streams.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    pub streams: usize,
    pub evaluations: u64,
    pub false_alarms: u64,
    pub detected: usize,
    /// Detections whose onset is within ±3 samples of the truth.
    pub onset_within_3: usize,
    pub delay_samples_sum: u64,
}

impl Tally {
    pub fn false_alarms_per_1000(&self) -> f64 {
        1000.0 * self.false_alarms as f64 / self.evaluations.max(1) as f64
    }
    pub fn detection_rate(&self) -> f64 {
        self.detected as f64 / self.streams.max(1) as f64
    }
    pub fn onset_rate(&self) -> f64 {
        self.onset_within_3 as f64 / self.detected.max(1) as f64
    }
    pub fn mean_delay(&self) -> f64 {
        self.delay_samples_sum as f64 / self.detected.max(1) as f64
    }

    /// Counts one stream: alarms before `change` (a row) are false alarms over the rows
    /// before it; the first alarm at or after it within `horizon` rows is a detection.
    pub fn count(&mut self, alarms: &[Alarm], rows: usize, change: Option<usize>, horizon: usize) {
        self.streams += 1;
        let end = change.unwrap_or(rows);
        self.evaluations += end as u64;
        self.false_alarms += alarms.iter().filter(|a| a.row < end).count() as u64;
        if let Some(change) = change {
            if let Some(alarm) = alarms
                .iter()
                .find(|a| a.row >= change && a.row < change + horizon)
            {
                self.detected += 1;
                self.delay_samples_sum += (alarm.row - change) as u64;
                if alarm.onset.abs_diff(change) <= 3 {
                    self.onset_within_3 += 1;
                }
            }
        }
    }
}

/// A metric sampled once a day for 400 days: white noise of 2 % around 0.9, a drop of
/// 1.5 sd starting on a day between 250 and 350. Returns the points and the change row.
pub fn daily_series(rng: &mut Rng, shift_sd: f64) -> (Vec<Point>, usize) {
    let change = 250 + (rng.uniform() * 100.0) as usize;
    let sd = 0.018;
    let values: Vec<f64> = (0..400)
        .map(|day| {
            let shift = if day >= change { -shift_sd * sd } else { 0.0 };
            0.9 + shift + sd * rng.normal()
        })
        .collect();
    (as_points(&values, 86_400_000), change)
}

/// Independent unit noise with 0.5 % spikes: the survey calibrates every method to the
/// same false-alarm rate on it.
pub fn calibration_noise(count: usize, seed: u64) -> Vec<Vec<Point>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let values: Vec<f64> = (0..5000)
                .map(|_| {
                    let spike = if rng.uniform() < 0.005 {
                        if rng.uniform() < 0.5 {
                            -7.0
                        } else {
                            7.0
                        }
                    } else {
                        0.0
                    };
                    100.0 + rng.normal() + spike
                })
                .collect();
            as_points(&values, 60_000)
        })
        .collect()
}

/// False alarms per 1000 samples of `method` on `series` (two-sided).
pub fn false_alarm_rate(method: &Method, series: &[Vec<Point>]) -> f64 {
    let mut tally = Tally::default();
    for points in series {
        tally.count(&run(method, points, Sides::Both), points.len(), None, 0);
    }
    tally.false_alarms_per_1000()
}

/// The survey's methods, each at the sensitivity whose false-alarm rate on the
/// calibration noise is closest to `target` per 1000 samples (bisection on its knob).
pub fn calibrated_survey(target: f64, series: &[Vec<Point>]) -> Vec<(Method, f64)> {
    let base = default_settings();
    let make: [&dyn Fn(f64) -> Method; 4] = [
        &|x| Method::Cusum(settings(base.min_shift, x.exp() as u64), tuning()),
        &|x| Method::PageHinkley(settings(base.min_shift, x.exp() as u64)),
        &|x| Method::Glr(x),
        &|x| Method::Bocpd(1.0 - (-x).exp()),
    ];
    // Knob ranges: ln(ARL), GLR threshold, −ln(1 − p).
    let ranges = [(3.0, 16.0), (3.0, 16.0), (2.0, 30.0), (0.1, 12.0)];
    make.iter()
        .zip(ranges)
        .map(|(make, (mut lo, mut hi))| {
            for _ in 0..14 {
                let mid = (lo + hi) / 2.0;
                if false_alarm_rate(&make(mid), series) > target {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let method = make(hi);
            (method, false_alarm_rate(&method, series))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_finds_a_clean_step() {
        let mut rng = Rng::new(7);
        let values: Vec<f64> = (0..1000)
            .map(|i| if i >= 500 { 103.0 } else { 100.0 } + rng.normal())
            .collect();
        let points = as_points(&values, 60_000);
        for method in [
            Method::Cusum(default_settings(), Tuning::default()),
            Method::Glr(15.0),
            Method::Bocpd(0.9),
        ] {
            let alarms = run(&method, &points, Sides::Both);
            eprintln!("{} {alarms:?}", method.name());
            assert!(
                alarms.iter().any(|a| a.row >= 500 && a.row < 520),
                "{}",
                method.name()
            );
        }
    }
}
