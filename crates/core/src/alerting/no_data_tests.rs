//! No-data rules end to end through the one replay (`plan`, via `backtest` and live
//! plans): exact firing and resolving instants on constructed series that stop and
//! resume, irregular sampling, the floor under a multiple of the usual interval, a live
//! pass without new samples, and the rule's validation.

use std::time::Duration;

use super::no_data::{observations, silence_due, version_observations, Tail, MIN_NO_DATA_LIMIT};
use super::*;
use crate::time::Timestamp;
use crate::{Metric, MetricScope, Version};

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60_000;

fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + ms).unwrap_or_else(|e| panic!("{e}"))
}

fn at(minute: i64) -> Timestamp {
    at_ms(minute * MINUTE)
}

fn rule(extra: &str) -> Rule {
    let spec: RuleSpec = serde_json::from_str(&format!(
        r#"{{"name":"silent","model":"fraud-model","metric":"accuracy"{extra}}}"#
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    Rule::create(spec, RuleId::from_u32(1), at(-100_000)).unwrap_or_else(|e| panic!("{e}"))
}

fn condition(rule: &Rule) -> NoDataCondition {
    match rule.condition {
        Condition::NoData(condition) => condition,
        _ => panic!("not a no-data rule"),
    }
}

fn version() -> Version {
    Version::parse("v2").unwrap_or_else(|e| panic!("{e}"))
}

fn minutes(range: impl IntoIterator<Item = i64>) -> Vec<Timestamp> {
    range.into_iter().map(at).collect()
}

fn minute_of(t: Timestamp) -> f64 {
    (t.as_millis() - at(0).as_millis()) as f64 / MINUTE as f64
}

/// Replays `rule` over `samples` as a backtest ending at `end`.
fn replay(rule: &Rule, samples: &[Timestamp], end: Timestamp) -> Backtest {
    let state = SeriesState::default();
    let observed = observations(&condition(rule), &state, samples, Tail::Until(end));
    backtest(rule, &version(), &observed, state)
}

fn events(result: &Backtest) -> Vec<(f64, BacktestEventKind)> {
    result
        .events
        .iter()
        .map(|e| (minute_of(e.at), e.kind))
        .collect()
}

const FIRED: BacktestEventKind = BacktestEventKind::Fired {
    severity: Severity::Medium,
};
const RESOLVED: BacktestEventKind = BacktestEventKind::AutoResolved;

fn stops_and_resumes() -> Vec<Timestamp> {
    // Every minute from 0 to 100, silent until 160, then every minute again.
    minutes((0..=100).chain(160..=200))
}

#[test]
fn a_series_that_stops_fires_at_the_limit_and_resolves_at_its_first_sample_back() {
    let samples = stops_and_resumes();
    let five_intervals = rule(r#","no_data_intervals":5"#);
    assert_eq!(
        events(&replay(&five_intervals, &samples, at(201))),
        vec![(105.0, FIRED), (160.0, RESOLVED)]
    );
    let half_an_hour = rule(r#","no_data_minutes":30"#);
    assert_eq!(
        events(&replay(&half_an_hour, &samples, at(201))),
        vec![(130.0, FIRED), (160.0, RESOLVED)]
    );
    // A silence of an hour is not longer than 90 minutes.
    let ninety = rule(r#","no_data_minutes":90"#);
    assert_eq!(events(&replay(&ninety, &samples, at(201))), vec![]);
}

#[test]
fn a_silence_going_on_at_the_end_of_a_replay_fires_if_it_reached_the_limit_before() {
    let samples = minutes(0..=100);
    let rule = rule(r#","no_data_intervals":5"#);
    assert_eq!(events(&replay(&rule, &samples, at(105))), vec![]);
    assert_eq!(
        events(&replay(&rule, &samples, at(106))),
        vec![(105.0, FIRED)]
    );
    let alert = replay(&rule, &samples, at(106))
        .last_alert
        .unwrap_or_else(|| panic!("no alert"));
    assert!(alert.is_open());
    assert_eq!(alert.value, 5.0);
    assert!(
        alert.message.starts_with(
            "silent: accuracy of fraud-model/v2: no data for 5 min (usual interval 1 min)"
        ),
        "{}",
        alert.message
    );
}

#[test]
fn irregular_sampling_is_judged_by_its_median_gap() {
    // Gaps of 50, 60 and 70 seconds in turn: the usual interval is a minute, so five
    // intervals allow five minutes, and no gap of the series comes near that.
    let gaps = [50, 60, 70];
    let mut t = 0;
    let mut samples = Vec::new();
    for i in 0..300 {
        samples.push(at_ms(t));
        t += gaps[i % 3] * SECOND;
    }
    let last = *samples.last().unwrap_or_else(|| unreachable!());
    let rule = rule(r#","no_data_intervals":5"#);
    let quiet = replay(
        &rule,
        &samples,
        last.saturating_add(Duration::from_secs(299)),
    );
    assert_eq!(events(&quiet), vec![]);
    // Then a silence of six minutes: it fires five minutes after the last sample.
    let back = last.saturating_add(Duration::from_secs(360));
    let mut resumed = samples.clone();
    resumed.push(back);
    let result = replay(&rule, &resumed, back.saturating_add(Duration::from_secs(1)));
    let fired = last.saturating_add(Duration::from_secs(300));
    assert_eq!(
        events(&result),
        vec![(minute_of(fired), FIRED), (minute_of(back), RESOLVED)]
    );
}

#[test]
fn a_multiple_of_a_short_interval_is_never_under_a_minute() {
    // A sample every second; five intervals would be five seconds.
    let samples: Vec<Timestamp> = (0..120).map(|s| at_ms(s * SECOND)).collect();
    let rule = rule(r#","no_data_intervals":5"#);
    let c = condition(&rule);
    let cadence = {
        let mut cadence = no_data::Cadence::default();
        for &t in &samples {
            cadence.record(t);
        }
        cadence
    };
    assert_eq!(cadence.usual_interval(), Some(Duration::from_secs(1)));
    assert_eq!(c.limit(cadence.usual_interval()), Some(MIN_NO_DATA_LIMIT));
    let result = replay(&rule, &samples, at(10));
    assert_eq!(events(&result), vec![(179.0 / 60.0, FIRED)]);
}

#[test]
fn with_both_limits_the_silence_must_exceed_both() {
    let samples = stops_and_resumes();
    let both = rule(r#","no_data_minutes":30,"no_data_intervals":5"#);
    assert_eq!(
        events(&replay(&both, &samples, at(201))),
        vec![(130.0, FIRED), (160.0, RESOLVED)]
    );
    let long_multiple = rule(r#","no_data_minutes":2,"no_data_intervals":40"#);
    assert_eq!(
        events(&replay(&long_multiple, &samples, at(201))),
        vec![(140.0, FIRED), (160.0, RESOLVED)]
    );
}

#[test]
fn a_series_too_young_for_a_usual_interval_does_not_fire_on_a_multiple() {
    let samples = minutes([0, 1, 2]);
    let rule = rule(r#","no_data_intervals":5"#);
    assert_eq!(events(&replay(&rule, &samples, at(1_000))), vec![]);
    // A duration needs no history: one sample is enough.
    let duration = self::rule(r#","no_data_minutes":10"#);
    assert_eq!(
        events(&replay(&duration, &minutes([0]), at(1_000))),
        vec![(10.0, FIRED)]
    );
}

/// Plans `observations` live at `now` from `state` with the alert `tracked`.
fn live(
    rule: &Rule,
    state: &SeriesState,
    tracked: Option<&Alert>,
    now: Timestamp,
    observations: Vec<(Timestamp, Observation)>,
) -> Plan {
    let config = AlertConfig::default();
    let mut ledger = RateLedger::new();
    let mut new_alert_id = || AlertId::from_u32(7);
    plan(
        Target {
            rule,
            version: &version(),
            dataset: None,
            state,
            tracked,
            coverage: &[],
        },
        observations,
        &mut PlanContext {
            clock: Clock::Live {
                now,
                horizon: PAGING_HORIZON,
            },
            config: &config,
            silences: &[],
            ledger: &mut ledger,
            new_alert_id: &mut new_alert_id,
        },
    )
}

#[test]
fn live_passes_without_new_samples_fire_once_the_silence_reaches_the_limit() {
    let rule = rule(r#","no_data_intervals":5,"notify_channels":["ops"]"#);
    let c = condition(&rule);
    // A pass at minute 100 counts the samples so far.
    let samples = minutes(0..=100);
    let first = live(
        &rule,
        &SeriesState::default(),
        None,
        at(100),
        observations(
            &c,
            &SeriesState::default(),
            &samples,
            Tail::Now {
                now: at(100),
                horizon: PAGING_HORIZON,
            },
        ),
    );
    let state = first.state.clone();
    assert_eq!(state.last_observed_at, Some(at(100)));
    // Passes at 101..104 find nothing due; at 105 the silence has reached the limit.
    for minute in 101..105 {
        assert_eq!(
            silence_due(&c, &state, false, at(minute), PAGING_HORIZON),
            None,
            "{minute}"
        );
    }
    let late = at_ms(107 * MINUTE + 30 * SECOND);
    let due =
        silence_due(&c, &state, false, late, PAGING_HORIZON).unwrap_or_else(|| panic!("not due"));
    let fired = live(&rule, &state, None, late, vec![due]);
    let mut memory = InMemory::default();
    assert!(memory.apply(&fired.commits));
    let alert = memory
        .tracked(&fired.state)
        .cloned()
        .unwrap_or_else(|| panic!("no alert"));
    assert_eq!(alert.first_seen, late);
    assert_eq!(alert.value, 7.5);
    assert!(
        alert.message.contains(
            "no data for 8 min (usual interval 1 min), last sample at 2023-11-14T23:53:20.000Z"
        ),
        "{}",
        alert.message
    );
    assert_eq!(memory.outbox.len(), 1);
    // Still silent, alert open: nothing more to observe, nobody paged twice.
    assert_eq!(
        silence_due(&c, &fired.state, true, at(200), PAGING_HORIZON),
        None
    );
    // Data returns at 130: the alert resolves itself there.
    let back = live(
        &rule,
        &fired.state,
        Some(&alert),
        at(130),
        observations(
            &c,
            &fired.state,
            &minutes([130]),
            Tail::Now {
                now: at(130),
                horizon: PAGING_HORIZON,
            },
        ),
    );
    assert!(matches!(
        back.steps.last().map(|s| &s.decision),
        Some(Decision::AutoResolved { .. })
    ));
    assert!(memory.apply(&back.commits));
    let resolved = memory
        .tracked(&back.state)
        .unwrap_or_else(|| panic!("no alert"));
    assert_eq!(resolved.resolved_at, Some(at(130)));
    assert_eq!(resolved.status, AlertStatus::Resolved);
}

#[test]
fn a_silence_held_by_the_cooldown_fires_once_the_cooldown_is_over() {
    let rule = rule(r#","no_data_minutes":10,"cooldown_minutes":60"#);
    let c = condition(&rule);
    // An alert that resolved at minute 50.
    let samples = minutes(0..=50);
    let counted = live(
        &rule,
        &SeriesState::default(),
        None,
        at(50),
        observations(
            &c,
            &SeriesState::default(),
            &samples,
            Tail::Now {
                now: at(50),
                horizon: PAGING_HORIZON,
            },
        ),
    );
    let mut state = counted.state;
    let resolved_alert = {
        let mut alert = replay(&rule, &minutes([0]), at(20))
            .last_alert
            .unwrap_or_else(|| panic!("no alert"));
        alert.id = AlertId::from_u32(3);
        alert.resolved_at = Some(at(50));
        alert
    };
    state.alert_id = Some(resolved_alert.id.clone());
    // Silent from 50: due at 60, held until 110, fires at the first pass after.
    let due =
        silence_due(&c, &state, false, at(61), PAGING_HORIZON).unwrap_or_else(|| panic!("not due"));
    let held = live(&rule, &state, Some(&resolved_alert), at(61), vec![due]);
    assert!(matches!(
        held.steps[0].decision,
        Decision::InCooldown { until, .. } if until == at(110)
    ));
    let due = silence_due(&c, &held.state, false, at(111), PAGING_HORIZON)
        .unwrap_or_else(|| panic!("not due"));
    let fired = live(
        &rule,
        &held.state,
        Some(&resolved_alert),
        at(111),
        vec![due],
    );
    assert!(matches!(fired.steps[0].decision, Decision::Fired { .. }));
}

#[test]
fn a_silence_that_began_before_the_paging_horizon_is_recorded_not_paged() {
    // A version that stopped two days before the rule first looks at it (a retired one).
    let rule = rule(r#","no_data_minutes":30"#);
    let c = condition(&rule);
    let now = at(3 * 24 * 60);
    let tail = Tail::Now {
        now,
        horizon: PAGING_HORIZON,
    };
    let observed = observations(&c, &SeriesState::default(), &minutes(0..=60), tail);
    let first = live(&rule, &SeriesState::default(), None, now, observed);
    assert!(first.alerts().next().is_none());
    assert!(matches!(
        first.steps.last().map(|s| &s.decision),
        Some(Decision::WouldHaveFired { .. })
    ));
    let breach = first.state.detail.open_past_breach().cloned();
    assert_eq!(breach.map(|b| b.would_have_fired_at), Some(at(90)));
    // Later passes leave it alone; data coming back closes the past breach.
    assert_eq!(
        silence_due(&c, &first.state, false, at(4 * 24 * 60), PAGING_HORIZON),
        None
    );
    let back = at(4 * 24 * 60);
    let tail = Tail::Now {
        now: back,
        horizon: PAGING_HORIZON,
    };
    let returned = live(
        &rule,
        &first.state,
        None,
        back,
        observations(&c, &first.state, &[back], tail),
    );
    assert!(returned.alerts().next().is_none());
    assert!(matches!(
        returned.steps.last().map(|s| &s.decision),
        Some(Decision::PastBreachCleared { .. })
    ));
}

#[test]
fn no_data_rules_are_validated_and_fire_and_resolve_at_once_by_default() {
    let rule = rule(r#","no_data_minutes":30"#);
    assert_eq!(rule.condition.kind(), ConditionKind::NoData);
    assert_eq!(rule.anti_flap.for_evaluations, 1);
    assert_eq!(rule.anti_flap.clear_after_evaluations, 1);
    assert!(rule.anti_flap.auto_resolve);
    assert_eq!(
        rule.condition,
        Condition::NoData(NoDataCondition {
            no_data_minutes: Some(30.0),
            no_data_intervals: None,
        })
    );
    let create = |extra: &str| {
        let spec: RuleSpec = serde_json::from_str(&format!(
            r#"{{"name":"r","model":"m","metric":"accuracy"{extra}}}"#
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        Rule::create(spec, RuleId::from_u32(1), at(0))
    };
    for (extra, field) in [
        (r#","condition_type":"no_data""#, "no_data_minutes"),
        (r#","no_data_minutes":0"#, "no_data_minutes"),
        (r#","no_data_minutes":-5"#, "no_data_minutes"),
        (r#","no_data_intervals":0.5"#, "no_data_intervals"),
        (
            r#","no_data_minutes":5,"for_evaluations":3"#,
            "for_evaluations",
        ),
        (
            r#","no_data_minutes":5,"threshold_value":1,"comparison_operator":"lt""#,
            "condition",
        ),
        (
            r#","no_data_minutes":5,"condition_type":"threshold""#,
            "condition_type",
        ),
    ] {
        let error = create(extra)
            .err()
            .unwrap_or_else(|| panic!("{extra} accepted"));
        assert_eq!(error.field, field, "{extra}: {error}");
    }
    let kept = create(r#","condition_type":"no-data","no_data_intervals":3,"auto_resolve":false,"clear_after_evaluations":2"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!kept.anti_flap.auto_resolve);
    assert_eq!(kept.anti_flap.clear_after_evaluations, 2);
}

#[test]
fn an_update_switches_to_and_from_no_data_with_each_kinds_defaults() {
    let threshold = rule(r#","threshold_value":0.9,"comparison_operator":"lt""#);
    let patch =
        |json: &str| serde_json::from_str::<RulePatch>(json).unwrap_or_else(|e| panic!("{e}"));
    let silent = threshold
        .update(patch(r#"{"no_data_minutes":15}"#), at(1))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        silent.condition,
        Condition::NoData(NoDataCondition {
            no_data_minutes: Some(15.0),
            no_data_intervals: None
        })
    );
    assert_eq!(
        (
            silent.anti_flap.for_evaluations,
            silent.anti_flap.clear_after_evaluations,
            silent.anti_flap.auto_resolve
        ),
        (1, 1, true)
    );
    let widened = silent
        .update(patch(r#"{"no_data_intervals":4}"#), at(2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        widened.condition,
        Condition::NoData(NoDataCondition {
            no_data_minutes: Some(15.0),
            no_data_intervals: Some(4.0)
        })
    );
    let back = widened
        .update(
            patch(r#"{"threshold_value":0.8,"comparison_operator":"lt"}"#),
            at(3),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.anti_flap, AntiFlap::default());
}

#[test]
fn silences_read_as_people_say_them() {
    assert_eq!(minutes_words(47.2), "47 min");
    assert_eq!(minutes_words(0.5), "30 s");
    assert_eq!(minutes_words(1.0), "1 min");
    assert_eq!(minutes_words(210.0), "3.5 h");
    assert_eq!(minutes_words(4.0 * 24.0 * 60.0), "4 d");
}

// A rule on a whole version (metric `*`): every metric's samples merged.

fn version_rule(extra: &str) -> Rule {
    let spec: RuleSpec = serde_json::from_str(&format!(
        r#"{{"name":"silent","model":"fraud-model","metric":"*"{extra}}}"#
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    Rule::create(spec, RuleId::from_u32(2), at(-100_000)).unwrap_or_else(|e| panic!("{e}"))
}

/// The samples of every metric, merged and time-ordered, as the engine reads them.
fn merged(streams: &[(Metric, Vec<Timestamp>)]) -> Vec<(Timestamp, &Metric)> {
    let mut all: Vec<(Timestamp, &Metric)> = streams
        .iter()
        .flat_map(|(metric, times)| times.iter().map(move |&t| (t, metric)))
        .collect();
    all.sort();
    all
}

fn replay_version(rule: &Rule, samples: &[(Timestamp, &Metric)], end: Timestamp) -> Backtest {
    let state = SeriesState::default();
    let observed = version_observations(&condition(rule), &state, samples, Tail::Until(end));
    backtest(rule, &version(), &observed, state)
}

#[test]
fn a_silent_version_fires_at_its_last_sample_plus_the_limit_and_resolves_at_the_first_back() {
    let rule = version_rule(r#","no_data_minutes":30"#);
    assert_eq!(rule.metric, MetricScope::Every);
    // Both metrics every minute until 100, silent until 160, then accuracy alone.
    let streams = [
        (Metric::Accuracy, minutes((0..=100).chain(160..=200))),
        (Metric::Latency, minutes(0..=100)),
    ];
    let result = replay_version(&rule, &merged(&streams), at(201));
    assert_eq!(events(&result), vec![(130.0, FIRED), (160.0, RESOLVED)]);
}

#[test]
fn one_metric_still_reporting_keeps_a_version_from_firing() {
    let rule = version_rule(r#","no_data_minutes":30"#);
    // Latency stops at 100 for good; accuracy goes on: the version is not silent.
    let streams = [
        (Metric::Accuracy, minutes(0..=300)),
        (Metric::Latency, minutes(0..=100)),
    ];
    assert_eq!(
        events(&replay_version(&rule, &merged(&streams), at(301))),
        vec![]
    );
    // The same rule on latency alone fires 30 minutes after its last sample.
    let latency = rule_on("latency", r#","no_data_minutes":30"#);
    assert_eq!(
        events(&replay(&latency, &minutes(0..=100), at(301))),
        vec![(130.0, FIRED)]
    );
}

fn rule_on(metric: &str, extra: &str) -> Rule {
    let spec: RuleSpec = serde_json::from_str(&format!(
        r#"{{"name":"silent","model":"fraud-model","metric":"{metric}"{extra}}}"#
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    Rule::create(spec, RuleId::from_u32(3), at(-100_000)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_usual_interval_of_a_version_is_learned_from_its_merged_times() {
    // Accuracy on even minutes, latency on odd ones: each alone every 2 minutes, the
    // version every minute. Five intervals are five minutes, not ten.
    let streams = [
        (Metric::Accuracy, minutes((0..=100).step_by(2))),
        (Metric::Latency, minutes((1..=99).step_by(2))),
    ];
    let rule = version_rule(r#","no_data_intervals":5"#);
    let result = replay_version(&rule, &merged(&streams), at(200));
    assert_eq!(events(&result), vec![(105.0, FIRED)]);
    let cadence = result
        .final_state
        .detail
        .cadence
        .clone()
        .unwrap_or_else(|| panic!("no cadence"));
    assert_eq!(cadence.usual_interval(), Some(Duration::from_secs(60)));
    // Samples of both metrics at one instant count once: the interval stays a minute.
    let together = [
        (Metric::Accuracy, minutes(0..=100)),
        (Metric::Latency, minutes(0..=100)),
    ];
    let result = replay_version(&rule, &merged(&together), at(200));
    assert_eq!(events(&result), vec![(105.0, FIRED)]);
}

#[test]
fn a_live_version_alert_names_the_version_and_the_metrics_seen_last() {
    let rule = version_rule(r#","no_data_minutes":10,"notify_channels":["ops"]"#);
    let c = condition(&rule);
    let f1 = Metric::F1Score;
    let streams = [
        (Metric::Accuracy, minutes(0..=100)),
        (Metric::Latency, minutes(0..=98)),
        (f1.clone(), minutes([50])),
    ];
    let samples = merged(&streams);
    let tail = Tail::Now {
        now: at(100),
        horizon: PAGING_HORIZON,
    };
    let first = live(
        &rule,
        &SeriesState::default(),
        None,
        at(100),
        version_observations(&c, &SeriesState::default(), &samples, tail),
    );
    let state = first.state.clone();
    assert_eq!(state.last_observed_at, Some(at(100)));
    // The injected clock: nothing due until the limit, at 110.
    assert_eq!(
        silence_due(&c, &state, false, at(109), PAGING_HORIZON),
        None
    );
    let due = silence_due(&c, &state, false, at(110), PAGING_HORIZON)
        .unwrap_or_else(|| panic!("not due"));
    let fired = live(&rule, &state, None, at(110), vec![due]);
    let mut memory = InMemory::default();
    assert!(memory.apply(&fired.commits));
    let alert = memory
        .tracked(&fired.state)
        .cloned()
        .unwrap_or_else(|| panic!("no alert"));
    assert_eq!(alert.metric, MetricScope::Every);
    assert_eq!(alert.first_seen, at(110));
    let Trigger::NoData {
        last_sample_at,
        last_samples,
        ..
    } = &alert.trigger
    else {
        panic!("{:?}", alert.trigger)
    };
    assert_eq!(*last_sample_at, at(100));
    let seen: Vec<(&str, Timestamp)> = last_samples
        .iter()
        .map(|s| (s.metric.as_str(), s.at))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("accuracy", at(100)),
            ("latency", at(98)),
            ("f1_score", at(50))
        ]
    );
    // One line: when each metric was seen last is the trigger's, not the message's.
    assert_eq!(
        alert.message,
        "silent: fraud-model/v2 (every metric): no data for 10 min (usual interval 1 min)"
    );
    // Latency comes back first: the version is no longer silent.
    let back = live(
        &rule,
        &fired.state,
        Some(&alert),
        at(130),
        version_observations(
            &c,
            &fired.state,
            &[(at(130), &Metric::Latency)],
            Tail::Now {
                now: at(130),
                horizon: PAGING_HORIZON,
            },
        ),
    );
    assert!(matches!(
        back.steps.last().map(|s| &s.decision),
        Some(Decision::AutoResolved { .. })
    ));
    assert!(memory.apply(&back.commits));
    let cadence = back.state.detail.cadence.clone().unwrap_or_default();
    assert_eq!(cadence.last_samples[0].metric, Metric::Latency);
}

#[test]
fn only_no_data_rules_may_watch_every_metric() {
    assert_eq!(
        version_rule(r#","no_data_intervals":3"#).metric.to_string(),
        "*"
    );
    for extra in [
        r#","threshold_value":0.9,"comparison_operator":"lt""#,
        r#","max_degradation_percentage":5"#,
        r#","condition_type":"change_point""#,
    ] {
        let spec: RuleSpec = serde_json::from_str(&format!(
            r#"{{"name":"r","model":"m","metric":"*"{extra}}}"#
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let error = Rule::create(spec, RuleId::from_u32(1), at(0))
            .err()
            .unwrap_or_else(|| panic!("{extra} accepted"));
        assert_eq!(error.field, "metric", "{extra}: {error}");
        assert!(error.to_string().contains("no-data"), "{error}");
    }
    // A rule on every metric (the store's rule record reads it back as it was stored).
    let rule = version_rule(r#","no_data_minutes":30"#);
    assert_eq!(rule.metric, MetricScope::Every);
}
