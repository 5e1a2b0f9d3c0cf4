//! The behaviour every [`PredictionStore`] shows, run on memory, SQLite and PostgreSQL.

use std::collections::BTreeSet;

use modelwatch_core::predictions::{
    FeatureName, FeatureSketches, Features, JudgedBy, Label, LabelDelay, Labelled, ModelWindows,
    Output, Prediction, PredictionConfig, PredictionId, Sketch, Task, WindowLength,
};
use modelwatch_core::{Dataset, Metric, ModelName, TimeRange, Timestamp, Version};

use super::{
    DirtyWindow, Judged, NewRevision, PredictionSeries, PredictionStore, Recorded, Touched,
    WindowPairs, WindowRecord,
};

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms).expect("valid")
}

fn model(name: &str) -> ModelName {
    ModelName::parse(name).expect("model")
}

fn scored(id: &str, version: &str, ms: i64, score: f64) -> Prediction {
    Prediction {
        id: PredictionId::parse(id).expect("id"),
        model: model("fraud"),
        version: Version::parse(version).expect("version"),
        dataset: None,
        timestamp: at(ms),
        output: Output::Classification {
            class: None,
            score: Some(score),
        },
        features: Features::new(),
    }
}

fn label(id: &str, truth: f64) -> Label {
    Label::new(
        PredictionId::parse(id).expect("id"),
        model("fraud"),
        truth,
        Some(at(99)),
    )
    .expect("label")
}

fn series(version: &str, dataset: Option<&str>) -> PredictionSeries {
    PredictionSeries {
        model: model("fraud"),
        version: Version::parse(version).expect("version"),
        dataset: dataset.map(|d| Dataset::parse(d).expect("dataset")),
    }
}

fn everything() -> TimeRange {
    TimeRange::new(at(0), at(1_000_000))
}

/// Sorted by truth then score, so backends' row orders compare equal.
fn sorted(mut pairs: Vec<Labelled>) -> Vec<(f64, Output)> {
    pairs.sort_by(|a, b| {
        let score = |p: &Labelled| match p.output {
            Output::Classification { score, .. } => score.unwrap_or(-1.0),
            Output::Regression { value } => value,
        };
        a.truth
            .total_cmp(&b.truth)
            .then(score(a).total_cmp(&score(b)))
    });
    pairs.into_iter().map(|p| (p.truth, p.output)).collect()
}

pub async fn labels_join_their_predictions_in_any_order(store: &dyn PredictionStore) {
    let written = store
        .insert_predictions(
            vec![scored("a", "v1", 1_000, 0.9), scored("b", "v1", 2_000, 0.2)],
            &ModelWindows::default(),
        )
        .await
        .expect("predictions");
    assert_eq!(
        (written.accepted, written.duplicates, written.labelled),
        (2, 0, 0)
    );
    assert_eq!(
        written.touched,
        BTreeSet::from([
            Touched {
                series: series("v1", None),
                timestamp: at(1_000)
            },
            Touched {
                series: series("v1", None),
                timestamp: at(2_000)
            },
        ])
    );
    // A label for a stored prediction joins it; one for an unknown id waits.
    let labels = store
        .insert_labels(
            vec![label("a", 1.0), label("c", 0.0)],
            &ModelWindows::default(),
            at(5_000),
        )
        .await
        .expect("labels");
    assert_eq!(
        (labels.labelled, labels.pending, labels.duplicates),
        (1, 1, 0)
    );
    assert_eq!(
        labels.touched,
        BTreeSet::from([Touched {
            series: series("v1", None),
            timestamp: at(1_000)
        }])
    );
    assert_eq!(store.pending_labels().await.expect("pending"), 1);
    // Its prediction arrives: the pending label is joined.
    let late = store
        .insert_predictions(
            vec![scored("c", "v1", 3_000, 0.4)],
            &ModelWindows::default(),
        )
        .await
        .expect("late prediction");
    assert_eq!((late.accepted, late.labelled), (1, 1));
    assert_eq!(store.pending_labels().await.expect("pending"), 0);
    let window = store
        .window_pairs(&series("v1", None), everything())
        .await
        .expect("window");
    assert_eq!(window.predicted, 3);
    assert_eq!(
        sorted(window.labelled),
        vec![
            (
                0.0,
                Output::Classification {
                    class: None,
                    score: Some(0.4)
                }
            ),
            (
                1.0,
                Output::Classification {
                    class: None,
                    score: Some(0.9)
                }
            ),
        ]
    );
}

pub async fn first_prediction_and_latest_label_win(store: &dyn PredictionStore) {
    store
        .insert_predictions(
            vec![scored("a", "v1", 1_000, 0.9)],
            &ModelWindows::default(),
        )
        .await
        .expect("predictions");
    // A second prediction for the id, in another batch and in the same one: dropped.
    let again = store
        .insert_predictions(
            vec![
                scored("a", "v1", 1_500, 0.1),
                scored("b", "v1", 1_000, 0.3),
                scored("b", "v1", 1_000, 0.7),
            ],
            &ModelWindows::default(),
        )
        .await
        .expect("duplicates");
    assert_eq!((again.accepted, again.duplicates), (1, 2));
    // Labels: the first joins, the next two are duplicates; the last one wins.
    let labels = store
        .insert_labels(
            vec![label("a", 1.0), label("a", 0.0), label("a", 1.0)],
            &ModelWindows::default(),
            at(5_000),
        )
        .await
        .expect("labels");
    assert_eq!(
        (labels.labelled, labels.pending, labels.duplicates),
        (1, 0, 2)
    );
    let relabelled = store
        .insert_labels(vec![label("a", 0.0)], &ModelWindows::default(), at(6_000))
        .await
        .expect("relabel");
    assert_eq!(relabelled.duplicates, 1);
    // Pending labels count their duplicates too; the latest is joined.
    let pending = store
        .insert_labels(
            vec![label("z", 1.0), label("z", 0.0)],
            &ModelWindows::default(),
            at(6_000),
        )
        .await
        .expect("pending");
    assert_eq!((pending.pending, pending.duplicates), (1, 1));
    store
        .insert_predictions(
            vec![scored("z", "v1", 2_000, 0.5)],
            &ModelWindows::default(),
        )
        .await
        .expect("z");
    let window = store
        .window_pairs(&series("v1", None), everything())
        .await
        .expect("window");
    assert_eq!(window.predicted, 3);
    assert_eq!(
        sorted(window.labelled),
        vec![
            (
                0.0,
                Output::Classification {
                    class: None,
                    score: Some(0.5)
                }
            ),
            (
                0.0,
                Output::Classification {
                    class: None,
                    score: Some(0.9)
                }
            ),
        ]
    );
}

pub async fn a_window_is_one_series_and_time_range(store: &dyn PredictionStore) {
    let mut canary = scored("k", "v1", 1_000, 0.5);
    canary.dataset = Some(Dataset::parse("canary").expect("dataset"));
    let mut other_model = scored("a", "v1", 1_000, 0.5);
    other_model.model = model("churn");
    let regression = Prediction {
        output: Output::Regression { value: -2.5 },
        ..scored("r", "v2", 1_000, 0.0)
    };
    let classed = Prediction {
        output: Output::Classification {
            class: Some(true),
            score: None,
        },
        ..scored("c", "v1", 1_999, 0.0)
    };
    store
        .insert_predictions(
            vec![
                scored("a", "v1", 1_000, 0.5),
                scored("late", "v1", 2_000, 0.5),
                classed,
                canary,
                other_model,
                regression,
            ],
            &ModelWindows::default(),
        )
        .await
        .expect("predictions");
    store
        .insert_labels(
            vec![
                label("a", 1.0),
                label("c", 1.0),
                label("r", 3.0),
                label("k", 0.0),
            ],
            &ModelWindows::default(),
            at(5_000),
        )
        .await
        .expect("labels");
    let range = TimeRange::new(at(1_000), at(2_000));
    let v1 = store
        .window_pairs(&series("v1", None), range)
        .await
        .expect("v1");
    assert_eq!(v1.predicted, 2);
    assert_eq!(
        sorted(v1.labelled),
        vec![
            (
                1.0,
                Output::Classification {
                    class: Some(true),
                    score: None
                }
            ),
            (
                1.0,
                Output::Classification {
                    class: None,
                    score: Some(0.5)
                }
            ),
        ]
    );
    let canary = store
        .window_pairs(&series("v1", Some("canary")), range)
        .await
        .expect("canary");
    assert_eq!((canary.predicted, canary.labelled.len()), (1, 1));
    let v2 = store
        .window_pairs(&series("v2", None), range)
        .await
        .expect("v2");
    assert_eq!(
        v2.labelled,
        vec![Labelled {
            output: Output::Regression { value: -2.5 },
            truth: 3.0
        }]
    );
    let churn = PredictionSeries {
        model: model("churn"),
        ..series("v1", None)
    };
    let churn = store.window_pairs(&churn, range).await.expect("churn");
    assert_eq!((churn.predicted, churn.labelled.len()), (1, 0));
}

pub async fn pending_labels_expire(store: &dyn PredictionStore) {
    store
        .insert_labels(vec![label("old", 1.0)], &ModelWindows::default(), at(1_000))
        .await
        .expect("old");
    store
        .insert_labels(vec![label("new", 1.0)], &ModelWindows::default(), at(5_000))
        .await
        .expect("new");
    assert_eq!(
        store
            .expire_pending_labels(at(2_000))
            .await
            .expect("expire"),
        1
    );
    assert_eq!(store.pending_labels().await.expect("pending"), 1);
    let written = store
        .insert_predictions(
            vec![
                scored("old", "v1", 1_000, 0.5),
                scored("new", "v1", 1_000, 0.5),
            ],
            &ModelWindows::default(),
        )
        .await
        .expect("predictions");
    assert_eq!(written.labelled, 1);
}

pub async fn pruned_predictions_go_and_their_windows_stay_final(store: &dyn PredictionStore) {
    let churn = |id: &str, ms: i64| Prediction {
        model: model("churn"),
        ..scored(id, "v1", ms, 0.5)
    };
    store
        .insert_predictions(
            vec![
                scored("a", "v1", 1_000, 0.9),
                scored("b", "v1", 2_000, 0.2),
                scored("c", "v1", 3_000, 0.4),
                churn("a", 1_000),
            ],
            &ModelWindows::default(),
        )
        .await
        .expect("predictions");
    store
        .insert_labels(
            vec![label("a", 1.0), label("c", 0.0)],
            &ModelWindows::default(),
            at(4_000),
        )
        .await
        .expect("label");
    assert_eq!(
        store
            .prune_predictions(&model("fraud"), at(3_000))
            .await
            .expect("prune"),
        2
    );
    let left = store
        .window_pairs(&series("v1", None), everything())
        .await
        .expect("fraud");
    assert_eq!(
        (left.predicted, left.labelled.len()),
        (1, 1),
        "c and its label stay"
    );
    // The kept prediction's id still joins its labels (a second one for c).
    let relabelled = store
        .insert_labels(vec![label("c", 1.0)], &ModelWindows::default(), at(4_500))
        .await
        .expect("relabel");
    assert_eq!((relabelled.duplicates, relabelled.pending), (1, 0));
    let left = store
        .window_pairs(&series("v1", None), everything())
        .await
        .expect("fraud");
    assert_eq!(left.labelled.first().map(|pair| pair.truth), Some(1.0));
    let churn_series = PredictionSeries {
        model: model("churn"),
        ..series("v1", None)
    };
    let other = store
        .window_pairs(&churn_series, everything())
        .await
        .expect("churn");
    assert_eq!(other.predicted, 1, "another model's predictions stay");
    // Before the cutoff: refused, even an id never seen; from it: stored.
    let written = store
        .insert_predictions(
            vec![
                scored("a", "v1", 1_000, 0.9),
                scored("d", "v1", 2_999, 0.9),
                scored("e", "v1", 3_000, 0.9),
            ],
            &ModelWindows::default(),
        )
        .await
        .expect("late");
    assert_eq!(
        (written.too_old, written.accepted, written.duplicates),
        (2, 1, 0)
    );
    // The cutoff never moves back; pruning again removes nothing more.
    assert_eq!(
        store
            .prune_predictions(&model("fraud"), at(1_500))
            .await
            .expect("again"),
        0
    );
    let refused = store
        .insert_predictions(
            vec![scored("f", "v1", 2_000, 0.9)],
            &ModelWindows::default(),
        )
        .await
        .expect("refused");
    assert_eq!((refused.too_old, refused.accepted), (1, 0));
}

pub async fn prediction_configs_are_kept_per_model(store: &dyn PredictionStore) {
    assert_eq!(store.prediction_configs().await.expect("none"), vec![]);
    let daily = PredictionConfig::new(
        WindowLength::parse("1d").expect("1d"),
        Task::Classification,
        0.7,
        0.8,
    )
    .expect("config");
    let hourly = PredictionConfig::new(
        WindowLength::parse("1h").expect("1h"),
        Task::Regression,
        0.5,
        0.0,
    )
    .expect("config")
    .with_max_label_delay(LabelDelay::parse("36h").expect("36h"));
    store
        .set_prediction_config(&model("fraud"), daily)
        .await
        .expect("set");
    store
        .set_prediction_config(&model("churn"), daily)
        .await
        .expect("set");
    store
        .set_prediction_config(&model("churn"), hourly)
        .await
        .expect("replace");
    assert_eq!(
        store.prediction_configs().await.expect("list"),
        vec![(model("churn"), hourly), (model("fraud"), daily)]
    );
    assert_eq!(
        store.prediction_config(&model("fraud")).await.expect("one"),
        Some(daily)
    );
    assert_eq!(
        store.prediction_config(&model("x")).await.expect("none"),
        None
    );
}

pub async fn windows_keep_every_revision_and_their_judgement(store: &dyn PredictionStore) {
    let hour = |n: i64| TimeRange::new(at(n * 3_600_000), at((n + 1) * 3_600_000));
    let revision = |minute: i64, labelled: u64, accuracy: f64| NewRevision {
        computed_at: at(11 * 3_600_000 + minute * 60_000),
        predicted: 3,
        labelled,
        values: vec![
            (Metric::Accuracy, accuracy),
            (Metric::Custom("my:metric".into()), 0.1 + 0.2),
        ],
    };
    let (v1, shadow) = (series("v1", None), series("v1", Some("shadow")));
    assert_eq!(store.window_history(&v1, at(0)).await.expect("none"), None);
    assert_eq!(store.waiting_windows(None).await.expect("none"), vec![]);
    assert_eq!(store.window_models().await.expect("no model"), vec![]);
    for (n, (labelled, accuracy)) in [(1, 1.0), (2, 0.5), (3, 2.0 / 3.0)].into_iter().enumerate() {
        let recorded = store
            .record_revision(&v1, hour(10), revision(n as i64, labelled, accuracy))
            .await
            .expect("record");
        assert_eq!(
            recorded,
            Recorded {
                revision: n as u32 + 1,
                judged: None
            }
        );
    }
    store
        .record_revision(&shadow, hour(10), revision(0, 0, 0.0))
        .await
        .expect("another series");
    store
        .record_revision(&v1, hour(9), revision(0, 3, 1.0))
        .await
        .expect("an earlier window");
    assert_eq!(
        store.window_models().await.expect("models"),
        vec![model("fraud")]
    );

    // Waiting: every window, by series and start, with its latest revision.
    let waiting = store.waiting_windows(None).await.expect("waiting");
    let seen: Vec<_> = waiting
        .iter()
        .map(|w| {
            let latest = w.latest().expect("a revision");
            (
                w.series.clone(),
                w.window,
                w.revisions.len(),
                latest.revision,
                latest.labelled,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (v1.clone(), hour(9), 1, 1, 3),
            (v1.clone(), hour(10), 1, 3, 3),
            (shadow.clone(), hour(10), 1, 1, 0),
        ]
    );

    let judged = Judged {
        at: at(12 * 3_600_000),
        revision: 3,
        by: JudgedBy::Coverage,
    };
    assert!(store
        .judge_window(&v1, at(10 * 3_600_000), judged)
        .await
        .expect("judge"));
    let again = Judged {
        by: JudgedBy::LabelDelay,
        ..judged
    };
    assert!(!store
        .judge_window(&v1, at(10 * 3_600_000), again)
        .await
        .expect("once"));
    assert!(!store
        .judge_window(&v1, at(5), again)
        .await
        .expect("no such window"));

    let recorded = store
        .record_revision(&v1, hour(10), revision(90, 3, 1.0))
        .await
        .expect("after judging");
    assert_eq!(
        recorded,
        Recorded {
            revision: 4,
            judged: Some(judged)
        }
    );
    let history = store
        .window_history(&v1, at(10 * 3_600_000))
        .await
        .expect("read")
        .expect("the window");
    assert_eq!((history.window, history.judged), (hour(10), Some(judged)));
    let revisions: Vec<_> = history
        .revisions
        .iter()
        .map(|r| (r.revision, r.computed_at, r.labelled, r.values.clone()))
        .collect();
    assert_eq!(
        revisions,
        [(1, 1.0), (2, 0.5), (3, 2.0 / 3.0), (4, 1.0)]
            .into_iter()
            .zip([0, 1, 2, 90])
            .zip([1, 2, 3, 3])
            .map(|(((n, accuracy), minute), labelled)| {
                let r = revision(minute, labelled, accuracy);
                (n, r.computed_at, r.labelled, r.values)
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(history.revisions[1].coverage(), 2.0 / 3.0);
    let waiting: Vec<_> = store
        .waiting_windows(None)
        .await
        .expect("waiting")
        .into_iter()
        .map(|w| (w.series, w.window))
        .collect();
    assert_eq!(
        waiting,
        vec![(v1.clone(), hour(9)), (shadow.clone(), hour(10))]
    );
    // One series' waiting windows only.
    let of_shadow: Vec<_> = store
        .waiting_windows(Some(&shadow))
        .await
        .expect("waiting")
        .into_iter()
        .map(|w| (w.series, w.window))
        .collect();
    assert_eq!(of_shadow, vec![(shadow, hour(10))]);
    let none = store
        .waiting_windows(Some(&series("v9", None)))
        .await
        .expect("none");
    assert_eq!(none, vec![]);
}

pub async fn window_sketches_are_kept_and_their_drift_is_due_once_per_recording(
    store: &dyn PredictionStore,
) {
    let hour = |n: i64| TimeRange::new(at(n * 3_600_000), at((n + 1) * 3_600_000));
    let (v1, shadow) = (series("v1", None), series("v1", Some("shadow")));
    let small: Sketch = [0.5, 0.7].into_iter().collect();
    let large: Sketch = (0..200).map(|n| f64::from(n) / 200.0).collect();
    assert_eq!(
        store
            .drift_due(None, at(1_000 * 3_600_000))
            .await
            .expect("none"),
        vec![]
    );
    assert_eq!(
        store
            .reference_sketch(&v1, 100, at(100 * 3_600_000))
            .await
            .expect("none"),
        None
    );
    // The window's predictions counted by window_pairs come with their sketch.
    store
        .insert_predictions(
            vec![scored("s1", "v1", 5, 0.25), scored("s2", "v1", 6, 0.75)],
            &ModelWindows::default(),
        )
        .await
        .expect("insert");
    let pairs = store.window_pairs(&v1, everything()).await.expect("pairs");
    assert_eq!(pairs.sketch, [0.25, 0.75].into_iter().collect::<Sketch>());

    for (series, start, sketch) in [
        (&v1, 1, &small),
        (&v1, 2, &large),
        (&v1, 3, &large),
        (&shadow, 1, &large),
    ] {
        store
            .record_sketch(series, hour(start), sketch)
            .await
            .expect("record");
    }
    store
        .record_sketch(&v1, hour(1), &large)
        .await
        .expect("again");

    // Due: the windows ended by now, by series and start; of one series when asked.
    let due = |windows: Vec<super::WindowSketch>| -> Vec<_> {
        windows
            .into_iter()
            .map(|w| (w.series, w.window, w.recorded, w.sketch.count()))
            .collect()
    };
    assert_eq!(
        due(store.drift_due(None, at(3 * 3_600_000)).await.expect("due")),
        vec![
            (v1.clone(), hour(1), 2, 200),
            (v1.clone(), hour(2), 1, 200),
            (shadow.clone(), hour(1), 1, 200),
        ]
    );
    assert_eq!(
        due(store
            .drift_due(Some(&shadow), at(9 * 3_600_000))
            .await
            .expect("due")),
        vec![(shadow.clone(), hour(1), 1, 200)]
    );

    // The reference: the earliest window ended by now with enough scores.
    store
        .record_sketch(&v1, hour(0), &small)
        .await
        .expect("record");
    let reference = store
        .reference_sketch(&v1, 100, at(9 * 3_600_000))
        .await
        .expect("read")
        .expect("a reference");
    assert_eq!(
        (reference.window, reference.sketch),
        (hour(1), large.clone())
    );
    assert_eq!(
        store
            .reference_sketch(&v1, 100, at(2 * 3_600_000 - 1))
            .await
            .expect("none"),
        None
    );

    // Computed for a recording: not due again until the window is recorded anew; a
    // stale mark (for an earlier recording) changes nothing.
    let computed_at = at(10 * 3_600_000);
    store
        .drift_computed(&v1, at(3_600_000), 2, computed_at)
        .await
        .expect("mark");
    store
        .drift_computed(&v1, at(2 * 3_600_000), 1, computed_at)
        .await
        .expect("mark");
    store
        .record_sketch(&v1, hour(2), &small)
        .await
        .expect("anew");
    store
        .drift_computed(&v1, at(2 * 3_600_000), 1, computed_at)
        .await
        .expect("stale");
    store
        .drift_computed(&v1, at(77), 1, computed_at)
        .await
        .expect("no such window");
    assert_eq!(
        due(store
            .drift_due(Some(&v1), at(9 * 3_600_000))
            .await
            .expect("due")),
        vec![
            (v1.clone(), hour(0), 1, 2),
            (v1.clone(), hour(2), 2, 2),
            (v1, hour(3), 1, 200),
        ]
    );
}

/// A prediction of `fraud`/v1 at `ms` with the features `pairs`.
fn featured(id: &str, ms: i64, pairs: &[(&str, f64)]) -> Prediction {
    Prediction {
        features: Features::parse(pairs.iter().map(|(n, v)| (n.to_string(), *v)))
            .expect("features"),
        ..scored(id, "v1", ms, 0.5)
    }
}

pub async fn features_are_folded_into_their_window_s_sketches(store: &dyn PredictionStore) {
    let hour = |n: i64| TimeRange::new(at(n * 3_600_000), at((n + 1) * 3_600_000));
    let v1 = series("v1", None);
    let name = |n: &str| FeatureName::parse(n).expect("name");
    let sketches = |pairs: &[(&str, &[f64])]| -> FeatureSketches {
        pairs
            .iter()
            .map(|(n, values)| (name(n), values.iter().copied().collect::<Sketch>()))
            .collect()
    };
    let windows = ModelWindows::default();
    let written = store
        .insert_predictions(
            vec![
                featured("a", 1_000, &[("age", 41.0), ("amount", 12.5)]),
                featured("b", 2_000, &[("age", 30.0)]),
                // A duplicate's features are dropped with it.
                featured("a", 3_000, &[("age", 99.0)]),
                featured("c", 3_600_000 + 5, &[("amount", 7.0)]),
                scored("plain", "v1", 4_000, 0.1),
            ],
            &windows,
        )
        .await
        .expect("insert");
    assert_eq!((written.accepted, written.duplicates), (4, 1));
    // Not due before the window's scores are recorded (recorded 0 times).
    assert_eq!(
        store
            .drift_due(None, at(100 * 3_600_000))
            .await
            .expect("due"),
        vec![]
    );
    let scores: Sketch = (0..150).map(|n| f64::from(n) / 150.0).collect();
    for start in [0, 1] {
        store
            .record_sketch(&v1, hour(start), &scores)
            .await
            .expect("record");
    }
    // Late ones add to what is there; recording the scores again keeps the features.
    store
        .insert_predictions(vec![featured("d", 5_000, &[("age", 41.0)])], &windows)
        .await
        .expect("late");
    store
        .record_sketch(&v1, hour(0), &scores)
        .await
        .expect("again");
    let due = store
        .drift_due(Some(&v1), at(2 * 3_600_000))
        .await
        .expect("due");
    let seen: Vec<_> = due
        .iter()
        .map(|w| (w.window, w.recorded, w.sketch.count(), w.features.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                hour(0),
                2,
                150,
                sketches(&[("age", &[41.0, 30.0, 41.0]), ("amount", &[12.5])])
            ),
            (hour(1), 1, 150, sketches(&[("amount", &[7.0])])),
        ]
    );
    let reference = store
        .reference_sketch(&v1, 100, at(2 * 3_600_000))
        .await
        .expect("read")
        .expect("reference");
    assert_eq!(reference.features, seen[0].3);

    // Another model's windows are its configuration's: a day here.
    let daily = ModelName::parse("daily").expect("model");
    let config = PredictionConfig::new(
        WindowLength::parse("1d").expect("1d"),
        Task::Regression,
        0.5,
        0.0,
    )
    .expect("config");
    let windows = ModelWindows::of([(&daily, &config)]);
    let day = TimeRange::new(at(0), at(86_400_000));
    let mut early = featured("e1", 1_000, &[("load", 2.0)]);
    let mut late = featured("e2", 20 * 3_600_000, &[("load", 3.0)]);
    early.model = daily.clone();
    late.model = daily.clone();
    store
        .insert_predictions(vec![early, late], &windows)
        .await
        .expect("daily");
    let daily_series = PredictionSeries {
        model: daily,
        ..v1.clone()
    };
    store
        .record_sketch(&daily_series, day, &scores)
        .await
        .expect("record");
    let due = store
        .drift_due(Some(&daily_series), at(86_400_000))
        .await
        .expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].window, due[0].features.clone()),
        (day, sketches(&[("load", &[2.0, 3.0])]))
    );

    // Refused as too old: its features are not counted either.
    store
        .prune_predictions(&model("fraud"), at(3_600_000))
        .await
        .expect("prune");
    let written = store
        .insert_predictions(
            vec![featured("old", 10, &[("age", 5.0)])],
            &ModelWindows::default(),
        )
        .await
        .expect("too old");
    assert_eq!(written.too_old, 1);
    let reference = store
        .reference_sketch(&v1, 100, at(2 * 3_600_000))
        .await
        .expect("read")
        .expect("reference");
    assert_eq!(reference.features, seen[0].3);
}

/// The windows a write of predictions or labels changed are dirty until cleared with the
/// marks read; a change in between (a mark more) keeps a window dirty; a pending label
/// changes no window; pruning a window's predictions makes it final (not dirty).
pub async fn changed_windows_stay_dirty_until_cleared(store: &dyn PredictionStore) {
    let hour = 3_600_000;
    let windows = ModelWindows::default();
    store
        .insert_predictions(
            vec![
                scored("a", "v1", 10, 0.9),
                scored("b", "v1", 20, 0.1),
                scored("c", "v1", hour + 10, 0.5),
            ],
            &windows,
        )
        .await
        .expect("predictions");
    let dirty = store.dirty_windows().await.expect("dirty");
    let first = |d: &[DirtyWindow]| -> Vec<(Timestamp, Timestamp, u64)> {
        d.iter()
            .map(|w| (w.window.start, w.window.end, w.marks))
            .collect()
    };
    assert_eq!(
        first(&dirty),
        [(at(0), at(hour), 1), (at(hour), at(2 * hour), 1)]
    );
    assert!(dirty.iter().all(|w| w.series == series("v1", None)));
    // A label for the first window marks it again: clearing with the old marks keeps it.
    store
        .insert_labels(
            vec![label("a", 1.0), label("nobody", 1.0)],
            &windows,
            at(50),
        )
        .await
        .expect("labels");
    store.clear_dirty(&dirty).await.expect("clear");
    let left = store.dirty_windows().await.expect("dirty");
    assert_eq!(first(&left), [(at(0), at(hour), 2)]);
    // Recording windows does not clear them: only clearing does.
    let recorded = store
        .record_windows(vec![WindowRecord {
            series: series("v1", None),
            window: left[0].window,
            sketch: Sketch::new(),
            revision: NewRevision {
                computed_at: at(60),
                predicted: 2,
                labelled: 1,
                values: Vec::new(),
            },
        }])
        .await
        .expect("record");
    assert_eq!(recorded[0].revision, 1);
    assert_eq!(store.dirty_windows().await.expect("dirty").len(), 1);
    store.clear_dirty(&left).await.expect("clear");
    assert!(store.dirty_windows().await.expect("dirty").is_empty());
    // The pending label's prediction arriving marks its window.
    store
        .insert_predictions(vec![scored("nobody", "v1", 30, 0.4)], &windows)
        .await
        .expect("late prediction");
    assert_eq!(
        first(&store.dirty_windows().await.expect("dirty")),
        [(at(0), at(hour), 1)]
    );
    store
        .prune_predictions(&model("fraud"), at(hour))
        .await
        .expect("prune");
    assert!(store.dirty_windows().await.expect("dirty").is_empty());
}

/// Runs every test of the suite on fresh stores from `open`.
/// A prediction row as the schemas before blocks stored it (SQLite 18, PostgreSQL 16).
pub struct LegacyRow {
    pub model: &'static str,
    pub id: String,
    pub version: &'static str,
    /// Empty for the default dataset.
    pub dataset: &'static str,
    pub ts: i64,
    pub output: Output,
    /// The truth and how many labels the id received.
    pub label: Option<(f64, i64)>,
}

/// The start of [`legacy_rows`]' first window.
pub const LEGACY_T0: i64 = 480_000 * 3_600_000;

/// 300 predictions of `fraud` (scores, classes or both; a dataset `eu` for every fourth;
/// two-hour windows configured) and 300 regression predictions of `churn` (hourly,
/// without a configuration), two in three or one in two labelled, some twice. Stored
/// with the configuration of `fraud` (window 120 minutes, classification, threshold 0.5,
/// no minimum coverage) and a pending label for the id `late` of `fraud`.
pub fn legacy_rows() -> Vec<LegacyRow> {
    let mut rows = Vec::new();
    for i in 0..300i64 {
        let score = ((i * 37) % 100) as f64 / 100.0;
        let output = if i % 11 == 0 {
            Output::Classification {
                class: Some(i % 2 == 0),
                score: None,
            }
        } else {
            Output::Classification {
                class: (i % 5 == 0).then_some(true),
                score: Some(score),
            }
        };
        let truth = f64::from(u8::from((score > 0.5) != (i % 7 == 0)));
        rows.push(LegacyRow {
            model: "fraud",
            id: format!("f-{i}"),
            version: "v1",
            dataset: if i % 4 == 0 { "eu" } else { "" },
            ts: LEGACY_T0 + i * 36_000,
            output,
            label: (i % 3 != 0).then_some((truth, 1 + i % 2)),
        });
        let value = (i * 13 % 50) as f64 * 1.5;
        rows.push(LegacyRow {
            model: "churn",
            id: format!("c-{i}"),
            version: "v2",
            dataset: "",
            ts: LEGACY_T0 + 600_000 + i * 24_000,
            output: Output::Regression { value },
            label: (i % 2 == 0).then_some((value + (i % 5) as f64, 1)),
        });
    }
    rows
}

/// After the migration of [`legacy_rows`]: every window of every series holds the same
/// predictions and labels, so the same metrics; a migrated id is a duplicate, the
/// pending label joins its prediction, labels join migrated predictions (a second label
/// counted as such).
pub async fn rows_moved_into_blocks_read_back(store: &dyn PredictionStore, rows: &[LegacyRow]) {
    use modelwatch_core::predictions::compute;
    use modelwatch_core::predictions::drift::score_of;

    let config = PredictionConfig::new(
        WindowLength::from_minutes(120).expect("window"),
        Task::Classification,
        0.5,
        0.0,
    )
    .expect("config");
    let regression =
        PredictionConfig::new(WindowLength::HOUR, Task::Regression, 0.5, 0.0).expect("config");
    let series_of = |model: &str, version: &str, dataset: &str| PredictionSeries {
        model: self::model(model),
        version: Version::parse(version).expect("version"),
        dataset: (!dataset.is_empty()).then(|| Dataset::parse(dataset).expect("dataset")),
    };
    let mut checked = 0;
    for (model, version, dataset, config) in [
        ("fraud", "v1", "", &config),
        ("fraud", "v1", "eu", &config),
        ("churn", "v2", "", &regression),
    ] {
        let length = config.window.as_duration().as_millis() as i64;
        for window in 0..6 {
            let (start, end) = (
                LEGACY_T0 + window * length,
                LEGACY_T0 + (window + 1) * length,
            );
            let mut mine: Vec<&LegacyRow> = rows
                .iter()
                .filter(|r| r.model == model && r.version == version && r.dataset == dataset)
                .filter(|r| r.ts >= start && r.ts < end)
                .collect();
            mine.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
            let mut expected = WindowPairs::default();
            for row in mine {
                expected.predicted += 1;
                expected.sketch.add(score_of(&row.output));
                if let Some((truth, _)) = row.label {
                    expected.labelled.push(Labelled {
                        output: row.output,
                        truth,
                    });
                }
            }
            let read = store
                .window_pairs(
                    &series_of(model, version, dataset),
                    TimeRange::new(at(start), at(end)),
                )
                .await
                .expect("window");
            assert_eq!(read, expected, "{model} {dataset} window {window}");
            assert_eq!(
                compute(config, read.predicted, &read.labelled),
                compute(config, expected.predicted, &expected.labelled)
            );
            checked += expected.predicted;
        }
    }
    assert_eq!(
        checked,
        rows.len() as u64,
        "every prediction is in a window"
    );

    let windows = ModelWindows::of([(&model("fraud"), &config)]);
    let written = store
        .insert_predictions(
            vec![
                scored("f-1", "v1", LEGACY_T0, 0.7),
                scored("late", "v1", LEGACY_T0 + 1, 0.7),
            ],
            &windows,
        )
        .await
        .expect("predictions");
    assert_eq!(
        (written.accepted, written.duplicates, written.labelled),
        (1, 1, 1),
        "a migrated id is a duplicate; the pending label joins its prediction"
    );
    let labels = store
        .insert_labels(
            vec![label("f-3", 1.0), label("f-4", 1.0)],
            &windows,
            at(LEGACY_T0),
        )
        .await
        .expect("labels");
    assert_eq!(
        (labels.labelled, labels.pending, labels.duplicates),
        (1, 0, 1),
        "f-3 had no label, f-4 had one"
    );
    assert_eq!(store.pending_labels().await.expect("pending"), 0);
}

macro_rules! prediction_suite {
    ($open:expr) => {
        use crate::predictions::conformance as suite;
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn labels_join_their_predictions_in_any_order() {
            let (store, _guard) = $open.await;
            suite::labels_join_their_predictions_in_any_order(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn first_prediction_and_latest_label_win() {
            let (store, _guard) = $open.await;
            suite::first_prediction_and_latest_label_win(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_window_is_one_series_and_time_range() {
            let (store, _guard) = $open.await;
            suite::a_window_is_one_series_and_time_range(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn pending_labels_expire() {
            let (store, _guard) = $open.await;
            suite::pending_labels_expire(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn pruned_predictions_go_and_their_windows_stay_final() {
            let (store, _guard) = $open.await;
            suite::pruned_predictions_go_and_their_windows_stay_final(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn windows_keep_every_revision_and_their_judgement() {
            let (store, _guard) = $open.await;
            suite::windows_keep_every_revision_and_their_judgement(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn window_sketches_are_kept_and_their_drift_is_due_once_per_recording() {
            let (store, _guard) = $open.await;
            suite::window_sketches_are_kept_and_their_drift_is_due_once_per_recording(&*store)
                .await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn features_are_folded_into_their_window_s_sketches() {
            let (store, _guard) = $open.await;
            suite::features_are_folded_into_their_window_s_sketches(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn changed_windows_stay_dirty_until_cleared() {
            let (store, _guard) = $open.await;
            suite::changed_windows_stay_dirty_until_cleared(&*store).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn prediction_configs_are_kept_per_model() {
            let (store, _guard) = $open.await;
            suite::prediction_configs_are_kept_per_model(&*store).await;
        }
    };
}

type Opened = (
    std::sync::Arc<dyn PredictionStore>,
    Box<dyn std::any::Any + Send>,
);

mod memory {
    use super::Opened;

    async fn open() -> Opened {
        (std::sync::Arc::new(crate::MemoryStore::new()), Box::new(()))
    }
    prediction_suite!(open());
}

mod sqlite {
    use super::Opened;

    async fn open() -> Opened {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::SqliteStore::open(dir.path().join("predictions.db"))
            .await
            .expect("open");
        (std::sync::Arc::new(store), Box::new(dir))
    }
    prediction_suite!(open());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joined_labels_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("predictions.db");
        let store = crate::SqliteStore::open(&path).await.expect("open");
        super::labels_join_their_predictions_in_any_order(&store).await;
        crate::MetricStore::close(&store).await.expect("close");
        let reopened = crate::SqliteStore::open(&path).await.expect("reopen");
        let window = crate::predictions::PredictionStore::window_pairs(
            &reopened,
            &super::series("v1", None),
            super::everything(),
        )
        .await
        .expect("window");
        assert_eq!((window.predicted, window.labelled.len()), (3, 2));
    }
}

mod postgres {
    use super::Opened;

    async fn open() -> Opened {
        let database = crate::postgres::testing::TestDatabase::create("predictions").await;
        let store = crate::PostgresStore::open(database.url())
            .await
            .expect("open");
        (std::sync::Arc::new(store), Box::new(database))
    }
    prediction_suite!(open());
}
