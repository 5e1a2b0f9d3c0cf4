//! Performance history and health of a model version over a time range.
//!
//! Per metric: descriptive statistics, a **trend** and its `change_percentage`. The trend
//! comes from a robust slope so that single outliers do not create one: the points are
//! averaged into [`HealthOptions::max_trend_points`] equal time buckets when there are more
//! (which keeps the pairwise methods at O(k²) for a small fixed k whatever the sampling
//! rate), then
//!
//! * the **Theil–Sen** slope (median of pairwise slopes) and intercept (median of
//!   `y − slope · t`) give the fitted line; `change_percentage` is the fitted change from
//!   the first to the last bucket in percent of the fitted first value (`None` when that
//!   is zero);
//! * the **Mann–Kendall** test (with the tie correction) says whether there is a monotonic
//!   trend at all.
//!
//! A metric leaves `stable` only when Mann–Kendall is significant (two-sided p below
//! `alpha`) *and* the fitted change is at least `min_trend_change_percentage`; the
//! metric's direction then says whether it is `improving` or `degrading`.
//!
//! The **health formula** ([`HEALTH_FORMULA`], also in every result) grades the version
//! from the metric scores; `health_reasons` names each metric that pulled it down.

use crate::alerting::{Alert, Severity};
use crate::detection::significance::normal_upper_tail;
use crate::metric::{Direction, Metric, MetricDefinition};
use crate::sample::{ModelName, Point, Version};
use crate::stats::{downsample, format_p_value, mean_and_std};
use crate::time::{TimeRange, Timestamp};

/// The grading rule, as shown to users.
pub const HEALTH_FORMULA: &str = "each metric with a trend scores 100 unless its trend is degrading; a degrading metric scores 100 - min(100, 25 + 3 x its degradation % over the range) (50 when the % is undefined). health_score is the mean of the metric scores. overall_health: excellent when no metric is degrading, otherwise good if health_score >= 75, fair if >= 50, poor below. health_trend: degrading if more metrics degrade than improve, improving if more improve than degrade, else stable. When degradation checks are supplied (modelwatch monitor, the API, the dashboard), a metric whose check says degraded is degrading (its trend says so too), scored 100 - min(100, 25 + 3 x its degradation %) if that is lower. Open alerts cap the grade: a critical one at poor, a high one at fair, a medium or low one at good.";

const MS_PER_DAY: f64 = 86_400_000.0;

/// Tuning of trend detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthOptions {
    /// Two-sided significance level of the Mann–Kendall test.
    pub alpha: f64,
    /// Buckets needed for a trend.
    pub min_trend_points: usize,
    /// The smallest fitted change over the range that counts as a trend, in percent.
    pub min_trend_change_percentage: f64,
    /// Buckets the series is averaged into before the pairwise methods.
    pub max_trend_points: usize,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            alpha: 0.05,
            min_trend_points: 8,
            min_trend_change_percentage: 1.0,
            max_trend_points: 120,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trend {
    Improving,
    Stable,
    Degrading,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverallHealth {
    Excellent,
    Good,
    Fair,
    Poor,
    /// No metric had enough data for a trend.
    Unknown,
}

impl OverallHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            OverallHealth::Excellent => "excellent",
            OverallHealth::Good => "good",
            OverallHealth::Fair => "fair",
            OverallHealth::Poor => "poor",
            OverallHealth::Unknown => "unknown",
        }
    }
}

/// The points of one metric over the range, time-ordered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSeries<'a> {
    pub definition: &'a MetricDefinition,
    pub points: &'a [Point],
}

/// One metric's history.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricHistory {
    pub metric: Metric,
    pub direction: Direction,
    pub count: u64,
    /// The newest value.
    pub current_value: Option<f64>,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Sample standard deviation.
    pub std: Option<f64>,
    pub trend: Trend,
    /// Fitted change over the range, in percent of the fitted first value.
    pub change_percentage: Option<f64>,
    /// Theil–Sen slope in metric units per day.
    pub slope_per_day: Option<f64>,
    /// Two-sided Mann–Kendall p-value.
    pub trend_p_value: Option<f64>,
    /// Buckets the trend was computed on.
    pub trend_points: u64,
    /// This metric's part of the health formula; `None` without a trend.
    pub health_score: Option<f64>,
    /// Alerts of this metric not resolved yet (see [`include_open_alerts`]).
    pub open_alerts: u32,
}

/// The history and health of a model version; the seed's `get_performance_history`.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceHistory {
    pub model: ModelName,
    pub version: Version,
    pub from: Timestamp,
    pub to: Timestamp,
    pub metric_summaries: Vec<MetricHistory>,
    pub overall_health: OverallHealth,
    /// Mean of the metric scores, 0 to 100.
    pub health_score: Option<f64>,
    pub health_trend: Trend,
    /// Why the grade is what it is, one sentence per metric that matters.
    pub health_reasons: Vec<String>,
    pub health_formula: String,
    /// Samples across all metrics in the range.
    pub total_snapshots: u64,
}

/// A fitted robust trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendFit {
    /// Per millisecond.
    pub slope: f64,
    pub fitted_first: f64,
    pub fitted_last: f64,
    pub p_value: f64,
    pub points: usize,
}

/// Theil–Sen slope and Mann–Kendall p-value of `(t, y)` pairs (t in ms); `None` for fewer
/// than two points or no distinct times.
pub fn robust_trend(series: &[(f64, f64)]) -> Option<TrendFit> {
    let n = series.len();
    if n < 2 {
        return None;
    }
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            let (dt, dy) = (series[j].0 - series[i].0, series[j].1 - series[i].1);
            if dt != 0.0 {
                slopes.push(dy / dt);
            }
            s += match dy.partial_cmp(&0.0) {
                Some(std::cmp::Ordering::Greater) => 1,
                Some(std::cmp::Ordering::Less) => -1,
                _ => 0,
            };
        }
    }
    let slope = median(&mut slopes)?;
    let mut residuals: Vec<f64> = series.iter().map(|&(t, y)| y - slope * t).collect();
    let intercept = median(&mut residuals)?;

    let mut values: Vec<f64> = series.iter().map(|&(_, y)| y).collect();
    values.sort_by(f64::total_cmp);
    let nf = n as f64;
    let mut variance = nf * (nf - 1.0) * (2.0 * nf + 5.0);
    let mut run = 1usize;
    for i in 1..=n {
        if i < n && values[i] == values[i - 1] {
            run += 1;
        } else {
            let t = run as f64;
            variance -= t * (t - 1.0) * (2.0 * t + 5.0);
            run = 1;
        }
    }
    variance /= 18.0;
    let z = match s {
        0 => 0.0,
        s if variance <= 0.0 => f64::from(s.signum() as i32) * f64::INFINITY,
        s if s > 0 => (s - 1) as f64 / variance.sqrt(),
        s => (s + 1) as f64 / variance.sqrt(),
    };
    let p_value = if z.is_infinite() {
        0.0
    } else {
        (2.0 * normal_upper_tail(z.abs())).min(1.0)
    };
    Some(TrendFit {
        slope,
        fitted_first: intercept + slope * series[0].0,
        fitted_last: intercept + slope * series[n - 1].0,
        p_value,
        points: n,
    })
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn metric_score(trend: Trend, degradation: Option<f64>) -> f64 {
    match (trend, degradation) {
        (Trend::Degrading, Some(d)) => 100.0 - (25.0 + 3.0 * d).min(100.0),
        (Trend::Degrading, None) => 50.0,
        _ => 100.0,
    }
}

fn metric_history(
    series: &MetricSeries<'_>,
    range: TimeRange,
    options: &HealthOptions,
) -> MetricHistory {
    let definition = series.definition;
    let points = series.points;
    let count = points.len();
    let (mean, std) = mean_and_std(points.iter().map(|p| p.value));
    let (min, max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.value), hi.max(p.value))
        });
    let trend_series: Vec<(f64, f64)> = if count <= options.max_trend_points.max(2) {
        points
            .iter()
            .map(|p| (p.timestamp.as_millis() as f64, p.value))
            .collect()
    } else {
        downsample(points, range, options.max_trend_points.max(2))
            .iter()
            .map(|b| (b.start.as_millis() as f64, b.mean))
            .collect()
    };
    let fit = (trend_series.len() >= options.min_trend_points.max(2))
        .then(|| robust_trend(&trend_series))
        .flatten();
    let finite = |v: f64| Some(v).filter(|v| v.is_finite());
    let (trend, change_percentage) = match fit {
        Some(fit) => {
            let change = (fit.fitted_first != 0.0)
                .then(|| 100.0 * (fit.fitted_last - fit.fitted_first) / fit.fitted_first.abs())
                .and_then(finite);
            let large = change.is_none_or(|c| c.abs() >= options.min_trend_change_percentage);
            let worsening = definition
                .direction
                .worsening(fit.fitted_first, fit.fitted_last);
            let trend = if fit.p_value < options.alpha && large && worsening != 0.0 {
                if worsening > 0.0 {
                    Trend::Degrading
                } else {
                    Trend::Improving
                }
            } else {
                Trend::Stable
            };
            (trend, change)
        }
        None => (Trend::Stable, None),
    };
    let degradation = change_percentage.map(|c| match definition.direction {
        Direction::HigherIsBetter => -c,
        Direction::LowerIsBetter => c,
    });
    MetricHistory {
        metric: definition.metric.clone(),
        direction: definition.direction,
        count: count as u64,
        current_value: points.last().map(|p| p.value),
        mean: finite(mean),
        min: (count > 0).then_some(min),
        max: (count > 0).then_some(max),
        std: (count > 0).then_some(std).and_then(finite),
        trend,
        change_percentage,
        slope_per_day: fit.and_then(|f| finite(f.slope * MS_PER_DAY)),
        trend_p_value: fit.map(|f| f.p_value),
        trend_points: trend_series.len() as u64,
        health_score: fit.map(|_| metric_score(trend, degradation)),
        open_alerts: 0,
    }
}

fn reason(history: &MetricHistory, options: &HealthOptions) -> Option<String> {
    let name = history.metric.as_str();
    let change = history.change_percentage.map_or_else(
        || "an undefined percentage (it started at zero)".to_owned(),
        |c| format!("{c:+.1}%"),
    );
    let p = format_p_value(history.trend_p_value.unwrap_or(1.0));
    match (history.trend, history.health_score) {
        (Trend::Degrading, Some(score)) => Some(format!(
            "{name} is degrading: {change} over the range (Mann-Kendall p = {p}); metric score {score:.0}"
        )),
        (Trend::Improving, _) => {
            Some(format!("{name} is improving: {change} over the range (Mann-Kendall p = {p})"))
        }
        (_, None) => Some(format!(
            "{name} has too few data points for a trend ({} of {} time buckets); left out of the grade",
            history.trend_points, options.min_trend_points
        )),
        _ => None,
    }
}

/// The history and health of `model`/`version` over `range`, from each metric's points in
/// that range.
pub fn performance_history(
    model: &ModelName,
    version: &Version,
    range: TimeRange,
    metrics: &[MetricSeries<'_>],
    options: &HealthOptions,
) -> PerformanceHistory {
    let metric_summaries: Vec<MetricHistory> = metrics
        .iter()
        .map(|m| metric_history(m, range, options))
        .collect();
    let scores: Vec<f64> = metric_summaries
        .iter()
        .filter_map(|m| m.health_score)
        .collect();
    let health_score =
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    let degrading = metric_summaries
        .iter()
        .filter(|m| m.trend == Trend::Degrading)
        .count();
    let improving = metric_summaries
        .iter()
        .filter(|m| m.trend == Trend::Improving)
        .count();
    let overall_health = match health_score {
        None => OverallHealth::Unknown,
        Some(_) if degrading == 0 => OverallHealth::Excellent,
        Some(score) if score >= 75.0 => OverallHealth::Good,
        Some(score) if score >= 50.0 => OverallHealth::Fair,
        Some(_) => OverallHealth::Poor,
    };
    let health_trend = match degrading.cmp(&improving) {
        std::cmp::Ordering::Greater => Trend::Degrading,
        std::cmp::Ordering::Less => Trend::Improving,
        std::cmp::Ordering::Equal => Trend::Stable,
    };
    let mut health_reasons: Vec<String> = metric_summaries
        .iter()
        .filter_map(|m| reason(m, options))
        .collect();
    if degrading == 0 && health_score.is_some() {
        health_reasons.insert(
            0,
            "no metric shows a significant degrading trend".to_owned(),
        );
    }
    PerformanceHistory {
        model: model.clone(),
        version: version.clone(),
        from: range.start,
        to: range.end,
        total_snapshots: metric_summaries.iter().map(|m| m.count).sum(),
        metric_summaries,
        overall_health,
        health_score,
        health_trend,
        health_reasons,
        health_formula: HEALTH_FORMULA.to_owned(),
    }
}

/// Folds degradation checks into the grade: a trend over a long range misses a recent
/// step (a robust slope ignores it), while the check against the baseline catches it, and
/// a model whose accuracy just fell is not `excellent`.
pub fn include_degradations(
    history: &mut PerformanceHistory,
    checks: &[crate::detection::DegradationResult],
) {
    let mut extra_reasons = Vec::new();
    let mut degraded_metrics = Vec::new();
    for check in checks.iter().filter(|c| c.is_degraded) {
        let Some(summary) = history
            .metric_summaries
            .iter_mut()
            .find(|m| m.metric == check.metric)
        else {
            continue;
        };
        let score = check
            .degradation_percentage
            .map_or(50.0, |d| 100.0 - (25.0 + 3.0 * d).min(100.0));
        summary.health_score = Some(summary.health_score.map_or(score, |s| s.min(score)));
        // A recent drop the range's robust slope does not see is still a degradation:
        // the metric's trend says what its check says.
        summary.trend = Trend::Degrading;
        degraded_metrics.push(check.metric.clone());
        extra_reasons.push(format!(
            "{} is degraded against its baseline: {} worse (p = {}, {}); metric score {score:.0}",
            check.metric,
            check
                .degradation_percentage
                .map_or_else(|| "an undefined %".to_owned(), |d| format!("{d:.1}%")),
            check
                .p_value
                .map_or_else(|| "n/a".to_owned(), format_p_value),
            check.method,
        ));
    }
    if degraded_metrics.is_empty() {
        return;
    }
    let scores: Vec<f64> = history
        .metric_summaries
        .iter()
        .filter_map(|m| m.health_score)
        .collect();
    let score = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
    history.health_score = Some(score);
    history.overall_health = match score {
        s if s >= 75.0 => OverallHealth::Good,
        s if s >= 50.0 => OverallHealth::Fair,
        _ => OverallHealth::Poor,
    };
    let degrading = history
        .metric_summaries
        .iter()
        .filter(|m| m.trend == Trend::Degrading)
        .count();
    let improving = history
        .metric_summaries
        .iter()
        .filter(|m| m.trend == Trend::Improving && !degraded_metrics.contains(&m.metric))
        .count();
    history.health_trend = match degrading.cmp(&improving) {
        std::cmp::Ordering::Greater => Trend::Degrading,
        std::cmp::Ordering::Less => Trend::Improving,
        std::cmp::Ordering::Equal => Trend::Stable,
    };
    history
        .health_reasons
        .retain(|r| r != "no metric shows a significant degrading trend");
    // The trend reason of a metric the check found degraded would repeat it (or, saying
    // "improving", contradict it): the check's reason stands for the metric.
    history.health_reasons.retain(|r| {
        !degraded_metrics.iter().any(|m| {
            r.starts_with(&format!("{m} is degrading:"))
                || r.starts_with(&format!("{m} is improving:"))
        })
    });
    history.health_reasons.splice(0..0, extra_reasons);
}

/// The best grade a version with an open alert of `severity` can have.
fn grade_cap(severity: Severity) -> OverallHealth {
    match severity {
        Severity::Critical => OverallHealth::Poor,
        Severity::High => OverallHealth::Fair,
        Severity::Medium | Severity::Low => OverallHealth::Good,
    }
}

fn rank(health: OverallHealth) -> u8 {
    match health {
        OverallHealth::Excellent => 4,
        OverallHealth::Good => 3,
        OverallHealth::Fair => 2,
        OverallHealth::Poor => 1,
        OverallHealth::Unknown => 0,
    }
}

/// Folds the version's open alerts into the grade: a version someone is paged about is
/// not `excellent`. Each metric counts its open alerts; the worst severity caps the
/// grade (critical: poor, high: fair, medium or low: good) and is named in the reasons.
/// `alerts` are this version's; resolved ones are ignored.
pub fn include_open_alerts(history: &mut PerformanceHistory, alerts: &[Alert]) {
    let open: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.is_open() && a.model == history.model && a.version == history.version)
        .collect();
    let Some(worst) = open.iter().max_by_key(|a| a.severity) else {
        return;
    };
    for summary in &mut history.metric_summaries {
        summary.open_alerts = open
            .iter()
            .filter(|a| a.metric == summary.metric)
            .count()
            .try_into()
            .unwrap_or(u32::MAX);
    }
    let cap = grade_cap(worst.severity);
    let capped = history.overall_health == OverallHealth::Unknown
        || rank(history.overall_health) > rank(cap);
    if capped {
        history.overall_health = cap;
    }
    let count = open.len();
    history
        .health_reasons
        .retain(|r| r != "no metric shows a significant degrading trend");
    history.health_reasons.insert(
        0,
        format!(
            "{count} open {} (worst: {} “{}” on {}){}",
            if count == 1 { "alert" } else { "alerts" },
            worst.severity,
            worst.rule_name,
            worst.metric,
            if capped {
                format!(": health at most {}", grade_name(cap))
            } else {
                String::new()
            }
        ),
    );
}

fn grade_name(health: OverallHealth) -> &'static str {
    match health {
        OverallHealth::Excellent => "excellent",
        OverallHealth::Good => "good",
        OverallHealth::Fair => "fair",
        OverallHealth::Poor => "poor",
        OverallHealth::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn hourly(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                timestamp: Timestamp::from_millis(i as i64 * HOUR).unwrap(),
                value,
                dataset: None,
            })
            .collect()
    }

    fn range(hours: i64) -> TimeRange {
        TimeRange::new(
            Timestamp::from_millis(0).unwrap(),
            Timestamp::from_millis(hours * HOUR).unwrap(),
        )
    }

    fn names() -> (ModelName, Version) {
        (
            ModelName::parse("m").unwrap(),
            Version::parse("v1").unwrap(),
        )
    }

    #[test]
    fn theil_sen_ignores_an_outlier_and_mann_kendall_is_exact() {
        // y = 2t except one outlier: every pairwise slope not touching it is 2.
        let series: Vec<(f64, f64)> = (0..10)
            .map(|t| (t as f64, if t == 4 { 100.0 } else { 2.0 * t as f64 }))
            .collect();
        let fit = robust_trend(&series).unwrap();
        assert_eq!(fit.slope, 2.0);
        assert_eq!((fit.fitted_first, fit.fitted_last), (0.0, 18.0));
        // Strictly increasing 1..=5: S = 10, var = 5·4·15/18, z = 9/√var.
        let fit =
            robust_trend(&[(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)]).unwrap();
        let z = 9.0 / (300.0f64 / 18.0).sqrt();
        assert!((fit.p_value - 2.0 * normal_upper_tail(z)).abs() < 1e-12);
        assert!(robust_trend(&[(0.0, 1.0)]).is_none());
    }

    #[test]
    fn a_falling_accuracy_is_degrading_and_grades_the_version_down() {
        // Accuracy 0.90 falling by 0.001 per hour for 24 hours: fitted change
        // −0.023 / 0.90 = −2.556 %; score 100 − (25 + 3 · 2.556) = 67.33 → fair.
        let (model, version) = names();
        let accuracy = Metric::Accuracy.default_definition();
        let latency = Metric::Latency.default_definition();
        let falling: Vec<f64> = (0..24).map(|h| 0.90 - 0.001 * h as f64).collect();
        let a = hourly(&falling);
        let l = hourly(&[100.0; 24]);
        let metrics = [
            MetricSeries {
                definition: &accuracy,
                points: &a,
            },
            MetricSeries {
                definition: &latency,
                points: &l,
            },
        ];
        let h = performance_history(
            &model,
            &version,
            range(24),
            &metrics,
            &HealthOptions::default(),
        );
        let acc = &h.metric_summaries[0];
        assert_eq!(acc.trend, Trend::Degrading);
        assert_eq!(acc.count, 24);
        assert_eq!(
            (acc.current_value, acc.max),
            (Some(0.90 - 0.023), Some(0.90))
        );
        assert!((acc.mean.unwrap() - 0.8885).abs() < 1e-12);
        let change = -0.023 / 0.90 * 100.0;
        assert!((acc.change_percentage.unwrap() - change).abs() < 1e-9);
        assert!((acc.slope_per_day.unwrap() + 0.024).abs() < 1e-9);
        let score = 100.0 - (25.0 + 3.0 * -change);
        assert!((acc.health_score.unwrap() - score).abs() < 1e-9);
        let lat = &h.metric_summaries[1];
        assert_eq!(
            (lat.trend, lat.std, lat.change_percentage, lat.health_score),
            (Trend::Stable, Some(0.0), Some(0.0), Some(100.0))
        );
        assert!((h.health_score.unwrap() - (score + 100.0) / 2.0).abs() < 1e-9);
        assert_eq!(h.overall_health, OverallHealth::Good);
        assert_eq!(h.health_trend, Trend::Degrading);
        assert_eq!(h.total_snapshots, 48);
        assert_eq!(h.health_reasons.len(), 1);
        assert!(
            h.health_reasons[0].starts_with("accuracy is degrading: -2.6% over the range"),
            "{}",
            h.health_reasons[0]
        );
    }

    #[test]
    fn falling_latency_is_improving_and_noise_is_stable() {
        let (model, version) = names();
        let latency = Metric::Latency.default_definition();
        let falling: Vec<f64> = (0..24).map(|h| 200.0 - 2.0 * h as f64).collect();
        let zigzag: Vec<f64> = (0..24)
            .map(|h| if h % 2 == 0 { 101.0 } else { 99.0 })
            .collect();
        let (f, z) = (hourly(&falling), hourly(&zigzag));
        let metrics = [
            MetricSeries {
                definition: &latency,
                points: &f,
            },
            MetricSeries {
                definition: &latency,
                points: &z,
            },
        ];
        let h = performance_history(
            &model,
            &version,
            range(24),
            &metrics,
            &HealthOptions::default(),
        );
        assert_eq!(h.metric_summaries[0].trend, Trend::Improving);
        assert_eq!(h.metric_summaries[1].trend, Trend::Stable);
        assert_eq!(
            (h.overall_health, h.health_trend),
            (OverallHealth::Excellent, Trend::Improving)
        );
        assert_eq!(
            h.health_reasons[0],
            "no metric shows a significant degrading trend"
        );
    }

    #[test]
    fn empty_and_tiny_series_have_no_trend_and_no_nan() {
        let (model, version) = names();
        let accuracy = Metric::Accuracy.default_definition();
        let one = hourly(&[0.9]);
        let metrics = [
            MetricSeries {
                definition: &accuracy,
                points: &[],
            },
            MetricSeries {
                definition: &accuracy,
                points: &one,
            },
        ];
        let h = performance_history(
            &model,
            &version,
            range(24),
            &metrics,
            &HealthOptions::default(),
        );
        let empty = &h.metric_summaries[0];
        assert_eq!(
            (
                empty.count,
                empty.mean,
                empty.min,
                empty.std,
                empty.current_value
            ),
            (0, None, None, None, None)
        );
        let single = &h.metric_summaries[1];
        assert_eq!(
            (single.mean, single.std, single.trend, single.health_score),
            (Some(0.9), Some(0.0), Trend::Stable, None)
        );
        assert_eq!(
            (h.overall_health, h.health_score, h.total_snapshots),
            (OverallHealth::Unknown, None, 1)
        );
    }
}

#[cfg(test)]
mod degradation_grade_tests {
    use super::*;
    use crate::detection::{DegradationResult, DegradationStatus, Severity};

    #[test]
    fn a_degraded_check_pulls_an_otherwise_excellent_grade_down_and_says_why() {
        let model = ModelName::parse("m").unwrap();
        let version = Version::parse("v1").unwrap();
        let definition = Metric::Accuracy.default_definition();
        let points: Vec<Point> = (0..200)
            .map(|i| Point {
                timestamp: Timestamp::from_millis(i * 60_000).unwrap(),
                value: 0.9,
                dataset: None,
            })
            .collect();
        let range = TimeRange::new(
            Timestamp::MIN,
            Timestamp::from_millis(200 * 60_000).unwrap(),
        );
        let series = [MetricSeries {
            definition: &definition,
            points: &points,
        }];
        let mut history =
            performance_history(&model, &version, range, &series, &HealthOptions::default());
        assert_eq!(history.overall_health, OverallHealth::Excellent);
        let check = DegradationResult {
            model: model.clone(),
            version: version.clone(),
            metric: Metric::Accuracy,
            direction: Direction::HigherIsBetter,
            current_value: Some(0.8),
            baseline_value: Some(0.9),
            reference_value: None,
            absolute_change: Some(-0.1),
            percentage_change: Some(-11.0),
            degradation_percentage: Some(11.0),
            is_degraded: true,
            severity: Severity::High,
            recommendation: String::new(),
            baseline_samples: 100,
            comparison_samples: 60,
            reference_samples: 0,
            p_value: Some(0.00002),
            method: "welch_t".into(),
            status: DegradationStatus::Degraded,
            change_started_at: None,
            alpha: 0.01,
            min_degradation_percentage: 3.0,
        };
        include_degradations(&mut history, &[check]);
        // 100 - (25 + 3 × 11) = 42 → poor.
        assert_eq!(history.health_score, Some(42.0));
        assert_eq!(history.overall_health, OverallHealth::Poor);
        assert_eq!(history.health_trend, Trend::Degrading);
        // The metric's trend sees the drop too: no "stable" row under a degraded grade.
        assert_eq!(history.metric_summaries[0].trend, Trend::Degrading);
        assert_eq!(
            history.health_reasons[0],
            "accuracy is degraded against its baseline: 11.0% worse (p = 2.0e-5, welch_t); metric score 42"
        );
    }

    fn flat_history() -> PerformanceHistory {
        let model = ModelName::parse("fraud").unwrap();
        let version = Version::parse("v1").unwrap();
        let definitions = [
            Metric::Accuracy.default_definition(),
            Metric::Precision.default_definition(),
        ];
        let points: Vec<Point> = (0..200)
            .map(|i| Point {
                timestamp: Timestamp::from_millis(i * 60_000).unwrap(),
                value: 0.9,
                dataset: None,
            })
            .collect();
        let range = TimeRange::new(
            Timestamp::MIN,
            Timestamp::from_millis(200 * 60_000).unwrap(),
        );
        let series: Vec<MetricSeries<'_>> = definitions
            .iter()
            .map(|definition| MetricSeries {
                definition,
                points: &points,
            })
            .collect();
        performance_history(&model, &version, range, &series, &HealthOptions::default())
    }

    fn open_alert(metric: &str, severity: &str, resolved: bool) -> Alert {
        let mut alert = crate::alerting::summary::tests::alert(1, 0);
        alert.rule_name = format!("{metric} rule");
        alert.metric = crate::Metric::parse(metric).unwrap().into();
        alert.severity = crate::alerting::Severity::parse(severity).unwrap();
        if resolved {
            alert.status = crate::alerting::AlertStatus::Resolved;
            alert.resolved_at = Some(Timestamp::from_millis(1).unwrap());
        }
        alert
    }

    #[test]
    fn a_version_with_open_alerts_is_not_excellent() {
        let mut history = flat_history();
        assert_eq!(history.overall_health, OverallHealth::Excellent);
        include_open_alerts(
            &mut history,
            &[
                open_alert("precision", "medium", false),
                open_alert("accuracy", "high", false),
                open_alert("accuracy", "critical", true),
            ],
        );
        assert_eq!(history.overall_health, OverallHealth::Fair);
        assert_eq!(
            history.health_reasons[0],
            "2 open alerts (worst: high “accuracy rule” on accuracy): health at most fair"
        );
        let counts: Vec<u32> = history
            .metric_summaries
            .iter()
            .map(|m| m.open_alerts)
            .collect();
        assert_eq!(counts, [1, 1]);
        assert!(!history
            .health_reasons
            .iter()
            .any(|r| r.contains("no metric shows")));

        let mut critical = flat_history();
        include_open_alerts(&mut critical, &[open_alert("accuracy", "critical", false)]);
        assert_eq!(critical.overall_health, OverallHealth::Poor);
        let mut resolved = flat_history();
        include_open_alerts(&mut resolved, &[open_alert("accuracy", "critical", true)]);
        assert_eq!(resolved.overall_health, OverallHealth::Excellent);
    }
}
