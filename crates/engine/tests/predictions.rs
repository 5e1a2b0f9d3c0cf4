//! Predictions and labels becoming metric series (issue 22): windows recomputed as labels
//! arrive, in any order, each computation kept as a revision with its coverage; a window's
//! samples written for the rules only once it is judged (covered, or its label delay
//! passed), windows of a series in order; and rules that judge them.

use std::sync::Arc;

use modelwatch_core::predictions::{
    Features, JudgedBy, Label, LabelDelay, Output, Prediction, PredictionConfig, PredictionId,
    Task, WindowLength,
};
use modelwatch_core::{
    Dataset, Direction, Metric, ModelName, SeriesKey, TimeRange, Timestamp, Version,
};
use modelwatch_engine::predictions::{judge_windows, log_labels, log_predictions, window_history};
use modelwatch_store::predictions::PredictionSeries;
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
        features: Features::new(),
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
    let key = SeriesKey::parse("fraud", "v1", metric)
        .expect("key")
        .with_dataset(Some(Dataset::parse("predictions").expect("dataset")));
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

/// Hourly classification windows judged at 75 % coverage or 6 hours after their end.
fn waiting_for_labels() -> PredictionConfig {
    PredictionConfig::new(WindowLength::HOUR, Task::Classification, 0.5, 0.75)
        .expect("config")
        .with_max_label_delay(LabelDelay::parse("6h").expect("6h"))
}

fn series() -> PredictionSeries {
    PredictionSeries {
        model: ModelName::parse("fraud").expect("model"),
        version: Version::parse("v1").expect("version"),
        dataset: None,
    }
}

/// (revision, coverage, accuracy) of each revision of the window at `hour`, and its
/// judgement as (revision, why).
async fn revisions(
    stores: &Stores,
    hour: i64,
) -> (Vec<(u32, f64, Option<f64>)>, Option<(u32, JudgedBy)>) {
    let history = window_history(stores, &series(), at(hour * HOUR))
        .await
        .expect("read")
        .expect("window");
    (
        history
            .revisions
            .iter()
            .map(|r| {
                let accuracy = r
                    .values
                    .iter()
                    .find(|(m, _)| *m == Metric::Accuracy)
                    .map(|(_, v)| *v);
                (r.revision, r.coverage(), accuracy)
            })
            .collect(),
        history.judged.map(|j| (j.revision, j.by)),
    )
}

#[tokio::test]
async fn a_window_is_revised_as_its_labels_arrive_and_judged_once_covered() {
    let stores = Stores::of(Arc::new(MemoryStore::new()));
    let model = ModelName::parse("fraud").expect("model");
    stores
        .predictions
        .set_prediction_config(&model, waiting_for_labels())
        .await
        .expect("config");
    // Window 1: four predictions; window 2: one. Logged while window 2 is open.
    let (written, recomputed) = log_predictions(
        &stores,
        vec![
            prediction("a", HOUR + 1, score(0.9)),
            prediction("b", HOUR + 2, score(0.8)),
            prediction("c", HOUR + 3, score(0.3)),
            prediction("d", 2 * HOUR - 1, score(0.1)),
            prediction("e", 2 * HOUR, score(0.7)),
        ],
        at(2 * HOUR + 30),
    )
    .await
    .expect("predictions");
    assert_eq!(written.accepted, 5);
    assert_eq!((recomputed.windows, recomputed.judged), (2, 0));
    // Nothing judged: no sample for the rules yet.
    assert_eq!(values(&stores, "label_coverage").await, vec![]);
    // Two labels (a right, c wrong), and one for a prediction that has not arrived.
    let (labels, recomputed) = log_labels(
        &stores,
        vec![label("a", 1.0), label("c", 1.0), label("late", 0.0)],
        at(3 * HOUR),
    )
    .await
    .expect("labels");
    assert_eq!((labels.labelled, labels.pending), (2, 1));
    assert_eq!(recomputed.judged, 0, "coverage 0.5 < 0.75");
    assert_eq!(values(&stores, "accuracy").await, vec![]);
    assert_eq!(
        revisions(&stores, 1).await,
        (vec![(1, 0.0, None), (2, 0.5, Some(0.5))], None)
    );
    // The rest arrive: window 1 is covered and judged; its samples are written.
    let (_, recomputed) = log_labels(
        &stores,
        vec![label("b", 0.0), label("d", 0.0)],
        at(3 * HOUR + 1),
    )
    .await
    .expect("more labels");
    assert_eq!(recomputed.judged, 1);
    assert_eq!(values(&stores, "label_coverage").await, vec![(HOUR, 1.0)]);
    // Scores 0.9 0.8 0.3 0.1, truths 1 0 1 0: predicted 1 1 0 0.
    assert_eq!(values(&stores, "accuracy").await, vec![(HOUR, 0.5)]);
    assert_eq!(values(&stores, "auc_roc").await, vec![(HOUR, 0.75)]);
    assert_eq!(
        revisions(&stores, 1).await,
        (
            vec![(1, 0.0, None), (2, 0.5, Some(0.5)), (3, 1.0, Some(0.5))],
            Some((3, JudgedBy::Coverage))
        )
    );
    // The pending label joins its prediction in window 2: coverage 0.5, waiting.
    let (late, recomputed) = log_predictions(
        &stores,
        vec![prediction("late", 2 * HOUR + 5, score(0.2))],
        at(3 * HOUR + 2),
    )
    .await
    .expect("late");
    assert_eq!(
        (late.labelled, recomputed.windows, recomputed.judged),
        (1, 1, 0)
    );
    // Nothing arrives; six hours after its end window 2 is judged on what it has.
    let (judged, _) = judge_windows(&stores, at(9 * HOUR - 1))
        .await
        .expect("judge");
    assert_eq!(judged, 0);
    let (judged, samples) = judge_windows(&stores, at(9 * HOUR)).await.expect("judge");
    assert_eq!((judged, samples.len()), (1, 2), "coverage and accuracy");
    assert_eq!(
        values(&stores, "label_coverage").await,
        vec![(HOUR, 1.0), (2 * HOUR, 0.5)]
    );
    assert_eq!(
        revisions(&stores, 2).await.1,
        Some((2, JudgedBy::LabelDelay))
    );
    // A label after judging revises the window's points; the judgement stays.
    let (_, recomputed) = log_labels(&stores, vec![label("e", 0.0)], at(10 * HOUR))
        .await
        .expect("a late label");
    assert_eq!((recomputed.windows, recomputed.judged), (1, 0));
    assert_eq!(
        values(&stores, "label_coverage").await,
        vec![(HOUR, 1.0), (2 * HOUR, 1.0)]
    );
    assert_eq!(
        revisions(&stores, 2).await,
        (
            vec![(1, 0.0, None), (2, 0.5, Some(1.0)), (3, 1.0, Some(0.5))],
            Some((2, JudgedBy::LabelDelay))
        )
    );
}

#[tokio::test]
async fn a_covered_window_waits_for_the_earlier_windows_of_its_series() {
    let stores = Stores::of(Arc::new(MemoryStore::new()));
    let model = ModelName::parse("fraud").expect("model");
    stores
        .predictions
        .set_prediction_config(&model, waiting_for_labels())
        .await
        .expect("config");
    log_predictions(
        &stores,
        vec![
            prediction("early", HOUR, score(0.9)),
            prediction("later", 2 * HOUR, score(0.9)),
        ],
        at(3 * HOUR),
    )
    .await
    .expect("predictions");
    let (_, recomputed) = log_labels(&stores, vec![label("later", 1.0)], at(3 * HOUR))
        .await
        .expect("labels");
    assert_eq!(recomputed.judged, 0, "window 2 is covered, window 1 is not");
    assert_eq!(values(&stores, "label_coverage").await, vec![]);
    let (judged, _) = judge_windows(&stores, at(8 * HOUR)).await.expect("judge");
    assert_eq!(
        judged, 2,
        "window 1's label delay passed, then window 2 follows"
    );
    assert_eq!(
        values(&stores, "label_coverage").await,
        vec![(HOUR, 0.0), (2 * HOUR, 1.0)]
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
        at(30),
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
        .latest(
            &SeriesKey::parse("fraud", "v1", Metric::Accuracy.as_str())
                .expect("key")
                .with_dataset(Some(Dataset::parse("predictions").expect("dataset")))
        )
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
        .log_predictions(
            vec![
                prediction("a", HOUR + 1, score(0.9)),
                prediction("b", HOUR + 2, score(0.2)),
            ],
            at(2 * HOUR),
        )
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

/// A prediction at `ms` with a spread score and the feature `amount`.
fn with_amount(id: &str, ms: i64, amount: f64) -> Prediction {
    Prediction {
        features: Features::parse([("amount".to_owned(), amount)]).expect("features"),
        ..prediction(
            id,
            ms,
            score(0.05 + f64::from(u8::try_from(ms % 10).unwrap_or(0)) / 10.0),
        )
    }
}

#[tokio::test]
async fn a_feature_drifts_from_its_reference_and_late_predictions_recompute_it() {
    let stores = Stores::of(Arc::new(MemoryStore::new()));
    let amounts = |n: i64| 10.0 + f64::from(u8::try_from(n % 20).unwrap_or(0));
    let batch: Vec<Prediction> = (0..100)
        .map(|n| with_amount(&format!("r{n}"), HOUR + n, amounts(n)))
        .chain((0..100).map(|n| with_amount(&format!("c{n}"), 2 * HOUR + n, amounts(n))))
        .collect();
    log_predictions(&stores, batch, at(3 * HOUR))
        .await
        .expect("log");
    assert_eq!(
        values(&stores, "drift_ks_feature_amount").await,
        vec![(HOUR, 0.0), (2 * HOUR, 0.0)]
    );
    assert_eq!(
        values(&stores, "drift_ks_score").await,
        vec![(HOUR, 0.0), (2 * HOUR, 0.0)]
    );

    // As many late predictions far above the reference's amounts: half the window moved.
    let late: Vec<Prediction> = (0..100)
        .map(|n| with_amount(&format!("l{n}"), 2 * HOUR + 1_000 + n, 900.0))
        .collect();
    log_predictions(&stores, late, at(4 * HOUR))
        .await
        .expect("late");
    assert_eq!(
        values(&stores, "drift_ks_feature_amount").await,
        vec![(HOUR, 0.0), (2 * HOUR, 0.5)]
    );
    let psi = values(&stores, "drift_psi_feature_amount").await;
    assert!(psi[1].1 > 1.0, "{psi:?}");
    // The late scores are like the reference's: the score's drift does not move.
    assert_eq!(
        values(&stores, "drift_ks_score").await,
        vec![(HOUR, 0.0), (2 * HOUR, 0.0)]
    );

    let declared = stores.metrics.custom_metrics().await.expect("definitions");
    for name in [
        "drift_psi_feature_amount",
        "drift_ks_feature_amount",
        "drift_js_feature_amount",
    ] {
        let definition = declared
            .iter()
            .find(|d| d.metric.as_str() == name)
            .unwrap_or_else(|| panic!("{name} declared"));
        assert_eq!(definition.direction, Direction::LowerIsBetter, "{name}");
    }
}
