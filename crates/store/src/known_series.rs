//! The series an external metric store (InfluxDB, Prometheus) holds, as far as this
//! process knows: what [`SeriesLimits`] count there, since such a store cannot count its
//! series inside the write that would add one.

use std::collections::{BTreeMap, HashMap, HashSet};

use modelwatch_core::{ModelName, SeriesKey};

use crate::{SeriesLimits, StoreError};

#[derive(Debug, Default)]
pub(crate) struct KnownSeries {
    all: HashSet<SeriesKey>,
    by_model: HashMap<ModelName, usize>,
}

impl KnownSeries {
    /// The series listed by the store (each counted once).
    pub(crate) fn of(listed: impl IntoIterator<Item = SeriesKey>) -> KnownSeries {
        let mut known = KnownSeries::default();
        for key in listed {
            if !known.all.contains(&key) {
                *known.by_model.entry(key.model.clone()).or_default() += 1;
                known.all.insert(key);
            }
        }
        known
    }

    /// Refuses a batch whose new series would pass `limits`; counts them as known once
    /// it passes. `batch` may repeat a series.
    pub(crate) fn admit(
        &mut self,
        batch: impl IntoIterator<Item = SeriesKey>,
        limits: &SeriesLimits,
    ) -> Result<(), StoreError> {
        let mut new: HashSet<SeriesKey> = HashSet::new();
        let mut new_by_model: BTreeMap<ModelName, usize> = BTreeMap::new();
        for key in batch {
            if !self.all.contains(&key) && !new.contains(&key) {
                *new_by_model.entry(key.model.clone()).or_default() += 1;
                new.insert(key);
            }
        }
        limits.check(&new_by_model, self.all.len(), |model| {
            Ok(self.by_model.get(model).copied().unwrap_or(0))
        })?;
        for (model, added) in new_by_model {
            *self.by_model.entry(model).or_default() += added;
        }
        self.all.extend(new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_core::{Metric, Version};

    fn key(model: &str, metric: &str) -> SeriesKey {
        SeriesKey {
            model: ModelName::parse(model).unwrap(),
            version: Version::parse("v1").unwrap(),
            metric: Metric::parse(metric).unwrap(),
            dataset: None,
        }
    }

    #[test]
    fn a_batch_is_counted_once_per_new_series_and_refused_whole_over_a_limit() {
        let limits = SeriesLimits {
            new_per_batch: 10,
            per_model: 3,
            total: 10,
        };
        let mut known = KnownSeries::of([key("a", "accuracy"), key("a", "accuracy")]);
        known
            .admit(
                [key("a", "recall"), key("a", "recall"), key("a", "accuracy")],
                &limits,
            )
            .unwrap();
        assert_eq!(known.all.len(), 2);
        assert_eq!(known.by_model[&ModelName::parse("a").unwrap()], 2);
        // Two more of model a would make 4 > 3: refused, nothing counted.
        assert!(known
            .admit([key("a", "f1_score"), key("a", "precision")], &limits)
            .is_err());
        assert_eq!(known.all.len(), 2);
        known.admit([key("b", "f1_score")], &limits).unwrap();
        assert_eq!(known.all.len(), 3);
    }
}
