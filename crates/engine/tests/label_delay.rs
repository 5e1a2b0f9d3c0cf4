//! Labels arriving late, heavy-tailed and biased (issue 22): the wrong predictions' labels
//! come fast (a chargeback is filed within minutes, a good transaction is confirmed days
//! later), so a window's first labels make its accuracy look far worse than it is. A rule
//! on the computed accuracy must ignore that, and still page for a real drop as soon as
//! the dropped window's coverage lets it be judged.
//!
//! Most correct predictions are confirmed more than a day after they were made, so the
//! dropped window is judged after the engine's 24-hour paging horizon: it must page then
//! all the same (it was never seen before).
//!
//! A seeded simulation, every 10 minutes for 80 hours, through the engine as `serve` runs
//! it: predictions and the labels that arrived by then are logged, due windows are
//! judged, rules evaluated.

use std::sync::Arc;

use modelwatch_core::alerting::{AlertConfig, AlertFilter, RuleSpec};
use modelwatch_core::predictions::{
    Features, Label, LabelDelay, Output, Prediction, PredictionConfig, PredictionId, Task,
    WindowLength,
};
use modelwatch_core::{ModelName, Timestamp, Version};
use modelwatch_engine::{Engine, SequentialIds};
use modelwatch_store::{MemoryStore, Stores};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// A whole hour, so windows start on it.
const T0: i64 = 472_222 * HOUR;
const WINDOWS: i64 = 36;
/// The windows from this one on really are worse.
const DROP_FROM: i64 = 24;
const PER_WINDOW: i64 = 200;
const STEP: i64 = 10 * MINUTE;
const STEPS: i64 = 80 * HOUR / STEP;
const MIN_COVERAGE: f64 = 0.8;
/// The rule's line: good windows are at 0.92, dropped ones at 0.72.
const ALERT_BELOW: f64 = 0.85;

struct Event {
    prediction: Prediction,
    correct: bool,
    label: Label,
    label_at: i64,
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms).expect("valid")
}

/// Pareto (shape 1.5): most labels soon, a long tail of very late ones.
fn pareto(rng: &mut fastrand::Rng, scale_ms: f64) -> i64 {
    let u = 1.0 - rng.f64(); // (0, 1]
    (scale_ms / u.powf(1.0 / 1.5)) as i64
}

fn simulate(seed: u64) -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let model = ModelName::parse("fraud").expect("model");
    let mut events = Vec::new();
    for window in 0..WINDOWS {
        let accuracy = if window >= DROP_FROM { 0.72 } else { 0.92 };
        for i in 0..PER_WINDOW {
            let time = window * HOUR + i * HOUR / PER_WINDOW;
            let fraud = rng.bool();
            let correct = rng.f64() < accuracy;
            let predicted_fraud = fraud == correct;
            let score = if predicted_fraud { 0.8 } else { 0.2 };
            let id = PredictionId::parse(&format!("p{window}-{i}")).expect("id");
            // Errors are labelled within minutes, correct predictions within days.
            let scale = if correct { 12 * HOUR } else { 10 * MINUTE };
            let delay = pareto(&mut rng, scale as f64);
            events.push(Event {
                prediction: Prediction {
                    id: id.clone(),
                    model: model.clone(),
                    version: Version::parse("v1").expect("version"),
                    dataset: None,
                    timestamp: at(time),
                    output: Output::Classification {
                        class: None,
                        score: Some(score),
                    },
                    features: Features::new(),
                },
                correct,
                label: Label::new(id, model.clone(), f64::from(u8::from(fraud)), None)
                    .expect("label"),
                label_at: time + delay,
            });
        }
    }
    events
}

/// The first step at which every window up to `window` had reached the minimum
/// coverage: when `window` can be judged (windows are judged in order).
fn judgeable_at(events: &[Event], window: i64) -> i64 {
    (0..=window)
        .map(|w| {
            let mut arrivals: Vec<i64> = events
                .iter()
                .filter(|e| (e.prediction.timestamp.as_millis() - T0) / HOUR == w)
                .map(|e| e.label_at.max((w + 1) * HOUR))
                .collect();
            arrivals.sort_unstable();
            let needed = (MIN_COVERAGE * PER_WINDOW as f64).ceil() as usize;
            let covered = arrivals[needed - 1];
            // Evaluated at the first step at or after it.
            (covered + STEP - 1) / STEP * STEP
        })
        .max()
        .expect("windows")
}

/// How many good windows looked bad at some step on the labels they had by then.
fn good_windows_that_looked_bad(events: &[Event]) -> usize {
    (0..DROP_FROM)
        .filter(|&w| {
            let window: Vec<&Event> = events
                .iter()
                .filter(|e| (e.prediction.timestamp.as_millis() - T0) / HOUR == w)
                .collect();
            (1..=STEPS).any(|step| {
                let labelled: Vec<&&Event> = window
                    .iter()
                    .filter(|e| e.label_at <= step * STEP)
                    .collect();
                let right = labelled.iter().filter(|e| e.correct).count();
                labelled.len() >= 10 && (right as f64) < ALERT_BELOW * labelled.len() as f64
            })
        })
        .count()
}

#[tokio::test]
async fn a_real_drop_pages_once_covered_and_the_fast_biased_labels_never_do() {
    let events = simulate(22);
    let looked_bad = good_windows_that_looked_bad(&events);
    assert!(
        looked_bad >= 20,
        "the trap is real: {looked_bad} of {DROP_FROM} good windows looked bad on their first labels"
    );

    let stores = Stores::of(Arc::new(MemoryStore::new()));
    let engine =
        Engine::new(&stores, AlertConfig::default()).with_ids(Arc::new(SequentialIds::default()));
    let model = ModelName::parse("fraud").expect("model");
    engine
        .set_prediction_config(
            &model,
            PredictionConfig::new(WindowLength::HOUR, Task::Classification, 0.5, MIN_COVERAGE)
                .expect("config")
                .with_max_label_delay(LabelDelay::parse("7d").expect("7d")),
        )
        .await
        .expect("config");
    engine
        .create_rule(
            RuleSpec {
                name: "Computed accuracy low".into(),
                model: "fraud".into(),
                metric: "accuracy".into(),
                dataset: Some("predictions".into()),
                threshold_value: Some(ALERT_BELOW),
                comparison_operator: Some("lt".into()),
                for_evaluations: Some(1),
                ..RuleSpec::default()
            },
            at(0),
        )
        .await
        .expect("rule");

    let mut first_alert = None;
    for step in 1..=STEPS {
        let (from, to) = ((step - 1) * STEP, step * STEP);
        let now = at(to);
        let predictions: Vec<Prediction> = events
            .iter()
            .filter(|e| (from..to).contains(&(e.prediction.timestamp.as_millis() - T0)))
            .map(|e| e.prediction.clone())
            .collect();
        if !predictions.is_empty() {
            engine
                .log_predictions(predictions, now)
                .await
                .expect("predictions");
        }
        let labels: Vec<Label> = events
            .iter()
            .filter(|e| (from..to).contains(&e.label_at))
            .map(|e| e.label.clone())
            .collect();
        if !labels.is_empty() {
            engine.log_labels(labels, now).await.expect("labels");
        }
        engine.judge_windows(now).await.expect("judge");
        let report = engine.evaluate_all(now).await.expect("evaluate");
        if first_alert.is_none() {
            first_alert = report.alerts_created.first().map(|a| (to, a.clone()));
        }
    }

    let (fired_at, alert) = first_alert.expect("the real drop pages");
    // Not before the first dropped window could be judged, and at that very step.
    let judgeable = judgeable_at(&events, DROP_FROM);
    assert!(
        judgeable - DROP_FROM * HOUR > 24 * HOUR,
        "judged past the paging horizon"
    );
    assert_eq!(fired_at, judgeable, "fired at {fired_at}");
    assert_eq!(alert.first_seen, at(judgeable), "paged as it was judged");
    let coverage = alert.label_coverage.expect("the alert says its coverage");
    assert!(coverage >= MIN_COVERAGE, "decided at coverage {coverage}");
    assert!(alert.value < ALERT_BELOW);
    // One alert, for the drop; none for a good window that only looked bad.
    let alerts = engine
        .list_alerts(&AlertFilter::default())
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
}
