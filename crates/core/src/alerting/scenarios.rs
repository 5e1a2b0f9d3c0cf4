//! Timeline tests of the alerting pieces working together, the way the engine drives
//! them: a small in-memory world applies every evaluation's writes, history and outbox.

use super::*;
use crate::sample::{ModelName, Version};
use crate::time::Timestamp;

const MINUTE: i64 = 60_000;

fn at(minute: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + minute * MINUTE).unwrap()
}

fn rule_from(json: &str, id: u32) -> Rule {
    let spec: RuleSpec = serde_json::from_str(json).unwrap();
    Rule::create(spec, RuleId::from_u32(id), at(-1000)).unwrap()
}

/// `accuracy < 0.9` on model `m`, notifying slack and email, plus any `extra` fields.
fn accuracy_rule(extra: &str) -> Rule {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    rule_from(
        &format!(
            r#"{{"name":"Low accuracy","model":"m","metric":"accuracy","severity":"high",
                "threshold_value":0.9,"comparison_operator":"lt","notify_channels":["slack","email"]{extra}}}"#
        ),
        1,
    )
}

fn v(name: &str) -> Version {
    Version::parse(name).unwrap()
}

/// One rule × version being evaluated.
struct Series {
    rule: Rule,
    version: Version,
    state: SeriesState,
}

impl Series {
    fn new(rule: Rule, version: &str) -> Self {
        Series {
            rule,
            version: v(version),
            state: SeriesState::default(),
        }
    }
}

/// What the store and engine would hold.
#[derive(Default)]
struct World {
    config: AlertConfig,
    ledger: RateLedger,
    silences: Vec<Silence>,
    memory: InMemory,
    next_id: u32,
}

impl World {
    fn new() -> Self {
        World {
            config: AlertConfig {
                // Make the limits irrelevant unless a test sets them.
                max_alerts_per_hour: 1000,
                max_alerts_per_model_per_hour: 1000,
                min_severity_to_notify: Severity::Low,
                ..AlertConfig::default()
            },
            ..World::default()
        }
    }

    /// Evaluates `observation` at `now` as a live pass would, and applies what it writes.
    fn observe(
        &mut self,
        series: &mut Series,
        now: Timestamp,
        observation: Observation,
    ) -> Decision {
        let at = observation.observed_at().unwrap_or(now);
        let mut next_id = self.next_id;
        let mut new_alert_id = || {
            next_id += 1;
            AlertId::from_u32(next_id)
        };
        let plan = plan(
            Target {
                rule: &series.rule,
                version: &series.version,
                dataset: None,
                state: &series.state,
                tracked: self.memory.tracked(&series.state),
                coverage: &[],
            },
            [(at, observation)],
            &mut PlanContext {
                clock: Clock::Live {
                    now,
                    horizon: PAGING_HORIZON,
                },
                config: &self.config,
                silences: &self.silences,
                ledger: &mut self.ledger,
                new_alert_id: &mut new_alert_id,
            },
        );
        self.next_id = next_id;
        assert!(self.memory.apply(&plan.commits), "a guard failed");
        if plan.state != series.state {
            assert_eq!(plan.state.revision, series.state.revision + 1);
        }
        series.state = plan.state;
        let [step] = <[PlannedStep; 1]>::try_from(plan.steps).unwrap();
        step.decision
    }

    fn value(&mut self, series: &mut Series, minute: i64, value: f64) -> Decision {
        self.observe(
            series,
            at(minute),
            Observation::Value {
                at: at(minute),
                value,
            },
        )
    }

    fn values(&mut self, series: &mut Series, from_minute: i64, values: &[f64]) -> Vec<Decision> {
        values
            .iter()
            .zip(from_minute..)
            .map(|(value, minute)| self.value(series, minute, *value))
            .collect()
    }

    fn alert(&self, series: &Series) -> &Alert {
        &self.memory.alerts[series.state.alert_id.as_ref().expect("an alert was raised")]
    }

    fn acknowledge(&mut self, id: &AlertId, by: &str, minute: i64) -> Result<(), LifecycleError> {
        self.person(id, minute, |alert, now| acknowledge(alert, by, now))
    }

    fn resolve(
        &mut self,
        id: &AlertId,
        by: &str,
        notes: Option<&str>,
        minute: i64,
    ) -> Result<(), LifecycleError> {
        self.person(id, minute, |alert, now| resolve(alert, by, notes, now))
    }

    fn person(
        &mut self,
        id: &AlertId,
        minute: i64,
        action: impl FnOnce(&Alert, Timestamp) -> Result<(Alert, AlertTransition), LifecycleError>,
    ) -> Result<(), LifecycleError> {
        let alert = self
            .memory
            .alerts
            .get(id)
            .ok_or_else(|| LifecycleError::UnknownAlert(id.clone()))?;
        let (alert, transition) = action(alert, at(minute))?;
        let channels = ["slack".to_owned(), "email".to_owned()];
        self.memory
            .outbox
            .extend(outbox::for_transition(&channels, &alert, &transition));
        self.memory.history.push(transition);
        self.memory.alerts.insert(alert.id.clone(), alert);
        Ok(())
    }

    fn firing_deliveries(&self, channel: &str) -> usize {
        self.memory
            .outbox
            .iter()
            .filter(|e| e.channel == channel && e.event == NotificationEvent::Firing)
            .count()
    }
}

#[test]
fn fires_after_three_consecutive_breaches_and_notifies_each_channel() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    let decisions = world.values(&mut series, 0, &[0.95, 0.85, 0.86, 0.84]);
    assert_eq!(decisions[0], Decision::Clear);
    assert_eq!(
        decisions[1],
        Decision::Pending {
            breaches: 1,
            needed: 3
        }
    );
    assert_eq!(
        decisions[2],
        Decision::Pending {
            breaches: 2,
            needed: 3
        }
    );
    assert_eq!(
        decisions[3],
        Decision::Fired {
            alert_id: AlertId::from_u32(4),
            status: AlertStatus::Active,
            notify: NotifyDecision::Notify(NotifyReason::FirstNotification),
        }
    );
    let alert = world.alert(&series);
    assert_eq!(alert.first_seen, at(3));
    assert_eq!(alert.severity, Severity::High);
    assert_eq!(alert.value, 0.84);
    assert!(alert.notified);
    assert_eq!(
        alert.message,
        "Low accuracy: accuracy of m/v1 is 0.84, below threshold 0.9"
    );
    let channels: Vec<_> = world
        .memory
        .outbox
        .iter()
        .map(|e| (e.channel.as_str(), e.event))
        .collect();
    assert_eq!(
        channels,
        [
            ("slack", NotificationEvent::Firing),
            ("email", NotificationEvent::Firing)
        ]
    );
    assert_eq!(
        world.memory.outbox[0].dedup_key,
        "alert_00000004:firing:high:slack"
    );
    assert_eq!(world.memory.history.len(), 1);
    assert_eq!(world.memory.history[0].from, None);
    assert_eq!(world.memory.history[0].to, AlertStatus::Active);
}

#[test]
fn a_breach_streak_broken_by_a_clear_value_starts_over() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    let decisions = world.values(&mut series, 0, &[0.85, 0.85, 0.95, 0.85, 0.85]);
    assert_eq!(
        decisions[4],
        Decision::Pending {
            breaches: 2,
            needed: 3
        }
    );
    assert!(world.memory.alerts.is_empty());
}

#[test]
fn breaches_while_open_update_the_alert_instead_of_creating_another() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    world.values(&mut series, 0, &[0.85, 0.85, 0.85]);
    let decisions = world.values(&mut series, 3, &[0.80, 0.88]);
    let id = AlertId::from_u32(3);
    assert_eq!(
        decisions[1],
        Decision::Updated {
            alert_id: id.clone(),
            occurrences: 3,
            worst_value: 0.80,
            severity_rose: None,
            notify: NotifyDecision::Hold(HoldReason::AlreadyNotified),
        }
    );
    assert_eq!(world.memory.alerts.len(), 1);
    let alert = &world.memory.alerts[&id];
    assert_eq!((alert.first_seen, alert.last_seen), (at(2), at(4)));
    assert_eq!(
        (alert.value, alert.worst_value, alert.occurrences),
        (0.88, 0.80, 3)
    );
    assert_eq!(world.firing_deliveries("slack"), 1);
}

#[test]
fn evaluating_again_without_new_data_changes_nothing() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    world.values(&mut series, 0, &[0.85, 0.85]);
    let before = series.state.clone();
    // A second evaluator (or a manual re-run) sees the same newest sample at a later time.
    let again = world.observe(
        &mut series,
        at(5),
        Observation::Value {
            at: at(1),
            value: 0.85,
        },
    );
    assert_eq!(
        again,
        Decision::AlreadyCounted {
            last_observed_at: at(1)
        }
    );
    assert_eq!(series.state, before);
    // A sample that cannot be judged is counted, its streak left as it is.
    let nothing = world.observe(&mut series, at(6), Observation::NoData);
    assert_eq!(
        nothing,
        Decision::NotJudged {
            why: Unjudgeable::NoData
        }
    );
    assert_eq!(
        series.state,
        SeriesState {
            last_observed_at: Some(at(6)),
            revision: before.revision + 1,
            ..before
        }
    );
    assert!(world.memory.alerts.is_empty());
}

#[test]
fn wrong_kind_of_observation_is_reported_not_judged() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    let reading = Observation::Degradation(DegradationReading {
        at: at(0),
        degradation_percentage: 50.0,
        significant: true,
        current_value: 0.5,
        baseline_value: 1.0,
        test: None,
    });
    assert!(matches!(
        world.observe(&mut series, at(0), reading),
        Decision::NotJudged {
            why: Unjudgeable::WrongKind { .. }
        }
    ));
}

#[test]
fn disabled_rule_does_nothing() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(r#""enabled":false"#), "v1");
    let decisions = world.values(&mut series, 0, &[0.1, 0.1, 0.1, 0.1]);
    assert!(decisions.iter().all(|d| *d == Decision::RuleDisabled));
    assert_eq!(series.state, SeriesState::default());
}

#[test]
fn auto_resolve_then_cooldown_holds_the_next_alert_until_it_ends() {
    let mut world = World::new();
    let mut series = Series::new(
        accuracy_rule(r#""auto_resolve":true,"cooldown_minutes":30"#),
        "v1",
    );
    world.values(&mut series, 0, &[0.85, 0.85, 0.85]);
    let first = AlertId::from_u32(3);
    let clearing = world.values(&mut series, 3, &[0.95, 0.95, 0.95]);
    assert_eq!(
        clearing[0],
        Decision::Clearing {
            alert_id: first.clone(),
            clears: 1,
            needed: 3
        }
    );
    assert_eq!(
        clearing[2],
        Decision::AutoResolved {
            alert_id: first.clone()
        }
    );
    let resolved = &world.memory.alerts[&first];
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.resolved_by.as_deref(), Some(SYSTEM_ACTOR));
    assert_eq!(resolved.resolved_at, Some(at(5)));
    let resolved_events: Vec<_> = world
        .memory
        .outbox
        .iter()
        .filter(|e| e.event == NotificationEvent::Resolved)
        .map(|e| e.channel.as_str())
        .collect();
    assert_eq!(resolved_events, ["slack", "email"]);
    let last = world.memory.history.last().unwrap();
    assert_eq!(
        (last.from, last.to, last.by.as_str()),
        (
            Some(AlertStatus::Active),
            AlertStatus::Resolved,
            "modelwatch"
        )
    );

    // Cooldown runs from the resolution at minute 5 to minute 35.
    let breaches = world.values(&mut series, 10, &[0.8, 0.8, 0.8, 0.8]);
    assert_eq!(
        breaches[2],
        Decision::InCooldown {
            until: at(35),
            breaches: 3
        }
    );
    assert_eq!(
        breaches[3],
        Decision::InCooldown {
            until: at(35),
            breaches: 4
        }
    );
    assert!(matches!(
        world.value(&mut series, 34, 0.8),
        Decision::InCooldown { .. }
    ));
    assert!(matches!(
        world.value(&mut series, 35, 0.8),
        Decision::Fired { .. }
    ));
    assert_eq!(world.memory.alerts.len(), 2);
}

#[test]
fn cooldown_also_follows_a_manual_resolution() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    world.values(&mut series, 0, &[0.85, 0.85, 0.85]);
    let id = AlertId::from_u32(3);
    world
        .resolve(&id, "ana@example.com", Some("retrained"), 10)
        .unwrap();
    assert_eq!(
        world.value(&mut series, 11, 0.85),
        Decision::InCooldown {
            until: at(70),
            breaches: 4
        }
    );
    assert!(matches!(
        world.value(&mut series, 70, 0.85),
        Decision::Fired { .. }
    ));
}

#[test]
fn without_auto_resolve_a_cleared_alert_waits_for_a_person_and_absorbs_new_breaches() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    world.values(&mut series, 0, &[0.85, 0.85, 0.85]);
    let id = AlertId::from_u32(3);
    let decisions = world.values(&mut series, 3, &[0.95, 0.95, 0.95, 0.95, 0.85]);
    assert_eq!(
        decisions[2],
        Decision::ConditionCleared {
            alert_id: id.clone()
        }
    );
    assert_eq!(
        decisions[3],
        Decision::AwaitingResolution {
            alert_id: id.clone()
        }
    );
    assert!(
        matches!(&decisions[4], Decision::Updated { alert_id, occurrences: 2, .. } if *alert_id == id)
    );
    assert_eq!(world.memory.alerts[&id].status, AlertStatus::Active);
    assert_eq!(world.firing_deliveries("email"), 1);
}

#[test]
fn a_signal_crossing_the_threshold_fifty_times_notifies_at_most_twice_with_the_defaults() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    // Runs of 1 to 5 evaluations alternating between breaching and clear: 50 crossings.
    let mut minute = 0;
    let mut crossings = 0;
    let mut breaching = false;
    while crossings < 50 {
        let run = 1 + (crossings * 7 % 5);
        for _ in 0..run {
            world.value(&mut series, minute, if breaching { 0.80 } else { 0.95 });
            minute += 1;
        }
        breaching = !breaching;
        crossings += 1;
    }
    let notifications = world
        .memory
        .outbox
        .iter()
        .filter(|e| e.channel == "slack")
        .count();
    assert!(notifications <= 2, "{notifications} notifications");
    assert_eq!(world.firing_deliveries("slack"), 1);

    // Flipping at every evaluation never even fires.
    let mut quiet = World::new();
    let mut flapping = Series::new(accuracy_rule(""), "v1");
    for minute in 0..100 {
        quiet.value(
            &mut flapping,
            minute,
            if minute % 2 == 0 { 0.8 } else { 0.95 },
        );
    }
    assert!(quiet.memory.alerts.is_empty());
}

#[test]
fn hysteresis_keeps_the_alert_open_between_the_two_lines() {
    let mut world = World::new();
    let mut series = Series::new(
        accuracy_rule(r#""clear_threshold":0.92,"auto_resolve":true"#),
        "v1",
    );
    world.values(&mut series, 0, &[0.85, 0.85, 0.85]);
    let id = AlertId::from_u32(3);
    let band = world.values(&mut series, 3, &[0.91, 0.915, 0.91, 0.91]);
    assert!(band.iter().all(|d| *d
        == Decision::Holding {
            alert_id: id.clone()
        }));
    let out = world.values(&mut series, 7, &[0.93, 0.91, 0.93, 0.93, 0.93]);
    assert_eq!(
        out[0],
        Decision::Clearing {
            alert_id: id.clone(),
            clears: 1,
            needed: 3
        }
    );
    assert_eq!(
        out[1],
        Decision::Holding {
            alert_id: id.clone()
        }
    );
    assert_eq!(
        out[4],
        Decision::AutoResolved {
            alert_id: id.clone()
        }
    );
    // Once resolved, 0.91 is simply clear again.
    assert_eq!(world.value(&mut series, 12, 0.91), Decision::Clear);
}

#[test]
fn acknowledged_alert_is_not_renotified_unless_its_severity_rises() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(""), "v1");
    world.values(&mut series, 0, &[0.85, 0.85, 0.85]);
    let id = AlertId::from_u32(3);
    world.acknowledge(&id, "ana@example.com", 4).unwrap();
    assert_eq!(
        world.value(&mut series, 5, 0.8),
        Decision::Updated {
            alert_id: id.clone(),
            occurrences: 2,
            worst_value: 0.8,
            severity_rose: None,
            notify: NotifyDecision::Hold(HoldReason::Acknowledged),
        }
    );
    let acks: Vec<_> = world
        .memory
        .outbox
        .iter()
        .filter(|e| e.event == NotificationEvent::Acknowledged)
        .map(|e| e.dedup_key.as_str())
        .collect();
    assert_eq!(
        acks,
        [
            "alert_00000003:acknowledged:slack",
            "alert_00000003:acknowledged:email"
        ]
    );

    let patch: RulePatch = serde_json::from_str(r#"{"severity":"critical"}"#).unwrap();
    series.rule = series.rule.update(patch, at(6)).unwrap();
    let escalated = world.value(&mut series, 7, 0.7);
    assert_eq!(
        escalated,
        Decision::Updated {
            alert_id: id.clone(),
            occurrences: 3,
            worst_value: 0.7,
            severity_rose: Some((Severity::High, Severity::Critical)),
            notify: NotifyDecision::Notify(NotifyReason::SeverityRose {
                from: Severity::High,
                to: Severity::Critical
            }),
        }
    );
    let alert = &world.memory.alerts[&id];
    assert_eq!(
        (alert.severity, alert.status),
        (Severity::Critical, AlertStatus::Acknowledged)
    );
    assert_eq!(world.firing_deliveries("slack"), 2);
    assert!(world
        .memory
        .outbox
        .iter()
        .any(|e| e.dedup_key == "alert_00000003:firing:critical:slack"));
    let escalation = world.memory.history.last().unwrap();
    assert_eq!(
        escalation.notes.as_deref(),
        Some("severity rose from high to critical")
    );
    // Same severity again: quiet.
    assert!(matches!(
        world.value(&mut series, 8, 0.7),
        Decision::Updated {
            notify: NotifyDecision::Hold(HoldReason::Acknowledged),
            ..
        }
    ));
}

#[test]
fn global_rate_limit_suppresses_and_the_summary_counts_it() {
    let mut world = World::new();
    world.config.max_alerts_per_hour = 2;
    let mut series: Vec<Series> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, model)| {
            let json = format!(
                r#"{{"name":"r","model":"{model}","metric":"accuracy","threshold_value":0.9,"comparison_operator":"lt","for_evaluations":1,"notify_channels":["slack"]}}"#
            );
            Series::new(rule_from(&json, i as u32), "v1")
        })
        .collect();
    let decisions: Vec<_> = series.iter_mut().map(|s| world.value(s, 0, 0.5)).collect();
    assert!(decisions[0..2].iter().all(|d| matches!(
        d,
        Decision::Fired {
            status: AlertStatus::Active,
            ..
        }
    )));
    assert_eq!(
        decisions[2],
        Decision::Fired {
            alert_id: AlertId::from_u32(3),
            status: AlertStatus::Suppressed,
            notify: NotifyDecision::Hold(HoldReason::MaxAlertsPerHour { limit: 2 }),
        }
    );
    let suppressed = &world.memory.alerts[&AlertId::from_u32(3)];
    assert!(!suppressed.notified);
    assert_eq!(
        suppressed.hold_reason,
        Some(HoldReason::MaxAlertsPerHour { limit: 2 })
    );
    assert_eq!(world.firing_deliveries("slack"), 2);
    let all: Vec<Alert> = world.memory.alerts.values().cloned().collect();
    let summary = summarize(&all, None, Some(last_hours(24.0, at(0))));
    assert_eq!(
        (
            summary.total_count,
            summary.active_count,
            summary.suppressed_count
        ),
        (3, 2, 1)
    );
    assert_eq!(summary.medium_count, 3);

    // Further breaches fold into the suppressed alert and stay quiet.
    assert!(matches!(
        world.value(&mut series[2], 1, 0.5),
        Decision::Updated {
            notify: NotifyDecision::Hold(HoldReason::MaxAlertsPerHour { limit: 2 }),
            ..
        }
    ));
    // Suppressed alerts cannot be acknowledged.
    assert_eq!(
        world.acknowledge(&AlertId::from_u32(3), "ana", 2),
        Err(LifecycleError::SuppressedNotAcknowledgeable(
            AlertId::from_u32(3)
        ))
    );
}

#[test]
fn per_model_rate_limit_suppresses_and_frees_up_after_an_hour() {
    let mut world = World::new();
    world.config.max_alerts_per_model_per_hour = 1;
    let rule = |id: u32, metric: &str| {
        rule_from(
            &format!(
                r#"{{"name":"r","model":"m","metric":"{metric}","threshold_value":0.9,"comparison_operator":"lt","for_evaluations":1,"notify_channels":["slack"]}}"#
            ),
            id,
        )
    };
    let mut first = Series::new(rule(1, "accuracy"), "v1");
    let mut second = Series::new(rule(2, "recall"), "v1");
    let mut third = Series::new(rule(3, "precision"), "v1");
    assert!(matches!(
        world.value(&mut first, 0, 0.5),
        Decision::Fired {
            status: AlertStatus::Active,
            ..
        }
    ));
    assert_eq!(
        world.value(&mut second, 30, 0.5),
        Decision::Fired {
            alert_id: AlertId::from_u32(2),
            status: AlertStatus::Suppressed,
            notify: NotifyDecision::Hold(HoldReason::MaxAlertsPerModelPerHour { limit: 1 }),
        }
    );
    assert!(matches!(
        world.value(&mut third, 60, 0.5),
        Decision::Fired {
            status: AlertStatus::Active,
            ..
        }
    ));
}

#[test]
fn suppressed_alert_is_closed_when_its_condition_clears_and_stays_suppressed() {
    let mut world = World::new();
    world.config.enable_alerts = false;
    let mut series = Series::new(accuracy_rule(""), "v1");
    let decisions = world.values(&mut series, 0, &[0.8, 0.8, 0.8]);
    assert!(matches!(
        &decisions[2],
        Decision::Fired {
            status: AlertStatus::Suppressed,
            notify: NotifyDecision::Hold(HoldReason::AlertsDisabled),
            ..
        }
    ));
    let decisions = world.values(&mut series, 3, &[0.95, 0.95, 0.95]);
    let id = AlertId::from_u32(3);
    assert_eq!(
        decisions[2],
        Decision::SuppressedClosed {
            alert_id: id.clone()
        }
    );
    let alert = &world.memory.alerts[&id];
    assert_eq!(alert.status, AlertStatus::Suppressed);
    assert!(!alert.is_open());
    assert!(world.memory.outbox.is_empty());
    assert!(matches!(
        world.resolve(&id, "ana", None, 10),
        Err(LifecycleError::AlreadyResolved { .. })
    ));
}

#[test]
fn below_min_severity_is_recorded_but_not_notified() {
    let mut world = World::new();
    world.config.min_severity_to_notify = Severity::Critical;
    let mut series = Series::new(accuracy_rule(""), "v1");
    let decisions = world.values(&mut series, 0, &[0.8, 0.8, 0.8]);
    assert_eq!(
        decisions[2],
        Decision::Fired {
            alert_id: AlertId::from_u32(3),
            status: AlertStatus::Active,
            notify: NotifyDecision::Hold(HoldReason::BelowMinSeverity {
                min_severity_to_notify: Severity::Critical
            }),
        }
    );
    assert!(world.memory.outbox.is_empty());
    // Nobody heard of it, so nobody hears that it was resolved either.
    world
        .resolve(&AlertId::from_u32(3), "ana", None, 5)
        .unwrap();
    assert!(world.memory.outbox.is_empty());
}

#[test]
fn rule_without_channels_records_alerts_without_deliveries() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(r#""for_evaluations":1"#), "v1");
    series.rule.notify_channels.clear();
    assert!(matches!(
        world.value(&mut series, 0, 0.5),
        Decision::Fired {
            notify: NotifyDecision::Hold(HoldReason::NoChannels),
            status: AlertStatus::Active,
            ..
        }
    ));
    assert!(world.memory.outbox.is_empty());
}

#[test]
fn silenced_alert_is_recorded_quietly_and_notified_once_the_silence_ends() {
    let mut world = World::new();
    let silence = SilenceSpec {
        model: "m".into(),
        version: Some("v1".into()),
        metric: Some("accuracy".into()),
        starts_at: Some(at(0)),
        ends_at: Some(at(10)),
        created_by: "ana@example.com".into(),
        comment: "maintenance".into(),
        ..SilenceSpec::default()
    }
    .validate(SilenceId::from_u32(7), at(0))
    .unwrap();
    world.silences.push(silence);
    let mut series = Series::new(accuracy_rule(""), "v1");
    let mut other_version = Series::new(accuracy_rule(""), "v2");
    let decisions = world.values(&mut series, 0, &[0.8, 0.8, 0.8]);
    assert_eq!(
        decisions[2],
        Decision::Fired {
            alert_id: AlertId::from_u32(3),
            status: AlertStatus::Active,
            notify: NotifyDecision::Hold(HoldReason::Silenced {
                silence_id: SilenceId::from_u32(7)
            }),
        }
    );
    assert!(world.memory.outbox.is_empty());
    // The silence names v1 only.
    let v2 = world.values(&mut other_version, 0, &[0.8, 0.8, 0.8]);
    assert!(matches!(
        &v2[2],
        Decision::Fired {
            notify: NotifyDecision::Notify(_),
            ..
        }
    ));
    assert_eq!(world.firing_deliveries("slack"), 1);
    assert!(matches!(
        world.value(&mut series, 9, 0.8),
        Decision::Updated {
            notify: NotifyDecision::Hold(HoldReason::Silenced { .. }),
            ..
        }
    ));
    assert!(matches!(
        world.value(&mut series, 10, 0.8),
        Decision::Updated {
            notify: NotifyDecision::Notify(NotifyReason::FirstNotification),
            ..
        }
    ));
    assert_eq!(world.firing_deliveries("slack"), 2);
    assert!(world.memory.alerts[&AlertId::from_u32(3)].notified);
}

#[test]
fn every_lifecycle_transition_is_kept_and_impossible_ones_are_refused() {
    let mut world = World::new();
    let mut series = Series::new(accuracy_rule(r#""for_evaluations":1"#), "v1");
    world.value(&mut series, 0, 0.5);
    let id = AlertId::from_u32(1);
    assert!(matches!(
        world.acknowledge(&id, "  ", 1),
        Err(LifecycleError::MissingActor { .. })
    ));
    world.acknowledge(&id, "ana@example.com", 1).unwrap();
    let again = world.acknowledge(&id, "bob@example.com", 2).unwrap_err();
    assert_eq!(
        again.to_string(),
        format!(
            "alert alert_00000001 is already acknowledged (by ana@example.com at {})",
            at(1)
        )
    );
    world
        .resolve(&id, "bob@example.com", Some("fixed the pipeline"), 3)
        .unwrap();
    assert!(matches!(
        world.resolve(&id, "bob", None, 4),
        Err(LifecycleError::AlreadyResolved { .. })
    ));
    assert!(matches!(
        world.acknowledge(&id, "bob", 4),
        Err(LifecycleError::AlreadyResolved { .. })
    ));
    let unknown = AlertId::from_u32(0xdead);
    assert_eq!(
        world
            .acknowledge(&unknown, "bob", 4)
            .unwrap_err()
            .to_string(),
        "no alert has id alert_0000dead"
    );
    let alert = &world.memory.alerts[&id];
    assert_eq!(alert.acknowledged_by.as_deref(), Some("ana@example.com"));
    assert_eq!(
        alert.resolution_notes.as_deref(),
        Some("fixed the pipeline")
    );
    let history: Vec<_> = world
        .memory
        .history
        .iter()
        .filter(|t| t.alert_id == id)
        .map(|t| (t.at, t.by.as_str(), t.from, t.to))
        .collect();
    assert_eq!(
        history,
        [
            (at(0), "modelwatch", None, AlertStatus::Active),
            (
                at(1),
                "ana@example.com",
                Some(AlertStatus::Active),
                AlertStatus::Acknowledged
            ),
            (
                at(3),
                "bob@example.com",
                Some(AlertStatus::Acknowledged),
                AlertStatus::Resolved
            ),
        ]
    );
    let events: Vec<_> = world
        .memory
        .outbox
        .iter()
        .filter(|e| e.channel == "slack")
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            NotificationEvent::Firing,
            NotificationEvent::Acknowledged,
            NotificationEvent::Resolved
        ]
    );
}

#[test]
fn a_rule_for_all_versions_keeps_each_version_apart() {
    let mut world = World::new();
    let rule = accuracy_rule(r#""for_evaluations":2"#);
    assert!(rule.applies_to(&ModelName::parse("m").unwrap(), &v("v9")));
    let mut v1 = Series::new(rule.clone(), "v1");
    let mut v2 = Series::new(rule, "v2");
    world.value(&mut v1, 0, 0.5);
    world.value(&mut v2, 0, 0.95);
    world.value(&mut v2, 1, 0.5);
    assert!(matches!(
        world.value(&mut v1, 1, 0.5),
        Decision::Fired { .. }
    ));
    assert_eq!(world.value(&mut v2, 2, 0.95), Decision::Clear);
    assert_eq!(world.memory.alerts.len(), 1);
    assert_eq!(world.alert(&v1).version, v("v1"));
}

#[test]
fn degradation_rule_fires_only_on_significant_degradation() {
    let mut world = World::new();
    let rule = rule_from(
        r#"{"name":"Precision drop","model":"m","metric":"precision","max_degradation_percentage":5,"for_evaluations":2,"notify_channels":["pagerduty"]}"#,
        9,
    );
    let mut series = Series::new(rule, "v1");
    let reading = |minute: i64, percentage: f64, significant: bool| {
        Observation::Degradation(DegradationReading {
            at: at(minute),
            degradation_percentage: percentage,
            significant,
            current_value: 0.9 * (1.0 - percentage / 100.0),
            baseline_value: 0.9,
            test: Some(SignificanceTest {
                p_value: Some((if significant { 0.0005 } else { 0.3 }) + minute as f64 / 1e6),
                method: "welch_t+batch_means".into(),
                alpha: 0.01,
            }),
        })
    };
    for minute in 0..5 {
        assert_eq!(
            world.observe(&mut series, at(minute), reading(minute, 12.0, false)),
            Decision::Clear
        );
    }
    world.observe(&mut series, at(5), reading(5, 8.0, true));
    assert!(matches!(
        world.observe(&mut series, at(6), reading(6, 12.0, true)),
        Decision::Fired { .. }
    ));
    world.observe(&mut series, at(7), reading(7, 9.0, true));
    let alert = world.alert(&series);
    assert_eq!((alert.value, alert.worst_value), (9.0, 12.0));
    assert!(
        alert
            .message
            .starts_with("Precision drop: precision of m/v1 degraded 9.0%"),
        "{}",
        alert.message
    );
    assert!(
        matches!(alert.trigger, Trigger::Degradation { max_degradation_percentage, .. } if max_degradation_percentage == 5.0)
    );
    // The alert carries the test of the observation that last updated it, so a
    // notification can say how sure the detector was.
    let Trigger::Degradation {
        test: Some(test), ..
    } = &alert.trigger
    else {
        panic!("no test on {:?}", alert.trigger);
    };
    assert_eq!(test.p_value, Some(0.0005 + 7.0 / 1e6));
    assert_eq!(
        (test.method.as_str(), test.alpha),
        ("welch_t+batch_means", 0.01)
    );
}

#[test]
fn list_and_summary_filter_by_model_status_severity_and_window() {
    let mut world = World::new();
    let mut a = Series::new(accuracy_rule(r#""for_evaluations":1"#), "v1");
    let mut b = Series::new(
        rule_from(
            r#"{"name":"lat","model":"other","metric":"latency","threshold_value":100,"comparison_operator":"gt","severity":"critical","for_evaluations":1}"#,
            2,
        ),
        "v1",
    );
    world.value(&mut a, 0, 0.5);
    world.value(&mut b, 120, 500.0);
    world
        .acknowledge(&AlertId::from_u32(2), "ana", 121)
        .unwrap();
    let all: Vec<Alert> = world.memory.alerts.values().cloned().collect();

    let recent = AlertFilter {
        window: Some(last_hours(1.0, at(121))),
        ..AlertFilter::default()
    };
    let listed: Vec<_> = list_alerts(&all, &recent)
        .iter()
        .map(|a| a.id.clone())
        .collect();
    // The first alert is still open, so it is alive in the window.
    assert_eq!(listed, [AlertId::from_u32(2), AlertId::from_u32(1)]);
    let critical = AlertFilter {
        severity: Some(Severity::Critical),
        ..AlertFilter::default()
    };
    assert_eq!(list_alerts(&all, &critical).len(), 1);
    let acknowledged = AlertFilter {
        status: Some(AlertStatus::Acknowledged),
        model: Some(ModelName::parse("other").unwrap()),
        ..AlertFilter::default()
    };
    assert_eq!(list_alerts(&all, &acknowledged).len(), 1);

    let summary = summarize(&all, None, Some(last_hours(24.0, at(121))));
    assert_eq!(
        summary,
        AlertSummary {
            model: None,
            total_count: 2,
            active_count: 1,
            acknowledged_count: 1,
            resolved_count: 0,
            suppressed_count: 0,
            critical_count: 1,
            high_count: 1,
            medium_count: 0,
            low_count: 0,
        }
    );
    world
        .resolve(&AlertId::from_u32(1), "ana", None, 122)
        .unwrap();
    let all: Vec<Alert> = world.memory.alerts.values().cloned().collect();
    let m = ModelName::parse("m").unwrap();
    // Resolved at minute 122: outside a 1-hour window that ends three hours later.
    assert_eq!(
        summarize(&all, Some(&m), Some(last_hours(1.0, at(300)))).total_count,
        0
    );
    assert_eq!(
        summarize(&all, Some(&m), Some(last_hours(1.0, at(150)))).resolved_count,
        1
    );
}

/// A deterministic bumpy signal around the threshold.
fn signal(points: usize) -> Vec<f64> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut level: f64 = 0.92;
    (0..points)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let step = ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.02;
            level = (level + step).clamp(0.8, 1.0);
            level
        })
        .collect()
}

#[test]
fn backtest_agrees_with_live_evaluation() {
    for extra in [
        r#""cooldown_minutes":20"#,
        r#""auto_resolve":true,"cooldown_minutes":15,"clear_threshold":0.91"#,
        r#""auto_resolve":true,"cooldown_minutes":0,"for_evaluations":1,"clear_after_evaluations":1"#,
    ] {
        let rule = accuracy_rule(extra);
        let values = signal(3_000);
        let observations: Vec<(Timestamp, Observation)> = values
            .iter()
            .zip(0..)
            .map(|(value, minute)| {
                (
                    at(minute),
                    Observation::Value {
                        at: at(minute),
                        value: *value,
                    },
                )
            })
            .collect();

        let mut world = World::new();
        let mut series = Series::new(rule.clone(), "v1");
        let mut live = Vec::new();
        for (now, observation) in &observations {
            match world.observe(&mut series, *now, observation.clone()) {
                Decision::Fired { .. } => live.push((*now, "fired")),
                Decision::AutoResolved { .. } | Decision::SuppressedClosed { .. } => {
                    live.push((*now, "resolved"))
                }
                Decision::ConditionCleared { .. } => live.push((*now, "cleared")),
                _ => {}
            }
        }
        let replay = backtest(&rule, &v("v1"), &observations, SeriesState::default());
        let replayed: Vec<_> = replay
            .events
            .iter()
            .filter_map(|e| match e.kind {
                BacktestEventKind::Fired { .. } => Some((e.at, "fired")),
                BacktestEventKind::AutoResolved => Some((e.at, "resolved")),
                BacktestEventKind::ConditionCleared => Some((e.at, "cleared")),
                BacktestEventKind::HeldByCooldown { .. } | BacktestEventKind::Shifted => None,
            })
            .collect();
        assert!(
            live.iter().filter(|(_, e)| *e == "fired").count() >= 1,
            "{extra}: signal never fired"
        );
        assert_eq!(replayed, live, "{extra}");
        assert_eq!(
            replay.final_state.consecutive_breaches,
            series.state.consecutive_breaches
        );
        assert_eq!(
            replay.final_state.consecutive_clears,
            series.state.consecutive_clears
        );
    }
}

#[test]
fn backtest_reports_fired_cleared_and_cooldown_at_exact_times() {
    let rule = accuracy_rule(r#""auto_resolve":true,"cooldown_minutes":10"#);
    let values = [0.8, 0.8, 0.8, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8];
    let observations: Vec<_> = values
        .iter()
        .zip(0..)
        .map(|(value, minute)| {
            (
                at(minute),
                Observation::Value {
                    at: at(minute),
                    value: *value,
                },
            )
        })
        .collect();
    let replay = backtest(&rule, &v("v1"), &observations, SeriesState::default());
    let events: Vec<_> = replay
        .events
        .iter()
        .map(|e| (e.at, e.alert_number, e.kind))
        .collect();
    assert_eq!(
        events,
        [
            (
                at(2),
                1,
                BacktestEventKind::Fired {
                    severity: Severity::High
                }
            ),
            (at(5), 1, BacktestEventKind::AutoResolved),
            (
                at(8),
                1,
                BacktestEventKind::HeldByCooldown { until: at(15) }
            ),
        ]
    );
    assert_eq!(replay.last_alert.unwrap().status, AlertStatus::Resolved);
}

#[test]
fn a_firing_over_the_rate_limit_is_suppressed_and_its_stored_alert_says_why() {
    let mut world = World::new();
    world.config.max_alerts_per_hour = 0;
    let mut series = Series::new(accuracy_rule(r#""for_evaluations":1"#), "v1");
    let decision = world.value(&mut series, 0, 0.5);
    assert_eq!(
        decision,
        Decision::Fired {
            alert_id: AlertId::from_u32(1),
            status: AlertStatus::Suppressed,
            notify: NotifyDecision::Hold(HoldReason::MaxAlertsPerHour { limit: 0 }),
        }
    );
    // (The alert as the stores keep it: their record's tests.)
    let alert = world.alert(&series).clone();
    assert_eq!(
        alert.hold_reason,
        Some(HoldReason::MaxAlertsPerHour { limit: 0 })
    );
    assert_eq!(alert.revision, 1);
}
