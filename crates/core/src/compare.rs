//! Champion vs challenger: two versions of a model on the same metric and time range.
//!
//! The difference is `challenger − champion` of the two windows' means, with a Welch
//! t confidence interval (unequal variances, Welch–Satterthwaite degrees of freedom) and
//! the matching two-sided p-value. The verdict is direction-aware: it names the better
//! version only when the interval excludes zero, `no_significant_difference` otherwise,
//! and `insufficient_data` when either version has fewer than `min_samples` values.
//!
//! Like every t-based method it treats samples as independent; for strongly
//! autocorrelated series compare windows of aggregated values (e.g. hourly means).

use crate::detection::significance::{student_t_quantile, student_t_upper_tail, Moments};
use crate::metric::{Direction, Metric, MetricDefinition};
use crate::sample::{ModelName, Point, Version};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Confidence level of the interval, e.g. 0.95.
    pub confidence: f64,
    pub min_samples: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            confidence: 0.95,
            min_samples: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    ChallengerBetter,
    ChampionBetter,
    NoSignificantDifference,
    InsufficientData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ChallengerBetter => "challenger_better",
            Verdict::ChampionBetter => "champion_better",
            Verdict::NoSignificantDifference => "no_significant_difference",
            Verdict::InsufficientData => "insufficient_data",
        }
    }
}

/// An interval of the difference `challenger − champion`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceInterval {
    pub lower: f64,
    pub upper: f64,
    pub level: f64,
}

/// One version's side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VersionPoints<'a> {
    pub version: &'a Version,
    pub points: &'a [Point],
}

#[derive(Debug, Clone, PartialEq)]
pub struct VersionComparison {
    pub model: ModelName,
    pub metric: Metric,
    pub direction: Direction,
    pub champion: Version,
    pub challenger: Version,
    pub champion_mean: Option<f64>,
    pub challenger_mean: Option<f64>,
    pub champion_samples: u64,
    pub challenger_samples: u64,
    /// `challenger_mean − champion_mean`.
    pub difference: Option<f64>,
    /// `100 · difference / |champion_mean|`; `None` for a zero champion mean.
    pub difference_percentage: Option<f64>,
    pub confidence_interval: Option<ConfidenceInterval>,
    /// Two-sided p-value of "the means are equal".
    pub p_value: Option<f64>,
    pub method: String,
    pub verdict: Verdict,
    pub summary: String,
}

/// Compares `challenger` with `champion` on one metric over the same range.
pub fn compare_versions(
    model: &ModelName,
    definition: &MetricDefinition,
    champion: VersionPoints<'_>,
    challenger: VersionPoints<'_>,
    options: &CompareOptions,
) -> VersionComparison {
    let a = Moments::of(champion.points.iter().map(|p| p.value));
    let b = Moments::of(challenger.points.iter().map(|p| p.value));
    let finite = |v: f64| Some(v).filter(|v| v.is_finite());
    let champion_mean = a.and_then(|m| finite(m.mean));
    let challenger_mean = b.and_then(|m| finite(m.mean));
    let difference = champion_mean
        .zip(challenger_mean)
        .and_then(|(a, b)| finite(b - a));
    let difference_percentage = champion_mean
        .zip(difference)
        .filter(|(a, _)| *a != 0.0)
        .and_then(|(a, d)| finite(100.0 * d / a.abs()));
    let mut result = VersionComparison {
        model: model.clone(),
        metric: definition.metric.clone(),
        direction: definition.direction,
        champion: champion.version.clone(),
        challenger: challenger.version.clone(),
        champion_mean,
        challenger_mean,
        champion_samples: a.map_or(0, |m| m.count) as u64,
        challenger_samples: b.map_or(0, |m| m.count) as u64,
        difference,
        difference_percentage,
        confidence_interval: None,
        p_value: None,
        method: "welch_t".to_owned(),
        verdict: Verdict::InsufficientData,
        summary: String::new(),
    };
    let min = options.min_samples.max(2);
    let (Some(a), Some(b), Some(d)) = (a, b, difference) else {
        result.summary = summary(&result, definition);
        return result;
    };
    if a.count < min || b.count < min {
        result.summary = summary(&result, definition);
        return result;
    }
    let (va, vb) = (a.variance / a.count as f64, b.variance / b.count as f64);
    let se2 = va + vb;
    let level = options.confidence.clamp(0.5, 0.999_999);
    let (half_width, p_value) = if se2 > 0.0 && se2.is_finite() {
        let df = se2 * se2 / (va * va / (a.count - 1) as f64 + vb * vb / (b.count - 1) as f64);
        let se = se2.sqrt();
        let q = student_t_quantile(0.5 + level / 2.0, df);
        (
            q * se,
            (2.0 * student_t_upper_tail((d / se).abs(), df)).min(1.0),
        )
    } else {
        (0.0, if d == 0.0 { 1.0 } else { 0.0 })
    };
    result.confidence_interval = Some(ConfidenceInterval {
        lower: d - half_width,
        upper: d + half_width,
        level,
    });
    result.p_value = Some(p_value);
    let excludes_zero = d - half_width > 0.0 || d + half_width < 0.0;
    let challenger_improves = definition.direction.worsening(0.0, d) < 0.0;
    result.verdict = match (excludes_zero, challenger_improves) {
        (false, _) => Verdict::NoSignificantDifference,
        (true, true) => Verdict::ChallengerBetter,
        (true, false) => Verdict::ChampionBetter,
    };
    result.summary = summary(&result, definition);
    result
}

fn summary(result: &VersionComparison, definition: &MetricDefinition) -> String {
    let metric = definition.metric.as_str();
    let (champion, challenger) = (&result.champion, &result.challenger);
    let percent = result
        .difference_percentage
        .map_or_else(String::new, |p| format!(" ({p:+.2}%)"));
    match result.verdict {
        Verdict::InsufficientData => format!(
            "not enough {metric} samples to compare {challenger} with {champion} ({} and {})",
            result.challenger_samples, result.champion_samples
        ),
        Verdict::NoSignificantDifference => {
            format!("no significant difference in {metric} between {challenger} and {champion}{percent}")
        }
        Verdict::ChallengerBetter => {
            format!("{challenger} is better than {champion} on {metric}{percent}")
        }
        Verdict::ChampionBetter => {
            format!("{champion} is better than {challenger} on {metric}{percent}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn points(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                timestamp: Timestamp::from_millis(i as i64).unwrap(),
                value,
                dataset: None,
            })
            .collect()
    }

    fn compare(metric: Metric, champion: &[f64], challenger: &[f64]) -> VersionComparison {
        let model = ModelName::parse("m").unwrap();
        let (v1, v2) = (Version::parse("v1").unwrap(), Version::parse("v2").unwrap());
        let (a, b) = (points(champion), points(challenger));
        let options = CompareOptions {
            min_samples: 3,
            ..CompareOptions::default()
        };
        compare_versions(
            &model,
            &metric.default_definition(),
            VersionPoints {
                version: &v1,
                points: &a,
            },
            VersionPoints {
                version: &v2,
                points: &b,
            },
            &options,
        )
    }

    #[test]
    fn interval_and_p_value_are_exact_on_a_fixture() {
        // Latency 98/100/102 vs 88/90/92: d = −10, se = √(8/3), df = 4, t(0.975, 4) = 2.776445.
        let r = compare(Metric::Latency, &[98.0, 100.0, 102.0], &[88.0, 90.0, 92.0]);
        let se = (8.0f64 / 3.0).sqrt();
        let ci = r.confidence_interval.unwrap();
        assert!((ci.lower - (-10.0 - 2.776445 * se)).abs() < 1e-5);
        assert!((ci.upper - (-10.0 + 2.776445 * se)).abs() < 1e-5);
        assert_eq!(
            (r.difference, r.difference_percentage),
            (Some(-10.0), Some(-10.0))
        );
        // Two-sided p for df = 4: 1 − u(3 − u²)/2... via the closed form of the tail.
        let t = 10.0 / se;
        let u = t / (1.0 + t * t / 4.0).sqrt();
        let p = 2.0 * (0.5 - 0.375 * u * (1.0 - u * u / 12.0));
        assert!((r.p_value.unwrap() - p).abs() < 1e-9);
        assert_eq!(r.verdict, Verdict::ChallengerBetter);
        assert_eq!(r.summary, "v2 is better than v1 on latency (-10.00%)");
    }

    #[test]
    fn verdict_is_direction_aware_and_needs_significance() {
        let r = compare(Metric::Accuracy, &[0.90, 0.91, 0.89], &[0.80, 0.81, 0.79]);
        assert_eq!(r.verdict, Verdict::ChampionBetter);
        let r = compare(Metric::Accuracy, &[0.90, 0.95, 0.85], &[0.91, 0.86, 0.96]);
        assert_eq!(r.verdict, Verdict::NoSignificantDifference);
        let r = compare(Metric::Accuracy, &[0.9], &[0.8, 0.8, 0.8]);
        assert_eq!(
            (r.verdict, r.confidence_interval, r.p_value),
            (Verdict::InsufficientData, None, None)
        );
        assert_eq!(
            r.difference_percentage.map(|p| (p * 1e9).round() / 1e9),
            Some(-11.111111111)
        );
    }

    #[test]
    fn zero_champion_mean_has_no_percentage() {
        let r = compare(Metric::ErrorRate, &[0.0, 0.0, 0.0], &[0.1, 0.1, 0.1]);
        assert_eq!((r.difference_percentage, r.p_value), (None, Some(0.0)));
        assert_eq!(r.verdict, Verdict::ChampionBetter);
        let ci = r.confidence_interval.unwrap();
        assert!((ci.lower - 0.1).abs() < 1e-15 && (ci.upper - 0.1).abs() < 1e-15);
    }
}
