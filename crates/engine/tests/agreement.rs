//! `check` at an instant and a degradation rule evaluated at the sample just before it
//! agree, for every way a rule can compare (latest value, a window with the long-run
//! test, a seasonal baseline, its own significance level, `auto`): one function decides
//! both. On a constructed series with a sustained step; the demo data has its own test in
//! the binary's crate.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use modelwatch_core::alerting::observe::reading;
use modelwatch_core::alerting::{AlertConfig, Observation, Rule, RuleSpec};
use modelwatch_core::{Sample, SeriesKey, TimeRange, Timestamp, Version};
use modelwatch_engine::{Engine, SequentialIds};
use modelwatch_store::{MemoryStore, Stores};

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60;

fn at(minute: i64) -> Timestamp {
    Timestamp::from_millis(T0 + minute * MINUTE).unwrap()
}

/// Eight days of per-minute accuracy around 0.90 with a little daily cycle and noise; 6 %
/// lower from minute `step` on.
fn accuracy(minute: i64, step: i64) -> f64 {
    let noise = ((minute * 7919 + 13) % 101) as f64 / 101.0 - 0.5;
    let cycle = (minute as f64 / DAY as f64 * std::f64::consts::TAU).sin();
    let level = if minute >= step { 0.90 * 0.94 } else { 0.90 };
    ((level + 0.004 * cycle + 0.006 * noise) * 1e6).round() / 1e6
}

async fn engine_with(step: i64, minutes: i64) -> (Engine, Stores) {
    let stores = Stores::of(Arc::new(MemoryStore::new()));
    let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
    let samples = (0..minutes)
        .map(|minute| Sample {
            model: key.model.clone(),
            version: key.version.clone(),
            metric: key.metric.clone(),
            value: accuracy(minute, step),
            timestamp: at(minute),
            dataset: None,
        })
        .collect();
    stores.metrics.append(samples).await.unwrap();
    let engine =
        Engine::new(&stores, AlertConfig::default()).with_ids(Arc::new(SequentialIds::default()));
    (engine, stores)
}

fn spec(extra: impl FnOnce(&mut RuleSpec)) -> RuleSpec {
    let mut spec = RuleSpec {
        name: "accuracy drop".into(),
        model: "fraud".into(),
        version: Some("v1".into()),
        metric: "accuracy".into(),
        max_degradation_percentage: Some(3.0),
        for_evaluations: Some(1),
        ..RuleSpec::default()
    };
    extra(&mut spec);
    spec
}

/// Every observation of `rule` over `range` equals what `check` says at the instant just
/// after its sample, with the windows and options the rule stands for. Returns them.
async fn agrees_with_check(
    engine: &Engine,
    rule: &Rule,
    range: TimeRange,
) -> Vec<(Timestamp, Observation)> {
    let version = Version::parse("v1").unwrap();
    let observed = engine.observe_range(rule, &version, range).await.unwrap();
    assert!(!observed.is_empty());
    for (t, observation) in &observed {
        let check = engine.check_as_rule(rule, &version, *t).await.unwrap();
        assert_eq!(
            reading(check.unwrap(), *t),
            *observation,
            "{} at {t}",
            rule.name
        );
    }
    observed
}

fn methods(observed: &[(Timestamp, Observation)]) -> Vec<String> {
    let mut methods: Vec<String> = observed
        .iter()
        .filter_map(|(_, o)| match o {
            Observation::Degradation(reading) => reading.test.as_ref().map(|t| t.method.clone()),
            _ => None,
        })
        .collect();
    methods.sort();
    methods.dedup();
    methods
}

fn first_breach(observed: &[(Timestamp, Observation)], max: f64) -> Option<Timestamp> {
    observed.iter().find_map(|(t, o)| match o {
        Observation::Degradation(r) if r.significant && r.degradation_percentage > max => Some(*t),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_every_kind_of_degradation_rule_agree_at_every_instant() {
    let step = 8 * DAY - 6 * 60;
    let (engine, _stores) = engine_with(step, 8 * DAY).await;
    let range = TimeRange::new(at(8 * DAY - 12 * 60), at(8 * DAY));
    let rules = [
        spec(|s| s.comparison_hours = Some(2)),
        spec(|s| {
            s.comparison_hours = Some(1);
            s.seasonal = Some("daily".into());
            s.alpha = Some(0.005);
        }),
        spec(|_| {}),
        spec(|s| {
            s.comparison = Some("latest".into());
            s.alpha = Some(0.0001);
        }),
    ];
    let mut observed = Vec::new();
    for spec in rules {
        let rule = engine.create_rule(spec, at(0)).await.unwrap();
        observed.push(agrees_with_check(&engine, &rule, range).await);
    }
    // The 2-hour window is judged by the long-run test on this dense week, and finds the
    // step; so does auto, which picks the same window here.
    assert!(
        methods(&observed[0])
            .iter()
            .any(|m| m.starts_with("long_run_")),
        "{:?}",
        methods(&observed[0])
    );
    assert_eq!(observed[2], observed[0]);
    assert_eq!(
        methods(&observed[3]),
        ["prediction_interval+weekly_reference"]
    );
    assert!(first_breach(&observed[0], 3.0).is_some());
    // Observed on a 10-minute cadence: the range's first sample, then the first of each
    // of the 72 slots of 12 hours; the latest value at every sample.
    assert_eq!(observed[0].len(), 73);
    assert_eq!(observed[3].len(), 12 * 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_rule_fires_live_at_the_first_instant_check_calls_degraded() {
    let step = 8 * DAY - 6 * 60;
    let (engine, stores) = engine_with(step, step - 60).await;
    let rule = engine
        .create_rule(spec(|s| s.comparison_hours = Some(2)), at(0))
        .await
        .unwrap();
    engine
        .evaluate_until_counted(None, at(step - 61))
        .await
        .unwrap();
    // Then a sample a minute, each evaluated as it arrives.
    let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
    let mut fired = None;
    for minute in step - 60..step + 180 {
        stores
            .metrics
            .append_one(Sample {
                model: key.model.clone(),
                version: key.version.clone(),
                metric: key.metric.clone(),
                value: accuracy(minute, step),
                timestamp: at(minute),
                dataset: None,
            })
            .await
            .unwrap();
        let report = engine.evaluate_all(at(minute)).await.unwrap();
        if let Some(alert) = report.alerts_created.first() {
            fired = Some(alert.first_seen);
            break;
        }
    }
    let range = TimeRange::new(at(step - 60), at(step + 180));
    let observed = agrees_with_check(&engine, &rule, range).await;
    let expected = first_breach(&observed, 3.0);
    assert_eq!(fired, expected);
    // The step is found 66 minutes after it began, at the seventh 10-minute instant of
    // this series' slots.
    assert_eq!(fired.map(|t| t.millis_since(at(step)) / MINUTE), Some(66));
}
