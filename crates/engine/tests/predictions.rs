//! Predictions and labels becoming metric series (issue 22): windows recomputed as labels
//! arrive, in any order, with their label coverage.

use std::sync::Arc;

use modelwatch_core::predictions::{
    Label, Output, Prediction, PredictionConfig, PredictionId, Task, WindowLength,
};
use modelwatch_core::{Metric, ModelName, SeriesKey, TimeRange, Timestamp, Version};
use modelwatch_engine::predictions::{log_labels, log_predictions};
use modelwatch_store::{MemoryStore, Stores};

const HOUR: i64 = 3_600_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).expect("valid")
}

fn prediction(id: &str, ms: i64, output: Output) -> Prediction {
    Prediction {
        id: PredictionId::parse(id).expect("id"),
        model: ModelName::parse("fraud").expect("model"),
        version: Version::parse("v1").expect("version"),
        dataset: None,
        timestamp: at(ms),
        output,
    }
}

fn score(value: f64) -> Output {
    Output::Classification {
        class: None,
        score: Some(value),
    }
}

fn label(id: &str, truth: f64) -> Label {
    Label::new(
        PredictionId::parse(id).expect("id"),
        ModelName::parse("fraud").expect("model"),
        truth,
        None,
    )
    .expect("label")
}

async fn values(stores: &Stores, metric: &str) -> Vec<(i64, f64)> {
    let key = SeriesKey::parse("fraud", "v1", metric).expect("key");
    stores
        .metrics
        .range(&key, TimeRange::new(at(0), at(100 * HOUR)))
        .await
        .expect("range")
        .into_iter()
        .map(|p| (p.timestamp.as_millis(), p.value))
        .collect()
}

fn hourly(task: Task, threshold: f64) -> PredictionConfig {
    PredictionConfig::new(WindowLength::HOUR, task, threshold, 0.0).expect("config")
}

#[tokio::test]
async fn a_window_is_revised_as_its_labels_arrive() {
    let stores = Stores::of(Arc::new(MemoryStore::new()));
    let model = ModelName::parse("fraud").expect("model");
    stores
        .predictions
        .set_prediction_config(&model, hourly(Task::Classification, 0.5))
        .await
        .expect("config");
    // Window 1: four predictions; window 2: one.
    let (written, recomputed) = log_predictions(
        &stores,
        vec![
            prediction("a", HOUR + 1, score(0.9)),
            prediction("b", HOUR + 2, score(0.8)),
            prediction("c", HOUR + 3, score(0.3)),
            prediction("d", 2 * HOUR - 1, score(0.1)),
            prediction("e", 2 * HOUR, score(0.7)),
        ],
    )
    .await
    .expect("predictions");
    assert_eq!(written.accepted, 5);
    assert_eq!(recomputed.windows, 2);
    assert_eq!(
        values(&stores, "label_coverage").await,
        vec![(HOUR, 0.0), (2 * HOUR, 0.0)]
    );
    assert_eq!(values(&stores, "accuracy").await, vec![]);
    // Two labels, and one for a prediction that has not arrived.
    let (labels, _) = log_labels(
        &stores,
        vec![label("a", 1.0), label("c", 1.0), label("late", 0.0)],
        at(3 * HOUR),
    )
    .await
    .expect("labels");
    assert_eq!((labels.labelled, labels.pending), (2, 1));
    assert_eq!(values(&stores, "label_coverage").await[0], (HOUR, 0.5));
    assert_eq!(values(&stores, "accuracy").await, vec![(HOUR, 0.5)]);
    // The rest arrive; the window's points are revised in place.
    log_labels(
        &stores,
        vec![label("b", 0.0), label("d", 0.0)],
        at(3 * HOUR),
    )
    .await
    .expect("more labels");
    assert_eq!(values(&stores, "label_coverage").await[0], (HOUR, 1.0));
    // Scores 0.9 0.8 0.3 0.1, truths 1 0 1 0: predicted 1 1 0 0.
    assert_eq!(values(&stores, "accuracy").await, vec![(HOUR, 0.5)]);
    assert_eq!(values(&stores, "precision").await, vec![(HOUR, 0.5)]);
    assert_eq!(values(&stores, "auc_roc").await, vec![(HOUR, 0.75)]);
    // The pending label joins its prediction when it comes, in window 2.
    let (late, recomputed) =
        log_predictions(&stores, vec![prediction("late", 2 * HOUR + 5, score(0.2))])
            .await
            .expect("late");
    assert_eq!(
        (late.accepted, late.labelled, recomputed.windows),
        (1, 1, 1)
    );
    assert_eq!(
        values(&stores, "label_coverage").await,
        vec![(HOUR, 1.0), (2 * HOUR, 0.5)]
    );
    assert_eq!(
        values(&stores, "accuracy").await,
        vec![(HOUR, 0.5), (2 * HOUR, 1.0)]
    );
}

#[tokio::test]
async fn a_model_without_a_config_gets_hourly_windows_of_its_outputs_task() {
    let stores = Stores::of(Arc::new(MemoryStore::new()));
    log_predictions(
        &stores,
        vec![
            prediction("1", 10, Output::Regression { value: 2.5 }),
            prediction("2", 20, Output::Regression { value: 0.0 }),
        ],
    )
    .await
    .expect("predictions");
    log_labels(&stores, vec![label("1", 3.0), label("2", -0.5)], at(HOUR))
        .await
        .expect("labels");
    assert_eq!(values(&stores, "mae").await, vec![(0, 0.5)]);
    assert_eq!(values(&stores, "r2_score").await.len(), 1);
    assert!(stores
        .metrics
        .latest(&SeriesKey::parse("fraud", "v1", Metric::Accuracy.as_str()).expect("key"))
        .await
        .expect("latest")
        .is_none());
}

#[tokio::test]
async fn the_engine_logs_through_its_stores_and_returns_the_samples_it_wrote() {
    let stores = Stores::of(Arc::new(MemoryStore::new()));
    let engine = modelwatch_engine::Engine::new(&stores, Default::default());
    let model = ModelName::parse("fraud").expect("model");
    assert_eq!(engine.prediction_config(&model).await.expect("read"), None);
    let config = hourly(Task::Classification, 0.5);
    engine
        .set_prediction_config(&model, config)
        .await
        .expect("config");
    assert_eq!(
        engine.prediction_config(&model).await.expect("read"),
        Some(config)
    );
    let logged = engine
        .log_predictions(vec![
            prediction("a", HOUR + 1, score(0.9)),
            prediction("b", HOUR + 2, score(0.2)),
        ])
        .await
        .expect("predictions");
    assert_eq!((logged.written.accepted, logged.recomputed.windows), (2, 1));
    assert_eq!(logged.samples.len() as u64, logged.recomputed.samples);
    let logged = engine
        .log_labels(vec![label("a", 1.0), label("b", 1.0)], at(3 * HOUR))
        .await
        .expect("labels");
    assert_eq!(logged.written.labelled, 2);
    let accuracy = logged
        .samples
        .iter()
        .find(|s| s.metric == Metric::Accuracy)
        .expect("accuracy written");
    assert_eq!((accuracy.timestamp, accuracy.value), (at(HOUR), 0.5));
    assert_eq!(values(&stores, "accuracy").await, vec![(HOUR, 0.5)]);
}
