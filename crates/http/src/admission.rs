//! Admission of expensive work (issue 15: 64 concurrent downsamples of a 1.3 M-point
//! series took the server to 4.2 GB and never answered 429).
//!
//! Requests that read long ranges — series points, history, comparisons, degradation
//! checks, backtests — enter through [`Admission::enter`]: at most `concurrent` run at
//! once, up to `queued` more wait for a turn (bounded by the request time-out, which
//! answers 503), and anything beyond is answered 429 with `Retry-After` at once. A
//! waiting request holds no memory; a running one reads a page at a time
//! (`modelwatch_store::Pages`, or `MetricStore::chart` for a chart, which keeps only its
//! buckets), so what the server holds is bounded by `concurrent`.
//! A request dropped while it waits or runs — its client gone, its time-out passed —
//! gives its turn back and stops at its next page.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult};

/// How much expensive work runs and waits at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Expensive requests running at once.
    pub concurrent: usize,
    /// Expensive requests waiting for a turn; one more is answered 429.
    pub queued: usize,
}

impl Default for ReadLimits {
    /// As many running as the machine has cores (at least 2), eight times that waiting.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let concurrent = cores.max(2);
        ReadLimits {
            concurrent,
            queued: 8 * concurrent,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Admission {
    turns: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: ReadLimits,
}

/// A turn to run expensive work; given back when dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    _permit: OwnedSemaphorePermit,
}

/// Counts a request as waiting until it is dropped (admitted, or gone).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub(crate) fn new(limits: ReadLimits) -> Self {
        Admission {
            turns: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            limits,
        }
    }

    /// A turn now, or after those waiting before; [`ApiError::TooManyRequests`] when the
    /// queue is full.
    pub(crate) async fn enter(&self) -> ApiResult<Turn> {
        if let Ok(permit) = Arc::clone(&self.turns).try_acquire_owned() {
            return Ok(Turn { _permit: permit });
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.limits.queued {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::TooManyRequests(format!(
                "{} expensive reads are running and {} waiting (max_expensive_reads, \
                 max_queued_reads); try again in a moment",
                self.limits.concurrent, self.limits.queued
            )));
        }
        let _waiting = Waiting(&self.waiting);
        let permit = Arc::clone(&self.turns)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
        Ok(Turn { _permit: permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_some_queues_some_and_refuses_the_rest_until_turns_come_back() {
        let admission = Arc::new(Admission::new(ReadLimits {
            concurrent: 2,
            queued: 1,
        }));
        let first = admission.enter().await.unwrap();
        let _second = admission.enter().await.unwrap();
        let queued = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.enter().await.map(|_| ()) }
        });
        while admission.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            admission.enter().await,
            Err(ApiError::TooManyRequests(_))
        ));
        drop(first);
        queued.await.unwrap().unwrap();
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0);
        // A waiter that gives up gives its place back.
        let _third = admission.enter().await.unwrap();
        let gone = tokio::time::timeout(std::time::Duration::from_millis(10), admission.enter());
        assert!(gone.await.is_err());
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0);
    }
}
