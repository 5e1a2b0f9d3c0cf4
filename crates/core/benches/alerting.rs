//! Speed of the pure alerting state machine (issue 4, point 10): one evaluation pass over
//! 10,000 enabled rules, each on its own series, and a week of per-minute replay.
//!
//! Run with `cargo bench -p modelwatch-core --bench alerting`. It prints figures rather
//! than asserting them: the budget (≤ 1 s for 10,000 rules) covers the engine's reads too,
//! so the machine itself should take a small fraction of it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use modelwatch_core::alerting::{
    backtest, evaluate, Alert, AlertConfig, AlertId, AlertWrite, Decision, EvaluationContext,
    Observation, RateLedger, Rule, RuleId, RuleSpec, SeriesState, Severity,
};
use modelwatch_core::{Timestamp, Version};

const RULES: usize = 10_000;
const MINUTE_MS: i64 = 60_000;
const WEEK_MINUTES: usize = 7 * 24 * 60;
const START_MS: i64 = 1_700_000_000_000;

fn at(minute: i64) -> Timestamp {
    Timestamp::from_millis(START_MS + minute * MINUTE_MS).expect("bench times are in range")
}

fn rules() -> Vec<Rule> {
    (0..RULES)
        .map(|i| {
            let (condition, metric) = if i % 2 != 1 {
                (r#""threshold_value":0.9,"comparison_operator":"lt""#, "accuracy")
            } else {
                (r#""threshold_value":250,"comparison_operator":"gt","clear_threshold":200"#, "latency")
            };
            let json = format!(
                r#"{{"name":"rule {i}","model":"model_{}","version":"v{}","metric":"{metric}",{condition},
                    "severity":"high","auto_resolve":{},"cooldown_minutes":30,"notify_channels":["slack"]}}"#,
                i / 10,
                i % 10,
                i % 3 < 1
            );
            let spec: RuleSpec = serde_json::from_str(&json).expect("bench rules are valid");
            Rule::create(spec, RuleId::from_u32(i as u32), at(0)).expect("bench rules are valid")
        })
        .collect()
}

/// A value per rule and minute that wanders across the rule's threshold now and then.
fn value(rule_index: usize, minute: usize) -> f64 {
    let phase = (minute / (5 + rule_index % 17) + rule_index) % 4;
    let breaching = phase == 0;
    match (rule_index % 2, breaching) {
        (0, true) => 0.85,
        (0, false) => 0.95,
        (_, true) => 300.0,
        (_, false) => 150.0,
    }
}

struct Engine {
    states: Vec<SeriesState>,
    alerts: Vec<Option<Alert>>,
    ledger: RateLedger,
    next_id: u32,
    fired: usize,
}

/// One evaluation pass of every rule at `minute`, applying results as the engine would.
fn pass(
    rules: &[Rule],
    versions: &[Version],
    engine: &mut Engine,
    config: &AlertConfig,
    minute: usize,
) {
    let now = at(minute as i64);
    for (i, rule) in rules.iter().enumerate() {
        engine.next_id = engine.next_id.wrapping_add(1);
        let new_alert_id = AlertId::from_u32(engine.next_id);
        let ctx = EvaluationContext {
            now,
            historical: false,
            config,
            rate: engine.ledger.counts(&rule.model, now),
            silences: &[],
            new_alert_id: &new_alert_id,
            label_coverage: None,
        };
        let observation = Observation::Value {
            at: now,
            value: value(i, minute),
        };
        let evaluation = evaluate(
            rule,
            &versions[i],
            None,
            &engine.states[i],
            engine.alerts[i].as_ref(),
            &observation,
            &ctx,
        );
        if evaluation.counts_against_rate_limits() {
            engine.ledger.record(&rule.model, now);
        }
        if matches!(evaluation.decision, Decision::Fired { .. }) {
            engine.fired += 1;
        }
        if let Some(write) = evaluation.alert {
            engine.alerts[i] = Some(match write {
                AlertWrite::Insert(alert) | AlertWrite::Update(alert) => alert,
            });
        }
        engine.states[i] = evaluation.state;
    }
}

fn main() {
    let rules = rules();
    let versions: Vec<Version> = rules
        .iter()
        .map(|r| r.version.clone().expect("bench rules name a version"))
        .collect();
    let config = AlertConfig {
        max_alerts_per_hour: 100,
        max_alerts_per_model_per_hour: 5,
        min_severity_to_notify: Severity::Low,
        ..AlertConfig::default()
    };
    let mut engine = Engine {
        states: vec![SeriesState::default(); RULES],
        alerts: vec![None; RULES],
        ledger: RateLedger::new(),
        next_id: 0,
        fired: 0,
    };

    // An hour of per-minute passes, so that states, open alerts and rate limits are warm.
    let passes = 60;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for minute in 0..passes {
        let pass_started = Instant::now();
        pass(&rules, &versions, &mut engine, &config, minute);
        slowest = slowest.max(pass_started.elapsed());
    }
    let total = started.elapsed();
    println!(
        "evaluate: {RULES} rules x {passes} passes: mean {:.2} ms per pass, slowest {:.2} ms, {:.0} ns per evaluation; {} alerts fired",
        total.as_secs_f64() * 1e3 / passes as f64,
        slowest.as_secs_f64() * 1e3,
        total.as_nanos() as f64 / (RULES * passes) as f64,
        engine.fired
    );

    // Backtest: a week of per-minute history for each of 1,000 rules.
    let sample_rules = 1_000;
    let observations: Vec<Vec<(Timestamp, Observation)>> = (0..sample_rules)
        .map(|i| {
            (0..WEEK_MINUTES)
                .map(|minute| {
                    let now = at(minute as i64);
                    (
                        now,
                        Observation::Value {
                            at: now,
                            value: value(i, minute),
                        },
                    )
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut events = 0;
    for (i, history) in observations.iter().enumerate() {
        let replay = backtest(&rules[i], &versions[i], history, SeriesState::default());
        events += black_box(replay.events.len());
    }
    let total = started.elapsed();
    println!(
        "backtest: {sample_rules} rules x {WEEK_MINUTES} minutes: {:.2} ms per rule-week, {:.0} ns per step, {:.0} ms in all; {events} events",
        total.as_secs_f64() * 1e3 / sample_rules as f64,
        total.as_nanos() as f64 / (sample_rules * WEEK_MINUTES) as f64,
        total.as_secs_f64() * 1e3
    );
}
