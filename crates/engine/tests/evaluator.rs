#![allow(clippy::unwrap_used)]
//! The evaluation loop through its public surface: samples announced to the event hub
//! are evaluated after the debounce, and the alert they fire is published on the hub.

use std::time::Duration;

use modelwatch_core::alerting::{AlertConfig, RuleSpec};
use modelwatch_core::{Sample, SeriesKey, Timestamp};
use modelwatch_engine::evaluator::{Evaluator, Schedule};
use modelwatch_engine::events::{AlertChange, Arrivals, Event};
use modelwatch_engine::{Clock, Engine, EventHub};

#[tokio::test]
async fn samples_announced_to_the_hub_fire_their_alert_after_the_debounce() {
    let stores = modelwatch_store::open("memory").await.unwrap();
    let engine = Engine::new(&stores, AlertConfig::default());
    let now = Timestamp::from_millis(1_700_000_000_000).unwrap();
    let spec = RuleSpec {
        name: "low".into(),
        model: "fraud".into(),
        metric: "accuracy".into(),
        threshold_value: Some(0.9),
        comparison_operator: Some("lt".into()),
        severity: Some("high".into()),
        for_evaluations: Some(1),
        ..RuleSpec::default()
    };
    let rule = engine.create_rule(spec, now).await.unwrap();
    let hub = EventHub::start();
    let mut events = hub.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The hourly full pass runs once at the start, before any sample: only the debounced
    // pass can see the sample.
    let schedule = Schedule {
        interval: Duration::from_secs(3600),
        debounce: Duration::from_millis(50),
    };
    let evaluator = Evaluator::new(engine, hub.clone(), Clock::new(move || now), schedule);
    let running = tokio::spawn(evaluator.run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let key = SeriesKey::parse("fraud", "v1", "accuracy").unwrap();
    let samples = vec![Sample {
        model: key.model,
        version: key.version,
        metric: key.metric,
        value: 0.5,
        timestamp: now,
        dataset: None,
    }];
    let arrivals = Arrivals::of(&samples);
    stores.metrics.append(samples).await.unwrap();
    hub.samples_stored(arrivals);

    let fired = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Alert(event) = events.recv().await.unwrap() {
                return event;
            }
        }
    })
    .await
    .expect("an alert event within 10 s");
    assert_eq!(fired.change, AlertChange::Fired);
    assert_eq!(fired.alert.rule_id, rule.id);
    assert_eq!(fired.alert.value, 0.5);
    let _ = stop.send(());
    running.await.unwrap();
}
