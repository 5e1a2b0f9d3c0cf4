//! The event hub: what the event stream (`GET /api/v1/events`) shows and the evaluation
//! loop's "new samples arrived" signal, in domain types (the HTTP face maps them to its
//! wire types).
//!
//! Ingestion only records, per series, what arrived since the last flush (count, last
//! value, min and max) under one short lock per request; a flusher task publishes one
//! [`Event::Samples`] per touched series every [`COALESCE`], so a subscriber sees a steady
//! trickle of events however fast samples arrive. Alert events are published as they
//! happen. Subscribers that fall behind lose the oldest events (and are told so by the
//! broadcast channel) instead of slowing ingestion down.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelwatch_core::alerting::Alert;
use modelwatch_core::{Dataset, Sample, SeriesKey, Timestamp};
use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, Notify};

/// How long updates of one series are gathered into one event.
pub const COALESCE: Duration = Duration::from_millis(200);
const CHANNEL_CAPACITY: usize = 4096;

/// New samples of one series since the previous event for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesUpdate {
    pub key: SeriesKey,
    /// How many samples arrived.
    pub count: u64,
    /// The value of the newest sample (of the later one written, at equal times).
    pub last_value: f64,
    pub last_timestamp: Timestamp,
    pub min: f64,
    pub max: f64,
}

impl SeriesUpdate {
    fn first(sample: &Sample) -> SeriesUpdate {
        SeriesUpdate {
            key: sample.series(),
            count: 1,
            last_value: sample.value,
            last_timestamp: sample.timestamp,
            min: sample.value,
            max: sample.value,
        }
    }

    fn add(&mut self, value: f64, at: Timestamp) {
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        // Equal times: the later sample replaced the earlier one in the store too.
        if at >= self.last_timestamp {
            self.last_timestamp = at;
            self.last_value = value;
        }
    }

    fn merge(&mut self, later: &SeriesUpdate) {
        self.count += later.count;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        if later.last_timestamp >= self.last_timestamp {
            self.last_timestamp = later.last_timestamp;
            self.last_value = later.last_value;
        }
    }
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertChange {
    /// An evaluation pass opened it.
    Fired,
    /// A pass counted another breach (occurrences, worst value, a severity rise).
    Updated,
    Acknowledged,
    /// Resolved, by a person or automatically by a pass.
    Resolved,
}

impl AlertChange {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertChange::Fired => "fired",
            AlertChange::Updated => "updated",
            AlertChange::Acknowledged => "acknowledged",
            AlertChange::Resolved => "resolved",
        }
    }
}

/// An alert fired or changed state; `alert` is the alert as it now stands.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub change: AlertChange,
    pub alert: Alert,
}

/// What the hub publishes.
#[derive(Debug, Clone)]
pub enum Event {
    Samples(Arc<SeriesUpdate>),
    Alert(Arc<AlertEvent>),
}

impl Event {
    /// The event's name on the event stream.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Samples(_) => "samples",
            Event::Alert(event) if event.change == AlertChange::Fired => "alert_fired",
            Event::Alert(_) => "alert_changed",
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
            let same_series = previous.filter(|(p, _)| {
                // Batches are mostly grouped by series: skip the hashing then.
                p.metric == sample.metric
                    && p.version == sample.version
                    && p.model == sample.model
                    && p.dataset == sample.dataset
            });
            let slot = match same_series {
                Some((_, slot)) => {
                    updates[slot].add(sample.value, sample.timestamp);
                    slot
                }
                None => match slots.entry((
                    sample.model.as_str(),
                    sample.version.as_str(),
                    sample.metric.as_str(),
                    sample.dataset.as_ref().map(Dataset::as_str),
                )) {
                    Entry::Occupied(slot) => {
                        updates[*slot.get()].add(sample.value, sample.timestamp);
                        *slot.get()
                    }
                    Entry::Vacant(slot) => {
                        updates.push(SeriesUpdate::first(sample));
                        *slot.insert(updates.len() - 1)
                    }
                },
            };
            previous = Some((sample, slot));
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
            match pending.entry(update.key.clone()) {
                Entry::Occupied(entry) => entry.into_mut().merge(&update),
                Entry::Vacant(entry) => {
                    entry.insert(update);
                }
            }
        }
        drop(pending);
        self.inner.wake.notify_one();
    }

    /// Publishes an alert event at once.
    pub fn alert(&self, change: AlertChange, alert: Alert) {
        let _ = self
            .inner
            .sender
            .send(Event::Alert(Arc::new(AlertEvent { change, alert })));
    }
}

#[cfg(test)]
mod tests {
    use modelwatch_core::{Metric, ModelName, Version};

    use super::*;

    fn sample(metric: &str, ms: i64, value: f64) -> Sample {
        Sample {
            model: ModelName::parse("fraud").expect("model"),
            version: Version::parse("v1").expect("version"),
            metric: metric.parse::<Metric>().expect("metric"),
            value,
            timestamp: Timestamp::from_millis(ms).expect("time"),
            dataset: None,
        }
    }

    #[test]
    fn arrivals_summarise_each_series_with_its_newest_value_and_range() {
        let samples = [
            sample("accuracy", 2, 0.9),
            sample("accuracy", 1, 0.5),
            sample("latency", 1, 30.0),
            sample("accuracy", 2, 0.8),
        ];
        let Arrivals(updates) = Arrivals::of(&samples);
        assert_eq!(updates.len(), 2);
        let accuracy = &updates[0];
        assert_eq!(accuracy.count, 3);
        assert_eq!((accuracy.min, accuracy.max), (0.5, 0.9));
        // Equal times: the later sample wins, as in the store.
        assert_eq!(accuracy.last_value, 0.8);
        assert_eq!(accuracy.last_timestamp.as_millis(), 2);
        assert_eq!(updates[1].count, 1);
    }
}
