//! The Prometheus-compatible read API (issue 20) through a real server: instant and range
//! queries (also as the form POSTs Grafana sends), the series and label listings,
//! `ALERTS`, buildinfo, and Prometheus's error body naming what is not supported.

use super::*;

const QUERY: &str = "/api/v1/query";
const RANGE: &str = "/api/v1/query_range";
const MINUTE: i64 = 60_000;

fn seconds(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// fraud v1 and v2 and churn v1 accuracy, a point a minute over the last 10 minutes
/// (v1 0.90 down by 0.01 a minute, v2 0.95, churn 0.60), and one open alert on fraud v1.
async fn app_with_data() -> TestServer {
    let app = spawn_app().await;
    let mut samples = Vec::new();
    for i in 0..10 {
        let at = NOW_MS - (10 - i) * MINUTE;
        samples.push(
            json!({"model": "fraud", "version": "v1", "metric": "accuracy",
            "value": 0.90 - 0.01 * i as f64, "timestamp": at}),
        );
        samples.push(
            json!({"model": "fraud", "version": "v2", "metric": "accuracy",
            "value": 0.95, "timestamp": at}),
        );
        samples.push(
            json!({"model": "churn", "version": "v1", "metric": "accuracy",
            "value": 0.60, "timestamp": at}),
        );
    }
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(json!({"samples": samples})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    import_alerts(&app, vec![stored_alert(1, "v1", 5 * MINUTE, "high", true)]).await;
    app
}

async fn get(app: &TestServer, route: &str, path: &str, query: &[(&str, &str)]) -> Reply {
    let response = app
        .client
        .get(format!("{}{path}", app.base))
        .query(query)
        .send()
        .await
        .unwrap();
    app.reply(Method::GET, route, response).await
}

/// A form POST, as Grafana's Prometheus data source sends queries.
async fn post_form(app: &TestServer, route: &str, form: &[(&str, &str)]) -> Reply {
    let response = app
        .client
        .post(format!("{}{route}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap();
    app.reply(Method::POST, route, response).await
}

fn values(result: &Value) -> Vec<(String, String)> {
    values_by(result, |r| r["value"][1].as_str().unwrap().to_owned())
}

/// Each series' `model/version` and the value `value_of` picks, sorted.
fn values_by(result: &Value, value_of: impl Fn(&Value) -> String) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = result
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["metric"]["model"].as_str().unwrap_or(""),
                    r["metric"]["version"].as_str().unwrap_or("")
                ),
                value_of(r),
            )
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_queries_answer_as_prometheus_does() {
    let app = app_with_data().await;
    let now = seconds(NOW_MS);
    let reply = get(
        &app,
        QUERY,
        QUERY,
        &[
            ("query", r#"modelwatch_model_metric{model="fraud"}"#),
            ("time", now.as_str()),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "success");
    assert_eq!(reply.body["data"]["resultType"], "vector");
    let result = &reply.body["data"]["result"];
    assert_eq!(
        values(result),
        vec![
            ("fraud/v1".into(), "0.81".into()),
            ("fraud/v2".into(), "0.95".into())
        ]
    );
    assert_eq!(
        result[0]["metric"],
        json!({"__name__": "modelwatch_model_metric", "model": "fraud", "version": "v1",
               "metric": "accuracy", "dataset": "default"})
    );
    assert_eq!(result[0]["value"][0].as_f64(), Some(NOW_MS as f64 / 1000.0));

    // Grafana's form POST, with a time in RFC 3339 and the over-time, aggregation,
    // arithmetic and offset of a dashboard.
    let cases: [(&str, Vec<(String, String)>); 6] = [
        (
            r#"avg by (model) (modelwatch_model_metric{metric="accuracy"})"#,
            vec![
                ("churn/".into(), "0.6".into()),
                ("fraud/".into(), "0.88".into()),
            ],
        ),
        (
            r#"max_over_time(modelwatch_model_metric{model="fraud",version="v1"}[10m])"#,
            vec![("fraud/v1".into(), "0.89".into())],
        ),
        (
            r#"count_over_time(modelwatch_model_metric{model="fraud",version="v1"}[5m])"#,
            vec![("fraud/v1".into(), "4".into())],
        ),
        (
            r#"100 * modelwatch_model_metric{model="churn"}"#,
            vec![("churn/v1".into(), "60".into())],
        ),
        (
            r#"modelwatch_model_metric{model="fraud",version="v1"} offset 5m"#,
            vec![("fraud/v1".into(), "0.85".into())],
        ),
        (
            r#"count(modelwatch_model_metric{model=~"fr.*",version!~"v2"})"#,
            vec![("/".into(), "1".into())],
        ),
    ];
    for (query, expected) in cases {
        let reply = post_form(
            &app,
            QUERY,
            &[("query", query), ("time", "2024-05-01T12:00:00Z")],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        let found = values(&reply.body["data"]["result"]);
        assert_eq!(found.len(), expected.len(), "{query}: {found:?}");
        for ((name, value), (want_name, want)) in found.iter().zip(&expected) {
            assert_eq!(name, want_name, "{query}");
            let (value, want): (f64, f64) = (value.parse().unwrap(), want.parse().unwrap());
            assert!((value - want).abs() < 1e-9, "{query}: {value} != {want}");
        }
    }

    // Grafana's connection test.
    let reply = get(
        &app,
        QUERY,
        QUERY,
        &[("query", "1+1"), ("time", now.as_str())],
    )
    .await;
    assert_eq!(
        reply.body["data"],
        json!({"resultType": "scalar", "result": [NOW_MS as f64 / 1000.0, "2"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_queries_give_a_matrix_of_each_step() {
    let app = app_with_data().await;
    let (start, end) = (seconds(NOW_MS - 4 * MINUTE), seconds(NOW_MS));
    let reply = post_form(
        &app,
        RANGE,
        &[
            (
                "query",
                r#"avg by (model) (modelwatch_model_metric{model="fraud"})"#,
            ),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("step", "60"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["data"]["resultType"], "matrix");
    let result = reply.body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["metric"], json!({"model": "fraud"}));
    let points = result[0]["values"].as_array().unwrap();
    assert_eq!(points.len(), 5);
    let last: f64 = points[4][1].as_str().unwrap().parse().unwrap();
    assert!((last - 0.88).abs() < 1e-9, "{last}");
    assert_eq!(
        points[0][0].as_f64(),
        Some((NOW_MS - 4 * MINUTE) as f64 / 1000.0)
    );

    let reply = get(
        &app,
        RANGE,
        RANGE,
        &[
            ("query", "modelwatch_model_metric"),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("step", "1m"),
        ],
    )
    .await;
    assert_eq!(reply.body["data"]["result"].as_array().unwrap().len(), 3);

    let reply = get(
        &app,
        RANGE,
        RANGE,
        &[
            ("query", "modelwatch_model_metric"),
            ("start", "0"),
            ("end", end.as_str()),
            ("step", "1"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains("11000 points"),
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_series_named_alerts() {
    let app = app_with_data().await;
    let reply = get(
        &app,
        QUERY,
        QUERY,
        &[
            ("query", r#"ALERTS{alertstate="firing",severity="high"}"#),
            ("time", seconds(NOW_MS).as_str()),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = reply.body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{}", reply.body);
    assert_eq!(result[0]["metric"]["alertname"], "Low accuracy");
    assert_eq!(result[0]["metric"]["model"], "fraud");
    assert_eq!(result[0]["value"][1], "1");
    // It fired 5 minutes ago: not yet 10 minutes ago.
    let reply = get(
        &app,
        QUERY,
        QUERY,
        &[
            ("query", "count(ALERTS)"),
            ("time", seconds(NOW_MS - 10 * MINUTE).as_str()),
        ],
    )
    .await;
    assert_eq!(reply.body["data"]["result"], json!([]));
}

/// The versions' health series are graded by the function `/metrics` uses: an instant
/// query now answers what `/metrics` exports; a range query grades each step as at its
/// time (before any sample, no score and the grade `unknown`), and a range longer than
/// the gradings allowed still has exactly one grade at every step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_series_grade_each_version_as_at_each_time() {
    let app = app_with_data().await;
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // "model/version" -> value, from the exposition's lines of one family.
    let exported = |family: &str, label: Option<&str>| -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .map(|l| {
                let labels = |name: &str| {
                    l.split(&format!("{name}=\""))
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .unwrap_or("")
                        .to_owned()
                };
                let value = match label {
                    Some(name) => labels(name),
                    None => l
                        .rsplit(' ')
                        .next()
                        .unwrap()
                        .parse::<f64>()
                        .unwrap()
                        .to_string(),
                };
                (format!("{}/{}", labels("model"), labels("version")), value)
            })
            .collect();
        found.sort();
        found
    };
    let now = seconds(NOW_MS);
    let scores = exported("modelwatch_version_health_score", None);
    assert_eq!(scores.len(), 3, "{text}");
    let reply = get(
        &app,
        QUERY,
        QUERY,
        &[("query", "modelwatch_version_health_score"), ("time", &now)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = &reply.body["data"]["result"];
    assert_eq!(values(result), scores);
    assert_eq!(
        result[0]["metric"],
        json!({"__name__": "modelwatch_version_health_score", "model": "churn", "version": "v1"})
    );
    let reply = get(
        &app,
        QUERY,
        QUERY,
        &[("query", "modelwatch_version_health_grade"), ("time", &now)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = &reply.body["data"]["result"];
    assert_eq!(
        values_by(result, |r| r["metric"]["grade"]
            .as_str()
            .unwrap()
            .to_owned()),
        exported("modelwatch_version_health_grade", Some("grade"))
    );
    assert!(values(result).iter().all(|(_, value)| value == "1"));

    // Graded as at each step: an hour ago there was no sample in the day before.
    let range = |query: &'static str, start: i64, step: &'static str| {
        let (start, end) = (seconds(start), now.clone());
        let app = &app;
        async move {
            let reply = get(
                app,
                RANGE,
                RANGE,
                &[
                    ("query", query),
                    ("start", &start),
                    ("end", &end),
                    ("step", step),
                ],
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
            reply.body["data"]["result"].as_array().unwrap().clone()
        }
    };
    let matrix = range(
        r#"modelwatch_version_health_score{model="fraud",version="v1"}"#,
        NOW_MS - 2 * HOUR,
        "3600",
    )
    .await;
    assert_eq!(matrix.len(), 1, "{matrix:?}");
    let fraud_v1 = &scores[1].1;
    assert_eq!(
        matrix[0]["values"],
        json!([[NOW_MS as f64 / 1000.0, fraud_v1]])
    );
    let matrix = range(
        r#"modelwatch_version_health_grade{model="fraud",version="v1"}"#,
        NOW_MS - 2 * HOUR,
        "3600",
    )
    .await;
    let unknown = matrix
        .iter()
        .find(|s| s["metric"]["grade"] == "unknown")
        .unwrap_or_else(|| panic!("{matrix:?}"));
    let hour = |h: i64| (NOW_MS - h * HOUR) as f64 / 1000.0;
    assert_eq!(unknown["values"], json!([[hour(2), "1"], [hour(1), "1"]]));

    // A day at a minute's step: 1,441 steps, more than the gradings allowed, each step
    // with one grade per version all the same.
    let matrix = range(
        "count by (model, version) (modelwatch_version_health_grade)",
        NOW_MS - 24 * HOUR,
        "60",
    )
    .await;
    assert_eq!(matrix.len(), 3, "{matrix:?}");
    for series in &matrix {
        let points = series["values"].as_array().unwrap();
        assert_eq!(points.len(), 1441, "{series}");
        assert!(points.iter().all(|p| p[1] == "1"), "{series}");
    }

    // The listings name both families.
    let reply = get(
        &app,
        "/api/v1/label/{name}/values",
        "/api/v1/label/__name__/values",
        &[],
    )
    .await;
    let names = reply.body["data"].as_array().unwrap();
    assert!(
        names.contains(&json!("modelwatch_version_health_score")),
        "{names:?}"
    );
    assert!(
        names.contains(&json!("modelwatch_version_health_grade")),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_labels_values_and_buildinfo() {
    let app = app_with_data().await;
    let reply = get(
        &app,
        "/api/v1/series",
        "/api/v1/series",
        &[("match[]", r#"{model="churn"}"#)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // The version's health series have its model label too (listed without their
    // `grade`, which takes a grading to know).
    assert_eq!(
        reply.body["data"],
        json!([{"__name__": "modelwatch_model_metric", "model": "churn", "version": "v1",
                "metric": "accuracy", "dataset": "default"},
               {"__name__": "modelwatch_version_health_grade", "model": "churn", "version": "v1"},
               {"__name__": "modelwatch_version_health_score", "model": "churn", "version": "v1"}])
    );
    let reply = get(&app, "/api/v1/series", "/api/v1/series", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["errorType"], "bad_data");

    let reply = post_form(&app, "/api/v1/labels", &[]).await;
    assert_eq!(
        reply.body["data"],
        json!([
            "__name__",
            "alertname",
            "alertstate",
            "dataset",
            "metric",
            "model",
            "severity",
            "version"
        ])
    );
    let route = "/api/v1/label/{name}/values";
    let reply = get(&app, route, "/api/v1/label/model/values", &[]).await;
    assert_eq!(reply.body["data"], json!(["churn", "fraud"]));
    let reply = get(&app, route, "/api/v1/label/__name__/values", &[]).await;
    assert_eq!(
        reply.body["data"],
        json!([
            "ALERTS",
            "modelwatch_model_metric",
            "modelwatch_version_health_grade",
            "modelwatch_version_health_score"
        ])
    );
    let reply = get(
        &app,
        route,
        "/api/v1/label/version/values",
        &[("match[]", r#"{model="churn"}"#)],
    )
    .await;
    assert_eq!(reply.body["data"], json!(["v1"]));

    let reply = get(
        &app,
        "/api/v1/status/buildinfo",
        "/api/v1/status/buildinfo",
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["data"]["version"]
        .as_str()
        .unwrap()
        .starts_with("2."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_supported_is_named_in_prometheus_error_format() {
    let app = app_with_data().await;
    for (query, names) in [
        ("rate(modelwatch_model_metric[5m])", "rate()"),
        (
            "modelwatch_model_metric / modelwatch_model_metric",
            "two vectors",
        ),
        ("topk(1, modelwatch_model_metric)", "topk"),
        ("modelwatch_model_metric{", "query"),
    ] {
        let reply = post_form(&app, QUERY, &[("query", query)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.body["status"], "error");
        assert_eq!(reply.body["errorType"], "bad_data");
        let error = reply.body["error"].as_str().unwrap();
        assert!(error.contains(names), "{query}: {error}");
    }
    let reply = get(&app, QUERY, QUERY, &[("query", "1"), ("time", "soon")]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["error"].as_str().unwrap().contains("\"time\""),
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_may_post_queries() {
    let app = spawn_app_with_auth().await;
    let reader = add_token(&app, Scope::Read).await;
    tokio::time::sleep(modelwatch_http::auth::RELOAD_EVERY + Duration::from_millis(200)).await;
    let response = app
        .client
        .post(format!("{}{QUERY}", app.base))
        .bearer_auth(&reader)
        .form(&[("query", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .client
        .post(format!("{}{QUERY}", app.base))
        .form(&[("query", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// The example Grafana dashboard (`examples/grafana-dashboard.json`): each template
/// variable's `label_values(…)` and each panel's query, with the variables as Grafana
/// substitutes them (all models, the accuracy metric), answer with data over the
/// dashboard's default day, as range and as instant queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_of_the_example_grafana_dashboard_returns_data() {
    let app = app_with_data().await;
    // A day before, for the panel that compares with `offset 1d`.
    let reply = app
        .call(
            Method::POST,
            METRICS,
            METRICS,
            Some(
                json!({"samples": [{"model": "fraud", "version": "v1", "metric": "accuracy",
                "value": 0.93, "timestamp": NOW_MS - 24 * HOUR - 30 * MINUTE}]}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../../examples/grafana-dashboard.json")).unwrap();
    let substitute = |text: &str| text.replace("$model", ".*").replace("$metric", "accuracy");
    let (start, end) = (seconds(NOW_MS - 24 * HOUR), seconds(NOW_MS));

    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let mut checked = 0;
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let definition = variable["definition"].as_str().unwrap();
        // label_values(SELECTOR, LABEL)
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap();
        let (selector, label) = inner.rsplit_once(", ").unwrap();
        let reply = get(
            &app,
            "/api/v1/label/{name}/values",
            &format!("/api/v1/label/{label}/values"),
            &[
                ("match[]", substitute(selector).as_str()),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{definition}: {}", reply.body);
        assert!(
            !reply.body["data"].as_array().unwrap().is_empty(),
            "{definition}"
        );
        checked += 1;
    }

    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = substitute(target["expr"].as_str().unwrap());
            let reply = post_form(
                &app,
                RANGE,
                &[
                    ("query", expr.as_str()),
                    ("start", start.as_str()),
                    ("end", end.as_str()),
                    ("step", "300"),
                ],
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{expr}: {}", reply.body);
            let result = reply.body["data"]["result"].as_array().unwrap();
            assert!(!result.is_empty(), "{expr}: no data over the day");
            let reply = post_form(
                &app,
                QUERY,
                &[("query", expr.as_str()), ("time", end.as_str())],
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{expr}: {}", reply.body);
            assert!(
                !reply.body["data"]["result"].as_array().unwrap().is_empty(),
                "{expr}: no data now"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} queries");
}

/// Instant `*_over_time` queries are answered from the store's per-window statistics;
/// a one-step range query reads the points. Both must give the same values, at window
/// edges (a sample exactly at `t - range` is out, one at `t` in), with offsets, under
/// aggregations and arithmetic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_time_pushed_into_the_store_agrees_with_reading_the_points() {
    let app = app_with_data().await;
    let at = seconds(NOW_MS - MINUTE);
    let queries = [
        r#"avg_over_time(modelwatch_model_metric[5m])"#,
        r#"sum_over_time(modelwatch_model_metric{model="fraud"}[3m])"#,
        r#"min_over_time(modelwatch_model_metric{version!="v2"}[10m])"#,
        r#"max_over_time(modelwatch_model_metric{model=~"fr.*"}[2m] offset 3m)"#,
        r#"count_over_time(modelwatch_model_metric{dataset="default"}[4m])"#,
        r#"last_over_time(modelwatch_model_metric{metric="accuracy"}[1h])"#,
        r#"avg by (model) (avg_over_time(modelwatch_model_metric[5m])) * 100"#,
        r#"quantile_over_time(0.5, modelwatch_model_metric[5m])"#,
        r#"avg_over_time(modelwatch_model_metric{model="no such model!"}[5m])"#,
    ];
    for query in queries {
        let instant = get(&app, QUERY, QUERY, &[("query", query), ("time", &at)]).await;
        assert_eq!(instant.status, StatusCode::OK, "{query}: {}", instant.body);
        // Two steps, so the range query reads points; its last step is `at`.
        let before = seconds(NOW_MS - 2 * MINUTE);
        let range = get(
            &app,
            RANGE,
            RANGE,
            &[
                ("query", query),
                ("start", &before),
                ("end", &at),
                ("step", "60"),
            ],
        )
        .await;
        assert_eq!(range.status, StatusCode::OK, "{query}: {}", range.body);
        let from_points = values_by(&range.body["data"]["result"], |r| {
            let last = r["values"].as_array().unwrap().last().unwrap();
            assert_eq!(last[0].as_f64(), Some((NOW_MS - MINUTE) as f64 / 1000.0));
            last[1].as_str().unwrap().to_owned()
        });
        let pushed = values(&instant.body["data"]["result"]);
        assert_eq!(
            pushed.len(),
            from_points.len(),
            "{query}: {pushed:?} vs {from_points:?}"
        );
        for ((name, value), (want_name, want)) in pushed.iter().zip(&from_points) {
            assert_eq!(name, want_name, "{query}");
            let (value, want): (f64, f64) = (value.parse().unwrap(), want.parse().unwrap());
            assert!((value - want).abs() < 1e-9, "{query}: {value} != {want}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_aggregate_over_a_window_in_one_request() {
    let app = app_with_data().await;
    let route = "/api/v1/series/aggregate";
    // The last 5 minutes: samples at NOW-5m … NOW-1m (the window's start is inclusive).
    let from = (NOW_MS - 5 * MINUTE).to_string();
    let to = NOW_MS.to_string();
    let reply = get(&app, route, route, &[("from", &from), ("to", &to)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let series = reply.body["series"].as_array().unwrap();
    let names: Vec<String> = series
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["model"].as_str().unwrap(),
                s["version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["churn/v1", "fraud/v1", "fraud/v2"]);
    let fraud_v1 = &series[1];
    assert_eq!(fraud_v1["count"], 5);
    assert!(
        (fraud_v1["mean"].as_f64().unwrap() - 0.83).abs() < 1e-9,
        "{fraud_v1}"
    );
    assert!((fraud_v1["min"].as_f64().unwrap() - 0.81).abs() < 1e-9);
    assert!((fraud_v1["max"].as_f64().unwrap() - 0.85).abs() < 1e-9);
    assert!((fraud_v1["last"].as_f64().unwrap() - 0.81).abs() < 1e-9);
    assert_eq!(fraud_v1["last_timestamp"], "2024-05-01T11:59:00.000Z");
    assert_eq!(fraud_v1["dataset"], "default");

    // Narrowed by model and version; the default window is the hour before `to`.
    let reply = get(
        &app,
        route,
        route,
        &[("model", "fraud"), ("version", "v2"), ("to", &to)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["series"].as_array().unwrap().len(), 1);
    assert_eq!(reply.body["series"][0]["count"], 10);
    assert_eq!(reply.body["from"], "2024-05-01T11:00:00.000Z");

    // Bad input names the parameter.
    for (query, field) in [
        (vec![("model", "no such model!")], "model"),
        (vec![("from", "yesterday")], "from"),
        (vec![("from", to.as_str()), ("to", from.as_str())], "to"),
        (vec![("colour", "red")], "colour"),
    ] {
        let reply = get(&app, route, route, &query).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query:?}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["field"], field,
            "{query:?}: {}",
            reply.body
        );
    }
}
