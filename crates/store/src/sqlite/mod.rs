//! The SQLite backend, modelwatch's embedded default: one file, WAL journal,
//! `synchronous = FULL`, versioned migrations, one writer thread with batched
//! transactions and a small pool of reader connections.
//!
//! Several processes may open the same file (a server and the CLI, say): SQLite's own
//! locking serialises their writers, and every cache here holds only facts that never
//! change once committed (series and dataset ids).

pub(crate) mod alerts;
mod head;
mod prediction_blocks;
mod predictions;
mod prune;
pub(crate) mod read;
pub(crate) mod schema;
mod tables;
mod tokens;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::stats::Chart;
use modelwatch_core::{MetricDefinition, Point, Sample, SeriesKey, TimeRange, Timestamp};
use rusqlite::{Connection, OpenFlags, Transaction};
use tokio::sync::oneshot;

use self::read::Catalogue;
use self::writer::{ClosureJob, WriteJob, WriterState};
use crate::decoded::DecodedRows;
use crate::{MetricStore, SeriesFilter, SeriesInfo, SeriesLimits, StoreError, PAGE_POINTS};

pub use self::writer::SEALED_CHUNK_LEN;

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_IDLE_READERS: usize = 8;

#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    jobs: Mutex<Option<Sender<Box<dyn WriteJob>>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
    series_limits: SeriesLimits,
    /// Rules and rule states' details as last read or written (see [`crate::decoded`]).
    decoded: Arc<DecodedRows>,
}

/// Reader connections not in use, and how many are in use.
///
/// A reader's page cache (up to `READER_CACHE_KIB`) is what a burst of long reads leaves
/// behind: kept by up to [`MAX_IDLE_READERS`] idle readers, it would hold memory for good
/// (issue 15). So a reader that goes back idle while others are still reading (a burst)
/// gives its whole cache back, and the last one out keeps only [`WARM_CACHE_KIB`] of it:
/// one client's requests one after another (the pool hands out the last reader back
/// first) read from a warm cache, and after any burst at most that much is kept.
#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    busy: AtomicUsize,
    catalogue: Catalogue,
}

/// Each reader's page cache, in KiB.
const READER_CACHE_KIB: u32 = 16 * 1024;
/// What the last reader to go idle keeps of its cache, in KiB.
const WARM_CACHE_KIB: u32 = 2 * 1024;
/// The writer's page cache, in KiB. An evaluation pass rewrites every rule state (a
/// detector's detail is about a kilobyte), so 10,000 states take some 12 MiB of pages:
/// with SQLite's default of 2 MiB the writer read them all again each pass and spilled
/// dirty pages to the WAL in the middle of the transaction. Only pages the writer
/// touches are held.
const WRITER_CACHE_KIB: u32 = 32 * 1024;

impl ReaderPool {
    fn with<T>(
        &self,
        query: impl FnOnce(&Connection, &Catalogue) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match pooled {
            Some(connection) => connection,
            None => open_connection(&self.path, true)?,
        };
        let busy = Busy::count(&self.busy);
        let result = query(&connection, &self.catalogue);
        let others_busy = busy.others();
        drop(busy);
        // Lowering cache_size frees the pages over the new size at once; putting it back
        // allocates nothing. A failure here only means the memory stays until the next
        // read. (In WAL mode a commit by the writer empties a reader's cache at its next
        // read anyway.)
        let _ = if others_busy {
            connection.execute_batch("PRAGMA shrink_memory;")
        } else {
            connection.execute_batch(&format!(
                "PRAGMA cache_size = -{WARM_CACHE_KIB}; PRAGMA cache_size = -{READER_CACHE_KIB};"
            ))
        };
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(connection);
            }
        }
        result
    }
}

/// One reader in use, counted until dropped (also should its query panic).
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn count(busy: &'a AtomicUsize) -> Busy<'a> {
        busy.fetch_add(1, Ordering::SeqCst);
        Busy(busy)
    }

    /// Whether other readers are in use.
    fn others(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 1
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn open_error(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(path, e))?;
    connection.set_prepared_statement_cache_capacity(64);
    if read_only {
        connection
            .execute_batch(&format!("PRAGMA cache_size = -{READER_CACHE_KIB};"))
            .map_err(|e| open_error(path, e))?;
    }
    Ok(connection)
}

impl SqliteStore {
    /// Opens (creating when missing) the database file and migrates it to the current schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let opened =
            tokio::task::spawn_blocking(move || Self::open_blocking(path, schema::LATEST_VERSION))
                .await
                .map_err(|e| StoreError::Database(e.to_string()))?;
        opened
    }

    fn open_blocking(path: PathBuf, schema_version: i64) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_error(&path, e))?;
        }
        let mut connection = open_connection(&path, false)?;
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
                     PRAGMA cache_size = -{WRITER_CACHE_KIB};"
            ))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(code, _)
                    if code.code == rusqlite::ErrorCode::NotADatabase =>
                {
                    StoreError::ForeignDatabase { path: path.clone() }
                }
                other => open_error(&path, other),
            })?;
        schema::migrate(&mut connection, &path, schema_version)?;
        let (sender, receiver) = mpsc::channel();
        let writer_thread = std::thread::Builder::new()
            .name("modelwatch-sqlite-writer".into())
            .spawn(move || writer::run(connection, receiver))
            .map_err(|e| open_error(&path, e))?;
        Ok(SqliteStore {
            readers: Arc::new(ReaderPool {
                path: path.clone(),
                idle: Mutex::new(Vec::new()),
                busy: AtomicUsize::new(0),
                catalogue: Catalogue::default(),
            }),
            path,
            jobs: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            series_limits: SeriesLimits::default(),
            decoded: Arc::default(),
        })
    }

    /// Refuses batches that would pass `limits` (default: [`SeriesLimits::default`]).
    pub fn with_series_limits(mut self, limits: SeriesLimits) -> Self {
        self.series_limits = limits;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` in the writer's next transaction and returns its result once committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriterState, &Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, committed) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(ClosureJob::new(work, reply));
        {
            let jobs = self.jobs.lock().map_err(|_| StoreError::Closed)?;
            let sender = jobs.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        committed.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Catalogue) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.with(query))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
    }
}

#[async_trait]
impl MetricStore for SqliteStore {
    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let limits = self.series_limits;
        self.write(move |state, transaction| writer::append(state, transaction, &samples, &limits))
            .await
    }

    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError> {
        let series = series.clone();
        self.read(move |connection, catalogue| catalogue.range(connection, &series, range))
            .await
    }

    async fn range_many(
        &self,
        requests: &[(SeriesKey, TimeRange)],
    ) -> Result<Vec<Vec<Point>>, StoreError> {
        let requests = requests.to_vec();
        self.read(move |connection, catalogue| catalogue.range_many(connection, &requests))
            .await
    }

    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        let series = series.clone();
        self.read(move |connection, catalogue| {
            catalogue.page_end(connection, &series, range, target)
        })
        .await
    }

    async fn chart(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        mut chart: Chart,
    ) -> Result<Chart, StoreError> {
        let mut next = range.start;
        while next < range.end {
            let (series, rest) = (series.clone(), TimeRange::new(next, range.end));
            let (fed, end) = self
                .read(move |connection, catalogue| {
                    let end =
                        catalogue.chart_page(connection, &series, rest, PAGE_POINTS, &mut chart)?;
                    Ok((chart, end))
                })
                .await?;
            chart = fed;
            // Always forward, whatever the page's end.
            next = if end <= next {
                range.end
            } else {
                end.min(range.end)
            };
        }
        Ok(chart)
    }

    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError> {
        let series = series.clone();
        self.read(move |connection, catalogue| catalogue.latest(connection, &series))
            .await
    }

    async fn latest_many(&self, series: &[SeriesKey]) -> Result<Vec<Option<Point>>, StoreError> {
        let keys = series.to_vec();
        self.read(move |connection, catalogue| catalogue.latest_many(connection, &keys))
            .await
    }

    async fn list_series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesInfo>, StoreError> {
        let filter = filter.clone();
        self.read(move |connection, _| read::list_series(connection, &filter))
            .await
    }

    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<crate::SeriesWindow>, StoreError> {
        let filter = filter.clone();
        self.read(move |connection, _| read::aggregate_series(connection, &filter, range))
            .await
    }

    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        prune::delete_samples_before(self, cutoff).await
    }

    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError> {
        self.write(move |_, transaction| writer::define_metric(transaction, &definition))
            .await
    }

    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError> {
        self.read(|connection, _| tables::load_custom_metrics(connection))
            .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Dropping the sender lets the writer drain what is queued, commit, and stop.
        drop(self.jobs.lock().map_err(|_| StoreError::Closed)?.take());
        let thread = self
            .writer_thread
            .lock()
            .map_err(|_| StoreError::Closed)?
            .take();
        if let Some(thread) = thread {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| StoreError::Database(e.to_string()))?
                .map_err(|_| StoreError::Database("the writer thread panicked".into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
