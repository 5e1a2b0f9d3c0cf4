//! Change-point rules end to end through the one replay (`plan`, via `backtest`): exact
//! firing samples on constructed series, spikes after learning that must not raise a shift
//! (only the first beyond any yet pages, as an outlier), recovery, a restart
//! mid-change and the rule's validation.

use super::*;
use crate::detection::changepoint::{ChangePointState, DEFAULT_FALSE_ALARM_INTERVAL};
use crate::metric::Direction;
use crate::time::Timestamp;
use crate::Version;

const MINUTE: i64 = 60_000;

fn at(minute: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + minute * MINUTE).unwrap_or_else(|_| unreachable!())
}

fn rule(extra: &str) -> Rule {
    let spec: RuleSpec = serde_json::from_str(&format!(
        r#"{{"name":"shift","model":"m","metric":"accuracy","condition_type":"change_point"{extra}}}"#
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    Rule::create(spec, RuleId::from_u32(1), at(-100_000)).unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic unit noise (an LCG through Box–Muller).
fn noise(count: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..count)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect()
}

/// Accuracy around 0.9 with noise of 0.01, shifted by `shift(i)`.
fn accuracy(count: usize, seed: u64, shift: impl Fn(usize) -> f64) -> Vec<f64> {
    noise(count, seed)
        .iter()
        .enumerate()
        .map(|(i, e)| 0.9 + 0.01 * e + shift(i))
        .collect()
}

fn samples(values: &[f64], from: usize) -> Vec<(Timestamp, Observation)> {
    values
        .iter()
        .enumerate()
        .skip(from)
        .map(|(i, &value)| {
            let t = at(i as i64);
            (
                t,
                Observation::Sample {
                    at: t,
                    value,
                    direction: Direction::HigherIsBetter,
                },
            )
        })
        .collect()
}

fn minute_of(t: Timestamp) -> i64 {
    (t.as_millis() - at(0).as_millis()) / MINUTE
}

/// (minute, kind, onset minute) of every event.
fn events(result: &Backtest) -> Vec<(i64, BacktestEventKind, Option<i64>)> {
    result
        .events
        .iter()
        .map(|e| (minute_of(e.at), e.kind, e.change_started_at.map(minute_of)))
        .collect()
}

fn version() -> Version {
    Version::parse("v1").unwrap_or_else(|e| panic!("{e}"))
}

const FIRED: BacktestEventKind = BacktestEventKind::Fired {
    severity: Severity::Medium,
};

#[test]
fn a_drop_fires_once_with_its_onset_and_size() {
    let values = accuracy(600, 11, |i| if i >= 300 { -0.03 } else { 0.0 });
    let result = backtest(
        &rule(""),
        &version(),
        &samples(&values, 0),
        SeriesState::default(),
    );
    assert_eq!(events(&result), vec![(305, FIRED, Some(300))]);
    let alert = result.last_alert.unwrap_or_else(|| panic!("no alert"));
    let Trigger::ChangePoint {
        change_started_at,
        level_before,
        level_after,
        shift_percentage,
        shift_sd,
        ..
    } = alert.trigger
    else {
        panic!("{:?}", alert.trigger)
    };
    assert_eq!(change_started_at, at(300));
    assert!((level_before - 0.9).abs() < 0.003, "{level_before}");
    assert!((level_after - 0.87).abs() < 0.01, "{level_after}");
    assert!((shift_percentage.unwrap_or(0.0) + 3.3).abs() < 1.0);
    assert!((shift_sd + 3.0).abs() < 1.0, "{shift_sd}");
    assert!(alert.message.contains("shifted down"), "{}", alert.message);
    assert_eq!(alert.value, shift_sd);
}

#[test]
fn improvements_are_not_watched_unless_both_ways_are_asked_for() {
    let values = accuracy(600, 12, |i| if i >= 300 { 0.03 } else { 0.0 });
    let observations = samples(&values, 0);
    let worse = backtest(&rule(""), &version(), &observations, SeriesState::default());
    assert_eq!(events(&worse), vec![]);
    let both = backtest(
        &rule(r#","change_direction":"both""#),
        &version(),
        &observations,
        SeriesState::default(),
    );
    assert_eq!(events(&both), vec![(306, FIRED, Some(300))]);
}

#[test]
fn spikes_after_learning_never_raise_a_shift_and_only_the_first_beyond_any_yet_pages() {
    // Spikes every 97 samples from sample 50 on (after the 30 learning samples, which hold
    // none), and once two in a row (1456 and 1457). Each of 8 noise units stays under the
    // outlier floor `k + h` (about 10.4 units at one sample a minute): none pages, and the
    // clipping keeps even two in a row from raising a shift.
    let spiky = |size: f64| {
        accuracy(3000, 13, move |i| match (i % 97, i) {
            (50, _) | (_, 1457) => -0.01 * size,
            _ => 0.0,
        })
    };
    let small = backtest(
        &rule(""),
        &version(),
        &samples(&spiky(8.0), 0),
        SeriesState::default(),
    );
    assert_eq!(events(&small), vec![]);
    // At 20 noise units the first spike is beyond anything the series had shown: it pages
    // as an outlier, and its alert clears once the evidence it began is gone. The later
    // ones are as large as it, this series' usual extremes: none pages, nor does the pair.
    let large = backtest(
        &rule(r#","auto_resolve":true,"clear_after_evaluations":1"#),
        &version(),
        &samples(&spiky(20.0), 0),
        SeriesState::default(),
    );
    assert_eq!(
        events(&large),
        vec![
            (50, FIRED, Some(50)),
            (56, BacktestEventKind::AutoResolved, None)
        ]
    );
    let alert = large.last_alert.unwrap_or_else(|| panic!("no alert"));
    assert!(
        alert.message.contains("outlying sample"),
        "{}",
        alert.message
    );
}

#[test]
fn an_outlier_pages_alone_and_clears_and_a_large_drop_pages_at_its_first_sample_once() {
    // A dip of 40 noise units at 300 (beyond anything the series had shown), then a drop
    // of 70 from 1000 on, whose first sample is an outlier too (beyond 1.5 times 40).
    let values = accuracy(1200, 15, |i| match i {
        300 => -0.4,
        1000.. => -0.7,
        _ => 0.0,
    });
    let result = backtest(
        &rule(r#","auto_resolve":true,"clear_after_evaluations":1"#),
        &version(),
        &samples(&values, 0),
        SeriesState::default(),
    );
    let resolved = BacktestEventKind::AutoResolved;
    assert_eq!(
        events(&result),
        vec![
            (300, FIRED, Some(300)),
            (308, resolved, None),
            (1000, FIRED, Some(1000)),
            (1004, BacktestEventKind::Shifted, Some(1000)),
        ]
    );
    let alert = result.last_alert.unwrap_or_else(|| panic!("no alert"));
    assert!(alert.message.contains("shifted down"), "{}", alert.message);
    // The outlier's own alert said what it was.
    let outlier_only = backtest(
        &rule(""),
        &version(),
        &samples(&values[..320], 0),
        SeriesState::default(),
    );
    let alert = outlier_only
        .last_alert
        .unwrap_or_else(|| panic!("no alert"));
    assert!(
        alert.message.contains("outlying sample"),
        "{}",
        alert.message
    );
}

#[test]
fn a_recovery_clears_and_a_later_shift_is_folded_into_the_open_alert() {
    let values = accuracy(1400, 14, |i| match i {
        300..=599 => -0.03,
        900.. => -0.04,
        _ => 0.0,
    });
    let result = backtest(
        &rule(r#","clear_after_evaluations":2"#),
        &version(),
        &samples(&values, 0),
        SeriesState::default(),
    );
    assert_eq!(
        events(&result),
        vec![
            (305, FIRED, Some(300)),
            (610, BacktestEventKind::ConditionCleared, None),
            (904, BacktestEventKind::Shifted, Some(899)),
        ]
    );
}

#[test]
fn a_restart_or_another_server_mid_change_replays_the_same() {
    let values = accuracy(600, 15, |i| if i >= 300 { -0.03 } else { 0.0 });
    let rule = rule("");
    let whole = backtest(
        &rule,
        &version(),
        &samples(&values, 0),
        SeriesState::default(),
    );
    for cut in [200, 300, 301, 302, 303] {
        let first = backtest(
            &rule,
            &version(),
            &samples(&values[..cut], 0),
            SeriesState::default(),
        );
        // The state as another process loads it (the store's record of the detail reads
        // back exactly: its own tests).
        let loaded = first.final_state.clone();
        let second = backtest(&rule, &version(), &samples(&values, cut), loaded);
        let mut joined = events(&first);
        joined.extend(events(&second));
        // Alert numbers restart in the second replay; the firing itself is the same.
        assert_eq!(joined, events(&whole), "cut at {cut}");
        assert_eq!(
            second.final_state.detail.change_point, whole.final_state.detail.change_point,
            "cut at {cut}"
        );
    }
}

#[test]
fn the_detector_state_is_kept_in_the_rule_state() {
    let values = accuracy(100, 16, |_| 0.0);
    let result = backtest(
        &rule(""),
        &version(),
        &samples(&values, 0),
        SeriesState::default(),
    );
    let detector: &ChangePointState = result
        .final_state
        .detail
        .change_point
        .as_ref()
        .unwrap_or_else(|| panic!("no detector state"));
    assert!(detector.is_learnt());
    assert_eq!(detector.last_at, Some(at(99)));
    assert_eq!(result.final_state.last_observed_at, Some(at(99)));
}

#[test]
fn change_point_rules_validate_naming_the_field() {
    let rule = rule("");
    assert_eq!(rule.anti_flap.for_evaluations, 1);
    let Condition::ChangePoint(condition) = rule.condition else {
        panic!("{:?}", rule.condition)
    };
    assert_eq!(condition.change_direction, ChangeDirection::Worse);
    assert_eq!(condition.min_shift_sd, Some(1.0));
    // No interval stated: none stored, the detector's sampling-aware default applies.
    assert_eq!(condition.false_alarm_interval_samples, None);
    assert_eq!(condition.false_alarm_interval_hours, None);
    assert_eq!(
        condition
            .settings(Direction::HigherIsBetter)
            .false_alarm_interval,
        DEFAULT_FALSE_ALARM_INTERVAL
    );
    let base = r#""name":"r","model":"m","metric":"accuracy""#;
    for (extra, field) in [
        (
            r#","condition_type":"change_point","for_evaluations":3"#,
            "for_evaluations",
        ),
        (
            r#","min_shift_sd":1,"min_shift_percentage":5"#,
            "min_shift_sd",
        ),
        (r#","min_shift_percentage":-5"#, "min_shift_percentage"),
        (
            r#","false_alarm_interval_samples":3"#,
            "false_alarm_interval_samples",
        ),
        (
            r#","false_alarm_interval_samples":300,"false_alarm_interval_hours":2"#,
            "false_alarm_interval_hours",
        ),
        (r#","change_direction":"sideways""#, "change_direction"),
        (
            r#","condition_type":"threshold","min_shift_sd":2"#,
            "condition_type",
        ),
        (r#","condition_type":"jump""#, "condition_type"),
        (
            r#","min_shift_sd":2,"threshold_value":1,"comparison_operator":"lt""#,
            "condition",
        ),
    ] {
        let spec: RuleSpec = serde_json::from_str(&format!("{{{base}{extra}}}"))
            .unwrap_or_else(|e| panic!("{extra}: {e}"));
        let error = Rule::create(spec, RuleId::from_u32(1), at(0))
            .err()
            .unwrap_or_else(|| panic!("{extra} accepted"));
        assert_eq!(error.field, field, "{extra}: {error}");
    }
    // Percent shifts and durations (the store's rule record keeps them).
    let spec: RuleSpec = serde_json::from_str(&format!(
        r#"{{{base},"min_shift_percentage":5,"false_alarm_interval_hours":720,"change_direction":"both"}}"#
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let rule = Rule::create(spec, RuleId::from_u32(1), at(0)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        rule.condition,
        Condition::ChangePoint(ChangePointCondition {
            change_direction: ChangeDirection::Both,
            min_shift_percentage: Some(p),
            false_alarm_interval_hours: Some(h),
            ..
        }) if p == 5.0 && h == 720.0
    ));
    // Switching a change-point rule to a threshold drops its settings and its for = 1.
    let patch: RulePatch =
        serde_json::from_str(r#"{"threshold_value":0.8,"comparison_operator":"lt"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
    let switched = rule.update(patch, at(1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(switched.condition, Condition::Threshold { .. }));
    assert_eq!(switched.anti_flap.for_evaluations, 3);
    let patch: RulePatch = serde_json::from_str(r#"{"condition_type":"change_point"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let back = switched
        .update(patch, at(2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(back.condition, Condition::ChangePoint(_)));
    assert_eq!(back.anti_flap.for_evaluations, 1);
}

#[test]
fn on_a_daily_cycle_only_the_first_days_swings_and_a_real_drop_fire() {
    // Accuracy with a daily swing of ±0.03 (three noise units) sampled every 5 minutes
    // for 8 days, and a drop of 0.015 (1.5 noise units) from sample 1700 on. The
    // detector learns the cycle and subtracts it from the third day on (sample 606), so
    // backtest and live evaluation, sharing this replay, page the same.
    let count = 8 * 288;
    let values = accuracy(count, 16, |i| {
        let phase = std::f64::consts::TAU * (i % 288) as f64 / 288.0;
        -0.03 * phase.cos() - if i >= 1700 { 0.015 } else { 0.0 }
    });
    let observations: Vec<(Timestamp, Observation)> = samples(&values, 0)
        .into_iter()
        .enumerate()
        .map(|(i, (_, observation))| {
            let t = at(5 * i as i64);
            let Observation::Sample {
                value, direction, ..
            } = observation
            else {
                unreachable!()
            };
            (
                t,
                Observation::Sample {
                    at: t,
                    value,
                    direction,
                },
            )
        })
        .collect();
    let result = backtest(
        &rule(r#","auto_resolve":true"#),
        &version(),
        &observations,
        SeriesState::default(),
    );
    let by_sample: Vec<(i64, BacktestEventKind, Option<i64>)> = events(&result)
        .into_iter()
        .map(|(minute, kind, onset)| (minute / 5, kind, onset.map(|m| m / 5)))
        .collect();
    // Two swings of the first two days page and resolve (the second when the profile
    // takes over and the levels restart); the third day on, only the drop pages.
    let resolved = BacktestEventKind::AutoResolved;
    assert_eq!(
        by_sample,
        vec![
            (224, FIRED, Some(196)),
            (391, resolved, None),
            (537, FIRED, Some(482)),
            (608, resolved, None),
            (1708, FIRED, Some(1694)),
        ]
    );
}
