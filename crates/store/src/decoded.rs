//! JSON columns kept decoded between reads, so an evaluator reading every rule and rule
//! state on each pass parses only what changed since it last did.
//!
//! An entry is the text of a column and the value it decodes to, under the row's key.
//! It is used only when the column's text now is exactly that text, so a row another
//! process wrote, or one whose write was rolled back, is decoded afresh: the cache can
//! make a read cheaper, never different. A write records the text it wrote with the
//! value it came from (the stores round-trip their JSON exactly: floats with
//! `float_roundtrip`, times to the millisecond), so the next read of an unchanged row
//! does not parse what was just serialised.

use std::collections::HashMap;
use std::sync::Mutex;

use modelwatch_core::alerting::StateDetail;

use crate::alerts::records::StoredRule;
use crate::StoreError;

/// Decoded values of one kind of column, by row key.
#[derive(Debug)]
pub(crate) struct Decoded<T> {
    entries: Mutex<HashMap<String, (String, T)>>,
}

impl<T> Default for Decoded<T> {
    fn default() -> Self {
        Decoded {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Decoded<T> {
    /// The value `text` decodes to (by `read`), from the entry of `key` when it holds
    /// that text.
    pub(crate) fn decode(
        &self,
        key: &str,
        text: &str,
        read: impl FnOnce(&str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Ok(entries) = self.entries.lock() {
            if let Some((known, value)) = entries.get(key) {
                if known == text {
                    return Ok(value.clone());
                }
            }
        }
        let value = read(text)?;
        self.record(key.to_owned(), text.to_owned(), value.clone());
        Ok(value)
    }

    /// Records that the row `key` now holds `text`, the JSON of `value`.
    pub(crate) fn record(&self, key: String, text: String, value: T) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (text, value));
        }
    }

    /// Forgets the rows whose key starts with `prefix` (a deleted rule's).
    pub(crate) fn forget(&self, prefix: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|key, _| !key.starts_with(prefix));
        }
    }
}

/// What a store keeps decoded: rule bodies by rule id, rule states' details by
/// [`state_key`].
#[derive(Debug, Default)]
pub(crate) struct DecodedRows {
    pub(crate) rules: Decoded<StoredRule>,
    pub(crate) details: Decoded<StateDetail>,
}

/// The key of a rule state's row in [`DecodedRows::details`] (rule, version, dataset as
/// stored, empty for the default one); [`rule_prefix`] of its rule starts it.
pub(crate) fn state_key(rule_id: &str, version: &str, dataset: &str) -> String {
    format!("{}{version}\u{0}{dataset}", rule_prefix(rule_id))
}

/// What every key of `rule_id`'s states starts with.
pub(crate) fn rule_prefix(rule_id: &str) -> String {
    format!("{rule_id}\u{0}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::from_json;

    #[test]
    fn a_value_is_reused_only_for_the_exact_text_it_came_from() {
        let cache: Decoded<Vec<f64>> = Decoded::default();
        assert_eq!(cache.decode("a", "[1.5]", from_json).ok(), Some(vec![1.5]));
        // Recorded under a text the row does not hold: decoded from the row's text.
        cache.record("a".into(), "[2.5]".into(), vec![99.0]);
        assert_eq!(cache.decode("a", "[3.5]", from_json).ok(), Some(vec![3.5]));
        cache.record("a".into(), "[4.5]".into(), vec![4.5]);
        assert_eq!(cache.decode("a", "[4.5]", from_json).ok(), Some(vec![4.5]));
        assert!(cache.decode("a", "not json", from_json).is_err());
    }

    #[test]
    fn a_deleted_rules_states_are_forgotten() {
        let cache: Decoded<Vec<f64>> = Decoded::default();
        cache.record(state_key("r1", "v1", ""), "[1]".into(), vec![1.0]);
        cache.record(state_key("r1", "v1", "canary"), "[3]".into(), vec![3.0]);
        cache.record(state_key("r10", "v1", ""), "[2]".into(), vec![2.0]);
        cache.forget(&rule_prefix("r1"));
        let entries = cache.entries.lock().map(|e| e.len()).unwrap_or(0);
        assert_eq!(entries, 1);
    }
}
