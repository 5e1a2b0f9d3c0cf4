//! The records the SQL stores keep for the core's types, where what is stored is not
//! simply the type's own serde: a rule's `body` is a [`StoredRule`].
//!
//! The record reads back every rule ever stored: rules written with the old API's names
//! (`rule_id`, `rule_name`, `model_name`, `model_version`, `metric_type`) and rules stored
//! before rules had a dataset (they watch the default one). It writes the current names,
//! the JSON the core's `Rule` itself gives, so a body written by this version reads the
//! same with the ones before it.

use modelwatch_core::alerting::{AntiFlap, Condition, Rule, RuleId, Severity};
use modelwatch_core::sample::scope_serde;
use modelwatch_core::{DatasetScope, MetricScope, ModelName, Timestamp, Version};
use serde::{Deserialize, Serialize};

use super::{from_json, to_json};
use crate::StoreError;

/// A rule as the `alert_rules.body` column holds it. The mappings to and from [`Rule`]
/// name every field on both sides, so a field added to the rule and not here does not
/// compile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRule {
    #[serde(alias = "rule_id")]
    id: RuleId,
    #[serde(alias = "rule_name")]
    name: String,
    #[serde(alias = "model_name")]
    model: ModelName,
    #[serde(alias = "model_version")]
    version: Option<Version>,
    #[serde(alias = "metric_type")]
    metric: MetricScope,
    #[serde(default = "scope_serde::default_dataset", with = "scope_serde")]
    dataset: DatasetScope,
    severity: Severity,
    enabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    cooldown_minutes: u32,
    notify_channels: Vec<String>,
    #[serde(flatten)]
    condition: Condition,
    #[serde(flatten)]
    anti_flap: AntiFlap,
}

impl From<&Rule> for StoredRule {
    fn from(rule: &Rule) -> Self {
        let Rule {
            id,
            name,
            model,
            version,
            metric,
            dataset,
            severity,
            enabled,
            created_at,
            updated_at,
            cooldown_minutes,
            notify_channels,
            condition,
            anti_flap,
        } = rule.clone();
        StoredRule {
            id,
            name,
            model,
            version,
            metric,
            dataset,
            severity,
            enabled,
            created_at,
            updated_at,
            cooldown_minutes,
            notify_channels,
            condition,
            anti_flap,
        }
    }
}

impl From<StoredRule> for Rule {
    fn from(stored: StoredRule) -> Self {
        let StoredRule {
            id,
            name,
            model,
            version,
            metric,
            dataset,
            severity,
            enabled,
            created_at,
            updated_at,
            cooldown_minutes,
            notify_channels,
            condition,
            anti_flap,
        } = stored;
        Rule {
            id,
            name,
            model,
            version,
            metric,
            dataset,
            severity,
            enabled,
            created_at,
            updated_at,
            cooldown_minutes,
            notify_channels,
            condition,
            anti_flap,
        }
    }
}

/// The `body` of `rule`.
pub(crate) fn rule_body(rule: &Rule) -> Result<String, StoreError> {
    to_json(&StoredRule::from(rule))
}

/// The rule a `body` holds.
pub(crate) fn rule_from_body(body: &str) -> Result<Rule, StoreError> {
    from_json::<StoredRule>(body).map(Rule::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::conformance;

    #[test]
    fn a_body_is_the_rule_s_own_json_and_reads_back_as_the_rule() {
        let rule = conformance::rule(1, "fraud");
        let body = rule_body(&rule).unwrap();
        assert_eq!(body, serde_json::to_string(&rule).unwrap());
        assert_eq!(rule_from_body(&body).unwrap(), rule);
    }

    /// What a rule stored with the old API's names and before rules had datasets looks
    /// like: it reads back as the rule of the default dataset it was.
    #[test]
    fn a_rule_stored_with_the_old_names_and_no_dataset_reads_back() {
        let rule = conformance::rule(1, "fraud");
        let mut old = serde_json::to_value(&rule).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("dataset");
        for (name, old_name) in [
            ("id", "rule_id"),
            ("name", "rule_name"),
            ("model", "model_name"),
            ("version", "model_version"),
            ("metric", "metric_type"),
        ] {
            let value = fields.remove(name).unwrap();
            fields.insert(old_name.into(), value);
        }
        let old = old.to_string();
        assert!(old.contains(r#""rule_name":"rule 1""#), "{old}");
        assert_eq!(rule_from_body(&old).unwrap(), rule);
        assert_eq!(rule.dataset, DatasetScope::One(None));
    }
}
