//! Predictions and labels over HTTP (issue 22): a model configured, predictions logged,
//! labels later (one before its prediction), the window's metrics and label coverage
//! read back through the metrics route, revised as the labels arrive; a bad event named
//! by its index and field with nothing stored; and the tokens the routes need.

use super::*;

const PREDICTIONS: &str = "/api/v1/predictions";
const LABELS: &str = "/api/v1/predictions/labels";
const CONFIG: &str = "/api/v1/models/{model}/prediction-config";
const WINDOW: &str = "/api/v1/models/{model}/versions/{version}/prediction-windows/{start}";

fn prediction(id: &str, minute: u32, output: Value) -> Value {
    let mut event = json!({
        "id": id,
        "model": "clf",
        "version": "v1",
        "timestamp": format!("2024-05-01T10:{minute:02}:00Z"),
    });
    for (key, value) in output.as_object().unwrap() {
        event[key] = value.clone();
    }
    event
}

impl TestServer {
    /// The one point of clf/v1's `metric` (the 10:00 window).
    async fn window_value(&self, metric: &str) -> f64 {
        let reply = self
            .call(
                Method::GET,
                SERIES,
                &format!(
                    "/api/v1/models/clf/versions/v1/metrics/{metric}?from=0&dataset=predictions"
                ),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{metric}: {}", reply.body);
        let points = reply.body["points"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{metric}: one point per window, revised");
        assert_eq!(points[0]["timestamp"], "2024-05-01T10:00:00.000Z");
        points[0]["value"].as_f64().unwrap()
    }

    /// The values of clf/v1's `metric` in `dataset` (`default` for the default one).
    async fn values(&self, metric: &str, dataset: &str) -> Vec<f64> {
        self.model_values("clf", metric, dataset).await
    }

    /// The values of `model`/v1's `metric` in `dataset`; none when it has no such series.
    async fn model_values(&self, model: &str, metric: &str, dataset: &str) -> Vec<f64> {
        let reply = self
            .call(
                Method::GET,
                SERIES,
                &format!(
                    "/api/v1/models/{model}/versions/v1/metrics/{metric}?from=0&dataset={dataset}"
                ),
                None,
            )
            .await;
        if reply.status == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert_eq!(reply.status, StatusCode::OK, "{metric}: {}", reply.body);
        reply.body["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|point| point["value"].as_f64().unwrap())
            .collect()
    }

    /// The window of clf/v1's predictions holding `at`.
    async fn window(&self, at: &str) -> Value {
        let path = format!("/api/v1/models/clf/versions/v1/prediction-windows/{at}");
        let reply = self.call(Method::GET, WINDOW, &path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Evaluates `model`/v1's rules now.
    async fn evaluate(&self, model: &str) {
        let path = format!("/api/v1/models/{model}/versions/v1/evaluate");
        let reply = self
            .call(
                Method::POST,
                "/api/v1/models/{model}/versions/{version}/evaluate",
                &path,
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    /// Evaluates `model`/v1's rules now, then lists (metric, value) of every alert of
    /// `model` there is.
    async fn evaluate_and_list_alerts(&self, model: &str) -> Vec<(String, f64)> {
        self.evaluate(model).await;
        let path = format!("/api/v1/alerts?model={model}&hours=all");
        let alerts = self.call(Method::GET, "/api/v1/alerts", &path, None).await;
        assert_eq!(alerts.status, StatusCode::OK, "{}", alerts.body);
        alerts.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["metric"].as_str().unwrap().to_owned(),
                    a["value"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    /// Creates a high-severity rule firing at once when fraud's `metric` in the
    /// `predictions` dataset is `operator` (`lt`, `gt`) `threshold`.
    async fn create_rule(&self, name: &str, metric: &str, operator: &str, threshold: f64) {
        let rule = self
            .post(
                "/api/v1/rules",
                json!({"name": name, "model": "fraud", "metric": metric,
                       "dataset": "predictions", "threshold_value": threshold,
                       "comparison_operator": operator, "severity": "high",
                       "for_evaluations": 1}),
            )
            .await;
        assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
    }

    async fn post(&self, route: &str, body: Value) -> Reply {
        self.call(Method::POST, route, route, Some(body)).await
    }
}

fn counts(reply: &Reply, keys: &[&str]) -> Vec<u64> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    keys.iter()
        .map(|key| reply.body[*key].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_predictions_become_metric_series_revised_as_their_labels_arrive() {
    let app = spawn_app().await;
    let config_path = "/api/v1/models/clf/prediction-config";
    let shown = app.call(Method::GET, CONFIG, config_path, None).await;
    assert_eq!(
        (
            shown.status,
            &shown.body["configured"],
            &shown.body["window"]
        ),
        (StatusCode::OK, &json!(false), &json!("1h"))
    );
    let set = app
        .call(
            Method::PUT,
            CONFIG,
            config_path,
            Some(json!({"window": "1h", "task": "classification", "threshold": 0.5})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        set.body,
        json!({"model": "clf", "window": "1h", "task": "classification", "threshold": 0.5,
               "min_coverage": 0.0, "max_label_delay": "7d", "configured": true})
    );
    // A later PUT changes what it names and keeps the rest.
    let set = app
        .call(
            Method::PUT,
            CONFIG,
            config_path,
            Some(json!({"min_coverage": 0.5})),
        )
        .await;
    assert_eq!(
        (&set.body["task"], &set.body["min_coverage"]),
        (&json!("classification"), &json!(0.5))
    );
    let shown = app.call(Method::GET, CONFIG, config_path, None).await;
    assert_eq!(shown.body, set.body);

    // A label before its prediction waits for it.
    let early = app
        .post(
            LABELS,
            json!({"labels": [{"id": "p1", "model": "clf", "label": 1}]}),
        )
        .await;
    assert_eq!(
        counts(&early, &["accepted", "labelled", "pending", "duplicates"]),
        [1, 0, 1, 0]
    );

    let logged = app
        .post(
            PREDICTIONS,
            json!({"predictions": [
                prediction("p1", 5, json!({"score": 0.9})),
                prediction("p2", 10, json!({"score": 0.2})),
                prediction("p3", 15, json!({"class": true})),
                prediction("p1", 20, json!({"score": 0.1})),
            ]}),
        )
        .await;
    assert_eq!(
        counts(
            &logged,
            &[
                "accepted",
                "duplicates",
                "labelled",
                "windows_recomputed",
                "windows_judged"
            ]
        ),
        [3, 1, 1, 1, 0]
    );
    // Coverage 1/3 is under the model's 0.5: the window waits, its series are empty and
    // its first revision is provisional.
    assert_eq!(
        app.values("accuracy", "predictions").await,
        Vec::<f64>::new()
    );
    let window = app.window("2024-05-01T10:42:00Z").await;
    assert_eq!(window["judged"], Value::Null, "{window}");
    assert_eq!(
        (&window["metrics_dataset"], &window["start"], &window["end"]),
        (
            &json!("predictions"),
            &json!("2024-05-01T10:00:00.000Z"),
            &json!("2024-05-01T11:00:00.000Z")
        )
    );
    assert_eq!(
        revisions(&window),
        [(1, 1.0 / 3.0, Some(1.0), "2024-05-01T12:00:00.000Z".into())]
    );

    // p2 right (0.2 < 0.5), p3 wrong; a label for an id without a prediction waits.
    let late = app
        .post(
            LABELS,
            json!({"labels": [
                {"id": "p2", "model": "clf", "label": "0", "timestamp": "2024-05-01T11:30:00Z"},
                {"id": "p3", "model": "clf", "label": false},
                {"id": "never", "model": "clf", "label": 0},
            ]}),
        )
        .await;
    assert_eq!(
        counts(
            &late,
            &[
                "labelled",
                "pending",
                "duplicates",
                "windows_recomputed",
                "windows_judged"
            ]
        ),
        [2, 1, 0, 1, 1]
    );
    assert_eq!(
        (
            app.window_value("label_coverage").await,
            app.window_value("accuracy").await
        ),
        (1.0, 2.0 / 3.0)
    );

    // A second label for p3 replaces the first: the window is recomputed again, its
    // series follow, and it stays judged on revision 2.
    let again = app
        .post(
            LABELS,
            json!({"labels": [{"id": "p3", "model": "clf", "label": 1}]}),
        )
        .await;
    assert_eq!(counts(&again, &["duplicates", "windows_judged"]), [1, 0]);
    assert_eq!(app.window_value("accuracy").await, 1.0);
    let window = app.window("2024-05-01T10:00:00Z").await;
    assert_eq!(revisions(&window).len(), 3);
    assert_eq!(
        (revisions(&window)[1].1, revisions(&window)[2].2),
        (1.0, Some(1.0))
    );
    assert_eq!(
        window["judged"],
        json!({"judged_at": "2024-05-01T12:00:00.000Z", "revision": 2, "by": "coverage",
               "coverage": 1.0})
    );
    // A window without predictions, and a bad time, are named.
    let path = "/api/v1/models/clf/versions/v1/prediction-windows/2024-05-02T10:00:00Z";
    let missing = app.call(Method::GET, WINDOW, path, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let path = "/api/v1/models/clf/versions/v1/prediction-windows/noon";
    let bad = app.call(Method::GET, WINDOW, path, None).await;
    assert_eq!(bad.body["error"]["field"], "start", "{}", bad.body);
}

/// (revision, coverage, accuracy, computed_at) of each revision of a window.
fn revisions(window: &Value) -> Vec<(u64, f64, Option<f64>, String)> {
    window["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["coverage"].as_f64().unwrap(),
                r["metrics"]["accuracy"].as_f64(),
                r["computed_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_is_named_by_its_index_and_field_and_nothing_of_its_batch_is_stored() {
    let app = spawn_app().await;
    let good: Vec<Value> = (0..3)
        .map(|n| prediction(&format!("g{n}"), n, json!({"score": 0.5})))
        .collect();
    let with = |bad: Value| {
        let mut events = good.clone();
        events.push(bad);
        json!({ "predictions": events })
    };
    for (body, field) in [
        (
            with(prediction("b", 1, json!({"score": "high"}))),
            "predictions[3].score",
        ),
        (with(prediction("b", 1, json!({}))), "predictions[3].class"),
        (
            with(prediction("b", 1, json!({"class": 2}))),
            "predictions[3].class",
        ),
        (
            with(prediction("b", 1, json!({"value": 2.0, "score": 0.5}))),
            "predictions[3].value",
        ),
        (
            with(prediction("", 1, json!({"score": 0.5}))),
            "predictions[3].id",
        ),
        (
            with(json!({"id": "b", "model": "clf", "version": "v1", "score": 0.5})),
            "predictions[3].timestamp",
        ),
        (
            with(prediction("b", 1, json!({"score": 0.5, "colour": "red"}))),
            "predictions[3].colour",
        ),
        (json!({"predictions": []}), "predictions"),
        (json!({"samples": []}), "samples"),
    ] {
        let reply = app.post(PREDICTIONS, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
    }
    let many: Vec<Value> = (0..10_001)
        .map(|n| prediction(&format!("m{n}"), 0, json!({"score": 0.5})))
        .collect();
    let reply = app.post(PREDICTIONS, json!({ "predictions": many })).await;
    assert_eq!(reply.body["error"]["field"], "predictions");

    for (labels, field) in [
        (
            json!([{"id": "g0", "model": "clf", "label": "yes"}]),
            "labels[0].label",
        ),
        (
            json!([{"id": "g0", "model": "clf", "label": 1}, {"id": "g1", "model": "bad model", "label": 1}]),
            "labels[1].model",
        ),
        (json!([{"id": "g0", "model": "clf"}]), "labels[0].label"),
    ] {
        let reply = app.post(LABELS, json!({ "labels": labels })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
    }

    // Nothing of the refused batches was stored: the good predictions are new.
    let logged = app.post(PREDICTIONS, json!({ "predictions": good })).await;
    assert_eq!(counts(&logged, &["accepted", "duplicates"]), [3, 0]);
    let labels = app
        .post(
            LABELS,
            json!({"labels": [{"id": "g0", "model": "clf", "label": 1}]}),
        )
        .await;
    assert_eq!(counts(&labels, &["labelled", "duplicates"]), [1, 0]);

    // A model's first configuration needs its task; a bad window is named.
    let path = "/api/v1/models/fresh/prediction-config";
    for (body, field) in [
        (json!({"window": "1h"}), "task"),
        (json!({"task": "ranking"}), "task"),
        (json!({"task": "regression", "window": "1w"}), "window"),
        (
            json!({"task": "regression", "min_coverage": 2}),
            "min_coverage",
        ),
        (
            json!({"task": "regression", "max_label_delay": "0m"}),
            "max_label_delay",
        ),
        (json!({"task": "regression", "colour": 1}), "colour"),
    ] {
        let reply = app.call(Method::PUT, CONFIG, path, Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
    }
    let shown = app.call(Method::GET, CONFIG, path, None).await;
    assert_eq!(shown.body["configured"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_needs_a_write_token_and_reading_the_configuration_a_read_one() {
    let app = spawn_app_with_auth().await;
    let reader = add_token(&app, Scope::Read).await;
    let writer = add_token(&app, Scope::Write).await;
    tokio::time::sleep(modelwatch_http::auth::RELOAD_EVERY + Duration::from_millis(200)).await;
    let body = json!({"predictions": [prediction("p1", 5, json!({"score": 0.9}))]});
    let labels = json!({"labels": [{"id": "p1", "model": "clf", "label": 1}]});
    let config_path = "/api/v1/models/clf/prediction-config";
    let config = json!({"task": "classification"});

    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(reader.as_str()), StatusCode::FORBIDDEN),
    ] {
        let reply = app
            .call_with(
                Method::POST,
                PREDICTIONS,
                PREDICTIONS,
                Some(body.clone()),
                token,
            )
            .await;
        assert_eq!(reply.status, status);
        let reply = app
            .call_with(Method::POST, LABELS, LABELS, Some(labels.clone()), token)
            .await;
        assert_eq!(reply.status, status);
        let reply = app
            .call_with(
                Method::PUT,
                CONFIG,
                config_path,
                Some(config.clone()),
                token,
            )
            .await;
        assert_eq!(reply.status, status);
    }
    let reply = app
        .call_with(Method::GET, CONFIG, config_path, None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = app
        .call_with(Method::GET, CONFIG, config_path, None, Some(&reader))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let reply = app
        .call_with(
            Method::PUT,
            CONFIG,
            config_path,
            Some(config),
            Some(&writer),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = app
        .call_with(
            Method::POST,
            PREDICTIONS,
            PREDICTIONS,
            Some(body),
            Some(&writer),
        )
        .await;
    assert_eq!(counts(&reply, &["accepted"]), [1]);
    let reply = app
        .call_with(Method::POST, LABELS, LABELS, Some(labels), Some(&writer))
        .await;
    assert_eq!(counts(&reply, &["labelled"]), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computed_metrics_never_share_a_series_with_pushed_ones() {
    let app = spawn_app().await;
    // The team pushes its own accuracy for the window, to the default dataset and to
    // `shadow`.
    for dataset in [None, Some("shadow")] {
        let mut sample = json!({"model": "clf", "version": "v1", "metric": "accuracy",
                                "value": 0.25, "timestamp": "2024-05-01T10:00:00Z"});
        if let Some(dataset) = dataset {
            sample["dataset"] = json!(dataset);
        }
        let pushed = app.post("/api/v1/metrics", sample).await;
        assert!(pushed.status.is_success(), "{}", pushed.body);
    }
    let mut shadow = prediction("s1", 5, json!({"class": true}));
    shadow["dataset"] = json!("shadow");
    let logged = app
        .post(
            PREDICTIONS,
            json!({"predictions": [prediction("p1", 5, json!({"class": true})), shadow]}),
        )
        .await;
    assert_eq!(counts(&logged, &["accepted"]), [2]);
    let labels = app
        .post(
            LABELS,
            json!({"labels": [{"id": "p1", "model": "clf", "label": 1},
                              {"id": "s1", "model": "clf", "label": 1}]}),
        )
        .await;
    assert_eq!(counts(&labels, &["labelled"]), [2]);

    // The pushed series keep their one value; the computed ones have their own.
    assert_eq!(app.values("accuracy", "default").await, [0.25]);
    assert_eq!(app.values("accuracy", "shadow").await, [0.25]);
    assert_eq!(app.values("accuracy", "predictions").await, [1.0]);
    assert_eq!(app.values("accuracy", "predictions:shadow").await, [1.0]);

    // A computed dataset takes no pushed sample and no prediction.
    let pushed = app
        .post(
            "/api/v1/metrics",
            json!({"samples": [
                {"model": "clf", "version": "v1", "metric": "accuracy", "value": 0.5},
                {"model": "clf", "version": "v1", "metric": "accuracy", "value": 0.5,
                 "dataset": "predictions"},
            ]}),
        )
        .await;
    assert_eq!(pushed.status, StatusCode::BAD_REQUEST, "{}", pushed.body);
    assert_eq!(pushed.body["error"]["field"], "samples[1].dataset");
    let mut bad = prediction("p2", 5, json!({"class": true}));
    bad["dataset"] = json!("predictions:shadow");
    let refused = app.post(PREDICTIONS, json!({ "predictions": [bad] })).await;
    assert_eq!(refused.body["error"]["field"], "predictions[0].dataset");
    assert_eq!(app.values("accuracy", "predictions").await, [1.0]);
}

/// (metric, value, label coverage decided on) of each of fraud/v1's alerts, by metric.
async fn alerts(app: &TestServer) -> Vec<(String, f64, f64)> {
    let reply = app
        .call(
            Method::GET,
            "/api/v1/alerts",
            "/api/v1/alerts?model=fraud&hours=all",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut seen: Vec<_> = reply.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["dataset"], "predictions", "{a}");
            // Every alert on a computed metric says the coverage it was decided on.
            let coverage = a["label_coverage"].as_f64().unwrap();
            let stated = format!(
                "(decided at label coverage {}%)",
                (coverage * 100.0).round()
            );
            assert!(a["message"].as_str().unwrap().ends_with(&stated), "{a}");
            (
                a["metric"].as_str().unwrap().to_owned(),
                a["value"].as_f64().unwrap(),
                coverage,
            )
        })
        .collect();
    seen.sort_by(|a, b| b.0.cmp(&a.0));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_judge_a_window_once_its_labels_cover_it_and_page_when_labels_stop() {
    // The server's clock is 2024-05-01T12:00Z. Windows of an hour, judged at 60 %
    // coverage or an hour after their end.
    let app = spawn_app().await;
    let config = app
        .call(
            Method::PUT,
            CONFIG,
            "/api/v1/models/fraud/prediction-config",
            Some(json!({"task": "classification", "min_coverage": 0.6, "max_label_delay": "1h"})),
        )
        .await;
    assert_eq!(config.status, StatusCode::OK, "{}", config.body);
    for (name, metric, threshold) in [
        ("accuracy dropped", "accuracy", 0.8),
        ("labels stopped arriving", "label_coverage", 0.5),
    ] {
        app.create_rule(name, metric, "lt", threshold).await;
    }
    let label = |id: &str, truth: u8| json!({"id": id, "model": "fraud", "label": truth});
    // 10:00 gets two right labels (before their predictions) and no more.
    let early = app
        .post(
            LABELS,
            json!({"labels": [label("10-0", 1), label("10-1", 1)]}),
        )
        .await;
    assert_eq!(counts(&early, &["pending"]), [2]);
    // Ten predictions of the positive class in each of the 10:00 and 11:00 windows. At
    // noon, an hour after its end, 10:00 is judged on its 20 % coverage.
    let predictions: Vec<Value> = [10, 11]
        .into_iter()
        .flat_map(|hour| {
            (0..10).map(move |n| {
                json!({"id": format!("{hour}-{n}"), "model": "fraud", "version": "v1",
                       "timestamp": format!("2024-05-01T{hour}:{n:02}:00Z"), "class": 1})
            })
        })
        .collect();
    let logged = app
        .post(PREDICTIONS, json!({ "predictions": predictions }))
        .await;
    assert_eq!(
        counts(&logged, &["accepted", "labelled", "windows_judged"]),
        [20, 2, 1]
    );
    // 11:00's first labels are the fast, wrong ones (accuracy 0 on 20 %): it waits, and
    // no rule sees it.
    let first = app
        .post(
            LABELS,
            json!({"labels": [label("11-0", 0), label("11-1", 0)]}),
        )
        .await;
    assert_eq!(counts(&first, &["labelled", "windows_judged"]), [2, 0]);
    app.evaluate("fraud").await;
    assert_eq!(
        alerts(&app).await,
        [("label_coverage".to_owned(), 0.2, 0.2)],
        "labels stopped arriving for 10:00; 11:00 waits"
    );

    // The rest of 11:00's labels come: 80 % coverage, accuracy 6/8. Judged, it pages.
    let rest: Vec<Value> = (2..8).map(|n| label(&format!("11-{n}"), 1)).collect();
    let second = app.post(LABELS, json!({ "labels": rest })).await;
    assert_eq!(counts(&second, &["labelled", "windows_judged"]), [6, 1]);
    app.evaluate("fraud").await;
    // The accuracy alert was decided on 11:00's 80 % coverage, not on its early 20 %.
    assert_eq!(
        alerts(&app).await,
        [
            ("label_coverage".to_owned(), 0.2, 0.2),
            ("accuracy".to_owned(), 0.75, 0.8),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifted_scores_page_on_drift_before_any_label_arrives() {
    // The server's clock is 2024-05-01T12:00Z: the 10:00 and 11:00 windows have closed.
    let app = spawn_app().await;
    app.create_rule("scores moved", "drift_psi_score", "gt", 0.25)
        .await;
    // 10:00 (the reference: the first closed window of 100 predictions) spreads its
    // scores over [0, 1]; 11:00's sit above 0.8. No label ever arrives.
    let predictions: Vec<Value> = (0..100)
        .map(|n| (10, n, f64::from(n % 20) / 20.0 + 0.025))
        .chain((0..100).map(|n| (11, n, 0.8 + f64::from(n % 10) / 50.0)))
        .map(|(hour, n, score)| {
            json!({"id": format!("{hour}-{n}"), "model": "fraud", "version": "v1",
                   "timestamp": format!("2024-05-01T{hour}:{:02}:00Z", n % 60),
                   "score": score})
        })
        .collect();
    let logged = app
        .post(PREDICTIONS, json!({ "predictions": predictions }))
        .await;
    assert_eq!(counts(&logged, &["accepted", "labelled"]), [200, 0]);
    let series = |metric: &'static str| app.model_values("fraud", metric, "predictions");
    let psi = series("drift_psi_score").await;
    assert_eq!(psi.len(), 2, "{psi:?}");
    assert_eq!(psi[0], 0.0, "the reference does not drift from itself");
    assert!(psi[1] > 1.0, "{psi:?}");
    let ks = series("drift_ks_score").await;
    assert_eq!(ks, [0.0, 0.8], "80 % of the reference lies below 0.8");
    let js = series("drift_js_score").await;
    assert!(js[1] > 0.5 && js[1] <= 1.0, "{js:?}");

    let fired = app.evaluate_and_list_alerts("fraud").await;
    assert_eq!(fired, [("drift_psi_score".to_owned(), psi[1])]);
    assert_eq!(series("label_coverage").await, [0.0, 0.0], "no label yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shifted_feature_pages_its_drift_rule_while_the_score_stays_put() {
    // The server's clock is 2024-05-01T12:00Z: the 10:00 and 11:00 windows have closed.
    let app = spawn_app().await;
    for (name, metric) in [
        ("amount moved", "drift_psi_feature_amount"),
        ("age moved", "drift_psi_feature_age"),
        ("scores moved", "drift_psi_score"),
    ] {
        app.create_rule(name, metric, "gt", 0.25).await;
    }
    // Both hours have the same scores and ages; 11:00's amounts sit far above 10:00's.
    let predictions: Vec<Value> = (0..100)
        .map(|n| (10, n, 10.0 + f64::from(n % 20)))
        .chain((0..100).map(|n| (11, n, 500.0 + f64::from(n % 20))))
        .map(|(hour, n, amount)| {
            json!({"id": format!("{hour}-{n}"), "model": "fraud", "version": "v1",
                   "timestamp": format!("2024-05-01T{hour}:{:02}:00Z", n % 60),
                   "score": f64::from(n % 10) / 10.0 + 0.05,
                   "features": {"amount": amount, "age": 20 + n % 40}})
        })
        .collect();
    let logged = app
        .post(PREDICTIONS, json!({ "predictions": predictions }))
        .await;
    assert_eq!(counts(&logged, &["accepted", "labelled"]), [200, 0]);
    let series = |metric: &'static str| app.model_values("fraud", metric, "predictions");
    assert_eq!(series("drift_psi_score").await, [0.0, 0.0]);
    assert_eq!(series("drift_psi_feature_age").await, [0.0, 0.0]);
    assert_eq!(series("drift_ks_feature_age").await, [0.0, 0.0]);
    let amount = series("drift_psi_feature_amount").await;
    assert!(amount[0] == 0.0 && amount[1] > 1.0, "{amount:?}");
    assert_eq!(series("drift_ks_feature_amount").await, [0.0, 1.0]);
    assert_eq!(series("drift_js_feature_amount").await, [0.0, 1.0]);

    let fired = app.evaluate_and_list_alerts("fraud").await;
    assert_eq!(fired, [("drift_psi_feature_amount".to_owned(), amount[1])]);

    // A bad feature is named by its event's index and its own name.
    let bad = app
        .post(
            PREDICTIONS,
            json!({"predictions": [
                {"id": "x", "model": "fraud", "version": "v1", "timestamp": 1, "score": 0.5,
                 "features": {"bad name": 1}}]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(
        bad.body["error"]["field"], "predictions[0].features",
        "{}",
        bad.body
    );
}
