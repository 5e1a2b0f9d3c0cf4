//! Predictions and labels over HTTP (issue 22): a model configured, predictions logged,
//! labels later (one before its prediction), the window's metrics and label coverage
//! read back through the metrics route, revised as the labels arrive; a bad event named
//! by its index and field with nothing stored; and the tokens the routes need.

use super::*;

const PREDICTIONS: &str = "/api/v1/predictions";
const LABELS: &str = "/api/v1/predictions/labels";
const CONFIG: &str = "/api/v1/models/{model}/prediction-config";

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
                &format!("/api/v1/models/clf/versions/v1/metrics/{metric}?from=0"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{metric}: {}", reply.body);
        let points = reply.body["points"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{metric}: one point per window, revised");
        assert_eq!(points[0]["timestamp"], "2024-05-01T10:00:00.000Z");
        points[0]["value"].as_f64().unwrap()
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
               "min_coverage": 0.0, "configured": true})
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
            &["accepted", "duplicates", "labelled", "windows_recomputed"]
        ),
        [3, 1, 1, 1]
    );
    assert!(logged.body["samples_written"].as_u64().unwrap() >= 2);
    assert_eq!(
        (
            app.window_value("label_coverage").await,
            app.window_value("accuracy").await
        ),
        (1.0 / 3.0, 1.0)
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
            &["labelled", "pending", "duplicates", "windows_recomputed"]
        ),
        [2, 1, 0, 1]
    );
    assert_eq!(
        (
            app.window_value("label_coverage").await,
            app.window_value("accuracy").await
        ),
        (1.0, 2.0 / 3.0)
    );

    // A second label for p3 replaces the first: the window is recomputed again.
    let again = app
        .post(
            LABELS,
            json!({"labels": [{"id": "p3", "model": "clf", "label": 1}]}),
        )
        .await;
    assert_eq!(counts(&again, &["duplicates"]), [1]);
    assert_eq!(app.window_value("accuracy").await, 1.0);
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
