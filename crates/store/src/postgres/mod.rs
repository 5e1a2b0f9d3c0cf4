//! The PostgreSQL backend: for installations that want a server database, several
//! modelwatch servers on one database, or TimescaleDB.
//!
//! Driver: `tokio-postgres` with a `deadpool-postgres` pool. It is async end to end (the
//! store contract is), speaks the binary COPY protocol (`BinaryCopyInWriter`) that bulk
//! ingestion needs, and compiles in a fraction of sqlx's time on our two-core machines;
//! we need no compile-time query checking or other databases from it. No TLS: modelwatch
//! talks to PostgreSQL on loopback or a trusted network (a TLS connector can be added
//! to [`PostgresStore::open`] without touching anything else).
//!
//! Layout (see `schema.rs`): a `series` table naming each series once; its points in
//! `sample_chunks`, compressed per-series chunks keyed by `(series_id, last_ts)`, and in
//! `samples`, the uncompressed head keyed by `(series_id, ts)` (a hypertable when
//! TimescaleDB is available); see `chunks.rs`. Every range query, latest lookup and time
//! bucket is an index range scan of both.
//!
//! Several processes may share one database: writes are single transactions (a batch is
//! all or nothing; "later write wins" is `ON CONFLICT DO UPDATE`), and the only caches
//! here hold facts that never change once committed (series and dataset ids).

mod alerts;
mod chunks;
mod copy;
mod prediction_blocks;
mod predictions;
mod samples;
pub(crate) mod schema;
pub mod testing;
mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use modelwatch_core::{
    Bucket, Dataset, MetricDefinition, Point, Sample, SeriesKey, TimeRange, Timestamp,
};
use tokio_postgres::NoTls;

use crate::{MetricStore, SeriesFilter, SeriesInfo, SeriesLimits, StoreError};

/// Connections kept by one process; PostgreSQL's default `max_connections` is 100.
const POOL_SIZE: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a free pooled connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Whether a store location names a PostgreSQL database.
pub fn is_postgres_location(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A connection string, shown with its password masked (errors and logs must not leak it).
#[derive(Clone)]
pub struct Location {
    raw: String,
}

impl Location {
    pub fn new(raw: &str) -> Self {
        Location {
            raw: raw.to_owned(),
        }
    }

    /// The location with any password in the URL replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some(scheme_end) = self.raw.find("://") else {
            return self.raw.clone();
        };
        let authority_start = scheme_end + 3;
        let authority_end = self.raw[authority_start..]
            .find(['/', '?'])
            .map_or(self.raw.len(), |i| authority_start + i);
        let authority = &self.raw[authority_start..authority_end];
        let Some(at) = authority.rfind('@') else {
            return self.raw.clone();
        };
        let user_info = &authority[..at];
        match user_info.find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &self.raw[..authority_start],
                &user_info[..colon],
                &self.raw[authority_start + at..]
            ),
            None => self.raw.clone(),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Turns a driver error into a store error with PostgreSQL's own message (the driver's
/// `Display` says only "db error").
pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let mut message = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        return StoreError::Database(message);
    }
    match std::error::Error::source(&error) {
        Some(source) => StoreError::Database(format!("{error}: {source}")),
        None => StoreError::Database(error.to_string()),
    }
}

fn pool_error(location: &Location, error: PoolError) -> StoreError {
    match error {
        PoolError::Closed => StoreError::Closed,
        PoolError::Backend(error) => StoreError::Connect {
            location: location.redacted(),
            reason: pg_error(error).to_string(),
        },
        other => StoreError::Connect {
            location: location.redacted(),
            reason: other.to_string(),
        },
    }
}

/// Ids of series and data sets: assigned once, never changed or reused, so a cached id
/// is always right. Entries are added only after the transaction that saw them commits.
#[derive(Debug, Default)]
pub(crate) struct Catalogue {
    series: RwLock<HashMap<SeriesKey, i32>>,
    dataset_ids: RwLock<HashMap<Dataset, i32>>,
    dataset_names: RwLock<HashMap<i32, Dataset>>,
}

impl Catalogue {
    fn series_id(&self, key: &SeriesKey) -> Option<i32> {
        self.series.read().ok()?.get(key).copied()
    }

    fn dataset_id(&self, dataset: &Dataset) -> Option<i32> {
        self.dataset_ids.read().ok()?.get(dataset).copied()
    }

    fn dataset_name(&self, id: i32) -> Option<Dataset> {
        self.dataset_names.read().ok()?.get(&id).cloned()
    }

    fn learn_series(&self, learnt: impl IntoIterator<Item = (SeriesKey, i32)>) {
        if let Ok(mut series) = self.series.write() {
            series.extend(learnt);
        }
    }

    fn learn_datasets(&self, learnt: impl IntoIterator<Item = (Dataset, i32)>) {
        if let (Ok(mut ids), Ok(mut names)) = (self.dataset_ids.write(), self.dataset_names.write())
        {
            for (dataset, id) in learnt {
                names.insert(id, dataset.clone());
                ids.insert(dataset, id);
            }
        }
    }
}

/// The PostgreSQL store. Cheap to share: clone the `Arc` it is usually held in.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    location: Location,
    catalogue: Catalogue,
    head_growth: chunks::HeadGrowth,
    pub(crate) series_limits: SeriesLimits,
    /// Whether the server takes `COPY … FROM STDIN`; PGlite (PostgreSQL compiled to
    /// WebAssembly, served over the wire) loses the connection on it.
    copy_in: bool,
}

impl PostgresStore {
    /// Connects to the database a `postgres://` URL names and migrates it to the current
    /// schema. Fails (with the password masked) when the server cannot be reached.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        let location = Location::new(location);
        let mut config: tokio_postgres::Config =
            location.raw.parse().map_err(|e| StoreError::Connect {
                location: location.redacted(),
                reason: format!("not a valid connection string: {e}"),
            })?;
        if config.get_application_name().is_none() {
            config.application_name("modelwatch");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A pooled connection is checked by its next query; a broken one fails
                // that query and is dropped, which beats a round trip on every checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Connect {
                location: location.redacted(),
                reason: e.to_string(),
            })?;
        let store = PostgresStore {
            pool,
            location,
            catalogue: Catalogue::default(),
            head_growth: chunks::HeadGrowth::default(),
            series_limits: SeriesLimits::default(),
            copy_in: true,
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client, &store.location).await?;
        let copy_in = !schema::is_pglite(&client).await?;
        drop(client);
        Ok(PostgresStore { copy_in, ..store })
    }

    /// Refuses batches that would pass `limits` (default: [`SeriesLimits::default`]).
    pub fn with_series_limits(mut self, limits: SeriesLimits) -> Self {
        self.series_limits = limits;
        self
    }

    /// The location with the password masked.
    pub fn location(&self) -> String {
        self.location.redacted()
    }

    /// A pooled connection; other stores of this backend (alerts, tokens) share the pool.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(&self.location, e))
    }

    /// Whether the samples table is a TimescaleDB hypertable.
    pub async fn is_hypertable(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        schema::is_hypertable(&client).await
    }
}

#[async_trait]
impl MetricStore for PostgresStore {
    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        samples::append(self, samples).await
    }

    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError> {
        samples::range(self, series, range).await
    }

    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError> {
        samples::latest(self, series).await
    }

    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        samples::page_end(self, series, range, target).await
    }

    async fn count(&self, series: &SeriesKey, range: TimeRange) -> Result<u64, StoreError> {
        samples::count(self, series, range).await
    }

    async fn buckets(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        max_points: usize,
    ) -> Result<Vec<Bucket>, StoreError> {
        samples::buckets(self, series, range, max_points).await
    }

    async fn list_series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesInfo>, StoreError> {
        samples::list_series(self, filter).await
    }

    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<crate::SeriesWindow>, StoreError> {
        samples::aggregate_series(self, filter, range).await
    }

    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        samples::delete_before(self, cutoff).await
    }

    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError> {
        samples::define_metric(self, definition).await
    }

    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError> {
        samples::custom_metrics(&**self.client().await?).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.pool.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Location;

    #[test]
    fn password_is_masked_in_locations() {
        let masked = Location::new("postgres://alice:s3cret@db.example:5432/mw?sslmode=disable");
        assert_eq!(
            masked.redacted(),
            "postgres://alice:***@db.example:5432/mw?sslmode=disable"
        );
        assert_eq!(
            Location::new("postgres://alice@h/db").redacted(),
            "postgres://alice@h/db"
        );
        assert_eq!(
            Location::new("postgresql://h/db").redacted(),
            "postgresql://h/db"
        );
        assert!(!format!("{masked:?}").contains("s3cret"));
    }
}
