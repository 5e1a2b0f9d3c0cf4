//! The in-memory backend: for tests and ephemeral use. Nothing survives the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use async_trait::async_trait;
use modelwatch_core::{
    MetricDefinition, ModelName, Point, Sample, SeriesKey, TimeRange, Timestamp, WindowStats,
};

use crate::tokens::{NewToken, TokenInfo, TokenStore};
use crate::{
    validate_batch, MetricStore, SeriesFilter, SeriesInfo, SeriesLimits, SeriesWindow, StoreError,
};

/// A series' values by time (its dataset is in its key).
type Series = BTreeMap<Timestamp, f64>;

#[derive(Debug, Default)]
pub struct MemoryStore {
    series: RwLock<BTreeMap<SeriesKey, Series>>,
    custom_metrics: RwLock<HashMap<String, MetricDefinition>>,
    /// Rules, alerts, silences and the outbox (see `alerts/memory.rs`).
    pub(crate) alerting: std::sync::Mutex<crate::alerts::memory::Tables>,
    tokens: RwLock<Vec<TokenInfo>>,
    /// Predictions, labels and prediction configs (see `predictions/memory.rs`).
    pub(crate) predictions: std::sync::Mutex<crate::predictions::memory::Tables>,
    series_limits: SeriesLimits,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses batches that would pass `limits` (default: [`SeriesLimits::default`]).
    pub fn with_series_limits(mut self, limits: SeriesLimits) -> Self {
        self.series_limits = limits;
        self
    }

    fn custom_definitions(&self) -> Vec<MetricDefinition> {
        self.custom_metrics
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Database("a thread panicked while holding the in-memory store".into())
}

#[async_trait]
impl MetricStore for MemoryStore {
    async fn append(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        validate_batch(&samples, &self.custom_definitions())?;
        let mut all = self.series.write().map_err(poisoned)?;
        let mut new: BTreeMap<ModelName, BTreeSet<SeriesKey>> = BTreeMap::new();
        for sample in &samples {
            let key = sample.series();
            if !all.contains_key(&key) {
                new.entry(key.model.clone()).or_default().insert(key);
            }
        }
        let new_by_model = new
            .iter()
            .map(|(m, keys)| (m.clone(), keys.len()))
            .collect();
        self.series_limits
            .check(&new_by_model, all.len(), |model| {
                Ok(all.keys().filter(|k| k.model == *model).count())
            })?;
        for sample in samples {
            all.entry(sample.series())
                .or_default()
                .insert(sample.timestamp, sample.value);
        }
        Ok(())
    }

    async fn range(&self, series: &SeriesKey, range: TimeRange) -> Result<Vec<Point>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.series.read().map_err(poisoned)?;
        Ok(all
            .get(series)
            .map(|points| {
                points
                    .range(range.start..range.end)
                    .map(|(t, value)| Point {
                        timestamp: *t,
                        value: *value,
                        dataset: series.dataset.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn page_end(
        &self,
        series: &SeriesKey,
        range: TimeRange,
        target: usize,
    ) -> Result<Timestamp, StoreError> {
        if range.is_empty() {
            return Ok(range.end);
        }
        let all = self.series.read().map_err(poisoned)?;
        Ok(all
            .get(series)
            .and_then(|points| {
                points
                    .range(range.start..range.end)
                    .nth(target.max(1))
                    .map(|(t, _)| *t)
            })
            .unwrap_or(range.end))
    }

    async fn latest(&self, series: &SeriesKey) -> Result<Option<Point>, StoreError> {
        let all = self.series.read().map_err(poisoned)?;
        Ok(all.get(series).and_then(|points| {
            points.last_key_value().map(|(t, value)| Point {
                timestamp: *t,
                value: *value,
                dataset: series.dataset.clone(),
            })
        }))
    }

    async fn list_series(&self, filter: &SeriesFilter) -> Result<Vec<SeriesInfo>, StoreError> {
        let all = self.series.read().map_err(poisoned)?;
        Ok(all
            .iter()
            .filter(|(key, _)| filter.matches(key))
            .filter_map(|(key, points)| {
                Some(SeriesInfo {
                    key: key.clone(),
                    first_timestamp: *points.first_key_value()?.0,
                    last_timestamp: *points.last_key_value()?.0,
                })
            })
            .collect())
    }

    async fn aggregate_series(
        &self,
        filter: &SeriesFilter,
        range: TimeRange,
    ) -> Result<Vec<SeriesWindow>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let all = self.series.read().map_err(poisoned)?;
        Ok(all
            .iter()
            .filter(|(key, _)| filter.matches(key))
            .filter_map(|(key, points)| {
                let mut window = points.range(range.start..range.end);
                let (t, value) = window.next()?;
                let mut stats = WindowStats::of(*t, *value);
                for (t, value) in window {
                    stats.push(*t, *value);
                }
                Some(SeriesWindow {
                    key: key.clone(),
                    stats,
                })
            })
            .collect())
    }

    async fn delete_samples_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let mut all = self.series.write().map_err(poisoned)?;
        let mut removed = 0u64;
        for points in all.values_mut() {
            let kept = points.split_off(&cutoff);
            removed += points.len() as u64;
            *points = kept;
        }
        // A series without points is not listed (as in the SQL backends, where its
        // catalogue row stays but has no samples to show).
        all.retain(|_, points| !points.is_empty());
        Ok(removed)
    }

    async fn define_metric(&self, definition: MetricDefinition) -> Result<(), StoreError> {
        let definition =
            MetricDefinition::custom(definition.metric, definition.direction, definition.range)
                .map_err(StoreError::Invalid)?;
        self.custom_metrics
            .write()
            .map_err(poisoned)?
            .insert(definition.metric.as_str().to_owned(), definition);
        Ok(())
    }

    async fn custom_metrics(&self) -> Result<Vec<MetricDefinition>, StoreError> {
        let mut definitions = self.custom_definitions();
        definitions.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(definitions)
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_token(&self, token: NewToken) -> Result<TokenInfo, StoreError> {
        let mut tokens = self.tokens.write().map_err(poisoned)?;
        if tokens.iter().any(|t| t.hash == token.hash) {
            return Err(StoreError::Database("a token with this hash exists".into()));
        }
        let info = TokenInfo {
            id: tokens.last().map_or(1, |t| t.id + 1),
            name: token.name,
            scope: token.scope,
            hash: token.hash,
            created_at: token.created_at,
            revoked_at: None,
        };
        tokens.push(info.clone());
        Ok(info)
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self.tokens.read().map_err(poisoned)?.clone())
    }

    async fn import_tokens(&self, imported: Vec<TokenInfo>) -> Result<(), StoreError> {
        let mut tokens = self.tokens.write().map_err(poisoned)?;
        for token in imported {
            if !tokens
                .iter()
                .any(|t| t.id == token.id || t.hash == token.hash)
            {
                tokens.push(token);
            }
        }
        // Listed by id, and new ids continue after the greatest.
        tokens.sort_by_key(|t| t.id);
        Ok(())
    }

    async fn revoke_token(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let mut tokens = self.tokens.write().map_err(poisoned)?;
        match tokens.iter_mut().find(|t| t.id == id && t.is_active()) {
            Some(token) => {
                token.revoked_at = Some(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
