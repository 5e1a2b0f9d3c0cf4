//! The event stream's objects (`GET /api/v1/events`), mapped from the engine's event hub.

use modelwatch_core::Dataset;
use modelwatch_engine::events as domain;
use serde::Serialize;
use utoipa::ToSchema;

use super::alerting::Alert;

/// New samples of one series since the previous event for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesUpdate {
    pub model: String,
    pub version: String,
    pub metric: String,
    /// The dataset: a name, or `default`.
    pub dataset: String,
    /// How many samples arrived.
    pub count: u64,
    pub last_value: f64,
    /// RFC 3339, UTC.
    pub last_timestamp: String,
    pub min: f64,
    pub max: f64,
}

impl From<&domain::SeriesUpdate> for SeriesUpdate {
    fn from(update: &domain::SeriesUpdate) -> Self {
        let key = &update.key;
        SeriesUpdate {
            model: key.model.to_string(),
            version: key.version.to_string(),
            metric: key.metric.to_string(),
            dataset: Dataset::name_of(key.dataset.as_ref()).to_owned(),
            count: update.count,
            last_value: update.last_value,
            last_timestamp: update.last_timestamp.to_rfc3339(),
            min: update.min,
            max: update.max,
        }
    }
}

/// An alert fired or changed state; `alert` is the alert as `GET /api/v1/alerts/{id}`
/// returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertEvent {
    /// fired, acknowledged, resolved, …
    pub change: String,
    pub alert: Alert,
}

impl From<&domain::AlertEvent> for AlertEvent {
    fn from(event: &domain::AlertEvent) -> Self {
        AlertEvent {
            change: event.change.as_str().to_owned(),
            alert: Alert::from(&event.alert),
        }
    }
}

#[cfg(test)]
mod tests {
    use modelwatch_core::{Metric, ModelName, SeriesKey, Timestamp, Version};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_series_update_is_the_json_the_event_stream_always_sent() {
        let update = domain::SeriesUpdate {
            key: SeriesKey::new(
                ModelName::parse("fraud").expect("model"),
                Version::parse("v1").expect("version"),
                "accuracy".parse::<Metric>().expect("metric"),
            ),
            count: 3,
            last_value: 0.8,
            last_timestamp: Timestamp::from_millis(1_714_564_800_000).expect("time"),
            min: 0.5,
            max: 0.9,
        };
        assert_eq!(
            serde_json::to_value(SeriesUpdate::from(&update)).expect("json"),
            json!({"model": "fraud", "version": "v1", "metric": "accuracy",
                "dataset": "default", "count": 3, "last_value": 0.8,
                "last_timestamp": "2024-05-01T12:00:00.000Z", "min": 0.5, "max": 0.9})
        );
    }
}
