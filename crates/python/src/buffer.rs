//! The embedded mode's write-behind buffer: `record_metric` validates its sample and
//! queues it (a few microseconds, no disk wait); a background task appends what is queued
//! every [`FLUSH_INTERVAL`] or as soon as [`BATCH`] samples wait, in one durable batch
//! (the store's group commit); `flush()` — and every read, so a handle reads its own
//! writes — appends what is queued and returns once it is durable.
//!
//! Order is kept: whoever appends holds the write lock while taking the queue, so a later
//! sample at the same timestamp still replaces an earlier one. A batch the store refuses
//! because of one sample (a custom metric's declared range, checked by the store) is
//! written without it and the refusal is kept; any other failure puts the batch back at
//! the head of the queue. Failures of background writes are raised by the next call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelwatch_core::Sample;
use modelwatch_store::{MetricStore, StoreError};

/// How long a sample may wait before a background append.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Queued samples that wake the background task at once.
pub const BATCH: usize = 10_000;
/// Queued samples beyond which `record` appends in the caller (back-pressure when the
/// store is slower than the producer).
pub const MAX_QUEUED: usize = 1_000_000;

#[derive(Debug, Default)]
pub struct WriteBehind {
    queue: Mutex<Vec<Sample>>,
    /// Failures of background appends not reported yet.
    failures: Mutex<Vec<String>>,
    wake: tokio::sync::Notify,
    write: tokio::sync::Mutex<()>,
}

/// What a push asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue is over [`MAX_QUEUED`]: flush before returning.
    FlushNow,
}

impl WriteBehind {
    pub fn push(&self, samples: impl IntoIterator<Item = Sample>) -> Pushed {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.extend(samples);
        let queued = queue.len();
        drop(queue);
        if queued >= MAX_QUEUED {
            Pushed::FlushNow
        } else {
            if queued >= BATCH {
                self.wake.notify_one();
            }
            Pushed::Queued
        }
    }

    /// Failures of background appends since the last call, oldest first.
    pub fn take_failures(&self) -> Vec<String> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Appends everything queued; returns once it is durable. Refused samples are
    /// returned as errors (the rest is written); a store failure leaves the batch queued.
    pub async fn flush(&self, store: &dyn MetricStore) -> Result<Vec<String>, StoreError> {
        self.flush_then(store, Vec::new()).await
    }

    /// Appends everything queued, then `more`, in that order (a later sample at the same
    /// timestamp wins); returns once both are durable.
    pub async fn flush_then(
        &self,
        store: &dyn MetricStore,
        more: Vec<Sample>,
    ) -> Result<Vec<String>, StoreError> {
        let _writing = self.write.lock().await;
        let mut queued = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        let mut more = more;
        let mut refused = match check_custom(store, &mut queued).await {
            Ok(refused) => refused,
            Err(error) => {
                self.requeue(queued);
                return Err(error);
            }
        };
        refused.extend(check_custom(store, &mut more).await?);
        // Only the queued part goes back on failure: the caller of `more` gets the error.
        let requeue = if queued.is_empty() {
            Vec::new()
        } else {
            queued.clone()
        };
        let mut batch = queued;
        batch.append(&mut more);
        if batch.is_empty() {
            return Ok(refused);
        }
        if let Err(error) = store.append(batch).await {
            self.requeue(requeue);
            return Err(error);
        }
        Ok(refused)
    }

    /// Puts samples back at the head of the queue, before any queued since.
    fn requeue(&self, mut samples: Vec<Sample>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        samples.append(&mut queue);
        *queue = samples;
    }

    /// The background task: appends on a wake-up or every [`FLUSH_INTERVAL`] until
    /// `stop` is notified.
    pub async fn run(self: Arc<Self>, store: Arc<dyn MetricStore>, stop: Arc<tokio::sync::Notify>) {
        loop {
            let stopping = tokio::select! {
                () = self.wake.notified() => false,
                () = tokio::time::sleep(FLUSH_INTERVAL) => false,
                () = stop.notified() => true,
            };
            if self.queued() > 0 {
                let failures = match self.flush(&*store).await {
                    Ok(refused) => refused,
                    Err(error) => vec![format!("writing queued samples: {error}")],
                };
                if !failures.is_empty() {
                    self.failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(failures);
                }
            }
            if stopping {
                return;
            }
        }
    }
}

/// Takes out of `batch` the samples of custom metrics outside their declared range (the
/// store would refuse the whole batch for one), returning why each was refused.
async fn check_custom(
    store: &dyn MetricStore,
    batch: &mut Vec<Sample>,
) -> Result<Vec<String>, StoreError> {
    let mut definitions = Vec::new();
    for sample in batch.iter().filter(|s| s.metric.is_custom()) {
        if !definitions.iter().any(|(m, _)| *m == sample.metric) {
            definitions.push((
                sample.metric.clone(),
                store.definition(&sample.metric).await?,
            ));
        }
    }
    if definitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut refused = Vec::new();
    batch.retain(|sample| {
        let Some((_, definition)) = definitions.iter().find(|(m, _)| *m == sample.metric) else {
            return true;
        };
        match sample.check(definition) {
            Ok(()) => true,
            Err(error) => {
                refused.push(format!(
                    "{} at {}: {error}",
                    sample.series(),
                    sample.timestamp
                ));
                false
            }
        }
    });
    Ok(refused)
}
