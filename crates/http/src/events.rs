//! The event hub behind `GET /api/v1/events` (server-sent events) and the evaluator's
//! "new samples arrived" signal.
//!
//! Ingestion only records, per series, what arrived since the last flush (count, last
//! value, min and max) under one short lock per request; a flusher task publishes one
//! `samples` event per touched series every [`COALESCE`], so a client sees a steady
//! trickle of events however fast samples arrive. Alert events are published as they
//! happen. Subscribers that fall behind lose the oldest events (and are told so) instead
//! of slowing ingestion down.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelwatch_core::{Dataset, Sample, SeriesKey, Timestamp};
use rustc_hash::FxHashMap;
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
    /// The dataset: a name, or `default`.
    pub dataset: String,
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
    pub alert: crate::wire::Alert,
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

impl SeriesUpdate {
    fn first(key: SeriesKey, value: f64) -> SeriesUpdate {
        SeriesUpdate {
            model: key.model.to_string(),
            version: key.version.to_string(),
            metric: key.metric.to_string(),
            dataset: Dataset::name_of(key.dataset.as_ref()).to_owned(),
            count: 0,
            last_value: value,
            last_timestamp: String::new(),
            min: value,
            max: value,
            key: Some(key),
            last_ms: i64::MIN,
        }
    }

    fn add(&mut self, value: f64, ms: i64) {
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        // Equal times: the later sample replaced the earlier one in the store too.
        if ms >= self.last_ms {
            self.last_ms = ms;
            self.last_value = value;
        }
    }

    fn merge(&mut self, later: &SeriesUpdate) {
        self.count += later.count;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        if later.last_ms >= self.last_ms {
            self.last_ms = later.last_ms;
            self.last_value = later.last_value;
        }
    }
}

/// What a batch brings to the event stream, summarised per series *before* the batch is
/// handed to the store: the samples then move into the store instead of being copied
/// for the hub, and the hub's lock is held once per series, not once per sample.
#[derive(Debug, Default)]
pub struct Arrivals(Vec<SeriesUpdate>);

impl Arrivals {
    pub fn of(samples: &[Sample]) -> Arrivals {
        type Names<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);
        let mut slots: FxHashMap<Names<'_>, usize> = FxHashMap::default();
        let mut updates: Vec<SeriesUpdate> = Vec::new();
        let mut previous: Option<(&Sample, usize)> = None;
        for sample in samples {
            let slot = match previous {
                // Batches are mostly grouped by series: skip the hashing then.
                Some((p, slot))
                    if p.metric == sample.metric
                        && p.version == sample.version
                        && p.model == sample.model
                        && p.dataset == sample.dataset =>
                {
                    slot
                }
                _ => *slots
                    .entry((
                        sample.model.as_str(),
                        sample.version.as_str(),
                        sample.metric.as_str(),
                        sample.dataset.as_ref().map(Dataset::as_str),
                    ))
                    .or_insert_with(|| {
                        updates.push(SeriesUpdate::first(sample.series(), sample.value));
                        updates.len() - 1
                    }),
            };
            previous = Some((sample, slot));
            updates[slot].add(sample.value, sample.timestamp.as_millis());
        }
        Arrivals(updates)
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
    pub fn samples_stored(&self, arrivals: Arrivals) {
        if arrivals.0.is_empty() {
            return;
        }
        let Ok(mut pending) = self.inner.pending.lock() else {
            return;
        };
        for update in arrivals.0 {
            let Some(key) = update.key.clone() else {
                continue;
            };
            let merged = match pending.entry(key) {
                Entry::Occupied(entry) => {
                    let merged = entry.into_mut();
                    merged.merge(&update);
                    merged
                }
                Entry::Vacant(entry) => entry.insert(update),
            };
            merged.last_timestamp = Timestamp::from_millis(merged.last_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
        }
        drop(pending);
        self.inner.wake.notify_one();
    }

    /// Publishes an alert event at once.
    pub fn alert(&self, change: impl Into<String>, alert: crate::wire::Alert) {
        let _ = self.inner.sender.send(Event::Alert(Arc::new(AlertEvent {
            change: change.into(),
            alert,
        })));
    }
}
