//! The event hub behind `GET /api/v1/events` (server-sent events) and the evaluator's
//! "new samples arrived" signal.
//!
//! Ingestion only records, per series, what arrived since the last flush (count, last
//! value, min and max) under one short lock per request; a flusher task publishes one
//! `samples` event per touched series every [`COALESCE`], so a client sees a steady
//! trickle of events however fast samples arrive. Alert events are published as they
//! happen. Subscribers that fall behind lose the oldest events (and are told so) instead
//! of slowing ingestion down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelwatch_core::{Sample, SeriesKey, Timestamp};
use serde::Serialize;
use tokio::sync::{broadcast, Notify};
use utoipa::ToSchema;

/// How long updates of one series are gathered into one event.
pub const COALESCE: Duration = Duration::from_millis(200);
const CHANNEL_CAPACITY: usize = 4096;

/// New samples of one series since the previous event for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesUpdate {
    pub model: String,
    pub version: String,
    pub metric: String,
    /// How many samples arrived.
    pub count: u64,
    pub last_value: f64,
    /// RFC 3339, UTC.
    pub last_timestamp: String,
    pub min: f64,
    pub max: f64,
    #[serde(skip)]
    pub key: Option<SeriesKey>,
    #[serde(skip)]
    last_ms: i64,
}

/// An alert fired or changed state; `alert` is the alert as `GET /api/v1/alerts/{id}`
/// returns it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertEvent {
    /// fired, acknowledged, resolved, …
    pub change: String,
    #[schema(value_type = Object)]
    pub alert: serde_json::Value,
}

/// What the hub publishes.
#[derive(Debug, Clone)]
pub enum Event {
    Samples(Arc<SeriesUpdate>),
    Alert(Arc<AlertEvent>),
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Samples(_) => "samples",
            Event::Alert(event) if event.change == "fired" => "alert_fired",
            Event::Alert(_) => "alert_changed",
        }
    }
}

#[derive(Debug)]
struct Inner {
    pending: Mutex<HashMap<SeriesKey, SeriesUpdate>>,
    wake: Notify,
    sender: broadcast::Sender<Event>,
}

/// Cheap to clone; all clones share one hub.
#[derive(Debug, Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

impl EventHub {
    /// Creates the hub and starts its flusher on the current tokio runtime; the flusher
    /// stops when the last clone of the hub is dropped.
    pub fn start() -> EventHub {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let inner = Arc::new(Inner {
            pending: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            sender,
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    // Wakes up every second to notice when the hub is dropped.
                    let woken = tokio::time::timeout(Duration::from_secs(1), inner.wake.notified())
                        .await
                        .is_ok();
                    drop(inner);
                    if !woken {
                        continue;
                    }
                }
                tokio::time::sleep(COALESCE).await;
                let Some(inner) = weak.upgrade() else { return };
                let drained: Vec<SeriesUpdate> = match inner.pending.lock() {
                    Ok(mut pending) => pending.drain().map(|(_, update)| update).collect(),
                    Err(_) => return,
                };
                for update in drained {
                    // No subscriber is fine: events are not stored.
                    let _ = inner.sender.send(Event::Samples(Arc::new(update)));
                }
            }
        });
        EventHub { inner }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.sender.subscribe()
    }

    /// Records committed samples for the next flush.
    pub fn samples_stored(&self, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        let Ok(mut pending) = self.inner.pending.lock() else {
            return;
        };
        let mut previous: Option<&Sample> = None;
        let mut current: Option<&mut SeriesUpdate> = None;
        for sample in samples {
            let same = previous.is_some_and(|p| {
                p.model == sample.model && p.version == sample.version && p.metric == sample.metric
            });
            if !same {
                let key = sample.series();
                current = Some(pending.entry(key.clone()).or_insert_with(|| SeriesUpdate {
                    model: key.model.to_string(),
                    version: key.version.to_string(),
                    metric: key.metric.to_string(),
                    count: 0,
                    last_value: sample.value,
                    last_timestamp: String::new(),
                    min: sample.value,
                    max: sample.value,
                    key: Some(key),
                    last_ms: i64::MIN,
                }));
                // Re-borrowing through the map each time a series changes keeps this
                // simple; batches are mostly grouped by series.
            }
            previous = Some(sample);
            if let Some(update) = current.as_deref_mut() {
                update.count += 1;
                update.min = update.min.min(sample.value);
                update.max = update.max.max(sample.value);
                let ms = sample.timestamp.as_millis();
                if ms >= update.last_ms {
                    update.last_ms = ms;
                    update.last_value = sample.value;
                }
            }
        }
        for update in pending.values_mut() {
            if update.last_timestamp.is_empty() || update.count > 0 {
                update.last_timestamp = Timestamp::from_millis(update.last_ms)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
            }
        }
        drop(pending);
        self.inner.wake.notify_one();
    }

    /// Publishes an alert event at once.
    pub fn alert(&self, change: impl Into<String>, alert: serde_json::Value) {
        let _ = self.inner.sender.send(Event::Alert(Arc::new(AlertEvent {
            change: change.into(),
            alert,
        })));
    }
}
