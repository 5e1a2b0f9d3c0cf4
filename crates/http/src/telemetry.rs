//! The Prometheus exposition at `/metrics`: modelwatch's own health, and the latest
//! value of every model metric and the time of its last sample as gauges labelled by
//! model, version and metric (`time() - modelwatch_series_last_sample_timestamp_seconds`
//! is how long a series has been silent); for the versions of those series, their health
//! score and grade, their open alerts by severity and each metric's latest degradation
//! check ([`VersionGauges`]).
//!
//! Own counters live for the whole process and are shared with the evaluator and the
//! notifier through [`Telemetry`]; model gauges are read from the store at each scrape
//! (one `latest` per series), so they are right even when another process wrote the
//! samples. Output is the OpenMetrics text format, which Prometheus scrapes natively.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeriesLabels {
    pub model: String,
    pub version: String,
    pub metric: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct VersionLabels {
    pub model: String,
    pub version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GradeLabels {
    pub model: String,
    pub version: String,
    /// excellent, good, fair, poor or unknown
    pub grade: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionSeverityLabels {
    pub model: String,
    pub version: String,
    pub severity: String,
}

/// What `/metrics` shows of each version of the exported series.
#[derive(Debug, Clone, Default)]
pub struct VersionGauges {
    /// Health score (0 to 100; `None` without enough data) and grade.
    pub health: Vec<(VersionLabels, Option<f64>, String)>,
    /// Open alerts by severity (only counts above zero).
    pub open_alerts: Vec<(VersionSeverityLabels, u64)>,
    /// Each metric's latest degradation check: degraded or not, and by how many percent.
    pub degradation: Vec<(SeriesLabels, bool, Option<f64>)>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// json, line_protocol
    pub format: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub state: String,
    pub severity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub channel: String,
    /// delivered, retried, failed, skipped
    pub outcome: String,
}

/// modelwatch's own counters. Clones share the same values.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub samples_ingested: Counter,
    pub samples_rejected: Family<RejectLabels, Counter>,
    pub evaluation_seconds: Histogram,
    pub alerts: Family<AlertLabels, Gauge>,
    pub notifications: Family<DeliveryLabels, Counter>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            samples_ingested: Counter::default(),
            samples_rejected: Family::default(),
            // 1 ms … ~16 s
            evaluation_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            alerts: Family::default(),
            notifications: Family::default(),
        }
    }
}

impl Telemetry {
    pub fn rejected(&self, format: &str, count: u64) {
        self.samples_rejected
            .get_or_create(&RejectLabels {
                format: format.to_owned(),
            })
            .inc_by(count);
    }

    /// Renders the exposition with the given latest model values and their times (Unix
    /// seconds), of `series` series of which `omitted` are left out, and their versions'
    /// gauges.
    pub fn render(
        &self,
        latest: impl IntoIterator<Item = (SeriesLabels, f64, f64)>,
        series: usize,
        omitted: usize,
        versions: &VersionGauges,
    ) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("modelwatch");
        registry.register(
            "samples_ingested",
            "Samples stored through the HTTP API",
            self.samples_ingested.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples refused as invalid (a rejected batch counts all its samples)",
            self.samples_rejected.clone(),
        );
        registry.register(
            "evaluation_duration_seconds",
            "Duration of one evaluation pass over the rules",
            self.evaluation_seconds.clone(),
        );
        registry.register(
            "alerts",
            "Alerts by state and severity",
            self.alerts.clone(),
        );
        registry.register(
            "notification_deliveries",
            "Notification deliveries by channel and outcome",
            self.notifications.clone(),
        );
        let models = Family::<SeriesLabels, Gauge<f64, AtomicU64>>::default();
        let last_samples = Family::<SeriesLabels, Gauge<f64, AtomicU64>>::default();
        for (labels, value, at_seconds) in latest {
            models.get_or_create(&labels).set(value);
            last_samples.get_or_create(&labels).set(at_seconds);
        }
        registry.register(
            "model_metric",
            "Latest value of each model metric, for the first [limits] metrics_series series",
            models,
        );
        registry.register(
            "series_last_sample_timestamp_seconds",
            "Time of each series' newest sample (Unix seconds), for the first [limits] metrics_series series",
            last_samples,
        );
        let scores = Family::<VersionLabels, Gauge<f64, AtomicU64>>::default();
        let grades = Family::<GradeLabels, Gauge>::default();
        for (labels, score, grade) in &versions.health {
            if let Some(score) = score {
                scores.get_or_create(labels).set(*score);
            }
            grades
                .get_or_create(&GradeLabels {
                    model: labels.model.clone(),
                    version: labels.version.clone(),
                    grade: grade.clone(),
                })
                .set(1);
        }
        registry.register(
            "version_health_score",
            "Health score (0 to 100) of each version of the exported series, over the last 24 hours",
            scores,
        );
        registry.register(
            "version_health_grade",
            "1 for the health grade of each version of the exported series (excellent, good, fair, poor, unknown)",
            grades,
        );
        let open = Family::<VersionSeverityLabels, Gauge>::default();
        for (labels, count) in &versions.open_alerts {
            open.get_or_create(labels)
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        registry.register(
            "version_open_alerts",
            "Open (active or acknowledged) alerts of each version of the exported series, by severity",
            open,
        );
        let degraded = Family::<SeriesLabels, Gauge>::default();
        let degradation = Family::<SeriesLabels, Gauge<f64, AtomicU64>>::default();
        for (labels, is_degraded, percentage) in &versions.degradation {
            degraded.get_or_create(labels).set(i64::from(*is_degraded));
            if let Some(percentage) = percentage {
                degradation.get_or_create(labels).set(*percentage);
            }
        }
        registry.register(
            "metric_degraded",
            "1 when the latest degradation check (last hour against the 24 before) found the exported series degraded",
            degraded,
        );
        registry.register(
            "metric_degradation_percent",
            "How much worse the last hour is than the 24 before, in percent, for the exported series",
            degradation,
        );
        let count = |n: usize| {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
            gauge
        };
        registry.register("series", "Series in the store", count(series));
        registry.register(
            "model_metric_omitted_series",
            "Series whose latest value is not exported ([limits] metrics_series)",
            count(omitted),
        );
        let mut text = String::new();
        encode(&mut text, &registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_own_counters_and_model_gauges() {
        let telemetry = Telemetry::default();
        telemetry.samples_ingested.inc_by(3);
        telemetry.rejected("json", 2);
        let text = telemetry
            .render(
                [(
                    SeriesLabels {
                        model: "fraud".into(),
                        version: "v1".into(),
                        metric: "accuracy".into(),
                    },
                    0.93,
                    1_700_000_000.5,
                )],
                3,
                2,
                &VersionGauges {
                    health: vec![(
                        VersionLabels {
                            model: "fraud".into(),
                            version: "v1".into(),
                        },
                        Some(82.5),
                        "good".into(),
                    )],
                    open_alerts: vec![(
                        VersionSeverityLabels {
                            model: "fraud".into(),
                            version: "v1".into(),
                            severity: "high".into(),
                        },
                        2,
                    )],
                    degradation: vec![(
                        SeriesLabels {
                            model: "fraud".into(),
                            version: "v1".into(),
                            metric: "accuracy".into(),
                        },
                        true,
                        Some(12.5),
                    )],
                },
            )
            .expect("render");
        assert!(
            text.contains("modelwatch_samples_ingested_total 3"),
            "{text}"
        );
        assert!(
            text.contains("modelwatch_samples_rejected_total{format=\"json\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "modelwatch_model_metric{model=\"fraud\",version=\"v1\",metric=\"accuracy\"} 0.93"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "modelwatch_series_last_sample_timestamp_seconds{model=\"fraud\",version=\"v1\",metric=\"accuracy\"} 1700000000.5"
            ),
            "{text}"
        );
        for line in [
            "modelwatch_version_health_score{model=\"fraud\",version=\"v1\"} 82.5",
            "modelwatch_version_health_grade{model=\"fraud\",version=\"v1\",grade=\"good\"} 1",
            "modelwatch_version_open_alerts{model=\"fraud\",version=\"v1\",severity=\"high\"} 2",
            "modelwatch_metric_degraded{model=\"fraud\",version=\"v1\",metric=\"accuracy\"} 1",
            "modelwatch_metric_degradation_percent{model=\"fraud\",version=\"v1\",metric=\"accuracy\"} 12.5",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
