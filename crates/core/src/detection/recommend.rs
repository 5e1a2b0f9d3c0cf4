//! The sentence a degradation result carries: what to look at, by metric family and severity.

use crate::metric::{Direction, Metric, MetricFamily};

use super::{DegradationStatus, Severity};

/// A recommendation for a result; `threshold` is the minimum degradation percentage that
/// was in force, named when a real change stayed below it.
pub(super) fn recommendation(
    metric: &Metric,
    direction: Direction,
    status: DegradationStatus,
    severity: Severity,
    threshold: f64,
) -> String {
    let name = metric.as_str();
    match status {
        DegradationStatus::InsufficientData => {
            return format!("Not enough {name} samples to judge; keep recording and check again once both windows hold enough data.");
        }
        DegradationStatus::Ok => {
            return if severity == Severity::None {
                format!("No action needed: {name} shows no statistically supported degradation.")
            } else {
                format!("Keep watching {name}: it is measurably worse, but by less than the {threshold}% that counts as degraded.")
            };
        }
        DegradationStatus::Degraded => {}
    }
    let urgent = matches!(severity, Severity::High | Severity::Critical);
    let worse = match direction {
        Direction::HigherIsBetter => "dropped",
        Direction::LowerIsBetter => "risen",
    };
    match (metric.family(), urgent) {
        (MetricFamily::Classification, false) => format!("{name} has {worse}: check recent inputs for data drift and label quality before it grows."),
        (MetricFamily::Classification, true) => format!("{name} has {worse} sharply: compare recent inputs with the training data, and consider rolling back to the previous version or retraining."),
        (MetricFamily::Regression, false) => format!("{name} has {worse}: look for drift in feature distributions and in the target."),
        (MetricFamily::Regression, true) => format!("{name} has {worse} sharply: check for broken features or upstream data changes, and consider rolling back or retraining."),
        (MetricFamily::Serving, false) => match metric {
            Metric::Throughput => format!("throughput has {worse}: check upstream traffic and autoscaling."),
            _ => format!("{name} has {worse}: check resource usage and recent deployments of the serving stack."),
        },
        (MetricFamily::Serving, true) => match metric {
            Metric::Throughput => "throughput has dropped sharply: check that the service is healthy and receiving traffic; scale out or roll back a recent deployment.".to_owned(),
            _ => format!("{name} has {worse} sharply: check for resource saturation, failing dependencies or a bad deployment, and scale out or roll back."),
        },
        (MetricFamily::Custom, false) => format!("{name} has {worse}: investigate what changed in its inputs."),
        (MetricFamily::Custom, true) => format!("{name} has {worse} sharply: investigate now and consider rolling back recent changes."),
    }
}
