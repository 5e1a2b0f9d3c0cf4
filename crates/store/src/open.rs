//! Which backend a location names, and opening the stores at one location or two: the
//! samples in any backend, the alerting state (rules, alerts, silences, the outbox,
//! tokens, predictions) in a relational one.

use std::sync::Arc;

use crate::{
    CloudWatchStore, InfluxStore, MemoryStore, PostgresStore, PrometheusStore, SeriesLimits,
    SqliteStore, StoreError, Stores,
};

/// The backend a location names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `memory`: ephemeral, everything in this process.
    Memory,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
    /// `sqlite:PATH` or a plain path.
    Sqlite,
    /// `influxdb://HOST:PORT/DATABASE`: samples only.
    Influx,
    /// `prometheus://HOST:PORT[?LABEL=VALUE&…]`: samples only.
    Prometheus,
    /// `cloudwatch://REGION/NAMESPACE[?endpoint=URL]`: samples only.
    CloudWatch,
}

impl Backend {
    /// The backend of `location` (a plain path is SQLite).
    pub fn of(location: &str) -> Backend {
        if location == "memory" || location == ":memory:" {
            Backend::Memory
        } else if crate::influx::is_influx_location(location) {
            Backend::Influx
        } else if crate::prometheus::is_prometheus_location(location) {
            Backend::Prometheus
        } else if crate::cloudwatch::is_cloudwatch_location(location) {
            Backend::CloudWatch
        } else if crate::postgres::is_postgres_location(location) {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Whether the backend keeps alerting state too (rules, alerts, the outbox, tokens,
    /// predictions); a time-series store keeps only samples and needs one beside it.
    pub fn is_relational(self) -> bool {
        match self {
            Backend::Memory | Backend::Postgres | Backend::Sqlite => true,
            Backend::Influx | Backend::Prometheus | Backend::CloudWatch => false,
        }
    }
}

/// Opens the store a location names: `memory` for an ephemeral in-memory store,
/// `postgres://…` (or `postgresql://…`) for a PostgreSQL database, `sqlite:PATH` or a
/// plain path for an SQLite file (created when missing).
pub async fn open(location: &str) -> Result<Stores, StoreError> {
    open_with(location, SeriesLimits::default()).await
}

/// [`open`] with other [`SeriesLimits`] than the defaults.
pub async fn open_with(location: &str, limits: SeriesLimits) -> Result<Stores, StoreError> {
    open_split(location, None, limits).await
}

/// Samples at `metrics`, the alerting state at `alerts` (a relational location); without
/// `alerts`, or with the same location twice, everything at `metrics`, which must then be
/// relational.
pub async fn open_split(
    metrics: &str,
    alerts: Option<&str>,
    limits: SeriesLimits,
) -> Result<Stores, StoreError> {
    let alerts = alerts.filter(|alerts| *alerts != metrics);
    let Some(alerts) = alerts else {
        if !Backend::of(metrics).is_relational() {
            return Err(StoreError::AlertsDbRequired {
                location: metrics.to_owned(),
            });
        }
        return open_relational(metrics, limits).await;
    };
    if !Backend::of(alerts).is_relational() {
        return Err(StoreError::NotRelational {
            location: alerts.to_owned(),
        });
    }
    let relational = open_relational(alerts, limits).await?;
    let samples: Result<Arc<dyn crate::MetricStore>, StoreError> = match Backend::of(metrics) {
        Backend::Influx => InfluxStore::open(metrics)
            .await
            .map(|store| Arc::new(store.with_series_limits(limits)) as Arc<dyn crate::MetricStore>),
        Backend::Prometheus => PrometheusStore::open(metrics)
            .await
            .map(|store| Arc::new(store.with_series_limits(limits)) as Arc<dyn crate::MetricStore>),
        Backend::CloudWatch => CloudWatchStore::open(metrics)
            .await
            .map(|store| Arc::new(store.with_series_limits(limits)) as Arc<dyn crate::MetricStore>),
        _ => open_relational(metrics, limits).await.map(|s| s.metrics),
    };
    match samples {
        Ok(samples) => Ok(Stores::compose(samples, relational)),
        Err(error) => {
            let _ = relational.close().await;
            Err(error)
        }
    }
}

async fn open_relational(location: &str, limits: SeriesLimits) -> Result<Stores, StoreError> {
    Ok(match Backend::of(location) {
        Backend::Memory => Stores::of(Arc::new(MemoryStore::new().with_series_limits(limits))),
        Backend::Postgres => Stores::of(Arc::new(
            PostgresStore::open(location)
                .await?
                .with_series_limits(limits),
        )),
        Backend::Influx | Backend::Prometheus | Backend::CloudWatch => {
            return Err(StoreError::AlertsDbRequired {
                location: location.to_owned(),
            })
        }
        Backend::Sqlite => {
            let path = location.strip_prefix("sqlite:").unwrap_or(location);
            Stores::of(Arc::new(
                SqliteStore::open(path).await?.with_series_limits(limits),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{at, sample};
    use modelwatch_core::{SeriesKey, TimeRange};

    /// Samples in one SQLite file, rules and tokens in another: each file holds only its
    /// part, and closing closes both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn composed_stores_keep_samples_and_alerting_state_apart() {
        let dir = tempfile::tempdir().unwrap();
        let samples = dir.path().join("samples.db");
        let alerting = dir.path().join("alerts.db");
        let stores = open_split(
            samples.to_str().unwrap(),
            Some(alerting.to_str().unwrap()),
            SeriesLimits::default(),
        )
        .await
        .unwrap();
        stores
            .metrics
            .append_one(sample("fraud", "v1", "accuracy", 0.9, 1_000))
            .await
            .unwrap();
        stores
            .tokens
            .create_token(crate::NewToken {
                name: "ci".into(),
                scope: crate::Scope::Read,
                hash: crate::TokenHash::of_secret("secret"),
                created_at: at(1_000),
            })
            .await
            .unwrap();
        stores.close().await.unwrap();

        let only_samples = open(samples.to_str().unwrap()).await.unwrap();
        let only_alerting = open(alerting.to_str().unwrap()).await.unwrap();
        let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
        let read = |stores: &Stores| {
            let metrics = Arc::clone(&stores.metrics);
            let key = key.clone();
            async move {
                metrics
                    .range(&key, TimeRange::new(at(0), at(2_000)))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(read(&only_samples).await.len(), 1);
        assert!(read(&only_alerting).await.is_empty());
        assert!(only_samples.tokens.list_tokens().await.unwrap().is_empty());
        assert_eq!(only_alerting.tokens.list_tokens().await.unwrap().len(), 1);
        only_samples.close().await.unwrap();
        only_alerting.close().await.unwrap();
    }

    #[tokio::test]
    async fn one_location_twice_is_one_backend() {
        let stores = open_split("memory", Some("memory"), SeriesLimits::default())
            .await
            .unwrap();
        let metrics = Arc::as_ptr(&stores.metrics) as *const ();
        let alerts = Arc::as_ptr(&stores.alerts) as *const ();
        assert_eq!(metrics, alerts);
    }
}
