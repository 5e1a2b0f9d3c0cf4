//! The records the SQL stores keep for the core's types, where what is stored is not
//! simply the type's own serde: a rule's `body` is a [`StoredRule`].
//!
//! The record reads back every rule ever stored: rules written with the old API's names
//! (`rule_id`, `rule_name`, `model_name`, `model_version`, `metric_type`) and rules stored
//! before rules had a dataset (they watch the default one). It writes the current names,
//! so a body written by this version reads the same with the ones before it. The core's
//! `Rule` has no serde of its own: this record is the only thing that says what a stored
//! rule looks like, and its tests pin the bytes.

use modelwatch_core::alerting::{AntiFlap, Condition, Rule, RuleId, Severity};
use modelwatch_core::sample::scope_serde;
use modelwatch_core::{DatasetScope, MetricScope, ModelName, Timestamp, Version};
use serde::{Deserialize, Serialize};

use super::condition::{AntiFlapRecord, ConditionRecord, SeverityRecord};
use crate::alerts::{from_json, to_json};
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
    #[serde(with = "SeverityRecord")]
    severity: Severity,
    enabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    cooldown_minutes: u32,
    notify_channels: Vec<String>,
    #[serde(flatten, with = "ConditionRecord")]
    condition: Condition,
    #[serde(flatten, with = "AntiFlapRecord")]
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

/// The rule a `body` holds (also for tests and tools building rules from JSON).
pub fn rule_from_body(body: &str) -> Result<Rule, StoreError> {
    from_json::<StoredRule>(body).map(Rule::from)
}

#[cfg(test)]
mod tests {
    use modelwatch_core::alerting::{ChangeDirection, ComparisonMode, NoDataCondition};
    use modelwatch_core::detection::Seasonality;

    use super::*;
    use crate::alerts::conformance;

    /// Bodies as this and earlier versions wrote them, one of each condition: each reads
    /// back and is written again byte for byte, so a rule stored by an earlier version
    /// keeps its bytes when rewritten, and a change to the core's `Rule` that would change
    /// the stored format fails here.
    const STORED: [&str; 4] = [
        r#"{"id":"rule_00000001","name":"slow","model":"fraud","version":null,"metric":"latency","dataset":"default","severity":"medium","enabled":true,"created_at":"2024-05-01T12:00:00.000Z","updated_at":"2024-05-01T12:00:00.000Z","cooldown_minutes":60,"notify_channels":["ops"],"condition_type":"threshold","comparison_operator":"gt","threshold_value":250.0,"clear_threshold":200.0,"for_evaluations":3,"clear_after_evaluations":3,"auto_resolve":false}"#,
        r#"{"id":"rule_00000002","name":"drop","model":"fraud","version":"v2","metric":"precision","dataset":"canary","severity":"high","enabled":true,"created_at":"2024-05-01T12:00:00.000Z","updated_at":"2024-05-02T12:00:00.000Z","cooldown_minutes":60,"notify_channels":[],"condition_type":"degradation","max_degradation_percentage":5.0,"baseline_window_hours":24,"comparison":"window","comparison_hours":2,"seasonal":"weekly","alpha":0.001,"for_evaluations":3,"clear_after_evaluations":3,"auto_resolve":false}"#,
        r#"{"id":"rule_00000003","name":"shift","model":"fraud","version":null,"metric":"accuracy","dataset":"*","severity":"medium","enabled":false,"created_at":"2024-05-01T12:00:00.000Z","updated_at":"2024-05-01T12:00:00.000Z","cooldown_minutes":60,"notify_channels":[],"condition_type":"change_point","change_direction":"both","min_shift_percentage":5.0,"false_alarm_interval_hours":720.0,"for_evaluations":1,"clear_after_evaluations":3,"auto_resolve":false}"#,
        r#"{"id":"rule_00000004","name":"quiet","model":"fraud","version":"v1","metric":"*","dataset":"default","severity":"critical","enabled":true,"created_at":"2024-05-01T12:00:00.000Z","updated_at":"2024-05-01T12:00:00.000Z","cooldown_minutes":0,"notify_channels":["ops"],"condition_type":"no_data","no_data_minutes":30.0,"for_evaluations":1,"clear_after_evaluations":1,"auto_resolve":true}"#,
    ];

    #[test]
    fn stored_rules_of_every_condition_read_back_and_are_rewritten_byte_for_byte() {
        let rules: Vec<Rule> = STORED
            .iter()
            .map(|body| rule_from_body(body).unwrap())
            .collect();
        for (rule, body) in rules.iter().zip(STORED) {
            assert_eq!(rule_body(rule).unwrap(), body);
        }
        assert!(matches!(
            rules[0].condition,
            Condition::Threshold { threshold_value, clear_threshold: Some(clear), .. }
                if threshold_value == 250.0 && clear == 200.0
        ));
        assert_eq!(rules[0].dataset, DatasetScope::One(None));
        assert!(matches!(
            rules[1].condition,
            Condition::Degradation {
                comparison: ComparisonMode::Window,
                comparison_hours: Some(2),
                seasonal: Some(Seasonality::Weekly),
                ..
            }
        ));
        assert_eq!(rules[2].dataset, DatasetScope::Each);
        assert!(matches!(
            rules[2].condition,
            Condition::ChangePoint(c) if c.change_direction == ChangeDirection::Both
                && c.min_shift_percentage == Some(5.0)
        ));
        assert_eq!(rules[3].metric, MetricScope::Every);
        assert_eq!(
            rules[3].condition,
            Condition::NoData(NoDataCondition {
                no_data_minutes: Some(30.0),
                no_data_intervals: None,
            })
        );
    }

    /// Bodies of the other shapes each condition takes (tolerance, clear lines, the
    /// comparison modes, seasonal and significance settings, both change-point settings
    /// of each kind, no-data limits by intervals and by both) with anti-flap settings
    /// other than the defaults, as this version writes them.
    const STORED_SHAPES: [&str; 7] = [
        r#"{"id":"rule_00000007","name":"rule 7","model":"fraud","version":null,"metric":"accuracy","dataset":"default","severity":"low","enabled":true,"created_at":"1970-01-01T00:00:01.000Z","updated_at":"1970-01-01T00:00:01.000Z","cooldown_minutes":60,"notify_channels":["ops","slack"],"condition_type":"threshold","comparison_operator":"eq","threshold_value":0.5,"tolerance":0.01,"for_evaluations":1,"clear_after_evaluations":2,"auto_resolve":true}"#,
        r#"{"id":"rule_00000007","name":"rule 7","model":"fraud","version":null,"metric":"accuracy","dataset":"default","severity":"low","enabled":true,"created_at":"1970-01-01T00:00:01.000Z","updated_at":"1970-01-01T00:00:01.000Z","cooldown_minutes":60,"notify_channels":["ops","slack"],"condition_type":"threshold","comparison_operator":"lte","threshold_value":0.8,"clear_threshold":0.85,"for_evaluations":3,"clear_after_evaluations":3,"auto_resolve":false}"#,
        r#"{"id":"rule_00000007","name":"rule 7","model":"fraud","version":null,"metric":"accuracy","dataset":"default","severity":"low","enabled":true,"created_at":"1970-01-01T00:00:01.000Z","updated_at":"1970-01-01T00:00:01.000Z","cooldown_minutes":60,"notify_channels":["ops","slack"],"condition_type":"degradation","max_degradation_percentage":10.0,"baseline_window_hours":48,"clear_percentage":4.5,"comparison":"auto","for_evaluations":5,"clear_after_evaluations":10,"auto_resolve":false}"#,
        r#"{"id":"rule_00000007","name":"rule 7","model":"fraud","version":null,"metric":"accuracy","dataset":"default","severity":"low","enabled":true,"created_at":"1970-01-01T00:00:01.000Z","updated_at":"1970-01-01T00:00:01.000Z","cooldown_minutes":60,"notify_channels":["ops","slack"],"condition_type":"degradation","max_degradation_percentage":3.0,"baseline_window_hours":24,"comparison":"latest","seasonal":"daily","alpha":0.01,"for_evaluations":3,"clear_after_evaluations":3,"auto_resolve":false}"#,
        r#"{"id":"rule_00000007","name":"rule 7","model":"fraud","version":null,"metric":"accuracy","dataset":"default","severity":"low","enabled":true,"created_at":"1970-01-01T00:00:01.000Z","updated_at":"1970-01-01T00:00:01.000Z","cooldown_minutes":60,"notify_channels":["ops","slack"],"condition_type":"change_point","change_direction":"worse","min_shift_sd":1.5,"false_alarm_interval_samples":500,"for_evaluations":1,"clear_after_evaluations":1,"auto_resolve":true}"#,
        r#"{"id":"rule_00000007","name":"rule 7","model":"fraud","version":null,"metric":"accuracy","dataset":"default","severity":"low","enabled":true,"created_at":"1970-01-01T00:00:01.000Z","updated_at":"1970-01-01T00:00:01.000Z","cooldown_minutes":60,"notify_channels":["ops","slack"],"condition_type":"no_data","no_data_intervals":4.0,"for_evaluations":3,"clear_after_evaluations":3,"auto_resolve":false}"#,
        r#"{"id":"rule_00000007","name":"rule 7","model":"fraud","version":null,"metric":"accuracy","dataset":"default","severity":"low","enabled":true,"created_at":"1970-01-01T00:00:01.000Z","updated_at":"1970-01-01T00:00:01.000Z","cooldown_minutes":60,"notify_channels":["ops","slack"],"condition_type":"no_data","no_data_minutes":90.0,"no_data_intervals":2.5,"for_evaluations":2,"clear_after_evaluations":1,"auto_resolve":false}"#,
    ];

    #[test]
    fn stored_rules_of_every_condition_shape_are_rewritten_byte_for_byte() {
        for body in STORED_SHAPES {
            assert_eq!(rule_body(&rule_from_body(body).unwrap()).unwrap(), body);
        }
        let first = rule_from_body(STORED_SHAPES[0]).unwrap();
        assert_eq!(first.severity, Severity::Low);
        assert_eq!(
            first.anti_flap,
            AntiFlap {
                for_evaluations: 1,
                clear_after_evaluations: 2,
                auto_resolve: true
            }
        );
        assert!(matches!(
            rule_from_body(STORED_SHAPES[4]).unwrap().condition,
            Condition::ChangePoint(c) if c.change_direction == ChangeDirection::Worse
                && c.min_shift_sd == Some(1.5)
                && c.false_alarm_interval_samples == Some(500)
        ));
    }

    #[test]
    fn a_body_reads_back_as_the_rule() {
        let rule = conformance::rule(1, "fraud");
        assert_eq!(rule_from_body(&rule_body(&rule).unwrap()).unwrap(), rule);
    }

    /// A degradation rule stored before rules had a comparison compared the latest value.
    #[test]
    fn a_degradation_rule_stored_before_comparisons_compares_the_latest_value() {
        let old = STORED[1].replace(r#""comparison":"window","comparison_hours":2,"#, "");
        let rule = rule_from_body(&old).unwrap();
        assert!(matches!(
            rule.condition,
            Condition::Degradation {
                comparison: ComparisonMode::Latest,
                comparison_hours: None,
                ..
            }
        ));
    }

    /// What a rule stored with the old API's names and before rules had datasets looks
    /// like: it reads back as the rule of the default dataset it was.
    #[test]
    fn a_rule_stored_with_the_old_names_and_no_dataset_reads_back() {
        let rule = conformance::rule(1, "fraud");
        let mut old: serde_json::Value = serde_json::from_str(&rule_body(&rule).unwrap()).unwrap();
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
