//! The Prometheus exposition at `/metrics`: modelwatch's own health, and the latest
//! value of every model metric and the time of its last sample as gauges labelled by
//! model, version and metric (`time() - modelwatch_series_last_sample_timestamp_seconds`
//! is how long a series has been silent).
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
    /// seconds), of `series` series of which `omitted` are left out.
    pub fn render(
        &self,
        latest: impl IntoIterator<Item = (SeriesLabels, f64, f64)>,
        series: usize,
        omitted: usize,
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
        assert!(text.ends_with("# EOF\n"));
    }
}
