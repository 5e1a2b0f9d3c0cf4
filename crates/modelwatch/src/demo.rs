//! A realistic demo data set: several models and versions over a week, with a real
//! degradation and a daily cycle, so a newcomer sees a living system at once.

use std::time::Duration;

use modelwatch_core::{Metric, ModelName, Sample, Timestamp, Version};

const STEP: Duration = Duration::from_secs(5 * 60);
const DAY_MS: f64 = 86_400_000.0;

/// Deterministic noise (xorshift64*), so the demo looks the same every time.
struct Noise(u64);

impl Noise {
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of uniforms), mean 0, standard deviation 1.
    fn gaussian(&mut self) -> f64 {
        (0..12).map(|_| self.next_unit()).sum::<f64>() - 6.0
    }
}

struct Series {
    model: &'static str,
    version: &'static str,
    metric: Metric,
    base: f64,
    noise: f64,
    daily_amplitude: f64,
    /// Relative change applied over the last `degrade_hours` (negative = drop).
    degrade_by: f64,
    degrade_hours: f64,
    decimals: i32,
}

#[rustfmt::skip]
fn catalogue() -> Vec<Series> {
    use Metric::*;
    // (model, version, metric, base, noise, daily amplitude, change, change hours ago, decimals)
    let rows = [
        ("fraud_detector", "v2.0", Accuracy, 0.942, 0.004, 0.0, 0.0, 0.0, 6),
        ("fraud_detector", "v2.0", Precision, 0.915, 0.006, 0.0, 0.0, 0.0, 6),
        ("fraud_detector", "v2.0", Recall, 0.884, 0.006, 0.0, 0.0, 0.0, 6),
        // A bad deploy two hours ago: accuracy and precision drop.
        ("fraud_detector", "v2.1", Accuracy, 0.951, 0.004, 0.0, -0.12, 2.0, 6),
        ("fraud_detector", "v2.1", Precision, 0.928, 0.006, 0.0, -0.08, 2.0, 6),
        ("fraud_detector", "v2.1", Recall, 0.893, 0.006, 0.0, 0.0, 0.0, 6),
        ("fraud_detector", "v2.1", Latency, 42.0, 3.0, 0.0, 0.0, 0.0, 3),
        ("recommender", "v3.0", AucRoc, 0.871, 0.003, 0.0, 0.0, 0.0, 6),
        // Serving metrics follow the daily traffic cycle.
        ("recommender", "v3.0", Latency, 85.0, 6.0, 0.35, 0.0, 0.0, 3),
        ("recommender", "v3.0", Throughput, 1200.0, 40.0, 0.5, 0.0, 0.0, 1),
        ("recommender", "v3.0", ErrorRate, 0.012, 0.002, 0.0, 0.9, 2.0, 5),
        ("churn_regressor", "v1.5", Mae, 3.2, 0.08, 0.0, 0.0, 0.0, 4),
        ("churn_regressor", "v1.5", Rmse, 4.6, 0.1, 0.0, 0.0, 0.0, 4),
        ("churn_regressor", "v1.5", R2Score, 0.81, 0.01, 0.0, 0.0, 0.0, 4),
    ];
    rows.into_iter()
        .map(|(model, version, metric, base, noise, daily_amplitude, degrade_by, degrade_hours, decimals)| Series {
            model, version, metric, base, noise, daily_amplitude, degrade_by, degrade_hours, decimals,
        })
        .collect()
}

/// A week of samples, one every five minutes per series, ending at `now`.
pub fn samples(now: Timestamp) -> Vec<Sample> {
    let step_ms = STEP.as_millis() as i64;
    let end = now.as_millis() - now.as_millis() % step_ms;
    let points = 7 * 24 * 12;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut samples = Vec::new();
    for series in catalogue() {
        let (Ok(model), Ok(version)) = (
            ModelName::parse(series.model),
            Version::parse(series.version),
        ) else {
            continue;
        };
        let definition = series.metric.default_definition();
        for i in 0..points {
            let t = end - (points - 1 - i) * step_ms;
            let hours_before_end = (end - t) as f64 / 3_600_000.0;
            let phase = (t as f64 % DAY_MS) / DAY_MS * std::f64::consts::TAU;
            let mut value = series.base * (1.0 + series.daily_amplitude * phase.sin());
            if series.degrade_hours > 0.0 && hours_before_end < series.degrade_hours {
                // A bad deploy: the change ramps in over half an hour, then stays.
                let progress = (series.degrade_hours - hours_before_end) / 0.5;
                value *= 1.0 + series.degrade_by * progress.min(1.0);
            }
            value += series.noise * noise.gaussian();
            let scale = 10f64.powi(series.decimals);
            value = (value * scale).round() / scale;
            let value = definition.range.min.map_or(value, |min| value.max(min));
            let value = definition.range.max.map_or(value, |max| value.min(max));
            let Ok(timestamp) = Timestamp::from_millis(t) else {
                continue;
            };
            samples.push(Sample {
                model: model.clone(),
                version: version.clone(),
                metric: series.metric.clone(),
                value,
                timestamp,
                dataset: None,
            });
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the demo data, each kind of degradation rule observes exactly what `check`
    /// says at the same instant with the same windows and significance level.
    #[tokio::test]
    async fn degradation_rules_agree_with_check_on_the_demo_data() {
        use std::sync::Arc;

        use modelwatch_core::alerting::observe::reading;
        use modelwatch_core::alerting::{AlertConfig, RuleSpec};
        use modelwatch_core::TimeRange;
        use modelwatch_store::{MemoryStore, Stores};

        let now = Timestamp::from_millis(1_704_110_400_000).unwrap();
        let stores = Stores::of(Arc::new(MemoryStore::new()));
        stores.metrics.append(samples(now)).await.unwrap();
        let engine = modelwatch_engine::Engine::new(&stores, AlertConfig::default());
        let rule = |model: &str, metric: &str, extra: fn(&mut RuleSpec)| {
            let mut spec = RuleSpec {
                name: format!("{model} {metric}"),
                model: model.into(),
                metric: metric.into(),
                max_degradation_percentage: Some(5.0),
                ..RuleSpec::default()
            };
            extra(&mut spec);
            spec
        };
        let specs = [
            // The demo's own rule: the last hour against the day before.
            rule("fraud_detector", "accuracy", |s| {
                s.comparison_hours = Some(1)
            }),
            // The daily traffic cycle, against the same hours a day earlier.
            rule("recommender", "latency", |s| {
                s.comparison_hours = Some(2);
                s.seasonal = Some("daily".into());
            }),
            // Auto on five-minute data: a 6-hour window.
            rule("recommender", "error_rate", |_| {}),
            rule("fraud_detector", "precision", |s| {
                s.comparison = Some("latest".into());
                s.alpha = Some(0.01);
            }),
        ];
        let range = TimeRange::new(
            now.saturating_sub(std::time::Duration::from_secs(12 * 3600)),
            now,
        );
        let mut breaching = 0;
        for spec in specs {
            let rule = engine.create_rule(spec, now).await.unwrap();
            let versions = stores.metrics.versions(&rule.model).await.unwrap();
            for version in versions {
                let observed = engine.observe_range(&rule, &version, range).await.unwrap();
                assert!(!observed.is_empty(), "{} {version}", rule.name);
                for (t, observation) in observed {
                    let check = engine.check_as_rule(&rule, &version, t).await.unwrap();
                    assert_eq!(
                        reading(check.unwrap(), t),
                        observation,
                        "{} {version} at {t}",
                        rule.name
                    );
                    if let modelwatch_core::alerting::Observation::Degradation(r) = observation {
                        breaching += usize::from(r.significant && r.degradation_percentage > 5.0);
                    }
                }
            }
        }
        // The bad deploy and the error-rate spike are seen.
        assert!(breaching > 0);
    }

    #[test]
    fn demo_values_are_valid_and_deterministic() {
        let now = Timestamp::from_millis(1_704_110_400_000).unwrap();
        let a = samples(now);
        assert_eq!(a, samples(now));
        assert_eq!(a.len(), 14 * 2016);
        for sample in &a {
            sample.check(&sample.metric.default_definition()).unwrap();
        }
    }
}
